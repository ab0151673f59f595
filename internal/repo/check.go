package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/pgvault/pgvault/internal/storage"
)

// CheckOptions choose how much Check reads.
type CheckOptions struct {
	// ReadData reads back every stored pack and verifies every blob.
	ReadData bool
	// Sample, in (0, 1), reads only about this fraction of the packs
	// (chosen at random) when ReadData is set; 0 or 1 means all.
	Sample float64
}

// Problem is one thing Check found wrong.
type Problem struct {
	Object string // the stored object, e.g. "packs/ab/ab12…"
	Err    error
}

func (p Problem) Error() string { return p.Object + ": " + p.Err.Error() }

// CheckReport is what Check found.
type CheckReport struct {
	Snapshots int // snapshots checked
	Indexes   int // index objects
	Packs     int // packs stored
	Blobs     int // blobs indexed
	Locks     int // writer locks present
	PacksRead int // packs read back (ReadData)
	BytesRead int64
	// UnindexedPacks are packs no index names: leftovers of interrupted
	// writes, not damage (R20); prune reclaims them.
	UnindexedPacks []string
	// PacksFromHeaders are packs no intact index object names whose own
	// header was read instead, because an index object is damaged (R45):
	// their blobs count as present, as they do for restores.
	PacksFromHeaders []string
	// Problems lists every damaged, missing or unreadable object.
	Problems []Problem
	// DamagedSnapshots are the snapshots that cannot be fully restored
	// because of the problems: a manifest, tree or data blob they need has
	// no intact copy.
	DamagedSnapshots []SnapshotID
}

// OK reports whether Check found no problem.
func (c *CheckReport) OK() bool { return len(c.Problems) == 0 && len(c.DamagedSnapshots) == 0 }

// checker holds Check's state.
type checker struct {
	snapshots []ID // listed before anything else
	r         *Repo
	ctx       context.Context
	rep       *CheckReport
	loc       *locIndex
	stored    map[ID]uint64 // pack -> size in storage
	// per indexed pack: the hash of its blob list, to compare with its header
	listHash map[uint32][32]byte
	badPack  map[uint32]bool // packs missing or damaged outside known blobs
	badBlob  map[uint64]bool // pack<<32|offset of damaged blobs
	hasher   *idHasher
}

func (c *checker) problem(object string, err error) {
	c.rep.Problems = append(c.rep.Problems, Problem{Object: object, Err: err})
}

// Check verifies the repository (docs/design.md §13). Structure is always
// checked; with opts.ReadData every pack (or a sample) is read back. The
// error is for failing to run; what is damaged is in the report.
func (r *Repo) Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	c := &checker{
		r: r, ctx: ctx, rep: &CheckReport{}, loc: newLocIndex(),
		stored: make(map[ID]uint64), listHash: make(map[uint32][32]byte),
		badPack: make(map[uint32]bool), badBlob: make(map[uint64]bool),
		hasher: r.keys.newIDHasher(),
	}
	if err := c.checkKeysAndConfig(); err != nil {
		return nil, err
	}
	// Snapshots are listed first, then packs and index: the reverse of the
	// order a backup writes them (R-write order), so a backup committing
	// during the check is either wholly seen or not at all.
	if err := c.listSnapshots(); err != nil {
		return nil, err
	}
	if err := c.list(); err != nil {
		return nil, err
	}
	if err := c.loadIndex(); err != nil {
		return nil, err
	}
	if opts.ReadData {
		if err := c.readPacks(opts.Sample); err != nil {
			return nil, err
		}
	}
	if err := c.checkSnapshots(); err != nil {
		return nil, err
	}
	return c.rep, nil
}

func (c *checker) checkKeysAndConfig() error {
	err := c.r.st.List(c.ctx, keysPrefix, func(i storage.Info) error {
		id, ok := parseObjectName(keysPrefix, i.Name)
		if !ok {
			return nil
		}
		b, err := getBytes(c.ctx, c.r.st, i.Name)
		if err != nil {
			return fmt.Errorf("while reading %s: %w", i.Name, err)
		}
		if err := verifyName(id, b); err != nil {
			c.problem(i.Name, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("while listing keys: %w", err)
	}
	b, err := getBytes(c.ctx, c.r.st, configName)
	if err != nil {
		return fmt.Errorf("while reading the config: %w", err)
	}
	payload, err := c.r.codec.open(c.r.keys, ObjectConfig, b)
	if err == nil {
		var cfg config
		cfg, err = parseConfig(payload)
		if err == nil && cfg != c.r.cfg {
			err = fmt.Errorf("%w: the config changed since the repository was opened", ErrCorrupt)
		}
	}
	if err != nil {
		c.problem(configName, err)
	}
	return nil
}

func (c *checker) list() error {
	err := c.r.st.List(c.ctx, packsPrefix, func(i storage.Info) error {
		if id, ok := parseObjectName(packsPrefix, i.Name); ok {
			c.stored[id] = uint64(i.Size)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("while listing packs: %w", err)
	}
	c.rep.Packs = len(c.stored)
	err = c.r.st.List(c.ctx, locksPrefix, func(storage.Info) error { c.rep.Locks++; return nil })
	if err != nil {
		return fmt.Errorf("while listing locks: %w", err)
	}
	return nil
}

func hashBlobList(blobs []packBlob) [32]byte {
	return sha256.Sum256(encodePackHeader(blobs))
}

func (c *checker) loadIndex() error {
	damaged := 0
	err := c.r.eachIndexObject(c.ctx, func(name string, _ ID) error {
		c.rep.Indexes++
		err := c.r.readIndex(c.ctx, name, func(p *indexPack) error {
			h := hashBlobList(p.blobs)
			if no, ok := c.loc.packIdx[p.id]; ok {
				if c.listHash[no] != h || c.loc.packs[no].size != p.size || c.loc.packs[no].salt != p.salt {
					c.problem(name, fmt.Errorf("%w: pack %s is listed differently by two index objects", ErrCorrupt, p.id))
				}
				return nil
			}
			c.loc.addPack(p)
			no := c.loc.packIdx[p.id]
			c.listHash[no] = h
			c.rep.Blobs += len(p.blobs)
			size, ok := c.stored[p.id]
			switch {
			case !ok:
				c.problem(packName(p.id), fmt.Errorf("%w: pack missing (named by %s)", ErrCorrupt, name))
				c.badPack[no] = true
			case size != p.size:
				c.problem(packName(p.id), fmt.Errorf("%w: pack of %d bytes, the index says %d", ErrCorrupt, size, p.size))
				c.badPack[no] = true
			}
			return nil
		})
		if err != nil && c.ctx.Err() == nil && !isStorageError(err) {
			c.problem(name, err)
			damaged++
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("while reading the index: %w", err)
	}
	if damaged > 0 {
		err := c.r.packsFromHeaders(c.ctx, func(id ID) bool { _, ok := c.loc.packIdx[id]; return ok }, func(p *indexPack) {
			c.loc.addPack(p)
			c.listHash[c.loc.packIdx[p.id]] = hashBlobList(p.blobs)
			c.rep.Blobs += len(p.blobs)
			c.rep.PacksFromHeaders = append(c.rep.PacksFromHeaders, packName(p.id))
		}, func(ID, error) {})
		if err != nil {
			return fmt.Errorf("while reading pack headers: %w", err)
		}
		slices.Sort(c.rep.PacksFromHeaders)
	}
	c.loc.sort()
	for id := range c.stored {
		if _, ok := c.loc.packIdx[id]; !ok {
			c.rep.UnindexedPacks = append(c.rep.UnindexedPacks, packName(id))
		}
	}
	slices.Sort(c.rep.UnindexedPacks)
	return nil
}

// isStorageError tells failures to read (Check cannot run) from damage.
func isStorageError(err error) bool {
	return !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion)
}

// readPacks reads back indexed packs and verifies every byte.
func (c *checker) readPacks(sample float64) error {
	for no := range c.loc.packs {
		p := &c.loc.packs[no]
		if c.badPack[uint32(no)] {
			continue
		}
		if sample > 0 && sample < 1 && rand.Float64() >= sample {
			continue
		}
		if err := c.readPack(uint32(no), p); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) readPack(no uint32, p *packRef) error {
	name := packName(p.id)
	data, err := getBytes(c.ctx, c.r.st, name)
	if err != nil {
		return fmt.Errorf("while reading %s: %w", name, err)
	}
	c.rep.PacksRead++
	c.rep.BytesRead += int64(len(data))
	bad := func(err error) {
		c.problem(name, err)
		c.badPack[no] = true
	}
	nameErr := verifyName(p.id, data)
	if nameErr != nil {
		// Which part is hurt is found out below.
		c.problem(name, nameErr)
	}
	t, blobs, aead, err := c.r.keys.openPack(data)
	if err != nil {
		bad(err)
		return nil
	}
	if t.salt != p.salt || hashBlobList(blobs) != c.listHash[no] {
		bad(fmt.Errorf("%w: the pack header does not match the index", ErrCorrupt))
		return nil
	}
	var off uint32
	damagedBlobs := 0
	for _, e := range blobs {
		sealed := data[off : off+e.length]
		plain, err := openBlob(aead, nil, sealed, off, e.typ, e.id)
		if err == nil {
			var out []byte
			out, err = c.r.codec.decompressBlob(plain, int(e.rawLen), true)
			if err == nil && c.hasher.sum(e.typ, out) != e.id {
				err = fmt.Errorf("%w: %v blob %s does not hash to its ID", ErrCorrupt, e.typ, e.id)
			}
		}
		if err != nil {
			c.problem(name, fmt.Errorf("while verifying the blob at %d: %w", off, err))
			c.badBlob[uint64(no)<<32|uint64(off)] = true
			damagedBlobs++
		}
		off += e.length
	}
	if nameErr != nil && damagedBlobs == 0 {
		// Damaged, but not in a blob nor anywhere the header check sees:
		// count it against the whole pack.
		c.badPack[no] = true
	}
	return nil
}

// healthy reports whether a blob has a copy that is indexed and not known
// to be damaged.
func (c *checker) healthy(id *ID) bool {
	for _, l := range c.loc.lookup(id) {
		if !c.badPack[l.packNo] && !c.badBlob[uint64(l.packNo)<<32|uint64(l.off)] {
			return true
		}
	}
	return false
}

// listSnapshots records the snapshots that exist when the check starts.
func (c *checker) listSnapshots() error {
	err := c.r.st.List(c.ctx, snapshotPrefix, func(i storage.Info) error {
		if id, ok := parseObjectName(snapshotPrefix, i.Name); ok {
			c.snapshots = append(c.snapshots, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("while listing snapshots: %w", err)
	}
	return nil
}

func (c *checker) checkSnapshots() error {
	for _, id := range c.snapshots {
		c.rep.Snapshots++
		damaged, err := c.checkSnapshot(id)
		if err != nil {
			return err
		}
		if damaged {
			c.rep.DamagedSnapshots = append(c.rep.DamagedSnapshots, id)
		}
	}
	return nil
}

// checkSnapshot verifies one snapshot's manifest and tree and that every
// blob it needs has an intact copy.
func (c *checker) checkSnapshot(id ID) (bool, error) {
	name := snapshotPrefix + id.String()
	payload, err := c.r.readSealed(c.ctx, name, snapshotPrefix, ObjectSnapshot)
	var m *manifest
	if err == nil {
		m, err = parseManifest(payload, c.r.cfg.ID)
	}
	if err != nil {
		if isStorageError(err) && !errors.Is(err, storage.ErrNotFound) {
			return false, fmt.Errorf("while reading %s: %w", name, err)
		}
		c.problem(name, err)
		return true, nil
	}
	damaged := false
	var check treeChecker
	var chunks int64
	missing := 0
	for i, tid := range m.Tree {
		if !c.healthy(&tid) {
			c.problem(name, fmt.Errorf("%w: tree blob %d (%s) has no intact copy", ErrCorrupt, i, tid))
			return true, nil
		}
		b, err := c.r.loadBlobFrom(c.ctx, BlobTree, tid, -1, c.loc.lookup(&tid), c.hasher, nil)
		if err != nil {
			if c.ctx.Err() != nil {
				return false, err
			}
			c.problem(name, fmt.Errorf("while reading tree blob %d: %w", i, err))
			return true, nil
		}
		err = parseTreeBlob(b, func(_ int, it *treeItem) error {
			if err := check.next(it); err != nil {
				return err
			}
			if it.kind == itemChunk {
				chunks++
				if !c.healthy(&it.id) {
					if missing < 10 {
						c.problem(name, fmt.Errorf("%w: chunk %s of %q has no intact copy", ErrCorrupt, it.id, check.file.Path))
					}
					missing++
					damaged = true
				}
			}
			return nil
		})
		if err != nil {
			c.problem(name, fmt.Errorf("while reading tree blob %d: %w", i, err))
			return true, nil
		}
	}
	if !check.done {
		c.problem(name, fmt.Errorf("%w: the tree ends without a trailer", ErrCorrupt))
		return true, nil
	}
	if chunks != m.Stats.Chunks || int64(check.bytes) != m.Stats.Bytes {
		c.problem(name, fmt.Errorf("%w: the tree holds %d chunks/%d bytes, the manifest says %d/%d", ErrCorrupt, chunks, check.bytes, m.Stats.Chunks, m.Stats.Bytes))
		damaged = true
	}
	if missing > 10 {
		c.problem(name, fmt.Errorf("%w: %d more chunks have no intact copy", ErrCorrupt, missing-10))
	}
	return damaged, nil
}
