package repo

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgvault/pgvault/internal/storage"
)

// lockPayload is the content of a lock object (R34).
type lockPayload struct {
	Version   int       `json:"version"`
	Created   time.Time `json:"created"`
	Refreshed time.Time `json:"refreshed"`
}

// writerLock is a running writer's lock object, refreshed in the background.
type writerLock struct {
	r       *Repo
	name    string
	created time.Time
	stopc   chan struct{}
	done    chan struct{}

	mu         sync.Mutex
	lastOK     time.Time
	longestGap time.Duration // between successful refreshes
	err        error
}

// newLock stores a writer's lock object and starts refreshing it every
// interval.
func (r *Repo) newLock(ctx context.Context, interval time.Duration) (*writerLock, error) {
	l, err := r.takeLock(ctx, locksPrefix+hex.EncodeToString(randomBytes(16)), interval, false)
	if err != nil {
		return nil, fmt.Errorf("while storing the writer lock: %w", err)
	}
	return l, nil
}

// takeLock stores the lock object name (with exclusive, only if it does not
// exist: storage.ErrAlreadyExists otherwise) and starts refreshing it every
// interval.
func (r *Repo) takeLock(ctx context.Context, name string, interval time.Duration, exclusive bool) (*writerLock, error) {
	now := time.Now().UTC()
	l := &writerLock{
		r: r, name: name, created: now,
		stopc: make(chan struct{}), done: make(chan struct{}),
	}
	payload, err := l.payload(now)
	if err != nil {
		return nil, err
	}
	if err := r.st.Put(ctx, name, bytes.NewReader(payload), int64(len(payload)), storage.PutOptions{IfAbsent: exclusive}); err != nil {
		return nil, err
	}
	l.lastOK = now
	go l.refresh(context.WithoutCancel(ctx), interval)
	return l, nil
}

// payload is the sealed lock object as of now.
func (l *writerLock) payload(now time.Time) ([]byte, error) {
	payload, err := json.Marshal(lockPayload{Version: lockVersion, Created: l.created, Refreshed: now})
	if err != nil {
		return nil, err
	}
	return l.r.codec.seal(l.r.keys, ObjectLock, payload), nil
}

func (l *writerLock) put(ctx context.Context, now time.Time) error {
	b, err := l.payload(now)
	if err != nil {
		return err
	}
	return putBytes(ctx, l.r.st, l.name, b, false)
}

func (l *writerLock) refresh(ctx context.Context, interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stopc:
			return
		case <-t.C:
			now := time.Now().UTC()
			l.refreshed(now, l.put(ctx, now))
		}
	}
}

// refreshed records the outcome of a refresh at now.
func (l *writerLock) refreshed(now time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.err = err
		return
	}
	l.longestGap = max(l.longestGap, now.Sub(l.lastOK))
	l.lastOK = now
}

// fresh returns an error when the lock was last refreshed more than margin
// before now, or went that long without a refresh at any time: prune may
// then have considered the writer dead and swept (R34).
func (l *writerLock) fresh(now time.Time, margin time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.longestGap > margin {
		return fmt.Errorf("while committing: the writer lock once went %v without a refresh (%v); prune may have removed data this snapshot relies on", l.longestGap.Round(time.Second), l.err)
	}
	if age := now.Sub(l.lastOK); age > margin {
		return fmt.Errorf("while committing: the writer lock was last refreshed %v ago (%v); prune may have removed data this snapshot relies on", age.Round(time.Second), l.err)
	}
	return nil
}

// release stops refreshing and deletes the lock object.
func (l *writerLock) release(ctx context.Context) error {
	select {
	case <-l.stopc:
		return nil
	default:
	}
	close(l.stopc)
	<-l.done
	if err := l.r.st.Delete(ctx, l.name); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("while deleting the writer lock: %w", err)
	}
	return nil
}

// prunePlan is the content of a prune plan object (R37).
type prunePlan struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Packs   []ID      `json:"packs"`
	// LocksListed says that Locks holds the writer locks present after the
	// plan's packs were first published (the plan is complete); a plan
	// without it is not swept (R37).
	LocksListed bool     `json:"locks_listed,omitempty"`
	Locks       []string `json:"locks,omitempty"`
}

func parsePrunePlan(b []byte) (prunePlan, error) {
	var p prunePlan
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: prune plan does not parse: %v", ErrCorrupt, err)
	}
	if p.Version != planVersion {
		return p, fmt.Errorf("%w: prune plan version %d (this pgvault reads %d)", ErrUnsupportedVersion, p.Version, planVersion)
	}
	return p, nil
}

// prunePlans returns the packs that prune plans name (R35).
func (r *Repo) prunePlans(ctx context.Context) (map[ID]bool, error) {
	packs := make(map[ID]bool)
	err := r.st.List(ctx, prunePrefix, func(i storage.Info) error {
		if _, ok := parseObjectName(prunePrefix, i.Name); !ok {
			return nil
		}
		payload, err := r.readSealed(ctx, i.Name, prunePrefix, ObjectPrunePlan)
		if errors.Is(err, storage.ErrNotFound) {
			return nil // the prune finished meanwhile
		}
		if err != nil {
			return fmt.Errorf("while reading %s: %w", i.Name, err)
		}
		p, err := parsePrunePlan(payload)
		if err != nil {
			return fmt.Errorf("while reading %s: %w", i.Name, err)
		}
		for _, id := range p.Packs {
			packs[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("while reading prune plans: %w", err)
	}
	return packs, nil
}
