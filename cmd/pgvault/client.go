package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pgvault/pgvault/internal/client"
)

// Defaults of the client's global flags.
const (
	defaultServer       = "http://127.0.0.1:7070"
	defaultSubscription = "00000000-0000-0000-0000-000000000000"
	// requestTimeout bounds one HTTP request (not a whole long-running operation).
	requestTimeout = 2 * time.Minute
)

// Output formats.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// clientCmd is what every client command shares: the global flags and the
// command's streams.
type clientCmd struct {
	e            *env
	server       string
	serverFlag   *pflag.Flag // to tell whether --server was given
	subscription string
	output       string
	// credentials is the --credentials file ("" for the default one).
	credentials string
	// caCert is the --ca-cert file ("" for the default one).
	caCert string
}

// addClientCommands adds the global client flags and the client commands
// (group, vault, policy, server, instance, backup, job, recovery-point,
// principal, role, token, admin, repo, restore) to root.
func addClientCommands(root *cobra.Command, e *env) {
	c := &clientCmd{e: e}
	pf := root.PersistentFlags()
	pf.StringVar(&c.server, "server", envOr(e.getenv, "PGVAULT_SERVER", defaultServer),
		"URL of the pgvault server (env PGVAULT_SERVER; without either, the server named in the credentials file)")
	c.serverFlag = pf.Lookup("server")
	pf.StringVar(&c.subscription, "subscription", envOr(e.getenv, "PGVAULT_SUBSCRIPTION", defaultSubscription), "subscription ID (env PGVAULT_SUBSCRIPTION)")
	pf.StringVarP(&c.output, "output", "o", outputTable, "output format: table, or json (the server's JSON indented; lists as one array of the items of every page)")
	pf.StringVar(&c.credentials, "credentials", e.getenv("PGVAULT_CREDENTIALS"),
		"client credentials file (env PGVAULT_CREDENTIALS; default: "+adminCredentialsFile+" in the data directory, PGVAULT_DATA_DIR or "+
			defaultDataDir(e.getenv)+"); PGVAULT_TOKEN, a bearer token, wins over it")
	pf.StringVar(&c.caCert, "ca-cert", e.getenv("PGVAULT_CA_CERT"),
		"PEM CA certificate to trust for an https server (env PGVAULT_CA_CERT; default: tls/cert.pem in the data directory, if it exists)")
	root.AddCommand(c.groupCmd(), c.vaultCmd(), c.policyCmd(), c.serverCmd(), c.instanceCmd(), c.backupCmd(), c.jobCmd(), c.recoveryPointCmd(),
		c.principalCmd(), c.roleCmd(), c.tokenCmd(), c.adminCmd(), c.repoCmd(), c.restoreCmd())
}

// checkOutput checks and normalises --output.
func (c *clientCmd) checkOutput() error {
	switch strings.ToLower(c.output) {
	case outputTable, outputJSON:
		c.output = strings.ToLower(c.output)
		return nil
	}
	return fmt.Errorf("invalid --output %q: use table or json", c.output)
}

// runE adapts a client command: it checks the global flags, connects (server,
// TLS trust, credentials) and renders server errors with their details.
func (c *clientCmd) runE(fn func(ctx context.Context, cl *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := c.checkOutput(); err != nil {
			return err
		}
		conn, err := c.connect()
		if err != nil {
			return err
		}
		cl := client.New(conn.server, conn.hc)
		cl.Auth = conn.auth
		return explain(withDetails(fn(cmd.Context(), cl, args)))
	}
}

// detailedError is a server error printed with its details, one per line:
// the errors in its details, and what Azure Backup's UserFacingError adds
// (the recommended actions, the inner error's code and detailed message).
type detailedError struct{ *client.APIError }

func (d detailedError) Error() string {
	var b strings.Builder
	b.WriteString(d.APIError.Error())
	for _, x := range d.Details {
		b.WriteString("\n  - ")
		b.WriteString(x.Error())
	}
	for _, u := range d.UserFacingErrors() {
		if u.Code != "" && (u.Code != d.Code || u.Message != d.Message) {
			fmt.Fprintf(&b, "\n  - %s: %s", u.Code, u.Message)
		}
		for _, a := range u.RecommendedAction {
			b.WriteString("\n  recommended action: " + a)
		}
		if ie := u.InnerError; ie != nil {
			if ie.Code != "" && ie.Code != d.Code {
				b.WriteString("\n  cause: " + ie.Code)
			}
			if m := ie.DetailedMessage(); m != "" {
				b.WriteString("\n  detail: " + m)
			}
		}
	}
	return b.String()
}

func (d detailedError) Unwrap() error { return d.APIError }

// withDetails makes a server error with details or a UserFacingError print
// them. Errors that wrap a server error keep their own text.
func withDetails(err error) error {
	var ae *client.APIError
	if errors.As(err, &ae) && (len(ae.Details) > 0 || len(ae.UserFacingErrors()) > 0) {
		if err == error(ae) {
			return detailedError{ae}
		}
	}
	return err
}

// --- output ---

// printJSON writes a JSON document indented.
func (c *clientCmd) printJSON(raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("while formatting the server's JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := c.e.stdout.Write(buf.Bytes())
	return err
}

// printJSONList writes list items as one indented JSON array.
func (c *clientCmd) printJSONList(items []json.RawMessage) error {
	if items == nil {
		items = []json.RawMessage{}
	}
	raw, err := json.Marshal(items)
	if err != nil {
		return fmt.Errorf("while encoding the list: %w", err)
	}
	return c.printJSON(raw)
}

// columns say how a table shows resources decoded as T.
type columns[T any] struct {
	headers []string
	row     func(T) []string
}

// printOne prints one resource: its JSON as it is, or a one-row table.
func printOne[T any](c *clientCmd, raw []byte, cols columns[T]) error {
	if c.output == outputJSON {
		return c.printJSON(raw)
	}
	return printRows(c, []json.RawMessage{raw}, cols)
}

// printList prints a list: a JSON array of the items, or a table.
func printList[T any](c *clientCmd, items []json.RawMessage, cols columns[T]) error {
	if c.output == outputJSON {
		return c.printJSONList(items)
	}
	return printRows(c, items, cols)
}

func printRows[T any](c *clientCmd, items []json.RawMessage, cols columns[T]) error {
	t := c.newTable(cols.headers...)
	for _, raw := range items {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("while decoding the server's answer: %w", err)
		}
		t.row(cols.row(v)...)
	}
	return t.flush()
}

// table is an aligned table being written.
type table struct{ tw *tabwriter.Writer }

func (c *clientCmd) newTable(headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(c.e.stdout, 0, 4, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) {
	for i, s := range cells {
		if s == "" {
			cells[i] = "-"
		}
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cells[i])
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// printf writes a message line on stdout (table output only).
func (c *clientCmd) printf(format string, args ...any) {
	if c.output == outputTable {
		fmt.Fprintf(c.e.stdout, format+"\n", args...)
	}
}

// --- long-running operations ---

// stderrIsTerminal decides whether the progress indicator animates; tests
// replace it.
var stderrIsTerminal = isTerminal

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// wait waits for the long-running operation resp started, if it did, with a
// progress indicator on stderr: a spinner line on a terminal, else one line.
func (c *clientCmd) wait(ctx context.Context, cl *client.Client, resp *client.Response, what string) error {
	_, err := c.waitOp(ctx, cl, resp, what)
	return err
}

// waitOp is wait that also returns the operation's final state (nil when
// resp started none).
func (c *clientCmd) waitOp(ctx context.Context, cl *client.Client, resp *client.Response, what string) (*client.Operation, error) {
	if !client.IsLongRunning(resp) {
		return nil, nil
	}
	opURL := client.OperationURL(resp)
	name := opURL
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name, _, _ = strings.Cut(name[i+1:], "?")
	}
	w := c.e.stderr
	tty := stderrIsTerminal(w)
	opts := &client.PollOptions{}
	if tty {
		frames := `|/-\`
		fmt.Fprintf(w, "%c waiting for %s (operation %s) ...", frames[0], what, name)
		opts.Progress = func(op *client.Operation) {
			fmt.Fprintf(w, "\r\x1b[K%c waiting for %s (operation %s): %s, %s",
				frames[op.Polls%len(frames)], what, name, op.Status, op.Elapsed.Round(time.Second))
		}
	} else {
		fmt.Fprintf(w, "waiting for operation %s (%s) ...\n", name, what)
	}
	op, err := cl.Wait(ctx, resp, opts)
	if tty {
		fmt.Fprint(w, "\r\x1b[K")
	}
	return op, err
}

// --- flag helpers ---

// parseTags turns k=v flags into a map; nil without flags.
func parseTags(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	tags := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("invalid --tag %q: use KEY=VALUE", kv)
		}
		tags[k] = v
	}
	return tags, nil
}

// formatTags renders tags as k=v, sorted by key.
func formatTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + tags[k]
	}
	return strings.Join(keys, ",")
}

// resourceGroupOf returns the resource group named in an ARM ID.
func resourceGroupOf(id string) string {
	parts := strings.Split(id, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "resourceGroups") {
			return parts[i+1]
		}
	}
	return ""
}

// deleted reports the outcome of a DELETE in table output; what is e.g.
// "backup vault 'v1'".
func (c *clientCmd) deleted(resp *client.Response, what string) {
	if resp.StatusCode == http.StatusNoContent {
		c.printf("%s%s did not exist.", strings.ToUpper(what[:1]), what[1:])
		return
	}
	c.printf("Deleted %s.", what)
}
