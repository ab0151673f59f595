package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/dataprotection/armdataprotection/v3"
)

var pollFast = &runtime.PollUntilDoneOptions{Frequency: 20 * time.Millisecond}

func newVaultBody() armdataprotection.BackupVaultResource {
	return armdataprotection.BackupVaultResource{
		Location: to.Ptr("westus"),
		Identity: &armdataprotection.DppIdentityDetails{Type: to.Ptr("SystemAssigned")},
		Tags:     map[string]*string{"env": to.Ptr("test")},
		Properties: &armdataprotection.BackupVault{
			StorageSettings: []*armdataprotection.StorageSetting{{
				DatastoreType: to.Ptr(armdataprotection.StorageSettingStoreTypesVaultStore),
				Type:          to.Ptr(armdataprotection.StorageSettingTypesLocallyRedundant),
			}},
		},
	}
}

func createVault(t *testing.T, e *testEnv, rg, name string) *armdataprotection.BackupVaultResource {
	t.Helper()
	return createVaultWith(t, e.dp(), rg, name)
}

func createVaultWith(t *testing.T, f *armdataprotection.ClientFactory, rg, name string) *armdataprotection.BackupVaultResource {
	t.Helper()
	ctx := context.Background()
	poller, err := f.NewBackupVaultsClient().BeginCreateOrUpdate(ctx, rg, name, newVaultBody(), nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate %s: %v", name, err)
	}
	res, err := poller.PollUntilDone(ctx, pollFast)
	if err != nil {
		t.Fatalf("PollUntilDone %s: %v", name, err)
	}
	return &res.BackupVaultResource
}

func TestSDKVaultLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createGroup("rg-Main")
	vaults := e.dp().NewBackupVaultsClient()

	v := createVault(t, e, "rg-main", "Vault-One")
	if got := *v.Properties.ProvisioningState; got != armdataprotection.ProvisioningStateSucceeded {
		t.Errorf("provisioningState after poll = %s", got)
	}
	if v.Identity == nil || v.Identity.PrincipalID == nil || v.Identity.TenantID == nil {
		t.Fatalf("vault has no system-assigned identity: %+v", v.Identity)
	}
	principal := *v.Identity.PrincipalID
	wantID := "/subscriptions/" + testSub + "/resourceGroups/rg-Main/providers/Microsoft.DataProtection/backupVaults/Vault-One"
	if *v.ID != wantID {
		t.Errorf("id = %s, want %s", *v.ID, wantID)
	}

	// Get with other casing; the name keeps its case.
	got, err := vaults.Get(ctx, "RG-MAIN", "vault-one", nil)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if *got.Name != "Vault-One" || *got.Identity.PrincipalID != principal {
		t.Errorf("Get returned name %s principal %s", *got.Name, *got.Identity.PrincipalID)
	}

	// Update through PATCH keeps the identity.
	up, err := vaults.BeginUpdate(ctx, "rg-main", "Vault-One", armdataprotection.PatchResourceRequestInput{
		Tags: map[string]*string{"env": to.Ptr("prod"), "team": to.Ptr("db")},
		Properties: &armdataprotection.PatchBackupVaultInput{
			SecuritySettings: &armdataprotection.SecuritySettings{
				SoftDeleteSettings: &armdataprotection.SoftDeleteSettings{State: to.Ptr(armdataprotection.SoftDeleteStateOn), RetentionDurationInDays: to.Ptr(14.0)},
			},
		},
	}, nil)
	if err != nil {
		t.Fatalf("BeginUpdate: %v", err)
	}
	upd, err := up.PollUntilDone(ctx, pollFast)
	if err != nil {
		t.Fatalf("update poll: %v", err)
	}
	if *upd.Tags["env"] != "prod" || *upd.Identity.PrincipalID != principal || *upd.Properties.SecuritySettings.SoftDeleteSettings.State != armdataprotection.SoftDeleteStateOn {
		t.Errorf("update not applied: %+v", upd)
	}

	// A PUT on an existing vault is an update, also keeping the identity.
	v2 := createVault(t, e, "rg-main", "vault-one")
	if *v2.Identity.PrincipalID != principal || *v2.Name != "Vault-One" {
		t.Errorf("re-PUT changed identity or name: %s %s", *v2.Identity.PrincipalID, *v2.Name)
	}

	// Both list pagers, across several pages.
	e.createGroup("rg-other")
	for i := range 3 {
		createVault(t, e, "rg-main", fmt.Sprintf("vault-%d", i))
	}
	createVault(t, e, "rg-other", "vault-x")
	countPages := func(p *runtime.Pager[armdataprotection.BackupVaultsClientGetInResourceGroupResponse]) (names []string) {
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("NextPage: %v", err)
			}
			for _, v := range page.Value {
				names = append(names, *v.Name)
			}
		}
		return names
	}
	if names := countPages(vaults.NewGetInResourceGroupPager("rg-main", nil)); strings.Join(names, ",") != "vault-0,vault-1,vault-2,Vault-One" {
		t.Errorf("resource group pager = %v", names)
	}
	var subNames []string
	for p := vaults.NewGetInSubscriptionPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		for _, v := range page.Value {
			subNames = append(subNames, *v.Name)
		}
	}
	if len(subNames) != 5 {
		t.Errorf("subscription pager = %v, want 5 vaults", subNames)
	}

	// Delete, then it is gone.
	del, err := vaults.BeginDelete(ctx, "rg-main", "vault-0", nil)
	if err != nil {
		t.Fatalf("BeginDelete: %v", err)
	}
	if _, err := del.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatalf("delete poll: %v", err)
	}
	_, err = vaults.Get(ctx, "rg-main", "vault-0", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != "ResourceNotFound" {
		t.Errorf("Get after delete: %v", err)
	}
}

func TestSDKVaultPaging(t *testing.T) {
	t.Parallel()
	e := &testEnv{t: t, dir: t.TempDir(), pageSize: 2}
	e.start()
	t.Cleanup(e.stop)
	e.createGroup("rg")
	for i := range 5 {
		createVault(t, e, "rg", fmt.Sprintf("v%d", i))
	}
	ctx := context.Background()
	var names []string
	pages := 0
	for p := e.dp().NewBackupVaultsClient().NewGetInResourceGroupPager("rg", nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		pages++
		if page.NextLink != nil && !strings.HasPrefix(*page.NextLink, e.URL+"/") || page.NextLink != nil && !strings.Contains(*page.NextLink, "api-version=2024-04-01") {
			t.Errorf("nextLink not absolute with api-version: %s", *page.NextLink)
		}
		for _, v := range page.Value {
			names = append(names, *v.Name)
		}
	}
	if pages != 3 || strings.Join(names, ",") != "v0,v1,v2,v3,v4" {
		t.Errorf("%d pages, names %v", pages, names)
	}
}

func TestSDKPolicyLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createGroup("rg")
	createVault(t, e, "rg", "vault")
	policies := e.dp().NewBackupPoliciesClient()

	var body armdataprotection.BaseBackupPolicyResource
	if err := json.Unmarshal(readTestdata(t, "pgflex-policy.json"), &body); err != nil {
		t.Fatal(err)
	}
	res, err := policies.CreateOrUpdate(ctx, "rg", "vault", "pgflexpol1", body, nil)
	if err != nil {
		t.Fatalf("CreateOrUpdate: %v", err)
	}
	bp, ok := res.Properties.(*armdataprotection.BackupPolicy)
	if !ok {
		t.Fatalf("properties decoded as %T, want *BackupPolicy", res.Properties)
	}
	if len(bp.PolicyRules) != 3 {
		t.Fatalf("%d rules", len(bp.PolicyRules))
	}
	rule, ok := bp.PolicyRules[0].(*armdataprotection.AzureBackupRule)
	if !ok {
		t.Fatalf("rule 0 is %T", bp.PolicyRules[0])
	}
	trig, ok := rule.Trigger.(*armdataprotection.ScheduleBasedTriggerContext)
	if !ok {
		t.Fatalf("trigger is %T", rule.Trigger)
	}
	for _, tc := range trig.TaggingCriteria {
		if tc.TagInfo.ID == nil || *tc.TagInfo.ID != *tc.TagInfo.TagName+"_" {
			t.Errorf("tag %s id = %v", *tc.TagInfo.TagName, tc.TagInfo.ID)
		}
	}
	if _, ok := bp.PolicyRules[1].(*armdataprotection.AzureRetentionRule); !ok {
		t.Errorf("rule 1 is %T", bp.PolicyRules[1])
	}

	got, err := policies.Get(ctx, "RG", "VAULT", "PGFLEXPOL1", nil)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if *got.Name != "pgflexpol1" {
		t.Errorf("name %s", *got.Name)
	}
	var names []string
	for p := policies.NewListPager("rg", "vault", nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		for _, v := range page.Value {
			names = append(names, *v.Name)
		}
	}
	if strings.Join(names, ",") != "pgflexpol1" {
		t.Errorf("list = %v", names)
	}
	if _, err := policies.Delete(ctx, "rg", "vault", "pgflexpol1", nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = policies.Get(ctx, "rg", "vault", "pgflexpol1", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
		t.Errorf("Get after delete: %v", err)
	}
}

// TestSpecExamplePolicy sends the spec's own policy example: its datasource
// type (OssDB) is refused, and with the PostgreSQL type it is accepted.
func TestSpecExamplePolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createGroup("rg")
	createVault(t, e, "rg", "vault")
	var example struct {
		Parameters struct {
			Parameters json.RawMessage `json:"parameters"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(readSpecExample(t), &example); err != nil {
		t.Fatal(err)
	}
	path := "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/vault/backupPolicies/OSSDBPolicy?api-version=2024-04-01"
	r := e.do(http.MethodPut, path, example.Parameters.Parameters)
	if code, target := r.armError(t); r.Status != 400 || code != "UserErrorDatasourceTypeNotSupported" || target != "properties.datasourceTypes" {
		t.Errorf("OssDB policy: %d %s %s", r.Status, code, target)
	}
	fixed := strings.Replace(string(example.Parameters.Parameters), `"OssDB"`, `"Microsoft.DBforPostgreSQL/flexibleServers"`, 1)
	if r := e.do(http.MethodPut, path, fixed); r.Status != 200 {
		t.Errorf("PostgreSQL policy from the spec example: %d %s", r.Status, r.Body)
	}
}
