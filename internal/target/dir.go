package target

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// directory writes files into a local directory, through an os.Root so that
// no symbolic link can lead a write out of it.
type directory struct {
	root     *os.Root
	location string
}

func openDir(s Spec) (*directory, error) {
	loc := s.Location()
	if !filepath.IsLocal(s.Dir) {
		return nil, fmt.Errorf("while opening %s: %w: the directory is not inside %s", loc, ErrNotAllowed, s.Root)
	}
	top, err := os.OpenRoot(s.Root)
	if err != nil {
		return nil, fmt.Errorf("while opening the allowed directory %s: %w", s.Root, err)
	}
	defer func() { _ = top.Close() }()
	if err := top.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("while creating %s: %w", loc, err)
	}
	// Make the new directories durable: sync each directory on the way down.
	p := "."
	for _, seg := range strings.Split(s.Dir, string(filepath.Separator)) {
		if err := syncDir(top, p); err != nil {
			return nil, fmt.Errorf("while syncing %s: %w", filepath.Join(s.Root, p), err)
		}
		p = filepath.Join(p, seg)
	}
	d, err := top.OpenRoot(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("while opening %s: %w", loc, err)
	}
	return &directory{root: d, location: loc}, nil
}

func (d *directory) Location() string { return d.location }

func (d *directory) Close() error { return d.root.Close() }

// Exists looks for a file (or anything else) of that name.
func (d *directory) Exists(_ context.Context, name string) (bool, error) {
	if !filepath.IsLocal(name) || strings.ContainsRune(name, filepath.Separator) {
		return false, fmt.Errorf("while looking for %q in %s: not a file name", name, d.location)
	}
	_, err := d.root.Lstat(name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("while looking for %s in %s: %w", name, d.location, err)
}

// Create writes r to a temporary file (mode 0600) next to the final name,
// syncs it, hard-links it to the name (which fails if the name exists, so
// nothing is ever replaced), removes the temporary name and syncs the
// directory. On failure the temporary file is removed.
func (d *directory) Create(ctx context.Context, name string, _ int64, r io.Reader) (n int64, err error) {
	if exists, err := d.Exists(ctx, name); err != nil {
		return 0, err
	} else if exists {
		return 0, fmt.Errorf("while creating %s in %s: %w", name, d.location, ErrExists)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := "." + name + ".partial-" + hex.EncodeToString(rnd[:])
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("while creating %s in %s: %w", name, d.location, err)
	}
	linked := false
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if !linked || err != nil {
			_ = d.root.Remove(tmp)
		}
		if linked && err != nil {
			_ = d.root.Remove(name)
		}
	}()
	n, err = io.Copy(f, ctxReader{ctx, r})
	if err != nil {
		return n, fmt.Errorf("while writing %s in %s: %w", name, d.location, err)
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("while syncing %s in %s: %w", name, d.location, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return n, fmt.Errorf("while closing %s in %s: %w", name, d.location, cerr)
	}
	if err := d.root.Link(tmp, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return n, fmt.Errorf("while creating %s in %s: %w", name, d.location, ErrExists)
		}
		return n, fmt.Errorf("while naming %s in %s: %w", name, d.location, err)
	}
	linked = true
	if err := d.root.Remove(tmp); err != nil {
		return n, fmt.Errorf("while removing the temporary file of %s in %s: %w", name, d.location, err)
	}
	if err := syncDir(d.root, "."); err != nil {
		return n, fmt.Errorf("while syncing %s: %w", d.location, err)
	}
	return n, nil
}

// syncDir fsyncs a directory of a root, so that the names in it are durable.
func syncDir(r *os.Root, name string) error {
	f, err := r.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// dirEmpty reports whether the directory of s (inside its root, no symbolic
// link followed out of it) has no entry or does not exist yet.
func dirEmpty(s Spec) (bool, error) {
	loc := s.Location()
	if !filepath.IsLocal(s.Dir) && s.Dir != "." {
		return false, fmt.Errorf("while looking into %s: %w: the directory is not inside %s", loc, ErrNotAllowed, s.Root)
	}
	top, err := os.OpenRoot(s.Root)
	if err != nil {
		return false, fmt.Errorf("while opening the allowed directory %s: %w", s.Root, err)
	}
	defer func() { _ = top.Close() }()
	f, err := top.Open(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("while opening %s: %w", loc, err)
	}
	defer func() { _ = f.Close() }()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("while reading %s: %w", loc, err)
	}
	return len(names) == 0, nil
}
