package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/tlscert"
)

// connection is the server a client command talks to and how.
type connection struct {
	server string
	hc     *http.Client
	// auth gives the bearer tokens.
	auth client.TokenSource
	// creds are the credentials file's contents; nil when none was read.
	creds *credentials
}

// dataDir is the server's data directory as the client sees it: where the
// default credentials file and CA certificate are.
func (c *clientCmd) dataDir() string {
	return envOr(c.e.getenv, "PGVAULT_DATA_DIR", defaultDataDir(c.e.getenv))
}

// credentialsPath is the credentials file to read and whether it was named
// by --credentials or PGVAULT_CREDENTIALS.
func (c *clientCmd) credentialsPath() (path string, explicit bool) {
	if c.credentials != "" {
		return c.credentials, true
	}
	return filepath.Join(c.dataDir(), adminCredentialsFile), false
}

// loadCredentials reads the credentials file. The default file may be
// missing (nil, no error); a named one must be readable.
func (c *clientCmd) loadCredentials() (*credentials, error) {
	path, explicit := c.credentialsPath()
	creds, err := readCredentials(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(c.e.stderr, "warning: the credentials file %s may be read by other users (mode %04o); make it private with: chmod 600 %s\n",
			path, fi.Mode().Perm(), path)
	}
	return creds, nil
}

// serverURL is --server or PGVAULT_SERVER when given, else the server the
// credentials name, else the default.
func (c *clientCmd) serverURL(creds *credentials) string {
	if c.serverFlag.Changed || c.e.getenv("PGVAULT_SERVER") != "" {
		return c.server
	}
	if creds != nil && creds.Server != "" {
		return creds.Server
	}
	return c.server
}

// httpClient is the HTTP client of every request: it trusts the system's
// CAs and the --ca-cert certificate (by default the data directory's
// tls/cert.pem, when it exists).
func (c *clientCmd) httpClient() (*http.Client, error) {
	hc := &http.Client{Timeout: requestTimeout}
	path, explicit := c.caCert, c.caCert != ""
	if !explicit {
		path = filepath.Join(c.dataDir(), "tls", tlscert.CertFile)
	}
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return hc, nil
		}
		return nil, fmt.Errorf("while reading the CA certificate (--ca-cert or PGVAULT_CA_CERT): %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("while reading the CA certificate: %s holds no PEM certificate", path)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	hc.Transport = tr
	return hc, nil
}

// connect works out the server, the TLS trust and the token source:
// PGVAULT_TOKEN when set, else the client credentials of the credentials file.
func (c *clientCmd) connect() (*connection, error) {
	token := strings.TrimSpace(c.e.getenv("PGVAULT_TOKEN"))
	creds, err := c.loadCredentials()
	if err != nil && token == "" {
		return nil, err
	}
	conn := &connection{server: c.serverURL(creds), creds: creds}
	if err := client.CheckBaseURL(conn.server); err != nil {
		return nil, fmt.Errorf("while checking --server (or PGVAULT_SERVER): %w", err)
	}
	if conn.hc, err = c.httpClient(); err != nil {
		return nil, err
	}
	switch {
	case token != "":
		conn.auth = client.StaticToken(strings.TrimSpace(strings.TrimPrefix(token, "Bearer ")))
	case creds != nil:
		conn.auth = &client.ClientCredentials{Server: conn.server, TenantID: creds.TenantID, ClientID: creds.ClientID,
			ClientSecret: creds.ClientSecret, HTTPClient: conn.hc}
	default:
		path, _ := c.credentialsPath()
		return nil, fmt.Errorf("no credentials: %s does not exist; give a credentials file with --credentials (or PGVAULT_CREDENTIALS) "+
			"or a token in PGVAULT_TOKEN (`pgvault serve` writes the administrator's %s in its data directory, "+
			"which PGVAULT_DATA_DIR names; `pgvault principal create --credentials-out` writes others)", path, adminCredentialsFile)
	}
	return conn, nil
}

// explain adds what to do to errors whose cause is not obvious: a server
// certificate that is not trusted.
func explain(err error) error {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknown) || errors.As(err, &verify) {
		return fmt.Errorf("%w\nthe server's TLS certificate is not trusted: give its CA certificate with --ca-cert (or PGVAULT_CA_CERT); "+
			"a server started with --tls-self-signed keeps it in tls/%s in its data directory", err, tlscert.CertFile)
	}
	return err
}

// tokenOutput is the JSON output of `pgvault token`.
type tokenOutput struct {
	AccessToken string     `json:"accessToken"`
	ExpiresOn   *time.Time `json:"expiresOn,omitempty"`
	TokenType   string     `json:"tokenType"`
}

// maxSecretBytes bounds a client secret read from standard input.
const maxSecretBytes = 64 << 10

func (c *clientCmd) tokenCmd() *cobra.Command {
	var clientID, tenant string
	cmd := &cobra.Command{
		Use:   "token [--client-id ID [--tenant TENANT]]",
		Short: "Print an access token for the pgvault API",
		Long: `Print an access token (a bearer token for the Authorization header) from the
server's built-in issuer, for scripts:

  curl -H "Authorization: Bearer $(pgvault token)" "$PGVAULT_SERVER/subscriptions/..."

The client credentials come from the credentials file (--credentials), or,
with --client-id, from the client secret in PGVAULT_CLIENT_SECRET or on
standard input; the tenant is --tenant, else the credentials file's. When
PGVAULT_TOKEN is set (and no --client-id), it is printed as it is.

With -o json it prints {"accessToken","expiresOn","tokenType"}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.checkOutput(); err != nil {
				return err
			}
			out, err := c.token(cmd.Context(), clientID, tenant)
			if err != nil {
				return explain(err)
			}
			if c.output == outputJSON {
				raw, err := json.Marshal(out)
				if err != nil {
					return fmt.Errorf("while encoding the token: %w", err)
				}
				return c.printJSON(raw)
			}
			_, err = fmt.Fprintln(c.e.stdout, out.AccessToken)
			return err
		},
	}
	cmd.Flags().StringVar(&clientID, "client-id", "", "client ID of a service principal (its secret from PGVAULT_CLIENT_SECRET or standard input)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant ID (default: the credentials file's)")
	return cmd
}

// token gets the token `pgvault token` prints.
func (c *clientCmd) token(ctx context.Context, clientID, tenant string) (*tokenOutput, error) {
	if clientID == "" {
		if tenant != "" {
			return nil, errors.New("--tenant goes with --client-id")
		}
		conn, err := c.connect()
		if err != nil {
			return nil, err
		}
		if cc, ok := conn.auth.(*client.ClientCredentials); ok {
			t, err := cc.AccessToken(ctx)
			if err != nil {
				return nil, err
			}
			return &tokenOutput{AccessToken: t.Token, ExpiresOn: &t.ExpiresOn, TokenType: "Bearer"}, nil
		}
		tok, err := conn.auth.Token(ctx)
		if err != nil {
			return nil, err
		}
		return &tokenOutput{AccessToken: tok, TokenType: "Bearer"}, nil
	}
	creds, credsErr := c.loadCredentials()
	if tenant == "" {
		switch {
		case creds != nil:
			tenant = creds.TenantID
		case credsErr != nil:
			return nil, fmt.Errorf("give --tenant, or a credentials file to take the tenant from: %w", credsErr)
		default:
			return nil, errors.New("give --tenant: there is no credentials file to take the tenant from")
		}
	}
	secret := c.e.getenv("PGVAULT_CLIENT_SECRET")
	if secret == "" {
		b, err := io.ReadAll(io.LimitReader(c.e.stdin, maxSecretBytes))
		if err != nil {
			return nil, fmt.Errorf("while reading the client secret from standard input: %w", err)
		}
		secret = string(b)
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return nil, errors.New("no client secret: give it in PGVAULT_CLIENT_SECRET or on standard input")
	}
	server := c.serverURL(creds)
	if err := client.CheckBaseURL(server); err != nil {
		return nil, fmt.Errorf("while checking --server (or PGVAULT_SERVER): %w", err)
	}
	hc, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	cc := &client.ClientCredentials{Server: server, TenantID: tenant, ClientID: clientID, ClientSecret: secret, HTTPClient: hc}
	t, err := cc.AccessToken(ctx)
	if err != nil {
		return nil, err
	}
	return &tokenOutput{AccessToken: t.Token, ExpiresOn: &t.ExpiresOn, TokenType: "Bearer"}, nil
}
