package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/vault"
)

// envRunMain makes the test binary run pgvault's main instead of the tests:
// TestCrashDuringBackup runs `pgvault serve` as a separate process, the one
// it kills, by re-executing the test binary with it set. That needs no Go
// toolchain and no build at test time, and the server runs the very code
// under test, compiled the same way (with -race when the tests have it).
const envRunMain = "PGVAULT_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main() // exits 1 on error
		os.Exit(0)
	}
	jobPollInterval = 100 * time.Millisecond
	os.Exit(m.Run())
}

// serveProcess is `pgvault serve` running as a child process.
type serveProcess struct {
	cmd  *exec.Cmd
	addr string // the logged address, http://127.0.0.1:port
	logs *syncBuffer
	done chan error // receives cmd.Wait's result, once
	err  error      // that result, once received
}

// startServeProcess starts `pgvault serve` in a child process on
// 127.0.0.1:0 with a data directory (and more flags) and waits until it
// serves. The child's environment has no PGVAULT_ variable but envRunMain.
// It is killed, if still running, when the test ends.
func startServeProcess(t *testing.T, dataDir string, flags ...string) *serveProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(exe, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}, flags...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGVAULT_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, envRunMain+"=1")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting pgvault serve: %v", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			p.wait(t)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); p.addr == ""; {
		if !p.running() {
			t.Fatalf("pgvault serve exited before serving: %v\n%s", p.err, p.logs.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgvault serve did not start in time:\n%s", p.logs.String())
		}
		p.addr = servingAddress(p.logs.String())
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// servingAddress returns the address a JSON serve log says it serves on.
func servingAddress(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct{ Msg, Address string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "pgvault serving" {
			return line.Address
		}
	}
	return ""
}

// running reports whether the process has not exited.
func (p *serveProcess) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case p.err = <-p.done:
		p.done = nil
		return false
	default:
		return true
	}
}

// wait waits (at most 30 s) for the process to exit and returns how.
func (p *serveProcess) wait(t *testing.T) error {
	t.Helper()
	if p.done == nil {
		return p.err
	}
	select {
	case p.err = <-p.done:
		p.done = nil
	case <-time.After(30 * time.Second):
		t.Fatalf("pgvault serve (pid %d) did not exit", p.cmd.Process.Pid)
	}
	return p.err
}

// kill sends SIGKILL: the process dies on the spot, as in a power cut of
// the process (the machine and its page cache survive).
func (p *serveProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing pgvault serve: %v", err)
	}
	var ee *exec.ExitError
	if err := p.wait(t); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("pgvault serve ended with %v, not killed", err)
	}
}

// stop sends SIGTERM and checks that the process shut down cleanly.
func (p *serveProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stopping pgvault serve: %v", err)
	}
	if err := p.wait(t); err != nil || !strings.Contains(p.logs.String(), `"msg":"stopped"`) {
		t.Errorf("pgvault serve stopped with %v:\n%s", err, p.logs.String())
	}
}

// fillDatabase gives the cluster a table of rows of 128 random hex digits,
// about 170 bytes a row on disk, which compress to about half: a backup of
// it stores a pack (16 MiB) for every 32 MB or so it reads. The rows are
// made here and sent with COPY, much faster than the server makes them.
func fillDatabase(t *testing.T, c *pgtest.Cluster, rows int) {
	t.Helper()
	ctx := context.Background()
	conn := c.Connect(t)
	if _, err := conn.Exec(ctx, "CREATE TABLE filler (id int, v text)"); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	var raw [64]byte
	n := 0
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{"filler"}, []string{"id", "v"}, pgx.CopyFromFunc(func() ([]any, error) {
		if n == rows {
			return nil, nil
		}
		n++
		for i := 0; i < len(raw); i += 8 {
			binary.LittleEndian.PutUint64(raw[i:], rnd.Uint64())
		}
		return []any{n, hex.EncodeToString(raw[:])}, nil
	}))
	if err != nil || copied != int64(rows) {
		t.Fatalf("filling the database: %d rows, %v", copied, err)
	}
}

// crashRows is the size of TestCrashDuringBackup's table: about 425 MB of
// data, a backup of 5 to 10 seconds on a small machine.
const crashRows = 2_500_000

// TestCrashDuringBackup is the crash-safety test: `pgvault serve` (a real
// process on a real data directory) is killed with SIGKILL in the middle of
// a backup of a real PostgreSQL 15 server, after an earlier backup
// succeeded. Started again on the same data directory it must fail the
// interrupted job at once with WorkerLost (not leave it InProgress, not
// report it Completed), with no recovery point and no snapshot for it; the
// repository, the earlier backup's data and the killed backup's leftovers,
// must pass `repo check --read-data`; and the next backup must succeed and
// leave its recovery point.
func TestCrashDuringBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("a crash test with real processes: not in -short mode")
	}
	t.Parallel()
	begin := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs: %s", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
	}
	cluster := pgtest.Start(t, pgtest.Options{})
	dataDir := filepath.Join(t.TempDir(), "data")
	first := startServeProcess(t, dataDir)
	// The CLI finds the administrator's credentials, with the server's
	// current address, in the data directory.
	c := &cli{t: t, env: map[string]string{"HOME": t.TempDir(), "PGVAULT_DATA_DIR": dataDir, "PGVAULT_SUBSCRIPTION": testSub}}
	protectWithCLI(c, cluster)
	step("server %s (pid %d) protects the cluster", first.addr, first.cmd.Process.Pid)

	// A first backup, of the empty cluster: the data the crash must not hurt.
	r := c.ok(args([]string{"backup", "start", "bi1"}, backupTarget)...)
	m := completedLine.FindStringSubmatch(strings.SplitN(r.stdout, "\n", 2)[0])
	if m == nil {
		t.Fatalf("first backup:\n%s", r.stdout)
	}
	firstJob := m[1]
	step("%s", m[0])
	fillDatabase(t, cluster, crashRows)
	step("%s of data in the cluster", cluster.QueryString(t, "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database"))

	// Start a backup; kill the server as soon as the job is running, has
	// reported a MiB transferred (the first report of PostgreSQL's progress
	// is its first 512 bytes; the next comes a second later), and has stored
	// a pack in the repository.
	repoDir := job.RepositoryPath(filepath.Join(dataDir, "repositories"), vault.VaultID(testSub, "rg", "vault1"))
	packsBefore := len(packFiles(t, repoDir))
	queued := jsonOf[backupJobJSON](t, c.ok(args([]string{"backup", "start", "bi1", "--no-wait", "-o", "json"}, backupTarget)...))
	killed := queued.Name
	started := time.Now()
	var done, total int64
	for deadline := time.Now().Add(2 * time.Minute); ; {
		j := jsonOf[backupJobJSON](t, c.ok(args([]string{"job", "show", killed, "-o", "json"}, backupTarget)...))
		if j.Properties.Status != "InProgress" {
			t.Fatalf("the backup ended %s before it could be killed (%v after it was queued): make the database larger", j.Properties.Status, time.Since(started))
		}
		done = int64(j.Properties.ExtendedInfo.DataTransferredInBytes)
		total, _ = strconv.ParseInt(j.Properties.ExtendedInfo.AdditionalDetails["BytesTotal"], 10, 64)
		if done >= 1<<20 && j.Properties.ExtendedInfo.AdditionalDetails["Phase"] == "Transferring" && len(packFiles(t, repoDir)) > packsBefore {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup stored nothing in time: %+v", j.Properties)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if done >= total {
		t.Fatalf("the backup had transferred %d of %d bytes: it is not in the middle", done, total)
	}
	first.kill(t)
	step("killed the server %v after the backup was queued, at %s of %s (as last reported), with %d new packs stored",
		time.Since(started).Round(time.Millisecond), formatBytes(done), formatBytes(total), len(packFiles(t, repoDir))-packsBefore)
	if strings.Contains(first.logs.String(), `"msg":"job failed"`) {
		t.Fatalf("the job failed before the kill:\n%s", first.logs.String())
	}

	// Start again on the same data directory: the job failed, at once.
	restart := time.Now()
	second := startServeProcess(t, dataDir)
	j := jsonOf[backupJobJSON](t, c.ok(args([]string{"job", "show", killed, "-o", "json"}, backupTarget)...))
	step("restarted in %v; the killed job is %s", time.Since(restart).Round(time.Millisecond), j.Properties.Status)
	if j.Properties.Status != "Failed" || len(j.Properties.ErrorDetails) != 1 || j.Properties.ErrorDetails[0].Code != "WorkerLost" ||
		!strings.Contains(j.Properties.ErrorDetails[0].Message, "no recovery point was made") {
		t.Fatalf("the killed job after the restart: %+v", j.Properties)
	}
	if rp := j.Properties.ExtendedInfo.AdditionalDetails["RecoveryPointId"]; rp != "" {
		t.Errorf("the killed job names recovery point %s", rp)
	}
	if !strings.Contains(second.logs.String(), `"msg":"failed a job left running by a previous process","job":"`+killed+`"`) {
		t.Errorf("the restarted server did not log the orphaned job:\n%s", second.logs.String())
	}
	r = c.ok(args([]string{"job", "show", killed}, backupTarget)...)
	if !strings.Contains(r.stdout, "\nError: WorkerLost: The pgvault process running this job stopped before it finished") {
		t.Errorf("job show of the killed job:\n%s", r.stdout)
	}
	rps := jsonOf[[]recoveryPointJSON](t, c.ok(args([]string{"recovery-point", "list", "bi1", "-o", "json"}, backupTarget)...))
	if len(rps) != 1 || rps[0].Properties.Pgvault.JobID != firstJob {
		t.Fatalf("recovery points after the crash: %+v, want the first backup's only", rps)
	}

	// The repository: the first snapshot only, nothing damaged.
	repoArgs := []string{"--vault", "vault1", "-g", "rg", "--data-dir", dataDir}
	if snaps := jsonOf[[]snapshotView](t, c.ok(args([]string{"repo", "snapshots", "-o", "json"}, repoArgs)...)); len(snaps) != 1 || snaps[0].Job != firstJob {
		t.Fatalf("snapshots after the crash: %+v", snaps)
	}
	r = c.ok(args([]string{"repo", "check", "--read-data"}, repoArgs)...)
	t.Logf("repo check --read-data after the crash:\n%s", r.stdout)
	rep := jsonOf[checkReportView](t, c.ok(args([]string{"repo", "check", "--read-data", "-o", "json"}, repoArgs)...))
	if !rep.OK || rep.Snapshots != 1 || rep.PacksRead == 0 {
		t.Fatalf("repo check after the crash: %+v", rep)
	}
	if len(rep.UnindexedPacks) == 0 {
		t.Errorf("the killed backup left no pack: the crash hit nothing written")
	}
	temps := tempFiles(t, rep.Directory)
	step("the crash left %d packs no index names, %d writer locks and %d temporary files %v", len(rep.UnindexedPacks), rep.Locks, len(temps), temps)

	// The next backup succeeds and leaves its recovery point.
	r = c.ok(args([]string{"backup", "start", "bi1"}, backupTarget)...)
	m = completedLine.FindStringSubmatch(strings.SplitN(r.stdout, "\n", 2)[0])
	if m == nil || m[1] == killed || m[1] == firstJob {
		t.Fatalf("backup after the crash:\n%s", r.stdout)
	}
	step("%s", m[0])
	rps = jsonOf[[]recoveryPointJSON](t, c.ok(args([]string{"recovery-point", "list", "bi1", "-o", "json"}, backupTarget)...))
	if len(rps) != 2 || rps[0].Properties.Pgvault.JobID == killed || rps[1].Properties.Pgvault.JobID == killed {
		t.Fatalf("recovery points after the last backup: %+v", rps)
	}
	rows := tableRows(c.ok(args([]string{"job", "list"}, backupTarget)...).stdout)
	if len(rows) != 4 || rows[1][0] != m[1] || rows[1][3] != "Completed" || rows[2][0] != killed || rows[2][3] != "Failed" ||
		rows[3][0] != firstJob || rows[3][3] != "Completed" {
		t.Errorf("job list: %v", rows)
	}
	rep = jsonOf[checkReportView](t, c.ok(args([]string{"repo", "check", "--read-data", "-o", "json"}, repoArgs)...))
	if !rep.OK || rep.Snapshots != 2 {
		t.Fatalf("repo check after the last backup: %+v", rep)
	}
	snaps := jsonOf[[]snapshotView](t, c.ok(args([]string{"repo", "snapshots", "-o", "json"}, repoArgs)...))
	if len(snaps) != 2 || snaps[0].Job != firstJob || snaps[1].Job != m[1] {
		t.Errorf("snapshots after the last backup: %+v", snaps)
	}
	second.stop(t)
	step("done")
}

// packFiles lists the packs stored in a repository directory.
func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(filepath.Join(dir, "packs"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(fi.Name(), ".") {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tempFiles lists the temporary files (".tmp~...") under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), ".tmp~") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, fmt.Sprintf("%s: %s", rel, formatBytes(fi.Size())))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
