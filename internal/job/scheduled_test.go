package job_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/schedule"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/testserver"
	"github.com/pgvault/pgvault/internal/vault"
)

// TestScheduledBackupsOncePerDueTime: without a worker, so that jobs stay
// as queued, the scheduler queues one job per due time, however often it
// ticks and from however many services on the store; nothing before the
// due time or for a due time before the instance existed; nothing while
// backups are suspended or protection is stopped; one catch-up for due
// times missed; and the next one only once the previous backup ended. The
// job says it is scheduled; the instance shows its next scheduled backup
// and its retention.
func TestScheduledBackupsOncePerDueTime(t *testing.T) {
	t.Parallel()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	clock := &simClock{t: time.Date(2025, 3, 4, 12, 0, 0, 0, loc)} // a Tuesday, after today's 03:30
	cluster := pgtest.Start(t, pgtest.Options{})
	e := &env{t: t, cluster: cluster}
	e.ts = testserver.Start(t, testserver.Options{Now: clock.Now})
	e.cl = e.ts.AdminClient()
	vs := map[string]string{"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"}
	e.instance = e.protectWith(cluster, "R/2025-03-02T03:30:00-05:00/P1W", "Eastern Standard Time", // Sundays 03:30
		[]any{
			map[string]any{"isDefault": true, "taggingPriority": 99, "tagInfo": map[string]string{"tagName": "Default"}},
			map[string]any{"isDefault": false, "taggingPriority": 15, "tagInfo": map[string]string{"tagName": "Monthly"},
				"criteria": []any{map[string]any{"objectType": "ScheduleBasedBackupCriteria", "absoluteCriteria": []string{"FirstOfMonth"}}}},
		},
		[]any{
			map[string]any{"name": "Default", "objectType": "AzureRetentionRule", "isDefault": true, "lifecycles": []any{map[string]any{
				"deleteAfter": map[string]string{"objectType": "AbsoluteDeleteOption", "duration": "P4W"}, "sourceDataStore": vs}}},
			map[string]any{"name": "Monthly", "objectType": "AzureRetentionRule", "isDefault": false, "lifecycles": []any{map[string]any{
				"deleteAfter": map[string]string{"objectType": "AbsoluteDeleteOption", "duration": "P6M"}, "sourceDataStore": vs}}},
		})
	ctx := context.Background()
	// A second service on the same store: another process.
	other, err := vault.New(ctx, vault.Config{Store: e.ts.Store, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tick := func(svc *vault.Service, at time.Time, want int) {
		t.Helper()
		clock.Set(at)
		res, err := schedule.Tick(ctx, svc, at)
		if err != nil || res.Queued != want {
			t.Fatalf("tick at %s: %+v, %v; want %d queued", at, res, err, want)
		}
	}
	sunday := time.Date(2025, 3, 9, 3, 30, 0, 0, loc) // DST begins at 02:00 that day
	tick(e.ts.Service, clock.Now(), 0)                // Sunday 2 March was due before the instance existed
	tick(e.ts.Service, sunday.Add(-time.Second), 0)
	tick(e.ts.Service, sunday, 1)
	tick(e.ts.Service, sunday.Add(time.Minute), 0)
	tick(other, sunday.Add(2*time.Minute), 0)

	js, err := e.ts.Store.JobList(ctx, store.JobListParams{Kind: vault.JobKindBackup})
	if err != nil || len(js) != 1 {
		t.Fatalf("backup jobs: %v, %v", js, err)
	}
	var j struct {
		Properties struct {
			IsUserTriggered bool   `json:"isUserTriggered"`
			Operation       string `json:"operation"`
			PolicyName      string `json:"policyName"`
			ExtendedInfo    struct {
				AdditionalDetails map[string]string `json:"additionalDetails"`
			} `json:"extendedInfo"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(e.do("GET", client.BackupJobPath(sub, "rg", "vault", js[0].ID), api, nil), &j); err != nil {
		t.Fatal(err)
	}
	if p := j.Properties; p.IsUserTriggered || p.Operation != "ScheduledBackup" || p.PolicyName != "pol" ||
		p.ExtendedInfo.AdditionalDetails["ScheduledFor"] != "2025-03-09T07:30:00Z" {
		t.Fatalf("the scheduled job: %+v", p)
	}

	// The next Sunday's backup waits while this one is queued, and is
	// queued once it ended.
	next := sunday.AddDate(0, 0, 7)
	tick(e.ts.Service, next, 0)
	finish(t, e.ts.Store, js[0].ID)
	tick(other, next.Add(time.Minute), 1)
	finish(t, e.ts.Store, newestBackup(t, e.ts.Store))

	// Suspended, stopped: nothing; resumed after three missed Sundays: one.
	e.do("POST", client.BackupInstancePath(sub, "rg", "vault", e.instance)+"/suspendBackups", api, nil)
	tick(e.ts.Service, next.AddDate(0, 0, 7), 0)
	e.do("POST", client.BackupInstancePath(sub, "rg", "vault", e.instance)+"/resumeBackups", api, nil)
	e.do("POST", client.BackupInstancePath(sub, "rg", "vault", e.instance)+"/stopProtection", api, nil)
	tick(e.ts.Service, next.AddDate(0, 0, 14), 0)
	e.do("POST", client.BackupInstancePath(sub, "rg", "vault", e.instance)+"/resumeProtection", api, nil)
	tick(e.ts.Service, next.AddDate(0, 0, 21).Add(5*time.Hour), 1)
	finish(t, e.ts.Store, newestBackup(t, e.ts.Store))
	tick(e.ts.Service, next.AddDate(0, 0, 21).Add(6*time.Hour), 0)

	// The instance shows its next backup and what retention keeps.
	var bi struct {
		Properties struct {
			Pgvault vault.InstanceExtension `json:"pgvault"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(e.do("GET", client.BackupInstancePath(sub, "rg", "vault", e.instance), api, nil), &bi); err != nil {
		t.Fatal(err)
	}
	ext := bi.Properties.Pgvault
	want := next.AddDate(0, 0, 28).UTC()
	if ext.NextScheduledBackup == nil || !ext.NextScheduledBackup.Equal(want) || ext.TimeZone != "America/New_York" ||
		len(ext.Retention) != 2 || ext.Retention[0].Tag != "Monthly" || ext.Retention[0].KeepFor != "P6M" ||
		ext.Retention[0].Criteria != "FirstOfMonth" || ext.Retention[1].Tag != "Default" || ext.Retention[1].KeepFor != "P4W" {
		t.Fatalf("the instance's extension: %+v (next %v, want %v)", ext, ext.NextScheduledBackup, want)
	}
}

// finish ends a queued backup job as a worker would, without a backup.
func finish(t *testing.T, st store.Store, id string) {
	t.Helper()
	ctx := context.Background()
	j, err := st.JobClaim(ctx, store.JobClaimParams{Owner: "test", Kinds: []string{vault.JobKindBackup}, Lease: time.Minute, Now: time.Now()})
	if err != nil || j.ID != id {
		t.Fatalf("claiming job %s: %v, %v", id, j, err)
	}
	if err := st.JobFinish(ctx, id, "test", store.JobFailed, nil, []byte(`{"code":"Test","message":"not run"}`), time.Now()); err != nil {
		t.Fatal(err)
	}
}

// newestBackup returns the ID of the newest backup job.
func newestBackup(t *testing.T, st store.Store) string {
	t.Helper()
	js, err := st.JobList(context.Background(), store.JobListParams{Kind: vault.JobKindBackup, Limit: 1})
	if err != nil || len(js) != 1 {
		t.Fatalf("the newest backup job: %v, %v", js, err)
	}
	return js[0].ID
}
