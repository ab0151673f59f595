package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/policy"
	"github.com/pgvault/pgvault/internal/store"
)

// backupRule returns a policy's AzureBackupRule (validation guarantees one).
func backupRule(pol *Policy) (*PolicyRule, error) {
	for i := range pol.Properties.PolicyRules {
		if r := &pol.Properties.PolicyRules[i]; r.ObjectType == ObjectBackupRule && r.Trigger != nil && r.Trigger.Schedule != nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("the policy %s has no scheduled backup rule", pol.ID)
}

// policySchedule returns when a policy's backups are due.
func policySchedule(pol *Policy) (policy.Schedule, error) {
	rule, err := backupRule(pol)
	if err != nil {
		return policy.Schedule{}, err
	}
	sc, err := policy.ParseSchedule(rule.Trigger.Schedule.RepeatingTimeIntervals, rule.Trigger.Schedule.TimeZone)
	if err != nil {
		return policy.Schedule{}, fmt.Errorf("while reading the schedule of policy %s: %w", pol.ID, err)
	}
	return sc, nil
}

// policyTagging returns a policy's tagging criteria in policy's terms.
func policyTagging(rule *PolicyRule) []policy.Tagging {
	var out []policy.Tagging
	for _, tc := range rule.Trigger.TaggingCriteria {
		if tc.TagInfo == nil {
			continue
		}
		t := policy.Tagging{Tag: tc.TagInfo.TagName, IsDefault: tc.IsDefault != nil && *tc.IsDefault}
		if tc.TaggingPriority != nil {
			t.Priority = *tc.TaggingPriority
		}
		for _, c := range tc.Criteria {
			pc := policy.Criteria{Absolute: c.AbsoluteCriteria, WeeksOfMonth: c.WeeksOfTheMonth}
			for _, d := range c.DaysOfTheWeek {
				if i := slices.Index(weekDays, d); i >= 0 {
					pc.DaysOfWeek = append(pc.DaysOfWeek, time.Weekday(i))
				}
			}
			for _, m := range c.MonthsOfYear {
				if i := slices.Index(months, m); i >= 0 {
					pc.MonthsOfYear = append(pc.MonthsOfYear, time.Month(i+1))
				}
			}
			for _, d := range c.DaysOfMonth {
				switch {
				case d.IsLast != nil && *d.IsLast:
					pc.DaysOfMonth = append(pc.DaysOfMonth, 0)
				case d.Date != nil:
					pc.DaysOfMonth = append(pc.DaysOfMonth, int(*d.Date))
				}
			}
			t.Criteria = append(t.Criteria, pc)
		}
		out = append(out, t)
	}
	return out
}

// retentionOf returns how long a policy's retention rule named tag keeps
// a recovery point in the vault store; false when the rule is missing.
func retentionOf(pol *Policy, tag string) (policy.Duration, bool) {
	for _, r := range pol.Properties.PolicyRules {
		if r.ObjectType != ObjectRetentionRule || !strings.EqualFold(r.Name, tag) {
			continue
		}
		for _, lc := range r.Lifecycles {
			if lc.DeleteAfter == nil {
				continue
			}
			d, err := policy.ParseDuration(lc.DeleteAfter.Duration)
			if err == nil {
				return d, true
			}
		}
	}
	return policy.Duration{}, false
}

// tagRecoveryPoint gives a recovery point of an instance, taken at its
// RecoveryPointTime, its retention tag (override, else the policy's
// tagging criteria judged against the instance's previous recovery point)
// and the expiry time of that tag's retention rule.
func (s *Service) tagRecoveryPoint(ctx context.Context, pol *Policy, instanceID, override string, rp *RecoveryPoint) error {
	rule, err := backupRule(pol)
	if err != nil {
		return err
	}
	sc, err := policySchedule(pol)
	if err != nil {
		return err
	}
	tag := override
	if tag == "" {
		prev, err := s.previousRecoveryPoint(ctx, instanceID, rp.RecoveryPointTime)
		if err != nil {
			return err
		}
		tag = policy.ChooseTag(policyTagging(rule), rp.RecoveryPointTime, prev, sc.Location)
	}
	rp.RetentionTagName = tag
	if keep, ok := retentionOf(pol, tag); ok {
		exp := policy.Expiry(rp.RecoveryPointTime, keep, sc.Location).UTC()
		rp.ExpiryTime = &exp
		for i := range rp.RecoveryPointDataStoresDetails {
			rp.RecoveryPointDataStoresDetails[i].ExpiryTime = &exp
		}
	}
	return nil
}

// previousRecoveryPoint returns the time of the instance's latest recovery
// point before t (zero for none).
func (s *Service) previousRecoveryPoint(ctx context.Context, instanceID string, t time.Time) (time.Time, error) {
	rs, err := s.store.ResourceList(ctx, store.ListParams{Type: TypeRecoveryPoint, Parent: instanceID})
	if err != nil {
		return time.Time{}, storeErr("listing recovery points", err)
	}
	var prev time.Time
	for _, r := range rs {
		rp, err := decodeRecoveryPoint(r)
		if err != nil {
			return time.Time{}, err
		}
		if at := rp.Properties.RecoveryPointTime; at.Before(t) && at.After(prev) {
			prev = at
		}
	}
	return prev, nil
}

// ScheduledKey is the idempotency key of the scheduled backup of an
// instance due at a time: the store's uniqueness of keys makes each due
// time produce one job, across restarts and processes sharing the store.
func ScheduledKey(instanceID string, due time.Time) string {
	return "scheduled:" + strings.ToLower(instanceID) + ":" + due.UTC().Format(time.RFC3339)
}

// QueueDueBackups queues the scheduled backups due at now: for every
// instance whose protection is configured (not suspended, not stopped),
// the latest due time of its policy's schedule at or before now, if it is
// not before the instance was created, gets one backup job keyed by
// ScheduledKey. Due times missed while no pgvault ran collapse into that
// latest one: one catch-up backup, not one per missed time. An instance
// whose previous backup is still queued or running gets its job on a
// later call, once that one ended. It returns the number of jobs queued.
func (s *Service) QueueDueBackups(ctx context.Context, now time.Time) (int, error) {
	rs, err := s.store.ResourceList(ctx, store.ListParams{Type: TypeBackupInstance})
	if err != nil {
		return 0, storeErr("listing backup instances", err)
	}
	policies := map[string]*Policy{}
	n := 0
	var errs []error
	for _, r := range rs {
		bi, err := decodeInstance(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if bi.Properties.CurrentProtectionState != ProtectionConfigured || bi.Properties.PolicyInfo == nil {
			continue
		}
		pol, ok := policies[strings.ToLower(bi.Properties.PolicyInfo.PolicyID)]
		if !ok {
			if pol, err = s.policyByID(ctx, bi.Properties.PolicyInfo.PolicyID); err != nil {
				errs = append(errs, err)
				continue
			}
			policies[strings.ToLower(pol.ID)] = pol
		}
		due, ok, err := dueTime(pol, bi, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		rule, _ := backupRule(pol)
		ds := bi.Properties.DataSourceInfo
		in := BackupJobInput{InstanceID: bi.ID, VaultID: r.Parent, ServerID: ds.ResourceID, PolicyID: pol.ID, RuleName: rule.Name,
			InstanceName: bi.Name, ServerName: ds.ResourceName, ServerLocation: ds.ResourceLocation, PolicyName: pol.Name, ScheduledFor: &due}
		_, err = s.queueBackup(ctx, r.Subscription, in, ScheduledKey(bi.ID, due))
		switch {
		case errors.Is(err, store.ErrAlreadyExists):
			// Queued before (by this process or another), or the previous
			// backup is still running: a later call queues it.
		case err != nil:
			errs = append(errs, err)
		default:
			n++
			s.log.Info("queued a scheduled backup", "instance", bi.ID, "due", due)
		}
	}
	return n, errors.Join(errs...)
}

// dueTime returns the latest due time of an instance's schedule at or
// before now, if the instance existed then.
func dueTime(pol *Policy, bi *BackupInstanceResource, now time.Time) (time.Time, bool, error) {
	sc, err := policySchedule(pol)
	if err != nil {
		return time.Time{}, false, err
	}
	due, ok := sc.Latest(now)
	if !ok || bi.SystemData != nil && due.Before(bi.SystemData.CreatedAt) {
		return time.Time{}, false, nil
	}
	return due.UTC(), true, nil
}

// ExpireRecoveryPoints deletes the recovery points whose expiry time is at
// or before now, and queues a prune of each vault that lost one so that
// their data leaves the repository. It returns the number deleted.
func (s *Service) ExpireRecoveryPoints(ctx context.Context, now time.Time) (int, error) {
	rs, err := s.store.ResourceList(ctx, store.ListParams{Type: TypeRecoveryPoint})
	if err != nil {
		return 0, storeErr("listing recovery points", err)
	}
	n := 0
	vaults := map[string]string{} // lower-case ID -> ID
	var errs []error
	for _, r := range rs {
		rp, err := decodeRecoveryPoint(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		exp := rp.Properties.ExpiryTime
		if exp == nil || exp.After(now) {
			continue
		}
		if err := s.DeleteRecoveryPoint(ctx, r.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
		vaultID := r.ID[:strings.Index(strings.ToLower(r.ID), "/backupinstances/")]
		vaults[strings.ToLower(vaultID)] = vaultID
		s.log.Info("a recovery point expired", "recoveryPoint", r.ID, "tag", rp.Properties.RetentionTagName, "expiry", exp)
	}
	for _, id := range vaults {
		if _, err := s.QueuePrune(ctx, id, "recovery points expired"); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// InstanceExtension is pgvault's extension of a backup instance's
// properties: when its next scheduled backup is due and what its policy's
// retention keeps.
type InstanceExtension struct {
	// NextScheduledBackup is the next due time of the policy's schedule
	// (absent unless protection is configured).
	NextScheduledBackup *time.Time `json:"nextScheduledBackup,omitempty"`
	// TimeZone is the policy's time zone, in which schedules and tagging
	// criteria are judged.
	TimeZone string `json:"timeZone"`
	// Retention lists the policy's retention rules in tagging priority
	// order, each with the live recovery points it keeps.
	Retention []RetentionSummary `json:"retention"`
}

// RetentionSummary is one retention rule as it applies to an instance.
type RetentionSummary struct {
	Tag string `json:"tag"`
	// Criteria says which backups the tag selects, e.g. "FirstOfWeek" or
	// "every backup no other tag selects".
	Criteria string `json:"criteria"`
	// KeepFor is the rule's ISO 8601 duration, e.g. P12W.
	KeepFor string `json:"keepFor"`
	// RecoveryPoints counts the instance's live recovery points with the tag.
	RecoveryPoints int `json:"recoveryPoints"`
	// Oldest is the time of the oldest of them.
	Oldest *time.Time `json:"oldest,omitempty"`
}

// describeInstance decodes a stored instance and adds its extension. An
// instance whose policy cannot be read is returned without one.
func (s *Service) describeInstance(ctx context.Context, r *store.Resource) (*BackupInstanceResource, error) {
	bi, err := decodeInstance(r)
	if err != nil || bi.Properties.PolicyInfo == nil {
		return bi, err
	}
	pol, err := s.policyByID(ctx, bi.Properties.PolicyInfo.PolicyID)
	if err != nil {
		return bi, nil
	}
	rule, err := backupRule(pol)
	if err != nil {
		return bi, nil
	}
	sc, err := policySchedule(pol)
	if err != nil {
		return bi, nil
	}
	ext := &InstanceExtension{TimeZone: sc.Location.String(), Retention: []RetentionSummary{}}
	if bi.Properties.CurrentProtectionState == ProtectionConfigured {
		if next, ok := sc.Next(s.nowUTC()); ok {
			next = next.UTC()
			ext.NextScheduledBackup = &next
		}
	}
	rps, err := s.store.ResourceList(ctx, store.ListParams{Type: TypeRecoveryPoint, Parent: bi.ID})
	if err != nil {
		return nil, storeErr("listing recovery points", err)
	}
	tagging := policyTagging(rule)
	slices.SortStableFunc(tagging, func(a, b policy.Tagging) int {
		if a.IsDefault != b.IsDefault { // the default tag applies last
			if a.IsDefault {
				return 1
			}
			return -1
		}
		return int(min(max(a.Priority-b.Priority, -1), 1))
	})
	for _, tg := range tagging {
		keep, _ := retentionOf(pol, tg.Tag)
		sum := RetentionSummary{Tag: tg.Tag, KeepFor: keep.String(), Criteria: describeCriteria(tg)}
		for _, r := range rps {
			rp, err := decodeRecoveryPoint(r)
			if err != nil {
				return nil, err
			}
			if !strings.EqualFold(rp.Properties.RetentionTagName, tg.Tag) {
				continue
			}
			sum.RecoveryPoints++
			if at := rp.Properties.RecoveryPointTime; sum.Oldest == nil || at.Before(*sum.Oldest) {
				sum.Oldest = &at
			}
		}
		ext.Retention = append(ext.Retention, sum)
	}
	bi.Properties.Pgvault = ext
	return bi, nil
}

// describeCriteria says in a few words which backups a tag selects.
func describeCriteria(tg policy.Tagging) string {
	if tg.IsDefault {
		return "every backup no other tag selects"
	}
	var alts []string
	for _, c := range tg.Criteria {
		var parts []string
		parts = append(parts, c.Absolute...)
		for _, d := range c.DaysOfWeek {
			parts = append(parts, d.String())
		}
		parts = append(parts, c.WeeksOfMonth...)
		for _, m := range c.MonthsOfYear {
			parts = append(parts, m.String())
		}
		for _, d := range c.DaysOfMonth {
			if d == 0 {
				parts = append(parts, "last day of month")
			} else {
				parts = append(parts, fmt.Sprintf("day %d", d))
			}
		}
		alts = append(alts, strings.Join(parts, " and "))
	}
	return strings.Join(alts, ", or ")
}
