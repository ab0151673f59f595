package testserver_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"testing"

	"github.com/pgvault/pgvault/internal/client"
	"github.com/pgvault/pgvault/internal/testserver"
)

const sub = "2c7e4d1a-5b6f-4a3e-9d8c-7b6a5f4e3d2c"

func TestStart(t *testing.T) {
	ctx := context.Background()
	for _, tlsOn := range []bool{false, true} {
		ts := testserver.Start(t, testserver.Options{TLS: tlsOn})
		// The administrator's client credentials get a token from the issuer.
		admin := ts.AdminClient()
		if _, err := admin.Put(ctx, client.ResourceGroupPath(sub, "rg"), client.APIVersionResources, map[string]string{"location": "westeurope"}); err != nil {
			t.Fatalf("TLS %v: admin PUT: %v", tlsOn, err)
		}
		// A new principal has no role until assigned one.
		p := ts.NewPrincipal(t, "p1")
		var ae *client.APIError
		if _, err := ts.Client(p).Get(ctx, client.ResourceGroupPath(sub, "rg"), client.APIVersionResources); !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden {
			t.Errorf("TLS %v: principal without a role: %v", tlsOn, err)
		}
		ts.Assign(t, p.ObjectID, "Reader", "/subscriptions/"+sub)
		if _, err := ts.Client(p).Get(ctx, client.ResourceGroupPath(sub, "rg"), client.APIVersionResources); err != nil {
			t.Errorf("TLS %v: reader: %v", tlsOn, err)
		}
		// Minted tokens are accepted.
		c := client.New(ts.URL, ts.HTTPClient())
		c.Auth = client.StaticToken(ts.AdminToken(t))
		if _, err := c.Get(ctx, client.ResourceGroupsPath(sub), client.APIVersionResources); err != nil {
			t.Errorf("TLS %v: minted token: %v", tlsOn, err)
		}
		if !tlsOn {
			if ts.CACertPEM != nil || ts.CACertFile != "" {
				t.Error("a plain HTTP server has a CA certificate")
			}
			continue
		}
		b, err := os.ReadFile(ts.CACertFile)
		if err != nil || !bytes.Equal(b, ts.CACertPEM) || !bytes.HasPrefix(b, []byte("-----BEGIN CERTIFICATE-----")) {
			t.Errorf("CA certificate file: %v", err)
		}
		if _, err := http.Get(ts.URL + "/"); err == nil {
			t.Error("a client that does not trust the CA connected")
		}
	}
}

// fakeT records errors, to check the log check.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Errorf(string, ...any) { f.failed = true }

func TestSecretInLogFails(t *testing.T) {
	ts := testserver.Start(t, testserver.Options{})
	// Nothing logs a secret: closing finds none.
	ts.Close()
	// A secret that appears in the log is reported when the server closes.
	ft := &fakeT{TB: t}
	ts2 := testserver.Start(ft, testserver.Options{})
	ts2.RememberSecret("GET") // every request line has it
	if _, err := ts2.AdminClient().Get(context.Background(), client.ResourceGroupsPath(sub), client.APIVersionResources); err != nil {
		t.Fatal(err)
	}
	ts2.Close()
	if !ft.failed {
		t.Error("a logged secret was not reported")
	}
}
