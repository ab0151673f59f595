package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/vault"
)

// restoreOptions are the flags of `recovery-point restore`.
type restoreOptions struct {
	t                           policyTarget
	container, dir, prefix      string
	storageID                   string
	newServer, serverGroup      string
	dataDir                     string
	port                        int
	start, validateOnly, noWait bool
}

func (c *clientCmd) recoveryPointRestoreCmd() *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use: "restore INSTANCE ID --vault VAULT -g GROUP (--to-container URL --storage-id ARMID | --to-directory DIR) --file-prefix NAME\n" +
			"  restore INSTANCE ID --vault VAULT -g GROUP --new-server NAME --data-dir DIR --port N [--start]",
		Short: "Restore a recovery point as files (a container or a directory) or as a new server, and follow the restore job",
		Long: `Restore recovery point ID of a backup instance, as Azure's restore does.

As files: --to-container gives an Azure Blob Storage container SAS URL (with
create, write and list permissions) and --storage-id the ARM ID of its storage
account or container, on which the vault's identity needs the role Storage
Blob Data Contributor; --to-directory gives an absolute directory on the
pgvault server, inside one it allows (serve --restore-local-dir). The files
go into the folder --file-prefix, which must be empty: base.tar (with the
WAL), one <oid>.tar per extra tablespace and backup_manifest, as
pg_basebackup -Ft writes them. Extract base.tar into a new data directory,
copy backup_manifest next to it, check it with pg_verifybackup and start it.

As a new server (pgvault's extension): --new-server names the new server
(registered in --server-group, default -g), --data-dir its data directory on
the pgvault server (inside an allowed restore directory) and --port its TCP
port; --start starts it. It is registered as a server that can be protected
in turn.

The restore is validated first (the vault identity's access, an empty
target); --validate-only stops there. Unless --no-wait, the command follows
the restore job until it ends; a job that fails makes it fail with its error.`,
		Args: cobra.ExactArgs(2),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			return c.runRestore(ctx, cl, o, args[0], args[1])
		}),
	}
	o.t.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.container, "to-container", "", "container SAS URL to restore the files into")
	f.StringVar(&o.storageID, "storage-id", "", "ARM ID of the storage account or container of --to-container")
	f.StringVar(&o.dir, "to-directory", "", "absolute directory on the pgvault server to restore the files into")
	f.StringVar(&o.prefix, "file-prefix", "", "folder of the container or directory that receives the files")
	f.StringVar(&o.newServer, "new-server", "", "restore as a new server of this name")
	f.StringVar(&o.serverGroup, "server-group", "", "resource group of the new server (default: -g)")
	f.StringVar(&o.dataDir, "data-dir", "", "data directory of the new server, on the pgvault server")
	f.IntVar(&o.port, "port", 0, "TCP port of the new server")
	f.BoolVar(&o.start, "start", false, "start the new server once restored")
	f.BoolVar(&o.validateOnly, "validate-only", false, "only validate the restore")
	f.BoolVar(&o.noWait, "no-wait", false, "return once the restore job is queued, without following it")
	return cmd
}

// restoreRequest builds the AzureBackupRecoveryPointBasedRestoreRequest of the flags.
func (c *clientCmd) restoreRequest(o restoreOptions, rp string) (map[string]any, error) {
	targets := 0
	for _, s := range []string{o.container, o.dir, o.newServer} {
		if s != "" {
			targets++
		}
	}
	if targets != 1 {
		return nil, errors.New("give exactly one of --to-container, --to-directory and --new-server")
	}
	var info map[string]any
	if o.newServer != "" {
		if o.dataDir == "" || o.port == 0 {
			return nil, errors.New("--new-server needs --data-dir and --port")
		}
		group := o.serverGroup
		if group == "" {
			group = o.t.rg
		}
		info = map[string]any{
			"objectType": "RestoreTargetInfo", "recoveryOption": "FailIfExists",
			"datasourceInfo": map[string]any{"objectType": "Datasource", "datasourceType": vault.DatasourceType,
				"resourceID": vault.ServerID(c.subscription, group, o.newServer)},
			"pgvault": map[string]any{"dataDirectory": o.dataDir, "port": o.port, "start": o.start},
		}
	} else {
		if o.prefix == "" {
			return nil, errors.New("--file-prefix names the folder that receives the files")
		}
		u := o.container
		if o.dir != "" {
			if !filepath.IsAbs(o.dir) {
				return nil, errors.New("--to-directory must be an absolute directory on the pgvault server")
			}
			u = "file://" + filepath.Clean(o.dir)
		} else if o.storageID == "" {
			return nil, errors.New("--to-container needs --storage-id, the ARM ID of its storage account or container")
		}
		details := map[string]any{"url": u, "filePrefix": o.prefix, "restoreTargetLocationType": "AzureBlobs"}
		if o.storageID != "" {
			details["targetResourceArmId"] = o.storageID
		}
		info = map[string]any{"objectType": "RestoreFilesTargetInfo", "recoveryOption": "FailIfExists", "targetDetails": details}
	}
	return map[string]any{"objectType": "AzureBackupRecoveryPointBasedRestoreRequest", "recoveryPointId": rp,
		"sourceDataStoreType": "VaultStore", "restoreTargetInfo": info}, nil
}

// runRestore validates the restore, starts it and follows its job.
func (c *clientCmd) runRestore(ctx context.Context, cl *client.Client, o restoreOptions, inst, rp string) error {
	req, err := c.restoreRequest(o, rp)
	if err != nil {
		return err
	}
	t := o.t
	resp, err := cl.Post(ctx, client.ValidateRestorePath(c.subscription, t.rg, t.vault, inst), client.APIVersionDataProtection,
		map[string]any{"objectType": "ValidateRestoreRequestObject", "restoreRequestObject": req})
	if err != nil {
		return err
	}
	if _, err := c.waitOp(ctx, cl, resp, "the restore to be validated"); err != nil {
		return err
	}
	if o.validateOnly {
		c.printf("The restore of recovery point %s is valid.", rp)
		return nil
	}
	resp, err = cl.Post(ctx, client.RestorePath(c.subscription, t.rg, t.vault, inst), client.APIVersionDataProtection, req)
	if err != nil {
		return err
	}
	j, raw, err := c.queuedJob(ctx, cl, t, resp, "the restore to be queued", "restore", o.noWait)
	if err != nil || j == nil {
		return err
	}
	if c.output == outputJSON {
		if err := c.printJSON(mustJSON(map[string]json.RawMessage{"job": raw})); err != nil {
			return err
		}
	}
	if !strings.EqualFold(j.Properties.Status, "Completed") {
		if c.output != outputJSON {
			if err := printOne(c, raw, jobColumns); err != nil {
				return err
			}
		}
		msg := j.jobError()
		if msg == "" {
			msg = "the server gave no reason"
		}
		return fmt.Errorf("restore job %s ended %s: %s", j.Name, j.Properties.Status, msg)
	}
	done, _ := j.transferred()
	dest := ""
	if x := j.Properties.ExtendedInfo; x != nil {
		dest = x.RecoveryDestination
	}
	if o.newServer != "" {
		c.printf("Restore job %s completed in %s: %s restored; server %s registered (%s).", j.Name, j.Properties.Duration, formatBytes(done), o.newServer, dest)
		return nil
	}
	c.printf("Restore job %s completed in %s: %s written to %s (%s files).", j.Name, j.Properties.Duration, formatBytes(done), dest, j.detail("Files"))
	return nil
}
