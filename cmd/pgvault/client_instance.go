package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
)

// The roles a vault's identity needs to protect a PostgreSQL flexible
// server: the first on the server, the second on the server's resource group.
const (
	roleLtrBackup = "PostgreSQL Flexible Server Long Term Retention Backup Role"
	roleReader    = "Reader"
)

// maxInstanceName is the longest backup instance name pgvault takes.
const maxInstanceName = 90

// Wire shapes of a backup instance for a PostgreSQL flexible server, with
// the fields, spelling and order of Azure's documentation (resourceUri and
// policyVersion are sent empty, as there).
type (
	datasourceBody struct {
		ResourceID       string `json:"resourceID"`
		ResourceURI      string `json:"resourceUri"`
		DatasourceType   string `json:"datasourceType"`
		ResourceName     string `json:"resourceName"`
		ResourceType     string `json:"resourceType"`
		ResourceLocation string `json:"resourceLocation"`
		ObjectType       string `json:"objectType"`
	}
	policyInfoBody struct {
		PolicyID      string `json:"policyId"`
		PolicyVersion string `json:"policyVersion"`
	}
	backupInstanceBody struct {
		DataSourceInfo    datasourceBody `json:"dataSourceInfo"`
		DataSourceSetInfo datasourceBody `json:"dataSourceSetInfo"`
		PolicyInfo        policyInfoBody `json:"policyInfo"`
		ObjectType        string         `json:"objectType"`
	}
)

// newBackupInstance builds the backup instance that protects srv with the
// policy of ARM ID policyID.
func newBackupInstance(srv *serverView, policyID string) backupInstanceBody {
	ds := datasourceBody{
		ResourceID: srv.ID, DatasourceType: datasourcePostgreSQL, ResourceName: srv.Name,
		ResourceType: datasourcePostgreSQL, ResourceLocation: srv.Location, ObjectType: "Datasource",
	}
	set := ds
	set.ObjectType = "DatasourceSet"
	return backupInstanceBody{DataSourceInfo: ds, DataSourceSetInfo: set, PolicyInfo: policyInfoBody{PolicyID: policyID}, ObjectType: "BackupInstance"}
}

// defaultInstanceName is SERVER-GUID, the name Azure's documentation
// recommends, with the server's name shortened when the whole would be
// longer than pgvault takes.
func defaultInstanceName(server string) string {
	guid := uuid.NewString()
	if n := maxInstanceName - len(guid) - 1; len(server) > n {
		server = strings.TrimRight(server[:n], "-")
	}
	return server + "-" + guid
}

// instanceView holds the fields of a backup instance shown in tables.
type instanceView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		DataSourceInfo *struct {
			ResourceID   string `json:"resourceID"`
			ResourceName string `json:"resourceName"`
		} `json:"dataSourceInfo"`
		PolicyInfo *struct {
			PolicyID string `json:"policyId"`
		} `json:"policyInfo"`
		CurrentProtectionState string `json:"currentProtectionState"`
		ProvisioningState      string `json:"provisioningState"`
		ProtectionErrorDetails *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"protectionErrorDetails"`
		Pgvault *struct {
			NextScheduledBackup *time.Time `json:"nextScheduledBackup"`
			TimeZone            string     `json:"timeZone"`
			Retention           []struct {
				Tag            string     `json:"tag"`
				Criteria       string     `json:"criteria"`
				KeepFor        string     `json:"keepFor"`
				RecoveryPoints int        `json:"recoveryPoints"`
				Oldest         *time.Time `json:"oldest"`
			} `json:"retention"`
		} `json:"pgvault"`
	} `json:"properties"`
}

// instanceColumns are the table columns of backup instances.
var instanceColumns = columns[instanceView]{
	headers: []string{"NAME", "SERVER", "POLICY", "PROTECTION STATE", "PROVISIONING STATE"},
	row: func(i instanceView) []string {
		var server, policy string
		if ds := i.Properties.DataSourceInfo; ds != nil {
			server = ds.ResourceName
			if server == "" {
				server = lastSegment(ds.ResourceID)
			}
		}
		if p := i.Properties.PolicyInfo; p != nil {
			policy = lastSegment(p.PolicyID)
		}
		return []string{i.Name, server, policy, i.Properties.CurrentProtectionState, i.Properties.ProvisioningState}
	},
}

// printInstance prints a backup instance; in a table, with its protection error.
func (c *clientCmd) printInstance(raw []byte) error {
	if err := printOne(c, raw, instanceColumns); err != nil || c.output != outputTable {
		return err
	}
	var i instanceView
	if err := json.Unmarshal(raw, &i); err != nil {
		return fmt.Errorf("while decoding the server's answer: %w", err)
	}
	if e := i.Properties.ProtectionErrorDetails; e != nil && (e.Code != "" || e.Message != "") {
		c.printf("Protection error: %s: %s", e.Code, e.Message)
	}
	return nil
}

// printSchedule prints, in a table, an instance's next scheduled backup and
// what retention keeps (pgvault's extension of the instance).
func (c *clientCmd) printSchedule(raw []byte) error {
	if c.output != outputTable {
		return nil
	}
	var i instanceView
	if err := json.Unmarshal(raw, &i); err != nil {
		return fmt.Errorf("while decoding the server's answer: %w", err)
	}
	ext := i.Properties.Pgvault
	if ext == nil {
		return nil
	}
	if ext.NextScheduledBackup != nil {
		c.printf("Next scheduled backup: %s (policy time zone %s: %s)", ext.NextScheduledBackup.UTC().Format(time.RFC3339), ext.TimeZone,
			ext.NextScheduledBackup.In(loadZone(ext.TimeZone)).Format("Mon 2006-01-02 15:04 MST"))
	} else {
		c.printf("Next scheduled backup: none while %s", i.Properties.CurrentProtectionState)
	}
	c.printf("Retention (highest priority first):")
	for _, r := range ext.Retention {
		oldest := ""
		if r.Oldest != nil {
			oldest = ", oldest " + r.Oldest.UTC().Format(time.RFC3339)
		}
		c.printf("  %-8s keep %-5s %s; %d recovery point(s)%s", r.Tag, r.KeepFor, r.Criteria, r.RecoveryPoints, oldest)
	}
	return nil
}

// loadZone returns a time zone by IANA name, UTC when unknown here.
func loadZone(name string) *time.Location {
	if loc, err := time.LoadLocation(name); err == nil {
		return loc
	}
	return time.UTC
}

func (c *clientCmd) instanceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "instance",
		Aliases: []string{"backup-instance"},
		Short:   "Protect registered servers: the backup instances of a vault",
		Long: `Protect registered PostgreSQL servers with a vault's policy: a backup
instance ties a server to a policy of the vault. The vault's identity needs
two roles first: 'PostgreSQL Flexible Server Long Term Retention Backup
Role' on the server and 'Reader' on the server's resource group (pgvault
role assignment create --assignee-vault). 'instance validate' checks
everything before 'instance create'.`,
	}
	cmd.AddCommand(c.instanceValidateCmd(), c.instanceCreateCmd(), c.instanceShowCmd(), c.instanceListCmd(), c.instanceDeleteCmd(),
		c.instanceActionCmd("stop", "stopProtection", "Stop the protection of a backup instance, keeping its backups"),
		c.instanceActionCmd("suspend", "suspendBackups", "Suspend the scheduled backups of a backup instance"),
		c.instanceActionCmd("resume", "resumeProtection", "Resume the protection of a stopped backup instance"),
		c.instanceActionCmd("resume-backups", "resumeBackups", "Resume the suspended backups of a backup instance"))
	return cmd
}

// protectFlags name the server to protect and the policy.
type protectFlags struct {
	server, serverGroup, policy string
}

func (p *protectFlags) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&p.server, "server", "", "the server to protect: its name, or its ARM ID (required)")
	f.StringVar(&p.serverGroup, "server-group", "", "resource group of a --server given by name (default: the vault's, -g)")
	f.StringVar(&p.policy, "policy", "", "backup policy of the vault: its name, or its ARM ID (required)")
	_ = cmd.MarkFlagRequired("server")
	_ = cmd.MarkFlagRequired("policy")
}

// serverIDRule matches the ARM ID of a flexible server.
var serverIDRule = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.DBforPostgreSQL/flexibleServers/[^/]+$`)

// resolveServer reads the server that --server and --server-group name.
func (c *clientCmd) resolveServer(ctx context.Context, cl *client.Client, t policyTarget, p protectFlags) (*serverView, error) {
	var path string
	if strings.HasPrefix(p.server, "/") {
		if p.serverGroup != "" {
			return nil, errors.New("--server-group goes with a server name, not with an ARM ID")
		}
		id := strings.TrimRight(p.server, "/")
		if !serverIDRule.MatchString(id) {
			return nil, fmt.Errorf("--server %q is not the ARM ID of a PostgreSQL flexible server "+
				"(/subscriptions/ID/resourceGroups/GROUP/providers/Microsoft.DBforPostgreSQL/flexibleServers/NAME)", p.server)
		}
		path = client.ScopePath(id)
	} else {
		path = client.ServerPath(c.subscription, cmp.Or(p.serverGroup, t.rg), p.server)
	}
	resp, err := cl.Get(ctx, path, client.APIVersionPostgreSQL)
	if err != nil {
		return nil, err
	}
	var s serverView
	if err := resp.Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// resolvePolicy returns the ARM ID of the policy --policy names.
func (c *clientCmd) resolvePolicy(ctx context.Context, cl *client.Client, t policyTarget, policy string) (string, error) {
	path := client.PolicyPath(c.subscription, t.rg, t.vault, policy)
	if strings.HasPrefix(policy, "/") {
		path = client.ScopePath(policy)
	}
	resp, err := cl.Get(ctx, path, client.APIVersionDataProtection)
	if err != nil {
		return "", err
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := resp.Decode(&v); err != nil {
		return "", err
	}
	return v.ID, nil
}

// backupInstanceFor reads the server and the policy the flags name and
// builds the backup instance.
func (c *clientCmd) backupInstanceFor(ctx context.Context, cl *client.Client, t policyTarget, p protectFlags) (*serverView, backupInstanceBody, error) {
	srv, err := c.resolveServer(ctx, cl, t, p)
	if err != nil {
		return nil, backupInstanceBody{}, err
	}
	policyID, err := c.resolvePolicy(ctx, cl, t, p.policy)
	if err != nil {
		return nil, backupInstanceBody{}, err
	}
	return srv, newBackupInstance(srv, policyID), nil
}

// hintedError is an error printed with what to do about it on the lines after.
type hintedError struct {
	err  error
	hint string
}

func (h hintedError) Error() string { return withDetails(h.err).Error() + "\n" + h.hint }

func (h hintedError) Unwrap() error { return h.err }

// grantHint adds to a UserErrorMissingRequiredPermissions error the
// commands that give the vault's identity the roles it needs on srv, and
// then note (if not empty).
func (c *clientCmd) grantHint(err error, t policyTarget, srv *serverView, note string) error {
	var ae *client.APIError
	var hint []string
	if errors.As(err, &ae) && ae.Code == "UserErrorMissingRequiredPermissions" && srv != nil {
		base := "pgvault"
		if c.subscription != defaultSubscription {
			base += " --subscription " + shellQuote(c.subscription)
		}
		base += " role assignment create --assignee-vault " + shellQuote(t.vault) + " -g " + shellQuote(t.rg)
		hint = append(hint, "  grant the vault's identity the roles it needs with:",
			"    "+base+" --role "+shellQuote(roleLtrBackup)+" --scope "+shellQuote(srv.ID),
			"    "+base+" --role "+shellQuote(roleReader)+" --scope "+shellQuote(resourceGroupID(srv.ID)))
	}
	if note != "" {
		hint = append(hint, note)
	}
	if len(hint) == 0 {
		return err
	}
	return hintedError{err: err, hint: strings.Join(hint, "\n")}
}

// resourceGroupID returns the ID of the resource group of a resource ID.
func resourceGroupID(id string) string {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	if len(parts) >= 4 && strings.EqualFold(parts[2], "resourceGroups") {
		return "/" + strings.Join(parts[:4], "/")
	}
	return id
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (c *clientCmd) instanceValidateCmd() *cobra.Command {
	var t policyTarget
	var p protectFlags
	cmd := &cobra.Command{
		Use:   "validate --vault VAULT -g GROUP --server SERVER [--server-group GROUP] --policy POLICY",
		Short: "Check that a vault can protect a server with a policy (validateForBackup)",
		Long: `Check that the vault can protect the server with the policy, as Azure's
validateForBackup does: the server is not protected yet, the vault's
identity holds the roles it needs, and pgvault can back the server up.
It waits for the check and prints its outcome; a missing role is reported
with the principal, the action and the scope, and the commands that grant
the roles.`,
		Args: cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			srv, bi, err := c.backupInstanceFor(ctx, cl, t, p)
			if err != nil {
				return err
			}
			resp, err := cl.Post(ctx, client.ValidateForBackupPath(c.subscription, t.rg, t.vault), client.APIVersionDataProtection,
				map[string]any{"backupInstance": bi})
			if err != nil {
				return c.grantHint(err, t, srv, "")
			}
			if err := c.wait(ctx, cl, resp, "the validation of server "+srv.Name); err != nil {
				return c.grantHint(err, t, srv, "")
			}
			if c.output == outputJSON {
				raw := resp.Body
				if u := client.OperationURL(resp); u != "" {
					st, err := cl.Get(ctx, u, "")
					if err != nil {
						return err
					}
					raw = st.Body
				}
				if len(raw) == 0 {
					raw = []byte(`{}`)
				}
				return c.printJSON(raw)
			}
			c.printf("Validation succeeded: backup vault '%s' can protect server '%s' with policy '%s'.", t.vault, srv.Name, lastSegment(bi.PolicyInfo.PolicyID))
			return nil
		}),
	}
	t.flags(cmd)
	p.flags(cmd)
	return cmd
}

func (c *clientCmd) instanceCreateCmd() *cobra.Command {
	var t policyTarget
	var p protectFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create [NAME] --vault VAULT -g GROUP --server SERVER [--server-group GROUP] --policy POLICY",
		Short: "Protect a server: create a backup instance and wait until protection is configured",
		Long: `Protect a server with a policy of the vault: create a backup instance and
wait (unless --no-wait) until its protection is configured. NAME defaults to
SERVER-GUID (a new GUID), as Azure's documentation recommends.

If configuring the protection fails (e.g. a role is missing), the backup
instance is kept in state ConfiguringProtectionFailed: fix the problem and
run the same command with the instance's name to retry, or delete it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			srv, bi, err := c.backupInstanceFor(ctx, cl, t, p)
			if err != nil {
				return err
			}
			name := defaultInstanceName(srv.Name)
			if len(args) == 1 {
				name = args[0]
			}
			path := client.BackupInstancePath(c.subscription, t.rg, t.vault, name)
			resp, err := cl.Put(ctx, path, client.APIVersionDataProtection, map[string]any{"properties": bi})
			if err != nil {
				return c.grantHint(err, t, srv, "")
			}
			if !client.IsLongRunning(resp) {
				return c.printInstance(resp.Body)
			}
			if noWait {
				fmt.Fprintf(c.e.stderr, "not waiting for the protection of server %s; see its state with: pgvault instance show %s --vault %s -g %s\n",
					srv.Name, name, shellQuote(t.vault), shellQuote(t.rg))
				return c.printInstance(resp.Body)
			}
			if err := c.wait(ctx, cl, resp, "the protection of server "+srv.Name); err != nil {
				return c.grantHint(err, t, srv, fmt.Sprintf("  the backup instance '%s' is kept, in state ConfiguringProtectionFailed: "+
					"fix the problem and run this command again with the name %s, or delete it with: pgvault instance delete %s --vault %s -g %s",
					name, name, name, shellQuote(t.vault), shellQuote(t.rg)))
			}
			resp, err = cl.Get(ctx, path, client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return c.printInstance(resp.Body)
		}),
	}
	t.flags(cmd)
	p.flags(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait until the protection is configured")
	return cmd
}

func (c *clientCmd) instanceShowCmd() *cobra.Command {
	var t policyTarget
	cmd := &cobra.Command{
		Use:   "show NAME --vault VAULT -g GROUP",
		Short: "Show a backup instance: its server, policy, protection state, next scheduled backup and retention",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Get(ctx, client.BackupInstancePath(c.subscription, t.rg, t.vault, args[0]), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			if err := c.printInstance(resp.Body); err != nil {
				return err
			}
			return c.printSchedule(resp.Body)
		}),
	}
	t.flags(cmd)
	return cmd
}

func (c *clientCmd) instanceListCmd() *cobra.Command {
	var t policyTarget
	cmd := &cobra.Command{
		Use:   "list --vault VAULT -g GROUP",
		Short: "List a vault's backup instances",
		Args:  cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			items, err := cl.List(ctx, client.BackupInstancesPath(c.subscription, t.rg, t.vault), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			return printList(c, items, instanceColumns)
		}),
	}
	t.flags(cmd)
	return cmd
}

func (c *clientCmd) instanceDeleteCmd() *cobra.Command {
	var t policyTarget
	cmd := &cobra.Command{
		Use:   "delete NAME --vault VAULT -g GROUP",
		Short: "Stop protection and delete a backup instance with its backups, and wait",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Delete(ctx, client.BackupInstancePath(c.subscription, t.rg, t.vault, args[0]), client.APIVersionDataProtection)
			if err != nil {
				return err
			}
			if err := c.wait(ctx, cl, resp, "the deletion of backup instance "+args[0]); err != nil {
				return err
			}
			c.deleted(resp, fmt.Sprintf("backup instance '%s'", args[0]))
			return nil
		}),
	}
	t.flags(cmd)
	return cmd
}

// instanceActionCmd is a command that POSTs a protection action
// (stopProtection, suspendBackups, resumeProtection, resumeBackups) and
// prints the instance after it.
func (c *clientCmd) instanceActionCmd(use, action, short string) *cobra.Command {
	var t policyTarget
	cmd := &cobra.Command{
		Use:   use + " NAME --vault VAULT -g GROUP",
		Short: short + " (" + action + ")",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			path := client.BackupInstancePath(c.subscription, t.rg, t.vault, args[0])
			resp, err := cl.Post(ctx, path+"/"+action, client.APIVersionDataProtection, nil)
			if err != nil {
				return err
			}
			if err := c.wait(ctx, cl, resp, action+" of backup instance "+args[0]); err != nil {
				return err
			}
			if resp, err = cl.Get(ctx, path, client.APIVersionDataProtection); err != nil {
				return err
			}
			return c.printInstance(resp.Body)
		}),
	}
	t.flags(cmd)
	return cmd
}
