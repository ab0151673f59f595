package secretbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "secrets.key")
	key, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", st.Mode(), err)
	}
	again, err := LoadOrCreateKey(path)
	if err != nil || string(again) != string(key) {
		t.Fatalf("key not reused: %v", err)
	}
	box, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed := box.Seal("p@ssw0rd", "/servers/a")
	if strings.Contains(sealed, "p@ssw0rd") || box.Seal("p@ssw0rd", "/servers/a") == sealed {
		t.Fatal("sealing is not randomised or leaks the plaintext")
	}
	if got, err := box.Open(sealed, "/servers/a"); err != nil || got != "p@ssw0rd" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := box.Open(sealed, "/servers/b"); err != ErrOpen {
		t.Errorf("opened with another context: %v", err)
	}
	other, _ := New(make([]byte, KeySize))
	if _, err := other.Open(sealed, "/servers/a"); err != ErrOpen {
		t.Errorf("opened with another key: %v", err)
	}
	damaged := sealed[:len(sealed)-4] + "AAA="
	if _, err := box.Open(damaged, "/servers/a"); err != ErrOpen {
		t.Errorf("opened a damaged value: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Error("a world-readable key file was accepted")
	}
}

func FuzzOpen(f *testing.F) {
	box, _ := New(make([]byte, KeySize))
	f.Add(box.Seal("x", "c"))
	f.Add("v1:")
	f.Add("v1:!!!")
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := box.Open(s, "c"); err == nil && box.Seal(p, "c") == "" {
			t.Fatal("unreachable")
		}
	})
}
