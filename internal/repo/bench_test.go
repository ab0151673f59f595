package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/pgvault/pgvault/internal/storage"
	fsstorage "github.com/pgvault/pgvault/internal/storage/fs"
	"github.com/pgvault/pgvault/internal/storage/mem"
)

var (
	benchMiB = flag.Int("repo.benchmib", 256, "MiB of synthetic relation data BenchmarkWrite writes")
	bigWrite = flag.Int("repo.bigwrite", 0, "GiB streamed by BenchmarkWriteStream (0: skip); run under /usr/bin/time -v for peak RSS")
)

// benchData is a synthetic PostgreSQL data directory: 1 GiB-segment-like
// relation files of unique 8 KiB heap pages.
var benchData struct {
	once  sync.Once
	files []testFile
	size  int64
}

func loadBenchData(mib int) ([]testFile, int64) {
	benchData.once.Do(func() {
		const fileMiB = 32
		for i := 0; i < mib/fileMiB; i++ {
			f := regular(fmt.Sprintf("base/16384/%d", 20000+i), relData(uint64(1000+i), fileMiB<<20/PageSize))
			benchData.files = append(benchData.files, f)
			benchData.size += f.Size
		}
	})
	return benchData.files, benchData.size
}

// BenchmarkWrite writes the synthetic data set into a fresh in-memory
// repository with the default options (Parallelism 2).
func BenchmarkWrite(b *testing.B) {
	for _, p := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallelism=%d", p), func(b *testing.B) {
			files, size := loadBenchData(*benchMiB)
			b.SetBytes(size)
			var stored int64
			for b.Loop() {
				b.StopTimer()
				r, _, _ := newTestRepo(b)
				runtime.GC()
				b.StartTimer()
				s := writeSnapshot(b, r, WriterOptions{Parallelism: p}, files, nil)
				stored = s.Stats.NewBytes
			}
			b.ReportMetric(float64(size)/float64(stored), "ratio")
		})
	}
}

// BenchmarkCompressLevels compares zstd levels on 128 KiB relation chunks,
// one goroutine.
func BenchmarkCompressLevels(b *testing.B) {
	files, _ := loadBenchData(*benchMiB)
	data := files[0].data
	chunk := PageSize * defaultRelationChunkPages
	for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		b.Run(level.String(), func(b *testing.B) {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			b.SetBytes(int64(len(data)))
			var out []byte
			var total int
			for b.Loop() {
				total = 0
				for off := 0; off < len(data); off += chunk {
					out = enc.EncodeAll(data[off:off+chunk], out[:0])
					total += len(out)
				}
			}
			b.ReportMetric(float64(len(data))/float64(total), "ratio")
		})
	}
}

// BenchmarkDedup writes a base snapshot, then a second one with 1% of the
// pages changed, clustered (runs of 64 pages) or scattered (single pages),
// and reports what the second one stored.
func BenchmarkDedup(b *testing.B) {
	const pages = 64 << 20 / PageSize // 64 MiB
	base := relData(77, pages)
	files := func(data []byte) []testFile {
		var fs []testFile
		for i := 0; i < 4; i++ {
			part := data[i*len(data)/4 : (i+1)*len(data)/4]
			fs = append(fs, regular(fmt.Sprintf("base/16384/%d", 30000+i), part))
		}
		return fs
	}
	change := func(scattered bool) []byte {
		d := bytes.Clone(base)
		g := newPageGen(99)
		n := pages / 100
		perm := mrand.New(mrand.NewPCG(5, 6)).Perm(pages)
		for i := 0; i < n; i++ {
			var p int
			if scattered {
				p = perm[i] // distinct random pages
			} else {
				p = (i/64)*(pages/((n+63)/64)) + i%64 // runs of 64 pages spread over the data
			}
			g.page(d[p*PageSize : (p+1)*PageSize])
		}
		return d
	}
	for _, c := range []struct {
		name      string
		scattered bool
	}{{"clustered", false}, {"scattered", true}} {
		b.Run(c.name, func(b *testing.B) {
			second := change(c.scattered)
			var s1, s2 *Snapshot
			for b.Loop() {
				r, _, _ := newTestRepo(b)
				s1 = writeSnapshot(b, r, WriterOptions{}, files(base), nil)
				s2 = writeSnapshot(b, r, WriterOptions{}, files(second), nil)
			}
			b.ReportMetric(float64(s1.Stats.NewBytes), "first-stored-B")
			b.ReportMetric(float64(s2.Stats.NewBytes), "second-stored-B")
			b.ReportMetric(100*float64(s2.Stats.NewBytes)/float64(s1.Stats.NewBytes), "second-%-of-first")
			b.ReportMetric(float64(s2.Stats.NewChunks), "new-chunks")
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkIDSet measures the writer's dedup set: bytes per chunk and
// insert speed, at 1M and 8M chunks (8M ≈ 1 TiB of 128 KiB chunks).
func BenchmarkIDSet(b *testing.B) {
	for _, n := range []int{1 << 20, 8 << 20} {
		b.Run(fmt.Sprintf("chunks=%d", n), func(b *testing.B) {
			ids := make([]byte, 32*n)
			rand.Read(ids)
			var perChunk float64
			for b.Loop() {
				before := heapInUse()
				s := newIDSet()
				for i := 0; i < n/2; i++ { // half loaded from the index…
					s.add((*ID)(ids[32*i : 32*i+32]))
				}
				s.finishLoad()
				for i := n / 2; i < n; i++ { // …half inserted while writing
					s.insert((*ID)(ids[32*i : 32*i+32]))
				}
				perChunk = float64(heapInUse()-before) / float64(n)
				runtime.KeepAlive(s)
			}
			b.ReportMetric(perChunk, "B/chunk")
		})
	}
}

// BenchmarkLocIndex measures the reader's location index per chunk.
func BenchmarkLocIndex(b *testing.B) {
	const n = 4 << 20
	ids := make([]byte, 32*n)
	rand.Read(ids)
	var perChunk float64
	for b.Loop() {
		before := heapInUse()
		x := newLocIndex()
		const perPack = 1000
		for i := 0; i < n; i += perPack {
			p := &indexPack{size: 1 << 30}
			copy(p.id[:], ids[32*i:])
			for j := i; j < min(i+perPack, n); j++ {
				p.blobs = append(p.blobs, packBlob{typ: BlobData, id: ID(ids[32*j : 32*j+32]), length: 1000, rawLen: 4000})
			}
			x.addPack(p)
		}
		x.sort()
		perChunk = float64(heapInUse()-before) / float64(n)
		runtime.KeepAlive(x)
	}
	b.ReportMetric(perChunk, "B/chunk")
}

// discardPacks stores everything but pack content, so that a huge write
// can be measured for memory without holding its output.
type discardPacks struct {
	*mem.Mem
}

func (d discardPacks) Put(ctx context.Context, name string, r io.Reader, size int64, opts storage.PutOptions) error {
	if len(name) > len(packsPrefix) && name[:len(packsPrefix)] == packsPrefix {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	return d.Mem.Put(ctx, name, r, size, opts)
}

// BenchmarkWriteStream streams -repo.bigwrite GiB of generated relation
// files (1 GiB segments, 100 per "database") through a writer whose packs
// are discarded: run it under /usr/bin/time -v to see the peak RSS.
func BenchmarkWriteStream(b *testing.B) {
	if *bigWrite == 0 {
		b.Skip("set -repo.bigwrite=GiB")
	}
	ctx := context.Background()
	r, err := Init(ctx, discardPacks{mem.New()}, testKey(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(*bigWrite) << 30)
	for b.Loop() {
		w, err := r.NewWriter(ctx, WriterOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < *bigWrite; i++ {
			f := File{Path: fmt.Sprintf("base/16384/%d.%d", 40000+i/100, i%100), Type: TypeRegular, Mode: 0o600, Size: 1 << 30}
			if err := w.AddFile(ctx, f, newGenReader(uint64(i), 1<<30)); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Commit(ctx, nil); err != nil {
			b.Fatal(err)
		}
	}
}

var pgDir = flag.String("repo.pgdir", "", "a PostgreSQL data directory (stopped or checkpointed) that BenchmarkWriteDir backs up")

// BenchmarkWriteDir backs up a real data directory (without pg_wal) from
// disk into a filesystem repository, for comparison with pg_basebackup and
// pgBackRest on the same cluster. The first iteration is a full backup into
// a new repository; -repo.pgdir is required.
func BenchmarkWriteDir(b *testing.B) {
	if *pgDir == "" {
		b.Skip("set -repo.pgdir=DATADIR")
	}
	ctx := context.Background()
	type entry struct {
		f    File
		full string
	}
	var entries []entry
	var size int64
	err := filepath.WalkDir(*pgDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(*pgDir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "pg_wal/") || rel == "postmaster.pid" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := File{Path: rel, Mode: info.Mode().Perm(), ModTime: info.ModTime()}
		switch {
		case d.IsDir():
			f.Type = TypeDir
		case info.Mode().IsRegular():
			f.Type, f.Size = TypeRegular, info.Size()
			size += f.Size
		default:
			return nil
		}
		entries = append(entries, entry{f, p})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	write := func(b *testing.B, r *Repo) *Snapshot {
		w, err := r.NewWriter(ctx, WriterOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			var rd io.Reader
			var fh *os.File
			if e.f.Type == TypeRegular {
				if fh, err = os.Open(e.full); err != nil {
					b.Fatal(err)
				}
				rd = fh
			}
			if err := w.AddFile(ctx, e.f, rd); err != nil {
				b.Fatal(err)
			}
			if fh != nil {
				fh.Close()
			}
		}
		s, err := w.Commit(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	newRepo := func(b *testing.B) *Repo {
		st, err := fsstorage.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		r, err := Init(ctx, st, testKey(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		return r
	}
	b.Run("full", func(b *testing.B) {
		var s *Snapshot
		for b.Loop() {
			b.StopTimer()
			r := newRepo(b)
			b.StartTimer()
			s = write(b, r)
		}
		b.ReportMetric(float64(s.Stats.NewBytes), "stored-B")
		b.ReportMetric(float64(len(entries)), "files")
	})
	b.Run("unchanged", func(b *testing.B) {
		r := newRepo(b)
		write(b, r)
		var s *Snapshot
		for b.Loop() {
			s = write(b, r)
		}
		b.ReportMetric(float64(s.Stats.NewBytes), "stored-B")
	})
}
