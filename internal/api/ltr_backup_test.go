package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pgvault/pgvault/internal/auth"
	"github.com/pgvault/pgvault/internal/azuritetest"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/vault"
)

// pgVerifyBackup is Debian's PostgreSQL 15 pg_verifybackup.
const pgVerifyBackup = "/usr/lib/postgresql/15/bin/pg_verifybackup"

const pgVersion = "?api-version=2024-08-01"

// capturingTransport copies every response the SDK receives into the
// environment's bodies, for leak checks.
type capturingTransport struct {
	base policy.Transporter
	e    *testEnv
}

func (c capturingTransport) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.base.Do(req)
	if err != nil {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(&c.e.bodies, "%v\n%s\n", resp.Header, b)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// pgCapture is e.pg() whose responses are also kept in e.bodies.
func (e *testEnv) pgCapture() *armpostgresqlflexibleservers.ClientFactory {
	opts := e.clientOptions()
	opts.Transport = capturingTransport{base: opts.Transport, e: e}
	f, err := armpostgresqlflexibleservers.NewClientFactory(testSub, staticToken(e.adminToken()), opts)
	if err != nil {
		e.t.Fatalf("creating SDK client factory: %v", err)
	}
	return f
}

func ltrRequest(name string, uris ...string) armpostgresqlflexibleservers.LtrBackupRequest {
	list := []*string{}
	for _, u := range uris {
		list = append(list, to.Ptr(u))
	}
	return armpostgresqlflexibleservers.LtrBackupRequest{
		BackupSettings: &armpostgresqlflexibleservers.BackupSettings{BackupName: to.Ptr(name)},
		TargetDetails:  &armpostgresqlflexibleservers.BackupStoreDetails{SasURIList: list},
	}
}

// ltrBackup runs startLtrBackup through the official client to its end.
func ltrBackup(t *testing.T, f *armpostgresqlflexibleservers.ClientFactory, server, name string, uris ...string) (*armpostgresqlflexibleservers.LtrBackupResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	poller, err := f.NewFlexibleServerClient().BeginStartLtrBackup(ctx, "rg", server, ltrRequest(name, uris...), nil)
	if err != nil {
		return nil, err
	}
	res, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	return &res.LtrBackupResponse, nil
}

// ltrMetadata is the backupMetadata document.
type ltrMetadata struct {
	Format           string `json:"format"`
	ServerVersion    string `json:"serverVersion"`
	ServerVersionNum int    `json:"serverVersionNum"`
	SystemIdentifier string `json:"systemIdentifier"`
	StartLSN         string `json:"startLsn"`
	EndLSN           string `json:"endLsn"`
	Timeline         int    `json:"timeline"`
	WALIncluded      bool   `json:"walIncluded"`
	Archives         []struct {
		Name          string `json:"name"`
		TablespaceOID uint32 `json:"tablespaceOid"`
		Container     int    `json:"container"`
		Location      string `json:"location"`
		Bytes         int64  `json:"bytes"`
		SHA256        string `json:"sha256"`
	} `json:"archives"`
}

// checkSucceeded checks a finished backup's properties and returns its metadata.
func checkSucceeded(t *testing.T, p *armpostgresqlflexibleservers.LtrBackupOperationResponseProperties, name string, src *pgtest.Cluster) *ltrMetadata {
	t.Helper()
	if p == nil || p.Status == nil || *p.Status != armpostgresqlflexibleservers.ExecutionStatusSucceeded {
		b, _ := json.Marshal(p)
		t.Fatalf("backup %s: %s", name, b)
	}
	if *p.BackupName != name || p.StartTime == nil || p.EndTime == nil || p.EndTime.Before(*p.StartTime) ||
		*p.PercentComplete != 100 || *p.DataTransferredInBytes < 1<<20 || *p.DatasourceSizeInBytes < 1<<20 || p.ErrorCode != nil {
		b, _ := json.Marshal(p)
		t.Errorf("properties of %s: %s", name, b)
	}
	var md ltrMetadata
	if err := json.Unmarshal([]byte(*p.BackupMetadata), &md); err != nil {
		t.Fatalf("backupMetadata %q: %v", *p.BackupMetadata, err)
	}
	if md.Format != vault.LtrMetadataFormat || !md.WALIncluded || md.Timeline != 1 || md.StartLSN == "" || md.EndLSN == "" ||
		fmt.Sprint(md.ServerVersionNum) != src.QueryString(t, "SHOW server_version_num") ||
		md.SystemIdentifier != src.QueryString(t, "SELECT system_identifier FROM pg_control_system()") ||
		!strings.HasPrefix(md.ServerVersion, "15.") {
		t.Errorf("metadata %s", *p.BackupMetadata)
	}
	var total int64
	for _, a := range md.Archives {
		total += a.Bytes
	}
	if total != *p.DataTransferredInBytes {
		t.Errorf("archives hold %d bytes, dataTransferredInBytes %d", total, *p.DataTransferredInBytes)
	}
	return &md
}

func ltrTableSum(t *testing.T, c *pgtest.Cluster, table string) string {
	t.Helper()
	return c.QueryString(t, "SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM "+table+" x")
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// verifyBackup runs pg_verifybackup on a restored data directory.
func verifyBackup(t *testing.T, dataDir string) {
	t.Helper()
	if _, err := os.Stat(pgVerifyBackup); err != nil {
		t.Fatalf("pg_verifybackup: %v (install postgresql-15)", err)
	}
	out, err := exec.Command(pgVerifyBackup, dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_verifybackup: %v\n%s", err, out)
	}
	t.Logf("pg_verifybackup: %s", bytes.TrimSpace(out))
}

func copyTo(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// noSecret fails when secret appears in the logs, the responses or the
// metadata database.
func noSecret(t *testing.T, e *testEnv, what, secret string) {
	t.Helper()
	if !strings.Contains(e.logs.String(), "status=") || e.bodies.String() == "" {
		t.Fatal("nothing was logged or captured: the check would prove nothing")
	}
	for _, variant := range []string{secret, url.QueryEscape(secret)} {
		if strings.Contains(e.logs.String(), variant) {
			t.Errorf("the %s appears in the logs", what)
		}
		if strings.Contains(e.bodies.String(), variant) {
			t.Errorf("the %s appears in a response", what)
		}
		files, _ := filepath.Glob(filepath.Join(e.dir, "pgvault.db*"))
		if len(files) == 0 {
			t.Fatal("no metadata database files")
		}
		for _, f := range files {
			if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(variant)) {
				t.Errorf("the %s is stored in clear in %s", what, filepath.Base(f))
			}
		}
	}
}

// TestLtrBackupToBlobContainer backs a PostgreSQL 15 server up through the
// official SDK client into an Azurite container, restores the blobs into a
// new cluster and compares its data with the source. A second backup into
// the same container and one into a missing container fail, and no SAS
// token appears in a log, a response or the metadata database.
func TestLtrBackupToBlobContainer(t *testing.T) {
	t.Parallel()
	src := pgtest.Start(t, pgtest.Options{})
	src.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
	az := azuritetest.Start(t)
	az.CreateContainer(t, "ltr")
	sasURL := az.ContainerSASURL(t, "ltr")
	e := newEnv(t)
	e.createGroup("rg")
	registerServer(t, e, "rg", "db1", src, src.SuperUser, src.SuperPassword)
	ctx := context.Background()
	f := e.pgCapture()

	pre, err := preBackup(e, "rg", "db1", "ltr-1")
	if err != nil || *pre.Properties.NumberOfContainers != 1 {
		t.Fatalf("ltrPreBackup: %v", err)
	}
	began := time.Now()
	res, err := ltrBackup(t, f, "db1", "ltr-1", sasURL)
	if err != nil {
		t.Fatalf("startLtrBackup: %v", err)
	}
	t.Logf("backup to Azurite in %s", time.Since(began).Round(time.Millisecond))
	want := ltrTableSum(t, src, "t")
	md := checkSucceeded(t, res.Properties, "ltr-1", src)

	got, err := f.NewLtrBackupOperationsClient().Get(ctx, "rg", "db1", "ltr-1", nil)
	if err != nil || *got.Name != "ltr-1" || *got.Properties.Status != armpostgresqlflexibleservers.ExecutionStatusSucceeded ||
		*got.Properties.BackupMetadata != *res.Properties.BackupMetadata || !strings.HasSuffix(*got.ID, "/flexibleServers/db1/ltrBackupOperations/ltr-1") {
		t.Errorf("get: %v %+v", err, got)
	}

	// The blobs, named as pg_basebackup -Ft names its files.
	if blobs := az.Blobs(t, "ltr"); !slices.Equal(blobs, []string{"backup_manifest", "base.tar"}) {
		t.Fatalf("blobs %v", blobs)
	}
	dl := t.TempDir()
	for _, a := range md.Archives {
		if a.Container != 0 || a.Location != az.URL+"/ltr" {
			t.Errorf("archive %+v", a)
		}
		az.Download(t, "ltr", a.Name, filepath.Join(dl, a.Name))
		if s := sha256File(t, filepath.Join(dl, a.Name)); s != a.SHA256 {
			t.Errorf("%s: sha256 %s, metadata %s", a.Name, s, a.SHA256)
		}
	}
	if len(md.Archives) != 2 || md.Archives[0].Name != "base.tar" || md.Archives[1].Name != "backup_manifest" {
		t.Errorf("archives %+v", md.Archives)
	}

	// Restore: extract, verify, start, compare.
	dataDir := filepath.Join(pgtest.TempDir(t), "data")
	pgtest.ExtractTar(t, filepath.Join(dl, "base.tar"), dataDir)
	copyTo(t, filepath.Join(dl, "backup_manifest"), filepath.Join(dataDir, "backup_manifest"))
	verifyBackup(t, dataDir)
	dst := pgtest.StartExisting(t, dataDir, pgtest.Options{})
	if got := ltrTableSum(t, dst, "t"); got != want {
		t.Errorf("restored table: checksum %s, source %s", got, want)
	}

	// The container holds a backup already: refused, nothing replaced.
	before := az.Read(t, "ltr", "base.tar")
	_, err = ltrBackup(t, f, "db1", "ltr-2", sasURL)
	wantResponseError(t, err, http.StatusOK, "LtrBackupTargetNotEmpty")
	if !bytes.Equal(az.Read(t, "ltr", "base.tar"), before) {
		t.Error("base.tar was replaced")
	}
	failed, err := f.NewLtrBackupOperationsClient().Get(ctx, "rg", "db1", "ltr-2", nil)
	if err != nil || *failed.Properties.Status != armpostgresqlflexibleservers.ExecutionStatusFailed ||
		failed.Properties.ErrorCode == nil || *failed.Properties.ErrorCode != "LtrBackupTargetNotEmpty" || failed.Properties.EndTime == nil {
		t.Errorf("failed backup: %v %+v", err, failed.Properties)
	}

	// A container that does not exist: the job fails with the service's answer.
	missing := az.ContainerSASURL(t, "nosuchcontainer")
	_, err = ltrBackup(t, f, "db1", "ltr-3", missing)
	wantResponseError(t, err, http.StatusOK, "LtrBackupTargetWriteFailed")
	m, _ := f.NewLtrBackupOperationsClient().Get(ctx, "rg", "db1", "ltr-3", nil)
	if m.Properties == nil || m.Properties.ErrorMessage == nil || !strings.Contains(*m.Properties.ErrorMessage, "ContainerNotFound") {
		t.Errorf("missing container: %+v", m.Properties)
	}
	if !strings.Contains(e.logs.String(), "ContainerNotFound") {
		t.Error("the failed job was not logged with its cause")
	}

	// The list, through the pager.
	var names []string
	for p := f.NewLtrBackupOperationsClient().NewListByServerPager("rg", "db1", nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range page.Value {
			names = append(names, *op.Name)
		}
	}
	if !slices.Equal(names, []string{"ltr-1", "ltr-2", "ltr-3"}) {
		t.Errorf("listed %v", names)
	}

	for i, u := range []string{sasURL, missing} {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		noSecret(t, e, fmt.Sprintf("SAS signature %d", i), pu.Query().Get("sig"))
		noSecret(t, e, fmt.Sprintf("SAS token %d", i), pu.RawQuery)
	}
}

// TestLtrBackupToDirectory backs a server with an extra tablespace up into a
// file:// directory inside an allowed one, checks the files with
// pg_verifybackup and restores them; a second backup into the same
// directory is refused without touching the files.
func TestLtrBackupToDirectory(t *testing.T) {
	t.Parallel()
	allowed := t.TempDir()
	src, tsOID := sourceWithTablespace(t, 10000)
	e := &testEnv{t: t, dir: t.TempDir(), ltrDirs: []string{allowed}}
	e.start()
	t.Cleanup(e.stop)
	e.createGroup("rg")
	registerServer(t, e, "rg", "db1", src, src.SuperUser, src.SuperPassword)
	f := e.pgCapture()

	out := filepath.Join(allowed, "db1", "ltr-1")
	res, err := ltrBackup(t, f, "db1", "ltr-1", "file://"+out)
	if err != nil {
		t.Fatalf("startLtrBackup: %v", err)
	}
	want, want2 := ltrTableSum(t, src, "t"), ltrTableSum(t, src, "t2")
	md := checkSucceeded(t, res.Properties, "ltr-1", src)
	var names []string
	for _, a := range md.Archives {
		names = append(names, a.Name)
		if a.Container != 0 || a.Location != "file://"+out {
			t.Errorf("archive %+v", a)
		}
		if s := sha256File(t, filepath.Join(out, a.Name)); s != a.SHA256 {
			t.Errorf("%s: sha256 %s, metadata %s", a.Name, s, a.SHA256)
		}
		if (a.Name == tsOID+".tar") != (fmt.Sprint(a.TablespaceOID) == tsOID) {
			t.Errorf("archive %s: tablespace %d", a.Name, a.TablespaceOID)
		}
	}
	if !slices.Equal(names, []string{tsOID + ".tar", "base.tar", "backup_manifest"}) {
		t.Errorf("archives %v", names)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, en := range entries {
		files = append(files, en.Name())
		if fi, _ := en.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", en.Name(), fi.Mode())
		}
	}
	if !slices.Equal(files, []string{tsOID + ".tar", "backup_manifest", "base.tar"}) {
		t.Errorf("files %v", files)
	}

	// Restore the tablespace elsewhere, as pg_basebackup's tar format allows.
	restore := pgtest.TempDir(t)
	dataDir, tsNew := filepath.Join(restore, "data"), filepath.Join(restore, "ts")
	pgtest.ExtractTar(t, filepath.Join(out, "base.tar"), dataDir)
	pgtest.ExtractTar(t, filepath.Join(out, tsOID+".tar"), tsNew)
	link := filepath.Join(dataDir, "pg_tblspc", tsOID)
	_ = os.Remove(link)
	if err := os.Symlink(tsNew, link); err != nil {
		t.Fatal(err)
	}
	copyTo(t, filepath.Join(out, "backup_manifest"), filepath.Join(dataDir, "backup_manifest"))
	verifyBackup(t, dataDir)
	if err := os.WriteFile(filepath.Join(dataDir, "tablespace_map"), []byte(tsOID+" "+tsNew+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := pgtest.StartExisting(t, dataDir, pgtest.Options{})
	if got, got2 := ltrTableSum(t, dst, "t"), ltrTableSum(t, dst, "t2"); got != want || got2 != want2 {
		t.Errorf("restored tables: %s %s, source %s %s", got, got2, want, want2)
	}

	// The directory holds a backup: refused, files untouched.
	sum := sha256File(t, filepath.Join(out, "base.tar"))
	_, err = ltrBackup(t, f, "db1", "ltr-2", "file://"+out)
	wantResponseError(t, err, http.StatusOK, "LtrBackupTargetNotEmpty")
	if sha256File(t, filepath.Join(out, "base.tar")) != sum {
		t.Error("base.tar was changed")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 3 {
		t.Errorf("the directory now holds %d entries", len(entries))
	}
}

// TestLtrBackupRefusals: bad targets and conflicts are refused before
// anything starts; while a backup is queued (no worker runs), the server
// is busy; the polling URLs answer, for a principal with the LTR role on
// the server only; then the backup runs and succeeds.
func TestLtrBackupRefusals(t *testing.T) {
	t.Parallel()
	allowed, outside := t.TempDir(), t.TempDir()
	c := pgtest.Start(t, pgtest.Options{})
	e := &testEnv{t: t, dir: t.TempDir(), ltrDirs: []string{allowed}, noRunner: true}
	e.start()
	t.Cleanup(e.stop)
	e.createGroup("rg")
	srv := registerServer(t, e, "rg", "db1", c, c.SuperUser, c.SuperPassword)
	ctx := context.Background()
	f := e.pgCapture()
	servers := f.NewFlexibleServerClient()
	const secret = "c2VjcmV0LXNpZ25hdHVyZS1jYW5hcnk%3D"
	good := "file://" + allowed + "/db1"
	cases := []struct {
		name   string
		req    armpostgresqlflexibleservers.LtrBackupRequest
		status int
		code   string
	}{
		{"outside", ltrRequest("b1", "file://"+outside), 400, "LtrLocalTargetNotAllowed"},
		{"dotdot", ltrRequest("b1", "file://"+allowed+"/../x"), 400, "LtrLocalTargetNotAllowed"},
		{"two", ltrRequest("b1", good, good+"2"), 400, "InvalidSasUriCount"},
		{"none", ltrRequest("b1"), 400, "InvalidSasUriCount"},
		{"plain http", ltrRequest("b1", "http://acct.blob.core.windows.net/c1?sv=2024-08-04&sp=cw&sig="+secret), 400, "InvalidSasUri"},
		{"no sas", ltrRequest("b1", "https://acct.blob.core.windows.net/c1"), 400, "InvalidSasUri"},
		{"ftp", ltrRequest("b1", "ftp://acct/c1?sig="+secret), 400, "InvalidSasUri"},
		{"bad name", ltrRequest("not_valid!", good), 400, "InvalidBackupName"},
		{"no targets", armpostgresqlflexibleservers.LtrBackupRequest{BackupSettings: &armpostgresqlflexibleservers.BackupSettings{BackupName: to.Ptr("b1")}}, 400, "MissingProperty"},
	}
	for _, tc := range cases {
		_, err := servers.BeginStartLtrBackup(ctx, "rg", "db1", tc.req, nil)
		t.Run(tc.name, func(t *testing.T) { wantResponseError(t, err, tc.status, tc.code) })
	}
	_, err := servers.BeginStartLtrBackup(ctx, "rg", "nosuchserver", ltrRequest("b1", good), nil)
	wantResponseError(t, err, http.StatusNotFound, "ResourceNotFound")
	// Nothing started.
	if r := e.do("GET", *srv.ID+"/ltrBackupOperations"+pgVersion, nil); r.Status != 200 || !strings.Contains(string(r.Body), `"value":[]`) {
		t.Errorf("list after refusals: %d %s", r.Status, r.Body)
	}
	if js, err := e.store.JobList(ctx, store.JobListParams{}); err != nil || len(js) != 0 {
		t.Errorf("jobs after refusals: %d %v", len(js), err)
	}
	if entries, _ := os.ReadDir(allowed); len(entries) != 0 {
		t.Errorf("the allowed directory holds %d entries", len(entries))
	}

	// A principal with the LTR role on the server (as a backup vault's
	// identity has) starts the backup and polls it; one without is denied.
	ltrSP := e.principalWithRole(t, "ltr-sp", *srv.ID, "PostgreSQL Flexible Server Long Term Retention Backup Role")
	blobSP := e.principalWithRole(t, "blob-sp", "/subscriptions/"+testSub, "Storage Blob Data Contributor")
	start := *srv.ID + "/startLtrBackup" + pgVersion
	body := `{"backupSettings":{"backupName":"ltr-1"},"targetDetails":{"sasUriList":["` + good + `"]}}`
	if r := e.doAs(blobSP, "POST", start, body, false); r.Status != http.StatusForbidden {
		t.Errorf("start without the role: %d %s", r.Status, r.Body)
	}
	r := e.doAs(ltrSP, "POST", start, body, false)
	if r.Status != http.StatusAccepted || len(r.Body) != 0 || r.Header.Get("Retry-After") == "" || r.Header.Get("x-ms-request-id") == "" {
		t.Fatalf("start: %d %v %s", r.Status, r.Header, r.Body)
	}
	statusURL, resultURL := r.Header.Get("Azure-AsyncOperation"), r.Header.Get("Location")
	wantPrefix := e.URL + "/subscriptions/" + testSub + "/providers/Microsoft.DBforPostgreSQL/locations/westus/"
	if !strings.HasPrefix(statusURL, wantPrefix+"azureAsyncOperation/") || !strings.HasPrefix(resultURL, wantPrefix+"operationResults/") ||
		!strings.HasSuffix(statusURL, pgVersion) || !strings.HasSuffix(resultURL, pgVersion) {
		t.Errorf("polling URLs %s, %s", statusURL, resultURL)
	}
	get := func(who, u string) *response {
		return e.doAs(who, "GET", strings.TrimPrefix(u, e.URL), nil, false)
	}
	if r := get(ltrSP, statusURL); r.Status != 200 || !strings.Contains(string(r.Body), `"status":"InProgress"`) {
		t.Errorf("status while queued: %d %s", r.Status, r.Body)
	}
	if r := get(ltrSP, resultURL); r.Status != http.StatusAccepted || r.Header.Get("Location") != resultURL ||
		r.Header.Get("Azure-AsyncOperation") != statusURL {
		t.Errorf("result while queued: %d %v", r.Status, r.Header)
	}
	if r := get(blobSP, statusURL); r.Status != http.StatusForbidden {
		t.Errorf("status without the role: %d", r.Status)
	}
	// The operation is not served by Microsoft.DataProtection's endpoints.
	dpStatus := strings.Replace(strings.Replace(statusURL, "Microsoft.DBforPostgreSQL", "Microsoft.DataProtection", 1), "azureAsyncOperation", "operationStatus", 1)
	if r := get("Bearer "+e.adminToken(), strings.Replace(dpStatus, pgVersion, dpVersion, 1)); r.Status != http.StatusNotFound {
		t.Errorf("DataProtection status of an LTR operation: %d", r.Status)
	}

	// While it is queued: the same name is taken, the server is busy.
	_, err = servers.BeginStartLtrBackup(ctx, "rg", "db1", ltrRequest("ltr-1", good), nil)
	wantResponseError(t, err, http.StatusConflict, "LtrBackupNameAlreadyExists")
	_, err = servers.BeginStartLtrBackup(ctx, "rg", "db1", ltrRequest("ltr-2", "file://"+allowed+"/other"), nil)
	wantResponseError(t, err, http.StatusConflict, "LtrBackupInProgress")
	_, err = preBackup(e, "rg", "db1", "ltr-2")
	wantResponseError(t, err, http.StatusConflict, "LtrBackupInProgress")
	running, err := f.NewLtrBackupOperationsClient().Get(ctx, "rg", "db1", "ltr-1", nil)
	if err != nil || *running.Properties.Status != armpostgresqlflexibleservers.ExecutionStatusRunning || running.Properties.EndTime != nil ||
		*running.Properties.DatasourceSizeInBytes <= 0 || *running.Properties.PercentComplete != 0 {
		t.Errorf("running backup: %v %+v", err, running.Properties)
	}

	// The worker runs it.
	e.startJobs()
	waitFor(t, "the backup", func() bool {
		return strings.Contains(string(get(ltrSP, statusURL).Body), `"status":"Succeeded"`)
	})
	r = get(ltrSP, resultURL)
	var final struct {
		Properties *vault.LtrBackupProperties `json:"properties"`
	}
	if err := json.Unmarshal(r.Body, &final); r.Status != 200 || err != nil || final.Properties == nil ||
		final.Properties.Status != "Succeeded" || final.Properties.BackupName != "ltr-1" || final.Properties.BackupMetadata == "" {
		t.Errorf("result: %d %s", r.Status, r.Body)
	}
	if r := get(ltrSP, *srv.ID+"/ltrBackupOperations/ltr-1"+pgVersion); r.Status != 200 || !strings.Contains(string(r.Body), `"status":"Succeeded"`) {
		t.Errorf("get as the LTR principal: %d %s", r.Status, r.Body)
	}
	if _, err := os.Stat(filepath.Join(allowed, "db1", "base.tar")); err != nil {
		t.Error(err)
	}
	// Done: the name stays taken, another backup may start.
	_, err = preBackup(e, "rg", "db1", "ltr-1")
	wantResponseError(t, err, http.StatusConflict, "LtrBackupNameAlreadyExists")
	if _, err := preBackup(e, "rg", "db1", "ltr-2"); err != nil {
		t.Errorf("ltrPreBackup after the backup: %v", err)
	}
	noSecret(t, e, "SAS signature of a refused URI", secret)
}

// principalWithRole makes a service principal with a built-in role at scope
// and returns its Authorization header.
func (e *testEnv) principalWithRole(t *testing.T, name, scope, role string) string {
	t.Helper()
	ctx := context.Background()
	sp, _, err := e.svc.PutServicePrincipal(ctx, name, strings.Repeat("k", 48), true)
	if err != nil {
		t.Fatal(err)
	}
	def, ok := auth.RoleByName(role)
	if !ok {
		t.Fatalf("no role %q", role)
	}
	if _, _, err := e.svc.PutRoleAssignment(ctx, scope, arm4(name), vault.RoleAssignmentProperties{
		RoleDefinitionID: vault.RoleDefinitionID(scope, def.ID), PrincipalID: sp.Properties.ObjectID,
	}, vault.Principal{}); err != nil {
		t.Fatal(err)
	}
	return "Bearer " + e.token(sp.Properties.ObjectID, sp.Properties.ClientID)
}

// TestLtrBackupSurvivesRestart: a backup queued before pgvault restarts
// runs after it (the sealed SAS URL opens with the same secrets key), and
// its operation, resumed, reports the outcome.
func TestLtrBackupSurvivesRestart(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{})
	az := azuritetest.Start(t)
	az.CreateContainer(t, "ltr")
	e := &testEnv{t: t, dir: t.TempDir(), noRunner: true}
	e.start()
	t.Cleanup(e.stop)
	e.createGroup("rg")
	srv := registerServer(t, e, "rg", "db1", c, c.SuperUser, c.SuperPassword)
	body, _ := json.Marshal(ltrRequest("ltr-1", az.ContainerSASURL(t, "ltr")))
	r := e.do("POST", *srv.ID+"/startLtrBackup"+pgVersion, body)
	if r.Status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	statusPath := strings.TrimPrefix(r.Header.Get("Azure-AsyncOperation"), e.URL)
	resultPath := strings.TrimPrefix(r.Header.Get("Location"), e.URL)

	e.restart()
	if r := e.do("GET", statusPath, nil); r.Status != 200 || !strings.Contains(string(r.Body), `"status":"InProgress"`) {
		t.Fatalf("status after restart: %d %s", r.Status, r.Body)
	}
	e.startJobs()
	waitFor(t, "the backup", func() bool {
		return !strings.Contains(string(e.do("GET", statusPath, nil).Body), `"status":"InProgress"`)
	})
	r = e.do("GET", resultPath, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"status":"Succeeded"`) {
		t.Fatalf("result: %d %s", r.Status, r.Body)
	}
	if blobs := az.Blobs(t, "ltr"); !slices.Equal(blobs, []string{"backup_manifest", "base.tar"}) {
		t.Errorf("blobs %v", blobs)
	}
}

// sourceWithTablespace starts a PostgreSQL 15 server holding table t (20000
// rows) and table t2 (rows rows) in tablespace extra, and returns it and the
// tablespace's OID.
func sourceWithTablespace(t *testing.T, rows int) (src *pgtest.Cluster, tsOID string) {
	t.Helper()
	src = pgtest.Start(t, pgtest.Options{})
	tsDir := pgtest.TempDir(t)
	src.Exec(t, "CREATE TABLESPACE extra LOCATION '"+tsDir+"'")
	src.Exec(t, fmt.Sprintf(`CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
		CREATE TABLE t2 (id int PRIMARY KEY, v text) TABLESPACE extra; INSERT INTO t2 SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, %d) g;`, rows))
	return src, src.QueryString(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'extra'")
}
