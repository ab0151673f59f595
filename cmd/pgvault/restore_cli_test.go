package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/testserver"
	"github.com/pgvault/pgvault/internal/vault"
)

// tableSums are checksums of the test tables and large objects of db.
func tableSums(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	return c.QueryString(t, `SELECT (SELECT count(*) || ' ' || md5(string_agg(x::text, ',' ORDER BY id)) FROM t x) || ' / ' ||
		(SELECT count(*) || ' ' || md5(string_agg(x::text, ',' ORDER BY id)) FROM t_extra x) || ' / ' ||
		(SELECT count(*) || ' ' || coalesce(md5(string_agg(md5(lo_get(oid)), ',' ORDER BY oid)), '') FROM pg_largeobject_metadata)`)
}

// TestOfflineRestoreAfterMetadataLoss: a server with jobs backs up a
// cluster with an extra tablespace; the server goes and its metadata
// database is deleted; `pgvault restore list` and `restore run`, given only
// the repository directory and the master key file, list the backup and
// restore it (the tablespace moved); the restored cluster starts with the
// data as it was at backup time. Also: tar format, a non-empty target, bad
// flags.
func TestOfflineRestoreAfterMetadataLoss(t *testing.T) {
	t.Parallel()
	cluster := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"autovacuum": "off"}})
	tsDir := pgtest.TempDir(t)
	cluster.Exec(t, "CREATE TABLESPACE extra LOCATION '"+tsDir+"'")
	cluster.Exec(t, `CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v, g * 1.5 AS n, now() AS ts FROM generate_series(1, 100000) g;
		CREATE TABLE t_extra TABLESPACE extra AS SELECT g AS id, repeat(md5(g::text), 20) AS v FROM generate_series(1, 20000) g;
		SELECT lo_from_bytea(0, decode(repeat(md5('x'), 5000), 'hex'));`)
	want := tableSums(t, cluster)
	tsOID := cluster.QueryString(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'extra'")

	ts := startServer(t, testserver.Options{Jobs: true})
	c := cliFor(t, ts, nil)
	protectWithCLI(c, cluster)
	c.ok(args([]string{"backup", "start", "bi1"}, backupTarget)...)
	cluster.Exec(t, "INSERT INTO t SELECT g, 'after' FROM generate_series(100001, 100100) g; DELETE FROM t_extra WHERE id < 100")

	// The server and its metadata are gone.
	ts.Close()
	dbFiles, _ := filepath.Glob(filepath.Join(ts.DataDir, "pgvault.db*"))
	if len(dbFiles) == 0 {
		t.Fatalf("no metadata database in %s", ts.DataDir)
	}
	for _, f := range dbFiles {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	repoDir := job.RepositoryPath(filepath.Join(ts.DataDir, "repositories"), vault.VaultID(testSub, "rg", "vault1"))
	keyFile := filepath.Join(ts.DataDir, "keys", "repository.key")

	// list: the key found next to the repository.
	rows := tableRows(c.ok("restore", "list", "--repo", repoDir).stdout)
	if len(rows) != 2 || strings.Join(rows[0], " ") != "SNAPSHOT TIME SERVER VERSION SIZE START LSN END LSN" || rows[1][2] != "bi1" || !strings.HasPrefix(rows[1][3], "15.") {
		t.Fatalf("restore list: %v", rows)
	}
	snaps := jsonOf[[]restoreSnapshotView](t, c.ok("restore", "list", "--repo", "file://"+repoDir, "--key-file", keyFile, "-o", "json"))
	if len(snaps) != 1 || snaps[0].ID[:16] != rows[1][0] || snaps[0].Meta[engine.MetaTablespaceOIDs] != tsOID || snaps[0].Tablespaces != tsOID+"="+tsDir {
		t.Fatalf("restore list -o json: %+v", snaps)
	}
	c.fails("is not a repository but holds "+repoDir, "restore", "list", "--repo", ts.DataDir)

	// run: into a new data directory, the tablespace moved.
	root := pgtest.TempDir(t)
	dataDir, spaceDir := filepath.Join(root, "data"), filepath.Join(root, "ts")
	run := []string{"restore", "run", "--repo", repoDir, "--key-file", keyFile, "--data-dir", dataDir, "--tablespace", tsOID + "=" + spaceDir}
	r := c.ok(append(run, "--snapshot", snaps[0].ID[:8])...)
	if !strings.HasPrefix(r.stdout, "Restored snapshot "+snaps[0].ID+" into "+dataDir+": ") || !strings.Contains(r.stderr, "Restoring snapshot "+snaps[0].ID) ||
		!strings.Contains(r.stderr, "(100%)") {
		t.Errorf("restore run: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	c.fails("the restore target is not empty: "+dataDir, append(run, "--snapshot", "latest")...)
	restored := pgtest.StartExisting(t, dataDir, pgtest.Options{Settings: map[string]string{"autovacuum": "off"}})
	if got := tableSums(t, restored); got != want {
		t.Errorf("restored %q, want %q (the source at backup time)", got, want)
	}
	if loc := restored.QueryString(t, "SELECT pg_tablespace_location("+tsOID+")"); loc != spaceDir {
		t.Errorf("the tablespace is at %q, want %q", loc, spaceDir)
	}

	// tar: pg_basebackup -Ft's files.
	tarDir := filepath.Join(t.TempDir(), "tar")
	c.ok("restore", "run", "--repo", repoDir, "--snapshot", "latest", "--data-dir", tarDir, "--format", "tar")
	entries, err := os.ReadDir(tarDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if err != nil || !slices.Equal(names, []string{tsOID + ".tar", "backup_manifest", "base.tar"}) {
		t.Errorf("--format tar wrote %q (%v)", names, err)
	}

	bad := []string{"restore", "run", "--repo", repoDir, "--data-dir", filepath.Join(t.TempDir(), "x")}
	c.fails(`invalid --snapshot "zz": give "latest" or at least 4 hex digits`, append(bad, "--snapshot", "zz")...)
	c.fails("no snapshot's ID starts with 0000", append(bad, "--snapshot", strings.Repeat("0", 4))...)
	c.fails(`invalid --tablespace "16400": give OID=DIRECTORY`, append(bad, "--snapshot", "latest", "--tablespace", "16400")...)
	c.fails(`the backup has no tablespace with OID "1"`, append(bad, "--snapshot", "latest", "--tablespace", "1=/tmp/x")...)
	c.fails(`invalid --format "zip"`, append(bad, "--snapshot", "latest", "--format", "zip")...)
	c.fails("not s3://", "restore", "list", "--repo", "s3://bucket/x")
	c.fails("no --key-file given, and no key at ", "restore", "list", "--repo", t.TempDir())
}

// FuzzTablespaceFlags: --tablespace parsing never panics, and what it
// accepts is a valid OID mapped to a non-empty directory.
func FuzzTablespaceFlags(f *testing.F) {
	for _, s := range []string{"16400=/srv/ts", "=", "0=/x", "16400", "1=a=b", "99999999999=/x", "+1=/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseTablespaceFlags([]string{s})
		if err != nil {
			return
		}
		for oid, dir := range m {
			if oid == "" || oid[0] == '0' || strings.Trim(oid, "0123456789") != "" || dir == "" {
				t.Fatalf("%q accepted as %q=%q", s, oid, dir)
			}
		}
	})
}

// FuzzResolveSnapshot: snapshot selection never panics; what it returns is
// the latest or the one snapshot whose ID has the prefix.
func FuzzResolveSnapshot(f *testing.F) {
	ids := []string{"ab12" + strings.Repeat("0", 60), "ab13" + strings.Repeat("1", 60), "cd" + strings.Repeat("2", 62)}
	var snaps []*repo.Snapshot
	for _, s := range ids {
		id, err := repo.ParseID(s)
		if err != nil {
			f.Fatal(err)
		}
		snaps = append(snaps, &repo.Snapshot{ID: id})
	}
	for _, s := range []string{"latest", "ab1", "ab12", "AB13", "cd22", "zzzz", "", ids[0], ids[0] + "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		s, err := resolveSnapshot(snaps, arg)
		if err != nil {
			return
		}
		a := strings.ToLower(strings.TrimSpace(arg))
		if a != "latest" && (!strings.HasPrefix(s.ID.String(), a) || len(a) < 4) {
			t.Fatalf("%q chose %s", arg, s.ID)
		}
	})
}
