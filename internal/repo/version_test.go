package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestUnknownVersionsRefused: every versioned structure refuses a version
// it does not know, with an error that says so.
func TestUnknownVersionsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("config", func(t *testing.T) {
		r, st, key := newTestRepo(t)
		cfg := r.cfg
		cfg.Version = 2
		payload, _ := json.Marshal(cfg)
		obj := r.codec.seal(r.keys, ObjectConfig, payload)
		if err := putBytes(ctx, st, configName, obj, false); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, st, key)
		if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "repository format version 2") {
			t.Errorf("Open = %v", err)
		}
	})
	t.Run("config envelope", func(t *testing.T) {
		r, st, key := newTestRepo(t)
		obj, _ := getBytes(ctx, st, configName)
		obj[4] = 9
		putBytes(ctx, st, configName, obj, false)
		_, err := Open(ctx, st, key)
		if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "version 9") {
			t.Errorf("Open = %v", err)
		}
		_ = r
	})
	t.Run("key", func(t *testing.T) {
		_, st, key := newTestRepo(t)
		var names []string
		st.List(ctx, keysPrefix, func(i storageInfo) error { names = append(names, i.Name); return nil })
		obj, _ := getBytes(ctx, st, names[0])
		obj[4] = 2
		st.Delete(ctx, names[0])
		putBytes(ctx, st, keysPrefix+objectID(obj).String(), obj, true)
		_, err := Open(ctx, st, key)
		if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "key object version 2") {
			t.Errorf("Open = %v", err)
		}
	})
	t.Run("manifest", func(t *testing.T) {
		r, _, _ := newTestRepo(t)
		s := writeSnapshot(t, r, WriterOptions{}, []testFile{regular("a", []byte("x"))}, nil)
		m := manifest{Version: 2, Repository: r.cfg.ID, TreeVersion: 1, Tree: s.tree}
		putSealedJSON(t, r, snapshotPrefix, ObjectSnapshot, m)
		_, err := r.Snapshots(ctx)
		if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "manifest version 2") {
			t.Errorf("Snapshots = %v", err)
		}
		rep, err := r.Check(ctx, CheckOptions{})
		if err != nil || rep.OK() || len(rep.DamagedSnapshots) != 1 {
			t.Errorf("Check = %+v, %v", rep, err)
		}
	})
	t.Run("structures", func(t *testing.T) {
		for name, err := range map[string]error{
			"index":      parseIndex(binary.AppendUvarint(nil, 2), func(*indexPack) error { return nil }),
			"prune plan": func() error { _, err := parsePrunePlan([]byte(`{"version":2}`)); return err }(),
			"tree":       func() error { _, err := parseManifest([]byte(`{"version":1,"tree_version":2}`), ""); return err }(),
			"pack": func() error {
				tr := appendTrailer(nil, trailer{headerLen: 100})
				tr[len(tr)-5] = 2
				_, err := parseTrailer(tr, 1000)
				return err
			}(),
		} {
			if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "version 2") {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

func TestSealedObjectTypesDoNotMix(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestRepo(t)
	obj := r.codec.seal(r.keys, ObjectIndex, []byte("payload"))
	if _, err := r.codec.open(r.keys, ObjectSnapshot, obj); !errors.Is(err, ErrCorrupt) {
		t.Errorf("an index opened as a snapshot: %v", err)
	}
	// Even with the type byte rewritten, the key and AAD differ.
	obj[5] = byte(ObjectSnapshot)
	if _, err := r.codec.open(r.keys, ObjectSnapshot, obj); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a retyped index opened as a snapshot: %v", err)
	}
	obj[5] = byte(ObjectIndex)
	if b, err := r.codec.open(r.keys, ObjectIndex, obj); err != nil || !bytes.Equal(b, []byte("payload")) {
		t.Errorf("open = %q, %v", b, err)
	}
}
