package repo

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

// MasterKeySize is the size of the caller's master key.
const MasterKeySize = 32

// HKDF info strings; part of the format (docs/design.md §3).
const (
	infoKeyWrap   = "pgvault/v1/key-wrap"
	infoContentID = "pgvault/v1/content-id"
	infoPack      = "pgvault/v1/pack"
	infoPackKey   = "pgvault/v1/pack-key"
	infoObject    = "pgvault/v1/object"
	infoObjectKey = "pgvault/v1/object/"
)

// keys are the sub-keys derived from a repository key.
type keys struct {
	idHash HashID // the content-ID algorithm (the config's; HMAC-SHA256 if 0)
	id     []byte // key for content IDs
	pack   []byte // parent of per-pack keys
	object []byte // parent of per-object keys
}

func derive(secret, salt []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, secret, salt, info, 32)
	if err != nil {
		// Only possible for lengths HKDF cannot produce; 32 always works.
		panic(fmt.Sprintf("repo: HKDF failed: %v", err))
	}
	return k
}

func deriveKeys(repoKey []byte) *keys {
	return &keys{
		id:     derive(repoKey, nil, infoContentID),
		pack:   derive(repoKey, nil, infoPack),
		object: derive(repoKey, nil, infoObject),
	}
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("repo: AES key: %v", err)) // keys are always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("repo: GCM: %v", err))
	}
	return aead
}

// packAEAD returns the AEAD of the pack with the given salt.
func (k *keys) packAEAD(salt []byte) cipher.AEAD {
	return newGCM(derive(k.pack, salt, infoPackKey))
}

// blobNonce is the nonce of the blob at byte offset i of a pack (offsets of
// different blobs differ, so nonces never repeat under one pack key).
func blobNonce(nonce *[12]byte, i uint64) []byte {
	*nonce = [12]byte{}
	for j := 0; j < 8; j++ {
		nonce[11-j] = byte(i >> (8 * j))
	}
	return nonce[:]
}

// headerNonce returns the nonce of a pack's header: no blob offset maps to it.
func headerNonce() []byte { return []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0} }

// zeroNonce returns the nonce used where a key seals exactly one message.
func zeroNonce() []byte { return make([]byte, 12) }

// blobAAD is the additional data of a blob: its type and ID.
func blobAAD(aad *[33]byte, t BlobType, id ID) []byte {
	aad[0] = byte(t)
	copy(aad[1:], id[:])
	return aad[:]
}

// idHasher computes content IDs; not safe for concurrent use.
type idHasher struct {
	h hash.Hash
	t [1]byte
}

func (k *keys) newIDHasher() *idHasher {
	if k.idHash == HashBLAKE3 {
		h, err := blake3.NewKeyed(k.id)
		if err != nil {
			panic(fmt.Sprintf("repo: BLAKE3 key: %v", err)) // the ID key is always 32 bytes
		}
		return &idHasher{h: h}
	}
	return &idHasher{h: hmac.New(sha256.New, k.id)}
}

// sum returns the ID of a blob of type t: the keyed hash (BLAKE3 or HMAC) of
// type | content under the ID key. The
// type separates the domains, so a file whose bytes equal a tree blob never
// shares its ID.
func (h *idHasher) sum(t BlobType, b []byte) ID {
	h.h.Reset()
	h.t[0] = byte(t)
	h.h.Write(h.t[:])
	h.h.Write(b)
	var id ID
	h.h.Sum(id[:0])
	return id
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("repo: crypto/rand: %v", err)) // crypto/rand.Read never fails on supported platforms
	}
	return b
}

// Key objects (docs/design.md R6).

const (
	keyMagic     = "PGVK"
	keyHeaderLen = 4 + 1 + 1 + 1 + 16 + 32
	keyObjectLen = keyHeaderLen + 32 + 16
)

// wrapKey makes a key object holding repoKey under masterKey.
func wrapKey(masterKey []byte, repoID [16]byte, repoKey []byte) []byte {
	b := make([]byte, 0, keyObjectLen)
	b = append(b, keyMagic...)
	b = append(b, keyVersion, byte(KDFHKDFSHA256), byte(CipherAES256GCM))
	b = append(b, repoID[:]...)
	salt := randomBytes(32)
	b = append(b, salt...)
	aead := newGCM(derive(masterKey, salt, infoKeyWrap))
	return aead.Seal(b, zeroNonce(), repoKey, b[:keyHeaderLen])
}

// errKeyMismatch: a well-formed key object that this master key does not open.
var errKeyMismatch = errors.New("key object belongs to another master key")

// unwrapKey opens a key object. It returns errKeyMismatch when the master key
// is not the one the object was made for, and ErrCorrupt or
// ErrUnsupportedVersion when the object cannot be parsed.
func unwrapKey(masterKey, data []byte) (repoID [16]byte, repoKey []byte, err error) {
	if len(data) < 5 || string(data[:4]) != keyMagic {
		return repoID, nil, fmt.Errorf("%w: not a key object", ErrCorrupt)
	}
	if data[4] != keyVersion {
		return repoID, nil, fmt.Errorf("%w: key object version %d (this pgvault reads %d)", ErrUnsupportedVersion, data[4], keyVersion)
	}
	if len(data) != keyObjectLen {
		return repoID, nil, fmt.Errorf("%w: key object of %d bytes, want %d", ErrCorrupt, len(data), keyObjectLen)
	}
	if KDFID(data[5]) != KDFHKDFSHA256 || CipherID(data[6]) != CipherAES256GCM {
		return repoID, nil, fmt.Errorf("%w: key object uses KDF %d / cipher %d", ErrUnsupportedVersion, data[5], data[6])
	}
	copy(repoID[:], data[7:23])
	salt := data[23:55]
	aead := newGCM(derive(masterKey, salt, infoKeyWrap))
	key, err := aead.Open(nil, zeroNonce(), data[keyHeaderLen:], data[:keyHeaderLen])
	if err != nil {
		return repoID, nil, errKeyMismatch
	}
	return repoID, key, nil
}

// Sealed objects (docs/design.md §4).

const (
	envelopeMagic     = "PGVO"
	envelopeHeaderLen = 4 + 1 + 1 + 32
	// maxObjectPayload bounds the decompressed payload of a sealed object.
	maxObjectPayload = 64 << 20
)

// codec compresses and decompresses; safe for concurrent use.
type codec struct {
	enc     *zstd.Encoder // EncodeAll from several goroutines
	blobDec *zstd.Decoder // output limited to cap(dst)
	objDec  *zstd.Decoder // output limited to maxObjectPayload
	// workerEncs are a writer's workers' encoders (one each), closed with
	// the codec.
	workerEncs []*zstd.Encoder
}

func newCodec(level zstd.EncoderLevel, concurrency int) (*codec, error) {
	enc, err := newEncoder(level, concurrency)
	if err != nil {
		return nil, err
	}
	blobDec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(concurrency),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(maxChunkSize+1))
	if err != nil {
		return nil, fmt.Errorf("while creating the zstd decoder: %w", err)
	}
	objDec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(maxObjectPayload))
	if err != nil {
		return nil, fmt.Errorf("while creating the zstd decoder: %w", err)
	}
	return &codec{enc: enc, blobDec: blobDec, objDec: objDec}, nil
}

func (c *codec) close() {
	for _, e := range c.workerEncs {
		_ = e.Close()
	}
	c.enc.Close()
	c.blobDec.Close()
	c.objDec.Close()
}

// newEncoder makes a zstd encoder for concurrency goroutines calling
// EncodeAll at once.
func newEncoder(level zstd.EncoderLevel, concurrency int) (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(1<<20),
		zstd.WithLowerEncoderMem(true),
		zstd.WithZeroFrames(true))
	if err != nil {
		return nil, fmt.Errorf("while creating the zstd encoder: %w", err)
	}
	return enc, nil
}

// compress appends compression ID | payload for src to dst, storing src
// uncompressed when zstd saves less than 1/32 (R11).
func (c *codec) compress(dst, src []byte) []byte { return compressWith(c.enc, dst, src) }

// compressWith is compress with the given encoder.
func compressWith(enc *zstd.Encoder, dst, src []byte) []byte {
	start := len(dst)
	dst = append(dst, byte(CompressionZstd))
	dst = enc.EncodeAll(src, dst)
	if len(dst)-start-1 > len(src)-len(src)/32 {
		dst = append(dst[:start], byte(CompressionNone))
		dst = append(dst, src...)
	}
	return dst
}

// decompressBlob decodes compression ID | payload. With exact, the content
// must be exactly rawLen bytes; otherwise rawLen is an upper bound.
func (c *codec) decompressBlob(src []byte, rawLen int, exact bool) ([]byte, error) {
	return c.decompressBlobInto(nil, src, rawLen, exact)
}

// decompressBlobInto is decompressBlob writing into dst's array when it has
// room for rawLen bytes (an uncompressed blob is returned in place, as a
// slice of src).
func (c *codec) decompressBlobInto(dst, src []byte, rawLen int, exact bool) ([]byte, error) {
	if len(src) < 1 {
		return nil, fmt.Errorf("%w: empty blob", ErrCorrupt)
	}
	var out []byte
	switch CompressionID(src[0]) {
	case CompressionNone:
		out = src[1:]
	case CompressionZstd:
		var err error
		if cap(dst) < rawLen {
			dst = make([]byte, 0, rawLen)
		}
		out, err = c.blobDec.DecodeAll(src[1:], dst[:0:rawLen])
		if err != nil {
			return nil, fmt.Errorf("%w: while decompressing a blob: %v", ErrCorrupt, err)
		}
	default:
		return nil, fmt.Errorf("%w: unknown compression %d", ErrCorrupt, src[0])
	}
	if len(out) > rawLen || exact && len(out) != rawLen {
		return nil, fmt.Errorf("%w: blob holds %d bytes, want %d", ErrCorrupt, len(out), rawLen)
	}
	return out, nil
}

// seal makes a sealed object of type t around payload.
func (c *codec) seal(k *keys, t ObjectType, payload []byte) []byte {
	plain := c.compress(make([]byte, 0, len(payload)/2+64), payload)
	b := make([]byte, 0, envelopeHeaderLen+len(plain)+16)
	b = append(b, envelopeMagic...)
	b = append(b, envelopeVersion, byte(t))
	salt := randomBytes(32)
	b = append(b, salt...)
	aead := newGCM(derive(k.object, salt, infoObjectKey+t.String()))
	return aead.Seal(b, zeroNonce(), plain, b[:envelopeHeaderLen])
}

// checkEnvelope checks a sealed object's plaintext header.
func checkEnvelope(t ObjectType, data []byte) error {
	if len(data) < envelopeHeaderLen+16+1 || string(data[:4]) != envelopeMagic {
		return fmt.Errorf("%w: not a sealed object", ErrCorrupt)
	}
	if data[4] != envelopeVersion {
		return fmt.Errorf("%w: object envelope version %d (this pgvault reads %d)", ErrUnsupportedVersion, data[4], envelopeVersion)
	}
	if ObjectType(data[5]) != t {
		return fmt.Errorf("%w: a %v where a %v was expected", ErrCorrupt, ObjectType(data[5]), t)
	}
	return nil
}

// open decrypts and decompresses a sealed object of type t.
func (c *codec) open(k *keys, t ObjectType, data []byte) ([]byte, error) {
	if err := checkEnvelope(t, data); err != nil {
		return nil, err
	}
	aead := newGCM(derive(k.object, data[6:envelopeHeaderLen], infoObjectKey+t.String()))
	plain, err := aead.Open(nil, zeroNonce(), data[envelopeHeaderLen:], data[:envelopeHeaderLen])
	if err != nil {
		return nil, fmt.Errorf("%w: %v does not authenticate", ErrCorrupt, t)
	}
	switch CompressionID(plain[0]) {
	case CompressionNone:
		return plain[1:], nil
	case CompressionZstd:
		out, err := c.objDec.DecodeAll(plain[1:], nil)
		if err != nil {
			return nil, fmt.Errorf("%w: while decompressing a %v: %v", ErrCorrupt, t, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %v with unknown compression %d", ErrCorrupt, t, plain[0])
}

// verifyName checks that data hashes to the ID in its name (R1).
func verifyName(id ID, data []byte) error {
	if sum := objectID(data); !bytes.Equal(sum[:], id[:]) {
		return fmt.Errorf("%w: content does not match its name", ErrCorrupt)
	}
	return nil
}
