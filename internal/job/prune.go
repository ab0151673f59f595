package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/vault"
)

// runPrune reclaims a vault's repository space: it forgets the snapshots
// the vault service says nothing needs any more, then prunes (one step of
// the two-phase protocol, or both when the margins allow).
func (r *Runner) runPrune(ctx context.Context, j *store.Job, progress *atomic.Pointer[vault.JobProgress]) ([]byte, error) {
	var in vault.PruneJobInput
	if err := json.Unmarshal(j.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding the job: %w", err)
	}
	rp, err := r.cfg.Repos(ctx, in.VaultID)
	if err != nil {
		return nil, fmt.Errorf("while opening the vault's repository: %w", err)
	}
	progress.Store(&vault.JobProgress{Phase: "Forgetting"})
	forgotten, err := forgetReclaimable(ctx, r.cfg.Service, rp, in.VaultID)
	if err != nil {
		return nil, err
	}
	progress.Store(&vault.JobProgress{Phase: "Pruning"})
	res := vault.PruneJobResult{Forgotten: forgotten}
	rep, err := rp.Prune(ctx, r.cfg.Prune)
	switch {
	case errors.Is(err, repo.ErrPruneRunning):
		res.Phase, res.Waiting = "wait", err.Error()
	case err != nil:
		return nil, fmt.Errorf("while pruning: %w", err)
	default:
		res.Phase, res.Waiting = rep.Phase(), rep.Waiting
		res.PacksDeleted, res.BytesDeleted, res.BytesKept = rep.PacksDeleted, rep.BytesDeleted, rep.BytesKept
	}
	r.log.Info("pruned a vault's repository", "vault", in.VaultID, "reason", in.Reason, "forgotten", len(forgotten),
		"phase", res.Phase, "waiting", res.Waiting, "packs_deleted", res.PacksDeleted, "bytes_deleted", res.BytesDeleted)
	return json.Marshal(res)
}

// forgetReclaimable forgets the repository's snapshots that the vault
// service finds reclaimable and returns their IDs.
func forgetReclaimable(ctx context.Context, svc *vault.Service, rp *repo.Repo, vaultID string) ([]string, error) {
	snaps, err := rp.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("while listing snapshots: %w", err)
	}
	refs := make([]vault.SnapshotRef, 0, len(snaps))
	for _, s := range snaps {
		refs = append(refs, vault.SnapshotRef{ID: s.ID.String(), JobID: s.Meta[MetaJob]})
	}
	ids, err := svc.ReclaimableSnapshots(ctx, vaultID, refs)
	if err != nil {
		return nil, err
	}
	forget := make([]repo.SnapshotID, 0, len(ids))
	for _, s := range ids {
		id, err := repo.ParseID(s)
		if err != nil {
			return nil, err
		}
		forget = append(forget, id)
	}
	if err := rp.Forget(ctx, forget...); err != nil {
		return nil, err
	}
	return ids, nil
}

// QueuePrunesEvery queues a prune job for every vault each interval until
// ctx is done (the maintenance loop of `pgvault serve`).
func QueuePrunesEvery(ctx context.Context, svc *vault.Service, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := svc.QueuePrunes(ctx); err != nil && ctx.Err() == nil {
			log.Error("queueing prune jobs failed", "err", err)
		} else if n > 0 {
			log.Debug("queued prune jobs", "vaults", n)
		}
	}
}
