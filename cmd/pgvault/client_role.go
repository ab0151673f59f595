package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
)

// roleDefinitionView holds the fields of a role definition shown in tables.
type roleDefinitionView struct {
	ID         string `json:"id"`
	Name       string `json:"name"` // the GUID
	Properties struct {
		RoleName    string `json:"roleName"`
		Type        string `json:"type"`
		Description string `json:"description"`
	} `json:"properties"`
}

// roleDefinitionColumns are the table columns of role definitions.
var roleDefinitionColumns = columns[roleDefinitionView]{
	headers: []string{"NAME", "ID", "DESCRIPTION"},
	row: func(d roleDefinitionView) []string {
		return []string{d.Properties.RoleName, d.Name, d.Properties.Description}
	},
}

// roleAssignmentView holds the fields of a role assignment shown in tables.
type roleAssignmentView struct {
	Name       string `json:"name"`
	Properties struct {
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
		PrincipalType    string `json:"principalType"`
		Scope            string `json:"scope"`
	} `json:"properties"`
}

// roleAssignmentColumns are the table columns of role assignments; roles
// maps role definition GUIDs to role names.
func roleAssignmentColumns(roles map[string]string) columns[roleAssignmentView] {
	return columns[roleAssignmentView]{
		headers: []string{"NAME", "ROLE", "PRINCIPAL ID", "PRINCIPAL TYPE", "SCOPE"},
		row: func(a roleAssignmentView) []string {
			guid := lastSegment(a.Properties.RoleDefinitionID)
			role := guid
			if n, ok := roles[strings.ToLower(guid)]; ok {
				role = n
			}
			return []string{a.Name, role, a.Properties.PrincipalID, a.Properties.PrincipalType, a.Properties.Scope}
		},
	}
}

func lastSegment(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// isGUID accepts the 36-character 8-4-4-4-12 form only.
func isGUID(s string) bool { return len(s) == 36 && uuid.Validate(s) == nil }

func (c *clientCmd) roleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Manage role assignments and show role definitions (Azure RBAC)",
	}
	assignment := &cobra.Command{
		Use:   "assignment",
		Short: "Manage role assignments: who has which role at which scope",
	}
	assignment.AddCommand(c.roleAssignmentCreateCmd(), c.roleAssignmentListCmd(), c.roleAssignmentDeleteCmd())
	definition := &cobra.Command{
		Use:   "definition",
		Short: "Show the built-in role definitions",
	}
	definition.AddCommand(c.roleDefinitionListCmd(), c.roleDefinitionShowCmd())
	cmd.AddCommand(assignment, definition)
	return cmd
}

// subscriptionScope is the scope of the --subscription.
func (c *clientCmd) subscriptionScope() string { return "/subscriptions/" + c.subscription }

// assignee names a principal by one of three flags.
type assignee struct {
	objectID, principal, vault, group string
}

func (a *assignee) flags(cmd *cobra.Command, what string) {
	f := cmd.Flags()
	f.StringVar(&a.objectID, "assignee", "", what+": the principal's object ID")
	f.StringVar(&a.principal, "assignee-principal", "", what+": a service principal, by name")
	f.StringVar(&a.vault, "assignee-vault", "", what+": a backup vault's managed identity (with -g)")
	f.StringVarP(&a.group, "resource-group", "g", "", "resource group of --assignee-vault")
}

func (a *assignee) given() bool { return a.objectID != "" || a.principal != "" || a.vault != "" }

// resolve returns the object ID the flags name.
func (a *assignee) resolve(ctx context.Context, c *clientCmd, cl *client.Client) (string, error) {
	n := 0
	for _, v := range []string{a.objectID, a.principal, a.vault} {
		if v != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return "", errors.New("give only one of --assignee, --assignee-principal and --assignee-vault")
	case a.group != "" && a.vault == "":
		return "", errors.New("-g names the resource group of --assignee-vault; give the scope of the assignment with --scope")
	case a.vault != "" && a.group == "":
		return "", errors.New("--assignee-vault needs the vault's resource group: -g GROUP")
	}
	switch {
	case a.objectID != "":
		if !isGUID(a.objectID) {
			return "", fmt.Errorf("--assignee %q is not an object ID (a GUID); name a service principal with --assignee-principal", a.objectID)
		}
		return a.objectID, nil
	case a.principal != "":
		resp, err := cl.Get(ctx, client.ServicePrincipalPath(a.principal), client.APIVersionIdentity)
		if err != nil {
			return "", err
		}
		var sp principalView
		if err := resp.Decode(&sp); err != nil {
			return "", err
		}
		return sp.Properties.ObjectID, nil
	case a.vault != "":
		resp, err := cl.Get(ctx, client.VaultPath(c.subscription, a.group, a.vault), client.APIVersionDataProtection)
		if err != nil {
			return "", err
		}
		var v vaultView
		if err := resp.Decode(&v); err != nil {
			return "", err
		}
		if v.Identity == nil || v.Identity.PrincipalID == "" {
			return "", fmt.Errorf("the vault '%s' has no managed identity; give it one with: pgvault vault update %s -g %s --identity SystemAssigned",
				a.vault, a.vault, a.group)
		}
		return v.Identity.PrincipalID, nil
	}
	return "", nil
}

// resolveRole finds a role definition by GUID or name, as seen from scope.
func resolveRole(ctx context.Context, cl *client.Client, scope, role string) (*roleDefinitionView, error) {
	if isGUID(role) {
		resp, err := cl.Get(ctx, client.RoleDefinitionPath(scope, role), client.APIVersionAuthorization)
		if err != nil {
			return nil, err
		}
		var d roleDefinitionView
		if err := resp.Decode(&d); err != nil {
			return nil, err
		}
		return &d, nil
	}
	if strings.Contains(role, "'") {
		return nil, fmt.Errorf("the role %q is neither a GUID nor a role name", role)
	}
	defs, err := client.ListAs[roleDefinitionView](ctx, cl,
		client.WithQuery(client.RoleDefinitionsPath(scope), url.Values{"$filter": {"roleName eq '" + role + "'"}}), client.APIVersionAuthorization)
	if err != nil {
		return nil, err
	}
	if len(defs) != 1 {
		return nil, fmt.Errorf("there is no role named '%s'; see the roles with: pgvault role definition list", role)
	}
	return &defs[0], nil
}

// roleNames maps role definition GUIDs (lower case) to names, for tables. It
// is empty when the definitions cannot be read: the GUIDs are shown then.
func roleNames(ctx context.Context, cl *client.Client, scope string) map[string]string {
	names := map[string]string{}
	defs, err := client.ListAs[roleDefinitionView](ctx, cl, client.RoleDefinitionsPath(scope), client.APIVersionAuthorization)
	if err != nil {
		return names
	}
	for _, d := range defs {
		names[strings.ToLower(d.Name)] = d.Properties.RoleName
	}
	return names
}

// scopeFlag adds --scope, whose default is the subscription.
func scopeFlag(cmd *cobra.Command, scope *string) {
	cmd.Flags().StringVar(scope, "scope", "", "scope: /, /subscriptions/ID, .../resourceGroups/NAME or a resource ID (default: the subscription)")
}

// scopeOr is scope, or the subscription's when empty; it must start with a slash.
func (c *clientCmd) scopeOr(scope string) (string, error) {
	if scope == "" {
		return c.subscriptionScope(), nil
	}
	if !strings.HasPrefix(scope, "/") {
		return "", fmt.Errorf("invalid --scope %q: a scope is '/' or an ID starting with /subscriptions/", scope)
	}
	return scope, nil
}

func (c *clientCmd) roleAssignmentCreateCmd() *cobra.Command {
	var who assignee
	var role, scope, description string
	cmd := &cobra.Command{
		Use:   "create --role ROLE (--assignee OBJECT_ID | --assignee-principal NAME | --assignee-vault VAULT -g GROUP) [--scope SCOPE]",
		Short: "Give a principal a role at a scope",
		Long: `Give a principal a role at a scope (default: the subscription). The principal
is an object ID, a service principal by name, or the managed identity of a
backup vault (--assignee-vault VAULT -g GROUP): this is how a vault is given
the roles it needs on the servers it backs up. ROLE is a role name or GUID
(see pgvault role definition list). The assignment's name is a new GUID.`,
		Args: cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			if !who.given() {
				return errors.New("give the principal with --assignee, --assignee-principal or --assignee-vault")
			}
			scope, err := c.scopeOr(scope)
			if err != nil {
				return err
			}
			principalID, err := who.resolve(ctx, c, cl)
			if err != nil {
				return err
			}
			def, err := resolveRole(ctx, cl, scope, role)
			if err != nil {
				return err
			}
			props := map[string]string{"roleDefinitionId": def.ID, "principalId": principalID, "principalType": "ServicePrincipal"}
			if description != "" {
				props["description"] = description
			}
			resp, err := cl.Put(ctx, client.RoleAssignmentPath(scope, uuid.NewString()), client.APIVersionAuthorization, map[string]any{"properties": props})
			if err != nil {
				return err
			}
			return printOne(c, resp.Body, roleAssignmentColumns(map[string]string{strings.ToLower(def.Name): def.Properties.RoleName}))
		}),
	}
	who.flags(cmd, "who gets the role")
	scopeFlag(cmd, &scope)
	cmd.Flags().StringVar(&role, "role", "", "role name or GUID (required)")
	cmd.Flags().StringVar(&description, "description", "", "description of the assignment")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func (c *clientCmd) roleAssignmentListCmd() *cobra.Command {
	var who assignee
	var scope string
	cmd := &cobra.Command{
		Use:   "list [--scope SCOPE] [--assignee OBJECT_ID | --assignee-principal NAME | --assignee-vault VAULT -g GROUP]",
		Short: "List the role assignments at, above and below a scope, optionally of one principal",
		Args:  cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			scope, err := c.scopeOr(scope)
			if err != nil {
				return err
			}
			path := client.RoleAssignmentsPath(scope)
			if who.given() || who.group != "" {
				principalID, err := who.resolve(ctx, c, cl)
				if err != nil {
					return err
				}
				path = client.WithQuery(path, url.Values{"$filter": {"principalId eq '" + principalID + "'"}})
			}
			items, err := cl.List(ctx, path, client.APIVersionAuthorization)
			if err != nil {
				return err
			}
			if c.output == outputJSON {
				return c.printJSONList(items)
			}
			return printList(c, items, roleAssignmentColumns(roleNames(ctx, cl, scope)))
		}),
	}
	who.flags(cmd, "only the assignments of")
	scopeFlag(cmd, &scope)
	return cmd
}

func (c *clientCmd) roleAssignmentDeleteCmd() *cobra.Command {
	var scope string
	cmd := &cobra.Command{
		Use:   "delete NAME [--scope SCOPE]",
		Short: "Delete a role assignment (its NAME is a GUID) at its scope",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			scope, err := c.scopeOr(scope)
			if err != nil {
				return err
			}
			resp, err := cl.Delete(ctx, client.RoleAssignmentPath(scope, args[0]), client.APIVersionAuthorization)
			if err != nil {
				return err
			}
			c.deleted(resp, fmt.Sprintf("role assignment '%s' at scope '%s'", args[0], scope))
			return nil
		}),
	}
	scopeFlag(cmd, &scope)
	return cmd
}

func (c *clientCmd) roleDefinitionListCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "list [--name NAME]",
		Short: "List the built-in roles",
		Args:  cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			path := client.RoleDefinitionsPath(c.subscriptionScope())
			if name != "" {
				if strings.Contains(name, "'") {
					return fmt.Errorf("invalid --name %q", name)
				}
				path = client.WithQuery(path, url.Values{"$filter": {"roleName eq '" + name + "'"}})
			}
			items, err := cl.List(ctx, path, client.APIVersionAuthorization)
			if err != nil {
				return err
			}
			return printList(c, items, roleDefinitionColumns)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "only the role of this name")
	return cmd
}

func (c *clientCmd) roleDefinitionShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show GUID|NAME",
		Short: "Show a role definition with its actions",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			scope, id := c.subscriptionScope(), args[0]
			if !isGUID(id) {
				def, err := resolveRole(ctx, cl, scope, id)
				if err != nil {
					return err
				}
				id = def.Name
			}
			resp, err := cl.Get(ctx, client.RoleDefinitionPath(scope, id), client.APIVersionAuthorization)
			if err != nil {
				return err
			}
			if err := printOne(c, resp.Body, roleDefinitionColumns); err != nil || c.output != outputTable {
				return err
			}
			var perms struct {
				Properties struct {
					Permissions []struct {
						Actions        []string `json:"actions"`
						NotActions     []string `json:"notActions"`
						DataActions    []string `json:"dataActions"`
						NotDataActions []string `json:"notDataActions"`
					} `json:"permissions"`
				} `json:"properties"`
			}
			if err := resp.Decode(&perms); err != nil {
				return err
			}
			for _, p := range perms.Properties.Permissions {
				for _, l := range []struct {
					name    string
					actions []string
				}{{"Actions", p.Actions}, {"NotActions", p.NotActions}, {"DataActions", p.DataActions}, {"NotDataActions", p.NotDataActions}} {
					if len(l.actions) > 0 {
						c.printf("%s:\n  %s", l.name, strings.Join(l.actions, "\n  "))
					}
				}
			}
			return nil
		}),
	}
}
