package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgvault/pgvault/internal/repo"
)

// TablespaceMapPath is where a backup keeps the server's tablespace_map:
// one line "<oid> <location>" per extra tablespace.
const TablespaceMapPath = "tablespace_map"

// ErrTargetNotEmpty: a restore's data directory or a tablespace target holds
// files; nothing was written.
var ErrTargetNotEmpty = errors.New("the restore target is not empty")

// RestoreDirOptions configure RestoreDir.
type RestoreDirOptions struct {
	// DataDir is the data directory to write. It must not exist or be
	// empty; it is created with mode 0700.
	DataDir string
	// Tablespaces maps a tablespace OID to the directory its files go to.
	// A tablespace not in the map goes back to its original location as
	// the snapshot records it (like pg_basebackup -Fp). Every tablespace
	// target must be absent or empty, else nothing is written.
	Tablespaces map[string]string
	// Parallel is how many chunks are read and written at once (default 4).
	Parallel int
	// Progress, if set, is called with the bytes written so far and the
	// snapshot's total, at most a few times a second and once at the end,
	// never concurrently.
	Progress func(done, total int64)
}

// RestoreResult describes a finished restore.
type RestoreResult struct {
	// Files counts the entries written: regular files, directories and
	// links.
	Files int
	// Bytes is the content written (the sum of the regular files' sizes).
	Bytes int64
}

// progressEvery is the least time between two Progress calls.
const progressEvery = 250 * time.Millisecond

// RestoreDir writes snapshot s of a backup as a data directory, as
// `pg_basebackup -Fp` would have: every file at its path (backup_label, the
// WAL that makes the backup consistent under pg_wal, and backup_manifest, so
// that pg_verifybackup checks the directory as it is), each extra
// tablespace's files in its target directory with a pg_tblspc/<oid> link to
// it. The snapshot's tablespace_map is kept as backed up when every
// tablespace goes back to its original location; otherwise it is rewritten
// with the new locations (the server reads it when it starts, and
// pg_verifybackup then needs --ignore=tablespace_map). `pg_ctl start` on the
// directory recovers to the end of the backup and opens.
//
// The targets are checked before anything is written: a data directory or
// tablespace target that holds files fails with ErrTargetNotEmpty. Content
// is streamed with bounded memory (repo.WalkContent), every byte verified
// before it is written; the files are made durable (fsync) before
// RestoreDir returns. On any error, everything RestoreDir created is
// removed, so that no half restore looks valid, and the error names the
// snapshot and the file. A repository lock is held throughout, so a prune
// planned meanwhile leaves the snapshot's packs alone (docs/design.md R44).
func RestoreDir(ctx context.Context, r *repo.Repo, s *repo.Snapshot, opts RestoreDirOptions) (*RestoreResult, error) {
	rs, err := planRestore(ctx, r, s, opts)
	if err != nil {
		return nil, fmt.Errorf("while restoring snapshot %s: %w", s.ID, err)
	}
	lock, err := r.LockForReading(ctx)
	if err != nil {
		return nil, fmt.Errorf("while restoring snapshot %s: while locking the repository: %w", s.ID, err)
	}
	defer lock.Release(context.WithoutCancel(ctx))
	if err := rs.prepare(); err != nil {
		rs.cleanup()
		return nil, fmt.Errorf("while restoring snapshot %s: %w", s.ID, err)
	}
	res, err := rs.run(ctx, r, s, opts)
	if err != nil {
		rs.cleanup()
		return nil, fmt.Errorf("while restoring snapshot %s into %s: %w", s.ID, rs.dataDir, err)
	}
	return res, nil
}

// restoreTarget is a directory RestoreDir writes into.
type restoreTarget struct {
	dir string
	// created is the top-most directory RestoreDir made for it ("" when
	// dir existed, empty).
	created string
}

// dirRestore is one RestoreDir's state.
type dirRestore struct {
	dataDir string
	oids    []string
	spaces  map[string]string // OID -> target directory
	origMap []byte            // the snapshot's tablespace_map
	newMap  []byte            // the one to write instead; nil: keep origMap
	targets []*restoreTarget  // data directory first

	mu    sync.Mutex // guards links and open
	links map[string]bool
	open  map[*restoredFile]bool // files not done yet
}

// planRestore checks the options against the snapshot and the targets
// against the disk; it writes nothing.
func planRestore(ctx context.Context, r *repo.Repo, s *repo.Snapshot, opts RestoreDirOptions) (*dirRestore, error) {
	if opts.DataDir == "" {
		return nil, errors.New("no data directory given")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	oids, err := SnapshotTablespaces(s)
	if err != nil {
		return nil, err
	}
	for oid := range opts.Tablespaces {
		if !slices.Contains(oids, oid) {
			return nil, fmt.Errorf("the backup has no tablespace with OID %q (it has %q)", oid, oids)
		}
	}
	rs := &dirRestore{dataDir: dataDir, oids: oids, spaces: map[string]string{}, links: map[string]bool{}, open: map[*restoredFile]bool{}}
	var orig map[string]string
	if len(oids) > 0 {
		orig, rs.origMap, err = readTablespaceMap(ctx, r, s, oids)
		if err != nil {
			return nil, err
		}
	}
	moved := false
	for _, oid := range oids {
		dir, ok := opts.Tablespaces[oid]
		if !ok {
			dir = orig[oid]
		}
		if dir == "" {
			return nil, fmt.Errorf("no target for tablespace %s", oid)
		}
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		moved = moved || dir != orig[oid]
		rs.spaces[oid] = dir
	}
	if moved {
		rs.newMap = formatTablespaceMap(oids, rs.spaces)
	}
	dirs := []string{dataDir}
	for _, oid := range oids {
		dirs = append(dirs, rs.spaces[oid])
	}
	for i, d := range dirs {
		for _, e := range dirs[:i] {
			if d == e || strings.HasPrefix(d, e+string(filepath.Separator)) || strings.HasPrefix(e, d+string(filepath.Separator)) {
				return nil, fmt.Errorf("the targets %s and %s overlap", e, d)
			}
		}
		if err := checkEmpty(d); err != nil {
			return nil, err
		}
		rs.targets = append(rs.targets, &restoreTarget{dir: d})
	}
	return rs, nil
}

// checkEmpty fails unless dir is absent or an empty directory.
func checkEmpty(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("while looking at %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("while looking at %s: %w", dir, err)
	}
	return fmt.Errorf("%w: %s holds %q", ErrTargetNotEmpty, dir, names[0])
}

// prepare makes the target directories (0700), recording what it made.
func (rs *dirRestore) prepare() error {
	for _, t := range rs.targets {
		top, err := mkdirAll(t.dir)
		t.created = top
		if err != nil {
			return err
		}
		// Checked again now that it exists: nothing crept in.
		if err := checkEmpty(t.dir); err != nil {
			return err
		}
	}
	return nil
}

// mkdirAll makes dir and its missing parents with mode 0700 and returns the
// top-most directory it made ("" if dir existed).
func mkdirAll(dir string) (string, error) {
	top := ""
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("while creating %s: %w", dir, err)
		}
		top = d
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return top, fmt.Errorf("while creating %s: %w", dir, err)
	}
	return top, os.Chmod(dir, 0o700)
}

// cleanup removes what the restore wrote: the directories it made, and the
// contents of the (empty) ones it found.
func (rs *dirRestore) cleanup() {
	for rf := range rs.open {
		if rf.f != nil {
			_ = rf.f.Close()
		}
	}
	for _, t := range rs.targets {
		if t.created != "" {
			_ = os.RemoveAll(t.created)
			continue
		}
		entries, _ := os.ReadDir(t.dir)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(t.dir, e.Name()))
		}
	}
}

// local returns where a snapshot path goes on disk, and the tablespace OID
// when the path is a tablespace's pg_tblspc/<oid> itself.
func (rs *dirRestore) local(p string) (string, string) {
	if rest, ok := strings.CutPrefix(p, "pg_tblspc/"); ok {
		oid, sub, deeper := strings.Cut(rest, "/")
		if dir, ok := rs.spaces[oid]; ok {
			if !deeper {
				return filepath.Join(rs.dataDir, filepath.FromSlash(p)), oid
			}
			return filepath.Join(dir, filepath.FromSlash(sub)), ""
		}
	}
	return filepath.Join(rs.dataDir, filepath.FromSlash(p)), ""
}

// underLink reports whether p lies below a link the restore made: nothing is
// written through a link.
func (rs *dirRestore) underLink(p string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.links) == 0 {
		return false
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if rs.links[d] {
			return true
		}
	}
	return false
}

// restoreProgress counts the bytes written and reports them.
type restoreProgress struct {
	fn    func(done, total int64)
	total int64
	done  atomic.Int64
	mu    sync.Mutex
	last  time.Time
}

// add counts n bytes and reports when progressEvery passed since the last
// report (or always, with final).
func (p *restoreProgress) add(n int64, final bool) {
	done := p.done.Add(n)
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := time.Now(); final || now.Sub(p.last) >= progressEvery {
		p.last = now
		p.fn(done, p.total)
	}
}

// restoredFile is a regular file being restored. It is created (O_EXCL) on
// its first write, by whichever worker writes first, so that creating files
// runs in parallel too; an empty file is created when it is done.
type restoredFile struct {
	path string
	perm fs.FileMode
	p    *restoreProgress
	once sync.Once
	f    *os.File
	err  error
	// unflushed counts bytes written since writeback was last started.
	unflushed atomic.Int64
}

// writebackEvery is how many bytes of a file are written before the kernel
// is asked to start writing them to disk, so that the fsync when the file is
// done waits for its last few MiB only.
const writebackEvery = 8 << 20

func (r *restoredFile) open() error {
	r.once.Do(func() {
		r.f, r.err = os.OpenFile(r.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, r.perm)
		if errors.Is(r.err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(r.path), 0o700); err != nil {
				r.err = err
				return
			}
			r.f, r.err = os.OpenFile(r.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, r.perm)
		}
	})
	return r.err
}

func (r *restoredFile) WriteAt(p []byte, off int64) (int, error) {
	if err := r.open(); err != nil {
		return 0, err
	}
	n, err := r.f.WriteAt(p, off)
	r.p.add(int64(n), false)
	if r.unflushed.Add(int64(n)) >= writebackEvery && r.unflushed.Swap(0) >= writebackEvery {
		startWriteback(r.f)
	}
	return n, err
}

// close creates the file if nothing was written, makes its content
// durable and closes it.
func (r *restoredFile) close() error {
	if err := r.open(); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(r.f.Fd())); err != nil {
		r.f.Close()
		return fmt.Errorf("while syncing: %w", err)
	}
	return r.f.Close()
}

// discardWriterAt counts a file's content (read and verified) and drops it.
type discardWriterAt struct{ p *restoreProgress }

func (d discardWriterAt) WriteAt(p []byte, _ int64) (int, error) {
	d.p.add(int64(len(p)), false)
	return len(p), nil
}

// run writes the snapshot into the prepared targets.
func (rs *dirRestore) run(ctx context.Context, r *repo.Repo, s *repo.Snapshot, opts RestoreDirOptions) (*RestoreResult, error) {
	progress := &restoreProgress{fn: opts.Progress, total: s.Stats.Bytes}
	res := &RestoreResult{}
	err := r.WalkContent(ctx, s, repo.ContentOptions{
		Parallel: opts.Parallel,
		File: func(f repo.File) (io.WriterAt, error) {
			res.Files++
			w, err := rs.create(f, progress)
			if err != nil {
				return nil, fmt.Errorf("while restoring %q: %w", f.Path, err)
			}
			return w, nil
		},
		Done: func(f repo.File, w io.WriterAt) error {
			rf, ok := w.(*restoredFile)
			if !ok {
				return nil
			}
			rs.mu.Lock()
			delete(rs.open, rf)
			rs.mu.Unlock()
			if err := rf.close(); err != nil {
				return fmt.Errorf("while writing %q: %w", f.Path, err)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	if rs.newMap != nil {
		p := filepath.Join(rs.dataDir, TablespaceMapPath)
		if err := os.WriteFile(p, rs.newMap, 0o600); err != nil {
			return nil, fmt.Errorf("while writing %s: %w", p, err)
		}
	}
	for _, t := range rs.targets {
		if err := syncDirs(t.dir); err != nil {
			return nil, err
		}
	}
	res.Bytes = progress.done.Load()
	progress.add(0, true)
	return res, nil
}

// create makes one file of the snapshot and returns where its content goes.
func (rs *dirRestore) create(f repo.File, progress *restoreProgress) (io.WriterAt, error) {
	if rs.underLink(f.Path) {
		return nil, fmt.Errorf("%w: the path lies below a link of the backup", repo.ErrCorrupt)
	}
	dst, oid := rs.local(f.Path)
	if oid != "" {
		// The tablespace's own directory: a link to its target, as
		// PostgreSQL makes them.
		if f.Type != repo.TypeDir {
			return nil, fmt.Errorf("%w: a %v where a tablespace directory belongs", repo.ErrCorrupt, f.Type)
		}
		return nil, symlink(rs.spaces[oid], dst)
	}
	perm := f.Mode.Perm() | 0o600 // the owner must be able to read it
	switch f.Type {
	case repo.TypeDir:
		if err := os.Mkdir(dst, perm|0o700); errors.Is(err, fs.ErrExist) {
			if fi, err := os.Lstat(dst); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("%s exists and is not a directory", dst)
			}
			return nil, os.Chmod(dst, perm|0o700)
		} else if errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return nil, err
			}
			return nil, os.Mkdir(dst, perm|0o700)
		} else {
			return nil, err
		}
	case repo.TypeSymlink:
		rs.mu.Lock()
		rs.links[f.Path] = true
		rs.mu.Unlock()
		return nil, symlink(f.LinkTarget, dst)
	case repo.TypeRegular:
		if f.Path == TablespaceMapPath && rs.newMap != nil {
			return discardWriterAt{p: progress}, nil // written with the new locations at the end
		}
		rf := &restoredFile{path: dst, perm: perm, p: progress}
		rs.mu.Lock()
		rs.open[rf] = true
		rs.mu.Unlock()
		return rf, nil
	}
	return nil, fmt.Errorf("%w: a file of type %v", repo.ErrCorrupt, f.Type)
}

// symlink makes the link dst -> target, with its parent directory.
func symlink(target, dst string) error {
	err := os.Symlink(target, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		err = os.Symlink(target, dst)
	}
	return err
}

// startWriteback asks the kernel to start writing f's dirty pages to disk
// without waiting for them; a hint, durability comes from the fsync in close.
func startWriteback(f *os.File) {
	_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

// syncDirs makes the entries of every directory under dir (and dir) durable.
// The files' content is already: each was fsynced when it was done. Not a
// syncfs of the whole filesystem: that would also wait for every other
// program's dirty pages (on a busy host, a database's).
func syncDirs(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("while syncing %s: %w", p, err)
		}
		if !d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("while syncing %s: %w", p, err)
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return fmt.Errorf("while syncing %s: %w", p, err)
		}
		return nil
	})
}

// readTablespaceMap reads the snapshot's tablespace_map: the original
// location of each tablespace. A backup without one falls back on the
// locations in the snapshot's metadata.
func readTablespaceMap(ctx context.Context, r *repo.Repo, s *repo.Snapshot, oids []string) (map[string]string, []byte, error) {
	const maxMap = 1 << 20
	rc, err := r.OpenFile(ctx, s, TablespaceMapPath)
	if errors.Is(err, repo.ErrNotFound) {
		m, err := parseMetaTablespaces(s.Meta[MetaTablespaces], oids)
		return m, nil, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("while reading %s: %w", TablespaceMapPath, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxMap+1))
	if err != nil {
		return nil, nil, fmt.Errorf("while reading %s: %w", TablespaceMapPath, err)
	}
	if len(b) > maxMap {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", TablespaceMapPath, maxMap)
	}
	m, err := ParseTablespaceMap(b)
	if err != nil {
		return nil, nil, err
	}
	return m, b, nil
}

// ParseTablespaceMap parses a tablespace_map as PostgreSQL reads it: lines
// "<oid> <location>", ended by an LF or CR that no backslash escapes (a
// backslash takes the next byte as it is; PostgreSQL escapes "\", CR and LF
// in locations), empty lines skipped. Every line must end, every OID be a
// valid OID listed once, every location be absolute.
func ParseTablespaceMap(b []byte) (map[string]string, error) {
	m := map[string]string{}
	var line []byte
	escaped := false
	for _, c := range b {
		switch {
		case escaped:
			line = append(line, c)
			escaped = false
		case c == '\\':
			escaped = true
		case c == '\n' || c == '\r':
			if len(line) == 0 {
				continue
			}
			oid, loc, ok := strings.Cut(string(line), " ")
			switch {
			case !ok:
				return nil, fmt.Errorf("%s: a line without a space", TablespaceMapPath)
			case !validOID(oid):
				return nil, fmt.Errorf("%s: bad OID %q", TablespaceMapPath, oid)
			case !strings.HasPrefix(loc, "/"):
				return nil, fmt.Errorf("%s: tablespace %s has a location that is not absolute", TablespaceMapPath, oid)
			}
			if _, dup := m[oid]; dup {
				return nil, fmt.Errorf("%s: tablespace %s is listed twice", TablespaceMapPath, oid)
			}
			m[oid] = loc
			line = line[:0]
		default:
			line = append(line, c)
		}
	}
	if len(line) > 0 || escaped {
		return nil, fmt.Errorf("%s: the last line does not end", TablespaceMapPath)
	}
	return m, nil
}

// formatTablespaceMap writes a tablespace_map as PostgreSQL does.
func formatTablespaceMap(oids []string, locs map[string]string) []byte {
	var b []byte
	for _, oid := range oids {
		b = append(b, oid...)
		b = append(b, ' ')
		for _, c := range []byte(locs[oid]) {
			if c == '\\' || c == '\n' || c == '\r' {
				b = append(b, '\\')
			}
			b = append(b, c)
		}
		b = append(b, '\n')
	}
	return b
}

// parseMetaTablespaces reads MetaTablespaces ("oid=location,..."), where a
// location may hold "," and "=": each location runs up to the next
// ",<oid>=" of the known OIDs, in order.
func parseMetaTablespaces(v string, oids []string) (map[string]string, error) {
	m := map[string]string{}
	for i, oid := range oids {
		rest, ok := strings.CutPrefix(v, oid+"=")
		if !ok {
			return nil, fmt.Errorf("the location of tablespace %s is not in %s", oid, MetaTablespaces)
		}
		end := len(rest)
		if i+1 < len(oids) {
			end = strings.Index(rest, ","+oids[i+1]+"=")
			if end < 0 {
				return nil, fmt.Errorf("the location of tablespace %s is not in %s", oids[i+1], MetaTablespaces)
			}
		}
		m[oid] = rest[:end]
		v = strings.TrimPrefix(rest[end:], ",")
	}
	return m, nil
}
