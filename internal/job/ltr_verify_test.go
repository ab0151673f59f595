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
