package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/testserver"
)

const testSub = "3f2c7f0e-1d2b-4c5a-8e9f-0a1b2c3d4e5f"

// startServer runs a real, authenticated pgvault server. Retry-After is 0:
// the client polls at its minimum delay. Pages of two items make the lists
// follow nextLink.
func startServer(t *testing.T, o testserver.Options) *testserver.Server {
	t.Helper()
	if o.PageSize == 0 {
		o.PageSize = 2
	}
	return testserver.Start(t, o)
}

// cli runs pgvault commands against one server, as one principal.
type cli struct {
	t   *testing.T
	ts  *testserver.Server
	env map[string]string
	// transcript, when not nil, collects the result of every run.
	transcript *[]result
}

// newCLI starts a server and returns a CLI with the administrator's
// credentials file. PGVAULT_SERVER is not set: the server comes from the
// credentials file.
func newCLI(t *testing.T) *cli {
	return cliFor(t, startServer(t, testserver.Options{}), nil)
}

// cliFor returns a CLI of ts with p's credentials file (the administrator's
// when p is nil). HOME and PGVAULT_DATA_DIR point at empty directories, so
// that nothing of the machine's pgvault is used.
func cliFor(t *testing.T, ts *testserver.Server, p *testserver.Principal) *cli {
	t.Helper()
	if p == nil {
		p = &ts.Admin
	}
	home := t.TempDir()
	return &cli{t: t, ts: ts, env: map[string]string{
		"HOME":                 home,
		"PGVAULT_DATA_DIR":     filepath.Join(home, "data"),
		"PGVAULT_SUBSCRIPTION": testSub,
		"PGVAULT_CREDENTIALS":  credentialsFile(t, ts, *p),
	}}
}

// as returns a CLI of the same server with p's credentials.
func (c *cli) as(p testserver.Principal) *cli {
	return cliFor(c.t, c.ts, &p)
}

// credentialsFile writes p's credentials file and returns its path.
func credentialsFile(t *testing.T, ts *testserver.Server, p testserver.Principal) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), p.Name+"-credentials.json")
	if err := writeCredentials(path, credentials{Server: ts.URL, TenantID: ts.TenantID, ClientID: p.ClientID, ClientSecret: p.Secret}); err != nil {
		t.Fatal(err)
	}
	return path
}

// result is the outcome of one run.
type result struct {
	stdout, stderr string
	err            error
}

// run runs pgvault with args and stdin.
func (c *cli) runIn(stdin string, args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return c.env[k] }, strings.NewReader(stdin), &out, &errb)
	r := result{stdout: out.String(), stderr: errb.String(), err: err}
	if c.transcript != nil {
		*c.transcript = append(*c.transcript, r)
	}
	return r
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runIn("", args...)
}

// ok runs pgvault and fails the test unless it succeeds.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.err != nil {
		c.t.Fatalf("pgvault %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// fails runs pgvault and checks that it fails printing want on stderr.
func (c *cli) fails(want string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.err == nil {
		c.t.Fatalf("pgvault %s succeeded; want an error\nstdout: %s", strings.Join(args, " "), r.stdout)
	}
	if !strings.Contains(r.stderr, want) {
		c.t.Errorf("pgvault %s: stderr = %q, want it to contain %q", strings.Join(args, " "), r.stderr, want)
	}
	return r
}

// jsonOf decodes a command's JSON output.
func jsonOf[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	return v
}

// tableRows splits table output into rows of fields.
func tableRows(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

type vaultJSON struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Location string            `json:"location"`
	Tags     map[string]string `json:"tags"`
	Identity struct {
		Type        string `json:"type"`
		PrincipalID string `json:"principalId"`
	} `json:"identity"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
		StorageSettings   []struct {
			DatastoreType string `json:"datastoreType"`
			Type          string `json:"type"`
		} `json:"storageSettings"`
		SecuritySettings struct {
			SoftDeleteSettings struct {
				State string `json:"state"`
			} `json:"softDeleteSettings"`
			ImmutabilitySettings struct {
				State string `json:"state"`
			} `json:"immutabilitySettings"`
		} `json:"securitySettings"`
	} `json:"properties"`
}

type policyJSON struct {
	Name       string `json:"name"`
	Properties struct {
		ObjectType      string   `json:"objectType"`
		DatasourceTypes []string `json:"datasourceTypes"`
		PolicyRules     []struct {
			Name             string `json:"name"`
			ObjectType       string `json:"objectType"`
			IsDefault        *bool  `json:"isDefault"`
			BackupParameters *struct {
				ObjectType string `json:"objectType"`
				BackupType string `json:"backupType"`
			} `json:"backupParameters"`
			DataStore *struct {
				DataStoreType string `json:"dataStoreType"`
				ObjectType    string `json:"objectType"`
			} `json:"dataStore"`
			Trigger *struct {
				ObjectType string `json:"objectType"`
				Schedule   struct {
					RepeatingTimeIntervals []string `json:"repeatingTimeIntervals"`
					TimeZone               string   `json:"timeZone"`
				} `json:"schedule"`
				TaggingCriteria []struct {
					IsDefault       bool `json:"isDefault"`
					TaggingPriority int  `json:"taggingPriority"`
					TagInfo         struct {
						TagName string `json:"tagName"`
					} `json:"tagInfo"`
					Criteria []struct {
						ObjectType       string   `json:"objectType"`
						AbsoluteCriteria []string `json:"absoluteCriteria"`
					} `json:"criteria"`
				} `json:"taggingCriteria"`
			} `json:"trigger"`
			Lifecycles []struct {
				DeleteAfter struct {
					ObjectType string `json:"objectType"`
					Duration   string `json:"duration"`
				} `json:"deleteAfter"`
				SourceDataStore struct {
					DataStoreType string `json:"dataStoreType"`
					ObjectType    string `json:"objectType"`
				} `json:"sourceDataStore"`
			} `json:"lifecycles"`
		} `json:"policyRules"`
	} `json:"properties"`
}

const weekly = "R/2024-01-07T23:00:00+00:00/P1W"

func TestWalkthrough(t *testing.T) {
	c := newCLI(t)

	// Resource groups.
	r := c.ok("group", "create", "rg1", "--location", "westeurope", "--tag", "env=test")
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[0][0] != "NAME" || rows[1][0] != "rg1" || rows[1][1] != "westeurope" || rows[1][2] != "Succeeded" {
		t.Errorf("group create table:\n%s", r.stdout)
	}
	c.ok("group", "create", "rg2", "--location", "westeurope")
	c.ok("group", "create", "rg3", "--location", "northeurope")
	// Three groups in pages of two: the list follows nextLink.
	groups := jsonOf[[]struct{ Name string }](t, c.ok("group", "list", "-o", "json"))
	if len(groups) != 3 {
		t.Errorf("group list: %v, want 3 groups", groups)
	}
	if rows := tableRows(c.ok("group", "list").stdout); len(rows) != 4 {
		t.Errorf("group list table has %d rows, want a header and 3 groups", len(rows))
	}
	g := jsonOf[struct {
		Name string
		Tags map[string]string
	}](t, c.ok("group", "show", "rg1", "-o", "json"))
	if g.Name != "rg1" || g.Tags["env"] != "test" {
		t.Errorf("group show: %+v", g)
	}

	// A vault: create waits for the long-running operation.
	r = c.ok("vault", "create", "vault1", "-g", "rg1", "--location", "westeurope", "--redundancy", "GeoRedundant",
		"--soft-delete", "On", "--immutability", "Unlocked", "--tag", "team=db", "--tag", "tier=gold", "-o", "json")
	if !strings.Contains(r.stderr, "waiting for operation ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("vault create stderr (not a terminal) = %q, want one waiting line", r.stderr)
	}
	v := jsonOf[vaultJSON](t, r)
	if v.Name != "vault1" || v.Properties.ProvisioningState != "Succeeded" || v.Identity.Type != "SystemAssigned" || v.Identity.PrincipalID == "" ||
		len(v.Properties.StorageSettings) != 1 || v.Properties.StorageSettings[0].Type != "GeoRedundant" || v.Properties.StorageSettings[0].DatastoreType != "VaultStore" ||
		v.Properties.SecuritySettings.SoftDeleteSettings.State != "On" || v.Properties.SecuritySettings.ImmutabilitySettings.State != "Unlocked" ||
		v.Tags["team"] != "db" || v.Tags["tier"] != "gold" {
		t.Errorf("vault create: %+v", v)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"id\": ") {
		t.Errorf("json output is not the server's JSON indented:\n%s", r.stdout)
	}
	c.ok("vault", "create", "vault2", "-g", "rg1", "-l", "westeurope", "--identity", "None")
	c.ok("vault", "create", "vault3", "-g", "rg2", "-l", "westeurope")

	// show, table and json.
	r = c.ok("vault", "show", "vault1", "-g", "rg1")
	rows := tableRows(r.stdout)
	if len(rows) != 2 || strings.Join(rows[0], " ") != "NAME RESOURCE GROUP LOCATION STATE REDUNDANCY PRINCIPAL ID" {
		t.Fatalf("vault show table:\n%s", r.stdout)
	}
	if want := []string{"vault1", "rg1", "westeurope", "Succeeded", "GeoRedundant", v.Identity.PrincipalID}; strings.Join(rows[1], " ") != strings.Join(want, " ") {
		t.Errorf("vault show row = %v, want %v", rows[1], want)
	}
	if got := jsonOf[vaultJSON](t, c.ok("vault", "show", "vault1", "-g", "rg1", "-o", "json")); got.ID != v.ID {
		t.Errorf("vault show json: %+v", got)
	}

	// list: of a group, of the subscription (three vaults: two pages).
	if vs := jsonOf[[]vaultJSON](t, c.ok("vault", "list", "-g", "rg1", "-o", "json")); len(vs) != 2 {
		t.Errorf("vault list -g rg1: %d vaults, want 2", len(vs))
	}
	r = c.ok("vault", "list")
	rows = tableRows(r.stdout)
	if len(rows) != 4 {
		t.Fatalf("vault list table:\n%s", r.stdout)
	}
	if rows[2][0] != "vault2" || rows[2][len(rows[2])-1] != "-" || rows[3][0] != "vault3" || rows[3][1] != "rg2" {
		t.Errorf("vault list rows = %v", rows)
	}

	// update (PATCH) and check-name.
	v = jsonOf[vaultJSON](t, c.ok("vault", "update", "vault2", "-g", "rg1", "--identity", "SystemAssigned", "--tag", "x=y", "-o", "json"))
	if v.Identity.Type != "SystemAssigned" || v.Identity.PrincipalID == "" || v.Tags["x"] != "y" {
		t.Errorf("vault update: %+v", v)
	}
	c.fails("nothing to update", "vault", "update", "vault2", "-g", "rg1")
	r = c.ok("vault", "check-name", "vault1", "-g", "rg1", "--location", "westeurope")
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[1][1] != "false" || rows[1][2] != "AlreadyExists" {
		t.Errorf("check-name of a taken name:\n%s", r.stdout)
	}
	a := jsonOf[struct{ NameAvailable bool }](t, c.ok("vault", "check-name", "vault9", "-g", "rg1", "-l", "westeurope", "-o", "json"))
	if !a.NameAvailable {
		t.Error("check-name of a free name: not available")
	}

	// A policy from flags, as Azure spells it.
	r = c.ok("policy", "create", "pol-flags", "-g", "rg1", "--vault", "vault1", "--schedule", weekly, "--time-zone", "UTC",
		"--retention", "Default=P3M", "--retention", "Weekly=P12W", "--retention", "Monthly=P12M", "--retention", "Yearly=P10Y", "-o", "json")
	p := jsonOf[policyJSON](t, r)
	checkFlagPolicy(t, p)

	// The same policy from a file: the whole resource as show prints it ...
	shown := c.ok("policy", "show", "pol-flags", "-g", "rg1", "--vault", "vault1", "-o", "json").stdout
	file := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(file, []byte(shown), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFlagPolicy(t, jsonOf[policyJSON](t, c.ok("policy", "create", "pol-file", "-g", "rg1", "--vault", "vault1", "--file", file, "-o", "json")))
	// ... and only its properties, from stdin.
	var whole struct{ Properties json.RawMessage }
	if err := json.Unmarshal([]byte(shown), &whole); err != nil {
		t.Fatal(err)
	}
	r = c.runIn(string(whole.Properties), "policy", "create", "pol-stdin", "-g", "rg1", "--vault", "vault1", "-f", "-", "-o", "json")
	if r.err != nil {
		t.Fatalf("policy create -f -: %v\n%s", r.err, r.stderr)
	}
	checkFlagPolicy(t, jsonOf[policyJSON](t, r))

	// list and show.
	r = c.ok("policy", "list", "--vault", "vault1", "-g", "rg1")
	rows = tableRows(r.stdout)
	if len(rows) != 4 || strings.Join(rows[0], " ") != "NAME SCHEDULE RETENTION" {
		t.Fatalf("policy list table:\n%s", r.stdout)
	}
	wantRow := "pol-file " + weekly + " (UTC) Default=P3M,Weekly=P12W,Monthly=P12M,Yearly=P10Y"
	if got := strings.Join(rows[1], " "); got != wantRow {
		t.Errorf("policy list row = %q, want %q", got, wantRow)
	}
	if ps := jsonOf[[]policyJSON](t, c.ok("policy", "list", "--vault", "vault1", "-g", "rg1", "-o", "json")); len(ps) != 3 {
		t.Errorf("policy list json: %d policies, want 3", len(ps))
	}
	r = c.ok("policy", "show", "pol-stdin", "-g", "rg1", "--vault", "vault1")
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[1][0] != "pol-stdin" {
		t.Errorf("policy show table:\n%s", r.stdout)
	}

	// Deletes, in order: a group with vaults is refused.
	c.fails("Error: ResourceGroupNotEmpty: ", "group", "delete", "rg1")
	r = c.ok("policy", "delete", "pol-stdin", "-g", "rg1", "--vault", "vault1")
	if strings.TrimSpace(r.stdout) != "Deleted backup policy 'pol-stdin'." {
		t.Errorf("policy delete: %q", r.stdout)
	}
	r = c.ok("policy", "delete", "pol-stdin", "-g", "rg1", "--vault", "vault1")
	if strings.TrimSpace(r.stdout) != "Backup policy 'pol-stdin' did not exist." {
		t.Errorf("second policy delete: %q", r.stdout)
	}
	c.fails("Error: ResourceNotFound: The backup policy 'pol-stdin' was not found", "policy", "show", "pol-stdin", "-g", "rg1", "--vault", "vault1")
	for _, vn := range []string{"vault1", "vault2"} {
		if r := c.ok("vault", "delete", vn, "-g", "rg1", "-o", "json"); r.stdout != "" {
			t.Errorf("vault delete -o json printed %q", r.stdout)
		}
	}
	c.ok("vault", "delete", "vault3", "-g", "rg2")
	c.fails("Error: ResourceNotFound: ", "vault", "show", "vault1", "-g", "rg1")
	r = c.ok("group", "delete", "rg1")
	if strings.TrimSpace(r.stdout) != "Deleted resource group 'rg1'." {
		t.Errorf("group delete: %q", r.stdout)
	}
	c.fails("Error: ResourceGroupNotFound: Resource group 'rg1' could not be found. (target: resourceGroupName)", "group", "show", "rg1")
	if rows := tableRows(c.ok("vault", "list").stdout); len(rows) != 1 {
		t.Errorf("vaults left: %v", rows)
	}
}

// checkFlagPolicy checks the policy built from the walkthrough's flags.
func checkFlagPolicy(t *testing.T, p policyJSON) {
	t.Helper()
	pr := p.Properties
	if pr.ObjectType != "BackupPolicy" || len(pr.DatasourceTypes) != 1 || pr.DatasourceTypes[0] != "Microsoft.DBforPostgreSQL/flexibleServers" || len(pr.PolicyRules) != 5 {
		t.Fatalf("policy %s: %+v", p.Name, pr)
	}
	br := pr.PolicyRules[0]
	if br.Name != "BackupWeekly" || br.ObjectType != "AzureBackupRule" || br.BackupParameters == nil || br.BackupParameters.ObjectType != "AzureBackupParams" ||
		br.BackupParameters.BackupType != "Full" || br.DataStore == nil || br.DataStore.DataStoreType != "VaultStore" || br.DataStore.ObjectType != "DataStoreInfoBase" ||
		br.Trigger == nil || br.Trigger.ObjectType != "ScheduleBasedTriggerContext" || br.Trigger.Schedule.TimeZone != "UTC" ||
		len(br.Trigger.Schedule.RepeatingTimeIntervals) != 1 || br.Trigger.Schedule.RepeatingTimeIntervals[0] != weekly {
		t.Errorf("policy %s: backup rule %+v", p.Name, br)
	}
	want := []struct {
		tag       string
		priority  int
		criterion string
		duration  string
	}{{"Default", 99, "", "P3M"}, {"Weekly", 20, "FirstOfWeek", "P12W"}, {"Monthly", 15, "FirstOfMonth", "P12M"}, {"Yearly", 10, "FirstOfYear", "P10Y"}}
	if br.Trigger == nil || len(br.Trigger.TaggingCriteria) != len(want) {
		t.Fatalf("policy %s: tagging criteria %+v", p.Name, br.Trigger)
	}
	for i, w := range want {
		tc := br.Trigger.TaggingCriteria[i]
		if tc.TagInfo.TagName != w.tag || tc.TaggingPriority != w.priority || tc.IsDefault != (w.tag == "Default") {
			t.Errorf("policy %s: tagging criterion %d = %+v, want %+v", p.Name, i, tc, w)
		}
		if w.criterion == "" {
			if len(tc.Criteria) != 0 {
				t.Errorf("policy %s: the Default tag has criteria %+v", p.Name, tc.Criteria)
			}
		} else if len(tc.Criteria) != 1 || tc.Criteria[0].ObjectType != "ScheduleBasedBackupCriteria" ||
			len(tc.Criteria[0].AbsoluteCriteria) != 1 || tc.Criteria[0].AbsoluteCriteria[0] != w.criterion {
			t.Errorf("policy %s: criteria of %s = %+v", p.Name, w.tag, tc.Criteria)
		}
		rr := pr.PolicyRules[i+1]
		if rr.Name != w.tag || rr.ObjectType != "AzureRetentionRule" || rr.IsDefault == nil || *rr.IsDefault != (w.tag == "Default") || len(rr.Lifecycles) != 1 {
			t.Errorf("policy %s: retention rule %d = %+v", p.Name, i, rr)
			continue
		}
		lc := rr.Lifecycles[0]
		if lc.DeleteAfter.ObjectType != "AbsoluteDeleteOption" || lc.DeleteAfter.Duration != w.duration ||
			lc.SourceDataStore.DataStoreType != "VaultStore" || lc.SourceDataStore.ObjectType != "DataStoreInfoBase" {
			t.Errorf("policy %s: lifecycle of %s = %+v", p.Name, w.tag, lc)
		}
	}
}

func TestErrors(t *testing.T) {
	c := newCLI(t)

	// A vault in a missing group: the server's code and message.
	r := c.fails("Error: ResourceGroupNotFound: Resource group 'nope' could not be found. (target: resourceGroupName)\n",
		"vault", "create", "vault1", "-g", "nope", "--location", "westeurope")
	var ae *client.APIError
	if !errors.As(r.err, &ae) || ae.Code != "ResourceGroupNotFound" || ae.StatusCode != http.StatusNotFound {
		t.Errorf("error = %#v, want the server's *APIError", r.err)
	}

	c.ok("group", "create", "rg1", "-l", "westeurope")
	c.ok("vault", "create", "vault1", "-g", "rg1", "-l", "westeurope")

	// A policy without Default retention: refused by the server with its code.
	r = c.fails("Error: UserErrorMissingDefaultRetentionRule: ",
		"policy", "create", "pol-nodefault", "-g", "rg1", "--vault", "vault1", "--schedule", weekly, "--retention", "Weekly=P12W")
	if !errors.As(r.err, &ae) || ae.Code != "UserErrorMissingDefaultRetentionRule" || ae.StatusCode != http.StatusBadRequest {
		t.Errorf("error = %#v", r.err)
	}
	// A policy breaking two rules: each problem on a line of its own.
	r = c.fails("Error: UserErrorUnsupportedBackupFrequency: ",
		"policy", "create", "pol-two", "-g", "rg1", "--vault", "vault1", "--schedule", "R/2024-01-07T23:00:00+00:00/PT1H", "--retention", "Weekly=P12W")
	if !strings.Contains(r.stderr, "\n  - UserErrorMissingDefaultRetentionRule: ") || !strings.Contains(r.stderr, "\n  - UserErrorUnsupportedBackupFrequency: ") {
		t.Errorf("details are not listed:\n%s", r.stderr)
	}
	file := filepath.Join(t.TempDir(), "p.json")
	body := `{"objectType":"BackupPolicy","datasourceTypes":["Microsoft.DBforPostgreSQL/flexibleServers"],"policyRules":[
	  {"name":"BackupDaily","objectType":"AzureBackupRule","backupParameters":{"objectType":"AzureBackupParams","backupType":"Full"},
	   "dataStore":{"dataStoreType":"VaultStore","objectType":"DataStoreInfoBase"},
	   "trigger":{"objectType":"ScheduleBasedTriggerContext","schedule":{"repeatingTimeIntervals":["R/2024-01-07T23:00:00+00:00/P1D"]},
	     "taggingCriteria":[{"isDefault":true,"taggingPriority":99,"tagInfo":{"tagName":"Default"}}]}}]}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c.fails("Error: UserErrorMissingDefaultRetentionRule: The policy has no AzureRetentionRule named 'Default'",
		"policy", "create", "pol-nodefault", "-g", "rg1", "--vault", "vault1", "--file", file)
	c.fails("Error: ResourceNotFound: ", "policy", "show", "pol-nodefault", "-g", "rg1", "--vault", "vault1")

	// Mistakes caught before any request.
	c.fails("the tag must be Default, Weekly, Monthly or Yearly", "policy", "create", "pol1", "-g", "rg1", "--vault", "vault1", "--schedule", weekly, "--retention", "Daily=P7D")
	c.fails("use TAG=DURATION", "policy", "create", "pol1", "-g", "rg1", "--vault", "vault1", "--schedule", weekly, "--retention", "P7D")
	c.fails("give the policy with --file", "policy", "create", "pol1", "-g", "rg1", "--vault", "vault1")
	c.fails("not both", "policy", "create", "pol1", "-g", "rg1", "--vault", "vault1", "--file", file, "--schedule", weekly)
	c.fails("must hold a JSON object", "policy", "create", "pol1", "-g", "rg1", "--vault", "vault1", "--file", "-")
	c.fails(`required flag(s) "vault" not set`, "policy", "list", "-g", "rg1")
	c.fails(`required flag(s) "location" not set`, "vault", "create", "v2", "-g", "rg1")
	c.fails(`invalid --output "yaml"`, "vault", "list", "-o", "yaml")
	c.fails(`invalid --tag "novalue"`, "group", "create", "rg2", "-l", "westeurope", "--tag", "novalue")
	c.fails("Error: InvalidPropertyValue: ", "vault", "create", "vault2", "-g", "rg1", "-l", "westeurope", "--redundancy", "Triple")
	c.fails("Error: InvalidSubscriptionId: ", "--subscription", "not-a-uuid", "group", "list")

	// The server comes from --server, else PGVAULT_SERVER.
	c.fails("Error: while checking --server (or PGVAULT_SERVER): the server URL \"localhost:7070\" must be an absolute http:// or https:// URL", "--server", "localhost:7070", "group", "list")
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	c.fails("connect", "--server", deadURL, "group", "list")
	c.env["PGVAULT_SERVER"] = deadURL
	c.fails("connect", "group", "list")
}

func TestNoWait(t *testing.T) {
	c := newCLI(t)
	c.ok("group", "create", "rg1", "-l", "westeurope")
	r := c.ok("vault", "create", "vault1", "-g", "rg1", "-l", "westeurope", "--no-wait", "-o", "json")
	if v := jsonOf[vaultJSON](t, r); v.Properties.ProvisioningState != "Provisioning" {
		t.Errorf("vault create --no-wait printed state %q, want Provisioning", v.Properties.ProvisioningState)
	}
	if strings.Contains(r.stderr, "waiting for operation") || !strings.Contains(r.stderr, "not waiting") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestProgressOnTerminal(t *testing.T) {
	saved := stderrIsTerminal
	stderrIsTerminal = func(io.Writer) bool { return true }
	t.Cleanup(func() { stderrIsTerminal = saved })
	c := newCLI(t)
	c.ok("group", "create", "rg1", "-l", "westeurope")
	r := c.ok("vault", "create", "vault1", "-g", "rg1", "-l", "westeurope")
	// A spinner line, redrawn on every poll and cleared at the end.
	if !strings.HasPrefix(r.stderr, "| waiting for vault vault1 (operation ") || !strings.Contains(r.stderr, "\r\x1b[K") ||
		!strings.Contains(r.stderr, ": Succeeded, ") || !strings.HasSuffix(r.stderr, "\r\x1b[K") || strings.Contains(r.stderr, "\n") {
		t.Errorf("stderr = %q", r.stderr)
	}
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[1][0] != "vault1" {
		t.Errorf("stdout = %q", r.stdout)
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
}
