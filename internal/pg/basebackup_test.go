package pg_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/pgtest"
)

// pg15Bin holds Debian's PostgreSQL 15 client tools (pg_verifybackup, pgbench).
const pg15Bin = "/usr/lib/postgresql/15/bin"

func TestBaseBackup15(t *testing.T) {
	t.Parallel()
	testBaseBackupRoundTrip(t, 15)
}

func TestBaseBackup17(t *testing.T) {
	t.Parallel()
	testBaseBackupRoundTrip(t, 17)
}

// TestBaseBackupOtherMajors runs the round trip on the majors other than 15 and 17 that
// PGVAULT_TEST_PG_MAJORS names (e.g. "13 14", installed by scripts/test): the legacy
// framing of PostgreSQL 13 and 14 lives there.
func TestBaseBackupOtherMajors(t *testing.T) {
	majors := strings.Fields(os.Getenv("PGVAULT_TEST_PG_MAJORS"))
	ran := false
	for _, m := range majors {
		major, err := strconv.Atoi(m)
		if err != nil || major == 15 || major == 17 {
			continue
		}
		ran = true
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			testBaseBackupRoundTrip(t, major)
		})
	}
	if !ran {
		t.Skip("PGVAULT_TEST_PG_MAJORS names no major besides 15 and 17")
	}
}

// backupResult is what a test's archive function saw.
type backupResult struct {
	dir      string   // where the archives were written
	order    []string // archive names in the order received
	spaces   map[string]pg.Tablespace
	progress [][2]int64
}

// fileArchives returns an archive function that writes every archive to a file in dir.
// before, if set, runs when an archive starts, before any of it is read.
func fileArchives(t *testing.T, dir string, res *backupResult, before func(name string)) func(string, pg.Tablespace, io.Reader) error {
	res.dir = dir
	res.spaces = map[string]pg.Tablespace{}
	return func(name string, ts pg.Tablespace, r io.Reader) error {
		res.order = append(res.order, name)
		res.spaces[name] = ts
		if before != nil {
			before(name)
		}
		if !filepath.IsLocal(name) || strings.ContainsRune(name, '/') {
			return fmt.Errorf("bad archive name %q", name)
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
	}
}

// testBaseBackupRoundTrip backs up a cluster with an extra tablespace while it is being
// written to, checks the archives (tar structure, manifest checksums, WAL), restores
// them (the tablespace relocated through tablespace_map) and compares table checksums.
func testBaseBackupRoundTrip(t *testing.T, major int) {
	src := pgtest.Start(t, pgtest.Options{Major: major})
	tsDir := pgtest.TempDir(t)
	src.Exec(t, "CREATE TABLESPACE extra LOCATION '"+tsDir+"'")
	src.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
		CREATE TABLE t2 (id int PRIMARY KEY, v text) TABLESPACE extra;
		INSERT INTO t2 SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g;`)
	src.CreateRole(t, "backup", backupPW, "LOGIN REPLICATION")
	tsOID := src.QueryString(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'extra'")

	var res backupResult
	const label = "pgvault test's backup"
	wrote := false
	archive := fileArchives(t, t.TempDir(), &res, func(name string) {
		if !wrote { // while the backup runs: WAL replay must bring this in
			wrote = true
			src.Exec(t, `INSERT INTO t SELECT g, md5(g::text) FROM generate_series(50001, 51000) g;
				UPDATE t2 SET v = 'changed during the backup' WHERE id % 100 = 0;`)
		}
	})
	opts := pg.BaseBackupOptions{Label: label, Fast: true, Progress: func(done, total int64) {
		res.progress = append(res.progress, [2]int64{done, total})
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	info, err := pg.BaseBackup(ctx, conn(src, "backup", backupPW), opts, archive)
	if err != nil {
		t.Fatalf("BaseBackup: %v", err)
	}
	elapsed := time.Since(start)
	wantT := tableSum(t, src, "t")
	wantT2 := tableSum(t, src, "t2")
	// After the backup: must not be in the restored cluster.
	src.Exec(t, "INSERT INTO t SELECT g, 'after' FROM generate_series(60001, 60010) g")
	t.Logf("PostgreSQL %d: %d bytes in %s; info %+v", major, info.Bytes, elapsed.Round(time.Millisecond), *info)

	// What BaseBackup reports.
	if want := src.QueryString(t, "SELECT system_identifier FROM pg_control_system()"); info.SystemIdentifier != want {
		t.Errorf("SystemIdentifier = %q, want %q", info.SystemIdentifier, want)
	}
	if want := src.QueryString(t, "SHOW server_version_num"); strconv.Itoa(info.ServerVersion) != want {
		t.Errorf("ServerVersion = %d, want %s", info.ServerVersion, want)
	}
	startLSN, err1 := pglogrepl.ParseLSN(info.StartLSN)
	endLSN, err2 := pglogrepl.ParseLSN(info.EndLSN)
	if err1 != nil || err2 != nil || startLSN == 0 || endLSN <= startLSN {
		t.Errorf("StartLSN %q, EndLSN %q: want start < end", info.StartLSN, info.EndLSN)
	}
	if info.Timeline != 1 || info.EndTimeline != 1 {
		t.Errorf("Timeline %d, EndTimeline %d; want 1", info.Timeline, info.EndTimeline)
	}
	wantOrder := []string{tsOID + ".tar", pg.BaseArchiveName, pg.ManifestName}
	if !slices.Equal(res.order, wantOrder) {
		t.Errorf("archives %q, want %q", res.order, wantOrder)
	}
	if len(info.Tablespaces) != 2 {
		t.Fatalf("Tablespaces = %+v, want the extra one and the main data directory", info.Tablespaces)
	}
	extra, main := info.Tablespaces[0], info.Tablespaces[1]
	if strconv.FormatUint(uint64(extra.OID), 10) != tsOID || extra.Location != tsDir || extra.Size <= 0 {
		t.Errorf("extra tablespace %+v, want OID %s at %s with a size", extra, tsOID, tsDir)
	}
	if main.OID != 0 || main.Location != "" || main.Size <= extra.Size {
		t.Errorf("main tablespace %+v, want OID 0, no location, the larger size", main)
	}
	if res.spaces[tsOID+".tar"] != extra || res.spaces[pg.BaseArchiveName] != main || res.spaces[pg.ManifestName] != (pg.Tablespace{}) {
		t.Errorf("tablespaces passed to archive: %+v", res.spaces)
	}
	var onDisk int64
	for _, name := range res.order {
		fi, err := os.Stat(filepath.Join(res.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		onDisk += fi.Size()
	}
	if info.Bytes != onDisk {
		t.Errorf("Bytes = %d, the files hold %d", info.Bytes, onDisk)
	}
	checkProgress(t, res.progress, onDisk, info)

	checkArchives(t, res.dir, info, major, label, tsOID, tsDir)

	// Restore: base.tar into a data directory, the tablespace somewhere else, which
	// tablespace_map tells the server.
	restore := pgtest.TempDir(t)
	dataDir, tsNew := filepath.Join(restore, "data"), filepath.Join(restore, "ts")
	pgtest.ExtractTar(t, filepath.Join(res.dir, pg.BaseArchiveName), dataDir)
	pgtest.ExtractTar(t, filepath.Join(res.dir, tsOID+".tar"), tsNew)
	link := filepath.Join(dataDir, "pg_tblspc", tsOID)
	if target, err := os.Readlink(link); err == nil {
		t.Logf("base.tar links pg_tblspc/%s to %s", tsOID, target)
		_ = os.Remove(link)
	}
	if err := os.Symlink(tsNew, link); err != nil { // for pg_verifybackup; the server remakes it from tablespace_map
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(res.dir, pg.ManifestName), filepath.Join(dataDir, pg.ManifestName))
	verifyBackup(t, dataDir, major)
	if err := os.WriteFile(filepath.Join(dataDir, "tablespace_map"), []byte(tsOID+" "+tsNew+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	dst := pgtest.StartExisting(t, dataDir, pgtest.Options{Major: major})
	if got := tableSum(t, dst, "t"); got != wantT {
		t.Errorf("restored t: checksum %s, source at backup time %s (rows %s)", got, wantT, dst.QueryString(t, "SELECT count(*) FROM t"))
	}
	if got := tableSum(t, dst, "t2"); got != wantT2 {
		t.Errorf("restored t2 (extra tablespace): checksum %s, source at backup time %s", got, wantT2)
	}
	if got := dst.QueryString(t, "SELECT count(*) FROM t WHERE id > 50000"); got != "1000" {
		t.Errorf("restored t has %s rows written during the backup, want 1000", got)
	}
	if got := dst.QueryString(t, "SELECT pg_tablespace_location("+tsOID+")"); got != tsNew {
		t.Errorf("restored tablespace at %q, want %q", got, tsNew)
	}
}

// tableSum is a checksum of a table's contents.
func tableSum(t *testing.T, c *pgtest.Cluster, table string) string {
	t.Helper()
	return c.QueryString(t, "SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM "+table+" x")
}

// checkProgress: calls at least at the end of each tar archive, done growing to the
// bytes of the tar archives, total the sum of the tablespaces' sizes.
func checkProgress(t *testing.T, calls [][2]int64, onDisk int64, info *pg.BaseBackupInfo) {
	t.Helper()
	var total int64
	for _, ts := range info.Tablespaces {
		total += ts.Size
	}
	if len(calls) < len(info.Tablespaces) {
		t.Fatalf("progress calls %v, want at least one per tablespace", calls)
	}
	for i, c := range calls {
		if c[1] != total || (i > 0 && c[0] < calls[i-1][0]) {
			t.Errorf("progress call %d = %v; want growing done and total %d", i, c, total)
		}
	}
	manifest := onDisk - calls[len(calls)-1][0]
	if manifest <= 0 || manifest > 1<<20 {
		t.Errorf("last progress %v: want all tar bytes (%d in all, manifest included)", calls[len(calls)-1], onDisk)
	}
}

// tarEntry is one entry of a tar archive.
type tarEntry struct {
	typ    byte
	size   int64
	sha256 string
	link   string
	data   []byte // small files only
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readTar reads a tar archive and checks it ends with exactly one end-of-archive
// marker (two zero blocks) after the last entry, as a complete tar file must.
func readTar(t *testing.T, path string) map[string]tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	fi, _ := f.Stat()
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	entries := map[string]tarEntry{}
	var endOfData int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		h := sha256.New()
		var small bytes.Buffer
		w := io.Writer(h)
		if hdr.Size <= 64<<10 {
			w = io.MultiWriter(h, &small)
		}
		if _, err := io.Copy(w, tr); err != nil {
			t.Fatalf("%s: %s: %v", path, hdr.Name, err)
		}
		endOfData = cr.n
		name := strings.TrimSuffix(hdr.Name, "/")
		if _, dup := entries[name]; dup {
			t.Errorf("%s: %s twice", path, name)
		}
		entries[name] = tarEntry{typ: hdr.Typeflag, size: hdr.Size, sha256: hex.EncodeToString(h.Sum(nil)), link: hdr.Linkname, data: small.Bytes()}
	}
	padded := (endOfData + 511) / 512 * 512
	if fi.Size()-padded != 1024 {
		t.Errorf("%s: %d bytes after the last entry (ends at %d), want the 1024-byte end-of-archive marker", path, fi.Size()-padded, padded)
	}
	return entries
}

// checkArchives checks the tar structure, the manifest against the archives (as
// pg_verifybackup would, minus WAL parsing) and the WAL segments in base.tar.
func checkArchives(t *testing.T, dir string, info *pg.BaseBackupInfo, major int, label, tsOID, tsDir string) {
	t.Helper()
	base := readTar(t, filepath.Join(dir, pg.BaseArchiveName))
	extra := readTar(t, filepath.Join(dir, tsOID+".tar"))

	if e := base["PG_VERSION"]; strings.TrimSpace(string(e.data)) != strconv.Itoa(major) {
		t.Errorf("base.tar PG_VERSION = %q, want %d", e.data, major)
	}
	if e, ok := base["global/pg_control"]; !ok || e.size != 8192 {
		t.Errorf("base.tar has no 8 kB global/pg_control: %+v", e)
	}
	bl := string(base["backup_label"].data)
	if !strings.Contains(bl, "LABEL: "+label+"\n") || !strings.Contains(bl, "START WAL LOCATION: "+info.StartLSN+" ") {
		t.Errorf("backup_label = %q, want label %q and start %s", bl, label, info.StartLSN)
	}
	if got, want := string(base["tablespace_map"].data), tsOID+" "+tsDir+"\n"; got != want {
		t.Errorf("tablespace_map = %q, want %q", got, want)
	}
	if e, ok := base["pg_tblspc/"+tsOID]; ok {
		t.Logf("base.tar has pg_tblspc/%s: type %q -> %q", tsOID, e.typ, e.link)
	}
	// The WAL from the start segment to the end segment.
	start, _ := pglogrepl.ParseLSN(info.StartLSN)
	end, _ := pglogrepl.ParseLSN(info.EndLSN)
	const segSize = 16 << 20
	var segs []string
	for seg := uint64(start) / segSize; seg <= (uint64(end)-1)/segSize; seg++ {
		name := fmt.Sprintf("pg_wal/%08X%08X%08X", info.Timeline, seg/(0x100000000/segSize), seg%(0x100000000/segSize))
		segs = append(segs, name)
		if e, ok := base[name]; !ok || e.size != segSize {
			t.Errorf("base.tar lacks WAL segment %s (or it is not %d bytes): %+v", name, segSize, e.size)
		}
	}
	t.Logf("base.tar: %d entries, WAL %v; %s.tar: %d entries", len(base), segs, tsOID, len(extra))

	raw, err := os.ReadFile(filepath.Join(dir, pg.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pg.ParseManifest(raw) // verifies the manifest's own checksum
	if err != nil {
		t.Fatalf("backup_manifest: %v", err)
	}
	if m.Version >= 2 && m.SystemIdentifier != info.SystemIdentifier {
		t.Errorf("manifest System-Identifier %s, want %s", m.SystemIdentifier, info.SystemIdentifier)
	}
	if want := (pg.WALRange{Timeline: info.Timeline, Start: info.StartLSN, End: info.EndLSN}); len(m.WALRanges) != 1 || m.WALRanges[0] != want {
		t.Errorf("manifest WAL-Ranges %+v, want %+v", m.WALRanges, want)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		path := f.Path
		listed[path] = true
		e, ok := base[path]
		if rest, cut := strings.CutPrefix(path, "pg_tblspc/"+tsOID+"/"); cut {
			e, ok = extra[rest]
		}
		switch {
		case !ok:
			t.Errorf("manifest lists %s, which no archive holds", path)
		case f.Algorithm != "SHA256" || e.size != f.Size || e.sha256 != f.Checksum:
			t.Errorf("%s: archive %d bytes sha256 %s; manifest %d bytes %s %s", path, e.size, e.sha256, f.Size, f.Algorithm, f.Checksum)
		}
	}
	for name, e := range base {
		if e.typ == tar.TypeReg && !listed[name] && !strings.HasPrefix(name, "pg_wal/") {
			t.Errorf("base.tar holds %s, which the manifest does not list", name)
		}
	}
	for name, e := range extra {
		if e.typ == tar.TypeReg && !listed["pg_tblspc/"+tsOID+"/"+name] {
			t.Errorf("%s.tar holds %s, which the manifest does not list", tsOID, name)
		}
	}
	if len(m.Files) < 100 {
		t.Errorf("manifest lists only %d files", len(m.Files))
	}
}

// verifyBackup runs Debian's pg_verifybackup (PostgreSQL 15) on a restored data
// directory when it can read the backup: a PostgreSQL 15 backup fully, an older one
// without WAL parsing (pg_waldump 15 cannot read older WAL), a newer one not at all.
func verifyBackup(t *testing.T, dataDir string, major int) {
	t.Helper()
	tool := filepath.Join(pg15Bin, "pg_verifybackup")
	if major > 15 {
		t.Logf("no pg_verifybackup for PostgreSQL %d here: the manifest was checked in Go only", major)
		return
	}
	if _, err := os.Stat(tool); err != nil {
		t.Fatalf("pg_verifybackup: %v (install postgresql-15)", err)
	}
	args := []string{dataDir}
	if major < 15 {
		args = []string{"--no-parse-wal", dataDir}
	}
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_verifybackup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("pg_verifybackup %s: %s", strings.Join(args, " "), bytes.TrimSpace(out))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// walSenders is the number of WAL senders running on c.
func walSenders(t *testing.T, c *pgtest.Cluster) int {
	n, err := strconv.Atoi(c.QueryString(t, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitNoWalSender waits until c runs no WAL sender.
func waitNoWalSender(t *testing.T, c *pgtest.Cluster) time.Duration {
	t.Helper()
	start := time.Now()
	for walSenders(t, c) > 0 {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("a WAL sender is still running 30 s after the backup ended:\n%s",
				c.QueryString(t, "SELECT string_agg(pid || ' ' || state || ' ' || coalesce(query, ''), E'\\n') FROM pg_stat_activity WHERE backend_type = 'walsender'"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestBaseBackupCancel: ctx ending mid-stream, an archive function failing or stopping
// early, and the errors of a refused replication connection; after each, the WAL sender
// (the only one: max_wal_senders = 1) is free for the next backup.
func TestBaseBackupCancel(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_wal_senders": "1"}})
	c.Exec(t, `CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g`)
	c.CreateRole(t, "backup", backupPW, "LOGIN REPLICATION")
	c.CreateRole(t, "norepl", "Norepl-Secret-8", "LOGIN")
	bc := conn(c, "backup", backupPW)

	// ctx cancelled while BaseBackup waits for throttled data (1 MB/s).
	t.Run("ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var cancelled time.Time
		var read int64
		_, err := pg.BaseBackup(ctx, bc, pg.BaseBackupOptions{Fast: true, MaxRate: 1024},
			func(name string, _ pg.Tablespace, r io.Reader) error {
				buf := make([]byte, 32<<10)
				for {
					n, err := r.Read(buf)
					read += int64(n)
					if read > 2<<20 && cancelled.IsZero() {
						if walSenders(t, c) != 1 {
							t.Errorf("no WAL sender while the backup runs")
						}
						cancelled = time.Now()
						cancel()
					}
					if err == io.EOF {
						return nil
					}
					if err != nil {
						return err
					}
				}
			})
		took := time.Since(cancelled)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		assertNoPassword(t, err, backupPW)
		freed := waitNoWalSender(t, c)
		t.Logf("cancelled after %d bytes; BaseBackup returned %s later: %v; WAL sender gone %s after that", read, took.Round(time.Millisecond), err, freed.Round(time.Millisecond))
		if took > 10*time.Second {
			t.Errorf("BaseBackup returned %s after the cancel", took)
		}
		// The server ended the backup on the cancel request, not on a broken connection.
		if log := c.Log(); !strings.Contains(log, "canceling statement due to user request") {
			t.Errorf("the server log does not show the cancelled BASE_BACKUP:\n%s", log)
		}
	})

	// ctx ending while the server still spreads the checkpoint that starts the backup.
	t.Run("ctx during the checkpoint", func(t *testing.T) {
		c.Exec(t, "UPDATE filler SET v = upper(v)") // dirty buffers: a spread checkpoint takes minutes
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := pg.BaseBackup(ctx, bc, pg.BaseBackupOptions{}, func(name string, _ pg.Tablespace, r io.Reader) error {
			t.Errorf("archive %s started before the cancel", name)
			return nil
		})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "checkpoint") {
			t.Fatalf("err = %v, want the ctx's deadline while starting", err)
		}
		t.Logf("returned after %s: %v", time.Since(start).Round(time.Millisecond), err)
		waitNoWalSender(t, c)
	})

	t.Run("archive error", func(t *testing.T) {
		boom := errors.New("disk full")
		_, err := pg.BaseBackup(testCtx(t), bc, pg.BaseBackupOptions{Fast: true}, func(name string, _ pg.Tablespace, r io.Reader) error {
			if _, err := io.CopyN(io.Discard, r, 100000); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "base.tar") {
			t.Fatalf("err = %v, want the archive function's error naming the archive", err)
		}
		t.Logf("%v", err)
		waitNoWalSender(t, c)
	})

	t.Run("archive stops early", func(t *testing.T) {
		_, err := pg.BaseBackup(testCtx(t), bc, pg.BaseBackupOptions{Fast: true}, func(name string, _ pg.Tablespace, r io.Reader) error {
			_, err := io.CopyN(io.Discard, r, 1000)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "before reading the archive to its end") {
			t.Fatalf("err = %v, want the archive function's early return", err)
		}
		waitNoWalSender(t, c)
	})

	t.Run("no free WAL sender", func(t *testing.T) {
		rc := replicationConn(t, c) // holds the only WAL sender
		_, err := pg.BaseBackup(testCtx(t), bc, pg.BaseBackupOptions{Fast: true}, discardArchives)
		wantCode(t, err, pg.CodeNoFreeWalSender, backupPW)
		_ = rc.Close(context.Background())
		waitNoWalSender(t, c)
	})

	t.Run("no replication privilege", func(t *testing.T) {
		_, err := pg.BaseBackup(testCtx(t), conn(c, "norepl", "Norepl-Secret-8"), pg.BaseBackupOptions{Fast: true}, discardArchives)
		wantCode(t, err, pg.CodeInsufficientReplicationPrivilege, "Norepl-Secret-8")
	})

	t.Run("wrong password", func(t *testing.T) {
		_, err := pg.BaseBackup(testCtx(t), conn(c, "backup", "Wrong-Secret-1"), pg.BaseBackupOptions{Fast: true}, discardArchives)
		wantCode(t, err, pg.CodeServerAuthenticationFailed, "Wrong-Secret-1")
	})

	t.Run("bad options", func(t *testing.T) {
		for _, o := range []pg.BaseBackupOptions{{MaxRate: 10}, {MaxRate: 2 << 20}, {Label: "a\nb"}, {Label: strings.Repeat("x", 1025)}, {ManifestChecksums: "SHA256'), (X"}, {ManifestChecksums: "MD5"}} {
			if _, err := pg.BaseBackup(testCtx(t), bc, o, discardArchives); err == nil {
				t.Errorf("%+v: no error", o)
			}
		}
	})

	// And the WAL sender is free: a whole backup works.
	t.Run("again", func(t *testing.T) {
		info, err := pg.BaseBackup(testCtx(t), bc, pg.BaseBackupOptions{Fast: true, NoWAL: true, NoManifest: true}, discardArchives)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Tablespaces) != 1 || info.Bytes < 10<<20 {
			t.Errorf("info %+v", info)
		}
	})
}

// discardArchives reads every archive to its end.
func discardArchives(_ string, _ pg.Tablespace, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func TestBaseBackupCommand(t *testing.T) {
	for _, tc := range []struct {
		major int
		opts  pg.BaseBackupOptions
		want  string
	}{
		{15, pg.BaseBackupOptions{}, "BASE_BACKUP (LABEL 'pgvault base backup', WAL, WAIT 0, TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256')"},
		{17, pg.BaseBackupOptions{Label: "it's", Fast: true, MaxRate: 100, Progress: func(int64, int64) {}},
			"BASE_BACKUP (LABEL 'it''s', PROGRESS, CHECKPOINT 'fast', WAL, WAIT 0, MAX_RATE 100, TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256')"},
		{15, pg.BaseBackupOptions{NoWAL: true, NoManifest: true}, "BASE_BACKUP (LABEL 'pgvault base backup', TABLESPACE_MAP)"},
		{13, pg.BaseBackupOptions{}, "BASE_BACKUP LABEL 'pgvault base backup' WAL NOWAIT TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'SHA256'"},
		{15, pg.BaseBackupOptions{ManifestChecksums: pg.ChecksumCRC32C}, "BASE_BACKUP (LABEL 'pgvault base backup', WAL, WAIT 0, TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')"},
		{14, pg.BaseBackupOptions{ManifestChecksums: pg.ChecksumCRC32C}, "BASE_BACKUP LABEL 'pgvault base backup' WAL NOWAIT TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'"},
		{14, pg.BaseBackupOptions{Label: `a\b'`, Fast: true, MaxRate: 32, Progress: func(int64, int64) {}, NoManifest: true},
			`BASE_BACKUP LABEL 'a\b''' PROGRESS FAST WAL NOWAIT MAX_RATE 32 TABLESPACE_MAP`},
	} {
		if got := pg.BaseBackupCommand(tc.major, tc.opts); got != tc.want {
			t.Errorf("PostgreSQL %d, %+v:\n got %s\nwant %s", tc.major, tc.opts, got, tc.want)
		}
	}
}
