package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/dataprotection/armdataprotection/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/pgvault/pgvault/internal/auth"
	"github.com/pgvault/pgvault/internal/azuritetest"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/vault"
)

// backupNow runs an on-demand backup of an instance through the SDK and
// waits for its job; it returns the new recovery point's name.
func backupNow(t *testing.T, e *testEnv, bi string) string {
	t.Helper()
	jobID, err := startAdhocBackup(e.dp().NewBackupInstancesClient(), bi)
	if err != nil {
		t.Fatalf("adhoc backup: %v", err)
	}
	job := waitJob(t, e, jobID)
	if *job.Status != "Completed" {
		b, _ := json.Marshal(job)
		t.Fatalf("backup job: %s", b)
	}
	return *job.ExtendedInfo.AdditionalDetails["RecoveryPointId"]
}

// waitJob polls a job through the SDK until it ends.
func waitJob(t *testing.T, e *testEnv, jobID string) *armdataprotection.AzureBackupJob {
	t.Helper()
	jobs := e.dp().NewJobsClient()
	name := jobID[strings.LastIndex(jobID, "/")+1:]
	deadline := time.Now().Add(2 * time.Minute)
	for {
		job, err := jobs.Get(context.Background(), "rg", "vault", name, nil)
		if err != nil {
			t.Fatalf("get job: %v", err)
		}
		if *job.Properties.Status != "InProgress" {
			return job.Properties
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not finish", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// filesRestore is a restore request into a file target.
func filesRestore(rp, url, prefix, armID string) *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest {
	td := &armdataprotection.TargetDetails{URL: to.Ptr(url), FilePrefix: to.Ptr(prefix),
		RestoreTargetLocationType: to.Ptr(armdataprotection.RestoreTargetLocationTypeAzureBlobs)}
	if armID != "" {
		td.TargetResourceArmID = to.Ptr(armID)
	}
	return &armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest{
		ObjectType: to.Ptr("AzureBackupRecoveryPointBasedRestoreRequest"), RecoveryPointID: to.Ptr(rp),
		SourceDataStoreType: to.Ptr(armdataprotection.SourceDataStoreTypeVaultStore),
		RestoreTargetInfo: &armdataprotection.RestoreFilesTargetInfo{ObjectType: to.Ptr("RestoreFilesTargetInfo"),
			RecoveryOption: to.Ptr(armdataprotection.RecoveryOptionFailIfExists), RestoreLocation: to.Ptr("westus"), TargetDetails: td},
	}
}

// validateRestore runs validateRestore through the SDK to its end.
func validateRestore(e *testEnv, bi string, req armdataprotection.AzureBackupRestoreRequestClassification) error {
	return validateWith(e.dp(), bi, req)
}

// triggerRestore runs restore through the SDK to the end of its operation
// and returns the job's ARM ID.
func triggerRestore(e *testEnv, bi string, req armdataprotection.AzureBackupRestoreRequestClassification) (string, error) {
	return triggerWith(e.dp(), bi, req)
}

// validateWith runs validateRestore through a client factory to its end.
func validateWith(f *armdataprotection.ClientFactory, bi string, req armdataprotection.AzureBackupRestoreRequestClassification) error {
	ctx := context.Background()
	p, err := f.NewBackupInstancesClient().BeginValidateForRestore(ctx, "rg", "vault", bi, armdataprotection.ValidateRestoreRequestObject{RestoreRequestObject: req}, nil)
	if err != nil {
		return err
	}
	_, err = p.PollUntilDone(ctx, pollFast)
	return err
}

// triggerWith runs restore through a client factory to the end of its
// operation and returns the job's ARM ID.
func triggerWith(f *armdataprotection.ClientFactory, bi string, req armdataprotection.AzureBackupRestoreRequestClassification) (string, error) {
	ctx := context.Background()
	p, err := f.NewBackupInstancesClient().BeginTriggerRestore(ctx, "rg", "vault", bi, req, nil)
	if err != nil {
		return "", err
	}
	res, err := p.PollUntilDone(ctx, pollFast)
	if err != nil {
		return "", err
	}
	return *res.JobID, nil
}

// checkRestoreJob checks a finished restore job's description.
func checkRestoreJob(t *testing.T, job *armdataprotection.AzureBackupJob, rp, destination string) {
	t.Helper()
	b, _ := json.Marshal(job)
	if *job.Status != "Completed" {
		t.Fatalf("restore job: %s", b)
	}
	x := job.ExtendedInfo
	if *job.Operation != "Restore" || *job.OperationCategory != "Restore" || !*job.IsUserTriggered || job.EndTime == nil ||
		x == nil || x.SourceRecoverPoint == nil || *x.SourceRecoverPoint.RecoveryPointID != rp || x.SourceRecoverPoint.RecoveryPointTime == nil ||
		x.RecoveryDestination == nil || *x.RecoveryDestination != destination || x.DataTransferredInBytes == nil || *x.DataTransferredInBytes < 1<<20 {
		t.Errorf("restore job: %s", b)
	}
}

// restoreAndCompare extracts base.tar and backup_manifest from dir, checks
// them with pg_verifybackup, starts the cluster and compares table t.
func restoreAndCompare(t *testing.T, dir, want string) {
	t.Helper()
	dataDir := filepath.Join(pgtest.TempDir(t), "data")
	pgtest.ExtractTar(t, filepath.Join(dir, "base.tar"), dataDir)
	copyTo(t, filepath.Join(dir, "backup_manifest"), filepath.Join(dataDir, "backup_manifest"))
	verifyBackup(t, dataDir)
	dst := pgtest.StartExisting(t, dataDir, pgtest.Options{})
	if got := ltrTableSum(t, dst, "t"); got != want {
		t.Errorf("restored table: checksum %s, source at backup time %s", got, want)
	}
}

// TestRestoreToBlobContainer restores a recovery point through the official
// SDK into an Azurite container: validateRestore fails until the vault's
// identity holds Storage Blob Data Contributor on the storage account, then
// passes; the restore job writes the pg_basebackup files under filePrefix,
// which pg_verifybackup accepts and PostgreSQL starts from, with the data
// of backup time. A second restore into the same folder is refused and
// changes nothing; no SAS token is logged, returned or stored in clear.
func TestRestoreToBlobContainer(t *testing.T) {
	t.Parallel()
	src := pgtest.Start(t, pgtest.Options{})
	src.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
	az := azuritetest.Start(t)
	az.CreateContainer(t, "restores")
	sasURL := az.ContainerSASURL(t, "restores")
	e := newEnv(t)
	bi := protected(t, e, src)
	rp := backupNow(t, e, bi)
	want := ltrTableSum(t, src, "t")
	src.Exec(t, "INSERT INTO t SELECT g, 'after' FROM generate_series(50001, 50100) g")

	e.createGroup("rg-storage")
	account := "/subscriptions/" + testSub + "/resourceGroups/rg-storage/providers/Microsoft.Storage/storageAccounts/devstoreaccount1"
	req := filesRestore(rp, sasURL, "rp-1", account+"/blobServices/default/containers/restores")
	err := validateRestore(e, bi, req)
	wantResponseError(t, err, http.StatusOK, "UserErrorMSIMissingPermissions")
	_, err = triggerRestore(e, bi, req)
	wantResponseError(t, err, http.StatusOK, "UserErrorMSIMissingPermissions")

	v, err := e.dp().NewBackupVaultsClient().Get(context.Background(), "rg", "vault", nil)
	if err != nil {
		t.Fatal(err)
	}
	contributor, _ := auth.RoleByName("Storage Blob Data Contributor")
	r := e.do(http.MethodPut, account+"/providers/Microsoft.Authorization/roleAssignments/3e0c0000-0000-4000-8000-000000000001?api-version=2022-04-01",
		fmt.Sprintf(`{"properties":{"roleDefinitionId":%q,"principalId":%q}}`, vault.RoleDefinitionID(account, contributor.ID), *v.Identity.PrincipalID))
	if r.Status != http.StatusCreated {
		t.Fatalf("grant on the storage account: %d %s", r.Status, r.Body)
	}
	// A SAS that may not list cannot show the folder empty.
	noList := az.ContainerSASURLWith(t, "restores", sas.ContainerPermissions{Create: true, Write: true, Read: true})
	err = validateRestore(e, bi, filesRestore(rp, noList, "rp-1", account))
	wantResponseError(t, err, http.StatusOK, "UserErrorRestoreTargetNotAccessible")
	if err := validateRestore(e, bi, req); err != nil {
		t.Fatalf("validateRestore: %v", err)
	}
	if blobs := az.Blobs(t, "restores"); len(blobs) != 0 {
		t.Fatalf("validateRestore wrote %v", blobs)
	}
	began := time.Now()
	jobID, err := triggerRestore(e, bi, req)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !strings.HasPrefix(jobID, *v.ID+"/backupJobs/") {
		t.Errorf("job ID %s", jobID)
	}
	job := waitJob(t, e, jobID)
	t.Logf("restore to Azurite in %s", time.Since(began).Round(time.Millisecond))
	checkRestoreJob(t, job, rp, az.URL+"/restores/rp-1")

	blobs := az.Blobs(t, "restores")
	if !slices.Equal(blobs, []string{"rp-1/backup_manifest", "rp-1/base.tar"}) {
		t.Fatalf("blobs %v", blobs)
	}
	dl := t.TempDir()
	for _, b := range blobs {
		az.Download(t, "restores", b, filepath.Join(dl, strings.TrimPrefix(b, "rp-1/")))
	}
	restoreAndCompare(t, dl, want)

	// The folder holds the restore: validate and restore are refused, nothing changes.
	before := az.Read(t, "restores", "rp-1/base.tar")
	err = validateRestore(e, bi, req)
	wantResponseError(t, err, http.StatusOK, "UserErrorRestoreTargetAlreadyExists")
	_, err = triggerRestore(e, bi, req)
	wantResponseError(t, err, http.StatusOK, "UserErrorRestoreTargetAlreadyExists")
	if !bytes.Equal(az.Read(t, "restores", "rp-1/base.tar"), before) || !slices.Equal(az.Blobs(t, "restores"), blobs) {
		t.Error("the refused restore changed the container")
	}

	// A container ID that names another container is refused at once.
	_, err = triggerRestore(e, bi, filesRestore(rp, sasURL, "rp-2", account+"/blobServices/default/containers/other"))
	wantResponseError(t, err, http.StatusBadRequest, "InvalidPropertyValue")

	// A restore queued by one process runs in the next: the sealed SAS URL
	// opens after a restart.
	e.stopJobs()
	e.stopJobs = func() {}
	queued, err := triggerRestore(e, bi, filesRestore(rp, sasURL, "rp-3", account))
	if err != nil {
		t.Fatalf("restore before a restart: %v", err)
	}
	e.restart()
	checkRestoreJob(t, waitJob(t, e, queued), rp, az.URL+"/restores/rp-3")
	if got := az.Blobs(t, "restores"); !slices.Contains(got, "rp-3/base.tar") || !slices.Contains(got, "rp-3/backup_manifest") {
		t.Errorf("blobs after the restart: %v", got)
	}

	pu, err := url.Parse(sasURL)
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, e, "SAS signature", pu.Query().Get("sig"))
	noSecret(t, e, "SAS token", pu.RawQuery)
	nu, _ := url.Parse(noList)
	noSecret(t, e, "list-less SAS signature", nu.Query().Get("sig"))
}

// TestRestoreToDirectory restores into a file:// directory inside an
// allowed one, and checks the refusals: a directory outside the allowed
// ones, a folder that holds files, and malformed requests are refused with
// the error at the right field, by validateRestore and restore alike,
// recording nothing and writing nothing.
func TestRestoreToDirectory(t *testing.T) {
	t.Parallel()
	allowed, outside := t.TempDir(), t.TempDir()
	src := pgtest.Start(t, pgtest.Options{})
	src.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
	e := &testEnv{t: t, dir: t.TempDir(), restoreDirs: []string{allowed}}
	e.start()
	t.Cleanup(e.stop)
	bi := protected(t, e, src)
	rp := backupNow(t, e, bi)
	want := ltrTableSum(t, src, "t")
	src.Exec(t, "DELETE FROM t WHERE id <= 100")

	good := "file://" + allowed + "/restores"
	if err := validateRestore(e, bi, filesRestore(rp, good, "rp-1", "")); err != nil {
		t.Fatalf("validateRestore: %v", err)
	}
	if _, err := os.Stat(filepath.Join(allowed, "restores")); !os.IsNotExist(err) {
		t.Errorf("validateRestore created the directory: %v", err)
	}
	jobID, err := triggerRestore(e, bi, filesRestore(rp, good, "rp-1", ""))
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	out := filepath.Join(allowed, "restores", "rp-1")
	checkRestoreJob(t, waitJob(t, e, jobID), rp, "file://"+out)
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, en := range entries {
		files = append(files, en.Name())
	}
	if !slices.Equal(files, []string{"backup_manifest", "base.tar"}) {
		t.Fatalf("files %v", files)
	}
	restoreAndCompare(t, out, want)

	// Refusals, synchronous (400, target at the field) or by the operation.
	before := e.snapshot()
	sum := sha256File(t, filepath.Join(out, "base.tar"))
	mutate := func(f func(r *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest)) *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest {
		r := filesRestore(rp, good, "rp-2", "")
		f(r)
		return r
	}
	details := func(r *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest) *armdataprotection.TargetDetails {
		return r.RestoreTargetInfo.(*armdataprotection.RestoreFilesTargetInfo).TargetDetails
	}
	cases := []struct {
		name   string
		req    *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest
		code   string
		target string // relative to the restore request
	}{
		{"outside", filesRestore(rp, "file://"+outside+"/x", "rp-2", ""), "UserErrorRestoreTargetNotAllowed", "restoreTargetInfo.targetDetails.url"},
		{"dotdot", filesRestore(rp, "file://"+allowed+"/../"+filepath.Base(outside), "rp-2", ""), "UserErrorRestoreTargetNotAllowed", "restoreTargetInfo.targetDetails.url"},
		{"not a url", filesRestore(rp, "ftp://x/y", "rp-2", ""), "InvalidRestoreTargetUrl", "restoreTargetInfo.targetDetails.url"},
		{"bad prefix", filesRestore(rp, good, "../escape", ""), "InvalidPropertyValue", "restoreTargetInfo.targetDetails.filePrefix"},
		{"no prefix", filesRestore(rp, good, "", ""), "MissingProperty", "restoreTargetInfo.targetDetails.filePrefix"},
		{"no recovery point", filesRestore("0123456789abcdef0123456789abcdef", good, "rp-2", ""), "ResourceNotFound", "recoveryPointId"},
		{"blob without arm id", filesRestore(rp, "https://acct.blob.core.windows.net/restores?sv=1&sig=abc", "rp-2", ""), "MissingProperty", "restoreTargetInfo.targetDetails.targetResourceArmId"},
		{"store", mutate(func(r *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest) {
			r.SourceDataStoreType = to.Ptr(armdataprotection.SourceDataStoreTypeOperationalStore)
		}), "UserErrorRestoreTypeNotSupported", "sourceDataStoreType"},
		{"option", mutate(func(r *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest) {
			r.RestoreTargetInfo.(*armdataprotection.RestoreFilesTargetInfo).RecoveryOption = to.Ptr(armdataprotection.RecoveryOption("Overwrite"))
		}), "InvalidPropertyValue", "restoreTargetInfo.recoveryOption"},
		{"files", mutate(func(r *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest) {
			details(r).RestoreTargetLocationType = to.Ptr(armdataprotection.RestoreTargetLocationTypeAzureFiles)
		}), "UserErrorRestoreTypeNotSupported", "restoreTargetInfo.targetDetails.restoreTargetLocationType"},
		{"source", mutate(func(r *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest) {
			r.SourceResourceID = to.Ptr(vault.ServerID(testSub, "rg", "other"))
		}), "InvalidPropertyValue", "sourceResourceId"},
		{"item level", mutate(func(r *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest) {
			r.RestoreTargetInfo = &armdataprotection.ItemLevelRestoreTargetInfo{ObjectType: to.Ptr("ItemLevelRestoreTargetInfo"),
				RecoveryOption: to.Ptr(armdataprotection.RecoveryOptionFailIfExists)}
		}), "UserErrorRestoreTypeNotSupported", "restoreTargetInfo.objectType"},
	}
	for _, tc := range cases {
		err := validateRestore(e, bi, tc.req)
		wantResponseError(t, err, statusOf(tc.code), tc.code)
		if got := errorTarget(err); got != "restoreRequestObject."+tc.target {
			t.Errorf("%s: validateRestore target %q", tc.name, got)
		}
		_, err = triggerRestore(e, bi, tc.req)
		wantResponseError(t, err, statusOf(tc.code), tc.code)
		if got := errorTarget(err); got != tc.target {
			t.Errorf("%s: restore target %q", tc.name, got)
		}
	}
	// The folder of the first restore holds files: refused by both.
	err = validateRestore(e, bi, filesRestore(rp, good, "rp-1", ""))
	wantResponseError(t, err, http.StatusOK, "UserErrorRestoreTargetAlreadyExists")
	_, err = triggerRestore(e, bi, filesRestore(rp, good, "rp-1", ""))
	wantResponseError(t, err, http.StatusOK, "UserErrorRestoreTargetAlreadyExists")

	if got := e.snapshot(); got != before {
		t.Errorf("a refused restore changed the store:\n%s\nwant\n%s", got, before)
	}
	if sha256File(t, filepath.Join(out, "base.tar")) != sum {
		t.Error("base.tar was changed")
	}
	if entries, _ := os.ReadDir(filepath.Join(allowed, "restores")); len(entries) != 1 {
		t.Errorf("the restores directory holds %d entries", len(entries))
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("something was written outside: %v", entries)
	}
	// Recovery points by time ($filter, as the Azure CLI sends it).
	point, err := e.dp().NewRecoveryPointsClient().Get(context.Background(), "rg", "vault", bi, rp, nil)
	if err != nil {
		t.Fatal(err)
	}
	rpTime := *point.Properties.(*armdataprotection.AzureBackupDiscreteRecoveryPoint).RecoveryPointTime
	listFiltered := func(filter string) ([]string, error) {
		var names []string
		for p := e.dp().NewRecoveryPointsClient().NewListPager("rg", "vault", bi, &armdataprotection.RecoveryPointsClientListOptions{Filter: to.Ptr(filter)}); p.More(); {
			page, err := p.NextPage(context.Background())
			if err != nil {
				return nil, err
			}
			for _, v := range page.Value {
				names = append(names, *v.Name)
			}
		}
		return names, nil
	}
	odata := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }
	for filter, want := range map[string]int{
		fmt.Sprintf("startDate eq '%s' and endDate eq '%s'", odata(rpTime.Add(-time.Hour)), odata(rpTime.Add(time.Hour))): 1,
		fmt.Sprintf("startDate eq '%s'", odata(rpTime.Add(time.Second))):                                                  0,
		"restorePointState eq 'Completed' and isVisible eq true":                                                          1,
	} {
		if names, err := listFiltered(filter); err != nil || len(names) != want || want == 1 && names[0] != rp {
			t.Errorf("$filter %s: %v %v, want %d", filter, names, err, want)
		}
	}
	_, err = listFiltered("startDate gt '2024-01-01'")
	wantResponseError(t, err, http.StatusBadRequest, "InvalidFilter")

	// Damage in the repository: the job fails with RecoveryPointDataCorrupt
	// and leaves no file behind.
	var pack string
	var size int64
	_ = filepath.Walk(filepath.Join(e.dir, "repositories"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && strings.Contains(p, "/packs/") && fi.Size() > size {
			pack, size = p, fi.Size()
		}
		return err
	})
	if pack == "" {
		t.Fatal("no pack in the repository")
	}
	b, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(pack, b, 0o600); err != nil {
		t.Fatal(err)
	}
	jobID, err = triggerRestore(e, bi, filesRestore(rp, good, "rp-3", ""))
	if err != nil {
		t.Fatalf("restore of damaged data: %v", err)
	}
	failed := waitJob(t, e, jobID)
	if *failed.Status != "Failed" || len(failed.ErrorDetails) != 1 || *failed.ErrorDetails[0].Code != "RecoveryPointDataCorrupt" {
		j, _ := json.Marshal(failed)
		t.Errorf("restore of damaged data: %s", j)
	}
	if entries, _ := os.ReadDir(filepath.Join(allowed, "restores", "rp-3")); len(entries) != 0 {
		t.Errorf("the failed restore left %v", entries)
	}

	// Jobs: the backup and two restores.
	n := 0
	for p := e.dp().NewJobsClient().NewListPager("rg", "vault", nil); p.More(); {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 3 {
		t.Errorf("%d jobs", n)
	}
}

// statusOf is the HTTP status of a refusal: 400 (synchronous) except for
// those the operation finds (the SDK sees them on a 200 status poll) and
// missing resources.
func statusOf(code string) int {
	switch code {
	case "ResourceNotFound":
		return http.StatusNotFound
	case "UserErrorRestoreTargetAlreadyExists", "UserErrorMSIMissingPermissions":
		return http.StatusOK
	}
	return http.StatusBadRequest
}

// errorTarget is the target of the ARM error in an SDK error's response.
func errorTarget(err error) string {
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.RawResponse == nil {
		return ""
	}
	b, _ := io.ReadAll(re.RawResponse.Body)
	var env struct {
		Error struct {
			Target string `json:"target"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &env)
	return env.Error.Target
}
