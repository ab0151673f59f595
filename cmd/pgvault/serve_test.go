package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/client"
)

// syncBuffer is a goroutine-safe buffer for a running server's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// served is a `pgvault serve` running in the test.
type served struct {
	addr   string // the logged address, e.g. https://127.0.0.1:41234
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startServe runs `pgvault serve` on 127.0.0.1:0 (the kernel picks a free
// port, which the server logs) with a data directory and extra flags, and
// waits until it serves.
func startServe(t *testing.T, dataDir string, flags ...string) *served {
	t.Helper()
	s := &served{logs: &syncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}, flags...)
	go func() {
		s.done <- run(ctx, args, func(string) string { return "" }, strings.NewReader(""), io.Discard, s.logs)
	}()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for s.addr == "" {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("serve returned before serving: %v\n%s", err, s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start in time:\n%s", s.logs.String())
		}
		if s.addr = servingAddress(s.logs.String()); s.addr == "" {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return s
}

// stop cancels the server's context and checks that it shut down cleanly.
func (s *served) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("serve returned %v\n%s", err, s.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
	if !strings.Contains(s.logs.String(), `"msg":"stopped"`) {
		t.Errorf("no 'stopped' log line:\n%s", s.logs.String())
	}
}

// runWith runs pgvault with an environment and returns its result.
func runWith(env map[string]string, stdin string, args ...string) result {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

func TestServe(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	s := startServe(t, dataDir)
	if !strings.HasPrefix(s.addr, "http://127.0.0.1:") || strings.HasSuffix(s.addr, ":0") {
		t.Fatalf("serving address = %q", s.addr)
	}

	// The first start wrote the administrator's credentials, which the CLI
	// finds in the data directory with the server's URL.
	creds := readCredsFile(t, filepath.Join(dataDir, adminCredentialsFile))
	if creds.Server != s.addr {
		t.Errorf("credentials name the server %q, want %q", creds.Server, s.addr)
	}
	env := map[string]string{"PGVAULT_DATA_DIR": dataDir}
	if r := runWith(env, "", "group", "create", "rg1", "-l", "westeurope", "-o", "json"); r.err != nil {
		t.Fatalf("group create against serve: %v\n%s", r.err, r.stderr)
	}
	// Without a token the API answers 401; with one from `pgvault token`, 200.
	url := s.addr + "/subscriptions/" + defaultSubscription + "/resourcegroups/rg1?api-version=" + client.APIVersionResources
	if status := get(t, http.DefaultClient, url, ""); status != http.StatusUnauthorized {
		t.Errorf("GET without a token: status %d, want 401", status)
	}
	tok := runWith(env, "", "token")
	if tok.err != nil {
		t.Fatalf("pgvault token: %v\n%s", tok.err, tok.stderr)
	}
	if status := get(t, http.DefaultClient, url, strings.TrimSpace(tok.stdout)); status != http.StatusOK {
		t.Errorf("GET the group with the token: status %d", status)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pgvault.db")); err != nil {
		t.Errorf("no database in the data dir: %v", err)
	}
	s.stop(t)
	if strings.Contains(s.logs.String(), creds.ClientSecret) {
		t.Error("the server logged the administrator's secret")
	}
	if _, err := http.Get(s.addr + "/"); err == nil {
		t.Error("the server still answers after shutdown")
	}
}

func TestServeTLSSelfSigned(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	s := startServe(t, dataDir, "--tls-self-signed")
	if !strings.HasPrefix(s.addr, "https://127.0.0.1:") {
		t.Fatalf("serving address = %q, want https", s.addr)
	}
	credsPath := filepath.Join(dataDir, adminCredentialsFile)
	fi, err := os.Stat(credsPath)
	if err != nil {
		t.Fatalf("no credentials file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %04o, want 0600", fi.Mode().Perm())
	}
	creds := readCredsFile(t, credsPath)
	if creds.Server != s.addr || creds.TenantID == "" || creds.ClientID == "" || len(creds.ClientSecret) < 40 {
		t.Errorf("credentials = server %q tenant %q client %q (secret of %d bytes)", creds.Server, creds.TenantID, creds.ClientID, len(creds.ClientSecret))
	}
	certPath := filepath.Join(dataDir, "tls", "cert.pem")
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatalf("no certificate in the data directory: %v", err)
	}
	trusting := trustingClient(t, certPEM)

	// `pgvault token` with only the data directory: the credentials and the
	// certificate to trust are found there.
	env := map[string]string{"PGVAULT_DATA_DIR": dataDir}
	r := runWith(env, "", "token")
	if r.err != nil {
		t.Fatalf("pgvault token: %v\n%s", r.err, r.stderr)
	}
	token := strings.TrimSpace(r.stdout)
	if strings.Count(token, ".") != 2 || strings.Contains(r.stdout, creds.ClientSecret) {
		t.Fatalf("pgvault token printed %q", r.stdout)
	}
	// As curl -H "Authorization: Bearer $(pgvault token)" would use it.
	groups := s.addr + "/subscriptions/" + defaultSubscription + "/resourcegroups?api-version=" + client.APIVersionResources
	if status := get(t, trusting, groups, token); status != http.StatusOK {
		t.Errorf("GET with the printed token: status %d", status)
	}
	// An authenticated command.
	if r := runWith(env, "", "group", "create", "rg1", "-l", "westeurope"); r.err != nil {
		t.Fatalf("group create over TLS: %v\n%s", r.err, r.stderr)
	}
	// A client that does not trust the certificate is told what to do.
	other := map[string]string{"PGVAULT_CREDENTIALS": credsPath, "HOME": t.TempDir()}
	r = runWith(other, "", "group", "list")
	if r.err == nil || !strings.Contains(r.stderr, "certificate") ||
		!strings.Contains(r.stderr, "the server's TLS certificate is not trusted: give its CA certificate with --ca-cert (or PGVAULT_CA_CERT)") {
		t.Errorf("untrusted certificate: %v\n%s", r.err, r.stderr)
	}
	if r := runWith(other, "", "--ca-cert", certPath, "group", "list"); r.err != nil {
		t.Errorf("with --ca-cert: %v\n%s", r.err, r.stderr)
	}
	other["PGVAULT_CA_CERT"] = certPath
	if r := runWith(other, "", "group", "list"); r.err != nil {
		t.Errorf("with PGVAULT_CA_CERT: %v\n%s", r.err, r.stderr)
	}
	servedCert := peerCertificate(t, trusting, s.addr)
	s.stop(t)

	// A restart reuses the certificate and keeps the administrator working;
	// the credentials file follows the server to its new port.
	s = startServe(t, dataDir, "--tls-self-signed")
	again, err := os.ReadFile(certPath)
	if err != nil || !bytes.Equal(again, certPEM) {
		t.Errorf("the certificate changed on restart (%v)", err)
	}
	if got := peerCertificate(t, trusting, s.addr); !bytes.Equal(got, servedCert) {
		t.Error("the restarted server serves another certificate")
	}
	if c := readCredsFile(t, credsPath); c.Server != s.addr || c.ClientSecret != creds.ClientSecret || c.ClientID != creds.ClientID {
		t.Errorf("credentials after restart: server %q (want %q), same client %v, same secret %v",
			c.Server, s.addr, c.ClientID == creds.ClientID, c.ClientSecret == creds.ClientSecret)
	}
	r = runWith(env, "", "group", "show", "rg1", "-o", "json")
	if r.err != nil || !strings.Contains(r.stdout, `"name": "rg1"`) {
		t.Errorf("group show after restart: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if r := runWith(env, "", "token"); r.err != nil || strings.Count(r.stdout, ".") != 2 {
		t.Errorf("pgvault token after restart: %v\n%s", r.err, r.stderr)
	}
	s.stop(t)
	if strings.Contains(s.logs.String(), creds.ClientSecret) {
		t.Error("the server logged the administrator's secret")
	}
}

func TestServeListenAddresses(t *testing.T) {
	// Plain HTTP on a non-loopback address is refused, clearly.
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"serve", "--listen", "0.0.0.0:0", "--data-dir", filepath.Join(t.TempDir(), "data")},
		func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	if err == nil || !strings.Contains(errb.String(), "Error: refusing plain HTTP on 0.0.0.0:") ||
		!strings.Contains(errb.String(), "which is not a loopback address: give --tls-cert and --tls-key or --tls-self-signed (or --insecure-http behind a TLS-terminating proxy)") {
		t.Errorf("serve --listen 0.0.0.0:0 without TLS: %v\n%s", err, errb.String())
	}

	// With TLS it serves, and the credentials name a loopback address the
	// certificate covers, not 0.0.0.0.
	dataDir := filepath.Join(t.TempDir(), "data")
	s := startServe(t, dataDir, "--listen", "0.0.0.0:0", "--tls-self-signed")
	creds := readCredsFile(t, filepath.Join(dataDir, adminCredentialsFile))
	if !strings.HasPrefix(creds.Server, "https://127.0.0.1:") || !strings.HasSuffix(s.addr, creds.Server[strings.LastIndex(creds.Server, ":"):]) {
		t.Errorf("credentials server %q for a server on %s", creds.Server, s.addr)
	}
	if r := runWith(map[string]string{"PGVAULT_DATA_DIR": dataDir}, "", "group", "list"); r.err != nil {
		t.Errorf("group list against a server on 0.0.0.0: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(s.logs.String(), "listening on every address without --public-url") {
		t.Errorf("no warning about the issuer's URL:\n%s", s.logs.String())
	}
}

// readCredsFile reads a credentials file.
func readCredsFile(t *testing.T, path string) *credentials {
	t.Helper()
	c, err := readCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// trustingClient is an HTTP client that trusts only the PEM certificate.
func trustingClient(t *testing.T, certPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in the PEM")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// get sends a GET with an optional bearer token and returns the status.
func get(t *testing.T, hc *http.Client, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// peerCertificate returns the DER certificate a TLS server presents.
func peerCertificate(t *testing.T, hc *http.Client, url string) []byte {
	t.Helper()
	resp, err := hc.Get(url + "/")
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatalf("%s presented no certificate", url)
	}
	der := resp.TLS.PeerCertificates[0].Raw
	// It is the one in the data directory.
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
