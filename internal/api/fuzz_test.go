package api

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/vault"
)

// FuzzDecodePolicy: decoding and validating any policy body never panics,
// and an accepted policy encodes to JSON that decodes and validates again to
// the same policy.
func FuzzDecodePolicy(f *testing.F) {
	seed, err := os.ReadFile("testdata/pgflex-policy.json")
	if err != nil {
		f.Fatal(err)
	}
	var body struct {
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(seed, &body); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(body.Properties))
	f.Add([]byte(`{"objectType":"BackupPolicy","policyRules":[{"objectType":"AzureBackupRule","trigger":{"objectType":"AdhocBasedTriggerContext","taggingCriteria":{}}}]}`))
	f.Add([]byte(`{"objectType":"BackupPolicy","policyRules":[null,{}]}`))
	f.Add([]byte(`[]`))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, e := decodePolicy(raw)
		if e != nil {
			if e.Status != 400 || e.Code == "" || e.Message == "" {
				t.Fatalf("bad error for %q: %+v", raw, e)
			}
			return
		}
		if err := vault.ValidatePolicy(p, now); err != nil {
			if _, ok := vault.AsError(err); !ok {
				t.Fatalf("validation returned a non-API error: %v", err)
			}
			return
		}
		enc, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, e := decodePolicy(enc)
		if e != nil {
			t.Fatalf("re-decoding an accepted policy failed: %v\n%s", e, enc)
		}
		if err := vault.ValidatePolicy(p2, now); err != nil {
			t.Fatalf("re-validating an accepted policy failed: %v\n%s", err, enc)
		}
		enc2, _ := json.Marshal(p2)
		if string(enc) != string(enc2) {
			t.Fatalf("policy not stable:\n%s\n%s", enc, enc2)
		}
	})
}
