package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/testserver"
)

// countingTransport counts the requests to the token endpoint.
type countingTransport struct {
	next   http.RoundTripper
	tokens atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		c.tokens.Add(1)
	}
	return c.next.RoundTrip(r)
}

// trusting returns an HTTP client that trusts only the PEM certificate.
func trusting(t *testing.T, certPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("the CA certificate PEM holds no certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

func TestClientCredentials(t *testing.T) {
	ctx := context.Background()
	ts := testserver.Start(t, testserver.Options{TLS: true})
	hc := trusting(t, ts.CACertPEM)
	counter := &countingTransport{next: hc.Transport}
	now := time.Now()
	var clock sync.Mutex
	cc := &client.ClientCredentials{
		Server: ts.URL, TenantID: ts.TenantID, ClientID: ts.Admin.ClientID, ClientSecret: ts.Admin.Secret,
		HTTPClient: &http.Client{Transport: counter},
		Now: func() time.Time {
			clock.Lock()
			defer clock.Unlock()
			return now
		},
	}
	setNow := func(t time.Time) {
		clock.Lock()
		defer clock.Unlock()
		now = t
	}
	c := client.New(ts.URL, hc)
	c.Auth = cc

	// Every request carries the token; one token serves them all.
	putGroup(t, c, "rg1")
	putGroup(t, c, "rg2")
	if _, err := c.List(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources); err != nil {
		t.Fatalf("list with client credentials: %v", err)
	}
	if n := counter.tokens.Load(); n != 1 {
		t.Errorf("%d token requests for three API requests, want 1", n)
	}
	first, err := cc.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := first.ExpiresOn.Sub(now); d < 59*time.Minute || d > time.Hour {
		t.Errorf("token expires in %v, want the issuer's hour", d)
	}

	// Cached until five minutes before expiry, then renewed.
	setNow(first.ExpiresOn.Add(-5*time.Minute - time.Second))
	if tok, err := cc.Token(ctx); err != nil || tok != first.Token || counter.tokens.Load() != 1 {
		t.Errorf("just before the renewal time: %d requests, same token %v, err %v", counter.tokens.Load(), tok == first.Token, err)
	}
	setNow(first.ExpiresOn.Add(-5 * time.Minute))
	if _, err := cc.Token(ctx); err != nil || counter.tokens.Load() != 2 {
		t.Errorf("at the renewal time: %d token requests (want 2), err %v", counter.tokens.Load(), err)
	}

	// Concurrent callers of a fresh source share one request.
	counter.tokens.Store(0)
	fresh := &client.ClientCredentials{Server: ts.URL, TenantID: ts.TenantID, ClientID: ts.Admin.ClientID,
		ClientSecret: ts.Admin.Secret, HTTPClient: &http.Client{Transport: counter}}
	var wg sync.WaitGroup
	toks := make([]string, 16)
	errs := make([]error, len(toks))
	for i := range toks {
		wg.Go(func() { toks[i], errs[i] = fresh.Token(ctx) })
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] == "" || toks[i] != toks[0] {
			t.Fatalf("concurrent Token %d: %q, %v", i, toks[i], errs[i])
		}
	}
	if n := counter.tokens.Load(); n != 1 {
		t.Errorf("%d token requests for %d concurrent callers, want 1", n, len(toks))
	}

	// A caller whose context ends while another fetches gives up.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (&client.ClientCredentials{Server: ts.URL, TenantID: ts.TenantID, ClientID: "x", ClientSecret: "y", HTTPClient: hc}).Token(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Token with a cancelled context = %v", err)
	}
}

func TestClientCredentialsShortLivedTokens(t *testing.T) {
	ts := testserver.Start(t, testserver.Options{TokenLifetime: 5 * time.Minute})
	counter := &countingTransport{next: http.DefaultTransport}
	now := time.Now()
	cc := ts.Credentials(ts.Admin)
	cc.HTTPClient = &http.Client{Transport: counter}
	cc.Now = func() time.Time { return now }
	tok, err := cc.AccessToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A five-minute token is reused for half its life, not refetched on every call.
	now = now.Add(2*time.Minute + 29*time.Second)
	if again, err := cc.Token(context.Background()); err != nil || again != tok.Token || counter.tokens.Load() != 1 {
		t.Errorf("a 5m token was not reused after 2m29s: %d requests, err %v", counter.tokens.Load(), err)
	}
	now = now.Add(2 * time.Second)
	if _, err := cc.Token(context.Background()); err != nil || counter.tokens.Load() != 2 {
		t.Errorf("a 5m token was not renewed after half its life: %d requests, err %v", counter.tokens.Load(), err)
	}
}

func TestClientCredentialsErrors(t *testing.T) {
	ctx := context.Background()
	ts := testserver.Start(t, testserver.Options{})
	const wrong = "a-wrong-secret-that-must-never-be-printed-0123456789"
	ts.RememberSecret(wrong)

	var te *client.TokenError
	cc := ts.Credentials(ts.Admin)
	cc.ClientSecret = wrong
	_, err := cc.Token(ctx)
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized || te.Code != "invalid_client" ||
		!strings.Contains(te.Description, "AADSTS7000215: Invalid client secret provided for client '"+ts.Admin.ClientID+"'") {
		t.Fatalf("wrong secret: %#v", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "while getting a token for client '"+ts.Admin.ClientID+"' from "+ts.URL+"/"+ts.TenantID+"/oauth2/v2.0/token: invalid_client: AADSTS7000215: ") {
		t.Errorf("error = %q", msg)
	}
	if strings.Contains(msg, wrong) || strings.Contains(msg, ts.Admin.Secret) {
		t.Errorf("the error contains a secret: %q", msg)
	}
	// A request with it fails with the token error, not a 401.
	c := client.New(ts.URL, nil)
	c.Auth = cc
	if _, err := c.Get(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources); !errors.As(err, &te) {
		t.Errorf("request with a wrong secret = %v", err)
	}

	// An unknown client, a wrong tenant.
	cc = ts.Credentials(testserver.Principal{ClientID: "6d1f0a4e-0000-4000-8000-000000000000", Secret: wrong})
	if _, err := cc.Token(ctx); !errors.As(err, &te) || te.Code != "invalid_client" {
		t.Errorf("unknown client: %v", err)
	}
	cc = ts.Credentials(ts.Admin)
	cc.TenantID = "another-tenant"
	if _, err := cc.Token(ctx); !errors.As(err, &te) || te.Code != "invalid_request" || !strings.Contains(te.Description, "Tenant 'another-tenant' not found") {
		t.Errorf("wrong tenant: %v", err)
	}
	// Not a token endpoint: the API's 404 is reported as such.
	cc = ts.Credentials(ts.Admin)
	cc.Server = ts.URL + "/elsewhere"
	if _, err := cc.Token(ctx); !errors.As(err, &te) || te.Code != "" || te.StatusCode != http.StatusNotFound ||
		!strings.Contains(err.Error(), "HTTP 404 Not Found: the answer is not an OAuth2 error: ") {
		t.Errorf("not a token endpoint: %v", err)
	}

	// The secret never travels over plain HTTP to a remote host: refused
	// before any request.
	counter := &countingTransport{next: http.DefaultTransport}
	cc = &client.ClientCredentials{Server: "http://pgvault.invalid:7070", TenantID: ts.TenantID, ClientID: "id", ClientSecret: wrong, HTTPClient: &http.Client{Transport: counter}}
	if _, err := cc.Token(ctx); err == nil || !strings.Contains(err.Error(), "refusing to send the client secret over plain HTTP to pgvault.invalid:7070") || counter.tokens.Load() != 0 {
		t.Errorf("plain HTTP to a remote host: %v", err)
	}
	// Nor to a redirect's target.
	var leaked atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(true)
		ts.Issuer.ServeHTTP(w, r)
	}))
	defer target.Close()
	redirect := httptest.NewServer(http.RedirectHandler(target.URL+"/"+ts.TenantID+"/oauth2/v2.0/token", http.StatusTemporaryRedirect))
	defer redirect.Close()
	cc = ts.Credentials(ts.Admin)
	cc.Server = redirect.URL
	if _, err := cc.Token(ctx); !errors.As(err, &te) || !strings.Contains(err.Error(), "the endpoint redirects to ") || leaked.Load() {
		t.Errorf("redirect: %v (secret sent to the target: %v)", err, leaked.Load())
	}
	// Missing parts.
	for _, bad := range []*client.ClientCredentials{
		{Server: ts.URL, ClientID: "a", ClientSecret: "b"},
		{Server: "127.0.0.1:7070", TenantID: "t", ClientID: "a", ClientSecret: "b"},
		{Server: ts.URL, TenantID: "t", ClientID: "a"},
	} {
		if _, err := bad.Token(ctx); err == nil {
			t.Errorf("%+v gave a token", bad)
		}
	}
}

func TestStaticTokenAndDenials(t *testing.T) {
	ctx := context.Background()
	ts := testserver.Start(t, testserver.Options{})
	var ae *client.APIError

	// No token: 401 with the server's code.
	anon := client.New(ts.URL, nil)
	_, err := anon.Get(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources)
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || ae.Code != "AuthenticationFailed" {
		t.Errorf("no token: %v", err)
	}

	// A static token, as `pgvault token` prints.
	c := client.New(ts.URL, nil)
	c.Auth = client.StaticToken(ts.AdminToken(t))
	putGroup(t, c, "rg1")
	c.Auth = client.StaticToken("")
	if _, err := c.Get(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources); err == nil {
		t.Error("an empty static token was used")
	}
	c.Auth = client.StaticToken("not-a-jwt")
	if _, err := c.Get(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources); !errors.As(err, &ae) || ae.Code != "InvalidAuthenticationToken" {
		t.Errorf("a malformed token: %v", err)
	}

	// A principal with Reader on one group may read it, and nothing else.
	p := ts.NewPrincipal(t, "reader")
	ts.Assign(t, p.ObjectID, "Reader", "/subscriptions/"+sub+"/resourceGroups/rg1")
	rc := ts.Client(p)
	if _, err := rc.Get(ctx, client.ResourceGroupPath(sub, "rg1"), client.APIVersionResources); err != nil {
		t.Errorf("reader reading its group: %v", err)
	}
	_, err = rc.Put(ctx, client.ResourceGroupPath(sub, "rg2"), client.APIVersionResources, map[string]string{"location": "westeurope"})
	want := "AuthorizationFailed: The client '" + p.ClientID + "' with object id '" + p.ObjectID +
		"' does not have authorization to perform action 'Microsoft.Resources/subscriptions/resourceGroups/write' over scope '/subscriptions/" +
		sub + "/resourceGroups/rg2' or the scope is invalid."
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden || err.Error() != want {
		t.Errorf("reader creating a group:\n got %v\nwant %s", err, want)
	}
}

func TestTokenNotSentToOtherHosts(t *testing.T) {
	ctx := context.Background()
	// The server writes its links with a public URL that is not the one the
	// client uses: the client refuses to follow them with its token.
	ts := testserver.Start(t, testserver.Options{PageSize: 1, PublicURL: "http://127.0.0.2:9"})
	c := ts.AdminClient()
	putGroup(t, c, "rg1")
	putGroup(t, c, "rg2")
	_, err := c.List(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources)
	if err == nil || !strings.Contains(err.Error(), "refusing to send credentials to http://127.0.0.2:9, which the server named in a link") {
		t.Errorf("list with a foreign nextLink: %v", err)
	}
	// An absolute URL of the server itself is followed.
	if _, err := c.Get(ctx, ts.URL+client.ResourceGroupPath(sub, "rg1"), client.APIVersionResources); err != nil {
		t.Errorf("an absolute URL of the server: %v", err)
	}
}
