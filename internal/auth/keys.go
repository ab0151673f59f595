package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	jose "github.com/go-jose/go-jose/v4"
)

// The only signature algorithms pgvault accepts and produces. The allow-list
// is this package's, explicit, and checked before go-jose sees a token:
// "none", HS* (symmetric: the classic public-key-as-HMAC-secret confusion),
// PS*, ES384/512, EdDSA and everything else are refused.
const (
	algRS256 = "RS256"
	algES256 = "ES256"
)

// The RSA modulus sizes accepted for verification (the upper bound keeps a
// hostile key set from making every verification expensive).
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// signingKeyRSABits is the size of a generated signing key.
const signingKeyRSABits = 3072

// signingKeyFile is the name of the signing key in IssuerConfig.KeyDir.
const signingKeyFile = "signing-key.pem"

// acceptedAlg returns alg as a go-jose algorithm if pgvault accepts it.
func acceptedAlg(alg string) (jose.SignatureAlgorithm, bool) {
	switch alg {
	case algRS256:
		return jose.RS256, true
	case algES256:
		return jose.ES256, true
	}
	return "", false
}

// checkKeyForAlg reports whether pub is a key that may verify alg: an RSA key
// of at least 2048 bits for RS256, a P-256 ECDSA key for ES256.
func checkKeyForAlg(pub crypto.PublicKey, alg string) error {
	switch alg {
	case algRS256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("algorithm %s needs an RSA key, not %T", alg, pub)
		}
		if k.N == nil || k.N.BitLen() < minRSABits || k.N.BitLen() > maxRSABits {
			return fmt.Errorf("RSA key is not between %d and %d bits", minRSABits, maxRSABits)
		}
		return nil
	case algES256:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("algorithm %s needs an ECDSA key, not %T", alg, pub)
		}
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("algorithm %s needs a P-256 key", alg)
		}
		return nil
	}
	return fmt.Errorf("algorithm %q is not accepted", alg)
}

// algForKey returns the algorithm pgvault uses with pub (RS256 or ES256).
func algForKey(pub crypto.PublicKey) (string, error) {
	for _, alg := range []string{algRS256, algES256} {
		if checkKeyForAlg(pub, alg) == nil {
			return alg, nil
		}
	}
	return "", fmt.Errorf("key type %T is not an RSA key of %d to %d bits or a P-256 ECDSA key", pub, minRSABits, maxRSABits)
}

// keyID returns the RFC 7638 JWK thumbprint (SHA-256, base64url) of pub, the
// "kid" of pgvault's own keys.
func keyID(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("while computing a key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// loadOrCreateSigningKey returns the signing key kept in dir, generating an
// RSA-3072 key on first use. dir is created with mode 0700 and the key file
// with mode 0600; an existing key file readable by group or others is refused.
// Two processes starting at once end up with the same key: the file is
// written under a temporary name and linked into place only if absent.
func loadOrCreateSigningKey(dir string) (crypto.Signer, error) {
	if err := ensureKeyDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, signingKeyFile)
	key, err := readSigningKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, signingKeyRSABits)
	if err != nil {
		return nil, fmt.Errorf("while generating a signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		return nil, fmt.Errorf("while encoding the signing key: %w", err)
	}
	if err := writeNewFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// Another process won the race: use its key.
	}
	return readSigningKey(path)
}

func ensureKeyDir(dir string) error {
	if dir == "" {
		return errors.New("while preparing the key directory: no directory configured")
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("while preparing the key directory: %s is not a directory", dir)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("while preparing the key directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("while creating the key directory: %w", err)
	}
	// MkdirAll honours the umask; make the mode exact.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("while creating the key directory: %w", err)
	}
	return nil
}

// writeNewFile writes data to path with mode 0600, failing with fs.ErrExist
// if path exists. The data is synced before it becomes visible under path.
func writeNewFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("while writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// readSigningKey reads a PEM private key (PKCS#8, or PKCS#1 RSA / SEC 1 EC)
// that pgvault can sign with.
func readSigningKey(path string) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("while reading the signing key: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("while reading the signing key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("while reading the signing key: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("while reading the signing key: %s is accessible by group or others (mode %#o); restrict it to 0600", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("while reading the signing key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("while reading the signing key: %s holds no PEM block", path)
	}
	var parsed any
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("while reading the signing key: %s holds a %q PEM block, not a private key", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("while reading the signing key %s: %w", path, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("while reading the signing key: %s holds a %T, which cannot sign", path, parsed)
	}
	if _, err := algForKey(signer.Public()); err != nil {
		return nil, fmt.Errorf("while reading the signing key %s: %w", path, err)
	}
	return signer, nil
}
