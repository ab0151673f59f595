package vault_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/store/sqlite"
	"github.com/pgvault/pgvault/internal/vault"
)

const sub = "8e0f2a4c-1b3d-4e5f-9a7b-0c1d2e3f4a5b"

type testBundle struct {
	store *sqlite.Store
	svc   *vault.Service
}

func setup(t *testing.T) (*vault.Service, *testBundle) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pgvault.db"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := vault.New(ctx, vault.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	if _, _, err := svc.PutResourceGroup(ctx, sub, "rg", vault.ResourceGroup{Location: "westus"}); err != nil {
		t.Fatal(err)
	}
	v := &vault.Vault{Location: "westus", Identity: &vault.Identity{Type: "SystemAssigned"},
		Properties: vault.VaultProperties{StorageSettings: []vault.StorageSetting{{DatastoreType: "VaultStore", Type: "LocallyRedundant"}}}}
	if _, _, err := svc.PutVault(ctx, sub, "rg", "vault", v, vault.Principal{}); err != nil {
		t.Fatal(err)
	}
	return svc, &testBundle{store: st, svc: svc}
}

func testPolicy(t *testing.T) *vault.BackupPolicy {
	t.Helper()
	b, err := os.ReadFile("../api/testdata/pgflex-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Properties vault.BackupPolicy `json:"properties"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	return &body.Properties
}

// addInstance stores a backup instance row as the protection issue will
// create them: a child of the vault that refers to its policy.
func addInstance(t *testing.T, st store.Store, policyID string) {
	t.Helper()
	vaultID := vault.VaultID(sub, "rg", "vault")
	now := time.Now().UTC()
	err := st.ResourcePut(context.Background(), &store.Resource{
		ID: vaultID + "/backupInstances/bi1", Type: vault.TypeBackupInstance, Parent: vaultID, Subscription: sub,
		Name: "bi1", Refs: []string{policyID}, Body: []byte(`{}`), ETag: "e1", Created: now, Updated: now,
	}, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, kind vault.Kind, code string) {
	t.Helper()
	e, ok := vault.AsError(err)
	if !ok || e.Kind != kind || e.Code != code {
		t.Fatalf("error = %v, want kind %d code %s", err, kind, code)
	}
}

func TestVaultWithInstancesCannotBeDeleted(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	p, err := svc.PutPolicy(ctx, sub, "rg", "vault", "pol", testPolicy(t), vault.Principal{})
	if err != nil {
		t.Fatal(err)
	}
	addInstance(t, b.store, p.ID)

	_, err = svc.DeleteVault(ctx, sub, "rg", "vault")
	wantCode(t, err, vault.KindConflict, "UserErrorVaultHasBackupInstances")
	if _, err := svc.Vault(ctx, sub, "rg", "vault"); err != nil {
		t.Errorf("vault gone after a refused delete: %v", err)
	}

	// The policy is in use: it can be neither deleted nor changed.
	_, err = svc.DeletePolicy(ctx, sub, "rg", "vault", "pol")
	wantCode(t, err, vault.KindConflict, "UserErrorPolicyInUse")
	_, err = svc.PutPolicy(ctx, sub, "rg", "vault", "pol", testPolicy(t), vault.Principal{})
	wantCode(t, err, vault.KindConflict, "UserErrorPolicyInUse")

	// Once the instance is gone, both deletes succeed, the policy with the vault.
	if err := b.store.ResourceDelete(ctx, vault.VaultID(sub, "rg", "vault")+"/backupInstances/bi1", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if existed, err := svc.DeleteVault(ctx, sub, "rg", "vault"); err != nil || !existed {
		t.Fatalf("delete vault: %v %v", existed, err)
	}
	_, err = svc.Policy(ctx, sub, "rg", "vault", "pol")
	wantCode(t, err, vault.KindNotFound, "ResourceNotFound")
}

func TestVaultIdentityIsStable(t *testing.T) {
	t.Parallel()
	svc, _ := setup(t)
	ctx := context.Background()
	v1, err := svc.Vault(ctx, sub, "rg", "vault")
	if err != nil {
		t.Fatal(err)
	}
	if v1.Identity == nil || v1.Identity.PrincipalID == "" || v1.Identity.TenantID != svc.TenantID() {
		t.Fatalf("identity %+v", v1.Identity)
	}
	v2, err := svc.PatchVault(ctx, sub, "rg", "vault", &vault.VaultPatch{Tags: &map[string]string{"a": "b"}}, vault.Principal{})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Identity.PrincipalID != v1.Identity.PrincipalID {
		t.Errorf("PATCH changed the principal ID")
	}
}

func TestSoftDeletePatchKeepsRetention(t *testing.T) {
	t.Parallel()
	svc, _ := setup(t)
	ctx := context.Background()
	days := 30.0
	on := &vault.VaultPatch{}
	on.Properties = &vault.VaultPatchProperties{SecuritySettings: &vault.SecuritySettings{SoftDeleteSettings: &vault.SoftDeleteSettings{State: "On", RetentionDurationInDays: &days}}}
	if _, err := svc.PatchVault(ctx, sub, "rg", "vault", on, vault.Principal{}); err != nil {
		t.Fatal(err)
	}
	on.Properties.SecuritySettings.SoftDeleteSettings = &vault.SoftDeleteSettings{State: "alwayson"}
	v, err := svc.PatchVault(ctx, sub, "rg", "vault", on, vault.Principal{})
	if err != nil {
		t.Fatal(err)
	}
	sd := v.Properties.SecuritySettings.SoftDeleteSettings
	if sd.State != "AlwaysOn" || sd.RetentionDurationInDays == nil || *sd.RetentionDurationInDays != 30 {
		t.Errorf("soft delete after patch: %+v", sd)
	}
	// AlwaysOn is one-way.
	on.Properties.SecuritySettings.SoftDeleteSettings = &vault.SoftDeleteSettings{State: "Off"}
	_, err = svc.PatchVault(ctx, sub, "rg", "vault", on, vault.Principal{})
	wantCode(t, err, vault.KindInvalid, "UserErrorSoftDeleteAlwaysOn")
}

func TestGroupWithVaultCannotBeDeleted(t *testing.T) {
	t.Parallel()
	svc, _ := setup(t)
	_, err := svc.DeleteResourceGroup(context.Background(), sub, "rg")
	wantCode(t, err, vault.KindConflict, "ResourceGroupNotEmpty")
}
