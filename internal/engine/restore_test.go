package engine_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/repo"
)

// checkRestoreDir is the part of TestBackupRestore15 and 17 that restores
// with engine.RestoreDir (src was backed up into r as s, with the contents
// want; the data changed since): into a new data directory, with the
// tablespace moved elsewhere (moveTablespace) or, after src is stopped and
// its tablespace directory emptied, back at its original location tsDir;
// the files checked against the backup manifest (pg_verifybackup for
// PostgreSQL 15, tablespace_map ignored when it was rewritten); the
// restored cluster starts and every table, large object and pg_class is as
// in the source at backup time.
func checkRestoreDir(t *testing.T, phase func(string, ...any), src *pgtest.Cluster, r *repo.Repo, s *repo.Snapshot,
	tsDir, tsOID string, want map[string]string, moveTablespace bool) {
	major := src.Major
	ctx := testContext(t, 10*time.Minute)
	root := pgtest.TempDir(t)
	dataDir := filepath.Join(root, "data")
	opts := engine.RestoreDirOptions{DataDir: dataDir}
	spaceDir := tsDir
	if moveTablespace {
		spaceDir = filepath.Join(root, "moved tablespace")
		opts.Tablespaces = map[string]string{tsOID: spaceDir}
	} else {
		// Back where it was: the source goes and leaves the place empty.
		src.Stop(t)
		entries, err := os.ReadDir(tsDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(tsDir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	var last [2]int64
	opts.Progress = func(done, total int64) { last = [2]int64{done, total} }
	start := time.Now()
	res, err := engine.RestoreDir(ctx, r, s, opts)
	if err != nil {
		t.Fatalf("RestoreDir: %v", err)
	}
	took := time.Since(start)
	phase("RestoreDir: %d files, %d bytes in %s (%.0f MB/s)", res.Files, res.Bytes, took.Round(time.Millisecond), float64(res.Bytes)/1e6/took.Seconds())
	if st := s.Stats; res.Bytes != st.Bytes || int64(res.Files) != st.Files+st.Dirs+st.Symlinks || last != [2]int64{st.Bytes, st.Bytes} {
		t.Errorf("result %+v, last progress %v; snapshot %+v", res, last, st)
	}
	if target, err := os.Readlink(filepath.Join(dataDir, "pg_tblspc", tsOID)); err != nil || target != spaceDir {
		t.Errorf("pg_tblspc/%s links to %q (%v), want %q", tsOID, target, err, spaceDir)
	}

	if moveTablespace {
		// tablespace_map names the new place, so it differs from the manifest's.
		if major == 15 {
			out, err := exec.Command(filepath.Join(pg15Bin, "pg_verifybackup"), "--ignore="+engine.TablespaceMapPath, dataDir).CombinedOutput()
			if err != nil {
				t.Fatalf("pg_verifybackup: %v\n%s", err, out)
			}
			t.Logf("pg_verifybackup: %s", bytes.TrimSpace(out))
		}
		if m, err := os.ReadFile(filepath.Join(dataDir, engine.TablespaceMapPath)); err != nil || string(m) != tsOID+" "+spaceDir+"\n" {
			t.Errorf("tablespace_map %q (%v)", m, err)
		}
	} else {
		verifyManifest(t, restored{dataDir: dataDir, spaces: map[string]string{tsOID: spaceDir}})
		if major == 15 {
			verifyBackup(t, dataDir)
		}
	}
	phase("verified against backup_manifest")

	dst := pgtest.StartExisting(t, dataDir, pgtest.Options{Major: major, Settings: quiet})
	phase("restored cluster started (recovery done)")
	checkAsAtBackup(t, dst, want, tsOID, spaceDir)
	phase("restored cluster has the source's %d checksums", len(want))
}
