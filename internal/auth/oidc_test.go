package auth_test

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgvault/pgvault/internal/auth"
)

// fakeIdP is an external OpenID Connect issuer: discovery and a JWKS whose
// keys a test can change.
type fakeIdP struct {
	srv            *httptest.Server
	discoveryHits  atomic.Int64
	jwksHits       atomic.Int64
	mu             sync.Mutex
	keys           []jose.JSONWebKey
	extra          []json.RawMessage // raw JWKS entries served as well
	issuerOverride string
	down           bool
}

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	idp := &fakeIdP{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		idp.discoveryHits.Add(1)
		idp.mu.Lock()
		down, iss := idp.down, idp.issuerOverride
		idp.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if iss == "" {
			iss = idp.srv.URL
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss, "jwks_uri": idp.srv.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "HS256", "none"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		idp.jwksHits.Add(1)
		idp.mu.Lock()
		defer idp.mu.Unlock()
		raws := append([]json.RawMessage{}, idp.extra...)
		for _, k := range idp.keys {
			b, err := k.MarshalJSON()
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			raws = append(raws, b)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": raws})
	})
	idp.srv = httptest.NewTLSServer(mux)
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *fakeIdP) setKeys(keys ...jose.JSONWebKey) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.keys = keys
}

func (idp *fakeIdP) claims(now time.Time) map[string]any {
	return map[string]any{"iss": idp.srv.URL, "aud": "https://management.azure.com", "sub": "ext-user",
		"azp": "ext-app", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func (idp *fakeIdP) verifier(t *testing.T, now func() time.Time) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{Audiences: auth.DefaultAudiences(), OIDC: []string{idp.srv.URL},
		HTTPClient: idp.srv.Client(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func pubJWK(pub crypto.PublicKey, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
}

func TestOIDCIssuer(t *testing.T) {
	loadTestKeys(t)
	ctx := context.Background()
	clk := newClock(testStart)
	idp := newFakeIdP(t)
	rsa1, rsa2, rsa3, ec1 := testRSA[0], testRSA[1], testRSA[2], testEC[0]
	idp.setKeys(pubJWK(&rsa1.PublicKey, "r1", "RS256"), pubJWK(&ec1.PublicKey, "e1", "ES256"))
	// Entries a verifier must skip without failing the whole set.
	idp.extra = []json.RawMessage{
		json.RawMessage(`{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h1","alg":"HS256"}`),
		json.RawMessage(`{"kty":"OKP","crv":"Ed448","x":"AAAA","kid":"ed448"}`),
		json.RawMessage(`{"kty":"EC","crv":"secp256k1","x":"AAAA","y":"AAAA","kid":"k1","alg":"ES256K"}`),
	}
	encKey, _ := json.Marshal(jose.JSONWebKey{Key: &rsa3.PublicKey, KeyID: "enc1", Use: "enc"})
	idp.extra = append(idp.extra, encKey)

	v := idp.verifier(t, clk.Now)
	verify := func(token string) (*auth.Principal, error) { return v.Verify(ctx, "Bearer "+token) }
	mustVerify := func(token string) {
		t.Helper()
		p, err := verify(token)
		if err != nil {
			t.Fatal(err)
		}
		if want := (auth.Principal{ObjectID: "ext-user", ClientID: "ext-app", Issuer: idp.srv.URL}); *p != want {
			t.Fatalf("principal %+v, want %+v", *p, want)
		}
	}
	mustFail := func(token, code, msg string) {
		t.Helper()
		_, err := verify(token)
		if e := asAuthError(t, err); e.Code != code || !strings.Contains(e.Message, msg) {
			t.Fatalf("error %v, want %s containing %q", err, code, msg)
		}
	}
	hits := func(wantDiscovery, wantJWKS int64) {
		t.Helper()
		if d, j := idp.discoveryHits.Load(), idp.jwksHits.Load(); d != wantDiscovery || j != wantJWKS {
			t.Fatalf("discovery fetched %d times, JWKS %d times; want %d and %d", d, j, wantDiscovery, wantJWKS)
		}
	}

	hits(0, 0) // NewVerifier does no I/O
	claims := idp.claims(testStart)
	mustVerify(sign(t, rsa1, jose.RS256, "r1", claims, nil))
	hits(1, 1)
	mustVerify(sign(t, ec1, jose.ES256, "e1", claims, nil))
	hits(1, 1) // cached
	mustFail(sign(t, rsa1, jose.RS256, "e1", claims, nil), auth.CodeInvalidAuthenticationToken, "does not match")
	mustFail(sign(t, ec1, jose.ES256, "r1", claims, nil), auth.CodeInvalidAuthenticationToken, "does not match")
	mustFail(sign(t, rsa3, jose.RS256, "enc1", claims, nil), auth.CodeInvalidAuthenticationToken, "unknown")
	mustFail(sign(t, rsa1, jose.RS256, "", claims, nil), auth.CodeInvalidAuthenticationToken, "several keys")
	mustFail(sign(t, []byte("secretsecretsecretsecretsecretsecret"), jose.HS256, "h1", claims, nil), auth.CodeInvalidAuthenticationToken, "algorithm 'HS256'")
	mustFail(sign(t, rsa1, jose.RS256, "r1", with(claims, "aud", "api://other"), nil), auth.CodeInvalidAuthenticationTokenAudience, "api://other")
	hits(1, 1) // unknown kids within the first minute do not fetch again

	// Rotation: the IdP publishes r2; the first token naming it fetches once.
	idp.setKeys(pubJWK(&rsa1.PublicKey, "r1", "RS256"), pubJWK(&ec1.PublicKey, "e1", "ES256"), pubJWK(&rsa2.PublicKey, "r2", ""))
	clk.Advance(time.Minute)
	claims = idp.claims(clk.Now())
	mustVerify(sign(t, rsa2, jose.RS256, "r2", claims, nil))
	hits(2, 2)
	mustVerify(sign(t, rsa2, jose.RS256, "r2", claims, nil))
	mustVerify(sign(t, rsa1, jose.RS256, "r1", claims, nil))
	hits(2, 2)

	// Unknown kids are rate limited: one fetch a minute at most.
	for range 5 {
		mustFail(sign(t, rsa3, jose.RS256, "r3", claims, nil), auth.CodeInvalidAuthenticationToken, "unknown")
	}
	hits(2, 2)
	clk.Advance(59 * time.Second)
	mustFail(sign(t, rsa3, jose.RS256, "r3", claims, nil), auth.CodeInvalidAuthenticationToken, "unknown")
	hits(2, 2)
	clk.Advance(time.Second)
	mustFail(sign(t, rsa3, jose.RS256, "r3", claims, nil), auth.CodeInvalidAuthenticationToken, "unknown")
	hits(3, 3)
	mustFail(sign(t, rsa3, jose.RS256, "r4", claims, nil), auth.CodeInvalidAuthenticationToken, "unknown")
	hits(3, 3)

	// Revocation: r1 disappears once the set is fetched again.
	idp.setKeys(pubJWK(&rsa2.PublicKey, "r2", "RS256"), pubJWK(&rsa3.PublicKey, "r3", "RS256"))
	clk.Advance(time.Minute)
	claims = idp.claims(clk.Now())
	mustVerify(sign(t, rsa3, jose.RS256, "r3", claims, nil))
	hits(4, 4)
	mustFail(sign(t, rsa1, jose.RS256, "r1", claims, nil), auth.CodeInvalidAuthenticationToken, "unknown")
	hits(4, 4)

	// A day later the keys are fetched again on use; if that fails the
	// cached keys stay in use.
	idp.mu.Lock()
	idp.down = true
	idp.mu.Unlock()
	clk.Advance(25 * time.Hour)
	claims = idp.claims(clk.Now())
	mustVerify(sign(t, rsa3, jose.RS256, "r3", claims, nil))
	hits(5, 4)

	// A forged token naming the IdP is still refused.
	mustFail(sign(t, rsa1, jose.RS256, "r3", claims, nil), auth.CodeInvalidAuthenticationToken, "signature is invalid")
}

func TestOIDCIssuerUnavailable(t *testing.T) {
	loadTestKeys(t)
	ctx := context.Background()
	clk := newClock(testStart)
	idp := newFakeIdP(t)
	idp.setKeys(pubJWK(&testRSA[0].PublicKey, "r1", "RS256"))
	idp.mu.Lock()
	idp.down = true
	idp.mu.Unlock()
	v := idp.verifier(t, clk.Now)
	token := "Bearer " + sign(t, testRSA[0], jose.RS256, "r1", idp.claims(testStart), nil)

	// Keys never fetched: not the caller's fault, so not an *auth.Error.
	_, err := v.Verify(ctx, token)
	var e *auth.Error
	if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Verify with the IdP down: %v", err)
	}
	_, err = v.Verify(ctx, token)
	if err == nil || errors.As(err, &e) || idp.discoveryHits.Load() != 1 {
		t.Fatalf("second Verify: %v after %d fetches", err, idp.discoveryHits.Load())
	}
	idp.mu.Lock()
	idp.down = false
	idp.mu.Unlock()
	clk.Advance(time.Minute)
	if _, err := v.Verify(ctx, token); err != nil {
		t.Fatal(err)
	}

	// A discovery document naming another issuer is refused.
	idp2 := newFakeIdP(t)
	idp2.setKeys(pubJWK(&testRSA[0].PublicKey, "r1", "RS256"))
	idp2.issuerOverride = "https://evil.example.com"
	v2 := idp2.verifier(t, clk.Now)
	_, err = v2.Verify(ctx, "Bearer "+sign(t, testRSA[0], jose.RS256, "r1", idp2.claims(clk.Now()), nil))
	if err == nil || !strings.Contains(err.Error(), "evil.example.com") {
		t.Fatalf("Verify with a mismatching discovery issuer: %v", err)
	}

	// A caller whose context ends stops waiting for the issuer's lock.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = v.Verify(cctx, token)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a cancelled context: %v", err)
	}
}
