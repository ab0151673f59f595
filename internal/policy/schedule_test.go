package policy

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestScheduleNextWeekdays(t *testing.T) {
	// One weekly interval per weekday (2024-01-01 is a Monday), 22:00 UTC,
	// kept as 23:00 wall clock in Berlin all year.
	s, err := ParseSchedule([]string{
		"R/2024-01-01T22:00:00+00:00/P1W",
		"R/2024-01-02T22:00:00+00:00/P1W",
		"R/2024-01-03T22:00:00+00:00/P1W",
		"R/2024-01-04T22:00:00+00:00/P1W",
		"R/2024-01-05T22:00:00+00:00/P1W",
	}, "W. Europe Standard Time")
	if err != nil {
		t.Fatal(err)
	}
	berlin := mustLoad(t, "Europe/Berlin")
	tests := []struct {
		after time.Time
		want  time.Time
	}{
		{time.Date(2023, 6, 1, 0, 0, 0, 0, berlin), time.Date(2024, 1, 1, 23, 0, 0, 0, berlin)},
		{time.Date(2024, 1, 1, 23, 0, 0, 0, berlin), time.Date(2024, 1, 2, 23, 0, 0, 0, berlin)},
		{time.Date(2024, 1, 1, 22, 59, 59, 0, berlin), time.Date(2024, 1, 1, 23, 0, 0, 0, berlin)},
		// Friday night to Monday night.
		{time.Date(2024, 1, 5, 23, 0, 0, 0, berlin), time.Date(2024, 1, 8, 23, 0, 0, 0, berlin)},
		{time.Date(2024, 1, 6, 12, 0, 0, 0, berlin), time.Date(2024, 1, 8, 23, 0, 0, 0, berlin)},
		// Summer: still 23:00 local (21:00 UTC).
		{time.Date(2024, 6, 7, 23, 30, 0, 0, berlin), time.Date(2024, 6, 10, 23, 0, 0, 0, berlin)},
		{time.Date(2024, 6, 11, 12, 0, 0, 0, berlin), time.Date(2024, 6, 11, 23, 0, 0, 0, berlin)},
		// Across the spring change (Sunday 2024-03-31).
		{time.Date(2024, 3, 29, 23, 0, 0, 0, berlin), time.Date(2024, 4, 1, 23, 0, 0, 0, berlin)},
		// Decades later.
		{time.Date(2051, 3, 4, 23, 0, 0, 0, berlin), time.Date(2051, 3, 6, 23, 0, 0, 0, berlin)}, // Saturday to Monday
	}
	for _, tt := range tests {
		got, ok := s.Next(tt.after)
		if !ok || !got.Equal(tt.want) || got.Location().String() != "Europe/Berlin" {
			t.Errorf("Next(%s) = %s, %v, want %s", tt.after, got, ok, tt.want)
		}
		if got.Weekday() == time.Saturday || got.Weekday() == time.Sunday {
			t.Errorf("Next(%s) = %s is on a %s", tt.after, got, got.Weekday())
		}
	}
}

func TestScheduleNextIsMinimum(t *testing.T) {
	s, err := ParseSchedule([]string{
		"R/2024-01-07T23:00:00+00:00/P1D",
		"R5/2024-01-01T06:30:00+00:00/PT4H",
		"R/2021-08-01T06:30:00+00:00/P1W",
		"R/2020-01-31T12:00:00-05:00/P1M",
	}, "Eastern Standard Time")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	lo := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for range 2000 {
		after := time.Unix(lo+rng.Int64N(hi-lo), 0)
		got, ok := s.Next(after)
		var want time.Time
		found := false
		for _, ri := range s.Intervals {
			if t, ok := ri.Next(after, s.Location); ok && (!found || t.Before(want)) {
				want, found = t, true
			}
		}
		if ok != found || !got.Equal(want) || !got.After(after) {
			t.Fatalf("Next(%s) = %s, %v, want %s", after, got, ok, want)
		}
	}
}

func TestScheduleNextNone(t *testing.T) {
	s := Schedule{}
	if got, ok := s.Next(time.Now()); ok {
		t.Errorf("empty schedule: Next = %s, want none", got)
	}
	s = Schedule{Intervals: []RepeatingInterval{mustInterval(t, "R2/2024-01-01T00:00:00Z/P1D")}}
	if got, ok := s.Next(time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)); !ok || !got.Equal(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("nil Location: Next = %s, %v, want 2024-01-02 UTC", got, ok)
	}
	if got, ok := s.Next(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)); ok {
		t.Errorf("exhausted: Next = %s, want none", got)
	}
}

func TestParseSchedule(t *testing.T) {
	s, err := ParseSchedule([]string{"R/2021-08-01T06:30:00+00:00/P1W"}, "")
	if err != nil || s.Location != time.UTC || len(s.Intervals) != 1 {
		t.Errorf(`ParseSchedule(..., "") = %v, %v, want UTC`, s, err)
	}
	tests := []struct {
		intervals []string
		zone      string
		want      string
	}{
		{nil, "UTC", `schedule has no repeating time intervals (want e.g. ["R/2021-08-01T06:30:00+00:00/P1W"])`},
		{[]string{"R/2021-08-01T06:30:00+00:00/P1W", "R/2021-08-01/P1W"}, "UTC",
			`invalid repeating interval "R/2021-08-01/P1W": start "2021-08-01" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)`},
		{[]string{"R/2021-08-01T06:30:00+00:00/P1W"}, "Mars Standard Time",
			`unknown time zone "Mars Standard Time" (want an IANA name such as "Europe/Berlin" or a Windows time zone ID such as "W. Europe Standard Time")`},
	}
	for _, tt := range tests {
		_, err := ParseSchedule(tt.intervals, tt.zone)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseSchedule(%q, %q) error\n got: %v\nwant: %s", tt.intervals, tt.zone, err, tt.want)
		}
	}
}

func TestLoadLocation(t *testing.T) {
	tests := []struct{ name, iana string }{
		{"UTC", "UTC"},
		{"Europe/Berlin", "Europe/Berlin"},
		{"America/New_York", "America/New_York"},
		{"Asia/Kolkata", "Asia/Kolkata"},
		{"Etc/GMT+5", "Etc/GMT+5"},
		{"GMT Standard Time", "Europe/London"},
		{"W. Europe Standard Time", "Europe/Berlin"},
		{"Central Europe Standard Time", "Europe/Budapest"},
		{"Romance Standard Time", "Europe/Paris"},
		{"Central European Standard Time", "Europe/Warsaw"},
		{"E. Europe Standard Time", "Europe/Chisinau"},
		{"FLE Standard Time", "Europe/Kyiv"},
		{"GTB Standard Time", "Europe/Bucharest"},
		{"Russian Standard Time", "Europe/Moscow"},
		{"Eastern Standard Time", "America/New_York"},
		{"Central Standard Time", "America/Chicago"},
		{"Mountain Standard Time", "America/Denver"},
		{"Pacific Standard Time", "America/Los_Angeles"},
		{"Alaskan Standard Time", "America/Anchorage"},
		{"Hawaiian Standard Time", "Pacific/Honolulu"},
		{"US Mountain Standard Time", "America/Phoenix"},
		{"Atlantic Standard Time", "America/Halifax"},
		{"Canada Central Standard Time", "America/Regina"},
		{"Central Standard Time (Mexico)", "America/Mexico_City"},
		{"SA Pacific Standard Time", "America/Bogota"},
		{"E. South America Standard Time", "America/Sao_Paulo"},
		{"Argentina Standard Time", "America/Argentina/Buenos_Aires"},
		{"India Standard Time", "Asia/Kolkata"},
		{"China Standard Time", "Asia/Shanghai"},
		{"Tokyo Standard Time", "Asia/Tokyo"},
		{"Korea Standard Time", "Asia/Seoul"},
		{"Singapore Standard Time", "Asia/Singapore"},
		{"Taipei Standard Time", "Asia/Taipei"},
		{"SE Asia Standard Time", "Asia/Bangkok"},
		{"AUS Eastern Standard Time", "Australia/Sydney"},
		{"E. Australia Standard Time", "Australia/Brisbane"},
		{"Cen. Australia Standard Time", "Australia/Adelaide"},
		{"AUS Central Standard Time", "Australia/Darwin"},
		{"W. Australia Standard Time", "Australia/Perth"},
		{"New Zealand Standard Time", "Pacific/Auckland"},
		{"Arabian Standard Time", "Asia/Dubai"},
		{"Arab Standard Time", "Asia/Riyadh"},
		{"Arabic Standard Time", "Asia/Baghdad"},
		{"Israel Standard Time", "Asia/Jerusalem"},
		{"Turkey Standard Time", "Europe/Istanbul"},
		{"South Africa Standard Time", "Africa/Johannesburg"},
		{"Egypt Standard Time", "Africa/Cairo"},
		{"Pakistan Standard Time", "Asia/Karachi"},
		{"Bangladesh Standard Time", "Asia/Dhaka"},
		{"Nepal Standard Time", "Asia/Kathmandu"},
		{"Iran Standard Time", "Asia/Tehran"},
		{"Greenwich Standard Time", "Atlantic/Reykjavik"},
		{"UTC-11", "Etc/GMT+11"},
		{"UTC+12", "Etc/GMT-12"},
		// Windows IDs ignore case.
		{"pacific standard time", "America/Los_Angeles"},
		{"W. EUROPE STANDARD TIME", "Europe/Berlin"},
		{"utc", "UTC"},
	}
	for _, tt := range tests {
		loc, err := LoadLocation(tt.name)
		if err != nil {
			t.Errorf("LoadLocation(%q): %v", tt.name, err)
			continue
		}
		if loc.String() != tt.iana {
			t.Errorf("LoadLocation(%q) = %s, want %s", tt.name, loc, tt.iana)
		}
	}

	// Offsets prove the right zone was loaded, not just its name.
	jan := time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)
	jul := time.Date(2024, 7, 15, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		jan, jul int // hours*60 + minutes
	}{
		{"Pacific Standard Time", -8 * 60, -7 * 60},
		{"US Mountain Standard Time", -7 * 60, -7 * 60},
		{"W. Europe Standard Time", 60, 120},
		{"India Standard Time", 5*60 + 30, 5*60 + 30},
		{"AUS Eastern Standard Time", 11 * 60, 10 * 60},
		{"New Zealand Standard Time", 13 * 60, 12 * 60},
		{"Nepal Standard Time", 5*60 + 45, 5*60 + 45},
		{"UTC-11", -11 * 60, -11 * 60},
	} {
		loc := mustLoad(t, tt.name)
		if got := offsetOf(jan.In(loc)) / 60; got != tt.jan {
			t.Errorf("%s: January offset %d min, want %d", tt.name, got, tt.jan)
		}
		if got := offsetOf(jul.In(loc)) / 60; got != tt.jul {
			t.Errorf("%s: July offset %d min, want %d", tt.name, got, tt.jul)
		}
	}

	// Every zone in the table exists.
	for id, iana := range windowsZones {
		if _, err := LoadLocation(id); err != nil {
			t.Errorf("windowsZones[%q] = %q: %v", id, iana, err)
		}
	}
}

func TestLoadLocationErrors(t *testing.T) {
	const want = ` (want an IANA name such as "Europe/Berlin" or a Windows time zone ID such as "W. Europe Standard Time")`
	tests := []struct{ name, err string }{
		{"", `time zone is empty (want e.g. "UTC", "Europe/Berlin" or "W. Europe Standard Time")`},
		{"Local", `time zone "Local" is not allowed (it depends on the server); use an IANA name such as "Europe/Berlin"`},
		{"Mars/Olympus_Mons", `unknown time zone "Mars/Olympus_Mons"` + want},
		{"Pacific Standard", `unknown time zone "Pacific Standard"` + want},
		{"Pacific Standard Time ", `unknown time zone "Pacific Standard Time "` + want},
		{"../../etc/passwd", `unknown time zone "../../etc/passwd"` + want},
		{"/usr/share/zoneinfo/UTC", `unknown time zone "/usr/share/zoneinfo/UTC"` + want},
		{"Europe/", `unknown time zone "Europe/"` + want},
		{"Europe//Berlin", `unknown time zone "Europe//Berlin"` + want},
		{"Europe", `unknown time zone "Europe"` + want},
		{"+05:30", `unknown time zone "+05:30"` + want},
		{"Z", `unknown time zone "Z"` + want},
		{"zone.tab", `unknown time zone "zone.tab"` + want},
	}
	for _, tt := range tests {
		loc, err := LoadLocation(tt.name)
		if err == nil {
			t.Errorf("LoadLocation(%q) = %v, want error %s", tt.name, loc, tt.err)
			continue
		}
		if err.Error() != tt.err {
			t.Errorf("LoadLocation(%q) error\n got: %s\nwant: %s", tt.name, err, tt.err)
		}
	}
}
