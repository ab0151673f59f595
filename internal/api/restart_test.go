package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/dataprotection/armdataprotection/v3"

	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/store/sqlite"
)

// TestSurvivesRestart: groups, vaults (with their identity), policies and
// operation status are all still there after the server restarts.
func TestSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createGroup("rg")
	r := e.do(http.MethodPut, vaultPath+dpVersion, goodVault)
	if r.Status != http.StatusCreated {
		t.Fatalf("create vault: %d %s", r.Status, r.Body)
	}
	statusURL := r.Header.Get("Azure-AsyncOperation")
	if !strings.HasPrefix(statusURL, e.URL+"/subscriptions/"+testSub+"/providers/Microsoft.DataProtection/locations/westus/operationStatus/") ||
		!strings.HasSuffix(statusURL, "?api-version=2024-04-01") {
		t.Fatalf("Azure-AsyncOperation = %q", statusURL)
	}
	if r.Header.Get("Retry-After") == "" || !strings.HasPrefix(r.Header.Get("Location"), e.URL+"/") {
		t.Errorf("LRO headers: Retry-After %q Location %q", r.Header.Get("Retry-After"), r.Header.Get("Location"))
	}
	statusPath := strings.TrimPrefix(statusURL, e.URL)
	waitFor(t, "operation to succeed", func() bool {
		return strings.Contains(string(e.do(http.MethodGet, statusPath, nil).Body), `"status":"Succeeded"`)
	})
	if r := e.do(http.MethodPut, polPath+dpVersion, readTestdata(t, "pgflex-policy.json")); r.Status != 200 {
		t.Fatalf("create policy: %d %s", r.Status, r.Body)
	}
	before, err := e.dp().NewBackupVaultsClient().Get(ctx, "rg", "vault", nil)
	if err != nil {
		t.Fatal(err)
	}
	policyBefore := e.do(http.MethodGet, polPath+dpVersion, nil).Body

	e.restart()

	after, err := e.dp().NewBackupVaultsClient().Get(ctx, "rg", "vault", nil)
	if err != nil {
		t.Fatalf("vault after restart: %v", err)
	}
	if *after.Identity.PrincipalID != *before.Identity.PrincipalID || *after.Identity.TenantID != *before.Identity.TenantID ||
		*after.Properties.ProvisioningState != armdataprotection.ProvisioningStateSucceeded {
		t.Errorf("vault changed across restart: before %+v after %+v", before.Identity, after.Identity)
	}
	if got := e.do(http.MethodGet, polPath+dpVersion, nil).Body; string(got) != string(policyBefore) {
		t.Errorf("policy changed across restart:\n%s\n%s", policyBefore, got)
	}
	if r := e.do(http.MethodGet, "/subscriptions/"+testSub+"/resourceGroups/RG?api-version=2021-04-01", nil); r.Status != 200 {
		t.Errorf("group after restart: %d", r.Status)
	}
	r = e.do(http.MethodGet, statusPath, nil)
	var op struct {
		Name, Status, StartTime, EndTime string
	}
	if err := json.Unmarshal(r.Body, &op); err != nil || op.Status != "Succeeded" || op.EndTime == "" {
		t.Errorf("operation status after restart: %d %s", r.Status, r.Body)
	}
	// The restarted server still serves the SDK: a new vault provisions.
	poller, err := e.dp().NewBackupVaultsClient().BeginCreateOrUpdate(ctx, "rg", "vault2", armdataprotection.BackupVaultResource{
		Location:   to.Ptr("westus"),
		Properties: &armdataprotection.BackupVault{StorageSettings: []*armdataprotection.StorageSetting{{DatastoreType: to.Ptr(armdataprotection.StorageSettingStoreTypesVaultStore), Type: to.Ptr(armdataprotection.StorageSettingTypesGeoRedundant)}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatal(err)
	}
}

// TestResumesUnfinishedOperation: an operation that a process left in
// progress when it died (vault still Provisioning, operation Inprogress) is
// finished by the next process.
func TestResumesUnfinishedOperation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createGroup("rg")
	if r := e.do(http.MethodPut, vaultPath+dpVersion, goodVault); r.Status != http.StatusCreated {
		t.Fatalf("create vault: %d %s", r.Status, r.Body)
	}
	e.stop()
	// Rewind the store to the state of a crash between recording the
	// operation and running it.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(e.dir, "pgvault.db"))
	if err != nil {
		t.Fatal(err)
	}
	id := "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/vault"
	res, err := st.ResourceGet(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	res.Body = []byte(strings.Replace(string(res.Body), `"provisioningState":"Succeeded"`, `"provisioningState":"Provisioning"`, 1))
	if err := st.ResourcePut(ctx, res, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	op := &store.Operation{ID: "crashed-op", Subscription: testSub, Kind: "vault.provision", ResourceID: id,
		Status: store.OperationInProgress, Input: []byte(`{"vaultId":"` + id + `"}`), StartTime: time.Now().UTC()}
	if err := st.OperationCreate(ctx, op); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	e.start()
	statusPath := "/subscriptions/" + testSub + "/providers/Microsoft.DataProtection/locations/westus/operationStatus/crashed-op" + dpVersion
	waitFor(t, "operation to succeed after restart", func() bool {
		return strings.Contains(string(e.do(http.MethodGet, statusPath, nil).Body), `"status":"Succeeded"`)
	})
	if r := e.do(http.MethodGet, vaultPath+dpVersion, nil); !strings.Contains(string(r.Body), `"provisioningState":"Succeeded"`) {
		t.Errorf("vault after resumed provisioning: %s", r.Body)
	}
}
