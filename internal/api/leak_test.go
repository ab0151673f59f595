package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoSecretLeaks runs a full session (service principal with a secret,
// token requests, good and failed API calls) and then searches every log
// line and every response for the secrets and tokens involved.
func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := "leak-canary-" + strings.Repeat("Zq9", 14)
	e.createGroup("rg")
	r := e.do("PUT", "/providers/Pgvault.Identity/servicePrincipals/app1?api-version=2026-11-01",
		`{"properties":{"clientSecret":"`+secret+`"}}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create service principal: %d %s", r.Status, r.Body)
	}
	var sp struct {
		Properties struct{ ClientID, ObjectID string } `json:"properties"`
	}
	if err := json.Unmarshal(r.Body, &sp); err != nil {
		t.Fatal(err)
	}
	token := func(secret string) string {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.Properties.ClientID},
			"client_secret": {secret}, "scope": {"https://management.azure.com/.default"}}
		resp, err := e.srv.Client().PostForm(e.URL+"/"+e.svc.TenantID()+"/oauth2/v2.0/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		e.bodies.Write(b)
		var body struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal(b, &body)
		return body.AccessToken
	}
	tok := token(secret)
	if tok == "" {
		t.Fatal("no token for the service principal")
	}
	_ = token(secret + "-wrong")
	// Use the token: a denied call, then granted calls.
	e.doAs("Bearer "+tok, "GET", vaultPath+dpVersion, nil, false)
	e.doAs("Bearer "+tok+"x", "GET", vaultPath+dpVersion, nil, false)
	assign := `{"properties":{"roleDefinitionId":"/providers/Microsoft.Authorization/roleDefinitions/5e467623-bb1f-42f4-a55d-6e525e11384b","principalId":"` + sp.Properties.ObjectID + `"}}`
	if r := e.do("PUT", rgPath+"/providers/Microsoft.Authorization/roleAssignments/0b0b0b0b-1111-2222-3333-444444444444?api-version=2022-04-01", assign); r.Status != http.StatusCreated {
		t.Fatalf("assign role: %d %s", r.Status, r.Body)
	}
	e.doAs("Bearer "+tok, "PUT", vaultPath+dpVersion, goodVault, false)
	e.doAs("Bearer "+tok, "GET", "/providers/Pgvault.Identity/servicePrincipals/app1?api-version=2026-11-01", nil, false)
	e.do("GET", "/providers/Pgvault.Identity/servicePrincipals?api-version=2026-11-01", nil)
	e.do("GET", "/providers/Pgvault.Identity/servicePrincipals/app1?api-version=2026-11-01", nil)

	logs := e.logs.String()
	if !strings.Contains(logs, "status=") {
		t.Fatalf("the server logged nothing; the check would prove nothing:\n%s", logs)
	}
	keys, err := os.ReadDir(filepath.Join(e.dir, "keys"))
	if err != nil || len(keys) == 0 {
		t.Fatalf("no signing keys to look for: %v", err)
	}
	canaries := map[string]string{"client secret": secret, "admin secret": e.adminSecret, "token": tok, "admin token": e.adminToken()}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join(e.dir, "keys", k.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// A distinctive slice of the private key file.
		if len(b) > 200 {
			canaries["signing key "+k.Name()] = string(b[100:160])
		}
	}
	for what, c := range canaries {
		if strings.Contains(logs, c) {
			t.Errorf("the %s appears in the logs", what)
		}
		if what != "token" && strings.Contains(e.bodies.String(), c) {
			t.Errorf("the %s appears in a response", what)
		}
	}
	// The token endpoint must return the token it issues, and nothing else may.
	if n := strings.Count(e.bodies.String(), tok); n != 1 {
		t.Errorf("the service principal's token appears in %d responses, want only the token response", n)
	}
}
