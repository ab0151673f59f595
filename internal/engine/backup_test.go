package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/storage/faulty"
)

func TestBackupRestore15(t *testing.T) {
	t.Parallel()
	testBackupRestore(t, 15)
}

func TestBackupRestore17(t *testing.T) {
	t.Parallel()
	testBackupRestore(t, 17)
}

// quiet are the settings of a cluster whose data must not change behind the
// test's back.
var quiet = map[string]string{"autovacuum": "off"}

// Rows of the main test table; the test keeps the sizes modest so that both
// majors run side by side on two cores.
const (
	kindsRows = 60000
	toastRows = 600
)

// populate fills a cluster: an extra tablespace "extra" at tsDir; databases
// db1 (default tablespace, some relations in extra) and db2 (wholly in
// extra); tables of many data types, TOASTed values, large objects, an
// unlogged table, a materialized view, indexes. The data is then frozen and
// checkpointed so that nothing changes until the test writes again.
func populate(t testing.TB, c *pgtest.Cluster, tsDir string) {
	t.Helper()
	c.Exec(t, "CREATE TABLESPACE extra LOCATION '"+tsDir+"'")
	c.Exec(t, "CREATE DATABASE db1")
	c.Exec(t, "CREATE DATABASE db2 TABLESPACE extra")
	kinds := func(n int) string {
		return fmt.Sprintf(`
		CREATE TABLE kinds (
			id bigint PRIMARY KEY, i2 smallint, i4 int, f4 real, f8 double precision, n numeric(20,6),
			b boolean, t text, vc varchar(40), c char(8), by bytea, d date, ts timestamp, tz timestamptz,
			iv interval, u uuid, j jsonb, js json, arr int[], tarr text[], ip inet, net cidr, mac macaddr,
			rng int4range, pt point, bits bit varying(16), m money, tsv tsvector, nul text
		);
		INSERT INTO kinds SELECT g, (g %% 32767)::smallint, g * 7, g / 3.0, g * 1.0e10 / 7, (g * 1.123456)::numeric(20,6),
			g %% 2 = 0, md5(g::text), 'vc' || g, 'c' || (g %% 1000), decode(md5(g::text), 'hex'),
			date '2000-01-01' + g %% 10000, timestamp '2000-01-01' + g * interval '1 minute',
			timestamptz '2000-01-01 00:00:00+00' + g * interval '1 second', g * interval '1 second',
			md5(g::text)::uuid, jsonb_build_object('g', g, 'a', jsonb_build_array(g, g::text, g %% 3 = 0)),
			json_build_object('k', md5(g::text)), ARRAY[g, g + 1, -g], ARRAY[md5(g::text), 'x'],
			('10.' || (g %% 256) || '.' || (g / 256 %% 256) || '.1')::inet, '10.0.0.0/8',
			('08:00:2b:01:02:' || lpad(to_hex(g %% 256), 2, '0'))::macaddr, int4range(g, g + 10),
			point(g, -g), (g %% 65536)::bit(16)::varbit, (g / 100.0)::numeric::money,
			to_tsvector('simple', 'word' || g || ' other words'), NULL
		FROM generate_series(1, %[1]d) g;
		CREATE INDEX kinds_t ON kinds (t);
		CREATE INDEX kinds_j ON kinds USING gin (j);`, n)
	}
	// TOASTed values: ~20 kB each, compressible and not.
	toast := fmt.Sprintf(`
		CREATE TABLE toasty (id int PRIMARY KEY, big text, raw bytea);
		ALTER TABLE toasty ALTER COLUMN raw SET STORAGE EXTERNAL;
		INSERT INTO toasty SELECT g, repeat(md5(g::text), 600),
			(SELECT string_agg(decode(md5((g * 1000 + i)::text), 'hex'), ''::bytea) FROM generate_series(1, 600) i)
		FROM generate_series(1, %d) g;`, toastRows)
	largeObjects := `
		SELECT lo_from_bytea(0, decode(repeat(md5(g::text), 100 * g), 'hex')) FROM generate_series(1, 20) g;
		SELECT lo_from_bytea(0, (SELECT string_agg(decode(md5(i::text), 'hex'), ''::bytea) FROM generate_series(1, 65536) i));`

	execIn(t, c, "postgres", `CREATE TABLE small (id serial PRIMARY KEY, v text);
		INSERT INTO small (v) SELECT 'row ' || g FROM generate_series(1, 1000) g;
		CREATE UNLOGGED TABLE scratch AS SELECT g AS id FROM generate_series(1, 5000) g;`+largeObjects)
	execIn(t, c, "db1", kinds(kindsRows)+toast+largeObjects+`
		CREATE TABLE in_extra (id int PRIMARY KEY USING INDEX TABLESPACE extra, v text) TABLESPACE extra;
		INSERT INTO in_extra SELECT g, repeat('x', g % 100) FROM generate_series(1, 20000) g;
		CREATE MATERIALIZED VIEW kinds_summary AS SELECT i4 % 100 AS k, count(*), sum(n) FROM kinds GROUP BY 1;
		CREATE SCHEMA "Odd Schema";
		CREATE TABLE "Odd Schema"."Mixed Case" (k text PRIMARY KEY, v numeric);
		INSERT INTO "Odd Schema"."Mixed Case" SELECT 'k' || g, g / 7.0 FROM generate_series(1, 100) g;
		CREATE UNLOGGED TABLE scratch AS SELECT g AS id FROM generate_series(1, 5000) g;`)
	execIn(t, c, "db2", kinds(kindsRows/2)+largeObjects)
	// Freeze: nothing left for hint bits or vacuum to change.
	for _, db := range []string{"postgres", "db1", "db2", "template1"} {
		execIn(t, c, db, "VACUUM (FREEZE, ANALYZE)")
	}
	c.Exec(t, "CHECKPOINT")
}

// testBackupRestore: engine.Backup of a cluster with an extra tablespace and
// several databases into a repository on the filesystem; WriteTarFormat;
// restore as one restores pg_basebackup -Ft's files (the tablespace moved
// through tablespace_map); pg_verifybackup (PostgreSQL 15) or a Go check of
// the manifest; start; every table, large object and pg_class the same as
// the source's when the backup was taken, and rows written after it absent.
// A second backup of the unchanged server stores almost nothing new. Then
// the same backup restored with engine.RestoreDir (checkRestoreDir): on 15
// with the tablespace moved, on 17 back at its original location.
func testBackupRestore(t *testing.T, major int) {
	began := time.Now()
	phase := func(format string, args ...any) {
		t.Logf("[%6.1fs] %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	src := pgtest.Start(t, pgtest.Options{Major: major, Settings: quiet})
	tsDir := pgtest.TempDir(t)
	populate(t, src, tsDir)
	conn := backupConn(t, src)
	tsOID := src.QueryString(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'extra'")
	dbSize := src.QueryString(t, "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database")
	phase("PostgreSQL %d populated: %s in databases, tablespace %s at %s", major, dbSize, tsOID, tsDir)

	want := contentSums(t, src)
	unlogged := queryOne(t, src, "db1", "SELECT count(*) FROM scratch")
	phase("checksums of %d tables, large objects and catalogs taken", len(want))

	r := newRepo(t, fsStorage(t))
	ctx := testContext(t, 10*time.Minute)
	backupStart := time.Now()
	var progress [][2]int64
	res1, err := engine.Backup(ctx, conn, r, engine.BackupOptions{Label: "engine test", Meta: map[string]string{"test": t.Name()},
		Progress: func(done, total int64) { progress = append(progress, [2]int64{done, total}) }})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	s1 := res1.Snapshot
	phase("backup 1: %d bytes from the server in %s; snapshot %s: %+v", res1.Info.Bytes, res1.Info.Duration.Round(time.Millisecond), s1.ID, s1.Stats)
	if len(progress) == 0 || progress[len(progress)-1][0] <= 0 {
		t.Errorf("progress calls %v", progress)
	}

	res2, err := engine.Backup(ctx, conn, r, engine.BackupOptions{Label: "engine test 2"})
	if err != nil {
		t.Fatalf("second Backup: %v", err)
	}
	s2 := res2.Snapshot
	phase("backup 2 of the unchanged server: %d bytes in %s; snapshot %s: %+v", res2.Info.Bytes, res2.Info.Duration.Round(time.Millisecond), s2.ID, s2.Stats)
	ratio := float64(s2.Stats.NewBytes) / float64(s1.Stats.NewBytes)
	t.Logf("dedup: backup 1 stored %d bytes (%d new chunks, %d raw) for %d bytes of files; backup 2 stored %d bytes (%d new chunks, %d raw, %d of %d tree blobs) = %.2f%% of backup 1",
		s1.Stats.NewBytes, s1.Stats.NewChunks, s1.Stats.NewRawBytes, s1.Stats.Bytes,
		s2.Stats.NewBytes, s2.Stats.NewChunks, s2.Stats.NewRawBytes, s2.Stats.NewTree, s2.Stats.TreeBlobs, 100*ratio)
	if ratio >= 0.05 {
		t.Errorf("the second backup of the unchanged server stored %d bytes, %.1f%% of the first's %d (want < 5%%)", s2.Stats.NewBytes, 100*ratio, s1.Stats.NewBytes)
	}

	// What pg_basebackup -Ft writes for the same unchanged server, to compare
	// with what WriteTarFormat rebuilds.
	var pgbbDir string
	if major == 15 {
		pgbbDir = pgBasebackup(t, src)
		phase("pg_basebackup -Ft done")
	}

	// Written after the backups: must not be in the restored cluster.
	execIn(t, src, "db1", fmt.Sprintf("INSERT INTO kinds (id, t) SELECT g, 'after' FROM generate_series(%d, %d) g", kindsRows+1, kindsRows+100))
	execIn(t, src, "postgres", "CREATE TABLE after_backup (id int); SELECT lo_from_bytea(0, 'after')")

	// The snapshot as the repository lists it.
	snaps, err := r.Snapshots(ctx)
	if err != nil || len(snaps) != 2 || snaps[0].ID != s1.ID || snaps[1].ID != s2.ID {
		t.Fatalf("Snapshots = %v, %v; want the two backups", snaps, err)
	}
	m := snaps[0].Meta
	if m[engine.MetaStartLSN] != res1.Info.StartLSN || m[engine.MetaEndLSN] != res1.Info.EndLSN || m[engine.MetaTablespaceOIDs] != tsOID ||
		m[engine.MetaTablespaces] != tsOID+"="+tsDir || m[engine.MetaSystemIdentifier] != res1.Info.SystemIdentifier || m["test"] != t.Name() {
		t.Errorf("snapshot metadata %v", m)
	}
	rep := checkRepo(t, r)
	phase("repository checked: %d snapshots, %d packs, %d blobs, %d bytes read", rep.Snapshots, rep.Packs, rep.Blobs, rep.BytesRead)

	// Rebuild pg_basebackup -Ft's files from the first snapshot.
	out := t.TempDir()
	start := time.Now()
	names := writeTarFormat(t, r, snaps[0], out)
	var total int64
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(out, n))
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	phase("WriteTarFormat: %q, %d bytes in %s (%.0f MB/s)", names, total, time.Since(start).Round(time.Millisecond),
		float64(total)/1e6/time.Since(start).Seconds())
	if wantNames := []string{tsOID + ".tar", pg.BaseArchiveName, pg.ManifestName}; !slices.Equal(names, wantNames) {
		t.Fatalf("WriteTarFormat wrote %q, want %q", names, wantNames)
	}
	base := listTar(t, filepath.Join(out, pg.BaseArchiveName))
	spc := listTar(t, filepath.Join(out, tsOID+".tar"))
	checkTarHeaders(t, major, base, spc, tsOID)
	if pgbbDir != "" {
		compareWithPgBasebackup(t, out, pgbbDir, tsOID, backupStart)
	}

	// Restore and verify.
	res := restoreTarFormat(t, out, []string{tsOID})
	verifyManifest(t, res)
	if major == 15 {
		verifyBackup(t, res.dataDir)
	}
	res.relocateTablespaces(t)
	phase("restored and verified against backup_manifest")
	dst := pgtest.StartExisting(t, res.dataDir, pgtest.Options{Major: major, Settings: quiet})
	phase("restored cluster started (recovery done)")
	checkAsAtBackup(t, dst, want, tsOID, res.spaces[tsOID])
	if n := queryOne(t, dst, "db1", "SELECT count(*) FROM scratch"); n != "0" || unlogged == "0" {
		t.Errorf("unlogged table: %s rows in the source, %s restored (want 0: a restore resets unlogged tables)", unlogged, n)
	}
	if sys := dst.QueryString(t, "SELECT system_identifier FROM pg_control_system()"); sys != res1.Info.SystemIdentifier {
		t.Errorf("restored system identifier %s, want %s", sys, res1.Info.SystemIdentifier)
	}
	phase("restored cluster has the source's %d checksums", len(want))

	checkRestoreDir(t, phase, src, r, s1, tsDir, tsOID, want, major == 15)
}

// checkTarHeaders checks the archives' headers against what PostgreSQL
// writes: owner postgres, directories with a trailing slash, no tablespace
// link in base.tar, the directories the server names with "./".
func checkTarHeaders(t *testing.T, major int, base, spc []tarListing, tsOID string) {
	t.Helper()
	seen := map[string]tarListing{}
	for _, e := range append(slices.Clone(base), spc...) {
		if e.Uname != engine.TarOwner || e.Gname != engine.TarOwner {
			t.Errorf("%s: owner %s:%s", e.Name, e.Uname, e.Gname)
		}
		if (e.Typeflag == '5') != strings.HasSuffix(e.Name, "/") {
			t.Errorf("%s: type %q", e.Name, e.Typeflag)
		}
		if e.ModTime.Before(time.Now().Add(-24*time.Hour)) || e.ModTime.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s: modification time %s", e.Name, e.ModTime)
		}
		if e.Mode&^0o777 != 0 || e.Mode&0o600 != 0o600 {
			t.Errorf("%s: mode %#o", e.Name, e.Mode)
		}
	}
	for _, e := range base {
		seen[e.Name] = e
		if strings.HasPrefix(e.Name, "pg_tblspc/"+tsOID) {
			t.Errorf("base.tar holds %s", e.Name)
		}
	}
	must := []string{"backup_label", "tablespace_map", "PG_VERSION", "global/pg_control", "base/", "pg_wal/", "./pg_wal/archive_status/", "pg_tblspc/"}
	if major >= 17 {
		must = append(must, "./pg_wal/summaries/")
	}
	for _, must := range must {
		if _, ok := seen[must]; !ok {
			t.Errorf("base.tar lacks %s", must)
		}
	}
	if len(spc) < 3 || !strings.HasPrefix(spc[0].Name, "PG_") || spc[0].Typeflag != '5' {
		t.Errorf("%s.tar starts with %+v", tsOID, spc[:min(len(spc), 1)])
	}
	t.Logf("base.tar: %d entries; %s.tar: %d entries", len(base), tsOID, len(spc))
}

// walFiles are the entries of base.tar that name WAL segments, which differ
// from backup to backup.
var walFiles = regexp.MustCompile(`^pg_wal/(archive_status/)?[0-9A-F]{24}(\.done)?$`)

// pgBasebackup runs Debian's pg_basebackup -Ft on c into a new directory.
func pgBasebackup(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg_basebackup")
	cmd := exec.Command(filepath.Join(pg15Bin, "pg_basebackup"), "-D", dir, "-Ft", "-X", "fetch", "-c", "fast",
		"--manifest-checksums=SHA256", "-h", c.Host, "-p", strconv.Itoa(c.Port), "-U", "backup", "-w", "-l", "pg_basebackup")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+backupPW)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	return dir
}

// compareWithPgBasebackup compares WriteTarFormat's archives with those
// pg_basebackup -Ft wrote for a later backup of the same, unchanged server:
// the same entries (but the WAL segments) in the same order, with the same
// types, modes and owner names, and the same sizes and modification times
// for those not touched since our backup started (the checkpoints of the
// backups touch a few, and the server dates backup_label and tablespace_map
// when it makes them).
func compareWithPgBasebackup(t *testing.T, ours, theirs, tsOID string, ourStart time.Time) {
	t.Helper()
	for _, name := range []string{tsOID + ".tar", pg.BaseArchiveName} {
		a := listTar(t, filepath.Join(ours, name))
		b := listTar(t, filepath.Join(theirs, name))
		strip := func(l []tarListing) []tarListing {
			return slices.DeleteFunc(l, func(e tarListing) bool { return walFiles.MatchString(e.Name) })
		}
		a, b = strip(a), strip(b)
		if len(a) != len(b) {
			t.Errorf("%s: %d entries (WAL aside), pg_basebackup's has %d", name, len(a), len(b))
		}
		for i := range min(len(a), len(b)) {
			if a[i].Name != b[i].Name {
				t.Errorf("%s: entry %d is %s, pg_basebackup's is %s", name, i, a[i].Name, b[i].Name)
				break
			}
		}
		if t.Failed() {
			continue
		}
		var differ, touched []string
		for i := range a {
			x, y := a[i], b[i]
			if x.Typeflag != y.Typeflag || x.Mode != y.Mode || x.Linkname != y.Linkname || x.Uname != y.Uname || x.Gname != y.Gname {
				t.Errorf("%s: %s: ours %+v, pg_basebackup's %+v", name, x.Name, x, y)
			}
			if x.SHA256 != y.SHA256 {
				differ = append(differ, x.Name)
			}
			if !y.ModTime.Before(ourStart.Truncate(time.Second)) {
				touched = append(touched, x.Name)
				continue
			}
			if x.SHA256 != y.SHA256 || x.Size != y.Size || !x.ModTime.Equal(y.ModTime) {
				t.Errorf("%s: %s: not touched since our backup, but ours has %d bytes (sha256 %.12s) at %s, pg_basebackup's %d (%.12s) at %s",
					name, x.Name, x.Size, x.SHA256, x.ModTime, y.Size, y.SHA256, y.ModTime)
			}
		}
		t.Logf("%s: %d entries as pg_basebackup -Ft writes them (WAL segments aside); different content: %q; touched since our backup (times not compared): %q",
			name, len(a), differ, touched)
	}
}

// verifyBackup runs Debian's pg_verifybackup (PostgreSQL 15) on a restored
// data directory: every file against backup_manifest, and the WAL.
func verifyBackup(t *testing.T, dataDir string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(pg15Bin, "pg_verifybackup"), dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_verifybackup: %v\n%s", err, out)
	}
	t.Logf("pg_verifybackup: %s", bytes.TrimSpace(out))
}

// TestBackupStorageFault: a storage failure in the middle of a backup (a
// pack, cut off or refused; an index; the snapshot manifest) fails Backup
// with an error that says what failed, commits no snapshot and leaves a
// repository that checks clean; the next backup into it succeeds and can be
// written out whole.
func TestBackupStorageFault(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{Settings: quiet})
	c.Exec(t, `CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g;
		SELECT lo_from_bytea(0, decode(repeat(md5('x'), 20000), 'hex'))`)
	conn := backupConn(t, c)
	for _, tc := range []struct {
		name  string
		fault faulty.Fault
		want  string // in the error
	}{
		{"fifth pack refused", faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("packs/"), After: 4}, "while storing pack"},
		{"third pack cut off", faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("packs/"), After: 2, Midway: true}, "while storing pack"},
		{"index", faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("index/")}, "while storing index"},
		{"snapshot manifest", faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("snapshots/")}, "while storing the snapshot manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := faulty.Wrap(fsStorage(t))
			r := newRepo(t, f)
			f.Inject(tc.fault)
			ctx := testContext(t, 5*time.Minute)
			opts := engine.BackupOptions{Writer: repo.WriterOptions{PackSize: 1 << 20}}
			start := time.Now()
			_, err := engine.Backup(ctx, conn, r, opts)
			if err == nil {
				t.Fatal("Backup succeeded despite the storage fault")
			}
			t.Logf("after %s and %d Puts: %v", time.Since(start).Round(time.Millisecond), f.Calls().Put, err)
			if !errors.Is(err, faulty.ErrInjected) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), backupPW) {
				t.Errorf("err = %v; want faulty.ErrInjected and %q", err, tc.want)
			}
			if calls := f.Calls(); calls.Faults != 1 {
				t.Errorf("%d faults fired, want 1", calls.Faults)
			}
			snaps, err := r.Snapshots(ctx)
			if err != nil || len(snaps) != 0 {
				t.Fatalf("Snapshots after the failed backup = %v, %v; want none", snaps, err)
			}
			rep := checkRepo(t, r)
			if rep.Locks != 0 {
				t.Errorf("%d writer locks left behind", rep.Locks)
			}
			t.Logf("check: %d packs (%d not indexed, for prune), %d index objects", rep.Packs, len(rep.UnindexedPacks), rep.Indexes)

			res, err := engine.Backup(ctx, conn, r, opts)
			if err != nil {
				t.Fatalf("the backup after the failed one: %v", err)
			}
			snaps, err = r.Snapshots(ctx)
			if err != nil || len(snaps) != 1 || snaps[0].ID != res.Snapshot.ID {
				t.Fatalf("Snapshots = %v, %v; want the second backup's", snaps, err)
			}
			checkRepo(t, r)
			out := t.TempDir()
			names := writeTarFormat(t, r, snaps[0], out)
			if !slices.Equal(names, []string{pg.BaseArchiveName, pg.ManifestName}) {
				t.Errorf("WriteTarFormat wrote %q", names)
			}
			verifyManifest(t, restoreTarFormat(t, out, nil))
		})
	}
}

// checkAsAtBackup checks a cluster restored from testBackupRestore's first
// backup: every checksum as the source's at backup time (want), nothing
// written after it, the tablespace tsOID at loc.
func checkAsAtBackup(t *testing.T, dst *pgtest.Cluster, want map[string]string, tsOID, loc string) {
	t.Helper()
	got := contentSums(t, dst)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: restored %q, source at backup time %q", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: in the restored cluster only", k)
		}
	}
	if n := queryOne(t, dst, "db1", fmt.Sprintf("SELECT count(*) FROM kinds WHERE id > %d", kindsRows)); n != "0" {
		t.Errorf("%s rows written after the backup were restored", n)
	}
	if reg := dst.QueryString(t, "SELECT coalesce(to_regclass('after_backup')::text, '')"); reg != "" {
		t.Errorf("a table created after the backup was restored: %s", reg)
	}
	if got := dst.QueryString(t, "SELECT pg_tablespace_location("+tsOID+")"); got != loc {
		t.Errorf("restored tablespace at %q, want %q", got, loc)
	}
}
