package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/api"
	"github.com/pgvault/pgvault/internal/auth"
	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/schedule"
	"github.com/pgvault/pgvault/internal/secretbox"
	"github.com/pgvault/pgvault/internal/store/sqlite"
	"github.com/pgvault/pgvault/internal/tlscert"
	"github.com/pgvault/pgvault/internal/vault"
)

// serveConfig is everything `pgvault serve` needs, from flags and environment.
type serveConfig struct {
	Listen    string
	DataDir   string
	LogLevel  string
	LogFormat string
	PublicURL string
	// TLS: a certificate and key, or a self-signed certificate kept in the data directory.
	TLSCert       string
	TLSKey        string
	TLSSelfSigned bool
	// InsecureHTTP allows plain HTTP on a non-loopback address (behind a TLS proxy).
	InsecureHTTP bool
	// OIDCIssuers are external token issuers to trust besides the built-in one.
	OIDCIssuers []string
	// Audiences are the accepted token audiences.
	Audiences []string
	// SecretsKeyFile holds the key that encrypts database passwords
	// (default: keys/secrets.key in the data directory).
	SecretsKeyFile string
	// RepoKeyFile holds the master key that wraps every repository's key
	// (default: keys/repository.key in the data directory).
	RepoKeyFile string
	// LtrLocalDirs are the directories startLtrBackup may write into
	// through file:// URLs (pgvault's extension); none by default.
	LtrLocalDirs []string
	// RestoreLocalDirs are the directories a restore may write into
	// through file:// URLs (pgvault's extension); none by default.
	RestoreLocalDirs []string
	// PGInstallDir holds the PostgreSQL installations (<dir>/<major>/bin)
	// that start servers restored as new servers.
	PGInstallDir string
	// PruneInterval is how often every vault's repository is pruned (0: never).
	PruneInterval time.Duration
	// MaxConcurrentBackups is how many backups this node runs at once; the
	// others wait queued.
	MaxConcurrentBackups int
	// ScheduleInterval is how often due backups are queued and expired
	// recovery points deleted (0: never, for nodes that only serve).
	ScheduleInterval time.Duration
	// Node names this process among several serving one data directory
	// (its job leases); "" uses the node ID kept in the data directory.
	Node string
}

// defaultAudiences are the audiences Azure Resource Manager tokens carry.
var defaultAudiences = []string{
	"https://management.azure.com", "https://management.azure.com/",
	"https://management.core.windows.net", "https://management.core.windows.net/",
}

// defaultListen is where the server listens unless told otherwise.
const defaultListen = "127.0.0.1:7070"

func defaultDataDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "pgvault")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "pgvault")
	}
	return "pgvault-data"
}

func newServeCmd(e *env) *cobra.Command {
	cfg := serveConfig{
		Listen:           envOr(e.getenv, "PGVAULT_LISTEN", defaultListen),
		DataDir:          envOr(e.getenv, "PGVAULT_DATA_DIR", defaultDataDir(e.getenv)),
		LogLevel:         envOr(e.getenv, "PGVAULT_LOG_LEVEL", "info"),
		LogFormat:        envOr(e.getenv, "PGVAULT_LOG_FORMAT", "text"),
		PublicURL:        e.getenv("PGVAULT_PUBLIC_URL"),
		TLSCert:          e.getenv("PGVAULT_TLS_CERT"),
		TLSKey:           e.getenv("PGVAULT_TLS_KEY"),
		TLSSelfSigned:    e.getenv("PGVAULT_TLS_SELF_SIGNED") == "true",
		InsecureHTTP:     e.getenv("PGVAULT_INSECURE_HTTP") == "true",
		OIDCIssuers:      splitList(e.getenv("PGVAULT_OIDC_ISSUERS")),
		Audiences:        splitList(e.getenv("PGVAULT_AUDIENCES")),
		SecretsKeyFile:   e.getenv("PGVAULT_SECRETS_KEY_FILE"),
		RepoKeyFile:      e.getenv("PGVAULT_REPOSITORY_KEY_FILE"),
		LtrLocalDirs:     filepath.SplitList(e.getenv("PGVAULT_LTR_LOCAL_DIRS")),
		RestoreLocalDirs: filepath.SplitList(e.getenv("PGVAULT_RESTORE_LOCAL_DIRS")),
		PGInstallDir:     e.getenv("PGVAULT_PG_INSTALL_DIR"),
		Node:             e.getenv("PGVAULT_NODE"),
	}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the pgvault server",
		Long: `Run the pgvault server: the Azure-compatible API over a metadata store and
backup repository kept under the data directory.

Every request needs an OAuth2 bearer token, from the built-in issuer
(POST /{tenant}/oauth2/v2.0/token with client credentials) or from an
external OIDC issuer given with --oidc-issuer. On first start pgvault creates
an administrator principal with the Owner role and writes its credentials to
admin-credentials.json in the data directory (readable only by its owner);
` + "`pgvault token`" + ` turns them into a token.

Plain HTTP is served only on loopback addresses unless --insecure-http; give
--tls-cert and --tls-key, or --tls-self-signed to create (once) and reuse a
self-signed certificate under the data directory.

Environment variables give the defaults of the flags: PGVAULT_LISTEN,
PGVAULT_DATA_DIR, PGVAULT_LOG_LEVEL, PGVAULT_LOG_FORMAT, PGVAULT_PUBLIC_URL,
PGVAULT_TLS_CERT, PGVAULT_TLS_KEY, PGVAULT_TLS_SELF_SIGNED=true,
PGVAULT_INSECURE_HTTP=true, PGVAULT_SECRETS_KEY_FILE,
PGVAULT_REPOSITORY_KEY_FILE, PGVAULT_OIDC_ISSUERS and PGVAULT_AUDIENCES
(comma-separated), PGVAULT_LTR_LOCAL_DIRS (colon-separated),
PGVAULT_PRUNE_INTERVAL (e.g. 1h), PGVAULT_SCHEDULE_INTERVAL (e.g. 30s),
PGVAULT_MAX_CONCURRENT_BACKUPS, PGVAULT_NODE.

The repository master key (keys/repository.key, or --repository-key-file)
encrypts every backup: without it no backup can be read. Back it up apart
from the data directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, d := range []struct {
				flag, env, example string
				dst                *time.Duration
			}{
				{"prune-interval", "PGVAULT_PRUNE_INTERVAL", "1h or 30m (0 never prunes)", &cfg.PruneInterval},
				{"schedule-interval", "PGVAULT_SCHEDULE_INTERVAL", "30s (0 never queues scheduled backups)", &cfg.ScheduleInterval},
			} {
				if v := e.getenv(d.env); v != "" && !cmd.Flags().Changed(d.flag) {
					parsed, err := time.ParseDuration(v)
					if err != nil {
						return fmt.Errorf("invalid %s %q: give a duration such as %s", d.env, v, d.example)
					}
					*d.dst = parsed
				}
				if *d.dst < 0 {
					return fmt.Errorf("invalid --%s %v: give 0 (never) or a positive duration", d.flag, *d.dst)
				}
			}
			if !validNodeName(cfg.Node) {
				return fmt.Errorf("invalid --node %q: use 1 to 64 letters, digits, '-', '_' or '.'", cfg.Node)
			}
			if v := e.getenv("PGVAULT_MAX_CONCURRENT_BACKUPS"); v != "" && !cmd.Flags().Changed("max-concurrent-backups") {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("invalid PGVAULT_MAX_CONCURRENT_BACKUPS %q: give a number of backups such as 2", v)
				}
				cfg.MaxConcurrentBackups = n
			}
			if cfg.MaxConcurrentBackups < 1 {
				return fmt.Errorf("invalid --max-concurrent-backups %d: give at least 1", cfg.MaxConcurrentBackups)
			}
			return serve(cmd.Context(), cfg, e)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to listen on (host:port)")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the metadata database and local repositories")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	f.StringVar(&cfg.PublicURL, "public-url", cfg.PublicURL, "base URL clients use to reach the server (default: from the listen address)")
	f.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "TLS certificate file (PEM)")
	f.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "TLS private key file (PEM)")
	f.BoolVar(&cfg.TLSSelfSigned, "tls-self-signed", cfg.TLSSelfSigned, "serve TLS with a self-signed certificate kept in the data directory")
	f.BoolVar(&cfg.InsecureHTTP, "insecure-http", cfg.InsecureHTTP, "allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)")
	f.StringSliceVar(&cfg.OIDCIssuers, "oidc-issuer", cfg.OIDCIssuers, "external OIDC issuer URL whose tokens are accepted (repeatable)")
	f.StringVar(&cfg.SecretsKeyFile, "secrets-key-file", cfg.SecretsKeyFile, "file with the key that encrypts database passwords, created if missing (default: keys/secrets.key in the data directory)")
	f.StringVar(&cfg.RepoKeyFile, "repository-key-file", cfg.RepoKeyFile, "file with the master key of the backup repositories, created if missing (default: keys/repository.key in the data directory); without it no backup can be read")
	f.StringArrayVar(&cfg.LtrLocalDirs, "ltr-local-dir", cfg.LtrLocalDirs, "directory inside which startLtrBackup may write backups given as file:// URLs (repeatable; none by default)")
	f.StringArrayVar(&cfg.RestoreLocalDirs, "restore-local-dir", cfg.RestoreLocalDirs, "directory inside which a restore may write files given as file:// URLs, or a new server's data directory (repeatable; none by default)")
	f.StringVar(&cfg.PGInstallDir, "pg-install-dir", cfg.PGInstallDir, "directory of the PostgreSQL installations (<dir>/<major>/bin) that start servers restored as new servers (default /usr/lib/postgresql)")
	f.DurationVar(&cfg.PruneInterval, "prune-interval", time.Hour, "how often to reclaim the space of expired and deleted recovery points in every vault (0: never)")
	f.DurationVar(&cfg.ScheduleInterval, "schedule-interval", schedule.DefaultInterval, "how often to queue the backups policies make due and to expire recovery points (0: never)")
	f.StringVar(&cfg.Node, "node", cfg.Node, "name of this process when several `pgvault serve` share one data directory (default: the node ID kept in it)")
	f.IntVar(&cfg.MaxConcurrentBackups, "max-concurrent-backups", 2, "how many backups this node runs at once; more wait queued")
	f.StringSliceVar(&cfg.Audiences, "audience", cfg.Audiences, "accepted token audience (repeatable; default: Azure Resource Manager's)")
	return cmd
}

// openSecrets loads (or creates) the key that encrypts database passwords.
func openSecrets(keyFile, dataDir string) (*secretbox.Box, error) {
	if keyFile == "" {
		keyFile = filepath.Join(dataDir, "keys", "secrets.key")
	}
	key, err := secretbox.LoadOrCreateKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("while loading the secrets key: %w", err)
	}
	return secretbox.New(key)
}

// absDirs makes directories absolute (relative to the working directory).
func absDirs(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		if d == "" {
			continue
		}
		a, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("while resolving the directory %q: %w", d, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func newLogger(cfg serveConfig, e *env) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("invalid log level %q: use debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(cfg.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return nil, fmt.Errorf("invalid log format %q: use text or json", cfg.LogFormat)
}

// serve runs the server until ctx is done, then shuts down gracefully.
func serve(ctx context.Context, cfg serveConfig, e *env) error {
	log, err := newLogger(cfg, e)
	if err != nil {
		return err
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("give both --tls-cert and --tls-key, or neither")
	}
	useTLS := cfg.TLSCert != "" || cfg.TLSSelfSigned
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("while creating the data directory: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("while listening on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); !useTLS && !cfg.InsecureHTTP && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("refusing plain HTTP on %s, which is not a loopback address: give --tls-cert and --tls-key or --tls-self-signed (or --insecure-http behind a TLS-terminating proxy)", cfg.Listen)
	}
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	baseURL := strings.TrimRight(cfg.PublicURL, "/")
	if baseURL == "" {
		baseURL = scheme + "://" + ln.Addr().String()
	}

	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "pgvault.db"))
	if err != nil {
		return fmt.Errorf("while opening the metadata store: %w", err)
	}
	defer st.Close()
	box, err := openSecrets(cfg.SecretsKeyFile, cfg.DataDir)
	if err != nil {
		return err
	}
	var runner *job.Runner // set before anything can queue a job
	ltrDirs, err := absDirs(cfg.LtrLocalDirs)
	if err != nil {
		return err
	}
	restoreDirs, err := absDirs(cfg.RestoreLocalDirs)
	if err != nil {
		return err
	}
	svc, err := vault.New(ctx, vault.Config{Store: st, Logger: log, Secrets: box, JobQueued: func() { runner.Wake() },
		LocalTargetDirs: ltrDirs, RestoreDirs: restoreDirs})
	if err != nil {
		return err
	}
	defer svc.Close()
	repoKeyFile := cfg.RepoKeyFile
	if repoKeyFile == "" {
		repoKeyFile = filepath.Join(cfg.DataDir, "keys", "repository.key")
	}
	repoKey, err := secretbox.LoadOrCreateKey(repoKeyFile)
	if err != nil {
		return fmt.Errorf("while loading the repository master key: %w", err)
	}
	repos := job.NewRepositories(filepath.Join(cfg.DataDir, "repositories"), repoKey)
	owner, err := nodeID(cfg.DataDir)
	if err != nil {
		return err
	}
	if cfg.Node != "" {
		owner += "/" + cfg.Node
	}
	// Room for the backups and two other jobs (prunes, restores) beside them.
	runner = job.New(job.Config{Store: st, Service: svc, Repos: repos.Open, Owner: owner, Logger: log,
		Concurrency: cfg.MaxConcurrentBackups + 2, MaxConcurrentBackups: cfg.MaxConcurrentBackups, PGInstallDir: cfg.PGInstallDir})
	// Before anything serves: the jobs a killed process left Running fail
	// now, so that no client ever sees them in progress.
	if err := runner.FailOrphans(ctx); err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	runCtx, stopRunner := context.WithCancel(context.WithoutCancel(ctx))
	runnerDone := make(chan error, 1)
	go func() { runnerDone <- runner.Run(runCtx) }()
	pruneLoopDone := make(chan struct{})
	go func() {
		defer close(pruneLoopDone)
		if cfg.PruneInterval > 0 {
			job.QueuePrunesEvery(runCtx, svc, cfg.PruneInterval, log)
		}
	}()
	defer func() { stopRunner(); <-pruneLoopDone }()
	scheduleDone := make(chan struct{})
	go func() {
		defer close(scheduleDone)
		if cfg.ScheduleInterval > 0 {
			schedule.Run(runCtx, schedule.Config{Service: svc, Interval: cfg.ScheduleInterval, Logger: log})
		}
	}()
	defer func() { stopRunner(); <-scheduleDone }()
	defer func() {
		stopRunner()
		if err := <-runnerDone; err != nil {
			log.Error("the job runner stopped with an error", "err", err)
		}
	}()
	issuer, err := auth.NewIssuer(auth.IssuerConfig{
		BaseURL: baseURL, TenantID: svc.TenantID(), KeyDir: filepath.Join(cfg.DataDir, "keys"), Clients: svc, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("while starting the token issuer: %w", err)
	}
	if err := ensureAdmin(ctx, svc, cfg.DataDir, localURL(scheme, ln.Addr(), cfg.PublicURL), log); err != nil {
		return err
	}
	audiences := cfg.Audiences
	if len(audiences) == 0 {
		audiences = defaultAudiences
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{
		Audiences: audiences,
		Static:    []auth.StaticIssuer{{Issuer: issuer.IssuerURL(), Keys: issuer.PublicKeys()}},
		OIDC:      cfg.OIDCIssuers,
	})
	if err != nil {
		return fmt.Errorf("while setting up token verification: %w", err)
	}

	srv := &http.Server{
		Handler:           api.New(api.Config{Service: svc, Auth: verifier, Issuer: issuer, Logger: log, PublicURL: cfg.PublicURL}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if useTLS {
		cert, err := loadCertificate(cfg, host)
		if err != nil {
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	if ip := net.ParseIP(host); cfg.PublicURL == "" && ip != nil && ip.IsUnspecified() {
		log.Warn("listening on every address without --public-url: the token issuer names itself by the unspecified address, "+
			"which remote clients cannot reach (azidentity refuses it); give --public-url with the URL clients use", "issuer", issuer.IssuerURL())
	}
	log.Info("pgvault serving", "address", scheme+"://"+ln.Addr().String(), "issuer", issuer.IssuerURL(), "data_dir", cfg.DataDir)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("while serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("while shutting down: %w", err)
	}
	log.Info("stopped")
	return nil
}

// localURL is the server URL written to the credentials file: the public
// URL when there is one, else the listen address, with a loopback address in
// place of an unspecified one (0.0.0.0 or ::), which is no address to
// connect to nor one the self-signed certificate names.
func localURL(scheme string, addr net.Addr, publicURL string) string {
	if publicURL != "" {
		return strings.TrimRight(publicURL, "/")
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // Go listens on both IPv4 and IPv6 for 0.0.0.0 and ::
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func loadCertificate(cfg serveConfig, host string) (tls.Certificate, error) {
	if cfg.TLSCert != "" {
		c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("while loading the TLS certificate: %w", err)
		}
		return c, nil
	}
	var hosts []string
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		hosts = append(hosts, host)
	}
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	return tlscert.SelfSigned(filepath.Join(cfg.DataDir, "tls"), hosts, time.Now())
}

// validNodeName allows "" or 1 to 64 letters, digits, '-', '_' and '.'.
func validNodeName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
