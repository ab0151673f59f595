package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/faulty"
	"github.com/pgvault/pgvault/internal/storage/mem"
)

// entry is one tar entry of a synthetic archive.
type entry struct {
	name string
	typ  byte
	mode int64
	link string
	data []byte
	size int64 // for generated content (data nil): pseudo-random bytes
	seed uint64
}

func (e entry) content() io.Reader {
	if e.data != nil || e.typ != tar.TypeReg {
		return bytes.NewReader(e.data)
	}
	return io.LimitReader(newNoise(e.seed), e.size)
}

func (e entry) len() int64 {
	if e.data != nil {
		return int64(len(e.data))
	}
	return e.size
}

// noise is an endless pseudo-random stream (incompressible: the worst case
// for the writer, and data no chunk of another file shares).
type noise struct{ r *mrand.ChaCha8 }

func newNoise(seed uint64) *noise {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return &noise{mrand.NewChaCha8(s)}
}

func (n *noise) Read(p []byte) (int, error) { return n.r.Read(p) }

// makeTar writes entries as PostgreSQL's server does: ustar, uname and
// gname "postgres", directories and symlinks with a trailing slash.
func makeTar(t *testing.T, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mtime := time.Unix(1700000000, 0)
	for i, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: e.len(),
			ModTime: mtime.Add(time.Duration(i) * time.Second), Uname: "postgres", Gname: "postgres", Format: tar.FormatUSTAR}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := io.Copy(tw, e.content()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// tarHeader is what a round trip must keep of an entry.
type tarHeader struct {
	Name     string
	Typeflag byte
	Mode     int64
	Size     int64
	ModTime  time.Time
	Linkname string
	Uname    string
	Gname    string
	SHA256   string
}

// readTarHeaders reads an archive, checking that it ends with exactly the
// 1024-byte end-of-archive marker after its last entry.
func readTarHeaders(t *testing.T, b []byte) []tarHeader {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(b)}
	tr := tar.NewReader(cr)
	var out []tarHeader
	var end int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			t.Fatal(err)
		}
		end = cr.n
		out = append(out, tarHeader{h.Name, h.Typeflag, h.Mode, h.Size, h.ModTime.UTC(), h.Linkname, h.Uname, h.Gname, hex.EncodeToString(sum.Sum(nil))})
	}
	if padded := (end + 511) / 512 * 512; int64(len(b))-padded != 1024 || !bytes.Equal(b[padded:], make([]byte, 1024)) {
		t.Errorf("the archive has %d bytes after its last entry, want the 1024-byte end-of-archive marker", int64(len(b))-padded)
	}
	return out
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func newMemRepo(t *testing.T, st storage.Storage) *repo.Repo {
	t.Helper()
	key := make([]byte, repo.MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), st, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// storeBackup stores archives as Backup does: the tablespaces' first, then
// base.tar, then the manifest.
func storeBackup(t *testing.T, r *repo.Repo, spaces map[string][]byte, order []string, base, manifest []byte, meta map[string]string) *repo.Snapshot {
	t.Helper()
	ctx := context.Background()
	w, err := r.NewWriter(ctx, repo.WriterOptions{PackSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort(ctx)
	rcv := map[string]pg.FileSum{}
	for _, oid := range order {
		if err := addArchive(ctx, w, "pg_tblspc/"+oid, bytes.NewReader(spaces[oid]), rcv); err != nil {
			t.Fatal(err)
		}
	}
	if err := addArchive(ctx, w, "", bytes.NewReader(base), rcv); err != nil {
		t.Fatal(err)
	}
	if manifest != nil {
		if _, err := addManifest(ctx, w, bytes.NewReader(manifest)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := w.Commit(ctx, meta)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// outputs collects what WriteTarFormat writes, in order.
type outputs struct {
	names []string
	files map[string]*output
}

type output struct {
	bytes.Buffer
	closed    bool
	closedErr error // CloseWithError's
}

func (o *output) Close() error {
	o.closed = true
	return nil
}

func (o *output) CloseWithError(err error) error {
	o.closed, o.closedErr = true, err
	return nil
}

func (o *outputs) create(name string) (io.WriteCloser, error) {
	if o.files == nil {
		o.files = map[string]*output{}
	}
	if _, dup := o.files[name]; dup {
		return nil, fmt.Errorf("%s created twice", name)
	}
	o.names = append(o.names, name)
	out := &output{}
	o.files[name] = out
	return out, nil
}

// TestTarFormatRoundTrip: archives as the server sends them, stored as Backup
// stores them, come back out of WriteTarFormat entry for entry: names,
// types, modes (setgid and sticky included), sizes, times, link targets and
// content, in the server's order, with the tablespaces in their own archives.
func TestTarFormatRoundTrip(t *testing.T) {
	t.Parallel()
	longDir := "base/16384/" + strings.Repeat("d", 60) + "/" + strings.Repeat("e", 60)
	base := []entry{
		{name: "backup_label", typ: tar.TypeReg, mode: 0o600, data: []byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n")},
		{name: "tablespace_map", typ: tar.TypeReg, mode: 0o600, data: []byte("16400 /srv/a,b=c\n16500 /srv/two\n")},
		{name: "PG_VERSION", typ: tar.TypeReg, mode: 0o600, data: []byte("15\n")},
		{name: "base/", typ: tar.TypeDir, mode: 0o700},
		{name: "base/1/", typ: tar.TypeDir, mode: 0o2750},
		{name: "base/1/1259", typ: tar.TypeReg, mode: 0o640, size: 300 << 10, seed: 1}, // 2.3 relation chunks
		{name: "base/1/1259_fsm", typ: tar.TypeReg, mode: 0o600, size: 24 << 10, seed: 2},
		{name: "base/1/16390", typ: tar.TypeReg, mode: 0o600, data: []byte{}}, // empty relation
		{name: "base/1/PG_VERSION", typ: tar.TypeReg, mode: 0o600, data: []byte("15\n")},
		{name: "base/16384/", typ: tar.TypeDir, mode: 0o700},
		{name: longDir + "/", typ: tar.TypeDir, mode: 0o1777}, // needs ustar's prefix field
		{name: longDir + "/f", typ: tar.TypeReg, mode: 0o4755, data: []byte("setuid")},
		{name: "global/", typ: tar.TypeDir, mode: 0o700},
		{name: "global/pg_control", typ: tar.TypeReg, mode: 0o600, size: 8192, seed: 3},
		{name: "pg_tblspc/", typ: tar.TypeDir, mode: 0o700},
		// An in-place tablespace (a directory in pg_tblspc, not in the
		// tablespace list) belongs to base.tar, like a stray link.
		{name: "pg_tblspc/16600/", typ: tar.TypeDir, mode: 0o700},
		{name: "pg_tblspc/16600/PG_15_202209061/", typ: tar.TypeDir, mode: 0o700},
		{name: "pg_tblspc/16700/", typ: tar.TypeSymlink, mode: 0o777, link: "/srv/elsewhere"},
		{name: "pg_wal/", typ: tar.TypeDir, mode: 0o700},
		{name: "pg_wal/000000010000000000000002", typ: tar.TypeReg, mode: 0o600, size: 3<<20 + 100, seed: 4}, // several 1 MiB chunks
		{name: "./pg_wal/archive_status/", typ: tar.TypeDir, mode: 0o700},                                    // as the server names it
		{name: "postgresql.conf", typ: tar.TypeReg, mode: 0o644, data: []byte("# conf\n")},
	}
	ts16400 := []entry{
		{name: "PG_15_202209061/", typ: tar.TypeDir, mode: 0o700},
		{name: "PG_15_202209061/16384/", typ: tar.TypeDir, mode: 0o700},
		{name: "PG_15_202209061/16384/16401", typ: tar.TypeReg, mode: 0o600, size: 1<<20 + 8192, seed: 5},
		{name: "PG_15_202209061/16384/16401.1", typ: tar.TypeReg, mode: 0o600, size: 8192, seed: 6},
	}
	ts16500 := []entry{
		{name: "PG_15_202209061/", typ: tar.TypeDir, mode: 0o700},
	}
	manifest := []byte(`{ "PostgreSQL-Backup-Manifest-Version": 1,` + "\n" + `"Files": [] }` + "\n")
	spaces := map[string][]byte{"16500": makeTar(t, ts16500), "16400": makeTar(t, ts16400)}
	baseTar := makeTar(t, base)

	for _, tc := range []struct {
		name string
		meta map[string]string
	}{
		{"oids", map[string]string{MetaTablespaceOIDs: "16500,16400", MetaTablespaces: "16500=/srv/two,16400=/srv/a,b=c"}},
		// Snapshots written before MetaTablespaceOIDs; a location with "," and "=".
		{"legacy", map[string]string{MetaTablespaces: "16500=/srv/two,16400=/srv/a,b=c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newMemRepo(t, mem.New())
			s := storeBackup(t, r, spaces, []string{"16500", "16400"}, baseTar, manifest, tc.meta)
			var out outputs
			if err := WriteTarFormat(context.Background(), r, s, out.create); err != nil {
				t.Fatal(err)
			}
			if want := []string{"16500.tar", "16400.tar", "base.tar", "backup_manifest"}; !slices.Equal(out.names, want) {
				t.Fatalf("wrote %q, want %q", out.names, want)
			}
			for name, o := range out.files {
				if !o.closed || o.closedErr != nil {
					t.Errorf("%s: closed %v, with error %v", name, o.closed, o.closedErr)
				}
			}
			for name, want := range map[string][]byte{"16500.tar": spaces["16500"], "16400.tar": spaces["16400"], "base.tar": baseTar} {
				got, wantH := readTarHeaders(t, out.files[name].Bytes()), readTarHeaders(t, want)
				if !slices.Equal(got, wantH) {
					t.Errorf("%s differs from the archive stored:", name)
					for i := range max(len(got), len(wantH)) {
						var g, w tarHeader
						if i < len(got) {
							g = got[i]
						}
						if i < len(wantH) {
							w = wantH[i]
						}
						if g != w {
							t.Errorf("  entry %d:\n   got %+v\n  want %+v", i, g, w)
						}
					}
				}
			}
			// Byte for byte, even: both are ustar with the same fields.
			if !bytes.Equal(out.files["base.tar"].Bytes(), baseTar) {
				t.Errorf("base.tar is not byte-identical to the archive stored")
			}
			if got := out.files["backup_manifest"].Bytes(); !bytes.Equal(got, manifest) {
				t.Errorf("backup_manifest = %q, want %q", got, manifest)
			}
		})
	}

	t.Run("no manifest, no tablespaces", func(t *testing.T) {
		r := newMemRepo(t, mem.New())
		small := makeTar(t, base[:4])
		s := storeBackup(t, r, nil, nil, small, nil, map[string]string{MetaTablespaceOIDs: ""})
		var out outputs
		if err := WriteTarFormat(context.Background(), r, s, out.create); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out.names, []string{"base.tar"}) || !bytes.Equal(out.files["base.tar"].Bytes(), small) {
			t.Errorf("wrote %q", out.names)
		}
	})

	t.Run("not a backup", func(t *testing.T) {
		r := newMemRepo(t, mem.New())
		s := storeBackup(t, r, nil, nil, makeTar(t, base[:1]), nil, nil)
		var out outputs
		err := WriteTarFormat(context.Background(), r, s, out.create)
		if err == nil || !strings.Contains(err.Error(), "not a backup's") || len(out.names) != 0 {
			t.Errorf("err = %v, wrote %q", err, out.names)
		}
	})
}

// TestTarFormatDamage: a damaged chunk fails WriteTarFormat with
// repo.ErrCorrupt naming the file; what was written before is a prefix of
// the right archive (never wrong bytes), without an end-of-archive marker,
// and the output was closed with the error.
func TestTarFormatDamage(t *testing.T) {
	t.Parallel()
	base := []entry{
		{name: "PG_VERSION", typ: tar.TypeReg, mode: 0o600, data: []byte("15\n")},
		{name: "base/", typ: tar.TypeDir, mode: 0o700},
		{name: "base/1/", typ: tar.TypeDir, mode: 0o700},
	}
	for i := range 8 {
		base = append(base, entry{name: fmt.Sprintf("base/1/%d", 16384+i), typ: tar.TypeReg, mode: 0o600, size: 2 << 20, seed: uint64(10 + i)})
	}
	baseTar := makeTar(t, base)
	f := faulty.Wrap(mem.New())
	r := newMemRepo(t, f)
	s := storeBackup(t, r, nil, nil, baseTar, []byte("{}\n"), map[string]string{MetaTablespaceOIDs: ""})

	// Flip a bit in every read of a pack after the first few (the tree's
	// and the first chunks'): some chunk in the middle of base.tar is damaged.
	f.Inject(faulty.Fault{Op: faulty.OpGetRange, Match: faulty.Prefix("packs/"), After: 20, Times: faulty.Forever,
		Corrupt: func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }})
	var out outputs
	err := WriteTarFormat(context.Background(), r, s, out.create)
	t.Logf("error: %v", err)
	if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), "base.tar") || !strings.Contains(err.Error(), `"base/1/`) {
		t.Fatalf("err = %v, want repo.ErrCorrupt naming base.tar and the file", err)
	}
	o := out.files["base.tar"]
	if !slices.Equal(out.names, []string{"base.tar"}) || o == nil || !o.closed || !errors.Is(o.closedErr, repo.ErrCorrupt) {
		t.Fatalf("outputs %q; base.tar closed with %v", out.names, o.closedErr)
	}
	got := o.Bytes()
	if len(got) >= len(baseTar) || !bytes.Equal(got, baseTar[:len(got)]) {
		t.Errorf("wrote %d bytes that are not a proper prefix of the %d-byte archive", len(got), len(baseTar))
	}
	t.Logf("wrote %d of %d bytes before the damaged chunk", len(got), len(baseTar))
}

// TestTarFormatCreateFails: an error of create stops WriteTarFormat.
func TestTarFormatCreateFails(t *testing.T) {
	t.Parallel()
	r := newMemRepo(t, mem.New())
	s := storeBackup(t, r, nil, nil, makeTar(t, []entry{{name: "PG_VERSION", typ: tar.TypeReg, mode: 0o600, data: []byte("15\n")}}), nil,
		map[string]string{MetaTablespaceOIDs: ""})
	dir := t.TempDir()
	err := WriteTarFormat(context.Background(), r, s, func(name string) (io.WriteCloser, error) {
		return os.OpenFile(filepath.Join(dir, "missing", name), os.O_CREATE|os.O_WRONLY, 0o600)
	})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "while creating base.tar") {
		t.Errorf("err = %v", err)
	}
}

func TestTarModes(t *testing.T) {
	t.Parallel()
	for _, m := range []int64{0, 0o600, 0o700, 0o755, 0o2750, 0o4755, 0o1777, 0o7777} {
		fm := modeFromTar(m)
		if got := modeToTar(fm); got != m {
			t.Errorf("%#o -> %v -> %#o", m, fm, got)
		}
	}
	if modeFromTar(0o2750) != 0o750|fs.ModeSetgid || modeFromTar(0o100644) != 0o644 {
		t.Errorf("modeFromTar: %v, %v", modeFromTar(0o2750), modeFromTar(0o100644))
	}
}

// TestTarFormatCancel: WriteTarFormat stops when its context ends.
func TestTarFormatCancel(t *testing.T) {
	t.Parallel()
	var base []entry
	for i := range 8 {
		base = append(base, entry{name: fmt.Sprintf("f%d", i), typ: tar.TypeReg, mode: 0o600, size: 2 << 20, seed: uint64(100 + i)})
	}
	r := newMemRepo(t, mem.New())
	s := storeBackup(t, r, nil, nil, makeTar(t, base), nil, map[string]string{MetaTablespaceOIDs: ""})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := &cancelAfter{limit: 3 << 20, cancel: cancel}
	err := WriteTarFormat(ctx, r, s, func(string) (io.WriteCloser, error) { return o, nil })
	if !errors.Is(err, context.Canceled) || !o.closed {
		t.Fatalf("err = %v (output closed: %v), want context.Canceled", err, o.closed)
	}
	t.Logf("cancelled after %d bytes: %v", o.n, err)
}

// cancelAfter is an output that cancels a context once limit bytes went
// through it.
type cancelAfter struct {
	n, limit int64
	cancel   context.CancelFunc
	closed   bool
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.n > c.limit {
		c.cancel()
	}
	return len(p), nil
}

func (c *cancelAfter) Close() error {
	c.closed = true
	return nil
}
