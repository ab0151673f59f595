package repo

import (
	"context"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// WriterOptions tune a Writer. The zero value gives the defaults.
type WriterOptions struct {
	// Parallelism is the number of goroutines that hash, compress and
	// encrypt chunks (default 2).
	Parallelism int
	// Uploads is the number of packs stored concurrently (default 2).
	Uploads int
	// PackSize is the target size of a pack in bytes (default 16 MiB).
	PackSize int

	// For tests and benchmarks.
	level           zstd.EncoderLevel
	indexFlushBlobs int
	lockRefresh     time.Duration
}

// Defaults of the writer and the lock protocol (docs/design.md R19, R34).
const (
	defaultIndexFlushBlobs = 1 << 16
	lockRefreshInterval    = 5 * time.Minute
	// LockStaleAfter is how long a lock may go unrefreshed before prune
	// may consider its writer dead.
	LockStaleAfter = 30 * time.Minute
	// commitLockMargin: a writer whose lock was last refreshed longer ago
	// than this must not commit.
	commitLockMargin = LockStaleAfter - lockRefreshInterval
	// maxWindowItems bounds the tree items waiting for their chunks.
	maxWindowItems = 4096
)

// Stats describe a snapshot.
type Stats struct {
	Files    int64 `json:"files"`    // regular files
	Dirs     int64 `json:"dirs"`     // directories
	Symlinks int64 `json:"symlinks"` // symbolic links
	Bytes    int64 `json:"bytes"`    // sum of the regular files' sizes
	Chunks   int64 `json:"chunks"`   // data chunks referenced
	// NewChunks and NewRawBytes count the data chunks this snapshot stored
	// (not found in the repository) and their size before compression.
	NewChunks   int64 `json:"new_chunks"`
	NewRawBytes int64 `json:"new_raw_bytes"`
	TreeBlobs   int64 `json:"tree_blobs"`     // tree blobs of the snapshot
	NewTree     int64 `json:"new_tree_blobs"` // tree blobs it stored
	Packs       int64 `json:"packs"`          // packs it stored
	// NewBytes is what the snapshot added to the repository after dedup and
	// compression: its packs and index objects (not the manifest).
	NewBytes int64 `json:"new_bytes"`
}

// Writer writes one snapshot. AddFile, Commit and Abort must not be called
// concurrently. After any error the Writer is unusable: call Abort.
type Writer struct {
	r      *Repo
	opts   WriterOptions
	ctx    context.Context
	cancel context.CancelCauseFunc
	codec  *codec
	dedup  *idSet
	hasher *idHasher // the caller's goroutine (tree blobs)
	lock   *writerLock
	start  time.Time

	data, tree *packer
	packBufs   *bufPool
	chunkBufs  chan []byte
	jobs       chan *chunkJob
	uploads    chan *sealedPack
	workers    sync.WaitGroup
	uploaders  sync.WaitGroup

	window        []windowItem
	treeBuf       []byte
	treeIDs       []ID
	treeScr       []byte
	itemScr       []byte
	paths         map[uint64]struct{}
	seed          maphash.Seed
	treeFiles     uint64
	treeBytes     uint64
	stats         Stats
	newChunks     atomic.Int64
	newRaw        atomic.Int64
	newBytes      atomic.Int64
	packs         atomic.Int64
	idxMu         sync.Mutex
	idxPacks      []*indexPack
	idxBlobs      int
	closedJobs    bool
	closedUploads bool
	finished      bool
}

type chunkJob struct {
	buf   []byte
	n     int
	done  chan struct{}
	id    ID
	isNew bool
	err   error
}

type windowItem struct {
	item []byte    // a file or end item
	job  *chunkJob // or a chunk waiting to be hashed
}

var errAborted = errors.New("the writer was aborted")

// NewWriter starts a snapshot: it takes a writer lock, reads prune plans
// and loads the index into the dedup set. ctx bounds the writer's whole life
// (its background uploads included).
func (r *Repo) NewWriter(ctx context.Context, opts WriterOptions) (*Writer, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 2
	}
	if opts.Uploads <= 0 {
		opts.Uploads = 2
	}
	if opts.PackSize <= 0 {
		opts.PackSize = DefaultPackSize
	}
	opts.PackSize = min(max(opts.PackSize, minPackSize), maxPackSize/2)
	if opts.level == 0 {
		opts.level = zstd.SpeedFastest
	}
	if opts.indexFlushBlobs <= 0 {
		opts.indexFlushBlobs = defaultIndexFlushBlobs
	}
	if opts.lockRefresh <= 0 {
		opts.lockRefresh = lockRefreshInterval
	}
	c, err := newCodec(opts.level, 1)
	if err != nil {
		return nil, err
	}
	// Each worker has an encoder of its own: an encoder shared through
	// EncodeAll goes to whichever goroutine asks, its tables cold in that
	// core's cache.
	encs := make([]*zstd.Encoder, opts.Parallelism)
	for i := range encs {
		if encs[i], err = newEncoder(opts.level, 1); err != nil {
			for _, e := range encs[:i] {
				_ = e.Close()
			}
			c.close()
			return nil, err
		}
	}
	c.workerEncs = encs
	wctx, cancel := context.WithCancelCause(ctx)
	w := &Writer{
		r: r, opts: opts, ctx: wctx, cancel: cancel, codec: c,
		hasher: r.keys.newIDHasher(), start: time.Now().UTC(),
		paths: make(map[uint64]struct{}), seed: maphash.MakeSeed(),
	}
	lock, err := r.newLock(ctx, opts.lockRefresh)
	if err != nil {
		c.close()
		cancel(err)
		return nil, err
	}
	w.lock = lock
	if err := w.loadDedup(ctx); err != nil {
		_ = lock.release(context.WithoutCancel(ctx))
		c.close()
		cancel(err)
		return nil, err
	}

	maxChunk := r.cfg.maxChunk()
	maxSealed := 1 + maxChunk + 16
	w.packBufs = newBufPool(opts.PackSize+maxSealed+maxBlobEntry+64+trailerLen, opts.Uploads+4)
	w.data = &packer{w: w, typ: BlobData}
	w.tree = &packer{w: w, typ: BlobTree}
	nbufs := 2*opts.Parallelism + 2
	w.chunkBufs = make(chan []byte, nbufs)
	for range nbufs {
		w.chunkBufs <- make([]byte, maxChunk)
	}
	w.jobs = make(chan *chunkJob, nbufs)
	w.uploads = make(chan *sealedPack, 1)
	for _, enc := range encs {
		w.workers.Add(1)
		go w.work(enc)
	}
	for range opts.Uploads {
		w.uploaders.Add(1)
		go w.upload(w.uploads)
	}
	return w, nil
}

// loadDedup fills the dedup set from the index, leaving out packs that a
// prune plan names (R35).
func (w *Writer) loadDedup(ctx context.Context) error {
	planned, err := w.r.prunePlans(ctx)
	if err != nil {
		return err
	}
	w.dedup = newIDSet()
	err = w.r.eachIndexObject(ctx, func(name string, _ ID) error {
		return w.r.readIndex(ctx, name, func(p *indexPack) error {
			if planned[p.id] {
				return nil
			}
			for i := range p.blobs {
				w.dedup.add(&p.blobs[i].id)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("while loading the index: %w", err)
	}
	w.dedup.finishLoad()
	return nil
}

// fail records the writer's first error and stops it.
func (w *Writer) fail(err error) error {
	w.cancel(err)
	return w.err()
}

// err returns the error that stopped the writer, if any.
func (w *Writer) err() error {
	if w.ctx.Err() == nil {
		return nil
	}
	return context.Cause(w.ctx)
}

// AddFile adds a file to the snapshot. For a regular file, content must
// yield exactly f.Size bytes; it is streamed, never held whole. Relation
// files (by path) are cut at page boundaries. Paths must be unique.
func (w *Writer) AddFile(ctx context.Context, f File, content io.Reader) error {
	if w.finished {
		return errors.New("the writer is finished")
	}
	if err := w.err(); err != nil {
		return err
	}
	if err := w.addFile(ctx, f, content); err != nil {
		return w.fail(err)
	}
	return nil
}

func (w *Writer) addFile(ctx context.Context, f File, content io.Reader) error {
	if err := validPath(f.Path); err != nil {
		return fmt.Errorf("while adding a file: %w", err)
	}
	switch f.Type {
	case TypeRegular:
		if f.Size < 0 || content == nil {
			return fmt.Errorf("while adding %q: a regular file needs a size >= 0 and content", f.Path)
		}
	case TypeDir, TypeSymlink:
		if f.Size != 0 {
			return fmt.Errorf("while adding %q: a %v has no size", f.Path, f.Type)
		}
	default:
		return fmt.Errorf("while adding %q: unknown file type %d", f.Path, f.Type)
	}
	if f.Type != TypeSymlink && f.LinkTarget != "" {
		return fmt.Errorf("while adding %q: only symlinks have a link target", f.Path)
	}
	if len(f.LinkTarget) > maxPathLen || uint64(f.Mode) > 1<<32-1 {
		return fmt.Errorf("while adding %q: link target or mode out of range", f.Path)
	}
	h := maphash.String(w.seed, f.Path)
	if _, dup := w.paths[h]; dup {
		return fmt.Errorf("while adding %q: the path was already added", f.Path)
	}
	w.paths[h] = struct{}{}
	f.ModTime = f.ModTime.UTC()
	w.window = append(w.window, windowItem{item: appendFileItem(nil, &f)})

	switch f.Type {
	case TypeRegular:
		w.stats.Files++
		w.stats.Bytes += f.Size
		chunk := int64(w.r.cfg.chunkSize(f.Path))
		for remaining := f.Size; remaining > 0; {
			n := int(min(chunk, remaining))
			var buf []byte
			select {
			case buf = <-w.chunkBufs:
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-w.ctx.Done():
				return w.err()
			}
			if got, err := io.ReadFull(content, buf[:n]); err != nil {
				w.chunkBufs <- buf
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return fmt.Errorf("while reading %q: the content ended after %d bytes, its size is %d", f.Path, f.Size-remaining+int64(got), f.Size)
				}
				return fmt.Errorf("while reading %q: %w", f.Path, err)
			}
			job := &chunkJob{buf: buf, n: n, done: make(chan struct{})}
			w.window = append(w.window, windowItem{job: job})
			select {
			case w.jobs <- job:
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-w.ctx.Done():
				return w.err()
			}
			remaining -= int64(n)
		}
		var one [1]byte
		if n, err := io.ReadAtLeast(content, one[:], 1); n > 0 {
			return fmt.Errorf("while reading %q: the content is longer than its size %d", f.Path, f.Size)
		} else if !errors.Is(err, io.EOF) {
			return fmt.Errorf("while reading %q: %w", f.Path, err)
		}
	case TypeDir:
		w.stats.Dirs++
	case TypeSymlink:
		w.stats.Symlinks++
	}
	w.window = append(w.window, windowItem{item: []byte{itemEnd}})
	w.treeFiles++
	w.treeBytes += uint64(f.Size)
	return w.drain(ctx, false)
}

// drain moves finished items from the front of the window into the tree;
// with all (or a full window) it waits for chunks.
func (w *Writer) drain(ctx context.Context, all bool) error {
	i := 0
	defer func() {
		n := copy(w.window, w.window[i:])
		clear(w.window[n:])
		w.window = w.window[:n]
	}()
	for ; i < len(w.window); i++ {
		it := w.window[i]
		if it.job == nil {
			if err := w.emit(it.item); err != nil {
				return err
			}
			continue
		}
		wait := all || len(w.window)-i > maxWindowItems
		if !wait {
			select {
			case <-it.job.done:
			default:
				return nil
			}
		}
		select {
		case <-it.job.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-w.ctx.Done():
			return w.err()
		}
		if it.job.err != nil {
			return it.job.err
		}
		w.stats.Chunks++
		w.itemScr = appendChunkItem(w.itemScr[:0], it.job.id, it.job.n)
		if err := w.emit(w.itemScr); err != nil {
			return err
		}
	}
	return nil
}

// emit appends an item to the tree stream, cutting tree blobs (R26).
func (w *Writer) emit(item []byte) error {
	w.treeBuf = append(w.treeBuf, item...)
	if len(w.treeBuf) >= treeMaxBlob || len(w.treeBuf) >= treeMinBlob && itemCut(item) {
		return w.flushTree()
	}
	return nil
}

// flushTree stores the current tree blob.
func (w *Writer) flushTree() error {
	if len(w.treeBuf) == 0 {
		return nil
	}
	id := w.hasher.sum(BlobTree, w.treeBuf)
	w.treeIDs = append(w.treeIDs, id)
	w.stats.TreeBlobs++
	if w.dedup.insert(&id) {
		w.stats.NewTree++
		w.treeScr = w.codec.compress(w.treeScr[:0], w.treeBuf)
		if err := w.tree.add(id, w.treeScr, len(w.treeBuf)); err != nil {
			return err
		}
	}
	w.treeBuf = w.treeBuf[:0]
	return nil
}

// work hashes, deduplicates, compresses and encrypts chunks.
func (w *Writer) work(enc *zstd.Encoder) {
	defer w.workers.Done()
	hasher := w.r.keys.newIDHasher()
	scratch := make([]byte, 0, w.r.cfg.maxChunk()+w.r.cfg.maxChunk()/64+1024)
	for job := range w.jobs {
		if err := w.err(); err != nil {
			job.err = err
		} else {
			data := job.buf[:job.n]
			job.id = hasher.sum(BlobData, data)
			if w.dedup.insert(&job.id) {
				job.isNew = true
				scratch = compressWith(enc, scratch[:0], data)
				if err := w.data.add(job.id, scratch, job.n); err != nil {
					job.err = w.fail(err)
				}
				w.newChunks.Add(1)
				w.newRaw.Add(int64(job.n))
			}
		}
		w.chunkBufs <- job.buf
		job.buf = nil
		close(job.done)
	}
}

// sealedPack is a finished pack waiting to be stored.
type sealedPack struct {
	id    ID
	data  []byte
	buf   []byte // to return to the pool
	salt  [32]byte
	blobs []packBlob
}

// upload stores sealed packs and indexes them.
func (w *Writer) upload(uploads <-chan *sealedPack) {
	defer w.uploaders.Done()
	for sp := range uploads {
		if w.err() == nil {
			if err := putBytes(w.ctx, w.r.st, packName(sp.id), sp.data, true); err != nil {
				w.fail(fmt.Errorf("while storing pack %s: %w", sp.id, err))
			} else {
				w.newBytes.Add(int64(len(sp.data)))
				w.packs.Add(1)
				if err := w.addIndexPack(&indexPack{id: sp.id, size: uint64(len(sp.data)), salt: sp.salt, blobs: sp.blobs}, false); err != nil {
					w.fail(err)
				}
			}
		}
		w.packBufs.put(sp.buf)
	}
}

// addIndexPack records a stored pack for the index and writes an index
// object when enough blobs have gathered (or with flush, whatever is left).
func (w *Writer) addIndexPack(p *indexPack, flush bool) error {
	w.idxMu.Lock()
	if p != nil {
		w.idxPacks = append(w.idxPacks, p)
		w.idxBlobs += len(p.blobs)
	}
	if len(w.idxPacks) == 0 || !flush && w.idxBlobs < w.opts.indexFlushBlobs {
		w.idxMu.Unlock()
		return nil
	}
	packs := w.idxPacks
	w.idxPacks, w.idxBlobs = nil, 0
	w.idxMu.Unlock()
	n, err := w.r.putIndex(w.ctx, w.codec, packs)
	if err != nil {
		return err
	}
	w.newBytes.Add(int64(n))
	return nil
}

// Commit stores the rest of the snapshot in the crash-safe order (packs,
// index, then the manifest last) and returns it. meta holds caller-given
// key/values such as LSNs and the system identifier.
func (w *Writer) Commit(ctx context.Context, meta map[string]string) (*Snapshot, error) {
	if w.finished {
		return nil, errors.New("the writer is finished")
	}
	s, err := w.commit(ctx, meta)
	if err != nil {
		w.fail(err)
		_ = w.Abort(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

func (w *Writer) commit(ctx context.Context, meta map[string]string) (*Snapshot, error) {
	if err := w.err(); err != nil {
		return nil, err
	}
	if err := validateMeta(meta); err != nil {
		return nil, err
	}
	if err := w.drain(ctx, true); err != nil {
		return nil, err
	}
	if err := w.emit(appendTrailerItem(nil, w.treeFiles, w.treeBytes)); err != nil {
		return nil, err
	}
	if err := w.flushTree(); err != nil {
		return nil, err
	}
	w.closedJobs = true
	close(w.jobs)
	w.workers.Wait()
	if err := w.err(); err != nil {
		return nil, err
	}
	// Packs first…
	if err := w.data.flush(); err != nil {
		return nil, err
	}
	if err := w.tree.flush(); err != nil {
		return nil, err
	}
	w.closedUploads = true
	close(w.uploads)
	w.uploaders.Wait()
	if err := w.err(); err != nil {
		return nil, err
	}
	// …then the index…
	if err := w.addIndexPack(nil, true); err != nil {
		return nil, err
	}
	if err := w.lock.fresh(time.Now(), commitLockMargin); err != nil {
		return nil, err
	}
	// …and the manifest last (R31).
	w.stats.NewChunks = w.newChunks.Load()
	w.stats.NewRawBytes = w.newRaw.Load()
	w.stats.NewBytes = w.newBytes.Load()
	w.stats.Packs = w.packs.Load()
	m := manifest{
		Version: manifestVersion, Repository: w.r.cfg.ID, Time: w.start, EndTime: time.Now().UTC(),
		Meta: meta, Stats: w.stats, TreeVersion: treeVersion, Tree: w.treeIDs,
	}
	payload, err := json.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("while encoding the manifest: %w", err)
	}
	obj := w.codec.seal(w.r.keys, ObjectSnapshot, payload)
	id := objectID(obj)
	if err := putBytes(w.ctx, w.r.st, snapshotPrefix+id.String(), obj, true); err != nil {
		return nil, fmt.Errorf("while storing the snapshot manifest: %w", err)
	}
	w.finished = true
	w.stop(ctx)
	return m.snapshot(id), nil
}

// Abort stops the writer and releases its lock. What it stored stays, for
// prune to reclaim (R32): another writer may already rely on it.
func (w *Writer) Abort(ctx context.Context) error {
	if w.finished {
		return nil
	}
	w.finished = true
	w.cancel(errAborted)
	if !w.closedJobs {
		w.closedJobs = true
		close(w.jobs)
	}
	w.workers.Wait()
	if !w.closedUploads {
		w.closedUploads = true
		close(w.uploads)
	}
	w.uploaders.Wait()
	return w.stop(ctx)
}

// stop releases the lock, the codec and the pack buffers; the workers
// and uploaders have ended.
func (w *Writer) stop(ctx context.Context) error {
	w.packBufs.release()
	err := w.lock.release(ctx)
	w.codec.close()
	w.cancel(errors.New("the writer is finished"))
	return err
}

// packer fills packs of one blob type; add is safe for concurrent use.
type packer struct {
	w   *Writer
	typ BlobType
	mu  sync.Mutex
	cur *openPack
}

type openPack struct {
	buf      []byte
	off      int
	reserved int
	blobs    []packBlob
	salt     [32]byte
	aead     cipher.AEAD
	pending  int
	closed   bool
}

// add encrypts plain (compression ID | payload) into the open pack.
func (p *packer) add(id ID, plain []byte, rawLen int) error {
	sealedLen := len(plain) + 16
	need := sealedLen + maxBlobEntry
	var full *openPack
	p.mu.Lock()
	op := p.cur
	if op != nil && op.off > 0 && op.reserved+need > p.w.opts.PackSize {
		op.closed = true
		if op.pending == 0 {
			full = op
		}
		op, p.cur = nil, nil
	}
	if op == nil {
		buf, err := p.w.packBufs.get(p.w.ctx)
		if err != nil {
			p.mu.Unlock()
			return err
		}
		op = &openPack{buf: buf}
		copy(op.salt[:], randomBytes(32))
		op.aead = p.w.r.keys.packAEAD(op.salt[:])
		p.cur = op
	}
	off := op.off
	op.off += sealedLen
	op.reserved += need
	op.blobs = append(op.blobs, packBlob{typ: p.typ, id: id, length: uint32(sealedLen), rawLen: uint32(rawLen)})
	op.pending++
	p.mu.Unlock()

	if full != nil {
		if err := p.finish(full); err != nil {
			return err
		}
	}
	sealBlob(op.aead, op.buf[off:off], plain, off, p.typ, id)

	p.mu.Lock()
	op.pending--
	full = nil
	if op.closed && op.pending == 0 {
		full = op
	}
	p.mu.Unlock()
	if full != nil {
		return p.finish(full)
	}
	return nil
}

// flush finishes the open pack; no add may run concurrently.
func (p *packer) flush() error {
	p.mu.Lock()
	op := p.cur
	p.cur = nil
	p.mu.Unlock()
	if op == nil {
		return nil
	}
	return p.finish(op)
}

// finish appends header and trailer and hands the pack to the uploaders.
func (p *packer) finish(op *openPack) error {
	b := sealPackEnd(op.buf[:op.off], op.aead, op.salt, op.blobs)
	sp := &sealedPack{id: objectID(b), data: b, buf: op.buf, salt: op.salt, blobs: op.blobs}
	select {
	case p.w.uploads <- sp:
		return nil
	case <-p.w.ctx.Done():
		p.w.packBufs.put(op.buf)
		return p.w.err()
	}
}

// bufPool hands out at most max buffers of one size.
type bufPool struct {
	size   int
	free   chan []byte
	tokens chan struct{}
}

func newBufPool(size, max int) *bufPool {
	return &bufPool{size: size, free: make(chan []byte, max), tokens: make(chan struct{}, max)}
}

func (p *bufPool) get(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.free:
		return b, nil
	default:
	}
	select {
	case b := <-p.free:
		return b, nil
	case p.tokens <- struct{}{}:
		if v, ok := packBufCache.Get().(*[]byte); ok && cap(*v) >= p.size {
			return (*v)[:p.size], nil
		}
		return make([]byte, p.size), nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (p *bufPool) put(b []byte) { p.free <- b[:cap(b)] }

// release hands the free buffers to the next writers of this process:
// zeroing a new pack buffer costs about as much as filling it, which for
// small backups is most of their work. Only buffers no pack uses any more
// are free; every byte of a pack is written before it is read.
func (p *bufPool) release() {
	for {
		select {
		case b := <-p.free:
			packBufCache.Put(&b)
		default:
			return
		}
	}
}

// packBufCache keeps released pack buffers between writers.
var packBufCache sync.Pool
