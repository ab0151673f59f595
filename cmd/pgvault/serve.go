package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgvault/pgvault/internal/api"
	"github.com/pgvault/pgvault/internal/store/sqlite"
	"github.com/pgvault/pgvault/internal/vault"
)

// serveConfig is everything `pgvault serve` needs, from flags and environment.
type serveConfig struct {
	Listen    string
	DataDir   string
	LogLevel  string
	LogFormat string
	PublicURL string
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
		Listen:    envOr(e.getenv, "PGVAULT_LISTEN", defaultListen),
		DataDir:   envOr(e.getenv, "PGVAULT_DATA_DIR", defaultDataDir(e.getenv)),
		LogLevel:  envOr(e.getenv, "PGVAULT_LOG_LEVEL", "info"),
		LogFormat: envOr(e.getenv, "PGVAULT_LOG_FORMAT", "text"),
		PublicURL: e.getenv("PGVAULT_PUBLIC_URL"),
	}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the pgvault server",
		Long: `Run the pgvault server: the Azure-compatible API over a metadata store and
backup repository kept under the data directory.

Environment variables give the defaults of the flags: PGVAULT_LISTEN,
PGVAULT_DATA_DIR, PGVAULT_LOG_LEVEL, PGVAULT_LOG_FORMAT, PGVAULT_PUBLIC_URL.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), cfg, e)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to listen on (host:port)")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the metadata database and local repositories")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	f.StringVar(&cfg.PublicURL, "public-url", cfg.PublicURL, "base URL clients use to reach the server (default: from each request)")
	return cmd
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
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("while creating the data directory: %w", err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "pgvault.db"))
	if err != nil {
		return fmt.Errorf("while opening the metadata store: %w", err)
	}
	defer st.Close()
	svc, err := vault.New(ctx, vault.Config{Store: st, Logger: log})
	if err != nil {
		return err
	}
	defer svc.Close()
	if err := svc.Start(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("while listening on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           api.New(api.Config{Service: svc, Logger: log, PublicURL: cfg.PublicURL}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("pgvault serving", "address", "http://"+ln.Addr().String(), "data_dir", cfg.DataDir)
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
