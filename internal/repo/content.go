package repo

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// DefaultContentParallel is how many chunks WalkContent reads at once when
// ContentOptions.Parallel is not set.
const DefaultContentParallel = 4

// ContentOptions configure WalkContent.
type ContentOptions struct {
	// Parallel is how many spans of chunks are read, verified and written
	// at once (default DefaultContentParallel). Memory is bounded by about
	// Parallel × 2 × 2 MiB (a span's stored and decoded bytes), whatever
	// the snapshot's size.
	Parallel int
	// File is called for every file of the snapshot, in snapshot order, on
	// the caller's goroutine, before any content of that file is passed on
	// and after File returned for every file before it. For a regular file
	// it returns where the content goes; it returns nil for the others.
	File func(f File) (io.WriterAt, error)
	// Done, if set, is called once every chunk of a regular file was
	// written to its WriterAt (for an empty file: right after File), from
	// any goroutine, possibly after File was called for later files.
	Done func(f File, w io.WriterAt) error
}

// contentFile is a regular file whose chunks are in flight.
type contentFile struct {
	f File
	w io.WriterAt
	// pending counts chunks not yet written, plus one until the walk
	// passed the file's end item.
	pending atomic.Int64
}

// Spans: consecutive chunks of a file stored one after the other in one pack
// are read with one range read and written with one WriteAt.
const (
	maxSpanRaw    = 2 << 20 // content bytes of a span
	maxSpanChunks = 64
)

// spanChunk is one chunk of a span and where its copy is.
type spanChunk struct {
	id     ID
	rawLen int
	loc    location // loc.pack nil: not in the index
}

// contentJob is a span: chunks of one file, consecutive from offset off.
type contentJob struct {
	file   *contentFile
	off    int64
	chunks []spanChunk
	raw    int // their total content length
}

// extends reports whether the chunk at location l continues the span.
func (j *contentJob) extends(l location, rawLen int) bool {
	if len(j.chunks) == 0 || len(j.chunks) >= maxSpanChunks || j.raw+rawLen > maxSpanRaw || l.pack == nil {
		return false
	}
	last := j.chunks[len(j.chunks)-1].loc
	return last.pack != nil && last.pack.id == l.pack.id && last.off+last.length == l.off
}

// spanBuf is a worker's reused buffers.
type spanBuf struct {
	sealed []byte
	raw    []byte
	one    blobBuf // for chunks read one by one
}

// WalkContent streams every file of the snapshot with its content: it calls
// opts.File for each file in order and writes each chunk of a regular file
// at its offset with WriteAt, from opts.Parallel goroutines that read,
// verify and write chunks concurrently (so WriteAt is called concurrently,
// also for one file, never twice for one range; *os.File allows that).
// Buffers are reused: memory does not grow with the snapshot's size.
//
// Every chunk is verified (AEAD and content ID) before it is written:
// damage is an error wrapping ErrCorrupt that names the file, never wrong
// bytes. On the first error WalkContent stops reading, waits for the writes
// in flight and returns that error; what was written by then is incomplete.
func (r *Repo) WalkContent(ctx context.Context, s *Snapshot, opts ContentOptions) error {
	if opts.File == nil {
		return errors.New("WalkContent needs a File function")
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultContentParallel
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel(err) })
	}
	done := func(cf *contentFile) {
		if opts.Done == nil {
			return
		}
		if err := opts.Done(cf.f, cf.w); err != nil {
			fail(err)
		}
	}

	jobs := make(chan contentJob, opts.Parallel)
	var workers sync.WaitGroup
	for range opts.Parallel {
		workers.Add(1)
		go func() {
			defer workers.Done()
			hasher := r.keys.newIDHasher()
			var buf spanBuf
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				data, err := r.loadSpan(ctx, &j, hasher, &buf)
				if err != nil {
					fail(fmt.Errorf("while reading %q of snapshot %s: %w", j.file.f.Path, s.ID, err))
					continue
				}
				if _, err := j.file.w.WriteAt(data, j.off); err != nil {
					fail(fmt.Errorf("while writing %q at offset %d: %w", j.file.f.Path, j.off, err))
					continue
				}
				if j.file.pending.Add(-1) == 0 {
					done(j.file)
				}
			}
		}()
	}

	err := r.walkChunks(ctx, s, opts.File, func(j contentJob) bool {
		select {
		case jobs <- j:
			return true
		case <-ctx.Done():
			return false
		}
	}, done)
	close(jobs)
	workers.Wait()
	if err != nil {
		fail(err) // unless a worker failed first
	}
	return firstErr
}

// walkChunks reads the tree in order, calls file for each file and send for
// each chunk of a regular file; done is called for files whose content was
// all sent and written when the end item is read.
func (r *Repo) walkChunks(ctx context.Context, s *Snapshot, file func(File) (io.WriterAt, error), send func(contentJob) bool, done func(*contentFile)) error {
	var cur *contentFile
	var off int64
	var job contentJob
	flush := func() error {
		if len(job.chunks) == 0 {
			return nil
		}
		cur.pending.Add(1) // before a worker can count it down
		if !send(job) {
			return context.Cause(ctx)
		}
		off += int64(job.raw)
		job = contentJob{}
		return nil
	}
	return r.eachItem(ctx, s, func(it *treeItem) error {
		switch it.kind {
		case itemFile:
			w, err := file(it.file)
			if err != nil {
				return err
			}
			cur, off = nil, 0
			if it.file.Type == TypeRegular {
				if w == nil {
					return fmt.Errorf("no destination for %q", it.file.Path)
				}
				cur = &contentFile{f: it.file, w: w}
				cur.pending.Store(1)
			}
		case itemChunk:
			l, err := r.firstLocation(ctx, &it.id)
			if err != nil {
				return fmt.Errorf("while reading %q of snapshot %s: %w", cur.f.Path, s.ID, err)
			}
			if !job.extends(l, it.rawLen) {
				if err := flush(); err != nil {
					return err
				}
			}
			if len(job.chunks) == 0 {
				job = contentJob{file: cur, off: off}
			}
			job.chunks = append(job.chunks, spanChunk{id: it.id, rawLen: it.rawLen, loc: l})
			job.raw += it.rawLen
		case itemEnd:
			if err := flush(); err != nil {
				return err
			}
			if cur != nil && cur.pending.Add(-1) == 0 {
				done(cur)
			}
			cur = nil
		}
		return nil
	})
}

// firstLocation returns the first known location of a data blob, a
// location with a nil pack when the index has none (the read then reports
// it, or finds the blob in an index object written since).
func (r *Repo) firstLocation(ctx context.Context, id *ID) (location, error) {
	locs, err := r.locations(ctx, id)
	if err != nil || len(locs) == 0 {
		return location{}, err
	}
	return locs[0], nil
}

// loadSpan reads a span's chunks with one range read and verifies each
// (AEAD, decompression, content ID) into buf.raw, which it returns. A chunk
// that does not verify there, or a span whose read fails, is read chunk by
// chunk with loadBlob (every copy, a refreshed index: R43).
func (r *Repo) loadSpan(ctx context.Context, j *contentJob, hasher *idHasher, buf *spanBuf) ([]byte, error) {
	buf.raw = sized(buf.raw, j.raw)
	first, last := j.chunks[0].loc, j.chunks[len(j.chunks)-1].loc
	var sealed []byte
	if first.pack != nil {
		buf.sealed = sized(buf.sealed, int(last.off+last.length-first.off))
		sealed = buf.sealed
		if err := readRange(ctx, r.st, packName(first.pack.id), int64(first.off), sealed); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			sealed = nil // one by one
		}
	}
	var aead cipher.AEAD
	pos, off := 0, int64(j.off)
	for _, c := range j.chunks {
		out := buf.raw[pos : pos+c.rawLen]
		ok := false
		if sealed != nil {
			if aead == nil {
				aead = r.keys.packAEAD(first.pack.salt[:])
			}
			at := c.loc.off - first.off
			b := sealed[at : at+c.loc.length]
			plain, err := openBlob(aead, b, b, c.loc.off, BlobData, c.id)
			if err == nil {
				var got []byte
				got, err = r.codec.decompressBlobInto(out[:0:c.rawLen], plain, c.rawLen, true)
				if err == nil && hasher.sum(BlobData, got) == c.id {
					if &got[0] != &out[0] {
						copy(out, got)
					}
					ok = true
				}
			}
		}
		if !ok {
			data, err := r.loadBlob(ctx, BlobData, c.id, c.rawLen, hasher, &buf.one)
			if err != nil {
				return nil, fmt.Errorf("at offset %d: %w", off, err)
			}
			copy(out, data)
		}
		pos += c.rawLen
		off += int64(c.rawLen)
	}
	return buf.raw[:j.raw], nil
}

// ReaderLock is a lock a long reader (a restore) holds in the repository so
// that a prune planned while it reads waits for it before it sweeps (R44).
type ReaderLock struct {
	l *writerLock
}

// LockForReading stores a lock object (as a writer's, R34) and refreshes it
// until Release. Hold one for the whole of a restore: a snapshot forgotten
// meanwhile keeps its packs until the lock is released.
func (r *Repo) LockForReading(ctx context.Context) (*ReaderLock, error) {
	l, err := r.newLock(ctx, lockRefreshInterval)
	if err != nil {
		return nil, err
	}
	return &ReaderLock{l: l}, nil
}

// Release deletes the lock object.
func (l *ReaderLock) Release(ctx context.Context) error {
	return l.l.release(ctx)
}

// ReadFiles calls fn, in snapshot order, for every file of the snapshot
// for which want returns true, with a reader of its content (nil for
// directories and links). It walks the tree once and reads each file's
// chunks in spans (as WalkContent), up to parallel spans ahead (default
// DefaultContentParallel) in reused buffers: memory is bounded by about
// parallel × 2 × 2 MiB plus the list of the current file's chunks (~80
// bytes per chunk). Every chunk is verified before its bytes are returned:
// damage is an error wrapping ErrCorrupt, never wrong bytes. The reader is
// valid only until fn returns; content fn does not read is skipped.
func (r *Repo) ReadFiles(ctx context.Context, s *Snapshot, parallel int, want func(File) bool, fn func(File, io.Reader) error) error {
	if parallel <= 0 {
		parallel = DefaultContentParallel
	}
	pool := make(chan *spanBuf, parallel)
	for range parallel {
		pool <- &spanBuf{}
	}
	var (
		cur    File
		wanted bool
		chunks []spanChunk
	)
	return r.eachItem(ctx, s, func(it *treeItem) error {
		switch it.kind {
		case itemFile:
			cur, wanted, chunks = it.file, want(it.file), chunks[:0]
		case itemChunk:
			if !wanted {
				return nil
			}
			l, err := r.firstLocation(ctx, &it.id)
			if err != nil {
				return fmt.Errorf("while reading %q of snapshot %s: %w", cur.Path, s.ID, err)
			}
			chunks = append(chunks, spanChunk{id: it.id, rawLen: it.rawLen, loc: l})
		case itemEnd:
			if !wanted {
				return nil
			}
			if cur.Type != TypeRegular {
				return fn(cur, nil)
			}
			sr := newSpanReader(ctx, r, s, cur, chunks, pool)
			err := fn(cur, sr)
			sr.close()
			return err
		}
		return nil
	})
}

// spanReader reads a file's spans in order, fetching ahead.
type spanReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	r      *Repo
	s      *Snapshot
	f      File
	spans  []contentJob
	next   int // next span to fetch
	pool   chan *spanBuf
	queue  []*spanFetch
	cur    []byte
	curBuf *spanBuf
	err    error
	wg     sync.WaitGroup
}

// spanFetch is a span being read.
type spanFetch struct {
	done chan struct{}
	buf  *spanBuf
	data []byte
	err  error
}

func newSpanReader(ctx context.Context, r *Repo, s *Snapshot, f File, chunks []spanChunk, pool chan *spanBuf) *spanReader {
	ctx, cancel := context.WithCancel(ctx)
	sr := &spanReader{ctx: ctx, cancel: cancel, r: r, s: s, f: f, pool: pool}
	var off int64
	for _, c := range chunks {
		n := len(sr.spans)
		if n == 0 || !sr.spans[n-1].extends(c.loc, c.rawLen) {
			sr.spans = append(sr.spans, contentJob{off: off})
			n++
		}
		j := &sr.spans[n-1]
		j.chunks = append(j.chunks, c)
		j.raw += c.rawLen
		off += int64(c.rawLen)
	}
	return sr
}

// fill starts fetches while buffers are free.
func (sr *spanReader) fill() {
	for sr.next < len(sr.spans) {
		var buf *spanBuf
		select {
		case buf = <-sr.pool:
		default:
			if len(sr.queue) > 0 {
				return // wait for one in flight
			}
			buf = <-sr.pool // none in flight: the current buffer comes back first
		}
		ft := &spanFetch{done: make(chan struct{}), buf: buf}
		j := &sr.spans[sr.next]
		sr.next++
		sr.queue = append(sr.queue, ft)
		sr.wg.Add(1)
		go func() {
			defer sr.wg.Done()
			defer close(ft.done)
			ft.data, ft.err = sr.r.loadSpan(sr.ctx, j, sr.r.keys.newIDHasher(), buf)
			if ft.err != nil {
				ft.err = fmt.Errorf("while reading %q of snapshot %s: %w", sr.f.Path, sr.s.ID, ft.err)
			}
		}()
	}
}

// release gives the current span's buffer back.
func (sr *spanReader) release() {
	if sr.curBuf != nil {
		sr.pool <- sr.curBuf
		sr.curBuf, sr.cur = nil, nil
	}
}

// Read implements io.Reader.
func (sr *spanReader) Read(p []byte) (int, error) {
	for len(sr.cur) == 0 {
		if sr.err != nil {
			return 0, sr.err
		}
		sr.release()
		sr.fill()
		if len(sr.queue) == 0 {
			sr.err = io.EOF
			return 0, io.EOF
		}
		ft := sr.queue[0]
		sr.queue = sr.queue[1:]
		select {
		case <-ft.done:
		case <-sr.ctx.Done():
			<-ft.done
			sr.pool <- ft.buf
			sr.err = sr.ctx.Err()
			return 0, sr.err
		}
		sr.curBuf = ft.buf
		if ft.err != nil {
			sr.err = ft.err
			return 0, ft.err
		}
		sr.cur = ft.data
	}
	n := copy(p, sr.cur)
	sr.cur = sr.cur[n:]
	return n, nil
}

// close stops the fetches and gives every buffer back.
func (sr *spanReader) close() {
	sr.cancel()
	sr.wg.Wait()
	sr.release()
	for _, ft := range sr.queue {
		sr.pool <- ft.buf
	}
	sr.queue = nil
	if sr.err == nil {
		sr.err = errors.New("read of a closed file")
	}
}
