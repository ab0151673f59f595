package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Format and algorithm identifiers. They are written into stored objects, so
// a value, once released, keeps its meaning forever and is never reused.
// Zero is never a valid identifier, so zeroed bytes are never mistaken for one.

// FormatVersion is the version of the repository format as a whole (the
// config object records it).
type FormatVersion uint32

// FormatV1 is the format described in docs/design.md.
const FormatV1 FormatVersion = 1

// ObjectType identifies the kind of a sealed object; it is part of the
// object's AAD and key derivation.
type ObjectType uint8

// Sealed object types.
const (
	ObjectConfig    ObjectType = 1
	ObjectIndex     ObjectType = 2
	ObjectSnapshot  ObjectType = 3
	ObjectLock      ObjectType = 4
	ObjectPrunePlan ObjectType = 5
)

// String names the object type.
func (t ObjectType) String() string {
	switch t {
	case ObjectConfig:
		return "config"
	case ObjectIndex:
		return "index"
	case ObjectSnapshot:
		return "snapshot"
	case ObjectLock:
		return "lock"
	case ObjectPrunePlan:
		return "prune plan"
	}
	return fmt.Sprintf("object type %d", uint8(t))
}

// BlobType says what a blob holds.
type BlobType uint8

// Blob types.
const (
	BlobData BlobType = 1 // a chunk of file content
	BlobTree BlobType = 2 // a piece of a snapshot's file tree stream
)

func (t BlobType) valid() bool { return t == BlobData || t == BlobTree }

// String names the blob type.
func (t BlobType) String() string {
	switch t {
	case BlobData:
		return "data"
	case BlobTree:
		return "tree"
	}
	return fmt.Sprintf("blob type %d", uint8(t))
}

// CompressionID says how a blob's or sealed object's payload is compressed.
type CompressionID uint8

// Compression identifiers.
const (
	CompressionNone CompressionID = 1
	CompressionZstd CompressionID = 2
)

// HashID identifies the content-ID algorithm.
type HashID uint8

// The content-ID algorithms, keyed by the repository's ID key. New
// repositories use BLAKE3 (about 1.7x the speed of HMAC-SHA256 with SHA-NI on
// the chunks of a base backup); HMAC-SHA256 repositories stay readable and
// writable.
const (
	HashHMACSHA256 HashID = 1
	HashBLAKE3     HashID = 2
)

// CipherID identifies the AEAD.
type CipherID uint8

// CipherAES256GCM is AES-256-GCM.
const CipherAES256GCM CipherID = 1

// KDFID identifies the key derivation function of a key object.
type KDFID uint8

// KDFHKDFSHA256 is HKDF-SHA256 (the master key is already a full-entropy key,
// so no password hashing is needed).
const KDFHKDFSHA256 KDFID = 1

// Versions of the individual stored structures.
const (
	keyVersion      uint8  = 1
	envelopeVersion uint8  = 1
	packVersion     uint8  = 1
	indexVersion    uint64 = 1
	treeVersion            = 1
	manifestVersion        = 1
	configVersion          = FormatV1
	lockVersion            = 1
	planVersion            = 1
)

// Fixed format parameters.
const (
	// PageSize is PostgreSQL's block size; relation files are cut at its multiples.
	PageSize = 8192
	// defaultRelationChunkPages is the chunk size of relation files, in pages.
	defaultRelationChunkPages = 16
	// defaultFileChunkSize is the chunk size of all other files.
	defaultFileChunkSize = 1 << 20
	// maxChunkSize bounds any chunk a config may ask for.
	maxChunkSize = 8 << 20
)

// Object name prefixes.
const (
	configName     = "config"
	keysPrefix     = "keys/"
	packsPrefix    = "packs/"
	indexPrefix    = "index/"
	snapshotPrefix = "snapshots/"
	locksPrefix    = "locks/"
	prunePrefix    = "prune/"
)

// Errors callers may test with errors.Is.
var (
	// ErrWrongKey: no key object of the repository opens with the master key.
	ErrWrongKey = errors.New("the master key does not open this repository")
	// ErrRepositoryExists: Init found a repository.
	ErrRepositoryExists = errors.New("a repository already exists there")
	// ErrNoRepository: Open found no config object.
	ErrNoRepository = errors.New("no repository there")
	// ErrUnsupportedVersion: a stored object has a version this code does not know.
	ErrUnsupportedVersion = errors.New("unsupported format version")
	// ErrCorrupt: stored data failed verification.
	ErrCorrupt = errors.New("repository data is damaged")
	// ErrNotFound: no such snapshot or file.
	ErrNotFound = errors.New("not found")
)

// ID is a 32-byte identifier: a blob's keyed content ID, or the SHA-256 of a
// stored object (packs, index objects, snapshots, keys).
type ID [32]byte

// String returns the lower-case hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("invalid ID %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("while parsing ID %q: %w", s, err)
	}
	return id, nil
}

// SnapshotID identifies a snapshot: the SHA-256 of its manifest object.
type SnapshotID = ID

// objectID is the name-giving hash of a stored object's bytes.
func objectID(b []byte) ID { return sha256.Sum256(b) }

func packName(id ID) string {
	s := id.String()
	return packsPrefix + s[:2] + "/" + s
}

// parseObjectName returns the ID at the end of a content-named object.
func parseObjectName(prefix, name string) (ID, bool) {
	if len(name) < len(prefix) || name[:len(prefix)] != prefix {
		return ID{}, false
	}
	rest := name[len(prefix):]
	if prefix == packsPrefix {
		if len(rest) != 3+64 || rest[2] != '/' || rest[:2] != rest[3:5] {
			return ID{}, false
		}
		rest = rest[3:]
	}
	id, err := ParseID(rest)
	return id, err == nil
}

// MarshalText implements encoding.TextMarshaler (hex).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
