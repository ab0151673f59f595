// Package benchpg starts a throwaway PostgreSQL 15 cluster for `pgvault bench`.
//
// It follows internal/pgtest (which is for tests only): initdb and pg_ctl from
// Debian's /usr/lib/postgresql/15/bin, a free 127.0.0.1 port, a unix socket in
// the cluster's directory, fsync off, and every PostgreSQL program run as the
// `postgres` OS user when the caller is root (initdb and postgres refuse root).
// It runs them with that user's credentials directly (not through runuser), so
// that the resource usage wait4 reports is the program's own.
package benchpg

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir holds PostgreSQL 15's programs (Debian's postgresql-15).
const BinDir = "/usr/lib/postgresql/15/bin"

// Cluster is a running cluster.
type Cluster struct {
	Host          string // 127.0.0.1
	Port          int
	SuperUser     string // postgres
	SuperPassword string // for TCP connections (scram-sha-256); the unix socket is trusted
	Dir           string // the cluster's directory: data, log, socket
	DataDir       string
	SocketDir     string
	LogFile       string

	asPostgres bool
	uid, gid   int
	running    bool
}

// Start makes a cluster with initdb in dir (which must exist; when root it is
// given to the postgres OS user) and starts it on a free port. Stop it with Stop.
func Start(ctx context.Context, dir string) (*Cluster, error) {
	if _, err := os.Stat(filepath.Join(BinDir, "initdb")); err != nil {
		return nil, fmt.Errorf("while looking for PostgreSQL 15 (apt-get install postgresql-15): %w", err)
	}
	c := &Cluster{
		Host: "127.0.0.1", SuperUser: "postgres", SuperPassword: randomHex(12),
		Dir: dir, DataDir: filepath.Join(dir, "data"), SocketDir: dir, LogFile: filepath.Join(dir, "server.log"),
		asPostgres: os.Geteuid() == 0,
	}
	if c.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("while looking up the postgres OS user (apt-get install postgresql-common): %w", err)
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
		if err := c.GiveToPostgres(dir); err != nil {
			return nil, err
		}
	}
	if len(c.SocketDir)+len("/.s.PGSQL.65535.lock") > 100 {
		d, err := os.MkdirTemp("/tmp", "pgvault-bench-sock-")
		if err != nil {
			return nil, fmt.Errorf("while making a socket directory: %w", err)
		}
		c.SocketDir = d
		if err := c.GiveToPostgres(d); err != nil {
			return nil, err
		}
	}
	pwFile := filepath.Join(dir, "pwfile")
	if err := c.writeFile(pwFile, c.SuperPassword+"\n"); err != nil {
		return nil, err
	}
	if out, err := c.Command(ctx, "initdb", "-D", c.DataDir, "-U", c.SuperUser, "--pwfile", pwFile,
		"-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("while running initdb: %w\n%s", err, out)
	}
	_ = os.Remove(pwFile)
	hba := "local all all trust\nlocal replication all trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n"
	if err := c.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), hba); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("while looking for a free port: %w", err)
		}
		c.Port = port
		if err := c.writeFile(filepath.Join(c.DataDir, "postgresql.auto.conf"), c.settings()); err != nil {
			return nil, err
		}
		out, err := c.Command(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.DataDir, "-l", c.LogFile).CombinedOutput()
		if err == nil {
			c.running = true
			return c, nil
		}
		lastErr = fmt.Errorf("while starting the server (pg_ctl start): %w\n%s\n%s", err, out, c.logTail())
		if !strings.Contains(c.logTail(), "could not bind") {
			break
		}
	}
	return nil, lastErr
}

// Stop stops the server (fast shutdown). The caller removes the files.
func (c *Cluster) Stop() error {
	if c == nil || !c.running {
		return nil
	}
	out, err := c.Command(context.Background(), "pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", c.DataDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("while stopping the server (pg_ctl stop): %w\n%s", err, out)
	}
	c.running = false
	if c.SocketDir != c.Dir {
		_ = os.RemoveAll(c.SocketDir)
	}
	return nil
}

// Command returns a command running a program of BinDir (or, when prog holds
// a "/", that program), as the postgres OS user when root, in the cluster's
// directory, with a minimal environment (LC_ALL=C, TZ=UTC) plus env.
func (c *Cluster) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	path := prog
	if !strings.Contains(prog, "/") {
		path = filepath.Join(BinDir, prog)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = c.Dir
	home := c.Dir
	cmd.Env = []string{"PATH=" + BinDir + ":/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "TZ=UTC", "HOME=" + home}
	if c.asPostgres {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid)}}
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// GiveToPostgres chowns path (recursively) to the postgres OS user when the
// cluster runs as it, and lets it traverse path's parent directories.
func (c *Cluster) GiveToPostgres(path string) error {
	if !c.asPostgres {
		return nil
	}
	err := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, c.uid, c.gid)
	})
	if err != nil {
		return fmt.Errorf("while giving %s to the postgres user: %w", path, err)
	}
	for d := filepath.Dir(path); d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("while opening %s to the postgres user: %w", d, err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("while opening %s to the postgres user: %w", d, err)
			}
		}
	}
	return nil
}

// Connect opens a superuser connection over the unix socket.
func (c *Cluster) Connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable connect_timeout=10",
		c.SocketDir, c.Port, c.SuperUser))
	if err != nil {
		return nil, fmt.Errorf("while connecting to the cluster on port %d: %w", c.Port, err)
	}
	return conn, nil
}

// Exec runs sql (simple protocol) as the superuser.
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	conn, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("while running %q: %w", sql, err)
	}
	return nil
}

// QueryInt runs a query returning one integer.
func (c *Cluster) QueryInt(ctx context.Context, sql string) (int64, error) {
	conn, err := c.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var n int64
	if err := conn.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
		return 0, fmt.Errorf("while running %q: %w", sql, err)
	}
	return n, nil
}

// PostmasterPID returns the server's PID (from postmaster.pid).
func (c *Cluster) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("while reading postmaster.pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return 0, fmt.Errorf("while reading postmaster.pid: %w", err)
	}
	return pid, nil
}

func (c *Cluster) settings() string {
	s := map[string]string{
		"listen_addresses":        c.Host,
		"port":                    strconv.Itoa(c.Port),
		"unix_socket_directories": c.SocketDir,
		"fsync":                   "off",
		"wal_level":               "replica",
		"max_wal_senders":         "10",
		"max_replication_slots":   "10",
		"max_wal_size":            "4GB",
		"password_encryption":     "scram-sha-256",
		"logging_collector":       "off",
		"log_min_messages":        "warning",
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by pgvault bench (internal/benchpg)\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(s[k], "'", "''"))
	}
	return b.String()
}

func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	if c.asPostgres {
		if err := os.Chown(path, c.uid, c.gid); err != nil {
			return fmt.Errorf("while giving %s to the postgres user: %w", path, err)
		}
	}
	return nil
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.LogFile)
	if len(b) > 4000 {
		b = append([]byte("...\n"), b[len(b)-4000:]...)
	}
	return string(bytes.TrimSpace(b))
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
