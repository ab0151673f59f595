package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/engine"
	"github.com/pgvault/pgvault/internal/pgtest"
	"github.com/pgvault/pgvault/internal/repo"
	fsstorage "github.com/pgvault/pgvault/internal/storage/fs"
)

// discardAt drops what is written to it.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// readsWhole reports whether snapshot id and every byte of it read back
// verified, as a restore reads them (its manifest, then repo.WalkContent);
// an error other than repo.ErrCorrupt fails the test.
func readsWhole(t *testing.T, r *repo.Repo, id repo.SnapshotID) bool {
	t.Helper()
	s, err := r.Snapshot(context.Background(), id)
	if err != nil {
		if !errors.Is(err, repo.ErrCorrupt) {
			t.Fatalf("reading snapshot %s: %v is not repo.ErrCorrupt", id, err)
		}
		return false
	}
	err = r.WalkContent(context.Background(), s, repo.ContentOptions{File: func(f repo.File) (io.WriterAt, error) {
		if f.Type == repo.TypeRegular {
			return discardAt{}, nil
		}
		return nil, nil
	}})
	if err != nil && !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("reading snapshot %s: %v is not repo.ErrCorrupt", s.ID, err)
	}
	return err == nil
}

// TestBitFlipsCheckAgreesWithRestore: two backups of a real cluster (data
// changed in between) in a filesystem repository. One object at a time, a
// bit is flipped at its start, middle and end, in every kind of object: the
// config, the key, every index object, both snapshot manifests and the
// smallest, a middle and the largest pack. Every flip is found (Open fails,
// or Check with ReadData reports a problem); the snapshots Check names as
// damaged are exactly those that no longer read back whole, except that
// damage to a pack's trailer counts against all its blobs though they still
// read (docs/design.md §13); a damaged index object hurts no snapshot (R45).
func TestBitFlipsCheckAgreesWithRestore(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{Settings: quiet})
	c.Exec(t, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g; SELECT lo_from_bytea(0, decode(repeat(md5('x'), 20000), 'hex'))")
	conn := backupConn(t, c)
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := fsstorage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, repo.MasterKeySize)
	key[0] = 7
	r, err := repo.Init(context.Background(), st, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 5*time.Minute)
	var snaps []*repo.Snapshot
	for i := range 2 {
		res, err := engine.Backup(ctx, conn, r, engine.BackupOptions{Writer: repo.WriterOptions{PackSize: 2 << 20}})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, res.Snapshot)
		if i == 0 {
			c.Exec(t, "UPDATE t SET v = 'changed' WHERE id % 50 = 0; CHECKPOINT")
		}
	}
	r.Close()

	// The objects to damage, by kind.
	var config, keys, indexes, manifests, packs []string
	sizes := map[string]int64{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		sizes[p] = info.Size()
		switch {
		case rel == "config":
			config = append(config, p)
		case strings.HasPrefix(rel, "keys/"):
			keys = append(keys, p)
		case strings.HasPrefix(rel, "index/"):
			indexes = append(indexes, p)
		case strings.HasPrefix(rel, "snapshots/"):
			manifests = append(manifests, p)
		case strings.HasPrefix(rel, "packs/"):
			packs = append(packs, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(packs, func(i, j int) bool { return sizes[packs[i]] < sizes[packs[j]] })
	if len(config) != 1 || len(keys) != 1 || len(indexes) == 0 || len(manifests) != 2 || len(packs) < 3 {
		t.Fatalf("objects: config %d, keys %d, index %d, snapshots %d, packs %d", len(config), len(keys), len(indexes), len(manifests), len(packs))
	}
	targets := slices.Concat(config, keys, indexes, manifests, []string{packs[0], packs[len(packs)/2], packs[len(packs)-1]})

	flips, damagedSeen := 0, 0
	for _, obj := range targets {
		orig, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, obj)
		for _, pos := range []int{0, len(orig) / 2, len(orig) - 1} {
			b := slices.Clone(orig)
			b[pos] ^= 1 << (pos % 8)
			if err := os.WriteFile(obj, b, 0o600); err != nil {
				t.Fatal(err)
			}
			flips++
			where := fmt.Sprintf("%s byte %d", rel, pos)
			r, err := repo.Open(context.Background(), st, key)
			if err != nil {
				if rel != "config" && !strings.HasPrefix(rel, "keys/") {
					t.Errorf("%s: Open: %v", where, err)
				}
				continue
			}
			rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
			if err != nil {
				t.Fatalf("%s: Check: %v", where, err)
			}
			if len(rep.Problems) == 0 {
				t.Errorf("%s: the flipped bit went unnoticed", where)
			}
			for _, s := range snaps {
				named := slices.Contains(rep.DamagedSnapshots, s.ID)
				whole := readsWhole(t, r, s.ID)
				trailer := strings.HasPrefix(rel, "packs/") && pos == len(orig)-1
				switch {
				case !whole && !named:
					t.Errorf("%s: snapshot %s no longer reads, yet Check does not name it (problems %v)", where, s.ID, rep.Problems)
				case whole && named && !trailer:
					t.Errorf("%s: Check names snapshot %s damaged, yet it reads whole (problems %v)", where, s.ID, rep.Problems)
				case strings.HasPrefix(rel, "index/") && named:
					t.Errorf("%s: a damaged index object hurts snapshot %s", where, s.ID)
				}
				if named {
					damagedSeen++
				}
			}
			r.Close()
		}
		if err := os.WriteFile(obj, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if damagedSeen == 0 {
		t.Error("no flip damaged any snapshot")
	}
	t.Logf("%d objects, %d flips; %d times a snapshot was named damaged", len(targets), flips, damagedSeen)
}
