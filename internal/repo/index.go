package repo

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
)

// packBlob describes one blob of a pack, as its header and the index list it.
type packBlob struct {
	typ    BlobType
	id     ID
	length uint32 // stored (encrypted) length
	rawLen uint32 // length of the content before compression
}

// indexPack is one pack as an index object lists it.
type indexPack struct {
	id    ID
	size  uint64
	salt  [32]byte
	blobs []packBlob
}

// maxBlobEntry is the largest encoding of a packBlob.
const maxBlobEntry = 1 + 32 + 2*binary.MaxVarintLen32

func appendBlobEntry(b []byte, e packBlob) []byte {
	b = append(b, byte(e.typ))
	b = append(b, e.id[:]...)
	b = binary.AppendUvarint(b, uint64(e.length))
	return binary.AppendUvarint(b, uint64(e.rawLen))
}

// decoder reads the binary structures; every read checks bounds.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("%s runs past the end", what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1(what string) byte {
	v := d.bytes(1, what)
	if v == nil {
		return 0
	}
	return v[0]
}

// count reads a count of items of at least minSize bytes each, bounded by
// the bytes left.
func (d *decoder) count(minSize int, what string) int {
	v := d.uvarint(what)
	if d.err == nil && v > uint64(len(d.b)/minSize) {
		d.fail("%s %d exceeds the data", what, v)
		return 0
	}
	return int(v)
}

func (d *decoder) u32(what string) uint32 {
	v := d.uvarint(what)
	if d.err == nil && v > 1<<32-1 {
		d.fail("%s %d too large", what, v)
		return 0
	}
	return uint32(v)
}

func (d *decoder) blobEntry() packBlob {
	var e packBlob
	e.typ = BlobType(d.byte1("blob type"))
	if d.err == nil && !e.typ.valid() {
		d.fail("unknown blob type %d", e.typ)
	}
	copy(e.id[:], d.bytes(32, "blob ID"))
	e.length = d.u32("blob length")
	e.rawLen = d.u32("blob raw length")
	if d.err == nil && (e.length < 1+16 || e.rawLen > maxChunkSize && e.typ == BlobData) {
		d.fail("blob lengths %d/%d out of range", e.length, e.rawLen)
	}
	return e
}

// encodeIndex encodes an index payload (docs/design.md §7).
func encodeIndex(packs []*indexPack) []byte {
	n := 16
	for _, p := range packs {
		n += 32 + 10 + 32 + 10 + len(p.blobs)*maxBlobEntry
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, indexVersion)
	b = binary.AppendUvarint(b, uint64(len(packs)))
	for _, p := range packs {
		b = append(b, p.id[:]...)
		b = binary.AppendUvarint(b, p.size)
		b = append(b, p.salt[:]...)
		b = binary.AppendUvarint(b, uint64(len(p.blobs)))
		for _, e := range p.blobs {
			b = appendBlobEntry(b, e)
		}
	}
	return b
}

// parseIndex decodes an index payload, calling fn for each pack. The
// indexPack passed to fn is reused; fn must copy what it keeps.
func parseIndex(b []byte, fn func(p *indexPack) error) error {
	d := &decoder{b: b}
	if v := d.uvarint("index version"); d.err == nil && v != indexVersion {
		return fmt.Errorf("%w: index version %d (this pgvault reads %d)", ErrUnsupportedVersion, v, indexVersion)
	}
	n := d.count(32+1+32+1, "pack count")
	var p indexPack
	for i := 0; i < n && d.err == nil; i++ {
		copy(p.id[:], d.bytes(32, "pack ID"))
		p.size = d.uvarint("pack size")
		copy(p.salt[:], d.bytes(32, "pack salt"))
		m := d.count(1+32+2, "blob count")
		p.blobs = p.blobs[:0]
		var sum uint64
		for j := 0; j < m && d.err == nil; j++ {
			e := d.blobEntry()
			sum += uint64(e.length)
			p.blobs = append(p.blobs, e)
		}
		if d.err != nil {
			break
		}
		if m == 0 || sum+trailerLen+16 > p.size || p.size > maxPackSize {
			d.fail("pack %s: size %d does not fit its %d blobs", p.id, p.size, m)
			break
		}
		if err := fn(&p); err != nil {
			return err
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the index", len(d.b))
	}
	return d.err
}

// numBuckets splits the in-memory indexes by the first two bytes of an ID.
const numBuckets = 1 << 16

func bucketOf(id *ID) int { return int(id[0])<<8 | int(id[1]) }

// grow returns s with room for one more element, growing by 1/8 so that
// a large set wastes little memory.
func grow[E any](s []E) []E {
	if len(s) < cap(s) {
		return s
	}
	n := make([]E, len(s), cap(s)+cap(s)/8+4)
	copy(n, s)
	return n
}

// idSet is the writer's dedup set (R24): the first 16 bytes of every known
// blob ID, bucketed by the first two, each bucket a sorted array of the next
// 14. Safe for concurrent use.
type idSet struct {
	mu      sync.Mutex
	buckets [][]idSuffix
	n       int
}

type idSuffix [14]byte

func newIDSet() *idSet { return &idSet{buckets: make([][]idSuffix, numBuckets)} }

func suffixOf(id *ID) (s idSuffix) {
	copy(s[:], id[2:16])
	return s
}

func cmpSuffix(a, b idSuffix) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// add records id during loading (unsorted; finishLoad sorts).
func (s *idSet) add(id *ID) {
	b := bucketOf(id)
	s.buckets[b] = append(grow(s.buckets[b]), suffixOf(id))
	s.n++
}

// finishLoad sorts and deduplicates every bucket.
func (s *idSet) finishLoad() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n = 0
	for i, b := range s.buckets {
		slices.SortFunc(b, cmpSuffix)
		b = slices.Compact(b)
		s.buckets[i] = b
		s.n += len(b)
	}
}

// insert adds id and reports whether it was new.
func (s *idSet) insert(id *ID) bool {
	suf := suffixOf(id)
	bi := bucketOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bi]
	i, found := slices.BinarySearchFunc(b, suf, cmpSuffix)
	if found {
		return false
	}
	b = grow(b)
	b = b[:len(b)+1]
	copy(b[i+1:], b[i:])
	b[i] = suf
	s.buckets[bi] = b
	s.n++
	return true
}

// locIndex is the reader's location index (R25): for every indexed blob,
// bytes 2..9 of its ID (bytes 0..1 pick the bucket) and where it is.
type locIndex struct {
	buckets [][]locEntry
	sorted  bool
	packs   []packRef
	packIdx map[ID]uint32
	loaded  map[ID]bool // index objects already merged
	n       int
	// damaged counts index objects that did not open or parse; while there
	// are any, packs no intact index object names are read from their own
	// headers (R45). badHeaders are packs whose header did not open.
	damaged    int
	badHeaders map[ID]bool
}

type locEntry struct {
	key    [8]byte
	pack   uint32
	off    uint32
	length uint32
}

// packRef is a pack the location index knows.
type packRef struct {
	id   ID
	size uint64
	salt [32]byte
}

// location is where one copy of a blob is.
type location struct {
	pack   *packRef
	packNo uint32
	off    uint32
	length uint32
}

func newLocIndex() *locIndex {
	return &locIndex{buckets: make([][]locEntry, numBuckets), packIdx: make(map[ID]uint32), loaded: make(map[ID]bool), badHeaders: make(map[ID]bool)}
}

func keyOf(id *ID) (k [8]byte) {
	copy(k[:], id[2:10])
	return k
}

func cmpLoc(a, b locEntry) int {
	for i := range a.key {
		if a.key[i] != b.key[i] {
			return int(a.key[i]) - int(b.key[i])
		}
	}
	return 0
}

// addPack records a pack and its blobs; a pack already known is skipped.
func (x *locIndex) addPack(p *indexPack) {
	if _, ok := x.packIdx[p.id]; ok {
		return
	}
	no := uint32(len(x.packs))
	x.packs = append(x.packs, packRef{id: p.id, size: p.size, salt: p.salt})
	x.packIdx[p.id] = no
	var off uint32
	for i := range p.blobs {
		e := &p.blobs[i]
		b := bucketOf(&e.id)
		x.buckets[b] = append(grow(x.buckets[b]), locEntry{key: keyOf(&e.id), pack: no, off: off, length: e.length})
		off += e.length
		x.n++
	}
	x.sorted = false
}

func (x *locIndex) sort() {
	if x.sorted {
		return
	}
	for _, b := range x.buckets {
		slices.SortStableFunc(b, cmpLoc)
	}
	x.sorted = true
}

// lookup returns the candidate locations of id (prefix matches; the caller
// verifies). The index must be sorted.
func (x *locIndex) lookup(id *ID) []location {
	b := x.buckets[bucketOf(id)]
	k := locEntry{key: keyOf(id)}
	i, _ := slices.BinarySearchFunc(b, k, cmpLoc)
	var out []location
	for ; i < len(b) && b[i].key == k.key; i++ {
		e := b[i]
		out = append(out, location{pack: &x.packs[e.pack], packNo: e.pack, off: e.off, length: e.length})
	}
	return out
}
