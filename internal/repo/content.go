package repo

import (
	"context"
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
	// Parallel is how many chunks are read, verified and written at once
	// (default DefaultContentParallel). Memory is bounded by about
	// Parallel times twice the largest chunk, whatever the snapshot's size.
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

// contentJob is one chunk to read and write.
type contentJob struct {
	file   *contentFile
	off    int64
	id     ID
	rawLen int
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
			var buf blobBuf
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				data, err := r.loadBlob(ctx, BlobData, j.id, j.rawLen, hasher, &buf)
				if err != nil {
					fail(fmt.Errorf("while reading %q at offset %d of snapshot %s: %w", j.file.f.Path, j.off, s.ID, err))
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
	t, err := r.newTreeReader(ctx, s, treePos{})
	if err != nil {
		return fmt.Errorf("while walking snapshot %s: %w", s.ID, err)
	}
	var cur *contentFile
	var off int64
	for {
		it, err := t.item()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("while walking snapshot %s: %w", s.ID, err)
		}
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
			cur.pending.Add(1) // before a worker can count it down
			if !send(contentJob{file: cur, off: off, id: it.id, rawLen: it.rawLen}) {
				return context.Cause(ctx)
			}
			off += int64(it.rawLen)
		case itemEnd:
			if cur != nil && cur.pending.Add(-1) == 0 {
				done(cur)
			}
			cur = nil
		}
	}
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
