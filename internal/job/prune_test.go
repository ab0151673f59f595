package job_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/testserver"
	"github.com/pgvault/pgvault/internal/vault"
)

// TestPruneJobReclaimsExpiredPoint: two backups; one recovery point is
// deleted as expiry deletes it; the prune job forgets its snapshot and
// prunes (margins 0): the repository shrinks, the other point restores,
// and a snapshot whose job is still running is never forgotten.
func TestPruneJobReclaimsExpiredPoint(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, testserver.Options{Prune: repo.PruneOptions{SafetyMargin: -1}})
	ctx := context.Background()
	vaultID := vault.VaultID(sub, "rg", "vault")
	// A vault without backups has no repository to prune.
	if n, err := e.ts.Service.QueuePrunes(ctx); err != nil || n != 0 {
		t.Fatalf("QueuePrunes before any backup: %d, %v", n, err)
	}
	if j := e.backup(); j.Properties.Status != "Completed" {
		t.Fatalf("first backup: %+v", j.Properties)
	}
	first := e.recoveryPoints()
	// New table contents: the second backup shares little with the first.
	e.cluster.Exec(t, "TRUNCATE t; INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 200000) g; CHECKPOINT")
	if j := e.backup(); j.Properties.Status != "Completed" {
		t.Fatalf("second backup: %+v", j.Properties)
	}
	rps := e.recoveryPoints()
	if len(first) != 1 || len(rps) != 2 {
		t.Fatalf("recovery points %v then %v", first, rps)
	}
	second := rps[0]
	if second == first[0] {
		second = rps[1]
	}
	dir := job.RepositoryPath(filepath.Join(e.ts.DataDir, "repositories"), vaultID)

	// Nothing expired: the interval's prune job forgets nothing.
	if n, err := e.ts.Service.QueuePrunes(ctx); err != nil || n != 1 {
		t.Fatalf("QueuePrunes after backups: %d, %v", n, err)
	}
	if res := waitPrune(t, e, lastPruneJob(t, e)); len(res.Forgotten) != 0 {
		t.Fatalf("a prune with every recovery point alive forgot %v", res.Forgotten)
	}
	before := dirSize(t, dir)

	bi := vault.BackupInstanceID(sub, "rg", "vault", e.instance)
	if err := e.ts.Service.DeleteRecoveryPoint(ctx, bi+"/recoveryPoints/"+first[0]); err != nil {
		t.Fatal(err)
	}
	res := runPrune(t, e)
	if len(res.Forgotten) != 1 || res.Phase != "mark+sweep" || res.PacksDeleted == 0 {
		t.Fatalf("prune job after the expiry: %+v", res)
	}
	after := dirSize(t, dir)
	t.Logf("repository %d bytes before, %d after; %+v", before, after, res)
	if after >= before-before/4 {
		t.Fatalf("the repository shrank from %d to only %d bytes", before, after)
	}
	if rps := e.recoveryPoints(); len(rps) != 1 || rps[0] != second {
		t.Fatalf("recovery points %v, want %s", rps, second)
	}
	rep := e.check()
	if rep.Snapshots != 1 || len(rep.UnindexedPacks) != 0 {
		t.Fatalf("after the prune job: %+v", rep)
	}
	restoreAll(t, e)
}

// TestReclaimKeepsRunningJobsSnapshot: a snapshot with no recovery point
// is kept while its backup job runs (it is about to record its point) and
// reclaimed once the job ended without one; one naming no job, or a job
// the store does not know, is never reclaimed.
func TestReclaimKeepsRunningJobsSnapshot(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, testserver.Options{})
	ctx := context.Background()
	vaultID := vault.VaultID(sub, "rg", "vault")
	now := time.Now().UTC()
	running := &store.Job{ID: "11111111-1111-1111-1111-111111111111", Kind: vault.JobKindBackup, Subscription: sub,
		ResourceID: vaultID, Status: store.JobQueued, Input: []byte("{}"), Created: now}
	if err := ts.Store.JobCreate(ctx, running); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Store.JobClaim(ctx, store.JobClaimParams{Owner: "w", Kinds: []string{vault.JobKindBackup}, Lease: time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}
	refs := []vault.SnapshotRef{{ID: "aa", JobID: running.ID}, {ID: "bb"}, {ID: "cc", JobID: "22222222-2222-2222-2222-222222222222"}}
	got, err := ts.Service.ReclaimableSnapshots(ctx, vaultID, refs)
	if err != nil || len(got) != 0 {
		t.Fatalf("reclaimable beside a running job: %v, %v", got, err)
	}
	if err := ts.Store.JobFinish(ctx, running.ID, "w", store.JobFailed, nil, []byte(`{"code":"X"}`), now); err != nil {
		t.Fatal(err)
	}
	// A queued restore from the snapshot keeps it; once it ended, it goes.
	in, _ := json.Marshal(vault.RestoreJobInput{JobID: "33333333-3333-3333-3333-333333333333", VaultID: vaultID, SnapshotID: "aa"})
	restore := &store.Job{ID: "33333333-3333-3333-3333-333333333333", Kind: vault.JobKindRestore, Subscription: sub,
		ResourceID: vaultID, Status: store.JobQueued, Input: in, Created: now}
	if err := ts.Store.JobCreate(ctx, restore); err != nil {
		t.Fatal(err)
	}
	got, err = ts.Service.ReclaimableSnapshots(ctx, vaultID, refs)
	if err != nil || len(got) != 0 {
		t.Fatalf("reclaimable beside a queued restore: %v, %v", got, err)
	}
	if _, err := ts.Store.JobClaim(ctx, store.JobClaimParams{Owner: "w", Kinds: []string{vault.JobKindRestore}, Lease: time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Store.JobFinish(ctx, restore.ID, "w", store.JobSucceeded, nil, nil, now); err != nil {
		t.Fatal(err)
	}
	got, err = ts.Service.ReclaimableSnapshots(ctx, vaultID, refs)
	if err != nil || len(got) != 1 || got[0] != "aa" {
		t.Fatalf("reclaimable after the job failed and the restore ended: %v, %v", got, err)
	}
	// Another vault's job does not make the snapshot reclaimable here.
	got, err = ts.Service.ReclaimableSnapshots(ctx, vault.VaultID(sub, "rg", "other"), refs)
	if err != nil || len(got) != 0 {
		t.Fatalf("reclaimable in another vault: %v, %v", got, err)
	}
}

// runPrune queues a prune job for the test vault and waits for its result.
func runPrune(t *testing.T, e *env) vault.PruneJobResult {
	t.Helper()
	j, err := e.ts.Service.QueuePrune(context.Background(), vault.VaultID(sub, "rg", "vault"), "test")
	if err != nil || j == nil {
		t.Fatalf("QueuePrune: %v, %v", j, err)
	}
	return waitPrune(t, e, j)
}

// lastPruneJob returns the newest prune job.
func lastPruneJob(t *testing.T, e *env) *store.Job {
	t.Helper()
	js, err := e.ts.Store.JobList(context.Background(), store.JobListParams{Kind: vault.JobKindPrune, Limit: 1})
	if err != nil || len(js) != 1 {
		t.Fatalf("the prune job: %v, %v", js, err)
	}
	return js[0]
}

// waitPrune waits for a prune job's result.
func waitPrune(t *testing.T, e *env, j *store.Job) vault.PruneJobResult {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		got, err := e.ts.Store.JobGet(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch got.Status {
		case store.JobSucceeded:
			var res vault.PruneJobResult
			if err := json.Unmarshal(got.Result, &res); err != nil {
				t.Fatal(err)
			}
			return res
		case store.JobFailed:
			t.Fatalf("prune job failed: %s", got.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("prune job %s did not end", j.ID)
		}
	}
}

// restoreAll writes every snapshot of the vault's repository out in
// pg_basebackup's format through the server's own repository handle.
func restoreAll(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	r, err := e.ts.Repositories.Open(ctx, vault.VaultID(sub, "rg", "vault"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		var n int64
		err := engine.WriteTarFormat(ctx, r, s, func(string) (io.WriteCloser, error) { return &countingDiscard{n: &n}, nil })
		if err != nil || n == 0 {
			t.Fatalf("restoring snapshot %s: %v (%d bytes)", s.ID, err, n)
		}
	}
}

type countingDiscard struct{ n *int64 }

func (c *countingDiscard) Write(p []byte) (int, error) { *c.n += int64(len(p)); return len(p), nil }
func (c *countingDiscard) Close() error                { return nil }

// dirSize sums the sizes of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeleteInstanceReclaimsSpace: stop protection and delete data (the
// DELETE of a backup instance) deletes every recovery point of the
// instance and queues a prune that reclaims all of their data.
func TestDeleteInstanceReclaimsSpace(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, testserver.Options{Prune: repo.PruneOptions{SafetyMargin: -1}})
	for range 2 {
		if j := e.backup(); j.Properties.Status != "Completed" {
			t.Fatalf("backup: %+v", j.Properties)
		}
	}
	dir := job.RepositoryPath(filepath.Join(e.ts.DataDir, "repositories"), vault.VaultID(sub, "rg", "vault"))
	before := dirSize(t, dir)
	e.do("DELETE", client.BackupInstancePath(sub, "rg", "vault", e.instance), api, nil)
	rps, err := e.ts.Store.ResourceList(context.Background(), store.ListParams{Type: vault.TypeRecoveryPoint})
	if err != nil || len(rps) != 0 {
		t.Fatalf("recovery points after the delete: %d, %v", len(rps), err)
	}
	res := waitPrune(t, e, lastPruneJob(t, e))
	if len(res.Forgotten) != 2 || res.PacksDeleted == 0 {
		t.Fatalf("the prune after the delete: %+v", res)
	}
	after := dirSize(t, dir)
	t.Logf("repository %d bytes before the delete, %d after its prune", before, after)
	if after > before/20 {
		t.Fatalf("the repository kept %d of %d bytes after its only instance was deleted", after, before)
	}
	if rep := e.check(); rep.Snapshots != 0 || rep.Packs != 0 {
		t.Fatalf("after the delete: %+v", rep)
	}
}
