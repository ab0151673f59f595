package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/testserver"
	"github.com/pgvault/pgvault/internal/vault"
)

const sub = "6b0d2f6e-4a7c-4f51-9d0e-0f2b1d9c3a11"

// newServer starts a real, authenticated pgvault server and returns a
// client of it with the administrator's client credentials.
func newServer(t *testing.T, o testserver.Options) *client.Client {
	t.Helper()
	return testserver.Start(t, o).AdminClient()
}

func putGroup(t *testing.T, c *client.Client, name string) {
	t.Helper()
	if _, err := c.Put(context.Background(), client.ResourceGroupPath(sub, name), client.APIVersionResources, map[string]any{"location": "westeurope"}); err != nil {
		t.Fatalf("PUT group %s: %v", name, err)
	}
}

func vaultBody() map[string]any {
	return map[string]any{
		"location": "westeurope",
		"identity": map[string]string{"type": "SystemAssigned"},
		"properties": map[string]any{
			"storageSettings": []map[string]string{{"datastoreType": "VaultStore", "type": "LocallyRedundant"}},
		},
	}
}

func TestCRUDAndPaging(t *testing.T) {
	ctx := context.Background()
	c := newServer(t, testserver.Options{PageSize: 2})

	resp, err := c.Put(ctx, client.ResourceGroupPath(sub, "rg-a"), client.APIVersionResources, json.RawMessage(`{"location":"westeurope","tags":{"env":"test"}}`))
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("PUT status = %d, want 201", resp.StatusCode)
	}
	var g struct {
		Name       string            `json:"name"`
		Tags       map[string]string `json:"tags"`
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	if err := resp.Decode(&g); err != nil {
		t.Fatal(err)
	}
	if g.Name != "rg-a" || g.Tags["env"] != "test" || g.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("group = %+v", g)
	}
	for i := range 4 {
		putGroup(t, c, fmt.Sprintf("rg-%d", i))
	}

	// Five groups, two per page: three pages, the client follows nextLink.
	pages := 0
	var names []string
	err = c.ListPages(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources, func(items []json.RawMessage) error {
		pages++
		for _, it := range items {
			var v struct{ Name string }
			if err := json.Unmarshal(it, &v); err != nil {
				return err
			}
			names = append(names, v.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ListPages: %v", err)
	}
	if pages != 3 || len(names) != 5 {
		t.Errorf("ListPages: %d pages, names %v; want 3 pages of 5 groups", pages, names)
	}
	all, err := client.ListAs[struct{ Name string }](ctx, c, client.ResourceGroupsPath(sub), client.APIVersionResources)
	if err != nil || len(all) != 5 {
		t.Errorf("ListAs = %v, %v; want 5 groups", all, err)
	}

	// An error of fn stops the listing.
	stop := errors.New("stop")
	if err := c.ListPages(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources, func([]json.RawMessage) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ListPages with a failing fn = %v, want %v", err, stop)
	}

	// POST: checkNameAvailability.
	resp, err = c.Post(ctx, client.CheckVaultNamePath(sub, "rg-a", "westeurope"), client.APIVersionDataProtection, map[string]string{"name": "vault1", "type": "Microsoft.DataProtection/backupVaults"})
	if err != nil {
		t.Fatalf("POST checkNameAvailability: %v", err)
	}
	var avail struct{ NameAvailable bool }
	if err := resp.Decode(&avail); err != nil || !avail.NameAvailable {
		t.Errorf("checkNameAvailability = %s, %v", resp.Body, err)
	}

	// DELETE: 200 when it existed, 204 when not.
	resp, err = c.Delete(ctx, client.ResourceGroupPath(sub, "rg-0"), client.APIVersionResources)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("DELETE = %v, %v; want 200", resp, err)
	}
	resp, err = c.Delete(ctx, client.ResourceGroupPath(sub, "rg-0"), client.APIVersionResources)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Errorf("second DELETE = %v, %v; want 204", resp, err)
	}
}

func TestAPIError(t *testing.T) {
	ctx := context.Background()
	c := newServer(t, testserver.Options{})

	_, err := c.Get(ctx, client.ResourceGroupPath(sub, "missing"), client.APIVersionResources)
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("GET missing group: %T %v, want *APIError", err, err)
	}
	if ae.StatusCode != http.StatusNotFound || ae.Code != "ResourceGroupNotFound" || ae.Target != "resourceGroupName" {
		t.Errorf("APIError = %+v", ae)
	}
	if want := "ResourceGroupNotFound: Resource group 'missing' could not be found. (target: resourceGroupName)"; ae.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", ae.Error(), want)
	}

	// A vault in a missing group.
	_, err = c.Put(ctx, client.VaultPath(sub, "nogroup", "vault1"), client.APIVersionDataProtection, vaultBody())
	if !errors.As(err, &ae) || ae.Code != "ResourceGroupNotFound" {
		t.Errorf("PUT vault in a missing group: %v", err)
	}

	// The provider's api-version matters.
	_, err = c.Get(ctx, client.ResourceGroupsPath(sub), "2099-01-01")
	if !errors.As(err, &ae) || ae.Code != "NoRegisteredProviderFound" || ae.StatusCode != http.StatusBadRequest {
		t.Errorf("unsupported api-version: %v", err)
	}

	// A policy breaking several rules has details.
	putGroup(t, c, "rg1")
	resp, err := c.Put(ctx, client.VaultPath(sub, "rg1", "vault1"), client.APIVersionDataProtection, vaultBody())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, resp, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Put(ctx, client.PolicyPath(sub, "rg1", "vault1", "policy1"), client.APIVersionDataProtection,
		json.RawMessage(`{"properties":{"objectType":"BackupPolicy","datasourceTypes":["Microsoft.DBforPostgreSQL/flexibleServers"],"policyRules":[{"name":"Weekly","objectType":"AzureRetentionRule","isDefault":true,"lifecycles":[]}]}}`))
	if !errors.As(err, &ae) || len(ae.Details) < 2 || ae.Target == "" {
		t.Fatalf("invalid policy: %#v", err)
	}
	for _, d := range ae.Details {
		if d.Code == "" || d.Message == "" {
			t.Errorf("detail without code or message: %+v", d)
		}
	}

	// Transport errors are not APIErrors.
	dead := client.New("http://127.0.0.1:1", nil)
	if _, err := dead.Get(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources); err == nil || errors.As(err, &ae) {
		t.Errorf("GET on a closed port: %v", err)
	}
	// A bad base URL fails every request.
	if _, err := client.New("127.0.0.1:7070", nil).Get(ctx, "/x", "v"); err == nil {
		t.Error("a base URL without scheme was accepted")
	}
}

func TestWaitVaultProvisioning(t *testing.T) {
	ctx := context.Background()
	c := newServer(t, testserver.Options{})
	putGroup(t, c, "rg1")

	path := client.VaultPath(sub, "rg1", "vault1")
	resp, err := c.Put(ctx, path, client.APIVersionDataProtection, vaultBody())
	if err != nil {
		t.Fatalf("PUT vault: %v", err)
	}
	if resp.StatusCode != http.StatusCreated || !client.IsLongRunning(resp) || client.OperationURL(resp) == "" {
		t.Fatalf("PUT vault: status %d, headers %v; want a 201 long-running operation", resp.StatusCode, resp.Header)
	}
	var calls []string
	op, err := c.Wait(ctx, resp, &client.PollOptions{Progress: func(op *client.Operation) {
		calls = append(calls, op.Status)
	}})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if op.Status != client.StatusSucceeded || !op.Done() || op.Name == "" || op.Polls != len(calls) {
		t.Errorf("operation = %+v after %d progress calls", op, len(calls))
	}
	if len(calls) == 0 || calls[len(calls)-1] != client.StatusSucceeded {
		t.Errorf("progress calls = %v, want the last one Succeeded", calls)
	}
	resp, err = c.Get(ctx, path, client.APIVersionDataProtection)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Properties struct{ ProvisioningState string }
	}
	if err := resp.Decode(&v); err != nil || v.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("vault after Wait: %s", resp.Body)
	}

	// A response that is not long-running cannot be waited for.
	resp, err = c.Put(ctx, path, client.APIVersionDataProtection, vaultBody())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || client.IsLongRunning(resp) {
		t.Fatalf("update of a vault: status %d, want a synchronous 200", resp.StatusCode)
	}
	if _, err := c.Wait(ctx, resp, nil); err == nil {
		t.Error("Wait on a synchronous response succeeded")
	}
}

// gatedStore holds the write that completes a vault's provisioning until
// released, so that a test sees the operation in progress.
type gatedStore struct {
	store.Store
	release chan struct{}
	once    sync.Once
	held    chan struct{} // closed when a write is being held
}

func newGatedStore(s store.Store) *gatedStore {
	return &gatedStore{Store: s, release: make(chan struct{}), held: make(chan struct{})}
}

func (g *gatedStore) ResourcePut(ctx context.Context, r *store.Resource, opts store.PutOptions) error {
	if r.Type == vault.TypeVault && opts.IfMatch != "" && bytes.Contains(r.Body, []byte(`"provisioningState":"Succeeded"`)) {
		g.once.Do(func() { close(g.held) })
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Store.ResourcePut(ctx, r, opts)
}

func (g *gatedStore) open() {
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

func TestWaitHonoursRetryAfterAndDeadline(t *testing.T) {
	var gate *gatedStore
	c := newServer(t, testserver.Options{RetryAfter: time.Second, WrapStore: func(s store.Store) store.Store {
		gate = newGatedStore(s)
		return gate
	}})
	t.Cleanup(gate.open)
	putGroup(t, c, "rg1")
	resp, err := c.Put(context.Background(), client.VaultPath(sub, "rg1", "vault1"), client.APIVersionDataProtection, vaultBody())
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After = %q, want 1", got)
	}
	// Retry-After: 1 from the PUT comes before the first poll; the status
	// responses carry none, so the 10ms Frequency (raised to the 100ms
	// minimum) applies after that. Cancel after three polls.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	var times []time.Duration
	op, err := c.Wait(ctx, resp, &client.PollOptions{Frequency: 10 * time.Millisecond, Progress: func(op *client.Operation) {
		times = append(times, time.Since(start))
		if op.Done() {
			t.Errorf("operation done while held: %+v", op)
		}
		if len(times) == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want the context's cancellation", err)
	}
	if op == nil || op.Status == "" || op.Done() || op.Polls != 3 {
		t.Errorf("last state = %+v, want a running operation after 3 polls", op)
	}
	if len(times) != 3 || times[0] < 900*time.Millisecond {
		t.Errorf("polls at %v; want the first after Retry-After (1s)", times)
	}

	// A deadline before the next poll ends the wait without polling.
	dctx, dcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer dcancel()
	polls := 0
	_, err = c.Wait(dctx, resp, &client.PollOptions{Progress: func(*client.Operation) { polls++ }})
	if !errors.Is(err, context.DeadlineExceeded) || polls != 0 {
		t.Errorf("Wait with a deadline before Retry-After = %v after %d polls, want the deadline and no poll", err, polls)
	}
}

func TestWaitFailedOperation(t *testing.T) {
	var gate *gatedStore
	c := newServer(t, testserver.Options{WrapStore: func(s store.Store) store.Store {
		gate = newGatedStore(s)
		return gate
	}})
	t.Cleanup(gate.open)
	ctx := context.Background()
	putGroup(t, c, "rg1")
	path := client.VaultPath(sub, "rg1", "vault1")
	resp, err := c.Put(ctx, path, client.APIVersionDataProtection, vaultBody())
	if err != nil {
		t.Fatal(err)
	}
	// Delete the vault while its provisioning is held: the operation fails.
	select {
	case <-gate.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the provisioning write never came")
	}
	if _, err := c.Delete(ctx, path, client.APIVersionDataProtection); err != nil {
		t.Fatal(err)
	}
	gate.open()
	polls := 0
	op, err := c.Wait(ctx, resp, &client.PollOptions{Progress: func(*client.Operation) { polls++ }})
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("Wait = %T %v, want *APIError", err, err)
	}
	if ae.Code != "ResourceNotFound" || ae.Message == "" || op.Status != client.StatusFailed || op.Error != ae || polls == 0 {
		t.Errorf("failed operation: err %+v, op %+v, %d polls", ae, op, polls)
	}
}

func TestWaitLocation(t *testing.T) {
	ctx := context.Background()
	c := newServer(t, testserver.Options{})
	putGroup(t, c, "rg1")
	resp, err := c.Put(ctx, client.VaultPath(sub, "rg1", "vault1"), client.APIVersionDataProtection, vaultBody())
	if err != nil {
		t.Fatal(err)
	}
	// Poll the operation's Location (its result), as a client without
	// Azure-AsyncOperation would: 202 while running, then the vault.
	loc := *resp
	loc.Header = resp.Header.Clone()
	loc.Header.Del("Azure-AsyncOperation")
	loc.StatusCode = http.StatusAccepted
	if !client.IsLongRunning(&loc) {
		t.Fatal("a 202 with Location is not long-running")
	}
	op, err := c.Wait(ctx, &loc, nil)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	var v struct {
		Name       string
		Properties struct{ ProvisioningState string }
	}
	if err := json.Unmarshal(op.Properties, &v); err != nil || v.Name != "vault1" || v.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("result = %s, %v", op.Properties, err)
	}
}

func TestAPIErrorString(t *testing.T) {
	for _, tc := range []struct {
		e    client.APIError
		want string
	}{
		{client.APIError{StatusCode: 404, Code: "NotFound", Message: "Gone."}, "NotFound: Gone."},
		{client.APIError{StatusCode: 400, Code: "Bad", Message: "No.", Target: "x.y"}, "Bad: No. (target: x.y)"},
		{client.APIError{StatusCode: 502, Message: "upstream"}, "HTTP 502 Bad Gateway: upstream"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
