package auth_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgvault/pgvault/internal/auth"
)

const staticIssuer = "https://issuer.test/" + testTenant + "/v2.0"

func staticVerifier(t testing.TB, now func() time.Time, keys ...crypto.PublicKey) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{
		Audiences: auth.DefaultAudiences(),
		Static:    []auth.StaticIssuer{{Issuer: staticIssuer, Keys: keys}},
		Now:       now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func goodClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss":   staticIssuer,
		"aud":   "https://management.azure.com",
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"oid":   testObjectID,
		"sub":   "subject-is-not-used-when-oid-is-present",
		"tid":   testTenant,
		"appid": testClientID,
	}
}

func with(c map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestVerifyAcceptsValidTokens(t *testing.T) {
	loadTestKeys(t)
	clk := newClock(testStart)
	rsaKey, ecKey := testRSA[0], testEC[0]
	rsaKID, ecKID := thumbprint(t, &rsaKey.PublicKey), thumbprint(t, &ecKey.PublicKey)
	v := staticVerifier(t, clk.Now, &rsaKey.PublicKey, &ecKey.PublicKey)
	now := testStart
	for _, tc := range []struct {
		name  string
		token string
		want  auth.Principal
	}{
		{"RS256", sign(t, rsaKey, jose.RS256, rsaKID, goodClaims(now), nil),
			auth.Principal{ObjectID: testObjectID, TenantID: testTenant, ClientID: testClientID, Issuer: staticIssuer}},
		{"ES256", sign(t, ecKey, jose.ES256, ecKID, goodClaims(now), nil),
			auth.Principal{ObjectID: testObjectID, TenantID: testTenant, ClientID: testClientID, Issuer: staticIssuer}},
		{"sub and azp when oid and appid are absent",
			sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "oid", nil, "appid", nil, "sub", "the-sub", "azp", "the-azp"), nil),
			auth.Principal{ObjectID: "the-sub", TenantID: testTenant, ClientID: "the-azp", Issuer: staticIssuer}},
		{"aud array, trailing-slash form",
			sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "aud", []string{"x", "https://management.core.windows.net/"}), nil),
			auth.Principal{ObjectID: testObjectID, TenantID: testTenant, ClientID: testClientID, Issuer: staticIssuer}},
		{"expired within skew",
			sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "exp", now.Add(-4*time.Minute).Unix()), nil),
			auth.Principal{ObjectID: testObjectID, TenantID: testTenant, ClientID: testClientID, Issuer: staticIssuer}},
		{"nbf and iat in the future within skew, fractional dates",
			sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "nbf", float64(now.Add(4*time.Minute).Unix())+0.5,
				"iat", now.Add(4*time.Minute).Unix()), nil),
			auth.Principal{ObjectID: testObjectID, TenantID: testTenant, ClientID: testClientID, Issuer: staticIssuer}},
		{"no nbf and no iat",
			sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "nbf", nil, "iat", nil), nil),
			auth.Principal{ObjectID: testObjectID, TenantID: testTenant, ClientID: testClientID, Issuer: staticIssuer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, h := range []string{"Bearer " + tc.token, "bearer " + tc.token, "BEARER  " + tc.token + " "} {
				p, err := v.Verify(context.Background(), h)
				if err != nil {
					t.Fatalf("Verify(%.20q...): %v", h, err)
				}
				if *p != tc.want {
					t.Fatalf("principal = %+v, want %+v", *p, tc.want)
				}
			}
		})
	}

	// A token without kid is accepted when its issuer has a single key.
	single := staticVerifier(t, clk.Now, &rsaKey.PublicKey)
	if _, err := single.Verify(context.Background(), "Bearer "+sign(t, rsaKey, jose.RS256, "", goodClaims(now), nil)); err != nil {
		t.Fatalf("token without kid, single key: %v", err)
	}
}

func TestVerifyFailures(t *testing.T) {
	loadTestKeys(t)
	clk := newClock(testStart)
	now := testStart
	rsaKey, ecKey, otherRSA := testRSA[0], testEC[0], testRSA[1]
	rsaKID, ecKID := thumbprint(t, &rsaKey.PublicKey), thumbprint(t, &ecKey.PublicKey)
	v := staticVerifier(t, clk.Now, &rsaKey.PublicKey, &ecKey.PublicKey)
	good := sign(t, rsaKey, jose.RS256, rsaKID, goodClaims(now), nil)
	parts := strings.Split(good, ".")

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsInput := func(secret []byte) string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + rsaKID + `","typ":"JWT"}`))
		input := h + "." + parts[1]
		return input + "." + base64.RawURLEncoding.EncodeToString(hmacSHA256(secret, []byte(input)))
	}
	forged := with(goodClaims(now), "oid", "attacker")
	forgedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"https://management.azure.com","exp":` +
		itoa(now.Add(time.Hour).Unix()) + `,"iss":"` + staticIssuer + `","oid":"attacker"}`))

	for _, tc := range []struct {
		name   string
		header string
		code   string
		msg    string // substring of the message
	}{
		{"missing header", "", auth.CodeAuthenticationFailed, "'Authorization' header is missing"},
		{"blank header", "   ", auth.CodeAuthenticationFailed, "'Authorization' header is missing"},
		{"Basic", "Basic dXNlcjpwYXNz", auth.CodeAuthenticationFailed, "invalid format"},
		{"Basic x", "Basic x", auth.CodeAuthenticationFailed, "invalid format"},
		{"scheme only", "Bearer", auth.CodeAuthenticationFailed, "invalid format"},
		{"two tokens", "Bearer a b", auth.CodeAuthenticationFailed, "invalid format"},
		{"token without scheme", good, auth.CodeAuthenticationFailed, "invalid format"},
		{"not a JWT", "Bearer abc", auth.CodeInvalidAuthenticationToken, "not a JWT"},
		{"JWE-like five parts", "Bearer a.b.c.d.e", auth.CodeInvalidAuthenticationToken, "not a JWT"},
		{"header not base64", "Bearer !!.e30.sig", auth.CodeInvalidAuthenticationToken, "header"},
		{"header not JSON", "Bearer " + base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + parts[1] + "." + parts[2],
			auth.CodeInvalidAuthenticationToken, "header"},
		{"padded base64", "Bearer " + parts[0] + "=." + parts[1] + "." + parts[2], auth.CodeInvalidAuthenticationToken, "header"},
		{"claims not JSON", "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("[1,2]")) + "." + parts[2],
			auth.CodeInvalidAuthenticationToken, "claims"},
		{"too long", "Bearer " + parts[0] + "." + strings.Repeat("A", 17<<10) + "." + parts[2], auth.CodeInvalidAuthenticationToken, "longer"},
		{"bad signature: claims swapped", "Bearer " + parts[0] + "." + forgedPayload + "." + parts[2],
			auth.CodeInvalidAuthenticationToken, "signature is invalid"},
		{"bad signature: other key, trusted kid", "Bearer " + sign(t, otherRSA, jose.RS256, rsaKID, forged, nil),
			auth.CodeInvalidAuthenticationToken, "signature is invalid"},
		{"bad signature: truncated", "Bearer " + parts[0] + "." + parts[1] + "." + parts[2][:20],
			auth.CodeInvalidAuthenticationToken, "signature is invalid"},
		{"bad signature: empty", "Bearer " + parts[0] + "." + parts[1] + ".", auth.CodeInvalidAuthenticationToken, "signature is invalid"},
		{"alg none", "Bearer " + rawJWT(t, map[string]any{"alg": "none", "kid": rsaKID}, forged, nil),
			auth.CodeInvalidAuthenticationToken, "algorithm 'none'"},
		{"alg None", "Bearer " + rawJWT(t, map[string]any{"alg": "None"}, forged, nil),
			auth.CodeInvalidAuthenticationToken, "algorithm 'None'"},
		{"alg missing", "Bearer " + rawJWT(t, map[string]any{"kid": rsaKID}, forged, []byte("x")),
			auth.CodeInvalidAuthenticationToken, "algorithm ''"},
		{"HS256 with the RSA public key PEM as secret", "Bearer " + hsInput(pubPEM),
			auth.CodeInvalidAuthenticationToken, "algorithm 'HS256'"},
		{"HS256 with the RSA public key DER as secret", "Bearer " + hsInput(pubDER),
			auth.CodeInvalidAuthenticationToken, "algorithm 'HS256'"},
		{"HS256 signed by go-jose", "Bearer " + sign(t, pubPEM, jose.HS256, rsaKID, forged, nil),
			auth.CodeInvalidAuthenticationToken, "algorithm 'HS256'"},
		{"PS256", "Bearer " + sign(t, rsaKey, jose.PS256, rsaKID, goodClaims(now), nil),
			auth.CodeInvalidAuthenticationToken, "algorithm 'PS256'"},
		{"RS512", "Bearer " + sign(t, rsaKey, jose.RS512, rsaKID, goodClaims(now), nil),
			auth.CodeInvalidAuthenticationToken, "algorithm 'RS512'"},
		{"ES256 naming an RSA key", "Bearer " + sign(t, ecKey, jose.ES256, rsaKID, goodClaims(now), nil),
			auth.CodeInvalidAuthenticationToken, "does not match its signing key"},
		{"RS256 naming an EC key", "Bearer " + sign(t, rsaKey, jose.RS256, ecKID, goodClaims(now), nil),
			auth.CodeInvalidAuthenticationToken, "does not match its signing key"},
		{"unknown kid", "Bearer " + sign(t, otherRSA, jose.RS256, thumbprint(t, &otherRSA.PublicKey), goodClaims(now), nil),
			auth.CodeInvalidAuthenticationToken, "unknown to its issuer"},
		{"no kid, several keys", "Bearer " + sign(t, rsaKey, jose.RS256, "", goodClaims(now), nil),
			auth.CodeInvalidAuthenticationToken, "several keys"},
		{"crit header", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, goodClaims(now), map[string]any{"crit": []string{"exp"}, "exp": 1}),
			auth.CodeInvalidAuthenticationToken, "crit"},
		{"unknown issuer", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "iss", "https://sts.windows.net/x/"), nil),
			auth.CodeInvalidAuthenticationTokenTenant, "wrong issuer 'https://sts.windows.net/x/'"},
		{"issuer differs by a trailing slash", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "iss", staticIssuer+"/"), nil),
			auth.CodeInvalidAuthenticationTokenTenant, "wrong issuer"},
		{"no issuer", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "iss", nil), nil),
			auth.CodeInvalidAuthenticationTokenTenant, "wrong issuer ''"},
		{"expired", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "exp", now.Add(-10*time.Minute).Unix()), nil),
			auth.CodeExpiredAuthenticationToken,
			"The access token expiry UTC time '3/1/2026 11:50:00 AM' is earlier than current UTC time '3/1/2026 12:00:00 PM'."},
		{"no exp", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "exp", nil), nil),
			auth.CodeInvalidAuthenticationToken, "'exp'"},
		{"exp as a string", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "exp", "1900000000"), nil),
			auth.CodeInvalidAuthenticationToken, "claims"},
		{"exp negative", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "exp", -1), nil),
			auth.CodeInvalidAuthenticationToken, "claims"},
		{"exp beyond year 9999", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "exp", 1e300), nil),
			auth.CodeInvalidAuthenticationToken, "claims"},
		{"nbf in the future", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "nbf", now.Add(6*time.Minute).Unix()), nil),
			auth.CodeNotYetValidAuthenticationToken,
			"The access token validity start UTC time '3/1/2026 12:06:00 PM' is later than current UTC time '3/1/2026 12:00:00 PM'."},
		{"iat in the future", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "iat", now.Add(time.Hour).Unix()), nil),
			auth.CodeNotYetValidAuthenticationToken, "issue UTC time '3/1/2026 1:00:00 PM'"},
		{"wrong audience", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "aud", "https://vault.azure.net"), nil),
			auth.CodeInvalidAuthenticationTokenAudience,
			"wrong audience or resource 'https://vault.azure.net'. It should exactly match with one of the allowed audiences 'https://management.azure.com','https://management.azure.com/'"},
		{"audience differs in case", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "aud", "https://MANAGEMENT.azure.com"), nil),
			auth.CodeInvalidAuthenticationTokenAudience, "wrong audience"},
		{"empty audience array", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "aud", []string{}), nil),
			auth.CodeInvalidAuthenticationTokenAudience, "wrong audience"},
		{"no audience", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "aud", nil), nil),
			auth.CodeInvalidAuthenticationTokenAudience, "wrong audience"},
		{"audience of the wrong type", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "aud", 42), nil),
			auth.CodeInvalidAuthenticationToken, "claims"},
		{"neither oid nor sub", "Bearer " + sign(t, rsaKey, jose.RS256, rsaKID, with(goodClaims(now), "oid", nil, "sub", nil), nil),
			auth.CodeInvalidAuthenticationToken, "at least one of the claims 'oid' or 'sub' should be present"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tc.header)
			if err == nil {
				t.Fatalf("Verify succeeded with principal %+v", p)
			}
			if p != nil {
				t.Fatalf("Verify returned a principal with error %v", err)
			}
			e := asAuthError(t, err)
			if e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("error = %s: %s\nwant code %s, message containing %q", e.Code, e.Message, tc.code, tc.msg)
			}
			if e.Error() != e.Code+": "+e.Message {
				t.Fatalf("Error() = %q", e.Error())
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func smallRSAKey(t testing.TB) crypto.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func TestChallenge(t *testing.T) {
	loadTestKeys(t)
	v := staticVerifier(t, nil, &testRSA[0].PublicKey)
	got := v.Challenge(&auth.Error{Code: auth.CodeInvalidAuthenticationToken, Message: "bad \"token\" \\ é\r\nx"})
	want := `Bearer authorization_uri="https://issuer.test/` + testTenant + `", error="invalid_token", error_description="bad 'token' ? ???x"`
	if got != want {
		t.Fatalf("Challenge =\n%s\nwant\n%s", got, want)
	}
	// azcore parses challenges with this expression; every parameter must survive it.
	params := regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(got, -1)
	if len(params) != 3 || params[2][1] != "error_description" {
		t.Fatalf("azcore would parse %q as %q", got, params)
	}
	if got := v.Challenge(nil); !strings.Contains(got, `error_description="The access token is missing or invalid."`) {
		t.Fatalf("Challenge(nil) = %s", got)
	}

	custom, err := auth.NewVerifier(auth.VerifierConfig{Audiences: []string{"a"}, AuthorizationURI: "https://login.example/t",
		Static: []auth.StaticIssuer{{Issuer: "https://x", Keys: []crypto.PublicKey{&testRSA[0].PublicKey}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := custom.Challenge(&auth.Error{Message: "m"}); got != `Bearer authorization_uri="https://login.example/t", error="invalid_token", error_description="m"` {
		t.Fatalf("Challenge = %s", got)
	}
}

func TestNewVerifierRejectsBadConfig(t *testing.T) {
	loadTestKeys(t)
	key := &testRSA[0].PublicKey
	good := []auth.StaticIssuer{{Issuer: "https://x", Keys: []crypto.PublicKey{key}}}
	for name, cfg := range map[string]auth.VerifierConfig{
		"no audiences":       {Static: good},
		"empty audience":     {Audiences: []string{""}, Static: good},
		"no issuers":         {Audiences: []string{"a"}},
		"issuer without key": {Audiences: []string{"a"}, Static: []auth.StaticIssuer{{Issuer: "https://x"}}},
		"empty issuer":       {Audiences: []string{"a"}, Static: []auth.StaticIssuer{{Keys: []crypto.PublicKey{key}}}},
		"duplicate issuer":   {Audiences: []string{"a"}, Static: good, OIDC: []string{"https://x"}},
		"unsupported key":    {Audiences: []string{"a"}, Static: []auth.StaticIssuer{{Issuer: "https://x", Keys: []crypto.PublicKey{"k"}}}},
		"small RSA key": {Audiences: []string{"a"}, Static: []auth.StaticIssuer{{Issuer: "https://x",
			Keys: []crypto.PublicKey{smallRSAKey(t)}}}},
		"OIDC over http":      {Audiences: []string{"a"}, OIDC: []string{"http://idp.example.com"}},
		"OIDC not a URL":      {Audiences: []string{"a"}, OIDC: []string{"idp.example.com"}},
		"OIDC with userinfo":  {Audiences: []string{"a"}, OIDC: []string{"https://u:p@idp.example.com"}},
		"OIDC with fragment":  {Audiences: []string{"a"}, OIDC: []string{"https://idp.example.com/#x"}},
		"OIDC relative":       {Audiences: []string{"a"}, OIDC: []string{"/x"}},
		"OIDC empty":          {Audiences: []string{"a"}, OIDC: []string{""}},
		"OIDC twice the same": {Audiences: []string{"a"}, OIDC: []string{"https://idp.example.com", "https://idp.example.com"}},
	} {
		if _, err := auth.NewVerifier(cfg); err == nil {
			t.Errorf("%s: NewVerifier succeeded", name)
		}
	}
	if _, err := auth.NewVerifier(auth.VerifierConfig{Audiences: []string{"a"}, OIDC: []string{"http://127.0.0.1:8080/realms/x", "http://localhost/x"}}); err != nil {
		t.Errorf("loopback http OIDC issuers: %v", err)
	}
}

// TestVerifiedTokenCacheKeepsTimeChecks: a token verified once is still
// refused once it expires, though its signature is not checked again.
func TestVerifiedTokenCacheKeepsTimeChecks(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := now
	iss, err := auth.NewIssuer(auth.IssuerConfig{BaseURL: "https://pgvault.test", TenantID: "t1", KeyDir: t.TempDir(), Clients: &testClients{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Audiences: []string{auth.DefaultAudience}, Static: []auth.StaticIssuer{{Issuer: iss.IssuerURL(), Keys: iss.PublicKeys()}}, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := iss.Mint(auth.Principal{ObjectID: "o1"}, auth.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := v.Verify(context.Background(), "Bearer "+tok); err != nil {
			t.Fatalf("fresh token: %v", err)
		}
	}
	clock = exp.Add(auth.ClockSkew + time.Second)
	_, err = v.Verify(context.Background(), "Bearer "+tok)
	var ae *auth.Error
	if !errors.As(err, &ae) || ae.Code != auth.CodeExpiredAuthenticationToken {
		t.Fatalf("expired cached token: %v", err)
	}
	// A tampered copy of a cached token is not taken for it.
	clock = now
	bad := tok[:len(tok)-2] + "AA"
	if _, err := v.Verify(context.Background(), "Bearer "+bad); err == nil {
		t.Fatal("a tampered token was accepted")
	}
}
