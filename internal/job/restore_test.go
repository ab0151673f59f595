package job_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/testserver"
	"github.com/pgvault/pgvault/internal/vault"
)

// TestFailOrphanedRestore: a restore its process left running is failed
// with WorkerLost and a message about restores, not backups.
func TestFailOrphanedRestore(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, testserver.Options{})
	ctx := context.Background()
	now := time.Now().UTC()
	vaultID := vault.VaultID(sub, "rg", "vault")
	in, _ := json.Marshal(vault.RestoreJobInput{VaultID: vaultID, SnapshotID: "aa"})
	j := &store.Job{ID: "44444444-4444-4444-4444-444444444444", Kind: vault.JobKindRestore, Subscription: sub,
		ResourceID: vaultID, Status: store.JobQueued, Input: in, Created: now}
	if err := ts.Store.JobCreate(ctx, j); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Store.JobClaim(ctx, store.JobClaimParams{Owner: "node-1", Kinds: []string{vault.JobKindRestore}, Lease: time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}
	r := job.New(job.Config{Store: ts.Store, Service: ts.Service, Owner: "node-1"})
	if err := r.FailOrphans(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := ts.Store.JobGet(ctx, j.ID)
	if err != nil || got.Status != store.JobFailed || !strings.Contains(string(got.Error), `"WorkerLost"`) || !strings.Contains(string(got.Error), "Restore again") {
		t.Errorf("orphaned restore: %v %+v %s", err, got, got.Error)
	}
}
