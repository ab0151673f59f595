package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/pgvault/pgvault/internal/benchpg"
	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/repo"
	fsstorage "github.com/pgvault/pgvault/internal/storage/fs"
)

// Bench tools and phases.
const (
	benchPgvault      = "pgvault"
	benchBasebackup   = "pg_basebackup"
	benchPgbackrest   = "pgbackrest"
	benchPhaseFull    = "full"
	benchPhaseCluster = "clustered-1%"
	benchPhaseScatter = "scattered-1%"
	benchPhaseRestore = "restore"
)

// benchRun is one backup of one tool.
type benchRun struct {
	Phase string `json:"phase"`
	// Kind says what the tool did: "full", "dedup (new snapshot)", "incr".
	Kind        string  `json:"kind"`
	WallSeconds float64 `json:"wall_seconds"`
	// ThroughputMBs is the database size (MB, 10^6) over the wall time.
	ThroughputMBs float64 `json:"throughput_mb_s"`
	// CPUSeconds is user+sys of the tool: of the child process and the
	// children it waited for (wait4), or of this process for pgvault
	// (getrusage RUSAGE_SELF delta).
	CPUSeconds float64 `json:"cpu_seconds"`
	// ServerCPUSeconds is user+sys of the PostgreSQL backends that ended
	// during the backup (the walsender that reads the files for pgvault and
	// pg_basebackup; pgBackRest reads them itself): the postmaster's
	// cutime+cstime delta.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	// PeakRSSBytes is the child's peak RSS (its process tree's, sampled every
	// 10 ms, and each process's VmHWM), or for pgvault this
	// process's VmHWM, reset before the backup (/proc/self/clear_refs).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// PeakGoHeapBytes (pgvault only) is the largest HeapInuse sampled every 5 ms.
	PeakGoHeapBytes int64 `json:"peak_go_heap_bytes,omitempty"`
	// StoredBytes is what the backup added to the output (du -b of the new
	// files, or the repository's growth).
	StoredBytes int64 `json:"stored_bytes"`
	// TotalBytes is the size of the tool's whole output after the backup.
	TotalBytes int64 `json:"total_bytes"`
	// SnapshotNewBytes (pgvault only) is the snapshot's Stats.NewBytes.
	SnapshotNewBytes int64 `json:"snapshot_new_bytes,omitempty"`
}

// benchTool is one tool's results.
type benchTool struct {
	Name      string     `json:"name"`
	Version   string     `json:"version"`
	Available bool       `json:"available"`
	Command   string     `json:"command"`
	Note      string     `json:"note,omitempty"`
	Runs      []benchRun `json:"runs"`
}

// benchRatio is pgvault's figure over a peer's for one phase.
type benchRatio struct {
	Phase string  `json:"phase"`
	Peer  string  `json:"peer"`
	Wall  float64 `json:"wall"`
	// CPU counts the tool's and the server's CPU.
	CPU     float64 `json:"cpu"`
	PeakRSS float64 `json:"peak_rss"`
	Stored  float64 `json:"stored"`
}

// benchReport is the output of `pgvault bench backup`.
type benchReport struct {
	Scale           int          `json:"scale"`
	PostgresVersion string       `json:"postgres_version"`
	DatabaseBytes   int64        `json:"database_bytes"`
	UpdatedRows     int64        `json:"updated_rows"`
	CPUs            int          `json:"cpus"`
	WorkDir         string       `json:"work_dir"`
	Tools           []*benchTool `json:"tools"`
	Ratios          []benchRatio `json:"ratios"`
}

func newBenchCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks on a throwaway local PostgreSQL 15 cluster",
	}
	var (
		scale     int
		workDir   string
		output    string
		noRestore bool
		profile   string
	)
	backup := &cobra.Command{
		Use:   "backup",
		Short: "Compare full and changed-data backups of pgvault, pg_basebackup and pgBackRest on a pgbench database",
		Long: `Creates a PostgreSQL 15 cluster (Debian's postgresql-15) on a free 127.0.0.1 port,
fills it with pgbench -i -s SCALE and backs it up with pgvault (into a fresh filesystem
repository), pg_basebackup (-Ft -X fetch -c fast --compress=client-zstd:1) and pgBackRest
(zstd level 1, process-max=2; skipped when not installed). Then it updates 1% of
pgbench_accounts, clustered in one key range, and backs up again (pgvault: a new snapshot,
deduplicated; pg_basebackup: a full; pgBackRest: --type=incr); then 1% scattered
(aid % 100 = 0), and again. Last (unless --no-restore) it restores the latest backup of
each into a new directory: pgvault's snapshot with RestoreDir, pg_basebackup's by
extracting its zstd tar files (tar -I zstd, then sync), pgBackRest's with pgbackrest
restore. It prints wall time, throughput, CPU, peak memory and the bytes stored (or
restored), and pgvault's figures over its peers'. Run as root, the PostgreSQL programs run
as the postgres OS user.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			output = strings.ToLower(output)
			if output != outputTable && output != outputJSON {
				return fmt.Errorf("invalid --output %q: use table or json", output)
			}
			if scale < 1 {
				return fmt.Errorf("invalid --scale %d: it must be at least 1", scale)
			}
			keep := workDir != ""
			if !keep {
				d, err := os.MkdirTemp("", "pgvault-bench-")
				if err != nil {
					return fmt.Errorf("while making the work directory: %w", err)
				}
				workDir = d
				defer func() { _ = os.RemoveAll(d) }()
			} else {
				abs, err := filepath.Abs(workDir)
				if err != nil {
					return fmt.Errorf("while resolving --work-dir: %w", err)
				}
				workDir = abs
				if err := os.MkdirAll(workDir, 0o700); err != nil {
					return fmt.Errorf("while making the work directory: %w", err)
				}
			}
			pgbackrest, _ := exec.LookPath("pgbackrest")
			b := &bencher{scale: scale, workDir: workDir, pgbackrest: pgbackrest, progress: e.stderr, restore: !noRestore, cpuProfile: profile}
			rep, err := b.run(cmd.Context())
			if err != nil {
				return err
			}
			if !keep {
				rep.WorkDir = "" // removed
			}
			if output == outputJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return fmt.Errorf("while writing the report: %w", err)
				}
				return nil
			}
			return printBench(e, rep)
		},
	}
	backup.Flags().IntVar(&scale, "scale", 10, "pgbench scale factor (about 15 MB of database each)")
	backup.Flags().StringVar(&workDir, "work-dir", "", "directory for the cluster and the backups, kept afterwards (default: a temporary directory, removed)")
	backup.Flags().StringVarP(&output, "output", "o", outputTable, "output format: table or json")
	backup.Flags().BoolVar(&noRestore, "no-restore", false, "skip the restore phase")
	backup.Flags().StringVar(&profile, "cpu-profile", "", "write a CPU profile (pprof) of pgvault's full backup to this file")
	cmd.AddCommand(backup)
	return cmd
}

// bencher runs `pgvault bench backup`.
type bencher struct {
	scale      int
	workDir    string
	pgbackrest string // path; "" when not installed
	progress   interface{ Write([]byte) (int, error) }
	restore    bool   // run the restore phase
	cpuProfile string // file for a CPU profile of pgvault's full backup; "" for none

	c       *benchpg.Cluster
	dbBytes int64
	// pgvault
	repo    *repo.Repo
	repoDir string
}

func (b *bencher) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

func (b *bencher) run(ctx context.Context) (rep *benchReport, err error) {
	clusterDir := filepath.Join(b.workDir, "cluster")
	if err := os.Mkdir(clusterDir, 0o700); err != nil {
		return nil, fmt.Errorf("while making the cluster directory: %w", err)
	}
	b.logf("starting a PostgreSQL 15 cluster in %s", clusterDir)
	b.c, err = benchpg.Start(ctx, clusterDir)
	if err != nil {
		return nil, fmt.Errorf("while starting the cluster: %w", err)
	}
	defer func() {
		if serr := b.c.Stop(); serr != nil && err == nil {
			err = serr
		}
		if b.repo != nil {
			_ = b.repo.Close()
		}
	}()
	start := time.Now()
	if out, err := b.c.Command(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(b.scale),
		"-h", b.c.SocketDir, "-p", strconv.Itoa(b.c.Port), "-U", b.c.SuperUser, "postgres").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("while running pgbench -i: %w\n%s", err, out)
	}
	if err := b.c.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, err
	}
	if b.dbBytes, err = b.c.QueryInt(ctx, "SELECT sum(pg_database_size(datname))::bigint FROM pg_database"); err != nil {
		return nil, err
	}
	version, err := b.c.QueryInt(ctx, "SELECT current_setting('server_version_num')::bigint")
	if err != nil {
		return nil, err
	}
	b.logf("pgbench -i -s %d in %s: %s in all databases", b.scale, time.Since(start).Round(time.Millisecond), formatBytes(b.dbBytes))

	rep = &benchReport{Scale: b.scale, PostgresVersion: strconv.FormatInt(version, 10), DatabaseBytes: b.dbBytes,
		CPUs: runtime.NumCPU(), WorkDir: b.workDir}
	tools, err := b.setup(ctx)
	if err != nil {
		return nil, err
	}
	rep.Tools = tools

	phases := []struct{ name, sql string }{
		{benchPhaseFull, ""},
		{benchPhaseCluster, fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= %d", b.scale*1000)},
		{benchPhaseScatter, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0"},
	}
	for _, ph := range phases {
		if ph.sql != "" {
			n, err := b.c.QueryInt(ctx, "WITH u AS ("+ph.sql+" RETURNING 1) SELECT count(*) FROM u")
			if err != nil {
				return nil, err
			}
			rep.UpdatedRows = n
			if err := b.c.Exec(ctx, "CHECKPOINT"); err != nil {
				return nil, err
			}
		}
		for _, t := range tools {
			if !t.Available {
				continue
			}
			b.logf("%s: %s backup", ph.name, t.Name)
			var r benchRun
			switch t.Name {
			case benchPgvault:
				r, err = b.runPgvault(ctx, ph.name)
			case benchBasebackup:
				r, err = b.runBasebackup(ctx, ph.name)
			case benchPgbackrest:
				r, err = b.runPgbackrest(ctx, ph.name)
			}
			if err != nil {
				return nil, fmt.Errorf("while backing up with %s (%s): %w", t.Name, ph.name, err)
			}
			r.Phase = ph.name
			if r.WallSeconds > 0 {
				r.ThroughputMBs = float64(b.dbBytes) / 1e6 / r.WallSeconds
			}
			t.Runs = append(t.Runs, r)
		}
	}
	if b.restore {
		for _, t := range tools {
			if !t.Available {
				continue
			}
			b.logf("%s: %s", benchPhaseRestore, t.Name)
			dir := filepath.Join(b.workDir, "restore-"+t.Name)
			// Each restore starts with no dirty pages of others (the
			// cluster's, an earlier restore's): sync -f of the tar peer
			// flushes the whole filesystem, and would wait for them.
			unix.Sync()
			var r benchRun
			switch t.Name {
			case benchPgvault:
				r, err = b.restorePgvault(ctx, dir)
			case benchBasebackup:
				r, err = b.restoreBasebackup(ctx, dir)
			case benchPgbackrest:
				r, err = b.restorePgbackrest(ctx, dir)
			}
			if err == nil {
				err = checkRestored(dir, &r)
			}
			_ = os.RemoveAll(dir) // several copies of the cluster add up
			if err != nil {
				return nil, fmt.Errorf("while restoring with %s: %w", t.Name, err)
			}
			r.Phase = benchPhaseRestore
			if r.WallSeconds > 0 {
				r.ThroughputMBs = float64(b.dbBytes) / 1e6 / r.WallSeconds
			}
			t.Runs = append(t.Runs, r)
		}
	}
	rep.Ratios = benchRatios(tools)
	return rep, nil
}

// measureSelf runs fn in this process and records its wall time, CPU
// (getrusage), peak RSS (VmHWM, reset first) and peak Go heap.
func measureSelf(r *benchRun, fn func() error) error {
	runtime.GC()
	// Reset VmHWM to the current RSS, so that it is this run's peak.
	resetErr := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	var peak uint64
	stop := benchpg.SampleHeap(&peak)
	t0 := time.Now()
	err := fn()
	r.WallSeconds = time.Since(t0).Seconds()
	stop()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	r.CPUSeconds = rusageCPU(&ru1) - rusageCPU(&ru0)
	r.PeakGoHeapBytes = int64(peak)
	if hwm, herr := vmHWM(); resetErr == nil && herr == nil {
		r.PeakRSSBytes = hwm
	} else {
		r.PeakRSSBytes = ru1.Maxrss * 1024 // the process's lifetime peak
	}
	return err
}

// startCPUProfile profiles this process into file until the returned
// function is called.
func startCPUProfile(file string) (func(), error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("while creating the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("while starting the CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// restorePgvault restores the latest snapshot with engine.RestoreDir.
func (b *bencher) restorePgvault(ctx context.Context, dir string) (benchRun, error) {
	r := benchRun{Kind: "RestoreDir, latest snapshot"}
	snaps, err := b.repo.Snapshots(ctx)
	if err != nil || len(snaps) == 0 {
		return r, fmt.Errorf("while listing the snapshots: %v (%d)", err, len(snaps))
	}
	s := snaps[len(snaps)-1]
	err = measureSelf(&r, func() error {
		_, err := engine.RestoreDir(ctx, b.repo, s, engine.RestoreDirOptions{DataDir: dir})
		return err
	})
	return r, err
}

// restoreBasebackup extracts the latest pg_basebackup output (base.tar.zst,
// the WAL in it) as its documentation says, and syncs the filesystem.
func (b *bencher) restoreBasebackup(ctx context.Context, dir string) (benchRun, error) {
	r := benchRun{Kind: "tar -I zstd -x of the latest full, sync"}
	src := filepath.Join(b.workDir, "pg_basebackup", benchPhaseScatter)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return r, err
	}
	if err := b.c.GiveToPostgres(dir); err != nil {
		return r, err
	}
	script := fmt.Sprintf("tar -I zstd -xf %s -C %s && cp %s %s && sync -f %s",
		shellQuote(filepath.Join(src, "base.tar.zst")), shellQuote(dir),
		shellQuote(filepath.Join(src, "backup_manifest")), shellQuote(dir), shellQuote(dir))
	err := b.runChild(b.c.Command(ctx, "/bin/sh", "-c", script), &r)
	return r, err
}

// restorePgbackrest runs pgbackrest restore of the latest backup (an incr on
// the full) into dir.
func (b *bencher) restorePgbackrest(ctx context.Context, dir string) (benchRun, error) {
	r := benchRun{Kind: "pgbackrest restore, latest incr (process-max 2)"}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return r, err
	}
	if err := b.c.GiveToPostgres(dir); err != nil {
		return r, err
	}
	err := b.runChild(b.c.Command(ctx, b.pgbackrest, b.pgbackrestArgs("restore", "--pg1-path="+dir)...), &r)
	return r, err
}

// checkRestored checks that dir holds a data directory and records its size.
func checkRestored(dir string, r *benchRun) error {
	for _, f := range []string{"PG_VERSION", "global/pg_control", "backup_label"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("the restored directory lacks %s: %w", f, err)
		}
	}
	n, err := duBytes(dir)
	r.StoredBytes, r.TotalBytes = n, n
	return err
}

// setup describes the tools and prepares their output directories.
func (b *bencher) setup(ctx context.Context) ([]*benchTool, error) {
	pv := &benchTool{Name: benchPgvault, Version: "this build", Available: true,
		Command: "engine.Backup into a new filesystem repository (zstd, AES-GCM); then new snapshots into it"}
	b.repoDir = filepath.Join(b.workDir, "pgvault-repo")
	st, err := fsstorage.Open(b.repoDir)
	if err != nil {
		return nil, fmt.Errorf("while opening the repository storage: %w", err)
	}
	key := make([]byte, repo.MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("while making a master key: %w", err)
	}
	if b.repo, err = repo.Init(ctx, st, key); err != nil {
		return nil, fmt.Errorf("while creating the repository: %w", err)
	}

	bb := &benchTool{Name: benchBasebackup, Available: true,
		Command: "pg_basebackup -Ft -X fetch -c fast --compress=client-zstd:1 (a full each time)"}
	if out, err := b.c.Command(ctx, "pg_basebackup", "--version").Output(); err == nil {
		bb.Version = strings.TrimSpace(string(out))
	}
	dir := filepath.Join(b.workDir, "pg_basebackup")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("while making the pg_basebackup directory: %w", err)
	}
	if err := b.c.GiveToPostgres(dir); err != nil {
		return nil, err
	}

	br := &benchTool{Name: benchPgbackrest,
		Command: "pgbackrest backup --type=full, then --type=incr (compress-type=zst compress-level=1 process-max=2 start-fast=y archive-check=n)"}
	if b.pgbackrest == "" {
		br.Note = "not installed (apt-get install pgbackrest)"
		return []*benchTool{pv, bb, br}, nil
	}
	if out, err := b.c.Command(ctx, b.pgbackrest, "version").Output(); err == nil {
		br.Version = strings.TrimSpace(string(out))
	}
	br.Note = "archive-check=n: no WAL archiving, so its backups hold no WAL (pgvault's and pg_basebackup's do)"
	bdir := filepath.Join(b.workDir, "pgbackrest")
	for _, d := range []string{bdir, filepath.Join(bdir, "repo"), filepath.Join(bdir, "log"), filepath.Join(bdir, "lock")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("while making the pgBackRest directories: %w", err)
		}
	}
	conf := fmt.Sprintf(`[global]
repo1-path=%s
repo1-retention-full=10
compress-type=zst
compress-level=1
process-max=2
start-fast=y
archive-check=n
log-level-console=warn
log-level-file=off
log-path=%s
lock-path=%s

[bench]
pg1-path=%s
pg1-port=%d
pg1-socket-path=%s
pg1-user=%s
`, filepath.Join(bdir, "repo"), filepath.Join(bdir, "log"), filepath.Join(bdir, "lock"),
		b.c.DataDir, b.c.Port, b.c.SocketDir, b.c.SuperUser)
	if err := os.WriteFile(filepath.Join(bdir, "pgbackrest.conf"), []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("while writing pgbackrest.conf: %w", err)
	}
	if err := b.c.GiveToPostgres(bdir); err != nil {
		return nil, err
	}
	if out, err := b.c.Command(ctx, b.pgbackrest, b.pgbackrestArgs("stanza-create")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("while running pgbackrest stanza-create: %w\n%s", err, out)
	}
	br.Available = true
	return []*benchTool{pv, bb, br}, nil
}

func (b *bencher) pgbackrestArgs(args ...string) []string {
	return append([]string{"--config=" + filepath.Join(b.workDir, "pgbackrest", "pgbackrest.conf"), "--stanza=bench"}, args...)
}

func (b *bencher) runPgvault(ctx context.Context, phase string) (benchRun, error) {
	r := benchRun{Kind: "full"}
	if phase != benchPhaseFull {
		r.Kind = "new snapshot (deduplicated)"
	}
	before, err := duBytes(b.repoDir)
	if err != nil {
		return r, err
	}
	srv, err := b.serverCPU()
	if err != nil {
		return r, err
	}
	conn := pg.Conn{Host: b.c.Host, Port: b.c.Port, User: b.c.SuperUser, Password: b.c.SuperPassword, SSLMode: "disable"}
	var res *engine.BackupResult
	err = measureSelf(&r, func() error {
		if phase == benchPhaseFull && b.cpuProfile != "" {
			stop, err := startCPUProfile(b.cpuProfile)
			if err != nil {
				return err
			}
			defer stop()
		}
		var err error
		res, err = engine.Backup(ctx, conn, b.repo, engine.BackupOptions{Label: "pgvault bench " + phase})
		return err
	})
	if err != nil {
		return r, err
	}
	if r.ServerCPUSeconds, err = srv(); err != nil {
		return r, err
	}
	r.SnapshotNewBytes = res.Snapshot.Stats.NewBytes
	if r.TotalBytes, err = duBytes(b.repoDir); err != nil {
		return r, err
	}
	r.StoredBytes = r.TotalBytes - before
	return r, nil
}

func (b *bencher) runBasebackup(ctx context.Context, phase string) (benchRun, error) {
	r := benchRun{Kind: "full"}
	dir := filepath.Join(b.workDir, "pg_basebackup", phase)
	cmd := b.c.Command(ctx, "pg_basebackup", "-h", b.c.Host, "-p", strconv.Itoa(b.c.Port), "-U", b.c.SuperUser,
		"-Ft", "-X", "fetch", "-c", "fast", "--compress=client-zstd:1", "-D", dir)
	cmd.Env = append(cmd.Env, "PGPASSWORD="+b.c.SuperPassword)
	if err := b.runChild(cmd, &r); err != nil {
		return r, err
	}
	var err error
	if r.StoredBytes, err = duBytes(dir); err != nil {
		return r, err
	}
	r.TotalBytes = r.StoredBytes
	return r, nil
}

func (b *bencher) runPgbackrest(ctx context.Context, phase string) (benchRun, error) {
	r := benchRun{Kind: "full"}
	if phase != benchPhaseFull {
		r.Kind = "incr"
	}
	repoDir := filepath.Join(b.workDir, "pgbackrest", "repo")
	before, err := duBytes(repoDir)
	if err != nil {
		return r, err
	}
	cmd := b.c.Command(ctx, b.pgbackrest, b.pgbackrestArgs("backup", "--type="+r.Kind)...)
	if err := b.runChild(cmd, &r); err != nil {
		return r, err
	}
	if r.TotalBytes, err = duBytes(repoDir); err != nil {
		return r, err
	}
	r.StoredBytes = r.TotalBytes - before
	return r, nil
}

// runChild runs a backup program and records its wall time, CPU (wait4's,
// which counts the children it waited for), peak RSS (sampleTreeRSS) and the
// server's CPU.
func (b *bencher) runChild(cmd *exec.Cmd, r *benchRun) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	srv, err := b.serverCPU()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("while starting %s: %w", cmd.Args[0], err)
	}
	stop := sampleTreeRSS(cmd.Process.Pid, &r.PeakRSSBytes)
	err = cmd.Wait()
	r.WallSeconds = time.Since(t0).Seconds()
	stop()
	if err != nil {
		return fmt.Errorf("while running %s: %w\n%s", strings.Join(cmd.Args, " "), err, out.Bytes())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPUSeconds = rusageCPU(ru)
	}
	r.ServerCPUSeconds, err = srv()
	return err
}

// serverCPU notes the postmaster's children and their reaped CPU time; the
// function it returns waits (up to 5 s) for the children started since to
// end, and returns the CPU seconds they used.
func (b *bencher) serverCPU() (func() (float64, error), error) {
	pid, err := b.c.PostmasterPID()
	if err != nil {
		return nil, err
	}
	base, cpu0, err := postmasterChildren(pid)
	if err != nil {
		return nil, err
	}
	return func() (float64, error) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, cpu1, err := postmasterChildren(pid)
			if err != nil {
				return 0, err
			}
			if n <= base || time.Now().After(deadline) {
				return cpu1 - cpu0, nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}, nil
}

// postmasterChildren returns how many children the postmaster has and the
// CPU seconds (cutime+cstime) of those it reaped.
func postmasterChildren(pid int) (int, float64, error) {
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, 0, fmt.Errorf("while reading the postmaster's children: %w", err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("while reading the postmaster's stat: %w", err)
	}
	// Fields after "(comm) ": state is field 3; cutime and cstime are 16 and 17.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("while reading the postmaster's stat: %d fields", len(f))
	}
	cu, err1 := strconv.ParseInt(f[13], 10, 64)
	cs, err2 := strconv.ParseInt(f[14], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("while reading the postmaster's stat: %w", err)
	}
	const userHZ = 100 // the unit of /proc times (USER_HZ)
	return len(strings.Fields(string(children))), float64(cu+cs) / userHZ, nil
}

// sampleTreeRSS records into *peak, every 10 ms until the returned function is
// called, the largest of: the sum of the VmRSS of pid and its descendants, and
// the VmHWM of any of them. (wait4's ru_maxrss is no use here: a child forked
// by Go shares this process's memory until exec, and that high-water mark
// counts.)
func sampleTreeRSS(pid int, peak *int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var sum int64
			var walk func(p int)
			walk = func(p int) {
				rss, hwm := procRSS(p)
				sum += rss
				*peak = max(*peak, hwm)
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p))
				for _, f := range strings.Fields(string(b)) {
					if c, err := strconv.Atoi(f); err == nil {
						walk(c)
					}
				}
			}
			walk(pid)
			*peak = max(*peak, sum)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// procRSS returns a process's VmRSS and VmHWM in bytes (0 when gone).
func procRSS(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss = parseKB(v)
		} else if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm = parseKB(v)
		}
	}
	return rss, hwm
}

func parseKB(v string) int64 {
	kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return kb * 1024
}

func rusageCPU(ru *syscall.Rusage) float64 {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// vmHWM returns this process's peak RSS since the last reset (VmHWM).
func vmHWM() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("while reading /proc/self/status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("while reading VmHWM: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// duBytes sums the sizes of the regular files under dir (du -sb).
func duBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("while measuring %s: %w", dir, err)
	}
	return n, nil
}

// benchRatios divides pgvault's figures by each peer's, phase by phase.
func benchRatios(tools []*benchTool) []benchRatio {
	find := func(t *benchTool, phase string) *benchRun {
		for i := range t.Runs {
			if t.Runs[i].Phase == phase {
				return &t.Runs[i]
			}
		}
		return nil
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	var out []benchRatio
	for _, pv := range tools {
		if pv.Name != benchPgvault {
			continue
		}
		for _, peer := range tools {
			if peer.Name == benchPgvault {
				continue
			}
			for _, a := range pv.Runs {
				p := find(peer, a.Phase)
				if p == nil {
					continue
				}
				out = append(out, benchRatio{Phase: a.Phase, Peer: peer.Name,
					Wall:    ratio(a.WallSeconds, p.WallSeconds),
					CPU:     ratio(a.CPUSeconds+a.ServerCPUSeconds, p.CPUSeconds+p.ServerCPUSeconds),
					PeakRSS: ratio(float64(a.PeakRSSBytes), float64(p.PeakRSSBytes)),
					Stored:  ratio(float64(a.StoredBytes), float64(p.StoredBytes)),
				})
			}
		}
	}
	return out
}

func printBench(e *env, rep *benchReport) error {
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "pgbench scale %d, PostgreSQL %s, %s in all databases (%.1f MB), %d CPUs; 1%% updates: %d rows\n\n",
		rep.Scale, rep.PostgresVersion, formatBytes(rep.DatabaseBytes), float64(rep.DatabaseBytes)/1e6, rep.CPUs, rep.UpdatedRows)
	fmt.Fprintln(w, "PHASE\tTOOL\tKIND\tWALL\tMB/s\tCPU\tSERVER CPU\tPEAK RSS\tSTORED\tTOTAL")
	for _, ph := range []string{benchPhaseFull, benchPhaseCluster, benchPhaseScatter, benchPhaseRestore} {
		for _, t := range rep.Tools {
			for _, r := range t.Runs {
				if r.Phase != ph {
					continue
				}
				extra := ""
				if r.PeakGoHeapBytes > 0 {
					extra = fmt.Sprintf(" (heap %s)", formatBytes(r.PeakGoHeapBytes))
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%.2fs\t%.1f\t%.2fs\t%.2fs\t%s%s\t%s\t%s\n", ph, t.Name, r.Kind, r.WallSeconds, r.ThroughputMBs,
					r.CPUSeconds, r.ServerCPUSeconds, formatBytes(r.PeakRSSBytes), extra, formatBytes(r.StoredBytes), formatBytes(r.TotalBytes))
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "PHASE\tRATIO\tWALL\tCPU (tool+server)\tPEAK RSS\tSTORED")
	for _, r := range rep.Ratios {
		fmt.Fprintf(w, "%s\tpgvault / %s\t%.2f\t%.2f\t%.2f\t%.2f\n", r.Phase, r.Peer, r.Wall, r.CPU, r.PeakRSS, r.Stored)
	}
	fmt.Fprintln(w)
	for _, t := range rep.Tools {
		v := t.Version
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "%s (%s): %s", t.Name, v, t.Command)
		if t.Note != "" {
			fmt.Fprintf(w, "; %s", t.Note)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "CPU: user+sys of the tool's process and the children it waited for (pgvault: this process, getrusage);"+
		" SERVER CPU: the PostgreSQL backends that served it. PEAK RSS: of the child and its children, sampled every 10 ms, or their VmHWM (pgvault: this process's VmHWM, reset before each backup)."+
		" STORED: bytes the backup added (du -b); TOTAL: the tool's whole output; for restore both are the restored directory's size.")
	if err := w.Flush(); err != nil {
		return fmt.Errorf("while writing the report: %w", err)
	}
	return nil
}
