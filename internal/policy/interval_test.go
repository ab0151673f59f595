package policy

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustInterval(t testing.TB, s string) RepeatingInterval {
	t.Helper()
	ri, err := ParseRepeatingInterval(s)
	if err != nil {
		t.Fatal(err)
	}
	return ri
}

func TestParseRepeatingInterval(t *testing.T) {
	tests := []struct {
		in     string
		reps   int
		start  string // RFC 3339 with nanoseconds, in the parsed offset
		period Duration
		str    string // canonical String()
	}{
		{"R/2021-08-01T06:30:00+00:00/P1W", Unbounded, "2021-08-01T06:30:00Z", Duration{Weeks: 1}, "R/2021-08-01T06:30:00+00:00/P1W"},
		{"R/2024-01-07T23:00:00+00:00/P1D", Unbounded, "2024-01-07T23:00:00Z", Duration{Days: 1}, "R/2024-01-07T23:00:00+00:00/P1D"},
		{"R/2024-01-07T23:00:00Z/PT4H", Unbounded, "2024-01-07T23:00:00Z", Duration{Hours: 4}, "R/2024-01-07T23:00:00+00:00/PT4H"},
		{"R/2024-01-07T23:00:00-00:00/PT4H", Unbounded, "2024-01-07T23:00:00Z", Duration{Hours: 4}, "R/2024-01-07T23:00:00+00:00/PT4H"},
		{"R/2024-01-07T23:00:00+05:30/P1D", Unbounded, "2024-01-07T23:00:00+05:30", Duration{Days: 1}, "R/2024-01-07T23:00:00+05:30/P1D"},
		{"R/2024-01-07T23:00:00-08:00/P1D", Unbounded, "2024-01-07T23:00:00-08:00", Duration{Days: 1}, "R/2024-01-07T23:00:00-08:00/P1D"},
		{"R/2024-01-07T23:00:00+23:59/P1D", Unbounded, "2024-01-07T23:00:00+23:59", Duration{Days: 1}, "R/2024-01-07T23:00:00+23:59/P1D"},
		{"R0/2024-01-07T23:00:00Z/P1D", 0, "2024-01-07T23:00:00Z", Duration{Days: 1}, "R0/2024-01-07T23:00:00+00:00/P1D"},
		{"R1/2024-01-07T23:00:00Z/P1D", 1, "2024-01-07T23:00:00Z", Duration{Days: 1}, "R1/2024-01-07T23:00:00+00:00/P1D"},
		{"R10/2024-01-07T23:00:00Z/P1D", 10, "2024-01-07T23:00:00Z", Duration{Days: 1}, "R10/2024-01-07T23:00:00+00:00/P1D"},
		{"R007/2024-01-07T23:00:00Z/P1D", 7, "2024-01-07T23:00:00Z", Duration{Days: 1}, "R7/2024-01-07T23:00:00+00:00/P1D"},
		{"R1000000000/2024-01-07T23:00:00Z/P1D", 1000000000, "2024-01-07T23:00:00Z", Duration{Days: 1}, "R1000000000/2024-01-07T23:00:00+00:00/P1D"},
		{"R/2023-10-15T14:30Z/P1D", Unbounded, "2023-10-15T14:30:00Z", Duration{Days: 1}, "R/2023-10-15T14:30:00+00:00/P1D"},
		{"R/2023-10-15T14:30-08:00/P1D", Unbounded, "2023-10-15T14:30:00-08:00", Duration{Days: 1}, "R/2023-10-15T14:30:00-08:00/P1D"},
		{"R/2023-10-15T14:30:45.123+05:30/P1D", Unbounded, "2023-10-15T14:30:45.123+05:30", Duration{Days: 1}, "R/2023-10-15T14:30:45.123+05:30/P1D"},
		{"R/2023-10-15T14:30:45.1200Z/P1D", Unbounded, "2023-10-15T14:30:45.12Z", Duration{Days: 1}, "R/2023-10-15T14:30:45.12+00:00/P1D"},
		{"R/2023-10-15T14:30:45.000000001Z/P1D", Unbounded, "2023-10-15T14:30:45.000000001Z", Duration{Days: 1}, "R/2023-10-15T14:30:45.000000001+00:00/P1D"},
		{"R/2024-02-29T00:00:00Z/P1Y", Unbounded, "2024-02-29T00:00:00Z", Duration{Years: 1}, "R/2024-02-29T00:00:00+00:00/P1Y"},
		{"R/0001-01-01T00:00:00Z/PT1S", Unbounded, "0001-01-01T00:00:00Z", Duration{Seconds: 1}, "R/0001-01-01T00:00:00+00:00/PT1S"},
		{"R/9999-12-31T23:59:59Z/P1D", Unbounded, "9999-12-31T23:59:59Z", Duration{Days: 1}, "R/9999-12-31T23:59:59+00:00/P1D"},
		{"R/2024-01-07T23:00:00Z/P1Y2M3W4DT5H6M7S", Unbounded, "2024-01-07T23:00:00Z", Duration{1, 2, 3, 4, 5, 6, 7}, "R/2024-01-07T23:00:00+00:00/P1Y2M3W4DT5H6M7S"},
		{"R/2024-01-07T23:00:00Z/PT0H1S", Unbounded, "2024-01-07T23:00:00Z", Duration{Seconds: 1}, "R/2024-01-07T23:00:00+00:00/PT1S"},
	}
	for _, tt := range tests {
		ri, err := ParseRepeatingInterval(tt.in)
		if err != nil {
			t.Errorf("ParseRepeatingInterval(%q): %v", tt.in, err)
			continue
		}
		if ri.Repetitions != tt.reps || ri.Period != tt.period || ri.Start.Format(time.RFC3339Nano) != tt.start {
			t.Errorf("ParseRepeatingInterval(%q) = {%d %s %v}, want {%d %s %v}", tt.in,
				ri.Repetitions, ri.Start.Format(time.RFC3339Nano), ri.Period, tt.reps, tt.start, tt.period)
		}
		if got := ri.String(); got != tt.str {
			t.Errorf("ParseRepeatingInterval(%q).String() = %q, want %q", tt.in, got, tt.str)
		}
		back, err := ParseRepeatingInterval(ri.String())
		if err != nil || !sameInterval(back, ri) {
			t.Errorf("round trip of %q: %v, %v", ri.String(), back, err)
		}
	}
}

// sameInterval reports whether a and b are equal, including Start's offset.
func sameInterval(a, b RepeatingInterval) bool {
	_, oa := a.Start.Zone()
	_, ob := b.Start.Zone()
	return a.Repetitions == b.Repetitions && a.Period == b.Period && a.Start.Equal(b.Start) && oa == ob
}

func TestParseRepeatingIntervalErrors(t *testing.T) {
	const pre = `invalid repeating interval `
	tests := []struct{ in, want string }{
		{"", pre + `"": empty (want R[n]/<start>/<period>, e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"R", pre + `"R": missing "/<start>/<period>" after "R" (want e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"R5", pre + `"R5": missing "/<start>/<period>" after "R5" (want e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"R/2021-08-01T06:30:00+00:00", pre + `"R/2021-08-01T06:30:00+00:00": missing "/<period>" after start "2021-08-01T06:30:00+00:00" (want e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"R/P1W", pre + `"R/P1W": missing start before period "P1W" (want e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"2021-08-01T06:30:00+00:00/P1W", pre + `"2021-08-01T06:30:00+00:00/P1W": missing repetitions: want "R" or "R<n>" before "2021-08-01T06:30:00+00:00" (e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"/2021-08-01T06:30:00+00:00/P1W", pre + `"/2021-08-01T06:30:00+00:00/P1W": repetitions are empty (want "R" or "R<n>" first, e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"r/2021-08-01T06:30:00+00:00/P1W", pre + `"r/2021-08-01T06:30:00+00:00/P1W": repetitions "r": "R" must be upper case`},
		{"R-1/2021-08-01T06:30:00+00:00/P1W", pre + `"R-1/2021-08-01T06:30:00+00:00/P1W": repetitions "R-1" are negative`},
		{"R1.5/2021-08-01T06:30:00+00:00/P1W", pre + `"R1.5/2021-08-01T06:30:00+00:00/P1W": repetitions "R1.5": want "R" or "R<n>" with a non-negative integer n`},
		{"R+1/2021-08-01T06:30:00+00:00/P1W", pre + `"R+1/2021-08-01T06:30:00+00:00/P1W": repetitions "R+1": want "R" or "R<n>" with a non-negative integer n`},
		{"RR/2021-08-01T06:30:00+00:00/P1W", pre + `"RR/2021-08-01T06:30:00+00:00/P1W": repetitions "RR": want "R" or "R<n>" with a non-negative integer n`},
		{"R1000000001/2021-08-01T06:30:00+00:00/P1W", pre + `"R1000000001/2021-08-01T06:30:00+00:00/P1W": repetitions "R1000000001" exceed the maximum of 1000000000`},
		{"R99999999999999999999999/2021-08-01T06:30:00Z/P1W", pre + `"R99999999999999999999999/2021-08-01T06:30:00Z/P1W": repetitions "R99999999999999999999999" exceed the maximum of 1000000000`},
		{"R/2021-08-01T06:30:00+00:00/P1W/", pre + `"R/2021-08-01T06:30:00+00:00/P1W/": has 4 "/"-separated parts, want 3: R[n]/<start>/<period> (e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"R//2021-08-01T06:30:00+00:00/P1W", pre + `"R//2021-08-01T06:30:00+00:00/P1W": has 4 "/"-separated parts, want 3: R[n]/<start>/<period> (e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"R//P1W", pre + `"R//P1W": start is empty (want a date-time such as 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01T06:30:00+00:00/", pre + `"R/2021-08-01T06:30:00+00:00/": period is empty (want a duration such as P1W or P1D)`},
		// End-date forms.
		{"R/2021-08-01T06:30:00+00:00/2021-09-01T06:30:00+00:00", pre + `"R/2021-08-01T06:30:00+00:00/2021-09-01T06:30:00+00:00": period "2021-09-01T06:30:00+00:00" is not a duration: the <start>/<end> form is not supported (want a duration such as P1W or P1D)`},
		{"R/P1W/2021-09-01T06:30:00+00:00", pre + `"R/P1W/2021-09-01T06:30:00+00:00": start "P1W" is a duration: the <period>/<end> form is not supported (want R[n]/<start>/<period>, e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		// Start.
		{"R/2021-08-01/P1W", pre + `"R/2021-08-01/P1W": start "2021-08-01" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01T06:30:00/P1W", pre + `"R/2021-08-01T06:30:00/P1W": start "2021-08-01T06:30:00" has no time zone offset (want e.g. 2021-08-01T06:30:00+00:00 or Z)`},
		{"R/2021-08-01T06:30/P1W", pre + `"R/2021-08-01T06:30/P1W": start "2021-08-01T06:30" has no time zone offset (want e.g. 2021-08-01T06:30:00+00:00 or Z)`},
		{"R/2021-08-01T06/P1W", pre + `"R/2021-08-01T06/P1W": start "2021-08-01T06" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01T6:30:00Z/P1W", pre + `"R/2021-08-01T6:30:00Z/P1W": start "2021-08-01T6:30:00Z" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-8-01T06:30:00Z/P1W", pre + `"R/2021-8-01T06:30:00Z/P1W": start "2021-8-01T06:30:00Z" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/20210801T063000Z/P1W", pre + `"R/20210801T063000Z/P1W": start "20210801T063000Z" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/12021-08-01T06:30:00Z/P1W", pre + `"R/12021-08-01T06:30:00Z/P1W": start "12021-08-01T06:30:00Z" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01t06:30:00Z/P1W", pre + `"R/2021-08-01t06:30:00Z/P1W": start "2021-08-01t06:30:00Z": the "T" between date and time must be upper case`},
		{"R/2021-08-01 06:30:00Z/P1W", pre + `"R/2021-08-01 06:30:00Z/P1W": start "2021-08-01 06:30:00Z": want "T" between date and time (e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01T06:30:00z/P1W", pre + `"R/2021-08-01T06:30:00z/P1W": start "2021-08-01T06:30:00z": the "Z" offset must be upper case`},
		{"R/2021-08-01T06:30:00+0000/P1W", pre + `"R/2021-08-01T06:30:00+0000/P1W": start "2021-08-01T06:30:00+0000": offset "+0000" is not "Z" or ±hh:mm (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01T06:30:00+00/P1W", pre + `"R/2021-08-01T06:30:00+00/P1W": start "2021-08-01T06:30:00+00": offset "+00" is not "Z" or ±hh:mm (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01T06:30:00 UTC/P1W", pre + `"R/2021-08-01T06:30:00 UTC/P1W": start "2021-08-01T06:30:00 UTC": offset " UTC" is not "Z" or ±hh:mm (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01T06:30:00+24:00/P1W", pre + `"R/2021-08-01T06:30:00+24:00/P1W": start "2021-08-01T06:30:00+24:00": offset +24:00 is out of range`},
		{"R/2021-08-01T06:30:00+01:60/P1W", pre + `"R/2021-08-01T06:30:00+01:60/P1W": start "2021-08-01T06:30:00+01:60": offset +01:60 is out of range`},
		{"R/2021-08-01T06:30:00+0a:00/P1W", pre + `"R/2021-08-01T06:30:00+0a:00/P1W": start "2021-08-01T06:30:00+0a:00" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01T06:30:00.Z/P1W", pre + `"R/2021-08-01T06:30:00.Z/P1W": start "2021-08-01T06:30:00.Z" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)`},
		{"R/2021-08-01T06:30:00,5Z/P1W", pre + `"R/2021-08-01T06:30:00,5Z/P1W": start "2021-08-01T06:30:00,5Z": use "." for fractional seconds`},
		{"R/2021-08-01T06:30:00.1234567890Z/P1W", pre + `"R/2021-08-01T06:30:00.1234567890Z/P1W": start "2021-08-01T06:30:00.1234567890Z": fractional seconds have more than 9 digits`},
		{"R/0000-08-01T06:30:00Z/P1W", pre + `"R/0000-08-01T06:30:00Z/P1W": start "0000-08-01T06:30:00Z": year 0000 is out of range`},
		{"R/2021-13-01T06:30:00Z/P1W", pre + `"R/2021-13-01T06:30:00Z/P1W": start "2021-13-01T06:30:00Z": month 13 is out of range`},
		{"R/2021-00-01T06:30:00Z/P1W", pre + `"R/2021-00-01T06:30:00Z/P1W": start "2021-00-01T06:30:00Z": month 00 is out of range`},
		{"R/2021-02-29T06:30:00Z/P1W", pre + `"R/2021-02-29T06:30:00Z/P1W": start "2021-02-29T06:30:00Z": day 29 is out of range for February 2021`},
		{"R/2021-04-31T06:30:00Z/P1W", pre + `"R/2021-04-31T06:30:00Z/P1W": start "2021-04-31T06:30:00Z": day 31 is out of range for April 2021`},
		{"R/2021-04-00T06:30:00Z/P1W", pre + `"R/2021-04-00T06:30:00Z/P1W": start "2021-04-00T06:30:00Z": day 00 is out of range for April 2021`},
		{"R/2021-08-01T24:00:00Z/P1W", pre + `"R/2021-08-01T24:00:00Z/P1W": start "2021-08-01T24:00:00Z": hour 24 is out of range`},
		{"R/2021-08-01T06:60:00Z/P1W", pre + `"R/2021-08-01T06:60:00Z/P1W": start "2021-08-01T06:60:00Z": minute 60 is out of range`},
		{"R/2021-08-01T06:30:60Z/P1W", pre + `"R/2021-08-01T06:30:60Z/P1W": start "2021-08-01T06:30:60Z": leap seconds are not supported`},
		{"R/2021-08-01T06:30:61Z/P1W", pre + `"R/2021-08-01T06:30:61Z/P1W": start "2021-08-01T06:30:61Z": second 61 is out of range`},
		// Period.
		{"R/2021-08-01T06:30:00+00:00/P0D", pre + `"R/2021-08-01T06:30:00+00:00/P0D": period "P0D" must not be zero`},
		{"R/2021-08-01T06:30:00+00:00/PT0S", pre + `"R/2021-08-01T06:30:00+00:00/PT0S": period "PT0S" must not be zero`},
		{"R/2021-08-01T06:30:00+00:00/P1H", pre + `"R/2021-08-01T06:30:00+00:00/P1H": period "P1H": "H" (hours) must come after "T" (e.g. PT1H)`},
		{"R/2021-08-01T06:30:00+00:00/p1w", pre + `"R/2021-08-01T06:30:00+00:00/p1w": period "p1w": designators must be upper case (did you mean "P1W"?)`},
		{"R/2021-08-01T06:30:00+00:00/1W", pre + `"R/2021-08-01T06:30:00+00:00/1W": period "1W" is not a duration: the <start>/<end> form is not supported (want a duration such as P1W or P1D)`},
		{"R/2021-08-01T06:30:00+00:00/W1", pre + `"R/2021-08-01T06:30:00+00:00/W1": period "W1": must start with "P" (e.g. P7D or PT4H)`},
		{"R/2021-08-01T06:30:00+00:00/-P1W", pre + `"R/2021-08-01T06:30:00+00:00/-P1W": period "-P1W": negative durations are not allowed`},
		{"R/2021-08-01T06:30:00+00:00/P99999Y", pre + `"R/2021-08-01T06:30:00+00:00/P99999Y": period "P99999Y": years value 99999 exceeds the maximum of 10000`},
		{"R/2021-08-01T06:30:00+00:00/P1W ", pre + `"R/2021-08-01T06:30:00+00:00/P1W ": period "P1W ": unexpected character ' ' at offset 3`},
		{" R/2021-08-01T06:30:00+00:00/P1W", pre + `" R/2021-08-01T06:30:00+00:00/P1W": missing repetitions: want "R" or "R<n>" before " R" (e.g. R/2021-08-01T06:30:00+00:00/P1W)`},
		{"R/2021-08-01T06:30:00+00:00/P1W" + strings.Repeat("1", 70) + "D", pre + `"R/2021-08-01T06:30:00+00:00/P1W` + strings.Repeat("1", 69) + `"...: too long (102 bytes, at most 100)`},
	}
	for _, tt := range tests {
		ri, err := ParseRepeatingInterval(tt.in)
		if err == nil {
			t.Errorf("ParseRepeatingInterval(%q) = %v, want error %s", tt.in, ri, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseRepeatingInterval(%q) error\n got: %s\nwant: %s", tt.in, err, tt.want)
		}
	}
}

func TestOccurrenceMonthEndNoDrift(t *testing.T) {
	ri := mustInterval(t, "R/2024-01-31T10:00:00+00:00/P1M")
	want := []string{
		"2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30",
		"2024-07-31", "2024-08-31", "2024-09-30", "2024-10-31", "2024-11-30", "2024-12-31",
		"2025-01-31", "2025-02-28", "2025-03-31",
	}
	for k, w := range want {
		got := ri.Occurrence(k, time.UTC)
		if got.Format("2006-01-02") != w || got.Hour() != 10 {
			t.Errorf("Occurrence(%d) = %s, want %sT10:00", k, got, w)
		}
	}
	// The same through Next: each occurrence follows the previous one.
	cur := ri.Start
	for k := 1; k < len(want); k++ {
		next, ok := ri.Next(cur, time.UTC)
		if !ok || next.Format("2006-01-02") != want[k] {
			t.Errorf("Next(%s) = %s, %v, want %s", cur, next, ok, want[k])
		}
		cur = next
	}

	leap := mustInterval(t, "R/2024-02-29T00:00:00Z/P1Y")
	for k, w := range []string{"2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29", "2100-02-28", "2104-02-29"} {
		if k >= 5 {
			k = map[string]int{"2100-02-28": 76, "2104-02-29": 80}[w]
		}
		if got := leap.Occurrence(k, time.UTC).Format("2006-01-02"); got != w {
			t.Errorf("P1Y Occurrence(%d) = %s, want %s", k, got, w)
		}
	}

	// P1M from the 30th: Feb is clamped, March is the 30th again.
	thirty := mustInterval(t, "R/2023-01-30T00:00:00Z/P1M")
	for k, w := range []string{"2023-01-30", "2023-02-28", "2023-03-30"} {
		if got := thirty.Occurrence(k, time.UTC).Format("2006-01-02"); got != w {
			t.Errorf("Occurrence(%d) = %s, want %s", k, got, w)
		}
	}
}

func TestOccurrenceDST(t *testing.T) {
	for _, zone := range []string{"America/New_York", "Europe/Berlin"} {
		loc := mustLoad(t, zone)
		// 06:30 local on 2024-01-01, written with the zone's winter offset.
		start := time.Date(2024, 1, 1, 6, 30, 0, 0, loc)
		ri := RepeatingInterval{Repetitions: Unbounded, Start: start.In(time.FixedZone("", offsetOf(start))), Period: Duration{Days: 1}}
		for k := 0; k <= 731; k++ {
			got := ri.Occurrence(k, loc)
			want := time.Date(2024, 1, 1+k, 6, 30, 0, 0, loc)
			if !got.Equal(want) || got.Hour() != 6 || got.Minute() != 30 {
				t.Fatalf("%s: Occurrence(%d) = %s, want %s", zone, k, got, want)
			}
		}
	}
}

func offsetOf(t time.Time) int {
	_, off := t.Zone()
	return off
}

func TestOccurrenceStartInLocation(t *testing.T) {
	ri := mustInterval(t, "R/2024-01-07T23:00:00+00:00/P1D")
	tests := []struct {
		zone string
		k    int
		want string
	}{
		{"UTC", 0, "2024-01-07T23:00:00Z"},
		{"UTC", 200, "2024-07-25T23:00:00Z"},
		{"India Standard Time", 0, "2024-01-08T04:30:00+05:30"},
		{"India Standard Time", 1, "2024-01-09T04:30:00+05:30"},
		// Pacific: 15:00 PST, kept as 15:00 wall clock in summer (PDT).
		{"Pacific Standard Time", 0, "2024-01-07T15:00:00-08:00"},
		{"Pacific Standard Time", 200, "2024-07-25T15:00:00-07:00"},
		// Berlin: midnight CET; in summer midnight CEST.
		{"W. Europe Standard Time", 0, "2024-01-08T00:00:00+01:00"},
		{"W. Europe Standard Time", 200, "2024-07-26T00:00:00+02:00"},
	}
	for _, tt := range tests {
		got := ri.Occurrence(tt.k, mustLoad(t, tt.zone)).Format(time.RFC3339)
		if got != tt.want {
			t.Errorf("%s: Occurrence(%d) = %s, want %s", tt.zone, tt.k, got, tt.want)
		}
	}
	if got := ri.Occurrence(3, nil); !got.Equal(time.Date(2024, 1, 10, 23, 0, 0, 0, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("Occurrence(3, nil) = %s, want UTC", got)
	}
}

func TestOccurrenceGapAndFold(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	berlin := mustLoad(t, "Europe/Berlin")
	tests := []struct {
		name     string
		interval string
		loc      *time.Location
		want     []string // occurrences 0, 1, 2 in RFC 3339
	}{
		{"NY gap moves forward", "R/2024-03-09T02:30:00-05:00/P1D", ny,
			[]string{"2024-03-09T02:30:00-05:00", "2024-03-10T03:30:00-04:00", "2024-03-11T02:30:00-04:00"}},
		{"NY fold takes the earlier", "R/2024-11-02T01:30:00-04:00/P1D", ny,
			[]string{"2024-11-02T01:30:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"}},
		{"NY start on the later 01:30 stays there", "R/2024-11-03T01:30:00-05:00/P1D", ny,
			[]string{"2024-11-03T01:30:00-05:00", "2024-11-04T01:30:00-05:00", "2024-11-05T01:30:00-05:00"}},
		{"Berlin gap moves forward", "R/2024-03-30T02:30:00+01:00/P1D", berlin,
			[]string{"2024-03-30T02:30:00+01:00", "2024-03-31T03:30:00+02:00", "2024-04-01T02:30:00+02:00"}},
		{"Berlin fold takes the earlier", "R/2024-10-26T02:30:00+02:00/P1D", berlin,
			[]string{"2024-10-26T02:30:00+02:00", "2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"}},
		{"hourly is elapsed time across the gap", "R/2024-03-10T00:30:00-05:00/PT1H", ny,
			[]string{"2024-03-10T00:30:00-05:00", "2024-03-10T01:30:00-05:00", "2024-03-10T03:30:00-04:00"}},
		{"hourly is elapsed time across the fold", "R/2024-11-03T00:30:00-04:00/PT1H", ny,
			[]string{"2024-11-03T00:30:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-03T01:30:00-05:00"}},
	}
	for _, tt := range tests {
		ri := mustInterval(t, tt.interval)
		for k, w := range tt.want {
			if got := ri.Occurrence(k, tt.loc).Format(time.RFC3339); got != w {
				t.Errorf("%s: Occurrence(%d) = %s, want %s", tt.name, k, got, w)
			}
		}
		// Next agrees: from just before each occurrence, Next finds it.
		for k, w := range tt.want {
			occ := ri.Occurrence(k, tt.loc)
			got, ok := ri.Next(occ.Add(-time.Nanosecond), tt.loc)
			if !ok || got.Format(time.RFC3339) != w {
				t.Errorf("%s: Next(occurrence %d - 1ns) = %s, %v, want %s", tt.name, k, got, ok, w)
			}
		}
	}
}

func TestOccurrenceExtremeK(t *testing.T) {
	ri := mustInterval(t, "R/2024-01-31T06:30:00+00:00/P1Y2M3W4DT5H6M7S")
	loc := mustLoad(t, "Europe/Berlin")
	for _, k := range []int{math.MaxInt, math.MinInt, math.MaxInt32, -1, -1000} {
		_ = ri.Occurrence(k, loc) // must not panic
	}
	daily := mustInterval(t, "R/2024-01-31T06:30:00+00:00/P1D")
	if got, want := daily.Occurrence(-1, time.UTC), time.Date(2024, 1, 30, 6, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Occurrence(-1) = %s, want %s", got, want)
	}
}

// oracle enumerates occurrences one by one, independently of Occurrence: it
// steps a wall-clock date with time.Date (valid for wall-clock times that are
// never in a DST gap or fold, like 06:30 in New York and Berlin) or adds
// elapsed time.
type oracle struct {
	name     string
	interval string
	zone     string
	occ      func(ri RepeatingInterval, loc *time.Location, k int) time.Time
}

func wallDays(step int) func(RepeatingInterval, *time.Location, int) time.Time {
	return func(ri RepeatingInterval, loc *time.Location, k int) time.Time {
		s := ri.Start.In(loc)
		return time.Date(s.Year(), s.Month(), s.Day()+k*step, s.Hour(), s.Minute(), s.Second(), s.Nanosecond(), loc)
	}
}

func elapsed(step time.Duration) func(RepeatingInterval, *time.Location, int) time.Time {
	return func(ri RepeatingInterval, loc *time.Location, k int) time.Time {
		return ri.Start.Add(time.Duration(k) * step).In(loc)
	}
}

func wallMonths(step int) func(RepeatingInterval, *time.Location, int) time.Time {
	return func(ri RepeatingInterval, loc *time.Location, k int) time.Time {
		s := ri.Start.In(loc)
		first := time.Date(s.Year(), s.Month()+time.Month(k*step), 1, s.Hour(), s.Minute(), s.Second(), s.Nanosecond(), loc)
		last := time.Date(first.Year(), first.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
		return time.Date(first.Year(), first.Month(), min(s.Day(), last), s.Hour(), s.Minute(), s.Second(), s.Nanosecond(), loc)
	}
}

func TestNextAgainstOracle(t *testing.T) {
	oracles := []oracle{
		{"weekly New York", "R/1990-01-07T11:30:00+00:00/P1W", "America/New_York", wallDays(7)},
		{"weekly Berlin", "R/2021-08-01T05:30:00+00:00/P1W", "W. Europe Standard Time", wallDays(7)},
		{"daily Berlin", "R/1995-03-01T05:30:00+00:00/P1D", "Europe/Berlin", wallDays(1)},
		{"daily New York", "R/1995-03-01T11:30:00+00:00/P1D", "Eastern Standard Time", wallDays(1)},
		{"every 3 days UTC", "R/1999-12-31T23:59:59.5Z/P3D", "UTC", wallDays(3)},
		{"daily Kolkata", "R/2000-01-01T00:00:00+05:30/P1D", "Asia/Kolkata", wallDays(1)},
		{"hourly UTC", "R/2000-01-01T00:15:00Z/PT1H", "UTC", elapsed(time.Hour)},
		{"hourly New York", "R/2000-01-01T00:15:00Z/PT1H", "America/New_York", elapsed(time.Hour)},
		{"every 4 hours Berlin", "R/2010-06-01T02:00:00+02:00/PT4H", "Europe/Berlin", elapsed(4 * time.Hour)},
		{"every 90 minutes", "R/2001-01-01T00:00:00Z/PT90M", "Europe/Berlin", elapsed(90 * time.Minute)},
		{"monthly month-end Berlin", "R/1990-01-31T08:00:00+01:00/P1M", "Europe/Berlin", wallMonths(1)},
		{"quarterly", "R/1990-05-31T08:00:00-04:00/P3M", "America/New_York", wallMonths(3)},
		{"yearly leap day", "R/1904-02-29T12:00:00Z/P1Y", "UTC", wallMonths(12)},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	horizon := time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, o := range oracles {
		t.Run(o.name, func(t *testing.T) {
			ri := mustInterval(t, o.interval)
			loc := mustLoad(t, o.zone)
			// Random instants between a year before Start and the horizon,
			// plus instants exactly on and around occurrences.
			lo := ri.Start.AddDate(-1, 0, 0).UnixNano()
			span := horizon.UnixNano() - lo
			var afters []time.Time
			for range 2000 {
				afters = append(afters, time.Unix(0, lo+rng.Int64N(span)))
			}
			for range 200 {
				occ := o.occ(ri, loc, rng.IntN(20000))
				if occ.Before(horizon) {
					afters = append(afters, occ, occ.Add(-time.Nanosecond), occ.Add(time.Nanosecond))
				}
			}
			slices.SortFunc(afters, func(a, b time.Time) int { return a.Compare(b) })

			k := 0
			for _, after := range afters {
				for !o.occ(ri, loc, k).After(after) {
					k++
				}
				want := o.occ(ri, loc, k)
				if want.After(horizon.AddDate(2, 0, 0)) {
					t.Fatalf("oracle ran away at %s", after)
				}
				got, ok := ri.Next(after, loc)
				if !ok || !got.Equal(want) {
					t.Fatalf("Next(%s) = %s, %v, want %s (occurrence %d)", after.Format(time.RFC3339Nano), got, ok, want, k)
				}
				if occ := ri.Occurrence(k, loc); !occ.Equal(want) {
					t.Fatalf("Occurrence(%d) = %s, oracle says %s", k, occ, want)
				}
				if got.Location() != loc {
					t.Fatalf("Next returned a time in %v, want %v", got.Location(), loc)
				}
			}
		})
	}
}

func TestNextRepetitions(t *testing.T) {
	start := time.Date(2024, 1, 7, 23, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		interval string
		after    time.Time
		want     time.Time // zero: none
	}{
		{"R0/2024-01-07T23:00:00Z/P1D", start.Add(-day), time.Time{}},
		{"R0/2024-01-07T23:00:00Z/P1D", start.Add(day), time.Time{}},
		{"R1/2024-01-07T23:00:00Z/P1D", start.Add(-time.Nanosecond), start},
		{"R1/2024-01-07T23:00:00Z/P1D", start, time.Time{}},
		{"R3/2024-01-07T23:00:00Z/P1D", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), start},
		{"R3/2024-01-07T23:00:00Z/P1D", start, start.Add(day)},
		{"R3/2024-01-07T23:00:00Z/P1D", start.Add(day), start.Add(2 * day)},
		{"R3/2024-01-07T23:00:00Z/P1D", start.Add(2*day - 1), start.Add(2 * day)},
		{"R3/2024-01-07T23:00:00Z/P1D", start.Add(2 * day), time.Time{}},
		{"R3/2024-01-07T23:00:00Z/P1D", start.Add(1000 * day), time.Time{}},
		{"R1000000000/2024-01-07T23:00:00Z/PT1S", start.Add(999999998 * time.Second), start.Add(999999999 * time.Second)},
		{"R1000000000/2024-01-07T23:00:00Z/PT1S", start.Add(999999999 * time.Second), time.Time{}},
		{"R/2024-01-07T23:00:00Z/P1D", start.Add(-100 * 365 * day), start},
		{"R/2024-01-07T23:00:00Z/P1D", start.Add(36500*day + time.Hour), start.Add(36501 * day)},
	}
	for _, tt := range tests {
		ri := mustInterval(t, tt.interval)
		got, ok := ri.Next(tt.after, time.UTC)
		if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
			t.Errorf("%s: Next(%s) = %s, %v, want %s", tt.interval, tt.after, got, ok, tt.want)
		}
	}
}

func TestNextEndOfTime(t *testing.T) {
	end := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	tests := []struct {
		interval string
		after    time.Time
		want     time.Time
		none     bool
	}{
		{"R/9999-12-31T00:00:00Z/P1D", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), false},
		{"R/9999-12-31T00:00:00Z/P1D", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), time.Time{}, true},
		{"R/9999-12-31T23:59:58Z/PT1S", time.Date(9999, 12, 31, 23, 59, 58, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{"R/9999-12-31T23:59:58Z/PT1S", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Time{}, true},
		{"R/2000-01-01T00:00:00Z/PT1S", end, time.Time{}, true},
		{"R/2000-01-01T00:00:00Z/PT1S", time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, true},
		{"R/2000-01-01T00:00:00Z/P10000Y", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, true},
		{"R/0001-01-01T00:00:00Z/PT1S", time.Date(9999, 12, 31, 23, 59, 58, 500, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{"R/0001-01-01T00:00:00Z/PT1S", time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), false},
	}
	for _, tt := range tests {
		ri := mustInterval(t, tt.interval)
		got, ok := ri.Next(tt.after, time.UTC)
		if ok == tt.none || (ok && !got.Equal(tt.want)) {
			t.Errorf("%s: Next(%s) = %s, %v, want %s", tt.interval, tt.after, got, ok, tt.want)
		}
	}
	// A start beyond year 9999 (hand-built) has no occurrences.
	far := RepeatingInterval{Repetitions: Unbounded, Start: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Period: Duration{Days: 1}}
	if got, ok := far.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.UTC); ok {
		t.Errorf("Next with a start after 9999 = %s, want none", got)
	}
}

func TestNextInvalidPeriods(t *testing.T) {
	start := time.Date(2024, 1, 7, 23, 0, 0, 0, time.UTC)
	for _, p := range []Duration{{}, {Days: -1}, {Days: 1, Hours: -1}} {
		ri := RepeatingInterval{Repetitions: Unbounded, Start: start, Period: p}
		if got, ok := ri.Next(start.Add(-time.Second), time.UTC); !ok || !got.Equal(start) {
			t.Errorf("period %v: Next(before start) = %s, %v, want the start", p, got, ok)
		}
		if got, ok := ri.Next(start, time.UTC); ok {
			t.Errorf("period %v: Next(start) = %s, want none", p, got)
		}
	}
}

func TestNextFarFromStart(t *testing.T) {
	// PT1S for 8000 years: about 2.5e11 occurrences, found without scanning.
	ri := mustInterval(t, "R/2000-01-01T00:00:00Z/PT1S")
	after := time.Date(9999, 6, 15, 12, 34, 56, 789, time.UTC)
	got, ok := ri.Next(after, time.UTC)
	if want := time.Date(9999, 6, 15, 12, 34, 57, 0, time.UTC); !ok || !got.Equal(want) {
		t.Errorf("Next = %s, %v, want %s", got, ok, want)
	}
	// Every 7 seconds from year 1, in Lord Howe time.
	ri = mustInterval(t, "R/0001-01-01T00:00:00Z/PT7S")
	after = time.Date(2024, 10, 6, 2, 0, 0, 0, time.UTC)
	got, ok = ri.Next(after, mustLoad(t, "Australia/Lord_Howe"))
	k := (after.Unix()-ri.Start.Unix())/7 + 1
	if want := time.Unix(ri.Start.Unix()+7*k, 0); !ok || !got.Equal(want) {
		t.Errorf("Next = %s, %v, want %s", got, ok, want)
	}
}

// BenchmarkNextDaily measures Next for a daily interval started in 2015, in
// a zone with DST, for instants years later: in 2031 (inside the zone
// database's transition table) and in 2045 (where Go derives transitions
// from the zone's TZ rule, which is slower).
func BenchmarkNextDaily(b *testing.B) {
	ri := mustInterval(b, "R/2015-03-01T05:30:00+00:00/P1D")
	loc := mustLoad(b, "Europe/Berlin")
	for _, year := range []int{2031, 2045} {
		b.Run(strconv.Itoa(year), func(b *testing.B) {
			base := time.Date(year, 1, 15, 12, 0, 0, 0, time.UTC)
			i := 0
			for b.Loop() {
				after := base.Add(time.Duration(i%10000) * 37 * time.Minute)
				if _, ok := ri.Next(after, loc); !ok {
					b.Fatal("no next occurrence")
				}
				i++
			}
		})
	}
}

// BenchmarkNextHourlyUTC measures Next for an hourly interval in UTC.
func BenchmarkNextHourlyUTC(b *testing.B) {
	ri := mustInterval(b, "R/2015-03-01T05:30:00+00:00/PT1H")
	base := time.Date(2040, 6, 15, 12, 0, 0, 0, time.UTC)
	i := 0
	for b.Loop() {
		after := base.Add(time.Duration(i%10000) * 37 * time.Minute)
		if _, ok := ri.Next(after, time.UTC); !ok {
			b.Fatal("no next occurrence")
		}
		i++
	}
}
