package job

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/target"
	"github.com/pgvault/pgvault/internal/vault"
)

// ltrProgressInterval is how often a running LTR backup reports its progress
// on its ltrBackupOperations resource.
const ltrProgressInterval = time.Second

// runLtrBackup streams a base backup of a server (BASE_BACKUP with its WAL
// and a SHA256 manifest) straight into the targets of a long-term-retention
// backup, one object per archive, named as pg_basebackup -Ft names its files
// (<oid>.tar, base.tar, backup_manifest). Nothing is staged on pgvault's
// disk. Each archive's files are checksummed as they pass, and the manifest
// is written last, only after the server ended the backup and the files
// matched it (docs/design.md R47). See placeArchive for how archives are
// spread over several targets.
func (r *Runner) runLtrBackup(ctx context.Context, j *store.Job, progress *atomic.Pointer[vault.JobProgress]) ([]byte, error) {
	var in vault.LtrBackupJobInput
	if err := json.Unmarshal(j.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding the job: %w", err)
	}
	plan, err := r.cfg.Service.LtrBackupPlan(ctx, in)
	if err != nil {
		return nil, err
	}
	targets := make([]target.Target, 0, len(plan.Targets))
	defer func() {
		for _, t := range targets {
			_ = t.Close()
		}
	}()
	for _, spec := range plan.Targets {
		t, err := target.Open(ctx, spec, target.Options{})
		if err != nil {
			return nil, targetError(err)
		}
		targets = append(targets, t)
	}
	// A target that already holds a backup is refused before the server
	// does any work (Create refuses to replace anything in any case).
	for i, t := range targets {
		for _, name := range []string{pg.BaseArchiveName, pg.ManifestName} {
			exists, err := t.Exists(ctx, name)
			if err != nil {
				return nil, targetError(err)
			}
			if exists {
				return nil, &vault.Error{Kind: vault.KindConflict, Code: "LtrBackupTargetNotEmpty",
					Message: fmt.Sprintf("Target %d (%s) already holds %s, probably from another backup; pgvault never replaces backup files. Give an empty container or directory.", i, t.Location(), name)}
			}
		}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var written, done, total atomic.Int64
	report := func() error {
		p := &vault.JobProgress{Phase: "Transferring", BytesDone: written.Load(), BytesTotal: total.Load()}
		progress.Store(p)
		return r.cfg.Service.LtrBackupProgress(ctx, in.ResourceID, p.BytesDone, done.Load(), p.BytesTotal)
	}
	var wg sync.WaitGroup
	stopReports := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ltrProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-stopReports:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := report(); err != nil {
				if _, ok := vault.AsError(err); ok {
					cancel(err) // the backup is gone or no longer running
					return
				}
				if ctx.Err() == nil {
					r.log.Warn("recording the progress of an LTR backup failed", "job", j.ID, "err", err)
				}
			}
		}
	}()
	defer func() { close(stopReports); wg.Wait() }()

	loads := make([]int64, len(targets))
	baseTarget := -1
	var archives []vault.LtrArchive
	// store writes one object to the target placeArchive chooses; sums,
	// when set, takes the checksum of each file of the archive on its way.
	store := func(name string, ts pg.Tablespace, size int64, rd io.Reader, sums *archiveSums) error {
		i := placeArchive(name, loads, baseTarget)
		if name == pg.BaseArchiveName {
			baseTarget = i
		}
		src := &hashingReader{r: rd, h: sha256.New(), n: &written, tee: sums}
		n, err := targets[i].Create(ctx, name, size, src)
		var serr error
		if sums != nil {
			serr = sums.finish(err)
		}
		if src.err != nil {
			return src.err // the server's stream failed, not the target
		}
		if err != nil {
			return targetError(err)
		}
		if serr != nil {
			return serr
		}
		loads[i] += n
		a := vault.LtrArchive{Name: name, Container: i, Location: targets[i].Location(), Bytes: n, SHA256: hex.EncodeToString(src.h.Sum(nil))}
		if ts.OID != 0 {
			a.TablespaceOID, a.TablespaceLocation = ts.OID, ts.Location
		}
		archives = append(archives, a)
		return nil
	}
	files := make(map[string]pg.FileSum) // what the archives held
	var manifest []byte
	progress.Store(&vault.JobProgress{Phase: "Transferring"})
	info, err := pg.BaseBackup(ctx, plan.Conn, pg.BaseBackupOptions{
		Label: "pgvault LTR backup " + in.BackupName,
		Fast:  true,
		Progress: func(d, t int64) {
			done.Store(d)
			total.Store(t)
		},
	}, func(name string, ts pg.Tablespace, rd io.Reader) error {
		if name == pg.ManifestName {
			var err error
			manifest, err = pg.ReadManifest(rd)
			return err
		}
		prefix := ""
		if ts.OID != 0 {
			prefix = "pg_tblspc/" + strconv.FormatUint(uint64(ts.OID), 10) + "/"
		}
		return store(name, ts, ts.Size, rd, startArchiveSums(prefix, files))
	})
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return nil, cause
		}
		return nil, err
	}
	// The manifest goes last, once the server has ended the backup and the
	// archives are checked against it (docs/design.md R47): a backup that
	// differs leaves no manifest, and pg_verifybackup refuses it.
	// Its checksums are SHA256, BaseBackup's default, kept for backups that
	// leave pgvault.
	if err := pg.VerifyBackup(manifest, files, pg.ChecksumSHA256, info); err != nil {
		return nil, err
	}
	if err := store(pg.ManifestName, pg.Tablespace{}, int64(len(manifest)), bytes.NewReader(manifest), nil); err != nil {
		return nil, err
	}
	datasource := int64(0)
	for _, t := range info.Tablespaces {
		datasource += max(t.Size, 0)
	}
	return json.Marshal(vault.LtrBackupJobResult{
		ServerVersion: info.ServerVersion, SystemIdentifier: info.SystemIdentifier,
		StartLSN: info.StartLSN, EndLSN: info.EndLSN, Timeline: info.Timeline, EndTimeline: info.EndTimeline,
		DatasourceBytes: datasource, Bytes: written.Load(), Archives: archives,
	})
}

// placeArchive chooses the target of an archive when a backup writes to
// several: a tar archive goes to the target that has received the fewest
// bytes so far (the first on a tie), so tablespaces spread over the
// containers; the manifest goes next to base.tar (baseTarget, -1 when not
// yet written). With one target everything goes to it.
func placeArchive(name string, loads []int64, baseTarget int) int {
	if name == pg.ManifestName && baseTarget >= 0 {
		return baseTarget
	}
	best := 0
	for i, l := range loads {
		if l < loads[best] {
			best = i
		}
	}
	return best
}

// targetError describes a failed write to a target for the job's error.
func targetError(err error) error {
	if _, ok := vault.AsError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *pg.CheckError
	if errors.As(err, &ce) {
		return err
	}
	code := "LtrBackupTargetWriteFailed"
	if errors.Is(err, target.ErrExists) {
		code = "LtrBackupTargetNotEmpty"
	}
	return &vault.Error{Kind: vault.KindInvalid, Code: code, Message: "Writing the backup failed: " + err.Error(), Err: err}
}

// hashingReader hashes and counts what is read through it, passes it on
// to tee (when set), and keeps the source's error (other than io.EOF).
type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	n   *atomic.Int64
	tee *archiveSums
	err error
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n.Add(int64(n))
	if h.tee != nil && n > 0 {
		h.tee.write(p[:n])
	}
	if err != nil && err != io.EOF {
		h.err = err
	}
	return n, err
}

// archiveSums reads a tar archive as it streams past to its target, in a
// goroutine of its own, and records the size and SHA256 of each regular
// file, under prefix, in files.
type archiveSums struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error // the archive did not parse
}

func startArchiveSums(prefix string, files map[string]pg.FileSum) *archiveSums {
	pr, pw := io.Pipe()
	a := &archiveSums{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.err = sumArchive(pr, prefix, files)
		// The end-of-archive blocks, or the rest after an error.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return a
}

// write passes p on to the archive reader. It never fails: a reader that
// stopped drains what comes.
func (a *archiveSums) write(p []byte) { _, _ = a.pw.Write(p) }

// finish ends the archive (with the target's error, if any) and waits for
// the reader; it returns why the archive did not parse.
func (a *archiveSums) finish(err error) error {
	_ = a.pw.CloseWithError(err)
	<-a.done
	if a.err != nil && err == nil {
		return fmt.Errorf("while checking the archive: %w", a.err)
	}
	return nil
}

func sumArchive(r io.Reader, prefix string, files map[string]pg.FileSum) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		sum := sha256.New()
		n, err := io.Copy(sum, tr)
		if err != nil {
			return err
		}
		files[prefix+path.Clean(strings.TrimPrefix(h.Name, "./"))] = pg.FileSum{Size: n, Checksum: hex.EncodeToString(sum.Sum(nil))}
	}
}
