package policy

import "time"

// Bounds on the arguments of shift: a million years of each unit. They keep
// every intermediate value of time.Date and time.Unix far from overflow (years
// up to about ±1e6) whatever the caller passes.
const (
	maxShiftMonths  = 12_000_000
	maxShiftDays    = 366_000_000
	maxShiftSeconds = 31_600_000_000_000
)

// maxUnix is 9999-12-31T23:59:59Z, the last second RFC 3339 can express.
// Schedules report no occurrence after it.
const maxUnix = 253402300799

// wall is a wall-clock reading: what a clock in some location shows.
type wall struct {
	year                            int
	month                           time.Month
	day, hour, minute, second, nsec int
}

func wallOf(t time.Time) wall {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return wall{y, mo, d, h, mi, s, t.Nanosecond()}
}

// shift returns t moved by whole calendar months (day clamped to the target
// month's length), then whole calendar days (keeping the wall-clock time in
// t's location, see resolveWall), then elapsed seconds. Arguments are clamped
// to a million years.
func shift(t time.Time, months, days, seconds int64) time.Time {
	if months == 0 && days == 0 {
		return shiftFrom(t, wall{}, 0, 0, seconds)
	}
	return shiftFrom(t, wallOf(t), months, days, seconds)
}

// shiftFrom is shift with t's wall clock w computed by the caller (it is not
// used when months and days are zero).
func shiftFrom(t time.Time, w wall, months, days, seconds int64) time.Time {
	months = clamp(months, maxShiftMonths)
	days = clamp(days, maxShiftDays)
	seconds = clamp(seconds, maxShiftSeconds)
	loc := t.Location()
	if months != 0 || days != 0 {
		m := int64(w.year)*12 + int64(w.month-1) + months
		y := floorDiv(m, 12)
		mon := time.Month(m-y*12) + 1
		day := min(w.day, daysIn(int(y), mon))
		t = resolveWall(int(y), mon, day+int(days), w.hour, w.minute, w.second, w.nsec, loc)
	}
	if seconds != 0 {
		t = time.Unix(t.Unix()+seconds, int64(t.Nanosecond())).In(loc)
	}
	return t
}

// resolveWall returns the instant at which the wall clock in loc shows the
// given date and time (out-of-range fields are normalized as by time.Date).
//
// Unlike time.Date, whose choice is unspecified, it resolves the two
// irregular cases deterministically: a wall-clock time in a gap (clocks
// jumping forward) is interpreted with the offset in effect before the gap,
// which moves it forward by the gap's length (02:30 becomes 03:30 when clocks
// jump from 02:00 to 03:00); a wall-clock time in a fold (clocks set back)
// resolves to the earlier of its two instants.
func resolveWall(year int, month time.Month, day, hour, minute, sec, nsec int, loc *time.Location) time.Time {
	naive := time.Date(year, month, day, hour, minute, sec, nsec, time.UTC)
	if loc == time.UTC {
		return naive
	}
	w := naive.Unix() // the wall clock read as if it were UTC
	// The offsets in effect a day before and a day after cover both sides of
	// any transition near w (real zones never change twice within two days).
	before := offsetAt(w-86400, loc)
	after := offsetAt(w+86400, loc)
	c1, c2 := w-int64(before), w-int64(after)
	ok1 := offsetAt(c1, loc) == before
	if before == after && ok1 {
		return time.Unix(c1, int64(naive.Nanosecond())).In(loc) // no transition nearby
	}
	ok2 := offsetAt(c2, loc) == after
	var u int64
	switch {
	case ok1 && ok2:
		u = min(c1, c2) // fold
	case ok1:
		u = c1
	case ok2:
		u = c2
	default:
		u = c1 // gap: the offset from before the transition
	}
	return time.Unix(u, int64(naive.Nanosecond())).In(loc)
}

// offsetAt returns loc's UTC offset in seconds at the given Unix time.
func offsetAt(unix int64, loc *time.Location) int {
	_, off := time.Unix(unix, 0).In(loc).Zone()
	return off
}

// daysIn returns the number of days of month in year.
func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// clamp limits v to [-limit, limit].
func clamp(v, limit int64) int64 { return max(-limit, min(limit, v)) }

// mulClamp returns a*b limited to [-limit, limit], without overflowing.
func mulClamp(a, b, limit int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	neg := (a < 0) != (b < 0)
	ua, ub := absU(a), absU(b)
	r := uint64(limit)
	if ua <= uint64(limit)/ub {
		r = min(ua*ub, uint64(limit))
	}
	if neg {
		return -int64(r)
	}
	return int64(r)
}

func absU(v int64) uint64 {
	if v < 0 {
		return uint64(-(v + 1)) + 1
	}
	return uint64(v)
}
