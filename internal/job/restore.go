package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/pgctl"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/target"
	"github.com/pgvault/pgvault/internal/vault"
)

// runRestore writes a recovery point into the folder of a restore target
// as the files `pg_basebackup -Ft` writes (<oid>.tar, base.tar with the
// WAL, backup_manifest; engine.WriteTarFormat), streaming each from the
// repository into its object (internal/target, as LTR backups write
// theirs). Nothing is staged on pgvault's disk. The target folder must be
// empty; nothing in it is ever replaced.
func (r *Runner) runRestore(ctx context.Context, j *store.Job, progress *atomic.Pointer[vault.JobProgress]) ([]byte, error) {
	res, err := r.restore(ctx, j, progress)
	if err != nil {
		return nil, restoreError(err, "")
	}
	return res, nil
}

// restore does the work of runRestore, which describes its errors.
func (r *Runner) restore(ctx context.Context, j *store.Job, progress *atomic.Pointer[vault.JobProgress]) ([]byte, error) {
	var in vault.RestoreJobInput
	if err := json.Unmarshal(j.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding the job: %w", err)
	}
	plan, err := r.cfg.Service.RestorePlan(ctx, in)
	if err != nil {
		return nil, err
	}
	rp, snap, err := r.openRecoveryPoint(ctx, in)
	if err != nil {
		return nil, err
	}
	if in.NewServer != nil {
		return r.restoreServer(ctx, in, plan, rp, snap, progress)
	}
	if err := vault.CheckRestoreTargetEmpty(ctx, plan.Target); err != nil {
		return nil, err
	}
	tg, err := target.Open(ctx, plan.Target, target.Options{})
	if err != nil {
		return nil, restoreTargetError(err)
	}
	defer func() { _ = tg.Close() }()

	var written atomic.Int64
	total := snap.Stats.Bytes
	progress.Store(&vault.JobProgress{Phase: "Transferring", BytesTotal: total})
	var files []vault.RestoredFile
	var mu sync.Mutex
	err = engine.WriteTarFormat(ctx, rp, snap, func(name string) (io.WriteCloser, error) {
		return newUpload(ctx, tg, name, func(n int64) {
			progress.Store(&vault.JobProgress{Phase: "Transferring", BytesDone: written.Add(n), BytesTotal: total})
		}, func(f vault.RestoredFile) {
			mu.Lock()
			files = append(files, f)
			mu.Unlock()
		}), nil
	})
	if err != nil {
		return nil, restoreError(err, tg.Location())
	}
	return json.Marshal(vault.RestoreJobResult{Location: tg.Location(), Files: files, Bytes: written.Load()})
}

// restoreServer restores a recovery point as a new server on this host:
// engine.RestoreDir writes the data directory (extra tablespaces under
// <dataDirectory>-tablespaces/<oid>), pgctl sets its port and, when asked,
// starts it; then the server is registered as a flexibleServers resource.
// A failure before the registration removes what was written (RestoreDir
// cleans up after itself; a server that does not start stays on disk, its
// directory named in the error).
func (r *Runner) restoreServer(ctx context.Context, in vault.RestoreJobInput, plan *vault.RestorePlan, rp *repo.Repo, snap *repo.Snapshot,
	progress *atomic.Pointer[vault.JobProgress]) ([]byte, error) {
	n := in.NewServer
	for _, spec := range []target.Spec{*plan.DataDir, *plan.TablespaceRoot} {
		if err := vault.CheckRestoreTargetEmpty(ctx, spec); err != nil {
			return nil, err
		}
	}
	oids, err := engine.SnapshotTablespaces(snap)
	if err != nil {
		return nil, corrupt(err)
	}
	spaces := make(map[string]string, len(oids))
	for _, oid := range oids {
		spaces[oid] = n.TablespaceDirectory(oid)
	}
	dataDir := n.DataDirectory()
	progress.Store(&vault.JobProgress{Phase: "Transferring", BytesTotal: snap.Stats.Bytes})
	res, err := engine.RestoreDir(ctx, rp, snap, engine.RestoreDirOptions{DataDir: dataDir, Tablespaces: spaces,
		Progress: func(done, total int64) {
			progress.Store(&vault.JobProgress{Phase: "Transferring", BytesDone: done, BytesTotal: total})
		}})
	if errors.Is(err, engine.ErrTargetNotEmpty) {
		return nil, &vault.Error{Kind: vault.KindConflict, Code: "UserErrorRestoreTargetAlreadyExists", Err: err,
			Message: "The new server's directories are not empty; nothing was written: " + err.Error()}
	}
	if err != nil {
		return nil, restoreError(err, "file://"+dataDir)
	}
	major, err := pgctl.Major(dataDir)
	if err != nil {
		return nil, corrupt(err)
	}
	progress.Store(&vault.JobProgress{Phase: "Configuring", BytesDone: res.Bytes, BytesTotal: res.Bytes})
	if err := pgctl.Configure(dataDir, n.Port); err != nil {
		return nil, restoreTargetError(err)
	}
	dirs := []string{dataDir}
	if len(oids) > 0 {
		dirs = append(dirs, filepath.Join(n.Root, n.DataDir+"-tablespaces"))
	}
	if err := pgctl.Own(dirs...); err != nil {
		return nil, restoreTargetError(err)
	}
	if n.Start {
		progress.Store(&vault.JobProgress{Phase: "Starting", BytesDone: res.Bytes, BytesTotal: res.Bytes})
		bin, err := pgctl.BinDir(r.cfg.PGInstallDir, major)
		if err != nil {
			return nil, &vault.Error{Kind: vault.KindInvalid, Code: "UserErrorRestoredServerNotStarted", Err: err,
				Message: fmt.Sprintf("The data directory %s was restored, but the server cannot be started: %v.", dataDir, err)}
		}
		if err := pgctl.Start(ctx, bin, dataDir, filepath.Join(dataDir, "pgvault-start.log")); err != nil {
			return nil, &vault.Error{Kind: vault.KindInvalid, Code: "UserErrorRestoredServerNotStarted", Err: err,
				Message: fmt.Sprintf("The data directory %s was restored, but the server did not start: %v.", dataDir, err)}
		}
	}
	srv, err := r.cfg.Service.RegisterRestoredServer(ctx, in, major)
	if err != nil {
		return nil, err
	}
	return json.Marshal(vault.RestoreJobResult{Location: "file://" + dataDir, Bytes: res.Bytes, ServerID: srv.ID})
}

// openRecoveryPoint opens the repository of the restore's vault and the
// snapshot of its recovery point.
func (r *Runner) openRecoveryPoint(ctx context.Context, in vault.RestoreJobInput) (*repo.Repo, *repo.Snapshot, error) {
	rp, err := r.cfg.Repos(ctx, in.VaultID)
	if err != nil {
		return nil, nil, fmt.Errorf("while opening the vault's repository: %w", err)
	}
	id, err := repo.ParseID(in.SnapshotID)
	if err != nil {
		return nil, nil, corrupt(fmt.Errorf("while reading the snapshot ID of recovery point %s: %w", in.RecoveryPointID, err))
	}
	snap, err := rp.Snapshot(ctx, id)
	if err != nil {
		return nil, nil, restoreError(fmt.Errorf("while reading snapshot %s of recovery point %s: %w", in.SnapshotID, in.RecoveryPointID, err), "")
	}
	return rp, snap, nil
}

// upload streams what WriteTarFormat writes into one object of the target:
// Create reads the other end of a pipe in its own goroutine, and Close
// waits for it.
type upload struct {
	pw   *io.PipeWriter
	done chan error
}

func newUpload(ctx context.Context, tg target.Target, name string, wrote func(int64), finished func(vault.RestoredFile)) *upload {
	pr, pw := io.Pipe()
	u := &upload{pw: pw, done: make(chan error, 1)}
	go func() {
		var n atomic.Int64
		src := &hashingReader{r: pr, h: sha256.New(), n: &n}
		_, err := tg.Create(ctx, name, -1, &countingReader{r: src, add: wrote})
		if err != nil {
			_ = pr.CloseWithError(err) // the writer sees the target's error
		} else {
			finished(vault.RestoredFile{Name: name, Bytes: n.Load(), SHA256: hex.EncodeToString(src.h.Sum(nil))})
		}
		u.done <- err
	}()
	return u
}

func (u *upload) Write(p []byte) (int, error) { return u.pw.Write(p) }

// Close ends the object and waits until the target has it.
func (u *upload) Close() error {
	_ = u.pw.Close()
	return <-u.done
}

// CloseWithError abandons the object: the target keeps nothing of it.
func (u *upload) CloseWithError(err error) error {
	_ = u.pw.CloseWithError(err)
	<-u.done
	return nil
}

// countingReader reports the bytes read through it.
type countingReader struct {
	r   io.Reader
	add func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.add(int64(n))
	}
	return n, err
}

// corrupt marks an error as damage in the repository.
func corrupt(err error) error {
	return &vault.Error{Kind: vault.KindInvalid, Code: "RecoveryPointDataCorrupt", Err: err,
		Message: "The recovery point's data in the vault's repository is damaged or missing: " + err.Error() + ". Run `pgvault repo check`; restore another recovery point."}
}

// restoreError describes a failed restore for the job's error: damage in
// the repository, else (while writing to location) the target's fault.
func restoreError(err error, location string) error {
	if _, ok := vault.AsError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, repo.ErrCorrupt) || errors.Is(err, repo.ErrNotFound) {
		return corrupt(err)
	}
	if location != "" {
		return restoreTargetError(err)
	}
	return &vault.Error{Kind: vault.KindInternal, Code: "RestoreFailed", Message: "The restore failed: " + err.Error(), Err: err}
}

// restoreTargetError describes a failed write to a restore target.
func restoreTargetError(err error) error {
	if _, ok := vault.AsError(err); ok {
		return err
	}
	if errors.Is(err, target.ErrExists) {
		return &vault.Error{Kind: vault.KindConflict, Code: "UserErrorRestoreTargetAlreadyExists", Err: err,
			Message: "The restore target already holds a file of that name; nothing was replaced: " + err.Error()}
	}
	return &vault.Error{Kind: vault.KindInvalid, Code: "UserErrorRestoreTargetNotAccessible", Err: err,
		Message: "Writing the restored files failed: " + err.Error()}
}
