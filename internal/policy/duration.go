package policy

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Duration is an ISO 8601 duration PnYnMnWnDTnHnMnS with non-negative
// integer fields, as ParseDuration returns it. Fields are kept as written
// (P2W stays P2W, PT36H stays PT36H); the zero value is the empty duration.
type Duration struct{ Years, Months, Weeks, Days, Hours, Minutes, Seconds int }

// maxInputLen bounds the length of the strings ParseDuration and
// ParseRepeatingInterval accept, and how much of a rejected input is quoted in
// an error message.
const maxInputLen = 100

// A unit is one designator of a duration, in the order ISO 8601 requires.
type unit struct {
	designator byte
	name       string
	time       bool  // after "T"
	max        int64 // 10 000 years of this unit (3 652 425 days)
}

// units is an immutable lookup table, indexed like durationField.
var units = [...]unit{
	{'Y', "years", false, 10000},
	{'M', "months", false, 120000},
	{'W', "weeks", false, 521775},
	{'D', "days", false, 3652425},
	{'H', "hours", true, 87658200},
	{'M', "minutes", true, 5259492000},
	{'S', "seconds", true, 315569520000},
}

// field returns a pointer to the field of d that units[i] describes.
func (d *Duration) field(i int) *int {
	switch i {
	case 0:
		return &d.Years
	case 1:
		return &d.Months
	case 2:
		return &d.Weeks
	case 3:
		return &d.Days
	case 4:
		return &d.Hours
	case 5:
		return &d.Minutes
	default:
		return &d.Seconds
	}
}

// ParseDuration parses an ISO 8601 duration such as P7D, P12W, P3M, P10Y,
// PT4H or P1Y2M10DT2H30M.
//
// The syntax is strict: "P" first, date parts (Y, M, W, D) then "T" then time
// parts (H, M, S), each designator at most once and in that order, at least
// one part, no "T" without a time part. Designators are upper case only.
// Values are non-negative integers (leading zeros are allowed; signs,
// fractions and exponents are not) of at most 10 000 years per part (and at
// most math.MaxInt32 on 32-bit platforms). Errors look like
//
//	invalid duration "P1H": "H" (hours) must come after "T" (e.g. PT1H)
func ParseDuration(s string) (Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return Duration{}, fmt.Errorf("invalid duration %s: %w", quoteInput(s), err)
	}
	return d, nil
}

// parseDuration is ParseDuration without the "invalid duration" prefix, so
// that ParseRepeatingInterval can wrap the reason in its own message.
func parseDuration(s string) (Duration, error) {
	d, err := parseDurationCase(s)
	if err != nil && strings.ContainsFunc(s, isLowerASCII) {
		upper := strings.Map(func(r rune) rune {
			if isLowerASCII(r) {
				return r - 'a' + 'A'
			}
			return r
		}, s)
		if _, uerr := parseDurationCase(upper); uerr == nil {
			return Duration{}, fmt.Errorf("designators must be upper case (did you mean %q?)", upper)
		}
	}
	return d, err
}

func parseDurationCase(s string) (Duration, error) {
	switch {
	case s == "":
		return Duration{}, errors.New("empty (want e.g. P7D or PT4H)")
	case len(s) > maxInputLen:
		return Duration{}, fmt.Errorf("too long (%d bytes, at most %d)", len(s), maxInputLen)
	case s[0] == '-':
		return Duration{}, errors.New("negative durations are not allowed")
	case s[0] == '+':
		return Duration{}, errors.New(`sign "+" is not allowed`)
	case s[0] != 'P':
		return Duration{}, errors.New(`must start with "P" (e.g. P7D or PT4H)`)
	case len(s) == 1:
		return Duration{}, errors.New(`has no parts after "P" (want e.g. P7D or PT4H)`)
	}
	var d Duration
	inTime := false // "T" seen
	timeParts := 0  // parts after "T"
	last := -1      // index in units of the previous part
	var seen [len(units)]bool
	for i := 1; i < len(s); {
		if s[i] == 'T' {
			if inTime {
				return Duration{}, errors.New(`"T" appears more than once`)
			}
			inTime = true
			i++
			continue
		}
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		num := s[start:i]
		if num == "" {
			c := s[i]
			switch {
			case c == '-':
				return Duration{}, errors.New("negative values are not allowed")
			case c == '+':
				return Duration{}, errors.New(`sign "+" is not allowed`)
			case strings.IndexByte("YMWDHS", c) >= 0:
				return Duration{}, fmt.Errorf("designator %q has no number before it", string(c))
			default:
				return Duration{}, fmt.Errorf("unexpected character %s at offset %d", quoteChar(s, i), i)
			}
		}
		if i == len(s) {
			return Duration{}, fmt.Errorf("number %s at the end has no designator (e.g. P%sD)", num, num)
		}
		c := s[i]
		if c == '.' || c == ',' {
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			return Duration{}, fmt.Errorf("fractional value %q is not supported (use a smaller unit, e.g. PT90M instead of PT1.5H)", s[start:j])
		}
		u := unitIndex(c, inTime)
		if u < 0 {
			switch {
			case !inTime && (c == 'H' || c == 'S'):
				return Duration{}, fmt.Errorf(`"%c" (%s) must come after "T" (e.g. PT%s%c)`, c, unitName(c, true), num, c)
			case inTime && (c == 'Y' || c == 'W' || c == 'D'):
				return Duration{}, fmt.Errorf(`"%c" (%s) must come before "T" (e.g. P%s%c)`, c, unitName(c, false), num, c)
			default:
				return Duration{}, fmt.Errorf("unexpected character %s after number %s at offset %d (want one of %s)", quoteChar(s, i), num, i, designatorsFor(inTime))
			}
		}
		if seen[u] {
			return Duration{}, fmt.Errorf(`"%c" (%s) appears more than once`, units[u].designator, units[u].name)
		}
		if u < last {
			return Duration{}, fmt.Errorf(`"%c" (%s) must come before "%c" (%s)`, units[u].designator, units[u].name, units[last].designator, units[last].name)
		}
		limit := min(units[u].max, math.MaxInt)
		var v int64
		for j := 0; j < len(num); j++ {
			v = v*10 + int64(num[j]-'0')
			if v > limit {
				return Duration{}, fmt.Errorf("%s value %s exceeds the maximum of %d", units[u].name, trimZeros(num), limit)
			}
		}
		*d.field(u) = int(v)
		seen[u] = true
		last = u
		if inTime {
			timeParts++
		}
		i++
	}
	if inTime && timeParts == 0 {
		return Duration{}, errors.New(`"T" must be followed by at least one of H, M or S (e.g. PT4H)`)
	}
	return d, nil
}

// unitIndex returns the index in units of designator c, or -1.
func unitIndex(c byte, inTime bool) int {
	for i, u := range units {
		if u.designator == c && u.time == inTime {
			return i
		}
	}
	return -1
}

// unitName names designator c on the given side of "T".
func unitName(c byte, inTime bool) string {
	if i := unitIndex(c, inTime); i >= 0 {
		return units[i].name
	}
	return "?"
}

func designatorsFor(inTime bool) string {
	if inTime {
		return "H, M, S"
	}
	return `Y, M, W, D or "T"`
}

// String returns d in the canonical form ParseDuration accepts: the non-zero
// parts in ISO 8601 order, "T" only before time parts, and "P0D" for the zero
// duration. ParseDuration(d.String()) == d for every d ParseDuration returns.
// Negative fields (which ParseDuration never produces) are written with a
// sign and do not parse back.
func (d Duration) String() string {
	if d.IsZero() {
		return "P0D"
	}
	b := make([]byte, 0, 24)
	b = append(b, 'P')
	timeStarted := false
	for i, u := range units {
		v := *d.field(i)
		if v == 0 {
			continue
		}
		if u.time && !timeStarted {
			b = append(b, 'T')
			timeStarted = true
		}
		b = strconv.AppendInt(b, int64(v), 10)
		b = append(b, u.designator)
	}
	return string(b)
}

// IsZero reports whether all fields of d are zero (P0D, PT0S, ...).
func (d Duration) IsZero() bool { return d == Duration{} }

// parts returns d as whole calendar months, calendar days and elapsed
// seconds. Fields outside the limits ParseDuration enforces are clamped to
// them, so the sums never overflow.
func (d Duration) parts() (months, days, seconds int64) {
	c := func(i int) int64 {
		m := units[i].max
		return max(-m, min(m, int64(*d.field(i))))
	}
	months = c(0)*12 + c(1)
	days = c(2)*7 + c(3)
	seconds = c(4)*3600 + c(5)*60 + c(6)
	return months, days, seconds
}

// positive reports whether d is a usable period: no negative field and not
// zero.
func (d Duration) positive() bool {
	for i := range units {
		if *d.field(i) < 0 {
			return false
		}
	}
	return !d.IsZero()
}

// AddTo returns t + d, computed in t's location: years and months move the
// calendar month, clamping the day to the month's last day (Jan 31 + P1M =
// Feb 28, or Feb 29 in a leap year; Feb 29 + P1Y = Feb 28); then weeks and
// days move the calendar date keeping the wall-clock time (so P1D is 23 or
// 25 hours across a DST change); then hours, minutes and seconds are added as
// elapsed time. A wall-clock time that falls into a DST gap is moved forward
// by the gap, an ambiguous one resolves to the earlier instant (see the
// package documentation). When d has no year, month, week or day part, AddTo
// is t.Add of the elapsed time.
func (d Duration) AddTo(t time.Time) time.Time {
	months, days, seconds := d.parts()
	return shift(t, months, days, seconds)
}

// Exceeds reports whether d is longer than limit when both are measured from
// from, that is whether d.AddTo(from) is after limit.AddTo(from). Durations of
// different units compare by the calendar: P1M exceeds P30D from January 1
// (Feb 1 is after Jan 31) but not from February 1, 2025 (Mar 1 is before
// Mar 3).
func (d Duration) Exceeds(limit Duration, from time.Time) bool {
	return d.AddTo(from).After(limit.AddTo(from))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isLowerASCII(r rune) bool { return 'a' <= r && r <= 'z' }

// trimZeros drops leading zeros of a digit string for error messages.
func trimZeros(num string) string {
	t := strings.TrimLeft(num, "0")
	if t == "" {
		return "0"
	}
	return t
}

// quoteChar quotes the character (or invalid byte) at offset i of s.
func quoteChar(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return strconv.QuoteRune(r)
}

// quoteInput quotes s for an error message, shortening it when it is longer
// than maxInputLen.
func quoteInput(s string) string {
	if len(s) <= maxInputLen {
		return strconv.Quote(s)
	}
	cut := maxInputLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
