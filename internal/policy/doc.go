// Package policy implements the time arithmetic of backup policies as the
// Azure Backup REST API (Microsoft.DataProtection 2024-04-01) expresses them:
// ISO 8601 durations (retention P7D, P12W, P3M, P10Y), ISO 8601 repeating
// intervals (schedule R/2021-08-01T06:30:00+00:00/P1W) and the policy's time
// zone (an IANA name or a Windows time zone ID such as
// "W. Europe Standard Time").
//
// The package is pure: it does no I/O besides loading time zone data through
// the standard library (with time/tzdata embedded as a fallback), never reads
// the clock, and has no mutable package state. Error messages are lower case,
// name the offending input and part, and are meant to be shown to API users.
//
// # Syntax
//
// Parsing is strict. Designators ("P", "T", "Y", "M", "W", "D", "H", "S",
// "R", "Z" and the date-time "T") must be upper case; lower-case input is
// rejected, with a did-you-mean hint when the upper-case form is valid.
// Duration values are non-negative integers (leading zeros are allowed,
// fractions such as PT1.5H are rejected: use PT90M) and each part spans at
// most 10 000 years (P10000Y, P120000M, P521775W, P3652425D, PT87658200H,
// PT5259492000M, PT315569520000S). The start of a repeating interval is an
// RFC 3339 date-time with a mandatory offset ("Z", "+00:00", "-08:00");
// Azure's documented variants without seconds (2023-10-15T14:30Z) and with
// fractional seconds (2023-10-15T14:30:45.123+05:30) are accepted as well.
//
// # Calendar arithmetic
//
// Years and months move the calendar month and clamp the day to the month's
// last day (Jan 31 + P1M = Feb 28 or 29, Feb 29 + P1Y = Feb 28); weeks and
// days move the calendar date and keep the wall-clock time, across DST
// changes; hours, minutes and seconds are elapsed time. The parts are applied
// in that order, largest first.
//
// When a wall-clock time does not exist because of a DST gap (02:30 on the
// day clocks jump from 02:00 to 03:00), it is moved forward by the length of
// the gap (03:30, the instant 02:30 would be with the offset before the
// change). When a wall-clock time occurs twice because clocks are set back,
// the earlier instant is used. This is the behaviour of java.time, RFC 5545
// (iCalendar) and JavaScript Temporal's "compatible" disambiguation.
//
// Occurrences of a repeating interval are always computed from its start
// (start + k·period), so month-end schedules do not drift: Jan 31 + 2·P1M is
// Mar 31, not Mar 28. Occurrences after the end of year 9999, the last
// instant RFC 3339 can express, are never reported.
package policy

import _ "time/tzdata" // zones work on hosts without a zoneinfo database
