package fs

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		f, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return f
	})
}

func BenchmarkFS(b *testing.B) {
	storagetest.Bench(b, func(b *testing.B) storage.Storage {
		f, err := Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		return f
	})
}

func open(t *testing.T, dir string) *FS {
	t.Helper()
	f, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return f
}

func put(t *testing.T, s storage.Storage, name, data string) {
	t.Helper()
	if err := s.Put(t.Context(), name, strings.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func listNames(t *testing.T, s storage.Storage, prefix string) []string {
	t.Helper()
	var names []string
	if err := s.List(t.Context(), prefix, func(info storage.Info) error {
		names = append(names, info.Name)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

// tempFiles returns the temporary files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var temps []string
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tempPrefix) {
			temps = append(temps, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return temps
}

func TestLayoutAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "repo")
	f := open(t, dir)
	put(t, f, "a/b/c", "hello")

	data, err := os.ReadFile(filepath.Join(dir, "a", "b", "c"))
	if err != nil || string(data) != "hello" {
		t.Fatalf("the file of a/b/c: %q, %v", data, err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != os.ModeDir|0o700 {
			t.Errorf("%s: got %v, %v, want a directory 0700", p, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "a", "b", "c")); err != nil || fi.Mode() != 0o600 {
		t.Errorf("a/b/c: got %v, %v, want a file 0600", fi.Mode(), err)
	}
	if f.Dir() != dir {
		t.Errorf("Dir: got %s, want %s", f.Dir(), dir)
	}

	// Delete leaves the directories.
	if err := f.Delete(t.Context(), "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "a", "b")); err != nil || !fi.IsDir() {
		t.Errorf("after Delete, a/b: %v, %v", fi, err)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{file, filepath.Join(file, "below")} {
		if _, err := Open(bad); err == nil {
			t.Errorf("Open(%s): got nil, want an error", bad)
		}
	}

	// Objects outlive the FS that stored them, and two FS on one
	// directory see each other's objects.
	f1 := open(t, filepath.Join(dir, "repo"))
	put(t, f1, "x/y", "1")
	f2 := open(t, filepath.Join(dir, "repo"))
	put(t, f2, "x/z", "2")
	for _, f := range []*FS{f1, f2} {
		if got := listNames(t, f, ""); !slices.Equal(got, []string{"x/y", "x/z"}) {
			t.Errorf("List: got %q", got)
		}
	}
}

// TestCrashDuringPut leaves temporary files behind as a crash during Put
// would (after the data was written, before the rename), in an existing
// directory, in the root and in a directory that the crashed Put created.
func TestCrashDuringPut(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	f := open(t, dir)
	put(t, f, "x/obj", "object")

	now := time.Now()
	old := now.Add(-time.Hour)
	temps := map[string]time.Time{
		filepath.Join(dir, tempPrefix+"1"):              old,
		filepath.Join(dir, "x", tempPrefix+"2"):         old,
		filepath.Join(dir, "new", tempPrefix+"3"):       old,
		filepath.Join(dir, "x", tempPrefix+"4-running"): now, // a Put in progress
	}
	if err := os.Mkdir(filepath.Join(dir, "new"), 0o700); err != nil {
		t.Fatal(err)
	}
	for p, mtime := range temps {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}

	// A later Open sees only the object.
	f = open(t, dir)
	for _, prefix := range []string{"", "x", "x/", ".", ".tmp", "n", "new/"} {
		want := []string(nil)
		if strings.HasPrefix("x/obj", prefix) {
			want = []string{"x/obj"}
		}
		if got := listNames(t, f, prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q) with temporary files around: got %q, want %q", prefix, got, want)
		}
	}
	for _, name := range []string{tempPrefix + "1", "x/" + tempPrefix + "2"} {
		if _, err := f.Stat(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Stat(%q): got %v, want ErrInvalidName", name, err)
		}
	}
	rc, err := f.Get(ctx, "x/obj")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(data) != "object" {
		t.Errorf("Get: %q, %v", data, err)
	}
	// Puts next to the temporary files work.
	put(t, f, "x/obj2", "2")
	put(t, f, "new/obj", "3")

	// RemoveTemp removes those older than the cut-off.
	n, err := f.RemoveTemp(ctx, now.Add(-time.Minute))
	if err != nil || n != 3 {
		t.Errorf("RemoveTemp: %d, %v; want 3 removed", n, err)
	}
	if got := tempFiles(t, dir); !slices.Equal(got, []string{filepath.Join(dir, "x", tempPrefix+"4-running")}) {
		t.Errorf("after RemoveTemp: %q", got)
	}
	if got := listNames(t, f, ""); !slices.Equal(got, []string{"new/obj", "x/obj", "x/obj2"}) {
		t.Errorf("List after RemoveTemp: %q", got)
	}
}

// TestFailedPutsLeaveNoTempFile checks that a Put that fails removes its
// temporary file.
func TestFailedPutsLeaveNoTempFile(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	put(t, f, "d/exists", "x")
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	errBoom := errors.New("boom")
	failing := []struct {
		ctx  context.Context
		name string
		r    io.Reader
		size int64
		opts storage.PutOptions
	}{
		{t.Context(), "d/short", strings.NewReader("abc"), 4, storage.PutOptions{}},
		{t.Context(), "d/long", strings.NewReader("abcde"), 4, storage.PutOptions{}},
		{t.Context(), "d/error", io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(errBoom)), 4, storage.PutOptions{}},
		{cancelled, "d/cancelled", strings.NewReader("abcd"), 4, storage.PutOptions{}},
		{t.Context(), "d/exists", strings.NewReader("abcd"), 4, storage.PutOptions{IfAbsent: true}},
		{t.Context(), "d/exists/below", strings.NewReader("abcd"), 4, storage.PutOptions{}},
		{t.Context(), "d", strings.NewReader("abcd"), 4, storage.PutOptions{}},
	}
	for _, p := range failing {
		if err := f.Put(p.ctx, p.name, p.r, p.size, p.opts); err == nil {
			t.Errorf("Put(%q): got nil, want an error", p.name)
		}
	}
	if got := tempFiles(t, dir); len(got) != 0 {
		t.Errorf("failed Puts left temporary files: %q", got)
	}
	if got := listNames(t, f, ""); !slices.Equal(got, []string{"d/exists"}) {
		t.Errorf("List after failed Puts: %q", got)
	}
}

// TestNameConflicts checks that a name cannot be both an object and a
// directory of objects, and that the failing Put changes nothing.
func TestNameConflicts(t *testing.T) {
	ctx := t.Context()
	f := open(t, t.TempDir())
	put(t, f, "a", "object a")
	put(t, f, "c/d", "object c/d")
	put(t, f, "e/f/g", "object e/f/g")
	for _, opts := range []storage.PutOptions{{}, {IfAbsent: true}} {
		for _, name := range []string{"a/b", "a/b/c", "c", "e", "e/f", "c/d/e"} {
			err := f.Put(ctx, name, strings.NewReader("x"), 1, opts)
			if err == nil || errors.Is(err, storage.ErrAlreadyExists) {
				t.Errorf("Put(%q, %+v): got %v, want a conflict", name, opts, err)
			} else if !strings.Contains(err.Error(), "cannot be") {
				t.Errorf("Put(%q, %+v): the error %q does not explain the conflict", name, opts, err)
			}
		}
	}
	if got := listNames(t, f, ""); !slices.Equal(got, []string{"a", "c/d", "e/f/g"}) {
		t.Errorf("List after conflicting Puts: %q", got)
	}
}

// TestStrangersIgnored checks that List skips files and directories whose
// names are no object names, and entries that are neither files nor
// directories.
func TestStrangersIgnored(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	put(t, f, "ok/obj", "x")
	for _, d := range []string{"lost+found", "ok/with space"} {
		if err := os.MkdirAll(filepath.Join(dir, d, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "sub", "file"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"README~", "ok/x y", "ok/ä"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("obj", filepath.Join(dir, "ok", "link")); err != nil {
		t.Fatal(err)
	}
	if got := listNames(t, f, ""); !slices.Equal(got, []string{"ok/obj"}) {
		t.Errorf("List: got %q, want just ok/obj", got)
	}
}

// TestListDoesNotEscape checks that prefixes that are no valid names do not
// list outside the directory.
func TestListDoesNotEscape(t *testing.T) {
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "outside"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f := open(t, filepath.Join(parent, "repo"))
	put(t, f, "inside", "x")
	for _, prefix := range []string{"../", "../o", "/", "//", "./", "../repo/"} {
		if got := listNames(t, f, prefix); len(got) != 0 {
			t.Errorf("List(%q): got %q", prefix, got)
		}
	}
}
