package repo

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
)

// Pack layout (docs/design.md §6):
//
//	blob 0 | blob 1 | … | header ciphertext | trailer
//	trailer = salt [32] | header ciphertext length u32 LE | cipher ID u8 | pack version u8 | "PGVP"
const (
	packMagic  = "PGVP"
	trailerLen = 32 + 4 + 1 + 1 + 4
	// maxPackSize bounds a pack so that offsets fit 32 bits.
	maxPackSize = 1 << 30
	// DefaultPackSize is the default target size of a pack.
	DefaultPackSize = 16 << 20
	// minPackSize is the smallest target a writer accepts.
	minPackSize = 4 << 10
)

// trailer is the plaintext end of a pack.
type trailer struct {
	salt      [32]byte
	headerLen uint32
}

func appendTrailer(b []byte, t trailer) []byte {
	b = append(b, t.salt[:]...)
	b = binary.LittleEndian.AppendUint32(b, t.headerLen)
	b = append(b, byte(CipherAES256GCM), packVersion)
	return append(b, packMagic...)
}

// parseTrailer decodes the last trailerLen bytes of a pack of packSize bytes.
func parseTrailer(b []byte, packSize uint64) (trailer, error) {
	var t trailer
	if len(b) != trailerLen || string(b[trailerLen-4:]) != packMagic {
		return t, fmt.Errorf("%w: no pack trailer", ErrCorrupt)
	}
	if v := b[trailerLen-5]; v != packVersion {
		return t, fmt.Errorf("%w: pack version %d (this pgvault reads %d)", ErrUnsupportedVersion, v, packVersion)
	}
	if c := CipherID(b[trailerLen-6]); c != CipherAES256GCM {
		return t, fmt.Errorf("%w: pack cipher %d", ErrUnsupportedVersion, c)
	}
	copy(t.salt[:], b[:32])
	t.headerLen = binary.LittleEndian.Uint32(b[32:36])
	if t.headerLen < 16+1 || uint64(t.headerLen)+trailerLen > packSize {
		return t, fmt.Errorf("%w: pack header length %d does not fit a pack of %d bytes", ErrCorrupt, t.headerLen, packSize)
	}
	return t, nil
}

// encodePackHeader encodes the plaintext header of a pack.
func encodePackHeader(blobs []packBlob) []byte {
	b := make([]byte, 0, 8+len(blobs)*maxBlobEntry)
	b = binary.AppendUvarint(b, uint64(len(blobs)))
	for _, e := range blobs {
		b = appendBlobEntry(b, e)
	}
	return b
}

// parsePackHeader decodes a plaintext pack header.
func parsePackHeader(b []byte) ([]packBlob, error) {
	d := &decoder{b: b}
	n := d.count(1+32+2, "blob count")
	if d.err == nil && n == 0 {
		d.fail("pack without blobs")
	}
	blobs := make([]packBlob, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		blobs = append(blobs, d.blobEntry())
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the pack header", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return blobs, nil
}

// openPack parses a whole pack: its trailer and header, checking that the
// blobs exactly fill the space before the header.
func (k *keys) openPack(pack []byte) (trailer, []packBlob, cipher.AEAD, error) {
	size := uint64(len(pack))
	if size < trailerLen {
		return trailer{}, nil, nil, fmt.Errorf("%w: pack of %d bytes", ErrCorrupt, size)
	}
	t, err := parseTrailer(pack[size-trailerLen:], size)
	if err != nil {
		return t, nil, nil, err
	}
	hstart := size - trailerLen - uint64(t.headerLen)
	aead := k.packAEAD(t.salt[:])
	plain, err := aead.Open(nil, headerNonce(), pack[hstart:size-trailerLen], pack[size-trailerLen:])
	if err != nil {
		return t, nil, nil, fmt.Errorf("%w: pack header does not authenticate", ErrCorrupt)
	}
	blobs, err := parsePackHeader(plain)
	if err != nil {
		return t, nil, nil, err
	}
	var sum uint64
	for _, e := range blobs {
		sum += uint64(e.length)
	}
	if sum != hstart {
		return t, nil, nil, fmt.Errorf("%w: pack blobs fill %d bytes, header starts at %d", ErrCorrupt, sum, hstart)
	}
	return t, blobs, aead, nil
}

// sealBlob encrypts plain (compression ID | payload) as the blob at byte
// offset off of a pack (R12), appending to dst.
func sealBlob(aead cipher.AEAD, dst, plain []byte, off int, t BlobType, id ID) []byte {
	var nonce [12]byte
	var aad [33]byte
	return aead.Seal(dst, blobNonce(&nonce, uint64(off)), plain, blobAAD(&aad, t, id))
}

// sealPackEnd appends the encrypted header listing blobs and the trailer
// to b, the pack's blobs (R13).
func sealPackEnd(b []byte, aead cipher.AEAD, salt [32]byte, blobs []packBlob) []byte {
	header := encodePackHeader(blobs)
	tr := appendTrailer(nil, trailer{salt: salt, headerLen: uint32(len(header) + 16)})
	b = aead.Seal(b, headerNonce(), header, tr)
	return append(b, tr...)
}

// openBlob decrypts one blob (R12) and returns its compression ID | payload.
func openBlob(aead cipher.AEAD, dst, sealed []byte, off uint32, t BlobType, id ID) ([]byte, error) {
	var nonce [12]byte
	var aad [33]byte
	out, err := aead.Open(dst[:0], blobNonce(&nonce, uint64(off)), sealed, blobAAD(&aad, t, id))
	if err != nil {
		return nil, fmt.Errorf("%w: %v blob %s does not authenticate", ErrCorrupt, t, id)
	}
	return out, nil
}
