package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors; backends translate their own errors into these.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrAlreadyExists: PutOptions.IfAbsent and the object exists.
	ErrAlreadyExists = errors.New("object already exists")
	// ErrInvalidName: the name breaks the naming rules.
	ErrInvalidName = errors.New("invalid object name")
	// ErrInvalidRange: GetRange was asked for bytes outside the object.
	ErrInvalidRange = errors.New("range outside the object")
)

// Info describes an object.
type Info struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// PutOptions modify Put.
type PutOptions struct {
	// IfAbsent makes Put fail with ErrAlreadyExists when the object exists
	// (atomically: of two concurrent IfAbsent puts, exactly one succeeds).
	IfAbsent bool
}

// Storage is a flat store of immutable objects. Names are 1 to 1024 bytes of
// [a-zA-Z0-9._/-], do not start or end with '/', and contain no empty or
// "."/".." segments ('/' separates segments the way directories would);
// segments are at most 255 bytes (CheckName applies these rules). A name is
// never both an object and a directory of another object ("a" and "a/b"):
// callers do not store both, and backends that map segments to directories
// fail the second Put.
// All methods are safe for concurrent use and honour ctx.
type Storage interface {
	// Put stores an object of exactly size bytes read from r; it reads r to
	// its end and fails if r holds fewer or more bytes. It is atomic: after it
	// returns nil the whole object is durable and visible; after an error (or
	// a crash) name holds the previous object or none, never a partial one,
	// unless the error came after the new object was committed (a lost
	// reply), in which case it holds the whole new object. Without IfAbsent
	// an existing object is replaced (atomically).
	Put(ctx context.Context, name string, r io.Reader, size int64, opts PutOptions) error
	// Get opens an object for reading, or returns ErrNotFound.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// GetRange opens length bytes of an object from offset; it returns
	// ErrInvalidRange if the range lies outside the object (an empty range
	// at the end of the object lies inside it).
	GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	// Stat describes an object, or returns ErrNotFound.
	Stat(ctx context.Context, name string) (Info, error)
	// List calls fn for every object whose name starts with prefix, in
	// lexical order of names; fn's error stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Delete removes an object; after it returns nil the removal is durable.
	// Deleting a missing object returns ErrNotFound.
	Delete(ctx context.Context, name string) error
}
