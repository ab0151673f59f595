package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/pgvault/pgvault/internal/storage"
)

// Snapshot is a committed snapshot (a recovery point).
type Snapshot struct {
	ID      SnapshotID
	Time    time.Time // when the writer started
	EndTime time.Time // when it committed
	Meta    map[string]string
	Stats   Stats
	tree    []ID
}

// manifest is the payload of a snapshot object (docs/design.md §10).
type manifest struct {
	Version     int               `json:"version"`
	Repository  string            `json:"repository"`
	Time        time.Time         `json:"time"`
	EndTime     time.Time         `json:"end_time"`
	Meta        map[string]string `json:"meta,omitempty"`
	Stats       Stats             `json:"stats"`
	TreeVersion int               `json:"tree_version"`
	Tree        []ID              `json:"tree"`
}

func (m *manifest) snapshot(id ID) *Snapshot {
	return &Snapshot{ID: id, Time: m.Time, EndTime: m.EndTime, Meta: m.Meta, Stats: m.Stats, tree: m.Tree}
}

// Limits of snapshot metadata (R30).
const (
	maxMetaKey   = 256
	maxMetaTotal = 1 << 20
)

func validateMeta(meta map[string]string) error {
	total := 0
	for k, v := range meta {
		if k == "" || len(k) > maxMetaKey {
			return fmt.Errorf("while checking the snapshot metadata: key %q must be 1 to %d bytes", k, maxMetaKey)
		}
		total += len(k) + len(v)
	}
	if total > maxMetaTotal {
		return fmt.Errorf("while checking the snapshot metadata: %d bytes, at most %d", total, maxMetaTotal)
	}
	return nil
}

// parseManifest decodes and checks a manifest payload.
func parseManifest(b []byte, repoID string) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest does not parse: %v", ErrCorrupt, err)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("%w: manifest version %d (this pgvault reads %d)", ErrUnsupportedVersion, m.Version, manifestVersion)
	}
	if m.TreeVersion != treeVersion {
		return nil, fmt.Errorf("%w: tree version %d (this pgvault reads %d)", ErrUnsupportedVersion, m.TreeVersion, treeVersion)
	}
	if m.Repository != repoID {
		return nil, fmt.Errorf("%w: manifest of repository %q", ErrCorrupt, m.Repository)
	}
	if len(m.Tree) == 0 {
		return nil, fmt.Errorf("%w: manifest without a tree", ErrCorrupt)
	}
	if err := validateMeta(m.Meta); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &m, nil
}

// readSnapshot reads and verifies one snapshot manifest.
func (r *Repo) readSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	name := snapshotPrefix + id.String()
	payload, err := r.readSealed(ctx, name, snapshotPrefix, ObjectSnapshot)
	if err != nil {
		return nil, fmt.Errorf("while reading snapshot %s: %w", id, err)
	}
	m, err := parseManifest(payload, r.cfg.ID)
	if err != nil {
		return nil, fmt.Errorf("while reading snapshot %s: %w", id, err)
	}
	return m.snapshot(id), nil
}

// Snapshots lists the repository's snapshots, oldest first. A snapshot
// whose manifest cannot be read is an error (check names it).
func (r *Repo) Snapshots(ctx context.Context) ([]*Snapshot, error) {
	var ids []ID
	err := r.st.List(ctx, snapshotPrefix, func(i storage.Info) error {
		if id, ok := parseObjectName(snapshotPrefix, i.Name); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("while listing snapshots: %w", err)
	}
	out := make([]*Snapshot, 0, len(ids))
	for _, id := range ids {
		s, err := r.readSnapshot(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	return out, nil
}

// Snapshot reads the snapshot with the given ID.
func (r *Repo) Snapshot(ctx context.Context, id SnapshotID) (*Snapshot, error) {
	if _, err := r.st.Stat(ctx, snapshotPrefix+id.String()); err != nil {
		return nil, fmt.Errorf("while looking for snapshot %s: %w", id, errNotFoundOr(err))
	}
	return r.readSnapshot(ctx, id)
}

func errNotFoundOr(err error) error {
	if errorsIsNotFound(err) {
		return ErrNotFound
	}
	return err
}
