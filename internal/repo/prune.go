package repo

import (
	"context"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/storage"
)

// Defaults of prune (docs/design.md §12).
const (
	// DefaultSafetyMargin is the age below which prune never deletes a pack
	// or index object, and the least age of a plan it sweeps (R37, R38).
	DefaultSafetyMargin = time.Hour
	// DefaultRepackThreshold: a pack whose live blobs fill less than this
	// fraction of it is repacked (its live blobs copied, the pack deleted).
	DefaultRepackThreshold = 0.5
	// pruneLockName is the lock that keeps prunes of one repository apart.
	pruneLockName = locksPrefix + "prune"
)

// ErrPruneRunning: another prune holds the repository's prune lock.
var ErrPruneRunning = errors.New("another prune is running on this repository")

// PruneOptions tune Prune. The zero value gives the defaults.
type PruneOptions struct {
	// Now is the clock object ages are measured by (default time.Now).
	Now func() time.Time
	// SafetyMargin (default DefaultSafetyMargin): packs and index objects
	// younger than this are never deleted, and a plan is swept only when at
	// least this old. Negative means none (tests).
	SafetyMargin time.Duration
	// StaleLockAge (default LockStaleAfter): a writer lock not refreshed for
	// this long is stale; its writer will not commit (R34). Negative means
	// every lock is stale (tests of a repository no writer uses).
	StaleLockAge time.Duration
	// RepackThreshold in (0, 1] (default DefaultRepackThreshold): a pack
	// whose live blobs fill less than this fraction of it is repacked.
	RepackThreshold float64
	// PackSize is the target size of the packs repacking writes (default
	// DefaultPackSize).
	PackSize int
	// DryRun computes what a mark would plan and changes nothing.
	DryRun bool
}

func (o *PruneOptions) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	o.SafetyMargin = durationOr(o.SafetyMargin, DefaultSafetyMargin)
	o.StaleLockAge = durationOr(o.StaleLockAge, LockStaleAfter)
	if o.RepackThreshold <= 0 || o.RepackThreshold > 1 {
		o.RepackThreshold = DefaultRepackThreshold
	}
	if o.PackSize <= 0 {
		o.PackSize = DefaultPackSize
	}
	o.PackSize = min(max(o.PackSize, minPackSize), maxPackSize/2)
}

// durationOr: 0 gives def, a negative d gives 0.
func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// PruneReport says what a Prune call did.
type PruneReport struct {
	// Marked: a plan was written (with DryRun: computed) naming
	// PlannedPacks packs of PlannedBytes.
	Marked       bool
	PlannedPacks int
	PlannedBytes int64
	// Swept: a plan was carried out.
	Swept bool
	// Waiting says why a pending plan could not be swept yet ("" if none).
	Waiting string
	// Snapshots is the number of snapshots whose blobs were kept, LiveBlobs
	// the blobs they reference and LiveBytes their stored size (each blob
	// counted once), as of the last scan.
	Snapshots int
	LiveBlobs int
	LiveBytes int64
	// PacksDeleted and BytesDeleted count the packs the sweep deleted,
	// PacksRepacked those of them whose live blobs it copied first, into
	// PacksWritten new packs of BytesWritten (BlobsCopied blobs).
	PacksDeleted  int
	BytesDeleted  int64
	PacksRepacked int
	BlobsCopied   int
	PacksWritten  int
	BytesWritten  int64
	// PacksKept and BytesKept are the packs left after the last step.
	PacksKept int
	BytesKept int64
	// IndexesWritten and IndexesDeleted count index objects.
	IndexesWritten int
	IndexesDeleted int
	// LocksDeleted counts stale writer locks removed, TempFilesDeleted
	// the temporary files of interrupted Puts (backends that keep them).
	LocksDeleted     int
	TempFilesDeleted int
}

// Phase summarises the steps the call took: "mark", "sweep", "mark+sweep"
// (both, in either order), "wait" (a plan is pending) or "none".
func (p *PruneReport) Phase() string {
	switch {
	case p.Marked && p.Swept:
		return "mark+sweep"
	case p.Marked:
		return "mark"
	case p.Swept:
		return "sweep"
	case p.Waiting != "":
		return "wait"
	}
	return "none"
}

// Forget deletes the manifests of snapshots, first step of reclaiming their
// space (R36): their blobs stay until a Prune finds them unreferenced.
// Snapshots already gone are not an error.
func (r *Repo) Forget(ctx context.Context, ids ...SnapshotID) error {
	for _, id := range ids {
		err := r.st.Delete(ctx, snapshotPrefix+id.String())
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("while forgetting snapshot %s: %w", id, err)
		}
	}
	return nil
}

// Prune reclaims the space of blobs no snapshot references, in two phases
// (docs/design.md §12, R36-R38). A call does whatever step is due: it
// sweeps a pending plan that is old enough and whose writers are gone,
// and, when no plan is pending, marks: it writes a plan naming the packs
// to delete or repack. With margins of 0 and no writer running, one call
// marks and sweeps. Prunes of one repository exclude each other
// (ErrPruneRunning). A crash at any point loses nothing live; the next
// Prune carries on.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (*PruneReport, error) {
	opts.defaults()
	p := &pruner{r: r, ctx: ctx, opts: opts, rep: &PruneReport{}}
	if opts.DryRun {
		s, err := p.scan()
		if err != nil {
			return nil, err
		}
		p.rep.Marked = len(p.plan(s)) > 0
		p.keptFrom(s, nil)
		return p.rep, nil
	}
	lock, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer lock.release(context.WithoutCancel(ctx))
	if err := p.run(); err != nil {
		return p.rep, err
	}
	return p.rep, nil
}

// pruner holds one Prune call's state.
type pruner struct {
	r    *Repo
	ctx  context.Context
	opts PruneOptions
	rep  *PruneReport
}

func (p *pruner) age(t time.Time) time.Duration { return p.opts.Now().Sub(t) }

// lock takes the prune lock, replacing a stale one.
func (p *pruner) lock() (*writerLock, error) {
	for range 2 {
		l, err := p.r.takeLock(p.ctx, pruneLockName, lockRefreshInterval, true)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, storage.ErrAlreadyExists) {
			return nil, fmt.Errorf("while taking the prune lock: %w", err)
		}
		i, err := p.r.st.Stat(p.ctx, pruneLockName)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("while taking the prune lock: %w", err)
		}
		if p.age(i.ModTime) < p.opts.StaleLockAge {
			return nil, ErrPruneRunning
		}
		if err := p.r.st.Delete(p.ctx, pruneLockName); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("while removing a stale prune lock: %w", err)
		}
	}
	return nil, ErrPruneRunning
}

// run sweeps what is due, then marks when no plan is pending.
func (p *pruner) run() error {
	plans, err := p.readPlans()
	if err != nil {
		return err
	}
	for _, pl := range plans {
		if !pl.plan.LocksListed {
			if err := p.complete(pl); err != nil {
				return err
			}
		}
	}
	pending := false
	for _, pl := range plans {
		swept, err := p.sweepIfDue(pl)
		if err != nil {
			return err
		}
		pending = pending || !swept
	}
	if pending {
		return p.cleanTemp()
	}
	s, err := p.scan()
	if err != nil {
		return err
	}
	if err := p.dropStale(s); err != nil {
		return err
	}
	if cand := p.plan(s); len(cand) > 0 {
		pl, err := p.publish(cand)
		if err != nil {
			return err
		}
		p.rep.Marked = true
		if _, err := p.sweepIfDue(pl); err != nil {
			return err
		}
	} else {
		p.keptFrom(s, nil)
	}
	return p.cleanTemp()
}

// storedPlan is a plan object and its storage time.
type storedPlan struct {
	name    string
	modTime time.Time
	plan    prunePlan
}

func (p *pruner) readPlans() ([]*storedPlan, error) {
	var out []*storedPlan
	err := p.r.st.List(p.ctx, prunePrefix, func(i storage.Info) error {
		if _, ok := parseObjectName(prunePrefix, i.Name); !ok {
			return nil
		}
		payload, err := p.r.readSealed(p.ctx, i.Name, prunePrefix, ObjectPrunePlan)
		if err != nil {
			return fmt.Errorf("while reading %s: %w", i.Name, err)
		}
		pl, err := parsePrunePlan(payload)
		if err != nil {
			return fmt.Errorf("while reading %s: %w", i.Name, err)
		}
		out = append(out, &storedPlan{name: i.Name, modTime: i.ModTime, plan: pl})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("while reading prune plans: %w", err)
	}
	return out, nil
}

// writerLocks lists the writer locks (not the prune lock).
func (p *pruner) writerLocks() ([]storage.Info, error) {
	var out []storage.Info
	err := p.r.st.List(p.ctx, locksPrefix, func(i storage.Info) error {
		if rest := strings.TrimPrefix(i.Name, locksPrefix); len(rest) == 32 {
			if _, err := hex.DecodeString(rest); err == nil {
				out = append(out, i)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("while listing locks: %w", err)
	}
	return out, nil
}

// publish stores a plan naming packs in two steps (R37): first the packs,
// so that every writer starting from then on leaves them alone (R35); then,
// after listing the writer locks, the complete plan with those locks.
func (p *pruner) publish(packs []ID) (*storedPlan, error) {
	pl := &storedPlan{plan: prunePlan{Version: planVersion, Created: p.opts.Now().UTC(), Packs: packs}}
	name, err := p.putPlan(pl.plan)
	if err != nil {
		return nil, err
	}
	pl.name = name
	if err := p.complete(pl); err != nil {
		return nil, err
	}
	return pl, nil
}

// complete lists the writer locks present now, after pl's packs are
// published, and replaces pl by a complete plan recording them. A plan left
// incomplete by a crash is completed the same way: any lock listed after
// the packs were published will do.
func (p *pruner) complete(pl *storedPlan) error {
	locks, err := p.writerLocks()
	if err != nil {
		return err
	}
	full := pl.plan
	full.LocksListed, full.Locks = true, []string{}
	for _, l := range locks {
		full.Locks = append(full.Locks, l.Name)
	}
	name, err := p.putPlan(full)
	if err != nil {
		return err
	}
	if err := p.r.st.Delete(p.ctx, pl.name); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("while replacing %s: %w", pl.name, err)
	}
	i, err := p.r.st.Stat(p.ctx, name)
	if err != nil {
		return fmt.Errorf("while reading back %s: %w", name, err)
	}
	pl.name, pl.modTime, pl.plan = name, i.ModTime, full
	return nil
}

func (p *pruner) putPlan(pl prunePlan) (string, error) {
	payload, err := json.Marshal(pl)
	if err != nil {
		return "", fmt.Errorf("while encoding the prune plan: %w", err)
	}
	obj := p.r.codec.seal(p.r.keys, ObjectPrunePlan, payload)
	name := prunePrefix + objectID(obj).String()
	if err := putBytes(p.ctx, p.r.st, name, obj, true); err != nil {
		return "", fmt.Errorf("while storing the prune plan: %w", err)
	}
	return name, nil
}

// sweepIfDue sweeps pl when it is old enough and every lock it lists is
// gone or stale; otherwise it says why it waits.
func (p *pruner) sweepIfDue(pl *storedPlan) (bool, error) {
	if a := p.age(latest(pl.modTime, pl.plan.Created)); a < p.opts.SafetyMargin {
		p.rep.Waiting = fmt.Sprintf("the prune plan is %v old; it is swept at %v", a.Round(time.Second), p.opts.SafetyMargin)
		return false, nil
	}
	for _, name := range pl.plan.Locks {
		i, err := p.r.st.Stat(p.ctx, name)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("while looking at %s: %w", name, err)
		}
		if a := p.age(i.ModTime); a < p.opts.StaleLockAge {
			p.rep.Waiting = fmt.Sprintf("a writer that was running at mark time (%s, refreshed %v ago) still runs", name, a.Round(time.Second))
			return false, nil
		}
	}
	p.rep.Waiting = ""
	return true, p.sweep(pl)
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pack is a pack as prune sees it: in storage, in the index, or both.
type prunePack struct {
	id      ID
	stored  bool
	size    int64
	modTime time.Time
	index   *indexPack // its listing (nil: unindexed)
	indexes []int      // the index objects naming it
	live    int64      // stored bytes of its live blobs
}

// pruneIndex is an index object.
type pruneIndex struct {
	name    string
	modTime time.Time
	packs   []ID
}

// scanState is the repository as one scan saw it.
type scanState struct {
	packs   map[ID]*prunePack
	indexes []*pruneIndex
	live    map[ID]struct{}
}

func (s *scanState) pack(id ID) *prunePack {
	pk := s.packs[id]
	if pk == nil {
		pk = &prunePack{id: id}
		s.packs[id] = pk
	}
	return pk
}

// scan reads snapshots, then index, then packs: the reverse of the write
// order, so that what a committing backup wrote is seen whole.
func (p *pruner) scan() (*scanState, error) {
	s := &scanState{packs: make(map[ID]*prunePack), live: make(map[ID]struct{})}
	if err := p.markLive(s); err != nil {
		return nil, err
	}
	err := p.r.st.List(p.ctx, indexPrefix, func(i storage.Info) error {
		if _, ok := parseObjectName(indexPrefix, i.Name); !ok {
			return nil
		}
		x := &pruneIndex{name: i.Name, modTime: i.ModTime}
		no := len(s.indexes)
		s.indexes = append(s.indexes, x)
		return p.r.readIndex(p.ctx, i.Name, func(ip *indexPack) error {
			x.packs = append(x.packs, ip.id)
			pk := s.pack(ip.id)
			pk.indexes = append(pk.indexes, no)
			if pk.index == nil {
				c := *ip
				c.blobs = slices.Clone(ip.blobs)
				pk.index = &c
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("while reading the index: %w", err)
	}
	err = p.r.st.List(p.ctx, packsPrefix, func(i storage.Info) error {
		if id, ok := parseObjectName(packsPrefix, i.Name); ok {
			pk := s.pack(id)
			pk.stored, pk.size, pk.modTime = true, i.Size, i.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("while listing packs: %w", err)
	}
	counted := make(map[ID]struct{})
	p.rep.LiveBlobs, p.rep.LiveBytes = 0, 0
	for _, pk := range s.packs {
		if pk.index == nil || !pk.stored {
			continue
		}
		for _, b := range pk.index.blobs {
			if _, ok := s.live[b.id]; !ok {
				continue
			}
			pk.live += int64(b.length)
			if _, ok := counted[b.id]; !ok {
				counted[b.id] = struct{}{}
				p.rep.LiveBlobs++
				p.rep.LiveBytes += int64(b.length)
			}
		}
	}
	return s, nil
}

// markLive collects the IDs of every blob a snapshot references.
func (p *pruner) markLive(s *scanState) error {
	var ids []ID
	err := p.r.st.List(p.ctx, snapshotPrefix, func(i storage.Info) error {
		if id, ok := parseObjectName(snapshotPrefix, i.Name); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("while listing snapshots: %w", err)
	}
	p.rep.Snapshots = 0
	for _, id := range ids {
		snap, err := p.r.readSnapshot(p.ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue // forgotten meanwhile
		}
		if err != nil {
			return err
		}
		p.rep.Snapshots++
		for _, t := range snap.tree {
			s.live[t] = struct{}{}
		}
		t, err := p.r.newTreeReader(p.ctx, snap, treePos{})
		if err != nil {
			return err
		}
		for {
			it, err := t.item()
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("while reading the tree of snapshot %s: %w", id, err)
			}
			if it.kind == itemChunk {
				s.live[it.id] = struct{}{}
			}
		}
	}
	return nil
}

// mostlyDead reports whether an indexed pack is to be repacked or
// deleted: its live blobs fill less than the threshold of its blobs.
func (p *pruner) mostlyDead(pk *prunePack) bool {
	var all int64
	for _, b := range pk.index.blobs {
		all += int64(b.length)
	}
	return pk.live == 0 || float64(pk.live) < p.opts.RepackThreshold*float64(all)
}

// plan returns the packs a mark names: stored packs older than the margin
// that are unindexed or mostly dead.
func (p *pruner) plan(s *scanState) []ID {
	var out []ID
	p.rep.PlannedPacks, p.rep.PlannedBytes = 0, 0
	for _, pk := range s.packs {
		if !pk.stored || p.age(pk.modTime) < p.opts.SafetyMargin {
			continue
		}
		if pk.index == nil || p.mostlyDead(pk) {
			out = append(out, pk.id)
			p.rep.PlannedPacks++
			p.rep.PlannedBytes += pk.size
		}
	}
	slices.SortFunc(out, func(a, b ID) int { return strings.Compare(string(a[:]), string(b[:])) })
	return out
}

// dropStale deletes stale writer locks (their writers will not commit,
// R34) and index objects older than the margin that name only packs that
// are gone (leftovers: nothing can be read through them).
func (p *pruner) dropStale(s *scanState) error {
	locks, err := p.writerLocks()
	if err != nil {
		return err
	}
	for _, l := range locks {
		if p.age(l.ModTime) < p.opts.StaleLockAge {
			continue
		}
		if err := p.r.st.Delete(p.ctx, l.Name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("while deleting the stale lock %s: %w", l.Name, err)
		}
		p.rep.LocksDeleted++
	}
	for _, x := range s.indexes {
		if p.age(x.modTime) < p.opts.SafetyMargin || slices.ContainsFunc(x.packs, func(id ID) bool { return s.packs[id].stored }) {
			continue
		}
		if err := p.r.st.Delete(p.ctx, x.name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("while deleting %s: %w", x.name, err)
		}
		p.rep.IndexesDeleted++
	}
	return nil
}

// sweep carries out a plan (R36, R37): with liveness computed anew, it
// copies the still-live blobs of the packs to delete into new packs,
// indexes them, writes the replacement index, deletes the index objects it
// replaces, then the packs, then the plan.
func (p *pruner) sweep(pl *storedPlan) error {
	s, err := p.scan()
	if err != nil {
		return err
	}
	del := p.doomed(s, pl.plan.Packs)
	keep := make(map[ID]struct{}) // live blobs with a copy in a pack that stays
	for _, pk := range s.packs {
		if _, gone := del[pk.id]; gone || !pk.stored || pk.index == nil {
			continue
		}
		for _, b := range pk.index.blobs {
			if _, ok := s.live[b.id]; ok {
				keep[b.id] = struct{}{}
			}
		}
	}
	rp := &repacker{p: p, keep: keep}
	for _, id := range sortedIDs(del) {
		if pk := s.packs[id]; pk.stored && pk.live > 0 {
			if err := rp.copyLive(pk, s.live); err != nil {
				return err
			}
		}
	}
	if err := rp.flush(); err != nil {
		return err
	}
	// The replacement index: the new packs, and every pack that stays of
	// the index objects that name a pack to delete.
	superseded := make(map[int]bool)
	for id := range del {
		for _, no := range s.packs[id].indexes {
			superseded[no] = true
		}
	}
	listed := make(map[ID]bool)
	repl := rp.written
	for _, no := range sortedKeys(superseded) {
		for _, id := range s.indexes[no].packs {
			if _, gone := del[id]; !gone && !listed[id] {
				listed[id] = true
				repl = append(repl, s.packs[id].index)
			}
		}
	}
	if len(repl) > 0 {
		if _, err := p.r.putIndex(p.ctx, p.r.codec, repl); err != nil {
			return fmt.Errorf("while replacing the index: %w", err)
		}
		p.rep.IndexesWritten++
	}
	for _, no := range sortedKeys(superseded) {
		if err := p.r.st.Delete(p.ctx, s.indexes[no].name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("while deleting %s: %w", s.indexes[no].name, err)
		}
		p.rep.IndexesDeleted++
	}
	for _, id := range sortedIDs(del) {
		pk := s.packs[id]
		if !pk.stored {
			continue
		}
		err := p.r.st.Delete(p.ctx, packName(id))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("while deleting %s: %w", packName(id), err)
		}
		if err == nil {
			p.rep.PacksDeleted++
			p.rep.BytesDeleted += pk.size
		}
	}
	if err := p.r.st.Delete(p.ctx, pl.name); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("while deleting the prune plan %s: %w", pl.name, err)
	}
	p.rep.Swept = true
	p.keptFrom(s, del)
	p.rep.PacksKept += len(rp.written)
	p.rep.BytesKept += rp.bytes
	return nil
}

// doomed decides, with liveness as it is now, which planned packs go: those
// still mostly dead (or unindexed, or already gone from storage) whose
// index objects are all older than the margin.
func (p *pruner) doomed(s *scanState, planned []ID) map[ID]struct{} {
	del := make(map[ID]struct{})
	for _, id := range planned {
		pk := s.packs[id]
		if pk == nil {
			continue // gone and unindexed: nothing to do
		}
		if pk.stored && pk.index != nil && !p.mostlyDead(pk) {
			continue // a writer that was running committed snapshots using it
		}
		if slices.ContainsFunc(pk.indexes, func(no int) bool { return p.age(s.indexes[no].modTime) < p.opts.SafetyMargin }) {
			continue // R38: its index objects cannot go yet
		}
		del[id] = struct{}{}
	}
	return del
}

// keptFrom counts the stored packs of s that are not in del.
func (p *pruner) keptFrom(s *scanState, del map[ID]struct{}) {
	p.rep.PacksKept, p.rep.BytesKept = 0, 0
	for _, pk := range s.packs {
		if _, gone := del[pk.id]; pk.stored && !gone {
			p.rep.PacksKept++
			p.rep.BytesKept += pk.size
		}
	}
}

// cleanTemp removes temporary files of interrupted Puts older than the
// margin, on backends that keep such files (fs).
func (p *pruner) cleanTemp() error {
	tc, ok := p.r.st.(interface {
		RemoveTemp(ctx context.Context, before time.Time) (int, error)
	})
	if !ok {
		return nil
	}
	n, err := tc.RemoveTemp(p.ctx, p.opts.Now().Add(-max(p.opts.SafetyMargin, time.Minute)))
	p.rep.TempFilesDeleted += n
	if err != nil {
		return fmt.Errorf("while removing temporary files: %w", err)
	}
	return nil
}

// repacker copies live blobs into new packs, one blob type per pack (R14).
type repacker struct {
	p       *pruner
	keep    map[ID]struct{} // live blobs already in a pack that stays, or copied
	open    map[BlobType]*newPack
	written []*indexPack
	bytes   int64
}

// newPack is a pack being filled by prune.
type newPack struct {
	salt  [32]byte
	aead  cipher.AEAD
	buf   []byte
	blobs []packBlob
}

// copyLive reads a pack, verifies it, and copies its live blobs that no
// staying pack holds. Damage stops the sweep: nothing is deleted.
func (rp *repacker) copyLive(pk *prunePack, live map[ID]struct{}) error {
	p := rp.p
	name := packName(pk.id)
	data, err := getBytes(p.ctx, p.r.st, name)
	if err != nil {
		return fmt.Errorf("while reading %s to repack it: %w", name, err)
	}
	if err := verifyName(pk.id, data); err != nil {
		return fmt.Errorf("while repacking %s: %w", name, err)
	}
	_, blobs, aead, err := p.r.keys.openPack(data)
	if err != nil {
		return fmt.Errorf("while repacking %s: %w", name, err)
	}
	hasher := p.r.keys.newIDHasher()
	var off uint32
	copied := false
	for _, b := range blobs {
		sealed := data[off : off+b.length]
		at := off
		off += b.length
		if _, ok := live[b.id]; !ok {
			continue
		}
		if _, ok := rp.keep[b.id]; ok {
			continue
		}
		plain, err := openBlob(aead, nil, sealed, at, b.typ, b.id)
		if err != nil {
			return fmt.Errorf("while repacking %s: %w", name, err)
		}
		raw, err := p.r.codec.decompressBlob(plain, int(b.rawLen), true)
		if err != nil {
			return fmt.Errorf("while repacking %s: %w", name, err)
		}
		if hasher.sum(b.typ, raw) != b.id {
			return fmt.Errorf("while repacking %s: %w: %v blob %s does not hash to its ID", name, ErrCorrupt, b.typ, b.id)
		}
		if err := rp.add(b, plain); err != nil {
			return err
		}
		rp.keep[b.id] = struct{}{}
		p.rep.BlobsCopied++
		copied = true
	}
	if copied {
		p.rep.PacksRepacked++
	}
	return nil
}

// add encrypts a blob (plain is compression ID | payload) into the open
// pack of its type, storing the pack when full.
func (rp *repacker) add(b packBlob, plain []byte) error {
	if rp.open == nil {
		rp.open = make(map[BlobType]*newPack)
	}
	np := rp.open[b.typ]
	if np != nil && len(np.buf)+len(plain)+16 > rp.p.opts.PackSize {
		if err := rp.store(np); err != nil {
			return err
		}
		np = nil
	}
	if np == nil {
		np = &newPack{}
		copy(np.salt[:], randomBytes(32))
		np.aead = rp.p.r.keys.packAEAD(np.salt[:])
		rp.open[b.typ] = np
	}
	off := len(np.buf)
	np.buf = sealBlob(np.aead, np.buf, plain, off, b.typ, b.id)
	np.blobs = append(np.blobs, packBlob{typ: b.typ, id: b.id, length: uint32(len(np.buf) - off), rawLen: b.rawLen})
	return nil
}

// store seals and stores a new pack.
func (rp *repacker) store(np *newPack) error {
	data := sealPackEnd(np.buf, np.aead, np.salt, np.blobs)
	id := objectID(data)
	if err := putBytes(rp.p.ctx, rp.p.r.st, packName(id), data, true); err != nil {
		return fmt.Errorf("while storing a repacked pack: %w", err)
	}
	rp.written = append(rp.written, &indexPack{id: id, size: uint64(len(data)), salt: np.salt, blobs: np.blobs})
	rp.bytes += int64(len(data))
	rp.p.rep.PacksWritten++
	rp.p.rep.BytesWritten += int64(len(data))
	return nil
}

// flush stores the packs still open.
func (rp *repacker) flush() error {
	for _, t := range []BlobType{BlobData, BlobTree} {
		if np := rp.open[t]; np != nil {
			if err := rp.store(np); err != nil {
				return err
			}
			delete(rp.open, t)
		}
	}
	return nil
}

func sortedIDs(m map[ID]struct{}) []ID {
	out := make([]ID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b ID) int { return strings.Compare(string(a[:]), string(b[:])) })
	return out
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
