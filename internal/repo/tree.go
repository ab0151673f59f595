package repo

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io/fs"
	"strings"
	"time"
)

// FileType is the type of a file in a snapshot.
type FileType uint8

// File types; stored in trees, never reused.
const (
	TypeRegular FileType = 1
	TypeDir     FileType = 2
	TypeSymlink FileType = 3
)

// String names the file type.
func (t FileType) String() string {
	switch t {
	case TypeRegular:
		return "regular"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	}
	return fmt.Sprintf("file type %d", uint8(t))
}

// File describes one file of a snapshot.
type File struct {
	// Path is relative to the data directory, slash-separated and clean,
	// for example "base/16384/16385.1" or "pg_tblspc/16400".
	Path string
	Type FileType
	// Mode holds the permission bits (and setuid/setgid/sticky); the type
	// is in Type.
	Mode    fs.FileMode
	Size    int64 // regular files only
	ModTime time.Time
	// LinkTarget is a symlink's target (tablespaces link to their location).
	LinkTarget string
}

// Limits of tree items (R28).
const (
	maxPathLen = 4096
	// Tree blobs are cut between items (R26).
	treeMinBlob = 16 << 10
	treeMaxBlob = 256 << 10
	treeCutMask = 1<<10 - 1
	// maxItemLen bounds one encoded item.
	maxItemLen = 1 + 1 + 2*(binary.MaxVarintLen64+maxPathLen) + 4*binary.MaxVarintLen64
	// maxTreeBlobLen bounds a stored tree blob's content.
	maxTreeBlobLen = treeMaxBlob + maxItemLen
)

// Tree item kinds.
const (
	itemFile    byte = 1
	itemChunk   byte = 2
	itemEnd     byte = 3
	itemTrailer byte = 4
)

// validPath checks R28's path rules.
func validPath(p string) error {
	if p == "" || len(p) > maxPathLen {
		return fmt.Errorf("path of %d bytes", len(p))
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("path %q is not relative and clean", p)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("path %q is not clean", p)
		}
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path %q contains NUL", p)
	}
	return nil
}

func appendFileItem(b []byte, f *File) []byte {
	b = append(b, itemFile, byte(f.Type))
	b = binary.AppendUvarint(b, uint64(len(f.Path)))
	b = append(b, f.Path...)
	b = binary.AppendUvarint(b, uint64(f.Mode))
	b = binary.AppendUvarint(b, uint64(f.Size))
	b = binary.AppendVarint(b, f.ModTime.Unix())
	b = binary.AppendUvarint(b, uint64(f.ModTime.Nanosecond()))
	b = binary.AppendUvarint(b, uint64(len(f.LinkTarget)))
	return append(b, f.LinkTarget...)
}

func appendChunkItem(b []byte, id ID, rawLen int) []byte {
	b = append(b, itemChunk)
	b = append(b, id[:]...)
	return binary.AppendUvarint(b, uint64(rawLen))
}

func appendTrailerItem(b []byte, files, bytes uint64) []byte {
	b = append(b, itemTrailer)
	b = binary.AppendUvarint(b, files)
	return binary.AppendUvarint(b, bytes)
}

// treeItem is one decoded item.
type treeItem struct {
	kind   byte
	file   File   // itemFile
	id     ID     // itemChunk
	rawLen int    // itemChunk
	files  uint64 // itemTrailer
	bytes  uint64 // itemTrailer
}

// parseItem decodes the item at the start of b and returns its length.
func parseItem(b []byte, it *treeItem) (int, error) {
	d := &decoder{b: b}
	it.kind = d.byte1("tree item")
	switch it.kind {
	case itemFile:
		f := &it.file
		f.Type = FileType(d.byte1("file type"))
		if d.err == nil && (f.Type < TypeRegular || f.Type > TypeSymlink) {
			d.fail("unknown file type %d", f.Type)
		}
		n := d.uvarint("path length")
		if d.err == nil && (n == 0 || n > maxPathLen) {
			d.fail("path length %d", n)
		}
		f.Path = string(d.bytes(int(n), "path"))
		mode := d.uvarint("mode")
		if d.err == nil && mode > 1<<32-1 {
			d.fail("mode %#x", mode)
		}
		f.Mode = fs.FileMode(mode)
		size := d.uvarint("size")
		if d.err == nil && size > 1<<62 {
			d.fail("size %d", size)
		}
		f.Size = int64(size)
		sec := d.varint("mtime")
		nsec := d.uvarint("mtime nanoseconds")
		if d.err == nil && nsec >= 1e9 {
			d.fail("mtime nanoseconds %d", nsec)
		}
		f.ModTime = time.Unix(sec, int64(nsec)).UTC()
		n = d.uvarint("link length")
		if d.err == nil && n > maxPathLen {
			d.fail("link length %d", n)
		}
		f.LinkTarget = string(d.bytes(int(n), "link target"))
		if d.err == nil {
			if err := validPath(f.Path); err != nil {
				d.fail("%v", err)
			} else if f.Type != TypeRegular && f.Size != 0 {
				d.fail("%v %q with size %d", f.Type, f.Path, f.Size)
			} else if f.Type != TypeSymlink && f.LinkTarget != "" {
				d.fail("%v %q with a link target", f.Type, f.Path)
			}
		}
	case itemChunk:
		copy(it.id[:], d.bytes(32, "chunk ID"))
		n := d.uvarint("chunk length")
		if d.err == nil && (n == 0 || n > maxChunkSize) {
			d.fail("chunk length %d", n)
		}
		it.rawLen = int(n)
	case itemEnd:
	case itemTrailer:
		it.files = d.uvarint("file count")
		it.bytes = d.uvarint("byte count")
	default:
		if d.err == nil {
			d.fail("unknown tree item %d", it.kind)
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	return len(b) - len(d.b), nil
}

// itemCut reports whether a tree blob may end after this item (R26).
func itemCut(item []byte) bool {
	if len(item) >= 33 && item[0] == itemChunk {
		// A chunk's ID is a keyed hash already.
		return binary.LittleEndian.Uint16(item[1:3])&treeCutMask == 0
	}
	h := fnv.New64a()
	h.Write(item)
	return h.Sum64()&treeCutMask == 0
}

// treeChecker follows the item grammar of a tree stream:
// (file (chunk* end))* trailer.
type treeChecker struct {
	inFile    bool
	file      File
	got       int64
	files     uint64
	bytes     uint64
	done      bool
	itemCount int
}

// next checks one item in sequence.
func (c *treeChecker) next(it *treeItem) error {
	if c.done {
		return fmt.Errorf("%w: tree items after the trailer", ErrCorrupt)
	}
	switch it.kind {
	case itemFile:
		if c.inFile {
			return fmt.Errorf("%w: file %q not closed before %q", ErrCorrupt, c.file.Path, it.file.Path)
		}
		c.inFile, c.file, c.got = true, it.file, 0
		c.files++
	case itemChunk:
		if !c.inFile || c.file.Type != TypeRegular {
			return fmt.Errorf("%w: chunk outside a regular file", ErrCorrupt)
		}
		c.got += int64(it.rawLen)
		if c.got > c.file.Size {
			return fmt.Errorf("%w: chunks of %q exceed its size %d", ErrCorrupt, c.file.Path, c.file.Size)
		}
	case itemEnd:
		if !c.inFile {
			return fmt.Errorf("%w: end item outside a file", ErrCorrupt)
		}
		if c.got != c.file.Size {
			return fmt.Errorf("%w: chunks of %q hold %d bytes, its size is %d", ErrCorrupt, c.file.Path, c.got, c.file.Size)
		}
		c.bytes += uint64(c.got)
		c.inFile = false
	case itemTrailer:
		if c.inFile {
			return fmt.Errorf("%w: tree ends inside %q", ErrCorrupt, c.file.Path)
		}
		if it.files != c.files || it.bytes != c.bytes {
			return fmt.Errorf("%w: tree trailer says %d files/%d bytes, tree holds %d/%d", ErrCorrupt, it.files, it.bytes, c.files, c.bytes)
		}
		c.done = true
	}
	c.itemCount++
	return nil
}

// parseTreeBlob checks that b is a sequence of whole items and calls fn for
// each with its offset in b.
func parseTreeBlob(b []byte, fn func(off int, it *treeItem) error) error {
	var it treeItem
	for off := 0; off < len(b); {
		n, err := parseItem(b[off:], &it)
		if err != nil {
			return err
		}
		if err := fn(off, &it); err != nil {
			return err
		}
		off += n
	}
	return nil
}
