// Package pgctl prepares and starts a PostgreSQL server that pgvault
// restored on its own host, with the pg_ctl of the PostgreSQL installation
// there. When pgvault runs as root, the files are given to the postgres OS
// user and the server runs as that user (PostgreSQL refuses to run as root).
// It knows nothing of HTTP or the metadata store.
package pgctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultInstallDir is where Debian and Ubuntu install PostgreSQL: one
// <major>/bin directory per major version.
const DefaultInstallDir = "/usr/lib/postgresql"

// BinDir returns <installDir>/<major>/bin when it holds pg_ctl and postgres.
func BinDir(installDir string, major int) (string, error) {
	if installDir == "" {
		installDir = DefaultInstallDir
	}
	dir := filepath.Join(installDir, strconv.Itoa(major), "bin")
	for _, prog := range []string{"pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, prog))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("PostgreSQL %d is not installed on the pgvault host: no %s in %s (see serve --pg-install-dir)", major, prog, dir)
		}
	}
	return dir, nil
}

// Major reads the major version of a data directory (its PG_VERSION file).
func Major(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return 0, fmt.Errorf("while reading the version of %s: %w", dataDir, err)
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || major < 9 {
		return 0, fmt.Errorf("while reading the version of %s: PG_VERSION holds %q", dataDir, bytes.TrimSpace(b))
	}
	return major, nil
}

// Configure makes a restored data directory a server of its own: it
// appends to postgresql.auto.conf (read last, so it wins over
// postgresql.conf and its includes) the port to listen on, and no unix
// socket (the source's socket directory may not exist here; clients
// connect over TCP).
func Configure(dataDir string, port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("while configuring %s: %d is not a TCP port", dataDir, port)
	}
	path := filepath.Join(dataDir, "postgresql.auto.conf")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("while configuring %s: %w", dataDir, err)
	}
	_, err = fmt.Fprintf(f, "\n# Added by pgvault when it restored this server.\nport = %d\nunix_socket_directories = ''\n", port)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("while configuring %s: %w", dataDir, err)
	}
	return nil
}

// asPostgres reports whether PostgreSQL must run as the postgres OS user
// (pgvault runs as root).
func asPostgres() bool { return os.Geteuid() == 0 }

// Own gives the directories (recursively) to the postgres OS user when
// pgvault runs as root; otherwise it does nothing.
func Own(dirs ...string) error {
	if !asPostgres() {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return errors.New("pgvault runs as root and there is no postgres OS user to run the restored server as")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, uid, gid)
		})
		if err != nil {
			return fmt.Errorf("while giving %s to the postgres user: %w", d, err)
		}
	}
	return nil
}

// Start starts the server of a data directory with pg_ctl and waits until
// it accepts connections (after recovering to the end of the backup). The
// server logs to logFile.
func Start(ctx context.Context, binDir, dataDir, logFile string) error {
	out, err := run(ctx, binDir, "pg_ctl", "start", "-w", "-t", "300", "-D", dataDir, "-l", logFile)
	if err != nil {
		tail, _ := os.ReadFile(logFile)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("while starting the server of %s: pg_ctl start: %v: %s; server log: %s", dataDir, err, bytes.TrimSpace(out), bytes.TrimSpace(tail))
	}
	return nil
}

// Stop stops the server of a data directory (fast shutdown).
func Stop(ctx context.Context, binDir, dataDir string) error {
	out, err := run(ctx, binDir, "pg_ctl", "stop", "-w", "-t", "120", "-m", "fast", "-D", dataDir)
	if err != nil {
		return fmt.Errorf("while stopping the server of %s: pg_ctl stop: %v: %s", dataDir, err, bytes.TrimSpace(out))
	}
	return nil
}

// run runs a program of binDir, as the postgres OS user when root.
func run(ctx context.Context, binDir, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(binDir, prog)
	var cmd *exec.Cmd
	if asPostgres() {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = "/"
	// pg_ctl hands the server's output to -l; no child may hold our pipes.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	return out.Bytes(), err
}
