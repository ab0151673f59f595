// Package testserver starts a real, authenticated pgvault server for tests in
// one call: the SQLite store in a temporary data directory, the vault
// service, the built-in token issuer and its verifier, the administrator
// principal (Owner at the root scope) and the HTTP API, wired as
// `pgvault serve` wires them, on a loopback port; with Options.Jobs the job
// worker too, which runs backups into repositories in the data directory.
// Nothing is faked.
//
//	ts := testserver.Start(t, testserver.Options{})
//	c := ts.AdminClient()                  // a *client.Client with the admin's credentials
//	tok := ts.Token(t, objectID, clientID) // a token for any principal
package testserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pgvault/pgvault/internal/api"
	"github.com/pgvault/pgvault/internal/auth"
	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/secretbox"
	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/store/sqlite"
	"github.com/pgvault/pgvault/internal/vault"
)

// Options tune a Server. The zero value is a plain HTTP server with the
// API's defaults, except that long-running operations send Retry-After: 0.
type Options struct {
	// TLS serves https with httptest's certificate; HTTPClient, CACertPEM and
	// CACertFile trust it.
	TLS bool
	// PageSize is the number of items per list page; default the API's.
	PageSize int
	// RetryAfter is the Retry-After of long-running operations; default
	// none (Retry-After: 0, clients poll at their own pace).
	RetryAfter time.Duration
	// PublicURL, when set, is the base URL of the absolute links the API
	// writes (nextLink, Azure-AsyncOperation, Location).
	PublicURL string
	// WrapStore, when set, wraps the store the service uses, e.g. to hold a
	// write.
	WrapStore func(store.Store) store.Store
	// TokenLifetime is the lifetime of issued tokens; default the issuer's (1h).
	TokenLifetime time.Duration
	// Jobs runs a job worker, as serve does: backups run, into repositories
	// under DataDir/repositories with the master key
	// DataDir/keys/repository.key. Without it jobs stay queued.
	Jobs bool
	// WrapRepoStorage, with Jobs, wraps the storage of each vault's
	// repository, e.g. with internal/storage/faulty.
	WrapRepoStorage func(vaultID string, st storage.Storage) storage.Storage
	// Prune, with Jobs, tunes prune jobs (e.g. margins of 0).
	Prune repo.PruneOptions
	// Now, when set, is the clock of the vault service, of what jobs record
	// and (unless Prune.Now is set) of prune's margins: tests simulate time
	// with it. Leases run on the real clock.
	Now func() time.Time
	// Concurrency and MaxConcurrentBackups, with Jobs, are the worker's
	// (default 1 job at a time).
	Concurrency          int
	MaxConcurrentBackups int
	// RestoreDirs are the directories restores may write into (file://
	// targets, new servers' data directories).
	RestoreDirs []string
}

// Principal is a service principal and its secret.
type Principal struct {
	Name     string
	ObjectID string
	ClientID string
	TenantID string
	Secret   string
}

// Server is a running pgvault server. It is stopped when the test ends.
type Server struct {
	// URL is the base URL, http://127.0.0.1:port or https://127.0.0.1:port.
	URL string
	// DataDir is the data directory: pgvault.db, keys/, and with TLS
	// tls/cert.pem (the CA certificate clients trust).
	DataDir string
	// TenantID is the installation's tenant.
	TenantID string
	// Admin is the administrator principal (Owner at "/") with its secret.
	Admin Principal
	// Service is the vault service behind the API.
	Service *vault.Service
	// Store is the SQLite store (not wrapped by Options.WrapStore).
	Store *sqlite.Store
	// Issuer is the built-in token issuer.
	Issuer *auth.Issuer
	// CACertPEM is the PEM certificate of a TLS server; nil without TLS.
	CACertPEM []byte
	// CACertFile holds CACertPEM (DataDir/tls/cert.pem); "" without TLS.
	CACertFile string
	// Repositories are the vaults' backup repositories (with Options.Jobs).
	Repositories *job.Repositories

	stopJobs func()

	t       testing.TB
	srv     *httptest.Server
	logs    syncBuffer
	mu      sync.Mutex
	secrets []string // every secret made, none of which may be logged
	closed  bool
}

// Start starts a server; it is stopped, and its log checked for secrets, when
// the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	ctx := context.Background()
	s := &Server{t: t, DataDir: t.TempDir()}
	log := slog.New(slog.NewTextHandler(&s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := sqlite.Open(ctx, filepath.Join(s.DataDir, "pgvault.db"))
	if err != nil {
		t.Fatalf("testserver: opening the store: %v", err)
	}
	s.Store = st
	var vs store.Store = st
	if o.WrapStore != nil {
		vs = o.WrapStore(st)
	}
	key, err := secretbox.LoadOrCreateKey(filepath.Join(s.DataDir, "keys", "secrets.key"))
	if err != nil {
		t.Fatalf("testserver: creating the secrets key: %v", err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	var runner *job.Runner // set before anything can queue a job
	svc, err := vault.New(ctx, vault.Config{Store: vs, Logger: log, Secrets: box, Now: o.Now, RestoreDirs: o.RestoreDirs, JobQueued: func() {
		if runner != nil {
			runner.Wake()
		}
	}})
	if err != nil {
		_ = st.Close()
		t.Fatalf("testserver: creating the vault service: %v", err)
	}
	s.Service, s.TenantID = svc, svc.TenantID()
	t.Cleanup(s.Close)
	if o.Jobs {
		runner = s.startJobs(t, vs, o, log)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatalf("testserver: starting the vault service: %v", err)
	}

	// The issuer needs the server's URL: listen first.
	s.srv = httptest.NewUnstartedServer(nil)
	scheme := "http"
	if o.TLS {
		scheme = "https"
	}
	s.URL = scheme + "://" + s.srv.Listener.Addr().String()
	baseURL := s.URL
	if o.PublicURL != "" {
		baseURL = strings.TrimRight(o.PublicURL, "/")
	}
	s.Issuer, err = auth.NewIssuer(auth.IssuerConfig{
		BaseURL: baseURL, TenantID: s.TenantID, KeyDir: filepath.Join(s.DataDir, "keys"),
		Lifetime: o.TokenLifetime, Clients: svc, Logger: log,
	})
	if err != nil {
		t.Fatalf("testserver: creating the token issuer: %v", err)
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{
		Audiences: auth.DefaultAudiences(),
		Static:    []auth.StaticIssuer{{Issuer: s.Issuer.IssuerURL(), Keys: s.Issuer.PublicKeys()}},
	})
	if err != nil {
		t.Fatalf("testserver: creating the token verifier: %v", err)
	}
	secret := s.newSecret()
	admin, err := svc.SetUpAdmin(ctx, secret)
	if err != nil {
		t.Fatalf("testserver: setting up the administrator: %v", err)
	}
	s.Admin = principal(admin, secret)
	retryAfter := o.RetryAfter
	if retryAfter == 0 {
		retryAfter = -1
	}
	s.srv.Config.Handler = api.New(api.Config{
		Service: svc, Auth: verifier, Issuer: s.Issuer, Logger: log,
		PublicURL: o.PublicURL, RetryAfter: retryAfter, PageSize: o.PageSize,
	})
	s.srv.Config.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	if o.TLS {
		s.srv.StartTLS()
		s.CACertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
		s.CACertFile = filepath.Join(s.DataDir, "tls", "cert.pem")
		if err := os.MkdirAll(filepath.Dir(s.CACertFile), 0o700); err != nil {
			t.Fatalf("testserver: %v", err)
		}
		if err := os.WriteFile(s.CACertFile, s.CACertPEM, 0o644); err != nil {
			t.Fatalf("testserver: %v", err)
		}
	} else {
		s.srv.Start()
	}
	return s
}

// startJobs makes the repositories and runs a job worker until Close.
func (s *Server) startJobs(t testing.TB, st store.Store, o Options, log *slog.Logger) *job.Runner {
	key, err := secretbox.LoadOrCreateKey(filepath.Join(s.DataDir, "keys", "repository.key"))
	if err != nil {
		t.Fatalf("testserver: creating the repository key: %v", err)
	}
	var opts []job.RepositoriesOption
	if o.WrapRepoStorage != nil {
		opts = append(opts, job.WithStorageWrapper(o.WrapRepoStorage))
	}
	s.Repositories = job.NewRepositories(filepath.Join(s.DataDir, "repositories"), key, opts...)
	prune := o.Prune
	if prune.Now == nil {
		prune.Now = o.Now
	}
	runner := job.New(job.Config{Store: st, Service: s.Service, Repos: s.Repositories.Open, Owner: "testserver",
		Lease: 3 * time.Second, PollInterval: 50 * time.Millisecond, ProgressInterval: 100 * time.Millisecond, Prune: prune,
		Concurrency: o.Concurrency, MaxConcurrentBackups: o.MaxConcurrentBackups, Now: o.Now, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := runner.Run(ctx); err != nil {
			t.Errorf("testserver: the job runner: %v", err)
		}
	}()
	s.stopJobs = func() { cancel(); <-done }
	return runner
}

func principal(sp *vault.ServicePrincipal, secret string) Principal {
	return Principal{Name: sp.Name, ObjectID: sp.Properties.ObjectID, ClientID: sp.Properties.ClientID,
		TenantID: sp.Properties.TenantID, Secret: secret}
}

// newSecret returns a 256-bit random secret, as the CLI makes them, and
// remembers it for the log check.
func (s *Server) newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	s.RememberSecret(secret)
	return secret
}

// RememberSecret adds a secret the server's log must never contain (checked
// when the server stops).
func (s *Server) RememberSecret(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, secret)
}

// Close stops the server and the service, closes the store and fails the
// test if the log contains a secret. It is called when the test ends.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
	}
	if s.stopJobs != nil {
		s.stopJobs()
	}
	s.Service.Close()
	if err := s.Store.Close(); err != nil {
		s.t.Errorf("testserver: closing the store: %v", err)
	}
	logs := s.logs.String()
	for _, secret := range s.secrets {
		if strings.Contains(logs, secret) {
			s.t.Errorf("testserver: the server's log contains a client secret")
		}
	}
}

// Logs returns what the server has logged so far (text, debug level).
func (s *Server) Logs() string { return s.logs.String() }

// HTTPClient returns an HTTP client of the server (trusting its certificate
// when it serves TLS).
func (s *Server) HTTPClient() *http.Client { return s.srv.Client() }

// Token mints a token for any principal with the server's issuer, as the
// token endpoint would for a principal with that object and client ID.
func (s *Server) Token(t testing.TB, objectID, clientID string) string {
	t.Helper()
	tok, _, err := s.Issuer.Mint(auth.Principal{ObjectID: objectID, ClientID: clientID, TenantID: s.TenantID}, "")
	if err != nil {
		t.Fatalf("testserver: minting a token: %v", err)
	}
	return tok
}

// AdminToken mints a token for the administrator.
func (s *Server) AdminToken(t testing.TB) string {
	t.Helper()
	return s.Token(t, s.Admin.ObjectID, s.Admin.ClientID)
}

// Credentials returns a token source with p's client credentials that gets
// tokens from the server's issuer.
func (s *Server) Credentials(p Principal) *client.ClientCredentials {
	return &client.ClientCredentials{Server: s.URL, TenantID: s.TenantID, ClientID: p.ClientID, ClientSecret: p.Secret, HTTPClient: s.HTTPClient()}
}

// Client returns an API client authenticated as p with client credentials.
func (s *Server) Client(p Principal) *client.Client {
	c := client.New(s.URL, s.HTTPClient())
	c.Auth = s.Credentials(p)
	return c
}

// AdminClient returns an API client authenticated as the administrator.
func (s *Server) AdminClient() *client.Client { return s.Client(s.Admin) }

// NewPrincipal creates a service principal with a random secret, directly in
// the service. It has no role until one is assigned.
func (s *Server) NewPrincipal(t testing.TB, name string) Principal {
	t.Helper()
	secret := s.newSecret()
	sp, _, err := s.Service.PutServicePrincipal(context.Background(), name, secret, true)
	if err != nil {
		t.Fatalf("testserver: creating service principal %s: %v", name, err)
	}
	return principal(sp, secret)
}

// Assign gives a principal a built-in role (by name) at a scope, directly in
// the service, and returns the assignment's name.
func (s *Server) Assign(t testing.TB, objectID, role, scope string) string {
	t.Helper()
	r, ok := auth.RoleByName(role)
	if !ok {
		t.Fatalf("testserver: no built-in role %q", role)
	}
	name := uuid.NewString()
	_, _, err := s.Service.PutRoleAssignment(context.Background(), scope, name, vault.RoleAssignmentProperties{
		RoleDefinitionID: vault.RoleDefinitionID(scope, r.ID), PrincipalID: objectID,
	}, vault.Principal{ID: s.Admin.ObjectID, Type: "Application"})
	if err != nil {
		t.Fatalf("testserver: assigning %s to %s at %s: %v", role, objectID, scope, err)
	}
	return name
}

// syncBuffer collects the log of concurrent requests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
