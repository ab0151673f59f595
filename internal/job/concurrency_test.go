package job_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/testserver"
	"github.com/pgvault/pgvault/internal/vault"
)

// gatedStorage holds every pack upload until its gate opens.
type gatedStorage struct {
	storage.Storage
	gate    <-chan struct{}
	mu      sync.Mutex
	waiting int
}

func (g *gatedStorage) Put(ctx context.Context, name string, r io.Reader, size int64, opts storage.PutOptions) error {
	if strings.HasPrefix(name, "packs/") {
		g.mu.Lock()
		g.waiting++
		g.mu.Unlock()
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Storage.Put(ctx, name, r, size, opts)
}

func (g *gatedStorage) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

// protectMore registers the env's cluster again as servers db2..dbN and
// protects each with the env's vault and policy; it returns the instance
// names.
func (e *env) protectMore(n int) []string {
	e.t.Helper()
	var names []string
	for i := 2; i <= n; i++ {
		name := fmt.Sprintf("db%d", i)
		srvID := vault.ServerID(sub, "rg", name)
		e.do("PUT", client.ServerPath(sub, "rg", name), client.APIVersionPostgreSQL, map[string]any{"location": "westeurope", "properties": map[string]any{
			"fullyQualifiedDomainName": e.cluster.Host, "administratorLogin": e.cluster.SuperUser, "administratorLoginPassword": e.cluster.SuperPassword,
			"pgvault": map[string]any{"port": e.cluster.Port, "sslMode": "disable"},
		}})
		v, err := e.ts.Service.Vault(context.Background(), sub, "rg", "vault")
		if err != nil {
			e.t.Fatal(err)
		}
		e.ts.Assign(e.t, v.Identity.PrincipalID, "PostgreSQL Flexible Server Long Term Retention Backup Role", srvID)
		ds := map[string]string{"resourceID": srvID, "datasourceType": vault.DatasourceType, "objectType": "Datasource"}
		e.do("PUT", client.BackupInstancePath(sub, "rg", "vault", name+"-bi"), api, map[string]any{"properties": map[string]any{
			"dataSourceInfo": ds, "policyInfo": map[string]string{"policyId": vault.PolicyID(sub, "rg", "vault", "pol")}, "objectType": "BackupInstance",
		}})
		names = append(names, name+"-bi")
	}
	return names
}

// startBackup queues an on-demand backup of an instance and returns its job ID.
func (e *env) startBackup(instance string) string {
	e.t.Helper()
	res := e.do("POST", client.AdhocBackupPath(sub, "rg", "vault", instance), api, map[string]any{"backupRuleOptions": map[string]any{
		"ruleName": "BackupWeekly", "triggerOption": map[string]string{"retentionTagOverride": "Default"}}})
	id := string(res)
	i := strings.LastIndex(id, "/backupJobs/")
	if i < 0 {
		e.t.Fatalf("the backup request's result %s", res)
	}
	return strings.Trim(id[i+len("/backupJobs/"):], `"}`)
}

// jobsIn returns the IDs of the backup jobs in a status.
func jobsIn(t *testing.T, st store.Store, status string) []string {
	t.Helper()
	js, err := st.JobList(context.Background(), store.JobListParams{Kind: vault.JobKindBackup, Statuses: []string{status}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	return ids
}

// TestMaxConcurrentBackups: a worker with room for three jobs but at most
// two backups runs two of three queued backups and leaves the third
// queued, while it still runs other work (a prune) beside them; when a
// backup ends the third starts, and all three complete.
func TestMaxConcurrentBackups(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	var gs *gatedStorage
	e := newEnvWith(t, testserver.Options{Concurrency: 3, MaxConcurrentBackups: 2,
		WrapRepoStorage: func(_ string, st storage.Storage) storage.Storage {
			gs = &gatedStorage{Storage: st, gate: gate}
			return gs
		}})
	// The held backups of one cluster must keep their WAL while the others
	// checkpoint.
	e.cluster.Exec(t, "ALTER SYSTEM SET wal_keep_size = '1GB'")
	e.cluster.Exec(t, "SELECT pg_reload_conf()")
	instances := append([]string{e.instance}, e.protectMore(3)...)
	for _, bi := range instances {
		e.startBackup(bi)
	}
	waitFor(t, "two backups running, holding pack uploads", func() bool {
		return len(jobsIn(t, e.ts.Store, store.JobRunning)) == 2 && gs != nil && gs.held() >= 2
	})
	// Other kinds still run beside the two backups.
	res := runPrune(t, e)
	t.Logf("a prune beside two held backups: %+v", res)
	if r, q := jobsIn(t, e.ts.Store, store.JobRunning), jobsIn(t, e.ts.Store, store.JobQueued); len(r) != 2 || len(q) != 1 {
		t.Fatalf("%d backups running and %d queued, want 2 and 1", len(r), len(q))
	}
	close(gate)
	waitFor(t, "all three backups ended", func() bool {
		return len(jobsIn(t, e.ts.Store, store.JobSucceeded))+len(jobsIn(t, e.ts.Store, store.JobFailed)) == 3
	})
	if f := jobsIn(t, e.ts.Store, store.JobFailed); len(f) != 0 {
		j, _ := e.ts.Store.JobGet(context.Background(), f[0])
		t.Fatalf("failed backups: %v; the first: %s", f, j.Error)
	}
}

// waitFor polls cond for up to two minutes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
