package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
)

// envServerPassword names the environment variable that may hold the
// password of a server's administrator login. A password is never a flag:
// flags show in the process list.
const envServerPassword = "PGVAULT_SERVER_PASSWORD"

// maxPasswordBytes bounds the password line read from standard input.
const maxPasswordBytes = 4 << 10

// serverView holds the fields of a PostgreSQL flexible server shown in
// tables; the server never returns the password.
type serverView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		FullyQualifiedDomainName string `json:"fullyQualifiedDomainName"`
		AdministratorLogin       string `json:"administratorLogin"`
		Version                  string `json:"version"`
		State                    string `json:"state"`
		Pgvault                  *struct {
			Port        int    `json:"port"`
			StateReason string `json:"stateReason"`
		} `json:"pgvault"`
	} `json:"properties"`
}

// address is the server's host:port.
func (s serverView) address() string {
	host := s.Properties.FullyQualifiedDomainName
	if s.Properties.Pgvault == nil || s.Properties.Pgvault.Port == 0 || host == "" {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(s.Properties.Pgvault.Port))
}

// serverColumns are the table columns of servers.
var serverColumns = columns[serverView]{
	headers: []string{"NAME", "RESOURCE GROUP", "LOCATION", "HOST", "LOGIN", "VERSION", "STATE"},
	row: func(s serverView) []string {
		return []string{s.Name, resourceGroupOf(s.ID), s.Location, s.address(), s.Properties.AdministratorLogin, s.Properties.Version, s.Properties.State}
	},
}

// printServer prints a server; in a table, with the reason it is Disabled.
func (c *clientCmd) printServer(raw []byte) error {
	if err := printOne(c, raw, serverColumns); err != nil || c.output != outputTable {
		return err
	}
	var s serverView
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("while decoding the server's answer: %w", err)
	}
	if s.Properties.Pgvault != nil && s.Properties.Pgvault.StateReason != "" {
		c.printf("State reason: %s", s.Properties.Pgvault.StateReason)
	}
	return nil
}

func (c *clientCmd) serverCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Register the PostgreSQL servers pgvault protects",
		Long: `Register the PostgreSQL servers pgvault protects, as Azure's
Microsoft.DBforPostgreSQL/flexibleServers resources: pgvault connects to a
server with the login and password it is given, which it keeps encrypted
and never returns.`,
	}
	cmd.AddCommand(c.serverRegisterCmd(), c.serverShowCmd(), c.serverListCmd(), c.serverDeleteCmd(), c.serverCheckCmd())
	return cmd
}

// readPasswordLine reads the first line of r, without its line end.
func readPasswordLine(r io.Reader) (string, error) {
	br := bufio.NewReader(io.LimitReader(r, maxPasswordBytes+1))
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("while reading the password from standard input: %w", err)
	}
	if !strings.HasSuffix(line, "\n") && len(line) > maxPasswordBytes {
		return "", fmt.Errorf("while reading the password from standard input: its first line is longer than %d bytes", maxPasswordBytes)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("--password-stdin: standard input holds no password: give it as the first line")
	}
	return line, nil
}

func (c *clientCmd) serverRegisterCmd() *cobra.Command {
	var rg, location, host, login, sslMode, database string
	var port int
	var passwordStdin bool
	var tags []string
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "register NAME -g GROUP --location LOCATION --host HOST --login USER (--password-stdin | env " + envServerPassword + ")",
		Short: "Register a PostgreSQL server, or update its registration",
		Long: `Register a PostgreSQL server with pgvault, or update its registration.
pgvault connects to it before it answers: the server's version is read from
it, and a server it cannot reach or log in to is refused with the reason
(ServerUnreachable, ServerAuthenticationFailed, ...).

The login needs to be a superuser or a role with REPLICATION. Its password
is read from the first line of standard input with --password-stdin, else
from the environment variable ` + envServerPassword + `; it is never a flag,
which other users could see in the process list:

  printf '%s\n' "$PASSWORD" | pgvault server register pg1 -g RG -l westeurope \
      --host db1.example.com --login backup --password-stdin

On an update the password may be left out: the stored one is kept. pgvault
stores it encrypted, and no command or API answer ever shows it.`,
		Args: cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			password := c.e.getenv(envServerPassword)
			if passwordStdin {
				p, err := readPasswordLine(c.e.stdin)
				if err != nil {
					return err
				}
				password = p
			}
			t, err := parseTags(tags)
			if err != nil {
				return err
			}
			ext := map[string]any{"sslMode": sslMode, "database": database}
			if cmd.Flags().Changed("port") {
				ext["port"] = port
			}
			props := map[string]any{"fullyQualifiedDomainName": host, "administratorLogin": login, "pgvault": ext}
			if password != "" {
				props["administratorLoginPassword"] = password
			}
			body := map[string]any{"location": location, "properties": props}
			if t != nil {
				body["tags"] = t
			}
			resp, err := cl.Put(ctx, client.ServerPath(c.subscription, rg, args[0]), client.APIVersionPostgreSQL, body)
			var ae *client.APIError
			if password == "" && errors.As(err, &ae) && ae.Target == "properties.administratorLoginPassword" {
				return hintedError{err: err, hint: fmt.Sprintf("  give the password of '%s' as the first line of standard input with --password-stdin, or in %s", login, envServerPassword)}
			}
			if err != nil {
				return err
			}
			return c.printServer(resp.Body)
		}),
	}
	groupFlag(cmd, &rg, true)
	f := cmd.Flags()
	f.StringVarP(&location, "location", "l", "", "location of the server (required)")
	f.StringVar(&host, "host", "", "host name or IP address of the server, optionally HOST:PORT (required)")
	f.IntVar(&port, "port", 5432, "TCP port, when --host has none")
	f.StringVar(&login, "login", "", "login pgvault connects as: a superuser or a role with REPLICATION (required)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the login's password from the first line of standard input (else from "+envServerPassword+")")
	f.StringVar(&sslMode, "sslmode", "prefer", "libpq sslmode: disable, allow, prefer, require, verify-ca or verify-full")
	f.StringVar(&database, "database", "postgres", "database to connect to")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable; replaces all tags)")
	for _, name := range []string{"location", "host", "login"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (c *clientCmd) serverShowCmd() *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "show NAME -g GROUP",
		Short: "Show a registered server: its version and state (Ready, or Disabled with the reason)",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Get(ctx, client.ServerPath(c.subscription, rg, args[0]), client.APIVersionPostgreSQL)
			if err != nil {
				return err
			}
			return c.printServer(resp.Body)
		}),
	}
	groupFlag(cmd, &rg, true)
	return cmd
}

func (c *clientCmd) serverListCmd() *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "list [-g GROUP]",
		Short: "List the registered servers of a resource group, or of the subscription",
		Args:  cobra.NoArgs,
		RunE: c.runE(func(ctx context.Context, cl *client.Client, _ []string) error {
			items, err := cl.List(ctx, client.ServersPath(c.subscription, rg), client.APIVersionPostgreSQL)
			if err != nil {
				return err
			}
			return printList(c, items, serverColumns)
		}),
	}
	groupFlag(cmd, &rg, false)
	return cmd
}

func (c *clientCmd) serverDeleteCmd() *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "delete NAME -g GROUP",
		Short: "Delete a server's registration (the PostgreSQL server itself is untouched)",
		Args:  cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Delete(ctx, client.ServerPath(c.subscription, rg, args[0]), client.APIVersionPostgreSQL)
			if err != nil {
				return err
			}
			if resp.StatusCode == http.StatusNoContent {
				c.printf("Server '%s' was not registered.", args[0])
				return nil
			}
			c.printf("Deleted the registration of server '%s'.", args[0])
			return nil
		}),
	}
	groupFlag(cmd, &rg, true)
	return cmd
}

// ltrPreBackupResult is the answer of ltrPreBackup.
type ltrPreBackupResult struct {
	Properties struct {
		NumberOfContainers int `json:"numberOfContainers"`
	} `json:"properties"`
}

func (c *clientCmd) serverCheckCmd() *cobra.Command {
	var rg, backupName string
	cmd := &cobra.Command{
		Use:   "check NAME -g GROUP --backup-name BACKUP",
		Short: "Check that a long-term retention backup of a server can run (ltrPreBackup)",
		Long: `Run the checks of a long-term retention backup of the server (Azure's
ltrPreBackup): pgvault connects to it as a backup would (a replication
connection included) and answers how many storage containers the backup
needs, or why it cannot run. The server's state (Ready or Disabled) is
updated with the outcome.`,
		Args: cobra.ExactArgs(1),
		RunE: c.runE(func(ctx context.Context, cl *client.Client, args []string) error {
			resp, err := cl.Post(ctx, client.LtrPreBackupPath(c.subscription, rg, args[0]), client.APIVersionPostgreSQL,
				map[string]any{"backupSettings": map[string]string{"backupName": backupName}})
			if err != nil {
				return err
			}
			name := args[0]
			return printOne(c, resp.Body, columns[ltrPreBackupResult]{
				headers: []string{"SERVER", "BACKUP NAME", "CONTAINERS"},
				row: func(r ltrPreBackupResult) []string {
					return []string{name, backupName, strconv.Itoa(r.Properties.NumberOfContainers)}
				},
			})
		}),
	}
	groupFlag(cmd, &rg, true)
	cmd.Flags().StringVar(&backupName, "backup-name", "", "name of the backup to check for (required)")
	_ = cmd.MarkFlagRequired("backup-name")
	return cmd
}
