package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/auth"
	"github.com/pgvault/pgvault/internal/vault"
)

// TestBuiltinRoles shows, for each built-in role assigned on one resource
// group, what its holder may and may not do; every denial is a 403 with
// Azure's message.
func TestBuiltinRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createGroup("rg")
	e.createGroup("rg2")
	for _, p := range []string{vaultPath, strings.Replace(vaultPath, "/rg/", "/rg2/", 1)} {
		if r := e.do("PUT", p+dpVersion, goodVault); r.Status != http.StatusCreated {
			t.Fatalf("create vault: %d %s", r.Status, r.Body)
		}
	}
	if r := e.do("PUT", polPath+dpVersion, readTestdata(t, "pgflex-policy.json")); r.Status != 200 {
		t.Fatalf("create policy: %d %s", r.Status, r.Body)
	}
	policy := string(readTestdata(t, "pgflex-policy.json"))
	rgScope := "/subscriptions/" + testSub + "/resourceGroups/rg"

	type op struct {
		name, method, path, body, action string
	}
	ops := func(role string) []op {
		slug := strings.ToLower(strings.NewReplacer(" ", "", "-", "").Replace(role))
		return []op{
			{"read vault", "GET", vaultPath + dpVersion, "", "Microsoft.DataProtection/backupVaults/read"},
			{"read policy", "GET", polPath + dpVersion, "", "Microsoft.DataProtection/backupVaults/backupPolicies/read"},
			{"list vaults", "GET", rgPath + "/providers/Microsoft.DataProtection/backupVaults" + dpVersion, "", "Microsoft.DataProtection/backupVaults/read"},
			{"read group", "GET", rgPath + "?api-version=2021-04-01", "", "Microsoft.Resources/subscriptions/resourceGroups/read"},
			{"update vault", "PATCH", vaultPath + dpVersion, `{"tags":{"by":"` + slug + `"}}`, "Microsoft.DataProtection/backupVaults/write"},
			{"create policy", "PUT", vaultPath + "/backupPolicies/p-" + slug + dpVersion, policy, "Microsoft.DataProtection/backupVaults/backupPolicies/write"},
			{"delete policy", "DELETE", vaultPath + "/backupPolicies/p-" + slug + dpVersion, "", "Microsoft.DataProtection/backupVaults/backupPolicies/delete"},
			{"list role assignments", "GET", rgPath + "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", "", "Microsoft.Authorization/roleAssignments/read"},
			{"assign a role", "PUT", rgPath + "/providers/Microsoft.Authorization/roleAssignments/" + arm4(slug) + "?api-version=2022-04-01", "", "Microsoft.Authorization/roleAssignments/write"},
			{"read another group's vault", "GET", strings.Replace(vaultPath, "/rg/", "/rg2/", 1) + dpVersion, "", "Microsoft.DataProtection/backupVaults/read"},
		}
	}
	// What each role may do, in the order of ops; the rest is denied.
	allowed := map[string][]string{
		"Owner":              {"read vault", "read policy", "list vaults", "read group", "update vault", "create policy", "delete policy", "list role assignments", "assign a role"},
		"Contributor":        {"read vault", "read policy", "list vaults", "read group", "update vault", "create policy", "delete policy", "list role assignments"},
		"Reader":             {"read vault", "read policy", "list vaults", "read group", "list role assignments"},
		"Backup Contributor": {"read vault", "read policy", "list vaults", "read group", "update vault", "create policy", "delete policy", "list role assignments"},
		"Backup Operator":    {"read vault", "read policy", "list vaults", "read group", "list role assignments"},
		"Backup Reader":      {"read vault", "read policy", "list vaults", "list role assignments"}, // Azure's Backup Reader does not read groups
		"PostgreSQL Flexible Server Long Term Retention Backup Role": {"read group"},
		"Storage Blob Data Contributor":                              {},
	}
	for _, role := range auth.BuiltinRoles() {
		want, ok := allowed[role.Name]
		if !ok {
			t.Errorf("no expectations for built-in role %q", role.Name)
			continue
		}
		t.Run(role.Name, func(t *testing.T) {
			slug := strings.ToLower(strings.NewReplacer(" ", "", "-", "").Replace(role.Name))
			sp, _, err := e.svc.PutServicePrincipal(ctx, "sp-"+slug, strings.Repeat("k", 48), true)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.svc.PutRoleAssignment(ctx, rgScope, arm4("a"+slug), vault.RoleAssignmentProperties{
				RoleDefinitionID: vault.RoleDefinitionID(rgScope, role.ID), PrincipalID: sp.Properties.ObjectID,
			}, vault.Principal{}); err != nil {
				t.Fatal(err)
			}
			tok := "Bearer " + e.token(sp.Properties.ObjectID, sp.Properties.ClientID)
			for _, o := range ops(role.Name) {
				body := o.body
				if o.name == "assign a role" {
					reader, _ := auth.RoleByName("Reader")
					body = fmt.Sprintf(`{"properties":{"roleDefinitionId":%q,"principalId":%q}}`, vault.RoleDefinitionID(rgScope, reader.ID), sp.Properties.ObjectID)
				}
				r := e.doAs(tok, o.method, o.path, body, false)
				may := contains(want, o.name)
				switch {
				case may && r.Status >= 300:
					t.Errorf("%s: %s should be allowed, got %d %s", role.Name, o.name, r.Status, r.Body)
				case !may:
					code, _ := r.armError(t)
					scope := strings.TrimSuffix(strings.SplitN(o.path, "?", 2)[0], "/")
					msg := fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid.",
						sp.Properties.ClientID, sp.Properties.ObjectID, o.action, scope)
					if r.Status != http.StatusForbidden || code != "AuthorizationFailed" || !strings.Contains(string(r.Body), msg) {
						t.Errorf("%s: %s should be denied with\n%s\ngot %d %s", role.Name, o.name, msg, r.Status, r.Body)
					}
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// arm4 makes a stable GUID-shaped role assignment name from a string.
func arm4(s string) string {
	h := fmt.Sprintf("%032x", []byte(s + "00000000000000000000000000000000")[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
