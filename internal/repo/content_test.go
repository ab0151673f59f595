package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/pgvault/pgvault/internal/storage"
)

// memWriterAt collects a file written with WriteAt.
type memWriterAt struct {
	mu sync.Mutex
	b  []byte
}

func (m *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	copy(m.b[off:], p)
	return len(p), nil
}

// walkAll runs WalkContent and returns every file and regular file content.
func walkAll(t *testing.T, r *Repo, s *Snapshot, parallel int) ([]File, map[string][]byte, error) {
	t.Helper()
	var files []File
	out := map[string]*memWriterAt{}
	var mu sync.Mutex
	done := map[string]bool{}
	err := r.WalkContent(context.Background(), s, ContentOptions{Parallel: parallel,
		File: func(f File) (io.WriterAt, error) {
			files = append(files, f)
			if f.Type != TypeRegular {
				return nil, nil
			}
			w := &memWriterAt{}
			mu.Lock()
			out[f.Path] = w
			mu.Unlock()
			return w, nil
		},
		Done: func(f File, w io.WriterAt) error {
			mu.Lock()
			defer mu.Unlock()
			if done[f.Path] || out[f.Path] != w {
				return fmt.Errorf("Done(%q) twice or with another writer", f.Path)
			}
			done[f.Path] = true
			return nil
		}})
	got := map[string][]byte{}
	for p, w := range out {
		got[p] = w.b
		if err == nil && !done[p] {
			t.Errorf("no Done for %q", p)
		}
	}
	return files, got, err
}

// TestWalkContent: every file in order, every byte in place, Done once per
// regular file (empty ones too), with one or many workers.
func TestWalkContent(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestRepo(t)
	files := []testFile{
		{File: File{Path: "base", Type: TypeDir, Mode: 0o700}},
		regular("base/1", relData(1, 100)), // 100 pages: several chunks
		regular("empty", nil),
		{File: File{Path: "link", Type: TypeSymlink, LinkTarget: "/x"}},
		regular("wal", bytes.Repeat([]byte("w"), 3<<20+5)),
	}
	s := writeSnapshot(t, r, WriterOptions{PackSize: 64 << 10}, files, nil)
	for _, parallel := range []int{1, 7} {
		got, content, err := walkAll(t, r, s, parallel)
		if err != nil {
			t.Fatalf("parallel %d: %v", parallel, err)
		}
		if len(got) != len(files) {
			t.Fatalf("parallel %d: %d files, want %d", parallel, len(got), len(files))
		}
		for i, f := range files {
			if got[i].Path != f.Path || got[i].Type != f.Type {
				t.Errorf("file %d: %+v, want %+v", i, got[i], f.File)
			}
			if f.Type == TypeRegular && !bytes.Equal(content[f.Path], f.data) {
				t.Errorf("parallel %d: %s: %d bytes differ from the %d written", parallel, f.Path, len(content[f.Path]), len(f.data))
			}
		}
	}
	// An error of File stops the walk with it.
	boom := errors.New("boom")
	err := r.WalkContent(context.Background(), s, ContentOptions{File: func(f File) (io.WriterAt, error) {
		if f.Path == "empty" {
			return nil, boom
		}
		return io.WriterAt(&memWriterAt{}), nil
	}})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

// TestDamagedIndexFallsBack: with an index object damaged, reads find the
// packs it named by their own headers (R45): every file reads back exactly
// and check reports the index but no damaged snapshot.
func TestDamagedIndexFallsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, key := newTestRepo(t)
	files := []testFile{regular("a", relData(2, 40)), regular("b", bytes.Repeat([]byte("b"), 2<<20))}
	s := writeSnapshot(t, r, WriterOptions{PackSize: 64 << 10}, files, nil)
	var indexes []string
	st.List(ctx, indexPrefix, func(i storage.Info) error { indexes = append(indexes, i.Name); return nil })
	if len(indexes) == 0 {
		t.Fatal("no index object")
	}
	for _, name := range indexes {
		b, err := getBytes(ctx, st, name)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x20
		if err := putBytes(ctx, st, name, b, false); err != nil {
			t.Fatal(err)
		}
	}
	r2, err := Open(ctx, st, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	_, content, err := walkAll(t, r2, s, 3)
	if err != nil {
		t.Fatalf("WalkContent with every index object damaged: %v", err)
	}
	for _, f := range files {
		if !bytes.Equal(content[f.Path], f.data) {
			t.Errorf("%s differs", f.Path)
		}
	}
	rep, err := r2.Check(ctx, CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != len(indexes) || len(rep.DamagedSnapshots) != 0 || len(rep.PacksFromHeaders) == 0 || len(rep.UnindexedPacks) != 0 ||
		!strings.HasPrefix(rep.Problems[0].Object, indexPrefix) {
		t.Errorf("check: problems %v, damaged %v, from headers %v, unindexed %v", rep.Problems, rep.DamagedSnapshots, rep.PacksFromHeaders, rep.UnindexedPacks)
	}
}

// TestReadFiles: the wanted files in order with their exact content, read
// ahead in spans; a file read only in part, or not at all, does not disturb
// the next; a damaged chunk is an ErrCorrupt naming the file.
func TestReadFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, st, _ := newTestRepo(t)
	files := []testFile{
		{File: File{Path: "base", Type: TypeDir, Mode: 0o700}},
		regular("base/1", relData(3, 300)), // 300 pages: several spans
		regular("empty", nil),
		regular("skipped", bytes.Repeat([]byte("s"), 100)),
		regular("partly", relData(4, 50)),
		regular("wal", bytes.Repeat([]byte("w"), 5<<20+5)),
	}
	s := writeSnapshot(t, r, WriterOptions{PackSize: 1 << 20}, files, nil)
	for _, parallel := range []int{1, 3} {
		var got []string
		err := r.ReadFiles(ctx, s, parallel, func(f File) bool { return f.Path != "skipped" }, func(f File, rd io.Reader) error {
			got = append(got, f.Path)
			if f.Type != TypeRegular {
				if rd != nil {
					t.Errorf("%s: a reader for a %v", f.Path, f.Type)
				}
				return nil
			}
			if f.Path == "partly" {
				_, err := io.ReadFull(rd, make([]byte, 1000))
				return err
			}
			b, err := io.ReadAll(rd)
			if err != nil {
				return err
			}
			for _, want := range files {
				if want.Path == f.Path && !bytes.Equal(b, want.data) {
					t.Errorf("parallel %d: %s: %d bytes differ from the %d written", parallel, f.Path, len(b), len(want.data))
				}
			}
			return nil
		})
		if err != nil || strings.Join(got, ",") != "base,base/1,empty,partly,wal" {
			t.Fatalf("parallel %d: read %q, %v", parallel, got, err)
		}
	}

	// Damage the largest pack in storage.
	var largest string
	var size int64
	st.List(ctx, packsPrefix, func(i storage.Info) error {
		if i.Size > size {
			largest, size = i.Name, i.Size
		}
		return nil
	})
	b, err := getBytes(ctx, st, largest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 1
	if err := putBytes(ctx, st, largest, b, false); err != nil {
		t.Fatal(err)
	}
	err = r.ReadFiles(ctx, s, 2, func(File) bool { return true }, func(f File, rd io.Reader) error {
		if rd == nil {
			return nil
		}
		_, err := io.Copy(io.Discard, rd)
		return err
	})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "while reading \"") {
		t.Errorf("err = %v, want ErrCorrupt naming the file", err)
	}
}
