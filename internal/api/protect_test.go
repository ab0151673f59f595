package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/dataprotection/armdataprotection/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pgvault/pgvault/internal/auth"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/vault"
)

// pg is an SDK client factory for Microsoft.DBforPostgreSQL, as the administrator.
func (e *testEnv) pg() *armpostgresqlflexibleservers.ClientFactory {
	f, err := armpostgresqlflexibleservers.NewClientFactory(testSub, staticToken(e.adminToken()), e.clientOptions())
	if err != nil {
		e.t.Fatalf("creating SDK client factory: %v", err)
	}
	return f
}

// registerServer registers a cluster through the official SDK client.
func registerServer(t *testing.T, e *testEnv, rg, name string, c *pgtest.Cluster, login, password string) *armpostgresqlflexibleservers.Server {
	t.Helper()
	ctx := context.Background()
	poller, err := e.pg().NewServersClient().BeginCreate(ctx, rg, name, armpostgresqlflexibleservers.Server{
		Location: to.Ptr("westus"),
		Properties: &armpostgresqlflexibleservers.ServerProperties{
			FullyQualifiedDomainName:   to.Ptr(fmt.Sprintf("%s:%d", c.Host, c.Port)),
			AdministratorLogin:         to.Ptr(login),
			AdministratorLoginPassword: to.Ptr(password),
		},
	}, nil)
	if err != nil {
		t.Fatalf("registering server %s: %v", name, err)
	}
	res, err := poller.PollUntilDone(ctx, pollFast)
	if err != nil {
		t.Fatalf("registering server %s: %v", name, err)
	}
	return &res.Server
}

func wantResponseError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("error = %v, want %d %s", err, status, code)
	}
}

// TestProtectFlow is the seed document's flow end to end through the official
// SDK clients against a real PostgreSQL 15 server.
func TestProtectFlow(t *testing.T) {
	t.Parallel()
	cluster := pgtest.Start(t, pgtest.Options{})
	e := newEnv(t)
	ctx := context.Background()
	e.createGroup("pgflextest")
	e.createGroup("TestBkpVaultRG")

	srv := registerServer(t, e, "pgflextest", "pgflextestserver", cluster, cluster.SuperUser, cluster.SuperPassword)
	if *srv.Properties.Version != "15" || *srv.Properties.State != armpostgresqlflexibleservers.ServerStateReady {
		t.Errorf("registered server: version %v state %v", *srv.Properties.Version, *srv.Properties.State)
	}
	if srv.Properties.AdministratorLoginPassword != nil {
		t.Error("the password was returned")
	}
	got, err := e.pg().NewServersClient().Get(ctx, "pgflextest", "pgflextestserver", nil)
	if err != nil || *got.Name != "pgflextestserver" {
		t.Fatalf("Get server: %v", err)
	}
	n := 0
	for p := e.pg().NewServersClient().NewListByResourceGroupPager("pgflextest", nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list servers: %v", err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Errorf("listed %d servers", n)
	}

	v := createVault(t, e, "TestBkpVaultRG", "testBkpVault")
	var policy armdataprotection.BaseBackupPolicyResource
	if err := json.Unmarshal(readTestdata(t, "pgflex-policy.json"), &policy); err != nil {
		t.Fatal(err)
	}
	pol, err := e.dp().NewBackupPoliciesClient().CreateOrUpdate(ctx, "TestBkpVaultRG", "testBkpVault", "pgflexpol1", policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := &armdataprotection.Datasource{
		ResourceID: srv.ID, ResourceURI: to.Ptr(""), DatasourceType: to.Ptr(vault.DatasourceType), ResourceName: srv.Name,
		ResourceType: to.Ptr(vault.DatasourceType), ResourceLocation: to.Ptr("westUS"), ObjectType: to.Ptr("Datasource"),
	}
	bi := armdataprotection.BackupInstance{
		DataSourceInfo: ds,
		DataSourceSetInfo: &armdataprotection.DatasourceSet{
			ResourceID: srv.ID, ResourceURI: to.Ptr(""), DatasourceType: to.Ptr(vault.DatasourceType), ResourceName: srv.Name,
			ResourceType: to.Ptr(vault.DatasourceType), ResourceLocation: to.Ptr("westUS"), ObjectType: to.Ptr("DatasourceSet"),
		},
		PolicyInfo: &armdataprotection.PolicyInfo{PolicyID: pol.ID, PolicyVersion: to.Ptr("")},
		ObjectType: to.Ptr("BackupInstance"),
	}
	instances := e.dp().NewBackupInstancesClient()
	validate := func() error {
		poller, err := instances.BeginValidateForBackup(ctx, "TestBkpVaultRG", "testBkpVault", armdataprotection.ValidateForBackupRequest{BackupInstance: &bi}, nil)
		if err != nil {
			return err
		}
		_, err = poller.PollUntilDone(ctx, pollFast)
		return err
	}

	// The vault's identity has no role yet.
	err = validate()
	wantResponseError(t, err, http.StatusOK, "UserErrorMissingRequiredPermissions")
	var re *azcore.ResponseError
	errors.As(err, &re)
	body := re.Error() // azcore puts the whole response body in the error text
	for _, want := range []string{"UserFacingError", "DetailedNonLocalisedMessage", *v.Identity.PrincipalID, "does not have authorization to perform action"} {
		if !strings.Contains(body, want) {
			t.Errorf("missing-permission error lacks %q:\n%s", want, body)
		}
	}

	// Grant the two roles the documentation asks for.
	ltr, _ := auth.RoleByName("PostgreSQL Flexible Server Long Term Retention Backup Role")
	reader, _ := auth.RoleByName("Reader")
	grant := func(scope, roleID, name string) {
		r := e.do("PUT", scope+"/providers/Microsoft.Authorization/roleAssignments/"+name+"?api-version=2022-04-01",
			fmt.Sprintf(`{"properties":{"roleDefinitionId":%q,"principalId":%q,"principalType":"ServicePrincipal"}}`,
				vault.RoleDefinitionID(scope, roleID), *v.Identity.PrincipalID))
		if r.Status != http.StatusCreated {
			t.Fatalf("granting %s: %d %s", roleID, r.Status, r.Body)
		}
	}
	grant(*srv.ID, ltr.ID, "1c6a8f8e-0000-4000-8000-000000000001")
	grant("/subscriptions/"+testSub+"/resourceGroups/pgflextest", reader.ID, "1c6a8f8e-0000-4000-8000-000000000002")
	if err := validate(); err != nil {
		t.Fatalf("validateForBackup with the roles granted: %v", err)
	}

	// Protect.
	const biName = "pgflextestserver-857d23b1-c679-4c94-ade6-c4d34635e149"
	poller, err := instances.BeginCreateOrUpdate(ctx, "TestBkpVaultRG", "testBkpVault", biName, armdataprotection.BackupInstanceResource{Properties: &bi}, nil)
	if err != nil {
		t.Fatalf("PUT backup instance: %v", err)
	}
	created, err := poller.PollUntilDone(ctx, pollFast)
	if err != nil {
		t.Fatalf("PUT backup instance: %v", err)
	}
	if *created.Properties.CurrentProtectionState != armdataprotection.CurrentProtectionStateProtectionConfigured ||
		*created.Properties.ProvisioningState != "Succeeded" || *created.Properties.ProtectionStatus.Status != armdataprotection.StatusProtectionConfigured {
		t.Errorf("instance after PUT: %+v", created.Properties)
	}
	gotBI, err := instances.Get(ctx, "TestBkpVaultRG", "testBkpVault", biName, nil)
	if err != nil || *gotBI.Properties.CurrentProtectionState != armdataprotection.CurrentProtectionStateProtectionConfigured {
		t.Fatalf("GET instance: %v", err)
	}

	// Already protected: a synchronous 400 naming the vault and instance.
	_, err = instances.BeginValidateForBackup(ctx, "TestBkpVaultRG", "testBkpVault", armdataprotection.ValidateForBackupRequest{BackupInstance: &bi}, nil)
	wantResponseError(t, err, http.StatusBadRequest, "UserErrorDppDatasourceAlreadyProtected")
	errors.As(err, &re)
	if body := re.Error(); !strings.Contains(body, "recommendedAction") || !strings.Contains(body, biName) || !strings.Contains(body, *v.ID) {
		t.Errorf("already-protected error:\n%s", body)
	}
	// The server cannot be unregistered, the policy not deleted, the vault not deleted.
	if r := e.do("DELETE", *srv.ID+"?api-version=2024-08-01", nil); r.Status != http.StatusConflict {
		t.Errorf("deleting a protected server: %d %s", r.Status, r.Body)
	}
	if r := e.do("DELETE", *pol.ID+"?api-version=2024-04-01", nil); r.Status != http.StatusConflict {
		t.Errorf("deleting a policy in use: %d %s", r.Status, r.Body)
	}
	if r := e.do("DELETE", *v.ID+"?api-version=2024-04-01", nil); r.Status != http.StatusConflict {
		t.Errorf("deleting a vault with an instance: %d %s", r.Status, r.Body)
	}

	// Suspend, resume, stop, resume.
	for _, step := range []struct {
		do   func() error
		want armdataprotection.CurrentProtectionState
	}{
		{func() error {
			return pollDone(instances.BeginSuspendBackups(ctx, "TestBkpVaultRG", "testBkpVault", biName, nil))
		}, armdataprotection.CurrentProtectionStateBackupSchedulesSuspended},
		{func() error {
			return pollDone(instances.BeginResumeBackups(ctx, "TestBkpVaultRG", "testBkpVault", biName, nil))
		}, armdataprotection.CurrentProtectionStateProtectionConfigured},
		{func() error {
			return pollDone(instances.BeginStopProtection(ctx, "TestBkpVaultRG", "testBkpVault", biName, nil))
		}, armdataprotection.CurrentProtectionStateProtectionStopped},
		{func() error {
			return pollDone(instances.BeginResumeProtection(ctx, "TestBkpVaultRG", "testBkpVault", biName, nil))
		}, armdataprotection.CurrentProtectionStateProtectionConfigured},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("protection action: %v", err)
		}
		got, err := instances.Get(ctx, "TestBkpVaultRG", "testBkpVault", biName, nil)
		if err != nil || *got.Properties.CurrentProtectionState != step.want {
			t.Fatalf("state = %v, want %v (%v)", *got.Properties.CurrentProtectionState, step.want, err)
		}
	}

	// Delete ("stop protection and delete data"): gone, and the server can be protected again.
	del, err := instances.BeginDelete(ctx, "TestBkpVaultRG", "testBkpVault", biName, nil)
	if err != nil {
		t.Fatalf("DELETE instance: %v", err)
	}
	if _, err := del.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatalf("DELETE instance: %v", err)
	}
	_, err = instances.Get(ctx, "TestBkpVaultRG", "testBkpVault", biName, nil)
	wantResponseError(t, err, http.StatusNotFound, "ResourceNotFound")
	if err := validate(); err != nil {
		t.Fatalf("validateForBackup after the instance was deleted: %v", err)
	}

	// The registered password is in no response and no log line.
	for what, text := range map[string]string{"logs": e.logs.String(), "responses": e.bodies.String()} {
		if strings.Contains(text, cluster.SuperPassword) {
			t.Errorf("the server's password appears in the %s", what)
		}
	}
}

func pollDone[T any](p *runtime.Poller[T], err error) error {
	if err != nil {
		return err
	}
	_, err = p.PollUntilDone(context.Background(), pollFast)
	return err
}
