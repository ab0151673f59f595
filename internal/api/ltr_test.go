package api_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/vault"
)

func preBackup(e *testEnv, rg, server, backupName string) (armpostgresqlflexibleservers.FlexibleServerClientTriggerLtrPreBackupResponse, error) {
	return e.pg().NewFlexibleServerClient().TriggerLtrPreBackup(context.Background(), rg, server,
		armpostgresqlflexibleservers.LtrPreBackupRequest{BackupSettings: &armpostgresqlflexibleservers.BackupSettings{BackupName: to.Ptr(backupName)}}, nil)
}

// TestLtrPreBackup checks a real server for everything a backup needs, on
// PostgreSQL 15 and 17, and each failure on a cluster made to fail it.
func TestLtrPreBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createGroup("rg")

	for _, major := range []int{15, 17} {
		c := pgtest.Start(t, pgtest.Options{Major: major})
		name := "ok-" + map[int]string{15: "fifteen", 17: "seventeen"}[major]
		srv := registerServer(t, e, "rg", name, c, c.SuperUser, c.SuperPassword)
		if want := map[int]string{15: "15", 17: "17"}[major]; string(*srv.Properties.Version) != want {
			t.Errorf("PostgreSQL %d registered with version %s", major, *srv.Properties.Version)
		}
		res, err := preBackup(e, "rg", name, "backup-1")
		if err != nil {
			t.Fatalf("ltrPreBackup on PostgreSQL %d: %v", major, err)
		}
		if res.Properties == nil || res.Properties.NumberOfContainers == nil || *res.Properties.NumberOfContainers != 1 || res.XMSRequestID == nil || *res.XMSRequestID == "" {
			t.Errorf("ltrPreBackup answer: %+v", res)
		}
	}

	// One cluster serves several failure cases through roles of its own.
	c := pgtest.Start(t, pgtest.Options{HBA: []string{"host replication hbablocked 127.0.0.1/32 reject"}})
	c.CreateRole(t, "norepl", "norepl-pass-1", "LOGIN")
	c.CreateRole(t, "hbablocked", "hba-pass-1", "LOGIN REPLICATION")
	c.CreateRole(t, "rotating", "rotating-pass-1", "LOGIN REPLICATION")
	registerServer(t, e, "rg", "norepl", c, "norepl", "norepl-pass-1")
	registerServer(t, e, "rg", "hbablocked", c, "hbablocked", "hba-pass-1")
	registerServer(t, e, "rg", "rotating", c, "rotating", "rotating-pass-1")
	c.Exec(t, "ALTER ROLE rotating PASSWORD 'rotating-pass-2'")

	minimal := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"}})
	registerServer(t, e, "rg", "minimal", minimal, minimal.SuperUser, minimal.SuperPassword)

	stopped := pgtest.Start(t, pgtest.Options{})
	registerServer(t, e, "rg", "stopped", stopped, stopped.SuperUser, stopped.SuperPassword)
	stopped.Stop(t)

	// A backup name already used by a long-term retention backup of the server.
	used := pgtest.Start(t, pgtest.Options{})
	srv := registerServer(t, e, "rg", "used", used, used.SuperUser, used.SuperPassword)
	now := time.Now().UTC()
	if err := e.store.ResourcePut(context.Background(), &store.Resource{
		ID: *srv.ID + "/ltrBackupOperations/nightly", Type: vault.TypeLtrBackupOperation, Parent: *srv.ID, Subscription: testSub,
		Name: "nightly", Body: []byte(`{"properties":{"status":"Succeeded"}}`), ETag: "e", Created: now, Updated: now,
	}, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		server, backup string
		status         int
		code           string
	}{
		{"norepl", "b1", 400, "InsufficientReplicationPrivilege"},
		{"hbablocked", "b1", 400, "ReplicationConnectionRejected"},
		{"rotating", "b1", 400, "ServerAuthenticationFailed"},
		{"minimal", "b1", 400, "WalLevelTooLow"},
		{"stopped", "b1", 400, "ServerUnreachable"},
		{"used", "nightly", 409, "LtrBackupNameAlreadyExists"},
		{"used", "not_valid!", 400, "InvalidBackupName"},
		{"missing-server", "b1", 404, "ResourceNotFound"},
	}
	for _, tc := range cases {
		_, err := preBackup(e, "rg", tc.server, tc.backup)
		wantResponseError(t, err, tc.status, tc.code)
		// The raw answer: ErrorResponse with x-ms-error-code and x-ms-request-id.
		r := e.do("POST", "/subscriptions/"+testSub+"/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/"+tc.server+"/ltrPreBackup?api-version=2024-08-01",
			`{"backupSettings":{"backupName":"`+tc.backup+`"}}`)
		if code, _ := r.armError(t); r.Status != tc.status || code != tc.code || r.Header.Get("x-ms-request-id") == "" {
			t.Errorf("%s: %d %s", tc.server, r.Status, r.Body)
		}
	}
	// A failed check leaves the server Disabled with the reason.
	got, err := e.pg().NewServersClient().Get(context.Background(), "rg", "stopped", nil)
	if err != nil || *got.Properties.State != armpostgresqlflexibleservers.ServerStateDisabled {
		t.Errorf("state of the stopped server: %v %v", got.Properties.State, err)
	}
	if r := e.do("GET", "/subscriptions/"+testSub+"/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/stopped?api-version=2024-08-01", nil); r.Status != http.StatusOK {
		t.Errorf("GET stopped server: %d", r.Status)
	}
}

// TestRegisterUnusableServer: a server pgvault cannot reach or log in to is
// refused with the reason, and nothing is stored.
func TestRegisterUnusableServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createGroup("rg")
	c := pgtest.Start(t, pgtest.Options{})
	base := "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/"
	for _, tc := range []struct{ name, body, code string }{
		{"wrongpass", `{"location":"westus","properties":{"fullyQualifiedDomainName":"127.0.0.1:` + itoa(c.Port) + `","administratorLogin":"postgres","administratorLoginPassword":"not-the-password"}}`, "ServerAuthenticationFailed"},
		{"closedport", `{"location":"westus","properties":{"fullyQualifiedDomainName":"127.0.0.1:1","administratorLogin":"postgres","administratorLoginPassword":"x"}}`, "ServerUnreachable"},
		{"nopassword", `{"location":"westus","properties":{"fullyQualifiedDomainName":"127.0.0.1","administratorLogin":"postgres"}}`, "MissingProperty"},
		{"nohost", `{"location":"westus","properties":{"administratorLogin":"postgres","administratorLoginPassword":"x"}}`, "MissingProperty"},
		{"badport", `{"location":"westus","properties":{"fullyQualifiedDomainName":"127.0.0.1:99999","administratorLogin":"postgres","administratorLoginPassword":"x"}}`, "InvalidPropertyValue"},
		{"x", `{"location":"westus","properties":{"fullyQualifiedDomainName":"127.0.0.1","administratorLogin":"postgres","administratorLoginPassword":"x"}}`, "InvalidResourceName"},
	} {
		r := e.do("PUT", base+tc.name+"?api-version=2024-08-01", tc.body)
		if code, _ := r.armError(t); r.Status != http.StatusBadRequest || code != tc.code {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
		}
		if r := e.do("GET", base+tc.name+"?api-version=2024-08-01", nil); r.Status != http.StatusNotFound {
			t.Errorf("%s was stored: %d", tc.name, r.Status)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
