package api_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TestAzidentityClientSecretCredential: the official azidentity credential
// gets its token from pgvault's built-in issuer (over TLS, as MSAL requires)
// and drives armdataprotection with it.
func TestAzidentityClientSecretCredential(t *testing.T) {
	t.Setenv("AZURE_REGIONAL_AUTHORITY_NAME", "") // nothing from the environment steers MSAL
	e := &testEnv{t: t, dir: t.TempDir(), tls: true}
	e.start()
	t.Cleanup(e.stop)
	cred, err := azidentity.NewClientSecretCredential(e.svc.TenantID(), e.admin.Properties.ClientID, e.adminSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.URL + "/"},
				Transport: e.srv.Client(),
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	e.createGroup("rg")
	v := createVaultWith(t, e.dpAs(cred), "rg", "vault")
	if v.Identity == nil || v.Identity.PrincipalID == nil {
		t.Fatalf("vault created through azidentity has no identity: %+v", v)
	}
	got, err := e.dpAs(cred).NewBackupVaultsClient().Get(context.Background(), "rg", "vault", nil)
	if err != nil {
		t.Fatalf("Get with the azidentity credential: %v", err)
	}
	if got.SystemData == nil || got.SystemData.CreatedBy == nil || *got.SystemData.CreatedBy != e.admin.Properties.ClientID {
		t.Errorf("systemData.createdBy = %v, want the admin's client ID", got.SystemData)
	}
}
