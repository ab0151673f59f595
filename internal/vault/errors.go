package vault

import (
	"errors"
	"fmt"
)

// Kind classifies a service error; internal/api maps each kind to an HTTP
// status in one table.
type Kind int

// Error kinds.
const (
	// KindInternal: a fault of pgvault or its store; details are logged, not shown.
	KindInternal Kind = iota
	// KindInvalid: the request is malformed or breaks a rule (400).
	KindInvalid
	// KindNotFound: the resource or one it needs does not exist (404).
	KindNotFound
	// KindConflict: the request conflicts with the current state (409).
	KindConflict
	// KindPreconditionFailed: an If-Match precondition does not hold (412).
	KindPreconditionFailed
)

// Error is an error a client can act on: it carries an ARM error code, a
// message and the target (the JSON path or parameter at fault).
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Target  string
	// Details lists further errors (e.g. several broken policy rules).
	Details []*Error
	// Info is extra structured information (ARM additionalInfo), or nil.
	Info []Info
	// Err is the underlying cause, for errors.Is/As and logs.
	Err error
}

// Info is one typed entry of additional error information.
type Info struct {
	Type string
	Info any
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Target != "" {
		s += " (target " + e.Target + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func newError(kind Kind, code, target, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Target: target, Message: fmt.Sprintf(format, args...)}
}

func invalid(code, target, format string, args ...any) *Error {
	return newError(KindInvalid, code, target, format, args...)
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
