package repo

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"

	"github.com/pgvault/pgvault/internal/storage"
)

func errorsIsNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// treePos is where an item starts in a snapshot's tree stream.
type treePos struct {
	blob int
	off  int
}

// treeReader streams a snapshot's tree items, one tree blob in memory.
type treeReader struct {
	r      *Repo
	ctx    context.Context
	ids    []ID
	next   int // index of the next blob to load
	buf    []byte
	off    int
	hasher *idHasher
	check  treeChecker
	it     treeItem
}

func (r *Repo) newTreeReader(ctx context.Context, s *Snapshot, at treePos) (*treeReader, error) {
	t := &treeReader{r: r, ctx: ctx, ids: s.tree, next: at.blob, hasher: r.keys.newIDHasher()}
	if at.blob > 0 || at.off > 0 {
		if err := t.load(); err != nil {
			return nil, err
		}
		if at.off > len(t.buf) {
			return nil, fmt.Errorf("%w: tree position past its blob", ErrCorrupt)
		}
		t.off = at.off
	}
	return t, nil
}

func (t *treeReader) load() error {
	if t.next >= len(t.ids) {
		return fmt.Errorf("%w: the tree ends without a trailer", ErrCorrupt)
	}
	b, err := t.r.loadBlob(t.ctx, BlobTree, t.ids[t.next], -1, t.hasher, nil)
	if err != nil {
		return fmt.Errorf("while reading tree blob %d: %w", t.next, err)
	}
	if len(b) == 0 {
		return fmt.Errorf("%w: empty tree blob", ErrCorrupt)
	}
	t.buf, t.off = b, 0
	t.next++
	return nil
}

// pos returns the position of the next item.
func (t *treeReader) pos() treePos {
	if t.off >= len(t.buf) {
		return treePos{blob: t.next, off: 0}
	}
	return treePos{blob: t.next - 1, off: t.off}
}

// item returns the next item, checked against the tree grammar. It returns
// io.EOF after the trailer.
func (t *treeReader) item() (*treeItem, error) {
	if t.check.done {
		if t.off < len(t.buf) || t.next < len(t.ids) {
			return nil, fmt.Errorf("%w: tree data after the trailer", ErrCorrupt)
		}
		return nil, io.EOF
	}
	if t.off >= len(t.buf) {
		if err := t.load(); err != nil {
			return nil, err
		}
	}
	n, err := parseItem(t.buf[t.off:], &t.it)
	if err != nil {
		return nil, err
	}
	t.off += n
	if err := t.check.next(&t.it); err != nil {
		return nil, err
	}
	return &t.it, nil
}

// Walk calls fn for every file of the snapshot, in the order they were
// added. It holds one tree blob in memory at a time.
func (r *Repo) Walk(ctx context.Context, s *Snapshot, fn func(File) error) error {
	return r.eachItem(ctx, s, func(it *treeItem) error {
		if it.kind == itemFile {
			return fn(it.file)
		}
		return nil
	})
}

// eachItem calls fn for every item of the snapshot's tree, checked against
// the tree grammar, in order; it stops at fn's first error.
func (r *Repo) eachItem(ctx context.Context, s *Snapshot, fn func(*treeItem) error) error {
	t, err := r.newTreeReader(ctx, s, treePos{})
	if err != nil {
		return fmt.Errorf("while walking snapshot %s: %w", s.ID, err)
	}
	for {
		it, err := t.item()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("while walking snapshot %s: %w", s.ID, err)
		}
		if err := fn(it); err != nil {
			return err
		}
	}
}

// dirCache remembers where the files of recently opened snapshots are.
type dirCache struct {
	mu      sync.Mutex
	entries []*snapshotDir // most recent last
}

const dirCacheSize = 2

// snapshotDir maps path hashes to tree positions: 16 bytes and a little
// per file (100k files: a few MiB).
type snapshotDir struct {
	id   SnapshotID
	seed maphash.Seed
	pos  map[uint64][]treePos
}

func (c *dirCache) get(id SnapshotID) *snapshotDir {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, d := range c.entries {
		if d.id == id {
			c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), d)
			return d
		}
	}
	return nil
}

func (c *dirCache) put(d *snapshotDir) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, d)
	if len(c.entries) > dirCacheSize {
		c.entries = c.entries[len(c.entries)-dirCacheSize:]
	}
}

// directory returns the path directory of a snapshot, building it with one
// pass over the tree.
func (r *Repo) directory(ctx context.Context, s *Snapshot) (*snapshotDir, error) {
	if d := r.dirs.get(s.ID); d != nil {
		return d, nil
	}
	d := &snapshotDir{id: s.ID, seed: maphash.MakeSeed(), pos: make(map[uint64][]treePos)}
	t, err := r.newTreeReader(ctx, s, treePos{})
	if err != nil {
		return nil, err
	}
	for {
		p := t.pos()
		it, err := t.item()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("while reading snapshot %s: %w", s.ID, err)
		}
		if it.kind == itemFile {
			h := maphash.String(d.seed, it.file.Path)
			d.pos[h] = append(d.pos[h], p)
		}
	}
	r.dirs.put(d)
	return d, nil
}

// OpenFile opens a regular file of the snapshot for reading. Every chunk is
// verified (AEAD and content ID) as it is read; damage is an error, never
// wrong bytes. Reads run up to readAhead spans ahead (as ReadFiles).
func (r *Repo) OpenFile(ctx context.Context, s *Snapshot, path string) (io.ReadCloser, error) {
	d, err := r.directory(ctx, s)
	if err != nil {
		return nil, err
	}
	for _, p := range d.pos[maphash.String(d.seed, path)] {
		t, err := r.newTreeReader(ctx, s, p)
		if err != nil {
			return nil, err
		}
		it, err := t.item()
		if err != nil {
			return nil, fmt.Errorf("while opening %q: %w", path, err)
		}
		if it.kind != itemFile || it.file.Path != path {
			continue
		}
		if it.file.Type != TypeRegular {
			return nil, fmt.Errorf("while opening %q: it is a %v", path, it.file.Type)
		}
		f := it.file
		var chunks []spanChunk
		for {
			it, err := t.item()
			if err != nil {
				return nil, fmt.Errorf("while opening %q: %w", path, err)
			}
			if it.kind != itemChunk {
				break // the grammar allows only the file's end here
			}
			l, err := r.firstLocation(ctx, &it.id)
			if err != nil {
				return nil, fmt.Errorf("while opening %q: %w", path, err)
			}
			chunks = append(chunks, spanChunk{id: it.id, rawLen: it.rawLen, loc: l})
		}
		pool := make(chan *spanBuf, readAhead)
		for range readAhead {
			pool <- &spanBuf{}
		}
		return &openedFile{newSpanReader(ctx, r, s, f, chunks, pool)}, nil
	}
	return nil, fmt.Errorf("while opening %q in snapshot %s: %w", path, s.ID, ErrNotFound)
}

// readAhead is how many spans an opened file reads ahead.
const readAhead = 4

// openedFile is a file opened with OpenFile.
type openedFile struct{ *spanReader }

// Close stops read-ahead.
func (f *openedFile) Close() error {
	f.close()
	return nil
}
