package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/repo"
)

// pruneReportView is the JSON of a prune report.
type pruneReportView struct {
	VaultID   string `json:"vaultId"`
	Directory string `json:"directory"`
	DryRun    bool   `json:"dryRun"`
	Phase     string `json:"phase"`
	Waiting   string `json:"waiting,omitempty"`
	*repo.PruneReport
}

// printReport prints a repo command's report: as JSON with -o json, else
// for people with human.
func (c *clientCmd) printReport(v any, human func()) error {
	if c.output == outputJSON {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("while encoding the report: %w", err)
		}
		return c.printJSON(b)
	}
	human()
	return nil
}

// pruneRunning explains ErrPruneRunning from a repo command.
func pruneRunning(dir string, err error) error {
	return fmt.Errorf("the repository in %s: %w (the server's prune job, or another pgvault repo prune or repair-index); try again later", dir, err)
}

// onRepo checks the output format, opens the vault's repository and runs
// fn with it: the body of a repo command (check and snapshots could use it
// too; they predate it).
func (c *clientCmd) onRepo(cmd *cobra.Command, t repoTarget, fn func(ctx context.Context, r *openedRepo) error) error {
	if err := c.checkOutput(); err != nil {
		return err
	}
	ctx := cmd.Context()
	r, err := c.openRepo(ctx, t)
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(ctx, r)
}

func (c *clientCmd) repoPruneCmd() *cobra.Command {
	var t repoTarget
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "prune --vault VAULT -g GROUP [--data-dir DIR] [--dry-run]",
		Short: "Reclaim the space of forgotten snapshots in a vault's backup repository",
		Long: `Run one step of prune on a vault's backup repository, as the server's prune
job does after it forgot the snapshots of expired and deleted recovery points.
Prune works in two phases an hour apart at least: a mark writes a plan of
the packs no snapshot needs (or that are mostly dead), and a later sweep,
once every backup that was running at mark time has ended, copies what is
still live out of them and deletes them. Each run does the step that is
due, so run it again later (the server runs it every --prune-interval).

It never forgets snapshots itself: which ones are no longer needed is the
server's to decide, from its recovery points. It may run beside the server
and its backups; two prunes of one repository exclude each other.
--dry-run only reports what a mark would plan. -o json prints the report.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.onRepo(cmd, t, func(ctx context.Context, r *openedRepo) error {
				rep, err := r.Prune(ctx, repo.PruneOptions{DryRun: dryRun})
				if errors.Is(err, repo.ErrPruneRunning) {
					return pruneRunning(r.dir, err)
				}
				if err != nil {
					return fmt.Errorf("while pruning the repository in %s: %w", r.dir, err)
				}
				v := pruneReportView{VaultID: r.vaultID, Directory: r.dir, DryRun: dryRun, Phase: rep.Phase(), Waiting: rep.Waiting, PruneReport: rep}
				return c.printReport(v, func() { c.printPruneReport(v) })
			})
		},
	}
	c.repoFlags(cmd, &t)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what a mark would plan; change nothing")
	return cmd
}

// printPruneReport prints a prune report for people.
func (c *clientCmd) printPruneReport(v pruneReportView) {
	c.printf("Repository of backup vault %s", v.VaultID)
	c.printf("  in %s", v.Directory)
	rep := v.PruneReport
	tb := c.newTable("WHAT", "COUNT", "BYTES")
	tb.row("live snapshots", fmt.Sprint(rep.Snapshots), "")
	tb.row("live blobs", fmt.Sprint(rep.LiveBlobs), formatBytes(rep.LiveBytes))
	tb.row("packs planned for deletion", fmt.Sprint(rep.PlannedPacks), formatBytes(rep.PlannedBytes))
	if !v.DryRun {
		tb.row("packs deleted", fmt.Sprint(rep.PacksDeleted), formatBytes(rep.BytesDeleted))
		tb.row("packs repacked", fmt.Sprint(rep.PacksRepacked), "")
		tb.row("packs written", fmt.Sprint(rep.PacksWritten), formatBytes(rep.BytesWritten))
		tb.row("stale locks removed", fmt.Sprint(rep.LocksDeleted), "")
	}
	tb.row("packs kept", fmt.Sprint(rep.PacksKept), formatBytes(rep.BytesKept))
	_ = tb.flush()
	switch {
	case v.DryRun && rep.Marked:
		c.printf("Dry run: a prune would plan to delete %s.", plural(rep.PlannedPacks, "pack"))
	case v.DryRun:
		c.printf("Dry run: nothing to reclaim.")
	case rep.Waiting != "":
		c.printf("Step: %s; the sweep waits: %s.", v.Phase, rep.Waiting)
	default:
		c.printf("Step: %s.", v.Phase)
	}
}
