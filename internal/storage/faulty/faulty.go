// Package faulty wraps a storage.Storage to inject failures and corruption,
// for tests of how the repository copes with them: a failed upload, an upload
// cut off halfway, a reply lost after the store acted, a read error, bits
// flipped on the way out, a prune that dies after its third Delete.
//
//	f := faulty.Wrap(mem.New())
//	// The third Put of a pack fails; the ones before and after pass.
//	f.Inject(faulty.Fault{Op: faulty.OpPut, Match: faulty.Prefix("data/"), After: 2})
//	// Every read of the config returns flipped bits.
//	f.Inject(faulty.Fault{Op: faulty.OpGet, Match: faulty.Prefix("config"), Times: faulty.Forever,
//		Corrupt: func(b []byte) []byte { b[0] ^= 1; return b }})
//
// Calls pass through to the wrapped storage until a fault is due. To end all
// faults (say, after a simulated crash), wrap the inner storage anew.
package faulty

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/pgvault/pgvault/internal/storage"
	"github.com/pgvault/pgvault/internal/storage/internal/readers"
)

// Op names a method of storage.Storage.
type Op int

// The methods a Fault can apply to.
const (
	OpPut Op = iota
	OpGet
	OpGetRange
	OpStat
	OpList
	OpDelete
	numOps
)

// String returns the method's name.
func (o Op) String() string {
	switch o {
	case OpPut:
		return "Put"
	case OpGet:
		return "Get"
	case OpGetRange:
		return "GetRange"
	case OpStat:
		return "Stat"
	case OpList:
		return "List"
	case OpDelete:
		return "Delete"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Forever, as Fault.Times, makes a fault fail every selected call once it
// is due.
const Forever = -1

// ErrInjected is the error of a Fault that has no Err.
var ErrInjected = errors.New("injected fault")

// Fault says which calls to change and how. By default a due fault makes
// the call fail with Err without calling the wrapped storage; Midway, Lost
// and Corrupt pass the call on and change what happens to it.
type Fault struct {
	// Op is the method the fault applies to.
	Op Op
	// Match selects calls by object name (for OpList, by prefix); nil
	// selects all calls of Op. It runs under Faulty's lock and must not
	// call Faulty.
	Match func(name string) bool
	// After is how many selected calls pass before the fault is due.
	After int
	// Times is how many selected calls the fault changes once it is due:
	// 0 means one, Forever means all.
	Times int
	// Err is the error the changed calls fail with (wrapped, so callers use
	// errors.Is); nil means ErrInjected.
	Err error

	// Midway (OpPut, OpGet, OpGetRange) cuts the data in half, as a
	// connection that drops would: Put passes the wrapped storage a reader
	// that delivers the first half of the data and then fails with Err, so
	// the wrapped storage must fail and store nothing; Get and GetRange
	// return a reader that delivers the first half of the object and then
	// fails with Err.
	Midway bool
	// Lost (all methods) passes the call on and, if it succeeds, replaces
	// its result with Err, as a reply lost after the store acted would: the
	// object is stored or deleted, but the caller sees a failure.
	Lost bool
	// Corrupt (OpGet, OpGetRange) passes the call on and returns what
	// Corrupt makes of the data read, for testing verification. Corrupt
	// gets its own copy and may change it, shorten it or lengthen it; Err
	// is not used.
	Corrupt func([]byte) []byte
}

// Prefix returns a Fault.Match that selects the names that start with
// prefix.
func Prefix(prefix string) func(name string) bool {
	return func(name string) bool { return strings.HasPrefix(name, prefix) }
}

// Calls counts the calls a Faulty received, whether they failed or not.
type Calls struct {
	Put, Get, GetRange, Stat, List, Delete int
	// Faults is how many calls a fault changed.
	Faults int
}

// Faulty is a storage.Storage that passes calls to another one and changes
// those that its faults select. It is safe for concurrent use.
type Faulty struct {
	inner storage.Storage

	mu     sync.Mutex
	faults []*fault
	calls  [numOps]int
	fired  int
}

// fault is an injected Fault and its counters.
type fault struct {
	Fault
	seen    int // selected calls
	changed int // calls changed
}

var _ storage.Storage = (*Faulty)(nil)

// Wrap returns a Faulty that passes every call to inner until faults are
// injected.
func Wrap(inner storage.Storage) *Faulty {
	return &Faulty{inner: inner}
}

// Inject adds a fault. Faults are checked in the order they were added;
// every selected call counts towards the After of each fault that selects
// it, and the first fault that is due changes the call. Inject panics if the
// fault asks for a mode its Op does not have.
func (f *Faulty) Inject(flt Fault) {
	switch {
	case flt.Op < 0 || flt.Op >= numOps:
		panic(fmt.Sprintf("faulty: unknown %v", flt.Op))
	case flt.After < 0 || flt.Times < Forever:
		panic(fmt.Sprintf("faulty: After %d and Times %d", flt.After, flt.Times))
	case btoi(flt.Midway)+btoi(flt.Lost)+btoi(flt.Corrupt != nil) > 1:
		panic("faulty: a Fault has at most one of Midway, Lost and Corrupt")
	case flt.Midway && flt.Op != OpPut && flt.Op != OpGet && flt.Op != OpGetRange:
		panic(fmt.Sprintf("faulty: Midway does not apply to %v", flt.Op))
	case flt.Corrupt != nil && flt.Op != OpGet && flt.Op != OpGetRange:
		panic(fmt.Sprintf("faulty: Corrupt does not apply to %v", flt.Op))
	}
	if flt.Err == nil {
		flt.Err = ErrInjected
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &fault{Fault: flt})
}

// Calls returns how many calls f received so far.
func (f *Faulty) Calls() Calls {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Calls{
		Put: f.calls[OpPut], Get: f.calls[OpGet], GetRange: f.calls[OpGetRange],
		Stat: f.calls[OpStat], List: f.calls[OpList], Delete: f.calls[OpDelete],
		Faults: f.fired,
	}
}

// due counts a call and returns the fault that changes it, or nil.
func (f *Faulty) due(op Op, name string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	var due *fault
	for _, flt := range f.faults {
		if flt.Op != op || flt.Match != nil && !flt.Match(name) {
			continue
		}
		flt.seen++
		if due != nil || flt.seen <= flt.After || flt.Times != Forever && flt.changed >= max(flt.Times, 1) {
			continue
		}
		flt.changed++
		due = flt
	}
	if due == nil {
		return nil
	}
	f.fired++
	return &due.Fault
}

// Put implements storage.Storage.
func (f *Faulty) Put(ctx context.Context, name string, r io.Reader, size int64, opts storage.PutOptions) error {
	flt := f.due(OpPut, name)
	switch {
	case flt == nil:
		return f.inner.Put(ctx, name, r, size, opts)
	case flt.Midway:
		half := io.MultiReader(io.LimitReader(r, max(size, 0)/2), errReader{flt.Err})
		err := f.inner.Put(ctx, name, half, size, opts)
		if err == nil {
			return fmt.Errorf("while storing %q: the storage accepted data cut off after half of %d bytes", name, size)
		}
		return err
	case flt.Lost:
		if err := f.inner.Put(ctx, name, r, size, opts); err != nil {
			return err
		}
	}
	return fmt.Errorf("while storing %q: %w", name, flt.Err)
}

// Get implements storage.Storage.
func (f *Faulty) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	flt := f.due(OpGet, name)
	if flt == nil {
		return f.inner.Get(ctx, name)
	}
	return f.read(ctx, flt, name, func() (io.ReadCloser, error) { return f.inner.Get(ctx, name) })
}

// GetRange implements storage.Storage.
func (f *Faulty) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	flt := f.due(OpGetRange, name)
	if flt == nil {
		return f.inner.GetRange(ctx, name, offset, length)
	}
	return f.read(ctx, flt, name, func() (io.ReadCloser, error) { return f.inner.GetRange(ctx, name, offset, length) })
}

// read applies flt to a Get or GetRange that open passes on.
func (f *Faulty) read(ctx context.Context, flt *Fault, name string, open func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	if !flt.Midway && !flt.Lost && flt.Corrupt == nil {
		return nil, fmt.Errorf("while reading %q: %w", name, flt.Err)
	}
	rc, err := open()
	if err != nil {
		return nil, err
	}
	if flt.Lost {
		rc.Close() // its error does not matter: the call fails anyway
		return nil, fmt.Errorf("while reading %q: %w", name, flt.Err)
	}
	data, err := io.ReadAll(rc)
	rc.Close() // fully read; io.ReadAll reported what matters
	if err != nil {
		return nil, fmt.Errorf("while reading %q: %w", name, err)
	}
	var r io.Reader
	if flt.Midway {
		r = io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{fmt.Errorf("while reading %q: %w", name, flt.Err)})
	} else {
		r = bytes.NewReader(flt.Corrupt(data))
	}
	return readers.WithContext(ctx, io.NopCloser(r)), nil
}

// Stat implements storage.Storage.
func (f *Faulty) Stat(ctx context.Context, name string) (storage.Info, error) {
	flt := f.due(OpStat, name)
	if flt == nil {
		return f.inner.Stat(ctx, name)
	}
	if flt.Lost {
		if _, err := f.inner.Stat(ctx, name); err != nil {
			return storage.Info{}, err
		}
	}
	return storage.Info{}, fmt.Errorf("while describing %q: %w", name, flt.Err)
}

// List implements storage.Storage. Faults select its calls by prefix.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	flt := f.due(OpList, prefix)
	if flt == nil {
		return f.inner.List(ctx, prefix, fn)
	}
	if flt.Lost {
		if err := f.inner.List(ctx, prefix, fn); err != nil {
			return err
		}
	}
	return fmt.Errorf("while listing %q: %w", prefix, flt.Err)
}

// Delete implements storage.Storage.
func (f *Faulty) Delete(ctx context.Context, name string) error {
	flt := f.due(OpDelete, name)
	if flt == nil {
		return f.inner.Delete(ctx, name)
	}
	if flt.Lost {
		if err := f.inner.Delete(ctx, name); err != nil {
			return err
		}
	}
	return fmt.Errorf("while deleting %q: %w", name, flt.Err)
}

// errReader is a reader that fails with err.
type errReader struct{ err error }

// Read implements io.Reader.
func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
