package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/dataprotection/armdataprotection/v3"
	"github.com/jackc/pgx/v5"

	"github.com/pgvault/pgvault/internal/pgctl"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/vault"
)

// pgvaultExtension is a per-call policy that adds pgvault's extension to
// the restoreTargetInfo of restore requests, as an SDK user sends a field
// the SDK's model does not have.
type pgvaultExtension struct{ ext map[string]any }

func (p pgvaultExtension) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	if raw.Method == http.MethodPost && req.Body() != nil &&
		(strings.HasSuffix(raw.URL.Path, "/restore") || strings.HasSuffix(raw.URL.Path, "/validateRestore")) {
		b, err := io.ReadAll(req.Body())
		if err != nil {
			return nil, err
		}
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, err
		}
		inner := body
		if o, ok := body["restoreRequestObject"].(map[string]any); ok {
			inner = o
		}
		inner["restoreTargetInfo"].(map[string]any)["pgvault"] = p.ext
		b, _ = json.Marshal(body)
		if err := req.SetBody(streaming.NopCloser(bytes.NewReader(b)), "application/json"); err != nil {
			return nil, err
		}
	}
	return req.Next()
}

// dpExt is an SDK client factory whose restore requests carry pgvault's extension.
func (e *testEnv) dpExt(ext map[string]any) *armdataprotection.ClientFactory {
	opts := e.clientOptions()
	opts.PerCallPolicies = append(opts.PerCallPolicies, pgvaultExtension{ext: ext})
	f, err := armdataprotection.NewClientFactory(testSub, staticToken(e.adminToken()), opts)
	if err != nil {
		e.t.Fatalf("creating SDK client factory: %v", err)
	}
	return f
}

// serverRestore is a restore request as a new server.
func serverRestore(rp, newServerID string) *armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest {
	return &armdataprotection.AzureBackupRecoveryPointBasedRestoreRequest{
		ObjectType: to.Ptr("AzureBackupRecoveryPointBasedRestoreRequest"), RecoveryPointID: to.Ptr(rp),
		SourceDataStoreType: to.Ptr(armdataprotection.SourceDataStoreTypeVaultStore),
		RestoreTargetInfo: &armdataprotection.RestoreTargetInfo{ObjectType: to.Ptr("RestoreTargetInfo"),
			RecoveryOption: to.Ptr(armdataprotection.RecoveryOptionFailIfExists), RestoreLocation: to.Ptr("westus"),
			DatasourceInfo: &armdataprotection.Datasource{ResourceID: to.Ptr(newServerID), ObjectType: to.Ptr("Datasource"),
				DatasourceType: to.Ptr(vault.DatasourceType)}},
	}
}

// restoreWith runs validateRestore (when validate) and restore through a
// client factory to the end of their operations; it returns the job ID.
func restoreWith(f *armdataprotection.ClientFactory, bi string, req armdataprotection.AzureBackupRestoreRequestClassification, validate bool) (string, error) {
	if validate {
		if err := validateWith(f, bi, req); err != nil {
			return "", err
		}
	}
	return triggerWith(f, bi, req)
}

// stopWhenDone stops the server of a restored data directory when the test ends.
func stopWhenDone(t *testing.T, installDir string, major int, dataDir string) {
	t.Cleanup(func() {
		bin, err := pgctl.BinDir(installDir, major)
		if err != nil {
			return
		}
		if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); err == nil {
			if err := pgctl.Stop(context.Background(), bin, dataDir); err != nil {
				t.Errorf("stopping the restored server: %v", err)
			}
		}
	})
}

// TestRestoreAsNewServerPG17 restores a PostgreSQL 17 server as a new
// server started with the installation of serve --pg-install-dir.
func TestRestoreAsNewServerPG17(t *testing.T) {
	t.Parallel()
	pgDir, err := pgtest.PGDir()
	if err != nil {
		t.Fatal(err)
	}
	allowed := pgtest.TempDir(t)
	src := pgtest.Start(t, pgtest.Options{Major: 17})
	src.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
	e := &testEnv{t: t, dir: t.TempDir(), restoreDirs: []string{allowed}, pgInstallDir: pgDir}
	e.start()
	t.Cleanup(e.stop)
	bi := protected(t, e, src)
	rp := backupNow(t, e, bi)
	want := ltrTableSum(t, src, "t")
	dataDir, port := filepath.Join(allowed, "pg17-copy"), freeTCPPort(t)
	stopWhenDone(t, pgDir, 17, dataDir)
	newID := vault.ServerID(testSub, "rg", "pg17-copy")
	jobID, err := restoreWith(e.dpExt(map[string]any{"dataDirectory": dataDir, "port": port, "start": true}), bi, serverRestore(rp, newID), false)
	if err != nil {
		t.Fatalf("restore as a new server: %v", err)
	}
	checkRestoreJob(t, waitJob(t, e, jobID), rp, newID)
	srv, err := e.pg().NewServersClient().Get(context.Background(), "rg", "pg17-copy", nil)
	if err != nil || *srv.Properties.State != "Ready" || *srv.Properties.Version != "17" {
		t.Fatalf("restored server: %v %+v", err, srv.Properties)
	}
	conn, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", src.SuperUser, src.SuperPassword, port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var got, version string
	if err := conn.QueryRow(context.Background(), "SELECT md5(string_agg(x::text, ',' ORDER BY id)), current_setting('server_version_num') FROM t x").Scan(&got, &version); err != nil ||
		got != want || !strings.HasPrefix(version, "17") {
		t.Errorf("restored: %s %s %v, want %s", got, version, err, want)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestRestoreAsNewServer restores a recovery point of a server with an
// extra tablespace as a new server on the pgvault host (pgvault's
// extension): started on the given port, it answers with the source's
// credentials and holds the data of backup time, and it is registered as a
// Ready flexibleServers resource that ltrPreBackup accepts (it can be
// protected in turn). A second restore left stopped is registered Stopped.
// A data directory outside the allowed ones, a name taken and a directory
// that holds files are refused, changing nothing.
func TestRestoreAsNewServer(t *testing.T) {
	t.Parallel()
	allowed := pgtest.TempDir(t) // the postgres OS user can reach it
	src, tsOID := sourceWithTablespace(t, 5000)
	e := &testEnv{t: t, dir: t.TempDir(), restoreDirs: []string{allowed}}
	e.start()
	t.Cleanup(e.stop)
	bi := protected(t, e, src)
	rp := backupNow(t, e, bi)
	want, want2 := ltrTableSum(t, src, "t"), ltrTableSum(t, src, "t2")
	src.Exec(t, "UPDATE t SET v = 'changed' WHERE id < 10; DROP TABLE t2")
	ctx := context.Background()

	dataDir := filepath.Join(allowed, "db1-restored")
	port := freeTCPPort(t)
	newID := vault.ServerID(testSub, "rg", "db1-restored")
	stopWhenDone(t, "", 15, dataDir)
	f := e.dpExt(map[string]any{"dataDirectory": dataDir, "port": port, "start": true})
	jobID, err := restoreWith(f, bi, serverRestore(rp, newID), true)
	if err != nil {
		t.Fatalf("restore as a new server: %v", err)
	}
	job := waitJob(t, e, jobID)
	checkRestoreJob(t, job, rp, newID)
	if got := job.ExtendedInfo.AdditionalDetails["ServerId"]; got == nil || *got != newID {
		t.Errorf("job's ServerId %v", got)
	}

	// The new server answers with the source's credentials and holds the data of backup time.
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", src.SuperUser, src.SuperPassword, port))
	if err != nil {
		t.Fatalf("connecting to the restored server: %v", err)
	}
	defer conn.Close(ctx)
	for table, w := range map[string]string{"t": want, "t2": want2} {
		var got string
		if err := conn.QueryRow(ctx, "SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM "+table+" x").Scan(&got); err != nil || got != w {
			t.Errorf("restored table %s: %q %v, want %s", table, got, err, w)
		}
	}
	var loc string
	if err := conn.QueryRow(ctx, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'extra'").Scan(&loc); err != nil ||
		loc != filepath.Join(allowed, "db1-restored-tablespaces", tsOID) {
		t.Errorf("tablespace location %q %v", loc, err)
	}

	srv, err := e.pg().NewServersClient().Get(ctx, "rg", "db1-restored", nil)
	if err != nil {
		t.Fatalf("the restored server is not registered: %v", err)
	}
	if p := srv.Properties; p == nil || p.State == nil || *p.State != "Ready" || *p.FullyQualifiedDomainName != "127.0.0.1" ||
		*p.AdministratorLogin != src.SuperUser || p.Version == nil || *p.Version != "15" {
		b, _ := json.Marshal(srv)
		t.Errorf("restored server: %s", b)
	}
	if tag := srv.Tags["pgvault-restored-from"]; tag == nil || *tag != vault.BackupInstanceID(testSub, "rg", "vault", bi)+"/recoveryPoints/"+rp {
		t.Errorf("restored server's tag %v", tag)
	}
	// It is protected and backed up in turn.
	bi2 := protectServer(t, e, newID, vault.VaultID(testSub, "rg", "vault")+"/backupPolicies/pol", "db1-restored-bi", 7)
	if rp2 := backupNow(t, e, bi2); rp2 == "" || rp2 == rp {
		t.Errorf("backup of the restored server: %q", rp2)
	}

	// Refusals: nothing recorded, nothing written.
	before := e.snapshot()
	outside := t.TempDir()
	cases := []struct {
		name, target, code string
		ext                map[string]any
		id                 string
	}{
		{"outside", "restoreTargetInfo.pgvault.dataDirectory", "UserErrorRestoreTargetNotAllowed",
			map[string]any{"dataDirectory": filepath.Join(outside, "d"), "port": port}, vault.ServerID(testSub, "rg", "db1-other")},
		{"the allowed dir itself", "restoreTargetInfo.pgvault.dataDirectory", "UserErrorRestoreTargetNotAllowed",
			map[string]any{"dataDirectory": allowed, "port": port}, vault.ServerID(testSub, "rg", "db1-other")},
		{"no port", "restoreTargetInfo.pgvault.port", "InvalidPropertyValue",
			map[string]any{"dataDirectory": filepath.Join(allowed, "d"), "port": 0}, vault.ServerID(testSub, "rg", "db1-other")},
		{"no extension", "restoreTargetInfo.pgvault.dataDirectory", "MissingProperty", nil, vault.ServerID(testSub, "rg", "db1-other")},
		{"name taken", "restoreTargetInfo.datasourceInfo.resourceID", "UserErrorRestoreTargetAlreadyExists",
			map[string]any{"dataDirectory": filepath.Join(allowed, "d"), "port": port}, newID},
		{"bad id", "restoreTargetInfo.datasourceInfo.resourceID", "InvalidPropertyValue",
			map[string]any{"dataDirectory": filepath.Join(allowed, "d"), "port": port}, "/subscriptions/x/resourceGroups/rg"},
	}
	for _, tc := range cases {
		_, err := restoreWith(e.dpExt(tc.ext), bi, serverRestore(rp, tc.id), false)
		status := http.StatusBadRequest
		if tc.code == "UserErrorRestoreTargetAlreadyExists" {
			status = http.StatusConflict
		}
		wantResponseError(t, err, status, tc.code)
		if got := errorTarget(err); got != tc.target {
			t.Errorf("%s: target %q, want %q", tc.name, got, tc.target)
		}
	}
	// A caller who may restore but not create servers is refused.
	operator := e.principalWithRole(t, "restore-operator", vault.VaultID(testSub, "rg", "vault"), "Backup Operator")
	body := fmt.Sprintf(`{"objectType":"AzureBackupRecoveryPointBasedRestoreRequest","recoveryPointId":%q,"sourceDataStoreType":"VaultStore",
		"restoreTargetInfo":{"objectType":"RestoreTargetInfo","recoveryOption":"FailIfExists","datasourceInfo":{"resourceID":%q},
		"pgvault":{"dataDirectory":%q,"port":%d}}}`, rp, vault.ServerID(testSub, "rg", "db1-op"), filepath.Join(allowed, "op"), port)
	r := e.doAs(operator, http.MethodPost, "/subscriptions/"+testSub+"/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/vault/backupInstances/"+bi+"/restore?api-version=2024-04-01", body, false)
	if code, _ := r.armError(t); r.Status != http.StatusForbidden || code != "AuthorizationFailed" || !strings.Contains(string(r.Body), "flexibleServers/write") {
		t.Errorf("restore as a new server without flexibleServers/write: %d %s", r.Status, r.Body)
	}

	// A data directory that holds files: the operation refuses it.
	busy := filepath.Join(allowed, "busy")
	if err := os.MkdirAll(busy, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(busy, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = restoreWith(e.dpExt(map[string]any{"dataDirectory": busy, "port": port}), bi, serverRestore(rp, vault.ServerID(testSub, "rg", "db1-busy")), true)
	wantResponseError(t, err, http.StatusOK, "UserErrorRestoreTargetAlreadyExists")
	if got := e.snapshot(); got != before {
		t.Errorf("a refused restore changed the store")
	}
	if entries, _ := os.ReadDir(busy); len(entries) != 1 {
		t.Errorf("the busy directory holds %d entries", len(entries))
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("something was written outside: %v", entries)
	}

	// Restored and left stopped: registered Stopped.
	stoppedDir := filepath.Join(allowed, "db1-cold")
	jobID, err = restoreWith(e.dpExt(map[string]any{"dataDirectory": stoppedDir, "port": freeTCPPort(t)}), bi,
		serverRestore(rp, vault.ServerID(testSub, "rg", "db1-cold")), false)
	if err != nil {
		t.Fatalf("restore left stopped: %v", err)
	}
	checkRestoreJob(t, waitJob(t, e, jobID), rp, vault.ServerID(testSub, "rg", "db1-cold"))
	cold, err := e.pg().NewServersClient().Get(ctx, "rg", "db1-cold", nil)
	if err != nil || cold.Properties.State == nil || *cold.Properties.State != "Stopped" {
		t.Errorf("server left stopped: %v %+v", err, cold.Properties)
	}
	if _, err := os.Stat(filepath.Join(stoppedDir, "PG_VERSION")); err != nil {
		t.Errorf("the stopped server's data directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(stoppedDir, "postmaster.pid")); err == nil {
		t.Error("the server left stopped runs")
	}
}
