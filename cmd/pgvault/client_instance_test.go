package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// docsRequest is the request body of validateForBackup in Azure's
// documentation of PostgreSQL flexible server backups (REST API), with its
// fields in its order.
const docsRequest = `{
  "backupInstance": {
    "dataSourceInfo": {
          "resourceID": "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/resourcegroups/pgflextest/providers/Microsoft.DBforPostgreSQL/flexibleServers/pgflextestserver",
          "resourceUri": "",
          "datasourceType": "Microsoft.DBforPostgreSQL/flexibleServers",
          "resourceName": "pgflextestserver",
          "resourceType": "Microsoft.DBforPostgreSQL/flexibleServers",
          "resourceLocation": "westUS",
          "objectType": "Datasource"
      },
      "dataSourceSetInfo": {
          "resourceID": "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/resourcegroups/pgflextest/providers/Microsoft.DBforPostgreSQL/flexibleServers/pgflextestserver",
          "resourceUri": "",
          "datasourceType": "Microsoft.DBforPostgreSQL/flexibleServers",
          "resourceName": "pgflextestserver",
          "resourceType": "Microsoft.DBforPostgreSQL/flexibleServers",
          "resourceLocation": "westUS",
          "objectType": "DatasourceSet"
      },
      "policyInfo": {
          "policyId": "/subscriptions/00001111-aaaa-2222-bbbb-3333cccc4444/resourceGroups/testBkpVaultRG/providers/Microsoft.DataProtection/backupVaults/testBkpVault/backupPolicies/pgflexpol1",
          "policyVersion": ""
      },
    "objectType": "BackupInstance"
  }
}`

func TestBackupInstanceBodyIsTheDocumentedOne(t *testing.T) {
	srv := &serverView{
		ID:       "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/resourcegroups/pgflextest/providers/Microsoft.DBforPostgreSQL/flexibleServers/pgflextestserver",
		Name:     "pgflextestserver",
		Location: "westUS",
	}
	bi := newBackupInstance(srv, "/subscriptions/00001111-aaaa-2222-bbbb-3333cccc4444/resourceGroups/testBkpVaultRG/providers/Microsoft.DataProtection/backupVaults/testBkpVault/backupPolicies/pgflexpol1")
	got, err := json.Marshal(map[string]any{"backupInstance": bi})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := json.Compact(&want, []byte(docsRequest)); err != nil {
		t.Fatal(err)
	}
	// Byte for byte: the same fields, values and order.
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("body:\n%s\nwant:\n%s", got, want.Bytes())
	}
}

func TestReadPasswordLine(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "s3cret\n", want: "s3cret"},
		{in: "s3cret\r\nignored second line\n", want: "s3cret"},
		{in: "no newline at the end", want: "no newline at the end"},
		{in: " spaces are kept \n", want: " spaces are kept "},
		{in: "", err: "standard input holds no password"},
		{in: "\nsecond", err: "standard input holds no password"},
		{in: strings.Repeat("x", maxPasswordBytes+1), err: "longer than"},
	} {
		got, err := readPasswordLine(strings.NewReader(tc.in))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("readPasswordLine(%.20q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("readPasswordLine(%.20q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	// A long password on a line of its own is read whole.
	long := strings.Repeat("p", maxPasswordBytes)
	if got, err := readPasswordLine(strings.NewReader(long + "\n")); err != nil || got != long {
		t.Errorf("a %d-byte password: %v", len(long), err)
	}
}

func TestDefaultInstanceName(t *testing.T) {
	guid := `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	if n := defaultInstanceName("pgflextestserver"); !regexp.MustCompile(`^pgflextestserver-` + guid + `$`).MatchString(n) {
		t.Errorf("default name = %q", n)
	}
	if a, b := defaultInstanceName("pg1"), defaultInstanceName("pg1"); a == b {
		t.Errorf("two default names are the same: %q", a)
	}
	// A 63-character server name (the longest) is shortened to fit 90
	// characters, without a double hyphen.
	long := strings.Repeat("a", 52) + "-" + strings.Repeat("b", 10)
	n := defaultInstanceName(long)
	if len(n) > maxInstanceName || !regexp.MustCompile(`^a{52}-`+guid+`$`).MatchString(n) {
		t.Errorf("default name of a long server = %q (%d characters)", n, len(n))
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"Reader":                               "Reader",
		"/subscriptions/x/resourceGroups/rg-1": "/subscriptions/x/resourceGroups/rg-1",
		"PostgreSQL Flexible Server Long Term Retention Backup Role": "'PostgreSQL Flexible Server Long Term Retention Backup Role'",
		"it's":   `'it'\''s'`,
		"rg(1)":  "'rg(1)'",
		"":       "''",
		"a$HOME": "'a$HOME'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
