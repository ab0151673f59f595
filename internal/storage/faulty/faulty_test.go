package faulty_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/faulty"
	"github.com/pgvault/pgvault/internal/storage/fs"
	"github.com/pgvault/pgvault/internal/storage/mem"
	"github.com/pgvault/pgvault/internal/storage/storagetest"
)

var errTest = errors.New("test fault")

// TestConformance checks that a Faulty without faults keeps the contract.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage { return faulty.Wrap(mem.New()) })
}

// TestConformanceNoMatch checks that faults that select nothing change
// nothing.
func TestConformanceNoMatch(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		f := faulty.Wrap(mem.New())
		never := func(string) bool { return false }
		for op := faulty.OpPut; op <= faulty.OpDelete; op++ {
			f.Inject(faulty.Fault{Op: op, Match: never, Times: faulty.Forever})
		}
		return f
	})
}

func putErr(f *faulty.Faulty, t *testing.T, name, data string) error {
	return f.Put(t.Context(), name, strings.NewReader(data), int64(len(data)), storage.PutOptions{})
}

func read(t *testing.T, s storage.Storage, name string) (string, error) {
	t.Helper()
	rc, err := s.Get(t.Context(), name)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), err
}

func TestAfterAndTimes(t *testing.T) {
	tests := []struct {
		after, times int
		fail         string // which of 8 Puts fail
	}{
		{0, 0, "x......."},
		{2, 0, "..x....."},
		{2, 1, "..x....."},
		{1, 3, ".xxx...."},
		{5, faulty.Forever, ".....xxx"},
	}
	for _, tt := range tests {
		inner := mem.New()
		f := faulty.Wrap(inner)
		f.Inject(faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("data/"), After: tt.after, Times: tt.times, Err: errTest})
		var got strings.Builder
		for i := range 8 {
			name := fmt.Sprintf("data/%d", i)
			// Calls that the fault does not select do not count.
			if err := putErr(f, t, fmt.Sprintf("index/%d", i), "i"); err != nil {
				t.Fatalf("Put of an unselected name: %v", err)
			}
			err := putErr(f, t, name, "d")
			switch {
			case err == nil:
				got.WriteByte('.')
				if _, err := inner.Stat(t.Context(), name); err != nil {
					t.Errorf("after a passed Put: %v", err)
				}
			case errors.Is(err, errTest):
				got.WriteByte('x')
				if !strings.Contains(err.Error(), name) {
					t.Errorf("the error %q does not name the object", err)
				}
				if _, err := inner.Stat(t.Context(), name); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("after a failed Put: got %v, want ErrNotFound", err)
				}
			default:
				t.Fatalf("Put: %v", err)
			}
		}
		if got.String() != tt.fail {
			t.Errorf("After %d, Times %d: got %s, want %s", tt.after, tt.times, got.String(), tt.fail)
		}
		want := faulty.Calls{Put: 16, Faults: strings.Count(tt.fail, "x")}
		if calls := f.Calls(); calls != want {
			t.Errorf("Calls: got %+v, want %+v", calls, want)
		}
	}
}

func TestDefaultErr(t *testing.T) {
	f := faulty.Wrap(mem.New())
	f.Inject(faulty.Fault{Op: faulty.OpStat})
	if _, err := f.Stat(t.Context(), "x"); !errors.Is(err, faulty.ErrInjected) {
		t.Errorf("got %v, want ErrInjected", err)
	}
}

func TestEveryOpFails(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	f := faulty.Wrap(inner)
	if err := putErr(f, t, "x", "data"); err != nil {
		t.Fatal(err)
	}
	for op := faulty.OpPut; op <= faulty.OpDelete; op++ {
		f.Inject(faulty.Fault{Op: op, Err: errTest})
	}
	errs := map[string]error{
		"Put": putErr(f, t, "x", "other"),
		"Get": func() error { _, err := f.Get(ctx, "x"); return err }(),
		"GetRange": func() error {
			_, err := f.GetRange(ctx, "x", 0, 1)
			return err
		}(),
		"Stat":   func() error { _, err := f.Stat(ctx, "x"); return err }(),
		"List":   f.List(ctx, "", func(storage.Info) error { t.Error("List called fn"); return nil }),
		"Delete": f.Delete(ctx, "x"),
	}
	for op, err := range errs {
		if !errors.Is(err, errTest) {
			t.Errorf("%s: got %v, want the injected error", op, err)
		}
	}
	if got, err := read(t, inner, "x"); err != nil || got != "data" {
		t.Errorf("after failed calls the object holds %q, %v", got, err)
	}
	want := faulty.Calls{Put: 2, Get: 1, GetRange: 1, Stat: 1, List: 1, Delete: 1, Faults: 6}
	if calls := f.Calls(); calls != want {
		t.Errorf("Calls: got %+v, want %+v", calls, want)
	}
	// Each fault was for one call.
	if got, err := read(t, f, "x"); err != nil || got != "data" {
		t.Errorf("Get after the fault: %q, %v", got, err)
	}
}

// TestPutMidway checks that a Put cut off halfway stores nothing, on both
// backends, and that the fs backend leaves no temporary file behind.
func TestPutMidway(t *testing.T) {
	dir := t.TempDir()
	disk, err := fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, inner := range map[string]storage.Storage{"mem": mem.New(), "fs": disk} {
		f := faulty.Wrap(inner)
		f.Inject(faulty.Fault{Op: faulty.OpPut, Midway: true, Times: 2, Err: errTest})
		data := strings.Repeat("0123456789", 100000)

		err := putErr(f, t, "p/new", data)
		if !errors.Is(err, errTest) {
			t.Errorf("%s: Put cut off halfway: got %v, want the injected error", name, err)
		}
		if _, err := inner.Stat(t.Context(), "p/new"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: after a Put cut off halfway: got %v, want ErrNotFound", name, err)
		}

		if err := inner.Put(t.Context(), "p/old", strings.NewReader("old"), 3, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := putErr(f, t, "p/old", data); !errors.Is(err, errTest) {
			t.Errorf("%s: Put over an object cut off halfway: got %v, want the injected error", name, err)
		}
		if got, err := read(t, inner, "p/old"); err != nil || got != "old" {
			t.Errorf("%s: after a Put over an object cut off halfway it holds %q, %v", name, got, err)
		}
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp") {
			t.Errorf("a temporary file stayed behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGetMidway(t *testing.T) {
	inner := mem.New()
	f := faulty.Wrap(inner)
	if err := putErr(f, t, "x", "0123456789"); err != nil {
		t.Fatal(err)
	}
	f.Inject(faulty.Fault{Op: faulty.OpGet, Midway: true, Err: errTest})
	f.Inject(faulty.Fault{Op: faulty.OpGetRange, Midway: true, Err: errTest})
	got, err := read(t, f, "x")
	if got != "01234" || !errors.Is(err, errTest) {
		t.Errorf("Get cut off halfway: got %q, %v; want 01234 and the injected error", got, err)
	}
	rc, err := f.GetRange(t.Context(), "x", 2, 6)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if string(data) != "234" || !errors.Is(err, errTest) {
		t.Errorf("GetRange cut off halfway: got %q, %v; want 234 and the injected error", data, err)
	}
}

func TestLost(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	f := faulty.Wrap(inner)
	for op := faulty.OpPut; op <= faulty.OpDelete; op++ {
		f.Inject(faulty.Fault{Op: op, Lost: true, Err: errTest})
	}
	if err := putErr(f, t, "x", "data"); !errors.Is(err, errTest) {
		t.Errorf("Put with a lost reply: got %v, want the injected error", err)
	}
	if got, err := read(t, inner, "x"); err != nil || got != "data" {
		t.Errorf("after a Put with a lost reply the object holds %q, %v; want it stored", got, err)
	}
	if _, err := f.Get(ctx, "x"); !errors.Is(err, errTest) {
		t.Errorf("Get with a lost reply: got %v, want the injected error", err)
	}
	if _, err := f.GetRange(ctx, "x", 0, 1); !errors.Is(err, errTest) {
		t.Errorf("GetRange with a lost reply: got %v, want the injected error", err)
	}
	if _, err := f.Stat(ctx, "x"); !errors.Is(err, errTest) {
		t.Errorf("Stat with a lost reply: got %v, want the injected error", err)
	}
	var listed []string
	err := f.List(ctx, "", func(info storage.Info) error { listed = append(listed, info.Name); return nil })
	if !errors.Is(err, errTest) || len(listed) != 1 {
		t.Errorf("List with a lost reply: got %q, %v; want x listed and the injected error", listed, err)
	}
	if err := f.Delete(ctx, "x"); !errors.Is(err, errTest) {
		t.Errorf("Delete with a lost reply: got %v, want the injected error", err)
	}
	if _, err := inner.Stat(ctx, "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after a Delete with a lost reply: got %v, want ErrNotFound", err)
	}
	// A lost reply of a call that failed is that failure.
	f.Inject(faulty.Fault{Op: faulty.OpDelete, Lost: true, Err: errTest})
	if err := f.Delete(ctx, "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Delete of a missing object with a lost reply: got %v, want ErrNotFound", err)
	}
}

func TestCorrupt(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	f := faulty.Wrap(inner)
	for _, name := range []string{"config", "data/1"} {
		if err := putErr(f, t, name, "0123456789"); err != nil {
			t.Fatal(err)
		}
	}
	flip := func(b []byte) []byte { b[0] ^= 0x80; return b }
	f.Inject(faulty.Fault{Op: faulty.OpGet, Match: faulty.Prefix("data/"), Times: faulty.Forever, Corrupt: flip})
	f.Inject(faulty.Fault{Op: faulty.OpGetRange, Corrupt: func(b []byte) []byte { return b[:1] }})

	for range 2 {
		if got, err := read(t, f, "data/1"); err != nil || got != "\xb0123456789" {
			t.Errorf("corrupted Get: got %q, %v", got, err)
		}
	}
	if got, err := read(t, f, "config"); err != nil || got != "0123456789" {
		t.Errorf("Get of an object the fault does not select: got %q, %v", got, err)
	}
	rc, err := f.GetRange(ctx, "config", 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(data) != "3" {
		t.Errorf("shortened GetRange: got %q, %v; want 3", data, err)
	}
	// The stored object is untouched.
	if got, err := read(t, inner, "data/1"); err != nil || got != "0123456789" {
		t.Errorf("the stored object: got %q, %v", got, err)
	}
	// A missing object stays missing.
	if _, err := f.Get(ctx, "data/2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("corrupted Get of a missing object: got %v, want ErrNotFound", err)
	}
}

func TestOrder(t *testing.T) {
	f := faulty.Wrap(mem.New())
	errFirst, errSecond := errors.New("first"), errors.New("second")
	f.Inject(faulty.Fault{Op: faulty.OpDelete, After: 1, Err: errFirst})
	f.Inject(faulty.Fault{Op: faulty.OpDelete, Times: 3, Err: errSecond})
	var got []error
	for range 5 {
		err := f.Delete(t.Context(), "x")
		switch {
		case errors.Is(err, errFirst):
			got = append(got, errFirst)
		case errors.Is(err, errSecond):
			got = append(got, errSecond)
		default:
			got = append(got, nil)
		}
	}
	// Call 1: only the second is due. Call 2: both are due, the first
	// wins. Calls 3 and 4: the second again, for its second and third
	// change. Call 5 passes through (nil: the storage's own ErrNotFound).
	want := []error{errSecond, errFirst, errSecond, errSecond, nil}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestConcurrent(t *testing.T) {
	f := faulty.Wrap(mem.New())
	f.Inject(faulty.Fault{Op: faulty.OpPut, After: 20, Times: 3, Err: errTest})
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				err := putErr(f, t, fmt.Sprintf("c/%d/%d", g, i), "x")
				if err != nil {
					if !errors.Is(err, errTest) {
						t.Errorf("Put: %v", err)
					}
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if failed != 3 {
		t.Errorf("%d Puts failed, want 3", failed)
	}
	if calls := f.Calls(); calls.Put != 80 || calls.Faults != 3 {
		t.Errorf("Calls: got %+v", calls)
	}
}

func TestInjectRefusesNonsense(t *testing.T) {
	for _, flt := range []faulty.Fault{
		{Op: faulty.OpDelete + 1},
		{Op: -1},
		{Op: faulty.OpPut, After: -1},
		{Op: faulty.OpPut, Times: -2},
		{Op: faulty.OpPut, Midway: true, Lost: true},
		{Op: faulty.OpStat, Midway: true},
		{Op: faulty.OpPut, Corrupt: func(b []byte) []byte { return b }},
		{Op: faulty.OpGet, Lost: true, Corrupt: func(b []byte) []byte { return b }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Inject(%+v) did not panic", flt)
				}
			}()
			faulty.Wrap(mem.New()).Inject(flt)
		}()
	}
}

func TestOpString(t *testing.T) {
	var got []string
	for op := faulty.OpPut; op <= faulty.OpDelete+1; op++ {
		got = append(got, op.String())
	}
	if want := "Put Get GetRange Stat List Delete Op(6)"; strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
}

// Example shows a test of code that must survive a failed upload.
func Example() {
	ctx := context.Background()
	f := faulty.Wrap(mem.New())
	// The second Put under data/ fails.
	f.Inject(faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("data/"), After: 1})
	for _, name := range []string{"data/1", "index/1", "data/2", "data/3"} {
		err := f.Put(ctx, name, bytes.NewReader([]byte("x")), 1, storage.PutOptions{})
		fmt.Println(name, err)
	}
	fmt.Printf("%+v\n", f.Calls())
	// Output:
	// data/1 <nil>
	// index/1 <nil>
	// data/2 while storing "data/2": injected fault
	// data/3 <nil>
	// {Put:4 Get:0 GetRange:0 Stat:0 List:0 Delete:0 Faults:1}
}
