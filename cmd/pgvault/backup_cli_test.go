package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/secretbox"
	"github.com/pgvault/pgvault/internal/testserver"
	"github.com/pgvault/pgvault/internal/vault"
)

// backupTarget names the vault of protectWithCLI.
var backupTarget = []string{"--vault", "vault1", "-g", "rg"}

// protectWithCLI protects the cluster with CLI commands, as the README
// shows: group rg, server db1 registered, vault vault1 with policy pol1,
// the vault identity's two roles, backup instance bi1.
func protectWithCLI(c *cli, cluster *pgtest.Cluster) {
	c.t.Helper()
	sub := c.env["PGVAULT_SUBSCRIPTION"]
	c.ok("group", "create", "rg", "-l", "westeurope")
	c.okIn(cluster.SuperPassword+"\n", "server", "register", "db1", "-g", "rg", "-l", "westeurope", "--host", cluster.Host,
		"--port", strconv.Itoa(cluster.Port), "--login", cluster.SuperUser, "--sslmode", "disable", "--password-stdin")
	c.ok("vault", "create", "vault1", "-g", "rg", "-l", "westeurope")
	c.ok("policy", "create", "pol1", "-g", "rg", "--vault", "vault1", "--schedule", weekly, "--retention", "Default=P3M")
	grant := []string{"role", "assignment", "create", "--assignee-vault", "vault1", "-g", "rg"}
	c.ok(append(grant, "--role", roleLtrBackup, "--scope", vault.ServerID(sub, "rg", "db1"))...)
	c.ok(append(grant, "--role", roleReader, "--scope", vault.ResourceGroupID(sub, "rg"))...)
	c.ok(append([]string{"instance", "create", "bi1", "--server", "db1", "--policy", "pol1"}, backupTarget...)...)
}

// args joins argument lists.
func args(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// backupJobJSON holds what tests read of a backup job.
type backupJobJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		Status          string `json:"status"`
		Operation       string `json:"operation"`
		IsUserTriggered bool   `json:"isUserTriggered"`
		ErrorDetails    []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errorDetails"`
		ExtendedInfo struct {
			AdditionalDetails      map[string]string `json:"additionalDetails"`
			DataTransferredInBytes float64           `json:"dataTransferredInBytes"`
		} `json:"extendedInfo"`
	} `json:"properties"`
}

// recoveryPointJSON holds what tests read of a recovery point.
type recoveryPointJSON struct {
	Name       string `json:"name"`
	Properties struct {
		ObjectType        string    `json:"objectType"`
		RetentionTagName  string    `json:"retentionTagName"`
		RecoveryPointTime time.Time `json:"recoveryPointTime"`
		Pgvault           struct {
			SnapshotID string `json:"snapshotId"`
			JobID      string `json:"jobId"`
			DataBytes  int64  `json:"dataBytes"`
			EndLSN     string `json:"endLsn"`
		} `json:"pgvault"`
	} `json:"properties"`
}

// completedLine is the first line `backup start` prints for a completed job.
var completedLine = regexp.MustCompile(`^Backup job ([0-9a-f-]{36}) completed in [^ ]+: [0-9.]+ [KMG]?i?B backed up, [0-9.]+ [KMG]?i?B new in the vault\.$`)

// TestBackupCLI: on-demand backups, jobs and recovery points through the
// CLI against a server that runs backups, and the offline repository
// commands on its data directory.
func TestBackupCLI(t *testing.T) {
	t.Parallel()
	cluster := pgtest.Start(t, pgtest.Options{})
	cluster.Exec(t, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g")
	ts := startServer(t, testserver.Options{Jobs: true})
	c := cliFor(t, ts, nil)
	recordAll(t, c, cluster.SuperPassword)
	protectWithCLI(c, cluster)

	// Start a backup and follow it: the outcome, then the recovery point.
	r := c.ok(args([]string{"backup", "start", "bi1"}, backupTarget)...)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	m := completedLine.FindStringSubmatch(lines[0])
	if m == nil || len(lines) != 7 || !strings.HasPrefix(lines[1], "NAME ") || !strings.HasPrefix(lines[3], "Snapshot: ") ||
		!strings.HasPrefix(lines[4], "WAL: start LSN ") || !strings.HasPrefix(lines[5], "Server: PostgreSQL 15.") {
		t.Fatalf("backup start printed:\n%s", r.stdout)
	}
	jobName := m[1]
	if lines[6] != "Job: "+jobName {
		t.Errorf("backup start: %q, want the job %s", lines[6], jobName)
	}
	if !strings.Contains(r.stderr, "waiting for operation ") || !strings.Contains(r.stderr, "following backup job "+jobName+" ...\n") {
		t.Errorf("backup start stderr: %q", r.stderr)
	}
	rpRow := strings.Fields(lines[2])
	if len(rpRow) < 4 || rpRow[2] != "Default" || rpRow[3] != "Completed" {
		t.Errorf("recovery point row: %q", lines[2])
	}
	rpName := rpRow[0]

	// Jobs.
	rows := tableRows(c.ok(args([]string{"job", "list"}, backupTarget)...).stdout)
	if len(rows) != 2 || strings.Join(rows[0], " ") != "NAME OPERATION INSTANCE STATUS START DURATION DATA" ||
		strings.Join(rows[1][:4], " ") != jobName+" OnDemandBackup bi1 Completed" {
		t.Errorf("job list: %v", rows)
	}
	r = c.ok(args([]string{"job", "show", jobName}, backupTarget)...)
	if !strings.Contains(r.stdout, "\nRecovery point: "+rpName+"\n") || strings.Contains(r.stdout, "Error:") {
		t.Errorf("job show:\n%s", r.stdout)
	}
	j := jsonOf[backupJobJSON](t, c.ok(args([]string{"job", "show", jobName, "-o", "json"}, backupTarget)...))
	if j.Properties.Status != "Completed" || !j.Properties.IsUserTriggered || j.Properties.ExtendedInfo.AdditionalDetails["RecoveryPointId"] != rpName ||
		j.Properties.ExtendedInfo.DataTransferredInBytes < 10<<20 {
		t.Errorf("job show -o json: %+v", j)
	}
	// The job's ARM ID works too.
	c.ok(args([]string{"job", "show", j.ID}, backupTarget)...)
	c.fails("Error: ResourceNotFound: The job '00000000-0000-4000-8000-000000000000' was not found",
		args([]string{"job", "show", "00000000-0000-4000-8000-000000000000"}, backupTarget)...)

	// Recovery points.
	rows = tableRows(c.ok(args([]string{"recovery-point", "list", "bi1"}, backupTarget)...).stdout)
	if len(rows) != 2 || strings.Join(rows[0], " ") != "NAME TIME RETENTION TAG STATE SIZE STORED" || rows[1][0] != rpName {
		t.Errorf("recovery-point list: %v", rows)
	}
	rps := jsonOf[[]recoveryPointJSON](t, c.ok(args([]string{"recovery-point", "list", "bi1", "-o", "json"}, backupTarget)...))
	if len(rps) != 1 || rps[0].Properties.Pgvault.JobID != jobName || rps[0].Properties.ObjectType != "AzureBackupDiscreteRecoveryPoint" {
		t.Errorf("recovery-point list -o json: %+v", rps)
	}
	if r := c.ok(args([]string{"rp", "show", "bi1", rpName}, backupTarget)...); !strings.HasSuffix(r.stdout, "\nJob: "+jobName+"\n") {
		t.Errorf("recovery-point show:\n%s", r.stdout)
	}

	// JSON, with the rule and the tag given.
	out := jsonOf[struct {
		Job           backupJobJSON     `json:"job"`
		RecoveryPoint recoveryPointJSON `json:"recoveryPoint"`
	}](t, c.ok(args([]string{"backup", "start", "bi1", "--rule", "BackupWeekly", "--retention-tag", "Default", "-o", "json"}, backupTarget)...))
	if out.Job.Properties.Status != "Completed" || out.RecoveryPoint.Properties.Pgvault.JobID != out.Job.Name || out.RecoveryPoint.Name == rpName {
		t.Errorf("backup start -o json: %+v", out)
	}

	// --no-wait: the queued job, and the command that follows it.
	r = c.ok(args([]string{"backup", "start", "bi1", "--no-wait"}, backupTarget)...)
	hint := regexp.MustCompile(`not following backup job ([0-9a-f-]{36}); see it with: (pgvault job show .*)\n`).FindStringSubmatch(r.stderr)
	if hint == nil || tableRows(r.stdout)[1][0] != hint[1] || hint[2] != "pgvault job show "+hint[1]+" --vault vault1 -g rg" {
		t.Fatalf("backup start --no-wait: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		j := jsonOf[backupJobJSON](t, c.ok(append(shellWords(hint[2])[1:], "-o", "json")...))
		if j.Properties.Status == "Completed" {
			break
		}
		if j.Properties.Status != "InProgress" || time.Now().After(deadline) {
			t.Fatalf("the --no-wait job: %+v", j.Properties)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// What the server refuses.
	c.fails("Error: UserErrorBackupRuleNotFound: The policy 'pol1' has no backup rule named 'Nope'.",
		args([]string{"backup", "start", "bi1", "--rule", "Nope"}, backupTarget)...)
	c.fails("Error: UserErrorRetentionTagNotFound: The policy 'pol1' has no retention rule 'Yearly'.",
		args([]string{"backup", "start", "bi1", "--retention-tag", "Yearly"}, backupTarget)...)
	c.fails("Error: ResourceNotFound: ", args([]string{"backup", "start", "nope"}, backupTarget)...)

	// The repository, offline.
	repoArgs := []string{"--vault", "vault1", "-g", "rg", "--data-dir", ts.DataDir}
	r = c.ok(args([]string{"repo", "check", "--read-data"}, repoArgs)...)
	if !strings.HasSuffix(r.stdout, "\nNo problem found.\n") || !regexp.MustCompile(`\nsnapshots +3\n`).MatchString(r.stdout) ||
		!regexp.MustCompile(`\nbytes read +[1-9][0-9]* \(`).MatchString(r.stdout) {
		t.Errorf("repo check --read-data:\n%s", r.stdout)
	}
	rep := jsonOf[checkReportView](t, c.ok(args([]string{"repo", "check", "--sample", "0.5", "-o", "json"}, repoArgs)...))
	if !rep.OK || rep.Snapshots != 3 || rep.Packs == 0 || rep.Blobs == 0 || len(rep.Problems) != 0 ||
		rep.VaultID != vault.VaultID(testSub, "rg", "vault1") || rep.Directory != job.RepositoryPath(filepath.Join(ts.DataDir, "repositories"), rep.VaultID) {
		t.Errorf("repo check -o json: %+v", rep)
	}
	snaps := jsonOf[[]snapshotView](t, c.ok(args([]string{"repo", "snapshots", "-o", "json"}, repoArgs)...))
	if len(snaps) != 3 || snaps[0].Job != jobName || snaps[0].ID != rps[0].Properties.Pgvault.SnapshotID ||
		snaps[0].EndLSN == "" || snaps[0].Bytes != rps[0].Properties.Pgvault.DataBytes || snaps[1].NewBytes >= snaps[0].NewBytes {
		t.Errorf("repo snapshots -o json: %+v", snaps)
	}
	rows = tableRows(c.ok(args([]string{"repo", "snapshots"}, repoArgs)...).stdout)
	if len(rows) != 4 || strings.Join(rows[0], " ") != "SNAPSHOT TIME SIZE NEW START LSN END LSN JOB" || rows[1][0] != snaps[0].ID[:16] || rows[1][len(rows[1])-1] != jobName {
		t.Errorf("repo snapshots: %v", rows)
	}
	// Prune: the repository holds nothing to reclaim (every snapshot has
	// its recovery point, and every pack is younger than the margin).
	pr := jsonOf[pruneReportView](t, c.ok(args([]string{"repo", "prune", "--dry-run", "-o", "json"}, repoArgs)...))
	if !pr.DryRun || pr.Marked || pr.Snapshots != 3 || pr.LiveBytes == 0 || pr.PacksKept != rep.Packs {
		t.Errorf("repo prune --dry-run -o json: %+v", pr)
	}
	if r := c.ok(args([]string{"repo", "prune"}, repoArgs)...); !strings.HasSuffix(r.stdout, "\nStep: none.\n") || !regexp.MustCompile(`\nlive snapshots +3 +- *\n`).MatchString(r.stdout) {
		t.Errorf("repo prune:\n%s", r.stdout)
	}
	c.fails("Error: backup vault 'nope' (resource group 'rg', subscription "+testSub+") has no repository in "+ts.DataDir,
		"repo", "check", "--vault", "nope", "-g", "rg", "--data-dir", ts.DataDir)
	c.fails("Error: while looking for the repository master key (give the server's --repository-key-file): ",
		args([]string{"repo", "check", "--repository-key-file", filepath.Join(t.TempDir(), "none")}, repoArgs)...)
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if _, err := secretbox.LoadOrCreateKey(otherKey); err != nil {
		t.Fatal(err)
	}
	c.fails("is not the one its backups were made with", args([]string{"repo", "snapshots", "--repository-key-file", otherKey}, repoArgs)...)
	c.fails("invalid --sample 2: give a fraction between 0 and 1", args([]string{"repo", "check", "--sample", "2"}, repoArgs)...)

	// A flipped byte in an index object: check reports it, repair-index
	// rebuilds the index from the packs' headers, and check passes again.
	indexFiles, err := filepath.Glob(filepath.Join(rep.Directory, "index", "[0-9a-f]*"))
	if err != nil || len(indexFiles) == 0 {
		t.Fatalf("no index object in %s (%v)", rep.Directory, err)
	}
	flipByte(t, indexFiles[0])
	c.fails("Error: the repository of backup vault 'vault1' is damaged: 1 problem, 0 snapshots cannot be fully restored", args([]string{"repo", "check"}, repoArgs)...)
	rr := jsonOf[repairReportView](t, c.ok(args([]string{"repo", "repair-index", "--dry-run", "-o", "json"}, repoArgs)...))
	if !rr.DryRun || len(rr.DamagedIndexes) != 1 || len(rr.PacksIndexed) == 0 || rr.Blobs == 0 || rr.IndexesWritten != 0 || rr.Packs != rep.Packs {
		t.Errorf("repo repair-index --dry-run -o json: %+v", rr)
	}
	r = c.ok(args([]string{"repo", "repair-index"}, repoArgs)...)
	if !regexp.MustCompile(`\nRepaired: [1-9][0-9]* packs? indexed, 1 damaged index object deleted\.\n$`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "\nDamaged: index/") {
		t.Errorf("repo repair-index:\n%s", r.stdout)
	}
	c.ok(args([]string{"repo", "check", "--read-data"}, repoArgs)...)
	if r := c.ok(args([]string{"repo", "repair-index"}, repoArgs)...); !strings.HasSuffix(r.stdout, "\nThe index is whole: nothing to repair.\n") {
		t.Errorf("repo repair-index of a whole index:\n%s", r.stdout)
	}

	// A flipped byte in a pack: the structure still checks, reading the
	// data does not, and the command says which snapshots are hurt.
	flipByte(t, largestPack(t, rep.Directory))
	c.ok(args([]string{"repo", "check"}, repoArgs)...)
	r = c.fails("Error: the repository of backup vault 'vault1' is damaged: ", args([]string{"repo", "check", "--read-data"}, repoArgs)...)
	if !strings.Contains(r.stdout, "\nProblems (") || !strings.Contains(r.stdout, "\nDamaged snapshots (") || strings.Contains(r.stdout, "No problem found.") {
		t.Errorf("repo check of a damaged repository:\n%s", r.stdout)
	}
	rep = jsonOf[checkReportView](t, c.run(args([]string{"repo", "check", "--read-data", "-o", "json"}, repoArgs)...))
	if rep.OK || len(rep.Problems) == 0 || len(rep.DamagedSnapshots) == 0 {
		t.Errorf("repo check -o json of a damaged repository: %+v", rep)
	}
}

// largestPack returns the path of the largest pack of a repository directory.
func largestPack(t *testing.T, dir string) string {
	t.Helper()
	var best string
	var size int64
	err := filepath.Walk(filepath.Join(dir, "packs"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(fi.Name(), ".") && fi.Size() > size {
			best, size = p, fi.Size()
		}
		return err
	})
	if err != nil || best == "" {
		t.Fatalf("no pack in %s (%v)", dir, err)
	}
	return best
}

// flipByte flips a bit of the middle byte of a file.
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFollowJobOnTerminal: `backup start` redraws one progress line with
// the bytes transferred of the total while the job runs, clears it, and
// reports a failed job as its error.
func TestFollowJobOnTerminal(t *testing.T) {
	saved := stderrIsTerminal
	stderrIsTerminal = func(io.Writer) bool { return true }
	t.Cleanup(func() { stderrIsTerminal = saved })
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := polls.Add(1)
		status, ext, errs := "InProgress", fmt.Sprintf(`{"dataTransferredInBytes":%d,"additionalDetails":{"Phase":"Transferring","BytesTotal":"%d"}}`, n*300<<20, 1<<30), `[]`
		if n == 3 {
			status, errs = "Failed", `[{"code":"WorkerLost","message":"The pgvault process running this job stopped."}]`
		}
		fmt.Fprintf(w, `{"id":"/x/backupJobs/j1","name":"j1","properties":{"status":%q,"operation":"OnDemandBackup","extendedInfo":%s,"errorDetails":%s}}`, status, ext, errs)
	}))
	t.Cleanup(srv.Close)
	var stderr, stdout bytes.Buffer
	c := &clientCmd{e: &env{stderr: &stderr, stdout: &stdout}, output: outputTable}
	saveInterval := jobPollInterval
	jobPollInterval = time.Millisecond
	t.Cleanup(func() { jobPollInterval = saveInterval })
	j, raw, err := c.followJob(context.Background(), client.New(srv.URL, nil), "/x/backupJobs/j1", "backup", "j1")
	if err != nil {
		t.Fatal(err)
	}
	want := "\r\x1b[K| backup job j1: Transferring 300.0 MiB of 1.0 GiB (29%), 0s" +
		"\r\x1b[K/ backup job j1: Transferring 600.0 MiB of 1.0 GiB (58%), 0s\r\x1b[K"
	if stderr.String() != want {
		t.Errorf("stderr = %q\nwant     %q", stderr.String(), want)
	}
	err = c.jobOutcome(context.Background(), nil, policyTarget{}, "bi1", j, raw)
	if err == nil || err.Error() != "backup job j1 ended Failed: WorkerLost: The pgvault process running this job stopped." {
		t.Errorf("outcome: %v", err)
	}
	if rows := tableRows(stdout.String()); len(rows) != 2 || rows[1][0] != "j1" || rows[1][3] != "Failed" {
		t.Errorf("stdout = %q", stdout.String())
	}
}

func TestServerVersion(t *testing.T) {
	for in, want := range map[string]string{"150018": "15.18", "170000": "17.0", "90624": "90624", "": "", "x": "x"} {
		if got := serverVersion(in); got != want {
			t.Errorf("serverVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB", 1 << 40: "1.0 TiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
