package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/store"
)

func newJob(id string, created time.Time) *store.Job {
	return &store.Job{ID: id, Kind: "backup", Subscription: "sub", ResourceID: "/r", Status: store.JobQueued, Created: created}
}

// TestTwoStoresJobs runs the job queue through two Store values on one file,
// as two processes sharing the database would.
func TestTwoStoresJobs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pgvault.db")
	stores := []*Store{openTemp(t, path), openTemp(t, path)}
	defer closeStore(t, stores[0])
	defer closeStore(t, stores[1])
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

	// Creates racing on one exclusive key through both stores: one wins.
	const racers = 16
	errs := make([]error, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			j := newJob(fmt.Sprint("exclusive-", i), t0)
			j.ExclusiveKey = "backup:/r"
			errs[i] = stores[i%2].JobCreate(ctx, j)
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, store.ErrAlreadyExists):
			t.Fatalf("JobCreate %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d creates won, want 1", winners)
	}

	// Workers of both stores claim concurrently: every job exactly once.
	const jobs, workers = 60, 8
	for i := range jobs {
		if err := stores[i%2].JobCreate(ctx, newJob(fmt.Sprintf("job-%02d", i), t0.Add(time.Duration(i)))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	owners := map[string]string{} // job ID -> owner
	werrs := make(chan error, workers)
	start = make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			owner := fmt.Sprint("worker-", w)
			for {
				j, err := stores[w%2].JobClaim(ctx, store.JobClaimParams{Owner: owner, Lease: time.Minute, Now: t0})
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					werrs <- err
					return
				}
				mu.Lock()
				if prev, ok := owners[j.ID]; ok {
					werrs <- fmt.Errorf("job %s claimed by %s and %s", j.ID, prev, owner)
				}
				owners[j.ID] = owner
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	close(werrs)
	for err := range werrs {
		t.Error(err)
	}
	if len(owners) != jobs+1 { // with the exclusive-key winner
		t.Fatalf("%d jobs claimed, want %d", len(owners), jobs+1)
	}
	for _, s := range stores {
		js, err := s.JobList(ctx, store.JobListParams{Statuses: []string{store.JobRunning}})
		if err != nil || len(js) != jobs+1 {
			t.Fatalf("JobList of running jobs: %d, %v; want %d", len(js), err, jobs+1)
		}
		for _, j := range js {
			if j.LeaseOwner != owners[j.ID] || j.Attempt != 1 {
				t.Fatalf("job %s: owner %s, attempt %d; want %s, 1", j.ID, j.LeaseOwner, j.Attempt, owners[j.ID])
			}
		}
	}

	// A job held through one store is taken over through the other once
	// its lease expired; the first owner has lost it. (The first claim
	// expires the leases of all jobs above: they fail, having one attempt.)
	j := newJob("takeover", t0)
	j.MaxAttempts = 2
	if err := stores[0].JobCreate(ctx, j); err != nil {
		t.Fatal(err)
	}
	first, err := stores[0].JobClaim(ctx, store.JobClaimParams{Owner: "a", Kinds: []string{"backup"}, Lease: time.Hour, Now: t0.Add(time.Hour)})
	if err != nil || first.ID != j.ID {
		t.Fatalf("JobClaim = %v, %v", first, err)
	}
	second, err := stores[1].JobClaim(ctx, store.JobClaimParams{Owner: "b", Lease: time.Hour, Now: first.LeaseExpires})
	if err != nil || second.ID != j.ID || second.Attempt != 2 {
		t.Fatalf("takeover JobClaim = %+v, %v", second, err)
	}
	if err := stores[0].JobFinish(ctx, j.ID, "a", store.JobSucceeded, nil, nil, t0); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("JobFinish by the old owner: %v", err)
	}
	if err := stores[1].JobFinish(ctx, j.ID, "b", store.JobSucceeded, []byte(`{}`), nil, t0); err != nil {
		t.Fatalf("JobFinish by the new owner: %v", err)
	}
	failed, err := stores[0].JobList(ctx, store.JobListParams{Statuses: []string{store.JobFailed}})
	if err != nil || len(failed) != jobs+1 {
		t.Fatalf("JobList of failed jobs: %d, %v; want %d", len(failed), err, jobs+1)
	}
}

// TestJobTimes checks that job times round-trip to the nanosecond, across a reopen.
func TestJobTimes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pgvault.db")
	s := openTemp(t, path)
	zone := time.FixedZone("X", -7*3600)
	created := time.Date(2025, 1, 2, 3, 4, 5, 123456789, zone)
	now := created.Add(time.Hour + time.Nanosecond)
	const lease = time.Minute + 7*time.Nanosecond
	if err := s.JobCreate(ctx, newJob("job", created)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.JobClaim(ctx, store.JobClaimParams{Owner: "w", Lease: lease, Now: now}); err != nil {
		t.Fatal(err)
	}
	// The lease ends at now+lease exactly: a nanosecond before, it holds.
	_, err := s.JobClaim(ctx, store.JobClaimParams{Owner: "w2", Lease: lease, Now: now.Add(lease - time.Nanosecond)})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("JobClaim a nanosecond before the lease ends: %v", err)
	}
	ended := now.Add(3 * time.Nanosecond)
	if err := s.JobFinish(ctx, "job", "w", store.JobSucceeded, nil, nil, ended); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	s = openTemp(t, path)
	defer closeStore(t, s)
	j, err := s.JobGet(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if j.Created != created.UTC() || j.Started != now.UTC() || j.LeaseExpires != now.Add(lease).UTC() || j.Ended != ended.UTC() {
		t.Errorf("after reopen: Created %v, Started %v, LeaseExpires %v, Ended %v", j.Created, j.Started, j.LeaseExpires, j.Ended)
	}
}

// TestJobIndexes checks the unique indexes that back the key rules, on
// writes that bypass the driver's own checks.
func TestJobIndexes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pgvault.db")
	closeStore(t, openTemp(t, path))
	db := rawDB(t, path)
	insert := func(id, status, idem, excl string) error {
		_, err := db.Exec(`INSERT INTO jobs (id, kind, subscription, subscription_key, resource_id, resource_id_key,
	idempotency_key, exclusive_key, status, attempt, max_attempts, lease_owner, lease_expires, created, started, ended)
VALUES (?, 'k', '', '', '', '', ?, ?, ?, 0, 0, '', '', '', '', '')`, id, idem, excl, status)
		return err
	}
	for _, step := range []struct {
		id, status, idem, excl string
		ok                     bool
	}{
		{"a", store.JobQueued, "", "x", true},
		{"b", store.JobQueued, "", "x", false},  // x held by a Queued job
		{"b", store.JobRunning, "", "x", false}, // still held
		{"b", store.JobSucceeded, "", "x", true},
		{"c", store.JobCanceled, "", "x", true},
		{"d", store.JobQueued, "", "", true},
		{"e", store.JobRunning, "", "", true}, // empty keys never collide
		{"f", store.JobFailed, "i", "", true},
		{"g", store.JobQueued, "i", "", false}, // idempotency keys are used once, ever
		{"g", store.JobQueued, "", "y", true},
		{"g", store.JobQueued, "", "z", false}, // the ID
	} {
		err := insert(step.id, step.status, step.idem, step.excl)
		if (err == nil) != step.ok {
			t.Fatalf("insert %+v: %v", step, err)
		}
		if err != nil && !isUniqueViolation(err) {
			t.Fatalf("insert %+v: %v, want a unique violation", step, err)
		}
	}
	// Bringing an ended job back while its key is held breaks the index too.
	_, err := db.Exec(`UPDATE jobs SET status = 'Running' WHERE id = 'b'`)
	if !isUniqueViolation(err) {
		t.Fatalf("update to a second active job on one exclusive key: %v", err)
	}
}
