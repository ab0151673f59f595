package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvault/pgvault/internal/pgtest"
)

func TestStartQueryStopStart(t *testing.T) {
	for _, major := range []int{0, 17} {
		t.Run(map[int]string{0: "default", 17: "17"}[major], func(t *testing.T) {
			t.Parallel()
			c := pgtest.Start(t, pgtest.Options{Major: major})
			want := major
			if want == 0 {
				want = pgtest.DefaultMajor
			}
			if c.Major != want {
				t.Errorf("Major = %d, want %d", c.Major, want)
			}
			if v := c.QueryString(t, "SELECT current_setting('server_version_num')::int / 10000"); v != strconv.Itoa(want) {
				t.Errorf("server major = %s, want %d", v, want)
			}
			for setting, want := range map[string]string{"wal_level": "replica", "fsync": "off", "listen_addresses": "127.0.0.1"} {
				if got := c.QueryString(t, "SELECT current_setting($1)", setting); got != want {
					t.Errorf("%s = %q, want %q", setting, got, want)
				}
			}

			// Over TCP with the superuser's password (scram-sha-256) and with a new role.
			c.CreateRole(t, "alice", "s3cret'pw", "LOGIN REPLICATION")
			c.Exec(t, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
			queryTCP(t, c.SuperDSN(), "SELECT count(*) FROM t", "2")
			queryTCP(t, c.DSN("alice", "s3cret'pw", "postgres"), "SELECT current_user", "alice")
			if _, err := connectTCP(c.DSN("alice", "wrong", "postgres")); err == nil || !strings.Contains(err.Error(), "28P01") {
				t.Errorf("wrong password: err = %v, want SQLSTATE 28P01", err)
			}

			c.Stop(t)
			if _, err := connectTCP(c.SuperDSN()); err == nil {
				t.Fatal("connected to a stopped cluster")
			}
			c.Start(t)
			queryTCP(t, c.SuperDSN(), "SELECT count(*) FROM t", "2")
		})
	}
}

func TestSettingsAndHBA(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{
		Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"},
		HBA:      []string{"host all bob 127.0.0.1/32 reject"},
	})
	if got := c.QueryString(t, "SHOW wal_level"); got != "minimal" {
		t.Errorf("wal_level = %q, want minimal", got)
	}
	c.CreateRole(t, "bob", "pw", "LOGIN")
	if _, err := connectTCP(c.DSN("bob", "pw", "postgres")); err == nil || !strings.Contains(err.Error(), "28000") {
		t.Errorf("rejected role: err = %v, want SQLSTATE 28000", err)
	}
	// Connect works over the unix socket even where TCP lines reject.
	var n int
	if err := c.Connect(t).QueryRow(context.Background(), "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Errorf("query over Connect: %d, %v", n, err)
	}
	// Settings survive a restart.
	c.Restart(t)
	if got := c.QueryString(t, "SHOW max_wal_senders"); got != "0" {
		t.Errorf("max_wal_senders after restart = %q, want 0", got)
	}
}

func TestMissingMajorFails(t *testing.T) {
	t.Setenv(pgtest.EnvPGDir, t.TempDir())
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		pgtest.Start(ft, pgtest.Options{Major: 16})
	}()
	if !strings.Contains(ft.msg, "PostgreSQL 16 is not installed") || !strings.Contains(ft.msg, "npm install") {
		t.Errorf("Fatalf message = %q, want one that names the install command", ft.msg)
	}
}

// fatalRecorder records Fatalf instead of failing the real test, and stops the caller
// with a panic (as FailNow stops a goroutine).
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}

func connectTCP(dsn string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

func queryTCP(t *testing.T, dsn, sql, want string) {
	t.Helper()
	conn, err := connectTCP(dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var got string
	if err := conn.QueryRow(context.Background(), sql, pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if got != want {
		t.Errorf("%s = %q, want %q", sql, got, want)
	}
}

// TestLongTempDirName: a unix socket path is limited to 107 bytes; when t.TempDir is too
// long for it, the socket goes to a short directory that is removed too.
func TestLongTempDirName(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("a-long-directory-name-", 4))
	if err := os.Mkdir(long, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(long), filepath.Dir(filepath.Dir(long))} {
		if err := os.Chmod(d, 0o755); err != nil { // reachable by the postgres user
			t.Fatal(err)
		}
	}
	t.Setenv("GOTMPDIR", long) // where t.TempDir makes its directories
	t.Run("long", func(t *testing.T) {
		var socketDir string
		t.Cleanup(func() { // runs after the cluster's cleanup
			if _, err := os.Stat(socketDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("socket dir %s left behind: %v", socketDir, err)
			}
		})
		c := pgtest.Start(t, pgtest.Options{})
		socketDir = c.SocketDir
		if !strings.HasPrefix(c.DataDir, long) || socketDir == filepath.Dir(c.DataDir) || len(socketDir) > 40 {
			t.Errorf("SocketDir = %s, want a short directory apart from the data dir %s", socketDir, c.DataDir)
		}
		if got := c.QueryString(t, "SELECT 'ok'"); got != "ok" {
			t.Errorf("query = %q", got)
		}
	})
}

// TestStartExisting copies a stopped cluster (data directory and a tablespace, owned by
// root after a plain copy) and starts the copy on a port of its own.
func TestStartExisting(t *testing.T) {
	t.Parallel()
	src := pgtest.Start(t, pgtest.Options{})
	tsDir := pgtest.TempDir(t)
	src.Exec(t, "CREATE TABLESPACE extra LOCATION '"+tsDir+"'")
	src.Exec(t, "CREATE TABLE t (x int) TABLESPACE extra; INSERT INTO t VALUES (1), (2), (3)")
	oid := src.QueryString(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'extra'")
	src.Stop(t)

	dst := pgtest.TempDir(t)
	dataDir, tsCopy := filepath.Join(dst, "data"), filepath.Join(dst, "ts")
	for _, cp := range [][2]string{{src.DataDir, dataDir}, {tsDir, tsCopy}} {
		if out, err := exec.Command("cp", "-r", cp[0], cp[1]).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	link := filepath.Join(dataDir, "pg_tblspc", oid)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(tsCopy, link); err != nil {
		t.Fatal(err)
	}

	c := pgtest.StartExisting(t, dataDir, pgtest.Options{Settings: map[string]string{"work_mem": "7MB"}})
	if c.DataDir != dataDir || c.Major != pgtest.DefaultMajor || c.Port == src.Port {
		t.Errorf("cluster %+v", c)
	}
	if got := c.QueryString(t, "SELECT count(*) FROM t"); got != "3" {
		t.Errorf("count = %s, want 3", got)
	}
	if got := c.QueryString(t, "SELECT pg_tablespace_location("+oid+")"); got != tsCopy {
		t.Errorf("tablespace at %q, want %q", got, tsCopy)
	}
	if got := c.QueryString(t, "SHOW work_mem"); got != "7MB" {
		t.Errorf("work_mem = %s, want the option's 7MB", got)
	}
	conf, _ := os.ReadFile(filepath.Join(dataDir, "postgresql.conf"))
	if n := strings.Count(string(conf), "include 'pgtest.conf'"); n != 1 {
		t.Errorf("postgresql.conf includes pgtest.conf %d times", n)
	}
	c.Restart(t)
	if got := c.QueryString(t, "SELECT count(*) FROM t"); got != "3" {
		t.Errorf("after a restart: count = %s, want 3", got)
	}
}
