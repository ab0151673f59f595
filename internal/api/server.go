// Package api serves pgvault's Azure Resource Manager compatible HTTP API. All
// routes are listed in routes.go; handlers decode the wire format, call the
// vault service and encode its answers. They never touch the store.
package api

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/vault"
)

// Config configures a Server. Zero values mean defaults.
type Config struct {
	// Service is the control plane (required).
	Service *vault.Service
	// Logger receives request logs; default discards.
	Logger *slog.Logger
	// PublicURL is the base URL clients use (for absolute links); default:
	// derived from each request's scheme and Host.
	PublicURL string
	// RetryAfter is the Retry-After of accepted long-running operations,
	// rounded to seconds; default 1s, negative for 0 (poll at the client's pace).
	RetryAfter time.Duration
	// PageSize is the number of items per list page; default 100.
	PageSize int
}

// Server is the HTTP API.
type Server struct {
	svc        *vault.Service
	log        *slog.Logger
	publicURL  string
	retryAfter int
	pageSize   int
	router     *arm.Router
}

// New returns a Server.
func New(cfg Config) *Server {
	s := &Server{
		svc:        cfg.Service,
		log:        cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		publicURL:  cfg.PublicURL,
		retryAfter: int(max(cmp.Or(cfg.RetryAfter, time.Second), 0).Round(time.Second) / time.Second),
		pageSize:   cmp.Or(cfg.PageSize, vault.DefaultPageSize),
	}
	s.router = arm.NewRouter(s.routes())
	return s
}

type ctxKey int

const requestIDKey ctxKey = 0

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP sets the request and correlation IDs, routes the request, checks
// the api-version and ARM path parameters, and renders errors.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := arm.NewID()
	corr := r.Header.Get("x-ms-correlation-request-id")
	if corr == "" || len(corr) > 128 {
		corr = rid
	}
	h := w.Header()
	h.Set("x-ms-request-id", rid)
	h.Set("x-ms-correlation-request-id", corr)
	if cid := r.Header.Get("x-ms-client-request-id"); cid != "" && len(cid) <= 128 {
		h.Set("x-ms-client-request-id", cid)
	}
	ctx := context.WithValue(r.Context(), requestIDKey, rid)
	r = r.WithContext(ctx)
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "handler panicked", "request_id", rid, "panic", p, "stack", string(debug.Stack()))
			if rec.status == 0 {
				arm.WriteError(rec, arm.Errorf(http.StatusInternalServerError, "InternalServerError",
					"The server encountered an internal error; quote request ID %s to its operator.", rid))
			}
		}
		s.log.InfoContext(ctx, "request", "method", r.Method, "path", r.URL.EscapedPath(), "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds(), "request_id", rid, "correlation_id", corr)
	}()
	if err := s.serve(rec, r); err != nil {
		e := toARM(ctx, s.log, err)
		if r.Method == http.MethodHead {
			rec.Header().Set("x-ms-error-code", e.Code)
			rec.WriteHeader(e.Status)
			return
		}
		arm.WriteError(rec, e)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	route, params, exists, err := s.router.Match(r.Method, r.URL.EscapedPath())
	switch {
	case err != nil:
		return arm.Errorf(http.StatusBadRequest, "InvalidRequestUri", "The request URI is malformed: %v.", err)
	case route == nil && exists:
		return arm.Errorf(http.StatusMethodNotAllowed, "MethodNotAllowed", "The method '%s' is not allowed on '%s'.", r.Method, r.URL.Path)
	case route == nil:
		return arm.Errorf(http.StatusNotFound, "InvalidResourceType", "No route matches '%s %s'; the resource type or path is not known to pgvault.", r.Method, r.URL.Path)
	}
	if sub := params.Get("subscriptionId"); sub != "" {
		if e := arm.ValidateSubscriptionID(sub); e != nil {
			return e
		}
	}
	if rg := params.Get("resourceGroupName"); rg != "" {
		if e := arm.ValidateResourceGroupName(rg); e != nil {
			return e
		}
	}
	if e := arm.CheckAPIVersion(r, route.Provider); e != nil {
		return e
	}
	return route.Handle(w, r, params)
}
