package policy

import (
	"cmp"
	"slices"
	"time"
)

// Absolute criteria of a tagging criterion, as Azure spells them.
const (
	AllBackup    = "AllBackup"
	FirstOfDay   = "FirstOfDay"
	FirstOfWeek  = "FirstOfWeek"
	FirstOfMonth = "FirstOfMonth"
	FirstOfYear  = "FirstOfYear"
)

// DefaultTag is the tag of a backup no other criterion selects.
const DefaultTag = "Default"

// Tagging is one tagging criterion of a backup rule: backups that match
// any of its Criteria get Tag, unless a criterion of higher priority
// (lower Priority, as Azure's taggingPriority) matches too.
type Tagging struct {
	Tag       string
	Priority  int64
	IsDefault bool
	Criteria  []Criteria
}

// Criteria is a ScheduleBasedBackupCriteria: it matches a backup when every
// field that is not empty matches (a field matches when any of its values
// does). All are judged in the policy's time zone.
type Criteria struct {
	// Absolute holds AllBackup, FirstOfDay, FirstOfWeek, FirstOfMonth or
	// FirstOfYear: the backup is the first (in time) of its day, week (weeks
	// begin on Sunday, as Azure's), month or year.
	Absolute     []string
	DaysOfWeek   []time.Weekday
	WeeksOfMonth []string // First, Second, Third, Fourth (days 1-7, ..., 22-28), Last (the last 7 days)
	MonthsOfYear []time.Month
	DaysOfMonth  []int // 1-31; 0 means the last day of the month
}

// ChooseTag returns the retention tag of a backup taken at t whose
// predecessor (the latest earlier backup of the same instance, zero for
// none) was taken at prev: the tag of the matching criterion of highest
// priority (lowest Priority; the first listed among equals), else the
// default criterion's tag, else DefaultTag. loc is the policy's time zone
// (nil: UTC).
func ChooseTag(tagging []Tagging, t, prev time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	if !prev.IsZero() {
		prev = prev.In(loc)
	}
	order := make([]int, 0, len(tagging))
	def := DefaultTag
	for i, tc := range tagging {
		if tc.IsDefault {
			def = tc.Tag
			continue
		}
		order = append(order, i)
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(tagging[a].Priority, tagging[b].Priority) })
	for _, i := range order {
		for _, c := range tagging[i].Criteria {
			if c.matches(t, prev) {
				return tagging[i].Tag
			}
		}
	}
	return def
}

func (c Criteria) matches(t, prev time.Time) bool {
	if len(c.Absolute)+len(c.DaysOfWeek)+len(c.WeeksOfMonth)+len(c.MonthsOfYear)+len(c.DaysOfMonth) == 0 {
		return false
	}
	if len(c.Absolute) > 0 && !slices.ContainsFunc(c.Absolute, func(a string) bool { return firstOf(a, t, prev) }) {
		return false
	}
	if len(c.DaysOfWeek) > 0 && !slices.Contains(c.DaysOfWeek, t.Weekday()) {
		return false
	}
	if len(c.MonthsOfYear) > 0 && !slices.Contains(c.MonthsOfYear, t.Month()) {
		return false
	}
	y, m, d := t.Date()
	last := daysIn(y, m)
	if len(c.WeeksOfMonth) > 0 && !slices.ContainsFunc(c.WeeksOfMonth, func(w string) bool {
		switch w {
		case "First", "Second", "Third", "Fourth":
			n := slices.Index([]string{"First", "Second", "Third", "Fourth"}, w)
			return (d-1)/7 == n
		case "Last":
			return d > last-7
		}
		return false
	}) {
		return false
	}
	if len(c.DaysOfMonth) > 0 && !slices.ContainsFunc(c.DaysOfMonth, func(n int) bool { return n == d || n == 0 && d == last }) {
		return false
	}
	return true
}

// firstOf reports whether t is the first backup of its period by the
// absolute criterion a, given the previous backup's time prev (both in the
// policy's time zone).
func firstOf(a string, t, prev time.Time) bool {
	if a == AllBackup {
		return true
	}
	if prev.IsZero() {
		return a == FirstOfDay || a == FirstOfWeek || a == FirstOfMonth || a == FirstOfYear
	}
	ty, tm, td := t.Date()
	py, pm, pd := prev.Date()
	switch a {
	case FirstOfDay:
		return ty != py || tm != pm || td != pd
	case FirstOfWeek:
		return weekOf(t) != weekOf(prev)
	case FirstOfMonth:
		return ty != py || tm != pm
	case FirstOfYear:
		return ty != py
	}
	return false
}

// weekOf numbers the Sunday-to-Saturday week of t's calendar date.
func weekOf(t time.Time) int64 {
	y, m, d := t.Date()
	days := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400 // days since 1970-01-01, a Thursday
	return floorDiv(days+4, 7)
}

// Expiry returns when a backup taken at t expires when its retention rule
// keeps it for keep, counted on the calendar of the policy's time zone loc
// (nil: UTC): P1M after Jan 31 is Feb 28 or 29, P1D keeps the wall-clock
// time across a DST change.
func Expiry(t time.Time, keep Duration, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	return keep.AddTo(t.In(loc))
}
