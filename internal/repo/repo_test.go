package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestRepo(t)
	chunk := PageSize * defaultRelationChunkPages
	files := []testFile{
		{File: File{Path: "base", Type: TypeDir, Mode: 0o700 | fs.ModeSetgid, ModTime: time.Unix(1, 0)}},
		{File: File{Path: "base/16384", Type: TypeDir, Mode: 0o700}},
		regular("base/16384/16385", relData(1, defaultRelationChunkPages)),                      // exactly N pages
		regular("base/16384/16386", append(relData(2, 16), 'x')),                                // N pages + 1 byte
		regular("base/16384/16387_fsm", relData(3, 3)),                                          // 3 pages
		regular("base/16384/16388.1", relData(4, 100)),                                          // several chunks
		regular("global/1262", relData(5, 1)),                                                   // one page
		regular("PG_VERSION", []byte("17\n")),                                                   // small
		regular("empty", nil),                                                                   // empty
		regular("one", []byte{42}),                                                              // 1 byte
		regular("pg_wal/000000010000000000000001", relData(6, 2*defaultFileChunkSize/PageSize)), // 2 MiB exactly
		regular("backup_label", bytes.Repeat([]byte("START WAL LOCATION: 0/2000028\n"), 10)),
		regular("pg_xact/0000", append(relData(7, 128), 1, 2, 3)), // 1 MiB + 3: two chunks
		{File: File{Path: "pg_tblspc/16400", Type: TypeSymlink, Mode: 0o777, LinkTarget: "/srv/tblspc/one"}},
		regular("pg_tblspc/16400/PG_17_202406281/16384/16401", relData(8, 20)),
		{File: File{Path: "big/streamed", Type: TypeRegular, Mode: 0o600, Size: 40<<20 + 5}, gen: func() io.Reader { return newGenReader(9, 40<<20+5) }},
	}
	meta := map[string]string{"start_lsn": "0/2000028", "timeline": "1", "system_identifier": "7312345678901234567"}
	s := writeSnapshot(t, r, WriterOptions{PackSize: 1 << 20}, files, meta)

	if s.Stats.Files != 13 || s.Stats.Dirs != 2 || s.Stats.Symlinks != 1 {
		t.Errorf("stats %+v", s.Stats)
	}
	ctx := context.Background()
	snaps, err := r.Snapshots(ctx)
	if err != nil || len(snaps) != 1 || snaps[0].ID != s.ID {
		t.Fatalf("Snapshots: %v, %v", snaps, err)
	}
	got := snaps[0]
	if got.Meta["start_lsn"] != "0/2000028" || got.Stats != s.Stats {
		t.Errorf("snapshot read back as %+v", got)
	}

	// Reopen, as another process would.
	var walked []File
	if err := r.Walk(ctx, got, func(f File) error { walked = append(walked, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(walked) != len(files) {
		t.Fatalf("walked %d files, want %d", len(walked), len(files))
	}
	for i, f := range files {
		want := f.File
		want.ModTime = want.ModTime.UTC()
		if walked[i] != want {
			t.Errorf("file %d: got %+v, want %+v", i, walked[i], want)
		}
		if f.Type != TypeRegular {
			continue
		}
		data, err := readFile(t, r, got, f.Path)
		if err != nil {
			t.Fatalf("read %s: %v", f.Path, err)
		}
		if f.gen != nil {
			want, _ := io.ReadAll(f.gen())
			if !bytes.Equal(data, want) {
				t.Errorf("%s: content differs", f.Path)
			}
		} else if !bytes.Equal(data, f.data) {
			t.Errorf("%s: got %d bytes, want %d", f.Path, len(data), len(f.data))
		}
	}
	if _, err := r.OpenFile(ctx, got, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenFile(missing) = %v", err)
	}
	if _, err := r.OpenFile(ctx, got, "base"); err == nil {
		t.Error("OpenFile(dir) succeeded")
	}
	_ = chunk
	rep := mustCheck(t, r, CheckOptions{ReadData: true})
	if rep.Snapshots != 1 || rep.PacksRead != rep.Packs || len(rep.UnindexedPacks) != 0 || rep.Locks != 0 {
		t.Errorf("check report %+v", rep)
	}
}

func TestInitOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, key := newTestRepo(t)
	s := writeSnapshot(t, r, WriterOptions{}, []testFile{regular("a", []byte("hello"))}, nil)

	if _, err := Init(ctx, st, key); !errors.Is(err, ErrRepositoryExists) {
		t.Errorf("second Init = %v, want ErrRepositoryExists", err)
	}
	if _, err := Open(ctx, st, testKey(t)); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Open with another key = %v, want ErrWrongKey", err)
	}
	if _, err := Open(ctx, st, key[:16]); err == nil {
		t.Error("Open with a short key succeeded")
	}
	r2, err := Open(ctx, st, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.ID() != r.ID() {
		t.Error("repository ID changed")
	}
	data, err := readFile(t, r2, s, "a")
	if err != nil || string(data) != "hello" {
		t.Errorf("read back %q, %v", data, err)
	}
	// Same master key, two repositories: nothing shared.
	r3, _, _ := newTestRepo(t)
	if slices.Equal(r3.keys.id, r.keys.id) {
		t.Error("two repositories share an ID key")
	}
}

func TestRelationPaths(t *testing.T) {
	t.Parallel()
	yes := []string{"global/1262", "base/1/16384", "base/16384/16385.1", "base/5/2619_fsm", "base/5/2619_vm",
		"base/5/16390_init", "base/5/2619_fsm.12", "pg_tblspc/16400/PG_17_202406281/16384/16401.3"}
	no := []string{"global/pg_control", "global/pg_filenode.map", "base/16384/PG_VERSION", "base/16384/pg_filenode.map",
		"base/16384", "base/x/1", "base/1/1.", "base/1/1.a", "base/1/1_foo", "base/1/t3_16384", "pg_wal/000000010000000000000001",
		"pg_xact/0000", "pg_tblspc/16400/PG_17_1/16384", "pg_tblspc/16400/v17/16384/1", "base/1/2/3", "backup_manifest"}
	for _, p := range yes {
		if !isRelationFile(p) {
			t.Errorf("%s is a relation file", p)
		}
	}
	for _, p := range no {
		if isRelationFile(p) {
			t.Errorf("%s is not a relation file", p)
		}
	}
}

func TestWriterRefusesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, _ := newTestRepo(t)
	cases := []struct {
		name    string
		f       File
		content io.Reader
	}{
		{"absolute", File{Path: "/etc/passwd", Type: TypeRegular, Size: 1}, bytes.NewReader([]byte{1})},
		{"dotdot", File{Path: "a/../b", Type: TypeDir}, nil},
		{"short", File{Path: "a", Type: TypeRegular, Size: 10}, bytes.NewReader([]byte{1})},
		{"long", File{Path: "a", Type: TypeRegular, Size: 1}, bytes.NewReader([]byte{1, 2})},
		{"dir with size", File{Path: "d", Type: TypeDir, Size: 3}, nil},
		{"no type", File{Path: "x"}, nil},
	}
	for _, c := range cases {
		w, err := r.NewWriter(ctx, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddFile(ctx, c.f, c.content); err == nil {
			t.Errorf("%s: AddFile succeeded", c.name)
		}
		if _, err := w.Commit(ctx, nil); err == nil {
			t.Errorf("%s: Commit after a failed AddFile succeeded", c.name)
		}
		if err := w.Abort(ctx); err != nil {
			t.Errorf("%s: Abort: %v", c.name, err)
		}
	}
	w, _ := r.NewWriter(ctx, WriterOptions{})
	if err := w.AddFile(ctx, File{Path: "a", Type: TypeDir}, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile(ctx, File{Path: "a", Type: TypeDir}, nil); err == nil {
		t.Error("duplicate path accepted")
	}
	w.Abort(ctx)
	snaps, err := r.Snapshots(ctx)
	if err != nil || len(snaps) != 0 {
		t.Errorf("snapshots after failed writes: %v, %v", snaps, err)
	}
	mustCheck(t, r, CheckOptions{ReadData: true})
}

func TestEmptySnapshotAndLookup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, _ := newTestRepo(t)
	s := writeSnapshot(t, r, WriterOptions{}, nil, map[string]string{"k": "v"})
	got, err := r.Snapshot(ctx, s.ID)
	if err != nil || got.Meta["k"] != "v" || got.Stats.Files != 0 {
		t.Fatalf("Snapshot = %+v, %v", got, err)
	}
	n := 0
	if err := r.Walk(ctx, got, func(File) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("Walk: %d files, %v", n, err)
	}
	if _, err := r.Snapshot(ctx, ID{1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Snapshot(unknown) = %v", err)
	}
	// A lock exists while a writer runs, and goes with it.
	w, err := r.NewWriter(ctx, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	locks := func() int {
		n := 0
		st.List(ctx, locksPrefix, func(storageInfo) error { n++; return nil })
		return n
	}
	if locks() != 1 {
		t.Errorf("%d locks while writing", locks())
	}
	rep := mustCheck(t, r, CheckOptions{ReadData: true, Sample: 0.5})
	if rep.Locks != 1 {
		t.Errorf("check saw %d locks", rep.Locks)
	}
	w.Abort(ctx)
	if locks() != 0 {
		t.Errorf("%d locks after Abort", locks())
	}
	if _, err := w.Commit(ctx, nil); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	if err := w.AddFile(ctx, File{Path: "x", Type: TypeDir}, nil); err == nil {
		t.Error("AddFile after Abort succeeded")
	}
}

func TestMetaLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, _ := newTestRepo(t)
	for _, meta := range []map[string]string{{"": "x"}, {string(make([]byte, 300)): "x"}, {"big": string(make([]byte, 2<<20))}} {
		w, err := r.NewWriter(ctx, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(ctx, meta); err == nil {
			t.Error("bad metadata accepted")
		}
	}
}

// TestManyFiles writes a tree that spans many tree blobs, reads files from
// its middle and end, and checks that tree blobs deduplicate: changing one
// file of 3000 stores only the tree blobs around it.
func TestManyFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, _ := newTestRepo(t)
	var files []testFile
	for i := range 3000 {
		files = append(files, regular(fmt.Sprintf("base/16384/%d", 100000+i), []byte(fmt.Sprintf("file %d", i))))
	}
	s1 := writeSnapshot(t, r, WriterOptions{}, files, nil)
	if s1.Stats.TreeBlobs < 3 {
		t.Fatalf("the tree has only %d blobs; the test needs several", s1.Stats.TreeBlobs)
	}
	for _, i := range []int{0, 1500, 2999} {
		b, err := readFile(t, r, s1, files[i].Path)
		if err != nil || !bytes.Equal(b, files[i].data) {
			t.Fatalf("file %d: %q, %v", i, b, err)
		}
	}
	files[1500] = regular(files[1500].Path, []byte("changed"))
	s2 := writeSnapshot(t, r, WriterOptions{}, files, nil)
	if s2.Stats.NewChunks != 1 || s2.Stats.NewTree > 2 {
		t.Errorf("one changed file stored %d chunks and %d of %d tree blobs", s2.Stats.NewChunks, s2.Stats.NewTree, s2.Stats.TreeBlobs)
	}
	b, err := readFile(t, r, s2, files[1500].Path)
	if err != nil || string(b) != "changed" {
		t.Errorf("read back %q, %v", b, err)
	}
	n := 0
	if err := r.Walk(ctx, s2, func(File) error { n++; return nil }); err != nil || n != 3000 {
		t.Errorf("Walk: %d files, %v", n, err)
	}
	mustCheck(t, r, CheckOptions{ReadData: true})
}

// TestStaleLockRefusesCommit: a writer whose lock went unrefreshed for too
// long must not commit (R34).
func TestStaleLockRefusesCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, _ := newTestRepo(t)
	w, err := r.NewWriter(ctx, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile(ctx, File{Path: "a", Type: TypeRegular, Size: 1}, bytes.NewReader([]byte{1})); err != nil {
		t.Fatal(err)
	}
	w.lock.mu.Lock()
	w.lock.lastOK = time.Now().Add(-LockStaleAfter)
	w.lock.mu.Unlock()
	if _, err := w.Commit(ctx, nil); err == nil || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("Commit with a stale lock = %v", err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil || len(snaps) != 0 {
		t.Errorf("snapshots: %v, %v", snaps, err)
	}
}
