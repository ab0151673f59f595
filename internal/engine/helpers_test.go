package engine_test

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/storage"
	fsstorage "github.com/pgvault/pgvault/internal/storage/fs"
)

// pg15Bin holds Debian's PostgreSQL 15 client tools (pg_verifybackup, pgbench,
// pg_basebackup).
const pg15Bin = "/usr/lib/postgresql/15/bin"

const backupPW = "Backup-Secret-7"

// backupConn creates the role "backup" (LOGIN REPLICATION) on c and returns
// how pgvault reaches c as that role.
func backupConn(t testing.TB, c *pgtest.Cluster) pg.Conn {
	t.Helper()
	c.CreateRole(t, "backup", backupPW, "LOGIN REPLICATION")
	return pg.Conn{Host: c.Host, Port: c.Port, User: "backup", Password: backupPW, SSLMode: "disable"}
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newRepo makes a repository with a random master key on st.
func newRepo(t testing.TB, st storage.Storage) *repo.Repo {
	t.Helper()
	key := make([]byte, repo.MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), st, key)
	if err != nil {
		t.Fatalf("repo.Init: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// fsStorage is a filesystem storage in a new temporary directory.
func fsStorage(t testing.TB) *fsstorage.FS {
	t.Helper()
	st, err := fsstorage.Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkRepo runs repo.Check (reading every pack) and fails on any problem.
func checkRepo(t testing.TB, r *repo.Repo) *repo.CheckReport {
	t.Helper()
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Check found problems: %v; damaged snapshots %v", rep.Problems, rep.DamagedSnapshots)
	}
	return rep
}

// connectDB connects to database db of c as the superuser over the unix
// socket (trusted by pgtest's pg_hba.conf).
func connectDB(ctx context.Context, c *pgtest.Cluster, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s sslmode=disable connect_timeout=10", c.SocketDir, c.Port, c.SuperUser))
	if err != nil {
		return nil, err
	}
	cfg.Database = db
	return pgx.ConnectConfig(ctx, cfg)
}

// execIn runs statements (simple protocol) in database db.
func execIn(t testing.TB, c *pgtest.Cluster, db, sql string) {
	t.Helper()
	ctx := testContext(t, 5*time.Minute)
	conn, err := connectDB(ctx, c, db)
	if err != nil {
		t.Fatalf("while connecting to %s: %v", db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("in %s: while running %.200q: %v", db, sql, err)
	}
}

// queryIn returns the first column of every row of a query in database db,
// in PostgreSQL's text form ("" for NULL).
func queryIn(t testing.TB, c *pgtest.Cluster, db, sql string) []string {
	t.Helper()
	ctx := testContext(t, 5*time.Minute)
	conn, err := connectDB(ctx, c, db)
	if err != nil {
		t.Fatalf("while connecting to %s: %v", db, err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("in %s: while running %q: %v", db, sql, err)
	}
	var out []string
	for rows.Next() {
		var s *string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("in %s: %q: %v", db, sql, err)
		}
		if s == nil {
			out = append(out, "")
		} else {
			out = append(out, *s)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("in %s: %q: %v", db, sql, err)
	}
	return out
}

func queryOne(t testing.TB, c *pgtest.Cluster, db, sql string) string {
	t.Helper()
	rows := queryIn(t, c, db, sql)
	if len(rows) != 1 {
		t.Fatalf("in %s: %q returned %d rows, want 1", db, sql, len(rows))
	}
	return rows[0]
}

// contentSums is a checksum of every permanent table and materialized view of
// every database (and of its large objects and its pg_class), keyed
// "db.schema.table". Unlogged tables are left out: a restore empties them.
func contentSums(t testing.TB, c *pgtest.Cluster) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, db := range queryIn(t, c, "postgres", "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1") {
		tables := queryIn(t, c, db, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p'
			  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1`)
		for _, tbl := range tables {
			sums[db+"."+tbl] = queryOne(t, c, db, "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM "+tbl+" x")
		}
		sums[db+".<large objects>"] = queryOne(t, c, db,
			"SELECT count(*) || ' ' || coalesce(md5(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' ORDER BY oid)), '') FROM pg_largeobject_metadata")
		sums[db+".<pg_class>"] = queryOne(t, c, db,
			"SELECT md5(string_agg(oid || ' ' || relname || ' ' || relfilenode || ' ' || reltablespace, ',' ORDER BY oid)) FROM pg_class")
	}
	return sums
}

// writeTarFormat runs engine.WriteTarFormat into files in dir and returns
// their names in the order they were created.
func writeTarFormat(t testing.TB, r *repo.Repo, s *repo.Snapshot, dir string) []string {
	t.Helper()
	var names []string
	err := engine.WriteTarFormat(testContext(t, 10*time.Minute), r, s, func(name string) (io.WriteCloser, error) {
		if !filepath.IsLocal(name) || strings.ContainsRune(name, '/') {
			return nil, fmt.Errorf("bad file name %q", name)
		}
		names = append(names, name)
		return os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	})
	if err != nil {
		t.Fatalf("WriteTarFormat: %v", err)
	}
	return names
}

// restored is a data directory restored from WriteTarFormat's files.
type restored struct {
	dataDir string
	spaces  map[string]string // tablespace OID -> its new location
}

// restoreTarFormat restores the files of WriteTarFormat in dir as one
// restores pg_basebackup -Ft's: base.tar into a new data directory, each
// <oid>.tar into a new location, and backup_manifest into the data directory
// (where pg_verifybackup looks). For pg_verifybackup, pg_tblspc/<oid> links to
// the new location; relocateTablespaces then tells the server.
func restoreTarFormat(t testing.TB, dir string, oids []string) restored {
	t.Helper()
	root := pgtest.TempDir(t)
	res := restored{dataDir: filepath.Join(root, "data"), spaces: map[string]string{}}
	pgtest.ExtractTar(t, filepath.Join(dir, pg.BaseArchiveName), res.dataDir)
	for _, oid := range oids {
		loc := filepath.Join(root, "tablespace-"+oid)
		pgtest.ExtractTar(t, filepath.Join(dir, oid+".tar"), loc)
		res.spaces[oid] = loc
		link := filepath.Join(res.dataDir, "pg_tblspc", oid)
		if _, err := os.Lstat(link); err == nil {
			t.Errorf("base.tar holds pg_tblspc/%s", oid)
			_ = os.RemoveAll(link)
		}
		if err := os.Symlink(loc, link); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, pg.ManifestName)); err == nil {
		b, err := os.ReadFile(filepath.Join(dir, pg.ManifestName))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(res.dataDir, pg.ManifestName), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

// relocateTablespaces writes the tablespaces' new locations into
// tablespace_map, from which the server makes the pg_tblspc links when it
// starts. (The manifest lists the original tablespace_map: verify first.)
func (res restored) relocateTablespaces(t testing.TB) {
	t.Helper()
	if len(res.spaces) == 0 {
		return
	}
	var m strings.Builder
	for oid, loc := range res.spaces {
		fmt.Fprintf(&m, "%s %s\n", oid, loc)
	}
	if err := os.WriteFile(filepath.Join(res.dataDir, "tablespace_map"), []byte(m.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// manifestChecksum is b's checksum as a backup manifest writes it: CRC32C
// (the little-endian bytes of the CRC, as PostgreSQL keeps it in memory) or
// SHA256, in lower-case hex.
func manifestChecksum(t testing.TB, algorithm string, b []byte) string {
	t.Helper()
	switch algorithm {
	case "CRC32C":
		return hex.EncodeToString(binary.LittleEndian.AppendUint32(nil, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
	case "SHA256":
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	t.Fatalf("the manifest uses checksum algorithm %q", algorithm)
	return ""
}

// verifyManifest checks a restored backup against its backup_manifest in Go,
// as pg_verifybackup does minus WAL parsing: the manifest's own checksum,
// every file it lists present with its size and checksum, and no file it
// does not list (but WAL and the files pg_verifybackup ignores too).
func verifyManifest(t testing.TB, res restored) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(res.dataDir, pg.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pg.ParseManifest(raw) // checks the manifest's own checksum
	if err != nil {
		t.Fatalf("backup_manifest: %v", err)
	}
	// Where a manifest path is on disk.
	local := func(p string) string {
		if rest, ok := strings.CutPrefix(p, "pg_tblspc/"); ok {
			oid, sub, _ := strings.Cut(rest, "/")
			if loc, ok := res.spaces[oid]; ok {
				return filepath.Join(loc, filepath.FromSlash(sub))
			}
		}
		return filepath.Join(res.dataDir, filepath.FromSlash(p))
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		p := f.Path
		file := local(p)
		listed[file] = true
		b, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("manifest lists %s: %v", p, err)
			continue
		}
		if sum := manifestChecksum(t, f.Algorithm, b); int64(len(b)) != f.Size || sum != f.Checksum {
			t.Errorf("%s: %d bytes, %s %s; the manifest says %d bytes, %s", p, len(b), f.Algorithm, sum, f.Size, f.Checksum)
		}
	}
	ignored := map[string]bool{"backup_manifest": true, "postgresql.auto.conf": true, "standby.signal": true, "recovery.signal": true}
	roots := []string{res.dataDir}
	for _, loc := range res.spaces {
		roots = append(roots, loc)
	}
	sort.Strings(roots)
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(res.dataDir, p)
			if root == res.dataDir && (rel == "pg_wal" || ignored[rel]) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && !listed[p] {
				t.Errorf("%s is not in the manifest", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(m.Files) < 100 || len(m.WALRanges) != 1 {
		t.Errorf("the manifest lists %d files and WAL ranges %+v", len(m.Files), m.WALRanges)
	}
}

// tarListing is one entry of a tar archive, as the comparisons need it.
type tarListing struct {
	Name     string
	Typeflag byte
	Mode     int64
	Size     int64
	ModTime  time.Time
	Linkname string
	Uname    string
	Gname    string
	SHA256   string
}

// listTar lists an archive's entries in order and checks that it ends with
// exactly the 1024-byte end-of-archive marker.
func listTar(t testing.TB, archive string) []tarListing {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	var out []tarListing
	var end int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			t.Fatalf("%s: %s: %v", archive, h.Name, err)
		}
		end = cr.n
		out = append(out, tarListing{h.Name, h.Typeflag, h.Mode, h.Size, h.ModTime.UTC(), h.Linkname, h.Uname, h.Gname, hex.EncodeToString(sum.Sum(nil))})
	}
	if padded := (end + 511) / 512 * 512; fi.Size()-padded != 1024 {
		t.Errorf("%s: %d bytes after the last entry, want the 1024-byte end-of-archive marker", archive, fi.Size()-padded)
	}
	return out
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
