package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Schedule is a backup policy's trigger: a set of repeating intervals whose
// wall-clock times are kept in one time zone.
type Schedule struct {
	// Intervals are the policy's repeatingTimeIntervals.
	Intervals []RepeatingInterval
	// Location is the policy's timeZone; nil means UTC.
	Location *time.Location
}

// ParseSchedule parses a policy's repeatingTimeIntervals and timeZone. An
// empty timeZone means UTC (Azure's default); otherwise it is resolved by
// LoadLocation. At least one interval is required.
func ParseSchedule(intervals []string, timeZone string) (Schedule, error) {
	if len(intervals) == 0 {
		return Schedule{}, errors.New("schedule has no repeating time intervals (want e.g. [\"" + exampleInterval + "\"])")
	}
	s := Schedule{Intervals: make([]RepeatingInterval, len(intervals)), Location: time.UTC}
	for i, v := range intervals {
		ri, err := ParseRepeatingInterval(v)
		if err != nil {
			return Schedule{}, err
		}
		s.Intervals[i] = ri
	}
	if timeZone != "" {
		loc, err := LoadLocation(timeZone)
		if err != nil {
			return Schedule{}, err
		}
		s.Location = loc
	}
	return s, nil
}

// Next returns the earliest occurrence of any of the intervals strictly
// after after, in s.Location; false when no interval has one.
func (s Schedule) Next(after time.Time) (time.Time, bool) {
	var best time.Time
	found := false
	for _, ri := range s.Intervals {
		t, ok := ri.Next(after, s.Location)
		if ok && (!found || t.Before(best)) {
			best, found = t, true
		}
	}
	return best, found
}

// Latest returns the latest occurrence of any of the intervals at or before
// t, in s.Location; false when no interval has one.
func (s Schedule) Latest(t time.Time) (time.Time, bool) {
	var best time.Time
	found := false
	for _, ri := range s.Intervals {
		o, ok := ri.Latest(t, s.Location)
		if ok && (!found || o.After(best)) {
			best, found = o, true
		}
	}
	return best, found
}

// LoadLocation resolves a policy's time zone: an IANA name ("UTC",
// "Europe/Berlin", "America/New_York", ...), matched case-sensitively, or a
// Windows time zone ID as Azure accepts them ("Pacific Standard Time",
// "W. Europe Standard Time", "India Standard Time", ...), matched
// case-insensitively and mapped to its IANA zone following CLDR's
// windowsZones table (the returned Location carries the IANA name). "Local"
// and unknown names are errors. Zone data comes from the system database or,
// when it lacks the zone, from the copy embedded by time/tzdata; callers
// should load a zone once rather than per computation.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "":
		return nil, errors.New("time zone is empty (want e.g. \"UTC\", \"Europe/Berlin\" or \"W. Europe Standard Time\")")
	case "Local":
		return nil, errors.New(`time zone "Local" is not allowed (it depends on the server); use an IANA name such as "Europe/Berlin"`)
	}
	if iana, ok := windowsZone(name); ok {
		name = iana
	}
	if name == "UTC" {
		return time.UTC, nil
	}
	if !validZoneName(name) {
		return nil, unknownZone(name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, unknownZone(name)
	}
	return loc, nil
}

func unknownZone(name string) error {
	return fmt.Errorf(`unknown time zone %s (want an IANA name such as "Europe/Berlin" or a Windows time zone ID such as "W. Europe Standard Time")`, quoteInput(name))
}

// validZoneName reports whether name looks like an IANA zone name; anything
// else (paths, dots, spaces) is rejected before the zone database is asked.
func validZoneName(name string) bool {
	if len(name) > 64 || name[0] == '/' || strings.Contains(name, "//") || strings.HasSuffix(name, "/") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '/' || c == '_' || c == '-' || c == '+') {
			return false
		}
	}
	return true
}

// windowsZone returns the IANA zone of a Windows time zone ID, ignoring case.
func windowsZone(name string) (string, bool) {
	if iana, ok := windowsZones[name]; ok {
		return iana, true
	}
	for id, iana := range windowsZones {
		if strings.EqualFold(id, name) {
			return iana, true
		}
	}
	return "", false
}
