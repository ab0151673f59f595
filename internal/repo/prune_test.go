package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/faulty"
	"github.com/pgvault/pgvault/internal/storage/fs"
	"github.com/pgvault/pgvault/internal/storage/mem"
)

// noMargins prunes at once: tests of repositories no writer uses.
var noMargins = PruneOptions{SafetyMargin: -1, StaleLockAge: -1}

// pruneFiles are three generations of a small cluster: the second shares
// half its relation files with the first, the third half with the second.
func pruneFiles() [3][]testFile {
	a, b, c := dbFiles(1), dbFiles(50), dbFiles(90)
	return [3][]testFile{a, append(a[:4:4], b[4:]...), append(b[:2:2], c[2:]...)}
}

// verifyContent reads every file of s through OpenFile and compares it
// with what was written.
func verifyContent(t testing.TB, r *Repo, s *Snapshot, files []testFile) {
	t.Helper()
	for _, f := range files {
		got, err := readFile(t, r, s, f.Path)
		if err != nil {
			t.Fatalf("snapshot %s, %s: %v", s.ID, f.Path, err)
		}
		if !bytes.Equal(got, f.data) {
			t.Fatalf("snapshot %s, %s: the content differs", s.ID, f.Path)
		}
	}
}

// storedBytes sums the sizes of the objects under prefix.
func storedBytes(t testing.TB, st storage.Storage, prefix string) (n int, size int64) {
	t.Helper()
	err := st.List(context.Background(), prefix, func(i storage.Info) error {
		n++
		size += i.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, size
}

func mustPrune(t testing.TB, r *Repo, opts PruneOptions) *PruneReport {
	t.Helper()
	rep, err := r.Prune(context.Background(), opts)
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	return rep
}

func TestPruneReclaimsForgottenSnapshots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, _ := newTestRepo(t)
	opts := WriterOptions{PackSize: 64 << 10, indexFlushBlobs: 16}
	gens := pruneFiles()
	var snaps []*Snapshot
	for _, files := range gens {
		snaps = append(snaps, writeSnapshot(t, r, opts, files, nil))
	}
	_, before := storedBytes(t, st, packsPrefix)

	// Nothing forgotten: nothing to do.
	if rep := mustPrune(t, r, noMargins); rep.Marked || rep.PacksDeleted != 0 || rep.Snapshots != 3 {
		t.Fatalf("prune of a repository without garbage: %+v", rep)
	}
	if err := r.Forget(ctx, snaps[0].ID, snaps[1].ID, snaps[0].ID); err != nil {
		t.Fatal(err)
	}
	rep := mustPrune(t, r, noMargins)
	if rep.Phase() != "mark+sweep" || rep.PacksDeleted == 0 || rep.Snapshots != 1 || rep.IndexesWritten == 0 {
		t.Fatalf("prune after forgetting: %+v", rep)
	}
	_, after := storedBytes(t, st, packsPrefix)
	if rep.BytesKept != after || after >= before {
		t.Fatalf("packs %d bytes before, %d after; report %+v", before, after, rep)
	}
	if n, _ := storedBytes(t, st, prunePrefix); n != 0 {
		t.Errorf("%d prune plans left", n)
	}
	if n, _ := storedBytes(t, st, locksPrefix); n != 0 {
		t.Errorf("%d locks left", n)
	}
	chk := mustCheck(t, r, CheckOptions{ReadData: true})
	if len(chk.UnindexedPacks) != 0 || chk.Snapshots != 1 {
		t.Fatalf("check after prune: %+v", chk)
	}
	verifyContent(t, r, snaps[2], gens[2])

	// Every blob left is live, or in a pack at least half live.
	if again := mustPrune(t, r, noMargins); again.Marked || again.PacksDeleted != 0 {
		t.Fatalf("a second prune found more to do: %+v", again)
	}
	// Forgetting the last snapshot empties the repository of packs.
	if err := r.Forget(ctx, snaps[2].ID); err != nil {
		t.Fatal(err)
	}
	mustPrune(t, r, noMargins)
	if n, size := storedBytes(t, st, packsPrefix); n != 0 {
		t.Fatalf("%d packs (%d bytes) left without snapshots", n, size)
	}
	if n, _ := storedBytes(t, st, indexPrefix); n != 0 {
		t.Fatalf("%d index objects left without packs", n)
	}
}

// TestPruneRepacksPartlyLivePacks: a pack mostly dead is rewritten with
// only its live blobs, which still read back.
func TestPruneRepacksPartlyLivePacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, _ := newTestRepo(t)
	// One pack holds both files; only the small one stays live.
	small := regular("base/1/1", relData(7, 4))
	big := regular("base/1/2", relData(8, 40))
	s1 := writeSnapshot(t, r, WriterOptions{}, []testFile{small, big}, nil)
	s2 := writeSnapshot(t, r, WriterOptions{}, []testFile{small}, nil)
	if err := r.Forget(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	rep := mustPrune(t, r, noMargins)
	if rep.PacksRepacked != 1 || rep.BlobsCopied != 1 || rep.PacksWritten != 1 {
		t.Fatalf("want the data pack repacked with its one live chunk: %+v", rep)
	}
	// r loaded the index before the sweep (to mark): reading finds the old
	// pack gone and must find the new copy through the new index (R43).
	verifyContent(t, r, s2, []testFile{small})
	mustCheck(t, r, CheckOptions{ReadData: true})
}

// TestPruneTwoPhases follows R37 with a clock: the plan waits for the
// margin and for a writer that was running at mark time; that writer's
// snapshot, which reuses blobs of planned packs, survives the sweep.
func TestPruneTwoPhases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, _ := newTestRepo(t)
	opts := WriterOptions{PackSize: 64 << 10}
	gens := pruneFiles()
	s1 := writeSnapshot(t, r, opts, gens[0], nil)
	if err := r.Forget(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	// A writer starts before the plan: it deduplicates against s1's blobs.
	w, err := r.NewWriter(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range gens[0] {
		if err := w.AddFile(ctx, f.File, f.reader()); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	at := func(d time.Duration) PruneOptions {
		return PruneOptions{Now: func() time.Time { return start.Add(d) }, StaleLockAge: 10 * time.Hour}
	}
	rep := mustPrune(t, r, at(2*time.Hour))
	if !rep.Marked || rep.Swept || rep.PlannedPacks == 0 || rep.Waiting == "" {
		t.Fatalf("first prune: %+v", rep)
	}
	// A writer that starts now does not rely on planned packs (R35).
	s3 := writeSnapshot(t, r, opts, gens[0][:2], nil)
	if s3.Stats.NewChunks == 0 {
		t.Fatalf("a writer started after the plan reused planned packs: %+v", s3.Stats)
	}
	if rep := mustPrune(t, r, at(2*time.Hour+30*time.Minute)); rep.Phase() != "wait" || !strings.Contains(rep.Waiting, "plan") {
		t.Fatalf("a plan younger than the margin was not waited for: %+v", rep)
	}
	if rep := mustPrune(t, r, at(3*time.Hour+time.Minute)); rep.Phase() != "wait" || !strings.Contains(rep.Waiting, "writer") {
		t.Fatalf("a writer running at mark time was not waited for: %+v", rep)
	}
	s2, err := w.Commit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Stats.NewChunks != 0 {
		t.Fatalf("the early writer stored %d chunks; the test needs it to reuse s1's", s2.Stats.NewChunks)
	}
	rep = mustPrune(t, r, at(3*time.Hour+2*time.Minute))
	if !rep.Swept {
		t.Fatalf("the plan was not swept: %+v", rep)
	}
	mustCheck(t, r, CheckOptions{ReadData: true})
	verifyContent(t, r, s2, gens[0])
	verifyContent(t, r, s3, gens[0][:2])
	if n, _ := storedBytes(t, st, prunePrefix); n != 0 {
		t.Errorf("%d plans left", n)
	}
}

func TestPruneLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, _ := newTestRepo(t)
	writeSnapshot(t, r, WriterOptions{}, dbFiles(3), nil)
	if err := st.Put(ctx, pruneLockName, strings.NewReader("x"), 1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(ctx, PruneOptions{}); !errors.Is(err, ErrPruneRunning) {
		t.Fatalf("prune beside a fresh prune lock: %v", err)
	}
	// A stale prune lock (its prune died) is taken over.
	late := PruneOptions{Now: func() time.Time { return time.Now().Add(time.Hour) }}
	if _, err := r.Prune(ctx, late); err != nil {
		t.Fatalf("prune beside a stale prune lock: %v", err)
	}
	if _, err := st.Stat(ctx, pruneLockName); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the prune lock stayed: %v", err)
	}
}

// TestPruneDropsLeftovers: stale locks, unindexed packs, index objects of
// deleted packs and old temporary files go; fresh ones stay.
func TestPruneDropsLeftovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t)
	r, err := Init(ctx, st, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	files := dbFiles(4)
	s := writeSnapshot(t, r, WriterOptions{}, files, nil)
	// An interrupted write: its pack stored, never indexed.
	f := faulty.Wrap(st)
	f.Inject(faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix(indexPrefix), Times: faulty.Forever})
	r2, err := Open(ctx, f, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := tryWrite(ctx, r2, WriterOptions{}, dbFiles(5)); err == nil {
		t.Fatal("the write succeeded despite the fault")
	}
	r2.Close()
	// The lock of a writer that died.
	if _, err := r.takeLock(ctx, locksPrefix+strings.Repeat("ab", 16), time.Hour, true); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	tmp := filepath.Join(dir, "packs", ".tmp~12345")
	if err := os.WriteFile(tmp, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, old, old); err != nil {
		t.Fatal(err)
	}
	chk := mustCheck(t, r, CheckOptions{})
	if len(chk.UnindexedPacks) == 0 {
		t.Fatal("the interrupted write left no unindexed pack; the test needs one")
	}
	later := func(d time.Duration) PruneOptions {
		return PruneOptions{Now: func() time.Time { return time.Now().Add(d) }}
	}
	rep := mustPrune(t, r, later(2*time.Hour))
	if rep.Phase() != "mark" || rep.TempFilesDeleted != 1 || rep.LocksDeleted != 1 || rep.PlannedPacks != len(chk.UnindexedPacks) {
		t.Fatalf("mark: %+v (unindexed %d)", rep, len(chk.UnindexedPacks))
	}
	rep = mustPrune(t, r, later(3*time.Hour+time.Minute))
	if rep.Phase() != "sweep" || rep.PacksDeleted != len(chk.UnindexedPacks) {
		t.Fatalf("leftovers not reclaimed: %+v (unindexed %d)", rep, len(chk.UnindexedPacks))
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file: %v", err)
	}
	chk = mustCheck(t, r, CheckOptions{ReadData: true})
	if len(chk.UnindexedPacks) != 0 || chk.Locks != 0 {
		t.Fatalf("after prune: %+v", chk)
	}
	verifyContent(t, r, s, files)
}

// TestPruneCrash fails each Put and Delete of a prune in turn, in three
// ways (refused alone; lost reply; the process dies: that and every later
// change fails), then a fresh prune must finish the work and every live
// snapshot must read back whole.
func TestPruneCrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := testKey(t)
	gens := pruneFiles()
	base := mem.New()
	r, err := Init(ctx, base, key)
	if err != nil {
		t.Fatal(err)
	}
	opts := WriterOptions{PackSize: 32 << 10, indexFlushBlobs: 16}
	var snaps []*Snapshot
	for _, files := range gens {
		snaps = append(snaps, writeSnapshot(t, r, opts, files, nil))
	}
	if err := r.Forget(ctx, snaps[0].ID); err != nil {
		t.Fatal(err)
	}
	r.Close()
	// No margin (no writer runs); the restart comes an hour later, when the
	// dead prune's lock is stale.
	later := func(d time.Duration) PruneOptions {
		return PruneOptions{Now: func() time.Time { return time.Now().Add(d) }, SafetyMargin: -1, PackSize: 32 << 10}
	}

	// The undisturbed prune: count its changes and what it leaves.
	ref := cloneStorage(t, base)
	counter := faulty.Wrap(ref)
	rr, err := Open(ctx, counter, key)
	if err != nil {
		t.Fatal(err)
	}
	rep := mustPrune(t, rr, later(0))
	rr.Close()
	changes := counter.Calls().Put + counter.Calls().Delete
	if rep.PacksDeleted == 0 || rep.PacksRepacked == 0 || changes < 10 {
		t.Fatalf("the reference prune did too little to test (%d changes): %+v", changes, rep)
	}
	_, refBytes := storedBytes(t, ref, packsPrefix)

	type mode struct {
		name  string
		fault func(hit func(string) bool) faulty.Fault
	}
	modes := []mode{
		{"refused", func(hit func(string) bool) faulty.Fault { return faulty.Fault{Match: hit} }},
		{"lost", func(hit func(string) bool) faulty.Fault { return faulty.Fault{Match: hit, Lost: true} }},
		{"crash", func(hit func(string) bool) faulty.Fault { return faulty.Fault{Match: hit, Times: faulty.Forever} }},
	}
	for _, m := range modes {
		for k := range changes {
			t.Run(fmt.Sprintf("%s/change%d", m.name, k), func(t *testing.T) {
				st := cloneStorage(t, base)
				f := faulty.Wrap(st)
				// Puts and Deletes share one count: the k-th change (and,
				// for a crash, every later one) fails.
				var n atomic.Int64
				hit := func(string) bool {
					i := n.Add(1) - 1
					return i == int64(k) || m.name == "crash" && i > int64(k)
				}
				for _, op := range []faulty.Op{faulty.OpPut, faulty.OpDelete} {
					flt := m.fault(hit)
					flt.Op = op
					f.Inject(flt)
				}
				r, err := Open(ctx, f, key)
				if err != nil {
					t.Fatal(err)
				}
				_, err = r.Prune(ctx, later(0))
				r.Close()
				if err == nil && f.Calls().Faults == 0 {
					return // this prune needed fewer changes
				}
				// Restart: a fresh prune (later, so the dead one's lock is
				// stale) finishes the work.
				r2, err := Open(ctx, st, key)
				if err != nil {
					t.Fatal(err)
				}
				defer r2.Close()
				for i := 0; ; i++ {
					rep := mustPrune(t, r2, later(time.Hour))
					if !rep.Marked && !rep.Swept || i == 3 {
						break
					}
				}
				chk := mustCheck(t, r2, CheckOptions{ReadData: true})
				if chk.Snapshots != 2 || len(chk.UnindexedPacks) != 0 {
					t.Fatalf("after the restart: %+v", chk)
				}
				for i, s := range snaps[1:] {
					verifyContent(t, r2, s, gens[i+1])
				}
				if n, _ := storedBytes(t, st, prunePrefix); n != 0 {
					t.Errorf("%d plans left", n)
				}
				if _, size := storedBytes(t, st, packsPrefix); size > refBytes+int64(opts.PackSize)*2 {
					t.Errorf("packs of %d bytes left, the undisturbed prune left %d", size, refBytes)
				}
			})
		}
	}
}

// cloneStorage copies every object of src into new in-memory storage.
func cloneStorage(t testing.TB, src storage.Storage) *mem.Mem {
	t.Helper()
	ctx := context.Background()
	dst := mem.New()
	err := src.List(ctx, "", func(i storage.Info) error {
		b, err := getBytes(ctx, src, i.Name)
		if err != nil {
			return err
		}
		return dst.Put(ctx, i.Name, bytes.NewReader(b), int64(len(b)), storage.PutOptions{})
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestLockLapseForbidsCommit: a writer whose lock once went unrefreshed for
// longer than the commit margin must not commit even after refreshing
// again: a prune may have found the lock stale and swept meanwhile (R34).
func TestLockLapseForbidsCommit(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	l := &writerLock{lastOK: t0}
	l.refreshed(t0.Add(5*time.Minute), nil)
	l.refreshed(t0.Add(10*time.Minute), errors.New("storage down"))
	if err := l.fresh(t0.Add(11*time.Minute), commitLockMargin); err != nil {
		t.Fatalf("a lock refreshed 6 minutes ago: %v", err)
	}
	if err := l.fresh(t0.Add(31*time.Minute), commitLockMargin); err == nil {
		t.Fatal("a lock refreshed 26 minutes ago allowed a commit")
	}
	l.refreshed(t0.Add(36*time.Minute), nil) // storage back after 31 minutes
	if err := l.fresh(t0.Add(37*time.Minute), commitLockMargin); err == nil || !strings.Contains(err.Error(), "once went") {
		t.Fatalf("a lock that lapsed for 31 minutes allowed a commit: %v", err)
	}
}
