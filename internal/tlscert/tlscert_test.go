package tlscert

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedIsReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	c1, err := SelfSigned(dir, []string{"backup.example"}, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c1.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"backup.example", "localhost", "127.0.0.1"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate does not cover %s: %v", h, err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v", st.Mode(), err)
	}
	c2, err := SelfSigned(dir, []string{"backup.example"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if string(c2.Certificate[0]) != string(c1.Certificate[0]) {
		t.Error("the certificate was not reused")
	}
	// A new host name makes a new certificate.
	c3, err := SelfSigned(dir, []string{"other.example"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if string(c3.Certificate[0]) == string(c1.Certificate[0]) {
		t.Error("the certificate was reused for a host it does not cover")
	}
}
