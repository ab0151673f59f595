package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/dataprotection/armdataprotection/v3"

	"github.com/pgvault/pgvault/internal/api"
	"github.com/pgvault/pgvault/internal/api/apitest"
	"github.com/pgvault/pgvault/internal/auth"
	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/secretbox"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/store/sqlite"
	"github.com/pgvault/pgvault/internal/vault"
)

const testSub = "5f3c1a2b-9d4e-4f60-8a7b-1c2d3e4f5a6b"

// testEnv is a real pgvault server (sqlite store in a temp dir, vault
// service, HTTP API) on a loopback port.
type testEnv struct {
	t            testing.TB
	dir          string
	pageSize     int
	tls          bool
	oidc         []string // external issuers to trust
	noRunner     bool     // do not run the job workers (jobs stay queued)
	ltrDirs      []string // directories allowed as file:// LTR backup targets
	restoreDirs  []string // directories allowed as file:// restore targets
	pgInstallDir string   // PostgreSQL installations that start restored servers
	runner       *job.Runner
	stopJobs     func()
	logs         *syncBuffer
	bodies       syncBuffer // every raw response body and header, for leak checks
	store        *sqlite.Store
	svc          *vault.Service
	issuer       *auth.Issuer
	srv          *httptest.Server
	URL          string
	// admin is the administrator principal (Owner at "/") and its secret.
	admin       *vault.ServicePrincipal
	adminSecret string
	adminTok    string // cached per server start
}

// syncBuffer collects logs from concurrent writers.
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

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir()}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *testEnv) start() {
	t := e.t
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(e.dir, "pgvault.db"))
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	key, err := secretbox.LoadOrCreateKey(filepath.Join(e.dir, "keys", "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	if e.logs == nil {
		e.logs = &syncBuffer{}
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var runner *job.Runner
	svc, err := vault.New(ctx, vault.Config{Store: st, Secrets: box, Logger: log, LocalTargetDirs: e.ltrDirs, RestoreDirs: e.restoreDirs, JobQueued: func() {
		if runner != nil {
			runner.Wake()
		}
	}})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	repoKey, err := secretbox.LoadOrCreateKey(filepath.Join(e.dir, "keys", "repository.key"))
	if err != nil {
		t.Fatal(err)
	}
	runner = job.New(job.Config{Store: st, Service: svc, Owner: "test-node", Lease: 3 * time.Second, PollInterval: 50 * time.Millisecond, Logger: log, PGInstallDir: e.pgInstallDir,
		Repos: job.NewRepositories(filepath.Join(e.dir, "repositories"), repoKey).Open})
	e.runner = runner
	e.stopJobs = func() {}
	if !e.noRunner {
		e.startJobs()
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatalf("starting service: %v", err)
	}
	e.store, e.svc = st, svc
	// The server's URL must be known before the issuer is made: listen first.
	e.srv = httptest.NewUnstartedServer(nil)
	scheme := "http"
	if e.tls {
		scheme = "https"
	}
	base := scheme + "://" + e.srv.Listener.Addr().String()
	issuer, err := auth.NewIssuer(auth.IssuerConfig{BaseURL: base, TenantID: svc.TenantID(), KeyDir: filepath.Join(e.dir, "keys"), Clients: svc, Logger: log})
	if err != nil {
		t.Fatalf("creating issuer: %v", err)
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{
		Audiences: []string{"https://management.azure.com", "https://management.azure.com/"},
		Static:    []auth.StaticIssuer{{Issuer: issuer.IssuerURL(), Keys: issuer.PublicKeys()}},
		OIDC:      e.oidc,
	})
	if err != nil {
		t.Fatalf("creating verifier: %v", err)
	}
	e.issuer, e.adminTok = issuer, ""
	if e.adminSecret == "" {
		e.adminSecret = strings.Repeat("s3cr3t-", 8)
		if e.admin, err = svc.SetUpAdmin(ctx, e.adminSecret); err != nil {
			t.Fatalf("setting up the admin: %v", err)
		}
	}
	e.srv.Config.Handler = api.New(api.Config{Service: svc, Auth: verifier, Issuer: issuer, Logger: log, RetryAfter: -1, PageSize: e.pageSize})
	if e.tls {
		e.srv.StartTLS()
	} else {
		e.srv.Start()
	}
	e.URL = e.srv.URL
}

// token mints a token for a principal with the server's own issuer.
func (e *testEnv) token(objectID, clientID string) string {
	e.t.Helper()
	tok, _, err := e.issuer.Mint(auth.Principal{ObjectID: objectID, ClientID: clientID, TenantID: e.svc.TenantID()}, "https://management.azure.com")
	if err != nil {
		e.t.Fatalf("minting a token: %v", err)
	}
	return tok
}

// adminToken is a token of the administrator (Owner at the root scope).
func (e *testEnv) adminToken() string {
	if e.adminTok == "" {
		e.adminTok = e.token(e.admin.Properties.ObjectID, e.admin.Properties.ClientID)
	}
	return e.adminTok
}

// staticToken is an azcore.TokenCredential that always returns one token.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// startJobs runs the job workers until the server stops.
func (e *testEnv) startJobs() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.runner.Run(ctx); err != nil {
			e.t.Errorf("job runner: %v", err)
		}
	}()
	e.stopJobs = func() { cancel(); <-done }
}

func (e *testEnv) stop() {
	if e.srv == nil {
		return
	}
	e.stopJobs()
	e.srv.Close()
	e.svc.Close()
	if err := e.store.Close(); err != nil {
		e.t.Errorf("closing store: %v", err)
	}
	e.srv = nil
}

// restart stops the server and starts a new one on the same data directory.
func (e *testEnv) restart() {
	e.stop()
	e.start()
}

// clientOptions makes the Azure SDK talk to the test server over plain HTTP.
func (e *testEnv) clientOptions() *arm.ClientOptions {
	return &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{
				ActiveDirectoryAuthorityHost: e.URL + "/",
				Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
					cloud.ResourceManager: {Endpoint: e.URL, Audience: "https://management.azure.com"},
				},
			},
			InsecureAllowCredentialWithHTTP: true,
			Retry:                           policy.RetryOptions{MaxRetries: -1},
			Transport:                       apitest.LoadSpec(e.t).Client(e.t, e.srv.Client()),
		},
		DisableRPRegistration: true,
	}
}

// dp is an SDK client factory authenticated as the administrator.
func (e *testEnv) dp() *armdataprotection.ClientFactory {
	return e.dpAs(staticToken(e.adminToken()))
}

// dpAs is an SDK client factory authenticated with cred.
func (e *testEnv) dpAs(cred azcore.TokenCredential) *armdataprotection.ClientFactory {
	f, err := armdataprotection.NewClientFactory(testSub, cred, e.clientOptions())
	if err != nil {
		e.t.Fatalf("creating SDK client factory: %v", err)
	}
	return f
}

// response is a raw HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// armError decodes the error envelope.
func (r *response) armError(t *testing.T) (code, target string) {
	t.Helper()
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Target  string `json:"target"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &env); err != nil || env.Error == nil {
		t.Fatalf("status %d: body is not an ARM error envelope: %s", r.Status, r.Body)
	}
	if env.Error.Message == "" {
		t.Errorf("error %s has no message", env.Error.Code)
	}
	if got := r.Header.Get("x-ms-error-code"); got != env.Error.Code {
		t.Errorf("x-ms-error-code %q, body code %q", got, env.Error.Code)
	}
	return env.Error.Code, env.Error.Target
}

// do sends a raw request as the administrator; body may be a string,
// []byte or a value to encode.
func (e *testEnv) do(method, path string, body any) *response {
	e.t.Helper()
	return e.doAs("Bearer "+e.adminToken(), method, path, body, false)
}

// doCT is do, sending the body as text/plain when textContent is set.
func (e *testEnv) doCT(method, path string, body any, textContent bool) *response {
	e.t.Helper()
	return e.doAs("Bearer "+e.adminToken(), method, path, body, textContent)
}

// doAs sends a raw request with the given Authorization header ("" for none).
func (e *testEnv) doAs(authorization, method, path string, body any, textContent bool) *response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case json.RawMessage:
		rd = bytes.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	switch {
	case textContent:
		req.Header.Set("Content-Type", "text/plain")
	case rd != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	fmt.Fprintf(&e.bodies, "%v\n%s\n", resp.Header, b)
	if resp.Header.Get("x-ms-request-id") == "" {
		e.t.Errorf("%s %s: no x-ms-request-id", method, path)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// createGroup creates a resource group with raw HTTP (no SDK for Microsoft.Resources).
func (e *testEnv) createGroup(name string) {
	e.t.Helper()
	r := e.do(http.MethodPut, "/subscriptions/"+testSub+"/resourceGroups/"+name+"?api-version=2021-04-01", `{"location":"westus"}`)
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		e.t.Fatalf("creating group %s: %d %s", name, r.Status, r.Body)
	}
}

// snapshot returns every stored resource and operation, to prove a request changed nothing.
func (e *testEnv) snapshot() string {
	e.t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, typ := range []string{vault.TypeResourceGroup, vault.TypeVault, vault.TypePolicy, vault.TypeBackupInstance} {
		rs, err := e.store.ResourceList(ctx, store.ListParams{Type: typ})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range rs {
			b.WriteString(r.ID + " " + r.ETag + " " + string(r.Body) + "\n")
		}
	}
	ops, err := e.store.OperationListInProgress(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, op := range ops {
		b.WriteString(op.ID + "\n")
	}
	return b.String()
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readSpecExample(t *testing.T) []byte { return readTestdata(t, "CreateOrUpdateBackupPolicy.json") }

// benchEnv is a server with a vault and a policy, for benchmarks.
func benchEnv(b *testing.B) *testEnv {
	e := newEnv(b)
	e.createGroup("rg")
	if r := e.do(http.MethodPut, vaultPath+dpVersion, goodVault); r.Status != http.StatusCreated {
		b.Fatalf("create vault: %d %s", r.Status, r.Body)
	}
	waitFor(b, "vault provisioning", func() bool {
		return strings.Contains(string(e.do(http.MethodGet, vaultPath+dpVersion, nil).Body), `"provisioningState":"Succeeded"`)
	})
	if r := e.do(http.MethodPut, polPath+dpVersion, readTestdata(b, "pgflex-policy.json")); r.Status != http.StatusOK {
		b.Fatalf("create policy: %d %s", r.Status, r.Body)
	}
	return e
}
