package engine_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/storage"
)

// readAll writes every live snapshot out in pg_basebackup's tar format,
// reading and verifying every chunk.
func readAll(t testing.TB, r *repo.Repo) []*repo.Snapshot {
	t.Helper()
	ctx := testContext(t, 5*time.Minute)
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		err := engine.WriteTarFormat(ctx, r, s, func(string) (io.WriteCloser, error) { return nopWriteCloser{io.Discard}, nil })
		if err != nil {
			t.Fatalf("snapshot %s: %v", s.ID, err)
		}
	}
	return snaps
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// TestBackupBesidePrune runs a real backup while prunes run over and over,
// with the margins cut to nothing but the protocol intact (real clock, real
// writer locks). The backup deduplicates against a forgotten snapshot's
// chunks, the very packs prune plans to delete. Afterwards every live
// snapshot checks clean, reads back and restores (pg_verifybackup).
func TestBackupBesidePrune(t *testing.T) {
	t.Parallel()
	c, conn, ctx, st, r := pruneSetup(t)

	kept, err := engine.Backup(ctx, conn, r, engine.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Exec(t, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 150000) g; CHECKPOINT")
	forgotten, err := engine.Backup(ctx, conn, r, engine.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, forgotten.Snapshot.ID); err != nil {
		t.Fatal(err)
	}
	opts := repo.PruneOptions{SafetyMargin: time.Millisecond}

	// The backup starts first: once its writer lock is there it has loaded
	// the index, forgotten packs included, to deduplicate against. Then
	// prunes run beside it, planning to delete exactly those packs.
	var res *engine.BackupResult
	var backupErr error
	backupDone := make(chan struct{})
	go func() {
		defer close(backupDone)
		res, backupErr = engine.Backup(ctx, conn, r, engine.BackupOptions{})
	}()
	for locks := 0; locks == 0; {
		select {
		case <-backupDone:
			t.Fatalf("the backup ended before prune could start: %v", backupErr)
		case <-time.After(2 * time.Millisecond):
		}
		locks = len(listNames(t, st, "locks/"))
	}
	time.Sleep(50 * time.Millisecond) // NewWriter loads the index right after its lock
	var reports []*repo.PruneReport
	for running := true; running; {
		select {
		case <-backupDone:
			running = false
		case <-time.After(5 * time.Millisecond):
		}
		rep, err := r.Prune(ctx, opts)
		if err != nil {
			t.Fatalf("prune beside the backup: %v", err)
		}
		reports = append(reports, rep)
	}
	if backupErr != nil {
		t.Fatalf("the backup beside prune: %v", backupErr)
	}
	if st := res.Snapshot.Stats; st.NewChunks > st.Chunks/2 {
		t.Fatalf("the backup stored %d of %d chunks anew; the test needs it to reuse the forgotten snapshot's", st.NewChunks, st.Chunks)
	}
	if reports[0].Phase() != "mark" || reports[0].Waiting == "" {
		t.Fatalf("the first prune beside the backup did not mark and wait for it: %+v", reports[0])
	}
	// Prune until the work is done, as the next runs would. Repack every
	// pack with a dead blob: the backup reused most of the forgotten
	// snapshot's chunks, and which packs its few own chunks (its WAL) share
	// with live ones depends on how the parallel writers filled them, so at
	// the default threshold a run may find nothing worth rewriting.
	opts.RepackThreshold = 1
	for range 3 {
		rep, err := r.Prune(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		reports = append(reports, rep)
	}
	var marks, sweeps, waits, deleted int
	for _, rep := range reports {
		switch rep.Phase() {
		case "wait":
			waits++
		case "mark":
			marks++
		case "sweep":
			sweeps++
		case "mark+sweep":
			marks++
			sweeps++
		}
		deleted += rep.PacksDeleted
	}
	t.Logf("%d prunes beside and after the backup: %d marks, %d sweeps, %d waits, %d packs deleted", len(reports), marks, sweeps, waits, deleted)
	if marks == 0 || sweeps == 0 || deleted == 0 {
		t.Fatalf("prune did not reclaim the forgotten snapshot: %d marks, %d sweeps, %d packs deleted", marks, sweeps, deleted)
	}
	rep := checkRepo(t, r)
	if rep.Snapshots != 2 || len(rep.UnindexedPacks) != 0 {
		t.Fatalf("after prune: %+v", rep)
	}
	snaps := readAll(t, r)
	ids := map[repo.SnapshotID]bool{snaps[0].ID: true, snaps[1].ID: true}
	if !ids[kept.Snapshot.ID] || !ids[res.Snapshot.ID] {
		t.Fatalf("live snapshots %v, want %s and %s", ids, kept.Snapshot.ID, res.Snapshot.ID)
	}
	// Every live recovery point restores: pg_verifybackup accepts each.
	for _, s := range snaps {
		out := t.TempDir()
		writeTarFormat(t, r, s, out)
		verifyManifest(t, restoreTarFormat(t, out, nil))
	}
}

// TestPruneSpaceComesBack makes snapshots of a changing cluster, forgets
// all but the last two, prunes, and bounds what is left: the live blobs,
// plus the index, manifests and small objects, plus the dead part of packs
// that are at least RepackThreshold live (docs/design.md §12).
func TestPruneSpaceComesBack(t *testing.T) {
	t.Parallel()
	c, conn, ctx, st, r := pruneSetup(t)
	c.Exec(t, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g")
	const n = 6
	var snaps []*repo.Snapshot
	for i := range n {
		// Change a tenth of the rows and add some: new pages, new WAL.
		c.Exec(t, "UPDATE t SET v = md5(v) WHERE id % 10 = "+string(rune('0'+i))+"; INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 10000) g; CHECKPOINT")
		res, err := engine.Backup(ctx, conn, r, engine.BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, res.Snapshot)
	}
	before := totalSize(t, st, "")
	for _, s := range snaps[:n-2] {
		if err := r.Forget(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := r.Prune(ctx, repo.PruneOptions{SafetyMargin: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Phase() != "mark+sweep" {
		t.Fatalf("prune: %+v", rep)
	}
	total := totalSize(t, st, "")
	packs := totalSize(t, st, "packs/")
	small := total - packs // config, keys, index, manifests
	deadInPacks := packs - rep.LiveBytes
	t.Logf("before prune %d bytes; after %d: live blobs %d, pack overhead and dead blobs %d (%.1f%% of live), index/manifests/config %d; report %+v",
		before, total, rep.LiveBytes, deadInPacks, 100*float64(deadInPacks)/float64(rep.LiveBytes), small, rep)
	// The bound of §12: packs hold at most live/threshold bytes of blobs
	// (every kept pack is at least threshold live), plus per pack a 42-byte
	// trailer and a header of 16 bytes and at most 43 per blob.
	bound := int64(float64(rep.LiveBytes)/repo.DefaultRepackThreshold) + int64(rep.PacksKept)*(42+16+10) + 43*int64(rep.LiveBlobs)*2
	if packs > bound || total >= before {
		t.Fatalf("packs hold %d bytes, the bound is %d (live %d); total %d, before %d", packs, bound, rep.LiveBytes, total, before)
	}
	if small > 1<<20 {
		t.Errorf("%d bytes outside packs", small)
	}
	checkRepo(t, r)
	if got := readAll(t, r); len(got) != 2 {
		t.Fatalf("%d snapshots live, want 2", len(got))
	}
}

// pruneSetup starts a quiet cluster and makes a repository on fs storage.
func pruneSetup(t *testing.T) (*pgtest.Cluster, pg.Conn, context.Context, storage.Storage, *repo.Repo) {
	t.Helper()
	c := pgtest.Start(t, pgtest.Options{Settings: quiet})
	st := fsStorage(t)
	return c, backupConn(t, c), testContext(t, 5*time.Minute), st, newRepo(t, st)
}

// totalSize sums the sizes of the objects under prefix.
func totalSize(t testing.TB, st storage.Storage, prefix string) int64 {
	t.Helper()
	var n int64
	if err := st.List(context.Background(), prefix, func(i storage.Info) error { n += i.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// listNames lists the names of the objects under prefix.
func listNames(t testing.TB, st storage.Storage, prefix string) []string {
	t.Helper()
	var names []string
	if err := st.List(context.Background(), prefix, func(i storage.Info) error { names = append(names, i.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return names
}
