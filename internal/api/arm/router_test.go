package arm

import (
	"net/http"
	"testing"
)

func TestRouter(t *testing.T) {
	noop := func(http.ResponseWriter, *http.Request, Params) error { return nil }
	routes := []*Route{
		{Method: "GET", Pattern: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}", Handle: noop},
		{Method: "GET", Pattern: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection/backupVaults/{vaultName}", Handle: noop},
		{Method: "GET", Pattern: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection/backupVaults/backupPolicies", Handle: noop},
		{Method: "PUT", Pattern: "{*scope}/providers/Microsoft.Authorization/roleAssignments/{name}", Handle: noop},
	}
	rt := NewRouter(routes)
	cases := []struct {
		method, path string
		route        int // -1: none
		exists       bool
		params       map[string]string
	}{
		{"GET", "/subscriptions/s/resourceGroups/My%20RG", 0, true, map[string]string{"subscriptionId": "s", "resourceGroupName": "My RG"}},
		{"GET", "/SUBSCRIPTIONS/s/RESOURCEGROUPS/rg/", 0, true, map[string]string{"resourceGroupName": "rg"}},
		{"PUT", "/subscriptions/s/resourceGroups/rg", -1, true, nil},
		{"GET", "/subscriptions/s/resourceGroups/rg/providers/microsoft.dataprotection/backupvaults/Providers", 1, true, map[string]string{"vaultName": "Providers"}},
		// A literal wins over a placeholder in the same place.
		{"GET", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/backupPolicies", 2, true, nil},
		{"GET", "/subscriptions/s/resourceGroups//providers", -1, false, nil},
		{"GET", "/subscriptions/s/resourceGroups/rg/extra", -1, false, nil},
		{"PUT", "/providers/Microsoft.Authorization/roleAssignments/a1", 3, true, map[string]string{"scope": "/", "name": "a1"}},
		{"PUT", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/a1", 3, true, map[string]string{"scope": "/subscriptions/s/resourceGroups/rg", "name": "a1"}},
		{"PUT", "/subscriptions/s//providers/Microsoft.Authorization/roleAssignments/a1", -1, false, nil},
	}
	for _, c := range cases {
		r, p, exists, err := rt.Match(c.method, c.path)
		if err != nil {
			t.Errorf("%s %s: %v", c.method, c.path, err)
			continue
		}
		got := -1
		for i := range routes {
			if r == routes[i] {
				got = i
			}
		}
		if got != c.route || exists != c.exists {
			t.Errorf("%s %s: route %d exists %v, want %d %v", c.method, c.path, got, exists, c.route, c.exists)
			continue
		}
		for k, v := range c.params {
			if p.Get(k) != v {
				t.Errorf("%s %s: %s = %q, want %q", c.method, c.path, k, p.Get(k), v)
			}
		}
	}
	if _, _, _, err := rt.Match("GET", "/subscriptions/%zz/resourceGroups/rg"); err == nil {
		t.Error("bad escape accepted")
	}
}
