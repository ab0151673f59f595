package repo

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/faulty"
)

// objectNames lists the stored objects under prefix.
func objectNames(t testing.TB, st storage.Storage, prefix string) []string {
	t.Helper()
	var names []string
	err := st.List(context.Background(), prefix, func(i storage.Info) error { names = append(names, i.Name); return nil })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// packsNamedBy returns the packs an index object names.
func packsNamedBy(t testing.TB, r *Repo, name string) []string {
	t.Helper()
	ids, err := r.indexedPacks(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, id := range ids {
		names = append(names, packName(id))
	}
	return names
}

// repairTestWriter writes small packs and index objects: several of each.
var repairTestWriter = WriterOptions{PackSize: 16 << 10, indexFlushBlobs: 8}

// damageIndex makes trouble in r: one index object deleted (its packs look
// like leftovers), one damaged, a prune plan that does not parse and a pack
// object that is not a pack. It returns the packs the two index objects
// named, the damaged index object and the junk pack.
func damageIndex(t *testing.T, r *Repo, st storage.Storage) (lost []string, damaged, junk string) {
	t.Helper()
	ctx := context.Background()
	indexes := objectNames(t, st, indexPrefix)
	if len(indexes) < 2 {
		t.Fatalf("want two index objects at least, have %d", len(indexes))
	}
	deleted, damaged := indexes[0], indexes[1]
	lost = append(packsNamedBy(t, r, deleted), packsNamedBy(t, r, damaged)...)
	slices.Sort(lost)
	if err := st.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	b, err := getBytes(ctx, st, damaged)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := putBytes(ctx, st, damaged, b, false); err != nil {
		t.Fatal(err)
	}
	putSealedJSON(t, r, prunePrefix, ObjectPrunePlan, "not a plan")
	junk = packName(objectID([]byte("not a pack")))
	if err := putBytes(ctx, st, junk, []byte(strings.Repeat("not a pack", 10)), true); err != nil {
		t.Fatal(err)
	}
	return lost, damaged, junk
}

// TestRepairIndex: with an index object lost and another damaged, writers
// and prune refuse to run and check reports the damage; RepairIndex indexes
// the packs from their own headers and deletes the damaged object, after
// which check finds nothing wrong, every file reads back exactly, a new
// backup deduplicates against the repaired index and prune runs.
func TestRepairIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, key := newTestRepo(t)
	files := dbFiles(1)
	s1 := writeSnapshot(t, r, repairTestWriter, files, nil)
	lost, damaged, junk := damageIndex(t, r, st)

	r2, err := Open(ctx, st, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := r2.NewWriter(ctx, repairTestWriter); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a writer beside a damaged index object: %v", err)
	}
	if _, err := r2.Prune(ctx, PruneOptions{SafetyMargin: -1, StaleLockAge: -1}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("prune beside a damaged index object: %v", err)
	}
	if rep, err := r2.Check(ctx, CheckOptions{}); err != nil || rep.OK() {
		t.Fatalf("check of a damaged index: %+v, %v", rep, err)
	}

	// A dry run reports and changes nothing.
	before := objectNames(t, st, "")
	dry, err := r2.RepairIndex(ctx, RepairOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(objectNames(t, st, ""), before) {
		t.Fatal("a dry run changed the repository")
	}
	if !slices.Equal(dry.PacksIndexed, lost) || len(dry.DamagedIndexes) != 1 || dry.DamagedIndexes[0].Object != damaged ||
		len(dry.DamagedPacks) != 1 || dry.DamagedPacks[0].Object != junk || len(dry.DamagedPlans) != 1 ||
		dry.IndexesWritten != 0 || dry.IndexesDeleted != 0 || dry.PlansDeleted != 0 {
		t.Fatalf("dry run: %+v, want %d packs indexed, %s damaged", dry, len(lost), damaged)
	}

	// Not beside a prune.
	if err := st.Put(ctx, pruneLockName, strings.NewReader("x"), 1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.RepairIndex(ctx, RepairOptions{}); !errors.Is(err, ErrPruneRunning) {
		t.Fatalf("repair beside a prune: %v", err)
	}
	if err := st.Delete(ctx, pruneLockName); err != nil {
		t.Fatal(err)
	}

	rep, err := r2.RepairIndex(ctx, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.PacksIndexed, lost) || rep.Blobs == 0 || rep.IndexesWritten == 0 || rep.IndexesDeleted != 1 ||
		len(rep.DamagedPacks) != 1 || rep.Packs != len(objectNames(t, st, packsPrefix)) || rep.PlansDeleted != 1 ||
		len(objectNames(t, st, prunePrefix)) != 0 {
		t.Fatalf("repair: %+v", rep)
	}
	if slices.Contains(objectNames(t, st, indexPrefix), damaged) {
		t.Fatal("the damaged index object stayed")
	}
	if slices.Contains(objectNames(t, st, ""), pruneLockName) {
		t.Fatal("the prune lock stayed")
	}
	check := mustCheck(t, r2, CheckOptions{ReadData: true})
	if !check.OK() || len(check.PacksFromHeaders) != 0 || !slices.Equal(check.UnindexedPacks, []string{junk}) {
		t.Fatalf("check after repair: %+v", check)
	}
	verifyContent(t, r2, s1, files) // through the repaired index, reloaded
	s2 := writeSnapshot(t, r2, repairTestWriter, files, nil)
	if s2.Stats.NewBytes > 4<<10 {
		t.Errorf("a backup of the same files after repair stored %d new bytes", s2.Stats.NewBytes)
	}
	if _, err := r2.Prune(ctx, PruneOptions{SafetyMargin: -1, StaleLockAge: -1}); err != nil {
		t.Fatalf("prune after repair: %v", err)
	}
	mustCheck(t, r2, CheckOptions{ReadData: true})
	verifyContent(t, r2, s1, files)

	again, err := r2.RepairIndex(ctx, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.PacksIndexed) != 0 || len(again.DamagedIndexes) != 0 || len(again.DamagedPlans) != 0 || again.IndexesWritten != 0 {
		t.Errorf("a second repair: %+v", again)
	}
}

// TestRepairIndexStorageFault: a storage failure while the new index is
// stored stops the repair before it deletes anything; the next repair
// finishes the job.
func TestRepairIndexStorageFault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, key := newTestRepo(t)
	files := dbFiles(2)
	s := writeSnapshot(t, r, repairTestWriter, files, nil)
	_, damaged, _ := damageIndex(t, r, st)

	// Each step on storage of its own faults, opened anew.
	onFaulty := func(flt faulty.Fault) error {
		f := faulty.Wrap(st)
		rf, err := Open(ctx, f, key)
		if err != nil {
			t.Fatal(err)
		}
		defer rf.Close()
		f.Inject(flt)
		_, err = rf.RepairIndex(ctx, RepairOptions{})
		return err
	}
	err := onFaulty(faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix(indexPrefix), Times: faulty.Forever})
	if !errors.Is(err, faulty.ErrInjected) || !strings.Contains(err.Error(), "while storing index") {
		t.Fatalf("repair with index writes failing: %v", err)
	}
	if !slices.Contains(objectNames(t, st, indexPrefix), damaged) {
		t.Fatal("a failed repair deleted the damaged index object")
	}
	if err := onFaulty(faulty.Fault{Op: faulty.OpDelete, Match: faulty.Prefix(indexPrefix)}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("repair with the delete failing: %v", err)
	}
	r2, err := Open(ctx, st, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	// The packs are indexed now; only the damaged object is left to go.
	rep, err := r2.RepairIndex(ctx, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.PacksIndexed) != 0 || rep.IndexesDeleted != 1 {
		t.Fatalf("the repair after the failures: %+v", rep)
	}
	mustCheck(t, r2, CheckOptions{ReadData: true}) // fails the test on any problem
	verifyContent(t, r2, s, files)
}
