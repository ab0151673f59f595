package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
)

// typeVault is the ARM resource type of backup vaults.
const typeVault = "Microsoft.DataProtection/backupVaults"

// vaultView holds the fields of a vault shown in tables.
type vaultView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Location string `json:"location"`
	Identity *struct {
		Type        string `json:"type"`
		PrincipalID string `json:"principalId"`
	} `json:"identity"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
		StorageSettings   []struct {
			Type string `json:"type"`
		} `json:"storageSettings"`
	} `json:"properties"`
}

// vaultColumns are the table columns of vaults.
var vaultColumns = columns[vaultView]{
	headers: []string{"NAME", "RESOURCE GROUP", "LOCATION", "STATE", "REDUNDANCY", "PRINCIPAL ID"},
	row: func(v vaultView) []string {
		var principal, redundancy string
		if v.Identity != nil {
			principal = v.Identity.PrincipalID
		}
		if len(v.Properties.StorageSettings) > 0 {
			redundancy = v.Properties.StorageSettings[0].Type
		}
		return []string{v.Name, resourceGroupOf(v.ID), v.Location, v.Properties.ProvisioningState, redundancy, principal}
	},
}

func (c *clientCmd) vaultCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "Manage backup vaults",
	}
	cmd.AddCommand(c.vaultCreateCmd(), c.vaultShowCmd(), c.vaultListCmd(), c.vaultUpdateCmd(), c.vaultDeleteCmd(), c.vaultCheckNameCmd())
	return cmd
}

// groupFlag adds the -g/--resource-group flag.
func groupFlag(cmd *cobra.Command, rg *string, required bool) {
	usage := "resource group"
	if required {
		usage += " (required)"
	}
	cmd.Flags().StringVarP(rg, "resource-group", "g", "", usage)
	if required {
		_ = cmd.MarkFlagRequired("resource-group")
	}
}

// vaultSettings are the flags that set a vault's identity and security.
type vaultSettings struct {
	identity     string
	softDelete   string
	immutability string
	tags         []string
}

func (s *vaultSettings) flags(cmd *cobra.Command, identityDefault string) {
	f := cmd.Flags()
	f.StringVar(&s.identity, "identity", identityDefault, "managed identity: SystemAssigned or None")
	f.StringVar(&s.softDelete, "soft-delete", "", "soft delete state: On, Off or AlwaysOn (AlwaysOn cannot be undone)")
	f.StringVar(&s.immutability, "immutability", "", "immutability state: Disabled, Unlocked or Locked (Locked cannot be undone)")
	f.StringArrayVar(&s.tags, "tag", nil, "tag KEY=VALUE (repeatable; replaces all tags)")
}

// securitySettings builds properties.securitySettings from the flags; nil
// when neither is set. retentionDays keeps a vault's soft delete retention.
func (s *vaultSettings) securitySettings(retentionDays *float64) map[string]any {
	sec := map[string]any{}
	if s.softDelete != "" {
		sd := map[string]any{"state": s.softDelete}
		if retentionDays != nil {
			sd["retentionDurationInDays"] = *retentionDays
		}
		sec["softDeleteSettings"] = sd
	}
	if s.immutability != "" {
		sec["immutabilitySettings"] = map[string]any{"state": s.immutability}
	}
	if len(sec) == 0 {
		return nil
	}
	return sec
}

func (c *clientCmd) vaultCreateCmd() *cobra.Command {
	var rg, location, redundancy string
	var noWait bool
	var set vaultSettings
	cmd := &cobra.Command{
		Use:   "create NAME -g GROUP --location LOCATION",
		Short: "Create (or replace) a backup vault and wait until it is provisioned",
		Long: `Create a backup vault, or replace the settings of an existing one, and wait
for its provisioning to finish (unless --no-wait) before printing it.

The vault gets a system-assigned identity unless --identity None: pgvault
uses the vault's identity to reach the servers it backs up.`,
		Args: cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			tags, err := parseTags(set.tags)
			if err != nil {
				return err
			}
			props := map[string]any{
				"storageSettings": []map[string]string{{"datastoreType": "VaultStore", "type": redundancy}},
			}
			if sec := set.securitySettings(nil); sec != nil {
				props["securitySettings"] = sec
			}
			body := map[string]any{"location": location, "properties": props}
			if tags != nil {
				body["tags"] = tags
			}
			if set.identity != "" {
				body["identity"] = map[string]string{"type": set.identity}
			}
			path := client.VaultPath(c.subscription, rg, args[0])
			resp, err := cl.Put(ctx, path, client.APIVersionDataProtection, body)
			if err != nil {
				return err
			}
			if !client.IsLongRunning(resp) {
				return printOne(c, resp.Body, vaultColumns)
			}
			if noWait {
				fmt.Fprintf(c.e.stderr, "not waiting for the provisioning of vault %s; see its state with: pgvault vault show %s -g %s\n", args[0], args[0], rg)
				return printOne(c, resp.Body, vaultColumns)
			}
			if err := c.wait(ctx, cl, resp, "vault "+args[0]); err != nil {
				return err
			}
			resp, err = cl.Get(ctx, path, client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return printOne(c, resp.Body, vaultColumns)
		}),
	}
	groupFlag(cmd, &rg, true)
	f := cmd.Flags()
	f.StringVarP(&location, "location", "l", "", "location of the vault (required)")
	f.StringVar(&redundancy, "redundancy", "LocallyRedundant", "storage redundancy: LocallyRedundant, GeoRedundant or ZoneRedundant")
	f.BoolVar(&noWait, "no-wait", false, "do not wait for the provisioning to finish")
	set.flags(cmd, "SystemAssigned")
	_ = cmd.MarkFlagRequired("location")
	return cmd
}

func (c *clientCmd) vaultShowCmd() *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "show NAME -g GROUP",
		Short: "Show a backup vault",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Get(ctx, client.VaultPath(c.subscription, rg, args[0]), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return printOne(c, resp.Body, vaultColumns)
		}),
	}
	groupFlag(cmd, &rg, true)
	return cmd
}

func (c *clientCmd) vaultListCmd() *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "list [-g GROUP]",
		Short: "List the backup vaults of a resource group, or of the subscription",
		Args:  cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			items, err := cl.List(ctx, client.VaultsPath(c.subscription, rg), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return printList(c, items, vaultColumns)
		}),
	}
	groupFlag(cmd, &rg, false)
	return cmd
}

func (c *clientCmd) vaultUpdateCmd() *cobra.Command {
	var rg string
	var set vaultSettings
	cmd := &cobra.Command{
		Use:   "update NAME -g GROUP [--tag K=V ...] [--identity T] [--soft-delete S] [--immutability S]",
		Short: "Update a backup vault's tags, identity or security settings",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			if len(set.tags) == 0 && set.identity == "" && set.softDelete == "" && set.immutability == "" {
				return errors.New("nothing to update: give --tag, --identity, --soft-delete or --immutability")
			}
			path := client.VaultPath(c.subscription, rg, args[0])
			body := map[string]any{}
			if len(set.tags) > 0 {
				tags, err := parseTags(set.tags)
				if err != nil {
					return err
				}
				body["tags"] = tags
			}
			if set.identity != "" {
				body["identity"] = map[string]string{"type": set.identity}
			}
			// The server merges a PATCH field by field: the soft delete
			// retention is kept when only the state changes.
			if sec := set.securitySettings(nil); sec != nil {
				body["properties"] = map[string]any{"securitySettings": sec}
			}
			resp, err := cl.Patch(ctx, path, client.APIVersionDataProtection, body)
			if err != nil {
				return err
			}
			if client.IsLongRunning(resp) {
				if err := c.wait(ctx, cl, resp, "vault "+args[0]); err != nil {
					return err
				}
				if resp, err = cl.Get(ctx, path, client.APIVersionDataProtection); err != nil {
					return err
				}
			}
			return printOne(c, resp.Body, vaultColumns)
		}),
	}
	groupFlag(cmd, &rg, true)
	set.flags(cmd, "")
	return cmd
}

func (c *clientCmd) vaultDeleteCmd() *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "delete NAME -g GROUP",
		Short: "Delete a backup vault and its policies",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Delete(ctx, client.VaultPath(c.subscription, rg, args[0]), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			if err := c.wait(ctx, cl, resp, "vault "+args[0]); err != nil {
				return err
			}
			c.deleted(resp, fmt.Sprintf("backup vault '%s'", args[0]))
			return nil
		}),
	}
	groupFlag(cmd, &rg, true)
	return cmd
}

// nameAvailability is the answer of checkNameAvailability.
type nameAvailability struct {
	NameAvailable bool   `json:"nameAvailable"`
	Reason        string `json:"reason"`
	Message       string `json:"message"`
}

func (c *clientCmd) vaultCheckNameCmd() *cobra.Command {
	var rg, location string
	cmd := &cobra.Command{
		Use:   "check-name NAME -g GROUP --location LOCATION",
		Short: "Check whether a backup vault name is available",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Post(ctx, client.CheckVaultNamePath(c.subscription, rg, location), client.APIVersionDataProtection,
				map[string]string{"name": args[0], "type": typeVault})
			if err != nil {
				return err
			}
			name := args[0]
			return printOne(c, resp.Body, columns[nameAvailability]{
				headers: []string{"NAME", "AVAILABLE", "REASON", "MESSAGE"},
				row: func(a nameAvailability) []string {
					return []string{name, strconv.FormatBool(a.NameAvailable), a.Reason, a.Message}
				},
			})
		}),
	}
	groupFlag(cmd, &rg, true)
	cmd.Flags().StringVarP(&location, "location", "l", "", "location of the vault (required)")
	_ = cmd.MarkFlagRequired("location")
	return cmd
}
