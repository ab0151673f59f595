package policy

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Unbounded is the Repetitions of an interval written "R/": it repeats
// forever (until the end of year 9999).
const Unbounded = -1

// maxRepetitions bounds n in "Rn".
const maxRepetitions = 1_000_000_000

// exampleInterval and exampleStart appear in error messages.
const (
	exampleInterval = "R/2021-08-01T06:30:00+00:00/P1W"
	exampleStart    = "2021-08-01T06:30:00+00:00"
)

// RepeatingInterval is an ISO 8601 repeating interval R[n]/<start>/<period>,
// the form of a backup schedule's repeatingTimeIntervals.
type RepeatingInterval struct {
	// Repetitions is the number of occurrences: n for "Rn" (R0 has none, R1
	// only Start), Unbounded (-1) for "R".
	Repetitions int
	// Start is the first occurrence, with the offset it was written with.
	Start time.Time
	// Period is the time between occurrences; ParseRepeatingInterval
	// guarantees it is not zero.
	Period Duration
}

// ParseRepeatingInterval parses a repeating interval such as
// R/2021-08-01T06:30:00+00:00/P1W or R10/2024-01-07T23:00:00Z/P1D.
//
// It accepts exactly three "/"-separated parts: "R" (unbounded) or "Rn" with
// 0 <= n <= 1e9; the start, an RFC 3339 date-time with an offset ("Z" or
// ±hh:mm), optionally without seconds or with fractional seconds as Azure
// documents; and a non-zero period in ParseDuration's syntax. The ISO 8601
// forms with an end (<start>/<end>, <period>/<end>) are not supported. Errors
// say which part is wrong, e.g.
//
//	invalid repeating interval "R/2021-08-01/P1W": start "2021-08-01" is not a date-time with a time zone offset (want e.g. 2021-08-01T06:30:00+00:00)
func ParseRepeatingInterval(s string) (RepeatingInterval, error) {
	ri, err := parseRepeatingInterval(s)
	if err != nil {
		return RepeatingInterval{}, fmt.Errorf("invalid repeating interval %s: %w", quoteInput(s), err)
	}
	return ri, nil
}

func parseRepeatingInterval(s string) (RepeatingInterval, error) {
	if s == "" {
		return RepeatingInterval{}, fmt.Errorf("empty (want R[n]/<start>/<period>, e.g. %s)", exampleInterval)
	}
	if len(s) > maxInputLen {
		return RepeatingInterval{}, fmt.Errorf("too long (%d bytes, at most %d)", len(s), maxInputLen)
	}
	parts := strings.Split(s, "/")
	reps, err := parseRepetitions(parts[0])
	if err != nil {
		return RepeatingInterval{}, err
	}
	switch {
	case len(parts) == 1:
		return RepeatingInterval{}, fmt.Errorf(`missing "/<start>/<period>" after %q (want e.g. %s)`, parts[0], exampleInterval)
	case len(parts) == 2 && strings.HasPrefix(parts[1], "P"):
		return RepeatingInterval{}, fmt.Errorf("missing start before period %s (want e.g. %s)", quoteInput(parts[1]), exampleInterval)
	case len(parts) == 2:
		return RepeatingInterval{}, fmt.Errorf(`missing "/<period>" after start %s (want e.g. %s)`, quoteInput(parts[1]), exampleInterval)
	case len(parts) > 3:
		return RepeatingInterval{}, fmt.Errorf(`has %d "/"-separated parts, want 3: R[n]/<start>/<period> (e.g. %s)`, len(parts), exampleInterval)
	}
	startStr, periodStr := parts[1], parts[2]
	if startStr == "" {
		return RepeatingInterval{}, fmt.Errorf("start is empty (want a date-time such as %s)", exampleStart)
	}
	if strings.HasPrefix(startStr, "P") {
		return RepeatingInterval{}, fmt.Errorf("start %s is a duration: the <period>/<end> form is not supported (want R[n]/<start>/<period>, e.g. %s)", quoteInput(startStr), exampleInterval)
	}
	start, err := parseStart(startStr)
	if err != nil {
		return RepeatingInterval{}, err
	}
	if periodStr == "" {
		return RepeatingInterval{}, errors.New("period is empty (want a duration such as P1W or P1D)")
	}
	if isDigit(periodStr[0]) {
		return RepeatingInterval{}, fmt.Errorf("period %s is not a duration: the <start>/<end> form is not supported (want a duration such as P1W or P1D)", quoteInput(periodStr))
	}
	period, err := parseDuration(periodStr)
	if err != nil {
		return RepeatingInterval{}, fmt.Errorf("period %s: %w", quoteInput(periodStr), err)
	}
	if period.IsZero() {
		return RepeatingInterval{}, fmt.Errorf("period %q must not be zero", periodStr)
	}
	return RepeatingInterval{Repetitions: reps, Start: start, Period: period}, nil
}

// parseRepetitions parses "R" or "Rn".
func parseRepetitions(p string) (int, error) {
	switch {
	case p == "":
		return 0, fmt.Errorf(`repetitions are empty (want "R" or "R<n>" first, e.g. %s)`, exampleInterval)
	case p[0] == 'r':
		return 0, fmt.Errorf(`repetitions %s: "R" must be upper case`, quoteInput(p))
	case p[0] != 'R':
		return 0, fmt.Errorf(`missing repetitions: want "R" or "R<n>" before %s (e.g. %s)`, quoteInput(p), exampleInterval)
	case p == "R":
		return Unbounded, nil
	}
	n := p[1:]
	if n[0] == '-' {
		return 0, fmt.Errorf("repetitions %s are negative", quoteInput(p))
	}
	var v int64
	for i := 0; i < len(n); i++ {
		if !isDigit(n[i]) {
			return 0, fmt.Errorf(`repetitions %s: want "R" or "R<n>" with a non-negative integer n`, quoteInput(p))
		}
	}
	for i := 0; i < len(n); i++ {
		v = v*10 + int64(n[i]-'0')
		if v > maxRepetitions {
			return 0, fmt.Errorf("repetitions %s exceed the maximum of %d", quoteInput(p), maxRepetitions)
		}
	}
	return int(v), nil
}

// parseStart parses the start of a repeating interval:
// YYYY-MM-DDThh:mm[:ss[.fraction]] followed by "Z" or ±hh:mm.
func parseStart(s string) (time.Time, error) {
	q := quoteInput(s)
	notDateTime := fmt.Errorf("start %s is not a date-time with a time zone offset (want e.g. %s)", q, exampleStart)
	num := func(p string) (int, bool) {
		v := 0
		for i := 0; i < len(p); i++ {
			if !isDigit(p[i]) {
				return 0, false
			}
			v = v*10 + int(p[i]-'0')
		}
		return v, true
	}
	// Date.
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return time.Time{}, notDateTime
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, notDateTime
	}
	rest := s[10:]
	switch {
	case rest == "":
		return time.Time{}, notDateTime
	case rest[0] == 't':
		return time.Time{}, fmt.Errorf(`start %s: the "T" between date and time must be upper case`, q)
	case rest[0] != 'T':
		return time.Time{}, fmt.Errorf(`start %s: want "T" between date and time (e.g. %s)`, q, exampleStart)
	}
	rest = rest[1:]
	// Time: hh:mm, then optional :ss and .fraction.
	if len(rest) < 5 || rest[2] != ':' {
		return time.Time{}, notDateTime
	}
	hour, ok1 := num(rest[0:2])
	minute, ok2 := num(rest[3:5])
	if !ok1 || !ok2 {
		return time.Time{}, notDateTime
	}
	rest = rest[5:]
	sec, nsec := 0, 0
	if rest != "" && rest[0] == ':' {
		if len(rest) < 3 {
			return time.Time{}, notDateTime
		}
		var ok bool
		if sec, ok = num(rest[1:3]); !ok {
			return time.Time{}, notDateTime
		}
		rest = rest[3:]
		if rest != "" && (rest[0] == '.' || rest[0] == ',') {
			j := 1
			for j < len(rest) && isDigit(rest[j]) {
				j++
			}
			digits := rest[1:j]
			switch {
			case rest[0] == ',':
				return time.Time{}, fmt.Errorf(`start %s: use "." for fractional seconds`, q)
			case digits == "":
				return time.Time{}, notDateTime
			case len(digits) > 9:
				return time.Time{}, fmt.Errorf("start %s: fractional seconds have more than 9 digits", q)
			}
			nsec, _ = num(digits)
			for range 9 - len(digits) {
				nsec *= 10
			}
			rest = rest[j:]
		}
	}
	// Offset.
	var offset int
	switch {
	case rest == "":
		return time.Time{}, fmt.Errorf("start %s has no time zone offset (want e.g. %s or Z)", q, exampleStart)
	case rest == "Z":
	case rest == "z":
		return time.Time{}, fmt.Errorf(`start %s: the "Z" offset must be upper case`, q)
	case (rest[0] == '+' || rest[0] == '-') && len(rest) == 6 && rest[3] == ':':
		oh, ok1 := num(rest[1:3])
		om, ok2 := num(rest[4:6])
		if !ok1 || !ok2 {
			return time.Time{}, notDateTime
		}
		if oh > 23 || om > 59 {
			return time.Time{}, fmt.Errorf("start %s: offset %s is out of range", q, rest)
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, fmt.Errorf(`start %s: offset %s is not "Z" or ±hh:mm (want e.g. %s)`, q, quoteInput(rest), exampleStart)
	}
	// Ranges.
	switch {
	case year < 1:
		return time.Time{}, fmt.Errorf("start %s: year 0000 is out of range", q)
	case month < 1 || month > 12:
		return time.Time{}, fmt.Errorf("start %s: month %02d is out of range", q, month)
	case day < 1 || day > daysIn(year, time.Month(month)):
		return time.Time{}, fmt.Errorf("start %s: day %02d is out of range for %s %04d", q, day, time.Month(month), year)
	case hour > 23:
		return time.Time{}, fmt.Errorf("start %s: hour %02d is out of range", q, hour)
	case minute > 59:
		return time.Time{}, fmt.Errorf("start %s: minute %02d is out of range", q, minute)
	case sec == 60:
		return time.Time{}, fmt.Errorf("start %s: leap seconds are not supported", q)
	case sec > 59:
		return time.Time{}, fmt.Errorf("start %s: second %02d is out of range", q, sec)
	}
	loc := time.UTC
	if offset != 0 {
		loc = time.FixedZone("", offset)
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), nil
}

// String returns ri in the form ParseRepeatingInterval accepts, with the
// start written as YYYY-MM-DDThh:mm:ss[.fraction]±hh:mm ("+00:00" for UTC,
// as Azure writes it). Every value ParseRepeatingInterval returns
// round-trips; a hand-built Start whose offset is not a whole number of
// minutes is written with the offset truncated to minutes.
func (ri RepeatingInterval) String() string {
	var b strings.Builder
	b.WriteByte('R')
	if ri.Repetitions >= 0 {
		b.WriteString(strconv.Itoa(ri.Repetitions))
	}
	b.WriteByte('/')
	b.WriteString(formatStart(ri.Start))
	b.WriteByte('/')
	b.WriteString(ri.Period.String())
	return b.String()
}

func formatStart(t time.Time) string {
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	return fmt.Sprintf("%s%c%02d:%02d", t.Format("2006-01-02T15:04:05.999999999"), sign, off/3600, off/60%60)
}

// Occurrence returns the k-th occurrence (k = 0 is Start): Start expressed
// in loc, plus k times Period computed in one step from Start (so month-end
// schedules do not drift: R/2024-01-31T.../P1M has Mar 31 as occurrence 2),
// with the wall-clock time in loc kept across DST changes as Duration.AddTo
// describes. A nil loc means UTC.
//
// Occurrence does not check Repetitions. A negative k extends the pattern
// backwards. Results beyond year 9999 are not meaningful (k·Period is clamped
// to a million years) but Occurrence never panics.
func (ri RepeatingInterval) Occurrence(k int, loc *time.Location) time.Time {
	return ri.occurrence(int64(k), loc)
}

func (ri RepeatingInterval) occurrence(k int64, loc *time.Location) time.Time {
	o := ri.occurrences(loc)
	return o.at(k)
}

// occurrenceFunc computes occurrences of one interval in one location,
// sharing the work that does not depend on k.
type occurrenceFunc struct {
	start                 time.Time // Start in loc
	wall                  wall      // start's wall clock, if calendar parts
	months, days, seconds int64     // Period
}

func (ri RepeatingInterval) occurrences(loc *time.Location) occurrenceFunc {
	if loc == nil {
		loc = time.UTC
	}
	o := occurrenceFunc{start: ri.Start.In(loc)}
	o.months, o.days, o.seconds = ri.Period.parts()
	if o.months != 0 || o.days != 0 {
		o.wall = wallOf(o.start)
	}
	return o
}

func (o *occurrenceFunc) at(k int64) time.Time {
	if k == 0 {
		return o.start
	}
	return shiftFrom(o.start, o.wall,
		mulClamp(k, o.months, maxShiftMonths),
		mulClamp(k, o.days, maxShiftDays),
		mulClamp(k, o.seconds, maxShiftSeconds))
}

// Next returns the first occurrence strictly after after, in loc (nil means
// UTC). It reports false when there is none: the repetitions are exhausted,
// or the next occurrence would fall after the end of year 9999. A Period that
// is zero or has a negative field (which ParseRepeatingInterval never
// returns) yields only the occurrence at Start.
//
// Next costs a handful of Occurrence computations however far after lies
// from Start: it estimates the index from the average length of Period and
// corrects the estimate by an exponential then binary search.
func (ri RepeatingInterval) Next(after time.Time, loc *time.Location) (time.Time, bool) {
	_, t, ok := ri.nextIndex(after, loc)
	return t, ok
}

// Latest returns the last occurrence at or before t, in loc (nil means
// UTC); false when there is none (t is before Start, or R0). It is the due
// time of a schedule whose occurrences up to t were all missed. As for
// Next, occurrences after the end of year 9999 do not exist.
func (ri RepeatingInterval) Latest(t time.Time, loc *time.Location) (time.Time, bool) {
	if ri.Repetitions == 0 {
		return time.Time{}, false
	}
	if t.Unix() > maxUnix {
		t = time.Unix(maxUnix, 999_999_999)
	}
	o := ri.occurrences(loc)
	if o.start.After(t) {
		return time.Time{}, false
	}
	if k, _, ok := ri.nextIndex(t, loc); ok {
		return o.at(k - 1), true // k > 0: occurrence 0 is not after t
	}
	if !ri.Period.positive() {
		return o.start, true
	}
	// No occurrence after t: the answer is the last one at all. Gallop and
	// bisect for the largest k with occurrence k at or before t.
	// Occurrences are clamped to a million years, so the gallop ends long
	// before k overflows.
	limit := int64(math.MaxInt64)
	if ri.Repetitions > 0 {
		limit = int64(ri.Repetitions) - 1
	}
	lo, hi := int64(0), int64(-1) // occurrence lo <= t; occurrence hi > t, or hi == limit+1
	for step := int64(1); hi < 0; step *= 2 {
		switch k := lo + step; {
		case k > limit:
			hi = limit + 1
		case o.at(k).After(t):
			hi = k
		default:
			lo = k
		}
	}
	for hi-lo > 1 {
		if m := lo + (hi-lo)/2; o.at(m).After(t) {
			hi = m
		} else {
			lo = m
		}
	}
	return o.at(lo), true
}

// nextIndex returns the smallest k with Occurrence(k) after after, within the
// repetitions and before the end of year 9999, and that occurrence.
func (ri RepeatingInterval) nextIndex(after time.Time, loc *time.Location) (int64, time.Time, bool) {
	if ri.Repetitions == 0 {
		return 0, time.Time{}, false
	}
	o := ri.occurrences(loc)
	first := o.start
	if first.Unix() > maxUnix {
		return 0, time.Time{}, false
	}
	if first.After(after) {
		return 0, first, true
	}
	if !ri.Period.positive() || after.Unix() > maxUnix {
		return 0, time.Time{}, false
	}
	months, days, seconds := o.months, o.days, o.seconds
	// kMax: an index whose occurrence is surely past the end of year 9999.
	// k calendar days last at least k days minus the largest offset change
	// (well under three days); k months at least 28·k days.
	minLen := months*28*86400 + days*86400 + seconds
	kMax := (maxUnix-first.Unix()+3*86400)/minLen + 1
	if ri.Repetitions > 0 {
		kMax = min(kMax, int64(ri.Repetitions)-1)
	}
	if kMax < 1 {
		return 0, time.Time{}, false
	}
	// Invariants: occurrence(lo) <= after; hi == kMax+1 (none found yet) or
	// occurrence(hi) == hiT > after.
	lo, hi := int64(0), kMax+1
	var hiT time.Time
	// above computes occurrence k and, when it is after after, records it as
	// the new hi.
	above := func(k int64) bool {
		t := o.at(k)
		if t.After(after) {
			hi, hiT = k, t
			return true
		}
		lo = k
		return false
	}
	// Estimate from the average length of Period (2629746 s is a twelfth of
	// the mean Gregorian year), then gallop towards the answer.
	avgLen := float64(months)*2629746 + float64(days)*86400 + float64(seconds)
	est := math.Floor(float64(after.Unix()-first.Unix())/avgLen) + 1
	k := int64(max(1, min(float64(kMax), est)))
	if !above(k) {
		for step := int64(1); lo < kMax; step *= 2 {
			if above(min(lo+step, kMax)) {
				break
			}
		}
	} else {
		for step := int64(1); hi-step > lo; step *= 2 {
			if !above(hi - step) {
				break
			}
		}
	}
	for hi-lo > 1 {
		above(lo + (hi-lo)/2)
	}
	if hi > kMax || hiT.Unix() > maxUnix {
		return 0, time.Time{}, false
	}
	return hi, hiT, true
}
