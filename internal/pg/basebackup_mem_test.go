package pg_test

import (
	"context"
	"crypto/sha256"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/pgtest"
)

// pgbenchCluster starts a PostgreSQL 15 cluster filled by pgbench -i -s scale (about
// 15 MB of data per unit of scale) and a role "backup".
func pgbenchCluster(t testing.TB, scale int) *pgtest.Cluster {
	t.Helper()
	tool := filepath.Join(pg15Bin, "pgbench")
	if _, err := os.Stat(tool); err != nil {
		t.Fatalf("pgbench: %v (install postgresql-15)", err)
	}
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_wal_size": "1GB"}})
	start := time.Now()
	out, err := exec.Command(tool, "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", c.SocketDir, "-p", strconv.Itoa(c.Port), "-U", c.SuperUser, "postgres").CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench -i -s %d: %v\n%s", scale, err, out)
	}
	c.CreateRole(t, "backup", backupPW, "LOGIN REPLICATION")
	t.Logf("pgbench -i -s %d: %s, database %s", scale, time.Since(start).Round(time.Millisecond),
		c.QueryString(t, "SELECT pg_size_pretty(pg_database_size('postgres'))"))
	return c
}

// heapWatcher hashes what is written to it and samples the heap every 8 MiB.
type heapWatcher struct {
	h        hash.Hash
	n, next  int64
	peakHeap uint64 // HeapInuse
	samples  int
}

func (w *heapWatcher) Write(p []byte) (int, error) {
	w.h.Write(p)
	w.n += int64(len(p))
	if w.n >= w.next {
		w.next = w.n + 8<<20
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.peakHeap = max(w.peakHeap, ms.HeapInuse)
		w.samples++
	}
	return len(p), nil
}

// readerOnly hides the reader's WriteTo, so io.Copy goes through Read and a buffer.
type readerOnly struct{ io.Reader }

// TestBaseBackupMemory streams a pgbench scale 10 cluster (~200 MB of archives) into a
// hash and checks that the heap does not grow with the data: BaseBackup holds at most
// one CopyData message (pgconn's read buffer) at a time. Not parallel, so that other
// tests' allocations do not blur the figures.
func TestBaseBackupMemory(t *testing.T) {
	c := pgbenchCluster(t, 10)
	for _, mode := range []string{"WriteTo", "Read"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			w := &heapWatcher{h: sha256.New()}
			start := time.Now()
			info, err := pg.BaseBackup(ctx, conn(c, "backup", backupPW), pg.BaseBackupOptions{Fast: true},
				func(_ string, _ pg.Tablespace, r io.Reader) error {
					if mode == "Read" {
						r = readerOnly{r}
					}
					_, err := io.Copy(w, r)
					return err
				})
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			growth := int64(w.peakHeap) - int64(before.HeapInuse)
			t.Logf("%s: %.1f MB in %s (%.0f MB/s); heap in use %.1f MB before, peak %.1f MB (+%.1f MB) over %d samples; allocated %.1f MB in %d allocations during the backup",
				mode, float64(info.Bytes)/1e6, took.Round(time.Millisecond), float64(info.Bytes)/1e6/took.Seconds(),
				float64(before.HeapInuse)/1e6, float64(w.peakHeap)/1e6, float64(growth)/1e6, w.samples,
				float64(after.TotalAlloc-before.TotalAlloc)/1e6, after.Mallocs-before.Mallocs)
			if info.Bytes < 150e6 || w.n != info.Bytes {
				t.Errorf("streamed %d bytes (hashed %d), want pgbench scale 10 (> 150 MB)", info.Bytes, w.n)
			}
			if growth > 16<<20 {
				t.Errorf("the heap grew by %d bytes while streaming %d bytes", growth, info.Bytes)
			}
		})
	}
}

// BenchmarkBaseBackup measures BASE_BACKUP of a pgbench scale 10 cluster (WAL and
// manifest included, fast checkpoint) over loopback, into io.Discard and into files,
// and for reference PostgreSQL 15's pg_basebackup writing the same archives.
func BenchmarkBaseBackup(b *testing.B) {
	c := pgbenchCluster(b, 10)
	b.Run("pg_basebackup-files", func(b *testing.B) {
		dir := b.TempDir()
		var bytes int64
		for b.Loop() {
			out := filepath.Join(dir, "bb")
			_ = os.RemoveAll(out)
			cmd := exec.Command(filepath.Join(pg15Bin, "pg_basebackup"), "-h", c.SocketDir, "-p", strconv.Itoa(c.Port), "-U", c.SuperUser,
				"-D", out, "-Ft", "-X", "fetch", "-c", "fast", "--manifest-checksums=SHA256")
			if o, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("pg_basebackup: %v\n%s", err, o)
			}
			entries, _ := os.ReadDir(out)
			bytes = 0
			for _, e := range entries {
				if fi, err := e.Info(); err == nil {
					bytes += fi.Size()
				}
			}
		}
		b.SetBytes(bytes)
	})
	for _, sink := range []string{"discard", "files"} {
		b.Run(sink, func(b *testing.B) {
			dir := b.TempDir()
			var bytes int64
			for b.Loop() {
				info, err := pg.BaseBackup(context.Background(), conn(c, "backup", backupPW), pg.BaseBackupOptions{Fast: true},
					func(name string, _ pg.Tablespace, r io.Reader) error {
						if sink == "discard" {
							_, err := io.Copy(io.Discard, r)
							return err
						}
						f, err := os.Create(filepath.Join(dir, name))
						if err != nil {
							return err
						}
						if _, err := io.Copy(f, r); err != nil {
							_ = f.Close()
							return err
						}
						return f.Close()
					})
				if err != nil {
					b.Fatal(err)
				}
				bytes = info.Bytes
			}
			b.SetBytes(bytes)
		})
	}
}
