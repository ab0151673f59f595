package apitest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/dataprotection/armdataprotection/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pgvault/pgvault/internal/api/apitest"
)

type staticToken struct{}

func (staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "test", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestSDK drives the validating client with the Azure SDK clients the
// server tests use, as they will.
func TestSDK(t *testing.T) {
	spec := apitest.LoadSpec(t)
	srv := server(t, map[string]struct {
		status int
		body   string
	}{
		vaultURL:  {200, vaultBody},
		policyURL: {200, policyExample(t)},
		ltrPreURL: {200, `{"properties": {"numberOfContainers": 1}}`},
	})
	client := spec.Client(t, srv.Client())
	opts := &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: srv.URL, Audience: "https://management.azure.com"},
			}},
			InsecureAllowCredentialWithHTTP: true,
			Retry:                           policy.RetryOptions{MaxRetries: -1},
			Transport:                       client,
		},
		DisableRPRegistration: true,
	}
	ctx := context.Background()

	vaults, err := armdataprotection.NewBackupVaultsClient(sub, staticToken{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vaults.Get(ctx, "rg1", "vault1", nil)
	if err != nil {
		t.Fatalf("BackupVaults.Get: %v", err)
	}
	if got := *v.Properties.StorageSettings[0].Type; got != armdataprotection.StorageSettingTypesLocallyRedundant {
		t.Errorf("storage setting type = %q", got)
	}

	policies, err := armdataprotection.NewBackupPoliciesClient(sub, staticToken{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policies.Get(ctx, "rg1", "vault1", "OSSDBPolicy", nil)
	if err != nil {
		t.Fatalf("BackupPolicies.Get: %v", err)
	}
	if bp, ok := p.Properties.(*armdataprotection.BackupPolicy); !ok || len(bp.PolicyRules) != 3 {
		t.Errorf("policy = %#v", p.Properties)
	}

	if _, err := policies.Get(ctx, "rg1", "vault1", "missing", nil); err == nil {
		t.Error("BackupPolicies.Get of a missing policy succeeded")
	}

	servers, err := armpostgresqlflexibleservers.NewFlexibleServerClient(sub, staticToken{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := servers.TriggerLtrPreBackup(ctx, "rg1", "pg1", armpostgresqlflexibleservers.LtrPreBackupRequest{
		BackupSettings: &armpostgresqlflexibleservers.BackupSettings{BackupName: to.Ptr("backup1")},
	}, nil)
	if err != nil {
		t.Fatalf("TriggerLtrPreBackup: %v", err)
	}
	if *pre.Properties.NumberOfContainers != 1 {
		t.Errorf("numberOfContainers = %d", *pre.Properties.NumberOfContainers)
	}

	if got := spec.Validated(client); got != 4 {
		t.Errorf("Validated = %d, want 4", got)
	}
	var _ policy.Transporter = client
	var _ http.RoundTripper = client.Transport
}
