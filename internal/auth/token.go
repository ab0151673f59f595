package auth

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ClockSkew is the tolerance applied to "exp", "nbf" and "iat".
const ClockSkew = 5 * time.Minute

// maxTokenLength bounds the work done on a presented token.
const maxTokenLength = 16 << 10

// DefaultAudiences returns the "aud" values Azure Resource Manager accepts
// (the forms with and without a trailing slash of management.azure.com and
// management.core.windows.net). A new slice on every call.
func DefaultAudiences() []string {
	return []string{
		"https://management.azure.com",
		"https://management.azure.com/",
		"https://management.core.windows.net",
		"https://management.core.windows.net/",
	}
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Audiences are the accepted "aud" values, compared exactly (required);
	// see DefaultAudiences.
	Audiences []string
	// Static are issuers whose public keys we hold (the built-in one).
	Static []StaticIssuer
	// OIDC are external issuer URLs. Their keys come from OIDC discovery
	// (ISSUER/.well-known/openid-configuration, whose "issuer" must equal the
	// URL exactly) and its jwks_uri, fetched on first use, cached, and
	// fetched again when a token names an unknown kid (at most once a minute)
	// or when the cache is a day old. URLs must be https, except on loopback
	// hosts.
	OIDC []string
	// HTTPClient fetches discovery documents and key sets; default a client
	// with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// AuthorizationURI is the authorization_uri of Challenge; default the
	// first static issuer without its "/v2.0" suffix (the authority a client
	// such as azidentity asks for tokens), else the first OIDC issuer.
	AuthorizationURI string
	// Logger receives key-set fetches of external issuers; default discards.
	// Tokens are never logged.
	Logger *slog.Logger
}

// StaticIssuer is an issuer whose public keys are known in advance.
type StaticIssuer struct {
	// Issuer is the exact "iss" of its tokens.
	Issuer string
	// Keys are RSA (at least 2048 bits) or P-256 ECDSA public keys, as
	// returned by Issuer.PublicKeys. Each key's kid is its RFC 7638
	// thumbprint. A token without kid is accepted only if there is one key.
	Keys []crypto.PublicKey
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	verified         verifiedCache
	audiences        []string
	issuers          map[string]keySource
	issuerNames      []string
	authorizationURI string
	now              func() time.Time
}

// keySource finds the key that verifies a token of one issuer.
type keySource interface {
	// key returns the public key named kid (nil: the token has no kid) for
	// alg. It returns an *Error when the token names no usable key, another
	// error when the keys could not be obtained.
	key(ctx context.Context, kid *string, alg string) (crypto.PublicKey, error)
}

// NewVerifier returns a Verifier. It does no I/O: external issuers are
// discovered on first use.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{issuers: map[string]keySource{}, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	for _, a := range cfg.Audiences {
		if a == "" {
			return nil, errors.New("while configuring the token verifier: empty audience")
		}
		if !slices.Contains(v.audiences, a) {
			v.audiences = append(v.audiences, a)
		}
	}
	if len(v.audiences) == 0 {
		return nil, errors.New("while configuring the token verifier: no audiences")
	}
	for _, s := range cfg.Static {
		src, err := newStaticKeys(s)
		if err != nil {
			return nil, fmt.Errorf("while configuring the token verifier: %w", err)
		}
		if err := v.addIssuer(s.Issuer, src); err != nil {
			return nil, err
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	for _, iss := range cfg.OIDC {
		src, err := newOIDCKeys(iss, client, v.now, log)
		if err != nil {
			return nil, fmt.Errorf("while configuring the token verifier: %w", err)
		}
		if err := v.addIssuer(iss, src); err != nil {
			return nil, err
		}
	}
	if len(v.issuers) == 0 {
		return nil, errors.New("while configuring the token verifier: no trusted issuers")
	}
	v.authorizationURI = cfg.AuthorizationURI
	if v.authorizationURI == "" {
		if len(cfg.Static) > 0 {
			v.authorizationURI = strings.TrimSuffix(cfg.Static[0].Issuer, "/v2.0")
		} else {
			v.authorizationURI = cfg.OIDC[0]
		}
	}
	return v, nil
}

func (v *Verifier) addIssuer(iss string, src keySource) error {
	if iss == "" {
		return errors.New("while configuring the token verifier: empty issuer")
	}
	if _, dup := v.issuers[iss]; dup {
		return fmt.Errorf("while configuring the token verifier: issuer %q configured twice", iss)
	}
	v.issuers[iss] = src
	v.issuerNames = append(v.issuerNames, iss)
	return nil
}

// Verify checks an Authorization header value ("Bearer <JWT>") and returns
// the caller. Every problem with the header or the token is an *Error. The
// only other errors come from an external issuer whose keys could not be
// fetched at all (not yet cached); the API should answer those with a 5xx.
//
// The checks, in order: the header's form; the token's compact JWS form and
// size; alg is RS256 or ES256; no "crit" header; "iss" is a trusted issuer
// (exact match); the key named by kid (or the only key) exists and suits alg;
// the signature; "exp" is present and not passed; "nbf" and "iat", when
// present, are not in the future; "aud" (string or array) contains an
// accepted audience; "oid" or "sub" is present. Time checks allow ClockSkew.
func (v *Verifier) Verify(ctx context.Context, authorizationHeader string) (*Principal, error) {
	token, e := bearerToken(authorizationHeader)
	if e != nil {
		return nil, e
	}
	return v.verifyToken(ctx, token)
}

// bearerToken extracts the token of "Bearer <token>" (the scheme is
// case-insensitive, RFC 7235).
func bearerToken(header string) (string, *Error) {
	if strings.TrimSpace(header) == "" {
		return "", authErrorf(CodeAuthenticationFailed, "Authentication failed. The 'Authorization' header is missing.")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimLeft(token, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", authErrorf(CodeAuthenticationFailed, "Authentication failed. The 'Authorization' header is provided in an invalid format; expected 'Bearer <access token>'.")
	}
	return token, nil
}

// jwsHeader is the part of a JOSE header pgvault reads itself.
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  *string         `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

// tokenClaims are the claims pgvault reads.
type tokenClaims struct {
	Issuer    string       `json:"iss"`
	Audience  audience     `json:"aud"`
	Expiry    *numericDate `json:"exp"`
	NotBefore *numericDate `json:"nbf"`
	IssuedAt  *numericDate `json:"iat"`
	ObjectID  string       `json:"oid"`
	Subject   string       `json:"sub"`
	TenantID  string       `json:"tid"`
	AppID     string       `json:"appid"`
	Azp       string       `json:"azp"`
}

func (v *Verifier) verifyToken(ctx context.Context, token string) (*Principal, error) {
	sum := sha256.Sum256([]byte(token))
	if claims, ok := v.verified.get(sum); ok {
		return v.checkClaims(claims)
	}
	if len(token) > maxTokenLength {
		return nil, errMalformed(fmt.Sprintf("it is longer than %d bytes", maxTokenLength))
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errMalformed("it is not a JWT in JWS compact serialization")
	}
	var hdr jwsHeader
	if _, err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, errMalformed("its header is not base64url-encoded JSON")
	}
	alg, ok := acceptedAlg(hdr.Alg)
	if !ok {
		return nil, authErrorf(CodeInvalidAuthenticationToken,
			"The access token is signed with algorithm '%s'; only RS256 and ES256 are accepted.", quoted(hdr.Alg))
	}
	if hdr.Crit != nil {
		return nil, errMalformed("its header has critical extensions ('crit'), which are not supported")
	}
	var claims tokenClaims
	claimBytes, err := decodeSegment(parts[1], &claims)
	if err != nil {
		return nil, errMalformed("its claims are not base64url-encoded JSON of the expected types")
	}
	src, ok := v.issuers[claims.Issuer]
	if !ok {
		return nil, authErrorf(CodeInvalidAuthenticationTokenTenant,
			"The access token is from the wrong issuer '%s'. It must match one of the issuers trusted by this server: %s.",
			quoted(claims.Issuer), quoteList(v.issuerNames))
	}
	pub, err := src.key(ctx, hdr.Kid, hdr.Alg)
	if err != nil {
		return nil, err
	}
	// The allow-list passed to go-jose is the one algorithm checked above, and
	// the key is the one selected for it, so go-jose cannot pick another.
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{alg})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errMalformed("it is not a valid JWS")
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, authErrorf(CodeInvalidAuthenticationToken, "The access token signature is invalid.")
	}
	// go-jose decoded the same segment; the claims read above are the
	// signed ones.
	if !bytes.Equal(payload, claimBytes) {
		return nil, errMalformed("its claims do not match its signature")
	}
	p, err := v.checkClaims(&claims)
	if err == nil {
		v.verified.put(sum, &claims)
	}
	return p, err
}

// maxVerified bounds the cache of verified tokens.
const maxVerified = 4096

// verifiedCache remembers the claims of tokens whose signature was verified,
// keyed by the token's SHA-256, so that a client reusing its token (as every
// SDK does for an hour) pays for one signature check, not one per request.
// The time and audience checks still run on every use.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[32]byte]*tokenClaims
}

func (c *verifiedCache) get(sum [32]byte) (*tokenClaims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	claims, ok := c.m[sum]
	return claims, ok
}

func (c *verifiedCache) put(sum [32]byte, claims *tokenClaims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[[32]byte]*tokenClaims) // start over: simple, and bounded
	}
	c.m[sum] = claims
}

func (v *Verifier) checkClaims(c *tokenClaims) (*Principal, error) {
	now := v.now()
	if c.Expiry == nil {
		return nil, errMalformed("it has no expiry ('exp' claim)")
	}
	if exp := c.Expiry.Time(); now.After(exp.Add(ClockSkew)) {
		return nil, authErrorf(CodeExpiredAuthenticationToken,
			"The access token expiry UTC time '%s' is earlier than current UTC time '%s'.", azureTime(exp), azureTime(now))
	}
	if c.NotBefore != nil {
		if nbf := c.NotBefore.Time(); nbf.After(now.Add(ClockSkew)) {
			return nil, authErrorf(CodeNotYetValidAuthenticationToken,
				"The access token validity start UTC time '%s' is later than current UTC time '%s'.", azureTime(nbf), azureTime(now))
		}
	}
	if c.IssuedAt != nil {
		if iat := c.IssuedAt.Time(); iat.After(now.Add(ClockSkew)) {
			return nil, authErrorf(CodeNotYetValidAuthenticationToken,
				"The access token issue UTC time '%s' is later than current UTC time '%s'.", azureTime(iat), azureTime(now))
		}
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return nil, authErrorf(CodeInvalidAuthenticationTokenAudience,
			"The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences %s.",
			quoted(strings.Join(c.Audience, "','")), quoteList(v.audiences))
	}
	p := &Principal{ObjectID: cmp.Or(c.ObjectID, c.Subject), TenantID: c.TenantID, ClientID: cmp.Or(c.AppID, c.Azp), Issuer: c.Issuer}
	if p.ObjectID == "" {
		return nil, authErrorf(CodeInvalidAuthenticationToken,
			"The received access token is not valid: at least one of the claims 'oid' or 'sub' should be present.")
	}
	return p, nil
}

// Challenge returns the WWW-Authenticate value for e, in ARM's form:
//
//	Bearer authorization_uri="...", error="invalid_token", error_description="..."
//
// The description is e's message restricted to printable ASCII without
// quotes or backslashes (azcore parses challenge parameters as "[^"]*").
func (v *Verifier) Challenge(e *Error) string {
	desc := "The access token is missing or invalid."
	if e != nil && e.Message != "" {
		desc = e.Message
	}
	return fmt.Sprintf(`Bearer authorization_uri="%s", error="invalid_token", error_description="%s"`,
		challengeText(v.authorizationURI), challengeText(desc))
}

func challengeText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\' || r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}

// quoteList renders values as ARM does in its messages: 'a','b'.
func quoteList(values []string) string {
	q := make([]string, len(values))
	for i, s := range values {
		q[i] = "'" + quoted(s) + "'"
	}
	return strings.Join(q, ",")
}

// decodeSegment decodes a base64url (unpadded) JSON segment into v and
// returns the decoded bytes.
func decodeSegment(seg string, v any) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return nil, err
	}
	return b, json.Unmarshal(b, v)
}

// audience is "aud": a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// numericDate is a JWT NumericDate: seconds since the epoch, a JSON number
// (possibly fractional) between 0 and the end of year 9999.
type numericDate float64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 253402300799 {
		return fmt.Errorf("%q is not a NumericDate", b)
	}
	*d = numericDate(f)
	return nil
}

// Time returns d as a time.
func (d numericDate) Time() time.Time {
	sec, frac := math.Modf(float64(d))
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// verificationKey is a key a token may name.
type verificationKey struct {
	kid string // "" when the key has none
	alg string // the JWK's "alg", "" when unspecified
	pub crypto.PublicKey
}

// pickKey selects the key for a token's kid (nil: none) and alg among keys.
// unknown reports that no key has that kid (or that there are no keys at
// all), which makes a remote key set worth fetching again.
func pickKey(issuer string, keys []verificationKey, kid *string, alg string) (pub crypto.PublicKey, unknown bool, e *Error) {
	var candidates []verificationKey
	switch {
	case kid == nil && len(keys) == 1:
		candidates = keys
	case kid == nil && len(keys) > 1:
		return nil, false, authErrorf(CodeInvalidAuthenticationToken,
			"The access token names no signing key ('kid' header) and its issuer '%s' has several keys.", quoted(issuer))
	case kid != nil:
		for _, k := range keys {
			if k.kid == *kid {
				candidates = append(candidates, k)
			}
		}
	}
	if len(candidates) == 0 {
		name := "(none)"
		if kid != nil {
			name = *kid
		}
		return nil, true, authErrorf(CodeInvalidAuthenticationToken,
			"The access token is signed with a key '%s' unknown to its issuer '%s'.", quoted(name), quoted(issuer))
	}
	for _, k := range candidates {
		if (k.alg == "" || k.alg == alg) && checkKeyForAlg(k.pub, alg) == nil {
			return k.pub, false, nil
		}
	}
	return nil, false, authErrorf(CodeInvalidAuthenticationToken,
		"The access token's algorithm '%s' does not match its signing key '%s'.", quoted(alg), quoted(candidates[0].kid))
}

// staticKeys is the key source of a StaticIssuer.
type staticKeys struct {
	issuer string
	keys   []verificationKey
}

func newStaticKeys(s StaticIssuer) (*staticKeys, error) {
	src := &staticKeys{issuer: s.Issuer}
	if len(s.Keys) == 0 {
		return nil, fmt.Errorf("issuer %q has no keys", s.Issuer)
	}
	for _, pub := range s.Keys {
		if _, err := algForKey(pub); err != nil {
			return nil, fmt.Errorf("issuer %q: %w", s.Issuer, err)
		}
		kid, err := keyID(pub)
		if err != nil {
			return nil, fmt.Errorf("issuer %q: %w", s.Issuer, err)
		}
		src.keys = append(src.keys, verificationKey{kid: kid, pub: pub})
	}
	return src, nil
}

func (s *staticKeys) key(_ context.Context, kid *string, alg string) (crypto.PublicKey, error) {
	pub, _, e := pickKey(s.issuer, s.keys, kid, alg)
	if e != nil {
		return nil, e
	}
	return pub, nil
}
