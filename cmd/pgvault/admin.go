package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/store/sqlite"
	"github.com/pgvault/pgvault/internal/tlscert"
	"github.com/pgvault/pgvault/internal/vault"
)

func (c *clientCmd) adminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer an installation on the server's machine (offline, on its data directory)",
	}
	cmd.AddCommand(c.adminResetCredentialsCmd())
	return cmd
}

func (c *clientCmd) adminResetCredentialsCmd() *cobra.Command {
	dataDir := envOr(c.e.getenv, "PGVAULT_DATA_DIR", defaultDataDir(c.e.getenv))
	cmd := &cobra.Command{
		Use:   "reset-credentials [--data-dir DIR] [--server URL]",
		Short: "Give the administrator a new secret and rewrite admin-credentials.json",
		Long: `Give the installation's administrator principal (Owner at the root scope) a new
secret and write it to ` + adminCredentialsFile + ` in the data directory (mode 0600),
for when that file was lost or its secret leaked. It works on the data
directory itself, not through the API, so it needs no credentials: run it as
the user the server runs as. The server may be running; the old secret stops
working at once (tokens issued with it stay valid until they expire).

The file names the server by --server (or PGVAULT_SERVER), else by the server
the old file named, else http://127.0.0.1:7070 (https:// when the data
directory has a self-signed certificate).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			dbPath := filepath.Join(dataDir, "pgvault.db")
			if _, err := os.Stat(dbPath); err != nil {
				return fmt.Errorf("while looking for pgvault's database in %s (give the server's --data-dir or PGVAULT_DATA_DIR): %w", dataDir, err)
			}
			path := filepath.Join(dataDir, adminCredentialsFile)
			server := c.resetServer(dataDir, path)
			st, err := sqlite.Open(ctx, dbPath)
			if err != nil {
				return fmt.Errorf("while opening the metadata store: %w", err)
			}
			defer st.Close()
			// No Start: the running server, if any, owns the operations.
			svc, err := vault.New(ctx, vault.Config{Store: st})
			if err != nil {
				return err
			}
			defer svc.Close()
			if err := resetAdmin(ctx, svc, path, server, slog.New(slog.DiscardHandler)); err != nil {
				return err
			}
			creds, err := readCredentials(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.e.stdout, "New administrator credentials (client ID %s, server %s) written to %s.\n", creds.ClientID, creds.Server, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "the server's data directory (env PGVAULT_DATA_DIR)")
	return cmd
}

// resetServer is the server URL a new admin credentials file names.
func (c *clientCmd) resetServer(dataDir, path string) string {
	if c.serverFlag.Changed || c.e.getenv("PGVAULT_SERVER") != "" {
		return c.server
	}
	if old, err := readCredentials(path); err == nil && old.Server != "" {
		return old.Server
	}
	if _, err := os.Stat(filepath.Join(dataDir, "tls", tlscert.CertFile)); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return "https://" + defaultListen
	}
	return "http://" + defaultListen
}
