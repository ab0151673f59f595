package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/testserver"
)

// denied is the line the CLI prints when RBAC refuses a request.
func denied(p testserver.Principal, action, scope string) string {
	return fmt.Sprintf("Error: AuthorizationFailed: The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid.\n",
		p.ClientID, p.ObjectID, action, scope)
}

// noSecret fails the test if a command printed one of the secrets.
func noSecret(t *testing.T, r result, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && (strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s)) {
			t.Errorf("a secret was printed:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
		}
	}
}

func TestToken(t *testing.T) {
	c := newCLI(t)
	ts := c.ts

	// From the credentials file: a JWT the API takes, as curl would send it.
	r := c.ok("token")
	tok := strings.TrimSpace(r.stdout)
	if strings.Count(tok, ".") != 2 || r.stderr != "" {
		t.Fatalf("pgvault token printed %q, stderr %q", r.stdout, r.stderr)
	}
	noSecret(t, r, ts.Admin.Secret)
	if status := get(t, http.DefaultClient, ts.URL+client.ResourceGroupsPath(testSub)+"?api-version="+client.APIVersionResources, tok); status != http.StatusOK {
		t.Errorf("GET with the printed token: status %d", status)
	}
	js := jsonOf[struct {
		AccessToken string    `json:"accessToken"`
		ExpiresOn   time.Time `json:"expiresOn"`
		TokenType   string    `json:"tokenType"`
	}](t, c.ok("token", "-o", "json"))
	if strings.Count(js.AccessToken, ".") != 2 || js.TokenType != "Bearer" || time.Until(js.ExpiresOn) < 55*time.Minute || time.Until(js.ExpiresOn) > time.Hour {
		t.Errorf("token -o json = %+v", js)
	}

	// Any principal, by client ID, with the secret in the environment or on stdin.
	p := ts.NewPrincipal(t, "ci")
	c.env["PGVAULT_CLIENT_SECRET"] = p.Secret
	r = c.ok("token", "--client-id", p.ClientID)
	noSecret(t, r, p.Secret)
	delete(c.env, "PGVAULT_CLIENT_SECRET")
	r = c.runIn(p.Secret+"\n", "token", "--client-id", p.ClientID, "--tenant", ts.TenantID)
	if r.err != nil || strings.Count(r.stdout, ".") != 2 {
		t.Fatalf("token with the secret on stdin: %v\n%s", r.err, r.stderr)
	}
	// Its token is that principal's: it has no role yet.
	anon := c.as(p)
	anon.env["PGVAULT_TOKEN"] = strings.TrimSpace(r.stdout)
	anon.fails(denied(p, "Microsoft.Resources/subscriptions/resourceGroups/read", "/subscriptions/"+testSub+"/resourcegroups"), "group", "list")

	// A wrong secret: the issuer's error, never the secret.
	const wrong = "this-is-a-wrong-secret-of-more-than-forty-characters"
	ts.RememberSecret(wrong)
	r = c.runIn(wrong, "token", "--client-id", p.ClientID)
	want := "Error: while getting a token for client '" + p.ClientID + "' from " + ts.URL + "/" + ts.TenantID +
		"/oauth2/v2.0/token: invalid_client: AADSTS7000215: Invalid client secret provided for client '" + p.ClientID + "'."
	if r.err == nil || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("wrong secret: stderr %q\nwant it to start with %q", r.stderr, want)
	}
	noSecret(t, r, wrong, p.Secret)
	c.fails("no client secret: give it in PGVAULT_CLIENT_SECRET or on standard input", "token", "--client-id", p.ClientID)
	c.fails("--tenant goes with --client-id", "token", "--tenant", ts.TenantID)

	// PGVAULT_TOKEN wins over the credentials file, for every command.
	c.env["PGVAULT_TOKEN"] = ts.Token(t, p.ObjectID, p.ClientID)
	c.fails(denied(p, "Microsoft.Resources/subscriptions/resourceGroups/read", "/subscriptions/"+testSub+"/resourcegroups"), "group", "list")
	if r := c.ok("token"); strings.TrimSpace(r.stdout) != c.env["PGVAULT_TOKEN"] {
		t.Errorf("pgvault token with PGVAULT_TOKEN printed %q", r.stdout)
	}
	delete(c.env, "PGVAULT_TOKEN")
	c.ok("group", "list")

	// No credentials at all.
	none := &cli{t: t, env: map[string]string{"HOME": t.TempDir(), "PGVAULT_SERVER": ts.URL}}
	none.fails("Error: no credentials: "+filepath.Join(none.env["HOME"], ".local", "share", "pgvault", "admin-credentials.json")+
		" does not exist; give a credentials file with --credentials (or PGVAULT_CREDENTIALS) or a token in PGVAULT_TOKEN", "group", "list")
	none.fails("give --tenant: there is no credentials file to take the tenant from", "token", "--client-id", p.ClientID)
	none.fails("Error: while reading credentials: open /nonexistent/creds.json: no such file or directory", "--credentials", "/nonexistent/creds.json", "group", "list")
	none.env["PGVAULT_TOKEN"] = ts.AdminToken(t)
	none.ok("group", "list")
}

func TestPrincipals(t *testing.T) {
	c := newCLI(t)
	ts := c.ts
	var secrets []string
	remember := func(s string) string {
		ts.RememberSecret(s)
		secrets = append(secrets, s)
		return s
	}

	// create: the secret once, with a note on stderr.
	r := c.ok("principal", "create", "ci")
	rows := tableRows(r.stdout)
	if len(rows) != 3 || strings.Join(rows[0], " ") != "NAME CLIENT ID OBJECT ID TENANT ID" || rows[1][0] != "ci" || rows[1][3] != ts.TenantID ||
		rows[2][0] != "Client" || rows[2][1] != "secret:" {
		t.Fatalf("principal create table:\n%s", r.stdout)
	}
	secret := remember(rows[2][2])
	if len(secret) != 43 || !strings.Contains(r.stderr, "The client secret is shown only now: pgvault keeps only its hash.") {
		t.Errorf("secret %q (want 43 base64url characters: 256 bits); stderr %q", secret, r.stderr)
	}
	ci := testserver.Principal{Name: "ci", ClientID: rows[1][1], ObjectID: rows[1][2], TenantID: ts.TenantID, Secret: secret}
	c.env["PGVAULT_CLIENT_SECRET"] = secret
	c.ok("token", "--client-id", ci.ClientID)
	delete(c.env, "PGVAULT_CLIENT_SECRET")
	c.fails("Error: the service principal 'ci' already exists; give it a new secret with: pgvault principal reset-secret ci", "principal", "create", "ci")

	// -o json: usable as a credentials file.
	r = c.ok("principal", "create", "ci2", "-o", "json")
	out := jsonOf[newPrincipalOutput](t, r)
	remember(out.ClientSecret)
	if out.Name != "ci2" || out.Server != ts.URL || out.TenantID != ts.TenantID || out.ClientID == "" || out.ObjectID == "" || len(out.ClientSecret) != 43 {
		t.Errorf("principal create -o json = %+v", out)
	}
	file := filepath.Join(t.TempDir(), "ci2.json")
	if err := os.WriteFile(file, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	ci2 := testserver.Principal{Name: "ci2", ClientID: out.ClientID, ObjectID: out.ObjectID}
	c.fails(denied(ci2, "Microsoft.Authorization/servicePrincipals/read", "/providers/Pgvault.Identity/servicePrincipals"),
		"--credentials", file, "principal", "list")

	// --credentials-out: a private file, no secret printed.
	credsOut := filepath.Join(t.TempDir(), "ci3.json")
	r = c.ok("principal", "create", "ci3", "--credentials-out", credsOut)
	fi, err := os.Stat(credsOut)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v", fi, err)
	}
	ci3 := readCredsFile(t, credsOut)
	remember(ci3.ClientSecret)
	noSecret(t, r, ci3.ClientSecret)
	if ci3.Server != ts.URL || ci3.TenantID != ts.TenantID || !strings.Contains(r.stderr, "The credentials of 'ci3' are in "+credsOut) {
		t.Errorf("credentials %+v; stderr %q", ci3, r.stderr)
	}
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[1][0] != "ci3" || rows[1][1] != ci3.ClientID {
		t.Errorf("principal create --credentials-out table:\n%s", r.stdout)
	}
	if r := c.ok("--credentials", credsOut, "token"); strings.Count(r.stdout, ".") != 2 {
		t.Errorf("token with the written credentials: %q", r.stdout)
	}
	c.fails("while checking --credentials-out: the directory of /nonexistent/x.json does not exist", "principal", "create", "ci4", "--credentials-out", "/nonexistent/x.json")
	c.fails("ServicePrincipalNotFound", "principal", "show", "ci4")

	// show and list never print a secret (the server keeps none).
	for _, args := range [][]string{{"principal", "show", "ci"}, {"principal", "show", "ci", "-o", "json"}, {"principal", "list"}, {"principal", "list", "-o", "json"}} {
		r := c.ok(args...)
		noSecret(t, r, append(secrets, ts.Admin.Secret)...)
		if strings.Contains(strings.ToLower(r.stdout), "secret\"") || strings.Contains(r.stdout, "clientSecret") {
			t.Errorf("%v printed a secret field:\n%s", args, r.stdout)
		}
	}
	r = c.ok("principal", "list")
	if rows := tableRows(r.stdout); len(rows) != 5 || strings.Join(rows[0], " ") != "NAME CLIENT ID OBJECT ID SECRET UPDATED" {
		t.Errorf("principal list (admin, ci, ci2, ci3):\n%s", r.stdout)
	}
	sp := jsonOf[struct {
		Name       string
		Properties struct{ ClientID, ObjectID string }
	}](t, c.ok("principal", "show", "ci", "-o", "json"))
	if sp.Name != "ci" || sp.Properties.ClientID != ci.ClientID || sp.Properties.ObjectID != ci.ObjectID {
		t.Errorf("principal show -o json = %+v", sp)
	}

	// reset-secret: the old secret stops working, the new one works.
	r = c.ok("principal", "reset-secret", "ci")
	rows = tableRows(r.stdout)
	newSecret := remember(rows[len(rows)-1][2])
	if newSecret == secret || rows[1][1] != ci.ClientID || !strings.Contains(r.stderr, "shown only now") {
		t.Errorf("reset-secret:\n%s%s", r.stdout, r.stderr)
	}
	r = c.runIn(secret, "token", "--client-id", ci.ClientID)
	if r.err == nil || !strings.Contains(r.stderr, "invalid_client") {
		t.Errorf("the old secret still works: %v", r.err)
	}
	if r := c.runIn(newSecret, "token", "--client-id", ci.ClientID); r.err != nil {
		t.Errorf("the new secret: %v\n%s", r.err, r.stderr)
	}
	r = c.ok("principal", "reset-secret", "ci3", "--credentials-out", credsOut)
	if again := readCredsFile(t, credsOut); again.ClientSecret == ci3.ClientSecret || again.ClientID != ci3.ClientID {
		t.Error("reset-secret --credentials-out did not write the new secret")
	} else {
		remember(again.ClientSecret)
		noSecret(t, r, again.ClientSecret)
	}
	c.fails("Error: ServicePrincipalNotFound: The service principal 'nope' does not exist.", "principal", "reset-secret", "nope")
	c.fails("ServicePrincipalNotFound", "principal", "show", "nope")

	// delete.
	if r := c.ok("principal", "delete", "ci2"); strings.TrimSpace(r.stdout) != "Deleted service principal 'ci2'." {
		t.Errorf("principal delete: %q", r.stdout)
	}
	if r := c.ok("principal", "delete", "ci2"); strings.TrimSpace(r.stdout) != "Service principal 'ci2' did not exist." {
		t.Errorf("second principal delete: %q", r.stdout)
	}
	c.fails("Error: CannotDeleteAdminPrincipal: ", "principal", "delete", "pgvault-admin")
}

func TestRoles(t *testing.T) {
	c := newCLI(t)
	ts := c.ts
	c.ok("group", "create", "rg1", "-l", "westeurope")
	vaultOut := jsonOf[vaultJSON](t, c.ok("vault", "create", "vault1", "-g", "rg1", "-l", "westeurope", "-o", "json"))
	rgScope := "/subscriptions/" + testSub + "/resourceGroups/rg1"
	const readerID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

	// Role definitions.
	r := c.ok("role", "definition", "list")
	for _, role := range []string{"Owner", "Contributor", "Reader", "Backup Contributor", "Backup Operator", "Backup Reader"} {
		if !regexp.MustCompile(`(?m)^` + role + `\s+[0-9a-f-]{36}\s`).MatchString(r.stdout) {
			t.Errorf("role definition list lacks %s:\n%s", role, r.stdout)
		}
	}
	r = c.ok("role", "definition", "list", "--name", "Reader")
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[1][0] != "Reader" || rows[1][1] != readerID {
		t.Errorf("role definition list --name Reader:\n%s", r.stdout)
	}
	r = c.ok("role", "definition", "show", readerID)
	if !strings.Contains(r.stdout, "Actions:\n  */read") {
		t.Errorf("role definition show:\n%s", r.stdout)
	}
	def := jsonOf[struct {
		ID         string
		Name       string
		Properties struct{ RoleName string }
	}](t, c.ok("role", "definition", "show", "Backup Reader", "-o", "json"))
	if def.Properties.RoleName != "Backup Reader" || def.ID != "/subscriptions/"+testSub+"/providers/Microsoft.Authorization/roleDefinitions/"+def.Name {
		t.Errorf("role definition show by name: %+v", def)
	}
	c.fails("RoleDefinitionDoesNotExist", "role", "definition", "show", "00000000-0000-4000-8000-000000000000")

	// A principal with Reader on the group.
	credsOut := filepath.Join(t.TempDir(), "op.json")
	c.ok("principal", "create", "op", "--credentials-out", credsOut)
	opCreds := readCredsFile(t, credsOut)
	ts.RememberSecret(opCreds.ClientSecret)
	sp := jsonOf[struct{ Properties struct{ ObjectID string } }](t, c.ok("principal", "show", "op", "-o", "json"))
	op := testserver.Principal{Name: "op", ClientID: opCreds.ClientID, ObjectID: sp.Properties.ObjectID, Secret: opCreds.ClientSecret}
	asOp := c.as(op)
	asOp.fails(denied(op, "Microsoft.DataProtection/backupVaults/read", rgScope+"/providers/Microsoft.DataProtection/backupVaults"), "vault", "list", "-g", "rg1")

	ra := jsonOf[struct {
		Name       string
		Properties struct{ RoleDefinitionID, PrincipalID, PrincipalType, Scope string }
	}](t, c.ok("role", "assignment", "create", "--assignee-principal", "op", "--role", "Reader", "--scope", rgScope, "-o", "json"))
	if !isGUID(ra.Name) || ra.Properties.PrincipalID != op.ObjectID || !strings.HasSuffix(ra.Properties.RoleDefinitionID, "/"+readerID) ||
		ra.Properties.Scope != rgScope || ra.Properties.PrincipalType != "ServicePrincipal" {
		t.Errorf("role assignment create: %+v", ra)
	}
	asOp.ok("vault", "list", "-g", "rg1")
	asOp.ok("vault", "show", "vault1", "-g", "rg1")
	// Denials print ARM's message.
	asOp.fails(denied(op, "Microsoft.Resources/subscriptions/resourceGroups/write", "/subscriptions/"+testSub+"/resourceGroups/rg2"),
		"group", "create", "rg2", "-l", "westeurope")
	asOp.fails(denied(op, "Microsoft.DataProtection/backupVaults/delete", rgScope+"/providers/Microsoft.DataProtection/backupVaults/vault1"),
		"vault", "delete", "vault1", "-g", "rg1")

	// list: of a principal, as a table with role names, and as JSON.
	r = c.ok("role", "assignment", "list", "--assignee", op.ObjectID)
	rows := tableRows(r.stdout)
	if len(rows) != 2 || strings.Join(rows[0], " ") != "NAME ROLE PRINCIPAL ID PRINCIPAL TYPE SCOPE" ||
		strings.Join(rows[1], " ") != ra.Name+" Reader "+op.ObjectID+" ServicePrincipal "+rgScope {
		t.Errorf("role assignment list --assignee:\n%s", r.stdout)
	}
	if all := jsonOf[[]json.RawMessage](t, c.ok("role", "assignment", "list", "-o", "json")); len(all) != 2 {
		t.Errorf("role assignment list: %d assignments, want the admin's and op's", len(all))
	}

	// The vault's identity gets a role by the vault's name.
	r = c.ok("role", "assignment", "create", "--assignee-vault", "vault1", "-g", "rg1", "--role", "Backup Contributor", "--description", "vault1 backs up")
	rows = tableRows(r.stdout)
	if len(rows) != 2 || rows[1][1] != "Backup" || rows[1][2] != "Contributor" || rows[1][3] != vaultOut.Identity.PrincipalID || rows[1][5] != "/subscriptions/"+testSub {
		t.Errorf("role assignment create --assignee-vault:\n%s", r.stdout)
	}
	if vs := jsonOf[[]json.RawMessage](t, c.ok("role", "assignment", "list", "--assignee-vault", "vault1", "-g", "rg1", "-o", "json")); len(vs) != 1 {
		t.Errorf("the vault has %d assignments, want 1", len(vs))
	}
	c.ok("vault", "create", "vault2", "-g", "rg1", "-l", "westeurope", "--identity", "None")
	c.fails("the vault 'vault2' has no managed identity; give it one with: pgvault vault update vault2 -g rg1 --identity SystemAssigned",
		"role", "assignment", "create", "--assignee-vault", "vault2", "-g", "rg1", "--role", "Reader")

	// Mistakes.
	c.fails("Error: PrincipalNotFound: ", "role", "assignment", "create", "--assignee", "7a1f6a52-3c1e-4e8e-9a43-1d8f3c7c2b10", "--role", "Reader")
	c.fails("there is no role named 'Nope'; see the roles with: pgvault role definition list", "role", "assignment", "create", "--assignee", op.ObjectID, "--role", "Nope")
	c.fails("-g names the resource group of --assignee-vault", "role", "assignment", "create", "--assignee", op.ObjectID, "-g", "rg1", "--role", "Reader")
	c.fails("give only one of --assignee, --assignee-principal and --assignee-vault", "role", "assignment", "create", "--assignee", op.ObjectID, "--assignee-principal", "op", "--role", "Reader")
	c.fails("give the principal with --assignee", "role", "assignment", "create", "--role", "Reader")
	c.fails(`required flag(s) "role" not set`, "role", "assignment", "create", "--assignee", op.ObjectID)
	c.fails("Error: RoleAssignmentExists: ", "role", "assignment", "create", "--assignee", op.ObjectID, "--role", readerID, "--scope", rgScope)
	c.fails(`invalid --scope "subscriptions/x"`, "role", "assignment", "list", "--scope", "subscriptions/x")

	// A Contributor may not manage principals (that takes Owner).
	c.ok("role", "assignment", "create", "--assignee", op.ObjectID, "--role", "Contributor", "--scope", "/")
	asOp.ok("group", "create", "rg2", "-l", "westeurope")
	asOp.fails(denied(op, "Microsoft.Authorization/servicePrincipals/write", "/providers/Pgvault.Identity/servicePrincipals/sneaky"),
		"principal", "create", "sneaky")
	asOp.fails("AuthorizationFailed", "principal", "reset-secret", "pgvault-admin")

	// delete: the access goes with it.
	r = c.ok("role", "assignment", "delete", ra.Name, "--scope", rgScope)
	if strings.TrimSpace(r.stdout) != "Deleted role assignment '"+ra.Name+"' at scope '"+rgScope+"'." {
		t.Errorf("role assignment delete: %q", r.stdout)
	}
	r = c.ok("role", "assignment", "delete", ra.Name, "--scope", rgScope)
	if !strings.HasSuffix(strings.TrimSpace(r.stdout), "did not exist.") {
		t.Errorf("second role assignment delete: %q", r.stdout)
	}
	r = c.ok("role", "assignment", "list", "--assignee-principal", "op", "-o", "json")
	if as := jsonOf[[]json.RawMessage](t, r); len(as) != 1 {
		t.Errorf("op has %d assignments left, want Contributor at /", len(as))
	}
}

func TestAdminResetCredentials(t *testing.T) {
	c := newCLI(t)
	ts := c.ts
	c.ok("group", "create", "rg1", "-l", "westeurope")

	// Offline, on the data directory of the running server.
	r := c.ok("admin", "reset-credentials", "--data-dir", ts.DataDir, "--server", ts.URL)
	path := filepath.Join(ts.DataDir, adminCredentialsFile)
	creds := readCredsFile(t, path)
	ts.RememberSecret(creds.ClientSecret)
	want := fmt.Sprintf("New administrator credentials (client ID %s, server %s) written to %s.\n", ts.Admin.ClientID, ts.URL, path)
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	noSecret(t, r, creds.ClientSecret, ts.Admin.Secret)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file: %v, %v", fi, err)
	}
	if creds.ClientID != ts.Admin.ClientID || creds.TenantID != ts.TenantID || creds.ClientSecret == ts.Admin.Secret {
		t.Errorf("new credentials: client %q tenant %q, new secret %v", creds.ClientID, creds.TenantID, creds.ClientSecret != ts.Admin.Secret)
	}
	// The old secret stops working; the new file is the default one of a
	// client whose data directory is the server's.
	c.fails("invalid_client", "group", "list")
	fresh := &cli{t: t, env: map[string]string{"PGVAULT_DATA_DIR": ts.DataDir, "PGVAULT_SUBSCRIPTION": testSub}}
	if rows := tableRows(fresh.ok("group", "list").stdout); len(rows) != 2 || rows[1][0] != "rg1" {
		t.Errorf("group list with the new credentials: %v", rows)
	}
	// Again without --server: the old file's server is kept.
	fresh.ok("admin", "reset-credentials")
	if again := readCredsFile(t, path); again.Server != ts.URL || again.ClientSecret == creds.ClientSecret {
		t.Errorf("second reset: server %q, new secret %v", again.Server, again.ClientSecret != creds.ClientSecret)
	} else {
		ts.RememberSecret(again.ClientSecret)
	}
	fresh.ok("group", "list")
	c.fails("while looking for pgvault's database in /nonexistent", "admin", "reset-credentials", "--data-dir", "/nonexistent")
}

func TestConnection(t *testing.T) {
	ts := startServer(t, testserver.Options{TLS: true})
	c := cliFor(t, ts, nil)

	// The server named by the credentials file is https with a certificate
	// the CLI does not trust yet.
	r := c.fails("the server's TLS certificate is not trusted: give its CA certificate with --ca-cert (or PGVAULT_CA_CERT); "+
		"a server started with --tls-self-signed keeps it in tls/cert.pem in its data directory", "group", "list")
	if !strings.Contains(r.stderr, "certificate signed by unknown authority") {
		t.Errorf("the TLS error is not shown: %s", r.stderr)
	}
	c.ok("--ca-cert", ts.CACertFile, "group", "list")
	c.env["PGVAULT_CA_CERT"] = ts.CACertFile
	c.ok("group", "list")
	delete(c.env, "PGVAULT_CA_CERT")
	// By default the data directory's tls/cert.pem is trusted.
	c.env["PGVAULT_DATA_DIR"] = ts.DataDir
	c.ok("group", "list")
	c.fails("while reading the CA certificate (--ca-cert or PGVAULT_CA_CERT): ", "--ca-cert", "/nonexistent.pem", "group", "list")
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.fails("holds no PEM certificate", "--ca-cert", notPEM, "group", "list")

	// A credentials file others may read gets a warning.
	path := c.env["PGVAULT_CREDENTIALS"]
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := c.ok("group", "list"); !strings.Contains(r.stderr, "warning: the credentials file "+path+" may be read by other users (mode 0644); make it private with: chmod 600 "+path) {
		t.Errorf("no warning for a readable credentials file: %q", r.stderr)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}

	// --server wins over the credentials file's server.
	c.fails(`the server URL "ftp://x" must be an absolute http:// or https:// URL`, "--server", "ftp://x", "group", "list")
	c.env["PGVAULT_SERVER"] = "ftp://y"
	c.fails(`the server URL "ftp://y" must be`, "group", "list")
	delete(c.env, "PGVAULT_SERVER")

	// A malformed credentials file.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"clientId":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.fails("lacks tenantId, clientId or clientSecret", "--credentials", bad, "group", "list")
}
