package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/testserver"
)

// TestProtectErrors registers a real PostgreSQL server and reads Azure
// Backup's detailed errors: from a failed operation (validateForBackup
// without the roles) and from a synchronous 400 (a server already protected).
func TestProtectErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := pgtest.Start(t, pgtest.Options{})
	ts := testserver.Start(t, testserver.Options{})
	ts.RememberSecret(cluster.SuperPassword)
	c := ts.AdminClient()
	putGroup(t, c, "rg1")
	putGroup(t, c, "db")

	resp, err := c.Put(ctx, client.ServerPath(sub, "db", "pg1"), client.APIVersionPostgreSQL, map[string]any{
		"location": "westeurope",
		"properties": map[string]any{
			"fullyQualifiedDomainName": cluster.Host, "administratorLogin": cluster.SuperUser,
			"administratorLoginPassword": cluster.SuperPassword, "pgvault": map[string]any{"port": cluster.Port},
		},
	})
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT server: %v", err)
	}
	var srv struct{ ID string }
	if err := resp.Decode(&srv); err != nil {
		t.Fatal(err)
	}
	if srv.ID != "/subscriptions/"+sub+"/resourceGroups/db/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg1" {
		t.Errorf("server ID = %q", srv.ID)
	}
	servers, err := c.List(ctx, client.ServersPath(sub, ""), client.APIVersionPostgreSQL)
	if err != nil || len(servers) != 1 || strings.Contains(string(servers[0]), cluster.SuperPassword) {
		t.Errorf("list servers: %d, %v", len(servers), err)
	}
	resp, err = c.Post(ctx, client.LtrPreBackupPath(sub, "db", "pg1"), client.APIVersionPostgreSQL, map[string]any{"backupSettings": map[string]string{"backupName": "b1"}})
	if err != nil || !strings.Contains(string(resp.Body), `"numberOfContainers":1`) {
		t.Errorf("ltrPreBackup: %v", err)
	}

	resp, err = c.Put(ctx, client.VaultPath(sub, "rg1", "vault1"), client.APIVersionDataProtection, vaultBody())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, resp, nil); err != nil {
		t.Fatal(err)
	}
	var v struct {
		ID       string
		Identity struct{ PrincipalID string }
	}
	resp, err = c.Get(ctx, client.VaultPath(sub, "rg1", "vault1"), client.APIVersionDataProtection)
	if err != nil || resp.Decode(&v) != nil {
		t.Fatal(err)
	}
	resp, err = c.Put(ctx, client.PolicyPath(sub, "rg1", "vault1", "pol1"), client.APIVersionDataProtection, map[string]any{"properties": map[string]any{
		"objectType": "BackupPolicy", "datasourceTypes": []string{"Microsoft.DBforPostgreSQL/flexibleServers"},
		"policyRules": []any{
			map[string]any{"name": "BackupWeekly", "objectType": "AzureBackupRule",
				"backupParameters": map[string]string{"objectType": "AzureBackupParams", "backupType": "Full"},
				"dataStore":        map[string]string{"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"},
				"trigger": map[string]any{"objectType": "ScheduleBasedTriggerContext",
					"schedule":        map[string]any{"repeatingTimeIntervals": []string{"R/2024-01-07T23:00:00+00:00/P1W"}},
					"taggingCriteria": []any{map[string]any{"isDefault": true, "taggingPriority": 99, "tagInfo": map[string]string{"tagName": "Default"}}}}},
			map[string]any{"name": "Default", "objectType": "AzureRetentionRule", "isDefault": true, "lifecycles": []any{map[string]any{
				"deleteAfter":     map[string]string{"objectType": "AbsoluteDeleteOption", "duration": "P3M"},
				"sourceDataStore": map[string]string{"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"}}}},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var pol struct{ ID string }
	if err := resp.Decode(&pol); err != nil {
		t.Fatal(err)
	}
	ds := map[string]string{"resourceID": srv.ID, "datasourceType": "Microsoft.DBforPostgreSQL/flexibleServers", "objectType": "Datasource"}
	bi := map[string]any{"dataSourceInfo": ds, "policyInfo": map[string]string{"policyId": pol.ID}, "objectType": "BackupInstance"}

	// The vault's identity has no role: the operation fails with the detail.
	resp, err = c.Post(ctx, client.ValidateForBackupPath(sub, "rg1", "vault1"), client.APIVersionDataProtection, map[string]any{"backupInstance": bi})
	if err != nil || !client.IsLongRunning(resp) {
		t.Fatalf("validateForBackup: %v", err)
	}
	_, err = c.Wait(ctx, resp, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "UserErrorMissingRequiredPermissions" {
		t.Fatalf("validateForBackup without roles: %v", err)
	}
	ufe := ae.UserFacingErrors()
	if len(ufe) != 1 || len(ufe[0].RecommendedAction) != 1 || !strings.Contains(ufe[0].RecommendedAction[0], "Reader") ||
		!strings.Contains(ufe[0].InnerError.DetailedMessage(), "object id '"+v.Identity.PrincipalID+"' does not have authorization") {
		t.Errorf("UserFacingErrors = %+v", ufe)
	}

	// With the roles: protected; a second validation is refused at once.
	ts.Assign(t, v.Identity.PrincipalID, "PostgreSQL Flexible Server Long Term Retention Backup Role", srv.ID)
	ts.Assign(t, v.Identity.PrincipalID, "Reader", "/subscriptions/"+sub+"/resourceGroups/db")
	resp, err = c.Put(ctx, client.BackupInstancePath(sub, "rg1", "vault1", "pg1-bi"), client.APIVersionDataProtection, map[string]any{"properties": bi})
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT backup instance: %v", err)
	}
	if _, err := c.Wait(ctx, resp, nil); err != nil {
		t.Fatalf("configuring protection: %v", err)
	}
	if items, err := c.List(ctx, client.BackupInstancesPath(sub, "rg1", "vault1"), client.APIVersionDataProtection); err != nil || len(items) != 1 {
		t.Errorf("list backup instances: %d, %v", len(items), err)
	}
	_, err = c.Post(ctx, client.ValidateForBackupPath(sub, "rg1", "vault1"), client.APIVersionDataProtection, map[string]any{"backupInstance": bi})
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || ae.Code != "UserErrorDppDatasourceAlreadyProtected" {
		t.Fatalf("validateForBackup of a protected server: %v", err)
	}
	if ufe := ae.UserFacingErrors(); len(ufe) != 1 || len(ufe[0].RecommendedAction) != 1 || !strings.Contains(ufe[0].RecommendedAction[0], "pg1-bi") {
		t.Errorf("already protected: UserFacingErrors = %+v", ufe)
	}
}
