package job

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/pg"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tarOf makes a tar archive of files (name -> content), in the given order.
func tarOf(t *testing.T, names []string, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestArchiveSums: the files of an archive are summed as it streams past
// in pieces of any size; a target that fails mid-archive does not hang the
// reader; an archive that does not parse is reported.
func TestArchiveSums(t *testing.T) {
	content := map[string][]byte{"PG_VERSION": []byte("15\n"), "base/1/1259": bytes.Repeat([]byte("x"), 20000), "./global/empty": nil}
	archive := tarOf(t, []string{"PG_VERSION", "base/1/1259", "./global/empty"}, content)
	for _, piece := range []int{1, 511, 4096, len(archive)} {
		files := map[string]pg.FileSum{}
		a := startArchiveSums("pg_tblspc/16400/", files)
		for b := archive; len(b) > 0; b = b[min(piece, len(b)):] {
			a.write(b[:min(piece, len(b))])
		}
		if err := a.finish(nil); err != nil {
			t.Fatal(err)
		}
		want := map[string]pg.FileSum{
			"pg_tblspc/16400/PG_VERSION":   {Size: 3, Checksum: sha256Hex(content["PG_VERSION"])},
			"pg_tblspc/16400/base/1/1259":  {Size: 20000, Checksum: sha256Hex(content["base/1/1259"])},
			"pg_tblspc/16400/global/empty": {Size: 0, Checksum: sha256Hex(nil)},
		}
		if fmt.Sprint(files) != fmt.Sprint(want) {
			t.Errorf("pieces of %d: %v, want %v", piece, files, want)
		}
	}

	a := startArchiveSums("", map[string]pg.FileSum{})
	a.write(archive[:700])
	if err := a.finish(errors.New("the target failed")); err != nil {
		t.Errorf("finish after a target error: %v (the target's error is reported, not this)", err)
	}

	a = startArchiveSums("", map[string]pg.FileSum{})
	a.write(bytes.Repeat([]byte{0xff}, 2048))
	a.write(archive) // after the reader gave up: drained, not blocked
	if err := a.finish(nil); err == nil || !strings.HasPrefix(err.Error(), "while checking the archive: ") {
		t.Errorf("finish of a garbage archive: %v", err)
	}
}

// TestVerifyLtrManifest: the archives' files are checked against the SHA256
// manifest; a difference or no manifest at all fails the backup.
func TestVerifyLtrManifest(t *testing.T) {
	info := &pg.BaseBackupInfo{StartLSN: "0/2000028", EndLSN: "0/2000100", Timeline: 1, SystemIdentifier: "42"}
	label := []byte("LABEL: x\n")
	seg := bytes.Repeat([]byte{1}, 1<<20)
	body := fmt.Sprintf("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 42,\n\"Files\": [\n"+
		"{ \"Path\": \"backup_label\", \"Size\": %d, \"Last-Modified\": \"2026-12-07 10:00:00 GMT\", \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": %q }\n],\n"+
		"\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n", len(label), sha256Hex(label))
	manifest := []byte(body + `"Manifest-Checksum": "` + sha256Hex([]byte(body)) + "\"}\n")
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
