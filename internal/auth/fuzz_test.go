package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgvault/pgvault/internal/auth"
)

// FuzzVerify feeds arbitrary Authorization header values to a Verifier. None
// may panic, verify, or fail with anything but an *auth.Error. The seeds
// include tokens signed with the trusted keys, but the verifier's clock lies
// far beyond their expiry, so no mutation of them can verify either.
func FuzzVerify(f *testing.F) {
	loadTestKeys(f)
	rsaKey, ecKey, other := testRSA[0], testEC[0], testRSA[1]
	rsaKID, ecKID := thumbprint(f, &rsaKey.PublicKey), thumbprint(f, &ecKey.PublicKey)
	future := testStart.Add(100 * 365 * 24 * time.Hour)
	v := staticVerifier(f, func() time.Time { return future }, &rsaKey.PublicKey, &ecKey.PublicKey)

	claims := goodClaims(testStart)
	for _, seed := range []string{
		"",
		"Bearer",
		"Bearer ",
		"Basic dXNlcjpwYXNz",
		"Bearer a.b.c",
		"Bearer ..",
		"Bearer e30.e30.",
		"Bearer " + sign(f, rsaKey, jose.RS256, rsaKID, claims, nil),
		"Bearer " + sign(f, ecKey, jose.ES256, ecKID, claims, nil),
		"Bearer " + sign(f, rsaKey, jose.RS256, "", claims, nil),
		"Bearer " + sign(f, other, jose.RS256, rsaKID, with(claims, "exp", future.Add(time.Hour).Unix()), nil),
		"Bearer " + sign(f, []byte("0123456789abcdef0123456789abcdef"), jose.HS256, rsaKID, with(claims, "exp", future.Add(time.Hour).Unix()), nil),
		"Bearer " + sign(f, rsaKey, jose.PS256, rsaKID, claims, nil),
		"Bearer " + rawJWT(f, map[string]any{"alg": "none", "kid": rsaKID}, with(claims, "exp", future.Add(time.Hour).Unix()), nil),
		"Bearer " + rawJWT(f, map[string]any{"alg": "RS256", "kid": rsaKID, "crit": []string{"b64"}, "b64": false},
			with(claims, "exp", future.Add(time.Hour).Unix()), []byte("sig")),
		"Bearer " + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"`+rsaKID+`"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+staticIssuer+`","exp":1e308,"aud":[1]}`)) + ".AAAA",
		`Bearer {"payload":"e30","signatures":[{"protected":"eyJhbGciOiJSUzI1NiJ9","signature":"AAAA"}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, err := v.Verify(context.Background(), header)
		if err == nil {
			t.Fatalf("Verify(%q) succeeded: %+v", header, p)
		}
		if p != nil {
			t.Fatalf("Verify(%q) returned a principal and %v", header, err)
		}
		var e *auth.Error
		if !errors.As(err, &e) || e.Code == "" || e.Message == "" {
			t.Fatalf("Verify(%q) = %v (%T), want an *auth.Error", header, err, err)
		}
		if c := v.Challenge(e); strings.ContainsAny(c, "\r\n\x00") || strings.Count(c, `"`) != 6 {
			t.Fatalf("Challenge for %q = %q", header, c)
		}
	})
}
