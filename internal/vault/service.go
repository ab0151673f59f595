// Package vault is pgvault's control plane: resource groups, backup vaults,
// backup policies and long-running operations. It validates requests and
// records state in the metadata store; it never moves backup data.
package vault

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/pgvault/pgvault/internal/secretbox"
	"github.com/pgvault/pgvault/internal/store"
)

// Config configures a Service. The zero value of each field means its default.
type Config struct {
	// Store is the metadata store (required).
	Store store.Store
	// Logger receives operational logs; default discards.
	Logger *slog.Logger
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// TenantID is the tenant of vault identities; default: a tenant ID
	// generated once per installation and kept in the store.
	TenantID string
	// Secrets encrypts the database passwords of registered servers; its key
	// lives outside the store. Required to register servers.
	Secrets *secretbox.Box
	// JobQueued, when set, is called after a job was queued (to wake workers).
	JobQueued func()
	// LocalTargetDirs are the directories (absolute, existing) inside which
	// a long-term-retention backup may be written through a file:// URL
	// (pgvault's extension of startLtrBackup); none by default.
	LocalTargetDirs []string
	// RestoreDirs are the directories (absolute, existing) inside which a
	// restore may write files through a file:// URL, or a new server's
	// data directory (pgvault's extensions of restore); none by default.
	RestoreDirs []string
}

// Service implements the control-plane operations.
type Service struct {
	store     store.Store
	secrets   *secretbox.Box
	jobQueued func()
	localDirs []string
	// restoreDirs are Config.RestoreDirs.
	restoreDirs []string
	log         *slog.Logger
	now         func() time.Time
	tenantID    string

	// runners resume operations by kind after a restart.
	runners map[string]func(ctx context.Context, op *store.Operation) (result any, err error)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

const metaTenantID = "tenant_id"

// New returns a Service. It reads (or initialises) the installation's tenant ID.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("vault: Config.Store is required")
	}
	s := &Service{
		store:     cfg.Store,
		secrets:   cfg.Secrets,
		jobQueued: cfg.JobQueued,
		log:       cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		now:       cfg.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if s.localDirs, err = checkLocalDirs(cfg.LocalTargetDirs); err != nil {
		return nil, err
	}
	if s.restoreDirs, err = checkLocalDirs(cfg.RestoreDirs); err != nil {
		return nil, err
	}
	tenant, err := s.store.MetaInit(ctx, metaTenantID, cmp.Or(cfg.TenantID, newUUID()))
	if err != nil {
		return nil, fmt.Errorf("while initialising the tenant ID: %w", err)
	}
	s.tenantID = cmp.Or(cfg.TenantID, tenant)
	s.runners = map[string]func(context.Context, *store.Operation) (any, error){
		opVaultProvision:    s.runVaultProvision,
		opValidateForBackup: s.runValidateForBackup,
		opConfigure:         s.runConfigure,
		opDeleteInstance:    s.runDeleteInstance,
		opAdhocBackup:       s.runAdhocBackup,
		opLtrBackup:         s.runLtrBackup,
		opValidateRestore:   s.runValidateRestore,
		opTriggerRestore:    s.runTriggerRestore,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// TenantID is the tenant that vault identities belong to.
func (s *Service) TenantID() string { return s.tenantID }

// Start resumes the operations a previous process left in progress.
func (s *Service) Start(ctx context.Context) error {
	ops, err := s.store.OperationListInProgress(ctx)
	if err != nil {
		return fmt.Errorf("while listing unfinished operations: %w", err)
	}
	for _, op := range ops {
		s.log.Info("resuming operation", "operation", op.ID, "kind", op.Kind, "resource", op.ResourceID)
		s.launch(op)
	}
	return nil
}

// Close stops background work and waits for it.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

func (s *Service) nowUTC() time.Time { return s.now().UTC() }

// Operation returns a long-running operation by ID.
func (s *Service) Operation(ctx context.Context, id string) (*store.Operation, error) {
	op, err := s.store.OperationGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(KindNotFound, "OperationNotFound", "operationId", "The operation '%s' was not found.", id)
	}
	if err != nil {
		return nil, fmt.Errorf("while reading operation %q: %w", id, err)
	}
	return op, nil
}

// startOperation records a new in-progress operation and runs it in the background.
func (s *Service) startOperation(ctx context.Context, sub, kind, resourceID string, input any) (*store.Operation, error) {
	in, err := json.Marshal(input)
	if err != nil {
		return nil, fmt.Errorf("while encoding operation input: %w", err)
	}
	op := &store.Operation{
		ID:           newOperationID(),
		Subscription: sub,
		Kind:         kind,
		ResourceID:   resourceID,
		Status:       store.OperationInProgress,
		Input:        in,
		StartTime:    s.nowUTC(),
	}
	if err := s.store.OperationCreate(ctx, op); err != nil {
		return nil, fmt.Errorf("while recording operation: %w", err)
	}
	s.launch(op)
	return op, nil
}

func (s *Service) launch(op *store.Operation) {
	run, ok := s.runners[op.Kind]
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var result any
		var err error
		if ok {
			result, err = run(s.ctx, op)
		} else {
			err = fmt.Errorf("unknown operation kind %q", op.Kind)
		}
		if s.ctx.Err() != nil {
			return // shutting down: the next Start resumes it
		}
		s.finishOperation(op, result, err)
	}()
}

func (s *Service) finishOperation(op *store.Operation, result any, runErr error) {
	done := *op
	done.EndTime = s.nowUTC()
	done.Status = store.OperationSucceeded
	if runErr != nil {
		done.Status = store.OperationFailed
		e, ok := AsError(runErr)
		if !ok {
			s.log.Error("operation failed", "operation", op.ID, "kind", op.Kind, "err", runErr)
			e = newError(KindInternal, "InternalError", "", "The operation failed because of an internal error; see the server log for operation %s.", op.ID)
		}
		done.Error, _ = json.Marshal(e.wire())
	} else if result != nil {
		done.Result, _ = json.Marshal(result)
	}
	if err := s.store.OperationFinish(context.Background(), &done); err != nil {
		s.log.Error("recording the end of an operation failed", "operation", op.ID, "err", err)
	}
}

// wireError is the JSON shape of an operation's error.
type wireError struct {
	Code           string       `json:"code"`
	Message        string       `json:"message"`
	Target         string       `json:"target,omitempty"`
	Details        []*wireError `json:"details,omitempty"`
	AdditionalInfo []wireInfo   `json:"additionalInfo,omitempty"`
}

type wireInfo struct {
	Type string `json:"type"`
	Info any    `json:"info,omitempty"`
}

func (e *Error) wire() *wireError {
	w := &wireError{Code: e.Code, Message: e.Message, Target: e.Target}
	for _, d := range e.Details {
		w.Details = append(w.Details, d.wire())
	}
	for _, i := range e.Info {
		w.AdditionalInfo = append(w.AdditionalInfo, wireInfo(i))
	}
	return w
}

func newOperationID() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newUUID() string { return uuid.NewString() }

func newETag() string { return newUUID() }

// storeErr translates store sentinels that reach a caller unexpectedly.
func storeErr(what string, err error) error {
	return fmt.Errorf("while %s: %w", what, err)
}

// Page is one page of a list, with the key to continue after it ("" at the end).
type Page[T any] struct {
	Items []T
	Next  string
}

// DefaultPageSize is the number of items in one page of a list.
const DefaultPageSize = 100

func listPage[T any](ctx context.Context, st store.Store, p store.ListParams, pageSize int, decode func(*store.Resource) (T, error)) (Page[T], error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	p.Limit = pageSize + 1
	rs, err := st.ResourceList(ctx, p)
	if err != nil {
		return Page[T]{}, storeErr("listing "+p.Type, err)
	}
	var page Page[T]
	if len(rs) > pageSize {
		rs = rs[:pageSize]
		page.Next = strings.ToLower(rs[pageSize-1].ID)
	}
	for _, r := range rs {
		v, err := decode(r)
		if err != nil {
			return Page[T]{}, err
		}
		page.Items = append(page.Items, v)
	}
	return page, nil
}
