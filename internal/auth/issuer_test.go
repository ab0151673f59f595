package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/auth"
)

type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
}

func tokenForm(kv ...string) url.Values {
	f := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {testClientID},
		"client_secret": {testSecret},
		"scope":         {"https://management.azure.com/.default"},
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			f.Del(kv[i])
		} else {
			f.Set(kv[i], kv[i+1])
		}
	}
	return f
}

func postToken(t *testing.T, client *http.Client, tokenURL string, body string, edit func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if edit != nil {
		edit(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestIssuerRoundTrip(t *testing.T) {
	clk := newClock(testStart)
	iss, srv := startIssuer(t, false, clk.Now, nil, nil)
	tokenURL := srv.URL + "/" + testTenant + "/oauth2/v2.0/token"

	for _, tc := range []struct {
		name string
		body url.Values
		edit func(*http.Request)
	}{
		{"client_secret_post", tokenForm(), nil},
		{"scope with trailing-slash audience and MSAL's OpenID scopes",
			tokenForm("scope", "https://management.azure.com//.default openid offline_access profile"), nil},
		{"client_secret_basic", tokenForm("client_id", "", "client_secret", ""), func(r *http.Request) {
			r.SetBasicAuth(url.QueryEscape(testClientID), url.QueryEscape(testSecret))
		}},
		{"basic with matching client_id in the body", tokenForm("client_secret", ""), func(r *http.Request) {
			r.SetBasicAuth(url.QueryEscape(testClientID), url.QueryEscape(testSecret))
		}},
		{"tenant in another case", tokenForm(), func(r *http.Request) {
			r.URL.Path = "/" + strings.ToUpper(testTenant) + "/oauth2/v2.0/token"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := postToken(t, srv.Client(), tokenURL, tc.body.Encode(), tc.edit)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("Cache-Control = %q", cc)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type = %q", ct)
			}
			var tr tokenResponse
			if err := json.Unmarshal(body, &tr); err != nil {
				t.Fatal(err)
			}
			if tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.ExtExpiresIn != 3600 || tr.AccessToken == "" {
				t.Fatalf("response = %s", body)
			}
			v := verifierFor(t, iss, clk.Now)
			p, err := v.Verify(context.Background(), "Bearer "+tr.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			want := auth.Principal{ObjectID: testObjectID, TenantID: testTenant, ClientID: testClientID, Issuer: iss.IssuerURL()}
			if *p != want {
				t.Fatalf("principal = %+v, want %+v", *p, want)
			}

			hdr := decodePart(t, tr.AccessToken, 0)
			if hdr["alg"] != "RS256" || hdr["typ"] != "JWT" || hdr["kid"] != thumbprint(t, iss.PublicKeys()[0]) {
				t.Fatalf("header = %v", hdr)
			}
			c := decodePart(t, tr.AccessToken, 1)
			for k, want := range map[string]any{
				"iss": srv.URL + "/" + testTenant + "/v2.0", "aud": "https://management.azure.com",
				"sub": testObjectID, "oid": testObjectID, "tid": testTenant, "appid": testClientID, "azp": testClientID,
				"ver": "2.0", "idtyp": "app",
				"iat": float64(testStart.Unix()), "nbf": float64(testStart.Unix()), "exp": float64(testStart.Add(time.Hour).Unix()),
			} {
				if c[k] != want {
					t.Errorf("claim %s = %v, want %v", k, c[k], want)
				}
			}
			if uti, _ := c["uti"].(string); len(uti) < 16 || c["jti"] != uti {
				t.Errorf("uti = %v, jti = %v", c["uti"], c["jti"])
			}
		})
	}

	// Tokens are unique and expire.
	v := verifierFor(t, iss, clk.Now)
	t1, exp1, err := iss.Mint(auth.Principal{ObjectID: "o"}, "")
	if err != nil {
		t.Fatal(err)
	}
	t2, _, err := iss.Mint(auth.Principal{ObjectID: "o"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if t1 == t2 || !exp1.Equal(testStart.Add(time.Hour)) {
		t.Fatalf("tokens equal or wrong expiry %s", exp1)
	}
	clk.Advance(time.Hour + ClockSkewForTest + time.Second)
	_, err = v.Verify(context.Background(), "Bearer "+t1)
	if e := asAuthError(t, err); e.Code != auth.CodeExpiredAuthenticationToken {
		t.Fatalf("after expiry: %v", err)
	}
	if _, _, err := iss.Mint(auth.Principal{}, ""); err == nil {
		t.Fatal("Mint without object ID succeeded")
	}
	other, _, err := iss.Mint(auth.Principal{ObjectID: "o"}, "https://vault.azure.net")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), "Bearer "+other); asAuthError(t, err).Code != auth.CodeInvalidAuthenticationTokenAudience {
		t.Fatalf("token for another audience: %v", err)
	}
}

// ClockSkewForTest mirrors auth.ClockSkew.
const ClockSkewForTest = auth.ClockSkew

func TestIssuerKeysPersist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "keys")
	cfg := auth.IssuerConfig{BaseURL: "https://127.0.0.1:7070", TenantID: testTenant, KeyDir: dir, Clients: &testClients{}}
	first, err := auth.NewIssuer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %#o, want 0700", fi.Mode().Perm())
	}
	keyFile := filepath.Join(dir, "signing-key.pem")
	fi, err = os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %#o, want 0600", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("key dir holds %v (%v), want only the key", entries, err)
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("key file is not a PKCS#8 PEM key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if bits := key.(interface{ Size() int }).Size() * 8; bits != 3072 {
		t.Fatalf("generated a %d-bit key, want 3072", bits)
	}

	second, err := auth.NewIssuer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if thumbprint(t, first.PublicKeys()[0]) != thumbprint(t, second.PublicKeys()[0]) {
		t.Fatal("a second issuer on the same key dir has another key")
	}
	// A token of the first verifies with the keys of the second (a restart).
	tok, _, err := first.Mint(auth.Principal{ObjectID: "o"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifierFor(t, second, nil).Verify(context.Background(), "Bearer "+tok); err != nil {
		t.Fatal(err)
	}

	// A key readable by others is refused.
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NewIssuer(cfg); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("NewIssuer with a 0644 key file: %v", err)
	}
	// Garbage is refused, not replaced.
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NewIssuer(cfg); err == nil {
		t.Fatal("NewIssuer with a garbage key file succeeded")
	}
	// KeyDir naming a file is refused.
	if _, err := auth.NewIssuer(auth.IssuerConfig{BaseURL: cfg.BaseURL, TenantID: testTenant, KeyDir: keyFile, Clients: &testClients{}}); err == nil {
		t.Fatal("NewIssuer with a file as key dir succeeded")
	}
}

func TestIssuerUsesAnECKey(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signing-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	iss, err := auth.NewIssuer(auth.IssuerConfig{BaseURL: "https://h", TenantID: "t", KeyDir: dir, Clients: &testClients{}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := iss.Mint(auth.Principal{ObjectID: "o", ClientID: "c"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if alg := decodePart(t, tok, 0)["alg"]; alg != "ES256" {
		t.Fatalf("alg = %v", alg)
	}
	if _, err := verifierFor(t, iss, nil).Verify(context.Background(), "Bearer "+tok); err != nil {
		t.Fatal(err)
	}
}

func TestNewIssuerRejectsBadConfig(t *testing.T) {
	keys := copyKeyDir(t)
	good := auth.IssuerConfig{BaseURL: "https://127.0.0.1:7070", TenantID: testTenant, KeyDir: keys, Clients: &testClients{}}
	for name, edit := range map[string]func(*auth.IssuerConfig){
		"trailing slash":     func(c *auth.IssuerConfig) { c.BaseURL += "/" },
		"not http":           func(c *auth.IssuerConfig) { c.BaseURL = "ftp://h" },
		"relative":           func(c *auth.IssuerConfig) { c.BaseURL = "/x" },
		"query":              func(c *auth.IssuerConfig) { c.BaseURL += "?a=b" },
		"no tenant":          func(c *auth.IssuerConfig) { c.TenantID = "" },
		"tenant with slash":  func(c *auth.IssuerConfig) { c.TenantID = "a/b" },
		"tenant common":      func(c *auth.IssuerConfig) { c.TenantID = "common" },
		"tenant adfs":        func(c *auth.IssuerConfig) { c.TenantID = "ADFS" },
		"no clients":         func(c *auth.IssuerConfig) { c.Clients = nil },
		"no key dir":         func(c *auth.IssuerConfig) { c.KeyDir = "" },
		"lifetime too short": func(c *auth.IssuerConfig) { c.Lifetime = time.Minute },
		"lifetime too long":  func(c *auth.IssuerConfig) { c.Lifetime = 48 * time.Hour },
		"audience w/ space":  func(c *auth.IssuerConfig) { c.Audience = "a b" },
	} {
		cfg := good
		edit(&cfg)
		if _, err := auth.NewIssuer(cfg); err == nil {
			t.Errorf("%s: NewIssuer succeeded", name)
		}
	}
	withPrefix := good
	withPrefix.BaseURL = "https://example.com/auth"
	iss, err := auth.NewIssuer(withPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if got := iss.IssuerURL(); got != "https://example.com/auth/"+testTenant+"/v2.0" {
		t.Fatalf("IssuerURL = %s", got)
	}
	for path, want := range map[string]bool{
		"/auth/" + testTenant + "/oauth2/v2.0/token":                     true,
		"/auth/other/oauth2/v2.0/token":                                  true,
		"/auth/" + testTenant + "/v2.0/.well-known/openid-configuration": true,
		"/auth/" + testTenant + "/discovery/v2.0/keys":                   true,
		"/auth/" + testTenant + "/oauth2/v2.0/authorize":                 true,
		"/" + testTenant + "/oauth2/v2.0/token":                          false,
		"/auth//oauth2/v2.0/token":                                       false,
		"/auth/" + testTenant + "/oauth2/v2.0/token/x":                   false,
		"/auth/" + testTenant + "/oauth2/token":                          false,
		"/subscriptions/x/resourceGroups/y":                              false,
	} {
		if got := iss.Owns(path); got != want {
			t.Errorf("Owns(%s) = %v, want %v", path, got, want)
		}
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	clk := newClock(testStart)
	clients := &testClients{}
	_, srv := startIssuer(t, false, clk.Now, clients, nil)
	tokenURL := srv.URL + "/" + testTenant + "/oauth2/v2.0/token"
	basic := func(id, secret string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
	}
	for _, tc := range []struct {
		name      string
		method    string
		url       string
		body      string
		edit      func(*http.Request)
		status    int
		error     string
		code      int
		challenge bool
	}{
		{name: "wrong secret", body: tokenForm("client_secret", "nope").Encode(), status: 401, error: "invalid_client", code: 7000215},
		{name: "unknown client", body: tokenForm("client_id", "someone").Encode(), status: 401, error: "invalid_client", code: 7000215},
		{name: "wrong secret by Basic", body: tokenForm("client_id", "", "client_secret", "").Encode(), edit: basic(testClientID, "nope"),
			status: 401, error: "invalid_client", code: 7000215, challenge: true},
		{name: "no secret", body: tokenForm("client_secret", "").Encode(), status: 401, error: "invalid_client", code: 7000218},
		{name: "no client_id", body: tokenForm("client_id", "").Encode(), status: 400, error: "invalid_request", code: 900144},
		{name: "Basic and client_secret", body: tokenForm().Encode(), edit: basic(testClientID, testSecret),
			status: 400, error: "invalid_request", code: 9002313},
		{name: "Basic and another client_id", body: tokenForm("client_id", "other", "client_secret", "").Encode(), edit: basic(testClientID, testSecret),
			status: 400, error: "invalid_request", code: 9002313},
		{name: "client assertion", body: tokenForm("client_secret", "", "client_assertion", "x").Encode(), status: 400, error: "invalid_request", code: 9002313},
		{name: "wrong grant type", body: tokenForm("grant_type", "password").Encode(), status: 400, error: "unsupported_grant_type", code: 70003},
		{name: "no grant type", body: tokenForm("grant_type", "").Encode(), status: 400, error: "invalid_request", code: 900144},
		{name: "wrong scope", body: tokenForm("scope", "https://vault.azure.net/.default").Encode(), status: 400, error: "invalid_scope", code: 70011},
		{name: "scope without /.default", body: tokenForm("scope", "https://management.azure.com").Encode(), status: 400, error: "invalid_scope", code: 70011},
		{name: "two resource scopes", body: tokenForm("scope", "https://management.azure.com/.default https://x/.default").Encode(),
			status: 400, error: "invalid_scope", code: 70011},
		{name: "no scope", body: tokenForm("scope", "").Encode(), status: 400, error: "invalid_scope", code: 70011},
		{name: "repeated parameter", body: tokenForm().Encode() + "&scope=x", status: 400, error: "invalid_request", code: 9002313},
		{name: "JSON body", body: `{"grant_type":"client_credentials"}`, edit: func(r *http.Request) { r.Header.Set("Content-Type", "application/json") },
			status: 400, error: "invalid_request", code: 900144},
		{name: "credentials in the query string only", url: tokenURL + "?" + tokenForm().Encode(), body: "",
			status: 400, error: "invalid_request", code: 900144},
		{name: "wrong tenant", url: srv.URL + "/other-tenant/oauth2/v2.0/token", body: tokenForm().Encode(),
			status: 400, error: "invalid_request", code: 90002},
		{name: "GET instead of POST", method: http.MethodGet, status: 405, error: "invalid_request", code: 900561},
		{name: "authorize endpoint", method: http.MethodGet, url: srv.URL + "/" + testTenant + "/oauth2/v2.0/authorize?response_type=code",
			status: 400, error: "unsupported_response_type", code: 70005},
		{name: "POST to the keys", method: http.MethodPost, url: srv.URL + "/" + testTenant + "/discovery/v2.0/keys",
			status: 405, error: "invalid_request", code: 900561},
		{name: "discovery of the wrong tenant", method: http.MethodGet, url: srv.URL + "/other/v2.0/.well-known/openid-configuration",
			status: 400, error: "invalid_tenant", code: 90002},
		{name: "keys of the wrong tenant", method: http.MethodGet, url: srv.URL + "/other/discovery/v2.0/keys",
			status: 400, error: "invalid_tenant", code: 90002},
		{name: "not an endpoint", method: http.MethodGet, url: srv.URL + "/" + testTenant + "/oauth2/token",
			status: 404, error: "invalid_request", code: 9002313},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, u := tc.method, tc.url
			if method == "" {
				method = http.MethodPost
			}
			if u == "" {
				u = tokenURL
			}
			req, err := http.NewRequest(method, u, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("client-request-id", "0b1c8a3e-5f4d-4d8e-9a51-1a2b3c4d5e6f")
			if tc.edit != nil {
				tc.edit(req)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var oe oauthError
			if err := json.Unmarshal(body, &oe); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if oe.Error != tc.error || len(oe.ErrorCodes) != 1 || oe.ErrorCodes[0] != tc.code {
				t.Fatalf("error %q codes %v, want %q [%d]: %s", oe.Error, oe.ErrorCodes, tc.error, tc.code, body)
			}
			if oe.TraceID == "" || oe.CorrelationID != "0b1c8a3e-5f4d-4d8e-9a51-1a2b3c4d5e6f" || oe.Timestamp != "2026-03-01 12:00:00Z" ||
				!strings.HasPrefix(oe.ErrorDescription, "AADSTS") {
				t.Fatalf("error body = %s", body)
			}
			if strings.Contains(string(body), testSecret) || strings.Contains(string(body), url.QueryEscape(testSecret)) {
				t.Fatalf("the response echoes the secret: %s", body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); (got != "") != tc.challenge || tc.challenge && !strings.HasPrefix(got, "Basic realm=") {
				t.Fatalf("WWW-Authenticate = %q", got)
			}
			if tc.status == 405 && resp.Header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
	// A failed secret check goes to the authenticator; malformed requests do not.
	if n := clients.calls.Load(); n != 3 {
		t.Fatalf("authenticator called %d times, want 3", n)
	}
}

// erroringClients fails like a store that is down.
type erroringClients struct{ principal *auth.Principal }

func (c erroringClients) AuthenticateClient(context.Context, string, string) (*auth.Principal, error) {
	if c.principal != nil {
		return c.principal, nil
	}
	return nil, errors.New("database is down")
}

func TestTokenEndpointAuthenticatorFailures(t *testing.T) {
	for name, clients := range map[string]auth.ClientAuthenticator{
		"error":        erroringClients{},
		"no object ID": erroringClients{principal: &auth.Principal{}},
	} {
		t.Run(name, func(t *testing.T) {
			_, srv := startIssuer(t, false, nil, clients, nil)
			resp, body := postToken(t, srv.Client(), srv.URL+"/"+testTenant+"/oauth2/v2.0/token", tokenForm().Encode(), nil)
			var oe oauthError
			if resp.StatusCode != 500 || json.Unmarshal(body, &oe) != nil || oe.Error != "server_error" || strings.Contains(string(body), "database") {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		})
	}
}

func TestDiscoveryAndKeys(t *testing.T) {
	iss, srv := startIssuer(t, true, nil, nil, nil)
	get := func(path string, v any) *http.Response {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var doc map[string]any
	get("/"+testTenant+"/v2.0/.well-known/openid-configuration", &doc)
	base := srv.URL + "/" + testTenant
	for k, want := range map[string]string{
		"issuer":                 base + "/v2.0",
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"jwks_uri":               base + "/discovery/v2.0/keys",
	} {
		if doc[k] != want {
			t.Errorf("%s = %v, want %s", k, doc[k], want)
		}
	}
	if doc["issuer"] != iss.IssuerURL() {
		t.Errorf("issuer %v != IssuerURL %s", doc["issuer"], iss.IssuerURL())
	}
	for _, k := range []string{"token_endpoint_auth_methods_supported", "response_types_supported", "subject_types_supported",
		"id_token_signing_alg_values_supported", "cloud_instance_name", "scopes_supported"} {
		if doc[k] == nil {
			t.Errorf("discovery lacks %s", k)
		}
	}
	if _, ok := doc["tenant_region_scope"]; !ok {
		t.Error("discovery lacks tenant_region_scope")
	}

	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	get("/"+testTenant+"/discovery/v2.0/keys", &set)
	if len(set.Keys) != 1 {
		t.Fatalf("keys = %v", set.Keys)
	}
	k := set.Keys[0]
	if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" || k["kid"] != thumbprint(t, iss.PublicKeys()[0]) || k["d"] != nil || k["n"] == nil {
		t.Fatalf("key = %v", k)
	}
}
