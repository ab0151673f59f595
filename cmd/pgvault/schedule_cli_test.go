package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/vault"
)

// TestTwoServersOneSchedule: two `pgvault serve` processes (nodes a and b)
// share one data directory, so one SQLite store and one repository, and
// tick the scheduler every 50 ms. A policy's due time a few seconds ahead
// makes exactly one scheduled backup job, queued by one of the two, run by
// one, and one recovery point; restarting a node does not queue it again.
// `instance show` prints the next scheduled backup and the retention.
func TestTwoServersOneSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes: not in -short mode")
	}
	t.Parallel()
	cluster := pgtest.Start(t, pgtest.Options{})
	dataDir := filepath.Join(t.TempDir(), "data")
	flags := []string{"--schedule-interval", "50ms"}
	a := startServeProcess(t, dataDir, append(flags, "--node", "a")...)
	b := startServeProcess(t, dataDir, append(flags, "--node", "b")...)
	c := &cli{t: t, env: map[string]string{"HOME": t.TempDir(), "PGVAULT_DATA_DIR": dataDir, "PGVAULT_SUBSCRIPTION": testSub}}

	// Due in 10 s: time to protect the server first (a due time before the
	// instance existed is never backed up).
	due := time.Now().UTC().Add(10 * time.Second).Truncate(time.Second)
	sub := testSub
	c.ok("group", "create", "rg", "-l", "westeurope")
	c.okIn(cluster.SuperPassword+"\n", "server", "register", "db1", "-g", "rg", "-l", "westeurope", "--host", cluster.Host,
		"--port", strconv.Itoa(cluster.Port), "--login", cluster.SuperUser, "--sslmode", "disable", "--password-stdin")
	c.ok("vault", "create", "vault1", "-g", "rg", "-l", "westeurope")
	c.ok("policy", "create", "pol1", "-g", "rg", "--vault", "vault1", "--schedule", "R/"+due.Format(time.RFC3339)+"/P1D",
		"--retention", "Default=P7D", "--retention", "Weekly=P12W")
	grant := []string{"role", "assignment", "create", "--assignee-vault", "vault1", "-g", "rg"}
	c.ok(append(grant, "--role", roleLtrBackup, "--scope", vault.ServerID(sub, "rg", "db1"))...)
	c.ok(append(grant, "--role", roleReader, "--scope", vault.ResourceGroupID(sub, "rg"))...)
	c.ok(append([]string{"instance", "create", "bi1", "--server", "db1", "--policy", "pol1"}, backupTarget...)...)
	if time.Now().After(due) {
		t.Fatalf("protecting the server took until after the due time %s: give it more time", due)
	}
	show := c.ok(args([]string{"instance", "show", "bi1"}, backupTarget)...).stdout
	if !strings.Contains(show, "Next scheduled backup: "+due.Format(time.RFC3339)) || !strings.Contains(show, "Weekly") {
		t.Errorf("instance show before the backup:\n%s", show)
	}

	var jobs []backupJobJSON
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		jobs = jsonOf[[]backupJobJSON](t, c.ok(args([]string{"job", "list", "-o", "json"}, backupTarget)...))
		if len(jobs) > 0 && jobs[0].Properties.Status != "InProgress" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled backup ended: %+v", jobs)
		}
	}
	// Both nodes keep ticking past the due time; restart one: still one job.
	b.stop(t)
	b2 := startServeProcess(t, dataDir, append(flags, "--node", "b", "--log-level", "debug")...)
	// Ten ticks of the restarted node, all past the due time.
	for deadline := time.Now().Add(time.Minute); strings.Count(b2.logs.String(), `"msg":"schedule tick"`) < 10; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted node did not tick ten times:\n%s", b2.logs.String())
		}
	}
	jobs = jsonOf[[]backupJobJSON](t, c.ok(args([]string{"job", "list", "-o", "json"}, backupTarget)...))
	if len(jobs) != 1 || jobs[0].Properties.Status != "Completed" || jobs[0].Properties.Operation != "ScheduledBackup" || jobs[0].Properties.IsUserTriggered {
		t.Fatalf("jobs after the due time: %+v", jobs)
	}
	rps := jsonOf[[]recoveryPointJSON](t, c.ok(args([]string{"recovery-point", "list", "bi1", "-o", "json"}, backupTarget)...))
	if len(rps) != 1 || rps[0].Properties.Pgvault.JobID != jobs[0].Name || rps[0].Properties.RetentionTagName != "Weekly" {
		t.Fatalf("recovery points: %+v; want one, the week's first (Weekly), of job %s", rps, jobs[0].Name)
	}
	queued := 0
	for _, p := range []*serveProcess{a, b, b2} {
		queued += strings.Count(p.logs.String(), `"msg":"queued a scheduled backup"`)
	}
	if queued != 1 {
		t.Errorf("the nodes logged %d queued scheduled backups, want 1", queued)
	}
	show = c.ok(args([]string{"instance", "show", "bi1"}, backupTarget)...).stdout
	if !strings.Contains(show, "Next scheduled backup: "+due.AddDate(0, 0, 1).Format(time.RFC3339)) {
		t.Errorf("instance show after the backup:\n%s", show)
	}
	t.Logf("instance show:\n%s", show)
}

// TestServeScheduleFlags: bad values of the scheduling flags and their
// environment variables stop serve before it opens anything.
func TestServeScheduleFlags(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{args: []string{"--schedule-interval", "-1s"}, want: "invalid --schedule-interval -1s: give 0 (never) or a positive duration"},
		{env: map[string]string{"PGVAULT_SCHEDULE_INTERVAL": "often"}, want: `invalid PGVAULT_SCHEDULE_INTERVAL "often": give a duration such as 30s`},
		{env: map[string]string{"PGVAULT_PRUNE_INTERVAL": "-5m"}, want: "invalid --prune-interval -5m0s"},
		{args: []string{"--max-concurrent-backups", "0"}, want: "invalid --max-concurrent-backups 0: give at least 1"},
		{env: map[string]string{"PGVAULT_MAX_CONCURRENT_BACKUPS": "two"}, want: `invalid PGVAULT_MAX_CONCURRENT_BACKUPS "two"`},
		{args: []string{"--node", "a/b"}, want: `invalid --node "a/b": use 1 to 64 letters, digits`},
		{env: map[string]string{"PGVAULT_NODE": strings.Repeat("n", 65)}, want: "invalid --node"},
	} {
		env := map[string]string{"HOME": t.TempDir()}
		for k, v := range tc.env {
			env[k] = v
		}
		c := &cli{t: t, env: env}
		c.fails(tc.want, append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0"}, tc.args...)...)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("a refused serve made its data directory: %v", err)
	}
}
