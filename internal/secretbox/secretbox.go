// Package secretbox encrypts the secrets pgvault must keep readable (database
// passwords) with a key that lives outside the metadata database, in a file
// only its owner may read. Losing the key file loses those secrets, not the
// backups.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// version prefixes every sealed value so the format can change.
const version = "v1:"

// Box seals and opens secrets with one key.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: the key must be %d bytes, not %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("while creating the cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("while creating the cipher: %w", err)
	}
	return &Box{aead: aead}, nil
}

// LoadOrCreateKey reads the key file at path, creating it (mode 0600, in a
// directory of mode 0700) with a random key when it does not exist. A key
// file others may read is refused.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("while checking the key file: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("the key file %s may be read by others (mode %v); make it 0600", path, st.Mode().Perm())
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("the key file %s does not hold a base64 %d-byte key", path, KeySize)
		}
		return key, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("while reading the key file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("while creating the key directory: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("while generating a key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey(path) // another process made it first
	}
	if err != nil {
		return nil, fmt.Errorf("while creating the key file: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("while writing the key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("while writing the key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("while writing the key file: %w", err)
	}
	return key, nil
}

// Seal encrypts plaintext bound to context (e.g. the resource ID the secret
// belongs to, so a sealed value cannot be moved to another resource).
func (b *Box) Seal(plaintext, context string) string {
	nonce := make([]byte, b.aead.NonceSize())
	_, _ = rand.Read(nonce)
	sealed := b.aead.Seal(nonce, nonce, []byte(plaintext), []byte(context))
	return version + base64.StdEncoding.EncodeToString(sealed)
}

// ErrOpen: a sealed value could not be opened (wrong key, wrong context or
// damaged); it says nothing more on purpose.
var ErrOpen = errors.New("the secret could not be decrypted: wrong key or damaged value")

// Open decrypts a value made by Seal with the same context.
func (b *Box) Open(sealed, context string) (string, error) {
	raw, ok := strings.CutPrefix(sealed, version)
	if !ok {
		return "", ErrOpen
	}
	data, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(data) < b.aead.NonceSize()+b.aead.Overhead() {
		return "", ErrOpen
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, data[:n], data[n:], []byte(context))
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}
