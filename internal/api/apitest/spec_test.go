package apitest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pgvault/pgvault/internal/api/apitest"
)

const (
	sub      = "11111111-2222-3333-4444-555555555555"
	vaultURL = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.DataProtection/backupVaults/vault1"
	// ARM paths are case-insensitive; the Azure CLI and others send them lower-cased.
	vaultURLLower = "/subscriptions/" + sub + "/resourcegroups/rg1/providers/microsoft.dataprotection/backupvaults/vault1"
	policyURL     = vaultURL + "/backupPolicies/OSSDBPolicy"
	opStatusURL   = "/subscriptions/" + sub + "/providers/Microsoft.DataProtection/locations/westus/operationStatus/op1"
	ltrPreURL     = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg1/ltrPreBackup"
	ltrOpURL      = "/subscriptions/" + sub + "/resourcegroups/rg1/providers/microsoft.dbforpostgresql/flexibleservers/pg1/ltrbackupoperations/backup1"
	dpVersion     = "?api-version=2024-04-01"
	pgVersion     = "?api-version=2024-08-01"
)

const vaultBody = `{
  "id": "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg1/providers/Microsoft.DataProtection/backupVaults/vault1",
  "name": "vault1",
  "type": "Microsoft.DataProtection/backupVaults",
  "location": "westus",
  "tags": {"env": "test"},
  "eTag": "W/\"1\"",
  "identity": {"type": "SystemAssigned", "principalId": "p1", "tenantId": "t1"},
  "systemData": {"createdBy": "alice", "createdByType": "User", "createdAt": "2024-05-01T10:00:00Z"},
  "properties": {
    "provisioningState": "Succeeded",
    "storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}],
    "securitySettings": {"softDeleteSettings": {"state": "On", "retentionDurationInDays": 14}},
    "monitoringSettings": {"azureMonitorAlertSettings": {"alertsForAllJobFailures": "Enabled"}},
    "isVaultProtectedByResourceGuard": false,
    "secureScore": "Minimum",
    "bcdrSecurityLevel": "Poor",
    "someFutureProperty": {"x": 1}
  }
}`

// ltrOpBody is an LtrServerBackupOperation; its base ProxyResource and
// systemData come from common-types v5.
const ltrOpBody = `{
  "id": "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg1/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg1/ltrBackupOperations/backup1",
  "name": "backup1",
  "type": "Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupOperations",
  "systemData": {"createdByType": "Application", "createdAt": "2024-05-01T10:00:00.123Z"},
  "properties": {"backupName": "backup1", "status": "Succeeded", "percentComplete": 100,
    "startTime": "2024-05-01T10:00:00Z", "endTime": "2024-05-01T10:05:00Z", "datasourceSizeInBytes": 123456789012}
}`

const cloudError = `{"error": {"code": "ResourceNotFound", "message": "vault1 not found", "details": [], "additionalInfo": []}}`

// policyExample is the 200 response body of the spec's CreateOrUpdateBackupPolicy example.
func policyExample(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("testdata/specs/specification/dataprotection/resource-manager/Microsoft.DataProtection/stable/2024-04-01/examples/PolicyCRUD/CreateOrUpdateBackupPolicy.json")
	if err != nil {
		t.Fatal(err)
	}
	// Cut out responses.200.body without a JSON round trip, to keep it byte for byte.
	s := string(data)
	i := strings.Index(s, `"body": {`)
	j := strings.LastIndex(s, "}\n    }\n  }\n}")
	if i < 0 || j < 0 {
		t.Fatal("unexpected layout of the example file")
	}
	return s[i+len(`"body": `) : j+1]
}

// validate runs Spec.ValidateResponse on a hand-made exchange.
func validate(t *testing.T, method, target string, status int, body string) (bool, error) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	h := http.Header{}
	if body != "" {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	return apitest.LoadSpec(t).ValidateResponse(req, status, h, []byte(body))
}

func TestValidResponses(t *testing.T) {
	tests := []struct {
		name, method, target string
		status               int
		body                 string
	}{
		{"vault", "GET", vaultURL + dpVersion, 200, vaultBody},
		{"vault lower-case path", "GET", vaultURLLower + dpVersion, 200, vaultBody},
		{"vault created", "PUT", vaultURL + dpVersion, 201, vaultBody},
		{"vault deleted", "DELETE", vaultURL + dpVersion, 204, ""},
		{"policy example", "PUT", policyURL + dpVersion, 200, policyExample(t)},
		{"not found", "GET", vaultURL + dpVersion, 404, cloudError},
		{"ltrPreBackup", "POST", ltrPreURL + pgVersion, 200, `{"properties": {"numberOfContainers": 1}}`},
		{"ltr operation", "GET", ltrOpURL + pgVersion, 200, ltrOpBody},
		{"ltr error", "GET", ltrOpURL + pgVersion, 404, `{"error": {"code": "NotFound", "message": "no such backup"}}`},
		// OperationResource declares no required property: "status" may be absent.
		{"operation status without status", "GET", opStatusURL + dpVersion, 200, `{"id": "op1", "name": "op1", "startTime": "2024-05-01T10:00:00Z"}`},
		{"operation status with job", "GET", opStatusURL + dpVersion, 200,
			`{"id": "op1", "name": "op1", "status": "Succeeded", "properties": {"objectType": "OperationJobExtendedInfo", "jobId": "j1"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			matched, err := validate(t, tc.method, tc.target, tc.status, tc.body)
			if !matched || err != nil {
				t.Errorf("got matched=%v err=%v, want a match without error", matched, err)
			}
		})
	}
}

func TestInvalidResponses(t *testing.T) {
	policy := policyExample(t)
	tests := []struct {
		name, method, target string
		status               int
		body                 string
		want                 string // in the error
	}{
		{"wrong property type", "GET", vaultURL + dpVersion, 200,
			strings.Replace(vaultBody, `"storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]`, `"storageSettings": "x"`, 1),
			"storageSettings"},
		{"vault without properties", "GET", vaultURL + dpVersion, 200,
			`{"id": "x", "name": "vault1", "location": "westus"}`, `"properties"`},
		{"invalid enum value", "GET", vaultURL + dpVersion, 200,
			strings.Replace(vaultBody, `"LocallyRedundant"`, `"SuperRedundant"`, 1), "storageSettings/0/type"},
		{"bad date-time", "GET", vaultURL + dpVersion, 200,
			strings.Replace(vaultBody, `"2024-05-01T10:00:00Z"`, `"yesterday"`, 1), "createdAt"},
		{"undeclared success status", "GET", vaultURL + dpVersion, 202, vaultBody, "status 202 is not declared"},
		{"empty body where one is declared", "GET", vaultURL + dpVersion, 200, "", "Content-Type"},
		// policyRules is required by the subtype BackupPolicy only, not by BaseBackupPolicy.
		{"policy without policyRules", "GET", policyURL + dpVersion, 200,
			`{"properties": {"objectType": "BackupPolicy", "datasourceTypes": ["OssDB"]}}`, "policyRules"},
		{"retention rule without lifecycles", "GET", policyURL + dpVersion, 200,
			`{"properties": {"objectType": "BackupPolicy", "datasourceTypes": ["OssDB"],
			  "policyRules": [{"objectType": "AzureRetentionRule", "name": "Default", "isDefault": true}]}}`,
			"lifecycles"},
		{"broken nested subtype", "GET", policyURL + dpVersion, 200,
			strings.Replace(policy, `"objectType": "ScheduleBasedTriggerContext"`, `"objectType": "ScheduleBasedTriggerContext", "schedule": 7`, 1),
			"schedule"},
		{"broken delete option", "GET", policyURL + dpVersion, 200,
			strings.Replace(policy, `"duration": "P1W"`, `"duration": 7`, 1), "duration"},
		{"unknown subtype", "GET", policyURL + dpVersion, 200,
			strings.Replace(policy, `"objectType": "AzureBackupRule"`, `"objectType": "AzureFancyRule"`, 1),
			`"AzureFancyRule" names no known subtype`},
		{"unknown operation extended info", "GET", opStatusURL + dpVersion, 200,
			`{"id": "op1", "status": "Succeeded", "properties": {"objectType": "Bogus"}}`, `"Bogus"`},
		{"operation status of wrong type", "GET", opStatusURL + dpVersion, 200, `{"id": "op1", "status": 5}`, "status"},
		{"ltr numberOfContainers", "POST", ltrPreURL + pgVersion, 200, `{"properties": {"numberOfContainers": "one"}}`, "numberOfContainers"},
		{"ltr missing properties", "POST", ltrPreURL + pgVersion, 200, `{}`, `"properties"`},
		{"ltr operation without name", "GET", ltrOpURL + pgVersion, 200,
			strings.Replace(ltrOpBody, `"name": "backup1",`, ``, 1), `"name"`},
		{"ltr percentComplete out of range", "GET", ltrOpURL + pgVersion, 200,
			strings.Replace(ltrOpBody, `"percentComplete": 100`, `"percentComplete": 150`, 1), "percentComplete"},
		{"ltr systemData enum (common-types v5)", "GET", ltrOpURL + pgVersion, 200,
			strings.Replace(ltrOpBody, `"Application"`, `"Robot"`, 1), "createdByType"},
		{"error body of wrong type", "GET", vaultURL + dpVersion, 404, `{"error": {"code": 404}}`, "code"},
		{"missing api-version", "GET", vaultURL, 200, vaultBody, "api-version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			matched, err := validate(t, tc.method, tc.target, tc.status, tc.body)
			if !matched {
				t.Fatal("request matched no operation")
			}
			if err == nil {
				t.Fatalf("validator accepted the response, want an error mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not mention %q: %v", tc.want, err)
			}
			t.Logf("caught as expected: %v", err)
		})
	}
}

func TestUnmatched(t *testing.T) {
	for _, target := range []string{
		"/subscriptions/" + sub + "/resourcegroups/rg1?api-version=2021-04-01", // Microsoft.Resources
		"/subscriptions/" + sub + "/providers/Microsoft.DataProtection/somethingElse" + dpVersion,
	} {
		matched, err := validate(t, "PUT", target, 200, `{}`)
		if matched || err != nil {
			t.Errorf("%s: got matched=%v err=%v, want no match and no error", target, matched, err)
		}
	}
	// A method the path does not declare is no operation either.
	if matched, err := validate(t, "POST", vaultURL+dpVersion, 200, vaultBody); matched || err != nil {
		t.Errorf("POST vault: got matched=%v err=%v, want no match and no error", matched, err)
	}
}

// recorder is a testing.TB that records errors instead of failing the test.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, format)
	r.TB.Logf("recorded: "+format, args...)
}

// server answers every request with the status and body registered for its path.
func server(t *testing.T, routes map[string]struct {
	status int
	body   string
}) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := routes[r.URL.Path]
		if !ok {
			rt.status, rt.body = 404, cloudError
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(rt.status)
		io.WriteString(w, rt.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClient(t *testing.T) {
	spec := apitest.LoadSpec(t)
	srv := server(t, map[string]struct {
		status int
		body   string
	}{
		vaultURLLower: {200, vaultBody},
		policyURL:     {200, policyExample(t)},
		ltrPreURL:     {200, `{"properties": {"numberOfContainers": 2}}`},
		"/subscriptions/" + sub + "/resourcegroups/rg1": {200, `{"name": "rg1"}`},
	})
	client := spec.Client(t, srv.Client())
	for _, c := range []struct{ method, target string }{
		{"GET", vaultURLLower + dpVersion},
		{"GET", policyURL + dpVersion},
		{"GET", vaultURL + "/backupPolicies/missing" + dpVersion}, // 404 CloudError
		{"POST", ltrPreURL + pgVersion},
		{"PUT", "/subscriptions/" + sub + "/resourcegroups/rg1?api-version=2021-04-01"}, // not in the specs
	} {
		req, err := http.NewRequest(c.method, srv.URL+c.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.target, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(body) == 0 {
			t.Errorf("%s %s: body not restored for the caller (%d bytes, %v)", c.method, c.target, len(body), err)
		}
	}
	if got := spec.Validated(client); got != 4 {
		t.Errorf("Validated = %d, want 4", got)
	}
	if got := spec.Validated(srv.Client()); got != 0 {
		t.Errorf("Validated of a plain client = %d, want 0", got)
	}
}

func TestClientReportsViolations(t *testing.T) {
	spec := apitest.LoadSpec(t)
	srv := server(t, map[string]struct {
		status int
		body   string
	}{
		vaultURL: {200, `{"name": "vault1", "location": "westus", "properties": {"storageSettings": "x"}}`},
	})
	rec := &recorder{TB: t}
	client := spec.Client(rec, srv.Client())
	resp, err := client.Get(srv.URL + vaultURL + dpVersion)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"storageSettings": "x"`) {
		t.Errorf("body not restored: %s", body)
	}
	if len(rec.errs) != 1 || spec.Validated(client) != 1 {
		t.Errorf("got %d reported errors and %d validations, want 1 and 1", len(rec.errs), spec.Validated(client))
	}
}
