package storagetest

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/pgvault/pgvault/internal/storage"
)

// benchSize is the size of the objects Bench puts and gets: a typical pack.
const benchSize = 4 << 20

// benchNames is how many names Bench cycles through, so that it holds at
// most benchNames objects of benchSize at once.
const benchNames = 16

// Bench measures the throughput of Put and Get of 4 MiB objects. open must
// return a new, empty storage for each call, and release it with b.Cleanup.
func Bench(b *testing.B, open func(b *testing.B) storage.Storage) {
	data := content(1, benchSize)
	name := func(i int) string { return fmt.Sprintf("bench/%02x/%d", i%benchNames, i%benchNames) }

	b.Run("Put4MiB", func(b *testing.B) {
		s := open(b)
		ctx := b.Context()
		b.SetBytes(benchSize)
		i := 0
		for b.Loop() {
			if err := s.Put(ctx, name(i), bytes.NewReader(data), benchSize, storage.PutOptions{}); err != nil {
				b.Fatalf("Put: %v", err)
			}
			i++
		}
	})

	b.Run("Get4MiB", func(b *testing.B) {
		s := open(b)
		ctx := b.Context()
		for i := range benchNames {
			if err := s.Put(ctx, name(i), bytes.NewReader(data), benchSize, storage.PutOptions{}); err != nil {
				b.Fatalf("Put: %v", err)
			}
		}
		buf := make([]byte, 1<<20)
		b.SetBytes(benchSize)
		i := 0
		for b.Loop() {
			rc, err := s.Get(ctx, name(i))
			if err != nil {
				b.Fatalf("Get: %v", err)
			}
			// Hide io.Discard's ReadFrom, which reads in 8 KiB pieces.
			n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, rc, buf)
			rc.Close()
			if err != nil || n != benchSize {
				b.Fatalf("Get: read %d bytes: %v", n, err)
			}
			i++
		}
	})
}
