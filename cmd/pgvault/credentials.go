package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgvault/pgvault/internal/vault"
)

// adminCredentialsFile is where the administrator's credentials are kept in
// the data directory.
const adminCredentialsFile = "admin-credentials.json"

// credentials are a principal's client credentials, as kept in a file that
// only its owner may read. `pgvault token` and the CLI turn them into tokens.
type credentials struct {
	// Server is pgvault's base URL, also the authority host of its issuer.
	Server       string `json:"server"`
	TenantID     string `json:"tenantId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

// newSecret returns a 256-bit random client secret.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ensureAdmin creates the administrator principal on first start and writes
// its credentials file. On later starts it points the file at serverURL when
// the server moved (a new port or scheme), keeping its secret.
func ensureAdmin(ctx context.Context, svc *vault.Service, dataDir, serverURL string, log *slog.Logger) error {
	path := filepath.Join(dataDir, adminCredentialsFile)
	admin, err := svc.Admin(ctx)
	if err == nil {
		creds, rerr := readCredentials(path)
		switch {
		case errors.Is(rerr, fs.ErrNotExist):
			log.Warn("the administrator's credentials file is missing; make new credentials with `pgvault admin reset-credentials`", "file", path)
		case rerr != nil:
			log.Warn("the administrator's credentials file is unreadable; make new credentials with `pgvault admin reset-credentials`", "file", path, "error", rerr)
		case !strings.EqualFold(creds.ClientID, admin.Properties.ClientID):
			log.Warn("the administrator's credentials file is not the administrator's; make new credentials with `pgvault admin reset-credentials`", "file", path)
		case creds.Server != serverURL:
			creds.Server = serverURL
			if err := writeCredentials(path, *creds); err != nil {
				return err
			}
			log.Info("administrator credentials file updated with the server's URL", "file", path, "server", serverURL)
		}
		return nil
	}
	if e, ok := vault.AsError(err); !ok || e.Kind != vault.KindNotFound {
		return fmt.Errorf("while looking up the administrator: %w", err)
	}
	return resetAdmin(ctx, svc, path, serverURL, log)
}

// resetAdmin gives the administrator (created if needed) a new secret and
// writes the credentials file.
func resetAdmin(ctx context.Context, svc *vault.Service, path, baseURL string, log *slog.Logger) error {
	secret := newSecret()
	sp, err := svc.SetUpAdmin(ctx, secret)
	if err != nil {
		return fmt.Errorf("while setting up the administrator: %w", err)
	}
	c := credentials{Server: baseURL, TenantID: sp.Properties.TenantID, ClientID: sp.Properties.ClientID, ClientSecret: secret}
	if err := writeCredentials(path, c); err != nil {
		return err
	}
	log.Info("administrator credentials written", "client_id", c.ClientID, "file", path)
	return nil
}

// writeCredentials writes a credentials file readable only by its owner.
func writeCredentials(path string, c credentials) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("while encoding credentials: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	return nil
}

// readCredentials reads a credentials file.
func readCredentials(path string) (*credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("while reading credentials: %w", err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("while reading credentials from %s: %w", path, err)
	}
	if c.TenantID == "" || c.ClientID == "" || c.ClientSecret == "" {
		return nil, errors.New("the credentials file " + path + " lacks tenantId, clientId or clientSecret")
	}
	return &c, nil
}
