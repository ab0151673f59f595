package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/mem"
)

func testKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, MasterKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// newTestRepo makes a repository on fresh in-memory storage.
func newTestRepo(t testing.TB) (*Repo, storage.Storage, []byte) {
	t.Helper()
	st := mem.New()
	key := testKey(t)
	r, err := Init(context.Background(), st, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, st, key
}

// testFile is a file to write, with its content (nil for dirs/symlinks) or a
// generator for large content.
type testFile struct {
	File
	data []byte
	gen  func() io.Reader // large content, streamed
}

func regular(path string, data []byte) testFile {
	return testFile{File: File{Path: path, Type: TypeRegular, Mode: 0o600, Size: int64(len(data)), ModTime: time.Unix(1700000000, 123456789)}, data: data}
}

func (f testFile) reader() io.Reader {
	if f.gen != nil {
		return f.gen()
	}
	if f.Type != TypeRegular {
		return nil
	}
	return bytes.NewReader(f.data)
}

// writeSnapshot writes files as one snapshot.
func writeSnapshot(t testing.TB, r *Repo, opts WriterOptions, files []testFile, meta map[string]string) *Snapshot {
	t.Helper()
	ctx := context.Background()
	w, err := r.NewWriter(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := w.AddFile(ctx, f.File, f.reader()); err != nil {
			w.Abort(ctx)
			t.Fatalf("AddFile(%s): %v", f.Path, err)
		}
	}
	s, err := w.Commit(ctx, meta)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pageGen makes PostgreSQL-like heap pages: a page header, line pointers,
// tuples of integers, timestamps, hex text and a padded text column, and
// free space. zstd compresses them about 3-5x, like real tables.
type pageGen struct {
	rng *mrand.Rand
	seq uint64
}

func newPageGen(seed uint64) *pageGen {
	return &pageGen{rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

const hexDigits = "0123456789abcdef"

func (g *pageGen) page(p []byte) {
	clear(p)
	r := g.rng
	binary.LittleEndian.PutUint64(p[0:], r.Uint64()>>20) // LSN
	binary.LittleEndian.PutUint16(p[8:], uint16(r.Uint32()))
	ntup := 30 + r.IntN(30)
	tupLen := 120
	lower := 24 + 4*ntup
	upper := len(p) - ntup*tupLen
	binary.LittleEndian.PutUint16(p[12:], uint16(lower))
	binary.LittleEndian.PutUint16(p[14:], uint16(upper))
	binary.LittleEndian.PutUint16(p[16:], 8192|4)
	for i := 0; i < ntup; i++ {
		off := upper + i*tupLen
		binary.LittleEndian.PutUint32(p[24+4*i:], uint32(off)|uint32(tupLen)<<17|1<<15)
		t := p[off : off+tupLen]
		binary.LittleEndian.PutUint32(t[0:], uint32(r.IntN(1000)+700)) // xmin
		t[22] = 24
		g.seq++
		binary.LittleEndian.PutUint64(t[24:], g.seq)                               // id
		binary.LittleEndian.PutUint32(t[32:], uint32(r.IntN(100)))                 // small int
		binary.LittleEndian.PutUint64(t[40:], 757000000000000+uint64(r.IntN(1e9))) // timestamp
		for j := 48; j < 80; j++ {                                                 // md5-like text
			t[j] = hexDigits[r.IntN(16)]
		}
		for j := 80; j < tupLen; j++ { // padded text
			t[j] = ' '
		}
		copy(t[80:], "status-ok")
	}
}

// relData makes n pages of relation data.
func relData(seed uint64, pages int) []byte {
	g := newPageGen(seed)
	b := make([]byte, pages*PageSize)
	for i := 0; i < pages; i++ {
		g.page(b[i*PageSize : (i+1)*PageSize])
	}
	return b
}

// genReader streams size bytes of page data without holding them.
type genReader struct {
	g    *pageGen
	left int64
	page [PageSize]byte
	off  int
}

func newGenReader(seed uint64, size int64) *genReader {
	r := &genReader{g: newPageGen(seed), left: size, off: PageSize}
	return r
}

func (r *genReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.off == PageSize {
		r.g.page(r.page[:])
		r.off = 0
	}
	n := copy(p, r.page[r.off:])
	n = int(min(int64(n), r.left))
	r.off += n
	r.left -= int64(n)
	return n, nil
}

// readFile reads a whole file of a snapshot.
func readFile(t testing.TB, r *Repo, s *Snapshot, path string) ([]byte, error) {
	t.Helper()
	rc, err := r.OpenFile(context.Background(), s, path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func mustCheck(t testing.TB, r *Repo, opts CheckOptions) *CheckReport {
	t.Helper()
	rep, err := r.Check(context.Background(), opts)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Check found problems: %v; damaged %v", rep.Problems, rep.DamagedSnapshots)
	}
	return rep
}

type storageInfo = storage.Info

// putSealedJSON stores v as a content-named sealed object.
func putSealedJSON(t testing.TB, r *Repo, prefix string, typ ObjectType, v any) string {
	t.Helper()
	payload, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	obj := r.codec.seal(r.keys, typ, payload)
	name := prefix + objectID(obj).String()
	if err := putBytes(context.Background(), r.st, name, obj, true); err != nil {
		t.Fatal(err)
	}
	return name
}
