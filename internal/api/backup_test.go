package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/dataprotection/armdataprotection/v3"

	"github.com/pgvault/pgvault/internal/auth"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/vault"
)

// protected sets up a protected server: group, registered server, vault,
// policy, the vault identity's roles and a configured backup instance.
func protected(t *testing.T, e *testEnv, c *pgtest.Cluster) (biName string) {
	t.Helper()
	ctx := context.Background()
	e.createGroup("rg")
	srv := registerServer(t, e, "rg", "db1", c, c.SuperUser, c.SuperPassword)
	v := createVault(t, e, "rg", "vault")
	var policy armdataprotection.BaseBackupPolicyResource
	if err := json.Unmarshal(readTestdata(t, "pgflex-policy.json"), &policy); err != nil {
		t.Fatal(err)
	}
	pol, err := e.dp().NewBackupPoliciesClient().CreateOrUpdate(ctx, "rg", "vault", "pol", policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	reader, _ := auth.RoleByName("Reader")
	grantVault(t, e, *v.Identity.PrincipalID, rgPath, reader.ID, 1)
	return protectServer(t, e, *srv.ID, *pol.ID, "db1-bi", 0)
}

// grantVault assigns a role to a vault's identity (principal) at a scope;
// n makes the assignment's name.
func grantVault(t *testing.T, e *testEnv, principal, scope, roleID string, n int) {
	t.Helper()
	r := e.do("PUT", scope+"/providers/Microsoft.Authorization/roleAssignments/"+fmt.Sprintf("2d0c0000-0000-4000-8000-%012d", n)+"?api-version=2022-04-01",
		fmt.Sprintf(`{"properties":{"roleDefinitionId":%q,"principalId":%q}}`, vault.RoleDefinitionID(scope, roleID), principal))
	if r.Status != http.StatusCreated {
		t.Fatalf("grant: %d %s", r.Status, r.Body)
	}
}

// protectServer grants the vault "vault" the LTR backup role on a server
// (assignment n) and protects the server with policy policyID as instance
// biName, through the SDK.
func protectServer(t *testing.T, e *testEnv, serverID, policyID, biName string, n int) string {
	t.Helper()
	ctx := context.Background()
	v, err := e.dp().NewBackupVaultsClient().Get(ctx, "rg", "vault", nil)
	if err != nil {
		t.Fatal(err)
	}
	ltr, _ := auth.RoleByName("PostgreSQL Flexible Server Long Term Retention Backup Role")
	grantVault(t, e, *v.Identity.PrincipalID, serverID, ltr.ID, n)
	ds := &armdataprotection.Datasource{ResourceID: to.Ptr(serverID), DatasourceType: to.Ptr(vault.DatasourceType), ObjectType: to.Ptr("Datasource")}
	poller, err := e.dp().NewBackupInstancesClient().BeginCreateOrUpdate(ctx, "rg", "vault", biName, armdataprotection.BackupInstanceResource{
		Properties: &armdataprotection.BackupInstance{DataSourceInfo: ds, PolicyInfo: &armdataprotection.PolicyInfo{PolicyID: to.Ptr(policyID)}, ObjectType: to.Ptr("BackupInstance")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatalf("protect: %v", err)
	}
	return biName
}

// startAdhocBackup runs an on-demand backup (rule BackupWeekly, tag
// Default) through the SDK to the end of its operation; it returns the job ID.
func startAdhocBackup(instances *armdataprotection.BackupInstancesClient, bi string) (string, error) {
	ctx := context.Background()
	p, err := instances.BeginAdhocBackup(ctx, "rg", "vault", bi, armdataprotection.TriggerBackupRequest{
		BackupRuleOptions: &armdataprotection.AdHocBackupRuleOptions{RuleName: to.Ptr("BackupWeekly"),
			TriggerOption: &armdataprotection.AdhocBackupTriggerOption{RetentionTagOverride: to.Ptr("Default")}},
	}, nil)
	if err != nil {
		return "", err
	}
	res, err := p.PollUntilDone(ctx, pollFast)
	if err != nil {
		return "", err
	}
	return *res.JobID, nil
}

// TestAdhocBackup: an on-demand backup through the official SDK client runs
// as a job on a worker, ends Completed and leaves a recovery point; a second
// one while the first is queued is refused.
func TestAdhocBackup(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
	e := &testEnv{t: t, dir: t.TempDir(), noRunner: true}
	e.start()
	t.Cleanup(e.stop)
	ctx := context.Background()
	bi := protected(t, e, c)
	instances := e.dp().NewBackupInstancesClient()
	trigger := func() (string, error) { return startAdhocBackup(instances, bi) }
	jobID, err := trigger()
	if err != nil {
		t.Fatalf("adhoc backup: %v", err)
	}
	// The job is queued (no worker runs yet): a second backup is refused.
	_, err = trigger()
	wantResponseError(t, err, http.StatusOK, "UserErrorMaxConcurrentOperationLimitReached")

	e.startJobs()
	jobs := e.dp().NewJobsClient()
	name := jobID[len(jobID)-36:]
	var job armdataprotection.JobsClientGetResponse
	deadline := time.Now().Add(60 * time.Second)
	for {
		job, err = jobs.Get(ctx, "rg", "vault", name, nil)
		if err != nil {
			t.Fatalf("get job: %v", err)
		}
		if s := *job.Properties.Status; s != "InProgress" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backup job did not finish")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if *job.Properties.Status != "Completed" {
		b, _ := json.Marshal(job.Properties)
		t.Fatalf("job ended %s: %s", *job.Properties.Status, b)
	}
	if job.Properties.ExtendedInfo == nil || job.Properties.ExtendedInfo.DataTransferredInBytes == nil || *job.Properties.ExtendedInfo.DataTransferredInBytes < 1<<20 {
		t.Errorf("job extended info: %+v", job.Properties.ExtendedInfo)
	}
	var points []*armdataprotection.AzureBackupRecoveryPointResource
	for p := e.dp().NewRecoveryPointsClient().NewListPager("rg", "vault", bi, nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		points = append(points, page.Value...)
	}
	if len(points) != 1 {
		t.Fatalf("%d recovery points", len(points))
	}
	rp, ok := points[0].Properties.(*armdataprotection.AzureBackupDiscreteRecoveryPoint)
	if !ok || rp.RecoveryPointTime == nil || *rp.RetentionTagName != "Default" {
		t.Fatalf("recovery point: %T %+v", points[0].Properties, points[0].Properties)
	}
	got, err := e.dp().NewRecoveryPointsClient().Get(ctx, "rg", "vault", bi, *points[0].Name, nil)
	if err != nil || *got.Name != *points[0].Name {
		t.Fatalf("get recovery point: %v", err)
	}
	// Jobs list through the pager.
	n := 0
	for p := jobs.NewListPager("rg", "vault", nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Errorf("%d jobs listed", n)
	}
}
