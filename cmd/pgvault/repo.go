package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/secretbox"
	storagefs "github.com/pgvault/pgvault/internal/storage/fs"
	"github.com/pgvault/pgvault/internal/vault"
)

// repoTarget names a vault's repository on the server's machine.
type repoTarget struct {
	rg, vault, dataDir, keyFile string
}

func (c *clientCmd) repoFlags(cmd *cobra.Command, t *repoTarget) {
	groupFlag(cmd, &t.rg, true)
	f := cmd.Flags()
	f.StringVar(&t.vault, "vault", "", "backup vault (required)")
	_ = cmd.MarkFlagRequired("vault")
	f.StringVar(&t.dataDir, "data-dir", envOr(c.e.getenv, "PGVAULT_DATA_DIR", defaultDataDir(c.e.getenv)), "the server's data directory (env PGVAULT_DATA_DIR)")
	f.StringVar(&t.keyFile, "repository-key-file", c.e.getenv("PGVAULT_REPOSITORY_KEY_FILE"),
		"the server's repository master key file (env PGVAULT_REPOSITORY_KEY_FILE; default: keys/repository.key in the data directory)")
}

// openedRepo is a vault's repository opened offline.
type openedRepo struct {
	*repo.Repo
	vaultID string
	dir     string
}

// open opens the vault's repository in the data directory, read-only in
// effect: it creates nothing (no key, no directory, no repository).
func (c *clientCmd) openRepo(ctx context.Context, t repoTarget) (*openedRepo, error) {
	vaultID := vault.VaultID(c.subscription, t.rg, t.vault)
	dir := job.RepositoryPath(filepath.Join(t.dataDir, "repositories"), vaultID)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("backup vault '%s' (resource group '%s', subscription %s) has no repository in %s: "+
				"it has had no backup yet, or the data directory (--data-dir or PGVAULT_DATA_DIR), --subscription, -g or --vault is not the server's",
				t.vault, t.rg, c.subscription, t.dataDir)
		}
		return nil, fmt.Errorf("while looking for the repository: %w", err)
	}
	keyFile := cmp.Or(t.keyFile, filepath.Join(t.dataDir, "keys", "repository.key"))
	if _, err := os.Stat(keyFile); err != nil {
		return nil, fmt.Errorf("while looking for the repository master key (give the server's --repository-key-file): %w", err)
	}
	r, err := openRepoDir(ctx, dir, keyFile)
	if err != nil {
		return nil, err
	}
	return &openedRepo{Repo: r, vaultID: vaultID, dir: dir}, nil
}

// openRepoDir opens the repository in dir with the master key in keyFile
// (both exist), creating nothing.
func openRepoDir(ctx context.Context, dir, keyFile string) (*repo.Repo, error) {
	key, err := secretbox.LoadOrCreateKey(keyFile) // it exists: only loads
	if err != nil {
		return nil, fmt.Errorf("while loading the repository master key: %w", err)
	}
	st, err := storagefs.Open(dir)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, st, key)
	switch {
	case errors.Is(err, repo.ErrWrongKey):
		return nil, fmt.Errorf("while opening the repository in %s: the master key in %s is not the one its backups were made with: %w", dir, keyFile, err)
	case err != nil:
		return nil, fmt.Errorf("while opening the repository in %s: %w", dir, err)
	}
	return r, nil
}

// listSnapshots lists a repository's snapshots, oldest first.
func listSnapshots(ctx context.Context, r *repo.Repo) ([]*repo.Snapshot, error) {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (pgvault repo check names the damage)", err)
	}
	return snaps, nil
}

// printViews prints snapshot views as a JSON array, or a table of headers
// and row(view).
func printViews[T any](c *clientCmd, views []T, headers []string, row func(T) []string) error {
	if c.output == outputJSON {
		b, err := json.Marshal(views)
		if err != nil {
			return fmt.Errorf("while encoding the snapshots: %w", err)
		}
		return c.printJSON(b)
	}
	tb := c.newTable(headers...)
	for _, v := range views {
		tb.row(row(v)...)
	}
	return tb.flush()
}

func (c *clientCmd) repoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Check, list, prune and repair the backup repositories (offline, on the server's data directory)",
		Long: `Work on a vault's backup repository directly, on the server's machine:
the repository lives in repositories/ of the data directory, encrypted with
the repository master key (keys/repository.key, or the server's
--repository-key-file). These commands need no server and no credentials,
only read access to both, and may run while the server runs; but run
'repo check' while no backup runs: a backup that commits during the check
can show up as damage (check again to tell).`,
	}
	cmd.AddCommand(c.repoCheckCmd(), c.repoSnapshotsCmd(), c.repoPruneCmd(), c.repoRepairIndexCmd())
	return cmd
}

// checkReportView is the JSON of a check report.
type checkReportView struct {
	VaultID          string         `json:"vaultId"`
	Directory        string         `json:"directory"`
	RepositoryID     string         `json:"repositoryId"`
	OK               bool           `json:"ok"`
	Snapshots        int            `json:"snapshots"`
	Indexes          int            `json:"indexes"`
	Packs            int            `json:"packs"`
	Blobs            int            `json:"blobs"`
	Locks            int            `json:"locks"`
	PacksRead        int            `json:"packsRead"`
	BytesRead        int64          `json:"bytesRead"`
	UnindexedPacks   []string       `json:"unindexedPacks"`
	PacksFromHeaders []string       `json:"packsFromHeaders"`
	Problems         []problemView  `json:"problems"`
	DamagedSnapshots []snapshotView `json:"damagedSnapshots"`
}

type problemView struct {
	Object string `json:"object"`
	Error  string `json:"error"`
}

func (c *clientCmd) repoCheckCmd() *cobra.Command {
	var t repoTarget
	var readData bool
	var sample float64
	cmd := &cobra.Command{
		Use:   "check --vault VAULT -g GROUP [--data-dir DIR] [--read-data] [--sample FRACTION]",
		Short: "Verify a vault's backup repository; fail when something is damaged",
		Long: `Verify a vault's backup repository: its keys and config, that every pack
the index names is there with the right size, and that every snapshot's
manifest and tree are sound and every blob they need has an intact copy.
--read-data also reads back every pack and verifies every blob (decrypts,
decompresses and hashes it): that reads the whole repository. --sample 0.1
reads about a tenth of the packs, chosen at random (it implies --read-data).

It prints what it checked, the problems and the snapshots they damage (the
recovery points that cannot be fully restored), and exits with status 1 when
it found any. Packs no index names are leftovers of interrupted backups, not
damage. -o json prints the report as JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.checkOutput(); err != nil {
				return err
			}
			if sample < 0 || sample > 1 {
				return fmt.Errorf("invalid --sample %v: give a fraction between 0 and 1", sample)
			}
			ctx := cmd.Context()
			r, err := c.openRepo(ctx, t)
			if err != nil {
				return err
			}
			defer r.Close()
			rep, err := r.Check(ctx, repo.CheckOptions{ReadData: readData || sample > 0, Sample: sample})
			if err != nil {
				return fmt.Errorf("while checking the repository in %s: %w", r.dir, err)
			}
			v := checkReportView{
				VaultID: r.vaultID, Directory: r.dir, RepositoryID: r.ID(), OK: rep.OK(),
				Snapshots: rep.Snapshots, Indexes: rep.Indexes, Packs: rep.Packs, Blobs: rep.Blobs, Locks: rep.Locks,
				PacksRead: rep.PacksRead, BytesRead: rep.BytesRead, UnindexedPacks: rep.UnindexedPacks, PacksFromHeaders: rep.PacksFromHeaders,
				Problems: problemViews(rep.Problems), DamagedSnapshots: []snapshotView{},
			}
			if v.UnindexedPacks == nil {
				v.UnindexedPacks = []string{}
			}
			if v.PacksFromHeaders == nil {
				v.PacksFromHeaders = []string{}
			}
			for _, id := range rep.DamagedSnapshots {
				sv := snapshotView{ID: id.String()}
				if s, err := r.Snapshot(ctx, id); err == nil { // its manifest may be what is damaged
					sv = viewOf(s)
				}
				v.DamagedSnapshots = append(v.DamagedSnapshots, sv)
			}
			if err := c.printReport(v, func() { c.printCheckReport(v, readData || sample > 0) }); err != nil {
				return err
			}
			if !v.OK {
				return fmt.Errorf("the repository of backup vault '%s' is damaged: %s, %s cannot be fully restored",
					t.vault, plural(len(v.Problems), "problem"), plural(len(v.DamagedSnapshots), "snapshot"))
			}
			return nil
		},
	}
	c.repoFlags(cmd, &t)
	f := cmd.Flags()
	f.BoolVar(&readData, "read-data", false, "read back and verify every pack (the whole repository)")
	f.Float64Var(&sample, "sample", 0, "with --read-data, read only about this fraction of the packs, e.g. 0.1 (implies --read-data)")
	return cmd
}

// printCheckReport prints a check report for people.
func (c *clientCmd) printCheckReport(v checkReportView, readData bool) {
	c.printf("Repository %s of backup vault %s", v.RepositoryID, v.VaultID)
	c.printf("  in %s", v.Directory)
	t := c.newTable("CHECKED", "COUNT")
	t.row("snapshots", fmt.Sprint(v.Snapshots))
	t.row("index objects", fmt.Sprint(v.Indexes))
	t.row("packs", fmt.Sprint(v.Packs))
	t.row("blobs", fmt.Sprint(v.Blobs))
	t.row("writer locks", fmt.Sprint(v.Locks))
	if readData {
		t.row("packs read", fmt.Sprint(v.PacksRead))
		t.row("bytes read", fmt.Sprintf("%d (%s)", v.BytesRead, formatBytes(v.BytesRead)))
	}
	_ = t.flush()
	if n := len(v.UnindexedPacks); n > 0 {
		c.printf("%d packs no index names: leftovers of interrupted backups, not damage", n)
	}
	if n := len(v.PacksFromHeaders); n > 0 {
		c.printf("%d packs that only a damaged index object names were read from their own headers: their data is still restorable", n)
	}
	if len(v.Problems) > 0 {
		c.printf("Problems (%d):", len(v.Problems))
		for _, p := range v.Problems {
			c.printf("  %s: %s", p.Object, p.Error)
		}
	}
	if len(v.DamagedSnapshots) > 0 {
		c.printf("Damaged snapshots (%d), which cannot be fully restored:", len(v.DamagedSnapshots))
		for _, s := range v.DamagedSnapshots {
			line := "  " + s.ID
			if s.Job != "" {
				line += fmt.Sprintf(" (%s, job %s)", formatTime(s.Time), s.Job)
			}
			c.printf("%s", line)
		}
	}
	if v.OK {
		c.printf("No problem found.")
	}
}

// snapshotView is the JSON of a snapshot.
type snapshotView struct {
	ID       string            `json:"id"`
	Time     time.Time         `json:"time"`
	EndTime  time.Time         `json:"endTime"`
	Bytes    int64             `json:"bytes"`
	NewBytes int64             `json:"newBytes"`
	StartLSN string            `json:"startLsn,omitempty"`
	EndLSN   string            `json:"endLsn,omitempty"`
	Job      string            `json:"job,omitempty"`
	Instance string            `json:"instance,omitempty"`
	Stats    *repo.Stats       `json:"stats,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
}

func viewOf(s *repo.Snapshot) snapshotView {
	stats := s.Stats
	return snapshotView{
		ID: s.ID.String(), Time: s.Time, EndTime: s.EndTime, Bytes: s.Stats.Bytes, NewBytes: s.Stats.NewBytes,
		StartLSN: s.Meta[engine.MetaStartLSN], EndLSN: s.Meta[engine.MetaEndLSN], Job: s.Meta[job.MetaJob], Instance: s.Meta[job.MetaInstance],
		Stats: &stats, Meta: s.Meta,
	}
}

// snapshotColumns are the table columns of snapshots.
var snapshotColumns = []string{"SNAPSHOT", "TIME", "SIZE", "NEW", "START LSN", "END LSN", "JOB"}

func (c *clientCmd) repoSnapshotsCmd() *cobra.Command {
	var t repoTarget
	cmd := &cobra.Command{
		Use:   "snapshots --vault VAULT -g GROUP [--data-dir DIR]",
		Short: "List the snapshots in a vault's backup repository, oldest first",
		Long: `List the snapshots in a vault's backup repository, oldest first: when each
backup started, the size of the data directory it holds, what it added to
the repository (after deduplication and compression), its WAL positions and
the job that made it. The table shows the first 16 hex digits of each
snapshot's ID; -o json shows everything, the snapshot's metadata included.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.checkOutput(); err != nil {
				return err
			}
			ctx := cmd.Context()
			r, err := c.openRepo(ctx, t)
			if err != nil {
				return err
			}
			defer r.Close()
			snaps, err := listSnapshots(ctx, r.Repo)
			if err != nil {
				return err
			}
			views := make([]snapshotView, 0, len(snaps))
			for _, s := range snaps {
				views = append(views, viewOf(s))
			}
			return printViews(c, views, snapshotColumns, func(s snapshotView) []string {
				return []string{s.ID[:16], formatTime(s.Time), formatBytes(s.Bytes), formatBytes(s.NewBytes), s.StartLSN, s.EndLSN, s.Job}
			})
		},
	}
	c.repoFlags(cmd, &t)
	return cmd
}
