package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pgvault/pgvault/internal/repo"
	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/fs"
)

// Repositories opens the backup repository of each vault: a directory per
// vault under a root directory, created on first use, all under one master key.
type Repositories struct {
	dir       string
	masterKey []byte
	wrap      func(vaultID string, st storage.Storage) storage.Storage

	mu    sync.Mutex
	repos map[string]*repo.Repo
}

// RepositoriesOption tunes NewRepositories.
type RepositoriesOption func(*Repositories)

// WithStorageWrapper makes every repository use wrap(vaultID, st) instead
// of its directory's storage st: tests inject storage faults with it
// (internal/storage/faulty). wrap is called once per vault, when its
// repository is first opened.
func WithStorageWrapper(wrap func(vaultID string, st storage.Storage) storage.Storage) RepositoriesOption {
	return func(rs *Repositories) { rs.wrap = wrap }
}

// NewRepositories keeps the vaults' repositories under root, each opened
// with masterKey.
func NewRepositories(root string, masterKey []byte, opts ...RepositoriesOption) *Repositories {
	rs := &Repositories{dir: root, masterKey: masterKey, repos: map[string]*repo.Repo{}}
	for _, o := range opts {
		o(rs)
	}
	return rs
}

// RepositoryPath is the directory of a vault's repository under root (the
// repositories directory of the data directory): <root>/<vault name>-<hash>,
// the name lower-cased and the hash the first 12 hex digits of the SHA-256
// of the lower-cased vault ID. It is stable, free of the characters a vault
// ID may hold, and the same whatever the case of vaultID.
func RepositoryPath(root, vaultID string) string {
	return filepath.Join(root, repositoryDir(vaultID))
}

// repositoryDir names a vault's repository directory.
func repositoryDir(vaultID string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(vaultID)))
	name := strings.ToLower(vaultID[strings.LastIndex(vaultID, "/")+1:])
	return name + "-" + hex.EncodeToString(sum[:6])
}

// Open returns the vault's repository, creating it the first time.
func (rs *Repositories) Open(ctx context.Context, vaultID string) (*repo.Repo, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r, ok := rs.repos[strings.ToLower(vaultID)]; ok {
		return r, nil
	}
	dir, err := fs.Open(RepositoryPath(rs.dir, vaultID))
	if err != nil {
		return nil, fmt.Errorf("while opening the repository storage: %w", err)
	}
	var st storage.Storage = dir
	if rs.wrap != nil {
		st = rs.wrap(vaultID, st)
	}
	r, err := repo.Open(ctx, st, rs.masterKey)
	if errors.Is(err, repo.ErrNoRepository) {
		r, err = repo.Init(ctx, st, rs.masterKey)
	}
	if err != nil {
		return nil, fmt.Errorf("while opening the repository of %s: %w", vaultID, err)
	}
	rs.repos[strings.ToLower(vaultID)] = r
	return r, nil
}
