package repo

import (
	"encoding/json"
	"testing"
	"time"
)

// Every parser of stored structures must reject arbitrary input with an
// error, never panic or allocate without bound.

func FuzzParsePackHeader(f *testing.F) {
	f.Add(encodePackHeader([]packBlob{{typ: BlobData, length: 100, rawLen: 200}, {typ: BlobTree, length: 17, rawLen: 1}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		blobs, err := parsePackHeader(b)
		if err == nil && len(blobs) == 0 {
			t.Fatal("an empty pack header parsed")
		}
	})
}

func FuzzParseTrailer(f *testing.F) {
	f.Add(appendTrailer(nil, trailer{headerLen: 50}), uint64(1000))
	f.Fuzz(func(t *testing.T, b []byte, size uint64) {
		tr, err := parseTrailer(b, size)
		if err == nil && uint64(tr.headerLen)+trailerLen > size {
			t.Fatal("a header longer than its pack parsed")
		}
	})
}

func FuzzOpenPack(f *testing.F) {
	k := deriveKeys(make([]byte, 32))
	f.Add(appendTrailer(make([]byte, 40), trailer{headerLen: 40}))
	f.Fuzz(func(t *testing.T, b []byte) {
		k.openPack(b)
	})
}

func FuzzParseIndex(f *testing.F) {
	f.Add(encodeIndex([]*indexPack{{size: 1000, blobs: []packBlob{{typ: BlobData, length: 100, rawLen: 300}}}}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseIndex(b, func(p *indexPack) error {
			if len(p.blobs) == 0 {
				t.Fatal("an index pack without blobs parsed")
			}
			return nil
		})
	})
}

func FuzzParseTreeBlob(f *testing.F) {
	var b []byte
	b = appendFileItem(b, &File{Path: "base/1/2", Type: TypeRegular, Mode: 0o600, Size: 10, ModTime: time.Unix(5, 6)})
	b = appendChunkItem(b, ID{1}, 10)
	b = append(b, itemEnd)
	b = appendFileItem(b, &File{Path: "pg_tblspc/1", Type: TypeSymlink, LinkTarget: "/x"})
	b = append(b, itemEnd)
	b = appendTrailerItem(b, 2, 10)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var c treeChecker
		parseTreeBlob(b, func(_ int, it *treeItem) error { return c.next(it) })
	})
}

func FuzzParseManifest(f *testing.F) {
	m, _ := json.Marshal(manifest{Version: 1, Repository: "r", TreeVersion: 1, Tree: []ID{{1}}, Meta: map[string]string{"a": "b"}})
	f.Add(m)
	f.Fuzz(func(t *testing.T, b []byte) {
		parseManifest(b, "r")
	})
}

func FuzzParseConfig(f *testing.F) {
	c, _ := json.Marshal(config{Version: 1, ID: "00112233445566778899aabbccddeeff", Hash: 1, Cipher: 1, Compression: 2, PageSize: 8192, RelationChunkPages: 16, FileChunkSize: 1 << 20})
	f.Add(c)
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := parseConfig(b)
		if err == nil && cfg.maxChunk() > maxChunkSize {
			t.Fatal("a config with oversized chunks parsed")
		}
	})
}

func FuzzParsePrunePlan(f *testing.F) {
	f.Add([]byte(`{"version":1,"packs":["` + ID{2}.String() + `"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		parsePrunePlan(b)
	})
}

func FuzzUnwrapKey(f *testing.F) {
	master := make([]byte, 32)
	f.Add(wrapKey(master, [16]byte{1}, make([]byte, 32)))
	f.Fuzz(func(t *testing.T, b []byte) {
		unwrapKey(master, b)
	})
}

func FuzzOpenSealed(f *testing.F) {
	c, err := readCodec()
	if err != nil {
		f.Fatal(err)
	}
	k := deriveKeys(make([]byte, 32))
	f.Add(c.seal(k, ObjectIndex, []byte("x")))
	f.Fuzz(func(t *testing.T, b []byte) {
		c.open(k, ObjectIndex, b)
	})
}

func FuzzDecompressBlob(f *testing.F) {
	c, err := readCodec()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.compress(nil, make([]byte, 1000)), 1000)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > maxChunkSize {
			return
		}
		out, err := c.decompressBlob(b, n, true)
		if err == nil && len(out) != n {
			t.Fatalf("decompressed %d bytes, want %d", len(out), n)
		}
	})
}
