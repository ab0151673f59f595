package pg_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/pg"
)

// signManifest ends a manifest body (everything up to its checksum line)
// as PostgreSQL does: with the SHA256 of the body.
func signManifest(body string) []byte {
	sum := sha256.Sum256([]byte(body))
	return []byte(body + `"Manifest-Checksum": "` + hex.EncodeToString(sum[:]) + "\"}\n")
}

const manifestBody = `{ "PostgreSQL-Backup-Manifest-Version": 2,
"System-Identifier": 7312345678901234567,
"Files": [
{ "Path": "backup_label", "Size": 225, "Last-Modified": "2026-12-07 10:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "0A1B2C3D" },
{ "Encoded-Path": "626173652f312fff", "Size": 8192, "Last-Modified": "2026-12-07 10:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "01020304" },
{ "Path": "pg_tblspc/16400/PG_15_202209061/5/16401", "Size": 0, "Last-Modified": "2026-12-07 10:00:00 GMT" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
`

func TestParseManifest(t *testing.T) {
	m, err := pg.ParseManifest(signManifest(manifestBody))
	if err != nil {
		t.Fatal(err)
	}
	want := []pg.ManifestFile{
		{Path: "backup_label", Size: 225, Algorithm: "CRC32C", Checksum: "0a1b2c3d"},
		{Path: "base/1/\xff", Size: 8192, Algorithm: "CRC32C", Checksum: "01020304"},
		{Path: "pg_tblspc/16400/PG_15_202209061/5/16401", Size: 0, Algorithm: "NONE"},
	}
	if m.Version != 2 || m.SystemIdentifier != "7312345678901234567" || len(m.Files) != len(want) ||
		len(m.WALRanges) != 1 || m.WALRanges[0] != (pg.WALRange{Timeline: 1, Start: "0/2000028", End: "0/2000100"}) {
		t.Fatalf("%+v", m)
	}
	for i, f := range want {
		if m.Files[i] != f {
			t.Errorf("file %d: %+v, want %+v", i, m.Files[i], f)
		}
	}
	v1 := strings.Replace(strings.Replace(manifestBody, "Version\": 2", "Version\": 1", 1), "\"System-Identifier\": 7312345678901234567,\n", "", 1)
	if m, err := pg.ParseManifest(signManifest(v1)); err != nil || m.SystemIdentifier != "" {
		t.Errorf("version 1: %+v, %v", m, err)
	}

	for _, c := range []struct{ name, manifest, want string }{
		{"not JSON", "{", "unexpected end"},
		{"checksum", strings.Replace(string(signManifest(manifestBody)), `"Size": 225`, `"Size": 226`, 1), "does not match its contents"},
		{"no checksum line", strings.TrimSuffix(manifestBody, "\n") + ` "Manifest-Checksum": "00"}`, "no Manifest-Checksum line"},
		{"version", string(signManifest(strings.Replace(manifestBody, "Version\": 2", "Version\": 3", 1))), "version 3"},
		{"no system", string(signManifest(strings.Replace(manifestBody, "\"System-Identifier\": 7312345678901234567,\n", "", 1))), "without System-Identifier"},
		{"both paths", string(signManifest(strings.Replace(manifestBody, `{ "Path": "backup_label"`, `{ "Path": "x", "Encoded-Path": "78"`, 1))), "neither or both"},
		{"bad encoding", string(signManifest(strings.Replace(manifestBody, "626173652f312fff", "zz", 1))), "Encoded-Path"},
		{"repeated", string(signManifest(strings.Replace(manifestBody, "pg_tblspc/16400/PG_15_202209061/5/16401", "backup_label", 1))), "repeated path"},
		{"absolute", string(signManifest(strings.Replace(manifestBody, `"Path": "backup_label"`, `"Path": "/etc/passwd"`, 1))), "bad or repeated path"},
		{"no size", string(signManifest(strings.Replace(manifestBody, `"Size": 225, `, "", 1))), "no valid Size"},
		{"checksum without algorithm", string(signManifest(strings.Replace(manifestBody, `"Checksum-Algorithm": "CRC32C", `, "", 1))), "with algorithm NONE"},
		{"not hex", string(signManifest(strings.Replace(manifestBody, "0A1B2C3D", "0A1B2C3Z", 1))), "is not hex"},
		{"WAL range", string(signManifest(strings.Replace(manifestBody, `"End-LSN": "0/2000100"`, `"End-LSN": "0/1000000"`, 1))), "WAL range"},
	} {
		_, err := pg.ParseManifest([]byte(c.manifest))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "the backup manifest is not valid: ") {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestCRC32C(t *testing.T) {
	// PostgreSQL writes the CRC's bytes in memory order: CRC32C("123456789")
	// is 0xE3069283, written "839206e3".
	var c pg.CRC32C
	c.Write([]byte("1234"))
	c.Write([]byte("56789"))
	if got := c.Hex(); got != "839206e3" {
		t.Errorf("CRC32C = %s, want 839206e3", got)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(signManifest(manifestBody))
	f.Add([]byte(manifestBody))
	f.Add(signManifest(`{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [],
"WAL-Ranges": [],
`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := pg.ParseManifest(b)
		if err != nil {
			if m != nil {
				t.Fatal("a manifest with an error")
			}
			return
		}
		seen := map[string]bool{}
		for _, f := range m.Files {
			if f.Path == "" || seen[f.Path] || f.Size < 0 || (f.Algorithm == "NONE") != (f.Checksum == "") {
				t.Fatalf("parsed a bad file entry %+v", f)
			}
			seen[f.Path] = true
		}
	})
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestVerifyBackup: what a client received is checked against a SHA256
// manifest (as LTR backups keep); a difference or no manifest at all fails
// the backup.
func TestVerifyBackup(t *testing.T) {
	info := &pg.BaseBackupInfo{StartLSN: "0/2000028", EndLSN: "0/2000100", Timeline: 1, SystemIdentifier: "42"}
	label := []byte("LABEL: x\n")
	seg := bytes.Repeat([]byte{1}, 1<<20)
	body := fmt.Sprintf("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 42,\n\"Files\": [\n"+
		"{ \"Path\": \"backup_label\", \"Size\": %d, \"Last-Modified\": \"2026-12-07 10:00:00 GMT\", \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": %q }\n],\n"+
		"\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n", len(label), sha256Hex(label))
	manifest := signManifest(body)
	files := map[string]pg.FileSum{
		"backup_label":                    {Size: int64(len(label)), Checksum: sha256Hex(label)},
		"pg_wal/000000010000000000000020": {Size: int64(len(seg)), Checksum: sha256Hex(seg)},
	}
	if err := pg.VerifyBackup(manifest, files, pg.ChecksumSHA256, info); err != nil {
		t.Fatalf("a matching backup: %v", err)
	}
	files["backup_label"] = pg.FileSum{Size: int64(len(label)), Checksum: sha256Hex([]byte("LABEL: y\n"))}
	if err := pg.VerifyBackup(manifest, files, pg.ChecksumSHA256, info); !errors.Is(err, pg.ErrManifestMismatch) || !strings.Contains(err.Error(), "backup_label: received 9 bytes, SHA256 ") {
		t.Errorf("a changed file: %v", err)
	}
	if err := pg.VerifyBackup(nil, files, pg.ChecksumSHA256, info); err == nil || !strings.Contains(err.Error(), "no backup manifest") {
		t.Errorf("no manifest: %v", err)
	}
}
