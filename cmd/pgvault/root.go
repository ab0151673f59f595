package main

import "github.com/spf13/cobra"

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "pgvault",
		Short:         "pgvault: a self-hosted backup vault for PostgreSQL with Azure's Backup API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(e), newBenchCmd(e))
	addClientCommands(root, e)
	return root
}
