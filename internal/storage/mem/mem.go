// Package mem is an in-memory storage.Storage for tests. It keeps the whole
// contract, including the rule that a name is never both an object and a
// directory of another object, so that code tested against it also works on
// the filesystem backend.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/internal/readers"
)

// Mem is an in-memory storage.Storage. The zero value is not usable; call New.
type Mem struct {
	mu      sync.RWMutex
	objects map[string]object
	// dirs counts the objects under each directory: dirs["a/b"] is the
	// number of objects whose name starts with "a/b/".
	dirs map[string]int
}

// object is one stored object; data is never modified after Put.
type object struct {
	data    []byte
	modTime time.Time
}

var _ storage.Storage = (*Mem)(nil)

// New returns an empty Mem.
func New() *Mem {
	return &Mem{objects: make(map[string]object), dirs: make(map[string]int)}
}

// Put implements storage.Storage.
func (m *Mem) Put(ctx context.Context, name string, r io.Reader, size int64, opts storage.PutOptions) error {
	if err := storage.CheckName(name); err != nil {
		return fmt.Errorf("while storing %q: %w", name, err)
	}
	if size < 0 {
		return fmt.Errorf("while storing %q: negative size %d", name, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("while storing %q: %w", name, err)
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(size, 64<<20)))
	if _, err := buf.ReadFrom(readers.Exact(ctx, r, size)); err != nil {
		return fmt.Errorf("while storing %q: %w", name, err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	// Committing is the map assignment below, so a ctx cancelled while r
	// was read is caught here at the latest.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("while storing %q: %w", name, err)
	}
	if m.dirs[name] > 0 {
		return fmt.Errorf("while storing %q: objects exist under %q, so it cannot be an object", name, name+"/")
	}
	for dir := range parents(name) {
		if _, ok := m.objects[dir]; ok {
			return fmt.Errorf("while storing %q: %q is an object, so it cannot be a directory", name, dir)
		}
	}
	if _, ok := m.objects[name]; ok {
		if opts.IfAbsent {
			return fmt.Errorf("while storing %q: %w", name, storage.ErrAlreadyExists)
		}
	} else {
		for dir := range parents(name) {
			m.dirs[dir]++
		}
	}
	m.objects[name] = object{data: buf.Bytes(), modTime: time.Now()}
	return nil
}

// Get implements storage.Storage.
func (m *Mem) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	obj, err := m.lookup(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("while reading %q: %w", name, err)
	}
	return readers.WithContext(ctx, io.NopCloser(bytes.NewReader(obj.data))), nil
}

// GetRange implements storage.Storage.
func (m *Mem) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	obj, err := m.lookup(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("while reading %q: %w", name, err)
	}
	size := int64(len(obj.data))
	if offset < 0 || length < 0 || offset > size || length > size-offset {
		return nil, fmt.Errorf("while reading %d bytes at %d of %q (%d bytes): %w", length, offset, name, size, storage.ErrInvalidRange)
	}
	data := obj.data[offset : offset+length]
	return readers.WithContext(ctx, io.NopCloser(bytes.NewReader(data))), nil
}

// Stat implements storage.Storage.
func (m *Mem) Stat(ctx context.Context, name string) (storage.Info, error) {
	obj, err := m.lookup(ctx, name)
	if err != nil {
		return storage.Info{}, fmt.Errorf("while describing %q: %w", name, err)
	}
	return storage.Info{Name: name, Size: int64(len(obj.data)), ModTime: obj.modTime}, nil
}

// List implements storage.Storage. It calls fn with a snapshot taken when
// the listing starts and holds no lock while fn runs.
func (m *Mem) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("while listing %q: %w", prefix, err)
	}
	m.mu.RLock()
	var infos []storage.Info
	for name, obj := range m.objects {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, storage.Info{Name: name, Size: int64(len(obj.data)), ModTime: obj.modTime})
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(infos, func(a, b storage.Info) int { return strings.Compare(a.Name, b.Name) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("while listing %q: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Storage.
func (m *Mem) Delete(ctx context.Context, name string) error {
	if err := storage.CheckName(name); err != nil {
		return fmt.Errorf("while deleting %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("while deleting %q: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[name]; !ok {
		return fmt.Errorf("while deleting %q: %w", name, storage.ErrNotFound)
	}
	delete(m.objects, name)
	for dir := range parents(name) {
		if m.dirs[dir]--; m.dirs[dir] == 0 {
			delete(m.dirs, dir)
		}
	}
	return nil
}

// lookup returns the object called name after checking the name and ctx.
func (m *Mem) lookup(ctx context.Context, name string) (object, error) {
	if err := storage.CheckName(name); err != nil {
		return object{}, err
	}
	if err := ctx.Err(); err != nil {
		return object{}, err
	}
	m.mu.RLock()
	obj, ok := m.objects[name]
	m.mu.RUnlock()
	if !ok {
		return object{}, storage.ErrNotFound
	}
	return obj, nil
}

// parents yields the directories of name: "a" and "a/b" for "a/b/c".
func parents(name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := range len(name) {
			if name[i] == '/' && !yield(name[:i]) {
				return
			}
		}
	}
}
