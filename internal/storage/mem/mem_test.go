package mem

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage { return New() })
}

func BenchmarkMem(b *testing.B) {
	storagetest.Bench(b, func(b *testing.B) storage.Storage { return New() })
}

// TestNameConflicts checks that Mem refuses what the filesystem backend
// cannot store: a name that is both an object and a directory of objects.
func TestNameConflicts(t *testing.T) {
	ctx := t.Context()
	m := New()
	for _, name := range []string{"a", "c/d", "e/f/g"} {
		if err := m.Put(ctx, name, strings.NewReader("x"), 1, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, opts := range []storage.PutOptions{{}, {IfAbsent: true}} {
		for _, name := range []string{"a/b", "a/b/c", "c", "e", "e/f", "c/d/e"} {
			err := m.Put(ctx, name, strings.NewReader("y"), 1, opts)
			if err == nil || errors.Is(err, storage.ErrAlreadyExists) {
				t.Errorf("Put(%q, %+v): got %v, want a conflict", name, opts, err)
			}
		}
	}
	var names []string
	if err := m.List(ctx, "", func(info storage.Info) error { names = append(names, info.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"a", "c/d", "e/f/g"}) {
		t.Errorf("List after conflicting Puts: %q", names)
	}
	// Once the objects below are gone, the name is free.
	if err := m.Delete(ctx, "e/f/g"); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, "e", strings.NewReader("z"), 1, storage.PutOptions{}); err != nil {
		t.Errorf("Put(e) after deleting e/f/g: %v", err)
	}
}
