package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Limits of the key sets of external issuers.
const (
	// keyRefreshInterval: an issuer's discovery document and key set are
	// fetched at most once per interval, however many unknown kids arrive.
	keyRefreshInterval = time.Minute
	// keyMaxAge: keys fetched longer ago are fetched again on next use
	// (the old ones stay in use if that fails).
	keyMaxAge = 24 * time.Hour
	// keyFetchTimeout bounds one refresh (discovery and key set), whatever
	// the HTTP client's own timeout.
	keyFetchTimeout = 15 * time.Second
	// maxRemoteDocument bounds a discovery document or key set.
	maxRemoteDocument = 1 << 20
)

// oidcKeys is the key source of an external issuer: OIDC discovery, then its
// jwks_uri. go-oidc's RemoteKeySet is not used: it fetches again on every
// unknown kid without a rate limit, tries every key when a token has no kid,
// and cannot tell an unknown kid from a bad signature.
type oidcKeys struct {
	issuer string
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	// sem is a one-slot lock that a waiting caller can abandon when its
	// context ends; it guards the fields below.
	sem chan struct{}

	keys      []verificationKey
	loaded    bool      // keys were fetched successfully at least once
	fetchedAt time.Time // of the last successful fetch
	attemptAt time.Time // of the last attempt
	lastErr   error     // of the last attempt
}

func newOIDCKeys(issuer string, client *http.Client, now func() time.Time, log *slog.Logger) (*oidcKeys, error) {
	if err := checkRemoteURL(issuer); err != nil {
		return nil, fmt.Errorf("OIDC issuer %q: %w", issuer, err)
	}
	return &oidcKeys{issuer: issuer, client: client, now: now, log: log, sem: make(chan struct{}, 1)}, nil
}

func (o *oidcKeys) key(ctx context.Context, kid *string, alg string) (crypto.PublicKey, error) {
	select {
	case o.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("while waiting for the signing keys of issuer %q: %w", o.issuer, ctx.Err())
	}
	defer func() { <-o.sem }()

	now := o.now()
	mayFetch := o.attemptAt.IsZero() || now.Sub(o.attemptAt) >= keyRefreshInterval
	fetched := false
	switch {
	case !o.loaded && !mayFetch:
		return nil, fmt.Errorf("while fetching the signing keys of issuer %q (retried at most once a minute): %w", o.issuer, o.lastErr)
	case !o.loaded:
		if err := o.refresh(ctx, now); err != nil {
			return nil, err
		}
		fetched = true
	case mayFetch && now.Sub(o.fetchedAt) >= keyMaxAge:
		fetched = o.refresh(ctx, now) == nil
	}
	pub, unknown, e := pickKey(o.issuer, o.keys, kid, alg)
	if e != nil && unknown && mayFetch && !fetched {
		// Key rotation: the token may name a key published since.
		if o.refresh(ctx, now) == nil {
			pub, _, e = pickKey(o.issuer, o.keys, kid, alg)
		}
	}
	if e != nil {
		return nil, e
	}
	return pub, nil
}

// refresh fetches the discovery document and the key set, replacing the
// cached keys on success.
func (o *oidcKeys) refresh(ctx context.Context, now time.Time) error {
	o.attemptAt = now
	// A caller giving up must not leave every other caller without keys for
	// a minute: the fetch ignores its cancellation but has its own deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyFetchTimeout)
	defer cancel()
	keys, err := o.fetch(ctx)
	if err != nil {
		o.lastErr = fmt.Errorf("while fetching the signing keys of issuer %q: %w", o.issuer, err)
		o.log.WarnContext(ctx, "fetching the keys of an OIDC issuer failed", "issuer", o.issuer, "error", err)
		return o.lastErr
	}
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.kid
	}
	o.log.InfoContext(ctx, "fetched the keys of an OIDC issuer", "issuer", o.issuer, "kids", kids)
	o.keys, o.loaded, o.fetchedAt, o.lastErr = keys, true, now, nil
	return nil
}

func (o *oidcKeys) fetch(ctx context.Context) ([]verificationKey, error) {
	wellKnown := strings.TrimSuffix(o.issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := o.getJSON(ctx, wellKnown, &doc); err != nil {
		return nil, err
	}
	if doc.Issuer != o.issuer {
		return nil, fmt.Errorf("the discovery document at %s names issuer %q, not %q", wellKnown, doc.Issuer, o.issuer)
	}
	if err := checkRemoteURL(doc.JWKSURI); err != nil {
		return nil, fmt.Errorf("the discovery document at %s has jwks_uri %q: %w", wellKnown, doc.JWKSURI, err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := o.getJSON(ctx, doc.JWKSURI, &set); err != nil {
		return nil, err
	}
	keys := parseJWKS(set.Keys)
	if len(keys) == 0 {
		return nil, fmt.Errorf("the key set at %s has no RS256 or ES256 signing keys", doc.JWKSURI)
	}
	return keys, nil
}

// parseJWKS keeps the keys of a JWK set that can verify RS256 or ES256
// signatures, skipping (RFC 7517 §5: "SHOULD ignore") keys for encryption,
// keys of other types or algorithms, and entries holding private material.
func parseJWKS(raws []json.RawMessage) []verificationKey {
	var keys []verificationKey
	for _, raw := range raws {
		var probe struct {
			D *string `json:"d"`
			K *string `json:"k"`
		}
		if json.Unmarshal(raw, &probe) != nil || probe.D != nil || probe.K != nil {
			continue
		}
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(raw) != nil || !jwk.IsPublic() || (jwk.Use != "" && jwk.Use != "sig") {
			continue
		}
		if jwk.Algorithm != "" {
			if _, ok := acceptedAlg(jwk.Algorithm); !ok || checkKeyForAlg(jwk.Key, jwk.Algorithm) != nil {
				continue
			}
		} else if _, err := algForKey(jwk.Key); err != nil {
			continue
		}
		keys = append(keys, verificationKey{kid: jwk.KeyID, alg: jwk.Algorithm, pub: jwk.Key})
	}
	return keys
}

func (o *oidcKeys) getJSON(ctx context.Context, rawURL string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("while requesting %s: %w", rawURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return fmt.Errorf("while requesting %s: %w", rawURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteDocument+1))
	if err != nil {
		return fmt.Errorf("while reading %s: %w", rawURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("while requesting %s: status %s", rawURL, resp.Status)
	}
	if len(body) > maxRemoteDocument {
		return fmt.Errorf("while reading %s: larger than %d bytes", rawURL, maxRemoteDocument)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("while decoding %s: %w", rawURL, err)
	}
	return nil
}

// checkRemoteURL accepts absolute https URLs without credentials or
// fragment, and http URLs of loopback hosts (local development).
func checkRemoteURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch {
	case u.Host == "" || u.Opaque != "":
		return errors.New("not an absolute URL")
	case u.User != nil:
		return errors.New("URLs with credentials are not accepted")
	case u.Fragment != "":
		return errors.New("URLs with a fragment are not accepted")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return errors.New("not an https URL (http is accepted only for loopback hosts)")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
