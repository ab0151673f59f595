package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/repo"
)

// offlineRepo names a repository by where it is, for disaster recovery.
type offlineRepo struct {
	location string // --repo: a directory or a file:// URL
	keyFile  string // --key-file
}

func offlineRepoFlags(cmd *cobra.Command, o *offlineRepo) {
	f := cmd.Flags()
	f.StringVar(&o.location, "repo", "", "the repository: its directory, or a file:// URL (required); a vault's is <server data dir>/repositories/<vault>-<hash>")
	_ = cmd.MarkFlagRequired("repo")
	f.StringVar(&o.keyFile, "key-file", "", "the repository master key file (default: keys/repository.key of the server data directory the repository is in)")
}

// repoDir turns --repo into a directory.
func repoDir(location string) (string, error) {
	if !strings.Contains(location, "://") {
		return filepath.Abs(location)
	}
	u, err := url.Parse(location)
	if err != nil {
		return "", fmt.Errorf("invalid --repo %q: %w", location, err)
	}
	if u.Scheme != "file" {
		return "", fmt.Errorf("invalid --repo %q: this pgvault reads repositories in directories (a path or a file:// URL), not %s://", location, u.Scheme)
	}
	if u.Host != "" && u.Host != "localhost" || u.Path == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid --repo %q: give file:///absolute/path", location)
	}
	return filepath.Clean(u.Path), nil
}

// openOffline opens a repository with no server and no metadata database,
// creating nothing.
func openOffline(ctx context.Context, o offlineRepo) (*repo.Repo, string, error) {
	dir, err := repoDir(o.location)
	if err != nil {
		return nil, "", err
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, "", fmt.Errorf("while looking for the repository: %w", err)
	} else if !fi.IsDir() {
		return nil, "", fmt.Errorf("the repository %s is not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "config")); errors.Is(err, fs.ErrNotExist) {
		if subs := repositoriesIn(dir); len(subs) > 0 {
			return nil, "", fmt.Errorf("%s is not a repository but holds %s: give one of them as --repo", dir, strings.Join(subs, ", "))
		}
	}
	keyFile := o.keyFile
	if keyFile == "" {
		// <data dir>/repositories/<vault>-<hash> -> <data dir>/keys/repository.key
		keyFile = filepath.Join(filepath.Dir(filepath.Dir(dir)), "keys", "repository.key")
		if _, err := os.Stat(keyFile); err != nil {
			return nil, "", fmt.Errorf("no --key-file given, and no key at %s: give the repository master key file (the server's --repository-key-file)", keyFile)
		}
	} else if _, err := os.Stat(keyFile); err != nil {
		return nil, "", fmt.Errorf("while looking for the repository master key: %w", err)
	}
	r, err := openRepoDir(ctx, dir, keyFile)
	return r, dir, err
}

// openOfflineSnapshots is openOffline and the repository's snapshots,
// oldest first.
func openOfflineSnapshots(ctx context.Context, o offlineRepo) (*repo.Repo, string, []*repo.Snapshot, error) {
	r, dir, err := openOffline(ctx, o)
	if err != nil {
		return nil, "", nil, err
	}
	snaps, err := listSnapshots(ctx, r)
	if err != nil {
		r.Close()
		return nil, "", nil, err
	}
	return r, dir, snaps, nil
}

// repositoriesIn lists the repositories directly under dir (a server's
// repositories directory, or its data directory).
func repositoriesIn(dir string) []string {
	var out []string
	for _, base := range []string{dir, filepath.Join(dir, "repositories")} {
		entries, _ := os.ReadDir(base)
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(base, e.Name(), "config")); err == nil && e.IsDir() {
				out = append(out, filepath.Join(base, e.Name()))
			}
		}
	}
	return out
}

// ResolveSnapshot picks a snapshot (the list oldest first) by "latest" or a
// unique prefix of its hex ID (at least 4 digits).
func resolveSnapshot(snaps []*repo.Snapshot, arg string) (*repo.Snapshot, error) {
	arg = strings.ToLower(strings.TrimSpace(arg))
	if arg == "latest" {
		if len(snaps) == 0 {
			return nil, errors.New("the repository holds no snapshot")
		}
		return snaps[len(snaps)-1], nil
	}
	if len(arg) < 4 || len(arg) > 64 || strings.Trim(arg, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("invalid --snapshot %q: give \"latest\" or at least 4 hex digits of a snapshot ID", arg)
	}
	var found *repo.Snapshot
	for _, s := range snaps {
		if strings.HasPrefix(s.ID.String(), arg) {
			if found != nil {
				return nil, fmt.Errorf("--snapshot %s matches several snapshots (%s…, %s…): give more digits", arg, found.ID.String()[:16], s.ID.String()[:16])
			}
			found = s
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no snapshot's ID starts with %s (pgvault restore list shows them)", arg)
	}
	return found, nil
}

// parseTablespaceFlags parses --tablespace OID=DIR values.
func parseTablespaceFlags(values []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range values {
		oid, dir, ok := strings.Cut(v, "=")
		if !ok || oid == "" || dir == "" || strings.Trim(oid, "0123456789") != "" || oid[0] == '0' || len(oid) > 10 {
			return nil, fmt.Errorf("invalid --tablespace %q: give OID=DIRECTORY, e.g. 16400=/srv/pg/ts1", v)
		}
		if _, dup := m[oid]; dup {
			return nil, fmt.Errorf("--tablespace %s is given twice", oid)
		}
		m[oid] = dir
	}
	return m, nil
}

func (c *clientCmd) restoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore from a backup repository directly: no server, no metadata database (disaster recovery)",
		Long: `Read a backup repository directly, with only its directory and the
repository master key: list its snapshots (recovery points) and restore one as
a PostgreSQL data directory (or as pg_basebackup's tar files). No server, no
metadata database and no credentials are needed, so this works after the
server or its metadata are lost. A vault's repository is the directory
repositories/<vault>-<hash> of the server's data directory (pgvault repo
snapshots, on a live server, names it); its key is keys/repository.key there,
or the server's --repository-key-file.`,
	}
	cmd.AddCommand(c.restoreListCmd(), c.restoreRunCmd())
	return cmd
}

// restoreSnapshotView is a snapshot as restore list shows it.
type restoreSnapshotView struct {
	snapshotView
	Server        string `json:"server,omitempty"`
	ServerVersion string `json:"serverVersion,omitempty"`
	Tablespaces   string `json:"tablespaces,omitempty"`
}

func restoreViewOf(s *repo.Snapshot) restoreSnapshotView {
	v := restoreSnapshotView{snapshotView: viewOf(s), ServerVersion: s.Meta[engine.MetaServerVersion], Tablespaces: s.Meta[engine.MetaTablespaces]}
	if inst := s.Meta[job.MetaInstance]; inst != "" {
		v.Server = inst[strings.LastIndex(inst, "/")+1:]
	}
	return v
}

func (c *clientCmd) restoreListCmd() *cobra.Command {
	var o offlineRepo
	cmd := &cobra.Command{
		Use:   "list --repo DIR|file://DIR [--key-file FILE]",
		Short: "List the snapshots of a backup repository, oldest first",
		Long: `List the snapshots (recovery points) of a backup repository, oldest first:
the first 16 hex digits of the ID (give --snapshot at least 4 of them), when
the backup started, the backup instance and PostgreSQL version it came from,
its size and WAL positions. -o json shows everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.checkOutput(); err != nil {
				return err
			}
			ctx := cmd.Context()
			r, _, snaps, err := openOfflineSnapshots(ctx, o)
			if err != nil {
				return err
			}
			defer r.Close()
			views := make([]restoreSnapshotView, 0, len(snaps))
			for _, s := range snaps {
				views = append(views, restoreViewOf(s))
			}
			return printViews(c, views, []string{"SNAPSHOT", "TIME", "SERVER", "VERSION", "SIZE", "START LSN", "END LSN"}, func(v restoreSnapshotView) []string {
				return []string{v.ID[:16], formatTime(v.Time), v.Server, serverVersion(v.ServerVersion), formatBytes(v.Bytes), v.StartLSN, v.EndLSN}
			})
		},
	}
	offlineRepoFlags(cmd, &o)
	return cmd
}

// Restore output formats.
const (
	formatDir = "dir"
	formatTar = "tar"
)

func (c *clientCmd) restoreRunCmd() *cobra.Command {
	var (
		o           offlineRepo
		snapshot    string
		target      string
		tablespaces []string
		format      string
		parallel    int
	)
	cmd := &cobra.Command{
		Use:   "run --repo DIR|file://DIR [--key-file FILE] --snapshot ID|latest --data-dir DIR [--tablespace OID=DIR]... [--format dir|tar]",
		Short: "Restore a snapshot of a backup repository into a new data directory",
		Long: `Restore a snapshot into DIR, which must not exist or be empty.

--format dir (the default) writes a PostgreSQL data directory as
pg_basebackup -Fp does: the files, the WAL the backup needs in pg_wal,
backup_label and backup_manifest. Each extra tablespace goes to its
--tablespace OID=DIR (absent or empty), or back to its original location
(which must then be absent or empty), linked from pg_tblspc/<oid>; the OIDs
are in pgvault restore list -o json. Give the directories to the server's OS
user, then start it: chown -R postgres: DIR; pg_ctl -D DIR start. It
recovers to the end of the backup and opens. pg_verifybackup DIR checks the
files first (with --ignore=tablespace_map when a tablespace moved).

--format tar writes pg_basebackup -Ft's files into DIR instead: base.tar, a
<oid>.tar per tablespace and backup_manifest.

Every byte is verified as it is read; damage stops the restore with an error
naming the file, and what was written is removed. Progress goes to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spaces, err := parseTablespaceFlags(tablespaces)
			if err != nil {
				return err
			}
			if format != formatDir && format != formatTar {
				return fmt.Errorf("invalid --format %q: give dir or tar", format)
			}
			if format == formatTar && len(spaces) > 0 {
				return errors.New("--tablespace applies to --format dir only: tar files are extracted where you like")
			}
			if parallel < 1 || parallel > 64 {
				return fmt.Errorf("invalid --parallel %d: give 1 to 64", parallel)
			}
			ctx := cmd.Context()
			r, dir, snaps, err := openOfflineSnapshots(ctx, o)
			if err != nil {
				return err
			}
			defer r.Close()
			s, err := resolveSnapshot(snaps, snapshot)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.e.stderr, "Restoring snapshot %s (%s, %s) from %s into %s\n", s.ID, formatTime(s.Time), formatBytes(s.Stats.Bytes), dir, target)
			start := time.Now()
			var bytes int64
			var files int
			if format == formatDir {
				res, err := engine.RestoreDir(ctx, r, s, engine.RestoreDirOptions{DataDir: target, Tablespaces: spaces, Parallel: parallel,
					Progress: c.restoreProgress(time.Now())})
				if err != nil {
					return err
				}
				bytes, files = res.Bytes, res.Files
			} else {
				if files, bytes, err = restoreTar(ctx, r, s, target); err != nil {
					return err
				}
			}
			took := time.Since(start)
			c.printf("Restored snapshot %s into %s: %s in %s (%s), %.0f MB/s", s.ID, target, plural(files, "file"), formatBytes(bytes),
				took.Round(10*time.Millisecond), float64(bytes)/1e6/max(took.Seconds(), 1e-3))
			if format == formatDir {
				c.printf("Next: chown -R postgres: %s (and the tablespace directories); pg_ctl -D %s start", target, target)
			}
			return nil
		},
	}
	offlineRepoFlags(cmd, &o)
	f := cmd.Flags()
	f.StringVar(&snapshot, "snapshot", "", `the snapshot: "latest", or at least 4 hex digits of its ID (required)`)
	_ = cmd.MarkFlagRequired("snapshot")
	f.StringVar(&target, "data-dir", "", "the directory to restore into; must not exist or be empty (required)")
	_ = cmd.MarkFlagRequired("data-dir")
	f.StringArrayVar(&tablespaces, "tablespace", nil, "OID=DIR: restore that tablespace into DIR instead of its original location (repeatable)")
	f.StringVar(&format, "format", formatDir, "dir (a data directory) or tar (pg_basebackup -Ft's files)")
	f.IntVar(&parallel, "parallel", repo.DefaultContentParallel, "chunks read and written at once")
	return cmd
}

// restoreProgress prints a progress line on stderr about every 2 seconds.
func (c *clientCmd) restoreProgress(start time.Time) func(done, total int64) {
	var last time.Time
	return func(done, total int64) {
		now := time.Now()
		if now.Sub(last) < 2*time.Second && done < total {
			return
		}
		last = now
		pct := 100.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		fmt.Fprintf(c.e.stderr, "  %s of %s (%.0f%%), %.0f MB/s\n", formatBytes(done), formatBytes(total), pct,
			float64(done)/1e6/max(now.Sub(start).Seconds(), 1e-3))
	}
}

// restoreTar writes pg_basebackup -Ft's files of s into dir (absent or
// empty); on error it removes what it wrote.
func restoreTar(ctx context.Context, r *repo.Repo, s *repo.Snapshot, dir string) (int, int64, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, 0, err
		}
		defer func() {
			if err != nil {
				_ = os.RemoveAll(dir)
			}
		}()
	case err != nil:
		return 0, 0, fmt.Errorf("while looking at %s: %w", dir, err)
	case len(entries) > 0:
		return 0, 0, fmt.Errorf("%w: %s holds %q", engine.ErrTargetNotEmpty, dir, entries[0].Name())
	}
	var names []string
	var n int64
	err = engine.WriteTarFormat(ctx, r, s, func(name string) (io.WriteCloser, error) {
		if !filepath.IsLocal(name) || slices.Contains(names, name) {
			return nil, fmt.Errorf("bad archive name %q", name)
		}
		names = append(names, name)
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		return &syncedFile{f: f, n: &n}, nil
	})
	if err != nil {
		for _, name := range names {
			_ = os.Remove(filepath.Join(dir, name))
		}
		return 0, 0, err
	}
	return len(names), n, nil
}

// syncedFile counts what is written and syncs the file when it is closed.
type syncedFile struct {
	f *os.File
	n *int64
}

func (s *syncedFile) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	*s.n += int64(n)
	return n, err
}

func (s *syncedFile) Close() error {
	if err := s.f.Sync(); err != nil {
		s.f.Close()
		return err
	}
	return s.f.Close()
}
