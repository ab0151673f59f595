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
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Drivers return these (possibly wrapped) and nothing else for
// the conditions they describe; callers test them with errors.Is.
var (
	// ErrNotFound: the resource, operation or key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a create-only put met an existing resource, or a new
	// operation or job takes an ID or a key already in use.
	ErrAlreadyExists = errors.New("already exists")
	// ErrPreconditionFailed: the ETag given in PutOptions.IfMatch or
	// DeleteOptions.IfMatch does not match the stored one, or an operation or
	// job is not in the state the call requires (already finished, not held
	// by the caller).
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

// Job statuses. A job is created Queued; JobClaim makes it Running; it ends
// Succeeded, Failed or Canceled and never changes again. A Running job whose
// lease expired goes back to Queued (or to Failed) when a worker next calls
// JobClaim.
const (
	JobQueued    = "Queued"
	JobRunning   = "Running"
	JobSucceeded = "Succeeded"
	JobFailed    = "Failed"
	JobCanceled  = "Canceled"
)

// JobErrorWorkerLost is the code of the Error of a job that JobClaim failed
// because the lease of its last worker expired and no attempt was left.
const JobErrorWorkerLost = "WorkerLost"

// Job is a unit of background work (a backup, a restore, ...) kept in the
// store so that workers in one process or in several processes sharing the
// store can take it, and so that it outlives a crash of its worker.
//
// A worker takes a job with JobClaim, which gives it a lease: until
// LeaseExpires the job is the worker's alone. The worker renews the lease with
// JobHeartbeat and ends the job with JobFinish; both fail with
// ErrPreconditionFailed once the job is no longer the worker's, and the
// worker must then stop working on it. A worker that cannot renew its lease
// before LeaseExpires must stop too: from then on another worker may take the
// job over.
type Job struct {
	// ID is chosen by the caller (a UUID), unique, and matched exactly.
	ID string
	// Kind names what the job does, e.g. "backup" or "restore"; workers claim
	// jobs by kind.
	Kind string
	// Subscription the job belongs to; lists match it case-insensitively.
	Subscription string
	// ResourceID is the resource the job acts on (a backup instance ID); lists
	// match it case-insensitively.
	ResourceID string
	// IdempotencyKey, when not empty, is unique over all jobs ever created,
	// whatever their status (JobCreate returns ErrAlreadyExists), e.g.
	// "scheduled:<instance>:<due time>". Keys are compared exactly: build them
	// from case-folded IDs.
	IdempotencyKey string
	// ExclusiveKey, when not empty, is held by at most one Queued or Running
	// job at a time (JobCreate returns ErrAlreadyExists), e.g.
	// "backup:<instance>". A job frees its key when it ends. Keys are compared
	// exactly: build them from case-folded IDs.
	ExclusiveKey string
	// Status is one of the Job* statuses.
	Status string
	// Input is what the job needs (JSON, kind-specific), set at creation.
	Input []byte
	// Progress is the last progress its worker reported (JSON); it is kept
	// when a job is re-queued, so that a new attempt may resume from it.
	Progress []byte
	// Result is the JSON result of a job that ended.
	Result []byte
	// Error is the JSON error of a job that failed.
	Error []byte
	// Attempt counts the claims of the job: 0 until it is first claimed.
	Attempt int
	// MaxAttempts caps the claims: a job whose lease expired is re-queued
	// while Attempt < MaxAttempts, and failed otherwise. 0 means 1.
	MaxAttempts int
	// LeaseOwner is the worker that claimed the job last ("" while the job
	// is Queued) and LeaseExpires the end of its lease. Both stay set once
	// the job ended, as a record of its last worker.
	LeaseOwner   string
	LeaseExpires time.Time
	// Created is set by the caller and orders claims and lists. Started is
	// set by the first claim. Ended is set when the job ends and zero until
	// then.
	Created time.Time
	Started time.Time
	Ended   time.Time
}

// JobListParams selects jobs for JobList. Results are ordered newest first:
// by Created descending, and among jobs created at the same instant by ID
// descending.
type JobListParams struct {
	// Subscription, when not empty, restricts to one subscription
	// (case-insensitively).
	Subscription string
	// ResourceID, when not empty, restricts to the jobs acting on one
	// resource (case-insensitively).
	ResourceID string
	// Kind, when not empty, restricts to one kind (exactly).
	Kind string
	// Statuses, when not empty, restricts to jobs in one of these statuses.
	Statuses []string
	// After, when not empty, is the ID of a job, typically the last of the
	// previous page: only jobs that sort after it are returned (keyset
	// paging on Created and ID). It need not match the other filters.
	// JobList returns ErrNotFound when no job has this ID.
	After string
	// Limit caps the number of results; 0 means no limit.
	Limit int
}

// JobClaimParams are the arguments of JobClaim.
type JobClaimParams struct {
	// Owner names the claiming worker; JobHeartbeat and JobFinish must give
	// the same. It should be unique to each claim (a worker ID plus a fresh
	// suffix): a worker that claims again, under the same Owner, a job whose
	// lease it lost cannot tell its old claim from the new one.
	Owner string
	// Kinds restricts the claim to jobs of these kinds; empty means any kind.
	Kinds []string
	// Lease is how long the job is the Owner's without a heartbeat (> 0).
	Lease time.Duration
	// Now is the current time, by which leases expire. Required.
	Now time.Time
}

// WorkerLostError returns the Error that JobClaim stores on a job it fails
// because the lease of its last worker expired and no attempt was left:
// {"code":"WorkerLost","message":"..."}. Drivers use it so that they all
// write the same document.
func WorkerLostError(j *Job) []byte {
	b, err := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{
		Code: JobErrorWorkerLost,
		Message: fmt.Sprintf("The worker %q running the job stopped renewing its lease, which expired at %s, on attempt %d of %d.",
			j.LeaseOwner, j.LeaseExpires.UTC().Format(time.RFC3339Nano), j.Attempt, max(j.MaxAttempts, 1)),
	})
	if err != nil {
		panic(err) // strings always encode
	}
	return b
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

	// JobCreate stores a new job. j.Status must be JobQueued, with Attempt 0,
	// no LeaseOwner and zero LeaseExpires, Started and Ended (an error
	// otherwise), and j.MaxAttempts must not be negative. It returns
	// ErrAlreadyExists, and stores nothing, when the ID is taken, when another
	// job ever had the IdempotencyKey, or when a Queued or Running job holds
	// the ExclusiveKey; all checks and the insert happen atomically.
	JobCreate(ctx context.Context, j *Job) error
	// JobGet returns a job by ID (exact match) or ErrNotFound.
	JobGet(ctx context.Context, id string) (*Job, error)
	// JobList returns the jobs selected by p, newest first.
	JobList(ctx context.Context, p JobListParams) ([]*Job, error)
	// JobClaim takes a job for p.Owner. Atomically, it first deals with every
	// Running job (of any kind) whose lease expired, that is whose
	// LeaseExpires is not after p.Now: such a job goes back to Queued, its
	// lease cleared, while Attempt < MaxAttempts (0 meaning 1), and is
	// otherwise Failed with Error set to WorkerLostError and Ended to p.Now.
	// It then takes the oldest Queued job (by Created, then ID) of one of
	// p.Kinds: the job becomes Running, Attempt grows by one, LeaseOwner is
	// p.Owner, LeaseExpires p.Now+p.Lease, and Started p.Now if this is the
	// first claim. It returns the claimed job, or ErrNotFound when no job
	// could be claimed (expired leases are dealt with all the same).
	// Expired leases are acted on only here: until some worker calls
	// JobClaim, a job whose lease expired stays Running under its owner.
	JobClaim(ctx context.Context, p JobClaimParams) (*Job, error)
	// JobHeartbeat sets the LeaseExpires of a job Running under owner, and
	// its Progress unless progress is nil. It returns ErrNotFound for an
	// unknown ID and ErrPreconditionFailed when the job is not Running under
	// owner: its lease was lost, and the worker must stop. A lease that
	// expired but that no claim acted on yet can still be renewed.
	JobHeartbeat(ctx context.Context, id, owner string, leaseExpires time.Time, progress []byte) error
	// JobFinish ends a job Running under owner with status (JobSucceeded,
	// JobFailed or JobCanceled; an error otherwise), result, errJSON and
	// ended, and frees its ExclusiveKey. Progress and the lease fields are
	// kept. It returns ErrNotFound for an unknown ID and
	// ErrPreconditionFailed when the job is not Running under owner, so a job
	// is finished at most once and only by the worker that holds it.
	JobFinish(ctx context.Context, id, owner, status string, result, errJSON []byte, ended time.Time) error
	// JobCancel ends a Queued job as Canceled at ended and frees its
	// ExclusiveKey. It returns ErrNotFound for an unknown ID and
	// ErrPreconditionFailed when the job is not Queued (a Running job is
	// its worker's to end).
	JobCancel(ctx context.Context, id string, ended time.Time) error

	// MetaGet returns the value of an installation-wide setting or ErrNotFound.
	MetaGet(ctx context.Context, key string) (string, error)
	// MetaInit sets key to value unless it is already set, and returns the
	// value now stored (so concurrent first starts agree on one value).
	MetaInit(ctx context.Context, key, value string) (string, error)

	// Close releases the store's resources.
	Close() error
}
