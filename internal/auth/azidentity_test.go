package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/dataprotection/armdataprotection/v3"

	"github.com/pgvault/pgvault/internal/auth"
)

// requestLog records what a client sent (secrets redacted).
type requestLog struct {
	mu    sync.Mutex
	lines []string
}

// headersOfInterest are logged when present.
var headersOfInterest = []string{"Content-Type", "Authorization", "client-request-id", "return-client-request-id",
	"x-client-SKU", "x-client-Ver", "x-client-OS", "x-client-CPU", "x-ms-lib-capability", "x-client-current-telemetry",
	"x-client-last-telemetry", "x-app-name", "x-app-ver", "User-Agent"}

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		line := r.Method + " " + r.URL.Path
		if r.URL.RawQuery != "" {
			line += "?" + r.URL.RawQuery
		}
		if form, err := url.ParseQuery(string(body)); err == nil && len(body) > 0 {
			keys := make([]string, 0, len(form))
			for k := range form {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				v := form.Get(k)
				if k == "client_secret" {
					v = "<redacted>"
				}
				line += fmt.Sprintf("\n    form %s=%q", k, v)
			}
		}
		for _, h := range headersOfInterest {
			if v := r.Header.Get(h); v != "" {
				if h == "Authorization" {
					v = v[:min(len(v), 12)] + "..."
				}
				line += fmt.Sprintf("\n    header %s: %s", h, v)
			}
		}
		l.mu.Lock()
		l.lines = append(l.lines, line)
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (l *requestLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *requestLog) count(prefix string) int {
	n := 0
	for _, line := range l.snapshot() {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

// TestAzidentityClientSecretCredential proves that the official
// azidentity.ClientSecretCredential (MSAL for Go underneath) obtains a token
// from the built-in issuer, and that the token verifies.
func TestAzidentityClientSecretCredential(t *testing.T) {
	t.Setenv("AZURE_REGIONAL_AUTHORITY_NAME", "") // azidentity reads it; keep MSAL off regional endpoints
	ctx := context.Background()
	log := &requestLog{}
	iss, srv := startIssuer(t, true, nil, nil, log.wrap)

	newCred := func(secret string) *azidentity.ClientSecretCredential {
		cred, err := azidentity.NewClientSecretCredential(testTenant, testClientID, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: srv.URL + "/"},
				Transport: srv.Client(),
			},
			DisableInstanceDiscovery: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return cred
	}
	cred := newCred(testSecret)
	start := time.Now()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v\nrequests:\n%s", err, strings.Join(log.snapshot(), "\n"))
	}
	if d := tok.ExpiresOn.Sub(start); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("token expires in %s", d)
	}
	p, err := verifierFor(t, iss, nil).Verify(ctx, "Bearer "+tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if want := (auth.Principal{ObjectID: testObjectID, TenantID: testTenant, ClientID: testClientID, Issuer: iss.IssuerURL()}); *p != want {
		t.Fatalf("principal %+v, want %+v", *p, want)
	}
	t.Logf("requests made by azidentity/MSAL:\n%s", strings.Join(log.snapshot(), "\n"))

	// MSAL cached the token: no second token request.
	if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}}); err != nil {
		t.Fatal(err)
	}
	if n := log.count("POST /" + testTenant + "/oauth2/v2.0/token"); n != 1 {
		t.Fatalf("%d token requests, want 1 (cached)", n)
	}
	// The trailing-slash form of the scope, as the Azure CLI sends it.
	if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com//.default"}}); err != nil {
		t.Fatal(err)
	}

	// A wrong secret surfaces as an authentication error carrying the issuer's OAuth2 error.
	_, err = newCred("wrong").GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	var authErr *azidentity.AuthenticationFailedError
	if !errors.As(err, &authErr) || authErr.RawResponse == nil || authErr.RawResponse.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(err.Error(), "invalid_client") || strings.Contains(err.Error(), testSecret) {
		t.Fatalf("GetToken with a wrong secret: %v", err)
	}
	// A scope for another resource is refused.
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err == nil || !strings.Contains(err.Error(), "invalid_scope") {
		t.Fatalf("GetToken for another resource: %v", err)
	}
}

// bogusCredential hands out a token that is not a JWT.
type bogusCredential struct{}

func (bogusCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "not-a-jwt", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestARMClientThroughIssuer drives a real ARM SDK client (armdataprotection)
// with a ClientSecretCredential against a server that serves the issuer and
// checks bearer tokens with a Verifier, rendering failures as the API will
// (401, ARM error body, WWW-Authenticate from Challenge).
func TestARMClientThroughIssuer(t *testing.T) {
	t.Setenv("AZURE_REGIONAL_AUTHORITY_NAME", "")
	ctx := context.Background()
	log := &requestLog{}
	var verifier *auth.Verifier
	var issuer *auth.Issuer
	api := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if issuer.Owns(r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			p, err := verifier.Verify(r.Context(), r.Header.Get("Authorization"))
			var e *auth.Error
			switch {
			case errors.As(err, &e):
				w.Header().Set("WWW-Authenticate", verifier.Challenge(e))
				w.Header().Set("x-ms-error-code", e.Code)
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, e.Code, e.Message)
			case err != nil:
				w.WriteHeader(http.StatusServiceUnavailable)
			default:
				w.Header().Set("x-ms-error-code", "ResourceNotFound")
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintf(w, `{"error":{"code":"ResourceNotFound","message":"caller %s"}}`, p.ObjectID)
			}
		})
	}
	iss, srv := startIssuer(t, true, nil, nil, func(h http.Handler) http.Handler { return log.wrap(api(h)) })
	issuer, verifier = iss, verifierFor(t, iss, nil)

	cred, err := azidentity.NewClientSecretCredential(testTenant, testClientID, testSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: srv.URL + "/"}, Transport: srv.Client()},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	armOptions := func(audience string) *arm.ClientOptions {
		return &arm.ClientOptions{
			ClientOptions: policy.ClientOptions{
				Cloud: cloud.Configuration{
					ActiveDirectoryAuthorityHost: srv.URL + "/",
					Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
						cloud.ResourceManager: {Endpoint: srv.URL, Audience: audience},
					},
				},
				Transport: srv.Client(),
				Retry:     policy.RetryOptions{MaxRetries: -1},
			},
			DisableRPRegistration: true,
		}
	}
	for _, audience := range []string{"https://management.azure.com", "https://management.azure.com/"} {
		vaults, err := armdataprotection.NewBackupVaultsClient("00000000-0000-0000-0000-000000000000", cred, armOptions(audience))
		if err != nil {
			t.Fatal(err)
		}
		_, err = vaults.Get(ctx, "rg", "vault", nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != "ResourceNotFound" ||
			!strings.Contains(err.Error(), testObjectID) {
			t.Fatalf("audience %s: Get = %v\nrequests:\n%s", audience, err, strings.Join(log.snapshot(), "\n"))
		}
	}

	bogus, err := armdataprotection.NewBackupVaultsClient("00000000-0000-0000-0000-000000000000", bogusCredential{}, armOptions("https://management.azure.com"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bogus.Get(ctx, "rg", "vault", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || re.ErrorCode != auth.CodeInvalidAuthenticationToken {
		t.Fatalf("Get with a bogus token = %v", err)
	}
	t.Logf("requests:\n%s", strings.Join(log.snapshot(), "\n"))
}
