package auth

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
)

// DefaultAudience is the default audience of issued tokens.
const DefaultAudience = "https://management.azure.com"

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	// BaseURL is the URL clients reach the issuer at, e.g.
	// https://127.0.0.1:7070 (no trailing slash; a path prefix is allowed).
	// azidentity and MSAL accept only https authorities.
	BaseURL string
	// TenantID is the one tenant of the issuer: letters, digits, '-' and
	// '.', and none of MSAL's reserved names (common, organizations,
	// consumers, adfs, dstsv2).
	TenantID string
	// KeyDir holds the signing key (signing-key.pem): the directory is
	// created with mode 0700 and the key file with mode 0600, reused across
	// restarts; an RSA-3072 (RS256) key is generated on first use. A P-256
	// key (ES256) placed there is used as well. A key file readable by group
	// or others is refused.
	KeyDir string
	// Audience is the "aud" of issued tokens; default DefaultAudience.
	Audience string
	// Lifetime of issued tokens, between 5 minutes and 24 hours; default 1h.
	Lifetime time.Duration
	// Clients authenticates clients at the token endpoint (required).
	Clients ClientAuthenticator
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives issuance and client authentication events; default
	// discards. Secrets and tokens are never logged.
	Logger *slog.Logger
}

// ClientAuthenticator checks client credentials for the token endpoint.
type ClientAuthenticator interface {
	// AuthenticateClient checks a client ID and secret; ErrInvalidClient
	// when they do not match. The returned principal's ObjectID becomes the
	// token's "oid" and "sub"; its ClientID (default clientID) becomes
	// "appid" and "azp". Its TenantID and Issuer are ignored: the issuer's
	// own are used.
	AuthenticateClient(ctx context.Context, clientID, clientSecret string) (*Principal, error)
}

// ErrInvalidClient is returned by a ClientAuthenticator for a client ID and
// secret that do not match.
var ErrInvalidClient = errors.New("invalid client credentials")

// Issuer is the built-in OAuth2 client-credentials issuer, shaped like
// Microsoft Entra ID's v2.0 endpoints so that azidentity's
// ClientSecretCredential can use it. It is safe for concurrent use.
type Issuer struct {
	baseURL  string
	basePath string
	host     string
	tenantID string
	audience string
	lifetime time.Duration
	clients  ClientAuthenticator
	now      func() time.Time
	log      *slog.Logger
	signer   jose.Signer
	pub      crypto.PublicKey
	alg      string
	kid      string
}

// NewIssuer returns an Issuer, loading or creating its signing key.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(cfg.BaseURL, "/") {
		return nil, fmt.Errorf("while configuring the token issuer: base URL %q is not an http(s) URL without trailing slash, query or fragment", cfg.BaseURL)
	}
	if err := checkTenantID(cfg.TenantID); err != nil {
		return nil, fmt.Errorf("while configuring the token issuer: %w", err)
	}
	if cfg.Clients == nil {
		return nil, errors.New("while configuring the token issuer: no client authenticator")
	}
	lifetime := cmp.Or(cfg.Lifetime, time.Hour)
	if lifetime < 5*time.Minute || lifetime > 24*time.Hour {
		return nil, fmt.Errorf("while configuring the token issuer: lifetime %s is not between 5m and 24h", lifetime)
	}
	audience := cmp.Or(cfg.Audience, DefaultAudience)
	if strings.ContainsAny(audience, " \t\r\n") {
		return nil, fmt.Errorf("while configuring the token issuer: audience %q contains whitespace", audience)
	}
	key, err := loadOrCreateSigningKey(cfg.KeyDir)
	if err != nil {
		return nil, fmt.Errorf("while configuring the token issuer: %w", err)
	}
	i := &Issuer{
		baseURL:  cfg.BaseURL,
		basePath: u.Path,
		host:     u.Host,
		tenantID: cfg.TenantID,
		audience: audience,
		lifetime: lifetime,
		clients:  cfg.Clients,
		now:      cfg.Now,
		log:      cfg.Logger,
		pub:      key.Public(),
	}
	if i.now == nil {
		i.now = time.Now
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	if i.alg, err = algForKey(i.pub); err != nil {
		return nil, fmt.Errorf("while configuring the token issuer: %w", err)
	}
	if i.kid, err = keyID(i.pub); err != nil {
		return nil, fmt.Errorf("while configuring the token issuer: %w", err)
	}
	i.signer, err = jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(i.alg), Key: jose.JSONWebKey{Key: key, KeyID: i.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("while configuring the token issuer: while preparing the signer: %w", err)
	}
	return i, nil
}

func checkTenantID(t string) error {
	if t == "" || len(t) > 256 {
		return fmt.Errorf("tenant ID %q is empty or too long", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("tenant ID %q has characters other than letters, digits, '-' and '.'", t)
		}
	}
	switch strings.ToLower(t) {
	case "common", "organizations", "consumers", "adfs", "dstsv2":
		return fmt.Errorf("tenant ID %q is reserved by MSAL", t)
	}
	return nil
}

// IssuerURL returns the "iss" of the issuer's tokens:
// BaseURL + "/" + TenantID + "/v2.0".
func (i *Issuer) IssuerURL() string { return i.baseURL + "/" + i.tenantID + "/v2.0" }

// AuthorityURL returns the authority clients ask for tokens:
// BaseURL + "/" + TenantID (azidentity's AuthorityHost is BaseURL + "/").
func (i *Issuer) AuthorityURL() string { return i.baseURL + "/" + i.tenantID }

// Audience returns the "aud" of the tokens the token endpoint issues.
func (i *Issuer) Audience() string { return i.audience }

// PublicKeys returns the keys that verify the issuer's tokens (for
// StaticIssuer.Keys); each one's kid is its RFC 7638 thumbprint.
func (i *Issuer) PublicKeys() []crypto.PublicKey { return []crypto.PublicKey{i.pub} }

// accessTokenClaims are the claims of an issued token, Entra-shaped.
type accessTokenClaims struct {
	Audience  string `json:"aud"`
	Issuer    string `json:"iss"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	AppID     string `json:"appid,omitempty"`
	Azp       string `json:"azp,omitempty"`
	IDType    string `json:"idtyp"`
	ObjectID  string `json:"oid"`
	Subject   string `json:"sub"`
	TenantID  string `json:"tid"`
	UTI       string `json:"uti"`
	JTI       string `json:"jti"`
	Version   string `json:"ver"`
}

// Mint issues a token for p (p.ObjectID required; p.ClientID optional) with
// the given audience (default the configured one). The token carries iss,
// aud, sub and oid (p.ObjectID), tid (the issuer's tenant), appid and azp
// (p.ClientID), idtyp "app", iat, nbf, exp, ver "2.0", and a random uti and
// jti; its header carries kid and typ "JWT". expires is its "exp".
func (i *Issuer) Mint(p Principal, audience string) (token string, expires time.Time, err error) {
	if p.ObjectID == "" {
		return "", time.Time{}, errors.New("while minting a token: the principal has no object ID")
	}
	now := i.now().Truncate(time.Second)
	expires = now.Add(i.lifetime)
	id := rand.Text()
	claims := accessTokenClaims{
		Audience:  cmp.Or(audience, i.audience),
		Issuer:    i.IssuerURL(),
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		Expiry:    expires.Unix(),
		AppID:     p.ClientID,
		Azp:       p.ClientID,
		IDType:    "app",
		ObjectID:  p.ObjectID,
		Subject:   p.ObjectID,
		TenantID:  i.tenantID,
		UTI:       id,
		JTI:       id,
		Version:   "2.0",
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("while minting a token: %w", err)
	}
	jws, err := i.signer.Sign(payload)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("while minting a token: while signing: %w", err)
	}
	token, err = jws.CompactSerialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("while minting a token: %w", err)
	}
	return token, expires, nil
}

// The endpoints of an Issuer, below BaseURL + "/{tenant}".
type issuerEndpoint int

const (
	endpointNone issuerEndpoint = iota
	endpointToken
	endpointAuthorize
	endpointOpenIDConfiguration
	endpointKeys
)

func (i *Issuer) route(path string) (tenant string, ep issuerEndpoint) {
	rest, ok := strings.CutPrefix(path, i.basePath+"/")
	if !ok {
		return "", endpointNone
	}
	tenant, rest, ok = strings.Cut(rest, "/")
	if !ok || tenant == "" {
		return "", endpointNone
	}
	switch rest {
	case "oauth2/v2.0/token":
		return tenant, endpointToken
	case "oauth2/v2.0/authorize":
		return tenant, endpointAuthorize
	case "v2.0/.well-known/openid-configuration":
		return tenant, endpointOpenIDConfiguration
	case "discovery/v2.0/keys":
		return tenant, endpointKeys
	}
	return "", endpointNone
}

// Owns reports whether ServeHTTP serves path (a request's URL.Path): below
// BaseURL's path, /{tenant}/oauth2/v2.0/token, /{tenant}/oauth2/v2.0/authorize
// (which only answers that interactive flows are not supported),
// /{tenant}/v2.0/.well-known/openid-configuration and
// /{tenant}/discovery/v2.0/keys, for any {tenant} (a wrong one is answered
// with an OAuth2 error). These requests need no bearer token.
func (i *Issuer) Owns(path string) bool {
	_, ep := i.route(path)
	return ep != endpointNone
}

// ServeHTTP serves the issuer's endpoints (see Owns).
func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenant, ep := i.route(r.URL.Path)
	oe := &oauthResponder{w: w, r: r, now: i.now}
	if cid := r.Header.Get("client-request-id"); cid != "" && len(cid) <= 64 && strings.EqualFold(r.Header.Get("return-client-request-id"), "true") {
		w.Header().Set("client-request-id", cid)
	}
	switch {
	case ep == endpointNone:
		oe.fail(http.StatusNotFound, "invalid_request", 9002313, "The request path is not an endpoint of this issuer.")
		return
	case !strings.EqualFold(tenant, i.tenantID):
		code := "invalid_tenant"
		if ep == endpointToken {
			code = "invalid_request"
		}
		oe.fail(http.StatusBadRequest, code, 90002, fmt.Sprintf(
			"Tenant '%s' not found. This issuer serves tenant '%s' only.", quoted(tenant), i.tenantID))
		return
	}
	switch ep {
	case endpointToken:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			oe.fail(http.StatusMethodNotAllowed, "invalid_request", 900561,
				fmt.Sprintf("The endpoint only accepts POST requests. Received a %s request.", quoted(r.Method)))
			return
		}
		i.serveToken(r.Context(), oe)
	case endpointAuthorize:
		oe.fail(http.StatusBadRequest, "unsupported_response_type", 70005,
			"This issuer supports only the client credentials grant at its token endpoint; interactive sign-in is not available.")
	case endpointOpenIDConfiguration, endpointKeys:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			oe.fail(http.StatusMethodNotAllowed, "invalid_request", 900561,
				fmt.Sprintf("The endpoint only accepts GET requests. Received a %s request.", quoted(r.Method)))
			return
		}
		w.Header().Set("Cache-Control", "max-age=3600, private")
		if ep == endpointKeys {
			writeJSON(w, http.StatusOK, i.jwks())
		} else {
			writeJSON(w, http.StatusOK, i.openIDConfiguration())
		}
	}
}

// openIDConfiguration is the discovery document. MSAL for Go reads
// authorization_endpoint, token_endpoint and issuer (all three must be
// non-empty, and issuer's scheme and host must equal the authority's);
// go-oidc reads issuer and jwks_uri. The rest follows Entra's document.
func (i *Issuer) openIDConfiguration() map[string]any {
	base := i.AuthorityURL()
	return map[string]any{
		"issuer":                                i.IssuerURL(),
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"grant_types_supported":                 []string{"client_credentials"},
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{i.alg},
		"scopes_supported":                      []string{strings.TrimSuffix(i.audience, "/") + "/.default"},
		"claims_supported": []string{"iss", "aud", "sub", "oid", "tid", "appid", "azp", "idtyp",
			"iat", "nbf", "exp", "uti", "jti", "ver"},
		"request_uri_parameter_supported": false,
		"tenant_region_scope":             nil,
		"cloud_instance_name":             i.host,
	}
}

func (i *Issuer) jwks() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: i.pub, KeyID: i.kid, Algorithm: i.alg, Use: "sig"}}}
}

// ignoredScopes are OpenID scopes MSAL adds to every request ("openid
// offline_access profile"); they grant nothing here.
func ignoredScope(s string) bool {
	switch s {
	case "openid", "offline_access", "profile", "email":
		return true
	}
	return false
}

func (i *Issuer) serveToken(ctx context.Context, oe *oauthResponder) {
	r := oe.r
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		oe.fail(http.StatusBadRequest, "invalid_request", 900144,
			"The request body must be application/x-www-form-urlencoded and contain the parameter 'grant_type'.")
		return
	}
	r.Body = http.MaxBytesReader(oe.w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oe.fail(http.StatusBadRequest, "invalid_request", 9002313, "Invalid request. The request body could not be parsed.")
		return
	}
	form := r.PostForm // never the query string: secrets do not belong in URLs
	for k, vs := range form {
		if len(vs) > 1 {
			oe.fail(http.StatusBadRequest, "invalid_request", 9002313,
				fmt.Sprintf("Invalid request. The parameter '%s' is repeated.", quoted(k)))
			return
		}
	}
	switch grant := form.Get("grant_type"); grant {
	case "client_credentials":
	case "":
		oe.fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	default:
		oe.fail(http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'. This issuer supports 'client_credentials' only.", quoted(grant)))
		return
	}
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		oe.fail(http.StatusBadRequest, "invalid_request", 9002313,
			"Invalid request. Client assertions are not supported; authenticate with a client secret.")
		return
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	basicID, basicSecret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 2.3.1: both are form-urlencoded before base64.
		id, err1 := url.QueryUnescape(basicID)
		sec, err2 := url.QueryUnescape(basicSecret)
		switch {
		case err1 != nil || err2 != nil:
			oe.fail(http.StatusBadRequest, "invalid_request", 9002313, "Invalid request. The Basic credentials are not form-urlencoded.")
			return
		case form.Has("client_secret"):
			oe.fail(http.StatusBadRequest, "invalid_request", 9002313,
				"Invalid request. The client authenticated with more than one method (Basic and client_secret).")
			return
		case clientID != "" && clientID != id:
			oe.fail(http.StatusBadRequest, "invalid_request", 9002313,
				"Invalid request. The client_id parameter differs from the Basic credentials.")
			return
		}
		clientID, secret = id, sec
	}
	if clientID == "" {
		oe.fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	if secret == "" {
		oe.fail(http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	if e := i.checkScope(form.Get("scope")); e != "" {
		oe.fail(http.StatusBadRequest, "invalid_scope", 70011, e)
		return
	}
	p, err := i.clients.AuthenticateClient(ctx, clientID, secret)
	switch {
	case errors.Is(err, ErrInvalidClient):
		i.log.InfoContext(ctx, "client authentication failed", "client_id", clientID, "trace_id", oe.traceID())
		if basic {
			oe.w.Header().Set("WWW-Authenticate", `Basic realm="`+challengeText(i.IssuerURL())+`"`)
		}
		oe.fail(http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided for client '%s'.", quoted(clientID)))
		return
	case err != nil:
		i.log.ErrorContext(ctx, "client authentication errored", "client_id", clientID, "error", err, "trace_id", oe.traceID())
		oe.fail(http.StatusInternalServerError, "server_error", 90033, "The issuer could not authenticate the client; try again later.")
		return
	case p == nil || p.ObjectID == "":
		i.log.ErrorContext(ctx, "client authenticator returned no principal", "client_id", clientID, "trace_id", oe.traceID())
		oe.fail(http.StatusInternalServerError, "server_error", 90033, "The issuer could not authenticate the client; try again later.")
		return
	}
	principal := *p
	principal.ClientID = cmp.Or(principal.ClientID, clientID)
	token, expires, err := i.Mint(principal, i.audience)
	if err != nil {
		i.log.ErrorContext(ctx, "minting a token failed", "client_id", clientID, "error", err, "trace_id", oe.traceID())
		oe.fail(http.StatusInternalServerError, "server_error", 90033, "The issuer could not issue a token; try again later.")
		return
	}
	i.log.InfoContext(ctx, "issued an access token", "client_id", principal.ClientID, "object_id", principal.ObjectID,
		"audience", i.audience, "expires", expires)
	expiresIn := int64(expires.Sub(i.now()) / time.Second)
	h := oe.w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	writeJSON(oe.w, http.StatusOK, struct {
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		ExtExpiresIn int64  `json:"ext_expires_in"`
		AccessToken  string `json:"access_token"`
	}{"Bearer", expiresIn, expiresIn, token})
}

// checkScope returns why scope is not accepted, or "". Accepted: exactly
// one resource scope, AUDIENCE/.default, where AUDIENCE is the configured
// audience with or without a trailing slash (so "https://management.azure.com/.default"
// and "https://management.azure.com//.default"), plus any of the OpenID
// scopes MSAL adds.
func (i *Issuer) checkScope(scope string) string {
	want := strings.TrimSuffix(i.audience, "/")
	var resources []string
	for _, s := range strings.Fields(scope) {
		if !ignoredScope(s) {
			resources = append(resources, s)
		}
	}
	if len(resources) != 1 {
		return fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. It must name one resource, '%s/.default'.", want)
	}
	s := resources[0]
	if strings.EqualFold(s, want+"/.default") || strings.EqualFold(s, want+"//.default") {
		return ""
	}
	return fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope '%s' is not valid; this issuer grants '%s/.default' only.", quoted(s), want)
}

// oauthResponder writes OAuth2 error responses in Entra's shape.
type oauthResponder struct {
	w     http.ResponseWriter
	r     *http.Request
	now   func() time.Time
	trace string
}

func (o *oauthResponder) traceID() string {
	if o.trace == "" {
		o.trace = uuid.NewString()
	}
	return o.trace
}

func (o *oauthResponder) fail(status int, code string, errorCode int, description string) {
	now := o.now().UTC()
	corr := o.r.Header.Get("client-request-id")
	if _, err := uuid.Parse(corr); err != nil {
		corr = uuid.NewString()
	}
	ts := now.Format("2006-01-02 15:04:05Z")
	h := o.w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	writeJSON(o.w, status, struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorCodes       []int  `json:"error_codes"`
		Timestamp        string `json:"timestamp"`
		TraceID          string `json:"trace_id"`
		CorrelationID    string `json:"correlation_id"`
	}{
		Error: code,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			errorCode, description, o.traceID(), corr, ts),
		ErrorCodes:    []int{errorCode},
		Timestamp:     ts,
		TraceID:       o.traceID(),
		CorrelationID: corr,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
