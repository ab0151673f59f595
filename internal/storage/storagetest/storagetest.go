// Package storagetest is the conformance suite of storage.Storage. Every
// backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Storage { ... })
//	}
//
//	func BenchmarkStorage(b *testing.B) {
//		storagetest.Bench(b, func(b *testing.B) storage.Storage { ... })
//	}
//
// Each rule of the contract written in package storage is a subtest; the
// subtests run in parallel, each on its own storage. The suite only uses the
// Storage interface, so it also runs against remote stores (it needs no more
// than about 40 MiB of objects at once).
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pgvault/pgvault/internal/storage"
)

// Run runs the conformance suite. open must return a new, empty storage for
// each call, and release it with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) storage.Storage) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Storage)
	}{
		{"RoundTrip", testRoundTrip},
		{"Sizes", testSizes},
		{"PutShortReader", testPutShortReader},
		{"PutLongReader", testPutLongReader},
		{"PutReaderError", testPutReaderError},
		{"PutNegativeSize", testPutNegativeSize},
		{"Replace", testReplace},
		{"IfAbsent", testIfAbsent},
		{"IfAbsentRace", testIfAbsentRace},
		{"ConcurrentReplace", testConcurrentReplace},
		{"ConcurrentPuts", testConcurrentPuts},
		{"ReaderIsSnapshot", testReaderIsSnapshot},
		{"GetRange", testGetRange},
		{"GetRangeEmptyObject", testGetRangeEmptyObject},
		{"NotFound", testNotFound},
		{"DirectoryIsNotObject", testDirectoryIsNotObject},
		{"ReuseDirectoryName", testReuseDirectoryName},
		{"List", testList},
		{"ListPrefix", testListPrefix},
		{"ListEmpty", testListEmpty},
		{"ListFnError", testListFnError},
		{"ListFnUsesStorage", testListFnUsesStorage},
		{"Delete", testDelete},
		{"ValidNames", testValidNames},
		{"InvalidNames", testInvalidNames},
		{"ContextDoneBefore", testContextDoneBefore},
		{"ContextDoneDuringPut", testContextDoneDuringPut},
		{"ContextDoneDuringGet", testContextDoneDuringGet},
		{"ContextDoneDuringList", testContextDoneDuringList},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// errBoom is the error the suite's failing readers return.
var errBoom = errors.New("storagetest: reader failure")

func testRoundTrip(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	want := content(1, 1000)
	put(t, s, "a/b/c", want)
	if got := get(t, s, "a/b/c"); !bytes.Equal(got, want) {
		t.Errorf("Get: got %d bytes, want the %d that were put", len(got), len(want))
	}
	info, err := s.Stat(ctx, "a/b/c")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Name != "a/b/c" || info.Size != int64(len(want)) || info.ModTime.IsZero() {
		t.Errorf("Stat: got %+v, want name a/b/c, size %d and a modification time", info, len(want))
	}
	if got := list(t, s, ""); len(got) != 1 || got[0].Name != info.Name || got[0].Size != info.Size {
		t.Errorf("List: got %+v, want just %+v", got, info)
	}

	// Two readers of one object are independent.
	r1, err := s.Get(ctx, "a/b/c")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	r2, err := s.Get(ctx, "a/b/c")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	var got1, got2 bytes.Buffer
	if _, err := io.CopyN(&got1, r1, 300); err != nil {
		t.Fatalf("reading the first reader: %v", err)
	}
	if _, err := io.Copy(&got2, r2); err != nil {
		t.Fatalf("reading the second reader: %v", err)
	}
	if _, err := io.Copy(&got1, r1); err != nil {
		t.Fatalf("reading the first reader: %v", err)
	}
	if !bytes.Equal(got1.Bytes(), want) || !bytes.Equal(got2.Bytes(), want) {
		t.Errorf("two readers read %d and %d bytes, want both the %d that were put", got1.Len(), got2.Len(), len(want))
	}
	for _, r := range []io.Closer{r1, r2} {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}

	// A reader may be closed unread.
	r, err := s.Get(ctx, "a/b/c")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close of an unread reader: %v", err)
	}
}

func testSizes(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	tests := []struct {
		name   string
		size   int
		reader func(io.Reader) io.Reader
	}{
		{"0", 0, nil},
		{"1", 1, nil},
		{"100OneByteReads", 100, iotest.OneByteReader},
		{"100DataWithEOF", 100, iotest.DataErrReader},
		{"1MiB-and-1-HalfReads", 1<<20 + 1, iotest.HalfReader},
	}
	for _, tt := range tests {
		want := content(uint64(tt.size), tt.size)
		var r io.Reader = onlyReader{bytes.NewReader(want)}
		if tt.reader != nil {
			r = tt.reader(r)
		}
		name := "sizes/" + tt.name
		if err := s.Put(ctx, name, r, int64(tt.size), storage.PutOptions{}); err != nil {
			t.Errorf("Put of %d bytes (%s): %v", tt.size, tt.name, err)
			continue
		}
		if got := get(t, s, name); !bytes.Equal(got, want) {
			t.Errorf("Get after a Put of %d bytes (%s): got %d bytes, or other bytes", tt.size, tt.name, len(got))
		}
		if info, err := s.Stat(ctx, name); err != nil || info.Size != int64(tt.size) {
			t.Errorf("Stat after a Put of %d bytes (%s): got %+v, %v", tt.size, tt.name, info, err)
		}
	}

	// 17 MiB from a reader that cannot seek and does not know its size,
	// and that delivers odd-sized chunks.
	const big = 17<<20 + 3
	src := newStream(7, big)
	if err := s.Put(ctx, "sizes/big", src, big, storage.PutOptions{}); err != nil {
		t.Fatalf("Put of 17 MiB streamed: %v", err)
	}
	rc, err := s.Get(ctx, "sizes/big")
	if err != nil {
		t.Fatalf("Get of 17 MiB: %v", err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("reading 17 MiB: %v", err)
	}
	if n != big || !bytes.Equal(h.Sum(nil), src.sum()) {
		t.Errorf("Get of 17 MiB: read %d bytes, want %d, or other bytes", n, big)
	}
	if info, err := s.Stat(ctx, "sizes/big"); err != nil || info.Size != big {
		t.Errorf("Stat of 17 MiB: got %+v, %v", info, err)
	}
	// A range across the middle of it.
	off, length := int64(big/2-12345), int64(3<<20)
	if got, want := getRange(t, s, "sizes/big", off, length), src.bytesAt(off, length); !bytes.Equal(got, want) {
		t.Errorf("GetRange(%d, %d) of 17 MiB: got %d bytes, or other bytes", off, length, len(got))
	}
}

func testPutShortReader(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for _, opts := range []storage.PutOptions{{}, {IfAbsent: true}} {
		err := s.Put(ctx, "short", bytes.NewReader(content(1, 5)), 10, opts)
		if err == nil || errors.Is(err, storage.ErrAlreadyExists) {
			t.Errorf("Put (%+v) of 5 bytes announced as 10: got %v, want a failure", opts, err)
		}
		mustNotExist(t, s, "short")
	}

	old := content(2, 20)
	put(t, s, "short", old)
	err := s.Put(ctx, "short", onlyReader{bytes.NewReader(content(3, 5))}, 10, storage.PutOptions{})
	if err == nil {
		t.Errorf("Put of 5 bytes announced as 10 over an object: got nil, want a failure")
	}
	mustHold(t, s, "short", old)
}

func testPutLongReader(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for _, size := range []int64{0, 3} {
		for _, opts := range []storage.PutOptions{{}, {IfAbsent: true}} {
			err := s.Put(ctx, "long", bytes.NewReader(content(1, 4)), size, opts)
			if err == nil || errors.Is(err, storage.ErrAlreadyExists) {
				t.Errorf("Put (%+v) of 4 bytes announced as %d: got %v, want a failure", opts, size, err)
			}
			mustNotExist(t, s, "long")
		}
	}

	old := content(2, 20)
	put(t, s, "long", old)
	err := s.Put(ctx, "long", onlyReader{bytes.NewReader(content(3, 1<<20))}, 1<<20-1, storage.PutOptions{})
	if err == nil {
		t.Errorf("Put of 1 MiB announced as 1 MiB-1 over an object: got nil, want a failure")
	}
	mustHold(t, s, "long", old)
}

func testPutReaderError(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	failing := func() io.Reader {
		return io.MultiReader(bytes.NewReader(content(1, 100<<10)), iotest.ErrReader(errBoom))
	}
	err := s.Put(ctx, "fails", failing(), 1<<20, storage.PutOptions{})
	if !errors.Is(err, errBoom) {
		t.Errorf("Put from a reader that fails: got %v, want it to wrap the reader's error", err)
	}
	mustNotExist(t, s, "fails")

	old := content(2, 20)
	put(t, s, "fails", old)
	err = s.Put(ctx, "fails", failing(), 1<<20, storage.PutOptions{})
	if !errors.Is(err, errBoom) {
		t.Errorf("Put from a reader that fails, over an object: got %v, want it to wrap the reader's error", err)
	}
	mustHold(t, s, "fails", old)

	// A reader that fails right after the last byte.
	r := io.MultiReader(bytes.NewReader(content(3, 10)), iotest.ErrReader(errBoom))
	if err := s.Put(ctx, "fails", r, 10, storage.PutOptions{}); !errors.Is(err, errBoom) {
		t.Errorf("Put from a reader that fails after the last byte: got %v, want it to wrap the reader's error", err)
	}
	mustHold(t, s, "fails", old)
}

func testPutNegativeSize(t *testing.T, s storage.Storage) {
	if err := s.Put(t.Context(), "negative", strings.NewReader(""), -1, storage.PutOptions{}); err == nil {
		t.Errorf("Put with size -1: got nil, want a failure")
	}
	mustNotExist(t, s, "negative")
}

func testReplace(t *testing.T, s storage.Storage) {
	put(t, s, "x/replace", content(1, 100))
	v2 := content(2, 50)
	put(t, s, "x/replace", v2)
	mustHold(t, s, "x/replace", v2)
	if got := list(t, s, ""); len(got) != 1 || got[0].Name != "x/replace" || got[0].Size != 50 {
		t.Errorf("List after a replace: got %+v, want one object of 50 bytes", got)
	}
	v3 := []byte{}
	put(t, s, "x/replace", v3)
	mustHold(t, s, "x/replace", v3)
}

func testIfAbsent(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	ifAbsent := storage.PutOptions{IfAbsent: true}
	v1 := content(1, 100)
	if err := s.Put(ctx, "once", bytes.NewReader(v1), 100, ifAbsent); err != nil {
		t.Fatalf("Put IfAbsent of a new object: %v", err)
	}
	mustHold(t, s, "once", v1)
	for _, size := range []int{100, 10} {
		err := s.Put(ctx, "once", bytes.NewReader(content(2, size)), int64(size), ifAbsent)
		if !errors.Is(err, storage.ErrAlreadyExists) {
			t.Errorf("Put IfAbsent of an existing object: got %v, want ErrAlreadyExists", err)
		}
		mustHold(t, s, "once", v1)
	}
	if err := s.Delete(ctx, "once"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	v3 := content(3, 30)
	if err := s.Put(ctx, "once", bytes.NewReader(v3), 30, ifAbsent); err != nil {
		t.Fatalf("Put IfAbsent after Delete: %v", err)
	}
	mustHold(t, s, "once", v3)
}

func testIfAbsentRace(t *testing.T, s storage.Storage) {
	const rounds, racers = 10, 8
	ctx := t.Context()
	for round := range rounds {
		name := fmt.Sprintf("race/%d", round)
		start := make(chan struct{})
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				data := content(uint64(round*racers+i), 1000+i)
				<-start
				errs[i] = s.Put(ctx, name, bytes.NewReader(data), int64(len(data)), storage.PutOptions{IfAbsent: true})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("round %d: racers %d and %d both won", round, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, storage.ErrAlreadyExists):
				t.Errorf("round %d: racer %d lost with %v, want ErrAlreadyExists", round, i, err)
			}
		}
		if winner < 0 {
			t.Errorf("round %d: no racer won", round)
			continue
		}
		mustHold(t, s, name, content(uint64(round*racers+winner), 1000+winner))
	}
}

func testConcurrentReplace(t *testing.T, s storage.Storage) {
	const writers, puts, readers, reads = 4, 8, 4, 16
	ctx := t.Context()
	versions := make(map[[32]byte]bool)
	version := func(w, i int) []byte { return content(uint64(1000+w*puts+i), 10000+w*1000+i) }
	for w := range writers {
		for i := range puts {
			versions[sha256.Sum256(version(w, i))] = true
		}
	}
	first := version(0, 0)
	put(t, s, "replaced", first)

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range puts {
				data := version(w, i)
				if err := s.Put(ctx, "replaced", bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
					t.Errorf("Put: %v", err)
				}
			}
		})
	}
	for range readers {
		wg.Go(func() {
			for range reads {
				rc, err := s.Get(ctx, "replaced")
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					continue // allowed: a reader may fail, never mix
				}
				if !versions[sha256.Sum256(data)] {
					t.Errorf("Get read %d bytes that are no version that was put", len(data))
				}
			}
		})
	}
	wg.Wait()
}

func testConcurrentPuts(t *testing.T, s storage.Storage) {
	// Many writers into directories that do not exist yet, and a List
	// that runs meanwhile and must see only whole objects that are put.
	const writers, each = 8, 6
	ctx := t.Context()
	var wg sync.WaitGroup
	var want []string
	for w := range writers {
		for i := range each {
			want = append(want, fmt.Sprintf("p/q%d/r%d/%d", i%2, i%3, w*each+i))
		}
	}
	done := make(chan struct{})
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		for {
			err := s.List(ctx, "", func(info storage.Info) error {
				if !slices.Contains(want, info.Name) || info.Size != 10 {
					t.Errorf("List during Puts gives %q of %d bytes, which is not being put", info.Name, info.Size)
				}
				return nil
			})
			if err != nil {
				t.Errorf("List during Puts: %v", err)
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("p/q%d/r%d/%d", i%2, i%3, w*each+i)
				data := content(uint64(w*each+i), 10)
				if err := s.Put(ctx, name, bytes.NewReader(data), 10, storage.PutOptions{}); err != nil {
					t.Errorf("Put: %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	<-listed
	slices.Sort(want)
	if got := names(list(t, s, "")); !slices.Equal(got, want) {
		t.Errorf("List after concurrent Puts:\ngot  %q\nwant %q", got, want)
	}
}

func testReaderIsSnapshot(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	const size = 256 << 10
	for _, change := range []string{"replace", "delete"} {
		old := content(1, size)
		put(t, s, "snap", old)
		opens := map[string]func() (io.ReadCloser, error){
			"Get":      func() (io.ReadCloser, error) { return s.Get(ctx, "snap") },
			"GetRange": func() (io.ReadCloser, error) { return s.GetRange(ctx, "snap", 0, size) },
		}
		readers := make(map[string]io.ReadCloser)
		firsts := make(map[string][]byte)
		for how, open := range opens {
			rc, err := open()
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			defer rc.Close()
			first := make([]byte, 1000)
			if _, err := io.ReadFull(rc, first); err != nil {
				t.Fatalf("%s: reading: %v", how, err)
			}
			readers[how], firsts[how] = rc, first
		}
		if change == "replace" {
			put(t, s, "snap", content(2, size))
		} else if err := s.Delete(ctx, "snap"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		for how, rc := range readers {
			rest, err := io.ReadAll(rc)
			if err != nil {
				continue // allowed: a reader may fail, never mix
			}
			if got := append(firsts[how], rest...); !bytes.Equal(got, old) {
				t.Errorf("a reader of %s opened before a %s read %d bytes that are not the object it opened", how, change, len(got))
			}
		}
	}
}

func testGetRange(t *testing.T, s storage.Storage) {
	const size = 1000
	data := content(1, size)
	put(t, s, "ranged", data)
	tests := []struct {
		offset, length int64
		ok             bool
	}{
		{0, size, true},
		{0, 0, true},
		{0, 1, true},
		{1, size - 1, true},
		{500, 0, true},
		{123, 456, true},
		{size - 1, 1, true},
		{size, 0, true},
		{size, 1, false},
		{size + 1, 0, false},
		{size - 1, 2, false},
		{0, size + 1, false},
		{-1, 1, false},
		{-1, 0, false},
		{0, -1, false},
		{1 << 62, 1 << 62, false},
		{1, 1<<63 - 1, false},
	}
	for _, tt := range tests {
		rc, err := s.GetRange(t.Context(), "ranged", tt.offset, tt.length)
		if !tt.ok {
			if !errors.Is(err, storage.ErrInvalidRange) {
				t.Errorf("GetRange(%d, %d) of %d bytes: got %v, want ErrInvalidRange", tt.offset, tt.length, size, err)
			}
			if err == nil {
				rc.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("GetRange(%d, %d) of %d bytes: %v", tt.offset, tt.length, size, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Errorf("GetRange(%d, %d): reading: %v", tt.offset, tt.length, err)
		} else if want := data[tt.offset : tt.offset+tt.length]; !bytes.Equal(got, want) {
			t.Errorf("GetRange(%d, %d): got %d bytes, want %d, or other bytes", tt.offset, tt.length, len(got), len(want))
		}
	}
}

func testGetRangeEmptyObject(t *testing.T, s storage.Storage) {
	put(t, s, "empty", nil)
	if got := getRange(t, s, "empty", 0, 0); len(got) != 0 {
		t.Errorf("GetRange(0, 0) of an empty object: got %d bytes", len(got))
	}
	for _, r := range [][2]int64{{0, 1}, {1, 0}, {-1, 0}} {
		rc, err := s.GetRange(t.Context(), "empty", r[0], r[1])
		if !errors.Is(err, storage.ErrInvalidRange) {
			t.Errorf("GetRange(%d, %d) of an empty object: got %v, want ErrInvalidRange", r[0], r[1], err)
		}
		if err == nil {
			rc.Close()
		}
	}
}

func testNotFound(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	put(t, s, "x/present", content(1, 10))
	for _, name := range []string{"missing", "x/missing", "x/y/missing", "x/presen", "x/present0"} {
		mustNotExist(t, s, name)
		err := s.Delete(ctx, name)
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete(%q): got %v, want ErrNotFound", name, err)
		} else if !strings.Contains(err.Error(), name) {
			t.Errorf("Delete(%q): the error %q does not name the object", name, err)
		}
		for what, err := range map[string]error{
			"Get":      errOf(s.Get(ctx, name)),
			"GetRange": errOf(s.GetRange(ctx, name, 0, 1)),
			"Stat":     errOf(s.Stat(ctx, name)),
		} {
			if err != nil && !strings.Contains(err.Error(), name) {
				t.Errorf("%s(%q): the error %q does not name the object", what, name, err)
			}
		}
	}
	mustHold(t, s, "x/present", content(1, 10))
}

func testDirectoryIsNotObject(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	data := content(1, 10)
	put(t, s, "a/b/c", data)
	for _, name := range []string{"a", "a/b", "a/b/c/d", "a/b/c/d/e"} {
		mustNotExist(t, s, name)
		if err := s.Delete(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete(%q): got %v, want ErrNotFound", name, err)
		}
	}
	mustHold(t, s, "a/b/c", data)
}

func testReuseDirectoryName(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	// Once "a/b" is gone, "a" may become an object; once that is gone,
	// "a/x/y" may be stored again.
	for _, opts := range []storage.PutOptions{{}, {IfAbsent: true}} {
		steps := []string{"a/b", "a", "a/x/y", "a/x", "a/x/y/z"}
		for i, name := range steps {
			data := content(uint64(i), 10+i)
			if err := s.Put(ctx, name, bytes.NewReader(data), int64(len(data)), opts); err != nil {
				t.Fatalf("Put(%q, %+v) after deleting %q: %v", name, opts, steps[max(i-1, 0)], err)
			}
			mustHold(t, s, name, data)
			if got := names(list(t, s, "")); !slices.Equal(got, []string{name}) {
				t.Errorf("List: got %q, want just %q", got, name)
			}
			if err := s.Delete(ctx, name); err != nil {
				t.Fatalf("Delete(%q): %v", name, err)
			}
		}
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List after deleting everything: got %+v", got)
	}
}

// listNames holds names that sort differently than a walk over directories
// in the order of their entries would list them ('-' and '.' sort before
// '/', and '/' before digits and letters), hidden files, and names that
// differ only in case.
var listNames = []string{
	".dot", "0", "A", "Z", "_u", "a-b", "a.b", "a/.dot", "a/b", "a/c-d", "a/c.d",
	"a/c/e", "a/c/f/g", "a/c0", "a0", "b", "z/z/z/z",
}

func putListNames(t *testing.T, s storage.Storage) map[string][]byte {
	objects := make(map[string][]byte)
	// Put them in a fixed shuffled order, so that an insertion order
	// cannot pass for a lexical one.
	order := slices.Clone(listNames)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i, name := range order {
		data := content(uint64(i), i*7)
		put(t, s, name, data)
		objects[name] = data
	}
	return objects
}

func testList(t *testing.T, s storage.Storage) {
	objects := putListNames(t, s)
	got := list(t, s, "")
	if names := names(got); !slices.Equal(names, listNames) {
		t.Fatalf("List:\ngot  %q\nwant %q", names, listNames)
	}
	for _, info := range got {
		stat, err := s.Stat(t.Context(), info.Name)
		if err != nil {
			t.Fatalf("Stat(%q): %v", info.Name, err)
		}
		if info.Size != int64(len(objects[info.Name])) || info.Size != stat.Size {
			t.Errorf("List gives %q %d bytes, Stat %d, want %d", info.Name, info.Size, stat.Size, len(objects[info.Name]))
		}
		if info.ModTime.IsZero() || info.ModTime.Sub(stat.ModTime).Abs() > time.Second {
			t.Errorf("List gives %q the modification time %v, Stat %v", info.Name, info.ModTime, stat.ModTime)
		}
	}
}

func testListPrefix(t *testing.T, s storage.Storage) {
	putListNames(t, s)
	prefixes := []string{
		"", "a", "a/", "a/c", "a/c/", "a/c/e", "a/c/e/", "a/c/e/x", "a/c/f", "a-", "a.",
		".", ".d", "z/z", "z/z/", "A", "zz", "/", "../", "a/../", "a//", "a/./", "./a", "\x00",
		"a/c/f/g", "a/c/f/g/", "a/c/f/g0", "*", "%",
	}
	for _, prefix := range prefixes {
		var want []string
		for _, n := range listNames {
			if strings.HasPrefix(n, prefix) {
				want = append(want, n)
			}
		}
		if got := names(list(t, s, prefix)); !slices.Equal(got, want) {
			t.Errorf("List(%q):\ngot  %q\nwant %q", prefix, got, want)
		}
	}
}

func testListEmpty(t *testing.T, s storage.Storage) {
	for _, prefix := range []string{"", "a", "a/"} {
		if got := list(t, s, prefix); len(got) != 0 {
			t.Errorf("List(%q) of an empty storage: got %+v", prefix, got)
		}
	}
}

func testListFnError(t *testing.T, s storage.Storage) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("l/%d", i), nil)
	}
	errStop := errors.New("stop")
	calls := 0
	err := s.List(t.Context(), "l/", func(storage.Info) error {
		calls++
		if calls == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || calls != 2 {
		t.Errorf("List whose fn fails on the 2nd call: got %v after %d calls, want fn's error after 2", err, calls)
	}
}

func testListFnUsesStorage(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for i := range 5 {
		put(t, s, fmt.Sprintf("l/%d", i), content(uint64(i), 10))
	}
	var seen []string
	err := s.List(ctx, "l/", func(info storage.Info) error {
		seen = append(seen, info.Name)
		if _, err := s.Stat(ctx, info.Name); err != nil {
			return err
		}
		if err := s.Put(ctx, "m/"+info.Name, strings.NewReader("x"), 1, storage.PutOptions{}); err != nil {
			return err
		}
		return s.Delete(ctx, info.Name)
	})
	if err != nil {
		t.Fatalf("List whose fn uses the storage: %v", err)
	}
	if want := []string{"l/0", "l/1", "l/2", "l/3", "l/4"}; !slices.Equal(seen, want) {
		t.Errorf("List whose fn deletes: got %q, want %q", seen, want)
	}
	if got := list(t, s, "l/"); len(got) != 0 {
		t.Errorf("List after fn deleted everything: got %+v", got)
	}
	if got := names(list(t, s, "m/")); len(got) != 5 {
		t.Errorf("List of what fn put: got %q", got)
	}
}

func testDelete(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	put(t, s, "d/1", content(1, 10))
	put(t, s, "d/2", content(2, 10))
	if err := s.Delete(ctx, "d/1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustNotExist(t, s, "d/1")
	if err := s.Delete(ctx, "d/1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Delete: got %v, want ErrNotFound", err)
	}
	mustHold(t, s, "d/2", content(2, 10))
	if got := names(list(t, s, "")); !slices.Equal(got, []string{"d/2"}) {
		t.Errorf("List after Delete: got %q", got)
	}
	// The name can be used again.
	put(t, s, "d/1", content(3, 5))
	mustHold(t, s, "d/1", content(3, 5))
}

func testValidNames(t *testing.T, s storage.Storage) {
	seg := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	valid := []string{
		"a", "A", "-", "_", "...", "a..b", ".a", "a.", ".tmp-x", "tmp", "x/.tmp-y",
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
		seg('s', storage.MaxSegmentLen),
		"d/" + seg('t', storage.MaxSegmentLen),
		// Exactly MaxNameLen bytes: five segments of 204 and four '/'.
		strings.Join([]string{seg('p', 204), seg('q', 204), seg('r', 204), seg('s', 204), seg('t', 204)}, "/"),
	}
	if n := len(valid[len(valid)-1]); n != storage.MaxNameLen {
		t.Fatalf("the longest test name has %d bytes", n)
	}
	for i, name := range valid {
		if err := storage.CheckName(name); err != nil {
			t.Errorf("CheckName(%.40q): %v", name, err)
		}
		data := content(uint64(i), i)
		if err := s.Put(t.Context(), name, bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
			t.Errorf("Put(%.40q): %v", name, err)
			continue
		}
		mustHold(t, s, name, data)
	}
	want := slices.Sorted(slices.Values(valid))
	if got := names(list(t, s, "")); !slices.Equal(got, want) {
		t.Errorf("List:\ngot  %.60q\nwant %.60q", got, want)
	}
}

// invalidNames break the naming rules, one each.
var invalidNames = []string{
	"", "/", "/a", "a/", "a//b", "//", ".", "..", "./a", "a/.", "a/./b", "a/..", "a/../b", "../a",
	"a b", " a", "a ", "a\tb", "a\nb", "a\x00b", "a\\b", "a:b", "a~b", ".tmp~1", "a*", "a?b",
	"a+b", "a%2Fb", "a#b", "a@b", "a,b", "a=b", "ä", "a\xffb", "C:", "a/b\x00",
	strings.Repeat("s", storage.MaxSegmentLen+1),
	"d/" + strings.Repeat("s", storage.MaxSegmentLen+1) + "/e",
	strings.Repeat("abcd/", storage.MaxNameLen/5) + "abcdef",
}

func testInvalidNames(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for _, name := range invalidNames {
		if err := storage.CheckName(name); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("CheckName(%.40q): got %v, want ErrInvalidName", name, err)
		}
		for _, opts := range []storage.PutOptions{{}, {IfAbsent: true}} {
			if err := s.Put(ctx, name, strings.NewReader("x"), 1, opts); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("Put(%.40q, %+v): got %v, want ErrInvalidName", name, opts, err)
			}
		}
		for what, err := range map[string]error{
			"Get":      errOf(s.Get(ctx, name)),
			"GetRange": errOf(s.GetRange(ctx, name, 0, 0)),
			"Stat":     errOf(s.Stat(ctx, name)),
			"Delete":   s.Delete(ctx, name),
		} {
			if !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("%s(%.40q): got %v, want ErrInvalidName", what, name, err)
			}
		}
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List after Puts of invalid names: got %+v", got)
	}
}

func testContextDoneBefore(t *testing.T, s storage.Storage) {
	data := content(1, 100)
	put(t, s, "c/present", data)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	for _, opts := range []storage.PutOptions{{}, {IfAbsent: true}} {
		err := s.Put(ctx, "c/new", bytes.NewReader(data), 100, opts)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put (%+v) with a cancelled context: got %v, want context.Canceled", opts, err)
		}
	}
	mustNotExist(t, s, "c/new")
	err := s.Put(ctx, "c/present", strings.NewReader("new"), 3, storage.PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put over an object with a cancelled context: got %v, want context.Canceled", err)
	}
	for what, err := range map[string]error{
		"Get":      errOf(s.Get(ctx, "c/present")),
		"GetRange": errOf(s.GetRange(ctx, "c/present", 0, 1)),
		"Stat":     errOf(s.Stat(ctx, "c/present")),
		"List":     s.List(ctx, "", func(storage.Info) error { return nil }),
		"Delete":   s.Delete(ctx, "c/present"),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: got %v, want context.Canceled", what, err)
		}
	}
	mustHold(t, s, "c/present", data)
}

func testContextDoneDuringPut(t *testing.T, s storage.Storage) {
	const size = 4 << 20
	old := content(1, 100)
	put(t, s, "c/old", old)
	for _, name := range []string{"c/new", "c/old"} {
		for _, opts := range []storage.PutOptions{{}, {IfAbsent: name == "c/new"}} {
			ctx, cancel := context.WithCancel(t.Context())
			// The reader cancels after its first 64 KiB and goes on.
			r := &cancellingReader{r: newStream(2, size), after: 64 << 10, cancel: cancel}
			err := s.Put(ctx, name, r, size, opts)
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Put(%q, %+v) cancelled while reading: got %v, want context.Canceled", name, opts, err)
			}
		}
	}
	mustNotExist(t, s, "c/new")
	mustHold(t, s, "c/old", old)
}

func testContextDoneDuringGet(t *testing.T, s storage.Storage) {
	const size = 1 << 20
	put(t, s, "c/big", content(1, size))
	opens := map[string]func(context.Context) (io.ReadCloser, error){
		"Get":      func(ctx context.Context) (io.ReadCloser, error) { return s.Get(ctx, "c/big") },
		"GetRange": func(ctx context.Context) (io.ReadCloser, error) { return s.GetRange(ctx, "c/big", 1, size-1) },
	}
	for what, open := range opens {
		ctx, cancel := context.WithCancel(t.Context())
		rc, err := open(ctx)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", what, err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
			t.Errorf("%s: reading: %v", what, err)
		}
		cancel()
		n, err := io.Copy(io.Discard, rc)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: reading after the context was cancelled: got %d bytes and %v, want context.Canceled", what, n, err)
		}
		rc.Close()
	}
}

func testContextDoneDuringList(t *testing.T, s storage.Storage) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("l/%d/x", i), nil)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := s.List(ctx, "", func(storage.Info) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("List whose context is cancelled by fn: got %v, want context.Canceled", err)
	}
}

// put stores data under name or fails the test.
func put(t testing.TB, s storage.Storage, name string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), name, bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

// get reads the object called name or fails the test.
func get(t testing.TB, s storage.Storage, name string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): reading: %v", name, err)
	}
	return data
}

// getRange reads a range of the object called name or fails the test.
func getRange(t testing.TB, s storage.Storage, name string, offset, length int64) []byte {
	t.Helper()
	rc, err := s.GetRange(t.Context(), name, offset, length)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", name, offset, length, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): reading: %v", name, offset, length, err)
	}
	return data
}

// list lists the objects whose name starts with prefix or fails the test.
func list(t testing.TB, s storage.Storage, prefix string) []storage.Info {
	t.Helper()
	var infos []storage.Info
	if err := s.List(t.Context(), prefix, func(info storage.Info) error {
		infos = append(infos, info)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return infos
}

// names returns the names of infos.
func names(infos []storage.Info) []string {
	var n []string
	for _, info := range infos {
		n = append(n, info.Name)
	}
	return n
}

// mustHold checks that name holds data, through Get, Stat and List.
func mustHold(t testing.TB, s storage.Storage, name string, data []byte) {
	t.Helper()
	if got := get(t, s, name); !bytes.Equal(got, data) {
		t.Errorf("Get(%q): got %d bytes, want %d, or other bytes", name, len(got), len(data))
	}
	if info, err := s.Stat(t.Context(), name); err != nil || info.Size != int64(len(data)) {
		t.Errorf("Stat(%q): got %+v, %v, want %d bytes", name, info, err, len(data))
	}
	if got := list(t, s, name); !slices.ContainsFunc(got, func(i storage.Info) bool { return i.Name == name && i.Size == int64(len(data)) }) {
		t.Errorf("List(%q): got %+v, want %q of %d bytes in it", name, got, name, len(data))
	}
}

// mustNotExist checks that there is no object called name, through Get,
// GetRange, Stat and List.
func mustNotExist(t testing.TB, s storage.Storage, name string) {
	t.Helper()
	ctx := t.Context()
	if rc, err := s.Get(ctx, name); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(%q): got %v, want ErrNotFound", name, err)
		if err == nil {
			rc.Close()
		}
	}
	if rc, err := s.GetRange(ctx, name, 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetRange(%q, 0, 0): got %v, want ErrNotFound", name, err)
		if err == nil {
			rc.Close()
		}
	}
	if _, err := s.Stat(ctx, name); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(%q): got %v, want ErrNotFound", name, err)
	}
	if slices.Contains(names(list(t, s, name)), name) {
		t.Errorf("List(%q) lists it", name)
	}
}

// errOf returns the error of a call that also returns a value, closing the
// value if it is a reader.
func errOf[T any](v T, err error) error {
	if c, ok := any(v).(io.Closer); ok && err == nil {
		c.Close()
	}
	return err
}

// content returns n pseudo-random bytes that depend on seed and n.
func content(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(n))
	data := make([]byte, n)
	rand.NewChaCha8(key).Read(data)
	return data
}

// onlyReader hides every method of a reader but Read (io.WriterTo,
// io.Seeker, Len, ...).
type onlyReader struct{ r io.Reader }

// Read implements io.Reader.
func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// stream is a reader of size pseudo-random bytes that can do nothing but
// read, and returns chunks of odd sizes. It hashes what it returns.
type stream struct {
	seed       uint64
	size, read int64
	rng        *rand.ChaCha8
	h          hash.Hash
}

func newStream(seed uint64, size int64) *stream {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return &stream{seed: seed, size: size, rng: rand.NewChaCha8(key), h: sha256.New()}
}

// Read implements io.Reader.
func (s *stream) Read(p []byte) (int, error) {
	if s.read == s.size {
		return 0, io.EOF
	}
	// At most 100003 bytes at a time, so chunks do not line up with
	// powers of two.
	p = p[:min(int64(len(p)), s.size-s.read, 100003)]
	s.rng.Read(p)
	s.h.Write(p)
	s.read += int64(len(p))
	return len(p), nil
}

// sum returns the SHA-256 of what the stream returned.
func (s *stream) sum() []byte {
	return s.h.Sum(nil)
}

// bytesAt returns length bytes of the stream from offset, generated anew.
func (s *stream) bytesAt(offset, length int64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], s.seed)
	rng := rand.NewChaCha8(key)
	// What ChaCha8's Read returns does not depend on how it is split.
	skip := make([]byte, 1<<20)
	for offset > 0 {
		n := min(offset, int64(len(skip)))
		rng.Read(skip[:n])
		offset -= n
	}
	data := make([]byte, length)
	rng.Read(data)
	return data
}

// cancellingReader calls cancel once it has returned after bytes, and goes
// on returning data.
type cancellingReader struct {
	r      io.Reader
	after  int64
	read   int64
	cancel func()
}

// Read implements io.Reader.
func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}
