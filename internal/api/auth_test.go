package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testIssuer is an external OIDC issuer made for the tests: discovery and
// JWKS served over HTTP, tokens signed with its own RSA key.
type testIssuer struct {
	t   *testing.T
	key *rsa.PrivateKey
	srv *httptest.Server
	URL string
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ti := &testIssuer{t: t, key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": ti.URL, "jwks_uri": ti.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
			"authorization_endpoint": ti.URL + "/authorize", "token_endpoint": ti.URL + "/token",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "test-key", Algorithm: "RS256", Use: "sig"}}})
	})
	ti.srv = httptest.NewServer(mux)
	ti.URL = ti.srv.URL
	t.Cleanup(ti.srv.Close)
	return ti
}

// claims are the claims of a valid token for objectID, to be varied by tests.
func (ti *testIssuer) claims(objectID string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": ti.URL, "aud": "https://management.azure.com", "oid": objectID, "sub": objectID, "tid": "test-tenant",
		"appid": "test-app", "iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// sign makes a compact RS256 JWS of claims with this issuer's key.
func (ti *testIssuer) sign(claims map[string]any) string {
	ti.t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: ti.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "test-key"))
	if err != nil {
		ti.t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		ti.t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		ti.t.Fatal(err)
	}
	return tok
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestAuthenticationFailures: every kind of bad token gets 401 with Azure's
// code and a WWW-Authenticate challenge, and changes nothing.
func TestAuthenticationFailures(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t)
	e := &testEnv{t: t, dir: t.TempDir(), oidc: []string{ti.URL}}
	e.start()
	t.Cleanup(e.stop)
	e.createGroup("rg")

	// The test issuer is trusted: a good token of it authenticates (and, with
	// no role, is then refused with 403).
	good := ti.sign(ti.claims("11111111-2222-3333-4444-555555555555"))
	if r := e.doAs("Bearer "+good, "GET", vaultPath+dpVersion, nil, false); r.Status != http.StatusForbidden {
		t.Fatalf("a valid external token: %d %s", r.Status, r.Body)
	}

	other := newTestIssuer(t) // not trusted
	with := func(change func(map[string]any)) string {
		c := ti.claims("11111111-2222-3333-4444-555555555555")
		change(c)
		return ti.sign(c)
	}
	parts := strings.Split(good, ".")
	sig := []byte(parts[2])
	sig[10] ^= 1
	if sig[10] == '.' {
		sig[10] = 'A'
	}
	cases := []struct {
		name, header, code string
	}{
		{"missing", "", "AuthenticationFailed"},
		{"not bearer", "Basic dXNlcjpwYXNz", "AuthenticationFailed"},
		{"malformed", "Bearer not-a-token", "InvalidAuthenticationToken"},
		{"bad signature", "Bearer " + parts[0] + "." + parts[1] + "." + string(sig), "InvalidAuthenticationToken"},
		{"expired", "Bearer " + with(func(c map[string]any) { c["exp"] = time.Now().Add(-10 * time.Minute).Unix() }), "ExpiredAuthenticationToken"},
		{"not yet valid", "Bearer " + with(func(c map[string]any) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() }), ""},
		{"wrong audience", "Bearer " + with(func(c map[string]any) { c["aud"] = "https://storage.azure.com" }), "InvalidAuthenticationTokenAudience"},
		{"unknown issuer", "Bearer " + other.sign(other.claims("11111111-2222-3333-4444-555555555555")), "InvalidAuthenticationTokenTenant"},
		{"alg none", "Bearer " + b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(ti.claims("11111111-2222-3333-4444-555555555555")) + ".", "InvalidAuthenticationToken"},
	}
	before := e.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, req := range []struct{ method, path, body string }{
				{"PUT", vaultPath + dpVersion, goodVault},
				{"GET", rgPath + "?api-version=2021-04-01", ""},
			} {
				r := e.doAs(c.header, req.method, req.path, req.body, false)
				code, _ := r.armError(t)
				if r.Status != http.StatusUnauthorized || (c.code != "" && code != c.code) {
					t.Errorf("%s %s: %d %s, want 401 %s", req.method, req.path, r.Status, code, c.code)
				}
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	if after := e.snapshot(); after != before {
		t.Errorf("unauthenticated requests changed the store")
	}
}

// TestBuiltinIssuerClientCredentials: a service principal's client ID and
// secret get a token from the token endpoint, which the API accepts; a
// wrong secret gets none.
func TestBuiltinIssuerClientCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	sp, _, err := e.svc.PutServicePrincipal(ctx, "ci", strings.Repeat("x", 48), true)
	if err != nil {
		t.Fatal(err)
	}
	tokenURL := e.URL + "/" + e.svc.TenantID() + "/oauth2/v2.0/token"
	post := func(secret string) (*http.Response, map[string]any) {
		form := "grant_type=client_credentials&client_id=" + sp.Properties.ClientID + "&client_secret=" + secret + "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
		resp, err := e.srv.Client().Post(tokenURL, "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	if resp, body := post(strings.Repeat("y", 48)); resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v", resp.StatusCode, body)
	}
	resp, body := post(strings.Repeat("x", 48))
	tok, _ := body["access_token"].(string)
	if resp.StatusCode != http.StatusOK || tok == "" {
		t.Fatalf("token request: %d %v", resp.StatusCode, body)
	}
	// Authenticated but without a role: 403 naming the principal.
	r := e.doAs("Bearer "+tok, "GET", rgPath+"?api-version=2021-04-01", nil, false)
	if code, _ := r.armError(t); r.Status != http.StatusForbidden || code != "AuthorizationFailed" {
		t.Errorf("no role: %d %s", r.Status, code)
	}
	want := "The client '" + sp.Properties.ClientID + "' with object id '" + sp.Properties.ObjectID +
		"' does not have authorization to perform action 'Microsoft.Resources/subscriptions/resourceGroups/read' over scope '" +
		"/subscriptions/" + testSub + "/resourceGroups/rg' or the scope is invalid."
	if !strings.Contains(string(r.Body), want) {
		t.Errorf("403 message:\n got %s\nwant %s", r.Body, want)
	}
}
