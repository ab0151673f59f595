package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/repo"
)

// repairReportView is the JSON of an index repair.
type repairReportView struct {
	VaultID        string        `json:"vaultId"`
	Directory      string        `json:"directory"`
	DryRun         bool          `json:"dryRun"`
	Indexes        int           `json:"indexes"`
	Packs          int           `json:"packs"`
	DamagedIndexes []problemView `json:"damagedIndexes"`
	PacksIndexed   []string      `json:"packsIndexed"`
	Blobs          int           `json:"blobs"`
	DamagedPacks   []problemView `json:"damagedPacks"`
	IndexesWritten int           `json:"indexesWritten"`
	IndexesDeleted int           `json:"indexesDeleted"`
	DamagedPlans   []problemView `json:"damagedPrunePlans"`
	PlansDeleted   int           `json:"prunePlansDeleted"`
}

func problemViews(ps []repo.Problem) []problemView {
	out := []problemView{}
	for _, p := range ps {
		out = append(out, problemView{Object: p.Object, Error: p.Err.Error()})
	}
	return out
}

func (c *clientCmd) repoRepairIndexCmd() *cobra.Command {
	var t repoTarget
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "repair-index --vault VAULT -g GROUP [--data-dir DIR] [--dry-run]",
		Short: "Rebuild a vault's repository index from the packs themselves",
		Long: `Rebuild the index of a vault's backup repository from its packs, each of
which lists its own blobs in an encrypted header. Run it when 'repo check'
reports a damaged index object: restores still find their data through the
packs' headers, but backups and prune stop until the index is repaired.

It reads the header of every pack that no intact index object names, stores
new index objects listing them, and only then deletes the damaged index
objects, and any damaged prune plan (which only cancels the sweep it
planned). Packs left by interrupted backups get indexed too, so their data
can be reused (prune reclaims it when no backup needs it). A pack whose own
header is damaged is reported and left alone. It does not run beside a
prune (the server's prune job, or 'repo prune'); backups and restores may
run. --dry-run only reports what it would do. -o json prints the report.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.onRepo(cmd, t, func(ctx context.Context, r *openedRepo) error {
				rep, err := r.RepairIndex(ctx, repo.RepairOptions{DryRun: dryRun})
				if errors.Is(err, repo.ErrPruneRunning) {
					return pruneRunning(r.dir, err)
				}
				if err != nil {
					return fmt.Errorf("while repairing the index of the repository in %s: %w", r.dir, err)
				}
				v := repairReportView{
					VaultID: r.vaultID, Directory: r.dir, DryRun: dryRun, Indexes: rep.Indexes, Packs: rep.Packs,
					DamagedIndexes: problemViews(rep.DamagedIndexes), PacksIndexed: rep.PacksIndexed, Blobs: rep.Blobs,
					DamagedPacks: problemViews(rep.DamagedPacks), IndexesWritten: rep.IndexesWritten, IndexesDeleted: rep.IndexesDeleted,
					DamagedPlans: problemViews(rep.DamagedPlans), PlansDeleted: rep.PlansDeleted,
				}
				if v.PacksIndexed == nil {
					v.PacksIndexed = []string{}
				}
				return c.printReport(v, func() { c.printRepairReport(v) })
			})
		},
	}
	c.repoFlags(cmd, &t)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what a repair would do; change nothing")
	return cmd
}

// printRepairReport prints an index repair report for people.
func (c *clientCmd) printRepairReport(v repairReportView) {
	c.printf("Repository of backup vault %s", v.VaultID)
	c.printf("  in %s", v.Directory)
	tb := c.newTable("WHAT", "COUNT")
	tb.row("index objects", fmt.Sprint(v.Indexes))
	tb.row("damaged index objects", fmt.Sprint(len(v.DamagedIndexes)))
	tb.row("packs", fmt.Sprint(v.Packs))
	tb.row("packs indexed from their headers", fmt.Sprint(len(v.PacksIndexed)))
	tb.row("blobs they hold", fmt.Sprint(v.Blobs))
	tb.row("packs with a damaged header", fmt.Sprint(len(v.DamagedPacks)))
	tb.row("damaged prune plans", fmt.Sprint(len(v.DamagedPlans)))
	if !v.DryRun {
		tb.row("index objects written", fmt.Sprint(v.IndexesWritten))
		tb.row("index objects deleted", fmt.Sprint(v.IndexesDeleted))
		tb.row("prune plans deleted", fmt.Sprint(v.PlansDeleted))
	}
	_ = tb.flush()
	for _, p := range append(v.DamagedIndexes, v.DamagedPlans...) {
		c.printf("Damaged: %s: %s", p.Object, p.Error)
	}
	for _, p := range v.DamagedPacks {
		c.printf("Left alone: %s: %s", p.Object, p.Error)
	}
	deleted := plural(len(v.DamagedIndexes), "damaged index object")
	if n := len(v.DamagedPlans); n > 0 {
		deleted += " and " + plural(n, "damaged prune plan")
	}
	switch {
	case len(v.PacksIndexed) == 0 && len(v.DamagedIndexes) == 0 && len(v.DamagedPlans) == 0:
		c.printf("The index is whole: nothing to repair.")
	case v.DryRun:
		c.printf("Dry run: a repair would index %s and delete %s.", plural(len(v.PacksIndexed), "pack"), deleted)
	default:
		c.printf("Repaired: %s indexed, %s deleted.", plural(len(v.PacksIndexed), "pack"), deleted)
	}
}
