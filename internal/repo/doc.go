// Package repo is pgvault's backup repository format: it chunks, hashes,
// deduplicates, compresses, encrypts and packs PostgreSQL data directories
// into snapshots on a storage.Storage, and reads and checks them back.
// docs/design.md is the specification, with numbered rules (R1, R2, …) that
// comments here refer to.
//
// In brief: a random repository key, wrapped by the caller's master key in
// keys/<sha256>, yields HKDF sub-keys. Content is cut into chunks (relation
// files at 16-page boundaries, other files every 1 MiB), each identified by
// HMAC-SHA256 under a repository sub-key, compressed with zstd and sealed
// with AES-256-GCM under a per-pack key into ~16 MiB packs whose encrypted
// header lists their blobs. Index objects list packs; a snapshot's file tree
// is a stream of items stored as tree blobs cut at content-defined item
// boundaries; the snapshot manifest, written last, names the tree. Every
// read is verified (AEAD and content ID), and Check can re-read every byte.
//
// Writing:
//
//	r, _ := repo.Open(ctx, st, masterKey)
//	w, _ := r.NewWriter(ctx, repo.WriterOptions{})
//	_ = w.AddFile(ctx, repo.File{Path: "base/1/1259", Type: repo.TypeRegular, Size: n}, content)
//	snap, _ := w.Commit(ctx, map[string]string{"start_lsn": "0/2000028"})
//
// Reading: Snapshots, Walk, OpenFile. Checking: Check. Reclaiming space:
// Forget deletes snapshot manifests; Prune deletes or repacks the packs no
// snapshot needs, in two phases with safety margins so that a backup
// running beside it never loses a chunk it relies on (docs/design.md §12).
//
// A Repo is safe for concurrent use; a Writer is used by one goroutine.
package repo
