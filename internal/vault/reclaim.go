package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pgvault/pgvault/internal/store"
)

// JobKindPrune is the job that reclaims a vault's repository space: it
// forgets the snapshots no recovery point needs and prunes.
const JobKindPrune = "prune"

// PruneJobInput is what a prune job needs.
type PruneJobInput struct {
	VaultID string `json:"vaultId"`
	Reason  string `json:"reason"` // "interval", "instance deleted", ...
}

// PruneJobResult is what a finished prune job recorded.
type PruneJobResult struct {
	Forgotten    []string `json:"forgotten"` // snapshot IDs
	Phase        string   `json:"phase"`
	Waiting      string   `json:"waiting,omitempty"`
	PacksDeleted int      `json:"packsDeleted"`
	BytesDeleted int64    `json:"bytesDeleted"`
	BytesKept    int64    `json:"bytesKept"`
}

// pruneJobResource is the ResourceID of a vault's prune jobs: not the
// vault's ID, so that the backupJobs API (which lists the vault's jobs)
// never shows them.
func pruneJobResource(vaultID string) string { return vaultID + "/pgvaultPrune" }

// QueuePrune queues a prune job for a vault. It returns nil, nil when one
// is already queued or running (its ExclusiveKey).
func (s *Service) QueuePrune(ctx context.Context, vaultID, reason string) (*store.Job, error) {
	input, err := json.Marshal(PruneJobInput{VaultID: vaultID, Reason: reason})
	if err != nil {
		return nil, fmt.Errorf("while encoding job input: %w", err)
	}
	sub := strings.Split(strings.TrimPrefix(vaultID, "/subscriptions/"), "/")[0]
	job := &store.Job{
		ID: newUUID(), Kind: JobKindPrune, Subscription: sub, ResourceID: pruneJobResource(vaultID),
		ExclusiveKey: "prune:" + strings.ToLower(vaultID),
		Status:       store.JobQueued, Input: input, MaxAttempts: 1, Created: s.nowUTC(),
	}
	err = s.store.JobCreate(ctx, job)
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr("queueing a prune job", err)
	}
	if s.jobQueued != nil {
		s.jobQueued()
	}
	return job, nil
}

// QueuePrunes queues a prune job for every vault that ever had a backup job
// (the others have no repository to prune) and has no prune queued or
// running; the maintenance loop of `pgvault serve` calls it at an interval.
func (s *Service) QueuePrunes(ctx context.Context) (int, error) {
	vaults, err := s.store.ResourceList(ctx, store.ListParams{Type: TypeVault})
	if err != nil {
		return 0, storeErr("listing vaults", err)
	}
	n := 0
	for _, v := range vaults {
		backups, err := s.store.JobList(ctx, store.JobListParams{ResourceID: v.ID, Kind: JobKindBackup, Limit: 1})
		if err != nil {
			return n, storeErr("listing backup jobs", err)
		}
		if len(backups) == 0 {
			continue
		}
		j, err := s.QueuePrune(ctx, v.ID, "interval")
		if err != nil {
			return n, err
		}
		if j != nil {
			n++
		}
	}
	return n, nil
}

// SnapshotRef is a snapshot of a vault's repository and the backup job its
// metadata names ("" for none).
type SnapshotRef struct {
	ID    string
	JobID string
}

// ReclaimableSnapshots returns the IDs of the snapshots whose space may be
// reclaimed: no recovery point of the vault references them, no restore
// of the vault is queued or running from them, and the
// backup job that made them has ended (a job still running is about to
// record its recovery point). A snapshot that names no job, or a job the
// store does not know (a store restored from a backup, another
// installation's repository), is kept: only what pgvault made and let go is
// reclaimed. Jobs are looked at before recovery points, so a job that ends
// in between has its recovery point listed.
func (s *Service) ReclaimableSnapshots(ctx context.Context, vaultID string, snaps []SnapshotRef) ([]string, error) {
	var ended []string
	for _, sn := range snaps {
		if sn.JobID == "" {
			continue
		}
		j, err := s.store.JobGet(ctx, sn.JobID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, storeErr("reading the job of a snapshot", err)
		}
		ours := j.Kind == JobKindBackup && strings.EqualFold(j.ResourceID, vaultID)
		if ours && j.Status != store.JobQueued && j.Status != store.JobRunning {
			ended = append(ended, sn.ID)
		}
	}
	if len(ended) == 0 {
		return nil, nil
	}
	used, err := s.referencedSnapshots(ctx, vaultID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ended {
		if !used[strings.ToLower(id)] {
			out = append(out, id)
		}
	}
	return out, nil
}

// referencedSnapshots returns the (lower-case) snapshot IDs the vault's
// recovery points and its unfinished restore jobs name.
func (s *Service) referencedSnapshots(ctx context.Context, vaultID string) (map[string]bool, error) {
	rps, err := s.store.ResourceList(ctx, store.ListParams{Type: TypeRecoveryPoint})
	if err != nil {
		return nil, storeErr("listing recovery points", err)
	}
	prefix := strings.ToLower(vaultID) + "/backupinstances/"
	used := make(map[string]bool)
	for _, r := range rps {
		if !strings.HasPrefix(strings.ToLower(r.ID), prefix) {
			continue
		}
		rp, err := decodeRecoveryPoint(r)
		if err != nil {
			return nil, err
		}
		if ext := rp.Properties.Pgvault; ext != nil {
			used[strings.ToLower(ext.SnapshotID)] = true
		}
		for _, d := range rp.Properties.RecoveryPointDataStoresDetails {
			used[strings.ToLower(d.ID)] = true
		}
	}
	// A restore queued or running keeps its snapshot, even if the recovery
	// point expired since it was asked for.
	restores, err := s.store.JobList(ctx, store.JobListParams{ResourceID: vaultID, Kind: JobKindRestore, Statuses: []string{store.JobQueued, store.JobRunning}})
	if err != nil {
		return nil, storeErr("listing restore jobs", err)
	}
	for _, j := range restores {
		var in RestoreJobInput
		if err := json.Unmarshal(j.Input, &in); err != nil {
			return nil, fmt.Errorf("while decoding restore job %s: %w", j.ID, err)
		}
		used[strings.ToLower(in.SnapshotID)] = true
	}
	return used, nil
}

// DeleteRecoveryPoint deletes a recovery point resource by its ID, as
// expiry does; the next prune of its vault reclaims its data. A recovery
// point already gone is not an error.
func (s *Service) DeleteRecoveryPoint(ctx context.Context, id string) error {
	r, err := s.store.ResourceGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return storeErr("reading a recovery point", err)
	}
	if r.Type != TypeRecoveryPoint {
		return fmt.Errorf("while deleting a recovery point: %s is a %s", id, r.Type)
	}
	err = s.store.ResourceDelete(ctx, r.ID, store.DeleteOptions{})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeErr("deleting a recovery point", err)
	}
	return nil
}
