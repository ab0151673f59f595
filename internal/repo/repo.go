package repo

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/pgvault/pgvault/internal/storage"
)

// Repo is an open repository. It is safe for concurrent use.
type Repo struct {
	st    storage.Storage
	keys  *keys
	cfg   config
	codec *codec // decoding and sealing small objects

	mu   sync.RWMutex
	loc  *locIndex // loaded on first read
	dirs dirCache
}

// config is the payload of the config object (docs/design.md §4).
type config struct {
	Version            FormatVersion `json:"version"`
	ID                 string        `json:"id"`
	Created            time.Time     `json:"created"`
	Hash               HashID        `json:"hash"`
	Cipher             CipherID      `json:"cipher"`
	Compression        CompressionID `json:"compression"`
	PageSize           int           `json:"page_size"`
	RelationChunkPages int           `json:"relation_chunk_pages"`
	FileChunkSize      int           `json:"file_chunk_size"`
}

// validate refuses a config this code cannot honour.
func (c *config) validate() error {
	if c.Version != configVersion {
		return fmt.Errorf("%w: repository format version %d (this pgvault reads %d)", ErrUnsupportedVersion, c.Version, configVersion)
	}
	if (c.Hash != HashHMACSHA256 && c.Hash != HashBLAKE3) || c.Cipher != CipherAES256GCM || c.Compression != CompressionZstd {
		return fmt.Errorf("%w: algorithms hash %d, cipher %d, compression %d", ErrUnsupportedVersion, c.Hash, c.Cipher, c.Compression)
	}
	if id, err := hex.DecodeString(c.ID); err != nil || len(id) != 16 {
		return fmt.Errorf("%w: config has a bad repository ID", ErrCorrupt)
	}
	if c.PageSize < 512 || c.PageSize > 1<<16 || c.PageSize&(c.PageSize-1) != 0 ||
		c.RelationChunkPages < 1 || c.PageSize*c.RelationChunkPages > maxChunkSize ||
		c.FileChunkSize < 4096 || c.FileChunkSize > maxChunkSize {
		return fmt.Errorf("%w: config has chunk sizes out of range", ErrCorrupt)
	}
	return nil
}

func parseConfig(b []byte) (config, error) {
	var c config
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: config does not parse: %v", ErrCorrupt, err)
	}
	return c, c.validate()
}

// maxChunk is the largest chunk this repository's writers cut.
func (c *config) maxChunk() int { return max(c.PageSize*c.RelationChunkPages, c.FileChunkSize) }

// readCodec makes the codec a Repo uses for reading and small objects.
func readCodec() (*codec, error) {
	return newCodec(zstd.SpeedFastest, max(2, runtime.GOMAXPROCS(0)))
}

// Init creates a repository on empty storage with a fresh random repository
// key wrapped by masterKey (32 bytes). It fails with ErrRepositoryExists when
// a repository is there and refuses storage holding any other object.
func Init(ctx context.Context, st storage.Storage, masterKey []byte) (*Repo, error) {
	return initRepo(ctx, st, masterKey, HashBLAKE3)
}

// initRepo is Init with the content-ID algorithm of the new repository.
func initRepo(ctx context.Context, st storage.Storage, masterKey []byte, hash HashID) (*Repo, error) {
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("the master key must be %d bytes, not %d", MasterKeySize, len(masterKey))
	}
	if _, err := st.Stat(ctx, configName); err == nil {
		return nil, ErrRepositoryExists
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("while looking for a repository: %w", err)
	}
	errNotEmpty := errors.New("not empty")
	var found string
	err := st.List(ctx, "", func(i storage.Info) error { found = i.Name; return errNotEmpty })
	if errors.Is(err, errNotEmpty) {
		return nil, fmt.Errorf("while creating a repository: the storage is not empty (it holds %q)", found)
	}
	if err != nil {
		return nil, fmt.Errorf("while checking that the storage is empty: %w", err)
	}

	var repoID [16]byte
	copy(repoID[:], randomBytes(16))
	repoKey := randomBytes(32)
	cfg := config{
		Version: configVersion, ID: hex.EncodeToString(repoID[:]), Created: time.Now().UTC(),
		Hash: hash, Cipher: CipherAES256GCM, Compression: CompressionZstd,
		PageSize: PageSize, RelationChunkPages: defaultRelationChunkPages, FileChunkSize: defaultFileChunkSize,
	}
	c, err := readCodec()
	if err != nil {
		return nil, err
	}
	k := deriveKeys(repoKey)
	k.idHash = cfg.Hash
	r := &Repo{st: st, keys: k, cfg: cfg, codec: c}

	keyObj := wrapKey(masterKey, repoID, repoKey)
	keyName := keysPrefix + objectID(keyObj).String()
	if err := putBytes(ctx, st, keyName, keyObj, true); err != nil {
		return nil, fmt.Errorf("while storing the repository key: %w", err)
	}
	payload, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("while encoding the config: %w", err)
	}
	cfgObj := c.seal(r.keys, ObjectConfig, payload)
	if err := st.Put(ctx, configName, bytes.NewReader(cfgObj), int64(len(cfgObj)), storage.PutOptions{IfAbsent: true}); err != nil {
		// Best effort: our key object is useless without our config.
		_ = st.Delete(context.WithoutCancel(ctx), keyName)
		if errors.Is(err, storage.ErrAlreadyExists) {
			return nil, ErrRepositoryExists
		}
		return nil, fmt.Errorf("while storing the config: %w", err)
	}
	return r, nil
}

// Open opens the repository on st with masterKey. A master key that opens
// none of the repository's key objects yields ErrWrongKey; a format version
// this code does not know yields ErrUnsupportedVersion.
func Open(ctx context.Context, st storage.Storage, masterKey []byte) (*Repo, error) {
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("the master key must be %d bytes, not %d", MasterKeySize, len(masterKey))
	}
	cfgObj, err := getBytes(ctx, st, configName)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNoRepository
	}
	if err != nil {
		return nil, fmt.Errorf("while reading the config: %w", err)
	}
	if err := checkEnvelope(ObjectConfig, cfgObj); err != nil {
		return nil, fmt.Errorf("while reading the config: %w", err)
	}
	c, err := readCodec()
	if err != nil {
		return nil, err
	}
	var damaged, opened []error
	err = st.List(ctx, keysPrefix, func(i storage.Info) error {
		id, ok := parseObjectName(keysPrefix, i.Name)
		if !ok {
			return nil
		}
		obj, err := getBytes(ctx, st, i.Name)
		if err != nil {
			return fmt.Errorf("while reading %s: %w", i.Name, err)
		}
		if err := verifyName(id, obj); err != nil {
			damaged = append(damaged, fmt.Errorf("%s: %w", i.Name, err))
			return nil
		}
		_, repoKey, err := unwrapKey(masterKey, obj)
		if errors.Is(err, errKeyMismatch) {
			return nil
		}
		if err != nil {
			damaged = append(damaged, fmt.Errorf("%s: %w", i.Name, err))
			return nil
		}
		k := deriveKeys(repoKey)
		payload, err := c.open(k, ObjectConfig, cfgObj)
		if err != nil {
			opened = append(opened, fmt.Errorf("while opening the config: %w", err))
			return nil
		}
		cfg, err := parseConfig(payload)
		if err != nil {
			opened = append(opened, fmt.Errorf("while opening the config: %w", err))
			return nil
		}
		k.idHash = cfg.Hash
		r := &Repo{st: st, keys: k, cfg: cfg, codec: c}
		return &openedRepo{r}
	})
	var o *openedRepo
	if errors.As(err, &o) {
		return o.r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("while reading the keys: %w", err)
	}
	switch {
	case len(opened) > 0:
		// The key opened but the config did not: report why (damage or version).
		return nil, fmt.Errorf("while opening the repository: %w", errors.Join(opened...))
	case len(damaged) > 0:
		return nil, fmt.Errorf("while opening the repository: no key object opens with this master key, and some are damaged: %w", errors.Join(damaged...))
	}
	return nil, ErrWrongKey
}

// openedRepo carries the result out of List.
type openedRepo struct{ r *Repo }

func (*openedRepo) Error() string { return "opened" }

// Close releases the repository's resources.
func (r *Repo) Close() error {
	r.codec.close()
	return nil
}

// ID returns the repository's ID (hex).
func (r *Repo) ID() string { return r.cfg.ID }

// putBytes stores b under name. A content-named object that is already
// there is the identical object (R2), so that is success; and when a Put of
// one fails, a Stat tells a Put whose reply was lost (the object is there,
// whole, since Put is atomic) from one that failed.
func putBytes(ctx context.Context, st storage.Storage, name string, b []byte, contentNamed bool) error {
	err := st.Put(ctx, name, bytes.NewReader(b), int64(len(b)), storage.PutOptions{IfAbsent: contentNamed})
	if !contentNamed || err == nil {
		return err
	}
	if errors.Is(err, storage.ErrAlreadyExists) {
		return nil
	}
	if ctx.Err() == nil {
		if info, serr := st.Stat(ctx, name); serr == nil && info.Size == int64(len(b)) {
			return nil
		}
	}
	return err
}

func getBytes(ctx context.Context, st storage.Storage, name string) ([]byte, error) {
	rc, err := st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// readRange fills b with the bytes of object name from off on.
func readRange(ctx context.Context, st storage.Storage, name string, off int64, b []byte) error {
	rc, err := st.GetRange(ctx, name, off, int64(len(b)))
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.ReadFull(rc, b)
	return err
}

// putIndex seals packs as one index object (with codec c) and stores it;
// it returns the object's size.
func (r *Repo) putIndex(ctx context.Context, c *codec, packs []*indexPack) (int, error) {
	obj := c.seal(r.keys, ObjectIndex, encodeIndex(packs))
	name := indexPrefix + objectID(obj).String()
	if err := putBytes(ctx, r.st, name, obj, true); err != nil {
		return 0, fmt.Errorf("while storing index %s: %w", name, err)
	}
	return len(obj), nil
}

// readSealed reads a content-named sealed object, verifying its name.
func (r *Repo) readSealed(ctx context.Context, name string, prefix string, t ObjectType) ([]byte, error) {
	id, ok := parseObjectName(prefix, name)
	if !ok {
		return nil, fmt.Errorf("%w: bad object name %q", ErrCorrupt, name)
	}
	obj, err := getBytes(ctx, r.st, name)
	if err != nil {
		return nil, err
	}
	if err := verifyName(id, obj); err != nil {
		return nil, err
	}
	return r.codec.open(r.keys, t, obj)
}

// eachIndexObject lists the index objects.
func (r *Repo) eachIndexObject(ctx context.Context, fn func(name string, id ID) error) error {
	return r.st.List(ctx, indexPrefix, func(i storage.Info) error {
		id, ok := parseObjectName(indexPrefix, i.Name)
		if !ok {
			return nil // not ours (R4)
		}
		return fn(i.Name, id)
	})
}

// readIndex reads one index object and calls fn for each of its packs.
func (r *Repo) readIndex(ctx context.Context, name string, fn func(p *indexPack) error) error {
	payload, err := r.readSealed(ctx, name, indexPrefix, ObjectIndex)
	if err != nil {
		return fmt.Errorf("while reading %s: %w", name, err)
	}
	if err := parseIndex(payload, fn); err != nil {
		return fmt.Errorf("while reading %s: %w", name, err)
	}
	return nil
}

// locations returns the candidate locations of a blob, loading index
// objects not yet seen when the blob is unknown.
func (r *Repo) locations(ctx context.Context, id *ID) ([]location, error) {
	r.mu.RLock()
	if r.loc != nil && r.loc.sorted {
		locs := r.loc.lookup(id)
		r.mu.RUnlock()
		if len(locs) > 0 {
			return locs, nil
		}
	} else {
		r.mu.RUnlock()
	}
	if err := r.refreshIndex(ctx); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.loc.lookup(id), nil
}

// refreshIndex merges index objects not yet loaded into the location index.
func (r *Repo) refreshIndex(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loc == nil {
		r.loc = newLocIndex()
	}
	var names []string
	var ids []ID
	err := r.eachIndexObject(ctx, func(name string, id ID) error {
		if !r.loc.loaded[id] {
			names = append(names, name)
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("while listing the index: %w", err)
	}
	for i, name := range names {
		if err := r.readIndex(ctx, name, func(p *indexPack) error { r.loc.addPack(p); return nil }); err != nil {
			if isStorageError(err) {
				return err
			}
			// Damaged: its packs are found by their headers (R45).
			r.loc.damaged++
		}
		r.loc.loaded[ids[i]] = true
	}
	if r.loc.damaged > 0 {
		x := r.loc
		err := r.packsFromHeaders(ctx, func(id ID) bool { _, ok := x.packIdx[id]; return ok || x.badHeaders[id] },
			func(p *indexPack) { x.addPack(p) }, func(id ID, _ error) { x.badHeaders[id] = true })
		if err != nil {
			return err
		}
	}
	r.loc.sort()
	return nil
}

// packsFromHeaders reads the header of every stored pack for which known
// is false and passes what it lists to fn as an index would; a pack whose
// header is damaged goes to bad. Only a storage failure is an error.
func (r *Repo) packsFromHeaders(ctx context.Context, known func(ID) bool, fn func(*indexPack), bad func(ID, error)) error {
	type stored struct {
		id   ID
		size int64
	}
	var unread []stored
	err := r.st.List(ctx, packsPrefix, func(i storage.Info) error {
		if id, ok := parseObjectName(packsPrefix, i.Name); ok && !known(id) {
			unread = append(unread, stored{id, i.Size})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("while listing packs: %w", err)
	}
	for _, p := range unread {
		ip, err := r.readPackHeader(ctx, p.id, p.size)
		if err != nil {
			if isStorageError(err) && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			bad(p.id, err)
			continue
		}
		fn(ip)
	}
	return nil
}

// readPackHeader reads a pack's trailer and header (two range reads) and
// returns the pack as an index object would list it.
func (r *Repo) readPackHeader(ctx context.Context, id ID, size int64) (*indexPack, error) {
	name := packName(id)
	if size < trailerLen+17 || size > maxPackSize {
		return nil, fmt.Errorf("%w: %s: a pack of %d bytes", ErrCorrupt, name, size)
	}
	tb := make([]byte, trailerLen)
	if err := readRange(ctx, r.st, name, size-trailerLen, tb); err != nil {
		return nil, fmt.Errorf("while reading the trailer of %s: %w", name, err)
	}
	t, err := parseTrailer(tb, uint64(size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	hstart := size - trailerLen - int64(t.headerLen)
	hb := make([]byte, t.headerLen)
	if err := readRange(ctx, r.st, name, hstart, hb); err != nil {
		return nil, fmt.Errorf("while reading the header of %s: %w", name, err)
	}
	plain, err := r.keys.packAEAD(t.salt[:]).Open(nil, headerNonce(), hb, tb)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: pack header does not authenticate", ErrCorrupt, name)
	}
	blobs, err := parsePackHeader(plain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var sum int64
	for _, e := range blobs {
		sum += int64(e.length)
	}
	if sum != hstart {
		return nil, fmt.Errorf("%w: %s: pack blobs fill %d bytes, header starts at %d", ErrCorrupt, name, sum, hstart)
	}
	return &indexPack{id: id, size: uint64(size), salt: t.salt, blobs: blobs}, nil
}

// blobBuf holds the buffers a reader reuses from one blob to the next: the
// sealed bytes (decrypted in place) and the decompressed content. A nil
// *blobBuf makes every load allocate.
type blobBuf struct {
	sealed []byte
	raw    []byte
}

// sized returns b resliced to n bytes, reallocated only when too small.
func sized(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// loadBlob reads, decrypts, decompresses and verifies a blob (R10-R12),
// trying every copy. rawLen < 0 means unknown (tree blobs). With buf, the
// result lives in buf and is valid until its next use.
func (r *Repo) loadBlob(ctx context.Context, t BlobType, id ID, rawLen int, hasher *idHasher, buf *blobBuf) ([]byte, error) {
	locs, err := r.locations(ctx, &id)
	if err != nil {
		return nil, err
	}
	b, err := r.loadBlobFrom(ctx, t, id, rawLen, locs, hasher, buf)
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		return b, err
	}
	// Prune may have copied the blob into a new pack and deleted the one
	// the loaded index names: look for index objects written since.
	if rerr := r.refreshIndex(ctx); rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	r.mu.RLock()
	var untried []location
	for _, l := range r.loc.lookup(&id) {
		if !slices.ContainsFunc(locs, func(o location) bool { return o.pack.id == l.pack.id && o.off == l.off }) {
			untried = append(untried, l)
		}
	}
	r.mu.RUnlock()
	if len(untried) == 0 {
		return nil, err
	}
	return r.loadBlobFrom(ctx, t, id, rawLen, untried, hasher, buf)
}

// loadBlobFrom loads a blob from the first of locs that verifies. When
// every copy is damaged it reads them all once more: damage in transit (a
// flipped bit on the wire) is not damage in storage.
func (r *Repo) loadBlobFrom(ctx context.Context, t BlobType, id ID, rawLen int, locs []location, hasher *idHasher, buf *blobBuf) ([]byte, error) {
	if len(locs) == 0 {
		return nil, fmt.Errorf("%w: %v blob %s is not in the index", ErrCorrupt, t, id)
	}
	var errs []error
	for attempt := 0; attempt < 2; attempt++ {
		errs = errs[:0]
		for _, l := range locs {
			b, err := r.loadBlobAt(ctx, t, id, rawLen, l, hasher, buf)
			if err == nil {
				return b, nil
			}
			if ctx.Err() != nil {
				return nil, err
			}
			errs = append(errs, err)
		}
		if slices.ContainsFunc(errs, isStorageError) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (r *Repo) loadBlobAt(ctx context.Context, t BlobType, id ID, rawLen int, l location, hasher *idHasher, buf *blobBuf) ([]byte, error) {
	name := packName(l.pack.id)
	var sealed []byte
	if buf == nil {
		sealed = make([]byte, l.length)
	} else {
		buf.sealed = sized(buf.sealed, int(l.length))
		sealed = buf.sealed
	}
	if err := readRange(ctx, r.st, name, int64(l.off), sealed); err != nil {
		return nil, fmt.Errorf("while reading %v blob %s from %s: %w", t, id, name, err)
	}
	plain, err := openBlob(r.keys.packAEAD(l.pack.salt[:]), sealed, sealed, l.off, t, id)
	if err != nil {
		return nil, fmt.Errorf("while reading %s at %d: %w", name, l.off, err)
	}
	exact, limit := rawLen >= 0, rawLen
	if !exact {
		limit = maxTreeBlobLen
	}
	var dst []byte
	if buf != nil {
		buf.raw = sized(buf.raw, limit)
		dst = buf.raw
	}
	out, err := r.codec.decompressBlobInto(dst, plain, limit, exact)
	if err != nil {
		return nil, fmt.Errorf("while decompressing %v blob %s in %s at %d: %w", t, id, name, l.off, err)
	}
	if got := hasher.sum(t, out); got != id {
		return nil, fmt.Errorf("%w: %v blob in %s at %d has ID %s, want %s", ErrCorrupt, t, name, l.off, got, id)
	}
	return out, nil
}
