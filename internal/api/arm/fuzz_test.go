package arm

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRouter: matching any path never panics, and a match binds every
// placeholder to a non-empty value.
func FuzzRouter(f *testing.F) {
	noop := func(http.ResponseWriter, *http.Request, Params) error { return nil }
	rt := NewRouter([]*Route{
		{Method: "GET", Pattern: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}", Handle: noop},
		{Method: "GET", Pattern: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection/backupVaults/{vaultName}", Handle: noop},
		{Method: "GET", Pattern: "/subscriptions/{subscriptionId}/providers/Microsoft.DataProtection/locations/{location}/operationStatus/{operationId}", Handle: noop},
		{Method: "GET", Pattern: "{*scope}/providers/Microsoft.Authorization/roleAssignments/{name}", Handle: noop},
	})
	f.Add("GET", "/subscriptions/x/resourcegroups/y")
	f.Add("GET", "/SUBSCRIPTIONS/x/resourceGroups/y/providers/microsoft.dataprotection/BACKUPVAULTS/v%2Fw")
	f.Add("PUT", "//subscriptions//resourceGroups/%zz")
	f.Add("GET", "/providers/Microsoft.Authorization/roleAssignments/x")
	f.Add("GET", "/subscriptions/s/providers/microsoft.authorization/roleassignments/x")
	f.Fuzz(func(t *testing.T, method, path string) {
		r, p, _, err := rt.Match(method, path)
		if err != nil || r == nil {
			return
		}
		for _, s := range r.segs {
			if s.rest && !strings.HasPrefix(p.Get(s.name), "/") {
				t.Fatalf("scope %q of %q does not start with /", p.Get(s.name), path)
			}
			if s.name != "" && p.Get(s.name) == "" {
				t.Fatalf("placeholder %s empty for %q", s.name, path)
			}
		}
	})
}

// FuzzDecodeBody: any body gives either a value or a 4xx ARM error.
func FuzzDecodeBody(f *testing.F) {
	f.Add(`{"location":"westus","properties":{"storageSettings":[{"datastoreType":"VaultStore"}]}}`, "application/json")
	f.Add(`{"location":1}`, "application/json; charset=utf-8")
	f.Add(`{`, "text/plain")
	f.Add(``, "")
	f.Fuzz(func(t *testing.T, body, ct string) {
		var v struct {
			Location   string `json:"location"`
			Properties *struct {
				StorageSettings []struct {
					DatastoreType string `json:"datastoreType"`
				} `json:"storageSettings"`
			} `json:"properties"`
			Tags map[string]string `json:"tags"`
		}
		req := httptest.NewRequest("PUT", "/", strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if e := DecodeBody(req, &v); e != nil && (e.Status < 400 || e.Status > 499 || e.Code == "") {
			t.Fatalf("bad error %+v", e)
		}
	})
}

// FuzzAPIVersion: any api-version is accepted or refused with a 400.
func FuzzAPIVersion(f *testing.F) {
	f.Add("2024-04-01")
	f.Add("2024-04-01-preview")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		req := httptest.NewRequest("GET", "/x", nil)
		q := req.URL.Query()
		q.Set("api-version", v)
		req.URL.RawQuery = q.Encode()
		e := CheckAPIVersion(req, ProviderDataProtection)
		if e == nil && v != "2024-04-01" {
			t.Fatalf("accepted %q", v)
		}
		if e != nil && e.Status != 400 {
			t.Fatalf("status %d", e.Status)
		}
	})
}
