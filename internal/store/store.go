// Package store is the metadata seam of pgvault: everything the control plane
// knows (resource groups, vaults, policies, long-running operations, ...) is
// kept behind the Store interface. Drivers live in subpackages (sqlite today,
// postgres later) and every driver runs the conformance suite in storetest.
//
// ARM resources are kept as documents: a few indexed columns (the resource ID,
// its type, its parent, its subscription) plus an opaque JSON body that the
// owning service encodes and decodes. Resource IDs are matched
// case-insensitively, as Azure Resource Manager does, but returned exactly as
// they were first written.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Drivers return these (possibly wrapped) and nothing else for
// the conditions they describe; callers test them with errors.Is.
var (
	// ErrNotFound: the resource, operation or key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a create-only put met an existing resource.
	ErrAlreadyExists = errors.New("already exists")
	// ErrPreconditionFailed: the ETag given in PutOptions.IfMatch or
	// DeleteOptions.IfMatch does not match the stored one.
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrParentNotFound: the resource names a parent that does not exist.
	ErrParentNotFound = errors.New("parent not found")
	// ErrHasChildren: a delete was refused because the resource still has
	// children of a blocking type.
	ErrHasChildren = errors.New("resource has children")
	// ErrReferenced: a delete was refused because another resource refers to it.
	ErrReferenced = errors.New("resource is referenced")
)

// AnyType in DeleteOptions.BlockingChildTypes blocks a delete on a child of any type.
const AnyType = "*"

// Resource is one ARM resource as stored.
type Resource struct {
	// ID is the full ARM resource ID, e.g.
	// /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DataProtection/backupVaults/{name}.
	// Unique case-insensitively; kept with the case of its first write.
	ID string
	// Type is the ARM resource type, e.g. Microsoft.DataProtection/backupVaults.
	Type string
	// Parent is the ID of the enclosing resource ("" for none). A vault's parent
	// is its resource group, a policy's parent is its vault. A put fails with
	// ErrParentNotFound when Parent is set and does not exist; a delete removes
	// all descendants.
	Parent string
	// Subscription is the subscription ID the resource lives in (lists filter on it).
	Subscription string
	// Name is the last segment of ID.
	Name string
	// Refs are IDs of other resources this one depends on (a backup instance
	// refers to its policy and its server). A delete with RefuseIfReferenced
	// fails with ErrReferenced while any resource refers to the target.
	Refs []string
	// Body is the JSON document the owning service stores.
	Body []byte
	// ETag changes on every write; the caller chooses it.
	ETag string
	// Created and Updated are set by the caller.
	Created time.Time
	Updated time.Time
}

// PutOptions are preconditions of ResourcePut. All checks and the write happen
// atomically.
type PutOptions struct {
	// IfMatch, when not empty, requires the stored ETag to equal it
	// (ErrPreconditionFailed otherwise, ErrNotFound when the resource is missing).
	IfMatch string
	// IfNoneMatch requires that the resource does not exist yet (ErrAlreadyExists).
	IfNoneMatch bool
}

// DeleteOptions are preconditions of ResourceDelete, checked atomically with the delete.
type DeleteOptions struct {
	// IfMatch, when not empty, requires the stored ETag to equal it.
	IfMatch string
	// BlockingChildTypes refuses the delete with ErrHasChildren while a direct
	// child of one of these types exists; AnyType blocks on any child.
	// Children of other types are deleted with the resource.
	BlockingChildTypes []string
	// RefuseIfReferenced refuses the delete with ErrReferenced while another
	// resource lists this one (or one of its descendants) in its Refs.
	RefuseIfReferenced bool
}

// ListParams selects resources for ResourceList. Results are ordered by
// lower-cased ID, ascending.
type ListParams struct {
	// Type is required.
	Type string
	// Subscription, when not empty, restricts to one subscription.
	Subscription string
	// Parent, when not empty, restricts to the direct children of one resource.
	Parent string
	// RefersTo, when not empty, restricts to resources whose Refs contain it.
	RefersTo string
	// After, when not empty, returns only resources whose lower-cased ID sorts
	// after the lower-cased After (keyset paging).
	After string
	// Limit caps the number of results; 0 means no limit.
	Limit int
}

// Operation statuses, as ARM's operation status resource spells them.
const (
	OperationInProgress = "Inprogress"
	OperationSucceeded  = "Succeeded"
	OperationFailed     = "Failed"
	OperationCanceled   = "Canceled"
)

// Operation is a long-running operation as served by the operationStatus and
// operationResults endpoints. It is persisted so that its status survives a
// restart.
type Operation struct {
	// ID is an opaque URL-safe token, unique.
	ID string
	// Subscription the operation belongs to.
	Subscription string
	// Kind names what the operation does, e.g. "vault.provision"; the service
	// that created it uses Kind to resume it after a restart.
	Kind string
	// ResourceID is the resource the operation acts on.
	ResourceID string
	// Status is one of the Operation* constants.
	Status string
	// Input is what the operation needs to run or resume (JSON, kind-specific).
	Input []byte
	// Result is the JSON result served once the operation succeeded.
	Result []byte
	// Error is the JSON error served once the operation failed.
	Error     []byte
	StartTime time.Time
	// EndTime is zero while the operation runs.
	EndTime time.Time
}

// Store is the metadata seam. All methods are safe for concurrent use and
// honour ctx. Implementations must pass storetest.Run.
type Store interface {
	// ResourcePut creates or replaces a resource (matched by ID,
	// case-insensitively; the stored ID keeps the case of the first write).
	ResourcePut(ctx context.Context, r *Resource, opts PutOptions) error
	// ResourceGet returns a resource by ID (case-insensitive) or ErrNotFound.
	ResourceGet(ctx context.Context, id string) (*Resource, error)
	// ResourceList returns resources selected by p.
	ResourceList(ctx context.Context, p ListParams) ([]*Resource, error)
	// ResourceDelete deletes a resource and all its descendants, or returns
	// ErrNotFound, ErrPreconditionFailed, ErrHasChildren or ErrReferenced.
	ResourceDelete(ctx context.Context, id string, opts DeleteOptions) error

	// OperationCreate stores a new operation; ErrAlreadyExists if the ID is taken.
	OperationCreate(ctx context.Context, op *Operation) error
	// OperationGet returns an operation by ID (exact match) or ErrNotFound.
	OperationGet(ctx context.Context, id string) (*Operation, error)
	// OperationFinish sets a running operation's Status, Result, Error and
	// EndTime. It returns ErrNotFound for an unknown ID and
	// ErrPreconditionFailed when the operation is no longer InProgress, so an
	// operation finishes exactly once.
	OperationFinish(ctx context.Context, op *Operation) error
	// OperationListInProgress returns the operations still InProgress, oldest first.
	OperationListInProgress(ctx context.Context) ([]*Operation, error)

	// MetaGet returns the value of an installation-wide setting or ErrNotFound.
	MetaGet(ctx context.Context, key string) (string, error)
	// MetaInit sets key to value unless it is already set, and returns the
	// value now stored (so concurrent first starts agree on one value).
	MetaInit(ctx context.Context, key, value string) (string, error)

	// Close releases the store's resources.
	Close() error
}
