package policy

import (
	"testing"
	"time"
)

// azureTagging is the tagging of a policy with every tag, at Azure's
// default priorities.
var azureTagging = []Tagging{
	{Tag: "Default", Priority: 99, IsDefault: true},
	{Tag: "Weekly", Priority: 20, Criteria: []Criteria{{Absolute: []string{FirstOfWeek}}}},
	{Tag: "Monthly", Priority: 15, Criteria: []Criteria{{Absolute: []string{FirstOfMonth}}}},
	{Tag: "Yearly", Priority: 10, Criteria: []Criteria{{Absolute: []string{FirstOfYear}}}},
}

func TestChooseTag(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name     string
		tagging  []Tagging
		t, prev  string
		loc      *time.Location
		want     string
		zeroPrev bool
	}{
		{name: "first backup ever is first of its year", tagging: azureTagging, t: "2024-05-15T02:00:00Z", zeroPrev: true, want: "Yearly"},
		{name: "same day", tagging: azureTagging, t: "2024-05-15T14:00:00Z", prev: "2024-05-15T02:00:00Z", want: "Default"},
		{name: "Wednesday after Tuesday", tagging: azureTagging, t: "2024-05-15T02:00:00Z", prev: "2024-05-14T02:00:00Z", want: "Default"},
		{name: "Sunday after Saturday", tagging: azureTagging, t: "2024-05-19T02:00:00Z", prev: "2024-05-18T02:00:00Z", want: "Weekly"},
		{name: "Monday after Saturday (Sunday missed)", tagging: azureTagging, t: "2024-05-20T02:00:00Z", prev: "2024-05-18T02:00:00Z", want: "Weekly"},
		{name: "Monday after Sunday", tagging: azureTagging, t: "2024-05-20T02:00:00Z", prev: "2024-05-19T02:00:00Z", want: "Default"},
		{name: "first of month on a Sunday: Monthly wins", tagging: azureTagging, t: "2024-09-01T02:00:00Z", prev: "2024-08-31T02:00:00Z", want: "Monthly"},
		{name: "New Year: Yearly wins", tagging: azureTagging, t: "2023-01-01T02:00:00Z", prev: "2022-12-31T02:00:00Z", want: "Yearly"},
		// 23:30 UTC on Saturday 2024-05-18 is Sunday 01:30 in Berlin.
		{name: "week judged in the policy's zone", tagging: azureTagging, t: "2024-05-18T23:30:00Z", prev: "2024-05-17T23:30:00Z", loc: berlin, want: "Weekly"},
		{name: "same week in UTC", tagging: azureTagging, t: "2024-05-18T23:30:00Z", prev: "2024-05-17T23:30:00Z", want: "Default"},
		{name: "year judged in the policy's zone", tagging: azureTagging, t: "2023-12-31T23:30:00Z", prev: "2023-12-30T23:30:00Z", loc: berlin, want: "Yearly"},
		{name: "priority, not order, decides", tagging: []Tagging{
			{Tag: "Weekly", Priority: 5, Criteria: []Criteria{{Absolute: []string{FirstOfWeek}}}},
			{Tag: "Monthly", Priority: 15, Criteria: []Criteria{{Absolute: []string{FirstOfMonth}}}},
			{Tag: "Default", Priority: 99, IsDefault: true},
		}, t: "2024-09-01T02:00:00Z", prev: "2024-08-31T02:00:00Z", want: "Weekly"},
		{name: "days of the week", tagging: []Tagging{{Tag: "Weekly", Priority: 20, Criteria: []Criteria{{DaysOfWeek: []time.Weekday{time.Friday}}}}},
			t: "2024-05-17T02:00:00Z", prev: "2024-05-16T02:00:00Z", want: "Weekly"},
		{name: "first week of a month and a weekday", tagging: []Tagging{{Tag: "Monthly", Priority: 15, Criteria: []Criteria{{DaysOfWeek: []time.Weekday{time.Sunday}, WeeksOfMonth: []string{"First"}}}}},
			t: "2024-05-05T02:00:00Z", prev: "2024-05-04T02:00:00Z", want: "Monthly"},
		{name: "second week does not match First", tagging: []Tagging{{Tag: "Monthly", Priority: 15, Criteria: []Criteria{{DaysOfWeek: []time.Weekday{time.Sunday}, WeeksOfMonth: []string{"First"}}}}},
			t: "2024-05-12T02:00:00Z", prev: "2024-05-11T02:00:00Z", want: "Default"},
		{name: "last week of the month", tagging: []Tagging{{Tag: "Monthly", Priority: 15, Criteria: []Criteria{{WeeksOfMonth: []string{"Last"}, DaysOfWeek: []time.Weekday{time.Friday}}}}},
			t: "2024-02-23T02:00:00Z", prev: "2024-02-22T02:00:00Z", want: "Monthly"},
		{name: "months of the year and first of month", tagging: []Tagging{{Tag: "Yearly", Priority: 10, Criteria: []Criteria{{Absolute: []string{FirstOfMonth}, MonthsOfYear: []time.Month{time.July}}}}},
			t: "2024-07-01T02:00:00Z", prev: "2024-06-30T02:00:00Z", want: "Yearly"},
		{name: "last day of the month", tagging: []Tagging{{Tag: "Monthly", Priority: 15, Criteria: []Criteria{{DaysOfMonth: []int{0}}}}},
			t: "2024-02-29T02:00:00Z", prev: "2024-02-28T02:00:00Z", want: "Monthly"},
		{name: "criteria are alternatives", tagging: []Tagging{{Tag: "Weekly", Priority: 20, Criteria: []Criteria{{DaysOfMonth: []int{3}}, {DaysOfWeek: []time.Weekday{time.Wednesday}}}}},
			t: "2024-05-15T02:00:00Z", prev: "2024-05-14T02:00:00Z", want: "Weekly"},
		{name: "AllBackup", tagging: []Tagging{{Tag: "Weekly", Priority: 20, Criteria: []Criteria{{Absolute: []string{AllBackup}}}}},
			t: "2024-05-15T14:00:00Z", prev: "2024-05-15T02:00:00Z", want: "Weekly"},
		{name: "FirstOfDay", tagging: []Tagging{{Tag: "Weekly", Priority: 20, Criteria: []Criteria{{Absolute: []string{FirstOfDay}}}}},
			t: "2024-05-15T14:00:00Z", prev: "2024-05-15T02:00:00Z", want: "Default"},
		{name: "no default criterion", tagging: nil, t: "2024-05-15T02:00:00Z", zeroPrev: true, want: "Default"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var prev time.Time
			if !c.zeroPrev {
				prev = at(c.prev)
			}
			if got := ChooseTag(c.tagging, at(c.t), prev, c.loc); got != c.want {
				t.Errorf("ChooseTag = %s, want %s", got, c.want)
			}
		})
	}
}

// TestWeekOf: weeks begin on Sunday, before and after 1970.
func TestWeekOf(t *testing.T) {
	for d := time.Date(1969, 12, 1, 12, 0, 0, 0, time.UTC); d.Year() < 1971; d = d.AddDate(0, 0, 1) {
		next := d.AddDate(0, 0, 1)
		if (weekOf(next) != weekOf(d)) != (next.Weekday() == time.Sunday) {
			t.Fatalf("weekOf(%s) = %d, weekOf(%s) = %d", d.Format("Mon 2006-01-02"), weekOf(d), next.Format("Mon 2006-01-02"), weekOf(next))
		}
	}
}

func TestExpiry(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	for _, c := range []struct {
		t, keep, want string
		loc           *time.Location
	}{
		{"2024-01-31T02:00:00Z", "P1M", "2024-02-29T02:00:00Z", nil},
		{"2024-02-29T02:00:00Z", "P1Y", "2025-02-28T02:00:00Z", nil},
		{"2024-03-30T01:00:00Z", "P7D", "2024-04-06T00:00:00Z", berlin}, // 02:00 CET, then 02:00 CEST
		{"2024-05-15T02:00:00Z", "P12W", "2024-08-07T02:00:00Z", nil},
	} {
		at, _ := time.Parse(time.RFC3339, c.t)
		want, _ := time.Parse(time.RFC3339, c.want)
		if got := Expiry(at, mustDuration(t, c.keep), c.loc); !got.Equal(want) {
			t.Errorf("Expiry(%s, %s) = %s, want %s", c.t, c.keep, got.UTC(), c.want)
		}
	}
}
