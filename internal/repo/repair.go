package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/pgvault/pgvault/internal/storage"
)

// RepairOptions configure RepairIndex.
type RepairOptions struct {
	// DryRun reports what a repair would do and changes nothing.
	DryRun bool
}

// RepairReport is what RepairIndex found and did.
type RepairReport struct {
	Indexes int // index objects listed
	Packs   int // packs stored
	// DamagedIndexes are the index objects that did not open or parse,
	// twice: deleted once the packs they may have named are indexed anew.
	DamagedIndexes []Problem
	// PacksIndexed are the stored packs that no intact index object named,
	// read from their own headers (R13) and listed by the new index
	// objects: those a damaged index object named, and leftovers of
	// interrupted backups (R20), whose blobs become reusable.
	PacksIndexed []string
	Blobs        int // blobs in PacksIndexed
	// DamagedPacks are unindexed packs whose header does not open: no
	// index can name them; they stay as they are, unindexed, and prune
	// reclaims them.
	DamagedPacks   []Problem
	IndexesWritten int
	IndexesDeleted int
	// DamagedPlans are prune plans that did not open or parse, twice:
	// deleted, which only cancels the sweep they planned (R46).
	DamagedPlans []Problem
	PlansDeleted int
}

// RepairIndex rebuilds the index from the packs themselves (R46): every
// stored pack that no intact index object names is read from its header and
// listed by new index objects, and only then are the damaged index objects
// deleted, and damaged prune plans with them. Writers and prune stop at a
// damaged index object or plan (R45); after a repair they run again. It
// takes the prune lock, so it does not run beside a prune
// (ErrPruneRunning), and may run beside backups and restores. A storage
// failure stops it before any deletion; run it again.
func (r *Repo) RepairIndex(ctx context.Context, opts RepairOptions) (*RepairReport, error) {
	rep := &RepairReport{}
	if !opts.DryRun {
		p := &pruner{r: r, ctx: ctx}
		p.opts.defaults()
		lock, err := p.lock()
		if err != nil {
			return nil, err
		}
		defer lock.release(context.WithoutCancel(ctx))
	}
	named := make(map[ID]bool)
	err := r.eachIndexObject(ctx, func(name string, _ ID) error {
		rep.Indexes++
		ids, err := r.indexedPacks(ctx, name)
		switch {
		case err == nil:
			for _, id := range ids {
				named[id] = true
			}
		case errors.Is(err, ErrUnsupportedVersion):
			return fmt.Errorf("%w; repair it with the pgvault that wrote it", err)
		case isStorageError(err):
			return err
		default:
			rep.DamagedIndexes = append(rep.DamagedIndexes, Problem{Object: name, Err: err})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("while reading the index: %w", err)
	}
	if rep.DamagedPlans, err = r.damagedPrunePlans(ctx); err != nil {
		return nil, err
	}

	var batch []*indexPack
	batchBlobs := 0
	flush := func() error {
		if len(batch) == 0 || opts.DryRun {
			batch, batchBlobs = nil, 0
			return nil
		}
		if _, err := r.putIndex(ctx, r.codec, batch); err != nil {
			return err
		}
		rep.IndexesWritten++
		batch, batchBlobs = nil, 0
		return nil
	}
	var flushErr error
	// known is asked once per stored pack: it counts them too.
	err = r.packsFromHeaders(ctx, func(id ID) bool { rep.Packs++; return named[id] }, func(p *indexPack) {
		rep.PacksIndexed = append(rep.PacksIndexed, packName(p.id))
		rep.Blobs += len(p.blobs)
		batch = append(batch, p)
		if batchBlobs += len(p.blobs); batchBlobs >= defaultIndexFlushBlobs && flushErr == nil {
			flushErr = flush()
		}
	}, func(id ID, err error) {
		rep.DamagedPacks = append(rep.DamagedPacks, Problem{Object: packName(id), Err: err})
	})
	if err == nil {
		err = flushErr
	}
	if err == nil {
		err = flush()
	}
	if err != nil {
		return nil, fmt.Errorf("while indexing packs from their headers: %w", err)
	}
	slices.Sort(rep.PacksIndexed)
	if opts.DryRun {
		return rep, nil
	}
	for _, pr := range rep.DamagedIndexes {
		if err := r.st.Delete(ctx, pr.Object); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("while deleting the damaged index object %s: %w", pr.Object, err)
		}
		rep.IndexesDeleted++
	}
	for _, pr := range rep.DamagedPlans {
		if err := r.st.Delete(ctx, pr.Object); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("while deleting the damaged prune plan %s: %w", pr.Object, err)
		}
		rep.PlansDeleted++
	}
	// Forget what was loaded: the next read loads the repaired index.
	r.mu.Lock()
	r.loc = nil
	r.mu.Unlock()
	return rep, nil
}

// indexedPacks returns the packs an index object names, reading it once
// more when it looks damaged: damage in transit is not damage in storage.
func (r *Repo) indexedPacks(ctx context.Context, name string) ([]ID, error) {
	var err error
	for range 2 {
		var ids []ID
		err = r.readIndex(ctx, name, func(p *indexPack) error { ids = append(ids, p.id); return nil })
		if err == nil {
			return ids, nil
		}
		if isStorageError(err) || errors.Is(err, ErrUnsupportedVersion) {
			return nil, err
		}
	}
	return nil, err
}

// damagedPrunePlans returns the prune plans that do not open or parse, each
// read twice. An unknown plan version stops it, as does a storage failure.
func (r *Repo) damagedPrunePlans(ctx context.Context) ([]Problem, error) {
	var damaged []Problem
	err := r.st.List(ctx, prunePrefix, func(i storage.Info) error {
		if _, ok := parseObjectName(prunePrefix, i.Name); !ok {
			return nil
		}
		var err error
		for range 2 {
			var payload []byte
			if payload, err = r.readSealed(ctx, i.Name, prunePrefix, ObjectPrunePlan); err == nil {
				_, err = parsePrunePlan(payload)
			}
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if isStorageError(err) || errors.Is(err, ErrUnsupportedVersion) {
				return fmt.Errorf("while reading %s: %w", i.Name, err)
			}
		}
		damaged = append(damaged, Problem{Object: i.Name, Err: err})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("while reading prune plans: %w", err)
	}
	return damaged, nil
}
