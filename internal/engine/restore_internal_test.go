package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/faulty"
	fsstorage "github.com/pgvault/pgvault/internal/storage/fs"
	"github.com/pgvault/pgvault/internal/storage/mem"
)

// syntheticBackup is a backup stored as Backup stores one, made of synthetic
// archives: a data directory and two tablespaces, whose original locations
// (under t.TempDir()) its tablespace_map names.
type syntheticBackup struct {
	r       *repo.Repo
	s       *repo.Snapshot
	base    []entry
	spaces  map[string][]entry
	origLoc map[string]string
	tsMap   []byte
}

func newSyntheticBackup(t *testing.T, st storage.Storage) *syntheticBackup {
	t.Helper()
	root := t.TempDir()
	b := &syntheticBackup{r: newMemRepo(t, st), origLoc: map[string]string{
		"16400": filepath.Join(root, "orig a,b=c"),
		"16500": filepath.Join(root, "orig\\two\nlines"),
	}}
	b.tsMap = formatTablespaceMap([]string{"16500", "16400"}, b.origLoc)
	b.base = []entry{
		{name: "backup_label", typ: tar.TypeReg, mode: 0o600, data: []byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n")},
		{name: TablespaceMapPath, typ: tar.TypeReg, mode: 0o600, data: b.tsMap},
		{name: "PG_VERSION", typ: tar.TypeReg, mode: 0o600, data: []byte("15\n")},
		{name: "base/", typ: tar.TypeDir, mode: 0o700},
		{name: "base/1/", typ: tar.TypeDir, mode: 0o750},
		{name: "base/1/1259", typ: tar.TypeReg, mode: 0o640, size: 300 << 10, seed: 1},
		{name: "base/1/16390", typ: tar.TypeReg, mode: 0o600, data: []byte{}},
		{name: "global/", typ: tar.TypeDir, mode: 0o700},
		{name: "global/pg_control", typ: tar.TypeReg, mode: 0o600, size: 8192, seed: 3},
		{name: "pg_tblspc/", typ: tar.TypeDir, mode: 0o700},
		{name: "pg_wal/", typ: tar.TypeDir, mode: 0o700},
		{name: "pg_wal/000000010000000000000002", typ: tar.TypeReg, mode: 0o600, size: 3<<20 + 100, seed: 4},
		{name: "./pg_wal/archive_status/", typ: tar.TypeDir, mode: 0o700},
		{name: "postgresql.conf", typ: tar.TypeReg, mode: 0o644, data: []byte("# conf\n")},
	}
	b.spaces = map[string][]entry{
		"16400": {
			{name: "PG_15_202209061/", typ: tar.TypeDir, mode: 0o700},
			{name: "PG_15_202209061/16384/", typ: tar.TypeDir, mode: 0o700},
			{name: "PG_15_202209061/16384/16401", typ: tar.TypeReg, mode: 0o600, size: 1<<20 + 8192, seed: 5},
			{name: "PG_15_202209061/16384/16401.1", typ: tar.TypeReg, mode: 0o600, size: 8192, seed: 6},
		},
		"16500": {{name: "PG_15_202209061/", typ: tar.TypeDir, mode: 0o700}},
	}
	archives := map[string][]byte{}
	for oid, es := range b.spaces {
		archives[oid] = makeTar(t, es)
	}
	b.s = storeBackup(t, b.r, archives, []string{"16500", "16400"}, makeTar(t, b.base), []byte("{}\n"),
		map[string]string{MetaTablespaceOIDs: "16500,16400"})
	return b
}

// check compares the restored directories with the archives.
func (b *syntheticBackup) check(t *testing.T, dataDir string, locs map[string]string) {
	t.Helper()
	want := func(dir string, entries []entry) {
		for _, e := range entries {
			p := filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(strings.TrimPrefix(e.name, "./"), "/")))
			fi, err := os.Lstat(p)
			if err != nil {
				t.Errorf("%s: %v", e.name, err)
				continue
			}
			switch e.typ {
			case tar.TypeDir:
				if !fi.IsDir() || fi.Mode().Perm() != fs.FileMode(e.mode)|0o700 {
					t.Errorf("%s: %v, want a directory %o", p, fi.Mode(), e.mode)
				}
			case tar.TypeReg:
				if e.name == TablespaceMapPath {
					continue
				}
				got, err := os.ReadFile(p)
				wantData, _ := io.ReadAll(e.content())
				if err != nil || !bytes.Equal(got, wantData) || fi.Mode().Perm() != fs.FileMode(e.mode) {
					t.Errorf("%s: %d bytes, mode %v (%v); want %d bytes, mode %o", p, len(got), fi.Mode(), err, len(wantData), e.mode)
				}
			}
		}
	}
	want(dataDir, b.base)
	for oid, es := range b.spaces {
		want(locs[oid], es)
		if target, err := os.Readlink(filepath.Join(dataDir, "pg_tblspc", oid)); err != nil || target != locs[oid] {
			t.Errorf("pg_tblspc/%s links to %q (%v), want %q", oid, target, err, locs[oid])
		}
	}
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	if got, err := os.ReadFile(filepath.Join(dataDir, ManifestPath)); err != nil || string(got) != "{}\n" {
		t.Errorf("backup_manifest: %q, %v", got, err)
	}
	gotMap, err := os.ReadFile(filepath.Join(dataDir, TablespaceMapPath))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseTablespaceMap(gotMap)
	if err != nil || !maps.Equal(m, locs) {
		t.Errorf("tablespace_map %q says %v (%v), want %v", gotMap, m, err, locs)
	}
}

// TestRestoreDirSynthetic: RestoreDir writes every file, directory, mode and
// content of the archives; tablespaces go where the map says, or back to
// their original locations, with pg_tblspc links to them and tablespace_map
// kept (all original) or rewritten (one moved).
func TestRestoreDirSynthetic(t *testing.T) {
	t.Parallel()
	b := newSyntheticBackup(t, mem.New())
	ctx := context.Background()

	moved := filepath.Join(t.TempDir(), "new place")
	dataDir := filepath.Join(t.TempDir(), "a", "data")
	var calls [][2]int64
	res, err := RestoreDir(ctx, b.r, b.s, RestoreDirOptions{DataDir: dataDir, Tablespaces: map[string]string{"16400": moved}, Parallel: 3,
		Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }})
	if err != nil {
		t.Fatal(err)
	}
	locs := map[string]string{"16400": moved, "16500": b.origLoc["16500"]}
	b.check(t, dataDir, locs)
	st := b.s.Stats
	if res.Files != int(st.Files+st.Dirs+st.Symlinks) || res.Bytes != st.Bytes {
		t.Errorf("result %+v, snapshot %+v", res, st)
	}
	if len(calls) == 0 || calls[len(calls)-1] != [2]int64{st.Bytes, st.Bytes} {
		t.Errorf("progress calls %v, want the last at %d", calls, st.Bytes)
	}

	// Everything back where it was: tablespace_map as backed up.
	if err := os.RemoveAll(b.origLoc["16500"]); err != nil {
		t.Fatal(err)
	}
	dataDir2 := filepath.Join(t.TempDir(), "data")
	if _, err := RestoreDir(ctx, b.r, b.s, RestoreDirOptions{DataDir: dataDir2}); err != nil {
		t.Fatal(err)
	}
	b.check(t, dataDir2, b.origLoc)
	if got, _ := os.ReadFile(filepath.Join(dataDir2, TablespaceMapPath)); !bytes.Equal(got, b.tsMap) {
		t.Errorf("tablespace_map %q, want the one backed up, %q", got, b.tsMap)
	}
	rep, err := b.r.Check(ctx, repo.CheckOptions{})
	if err != nil || rep.Locks != 0 {
		t.Errorf("after the restores: %d locks left (%v)", rep.Locks, err)
	}
}

// TestRestoreDirTargetNotEmpty: a data directory or tablespace target that
// holds a file fails before anything is written, and is left as it was;
// so is a tablespace OID the backup does not have.
func TestRestoreDirTargetNotEmpty(t *testing.T) {
	t.Parallel()
	b := newSyntheticBackup(t, mem.New())
	ctx := context.Background()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	absent := filepath.Join(t.TempDir(), "absent")
	for _, tc := range []struct {
		name string
		opts RestoreDirOptions
		want error
	}{
		{"data directory", RestoreDirOptions{DataDir: full, Tablespaces: map[string]string{"16400": absent, "16500": empty}}, ErrTargetNotEmpty},
		{"tablespace", RestoreDirOptions{DataDir: absent, Tablespaces: map[string]string{"16400": empty, "16500": full}}, ErrTargetNotEmpty},
		{"original location", RestoreDirOptions{DataDir: absent, Tablespaces: map[string]string{"16400": empty}}, ErrTargetNotEmpty}, // 16500's filled below
		{"unknown OID", RestoreDirOptions{DataDir: absent, Tablespaces: map[string]string{"16401": empty}}, nil},
		{"overlap", RestoreDirOptions{DataDir: absent, Tablespaces: map[string]string{"16400": filepath.Join(absent, "ts")}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "original location" {
				orig := b.origLoc["16500"]
				if err := os.MkdirAll(orig, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(orig, "PG_VERSION"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				defer os.RemoveAll(orig)
			}
			_, err := RestoreDir(ctx, b.r, b.s, tc.opts)
			t.Logf("%v", err)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), b.s.ID.String()) {
				t.Fatalf("err = %v, want %v naming the snapshot", err, tc.want)
			}
			if got, err := os.ReadFile(filepath.Join(full, "keep")); err != nil || string(got) != "mine" {
				t.Errorf("the file in the full target: %q, %v", got, err)
			}
			if names, _ := os.ReadDir(full); len(names) != 1 {
				t.Errorf("the full target holds %v", names)
			}
			if names, err := os.ReadDir(empty); err != nil || len(names) != 0 {
				t.Errorf("the empty target holds %v (%v)", names, err)
			}
			if _, err := os.Lstat(absent); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the absent target was made: %v", err)
			}
		})
	}
}

// TestRestoreDirCorrupt: a flipped bit in a stored pack stops the restore
// with an error wrapping repo.ErrCorrupt that names the snapshot and the
// file; what was written is removed (the data directory it made, the
// contents of the empty tablespace target it was given) and the repository
// lock released. A bit flipped in a read only (a transient fault) is
// overcome by reading the chunk again.
func TestRestoreDirCorrupt(t *testing.T) {
	t.Parallel()
	repoDir := filepath.Join(t.TempDir(), "repo")
	st, err := fsstorage.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	f := faulty.Wrap(st)
	b := newSyntheticBackup(t, f)

	// Transient: one read of a pack comes back damaged.
	f.Inject(faulty.Fault{Op: faulty.OpGetRange, Match: faulty.Prefix("packs/"), After: 3,
		Corrupt: func(b []byte) []byte { b[len(b)/3] ^= 0x04; return b }})
	dataDir := filepath.Join(t.TempDir(), "new", "data")
	ts := t.TempDir()
	opts := RestoreDirOptions{DataDir: dataDir, Tablespaces: map[string]string{"16400": ts}}
	if _, err := RestoreDir(context.Background(), b.r, b.s, opts); err != nil {
		t.Fatalf("with a transient fault: %v", err)
	}
	if f.Calls().Faults != 1 {
		t.Fatalf("%d faults fired, want 1", f.Calls().Faults)
	}
	b.check(t, dataDir, map[string]string{"16400": ts, "16500": b.origLoc["16500"]})
	for _, d := range []string{filepath.Dir(dataDir), b.origLoc["16500"]} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(ts)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(ts, e.Name()))
	}

	// On disk: a bit flipped in the middle of the largest pack.
	var largest string
	var size int64
	filepath.WalkDir(filepath.Join(repoDir, "packs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Size() > size {
				largest, size = p, fi.Size()
			}
		}
		return nil
	})
	data, err := os.ReadFile(largest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x10
	if err := os.WriteFile(largest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = RestoreDir(context.Background(), b.r, b.s, opts)
	t.Logf("error: %v", err)
	if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), b.s.ID.String()) || !strings.Contains(err.Error(), "while reading \"") ||
		!strings.Contains(err.Error(), filepath.Base(largest)) {
		t.Fatalf("err = %v, want repo.ErrCorrupt naming the snapshot, the file and the pack", err)
	}
	if _, err := os.Lstat(filepath.Dir(dataDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the directories made for the data directory are left: %v", err)
	}
	if names, err := os.ReadDir(ts); err != nil || len(names) != 0 {
		t.Errorf("the tablespace target holds %v (%v)", names, err)
	}
	if _, err := os.Lstat(b.origLoc["16500"]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the tablespace at its original location is left: %v", err)
	}
	rep, err := b.r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil || rep.OK() || rep.Locks != 0 || len(rep.DamagedSnapshots) != 1 {
		t.Errorf("check after the failed restore: %+v, %v; want the damage found and no lock", rep, err)
	}
}

// TestRestoreDirCancel: a cancelled restore stops and removes what it wrote.
func TestRestoreDirCancel(t *testing.T) {
	t.Parallel()
	b := newSyntheticBackup(t, mem.New())
	ctx, cancel := context.WithCancel(context.Background())
	dataDir := filepath.Join(t.TempDir(), "data")
	_, err := RestoreDir(ctx, b.r, b.s, RestoreDirOptions{DataDir: dataDir, Tablespaces: map[string]string{"16400": filepath.Join(t.TempDir(), "a"), "16500": filepath.Join(t.TempDir(), "b")},
		Progress: func(done, total int64) {
			if done > 0 && done < total {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the data directory is left: %v", err)
	}
}

// FuzzParseTablespaceMap: the parser never panics; what it accepts, written
// back as PostgreSQL writes it, parses to the same map.
func FuzzParseTablespaceMap(f *testing.F) {
	for _, s := range []string{"", "16400 /srv/a\n", "16400 /srv/a b\r\n16500 /x\\\ny\n", "1 /a\\\\b\n\n2 /c\r", "0 /a\n", "16400 rel\n", "16400 /a", "x /a\n", "16400 /a\n16400 /b\n", "16400 /a\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseTablespaceMap(b)
		if err != nil {
			return
		}
		oids := slices.Sorted(maps.Keys(m))
		again, err := ParseTablespaceMap(formatTablespaceMap(oids, m))
		if err != nil || !maps.Equal(m, again) {
			t.Fatalf("%q: %v; formatted and parsed again: %v, %v", b, m, again, err)
		}
	})
}

// TestParseMetaTablespaces: locations with "," and "=" are cut at the next
// known OID.
func TestParseMetaTablespaces(t *testing.T) {
	m, err := parseMetaTablespaces("16500=/srv/two,16400=/srv/a,b=c", []string{"16500", "16400"})
	if err != nil || m["16500"] != "/srv/two" || m["16400"] != "/srv/a,b=c" {
		t.Errorf("%v, %v", m, err)
	}
	if _, err := parseMetaTablespaces("16500=/x", []string{"16500", "16400"}); err == nil {
		t.Error("a missing tablespace parsed")
	}
}
