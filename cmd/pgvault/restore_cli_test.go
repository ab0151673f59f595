package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/testserver"
)

// TestRecoveryPointRestoreCLI restores with `pgvault recovery-point
// restore`: as files into an allowed directory, and as a new server left
// stopped (registered Stopped); refusals come back as the server's errors.
func TestRecoveryPointRestoreCLI(t *testing.T) {
	t.Parallel()
	cluster := pgtest.Start(t, pgtest.Options{})
	cluster.Exec(t, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g")
	allowed := pgtest.TempDir(t)
	ts := startServer(t, testserver.Options{Jobs: true, RestoreDirs: []string{allowed}})
	c := cliFor(t, ts, nil)
	protectWithCLI(c, cluster)
	c.ok(args([]string{"backup", "start", "bi1"}, backupTarget)...)
	rpName := tableRows(c.ok(args([]string{"recovery-point", "list", "bi1"}, backupTarget)...).stdout)[1][0]

	r := c.ok(args([]string{"recovery-point", "restore", "bi1", rpName, "--to-directory", filepath.Join(allowed, "files"), "--file-prefix", "rp1"}, backupTarget)...)
	m := regexp.MustCompile(`^Restore job ([0-9a-f-]{36}) completed in \S+: [0-9.]+ MiB written to file://` + regexp.QuoteMeta(filepath.Join(allowed, "files", "rp1")) + ` \(2 files\)\.\n$`).FindStringSubmatch(r.stdout)
	if m == nil || !strings.Contains(r.stderr, "following restore job ") {
		t.Fatalf("restore to a directory: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	entries, _ := os.ReadDir(filepath.Join(allowed, "files", "rp1"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"backup_manifest", "base.tar"}) {
		t.Errorf("restored files %v", names)
	}
	if r := c.ok(args([]string{"job", "show", m[1]}, backupTarget)...); !strings.Contains(r.stdout, "\nRestored to: file://") || !strings.Contains(r.stdout, " Restore ") {
		t.Errorf("job show of the restore:\n%s", r.stdout)
	}

	r = c.ok(args([]string{"recovery-point", "restore", "bi1", rpName, "--new-server", "db1-copy", "--data-dir", filepath.Join(allowed, "db1-copy"), "--port", "5999"}, backupTarget)...)
	if !strings.Contains(r.stdout, "server db1-copy registered") {
		t.Errorf("restore as a new server: %q", r.stdout)
	}
	if r := c.ok("server", "show", "db1-copy", "-g", "rg", "-o", "json"); !strings.Contains(r.stdout, `"state": "Stopped"`) {
		t.Errorf("server show of the restored server:\n%s", r.stdout)
	}

	// The README's grant for blob targets, at a storage account's scope.
	c.ok("role", "assignment", "create", "--assignee-vault", "vault1", "-g", "rg", "--role", "Storage Blob Data Contributor",
		"--scope", "/subscriptions/"+c.env["PGVAULT_SUBSCRIPTION"]+"/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct")
	c.fails("Error: UserErrorRestoreTargetNotAllowed: ", args([]string{"recovery-point", "restore", "bi1", rpName, "--to-directory", t.TempDir(), "--file-prefix", "x"}, backupTarget)...)
	c.fails("UserErrorRestoreTargetAlreadyExists", args([]string{"recovery-point", "restore", "bi1", rpName, "--to-directory", filepath.Join(allowed, "files"), "--file-prefix", "rp1"}, backupTarget)...)
	c.fails("give exactly one of --to-container, --to-directory and --new-server",
		args([]string{"recovery-point", "restore", "bi1", rpName, "--to-directory", allowed, "--new-server", "x", "--file-prefix", "x"}, backupTarget)...)
	if r := c.ok(args([]string{"recovery-point", "restore", "bi1", rpName, "--to-directory", filepath.Join(allowed, "files"), "--file-prefix", "rp2", "--validate-only"}, backupTarget)...); !strings.Contains(r.stdout, "is valid") {
		t.Errorf("--validate-only: %q", r.stdout)
	}
}
