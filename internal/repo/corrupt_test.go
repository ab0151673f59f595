package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/storage"
)

// snapshotRefs returns, for each blob, the snapshots that need it.
func snapshotRefs(t *testing.T, r *Repo, snaps []*Snapshot) map[ID][]SnapshotID {
	t.Helper()
	refs := make(map[ID][]SnapshotID)
	for _, s := range snaps {
		for _, id := range s.tree {
			refs[id] = append(refs[id], s.ID)
		}
		tr, err := r.newTreeReader(context.Background(), s, treePos{})
		if err != nil {
			t.Fatal(err)
		}
		for {
			it, err := tr.item()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if it.kind == itemChunk && !slices.Contains(refs[it.id], s.ID) {
				refs[it.id] = append(refs[it.id], s.ID)
			}
		}
	}
	return refs
}

// TestEveryBitFlipDetected flips one bit in every byte of every stored
// object in turn. Open or Check (with ReadData) must report it, Check must
// name exactly the snapshots that need the damaged part (none for an index
// object: the packs' own headers stand in for it, R45), and reading any file
// must give either its exact bytes or an error, never other bytes.
func TestEveryBitFlipDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, key := newTestRepo(t)
	opts := WriterOptions{PackSize: 4 << 10}
	shared := regular("base/1/100", relData(1, 2))
	s1 := writeSnapshot(t, r, opts, []testFile{shared, regular("a.txt", bytes.Repeat([]byte("a1"), 50))}, nil)
	s2 := writeSnapshot(t, r, opts, []testFile{shared, regular("b.txt", bytes.Repeat([]byte("b2"), 60)),
		{File: File{Path: "d", Type: TypeDir}}}, nil)
	snaps := []*Snapshot{s1, s2}
	contents := map[string][]byte{}
	for _, s := range snaps {
		r.Walk(ctx, s, func(f File) error {
			if f.Type == TypeRegular {
				b, err := readFile(t, r, s, f.Path)
				if err != nil {
					t.Fatal(err)
				}
				contents[s.ID.String()+f.Path] = b
			}
			return nil
		})
	}
	refs := snapshotRefs(t, r, snaps)

	type region struct {
		start, end int
		hurts      []SnapshotID
	}
	var names []string
	regions := map[string][]region{} // per object: byte ranges and whom damage there hurts
	all := func(ids ...ID) []SnapshotID {
		var out []SnapshotID
		for _, id := range ids {
			for _, s := range refs[id] {
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
		return out
	}
	err := st.List(ctx, "", func(i storage.Info) error {
		names = append(names, i.Name)
		b, err := getBytes(ctx, st, i.Name)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(i.Name, packsPrefix):
			_, blobs, _, err := r.keys.openPack(b)
			if err != nil {
				return err
			}
			var ids []ID
			off := 0
			for _, e := range blobs {
				regions[i.Name] = append(regions[i.Name], region{off, off + int(e.length), all(e.id)})
				off += int(e.length)
				ids = append(ids, e.id)
			}
			regions[i.Name] = append(regions[i.Name], region{off, len(b), all(ids...)})
		case strings.HasPrefix(i.Name, indexPrefix):
			// The packs it names are read from their headers (R45):
			// reported, but no snapshot is hurt.
			regions[i.Name] = []region{{0, len(b), nil}}
		case strings.HasPrefix(i.Name, snapshotPrefix):
			id, _ := parseObjectName(snapshotPrefix, i.Name)
			regions[i.Name] = []region{{0, len(b), []SnapshotID{id}}}
		default: // config, keys: Open or Check fails, no snapshot in particular
			regions[i.Name] = []region{{0, len(b), nil}}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	flips := 0
	for _, name := range names {
		orig, err := getBytes(ctx, st, name)
		if err != nil {
			t.Fatal(err)
		}
		for pos := range orig {
			damaged := bytes.Clone(orig)
			damaged[pos] ^= 1 << (pos % 8)
			if err := putBytes(ctx, st, name, damaged, false); err != nil {
				t.Fatal(err)
			}
			flips++
			var hurts []SnapshotID
			for _, reg := range regions[name] {
				if pos >= reg.start && pos < reg.end {
					hurts = reg.hurts
				}
			}
			checkFlip(t, st, key, name, pos, hurts, snaps, contents)
			if t.Failed() {
				return
			}
		}
		if err := putBytes(ctx, st, name, orig, false); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d objects, %d bit flips, all detected", len(names), flips)
}

func checkFlip(t *testing.T, st storage.Storage, key []byte, name string, pos int, hurts []SnapshotID, snaps []*Snapshot, contents map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	r, err := Open(ctx, st, key)
	if err != nil {
		if name == configName || strings.HasPrefix(name, keysPrefix) {
			return // detected by Open
		}
		t.Fatalf("%s byte %d: Open: %v", name, pos, err)
	}
	defer r.Close()
	rep, err := r.Check(ctx, CheckOptions{ReadData: true})
	if err != nil {
		t.Fatalf("%s byte %d: Check: %v", name, pos, err)
	}
	if len(rep.Problems) == 0 {
		t.Fatalf("%s byte %d: a flipped bit went unnoticed", name, pos)
	}
	got := slices.Clone(rep.DamagedSnapshots)
	want := slices.Clone(hurts)
	cmp := func(a, b SnapshotID) int { return bytes.Compare(a[:], b[:]) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(got, want) {
		t.Fatalf("%s byte %d: Check names snapshots %v, want %v (problems %v)", name, pos, got, want, rep.Problems)
	}
	// Reading gives the right bytes or an error.
	for _, s := range snaps {
		for _, path := range []string{"base/1/100", "a.txt", "b.txt"} {
			want, ok := contents[s.ID.String()+path]
			if !ok {
				continue
			}
			b, err := readFile(t, r, s, path)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s byte %d: reading %s: %v is not ErrCorrupt", name, pos, path, err)
				}
				continue
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("%s byte %d: reading %s gave wrong bytes", name, pos, path)
			}
		}
	}
}
