package repo

import (
	"context"
	"fmt"
	"testing"
)

// dbFiles is a small PostgreSQL-like data directory.
func dbFiles(seed uint64) []testFile {
	var files []testFile
	for i := range 8 {
		files = append(files, regular(fmt.Sprintf("base/16384/%d", 16385+i), relData(seed+uint64(i), 64+i*8)))
	}
	files = append(files, regular("global/1262", relData(seed+100, 1)), regular("PG_VERSION", []byte("17\n")))
	return files
}

func TestDedupUnchanged(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestRepo(t)
	files := dbFiles(1)
	s1 := writeSnapshot(t, r, WriterOptions{}, files, nil)
	s2 := writeSnapshot(t, r, WriterOptions{}, files, nil)
	if s2.Stats.NewChunks != 0 || s2.Stats.NewTree != 0 || s2.Stats.Packs != 0 || s2.Stats.NewBytes != 0 {
		t.Errorf("an unchanged second snapshot stored %+v", s2.Stats)
	}
	if s1.Stats.Chunks != s2.Stats.Chunks || s1.Stats.NewChunks == 0 {
		t.Errorf("first %+v, second %+v", s1.Stats, s2.Stats)
	}
	for _, s := range []*Snapshot{s1, s2} {
		for _, f := range files {
			got, err := readFile(t, r, s, f.Path)
			if err != nil || string(got) != string(f.data) {
				t.Fatalf("%s: %v", f.Path, err)
			}
		}
	}
	mustCheck(t, r, CheckOptions{ReadData: true})
}

func TestDedupOnePage(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestRepo(t)
	files := dbFiles(2)
	writeSnapshot(t, r, WriterOptions{}, files, nil)

	// Change one byte in page 37 of the third relation file: its chunk
	// (pages 32-47) and nothing else changes.
	changed := append([]testFile(nil), files...)
	data := append([]byte(nil), files[2].data...)
	data[37*PageSize+100] ^= 0xff
	changed[2] = regular(files[2].Path, data)
	s2 := writeSnapshot(t, r, WriterOptions{}, changed, nil)
	if s2.Stats.NewChunks != 1 || s2.Stats.NewRawBytes != PageSize*defaultRelationChunkPages {
		t.Errorf("one changed page stored %d chunks, %d bytes; want 1 chunk of %d", s2.Stats.NewChunks, s2.Stats.NewRawBytes, PageSize*defaultRelationChunkPages)
	}
	got, err := readFile(t, r, s2, files[2].Path)
	if err != nil || string(got) != string(data) {
		t.Fatalf("read back: %v", err)
	}
	mustCheck(t, r, CheckOptions{ReadData: true})
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestRepo(t)
	ctx := context.Background()
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			w, err := r.NewWriter(ctx, WriterOptions{PackSize: 64 << 10})
			if err != nil {
				errs <- err
				return
			}
			for _, f := range dbFiles(uint64(i % 2)) {
				if err := w.AddFile(ctx, f.File, f.reader()); err != nil {
					errs <- err
					return
				}
			}
			_, err = w.Commit(ctx, nil)
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil || len(snaps) != 3 {
		t.Fatalf("Snapshots: %d, %v", len(snaps), err)
	}
	mustCheck(t, r, CheckOptions{ReadData: true})
}

func TestPrunePlanExcludesPacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, _ := newTestRepo(t)
	files := []testFile{regular("base/1/1", relData(3, 16))}
	writeSnapshot(t, r, WriterOptions{}, files, nil)
	// A prune plan names every pack: the next writer must store the data
	// again rather than rely on them (R35).
	var plan prunePlan
	plan.Version = planVersion
	err := st.List(ctx, packsPrefix, func(i storageInfo) error {
		id, _ := parseObjectName(packsPrefix, i.Name)
		plan.Packs = append(plan.Packs, id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	putSealedJSON(t, r, prunePrefix, ObjectPrunePlan, plan)
	s := writeSnapshot(t, r, WriterOptions{}, files, nil)
	if s.Stats.NewChunks != 1 {
		t.Errorf("with the packs planned for deletion the writer stored %d chunks, want 1", s.Stats.NewChunks)
	}
}
