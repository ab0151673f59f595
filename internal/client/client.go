// Package client is a small HTTP client of the pgvault API, which is Azure
// Resource Manager's API for the providers pgvault serves: it sends JSON
// requests with the api-version of each provider and a bearer token from a
// TokenSource (see ClientCredentials), turns ARM error bodies into *APIError,
// follows the nextLink of lists and waits for long-running operations. It
// uses no Azure SDK.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// API versions the client sends, one per provider.
const (
	// APIVersionDataProtection is the Microsoft.DataProtection api-version
	// (backup vaults, backup policies, their operations).
	APIVersionDataProtection = "2024-04-01"
	// APIVersionResources is the Microsoft.Resources api-version (resource groups).
	APIVersionResources = "2021-04-01"
	// APIVersionAuthorization is the Microsoft.Authorization api-version
	// (role assignments and role definitions).
	APIVersionAuthorization = "2022-04-01"
	// APIVersionIdentity is the api-version of pgvault's own
	// Pgvault.Identity provider (service principals).
	APIVersionIdentity = "2026-11-01"
	// APIVersionPostgreSQL is the Microsoft.DBforPostgreSQL api-version
	// (flexible servers and their long-term retention actions).
	APIVersionPostgreSQL = "2024-08-01"
)

// maxResponseBytes bounds the body of a response the client reads.
const maxResponseBytes = 32 << 20

// Client is a client of one pgvault server. It is safe for concurrent use.
type Client struct {
	base    string // without a trailing slash
	baseErr error  // why base is unusable, or nil
	hc      *http.Client
	// UserAgent is sent with every request when not empty.
	UserAgent string
	// Auth, when not nil, gives the bearer token sent with every request.
	// The token is sent only to the server's own scheme and host: a request
	// to an absolute URL elsewhere (a nextLink or operation URL naming
	// another host) fails instead.
	Auth TokenSource
}

// New returns a client of the server at baseURL (e.g. http://127.0.0.1:7070).
// A nil httpClient means http.DefaultClient. A baseURL that does not parse
// as an absolute http or https URL makes every request fail with an error
// saying so.
func New(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{
		base:      strings.TrimRight(baseURL, "/"),
		baseErr:   CheckBaseURL(baseURL),
		hc:        httpClient,
		UserAgent: "pgvault-cli",
	}
}

// BaseURL returns the server's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// CheckBaseURL returns an error saying why baseURL is not usable by New,
// or nil when it is an absolute http or https URL with a host and no query
// or fragment.
func CheckBaseURL(baseURL string) error {
	u, err := url.Parse(baseURL)
	if err != nil {
		return fmt.Errorf("while parsing the server URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("the server URL %q must be an absolute http:// or https:// URL", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("the server URL %q must not have a query or fragment", baseURL)
	}
	return nil
}

// Response is a successful (2xx) response with its body read.
type Response struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Header holds the response headers.
	Header http.Header
	// Body is the raw response body (JSON, or empty).
	Body []byte
	// Method and URL are those of the request that produced the response.
	Method string
	URL    string
}

// Decode unmarshals the response body into v.
func (r *Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("while decoding the response of %s %s: %w", r.Method, r.URL, err)
	}
	return nil
}

// Get sends a GET.
func (c *Client) Get(ctx context.Context, path, apiVersion string) (*Response, error) {
	return c.Do(ctx, http.MethodGet, path, apiVersion, nil)
}

// Put sends a PUT with body encoded as JSON.
func (c *Client) Put(ctx context.Context, path, apiVersion string, body any) (*Response, error) {
	return c.Do(ctx, http.MethodPut, path, apiVersion, body)
}

// Patch sends a PATCH with body encoded as JSON.
func (c *Client) Patch(ctx context.Context, path, apiVersion string, body any) (*Response, error) {
	return c.Do(ctx, http.MethodPatch, path, apiVersion, body)
}

// Post sends a POST with body encoded as JSON.
func (c *Client) Post(ctx context.Context, path, apiVersion string, body any) (*Response, error) {
	return c.Do(ctx, http.MethodPost, path, apiVersion, body)
}

// Delete sends a DELETE.
func (c *Client) Delete(ctx context.Context, path, apiVersion string) (*Response, error) {
	return c.Do(ctx, http.MethodDelete, path, apiVersion, nil)
}

// Do sends one request and reads its response. path is either an escaped
// ARM path ("/subscriptions/..."; see the *Path helpers), resolved against
// the base URL with ?api-version=apiVersion added, or an absolute URL (a
// nextLink or an operation URL), used as it is except that apiVersion is
// added when it has none. body, when not nil, is sent as JSON: []byte and
// json.RawMessage as they are, anything else marshalled.
//
// A non-2xx response is returned as an *APIError; transport failures as
// other errors.
func (c *Client) Do(ctx context.Context, method, path, apiVersion string, body any) (*Response, error) {
	u, err := c.resolve(path, apiVersion)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		var b []byte
		switch v := body.(type) {
		case []byte:
			b = v
		case json.RawMessage:
			b = v
		default:
			if b, err = json.Marshal(body); err != nil {
				return nil, fmt.Errorf("while encoding the body of %s %s: %w", method, u, err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("while building the request %s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if c.Auth != nil {
		if err := c.checkOrigin(req.URL); err != nil {
			return nil, err
		}
		tok, err := c.Auth.Token(ctx)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("while sending %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("while reading the response of %s %s: %w", method, u, err)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("while reading the response of %s %s: it is larger than %d bytes", method, u, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, parseAPIError(resp.StatusCode, resp.Header, data)
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data, Method: method, URL: u}, nil
}

// resolve builds the URL of a request.
func (c *Client) resolve(path, apiVersion string) (string, error) {
	var u *url.URL
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		p, err := url.Parse(path)
		if err != nil {
			return "", fmt.Errorf("while parsing the URL %q: %w", path, err)
		}
		u = p
	} else {
		if c.baseErr != nil {
			return "", c.baseErr
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		p, err := url.Parse(c.base + path)
		if err != nil {
			return "", fmt.Errorf("while parsing the path %q: %w", path, err)
		}
		u = p
	}
	if apiVersion != "" {
		q := u.Query()
		if q.Get("api-version") == "" {
			q.Set("api-version", apiVersion)
			u.RawQuery = q.Encode()
		}
	}
	return u.String(), nil
}

// checkOrigin refuses to send the token to another scheme or host than
// the server's.
func (c *Client) checkOrigin(u *url.URL) error {
	if c.baseErr != nil {
		return c.baseErr
	}
	b, err := url.Parse(c.base)
	if err != nil {
		return fmt.Errorf("while parsing the server URL %q: %w", c.base, err)
	}
	if !strings.EqualFold(u.Scheme, b.Scheme) || !strings.EqualFold(u.Hostname(), b.Hostname()) || portOf(u) != portOf(b) {
		return fmt.Errorf("refusing to send credentials to %s://%s, which the server named in a link, because it is not the server %s: "+
			"if the server is behind a proxy, use its public URL as the server URL", u.Scheme, u.Host, c.base)
	}
	return nil
}

// portOf is a URL's port, or its scheme's default.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// ResourceGroupsPath is the path of a subscription's resource groups.
func ResourceGroupsPath(sub string) string {
	return "/subscriptions/" + url.PathEscape(sub) + "/resourcegroups"
}

// ResourceGroupPath is the path of a resource group.
func ResourceGroupPath(sub, rg string) string {
	return "/subscriptions/" + url.PathEscape(sub) + "/resourceGroups/" + url.PathEscape(rg)
}

// VaultsPath is the path of the backup vaults of a resource group, or of a
// subscription when rg is empty.
func VaultsPath(sub, rg string) string {
	if rg == "" {
		return "/subscriptions/" + url.PathEscape(sub) + "/providers/Microsoft.DataProtection/backupVaults"
	}
	return ResourceGroupPath(sub, rg) + "/providers/Microsoft.DataProtection/backupVaults"
}

// VaultPath is the path of a backup vault.
func VaultPath(sub, rg, vault string) string {
	return VaultsPath(sub, rg) + "/" + url.PathEscape(vault)
}

// CheckVaultNamePath is the path of the checkNameAvailability action of
// backup vaults in a resource group and location.
func CheckVaultNamePath(sub, rg, location string) string {
	return ResourceGroupPath(sub, rg) + "/providers/Microsoft.DataProtection/locations/" + url.PathEscape(location) + "/checkNameAvailability"
}

// PoliciesPath is the path of a vault's backup policies.
func PoliciesPath(sub, rg, vault string) string {
	return VaultPath(sub, rg, vault) + "/backupPolicies"
}

// PolicyPath is the path of a backup policy.
func PolicyPath(sub, rg, vault, policy string) string {
	return PoliciesPath(sub, rg, vault) + "/" + url.PathEscape(policy)
}

// BackupInstancesPath is the path of a vault's backup instances.
func BackupInstancesPath(sub, rg, vault string) string {
	return VaultPath(sub, rg, vault) + "/backupInstances"
}

// BackupInstancePath is the path of a backup instance.
func BackupInstancePath(sub, rg, vault, instance string) string {
	return BackupInstancesPath(sub, rg, vault) + "/" + url.PathEscape(instance)
}

// AdhocBackupPath is the path of a backup instance's on-demand backup action.
func AdhocBackupPath(sub, rg, vault, instance string) string {
	return BackupInstancePath(sub, rg, vault, instance) + "/backup"
}

// RestorePath is the path of a backup instance's restore action.
func RestorePath(sub, rg, vault, instance string) string {
	return BackupInstancePath(sub, rg, vault, instance) + "/restore"
}

// ValidateRestorePath is the path of a backup instance's validateRestore action.
func ValidateRestorePath(sub, rg, vault, instance string) string {
	return BackupInstancePath(sub, rg, vault, instance) + "/validateRestore"
}

// RecoveryPointsPath is the path of a backup instance's recovery points.
func RecoveryPointsPath(sub, rg, vault, instance string) string {
	return BackupInstancePath(sub, rg, vault, instance) + "/recoveryPoints"
}

// RecoveryPointPath is the path of a recovery point.
func RecoveryPointPath(sub, rg, vault, instance, id string) string {
	return RecoveryPointsPath(sub, rg, vault, instance) + "/" + url.PathEscape(id)
}

// BackupJobsPath is the path of a vault's backup jobs.
func BackupJobsPath(sub, rg, vault string) string {
	return VaultPath(sub, rg, vault) + "/backupJobs"
}

// BackupJobPath is the path of a backup job (id is its GUID).
func BackupJobPath(sub, rg, vault, id string) string {
	return BackupJobsPath(sub, rg, vault) + "/" + url.PathEscape(id)
}

// ValidateForBackupPath is the path of a vault's validateForBackup action.
func ValidateForBackupPath(sub, rg, vault string) string {
	return VaultPath(sub, rg, vault) + "/validateForBackup"
}

// ServersPath is the path of the PostgreSQL flexible servers of a resource
// group, or of a subscription when rg is empty.
func ServersPath(sub, rg string) string {
	if rg == "" {
		return "/subscriptions/" + url.PathEscape(sub) + "/providers/Microsoft.DBforPostgreSQL/flexibleServers"
	}
	return ResourceGroupPath(sub, rg) + "/providers/Microsoft.DBforPostgreSQL/flexibleServers"
}

// ServerPath is the path of a PostgreSQL flexible server.
func ServerPath(sub, rg, server string) string {
	return ServersPath(sub, rg) + "/" + url.PathEscape(server)
}

// LtrPreBackupPath is the path of a flexible server's ltrPreBackup action.
func LtrPreBackupPath(sub, rg, server string) string {
	return ServerPath(sub, rg, server) + "/ltrPreBackup"
}

// ServicePrincipalsPath is the path of the service principals.
func ServicePrincipalsPath() string {
	return "/providers/Pgvault.Identity/servicePrincipals"
}

// ServicePrincipalPath is the path of a service principal.
func ServicePrincipalPath(name string) string {
	return ServicePrincipalsPath() + "/" + url.PathEscape(name)
}

// ScopePath escapes an ARM scope ("/", "/subscriptions/{id}", a resource
// group or a resource) for use as a path prefix, without a trailing slash
// ("" for the root scope).
func ScopePath(scope string) string {
	var b strings.Builder
	for _, seg := range strings.Split(strings.Trim(scope, "/"), "/") {
		if seg != "" {
			b.WriteString("/" + url.PathEscape(seg))
		}
	}
	return b.String()
}

// RoleAssignmentsPath is the path of the role assignments at a scope.
func RoleAssignmentsPath(scope string) string {
	return ScopePath(scope) + "/providers/Microsoft.Authorization/roleAssignments"
}

// RoleAssignmentPath is the path of a role assignment.
func RoleAssignmentPath(scope, name string) string {
	return RoleAssignmentsPath(scope) + "/" + url.PathEscape(name)
}

// RoleDefinitionsPath is the path of the role definitions seen from a scope.
func RoleDefinitionsPath(scope string) string {
	return ScopePath(scope) + "/providers/Microsoft.Authorization/roleDefinitions"
}

// RoleDefinitionPath is the path of a role definition (id is its GUID).
func RoleDefinitionPath(scope, id string) string {
	return RoleDefinitionsPath(scope) + "/" + url.PathEscape(id)
}

// WithQuery adds query parameters to a path, e.g. $filter.
func WithQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + q.Encode()
}
