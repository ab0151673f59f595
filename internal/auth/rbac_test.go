package auth

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestActionMatches(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		// No wildcard: equality, ignoring case.
		{"Microsoft.DataProtection/backupVaults/read", "Microsoft.DataProtection/backupVaults/read", true},
		{"Microsoft.DataProtection/backupVaults/read", "MICROSOFT.DATAPROTECTION/BACKUPVAULTS/READ", true},
		{"microsoft.dataprotection/backupvaults/read", "Microsoft.DataProtection/backupVaults/read", true},
		{"Microsoft.DataProtection/backupVaults/read", "Microsoft.DataProtection/backupVaults/write", false},
		{"Microsoft.DataProtection/backupVaults/read", "Microsoft.DataProtection/backupVaults/read/", false},
		{"Microsoft.DataProtection/backupVaults/read", "Microsoft.DataProtection/backupVaults/rea", false},
		{"Microsoft.DataProtection/backupVaults/read", "", false},
		{"", "", true},
		{"", "x", false},
		// Unicode simple folding, as strings.EqualFold: Kelvin sign, long s.
		{"Microsoft.Network/*/\u212Aey/read", "Microsoft.Network/x/key/read", true},
		{"Micro\u017Foft.*", "microsoft.storage/read", true},
		{"*/\u00e9t\u00e9/read", "x/\u00c9T\u00c9/read", true},
		{"*/\u00e9t\u00e9/read", "x/ete/read", false},
		// No other metacharacter.
		{"Microsoft.?/read", "Microsoft.A/read", false},
		{"Microsoft.?/read", "Microsoft.?/read", true},
		{"[a-z]/read", "a/read", false},
		{`Microsoft.\*/read`, `Microsoft.\x/read`, true},
		// "*" matches everything, the empty action included.
		{"*", "Microsoft.Authorization/roleAssignments/write", true},
		{"*", "pgvault/principals/delete", true},
		{"*", "", true},
		{"**", "anything/at/all", true},
		// "*/read": every read at any depth, nothing else.
		{"*/read", "Microsoft.Resources/subscriptions/resourceGroups/read", true},
		{"*/read", "Microsoft.DataProtection/backupVaults/backupPolicies/read", true},
		{"*/read", "pgvault/principals/read", true},
		{"*/read", "MICROSOFT.X/Y/READ", true},
		{"*/read", "Microsoft.DataProtection/backupVaults/write", false},
		{"*/read", "Microsoft.DataProtection/backupVaults/readx", false},
		{"*/read", "Microsoft.DataProtection/backupVaults/xread", false},
		{"*/read", "read", false},
		{"*/read", "/read", true},
		// A trailing star: everything below a prefix.
		{"Microsoft.DataProtection/backupVaults/*", "Microsoft.DataProtection/backupVaults/read", true},
		{"Microsoft.DataProtection/backupVaults/*", "Microsoft.DataProtection/backupVaults/backupPolicies/write", true},
		{"Microsoft.DataProtection/backupVaults/*", "microsoft.dataprotection/BACKUPVAULTS/delete", true},
		{"Microsoft.DataProtection/backupVaults/*", "Microsoft.DataProtection/backupVaults", false},
		{"Microsoft.DataProtection/backupVaults/*", "Microsoft.DataProtection/backupVaultsX/read", false},
		{"Microsoft.DataProtection/backupVaults/*", "Microsoft.DataProtection/locations/read", false},
		// A star in the middle, possibly spanning several segments.
		{"Microsoft.DataProtection/locations/*/read", "Microsoft.DataProtection/locations/operationStatus/read", true},
		{"Microsoft.DataProtection/locations/*/read", "Microsoft.DataProtection/locations/westeurope/operationStatus/read", true},
		{"Microsoft.DataProtection/locations/*/read", "Microsoft.DataProtection/locations/read", false},
		{"Microsoft.DataProtection/locations/*/read", "Microsoft.DataProtection/locations/checkNameAvailability/action", false},
		{"Microsoft.DataProtection/locations/*/read", "Microsoft.DataProtection/backupVaults/locations/x/read", false},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"Microsoft.Authorization/*/Write", "microsoft.authorization/policyAssignments/privateLinkAssociations/WRITE", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/read", false},
		{"Microsoft.Authorization/*/Write", "Microsoft.AuthorizationX/roleAssignments/write", false},
		{"Microsoft.Authorization/*/Delete", "Microsoft.Authorization/roleAssignments/delete", true},
		// Stars are not segment-bound: a star may end inside a segment.
		{"Microsoft.Data*", "Microsoft.DataProtection/backupVaults/read", true},
		{"Microsoft.Data*/read", "Microsoft.DataBox/jobs/read", true},
		{"*Protection/backupVaults/read", "Microsoft.DataProtection/backupVaults/read", true},
		// Several stars.
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXcYb", false},
		{"a*b*c", "acb", false},
		{"*a*a*", "aa", true},
		{"*a*a*", "a", false},
		{"*ab*ab*", "abab", true},
		{"*ab*ab*", "aba", false},
		{"*aab*", "aaab", true}, // KMP must fall back correctly
		{"*abcabd*", "abcabcabd", true},
		// Prefix and suffix must not overlap.
		{"ab*ba", "aba", false},
		{"ab*ba", "abba", true},
		{"ab*ba", "abXba", true},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		// Invalid UTF-8 compares like strings.EqualFold (each bad byte is U+FFFD).
		{"*\xff", "x\xfe", true},
		{"*\xff", "x\uFFFD", true},
		{"*\xff", "xy", false},
	}
	for _, tt := range tests {
		if got := ActionMatches(tt.pattern, tt.action); got != tt.want {
			t.Errorf("ActionMatches(%q, %q) = %v, want %v", tt.pattern, tt.action, got, tt.want)
		}
		if ref := refActionMatch(tt.pattern, tt.action); ref != tt.want {
			t.Errorf("refActionMatch(%q, %q) = %v, want %v (test table or reference is wrong)", tt.pattern, tt.action, ref, tt.want)
		}
	}
}

// TestActionMatchesLinear runs patterns that make a backtracking matcher take
// exponential (or quadratic) time; the linear matcher finishes them at once.
func TestActionMatchesLinear(t *testing.T) {
	long := strings.Repeat("a", 100000)
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{strings.Repeat("*a", 30) + "*b", strings.Repeat("a", 60), false},
		{strings.Repeat("*a", 1000) + "*b", long, false},
		{strings.Repeat("*a", 1000) + "*", long, true},
		{"*" + strings.Repeat("a", 5000) + "b*", long, false},
		{"*" + strings.Repeat("a", 5000) + "*", long, true},
		{strings.Repeat("a*", 1000) + "b", long, false},
	}
	start := time.Now()
	for _, tt := range tests {
		if got := ActionMatches(tt.pattern, tt.action); got != tt.want {
			t.Errorf("ActionMatches(%.20q..., %.20q...) = %v, want %v", tt.pattern, tt.action, got, tt.want)
		}
	}
	// About a millisecond when linear; a backtracking matcher would not
	// finish the first case, a quadratic one would take seconds.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("pathological patterns took %v", d)
	}
}

func BenchmarkActionMatches(b *testing.B) {
	b.Run("role", func(b *testing.B) {
		for b.Loop() {
			ActionMatches("Microsoft.DataProtection/locations/*/read", "Microsoft.DataProtection/locations/operationStatus/read")
		}
	})
	b.Run("pathological", func(b *testing.B) {
		pattern, action := strings.Repeat("*a", 50)+"*b", strings.Repeat("a", 1000)
		for b.Loop() {
			ActionMatches(pattern, action)
		}
	})
}

// refActionMatch is a slow, obviously correct matcher: dynamic programming over the
// runes of pattern and action, comparing runes with strings.EqualFold.
func refActionMatch(pattern, action string) bool {
	p, a := []rune(pattern), []rune(action)
	// m[j] reports whether p[:i] matches a[:j], for the current i.
	m := make([]bool, len(a)+1)
	m[0] = true
	for i := range p {
		next := make([]bool, len(a)+1)
		if p[i] == '*' {
			next[0] = m[0]
			for j := 1; j <= len(a); j++ {
				next[j] = m[j] || next[j-1]
			}
		} else {
			for j := 1; j <= len(a); j++ {
				next[j] = m[j-1] && strings.EqualFold(string(p[i]), string(a[j-1]))
			}
		}
		m = next
	}
	return m[len(a)]
}

func FuzzActionMatches(f *testing.F) {
	for _, r := range builtinRoles {
		for _, p := range slices.Concat(r.Actions, r.NotActions, r.DataActions) {
			f.Add(p, "Microsoft.DataProtection/backupVaults/backupPolicies/read")
		}
	}
	for _, a := range slices.Concat(rbacRouteActions, rbacFutureActions, rbacPgvaultActions) {
		f.Add(a, strings.ToUpper(a))
		f.Add("*/read", a)
	}
	f.Add("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaa")
	f.Add("ab*ba", "aba")
	f.Add("*\u212A*", "k")
	f.Add("\xff*", "\xfe")
	f.Fuzz(func(t *testing.T, pattern, action string) {
		got := ActionMatches(pattern, action)
		if !strings.Contains(pattern, "*") && got != strings.EqualFold(pattern, action) {
			t.Fatalf("ActionMatches(%q, %q) = %v, strings.EqualFold = %v", pattern, action, got, !got)
		}
		if !ActionMatches(pattern, pattern) {
			t.Fatalf("ActionMatches(%q, itself) = false", pattern)
		}
		if len(pattern) <= 64 && len(action) <= 256 {
			if ref := refActionMatch(pattern, action); got != ref {
				t.Fatalf("ActionMatches(%q, %q) = %v, reference matcher says %v", pattern, action, got, ref)
			}
		}
	})
}

func TestScopeContains(t *testing.T) {
	const (
		sub   = "/subscriptions/00000000-0000-0000-0000-000000000001"
		rg    = sub + "/resourceGroups/rg"
		vault = rg + "/providers/Microsoft.DataProtection/backupVaults/v1"
	)
	tests := []struct {
		outer, inner string
		want         bool
	}{
		// The root contains everything, itself included.
		{"/", "/", true},
		{"/", sub, true},
		{"/", vault + "/backupPolicies/p1", true},
		{"/", "/providers/Microsoft.Authorization/roleDefinitions/x", true},
		// A scope contains itself and what lies below it.
		{sub, sub, true},
		{sub, rg, true},
		{sub, vault, true},
		{rg, vault, true},
		{vault, vault + "/backupPolicies/p1", true},
		{vault + "/backupPolicies/p1", vault + "/backupPolicies/p1", true},
		// Nothing contains what lies above it.
		{sub, "/", false},
		{rg, sub, false},
		{vault, rg, false},
		{vault + "/backupPolicies/p1", vault, false},
		// Case-insensitive.
		{strings.ToUpper(sub), rg, true},
		{sub + "/resourcegroups/RG", rg, true},
		{rg, strings.ToLower(vault), true},
		// Whole segments only.
		{"/subscriptions/a", "/subscriptions/ab", false},
		{"/subscriptions/ab", "/subscriptions/a", false},
		{rg, rg + "2", false},
		{rg + "2", rg, false},
		{rg, rg + "2/providers/Microsoft.DataProtection/backupVaults/v1", false},
		{"/subscriptions/a/resourceGroups/rg", "/subscriptions/a/resourceGroups/rg-prod", false},
		{vault, vault + "x/backupPolicies/p1", false},
		// Siblings.
		{sub + "/resourceGroups/other", vault, false},
		{"/subscriptions/b", "/subscriptions/a/resourceGroups/rg", false},
		{"/subscriptions/x/resourceGroups/rg", "/subscriptions/y/resourceGroups/rg", false},
		// One trailing slash is ignored.
		{sub + "/", rg, true},
		{sub, rg + "/", true},
		{rg + "/", rg + "/", true},
		{"/subscriptions/a/", "/subscriptions/ab", false},
		// Invalid scopes contain nothing and are contained by nothing.
		{"", sub, false},
		{"", "", false},
		{sub, "", false},
		{"/", "", false},
		{"subscriptions/a", "subscriptions/a/resourceGroups/rg", false},
		{"/", "subscriptions/a", false},
		{"/subscriptions//a", "/subscriptions//a/resourceGroups/rg", false},
		{"/", "/subscriptions//a", false},
		{"//", "/subscriptions/a", false},
		{"/", "//", false},
		{"/subscriptions/a//", "/subscriptions/a/resourceGroups/rg", false},
	}
	for _, tt := range tests {
		if got := ScopeContains(tt.outer, tt.inner); got != tt.want {
			t.Errorf("ScopeContains(%q, %q) = %v, want %v", tt.outer, tt.inner, got, tt.want)
		}
	}
}

func FuzzScopeContains(f *testing.F) {
	f.Add("/", "/subscriptions/a")
	f.Add("/subscriptions/a", "/subscriptions/ab")
	f.Add("/subscriptions/a/", "/SUBSCRIPTIONS/A/resourceGroups/rg")
	f.Add("//", "/subscriptions//a")
	f.Fuzz(func(t *testing.T, outer, inner string) {
		got := ScopeContains(outer, inner)
		_, outerOK := splitScope(outer)
		_, innerOK := splitScope(inner)
		if got && (!outerOK || !innerOK) {
			t.Fatalf("ScopeContains(%q, %q) = true for an invalid scope", outer, inner)
		}
		if innerOK && !ScopeContains(inner, inner) {
			t.Fatalf("ScopeContains(%q, itself) = false", inner)
		}
		if innerOK && !ScopeContains("/", inner) {
			t.Fatalf("ScopeContains(/, %q) = false", inner)
		}
		if got && ScopeContains(inner, outer) && !strings.EqualFold(strings.TrimSuffix(outer, "/"), strings.TrimSuffix(inner, "/")) {
			t.Fatalf("%q and %q contain each other but differ", outer, inner)
		}
		if got && outerOK && strings.HasPrefix(inner, "/") {
			// Appending a segment keeps containment.
			if child := strings.TrimSuffix(inner, "/") + "/x"; child != "//x" && !ScopeContains(outer, child) {
				t.Fatalf("ScopeContains(%q, %q) but not %q", outer, inner, child)
			}
		}
	})
}

var roleGUIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// The names and GUIDs of the built-in roles, as Azure defines them.
var wantRoleIDs = map[string]string{
	"Owner":              "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
	"Contributor":        "b24988ac-6180-42a0-ab88-20f7382dd24c",
	"Reader":             "acdd72a7-3385-48ef-bd42-f606fba81ae7",
	"Backup Contributor": "5e467623-bb1f-42f4-a55d-6e525e11384b",
	"Backup Operator":    "00c29273-979b-4161-815c-10b084fb9324",
	"Backup Reader":      "a795c7a0-d4a2-40c1-ae25-d81f01202912",
	"PostgreSQL Flexible Server Long Term Retention Backup Role": "c088a766-074b-43ba-90d4-1fb21feae531",
	"Storage Blob Data Contributor":                              "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
}

func TestBuiltinRolesTable(t *testing.T) {
	roles := BuiltinRoles()
	if len(roles) != len(wantRoleIDs) {
		t.Errorf("BuiltinRoles() has %d roles, want %d", len(roles), len(wantRoleIDs))
	}
	seenID, seenName := map[string]bool{}, map[string]bool{}
	for _, r := range roles {
		if want, ok := wantRoleIDs[r.Name]; !ok || r.ID != want {
			t.Errorf("role %q has ID %q, want %q", r.Name, r.ID, want)
		}
		if !roleGUIDPattern.MatchString(r.ID) {
			t.Errorf("role %q: ID %q is not a lower-case GUID", r.Name, r.ID)
		}
		if seenID[r.ID] || seenName[strings.ToLower(r.Name)] {
			t.Errorf("role %q (%s) is listed twice", r.Name, r.ID)
		}
		seenID[r.ID], seenName[strings.ToLower(r.Name)] = true, true
		if r.Description == "" || strings.TrimSpace(r.Description) != r.Description {
			t.Errorf("role %q: bad description %q", r.Name, r.Description)
		}
		if len(r.Actions)+len(r.DataActions) == 0 {
			t.Errorf("role %q grants nothing", r.Name)
		}
		for _, p := range slices.Concat(r.Actions, r.NotActions, r.DataActions, r.NotDataActions) {
			if p == "" || strings.ContainsAny(p, " \t\n") || !utf8.ValidString(p) ||
				(p != "*" && !strings.Contains(p, "/")) || strings.Contains(p, "//") {
				t.Errorf("role %q: malformed pattern %q", r.Name, p)
			}
		}
	}
}

func TestBuiltinRolesIsACopy(t *testing.T) {
	roles := BuiltinRoles()
	for i := range roles {
		roles[i].Name = "changed"
		for _, s := range [][]string{roles[i].Actions, roles[i].NotActions, roles[i].DataActions, roles[i].NotDataActions} {
			for j := range s {
				s[j] = "changed"
			}
		}
	}
	roles[0].Actions = append(roles[0].Actions, "*")
	again := BuiltinRoles()
	for _, r := range again {
		if r.Name == "changed" || slices.Contains(slices.Concat(r.Actions, r.NotActions, r.DataActions, r.NotDataActions), "changed") {
			t.Fatalf("modifying BuiltinRoles' result changed the table: %+v", r)
		}
	}
	owner, _ := RoleByName("Owner")
	owner.Actions[0] = "nothing/read"
	contributor, _ := RoleByID(wantRoleIDs["Contributor"])
	contributor.NotActions[0] = "x/y"
	if o, _ := RoleByName("Owner"); o.Actions[0] != "*" {
		t.Fatal("modifying RoleByName's result changed the table")
	}
	if c, _ := RoleByID(wantRoleIDs["Contributor"]); c.NotActions[0] != "Microsoft.Authorization/*/Delete" {
		t.Fatal("modifying RoleByID's result changed the table")
	}
	as := []Assignment{{"p", wantRoleIDs["Owner"], "/"}}
	if !Allowed(as, "p", "Microsoft.Authorization/roleAssignments/write", "/subscriptions/a") {
		t.Fatal("modifying copies changed what Owner may do")
	}
}

func TestRoleByID(t *testing.T) {
	const owner = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	tests := []struct {
		id   string
		want string // role name, "" if not found
	}{
		{owner, "Owner"},
		{strings.ToUpper(owner), "Owner"},
		{"b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor"},
		{"acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader"},
		{"5e467623-bb1f-42f4-a55d-6e525e11384b", "Backup Contributor"},
		{"00c29273-979b-4161-815c-10b084fb9324", "Backup Operator"},
		{"a795c7a0-d4a2-40c1-ae25-d81f01202912", "Backup Reader"},
		{"c088a766-074b-43ba-90d4-1fb21feae531", "PostgreSQL Flexible Server Long Term Retention Backup Role"},
		{"ba92f5b4-2d11-453d-a403-e96b0029c9fe", "Storage Blob Data Contributor"},
		// Full ARM IDs, tenant-level and subscription-level.
		{"/providers/Microsoft.Authorization/roleDefinitions/" + owner, "Owner"},
		{"/providers/microsoft.authorization/ROLEDEFINITIONS/" + strings.ToUpper(owner), "Owner"},
		{"/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader"},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/roleDefinitions/" + owner, "Owner"},
		// Not found.
		{"", ""},
		{"00000000-0000-0000-0000-000000000000", ""},
		{owner + " ", ""},
		{" " + owner, ""},
		{"{" + owner + "}", ""},
		{owner[:35], ""},
		{"Owner", ""},
		{"/providers/Microsoft.Authorization/roleDefinitions/" + owner + "/", ""},
		{"/providers/Microsoft.Authorization/roleDefinitions/", ""},
		{"providers/Microsoft.Authorization/roleDefinitions/" + owner, ""},
		{"/providers/Microsoft.Authorization/roleAssignments/" + owner, ""},
		{"/providers/Microsoft.Authorizatio/roleDefinitions/" + owner, ""},
		{"/Microsoft.Authorization/roleDefinitions/" + owner, ""},
		{"/subscriptions//providers/Microsoft.Authorization/roleDefinitions/" + owner, ""},
		{"/" + owner, ""},
	}
	for _, tt := range tests {
		r, ok := RoleByID(tt.id)
		if ok != (tt.want != "") || r.Name != tt.want {
			t.Errorf("RoleByID(%q) = %q, %v; want %q", tt.id, r.Name, ok, tt.want)
		}
	}
}

func TestRoleByName(t *testing.T) {
	for name, id := range wantRoleIDs {
		for _, n := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			r, ok := RoleByName(n)
			if !ok || r.ID != id || r.Name != name {
				t.Errorf("RoleByName(%q) = %q (%s), %v; want %q (%s)", n, r.Name, r.ID, ok, name, id)
			}
		}
	}
	for _, n := range []string{"", "Owner ", "Backup", "Storage Blob Data Owner", "User Access Administrator", wantRoleIDs["Owner"]} {
		if r, ok := RoleByName(n); ok {
			t.Errorf("RoleByName(%q) = %q, want none", n, r.Name)
		}
	}
}

// The actions of the routes in internal/api/routes.go.
var rbacRouteActions = []string{
	actRgRead, actRgWrite, actRgDelete,
	actVaultRead, actVaultWrite, actVaultDelete, actCheckName, actVaultOpResult,
	actPolicyRead, actPolicyWrite, actPolicyDelete,
	actLocOpStatus, actVaultOpStatus, actLocOpResult,
}

// Actions of routes to come.
var rbacFutureActions = []string{
	actInstanceWrite, actInstanceBackup, actValidateForBackup,
	actRoleAssignRead, actRoleAssignWrite, actRoleAssignDelete,
	actLtrPreBackup, actStartLtrBackup, actLtrOperations, actSubRead,
	actContainerRead, actContainerWrite,
}

// pgvault's own management actions.
var rbacPgvaultActions = []string{actPrincipalsRead, actPrincipalsWrite, actPrincipalsDelete}

const (
	actRgRead        = "Microsoft.Resources/subscriptions/resourceGroups/read"
	actRgWrite       = "Microsoft.Resources/subscriptions/resourceGroups/write"
	actRgDelete      = "Microsoft.Resources/subscriptions/resourceGroups/delete"
	actVaultRead     = "Microsoft.DataProtection/backupVaults/read"
	actVaultWrite    = "Microsoft.DataProtection/backupVaults/write"
	actVaultDelete   = "Microsoft.DataProtection/backupVaults/delete"
	actCheckName     = "Microsoft.DataProtection/locations/checkNameAvailability/action"
	actVaultOpResult = "Microsoft.DataProtection/backupVaults/operationResults/read"
	actPolicyRead    = "Microsoft.DataProtection/backupVaults/backupPolicies/read"
	actPolicyWrite   = "Microsoft.DataProtection/backupVaults/backupPolicies/write"
	actPolicyDelete  = "Microsoft.DataProtection/backupVaults/backupPolicies/delete"
	actLocOpStatus   = "Microsoft.DataProtection/locations/operationStatus/read"
	actLocOpResult   = "Microsoft.DataProtection/locations/operationResults/read"

	actVaultOpStatus     = "Microsoft.DataProtection/backupVaults/operationStatus/read"
	actInstanceWrite     = "Microsoft.DataProtection/backupVaults/backupInstances/write"
	actInstanceBackup    = "Microsoft.DataProtection/backupVaults/backupInstances/backup/action"
	actValidateForBackup = "Microsoft.DataProtection/backupVaults/validateForBackup/action"
	actRoleAssignRead    = "Microsoft.Authorization/roleAssignments/read"
	actRoleAssignWrite   = "Microsoft.Authorization/roleAssignments/write"
	actRoleAssignDelete  = "Microsoft.Authorization/roleAssignments/delete"
	actLtrPreBackup      = "Microsoft.DBforPostgreSQL/flexibleServers/ltrPreBackup/action"
	actStartLtrBackup    = "Microsoft.DBforPostgreSQL/flexibleServers/startLtrBackup/action"
	actLtrOperations     = "Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupOperations/read"
	actSubRead           = "Microsoft.Resources/subscriptions/read"
	actContainerRead     = "Microsoft.Storage/storageAccounts/blobServices/containers/read"
	actContainerWrite    = "Microsoft.Storage/storageAccounts/blobServices/containers/write"

	// pgvault's service principals sit under Microsoft.Authorization, so
	// only roles that may grant access may create them or reset secrets.
	actPrincipalsRead   = "Microsoft.Authorization/servicePrincipals/read"
	actPrincipalsWrite  = "Microsoft.Authorization/servicePrincipals/write"
	actPrincipalsDelete = "Microsoft.Authorization/servicePrincipals/delete"

	actBlobRead   = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
	actBlobWrite  = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
	actBlobDelete = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"
)

// TestBuiltinRolePermissions checks, for every built-in role assigned at the
// root, every action of the routes and of the routes to come: the role may
// perform exactly the listed ones.
func TestBuiltinRolePermissions(t *testing.T) {
	all := slices.Concat(rbacRouteActions, rbacFutureActions, rbacPgvaultActions)
	reads := slices.DeleteFunc(slices.Clone(all), func(a string) bool { return !strings.HasSuffix(a, "/read") })
	except := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(a string) bool { return slices.Contains(drop, a) })
	}
	tests := []struct {
		role        string
		actions     []string // the actions the role may perform, of all
		dataActions []string // the data actions it may perform, of actBlobRead, actBlobWrite, actBlobDelete
	}{
		{"Owner", all, nil},
		// Everything but granting roles and managing principals.
		{"Contributor", except(actRoleAssignWrite, actRoleAssignDelete, actPrincipalsWrite, actPrincipalsDelete), nil},
		// Every read, principals included; no write, delete or action.
		{"Reader", reads, nil},
		// Manages vaults (create and update, not delete: Azure's role has no
		// backupVaults/delete), policies and backup instances; reads resource
		// groups and role assignments (Microsoft.Authorization/*/read) but
		// neither creates groups nor assigns roles.
		{"Backup Contributor", []string{
			actRgRead, actVaultRead, actVaultWrite, actCheckName, actVaultOpResult,
			actPolicyRead, actPolicyWrite, actPolicyDelete, actLocOpStatus, actVaultOpStatus, actLocOpResult,
			actInstanceWrite, actInstanceBackup, actValidateForBackup, actRoleAssignRead, actPrincipalsRead,
		}, nil},
		// Protects and backs up, but neither writes vaults nor policies.
		{"Backup Operator", []string{
			actRgRead, actVaultRead, actVaultOpResult, actPolicyRead, actLocOpStatus, actVaultOpStatus, actLocOpResult,
			actInstanceWrite, actInstanceBackup, actValidateForBackup, actRoleAssignRead, actPrincipalsRead,
		}, nil},
		// Reads backup resources and role assignments; Azure's role does not
		// even read resource groups.
		{"Backup Reader", []string{
			actVaultRead, actVaultOpResult, actPolicyRead, actLocOpStatus, actVaultOpStatus, actLocOpResult, actRoleAssignRead, actPrincipalsRead,
		}, nil},
		{"PostgreSQL Flexible Server Long Term Retention Backup Role", []string{
			actRgRead, actLtrPreBackup, actStartLtrBackup, actLtrOperations, actSubRead,
		}, nil},
		{"Storage Blob Data Contributor", []string{actContainerRead, actContainerWrite}, []string{actBlobRead, actBlobWrite, actBlobDelete}},
	}
	const (
		principal = "11111111-1111-1111-1111-111111111111"
		scope     = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v1"
	)
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			r, ok := RoleByName(tt.role)
			if !ok {
				t.Fatalf("no role %q", tt.role)
			}
			as := []Assignment{{principal, r.ID, "/"}}
			for _, a := range all {
				if got, want := Allowed(as, principal, a, scope), slices.Contains(tt.actions, a); got != want {
					t.Errorf("Allowed(%s) = %v, want %v", a, got, want)
				}
				if AllowedData(as, principal, a, scope) {
					t.Errorf("AllowedData(%s) = true for a control-plane action", a)
				}
			}
			for _, a := range []string{actBlobRead, actBlobWrite, actBlobDelete} {
				if got, want := AllowedData(as, principal, a, scope), slices.Contains(tt.dataActions, a); got != want {
					t.Errorf("AllowedData(%s) = %v, want %v", a, got, want)
				}
			}
		})
	}
}

func TestAllowedInheritance(t *testing.T) {
	const (
		p      = "11111111-1111-1111-1111-111111111111"
		sub    = "/subscriptions/00000000-0000-0000-0000-000000000001"
		sub2   = "/subscriptions/00000000-0000-0000-0000-000000000002"
		rg     = sub + "/resourceGroups/rg"
		vault  = rg + "/providers/Microsoft.DataProtection/backupVaults/v1"
		policy = vault + "/backupPolicies/p1"
	)
	backupContributor := wantRoleIDs["Backup Contributor"]
	tests := []struct {
		name        string
		assignments []Assignment
		action      string
		scope       string
		want        bool
	}{
		{"root reaches a subscription", []Assignment{{p, backupContributor, "/"}}, actPolicyWrite, sub, true},
		{"root reaches a policy", []Assignment{{p, backupContributor, "/"}}, actPolicyWrite, policy, true},
		{"subscription reaches its group", []Assignment{{p, backupContributor, sub}}, actPolicyWrite, rg, true},
		{"subscription reaches a vault", []Assignment{{p, backupContributor, sub}}, actVaultWrite, vault, true},
		{"subscription reaches itself", []Assignment{{p, backupContributor, sub}}, actVaultRead, sub, true},
		{"subscription does not reach the root", []Assignment{{p, backupContributor, sub}}, actVaultRead, "/", false},
		{"subscription does not reach another", []Assignment{{p, backupContributor, sub}}, actVaultRead, sub2 + "/resourceGroups/rg", false},
		{"subscription does not reach a longer ID", []Assignment{{p, backupContributor, "/subscriptions/a"}}, actVaultRead, "/subscriptions/ab/resourceGroups/rg", false},
		{"group reaches its vault", []Assignment{{p, backupContributor, rg}}, actVaultWrite, vault, true},
		{"group reaches a policy", []Assignment{{p, backupContributor, rg}}, actPolicyDelete, policy, true},
		{"group does not reach its subscription", []Assignment{{p, backupContributor, rg}}, actVaultRead, sub, false},
		{"group does not reach a sibling", []Assignment{{p, backupContributor, rg}}, actVaultRead, sub + "/resourceGroups/other/providers/Microsoft.DataProtection/backupVaults/v1", false},
		{"rg does not reach rg2", []Assignment{{p, backupContributor, rg}}, actVaultRead, rg + "2", false},
		{"rg does not reach rg2's vault", []Assignment{{p, backupContributor, rg}}, actVaultRead, rg + "2/providers/Microsoft.DataProtection/backupVaults/v1", false},
		{"rg2 does not reach rg", []Assignment{{p, backupContributor, rg + "2"}}, actVaultRead, vault, false},
		{"same group name in another subscription", []Assignment{{p, backupContributor, sub2 + "/resourceGroups/rg"}}, actVaultRead, vault, false},
		{"vault reaches its policy", []Assignment{{p, backupContributor, vault}}, actPolicyWrite, policy, true},
		{"vault does not reach its group", []Assignment{{p, backupContributor, vault}}, actVaultRead, rg, false},
		{"vault does not reach a vault with a longer name", []Assignment{{p, backupContributor, vault}}, actVaultRead, vault + "0", false},
		{"scopes ignore case", []Assignment{{p, backupContributor, strings.ToUpper(rg)}}, actVaultWrite, strings.ToLower(vault), true},
		{"trailing slash", []Assignment{{p, backupContributor, rg + "/"}}, actVaultWrite, vault, true},
		{"full role definition ID", []Assignment{{p, sub + "/providers/Microsoft.Authorization/roleDefinitions/" + backupContributor, rg}}, actVaultWrite, vault, true},
		{"upper-case GUID", []Assignment{{p, strings.ToUpper(backupContributor), rg}}, actVaultWrite, vault, true},
		{"another principal", []Assignment{{"22222222-2222-2222-2222-222222222222", backupContributor, "/"}}, actVaultRead, vault, false},
		{"unknown role", []Assignment{{p, "00000000-0000-0000-0000-000000000000", "/"}}, actVaultRead, vault, false},
		{"role by name is not an ID", []Assignment{{p, "Owner", "/"}}, actVaultRead, vault, false},
		{"invalid assignment scope", []Assignment{{p, backupContributor, ""}}, actVaultRead, vault, false},
		{"relative assignment scope", []Assignment{{p, backupContributor, "subscriptions/00000000-0000-0000-0000-000000000001"}}, actVaultRead, vault, false},
		{"invalid request scope", []Assignment{{p, backupContributor, "/"}}, actVaultRead, "", false},
		{"no assignments", nil, actVaultRead, vault, false},
		{"the role lacks the action", []Assignment{{p, backupContributor, "/"}}, actVaultDelete, vault, false},
		{"a pattern is no action", []Assignment{{p, wantRoleIDs["Owner"], "/"}}, "*", vault, false},
		{"a wildcard action", []Assignment{{p, wantRoleIDs["Reader"], "/"}}, "Microsoft.DataProtection/*/read", vault, false},
		{"empty action", []Assignment{{p, wantRoleIDs["Owner"], "/"}}, "", vault, false},
		{"actions ignore case", []Assignment{{p, backupContributor, rg}}, strings.ToUpper(actVaultWrite), vault, true},
		// The union of several assignments.
		{"reader at subscription, contributor at group: write in group",
			[]Assignment{{p, wantRoleIDs["Reader"], sub}, {p, backupContributor, rg}}, actPolicyWrite, policy, true},
		{"reader at subscription, contributor at group: read elsewhere",
			[]Assignment{{p, wantRoleIDs["Reader"], sub}, {p, backupContributor, rg}}, actPolicyRead, sub + "/resourceGroups/other", true},
		{"reader at subscription, contributor at group: no write elsewhere",
			[]Assignment{{p, wantRoleIDs["Reader"], sub}, {p, backupContributor, rg}}, actPolicyWrite, sub + "/resourceGroups/other", false},
		{"one role's NotActions do not take away another's Actions",
			[]Assignment{{p, wantRoleIDs["Contributor"], "/"}, {p, wantRoleIDs["Owner"], rg}}, actRoleAssignWrite, vault, true},
		{"Owner below does not help above",
			[]Assignment{{p, wantRoleIDs["Contributor"], "/"}, {p, wantRoleIDs["Owner"], rg}}, actRoleAssignWrite, sub, false},
		{"another principal's assignment does not count",
			[]Assignment{{p, wantRoleIDs["Reader"], "/"}, {"someone else", wantRoleIDs["Owner"], "/"}}, actVaultWrite, vault, false},
	}
	for _, tt := range tests {
		if got := Allowed(tt.assignments, p, tt.action, tt.scope); got != tt.want {
			t.Errorf("%s: Allowed(%v, %s, %q) = %v, want %v", tt.name, tt.assignments, tt.action, tt.scope, got, tt.want)
		}
	}
	if Allowed([]Assignment{{"", wantRoleIDs["Owner"], "/"}}, "", actVaultRead, vault) {
		t.Error("an empty principal is allowed")
	}
	if !Allowed([]Assignment{{strings.ToUpper("abcdef00-1111"), wantRoleIDs["Owner"], "/"}}, "abcdef00-1111", actVaultRead, vault) {
		t.Error("principal IDs are compared case-sensitively")
	}
}

// TestServicePrincipalActions: managing principals is a
// Microsoft.Authorization write, which Contributor's NotActions exclude.
func TestServicePrincipalActions(t *testing.T) {
	const (
		p  = "p"
		rg = "/subscriptions/s/resourceGroups/rg"
	)
	owner, contributor, reader := wantRoleIDs["Owner"], wantRoleIDs["Contributor"], wantRoleIDs["Reader"]
	tests := []struct {
		assignments []Assignment
		action      string
		scope       string
		want        bool
	}{
		{[]Assignment{{p, owner, "/"}}, actPrincipalsWrite, "/", true},
		{[]Assignment{{p, owner, "/"}}, actPrincipalsDelete, rg, true},
		{[]Assignment{{p, owner, "/"}}, "MICROSOFT.AUTHORIZATION/ServicePrincipals/Write", "/", true},
		{[]Assignment{{p, contributor, "/"}}, actPrincipalsRead, "/", true},
		{[]Assignment{{p, contributor, "/"}}, actPrincipalsWrite, "/", false},
		{[]Assignment{{p, contributor, "/"}}, actPrincipalsDelete, "/", false},
		{[]Assignment{{p, reader, "/"}}, actPrincipalsRead, "/", true},
		{[]Assignment{{p, reader, "/"}}, actPrincipalsWrite, "/", false},
		// Owner at a group may manage principals there, not above.
		{[]Assignment{{p, contributor, "/"}, {p, owner, rg}}, actPrincipalsWrite, rg, true},
		{[]Assignment{{p, contributor, "/"}, {p, owner, rg}}, actPrincipalsWrite, "/", false},
		{[]Assignment{{p, wantRoleIDs["Backup Reader"], "/"}}, actPrincipalsRead, "/", true},
		{[]Assignment{{p, wantRoleIDs["Backup Contributor"], "/"}}, actPrincipalsWrite, "/", false},
	}
	for _, tt := range tests {
		if got := Allowed(tt.assignments, p, tt.action, tt.scope); got != tt.want {
			t.Errorf("Allowed(%v, %s, %q) = %v, want %v", tt.assignments, tt.action, tt.scope, got, tt.want)
		}
	}
}

func TestAllowedData(t *testing.T) {
	const (
		p       = "p"
		account = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa"
		blob    = account + "/blobServices/default/containers/backups/blobs/b1"
	)
	blobContributor := []Assignment{{p, wantRoleIDs["Storage Blob Data Contributor"], account}}
	if !AllowedData(blobContributor, p, actBlobRead, blob) {
		t.Error("Storage Blob Data Contributor may not read a blob in its account")
	}
	if AllowedData(blobContributor, p, actBlobRead, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa2") {
		t.Error("Storage Blob Data Contributor may read a blob in another account")
	}
	if AllowedData(blobContributor, p, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/modifyPermissions/action", blob) {
		t.Error("Storage Blob Data Contributor may modify blob permissions")
	}
	if Allowed(blobContributor, p, actBlobRead, blob) {
		t.Error("a data action is granted as a control-plane action")
	}
	// Owner's "*" covers control-plane actions only. Allowed does not know
	// actBlobRead is a data action, which is why callers use AllowedData.
	owner := []Assignment{{p, wantRoleIDs["Owner"], "/"}}
	if AllowedData(owner, p, actBlobRead, blob) {
		t.Error("Owner may read blob data")
	}
	if AllowedData(blobContributor, p, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*", blob) {
		t.Error("a data action pattern is allowed")
	}
}
