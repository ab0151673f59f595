package policy

import (
	"math"
	"strconv"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		str  string // canonical String()
	}{
		{"P7D", Duration{Days: 7}, "P7D"},
		{"P12W", Duration{Weeks: 12}, "P12W"},
		{"P3M", Duration{Months: 3}, "P3M"},
		{"P10Y", Duration{Years: 10}, "P10Y"},
		{"PT4H", Duration{Hours: 4}, "PT4H"},
		{"PT30M", Duration{Minutes: 30}, "PT30M"},
		{"PT45S", Duration{Seconds: 45}, "PT45S"},
		{"P1M", Duration{Months: 1}, "P1M"},
		{"PT1M", Duration{Minutes: 1}, "PT1M"},
		{"P1MT1M", Duration{Months: 1, Minutes: 1}, "P1MT1M"},
		{"P1Y2M10DT2H30M", Duration{Years: 1, Months: 2, Days: 10, Hours: 2, Minutes: 30}, "P1Y2M10DT2H30M"},
		{"P1Y2M3W4DT5H6M7S", Duration{1, 2, 3, 4, 5, 6, 7}, "P1Y2M3W4DT5H6M7S"},
		{"P2W3D", Duration{Weeks: 2, Days: 3}, "P2W3D"},
		{"P1DT12H", Duration{Days: 1, Hours: 12}, "P1DT12H"},
		{"PT36H", Duration{Hours: 36}, "PT36H"},
		{"PT90M", Duration{Minutes: 90}, "PT90M"},
		{"P0D", Duration{}, "P0D"},
		{"PT0S", Duration{}, "P0D"},
		{"P0Y0M0W0DT0H0M0S", Duration{}, "P0D"},
		{"P0Y1D", Duration{Days: 1}, "P1D"},
		{"P007D", Duration{Days: 7}, "P7D"},
		{"P0000000000000000000000000001D", Duration{Days: 1}, "P1D"},
		{"P10000Y", Duration{Years: 10000}, "P10000Y"},
		{"P120000M", Duration{Months: 120000}, "P120000M"},
		{"P521775W", Duration{Weeks: 521775}, "P521775W"},
		{"P3652425D", Duration{Days: 3652425}, "P3652425D"},
		{"PT87658200H", Duration{Hours: 87658200}, "PT87658200H"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil {
			t.Errorf("ParseDuration(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseDuration(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseDuration(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
		if back, err := ParseDuration(got.String()); err != nil || back != got {
			t.Errorf("ParseDuration(%q) = %#v, %v; want %#v", got.String(), back, err, got)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `invalid duration "": empty (want e.g. P7D or PT4H)`},
		{"P", `invalid duration "P": has no parts after "P" (want e.g. P7D or PT4H)`},
		{"7D", `invalid duration "7D": must start with "P" (e.g. P7D or PT4H)`},
		{"D7", `invalid duration "D7": must start with "P" (e.g. P7D or PT4H)`},
		{" P7D", `invalid duration " P7D": must start with "P" (e.g. P7D or PT4H)`},
		{"-P7D", `invalid duration "-P7D": negative durations are not allowed`},
		{"+P7D", `invalid duration "+P7D": sign "+" is not allowed`},
		{"P-7D", `invalid duration "P-7D": negative values are not allowed`},
		{"P+7D", `invalid duration "P+7D": sign "+" is not allowed`},
		{"PT", `invalid duration "PT": "T" must be followed by at least one of H, M or S (e.g. PT4H)`},
		{"P1DT", `invalid duration "P1DT": "T" must be followed by at least one of H, M or S (e.g. PT4H)`},
		{"PT1HT1M", `invalid duration "PT1HT1M": "T" appears more than once`},
		{"PTT1H", `invalid duration "PTT1H": "T" appears more than once`},
		{"P1H", `invalid duration "P1H": "H" (hours) must come after "T" (e.g. PT1H)`},
		{"P30S", `invalid duration "P30S": "S" (seconds) must come after "T" (e.g. PT30S)`},
		{"PT1D", `invalid duration "PT1D": "D" (days) must come before "T" (e.g. P1D)`},
		{"PT1Y", `invalid duration "PT1Y": "Y" (years) must come before "T" (e.g. P1Y)`},
		{"PT2W", `invalid duration "PT2W": "W" (weeks) must come before "T" (e.g. P2W)`},
		{"P1D1Y", `invalid duration "P1D1Y": "Y" (years) must come before "D" (days)`},
		{"P1D1W", `invalid duration "P1D1W": "W" (weeks) must come before "D" (days)`},
		{"P1W1M", `invalid duration "P1W1M": "M" (months) must come before "W" (weeks)`},
		{"PT1S1H", `invalid duration "PT1S1H": "H" (hours) must come before "S" (seconds)`},
		{"PT1S1M", `invalid duration "PT1S1M": "M" (minutes) must come before "S" (seconds)`},
		{"P1D1D", `invalid duration "P1D1D": "D" (days) appears more than once`},
		{"P1M2M", `invalid duration "P1M2M": "M" (months) appears more than once`},
		{"PT1M2M", `invalid duration "PT1M2M": "M" (minutes) appears more than once`},
		{"P1", `invalid duration "P1": number 1 at the end has no designator (e.g. P1D)`},
		{"P1DT5", `invalid duration "P1DT5": number 5 at the end has no designator (e.g. P5D)`},
		{"PD", `invalid duration "PD": designator "D" has no number before it`},
		{"PTH", `invalid duration "PTH": designator "H" has no number before it`},
		{"P1DM", `invalid duration "P1DM": designator "M" has no number before it`},
		{"P1.5D", `invalid duration "P1.5D": fractional value "1.5" is not supported (use a smaller unit, e.g. PT90M instead of PT1.5H)`},
		{"PT0,5H", `invalid duration "PT0,5H": fractional value "0,5" is not supported (use a smaller unit, e.g. PT90M instead of PT1.5H)`},
		{"PT1.S", `invalid duration "PT1.S": fractional value "1." is not supported (use a smaller unit, e.g. PT90M instead of PT1.5H)`},
		{"P1E3D", `invalid duration "P1E3D": unexpected character 'E' after number 1 at offset 2 (want one of Y, M, W, D or "T")`},
		{"PT1X", `invalid duration "PT1X": unexpected character 'X' after number 1 at offset 3 (want one of H, M, S)`},
		{"P7D ", `invalid duration "P7D ": unexpected character ' ' at offset 3`},
		{"P 7D", `invalid duration "P 7D": unexpected character ' ' at offset 1`},
		{"P7D\n", `invalid duration "P7D\n": unexpected character '\n' at offset 3`},
		{"P7D\xff", `invalid duration "P7D\xff": unexpected character byte 0xff at offset 3`},
		{"P7Dé", `invalid duration "P7Dé": unexpected character 'é' at offset 3`},
		{"P１D", `invalid duration "P１D": unexpected character '１' at offset 1`},
		{"p7d", `invalid duration "p7d": designators must be upper case (did you mean "P7D"?)`},
		{"P7d", `invalid duration "P7d": designators must be upper case (did you mean "P7D"?)`},
		{"pt4h", `invalid duration "pt4h": designators must be upper case (did you mean "PT4H"?)`},
		{"p7x", `invalid duration "p7x": must start with "P" (e.g. P7D or PT4H)`},
		{"P10001Y", `invalid duration "P10001Y": years value 10001 exceeds the maximum of 10000`},
		{"P99999999999Y", `invalid duration "P99999999999Y": years value 99999999999 exceeds the maximum of 10000`},
		{"P120001M", `invalid duration "P120001M": months value 120001 exceeds the maximum of 120000`},
		{"P521776W", `invalid duration "P521776W": weeks value 521776 exceeds the maximum of 521775`},
		{"P3652426D", `invalid duration "P3652426D": days value 3652426 exceeds the maximum of 3652425`},
		{"PT87658201H", `invalid duration "PT87658201H": hours value 87658201 exceeds the maximum of 87658200`},
		{"P0099999999999Y", `invalid duration "P0099999999999Y": years value 99999999999 exceeds the maximum of 10000`},
		{"R/2021-08-01T06:30:00+00:00/P1W", `invalid duration "R/2021-08-01T06:30:00+00:00/P1W": must start with "P" (e.g. P7D or PT4H)`},
		{"P" + repeat("1", 100) + "D", `invalid duration "P` + repeat("1", 99) + `"...: too long (102 bytes, at most 100)`},
	}
	for _, tt := range tests {
		d, err := ParseDuration(tt.in)
		if err == nil {
			t.Errorf("ParseDuration(%q) = %v, want error %s", tt.in, d, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseDuration(%q) error\n got: %s\nwant: %s", tt.in, err, tt.want)
		}
		if d != (Duration{}) {
			t.Errorf("ParseDuration(%q) returned %#v with its error, want the zero Duration", tt.in, d)
		}
	}
}

func repeat(s string, n int) string {
	b := make([]byte, 0, len(s)*n)
	for range n {
		b = append(b, s...)
	}
	return string(b)
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		d    Duration
		want string
	}{
		{Duration{}, "P0D"},
		{Duration{Seconds: 1}, "PT1S"},
		{Duration{Years: 1, Seconds: 1}, "P1YT1S"},
		{Duration{Weeks: 2}, "P2W"},
		{Duration{Days: 14}, "P14D"},
		{Duration{Hours: 25}, "PT25H"},
		{Duration{Years: -1}, "P-1Y"}, // not parseable, documented
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.d, got, tt.want)
		}
	}
	if !(Duration{}).IsZero() || (Duration{Seconds: 1}).IsZero() {
		t.Error("IsZero is wrong")
	}
}

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustDuration(t testing.TB, s string) Duration {
	t.Helper()
	d, err := ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDurationAddTo(t *testing.T) {
	utc := time.UTC
	ny := mustLoad(t, "America/New_York")
	berlin := mustLoad(t, "Europe/Berlin")
	lordHowe := mustLoad(t, "Australia/Lord_Howe")
	tests := []struct {
		name string
		from time.Time
		d    string
		want time.Time
	}{
		{"Jan 31 + P1M, non-leap", time.Date(2023, 1, 31, 6, 30, 0, 0, utc), "P1M", time.Date(2023, 2, 28, 6, 30, 0, 0, utc)},
		{"Jan 31 + P1M, leap", time.Date(2024, 1, 31, 6, 30, 0, 0, utc), "P1M", time.Date(2024, 2, 29, 6, 30, 0, 0, utc)},
		{"Jan 31 + P1M, 1900 not leap", time.Date(1900, 1, 31, 0, 0, 0, 0, utc), "P1M", time.Date(1900, 2, 28, 0, 0, 0, 0, utc)},
		{"Jan 31 + P1M, 2000 leap", time.Date(2000, 1, 31, 0, 0, 0, 0, utc), "P1M", time.Date(2000, 2, 29, 0, 0, 0, 0, utc)},
		{"Jan 30 + P1M", time.Date(2023, 1, 30, 0, 0, 0, 0, utc), "P1M", time.Date(2023, 2, 28, 0, 0, 0, 0, utc)},
		{"Mar 31 + P1M", time.Date(2023, 3, 31, 0, 0, 0, 0, utc), "P1M", time.Date(2023, 4, 30, 0, 0, 0, 0, utc)},
		{"Jan 31 + P2M", time.Date(2023, 1, 31, 0, 0, 0, 0, utc), "P2M", time.Date(2023, 3, 31, 0, 0, 0, 0, utc)},
		{"Dec 31 + P2M", time.Date(2023, 12, 31, 0, 0, 0, 0, utc), "P2M", time.Date(2024, 2, 29, 0, 0, 0, 0, utc)},
		{"Nov 30 + P3M", time.Date(2023, 11, 30, 0, 0, 0, 0, utc), "P3M", time.Date(2024, 2, 29, 0, 0, 0, 0, utc)},
		{"Jan 31 + P1M1D (clamp, then days)", time.Date(2023, 1, 31, 0, 0, 0, 0, utc), "P1M1D", time.Date(2023, 3, 1, 0, 0, 0, 0, utc)},
		{"Feb 29 + P1Y", time.Date(2024, 2, 29, 6, 30, 0, 0, utc), "P1Y", time.Date(2025, 2, 28, 6, 30, 0, 0, utc)},
		{"Feb 29 + P4Y", time.Date(2024, 2, 29, 6, 30, 0, 0, utc), "P4Y", time.Date(2028, 2, 29, 6, 30, 0, 0, utc)},
		{"Feb 29 + P12M", time.Date(2024, 2, 29, 0, 0, 0, 0, utc), "P12M", time.Date(2025, 2, 28, 0, 0, 0, 0, utc)},
		{"Feb 29 + P1Y1D", time.Date(2024, 2, 29, 0, 0, 0, 0, utc), "P1Y1D", time.Date(2025, 3, 1, 0, 0, 0, 0, utc)},
		{"Feb 28 + P1W", time.Date(2024, 2, 28, 0, 0, 0, 0, utc), "P1W", time.Date(2024, 3, 6, 0, 0, 0, 0, utc)},
		{"P10Y", time.Date(2024, 1, 7, 23, 0, 0, 0, utc), "P10Y", time.Date(2034, 1, 7, 23, 0, 0, 0, utc)},
		{"P1DT1H1M1S", time.Date(2024, 12, 31, 23, 0, 0, 0, utc), "P1DT1H1M1S", time.Date(2025, 1, 2, 0, 1, 1, 0, utc)},
		{"nanoseconds kept", time.Date(2024, 1, 31, 0, 0, 0, 123456789, utc), "P1MT1S", time.Date(2024, 2, 29, 0, 0, 1, 123456789, utc)},
		{"zero", time.Date(2024, 1, 31, 0, 0, 0, 1, utc), "P0D", time.Date(2024, 1, 31, 0, 0, 0, 1, utc)},
		{"max years", time.Date(2024, 2, 29, 0, 0, 0, 0, utc), "P10000Y", time.Date(12024, 2, 29, 0, 0, 0, 0, utc)},
		{"max days", time.Date(2000, 1, 1, 0, 0, 0, 0, utc), "P3652425D", time.Date(12000, 1, 1, 0, 0, 0, 0, utc)},
		{"max weeks", time.Date(2000, 1, 1, 0, 0, 0, 0, utc), "P521775W", time.Date(12000, 1, 1, 0, 0, 0, 0, utc)},
		{"max hours", time.Date(2000, 1, 1, 0, 0, 0, 0, utc), "PT87658200H", time.Date(12000, 1, 1, 0, 0, 0, 0, utc)},

		// America/New_York: 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST.
		{"NY P1D across spring forward keeps 06:30", time.Date(2024, 3, 9, 6, 30, 0, 0, ny), "P1D", time.Date(2024, 3, 10, 6, 30, 0, 0, ny)},
		{"NY PT24H across spring forward is elapsed", time.Date(2024, 3, 9, 6, 30, 0, 0, ny), "PT24H", time.Date(2024, 3, 10, 7, 30, 0, 0, ny)},
		{"NY P1D across fall back keeps 06:30", time.Date(2024, 11, 2, 6, 30, 0, 0, ny), "P1D", time.Date(2024, 11, 3, 6, 30, 0, 0, ny)},
		{"NY PT24H across fall back is elapsed", time.Date(2024, 11, 2, 6, 30, 0, 0, ny), "PT24H", time.Date(2024, 11, 3, 5, 30, 0, 0, ny)},
		{"NY P1W across spring forward", time.Date(2024, 3, 6, 6, 30, 0, 0, ny), "P1W", time.Date(2024, 3, 13, 6, 30, 0, 0, ny)},
		{"NY P1M across spring forward", time.Date(2024, 2, 10, 6, 30, 0, 0, ny), "P1M", time.Date(2024, 3, 10, 6, 30, 0, 0, ny)},
		{"NY gap 02:30 moves forward to 03:30 EDT", time.Date(2024, 3, 9, 2, 30, 0, 0, ny), "P1D", time.Date(2024, 3, 10, 7, 30, 0, 0, utc)},
		{"NY gap 02:00 moves to 03:00 EDT", time.Date(2024, 3, 9, 2, 0, 0, 0, ny), "P1D", time.Date(2024, 3, 10, 7, 0, 0, 0, utc)},
		{"NY after gap 03:00", time.Date(2024, 3, 9, 3, 0, 0, 0, ny), "P1D", time.Date(2024, 3, 10, 7, 0, 0, 0, utc)},
		{"NY before gap 01:59", time.Date(2024, 3, 9, 1, 59, 0, 0, ny), "P1D", time.Date(2024, 3, 10, 6, 59, 0, 0, utc)},
		{"NY fold 01:30 is the earlier (EDT)", time.Date(2024, 11, 2, 1, 30, 0, 0, ny), "P1D", time.Date(2024, 11, 3, 5, 30, 0, 0, utc)},
		{"NY from the later 01:30 (EST), P0D", time.Date(2024, 11, 3, 6, 30, 0, 0, utc).In(ny), "PT0S", time.Date(2024, 11, 3, 6, 30, 0, 0, utc)},
		{"NY from the later 01:30 (EST), PT1H", time.Date(2024, 11, 3, 6, 30, 0, 0, utc).In(ny), "PT1H", time.Date(2024, 11, 3, 7, 30, 0, 0, utc)},
		{"NY from the later 01:30 (EST), P1D", time.Date(2024, 11, 3, 6, 30, 0, 0, utc).In(ny), "P1D", time.Date(2024, 11, 4, 6, 30, 0, 0, utc)},
		{"NY PT1H into the gap", time.Date(2024, 3, 10, 1, 30, 0, 0, ny), "PT1H", time.Date(2024, 3, 10, 3, 30, 0, 0, ny)},

		// Europe/Berlin: 2024-03-31 02:00 CET -> 03:00 CEST; 2024-10-27 03:00 CEST -> 02:00 CET.
		{"Berlin P1D across spring forward keeps 06:30", time.Date(2024, 3, 30, 6, 30, 0, 0, berlin), "P1D", time.Date(2024, 3, 31, 4, 30, 0, 0, utc)},
		{"Berlin P1D across fall back keeps 06:30", time.Date(2024, 10, 26, 6, 30, 0, 0, berlin), "P1D", time.Date(2024, 10, 27, 5, 30, 0, 0, utc)},
		{"Berlin gap 02:30 moves forward to 03:30 CEST", time.Date(2024, 3, 30, 2, 30, 0, 0, berlin), "P1D", time.Date(2024, 3, 31, 1, 30, 0, 0, utc)},
		{"Berlin fold 02:30 is the earlier (CEST)", time.Date(2024, 10, 26, 2, 30, 0, 0, berlin), "P1D", time.Date(2024, 10, 27, 0, 30, 0, 0, utc)},
		{"Berlin fold 02:00 is the earlier (CEST)", time.Date(2024, 10, 26, 2, 0, 0, 0, berlin), "P1D", time.Date(2024, 10, 27, 0, 0, 0, 0, utc)},
		{"Berlin 03:00 after fold", time.Date(2024, 10, 26, 3, 0, 0, 0, berlin), "P1D", time.Date(2024, 10, 27, 2, 0, 0, 0, utc)},

		// Australia/Lord_Howe: 2024-10-06 02:00 +10:30 -> 02:30 +11 (a 30 minute gap).
		{"Lord Howe half-hour gap", time.Date(2024, 10, 5, 2, 15, 0, 0, lordHowe), "P1D", time.Date(2024, 10, 6, 2, 45, 0, 0, lordHowe)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustDuration(t, tt.d).AddTo(tt.from)
			if !got.Equal(tt.want) {
				t.Errorf("%s.AddTo(%s) = %s, want %s", tt.d, tt.from, got, tt.want.In(tt.from.Location()))
			}
			if got.Location() != tt.from.Location() {
				t.Errorf("result in %v, want %v", got.Location(), tt.from.Location())
			}
		})
	}
}

func TestDurationAddToDSTWallClock(t *testing.T) {
	// A year of P1D steps at 06:30 keeps the wall clock in zones with DST.
	for _, zone := range []string{"America/New_York", "Europe/Berlin", "Australia/Sydney", "America/Santiago"} {
		loc := mustLoad(t, zone)
		d := mustDuration(t, "P1D")
		t0 := time.Date(2024, 1, 1, 6, 30, 0, 0, loc)
		cur := t0
		for i := 1; i <= 366; i++ {
			cur = d.AddTo(cur)
			want := time.Date(2024, 1, 1+i, 6, 30, 0, 0, loc)
			if !cur.Equal(want) || cur.Hour() != 6 || cur.Minute() != 30 {
				t.Fatalf("%s: step %d = %s, want %s", zone, i, cur, want)
			}
		}
	}
}

func TestDurationExceeds(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	jan1 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	feb1 := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		d, limit string
		from     time.Time
		want     bool
	}{
		{"P1M", "P30D", jan1, true},
		{"P1M", "P30D", feb1, false},
		{"P30D", "P1M", feb1, true},
		{"P7D", "P1W", jan1, false},
		{"P1W", "P7D", jan1, false},
		{"P8D", "P1W", jan1, true},
		{"P12W", "P3M", jan1, false}, // Mar 26 vs Apr 1
		{"P13W", "P3M", jan1, true},  // Apr 2 vs Apr 1
		{"P10Y", "P3650D", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"P1Y", "P365D", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"P1Y", "P365D", jan1, false},
		{"PT24H", "P1D", time.Date(2024, 3, 10, 0, 0, 0, 0, ny), true},
		{"P1D", "PT24H", time.Date(2024, 11, 3, 0, 0, 0, 0, ny), true},
		{"P1D", "PT24H", time.Date(2024, 6, 1, 0, 0, 0, 0, ny), false},
		{"P0D", "P0D", jan1, false},
		{"PT1S", "P0D", jan1, true},
	}
	for _, tt := range tests {
		got := mustDuration(t, tt.d).Exceeds(mustDuration(t, tt.limit), tt.from)
		if got != tt.want {
			t.Errorf("%s.Exceeds(%s, %s) = %v, want %v", tt.d, tt.limit, tt.from, got, tt.want)
		}
	}
}

func TestDurationAddToOutOfRangeFields(t *testing.T) {
	// Hand-built durations beyond ParseDuration's limits are clamped, never
	// overflow, never panic.
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	huge := Duration{math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt}
	_ = huge.AddTo(from)
	_ = Duration{math.MinInt, math.MinInt, math.MinInt, math.MinInt, math.MinInt, math.MinInt, math.MinInt}.AddTo(from)
	if got, want := (Duration{Days: -1}).AddTo(from), from.AddDate(0, 0, -1); !got.Equal(want) {
		t.Errorf("P-1D.AddTo = %s, want %s", got, want)
	}
	if strconv.IntSize < 64 {
		return
	}
	maxD := mustDuration(t, "P10000Y120000M521775W3652425DT87658200H5259492000M315569520000S")
	if got, want := huge.AddTo(from), maxD.AddTo(from); !got.Equal(want) {
		t.Errorf("huge.AddTo = %s, want %s", got, want)
	}
}

// TestDurationLimits64 covers the limits of minutes and seconds, which only
// 64-bit ints can hold (on 32-bit platforms the limit is math.MaxInt32).
func TestDurationLimits64(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("64-bit ints only")
	}
	var maxMinutes, maxSeconds int64 = 5259492000, 315569520000
	valid := []struct {
		in   string
		want Duration
	}{
		{"PT5259492000M", Duration{Minutes: int(maxMinutes)}},
		{"PT315569520000S", Duration{Seconds: int(maxSeconds)}},
	}
	for _, tt := range valid {
		got, err := ParseDuration(tt.in)
		if err != nil || got != tt.want || got.String() != tt.in {
			t.Errorf("ParseDuration(%q) = %#v, %v, want %#v", tt.in, got, err, tt.want)
		}
	}
	invalid := []struct{ in, want string }{
		{"PT5259492001M", `invalid duration "PT5259492001M": minutes value 5259492001 exceeds the maximum of 5259492000`},
		{"PT315569520001S", `invalid duration "PT315569520001S": seconds value 315569520001 exceeds the maximum of 315569520000`},
		{"PT99999999999999999999999999999999S", `invalid duration "PT99999999999999999999999999999999S": seconds value 99999999999999999999999999999999 exceeds the maximum of 315569520000`},
	}
	for _, tt := range invalid {
		if _, err := ParseDuration(tt.in); err == nil || err.Error() != tt.want {
			t.Errorf("ParseDuration(%q) error\n got: %v\nwant: %s", tt.in, err, tt.want)
		}
	}
	from := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, want := mustDuration(t, "PT315569520000S").AddTo(from), time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("PT315569520000S.AddTo(%s) = %s, want %s", from, got, want)
	}
	if got, want := mustDuration(t, "PT5259492000M").AddTo(from), time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("PT5259492000M.AddTo(%s) = %s, want %s", from, got, want)
	}
}
