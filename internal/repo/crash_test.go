package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/faulty"
	"github.com/pgvault/pgvault/internal/storage/mem"
)

// crashFiles are written by the interrupted second snapshot.
func crashFiles() []testFile {
	files := dbFiles(7)
	return append(files, regular("pg_wal/000000010000000000000002", relData(8, 300)))
}

// TestCrashSafety fails the Nth Put of a write, for every N, in each of the
// ways a Put can fail: refused, cut off halfway (nothing stored), or stored
// with the reply lost. No incomplete snapshot may become visible, the
// earlier snapshot must stay whole and Check must pass.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := WriterOptions{PackSize: 64 << 10, indexFlushBlobs: 8}

	// Count the Puts of an undisturbed second write.
	base := func() (*mem.Mem, []byte, *Snapshot) {
		st := mem.New()
		key := testKey(t)
		r, err := Init(ctx, st, key)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		return st, key, writeSnapshot(t, r, opts, dbFiles(1), map[string]string{"n": "1"})
	}
	st, key, _ := base()
	f := faulty.Wrap(st)
	r, err := Open(ctx, f, key)
	if err != nil {
		t.Fatal(err)
	}
	writeSnapshot(t, r, opts, crashFiles(), nil)
	r.Close()
	puts := f.Calls().Put
	if puts < 8 {
		t.Fatalf("only %d puts in a write; the test needs more", puts)
	}

	modes := []struct {
		name  string
		fault func(n int) faulty.Fault
	}{
		{"refused", func(n int) faulty.Fault { return faulty.Fault{Op: faulty.OpPut, After: n} }},
		{"midway", func(n int) faulty.Fault { return faulty.Fault{Op: faulty.OpPut, After: n, Midway: true} }},
		// Lost replies to content-named Puts only: the lock, overwritten in
		// place, cannot tell a lost reply from a failure.
		{"lost", func(n int) faulty.Fault {
			return faulty.Fault{Op: faulty.OpPut, After: n, Lost: true, Match: func(name string) bool { return !strings.HasPrefix(name, locksPrefix) }}
		}},
		{"all after", func(n int) faulty.Fault { return faulty.Fault{Op: faulty.OpPut, After: n, Times: faulty.Forever} }},
	}
	for _, m := range modes {
		for n := range puts {
			t.Run(fmt.Sprintf("%s/put%d", m.name, n), func(t *testing.T) {
				st, key, s1 := base()
				f := faulty.Wrap(st)
				f.Inject(m.fault(n))
				r, err := Open(ctx, f, key)
				if err != nil {
					t.Fatal(err)
				}
				err = tryWrite(ctx, r, opts, crashFiles())
				r.Close()
				if err == nil && f.Calls().Faults == 0 {
					return // this write needed fewer puts than the counted one (the number varies by one)
				}
				// A lost reply to a content-named Put is noticed (the object is
				// there) and the write goes on.
				wrote := err == nil
				if wrote && m.name != "lost" {
					t.Fatalf("the write succeeded despite the fault")
				}
				if !wrote && m.name == "lost" {
					t.Fatalf("the write failed with %v after a lost reply; the object was stored", err)
				}
				if !wrote && !errors.Is(err, faulty.ErrInjected) {
					t.Fatalf("the write failed with %v, want the injected fault", err)
				}
				// After the "crash", look at what is stored.
				r2, err := Open(ctx, st, key)
				if err != nil {
					t.Fatal(err)
				}
				defer r2.Close()
				snaps, err := r2.Snapshots(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range snaps {
					if s.ID != s1.ID && m.name != "lost" {
						t.Errorf("snapshot %s is visible after a failed write", s.ID)
					}
					verifySnapshot(t, r2, s)
				}
				if !slices.ContainsFunc(snaps, func(s *Snapshot) bool { return s.ID == s1.ID }) {
					t.Fatalf("the earlier snapshot is gone: %v", snaps)
				}
				if wrote && len(snaps) != 2 {
					t.Fatalf("the write succeeded but %d snapshots are visible, want 2", len(snaps))
				}
				mustCheck(t, r2, CheckOptions{ReadData: true})
				if err := st.List(ctx, locksPrefix, func(i storage.Info) error {
					if m.name != "lost" && m.name != "all after" {
						return fmt.Errorf("lock %s left behind", i.Name)
					}
					return nil
				}); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// tryWrite writes files as a snapshot and returns the first error.
func tryWrite(ctx context.Context, r *Repo, opts WriterOptions, files []testFile) error {
	w, err := r.NewWriter(ctx, opts)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := w.AddFile(ctx, f.File, f.reader()); err != nil {
			w.Abort(ctx)
			return err
		}
	}
	_, err = w.Commit(ctx, nil)
	return err
}

// verifySnapshot reads every file of s, which must succeed.
func verifySnapshot(t *testing.T, r *Repo, s *Snapshot) {
	t.Helper()
	err := r.Walk(context.Background(), s, func(f File) error {
		if f.Type != TypeRegular {
			return nil
		}
		b, err := readFile(t, r, s, f.Path)
		if err != nil {
			return err
		}
		if int64(len(b)) != f.Size {
			return fmt.Errorf("%s: %d bytes, want %d", f.Path, len(b), f.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", s.ID, err)
	}
}
