package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
)

// principalView holds the fields of a service principal shown in tables.
// The API never returns a secret.
type principalView struct {
	Name       string `json:"name"`
	Properties struct {
		ObjectID        string    `json:"objectId"`
		ClientID        string    `json:"clientId"`
		TenantID        string    `json:"tenantId"`
		SecretUpdatedAt time.Time `json:"secretUpdatedAt"`
	} `json:"properties"`
}

// principalColumns are the table columns of service principals.
var principalColumns = columns[principalView]{
	headers: []string{"NAME", "CLIENT ID", "OBJECT ID", "SECRET UPDATED"},
	row: func(p principalView) []string {
		var updated string
		if !p.Properties.SecretUpdatedAt.IsZero() {
			updated = p.Properties.SecretUpdatedAt.UTC().Format(time.RFC3339)
		}
		return []string{p.Name, p.Properties.ClientID, p.Properties.ObjectID, updated}
	},
}

// newPrincipalOutput is what `principal create` and `reset-secret` print
// with -o json: the principal and its new secret. Its fields are those of a
// credentials file too.
type newPrincipalOutput struct {
	Name         string `json:"name"`
	ObjectID     string `json:"objectId"`
	Server       string `json:"server"`
	TenantID     string `json:"tenantId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

func (c *clientCmd) principalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "principal",
		Aliases: []string{"sp"},
		Short:   "Manage service principals (identities that get tokens with a client ID and secret)",
		Long: `Manage service principals: application identities that get tokens from the
server's built-in issuer with a client ID and secret. A new principal has no
access until it is given a role (pgvault role assignment create).

The CLI makes each secret (256 random bits) and sends it to the server, which
keeps only its hash: the secret is shown once, when it is made, or written to
a credentials file with --credentials-out.`,
	}
	cmd.AddCommand(c.principalCreateCmd(), c.principalShowCmd(), c.principalListCmd(), c.principalDeleteCmd(), c.principalResetSecretCmd())
	return cmd
}

func (c *clientCmd) principalCreateCmd() *cobra.Command {
	var credsOut string
	cmd := &cobra.Command{
		Use:   "create NAME [--credentials-out FILE]",
		Short: "Create a service principal with a new secret, shown once",
		Long: `Create a service principal with a new random secret and print its client ID,
object ID, tenant ID and the secret. The secret is shown only now; with
--credentials-out FILE it is written to a credentials file (mode 0600) that
--credentials and PGVAULT_CREDENTIALS take, instead of being printed.`,
		Args: cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			name := args[0]
			if err := checkCredentialsOut(credsOut); err != nil {
				return err
			}
			_, err := cl.Get(ctx, client.ServicePrincipalPath(name), client.APIVersionIdentity)
			if err == nil {
				return fmt.Errorf("the service principal '%s' already exists; give it a new secret with: pgvault principal reset-secret %s", name, name)
			}
			if !isNotFound(err) {
				return err
			}
			return c.putSecret(ctx, cl, name, credsOut, true)
		}),
	}
	cmd.Flags().StringVar(&credsOut, "credentials-out", "", "write the principal's credentials to this file (mode 0600) instead of printing the secret")
	return cmd
}

func (c *clientCmd) principalResetSecretCmd() *cobra.Command {
	var credsOut string
	cmd := &cobra.Command{
		Use:   "reset-secret NAME [--credentials-out FILE]",
		Short: "Give a service principal a new secret, shown once",
		Long: `Give a service principal a new random secret; the old one stops working at
once (tokens obtained with it stay valid until they expire). The new secret is
printed once, or written to a credentials file with --credentials-out.`,
		Args: cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			if err := checkCredentialsOut(credsOut); err != nil {
				return err
			}
			// A PUT of a missing principal would create it.
			if _, err := cl.Get(ctx, client.ServicePrincipalPath(args[0]), client.APIVersionIdentity); err != nil {
				return err
			}
			return c.putSecret(ctx, cl, args[0], credsOut, false)
		}),
	}
	cmd.Flags().StringVar(&credsOut, "credentials-out", "", "write the principal's credentials to this file (mode 0600) instead of printing the secret")
	return cmd
}

// checkCredentialsOut checks, before a secret is made, that the credentials
// file can be written: its directory exists and it is not a directory.
func checkCredentialsOut(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("while checking --credentials-out: the directory of %s does not exist", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("while checking --credentials-out: %s is a directory", path)
	}
	return nil
}

// putSecret makes a new secret, PUTs it and prints the principal with the
// secret, or writes a credentials file.
func (c *clientCmd) putSecret(ctx context.Context, cl *client.Client, name, credsOut string, creating bool) error {
	secret := newSecret()
	body := map[string]any{"properties": map[string]string{"clientSecret": secret}}
	resp, err := cl.Put(ctx, client.ServicePrincipalPath(name), client.APIVersionIdentity, body)
	if err != nil {
		return err
	}
	var sp principalView
	if err := resp.Decode(&sp); err != nil {
		return err
	}
	if creating && resp.StatusCode == http.StatusOK {
		fmt.Fprintf(c.e.stderr, "warning: the service principal '%s' was created by another request at the same time; its secret is now this one\n", name)
	}
	out := newPrincipalOutput{Name: sp.Name, ObjectID: sp.Properties.ObjectID, Server: cl.BaseURL(),
		TenantID: sp.Properties.TenantID, ClientID: sp.Properties.ClientID, ClientSecret: secret}
	if credsOut != "" {
		creds := credentials{Server: out.Server, TenantID: out.TenantID, ClientID: out.ClientID, ClientSecret: secret}
		if err := writeCredentials(credsOut, creds); err != nil {
			return fmt.Errorf("%w (the server has the new secret already: make another with `pgvault principal reset-secret %s`)", err, name)
		}
		if err := printOne(c, resp.Body, principalColumns); err != nil {
			return err
		}
		fmt.Fprintf(c.e.stderr, "The credentials of '%s' are in %s (readable only by you); use them with --credentials %s.\n", name, credsOut, credsOut)
		return nil
	}
	if c.output == outputJSON {
		raw, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("while encoding the principal: %w", err)
		}
		if err := c.printJSON(raw); err != nil {
			return err
		}
	} else {
		t := c.newTable("NAME", "CLIENT ID", "OBJECT ID", "TENANT ID")
		t.row(out.Name, out.ClientID, out.ObjectID, out.TenantID)
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintf(c.e.stdout, "Client secret: %s\n", secret)
	}
	fmt.Fprintf(c.e.stderr, "The client secret is shown only now: pgvault keeps only its hash. Keep it safe; "+
		"if it is lost, make a new one with `pgvault principal reset-secret %s` (--credentials-out FILE writes it to a file instead).\n", name)
	return nil
}

func (c *clientCmd) principalShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a service principal (never its secret, which the server does not keep)",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Get(ctx, client.ServicePrincipalPath(args[0]), client.APIVersionIdentity)
			if err != nil {
				return err
			}
			return printOne(c, resp.Body, principalColumns)
		}),
	}
}

func (c *clientCmd) principalListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the service principals",
		Args:  cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			items, err := cl.List(ctx, client.ServicePrincipalsPath(), client.APIVersionIdentity)
			if err != nil {
				return err
			}
			return printList(c, items, principalColumns)
		}),
	}
}

func (c *clientCmd) principalDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a service principal and its role assignments",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Delete(ctx, client.ServicePrincipalPath(args[0]), client.APIVersionIdentity)
			if err != nil {
				return err
			}
			c.deleted(resp, fmt.Sprintf("service principal '%s'", args[0]))
			return nil
		}),
	}
}

// isNotFound reports whether err is the server's 404.
func isNotFound(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}
