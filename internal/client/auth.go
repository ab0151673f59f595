package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultScope is the OAuth2 scope ClientCredentials asks for: Azure Resource
// Manager's, which pgvault's built-in issuer grants.
const DefaultScope = "https://management.azure.com/.default"

// refreshMargin is how long before its expiry a cached token is replaced.
const refreshMargin = 5 * time.Minute

// maxTokenResponseBytes bounds the body of a token endpoint's answer.
const maxTokenResponseBytes = 1 << 20

// TokenSource gives the bearer token a Client sends with every request.
// Implementations must be safe for concurrent use.
type TokenSource interface {
	// Token returns an access token (without the "Bearer " prefix).
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource that always returns the same token, e.g. one
// obtained with `pgvault token`.
type StaticToken string

// Token returns the token itself, or an error when it is empty.
func (s StaticToken) Token(context.Context) (string, error) {
	if s == "" {
		return "", errors.New("while getting a token: the static token is empty")
	}
	return string(s), nil
}

// AccessToken is a token with its expiry.
type AccessToken struct {
	// Token is the access token (a JWT for pgvault's issuer).
	Token string
	// ExpiresOn is when the token expires, by the issuer's expires_in.
	ExpiresOn time.Time
}

// ClientCredentials is a TokenSource that gets tokens from pgvault's built-in
// OAuth2 issuer with the client credentials grant:
//
//	POST {Server}/{TenantID}/oauth2/v2.0/token
//	grant_type=client_credentials&client_id=...&client_secret=...&scope=...
//
// A token is cached and reused until 5 minutes before it expires (for a
// token that lives less than 10 minutes: until half its life has passed). It
// is safe for concurrent use: concurrent callers wait for one request. It
// must not be copied after first use.
//
// The secret is sent only in the body of a POST over https, or over http to
// a loopback address; redirects are not followed, so it never goes anywhere
// else. No error or log message contains it.
type ClientCredentials struct {
	// Server is pgvault's base URL, e.g. https://127.0.0.1:7070 (its issuer
	// answers below it).
	Server string
	// TenantID is the installation's tenant.
	TenantID string
	// ClientID is the service principal's client ID.
	ClientID string
	// ClientSecret is the service principal's secret.
	ClientSecret string
	// Scope is the requested scope; default DefaultScope.
	Scope string
	// HTTPClient sends the token requests; default a client with a one
	// minute timeout. Its CheckRedirect is replaced: redirects are not followed.
	HTTPClient *http.Client
	// Now is the clock deciding when a cached token is due; default time.Now.
	Now func() time.Time

	once    sync.Once
	sem     chan struct{} // held while a token is fetched or the cache is read
	cached  AccessToken
	renewAt time.Time // when cached is replaced
}

// TokenError is an OAuth2 error answered by the token endpoint
// ({"error","error_description"}), or an answer that is not a token.
type TokenError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Code is the OAuth2 error code (invalid_client, invalid_request, ...);
	// empty when the answer was not an OAuth2 error.
	Code string
	// Description is the error_description (Entra style: "AADSTS...: ...
	// Trace ID: ..."), or a short account of the unexpected answer.
	Description string
	// ClientID and Endpoint say which request failed.
	ClientID string
	Endpoint string
}

// Error returns "while getting a token for client 'ID' from URL: CODE: description".
func (e *TokenError) Error() string {
	code := e.Code
	if code == "" {
		code = fmt.Sprintf("HTTP %d", e.StatusCode)
		if t := http.StatusText(e.StatusCode); t != "" {
			code += " " + t
		}
	}
	return fmt.Sprintf("while getting a token for client '%s' from %s: %s: %s", e.ClientID, e.Endpoint, code, e.Description)
}

// Endpoint returns the URL of the token endpoint.
func (c *ClientCredentials) Endpoint() (string, error) {
	if err := CheckBaseURL(c.Server); err != nil {
		return "", err
	}
	if c.TenantID == "" || strings.ContainsAny(c.TenantID, "/?#") {
		return "", fmt.Errorf("the tenant ID %q is empty or not a tenant ID", c.TenantID)
	}
	return strings.TrimRight(c.Server, "/") + "/" + url.PathEscape(c.TenantID) + "/oauth2/v2.0/token", nil
}

// Token returns a cached token, or a new one when none is cached or it is
// due for renewal.
func (c *ClientCredentials) Token(ctx context.Context) (string, error) {
	t, err := c.AccessToken(ctx)
	if err != nil {
		return "", err
	}
	return t.Token, nil
}

// AccessToken is Token with the token's expiry.
func (c *ClientCredentials) AccessToken(ctx context.Context) (AccessToken, error) {
	c.once.Do(func() { c.sem = make(chan struct{}, 1) })
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return AccessToken{}, fmt.Errorf("while waiting for a token: %w", ctx.Err())
	}
	defer func() { <-c.sem }()
	now := c.now()
	if c.cached.Token != "" && now.Before(c.renewAt) {
		return c.cached, nil
	}
	t, err := c.fetch(ctx, now)
	if err != nil {
		return AccessToken{}, err
	}
	c.cached = t
	c.renewAt = t.ExpiresOn.Add(-min(refreshMargin, t.ExpiresOn.Sub(now)/2))
	return t, nil
}

func (c *ClientCredentials) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// tokenResponse is the JSON answer of the token endpoint, success or error.
type tokenResponse struct {
	TokenType        string    `json:"token_type"`
	AccessToken      string    `json:"access_token"`
	ExpiresIn        expiresIn `json:"expires_in"`
	Error            string    `json:"error"`
	ErrorDescription string    `json:"error_description"`
}

// expiresIn is expires_in: a number of seconds, as a JSON number or string
// (Entra's v1 endpoints send strings).
type expiresIn int64

// UnmarshalJSON accepts 3600 and "3600".
func (e *expiresIn) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("expires_in %s is not a number of seconds", b)
	}
	*e = expiresIn(n)
	return nil
}

func (c *ClientCredentials) fetch(ctx context.Context, now time.Time) (AccessToken, error) {
	endpoint, err := c.Endpoint()
	if err != nil {
		return AccessToken{}, fmt.Errorf("while getting a token for client '%s': %w", c.ClientID, err)
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		return AccessToken{}, errors.New("while getting a token: the client ID or secret is empty")
	}
	if err := checkSecretTransport(endpoint); err != nil {
		return AccessToken{}, fmt.Errorf("while getting a token for client '%s': %w", c.ClientID, err)
	}
	scope := c.Scope
	if scope == "" {
		scope = DefaultScope
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.ClientID},
		"client_secret": {c.ClientSecret},
		"scope":         {scope},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return AccessToken{}, fmt.Errorf("while building the token request for client '%s': %w", c.ClientID, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "pgvault-cli")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return AccessToken{}, fmt.Errorf("while getting a token for client '%s': %w", c.ClientID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponseBytes+1))
	if err != nil {
		return AccessToken{}, fmt.Errorf("while reading the token response for client '%s': %w", c.ClientID, err)
	}
	fail := func(code, desc string) (AccessToken, error) {
		return AccessToken{}, &TokenError{StatusCode: resp.StatusCode, Code: code, Description: desc, ClientID: c.ClientID, Endpoint: endpoint}
	}
	if len(body) > maxTokenResponseBytes {
		return fail("", fmt.Sprintf("the answer is larger than %d bytes", maxTokenResponseBytes))
	}
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	switch {
	case jsonErr == nil && tr.Error != "":
		return fail(tr.Error, tr.ErrorDescription)
	case resp.StatusCode != http.StatusOK:
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return fail("", "the endpoint redirects to "+shortText([]byte(loc))+"; the client secret is not sent to redirects, give the server's own URL")
		}
		return fail("", "the answer is not an OAuth2 error: "+nonEmpty(shortText(body), "(empty body)"))
	case jsonErr != nil:
		return fail("", "the answer is not a token response: "+jsonErr.Error())
	case !strings.EqualFold(tr.TokenType, "Bearer"):
		return fail("", fmt.Sprintf("the token type is %q, not Bearer", tr.TokenType))
	case tr.AccessToken == "":
		return fail("", "the answer has no access_token")
	case tr.ExpiresIn <= 0:
		return fail("", "the answer has no positive expires_in")
	}
	return AccessToken{Token: tr.AccessToken, ExpiresOn: now.Add(time.Duration(tr.ExpiresIn) * time.Second)}, nil
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// httpClient is the configured client with redirects refused.
func (c *ClientCredentials) httpClient() *http.Client {
	hc := http.Client{Timeout: time.Minute}
	if c.HTTPClient != nil {
		hc = *c.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hc
}

// checkSecretTransport refuses to send a secret over plain HTTP to anything
// but a loopback address.
func checkSecretTransport(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("while parsing the token endpoint: %w", err)
	}
	if u.Scheme == "https" || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("refusing to send the client secret over plain HTTP to %s, which is not a loopback address: use an https:// server URL", u.Host)
}

// isLoopback reports whether host is localhost or a loopback IP.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
