package repo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/pgvault/pgvault/internal/storage/mem"
)

// TestContentIDAlgorithms: a repository made with either content-ID
// algorithm (HMAC-SHA256, the first format's; BLAKE3, what Init makes now)
// writes, deduplicates, reopens, reads back and checks clean, and its IDs
// are the keyed hash of type | content under the ID key.
func TestContentIDAlgorithms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	content := relData(11, 40)
	for _, tc := range []struct {
		name string
		hash HashID
		want func(key, b []byte) ID
	}{
		{"HMAC-SHA256", HashHMACSHA256, func(key, b []byte) ID {
			h := hmac.New(sha256.New, key)
			h.Write(b)
			return ID(h.Sum(nil))
		}},
		{"BLAKE3", HashBLAKE3, func(key, b []byte) ID {
			h, err := blake3.NewKeyed(key)
			if err != nil {
				t.Fatal(err)
			}
			h.Write(b)
			return ID(h.Sum(nil))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := mem.New()
			key := testKey(t)
			r, err := initRepo(ctx, st, key, tc.hash)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.cfg.Hash != tc.hash {
				t.Fatalf("config hash %d, want %d", r.cfg.Hash, tc.hash)
			}
			// A hasher is reused for many blobs: each sum starts afresh,
			// keyed.
			h := r.keys.newIDHasher()
			for i, b := range [][]byte{content[:PageSize], content[PageSize : 3*PageSize], content[:PageSize]} {
				typed := append([]byte{byte(BlobData)}, b...)
				if got, want := h.sum(BlobData, b), tc.want(r.keys.id, typed); got != want {
					t.Fatalf("ID %d: %x, want %x", i, got, want)
				}
			}

			files := []testFile{regular("base/1/2", content), regular("PG_VERSION", []byte("17\n"))}
			first := writeSnapshot(t, r, WriterOptions{}, files, nil)
			second := writeSnapshot(t, r, WriterOptions{}, files, nil)
			if second.Stats.NewChunks != 0 {
				t.Errorf("the second snapshot of the same files stored %d new chunks", second.Stats.NewChunks)
			}

			r2, err := Open(ctx, st, key)
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			if r2.cfg.Hash != tc.hash {
				t.Fatalf("reopened with hash %d, want %d", r2.cfg.Hash, tc.hash)
			}
			for _, s := range []*Snapshot{first, second} {
				data, err := readFile(t, r2, s, "base/1/2")
				if err != nil || !bytes.Equal(data, content) {
					t.Fatalf("read back %d bytes, %v", len(data), err)
				}
			}
			// A third snapshot from the reopened repository deduplicates
			// against the first two: the reader derives the same IDs.
			if third := writeSnapshot(t, r2, WriterOptions{}, files, nil); third.Stats.NewChunks != 0 {
				t.Errorf("a snapshot after reopening stored %d new chunks", third.Stats.NewChunks)
			}
			mustCheck(t, r2, CheckOptions{ReadData: true})
		})
	}
}
