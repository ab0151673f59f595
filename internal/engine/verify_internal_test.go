package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/storage/mem"
)

// manifestOf writes the manifest PostgreSQL would for files (data
// directory paths and contents), with CRC32C checksums.
func manifestOf(files map[string][]byte, systemID, start, end string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": %s,\n\"Files\": [", systemID)
	sep := "\n"
	for p, data := range files {
		var c pg.CRC32C
		c.Write(data)
		fmt.Fprintf(&b, "%s{ \"Path\": %q, \"Size\": %d, \"Last-Modified\": \"2026-12-07 10:00:00 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": %q }", sep, p, len(data), c.Hex())
		sep = ",\n"
	}
	fmt.Fprintf(&b, "\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": %q, \"End-LSN\": %q }\n],\n", start, end)
	sum := sha256.Sum256([]byte(b.String()))
	return []byte(b.String() + `"Manifest-Checksum": "` + hex.EncodeToString(sum[:]) + "\"}\n")
}

// TestVerifyAgainstManifest: a backup is checked file by file against the
// server's manifest as it is stored; every kind of difference fails it
// with pg.ErrManifestMismatch naming the file, and a backup that matches
// passes.
func TestVerifyAgainstManifest(t *testing.T) {
	t.Parallel()
	const seg = 1 << 20 // the smallest WAL segment size: keeps the test small
	info := &pg.BaseBackupInfo{StartLSN: "0/1FFFF28", EndLSN: "0/2000100", Timeline: 1, SystemIdentifier: "7312345678901234567"}
	listed := map[string][]byte{
		"backup_label":          []byte("START WAL LOCATION: 0/1FFFF28\n"),
		"PG_VERSION":            []byte("15\n"),
		"base/1/1259":           bytes.Repeat([]byte{7}, 16384),
		"pg_tblspc/16400/f":     []byte("tablespace file"),
		"global/pg_control":     bytes.Repeat([]byte{1}, 8192),
		"postgresql.auto.conf":  []byte("# empty\n"),
		"base/1/empty_relation": nil,
	}
	wal := map[string][]byte{
		"pg_wal/00000001000000000000001F": bytes.Repeat([]byte{1}, seg),
		"pg_wal/000000010000000000000020": bytes.Repeat([]byte{2}, seg),
	}
	manifest := manifestOf(listed, info.SystemIdentifier, info.StartLSN, info.EndLSN)

	// archive stores files as the server's archives (base, tablespace
	// 16400) and verifies them against m.
	archive := func(t *testing.T, files map[string][]byte, m []byte, info *pg.BaseBackupInfo) error {
		t.Helper()
		ctx := context.Background()
		r := newMemRepo(t, mem.New())
		w, err := r.NewWriter(ctx, repo.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort(ctx)
		var base, space []entry
		for p, data := range files {
			if rest, ok := strings.CutPrefix(p, "pg_tblspc/16400/"); ok {
				space = append(space, entry{name: rest, typ: tar.TypeReg, mode: 0o600, data: append([]byte{}, data...)})
			} else {
				base = append(base, entry{name: p, typ: tar.TypeReg, mode: 0o600, data: append([]byte{}, data...)})
			}
		}
		rcv := map[string]pg.FileSum{}
		if err := addArchive(ctx, w, "pg_tblspc/16400", bytes.NewReader(makeTar(t, space)), rcv); err != nil {
			t.Fatal(err)
		}
		if err := addArchive(ctx, w, "", bytes.NewReader(makeTar(t, base)), rcv); err != nil {
			t.Fatal(err)
		}
		return pg.VerifyBackup(m, rcv, pg.ChecksumCRC32C, info)
	}
	with := func(change func(files map[string][]byte)) map[string][]byte {
		files := map[string][]byte{}
		for p, d := range listed {
			files[p] = d
		}
		for p, d := range wal {
			files[p] = d
		}
		change(files)
		return files
	}

	if err := archive(t, with(func(map[string][]byte) {}), manifest, info); err != nil {
		t.Fatalf("a backup that matches its manifest: %v", err)
	}
	otherInfo := *info
	otherInfo.EndLSN = "0/3000000"
	otherSystem := *info
	otherSystem.SystemIdentifier = "1"
	for _, c := range []struct {
		name  string
		files map[string][]byte
		info  *pg.BaseBackupInfo
		wants []string
	}{
		{"a flipped bit", with(func(f map[string][]byte) {
			b := bytes.Clone(f["base/1/1259"])
			b[100] ^= 1
			f["base/1/1259"] = b
		}), info, []string{"base/1/1259: received 16384 bytes, CRC32C "}},
		{"a short file", with(func(f map[string][]byte) { f["pg_tblspc/16400/f"] = []byte("tablespace") }), info,
			[]string{"pg_tblspc/16400/f: received 10 bytes"}},
		{"a missing file", with(func(f map[string][]byte) { delete(f, "global/pg_control") }), info,
			[]string{"global/pg_control: listed (8192 bytes) but not received"}},
		{"a file not listed", with(func(f map[string][]byte) { f["base/1/9999"] = []byte("x") }), info,
			[]string{"base/1/9999: received but not listed"}},
		{"a missing WAL segment", with(func(f map[string][]byte) { delete(f, "pg_wal/000000010000000000000020") }), info,
			[]string{"WAL segment 000000010000000000000020, which the backup needs, was not received whole"}},
		{"another system", with(func(map[string][]byte) {}), &otherSystem,
			[]string{"the manifest is of system 7312345678901234567, the server is 1"}},
		{"another WAL range", with(func(map[string][]byte) {}), &otherInfo,
			[]string{"the manifest's WAL runs from 0/1FFFF28 to 0/2000100 on timeline 1, the backup from 0/1FFFF28 to 0/3000000"}},
		{"many", with(func(f map[string][]byte) {
			for i := range 7 {
				f[fmt.Sprintf("extra/%d", i)] = nil
			}
		}), info, []string{"extra/0: received but not listed", "; and 2 more"}},
	} {
		err := archive(t, c.files, manifest, c.info)
		if !errors.Is(err, pg.ErrManifestMismatch) {
			t.Errorf("%s: %v, want pg.ErrManifestMismatch", c.name, err)
			continue
		}
		for _, want := range c.wants {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v\nwant it to say %q", c.name, err, want)
			}
		}
	}
}
