package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/pgtest"
)

// okIn runs pgvault with stdin and fails the test unless it succeeds.
func (c *cli) okIn(stdin string, args ...string) result {
	c.t.Helper()
	r := c.runIn(stdin, args...)
	if r.err != nil {
		c.t.Fatalf("pgvault %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// failsIn runs pgvault with stdin and checks that it fails printing want on stderr.
func (c *cli) failsIn(stdin, want string, args ...string) result {
	c.t.Helper()
	r := c.runIn(stdin, args...)
	if r.err == nil {
		c.t.Fatalf("pgvault %s succeeded; want an error\nstdout: %s", strings.Join(args, " "), r.stdout)
	}
	if !strings.Contains(r.stderr, want) {
		c.t.Errorf("pgvault %s: stderr = %q, want it to contain %q", strings.Join(args, " "), r.stderr, want)
	}
	return r
}

// recordAll makes c collect every run, and checks when the test ends that
// none printed a secret and that the server logged none.
func recordAll(t *testing.T, c *cli, secrets ...string) {
	var runs []result
	c.transcript = &runs
	for _, s := range secrets {
		c.ts.RememberSecret(s) // testserver checks its log when it stops
	}
	t.Cleanup(func() {
		for _, r := range runs {
			noSecret(t, r, secrets...)
		}
		logs := c.ts.Logs()
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Error("the server's log contains a database password")
			}
		}
	})
}

// randomPassword returns a password no test cluster has.
func randomPassword() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "wrong-" + hex.EncodeToString(b[:])
}

// shellWords splits a command line the way a POSIX shell does, for the
// quoting that shellQuote makes.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quoted && ch == '\'':
			quoted = false
		case quoted:
			w.WriteByte(ch)
		case ch == '\'':
			quoted, inWord = true, true
		case ch == '\\' && i+1 < len(line):
			i++
			w.WriteByte(line[i])
			inWord = true
		case ch == ' ':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// hintCommands returns the pgvault commands an error's hint suggests, as
// arguments.
func hintCommands(stderr string) [][]string {
	var cmds [][]string
	for _, l := range strings.Split(stderr, "\n") {
		if rest, ok := strings.CutPrefix(l, "    pgvault "); ok {
			cmds = append(cmds, shellWords(rest))
		}
	}
	return cmds
}

type serverJSON struct {
	ID         string
	Name       string
	Location   string
	Tags       map[string]string
	Properties map[string]json.RawMessage
}

type instanceJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		DataSourceInfo    map[string]string `json:"dataSourceInfo"`
		DataSourceSetInfo map[string]string `json:"dataSourceSetInfo"`
		PolicyInfo        struct {
			PolicyID string `json:"policyId"`
		} `json:"policyInfo"`
		CurrentProtectionState string `json:"currentProtectionState"`
		ProvisioningState      string `json:"provisioningState"`
		ObjectType             string `json:"objectType"`
	} `json:"properties"`
}

// TestProtectWalkthrough is Azure's documented flow for PostgreSQL flexible
// servers with the CLI: register a real PostgreSQL 15 server, check it,
// validate (refused until the vault's identity has its two roles), protect,
// suspend and resume, stop protection and delete.
func TestProtectWalkthrough(t *testing.T) {
	t.Parallel()
	cluster := pgtest.Start(t, pgtest.Options{})
	c := newCLI(t)
	recordAll(t, c, cluster.SuperPassword)
	port := strconv.Itoa(cluster.Port)
	addr := cluster.Host + ":" + port

	c.ok("group", "create", "pgflextest", "-l", "westus")
	c.ok("group", "create", "TestBkpVaultRG", "-l", "westus")

	// Register: the password is the first line of stdin.
	r := c.okIn(cluster.SuperPassword+"\n", "server", "register", "pgflextestserver", "-g", "pgflextest", "--location", "westus",
		"--host", cluster.Host, "--port", port, "--login", cluster.SuperUser, "--password-stdin")
	rows := tableRows(r.stdout)
	if len(rows) != 2 || strings.Join(rows[0], " ") != "NAME RESOURCE GROUP LOCATION HOST LOGIN VERSION STATE" ||
		strings.Join(rows[1], " ") != "pgflextestserver pgflextest westus "+addr+" postgres 15 Ready" {
		t.Fatalf("server register table:\n%s", r.stdout)
	}
	srv := jsonOf[serverJSON](t, c.ok("server", "show", "pgflextestserver", "-g", "pgflextest", "-o", "json"))
	if string(srv.Properties["version"]) != `"15"` || string(srv.Properties["state"]) != `"Ready"` || srv.Location != "westus" {
		t.Errorf("server show: %+v", srv)
	}
	if _, ok := srv.Properties["administratorLoginPassword"]; ok {
		t.Error("the server's JSON has administratorLoginPassword")
	}
	srvID := srv.ID
	if want := "/subscriptions/" + testSub + "/resourceGroups/pgflextest/providers/Microsoft.DBforPostgreSQL/flexibleServers/pgflextestserver"; srvID != want {
		t.Errorf("server ID = %q, want %q", srvID, want)
	}

	// The password from the environment; HOST:PORT; sslmode.
	c.env[envServerPassword] = cluster.SuperPassword
	srv2 := jsonOf[serverJSON](t, c.ok("server", "register", "pgflex2", "-g", "pgflextest", "-l", "westus", "--host", addr,
		"--login", cluster.SuperUser, "--sslmode", "disable", "-o", "json"))
	delete(c.env, envServerPassword)
	var ext struct {
		Port     int    `json:"port"`
		SSLMode  string `json:"sslMode"`
		Database string `json:"database"`
	}
	if err := json.Unmarshal(srv2.Properties["pgvault"], &ext); err != nil || ext.Port != cluster.Port || ext.SSLMode != "disable" || ext.Database != "postgres" {
		t.Errorf("pgflex2: pgvault %s (%v)", srv2.Properties["pgvault"], err)
	}
	// An update without a password keeps the stored one (pgvault reconnects with it).
	srv2 = jsonOf[serverJSON](t, c.ok("server", "register", "pgflex2", "-g", "pgflextest", "-l", "westus", "--host", addr,
		"--login", cluster.SuperUser, "--tag", "env=test", "-o", "json"))
	if srv2.Tags["env"] != "test" || string(srv2.Properties["state"]) != `"Ready"` {
		t.Errorf("pgflex2 after update: %+v", srv2)
	}
	c.env[envServerPassword] = cluster.SuperPassword
	c.ok("server", "register", "pgflex3", "-g", "TestBkpVaultRG", "-l", "westus", "--host", addr, "--login", cluster.SuperUser)
	delete(c.env, envServerPassword)
	// Three servers in pages of two.
	if rows := tableRows(c.ok("server", "list").stdout); len(rows) != 4 {
		t.Errorf("server list: %v", rows)
	}
	if items := jsonOf[[]serverJSON](t, c.ok("server", "list", "-g", "pgflextest", "-o", "json")); len(items) != 2 {
		t.Errorf("server list -g pgflextest: %d servers, want 2", len(items))
	}

	// ltrPreBackup.
	r = c.ok("server", "check", "pgflextestserver", "-g", "pgflextest", "--backup-name", "backup1")
	if rows := tableRows(r.stdout); len(rows) != 2 || strings.Join(rows[1], " ") != "pgflextestserver backup1 1" {
		t.Errorf("server check:\n%s", r.stdout)
	}
	if n := jsonOf[ltrPreBackupResult](t, c.ok("server", "check", "pgflextestserver", "-g", "pgflextest", "--backup-name", "backup1", "-o", "json")); n.Properties.NumberOfContainers != 1 {
		t.Errorf("server check -o json: %+v", n)
	}
	c.fails("Error: InvalidBackupName: The backup name 'no good' is invalid", "server", "check", "pgflextestserver", "-g", "pgflextest", "--backup-name", "no good")

	// A vault and a policy.
	v := jsonOf[vaultJSON](t, c.ok("vault", "create", "testBkpVault", "-g", "TestBkpVaultRG", "-l", "westus", "-o", "json"))
	principal := v.Identity.PrincipalID
	c.ok("policy", "create", "pgflexpol1", "-g", "TestBkpVaultRG", "--vault", "testBkpVault", "--schedule", weekly, "--retention", "Default=P3M")
	policyID := jsonOf[struct{ ID string }](t, c.ok("policy", "show", "pgflexpol1", "-g", "TestBkpVaultRG", "--vault", "testBkpVault", "-o", "json")).ID
	target := []string{"--vault", "testBkpVault", "-g", "TestBkpVaultRG", "--policy", "pgflexpol1"}
	byName := append([]string{"--server", "pgflextestserver", "--server-group", "pgflextest"}, target...)
	byID := append([]string{"--server", srvID}, target...)

	// The vault's identity has no role yet: the error says which role to
	// grant to which principal, and how.
	r = c.fails("Error: UserErrorMissingRequiredPermissions: Appropriate permissions to perform the operation is missing.\n", append([]string{"instance", "validate"}, byName...)...)
	groupID := "/subscriptions/" + testSub + "/resourceGroups/pgflextest"
	for _, want := range []string{
		"waiting for operation ",
		"\n  recommended action: Grant the backup vault's identity the 'PostgreSQL Flexible Server Long Term Retention Backup Role' on the server and 'Reader' on its resource group, then retry the operation.\n",
		"\n  detail: Validate for Protection failed. Exception Message: The client '" + principal + "' with object id '" + principal +
			"' does not have authorization to perform action 'Microsoft.DBforPostgreSQL/flexibleServers/startLtrBackup/action' over scope '" + srvID + "'",
		"\n  grant the vault's identity the roles it needs with:\n" +
			"    pgvault --subscription " + testSub + " role assignment create --assignee-vault testBkpVault -g TestBkpVaultRG --role 'PostgreSQL Flexible Server Long Term Retention Backup Role' --scope " + srvID + "\n" +
			"    pgvault --subscription " + testSub + " role assignment create --assignee-vault testBkpVault -g TestBkpVaultRG --role Reader --scope " + groupID + "\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("missing-permission error lacks %q:\n%s", want, r.stderr)
		}
	}
	grants := hintCommands(r.stderr)
	if len(grants) != 2 {
		t.Fatalf("hint commands: %q", grants)
	}
	// The first role only: the Reader role on the group is still missing.
	c.ok(grants[0]...)
	r = c.fails("Error: UserErrorMissingRequiredPermissions: ", append([]string{"instance", "validate"}, byName...)...)
	if !strings.Contains(r.stderr, "perform action 'Microsoft.Resources/subscriptions/resourceGroups/read' over scope '"+groupID+"'") {
		t.Errorf("with the LTR role only:\n%s", r.stderr)
	}
	c.ok(grants[1]...)
	rows = tableRows(c.ok("role", "assignment", "list", "--assignee-vault", "testBkpVault", "-g", "TestBkpVaultRG").stdout)
	if len(rows) != 3 {
		t.Errorf("the vault's role assignments: %v", rows)
	}

	// Valid now, the server named by its ARM ID.
	r = c.ok(append([]string{"instance", "validate"}, byID...)...)
	if r.stdout != "Validation succeeded: backup vault 'testBkpVault' can protect server 'pgflextestserver' with policy 'pgflexpol1'.\n" ||
		!strings.Contains(r.stderr, "waiting for operation ") {
		t.Errorf("validate: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if op := jsonOf[struct{ Status string }](t, c.ok(append([]string{"instance", "validate", "-o", "json"}, byName...)...)); op.Status != "Succeeded" {
		t.Errorf("validate -o json: %+v", op)
	}

	// Protect, with the default name SERVER-GUID.
	r = c.ok(append([]string{"instance", "create"}, byName...)...)
	rows = tableRows(r.stdout)
	if len(rows) != 2 || strings.Join(rows[0], " ") != "NAME SERVER POLICY PROTECTION STATE PROVISIONING STATE" {
		t.Fatalf("instance create table:\n%s", r.stdout)
	}
	name := rows[1][0]
	if !regexp.MustCompile(`^pgflextestserver-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(name) ||
		strings.Join(rows[1][1:], " ") != "pgflextestserver pgflexpol1 ProtectionConfigured Succeeded" {
		t.Errorf("instance create row: %v", rows[1])
	}
	if !strings.Contains(r.stderr, "waiting for operation ") {
		t.Errorf("instance create stderr: %q", r.stderr)
	}
	inst := []string{name, "--vault", "testBkpVault", "-g", "TestBkpVaultRG"}
	bi := jsonOf[instanceJSON](t, c.ok(append([]string{"instance", "show", "-o", "json"}, inst...)...))
	ds := bi.Properties.DataSourceInfo
	if bi.Name != name || bi.Properties.CurrentProtectionState != "ProtectionConfigured" || bi.Properties.ProvisioningState != "Succeeded" ||
		bi.Properties.ObjectType != "BackupInstance" || bi.Properties.PolicyInfo.PolicyID != policyID ||
		ds["resourceID"] != srvID || ds["resourceName"] != "pgflextestserver" || ds["resourceLocation"] != "westus" ||
		ds["datasourceType"] != "Microsoft.DBforPostgreSQL/flexibleServers" || ds["resourceType"] != "Microsoft.DBforPostgreSQL/flexibleServers" ||
		ds["objectType"] != "Datasource" || bi.Properties.DataSourceSetInfo["objectType"] != "DatasourceSet" {
		t.Errorf("instance show -o json: %+v", bi)
	}
	if rows := tableRows(c.ok("instance", "list", "--vault", "testBkpVault", "-g", "TestBkpVaultRG").stdout); len(rows) != 2 || rows[1][0] != name {
		t.Errorf("instance list: %v", rows)
	}

	// A server is protected once: validate and create say where.
	already := "Error: UserErrorDppDatasourceAlreadyProtected: Datasource is already protected under the Backup vault " + v.ID + ".\n" +
		"  recommended action: Delete the backup instance " + name + " from the Backup vault " + v.ID + " to re-protect the datasource in any other vault.\n"
	c.fails(already, append([]string{"instance", "validate"}, byName...)...)
	c.fails(already, append([]string{"instance", "create", "another"}, byID...)...)
	c.fails("Error: ServerIsProtected: ", "server", "delete", "pgflextestserver", "-g", "pgflextest")

	// Suspend, resume, stop, resume.
	for _, step := range []struct{ cmd, want string }{
		{"suspend", "BackupSchedulesSuspended"},
		{"resume-backups", "ProtectionConfigured"},
		{"stop", "ProtectionStopped"},
		{"resume", "ProtectionConfigured"},
	} {
		rows := tableRows(c.ok(append([]string{"instance", step.cmd}, inst...)...).stdout)
		if len(rows) != 2 || rows[1][3] != step.want {
			t.Errorf("instance %s: %v, want %s", step.cmd, rows, step.want)
		}
	}
	c.ok(append([]string{"instance", "stop"}, inst...)...)
	c.fails("Error: UserErrorInvalidProtectionState: The backup instance '"+name+"' is ProtectionStopped; resumeBackups is not possible in that state.",
		append([]string{"instance", "resume-backups"}, inst...)...)
	if got := jsonOf[instanceJSON](t, c.ok(append([]string{"instance", "resume", "-o", "json"}, inst...)...)); got.Properties.CurrentProtectionState != "ProtectionConfigured" {
		t.Errorf("instance resume -o json: %+v", got.Properties)
	}

	// Delete: waits; then the server may go.
	r = c.ok(append([]string{"instance", "delete"}, inst...)...)
	if r.stdout != "Deleted backup instance '"+name+"'.\n" || !strings.Contains(r.stderr, "waiting for operation ") {
		t.Errorf("instance delete: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if r := c.ok(append([]string{"instance", "delete"}, inst...)...); r.stdout != "Backup instance '"+name+"' did not exist.\n" {
		t.Errorf("second instance delete: %q", r.stdout)
	}
	c.fails("Error: ResourceNotFound: ", append([]string{"instance", "show"}, inst...)...)
	if r := c.ok("server", "delete", "pgflextestserver", "-g", "pgflextest"); r.stdout != "Deleted the registration of server 'pgflextestserver'.\n" {
		t.Errorf("server delete: %q", r.stdout)
	}
	if r := c.ok("server", "delete", "pgflextestserver", "-g", "pgflextest"); r.stdout != "Server 'pgflextestserver' was not registered.\n" {
		t.Errorf("second server delete: %q", r.stdout)
	}
	c.fails("Error: ResourceNotFound: The Resource 'Microsoft.DBforPostgreSQL/flexibleServers/pgflextestserver' under resource group 'pgflextest' was not found.",
		"server", "show", "pgflextestserver", "-g", "pgflextest")
}

// TestProtectErrors: what goes wrong is printed as the server's code and
// message, with what to do.
func TestProtectErrors(t *testing.T) {
	t.Parallel()
	cluster := pgtest.Start(t, pgtest.Options{})
	c := newCLI(t)
	wrong := randomPassword()
	recordAll(t, c, cluster.SuperPassword, wrong)
	port := strconv.Itoa(cluster.Port)
	addr := cluster.Host + ":" + port

	c.ok("group", "create", "rg1", "-l", "westeurope")
	v := jsonOf[vaultJSON](t, c.ok("vault", "create", "vault1", "-g", "rg1", "-l", "westeurope", "-o", "json"))
	c.ok("policy", "create", "pol1", "-g", "rg1", "--vault", "vault1", "--schedule", weekly, "--retention", "Default=P3M")
	register := []string{"server", "register", "srv1", "-g", "rg1", "-l", "westeurope", "--host", cluster.Host, "--port", port, "--login", cluster.SuperUser}

	// No password, an empty one, a wrong one.
	c.fails("Error: MissingProperty: The password of the administrator login is required. (target: properties.administratorLoginPassword)\n"+
		"  give the password of 'postgres' as the first line of standard input with --password-stdin, or in PGVAULT_SERVER_PASSWORD\n", register...)
	c.failsIn("\n", "Error: --password-stdin: standard input holds no password: give it as the first line\n", append(register, "--password-stdin")...)
	c.failsIn(wrong+"\n", "Error: ServerAuthenticationFailed: pgvault cannot use the PostgreSQL server 'srv1': The server at "+addr+
		" refused the login of role \"postgres\": password authentication failed", append(register, "--password-stdin")...)
	c.fails("Error: ResourceNotFound: ", "server", "show", "srv1", "-g", "rg1")
	c.okIn(cluster.SuperPassword+"\n", append(register, "--password-stdin")...)
	srvID := jsonOf[serverJSON](t, c.ok("server", "show", "srv1", "-g", "rg1", "-o", "json")).ID

	// Mistakes caught before any request, and a missing server or policy.
	target := []string{"--vault", "vault1", "-g", "rg1"}
	c.fails("--server \"/subscriptions/x/resourceGroups/rg1\" is not the ARM ID of a PostgreSQL flexible server",
		append([]string{"instance", "validate", "--server", "/subscriptions/x/resourceGroups/rg1", "--policy", "pol1"}, target...)...)
	c.fails("--server-group goes with a server name, not with an ARM ID",
		append([]string{"instance", "validate", "--server", srvID, "--server-group", "rg1", "--policy", "pol1"}, target...)...)
	c.fails(`required flag(s) "policy" not set`, append([]string{"instance", "create", "--server", "srv1"}, target...)...)
	c.fails("Error: ResourceNotFound: The Resource 'Microsoft.DBforPostgreSQL/flexibleServers/nope' under resource group 'rg1' was not found.",
		append([]string{"instance", "validate", "--server", "nope", "--policy", "pol1"}, target...)...)
	c.fails("Error: ResourceNotFound: The backup policy 'nope' was not found",
		append([]string{"instance", "validate", "--server", "srv1", "--policy", "nope"}, target...)...)

	// Protecting before the grants fails; the instance stays, failed, and
	// the same command protects it once the roles are granted. The server
	// is in the vault's group: no --server-group.
	create := append([]string{"instance", "create", "bi1", "--server", "srv1", "--policy", "pol1"}, target...)
	r := c.fails("Error: UserErrorMissingRequiredPermissions: ", create...)
	grants := hintCommands(r.stderr)
	if !strings.Contains(r.stderr, "\n  the backup instance 'bi1' is kept, in state ConfiguringProtectionFailed: fix the problem and run this command again with the name bi1, "+
		"or delete it with: pgvault instance delete bi1 --vault vault1 -g rg1") || len(grants) != 2 {
		t.Errorf("failed create:\n%s", r.stderr)
	}
	r = c.ok("instance", "show", "bi1", "--vault", "vault1", "-g", "rg1")
	if rows := tableRows(r.stdout); len(rows) < 2 || strings.Join(rows[1], " ") != "bi1 srv1 pol1 ConfiguringProtectionFailed Failed" ||
		!strings.Contains(r.stdout, "\nProtection error: UserErrorMissingRequiredPermissions: Appropriate permissions to perform the operation is missing.\n") {
		t.Errorf("failed instance:\n%s", r.stdout)
	}
	for _, args := range grants {
		c.ok(args...)
	}
	// --no-wait: the instance as the PUT answers it, still configuring.
	r = c.ok(append(create, "--no-wait")...)
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[1][3] != "ConfiguringProtection" ||
		!strings.Contains(r.stderr, "not waiting for the protection of server srv1; see its state with: pgvault instance show bi1 --vault vault1 -g rg1") {
		t.Errorf("create --no-wait: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		rows := tableRows(c.ok("instance", "show", "bi1", "--vault", "vault1", "-g", "rg1").stdout)
		if rows[1][3] == "ProtectionConfigured" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bi1 never got protected: %v", rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.fails("Error: UserErrorDppDatasourceAlreadyProtected: Datasource is already protected under the Backup vault "+v.ID+".",
		append([]string{"instance", "create", "--server", "srv1", "--policy", "pol1"}, target...)...)
	c.ok("instance", "delete", "bi1", "--vault", "vault1", "-g", "rg1")

	// A stopped server: the check fails and says why, the server is
	// Disabled with the reason, a registration is refused, and validation
	// says the server is not ready, with the cause.
	cluster.Stop(t)
	unreachable := "Could not reach the PostgreSQL server at " + addr + ": connection refused."
	c.fails("Error: ServerUnreachable: pgvault cannot use the PostgreSQL server 'srv1': "+unreachable, "server", "check", "srv1", "-g", "rg1", "--backup-name", "b1")
	r = c.ok("server", "show", "srv1", "-g", "rg1")
	if rows := tableRows(r.stdout); len(rows) < 2 || rows[1][len(rows[1])-1] != "Disabled" || !strings.Contains(r.stdout, "\nState reason: ServerUnreachable: "+unreachable) {
		t.Errorf("server show of a stopped server:\n%s", r.stdout)
	}
	c.failsIn(cluster.SuperPassword+"\n", "Error: ServerUnreachable: pgvault cannot use the PostgreSQL server 'srv2': "+unreachable,
		"server", "register", "srv2", "-g", "rg1", "-l", "westeurope", "--host", addr, "--login", cluster.SuperUser, "--password-stdin")
	r = c.fails("Error: PostgreSQLFlexOperationFailedUserError: The PostgreSQL server is not ready for backups: pgvault cannot use the PostgreSQL server 'srv1': "+unreachable,
		append([]string{"instance", "validate", "--server", "srv1", "--policy", "pol1"}, target...)...)
	if !strings.Contains(r.stderr, "\n  recommended action: Fix the reported problem on the server and retry.\n  cause: ServerUnreachable") ||
		strings.Contains(r.stderr, "grant the vault's identity") {
		t.Errorf("validate of a stopped server:\n%s", r.stderr)
	}
}
