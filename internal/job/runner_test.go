package job_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/job"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/secretbox"
	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/faulty"
	"github.com/pgvault/pgvault/internal/storage/fs"
	"github.com/pgvault/pgvault/internal/testserver"
	"github.com/pgvault/pgvault/internal/vault"
)

const (
	sub = "5d3b1c4e-7f0a-4b2c-9d8e-1a2b3c4d5e6f"
	api = client.APIVersionDataProtection
)

// env is a testserver with a job worker whose repositories sit on faulty
// storage, and a protected PostgreSQL 15 server.
type env struct {
	t        *testing.T
	ts       *testserver.Server
	cl       *client.Client
	instance string // backup instance name, in vault "vault" of group "rg"
	cluster  *pgtest.Cluster

	mu     sync.Mutex
	faults *faulty.Faulty // the vault's storage, once its repository is opened
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, testserver.Options{})
}

// newEnvWith is newEnv with more server options (Jobs and WrapRepoStorage
// are set here).
func newEnvWith(t *testing.T, o testserver.Options) *env {
	t.Helper()
	cluster := pgtest.Start(t, pgtest.Options{})
	// About 40 MB of table that does not compress much: several packs.
	cluster.Exec(t, "CREATE TABLE t AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 300000) g")
	e := &env{t: t, cluster: cluster}
	o.Jobs = true
	inner := o.WrapRepoStorage
	o.WrapRepoStorage = func(vaultID string, st storage.Storage) storage.Storage {
		if inner != nil {
			st = inner(vaultID, st)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		e.faults = faulty.Wrap(st)
		return e.faults
	}
	e.ts = testserver.Start(t, o)
	e.cl = e.ts.AdminClient()
	e.instance = e.protect(cluster)
	return e
}

// do sends a request that must succeed and waits for its operation, if any;
// it returns the operation's result, else the response's body.
func (e *env) do(method, path, version string, body any) json.RawMessage {
	e.t.Helper()
	ctx := context.Background()
	resp, err := e.cl.Do(ctx, method, path, version, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	if !client.IsLongRunning(resp) {
		return resp.Body
	}
	op, err := e.cl.Wait(ctx, resp, &client.PollOptions{Frequency: 50 * time.Millisecond})
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return op.Properties
}

// protect registers the cluster, makes a vault and a weekly policy, grants
// the vault's identity its roles and protects the server.
func (e *env) protect(c *pgtest.Cluster) string {
	e.t.Helper()
	store := map[string]string{"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"}
	return e.protectWith(c, "R/2024-01-07T23:00:00+00:00/P1W", "UTC",
		[]any{map[string]any{"isDefault": true, "taggingPriority": 99, "tagInfo": map[string]string{"tagName": "Default"}}},
		[]any{map[string]any{"name": "Default", "objectType": "AzureRetentionRule", "isDefault": true, "lifecycles": []any{map[string]any{
			"deleteAfter": map[string]string{"objectType": "AbsoluteDeleteOption", "duration": "P3M"}, "sourceDataStore": store}}}})
}

// protectWith is protect with a policy of one schedule interval in a time
// zone, tagging criteria and retention rules.
func (e *env) protectWith(c *pgtest.Cluster, interval, zone string, tagging, retention []any) string {
	e.t.Helper()
	e.do("PUT", client.ResourceGroupPath(sub, "rg"), client.APIVersionResources, map[string]any{"location": "westeurope"})
	srvID := vault.ServerID(sub, "rg", "db1")
	e.do("PUT", client.ServerPath(sub, "rg", "db1"), client.APIVersionPostgreSQL, map[string]any{"location": "westeurope", "properties": map[string]any{
		"fullyQualifiedDomainName": c.Host, "administratorLogin": c.SuperUser, "administratorLoginPassword": c.SuperPassword,
		"pgvault": map[string]any{"port": c.Port, "sslMode": "disable"},
	}})
	e.do("PUT", client.VaultPath(sub, "rg", "vault"), api, map[string]any{"location": "westeurope", "identity": map[string]string{"type": "SystemAssigned"},
		"properties": map[string]any{"storageSettings": []map[string]string{{"datastoreType": "VaultStore", "type": "LocallyRedundant"}}}})
	var v struct {
		Identity struct {
			PrincipalID string `json:"principalId"`
		} `json:"identity"`
	}
	if err := json.Unmarshal(e.do("GET", client.VaultPath(sub, "rg", "vault"), api, nil), &v); err != nil {
		e.t.Fatal(err)
	}
	e.ts.Assign(e.t, v.Identity.PrincipalID, "PostgreSQL Flexible Server Long Term Retention Backup Role", srvID)
	e.ts.Assign(e.t, v.Identity.PrincipalID, "Reader", vault.ResourceGroupID(sub, "rg"))
	store := map[string]string{"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"}
	e.do("PUT", client.PolicyPath(sub, "rg", "vault", "pol"), api, map[string]any{"properties": map[string]any{
		"objectType": "BackupPolicy", "datasourceTypes": []string{vault.DatasourceType},
		"policyRules": append([]any{
			map[string]any{"name": "BackupWeekly", "objectType": "AzureBackupRule",
				"backupParameters": map[string]string{"objectType": "AzureBackupParams", "backupType": "Full"}, "dataStore": store,
				"trigger": map[string]any{"objectType": "ScheduleBasedTriggerContext",
					"schedule":        map[string]any{"repeatingTimeIntervals": []string{interval}, "timeZone": zone},
					"taggingCriteria": tagging}},
		}, retention...),
	}})
	ds := map[string]string{"resourceID": srvID, "datasourceType": vault.DatasourceType, "objectType": "Datasource"}
	e.do("PUT", client.BackupInstancePath(sub, "rg", "vault", "db1-bi"), api, map[string]any{"properties": map[string]any{
		"dataSourceInfo": ds, "policyInfo": map[string]string{"policyId": vault.PolicyID(sub, "rg", "vault", "pol")}, "objectType": "BackupInstance",
	}})
	return "db1-bi"
}

// jobJSON holds what the test reads of a job.
type jobJSON struct {
	Name       string `json:"name"`
	Properties struct {
		Status       string `json:"status"`
		ErrorDetails []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errorDetails"`
		ExtendedInfo struct {
			AdditionalDetails map[string]string `json:"additionalDetails"`
		} `json:"extendedInfo"`
	} `json:"properties"`
}

// backup starts an on-demand backup and waits for its job to end.
func (e *env) backup() jobJSON {
	e.t.Helper()
	res := e.do("POST", client.AdhocBackupPath(sub, "rg", "vault", e.instance), api, map[string]any{"backupRuleOptions": map[string]any{
		"ruleName": "BackupWeekly", "triggerOption": map[string]string{"retentionTagOverride": "Default"}}})
	var op struct {
		JobID string `json:"jobId"`
	}
	if err := json.Unmarshal(res, &op); err != nil || op.JobID == "" {
		e.t.Fatalf("the backup request's result %s (%v)", res, err)
	}
	name := op.JobID[strings.LastIndex(op.JobID, "/")+1:]
	for deadline := time.Now().Add(2 * time.Minute); ; {
		var j jobJSON
		if err := json.Unmarshal(e.do("GET", client.BackupJobPath(sub, "rg", "vault", name), api, nil), &j); err != nil {
			e.t.Fatal(err)
		}
		if j.Properties.Status != "InProgress" {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("backup job %s did not end", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inject adds a fault to the vault's repository storage.
func (e *env) inject(f faulty.Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.Inject(f)
}

// recoveryPoints returns the names of the instance's recovery points.
func (e *env) recoveryPoints() []string {
	e.t.Helper()
	items, err := e.cl.List(context.Background(), client.RecoveryPointsPath(sub, "rg", "vault", e.instance), api)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, it := range items {
		var rp struct{ Name string }
		if err := json.Unmarshal(it, &rp); err != nil {
			e.t.Fatal(err)
		}
		names = append(names, rp.Name)
	}
	return names
}

// repoDir is the directory of the vault's repository.
func (e *env) repoDir() string {
	return job.RepositoryPath(filepath.Join(e.ts.DataDir, "repositories"), vault.VaultID(sub, "rg", "vault"))
}

// openRepo opens the vault's repository anew, on its directory without
// faults, as the repo commands do.
func (e *env) openRepo() *repo.Repo {
	e.t.Helper()
	key, err := secretbox.LoadOrCreateKey(filepath.Join(e.ts.DataDir, "keys", "repository.key"))
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := fs.Open(e.repoDir())
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), st, key)
	if err != nil {
		e.t.Fatalf("opening the repository: %v", err)
	}
	return r
}

// check opens the vault's repository anew, on its directory without
// faults, reads back everything and fails the test on any damage. It
// returns the report.
func (e *env) check() *repo.CheckReport {
	e.t.Helper()
	r := e.openRepo()
	defer r.Close()
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		e.t.Fatalf("check: %v", err)
	}
	if !rep.OK() {
		e.t.Fatalf("the repository is damaged: %v; damaged snapshots %v", rep.Problems, rep.DamagedSnapshots)
	}
	return rep
}

// TestStorageFaultFailsBackup: a storage that fails mid-backup (an upload
// refused, cut off halfway, or stored with its reply lost; an index write
// refused) fails the backup job with an error that says what failed, leaves
// no recovery point and no snapshot, and damages nothing: the repository
// checks clean, byte by byte, and the next backup succeeds.
func TestStorageFaultFailsBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The first backup opens the repository (and the faulty storage) and
	// succeeds: the faults below hit a repository that holds data.
	if j := e.backup(); j.Properties.Status != "Completed" {
		t.Fatalf("first backup: %+v", j.Properties)
	}
	if rep := e.check(); rep.Snapshots != 1 {
		t.Fatalf("%d snapshots after the first backup", rep.Snapshots)
	}
	for _, f := range []struct {
		name  string
		fault faulty.Fault
	}{
		{"pack upload refused", faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("packs/")}},
		{"pack upload cut off", faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("packs/"), Midway: true}},
		{"index upload refused", faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("index/")}},
		{"snapshot upload refused", faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("snapshots/")}},
	} {
		t.Run(f.name, func(t *testing.T) {
			e.t = t
			// New data, so that the backup stores new packs.
			e.cluster.Exec(t, "INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 50000) g")
			e.inject(f.fault)
			j := e.backup()
			if j.Properties.Status != "Failed" || len(j.Properties.ErrorDetails) != 1 {
				t.Fatalf("job %s: %+v", j.Name, j.Properties)
			}
			d := j.Properties.ErrorDetails[0]
			t.Logf("error: %s: %s", d.Code, d.Message)
			if d.Code != "BackupFailed" || !strings.HasPrefix(d.Message, "while ") || !strings.Contains(d.Message, faulty.ErrInjected.Error()) {
				t.Errorf("error %s: %s; want BackupFailed saying what failed and why", d.Code, d.Message)
			}
			if rp := j.Properties.ExtendedInfo.AdditionalDetails["RecoveryPointId"]; rp != "" {
				t.Errorf("the failed job names recovery point %s", rp)
			}
			if rps := e.recoveryPoints(); len(rps) != 1 {
				t.Errorf("recovery points %v, want the first backup's only", rps)
			}
			if rep := e.check(); rep.Snapshots != 1 {
				t.Errorf("%d snapshots after a failed backup, want 1", rep.Snapshots)
			}
		})
	}
	e.t = t
	// A pack stored whose reply was lost: the writer sees it is there and
	// the backup succeeds.
	e.cluster.Exec(t, "INSERT INTO t SELECT g, md5(random()::text) FROM generate_series(1, 50000) g")
	e.inject(faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("packs/"), Lost: true})
	if j := e.backup(); j.Properties.Status != "Completed" {
		t.Fatalf("backup with a lost reply: %+v", j.Properties)
	}
	if j := e.backup(); j.Properties.Status != "Completed" {
		t.Fatalf("backup after the faults: %+v", j.Properties)
	}
	if rps := e.recoveryPoints(); len(rps) != 3 {
		t.Errorf("recovery points %v, want 3", rps)
	}
	rep := e.check()
	if rep.Snapshots != 3 {
		t.Errorf("%d snapshots, want 3", rep.Snapshots)
	}
	t.Logf("after the faults: %d packs, %d unindexed, %d blobs, %d bytes read", rep.Packs, len(rep.UnindexedPacks), rep.Blobs, rep.BytesRead)
}

// TestDamagedIndexStopsBackupsUntilRepaired: a flipped byte in an index
// object fails the next backup with RepositoryDamaged, naming the object and
// the repair; once repair-index has rebuilt the index, backups run again and
// deduplicate against what is stored.
func TestDamagedIndexStopsBackupsUntilRepaired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.backup()
	if first.Properties.Status != "Completed" {
		t.Fatalf("first backup: %+v", first.Properties)
	}
	indexes, err := filepath.Glob(filepath.Join(e.repoDir(), "index", "[0-9a-f]*"))
	if err != nil || len(indexes) == 0 {
		t.Fatalf("no index object (%v)", err)
	}
	b, err := os.ReadFile(indexes[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x04
	if err := os.WriteFile(indexes[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	j := e.backup()
	if j.Properties.Status != "Failed" || len(j.Properties.ErrorDetails) != 1 {
		t.Fatalf("backup beside a damaged index object: %+v", j.Properties)
	}
	d := j.Properties.ErrorDetails[0]
	t.Logf("error: %s: %s", d.Code, d.Message)
	if d.Code != "RepositoryDamaged" || !strings.Contains(d.Message, "index/"+filepath.Base(indexes[0])) || !strings.Contains(d.Message, "pgvault repo repair-index") {
		t.Errorf("error %s: %s; want RepositoryDamaged naming the object and the repair", d.Code, d.Message)
	}

	r := e.openRepo()
	rep, err := r.RepairIndex(context.Background(), repo.RepairOptions{})
	r.Close()
	if err != nil || len(rep.DamagedIndexes) != 1 || len(rep.PacksIndexed) == 0 {
		t.Fatalf("repair: %+v, %v", rep, err)
	}
	j = e.backup()
	if j.Properties.Status != "Completed" {
		t.Fatalf("backup after the repair: %+v", j.Properties)
	}
	stored, _ := strconv.ParseInt(j.Properties.ExtendedInfo.AdditionalDetails["StoredBytes"], 10, 64)
	firstStored, _ := strconv.ParseInt(first.Properties.ExtendedInfo.AdditionalDetails["StoredBytes"], 10, 64)
	if firstStored == 0 || stored > firstStored/10 {
		t.Errorf("the backup after the repair stored %d bytes, the first %d: it did not deduplicate", stored, firstStored)
	}
	if rep := e.check(); rep.Snapshots != 2 || len(rep.PacksFromHeaders) != 0 {
		t.Errorf("check after the repair: %+v", rep)
	}
}
