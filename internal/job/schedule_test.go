package job_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/schedule"
	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/mem"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/testserver"
	"github.com/pgvault/pgvault/internal/vault"
)

// simClock is a clock the test moves by hand.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// oraclePoint is a backup as the oracle sees it.
type oraclePoint struct {
	at     time.Time
	tag    string
	expiry time.Time
}

// oracleTag tags a daily backup by the calendar, independently of
// internal/policy: the first backup of a year (in the policy's zone) is
// Yearly, else the first of a month Monthly, else the first of a week
// (weeks begin on Sunday) Weekly, else Default; and it keeps it 5 years,
// 12 months, 12 weeks or 7 days.
func oracleTag(at time.Time, prev *oraclePoint, loc *time.Location) oraclePoint {
	l := at.In(loc)
	// Keep the wall-clock time; in the hour a DST change repeats, the
	// earlier instant (as internal/policy documents).
	add := func(y, m, d int) time.Time { return earlierInstant(l.AddDate(y, m, d)) }
	p := oraclePoint{at: at, tag: "Default", expiry: add(0, 0, 7)}
	var pl time.Time
	if prev != nil {
		pl = prev.at.In(loc)
	}
	sunday := func(t time.Time) string { return t.AddDate(0, 0, -int(t.Weekday())).Format("2006-01-02") }
	switch {
	case prev == nil || pl.Year() != l.Year():
		p.tag, p.expiry = "Yearly", add(5, 0, 0)
	case pl.Month() != l.Month():
		p.tag, p.expiry = "Monthly", add(0, 12, 0)
	case sunday(pl) != sunday(l):
		p.tag, p.expiry = "Weekly", add(0, 0, 7*12)
	}
	return p
}

// earlierInstant returns, for a wall-clock time that a DST change repeats,
// its earlier instant (as internal/policy resolves it; time.Date may give
// either).
func earlierInstant(t time.Time) time.Time {
	if e := t.Add(-time.Hour); e.Hour() == t.Hour() && e.Minute() == t.Minute() {
		return e
	}
	return t
}

// TestTwoYearsOfDailyBackups is the retention simulation: a daily policy
// (02:00 in W. Europe Standard Time, through two DST changes a year) with
// Default 7 days, Weekly 12 weeks, Monthly 12 months and Yearly 5 years
// protects a tiny real database for two simulated years. Every simulated
// day the scheduler ticks a minute after the due time (one backup is
// queued and runs; weekly and around DST changes also a minute before,
// when nothing is due, and again after, when nothing is new); once pgvault is
// "down" for three days and comes back in the afternoon: one catch-up
// backup, not three. After each day the live recovery points (their
// times, tags and expiry times) must equal what an independent calendar
// oracle computes. Every 30 days a prune runs; the repository then holds
// exactly the live recovery points' snapshots, and its packs stay within
// docs/design.md's space bound of the live data.
func TestTwoYearsOfDailyBackups(t *testing.T) {
	if testing.Short() {
		t.Skip("two simulated years of backups: not in -short mode")
	}
	t.Parallel()
	begin := time.Now()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	clock := &simClock{t: time.Date(2023, 12, 31, 12, 0, 0, 0, loc)}
	// A tiny cluster: 1 MiB WAL segments, no template databases.
	cluster := pgtest.Start(t, pgtest.Options{InitDBArgs: []string{"--wal-segsize=1"}})
	cluster.Exec(t, "UPDATE pg_database SET datistemplate = false WHERE datname IN ('template0', 'template1')")
	cluster.Exec(t, "DROP DATABASE template0")
	cluster.Exec(t, "DROP DATABASE template1")
	cluster.Exec(t, "CREATE TABLE t (id int, v text)")
	conn := cluster.Connect(t)
	e := &env{t: t, cluster: cluster}
	// The repository lives in memory (storage/mem, a real backend): on
	// disk, two fsyncs per backup would triple the test's time, and the
	// format, hence the sizes measured, is the same on every backend.
	var repoStorage *mem.Mem
	e.ts = testserver.Start(t, testserver.Options{Jobs: true, Now: clock.Now,
		WrapRepoStorage: func(string, storage.Storage) storage.Storage {
			repoStorage = mem.New()
			return repoStorage
		},
		Prune: repo.PruneOptions{SafetyMargin: -1, Now: time.Now}})
	e.cl = e.ts.AdminClient()
	vs := map[string]string{"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"}
	crit := func(c string) []any {
		return []any{map[string]any{"objectType": "ScheduleBasedBackupCriteria", "absoluteCriteria": []string{c}}}
	}
	keep := func(name, d string) map[string]any {
		return map[string]any{"name": name, "objectType": "AzureRetentionRule", "isDefault": name == "Default", "lifecycles": []any{map[string]any{
			"deleteAfter": map[string]string{"objectType": "AbsoluteDeleteOption", "duration": d}, "sourceDataStore": vs}}}
	}
	e.instance = e.protectWith(cluster, "R/2024-01-01T02:00:00+01:00/P1D", "W. Europe Standard Time",
		[]any{
			map[string]any{"isDefault": true, "taggingPriority": 99, "tagInfo": map[string]string{"tagName": "Default"}},
			map[string]any{"isDefault": false, "taggingPriority": 20, "tagInfo": map[string]string{"tagName": "Weekly"}, "criteria": crit("FirstOfWeek")},
			map[string]any{"isDefault": false, "taggingPriority": 15, "tagInfo": map[string]string{"tagName": "Monthly"}, "criteria": crit("FirstOfMonth")},
			map[string]any{"isDefault": false, "taggingPriority": 10, "tagInfo": map[string]string{"tagName": "Yearly"}, "criteria": crit("FirstOfYear")},
		},
		[]any{keep("Default", "P7D"), keep("Weekly", "P12W"), keep("Monthly", "P12M"), keep("Yearly", "P5Y")})
	ctx := context.Background()
	instanceID := vault.BackupInstanceID(sub, "rg", "vault", e.instance)

	tick := func(at time.Time, wantQueued int) {
		t.Helper()
		clock.Set(at)
		res, err := schedule.Tick(ctx, e.ts.Service, at)
		if err != nil {
			t.Fatalf("tick at %s: %v", at, err)
		}
		if res.Queued != wantQueued {
			t.Fatalf("tick at %s queued %d backups, want %d", at, res.Queued, wantQueued)
		}
		waitIdle(t, e.ts.Store)
	}
	var oracle []oraclePoint
	record := func(at time.Time) {
		var prev *oraclePoint
		if len(oracle) > 0 {
			prev = &oracle[len(oracle)-1]
		}
		oracle = append(oracle, oracleTag(at, prev, loc))
	}
	var measured []string
	first := time.Date(2024, 1, 1, 0, 0, 0, 0, loc)
	days := 0
	backups := 0
	for d := first; d.Before(first.AddDate(2, 0, 0)); d = d.AddDate(0, 0, 1) {
		days++
		due := earlierInstant(time.Date(d.Year(), d.Month(), d.Day(), 2, 0, 0, 0, loc))
		// Change a little data every day.
		if _, err := conn.Exec(ctx, "INSERT INTO t SELECT g, md5(g::text || $1) FROM generate_series(1, 200) g", d.Format("20060102")); err != nil {
			t.Fatal(err)
		}
		switch off := d.Sub(first.AddDate(0, 0, 400)).Hours() / 24; {
		case off >= 0 && off < 3:
			continue // pgvault is down
		case off >= 3 && off < 4:
			// Back at 14:00: the three missed due times and this
			// morning's give one catch-up backup.
			at := due.Add(12 * time.Hour)
			tick(at, 1)
			record(at)
			backups++
			tick(at.Add(time.Minute), 0)
		default:
			// Weekly, and on the days of DST changes: nothing a minute
			// before the due time, nothing again a minute after it ran.
			_, offDue := due.Zone()
			_, offNext := due.AddDate(0, 0, 1).Zone()
			check := days%7 == 0 || offDue != offNext
			if check {
				tick(due.Add(-time.Minute), 0)
			}
			at := due.Add(time.Minute)
			tick(at, 1)
			record(at)
			backups++
			if check {
				tick(at.Add(time.Minute), 0)
			}
		}
		now := clock.Now()
		compareLive(t, e, instanceID, oracle, now)
		if days%30 == 0 || !d.AddDate(0, 0, 1).Before(first.AddDate(2, 0, 0)) {
			measured = append(measured, measureAfterPrune(t, e, repoStorage, now, oracle))
		}
	}
	t.Logf("%d simulated days, %d backups, in %v", days, backups, time.Since(begin).Round(time.Second))
	for _, m := range measured {
		t.Log(m)
	}
	r, err := e.ts.Repositories.Open(ctx, vault.VaultID(sub, "rg", "vault"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("the final check: %v; %v", err, rep.Problems)
	}
	t.Logf("final check: %d snapshots, %d packs, %d blobs, %d bytes read", rep.Snapshots, rep.Packs, rep.Blobs, rep.BytesRead)
}

// waitIdle waits until no job is queued or running (the tick's backup, and
// the prune that expiry queued) and requires that none failed.
func waitIdle(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		js, err := st.JobList(ctx, store.JobListParams{Statuses: []string{store.JobQueued, store.JobRunning}, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(js) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s (%s) did not end", js[0].ID, js[0].Kind)
		}
	}
	failed, err := st.JobList(ctx, store.JobListParams{Statuses: []string{store.JobFailed}, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 0 {
		t.Fatalf("%s job %s failed: %s", failed[0].Kind, failed[0].ID, failed[0].Error)
	}
}

// compareLive requires the instance's recovery points to be the oracle's
// points that have not expired at now.
func compareLive(t *testing.T, e *env, instanceID string, oracle []oraclePoint, now time.Time) {
	t.Helper()
	rs, err := e.ts.Store.ResourceList(context.Background(), store.ListParams{Type: vault.TypeRecoveryPoint, Parent: instanceID})
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, r := range rs {
		var rp vault.RecoveryPointResource
		if err := json.Unmarshal(r.Body, &rp); err != nil {
			t.Fatal(err)
		}
		exp := "none"
		if rp.Properties.ExpiryTime != nil {
			exp = rp.Properties.ExpiryTime.UTC().Format(time.RFC3339)
		}
		got = append(got, rp.Properties.RecoveryPointTime.UTC().Format(time.RFC3339)+" "+rp.Properties.RetentionTagName+" "+exp)
	}
	for _, p := range oracle {
		if p.expiry.After(now) {
			want = append(want, p.at.UTC().Format(time.RFC3339)+" "+p.tag+" "+p.expiry.UTC().Format(time.RFC3339))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("at %s the live recovery points are\n  %s\nthe oracle says\n  %s", now, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// measureAfterPrune prunes the vault's repository and checks what is left:
// the snapshots of the live recovery points and no other, and packs within
// design.md's space bound of the live data. It returns a line of figures.
func measureAfterPrune(t *testing.T, e *env, st storage.Storage, now time.Time, oracle []oraclePoint) string {
	t.Helper()
	ctx := context.Background()
	res := runPrune(t, e)
	r, err := e.ts.Repositories.Open(ctx, vault.VaultID(sub, "rg", "vault"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, p := range oracle {
		if p.expiry.After(now) {
			live++
		}
	}
	if len(snaps) != live {
		t.Fatalf("at %s after a prune (%+v) the repository holds %d snapshots, the live recovery points are %d", now, res, len(snaps), live)
	}
	// A dry run measures the live data without changing anything.
	dry, err := r.Prune(ctx, repo.PruneOptions{DryRun: true, SafetyMargin: -1})
	if err != nil {
		t.Fatal(err)
	}
	packs, packBytes := objectsUnder(t, st, "packs/")
	_, indexBytes := objectsUnder(t, st, "index/")
	_, total := objectsUnder(t, st, "")
	// docs/design.md §12: packs <= L/RepackThreshold + 42 B trailer and
	// 16 B header per pack + 43 B per blob.
	bound := int64(float64(dry.LiveBytes)/repo.DefaultRepackThreshold) + int64(packs)*(42+16) + int64(dry.LiveBlobs)*43
	if packBytes > bound {
		t.Fatalf("at %s: packs hold %d bytes, over the bound %d for %d live bytes in %d blobs", now, packBytes, bound, dry.LiveBytes, dry.LiveBlobs)
	}
	// Outside the packs: the index (~38 B per blob, design.md), the
	// manifests and trees' metadata, config and keys; bounded here by
	// 100 B per live blob plus 64 KiB per snapshot.
	other := total - packBytes
	if limit := int64(dry.LiveBlobs)*100 + int64(len(snaps))*64<<10; other > limit {
		t.Fatalf("at %s: %d bytes outside the packs (index %d), over %d", now, other, indexBytes, limit)
	}
	return fmt.Sprintf("%s: %2d live points, live data %7d B in %5d blobs; packs %7d B (%.3f× live) in %d; index %6d B; repository %7d B (%.3f× live)",
		now.Format("2006-01-02"), len(snaps), dry.LiveBytes, dry.LiveBlobs, packBytes, float64(packBytes)/float64(dry.LiveBytes), packs,
		indexBytes, total, float64(total)/float64(dry.LiveBytes))
}

// objectsUnder counts the objects of a storage under a prefix and sums
// their sizes.
func objectsUnder(t *testing.T, st storage.Storage, prefix string) (int, int64) {
	t.Helper()
	n, size := 0, int64(0)
	err := st.List(context.Background(), prefix, func(i storage.Info) error {
		n++
		size += i.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, size
}
