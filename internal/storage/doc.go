// Package storage is the blob storage seam under the backup repository:
// a flat namespace of immutable objects. Backends (filesystem, memory, later
// Azure Blob and S3) implement Storage and pass the conformance suite in
// storagetest.
//
// The repository writes every object once under a name derived from its
// content or a fresh ID and never modifies it; it deletes objects only in
// prune. The contract below is what the repository's crash safety rests on.
//
// # The contract, for backend authors
//
// Names. An object name is 1 to MaxNameLen bytes, each a letter a-z or A-Z,
// a digit, '.', '_', '-' or '/'. '/' splits it into segments; no segment is empty (so no leading, trailing or
// double '/'), "." or "..", or longer than MaxSegmentLen bytes. Names are
// case-sensitive. CheckName applies these rules; every method that takes a
// name checks it first and returns an error wrapping ErrInvalidName, without
// touching the store, when it fails. A name is never both an object and a
// directory of another object ("a" and "a/b"); callers do not store both, and
// a backend that keeps segments as directories fails the second Put.
//
// Put reads r to its end and stores exactly size bytes: when r ends early,
// has more than size bytes or fails, Put fails (wrapping r's error). Put is
// atomic and durable: when it returns nil the whole object is visible to
// every later call and survives a crash; when it fails or the process
// crashes, name holds the previous object or none, never a part of one. The
// one exception is a failure after the commit (a lost reply from a remote
// store, a directory fsync that fails after the rename), after which name
// may hold the whole new object. Without IfAbsent, Put replaces an existing
// object atomically; with IfAbsent it fails with ErrAlreadyExists when the
// object exists, and of concurrent IfAbsent Puts of one name exactly one
// succeeds.
//
// Get and GetRange open a reader, or fail with ErrNotFound. A reader reads
// the object as it was when it was opened or fails; it never mixes two
// versions, even if the object is replaced or deleted while it is read. The
// caller closes it. GetRange reads length bytes from offset and fails with
// ErrInvalidRange when offset or length is negative or offset+length exceeds
// the size; an empty range is valid anywhere from 0 to the size.
//
// Stat returns the object's name, size and modification time, or
// ErrNotFound.
//
// List calls fn for every object whose name starts with prefix, in
// ascending byte order of names, with the name and size that Stat returns
// (the modification time may differ in precision). prefix
// is any string, not necessarily a valid name or a whole segment ("data/a"
// matches "data/ab/x" and "data/a1"); a prefix no valid name can start with
// matches nothing. fn runs on the goroutine that called List, one call at a
// time, and may call the Storage (for instance to delete what it is given).
// Objects put or deleted during a listing may or may not be listed, but
// List never shows a partial object. When fn returns an error, List stops
// and returns it.
//
// Delete removes an object durably: when it returns nil, the object is gone
// for every later call and stays gone after a crash. Deleting a missing
// object fails with ErrNotFound.
//
// Context. Every method checks ctx before it changes anything: a call whose
// ctx is already done fails and changes nothing. Put checks ctx while it
// reads r and does not commit once ctx is done; the readers of Get and
// GetRange fail once ctx is done; List stops. The error wraps ctx.Err().
//
// Errors. Backends translate their own conditions into the sentinel errors
// above and wrap them (callers use errors.Is), saying what they were doing and
// with which object: while storing "data/ab/cd": object already exists.
//
// All methods are safe for concurrent use.
//
// The subpackages: storagetest is the conformance suite that checks all of
// the above; fs is the filesystem backend; mem keeps objects in memory, for
// tests; faulty wraps a Storage to inject failures and corruption. A new
// backend wraps Put's reader with internal/readers.Exact, which enforces the
// size, the reader's errors and the context. docs/storage.md says the same
// for readers of the design.
package storage
