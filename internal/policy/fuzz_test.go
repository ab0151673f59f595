package policy

import (
	"strings"
	"testing"
	"time"
)

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{
		"P7D", "P12W", "P3M", "P10Y", "PT4H", "P1Y2M3W4DT5H6M7S", "P0D", "PT0S", "P007D",
		"P10000Y", "PT315569520000S", "P99999999999Y", "PT99999999999999999999S",
		"", "P", "PT", "P1DT", "P1H", "PT1D", "P1D1Y", "P1D1D", "P1.5D", "PT1,5H", "-P1D", "P-1D",
		"p7d", "P7d", "P1", "PD", "P1E3D", "P7D ", "P\xff", "PTT1H", "P1M1M", "PT1M1M",
	} {
		f.Add(s)
	}
	from := []time.Time{
		time.Date(2024, 1, 31, 6, 30, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC),
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != (Duration{}) {
				t.Fatalf("ParseDuration(%q) = %#v with error %v", s, d, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid duration ") || msg != strings.ToValidUTF8(msg, "") {
				t.Fatalf("ParseDuration(%q): bad error message %q", s, msg)
			}
			return
		}
		str := d.String()
		back, err := ParseDuration(str)
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %#v; String %q parses to %#v, %v", s, d, str, back, err)
		}
		if back.String() != str {
			t.Fatalf("String not canonical: %q then %q", str, back.String())
		}
		for _, f := range []int{d.Years, d.Months, d.Weeks, d.Days, d.Hours, d.Minutes, d.Seconds} {
			if f < 0 {
				t.Fatalf("ParseDuration(%q) = %#v has a negative field", s, d)
			}
		}
		if d.IsZero() != (str == "P0D") {
			t.Fatalf("IsZero() = %v for %q", d.IsZero(), str)
		}
		for _, t0 := range from {
			got := d.AddTo(t0)
			if got.Before(t0) {
				t.Fatalf("%s.AddTo(%s) = %s is before the start", str, t0, got)
			}
			if d.Exceeds(d, t0) {
				t.Fatalf("%s exceeds itself", str)
			}
			if !d.IsZero() && !d.Exceeds(Duration{}, t0) {
				t.Fatalf("%s does not exceed P0D from %s", str, t0)
			}
		}
	})
}

// fuzzZones are the locations the repeating-interval fuzzer picks from: UTC,
// DST zones on both hemispheres, half-hour and 45-minute offsets, a
// 30-minute DST shift and Samoa's skipped day (2011-12-30).
var fuzzZones = []string{
	"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Apia",
	"Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", "America/Santiago",
}

func FuzzParseRepeatingInterval(f *testing.F) {
	for _, s := range []string{
		"R/2021-08-01T06:30:00+00:00/P1W",
		"R/2024-01-07T23:00:00+00:00/P1D",
		"R/2024-01-07T23:00:00Z/PT4H",
		"R5/2024-03-09T02:30:00-05:00/P1D",
		"R3/2024-10-26T02:30:00+02:00/P1D",
		"R/2024-01-31T10:00:00+00:00/P1M",
		"R/2024-02-29T00:00:00Z/P1Y",
		"R/2011-12-28T12:00:00-10:00/P1D",
		"R/2023-10-15T14:30Z/P1D",
		"R/2023-10-15T14:30:45.123+05:30/P1DT1H",
		"R0/2024-01-07T23:00:00Z/P1D",
		"R1000000000/0001-01-01T00:00:00Z/PT1S",
		"R/9999-12-31T23:59:59Z/P1D",
		"R/2021-08-01/P1W",
		"R/2021-08-01T06:30:00/P1W",
		"R/2021-08-01T06:30:00+00:00/2021-09-01T06:30:00+00:00",
		"R/P1W/2021-09-01T06:30:00+00:00",
		"R/2021-08-01T06:30:00+00:00/P1W/",
		"r/2021-08-01T06:30:00+00:00/p1w",
		"", "R", "R//", "R-1/x/P1D",
	} {
		f.Add(s, int64(0), uint8(0))
		f.Add(s, int64(86400*1000+1), uint8(2))
		f.Add(s, int64(-3600), uint8(1))
	}
	locs := make([]*time.Location, len(fuzzZones))
	for i, z := range fuzzZones {
		locs[i] = mustLoad(f, z)
	}
	f.Fuzz(func(t *testing.T, s string, delta int64, zone uint8) {
		ri, err := ParseRepeatingInterval(s)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid repeating interval ") || msg != strings.ToValidUTF8(msg, "") {
				t.Fatalf("ParseRepeatingInterval(%q): bad error message %q", s, msg)
			}
			return
		}
		str := ri.String()
		back, err := ParseRepeatingInterval(str)
		if err != nil || !sameInterval(back, ri) || back.String() != str {
			t.Fatalf("ParseRepeatingInterval(%q) = %v; String %q parses to %v, %v", s, ri, str, back, err)
		}
		if ri.Period.IsZero() || ri.Repetitions < Unbounded {
			t.Fatalf("ParseRepeatingInterval(%q) = %#v", s, ri)
		}
		checkNext(t, ri, locs[int(zone)%len(locs)], delta)
	})
}

// checkNext checks Next(after) for an after derived from delta: against a
// brute-force scan of the first occurrences when after is among them, and
// for consistency otherwise.
func checkNext(t *testing.T, ri RepeatingInterval, loc *time.Location, delta int64) {
	t.Helper()
	const scan = 64
	occs := make([]time.Time, 0, scan)
	for k := range scan {
		if ri.Repetitions >= 0 && k >= ri.Repetitions {
			break
		}
		occ := ri.Occurrence(k, loc)
		if occ.Unix() > maxUnix {
			break
		}
		occs = append(occs, occ)
	}
	first := ri.Occurrence(0, loc)
	// One after near the first occurrences, one anywhere (delta as seconds).
	afters := []time.Time{first.Add(time.Duration(delta)), time.Unix(first.Unix()+delta/7, delta%1e9)}
	if n := len(occs); n > 1 {
		span := occs[n-1].Sub(occs[0]) + 2*time.Second
		if span > 0 {
			afters = append(afters, occs[0].Add(time.Duration(delta)%span-time.Second))
		}
	}
	for _, after := range afters {
		got, ok := ri.Next(after, loc)
		k, kt, kok := ri.nextIndex(after, loc)
		if ok != kok || !got.Equal(kt) {
			t.Fatalf("%s: Next and nextIndex disagree", ri)
		}
		// Brute force over the scanned occurrences.
		bruteK := -1
		for i, occ := range occs {
			if occ.After(after) {
				bruteK = i
				break
			}
		}
		exhausted := len(occs) < scan // occs holds every occurrence
		checkLatest(t, ri, loc, after, occs, bruteK, exhausted, ok, k)
		switch {
		case bruteK >= 0:
			if !ok || int64(bruteK) != k || !got.Equal(occs[bruteK]) {
				t.Fatalf("%s in %s: Next(%s) = %s, %v (k=%d), brute force says %s (k=%d)",
					ri, loc, after.Format(time.RFC3339Nano), got, ok, k, occs[bruteK], bruteK)
			}
		case exhausted:
			if ok {
				t.Fatalf("%s in %s: Next(%s) = %s (k=%d), but all %d occurrences are at or before it",
					ri, loc, after.Format(time.RFC3339Nano), got, k, len(occs))
			}
		case ok:
			// Beyond the scan: got must be the occurrence k, after after,
			// with occurrence k-1 at or before after.
			if !got.After(after) || !ri.occurrence(k, loc).Equal(got) || ri.occurrence(k-1, loc).After(after) {
				t.Fatalf("%s in %s: Next(%s) = %s (k=%d) is not the first occurrence after it",
					ri, loc, after.Format(time.RFC3339Nano), got, k)
			}
			if ri.Repetitions >= 0 && k >= int64(ri.Repetitions) {
				t.Fatalf("%s: Next returned occurrence %d beyond the repetitions", ri, k)
			}
		case ri.Repetitions > 0:
			// None: the last occurrence is at or before after, or past
			// the end of year 9999.
			last := ri.Occurrence(ri.Repetitions-1, loc)
			if last.After(after) && last.Unix() <= maxUnix {
				t.Fatalf("%s in %s: Next(%s) found nothing, but occurrence %d is %s",
					ri, loc, after.Format(time.RFC3339Nano), ri.Repetitions-1, last)
			}
		case ri.Repetitions < 0:
			// None: the next occurrence must be past the end of year 9999.
			// Occurrences are at most a period apart (31-day months, plus
			// two days for offset changes).
			months, days, seconds := ri.Period.parts()
			maxGap := months*31*86400 + days*86400 + seconds + 2*86400
			if !after.Before(first) && after.Unix() < maxUnix-maxGap {
				t.Fatalf("%s in %s: Next(%s) found nothing", ri, loc, after.Format(time.RFC3339Nano))
			}
			if after.Before(first) && first.Unix() <= maxUnix {
				t.Fatalf("%s in %s: Next(%s) found nothing before the start", ri, loc, after.Format(time.RFC3339Nano))
			}
		}
		if ok && got.Location() != loc {
			t.Fatalf("Next returned a time in %v, want %v", got.Location(), loc)
		}
	}
}

// checkLatest checks Latest(after) against the brute-force index of Next
// (bruteK, -1 for none among occs) or, beyond the scan, against Next.
func checkLatest(t *testing.T, ri RepeatingInterval, loc *time.Location, after time.Time, occs []time.Time, bruteK int, exhausted, nextOK bool, nextK int64) {
	t.Helper()
	latest, ok := ri.Latest(after, loc)
	var want time.Time
	wantOK := false
	switch {
	case bruteK > 0:
		want, wantOK = occs[bruteK-1], true
	case bruteK == 0:
	case exhausted && len(occs) > 0:
		want, wantOK = occs[len(occs)-1], true
	case exhausted:
	case nextOK:
		want, wantOK = ri.occurrence(nextK-1, loc), nextK > 0
	default:
		if ok && latest.After(after) {
			t.Fatalf("%s in %s: Latest(%s) = %s is after it", ri, loc, after.Format(time.RFC3339Nano), latest)
		}
		return
	}
	if ok != wantOK || ok && !latest.Equal(want) {
		t.Fatalf("%s in %s: Latest(%s) = %s, %v; want %s, %v", ri, loc, after.Format(time.RFC3339Nano), latest, ok, want, wantOK)
	}
}

// FuzzNext drives Next with structured intervals rather than strings, so
// that the fuzzer explores periods, starts, zones and instants directly.
func FuzzNext(f *testing.F) {
	f.Add(int64(1627799400), int16(0), int32(-1), uint64(0), uint64(0), uint64(1), uint64(0), uint64(0), uint64(0), uint64(0), uint8(1), int64(86400*365*20))
	f.Add(int64(1704668400), int16(0), int32(-1), uint64(0), uint64(0), uint64(0), uint64(1), uint64(0), uint64(0), uint64(0), uint8(2), int64(-1))
	f.Add(int64(1706695200), int16(60), int32(10), uint64(0), uint64(1), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint8(2), int64(86400*40))
	f.Add(int64(1325000000), int16(-600), int32(-1), uint64(0), uint64(0), uint64(0), uint64(1), uint64(1), uint64(0), uint64(0), uint8(4), int64(86400*5))
	f.Add(int64(-62135596800), int16(0), int32(-1), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(1), uint8(3), int64(1<<62))
	locs := make([]*time.Location, len(fuzzZones))
	for i, z := range fuzzZones {
		locs[i] = mustLoad(f, z)
	}
	f.Fuzz(func(t *testing.T, startUnix int64, offsetMin int16, reps int32, y, mo, w, d, h, mi, s uint64, zone uint8, delta int64) {
		p := Duration{
			Years:   int(y % uint64(units[0].max+1)),
			Months:  int(mo % uint64(units[1].max+1)),
			Weeks:   int(w % uint64(units[2].max+1)),
			Days:    int(d % uint64(units[3].max+1)),
			Hours:   int(h % uint64(units[4].max+1)),
			Minutes: int(mi % uint64(units[5].max+1)),
			Seconds: int(s % uint64(units[6].max+1)),
		}
		if p.IsZero() {
			p.Seconds = 1
		}
		// Starts within years 0001..9999, offsets within ±23:59.
		const minUnix = -62135596800
		startUnix = minUnix + int64(uint64(startUnix)%uint64(maxUnix-minUnix+1))
		off := int(offsetMin) % (24 * 60) * 60
		start := time.Unix(startUnix, 0).In(time.FixedZone("", off))
		if start.Year() < 1 || start.Year() > 9999 {
			return
		}
		if reps < Unbounded {
			reps = Unbounded
		}
		reps %= maxRepetitions + 1
		ri := RepeatingInterval{Repetitions: int(reps), Start: start, Period: p}
		back, err := ParseRepeatingInterval(ri.String())
		if err != nil || !sameInterval(back, ri) {
			t.Fatalf("%s does not round-trip: %v, %v", ri, back, err)
		}
		checkNext(t, ri, locs[int(zone)%len(locs)], delta)
	})
}
