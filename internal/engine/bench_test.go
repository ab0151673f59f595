package engine_test

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/benchpg"
	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/storage/faulty"
	fsstorage "github.com/pgvault/pgvault/internal/storage/fs"
)

// BenchmarkBackup backs up a pgbench database (scale 10, ~160 MB on a
// PostgreSQL 15 cluster) into a fresh repository on the filesystem per
// iteration. Metrics: MB/s of database size (pg_database_size of all
// databases over the time of Backup), peak-heap-MiB (the largest
// runtime.MemStats.HeapInuse sampled every 5 ms during Backup), stored-MB
// (what the backup added to the repository), cpu-s/op (this process's user
// and system CPU during Backup) and server-MB (what the server
// sent). Run it alone: go test -run XXX -bench Backup -benchtime 3x.
func BenchmarkBackup(b *testing.B) {
	_, conn, dbBytes := pgbenchCluster(b)
	ctx := testContext(b, time.Hour)

	var (
		elapsed, cpu           time.Duration
		peak                   uint64
		stored, sent, baseline uint64
		n                      int
	)
	for b.Loop() {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "repo")
		st, err := fsstorage.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		r := newRepo(b, st)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		baseline = max(baseline, ms.HeapInuse)
		b.StartTimer()

		stop := benchpg.SampleHeap(&peak)
		t0, c0 := time.Now(), processCPU(b)
		res, err := engine.Backup(ctx, conn, r, engine.BackupOptions{Label: "benchmark"})
		elapsed += time.Since(t0)
		cpu += processCPU(b) - c0
		stop()
		if err != nil {
			b.Fatalf("Backup: %v", err)
		}

		b.StopTimer()
		n++
		stored += uint64(res.Snapshot.Stats.NewBytes)
		sent += uint64(res.Info.Bytes)
		r.Close()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(dbBytes)*float64(n)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(cpu.Seconds()/float64(n), "cpu-s/op")
	b.ReportMetric(float64(stored)/float64(n)/1e6, "stored-MB")
	b.ReportMetric(float64(sent)/float64(n)/1e6, "server-MB")
	b.Logf("%d backups in %s; heap in use before a backup (after GC) %.1f MiB, peak during %.1f MiB",
		n, elapsed.Round(time.Millisecond), float64(baseline)/(1<<20), float64(peak)/(1<<20))
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pgbenchCluster starts a PostgreSQL 15 cluster holding pgbench's tables at
// scale 10, frozen and checkpointed, and returns it, how to back it up and
// the size of its databases.
func pgbenchCluster(b *testing.B) (*pgtest.Cluster, pg.Conn, int64) {
	b.Helper()
	c := pgtest.Start(b, pgtest.Options{Settings: quiet})
	conn := backupConn(b, c)
	start := time.Now()
	cmd := exec.Command(filepath.Join(pg15Bin, "pgbench"), "-i", "-q", "-s", strconv.Itoa(*benchScale),
		"-h", c.SocketDir, "-p", strconv.Itoa(c.Port), "-U", c.SuperUser, "postgres")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	c.Exec(b, "VACUUM (FREEZE)")
	c.Exec(b, "CHECKPOINT")
	dbBytes, err := strconv.ParseInt(c.QueryString(b, "SELECT sum(pg_database_size(datname)) FROM pg_database"), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("pgbench -i -s %d in %s: %.1f MB in all databases", *benchScale, time.Since(start).Round(time.Millisecond), float64(dbBytes)/1e6)
	return c, conn, dbBytes
}

// BenchmarkWriteTarFormat writes the pgbench cluster's backup (see
// BenchmarkBackup) out of a repository on the filesystem in pg_basebackup's
// tar format, to a writer that discards it. Metrics: MB/s of archives
// written, peak-heap-MiB (as BenchmarkBackup), and the storage reads per
// regular file and per data chunk.
func BenchmarkWriteTarFormat(b *testing.B) {
	_, conn, _ := pgbenchCluster(b)
	ctx := testContext(b, time.Hour)
	counted := faulty.Wrap(fsStorage(b)) // no faults: it counts the calls
	r := newRepo(b, counted)
	res, err := engine.Backup(ctx, conn, r, engine.BackupOptions{Label: "benchmark"})
	if err != nil {
		b.Fatalf("Backup: %v", err)
	}
	s := res.Snapshot
	var (
		elapsed time.Duration
		peak    uint64
		written int64
		n       int
	)
	before := counted.Calls()
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		stop := benchpg.SampleHeap(&peak)
		t0 := time.Now()
		var w discard
		err := engine.WriteTarFormat(ctx, r, s, func(string) (io.WriteCloser, error) { return &w, nil })
		elapsed += time.Since(t0)
		stop()
		if err != nil {
			b.Fatalf("WriteTarFormat: %v", err)
		}
		written += w.n
		n++
	}
	calls := counted.Calls()
	reads := float64(calls.GetRange+calls.Get-before.GetRange-before.Get) / float64(n)
	b.ReportMetric(float64(written)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(reads/float64(s.Stats.Files), "reads/file")
	b.ReportMetric(reads/float64(s.Stats.Chunks), "reads/chunk")
	b.Logf("%d passes over a snapshot of %d files, %d chunks, %d tree blobs: %.0f storage reads each; %.1f MB written each",
		n, s.Stats.Files, s.Stats.Chunks, s.Stats.TreeBlobs, reads, float64(written)/float64(n)/1e6)
}

// discard counts and drops what is written to it.
type discard struct{ n int64 }

func (d *discard) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return len(p), nil
}

func (d *discard) Close() error { return nil }

// BenchmarkRestoreDir restores the pgbench cluster's backup (see
// BenchmarkBackup) from a repository on the filesystem into a new data
// directory per iteration (synced). Metrics: MB/s of files written,
// peak-heap-MiB (as BenchmarkBackup), CPU seconds per restore (getrusage).
// -benchparallel sets Parallel.
func BenchmarkRestoreDir(b *testing.B) {
	_, conn, _ := pgbenchCluster(b)
	ctx := testContext(b, time.Hour)
	r := newRepo(b, fsStorage(b))
	res, err := engine.Backup(ctx, conn, r, engine.BackupOptions{Label: "benchmark"})
	if err != nil {
		b.Fatalf("Backup: %v", err)
	}
	s := res.Snapshot
	var (
		elapsed, cpu time.Duration
		peak         uint64
		written      int64
		n            int
	)
	for b.Loop() {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "data")
		runtime.GC()
		b.StartTimer()
		stop := benchpg.SampleHeap(&peak)
		var ru0, ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		t0 := time.Now()
		out, err := engine.RestoreDir(ctx, r, s, engine.RestoreDirOptions{DataDir: dir, Parallel: *restoreParallel})
		elapsed += time.Since(t0)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu += time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		n++
		stop()
		if err != nil {
			b.Fatalf("RestoreDir: %v", err)
		}
		written += out.Bytes
		b.StopTimer()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(written)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(cpu.Seconds()/float64(n), "cpu-s/op")
}

var benchScale = flag.Int("benchscale", 10, "pgbench scale factor of the benchmarks' cluster")

var restoreParallel = flag.Int("benchparallel", 4, "BenchmarkRestoreDir: RestoreDirOptions.Parallel")
