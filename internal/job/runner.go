// Package job runs the work the control plane queues: a worker claims a job
// from the store with a lease, keeps the lease while it works, and records
// the outcome. Several workers, in one process or several sharing a store,
// never run one job twice: a job whose lease expired is failed (or
// re-queued, per its MaxAttempts) by the next claim, and a worker that loses
// its lease stops.
package job

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/vault"
)

// Metadata keys the runner adds to a backup's snapshot, besides engine's.
const (
	MetaJob          = "pgvault.job"           // the backup job's ID
	MetaInstance     = "pgvault.instance"      // the backup instance's ARM ID
	MetaRetentionTag = "pgvault.retention_tag" // the recovery point's retention tag
)

// claimedKinds are the job kinds a Runner runs.
var claimedKinds = []string{vault.JobKindBackup, vault.JobKindLtrBackup, vault.JobKindPrune, vault.JobKindRestore}

// isBackup reports whether a job kind counts against
// Config.MaxConcurrentBackups: the kinds that read a whole server.
func isBackup(kind string) bool { return kind == vault.JobKindBackup || kind == vault.JobKindLtrBackup }

// RepoOpener opens (creating it on first use) the repository of a vault.
type RepoOpener func(ctx context.Context, vaultID string) (*repo.Repo, error)

// Config configures a Runner. Zero values mean defaults.
type Config struct {
	Store   store.Store
	Service *vault.Service
	Repos   RepoOpener
	// Owner identifies this worker in leases; it must be unique among the
	// processes sharing the store and stable across restarts of this one.
	Owner string
	// Lease is how long a claim lasts without a heartbeat (default 1 minute);
	// heartbeats come every third of it.
	Lease time.Duration
	// Concurrency is how many jobs this worker runs at once (default 1).
	Concurrency int
	// MaxConcurrentBackups is how many of those may be backups (backup and
	// LTR backup jobs, which each read a whole server); further backups stay
	// queued, for this node or another, while other kinds still run. 0
	// means Concurrency.
	MaxConcurrentBackups int
	// PollInterval is how often an idle worker looks for jobs (default 1 s).
	PollInterval time.Duration
	// ProgressInterval is how often a running job's progress is recorded
	// when it changed (default 1 s, at most a third of Lease): what clients
	// following a job see is at most this old.
	ProgressInterval time.Duration
	// PGInstallDir holds the PostgreSQL installations a restore as a new
	// server starts the server with: <PGInstallDir>/<major>/bin (default
	// pgctl.DefaultInstallDir, Debian's /usr/lib/postgresql).
	PGInstallDir string
	// Prune tunes prune jobs (default: the margins of docs/design.md §12).
	Prune repo.PruneOptions
	// Now is the clock of what jobs record, such as a recovery point's time
	// (default time.Now); tests inject a simulated one. Leases always run
	// on the real clock, as the other processes sharing the store do.
	Now    func() time.Time
	Logger *slog.Logger
}

// Runner claims and runs jobs.
type Runner struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
}

// New returns a Runner.
func New(cfg Config) *Runner {
	cfg.Lease = cmp.Or(cfg.Lease, time.Minute)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 1)
	if cfg.MaxConcurrentBackups <= 0 || cfg.MaxConcurrentBackups > cfg.Concurrency {
		cfg.MaxConcurrentBackups = cfg.Concurrency
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.PollInterval = cmp.Or(cfg.PollInterval, time.Second)
	cfg.ProgressInterval = min(cmp.Or(cfg.ProgressInterval, time.Second), cfg.Lease/3)
	return &Runner{cfg: cfg, log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), wake: make(chan struct{}, 1)}
}

// Wake makes an idle worker look for jobs now.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx is done, then waits for the jobs in progress to stop.
// It calls FailOrphans first.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.FailOrphans(ctx); err != nil {
		return err
	}
	sem := make(chan struct{}, r.cfg.Concurrency)
	var others []string // the kinds claimed while the backups are at their limit
	for _, k := range claimedKinds {
		if !isBackup(k) {
			others = append(others, k)
		}
	}
	var backups atomic.Int32 // backups running; only this loop increments it
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		kinds := claimedKinds
		if int(backups.Load()) >= r.cfg.MaxConcurrentBackups {
			kinds = others
		}
		j, err := r.cfg.Store.JobClaim(ctx, store.JobClaimParams{Owner: r.cfg.Owner, Kinds: kinds, Lease: r.cfg.Lease, Now: time.Now().UTC()})
		if err != nil {
			<-sem
			if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				r.log.Error("claiming a job failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-r.wake:
			case <-time.After(r.cfg.PollInterval):
			}
			continue
		}
		backup := isBackup(j.Kind)
		if backup {
			backups.Add(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(ctx, j)
			if backup {
				backups.Add(-1)
			}
			<-sem
			r.Wake() // a queued backup may have waited for this one
		}()
	}
}

// FailOrphans fails, with code WorkerLost, the jobs this worker (same
// Owner) was running when its process last died: their work is lost, and
// they must not look as if they still ran. Run calls it before it claims
// anything; a server calls it before it serves too, so that no client sees
// such a job in progress. It must not be called while this worker runs jobs.
func (r *Runner) FailOrphans(ctx context.Context) error {
	js, err := r.cfg.Store.JobList(ctx, store.JobListParams{Statuses: []string{store.JobRunning}})
	if err != nil {
		return fmt.Errorf("while listing running jobs: %w", err)
	}
	for _, j := range js {
		if j.LeaseOwner != r.cfg.Owner {
			continue
		}
		msg := "The pgvault process running this job stopped before it finished; no recovery point was made. Start the backup again."
		if j.Kind == vault.JobKindRestore {
			msg = "The pgvault process running this restore stopped before it finished; what it wrote stays in the target. Restore again into an empty folder or data directory."
		}
		e, _ := json.Marshal(jobError{Code: "WorkerLost", Message: msg})
		err := r.cfg.Store.JobFinish(ctx, j.ID, r.cfg.Owner, store.JobFailed, nil, e, time.Now().UTC())
		if err != nil && !errors.Is(err, store.ErrPreconditionFailed) {
			return fmt.Errorf("while failing orphaned job %s: %w", j.ID, err)
		}
		r.log.Warn("failed a job left running by a previous process", "job", j.ID)
	}
	return nil
}

// jobError is the JSON of a failed job's error.
type jobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// run executes one claimed job, holding its lease, and records the outcome.
func (r *Runner) run(ctx context.Context, j *store.Job) {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var progress atomic.Pointer[vault.JobProgress]
	lost := make(chan struct{})
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		var sent *vault.JobProgress
		last := time.Now()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
			}
			// Renew the lease every third of it, and record progress as
			// often as it changes, up to every ProgressInterval.
			p := progress.Load()
			if p == sent && time.Since(last) < r.cfg.Lease/3 {
				continue
			}
			var pj []byte
			if p != nil {
				pj, _ = json.Marshal(p)
			}
			err := r.cfg.Store.JobHeartbeat(jctx, j.ID, r.cfg.Owner, time.Now().UTC().Add(r.cfg.Lease), pj)
			if errors.Is(err, store.ErrPreconditionFailed) || errors.Is(err, store.ErrNotFound) {
				r.log.Error("lost the lease of a job; stopping it", "job", j.ID)
				close(lost)
				cancel()
				return
			}
			if err != nil && jctx.Err() == nil {
				r.log.Warn("a heartbeat failed", "job", j.ID, "err", err)
				continue
			}
			sent, last = p, time.Now()
		}
	}()
	var result []byte
	var jobErr error
	switch j.Kind {
	case vault.JobKindLtrBackup:
		result, jobErr = r.runLtrBackup(jctx, j, &progress)
	case vault.JobKindPrune:
		result, jobErr = r.runPrune(jctx, j, &progress)
	case vault.JobKindRestore:
		result, jobErr = r.runRestore(jctx, j, &progress)
	default:
		result, jobErr = r.runBackup(jctx, j, &progress)
	}
	cancel()
	<-hbDone
	select {
	case <-lost:
		return // another worker owns the outcome now
	default:
	}
	if ctx.Err() != nil && jobErr != nil {
		return // shutting down: the next start fails it as orphaned
	}
	status, errJSON := store.JobSucceeded, []byte(nil)
	if jobErr != nil {
		status = store.JobFailed
		errJSON, _ = json.Marshal(describe(jobErr))
		r.log.Error("job failed", "job", j.ID, "kind", j.Kind, "err", jobErr)
	}
	if err := r.cfg.Store.JobFinish(context.WithoutCancel(ctx), j.ID, r.cfg.Owner, status, result, errJSON, time.Now().UTC()); err != nil {
		r.log.Error("recording the end of a job failed", "job", j.ID, "err", err)
	}
}

// describe turns a job's error into the code and message users see.
func describe(err error) jobError {
	var ce *pg.CheckError
	if errors.As(err, &ce) {
		return jobError{Code: "PostgreSQLFlexOperationFailedUserError", Message: ce.Code + ": " + ce.Message}
	}
	if e, ok := vault.AsError(err); ok {
		return jobError{Code: e.Code, Message: e.Message}
	}
	if errors.Is(err, repo.ErrCorrupt) {
		// Restores map their damage themselves (RecoveryPointDataCorrupt);
		// what reaches here stopped a backup or a prune: a damaged index
		// object or prune plan (R45), or for prune a damaged snapshot.
		return jobError{Code: "RepositoryDamaged", Message: "The vault's repository is damaged: " + err.Error() +
			". Backups and prune of this vault stop until it is repaired: run `pgvault repo check` on the server's machine to see what is damaged; " +
			"`pgvault repo repair-index` rebuilds a damaged index object or prune plan from the packs."}
	}
	return jobError{Code: "BackupFailed", Message: err.Error()}
}

// runBackup backs up an instance into its vault's repository and records
// the recovery point.
func (r *Runner) runBackup(ctx context.Context, j *store.Job, progress *atomic.Pointer[vault.JobProgress]) ([]byte, error) {
	var in vault.BackupJobInput
	if err := json.Unmarshal(j.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding the job: %w", err)
	}
	target, err := r.cfg.Service.BackupTarget(ctx, in)
	if err != nil {
		return nil, err
	}
	rp, err := r.cfg.Repos(ctx, in.VaultID)
	if err != nil {
		return nil, fmt.Errorf("while opening the vault's repository: %w", err)
	}
	progress.Store(&vault.JobProgress{Phase: "Transferring"})
	res, err := engine.Backup(ctx, target.Conn, rp, engine.BackupOptions{
		Label: "pgvault " + j.ID,
		Meta:  map[string]string{MetaJob: j.ID, MetaInstance: in.InstanceID, MetaRetentionTag: in.RetentionTag},
		Progress: func(done, total int64) {
			progress.Store(&vault.JobProgress{Phase: "Transferring", BytesDone: done, BytesTotal: total})
		},
	})
	if err != nil {
		return nil, err
	}
	s := res.Snapshot
	// The recovery point's time is when the backup ended by the runner's
	// clock: the snapshot's end time, unless a test simulates time.
	at := r.cfg.Now().UTC()
	point, err := r.cfg.Service.RecordRecoveryPoint(ctx, in, vault.RecoveryPoint{
		RecoveryPointTime: at, PolicyName: in.PolicyName, RetentionTagName: in.RetentionTag,
		RecoveryPointDataStoresDetails: []vault.RecoveryPointDataStore{{ID: s.ID.String(), Type: "VaultStore", CreationTime: at, State: "COMMITTED", Visible: true}},
		Pgvault: &vault.RecoveryPointExtension{
			SnapshotID: s.ID.String(), StartLSN: res.Info.StartLSN, EndLSN: res.Info.EndLSN, Timeline: res.Info.Timeline,
			SystemIdentifier: res.Info.SystemIdentifier, ServerVersion: fmt.Sprint(res.Info.ServerVersion),
			DataBytes: s.Stats.Bytes, StoredBytes: s.Stats.NewBytes, JobID: j.ID,
		},
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(vault.BackupJobResult{RecoveryPointID: point.Name, RetentionTag: point.Properties.RetentionTagName, SnapshotID: s.ID.String(), DataBytes: s.Stats.Bytes, StoredBytes: s.Stats.NewBytes})
}
