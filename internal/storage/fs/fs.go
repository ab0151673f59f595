// Package fs is the filesystem backend of storage.Storage, the default one:
// the objects of a repository live as files under one directory, normally
// in pgvault's data directory.
//
// # Layout
//
// Object "data/ab/abcdef" is the file <dir>/data/ab/abcdef: each '/' of a
// name is a subdirectory. Files are created 0600 and directories 0700.
// Nothing else is kept on disk: a directory written by FS can be copied,
// inspected and backed up with ordinary tools.
//
// # Atomicity and durability
//
// Put writes the data to a temporary file in the object's directory, fsyncs
// it, renames it over the object's name (IfAbsent: hard-links it to the
// object's name, which fails if the name exists, and removes the temporary
// name) and fsyncs the directory. The first Put into a directory also creates
// the missing directories and fsyncs their parents. Delete unlinks the file
// and fsyncs its directory. So a returned Put or Delete survives a crash, and
// a crash in the middle of a Put leaves at most a temporary file.
//
// Temporary files are called ".tmp~" followed by random digits. '~' cannot
// occur in an object name, so no object is ever mistaken for a temporary file
// or the other way round: List and every other method ignore temporary files,
// and any other file or directory whose name is not a valid name segment.
// RemoveTemp deletes the temporary files that crashes left behind.
//
// # Directories
//
// Delete never removes directories, which avoids racing with a Put that is
// about to write into one; empty directories are harmless and few (the
// repository fans its objects out over a fixed set of directories). When a Put
// needs the name of a directory that holds no files for an object ("a" after
// "a/b/c" was deleted), it removes that directory and those below it. A name that is a directory of existing
// objects cannot become an object, nor can a name below an object: such a
// Put fails (the storage contract forbids both).
//
// # Requirements
//
// The directory must be on a local POSIX filesystem with case-sensitive
// names and hard links (ext4, xfs, btrfs, zfs). Several FS values and several
// processes may use one directory at once. FS never creates symbolic links;
// do not add any.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/internal/readers"
)

// tempPrefix starts the name of every temporary file. '~' is not allowed in
// object names, so no object or directory name starts with it.
const tempPrefix = ".tmp~"

// copyBufferSize is the size of the buffer Put copies data through.
const copyBufferSize = 1 << 20

// FS is a storage.Storage on a directory of the local filesystem. It is safe
// for concurrent use.
type FS struct {
	dir string
	// durable holds the directories (slash-separated, relative to dir) known
	// to exist with durable entries in all their parents, so that Put
	// fsyncs a directory's parents only once per FS.
	durable sync.Map
}

var _ storage.Storage = (*FS)(nil)

// Open returns an FS on dir, creating dir (0700, with its parents) if it
// does not exist. It does not read or change what dir holds.
func Open(dir string) (*FS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("while opening the storage directory %s: %w", dir, err)
	}
	if err := makeDirAll(abs); err != nil {
		return nil, fmt.Errorf("while creating the storage directory %s: %w", abs, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("while opening the storage directory %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("while opening the storage directory %s: not a directory", abs)
	}
	return &FS{dir: abs}, nil
}

// Dir returns the absolute path of the directory f stores objects in.
func (f *FS) Dir() string {
	return f.dir
}

// Put implements storage.Storage.
func (f *FS) Put(ctx context.Context, name string, r io.Reader, size int64, opts storage.PutOptions) error {
	if err := storage.CheckName(name); err != nil {
		return fmt.Errorf("while storing %q: %w", name, err)
	}
	if size < 0 {
		return fmt.Errorf("while storing %q: negative size %d", name, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("while storing %q: %w", name, err)
	}
	if err := f.put(ctx, name, r, size, opts); err != nil {
		return fmt.Errorf("while storing %q: %w", name, err)
	}
	return nil
}

// put does the work of Put once its arguments are checked.
func (f *FS) put(ctx context.Context, name string, r io.Reader, size int64, opts storage.PutOptions) (err error) {
	dir := path.Dir(name)
	if dir == "." {
		dir = ""
	}
	tmp, err := f.createTemp(dir)
	if err != nil {
		return err
	}
	tmpPath := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close() // after a failure; its error adds nothing
		}
		if err != nil || opts.IfAbsent {
			// Gone already after a successful rename; the hard link
			// of IfAbsent leaves the temporary name to remove. A
			// temporary file that stays behind is invisible and
			// RemoveTemp deletes it.
			os.Remove(tmpPath)
		}
	}()

	buf := make([]byte, min(size+1, copyBufferSize))
	// Hide (*os.File).ReadFrom so that the copy goes through buf.
	if _, err := io.CopyBuffer(struct{ io.Writer }{tmp}, readers.Exact(ctx, r, size), buf); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	err = tmp.Close()
	tmp = nil
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	target := f.path(name)
	if opts.IfAbsent {
		err = f.commit(name, func() error { return os.Link(tmpPath, target) })
	} else {
		err = f.commit(name, func() error { return os.Rename(tmpPath, target) })
	}
	if err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		return fmt.Errorf("the object may be stored but not durable: %w", err)
	}
	return nil
}

// commit runs op, a link or rename that puts the temporary file under name.
// When a directory that holds no files stands in the way (left behind by
// Delete), it removes the directory and runs op once more.
func (f *FS) commit(name string, op func() error) error {
	target := f.path(name)
	for retried := false; ; retried = true {
		err := op()
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.EISDIR) {
			return err
		}
		if fi, lerr := os.Lstat(target); lerr != nil || !fi.IsDir() {
			if errors.Is(err, syscall.EEXIST) {
				return storage.ErrAlreadyExists // link(2) met an object
			}
			return err
		}
		if retried {
			return err
		}
		f.durable.Range(func(key, _ any) bool {
			if dir := key.(string); dir == name || strings.HasPrefix(dir, name+"/") {
				f.durable.Delete(key)
			}
			return true
		})
		if err := removeEmptyTree(target); err != nil {
			if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
				return fmt.Errorf("files exist under %q, so it cannot be an object", name+"/")
			}
			return fmt.Errorf("while removing the empty directory %s: %w", target, err)
		}
	}
}

// removeEmptyTree removes the directory dir and the directories below it,
// if none of them holds anything but directories; otherwise it fails with
// ENOTEMPTY.
func removeEmptyTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			return syscall.ENOTEMPTY
		}
		if err := removeEmptyTree(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return syscall.Rmdir(dir)
}

// createTemp creates a temporary file in the directory dir (relative,
// slash-separated, "" for the root), creating the directory if needed.
func (f *FS) createTemp(dir string) (*os.File, error) {
	for retried := false; ; retried = true {
		if err := f.ensureDir(dir); err != nil {
			return nil, err
		}
		tmp, err := os.CreateTemp(f.path(dir), tempPrefix+"*")
		if err == nil {
			return tmp, nil
		}
		if retried || !notFound(err) {
			return nil, err
		}
		// The directory went away after ensureDir saw it (a concurrent
		// Put removed it while empty): forget it and start over.
		for d := dir; d != ""; d = parentDir(d) {
			f.durable.Delete(d)
		}
	}
}

// ensureDir makes sure that the directory dir (relative, slash-separated)
// exists and that its entry and those of its parents are durable.
func (f *FS) ensureDir(dir string) error {
	if dir == "" {
		return nil
	}
	if _, ok := f.durable.Load(dir); ok {
		return nil
	}
	if err := f.ensureDir(parentDir(dir)); err != nil {
		return err
	}
	p := f.path(dir)
	if err := os.Mkdir(p, 0o700); err != nil {
		if !errors.Is(err, iofs.ErrExist) {
			return err
		}
		if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
			return fmt.Errorf("%q is an object, so it cannot be a directory", dir)
		}
	}
	// Sync the parent even if the directory existed: a concurrent Put
	// may have created it and not synced the parent yet.
	if err := syncDir(filepath.Dir(p)); err != nil {
		return err
	}
	f.durable.Store(dir, struct{}{})
	return nil
}

// Get implements storage.Storage.
func (f *FS) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	file, _, err := f.open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("while reading %q: %w", name, err)
	}
	return readers.WithContext(ctx, file), nil
}

// GetRange implements storage.Storage.
func (f *FS) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	file, fi, err := f.open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("while reading %q: %w", name, err)
	}
	size := fi.Size()
	if offset < 0 || length < 0 || offset > size || length > size-offset {
		file.Close() // read-only; its error adds nothing
		return nil, fmt.Errorf("while reading %d bytes at %d of %q (%d bytes): %w", length, offset, name, size, storage.ErrInvalidRange)
	}
	return readers.WithContext(ctx, &sectionFile{io.NewSectionReader(file, offset, length), file}), nil
}

// sectionFile reads a section of a file and closes the file.
type sectionFile struct {
	*io.SectionReader
	file *os.File
}

// Close implements io.Closer.
func (s *sectionFile) Close() error {
	return s.file.Close()
}

// open opens the object called name.
func (f *FS) open(ctx context.Context, name string) (*os.File, os.FileInfo, error) {
	if err := storage.CheckName(name); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	file, err := os.Open(f.path(name))
	if err != nil {
		if notFound(err) {
			return nil, nil, storage.ErrNotFound
		}
		return nil, nil, err
	}
	fi, err := file.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = storage.ErrNotFound // a directory
	}
	if err != nil {
		file.Close() // read-only; its error adds nothing
		return nil, nil, err
	}
	return file, fi, nil
}

// Stat implements storage.Storage.
func (f *FS) Stat(ctx context.Context, name string) (storage.Info, error) {
	if err := storage.CheckName(name); err != nil {
		return storage.Info{}, fmt.Errorf("while describing %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, fmt.Errorf("while describing %q: %w", name, err)
	}
	fi, err := os.Stat(f.path(name))
	if err != nil {
		if notFound(err) {
			return storage.Info{}, fmt.Errorf("while describing %q: %w", name, storage.ErrNotFound)
		}
		return storage.Info{}, fmt.Errorf("while describing %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.Info{}, fmt.Errorf("while describing %q: %w", name, storage.ErrNotFound)
	}
	return storage.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements storage.Storage. It reads one directory at a time, so it
// needs memory for the largest directory, not for all names.
func (f *FS) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("while listing %q: %w", prefix, err)
	}
	// Start in the deepest directory the prefix names; if that is no
	// valid name (say "../x" or "a//b"), no object can match.
	dir, match := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, match = prefix[:i], prefix[i+1:]
		if storage.CheckName(dir) != nil {
			return nil
		}
	}
	return f.walk(ctx, prefix, dir, match, fn)
}

// walk lists the directory dir (relative, slash-separated), calling fn for
// the objects in it and below it whose first segment under dir starts with
// match.
func (f *FS) walk(ctx context.Context, prefix, dir, match string, fn func(storage.Info) error) error {
	entries, err := os.ReadDir(f.path(dir))
	if err != nil {
		if notFound(err) {
			return nil
		}
		return fmt.Errorf("while listing %q: %w", prefix, err)
	}
	type entry struct {
		iofs.DirEntry
		key string // the name, with '/' after a directory's
	}
	var list []entry
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, match) || storage.CheckName(n) != nil {
			continue // not matching, or a temporary file or a stranger
		}
		switch {
		case e.IsDir():
			list = append(list, entry{e, n + "/"})
		case e.Type().IsRegular():
			list = append(list, entry{e, n})
		}
	}
	// The children of directory "a" sort as "a/...", after "a-b" and
	// "a.b" and before "a0".
	slices.SortFunc(list, func(a, b entry) int { return strings.Compare(a.key, b.key) })

	for _, e := range list {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("while listing %q: %w", prefix, err)
		}
		name := e.Name()
		if dir != "" {
			name = dir + "/" + name
		}
		if len(name) > storage.MaxNameLen {
			continue
		}
		if e.IsDir() {
			if err := f.walk(ctx, prefix, name, "", fn); err != nil {
				return err
			}
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if notFound(err) {
				continue // deleted since ReadDir
			}
			return fmt.Errorf("while listing %q: %w", prefix, err)
		}
		if err := fn(storage.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Storage. It leaves the object's directory in
// place, even if it is now empty.
func (f *FS) Delete(ctx context.Context, name string) error {
	if err := storage.CheckName(name); err != nil {
		return fmt.Errorf("while deleting %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("while deleting %q: %w", name, err)
	}
	p := f.path(name)
	err := ignoringEINTR(func() error { return syscall.Unlink(p) })
	if err != nil {
		if notFound(err) || errors.Is(err, syscall.EISDIR) {
			return fmt.Errorf("while deleting %q: %w", name, storage.ErrNotFound)
		}
		return fmt.Errorf("while deleting %q: %w", name, &os.PathError{Op: "unlink", Path: p, Err: err})
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("while deleting %q: the deletion may not be durable: %w", name, err)
	}
	return nil
}

// RemoveTemp deletes the temporary files that Puts interrupted by a crash
// left behind, if they were last modified before before, and returns how
// many it deleted. A Put in progress has a temporary file too and fails if
// it loses it: pass a time before the start of any Put that may still run,
// such as the start of the process.
func (f *FS) RemoveTemp(ctx context.Context, before time.Time) (int, error) {
	removed := 0
	err := filepath.WalkDir(f.dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if notFound(err) {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		if !fi.ModTime().Before(before) {
			return nil
		}
		if err := os.Remove(p); err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		removed++
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("while removing temporary files under %s: %w", f.dir, err)
	}
	return removed, nil
}

// path returns the filesystem path of a name or directory (relative,
// slash-separated, already checked).
func (f *FS) path(name string) string {
	return filepath.Join(f.dir, filepath.FromSlash(name))
}

// parentDir returns the directory of the relative directory dir, "" for the
// root.
func parentDir(dir string) string {
	i := strings.LastIndexByte(dir, '/')
	if i < 0 {
		return ""
	}
	return dir[:i]
}

// notFound reports whether err says that a path or one of its directories
// does not exist (ENOTDIR: a directory of the path is a file).
func notFound(err error) bool {
	return errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// makeDirAll is os.MkdirAll(dir, 0700) that also fsyncs the parent of every
// directory it creates.
func makeDirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := makeDirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, iofs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory, making the entries in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("while syncing the directory %s: %w", dir, err)
	}
	return nil
}

// ignoringEINTR calls fn until it does not fail with EINTR.
func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
