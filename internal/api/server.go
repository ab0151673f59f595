// Package api serves pgvault's Azure Resource Manager compatible HTTP API. All
// routes are listed in routes.go; handlers decode the wire format, call the
// vault service and encode its answers. They never touch the store.
package api

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/auth"
	"github.com/pgvault/pgvault/internal/vault"
)

// Authenticator verifies the Authorization header of a request.
type Authenticator interface {
	// Verify returns the caller, or an *auth.Error.
	Verify(ctx context.Context, authorizationHeader string) (*auth.Principal, error)
	// Challenge is the WWW-Authenticate value for a failure.
	Challenge(e *auth.Error) string
}

// Config configures a Server. Zero values mean defaults.
type Config struct {
	// Service is the control plane (required).
	Service *vault.Service
	// Auth verifies bearer tokens (required).
	Auth Authenticator
	// Issuer, when set, is the built-in token issuer served on its own paths.
	Issuer *auth.Issuer
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
	auth       Authenticator
	issuer     *auth.Issuer
	log        *slog.Logger
	publicURL  string
	retryAfter int
	pageSize   int
	router     *arm.Router
}

// New returns a Server. It panics without a Service or an Auth: a server
// that would fail every request is a programming error.
func New(cfg Config) *Server {
	if cfg.Service == nil || cfg.Auth == nil {
		panic("api: Config.Service and Config.Auth are required")
	}
	s := &Server{
		svc:        cfg.Service,
		auth:       cfg.Auth,
		issuer:     cfg.Issuer,
		log:        cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		publicURL:  cfg.PublicURL,
		retryAfter: int(max(cmp.Or(cfg.RetryAfter, time.Second), 0).Round(time.Second) / time.Second),
		pageSize:   cmp.Or(cfg.PageSize, vault.DefaultPageSize),
	}
	s.router = arm.NewRouter(s.routes())
	return s
}

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
)

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// caller is the authenticated principal of a request.
func caller(ctx context.Context) *auth.Principal {
	p, _ := ctx.Value(principalKey).(*auth.Principal)
	return p
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
	var who string
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "handler panicked", "request_id", rid, "panic", p, "stack", string(debug.Stack()))
			if rec.status == 0 {
				arm.WriteError(rec, arm.Errorf(http.StatusInternalServerError, "InternalServerError",
					"The server encountered an internal error; quote request ID %s to its operator.", rid))
			}
		}
		s.log.InfoContext(ctx, "request", "method", r.Method, "path", r.URL.EscapedPath(), "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds(), "request_id", rid, "correlation_id", corr, "principal", who)
	}()
	if err := s.serve(rec, r, &who); err != nil {
		e := toARM(ctx, s.log, err)
		if r.Method == http.MethodHead {
			rec.Header().Set("x-ms-error-code", e.Code)
			rec.WriteHeader(e.Status)
			return
		}
		arm.WriteError(rec, e)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, who *string) error {
	if s.issuer != nil && s.issuer.Owns(r.URL.Path) {
		s.issuer.ServeHTTP(w, r)
		return nil
	}
	route, params, exists, err := s.router.Match(r.Method, r.URL.EscapedPath())
	switch {
	case err != nil:
		return arm.Errorf(http.StatusBadRequest, "InvalidRequestUri", "The request URI is malformed: %v.", err)
	case route == nil && exists:
		return arm.Errorf(http.StatusMethodNotAllowed, "MethodNotAllowed", "The method '%s' is not allowed on '%s'.", r.Method, r.URL.Path)
	case route == nil:
		return arm.Errorf(http.StatusNotFound, "InvalidResourceType", "No route matches '%s %s'; the resource type or path is not known to pgvault.", r.Method, r.URL.Path)
	}
	p, err := s.auth.Verify(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		var ae *auth.Error
		if !errors.As(err, &ae) {
			// An external issuer's keys could not be fetched: not the caller's fault.
			s.log.WarnContext(r.Context(), "token verification unavailable", "request_id", requestID(r.Context()), "err", err)
			return arm.Errorf(http.StatusServiceUnavailable, "AuthenticationUnavailable",
				"The token could not be verified because its issuer's keys are unavailable; retry later.")
		}
		w.Header().Set("WWW-Authenticate", s.auth.Challenge(ae))
		return &arm.Error{Status: http.StatusUnauthorized, Code: ae.Code, Message: ae.Message}
	}
	*who = p.ObjectID
	r = r.WithContext(context.WithValue(r.Context(), principalKey, p))
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
	if err := s.authorize(r, route, params, p); err != nil {
		return err
	}
	return route.Handle(w, r, params)
}

// authorize checks the route's action on its scope for the caller.
func (s *Server) authorize(r *http.Request, route *arm.Route, params arm.Params, p *auth.Principal) error {
	scope := strings.TrimSuffix(r.URL.Path, "/")
	if route.Scope != nil {
		var err error
		if scope, err = route.Scope(r, params); err != nil {
			return err
		}
	}
	return s.authorizeAction(r, p, route.Action, scope)
}

// authorizeAction checks one action on one scope for the caller: 403
// AuthorizationFailed when the caller's roles do not allow it.
func (s *Server) authorizeAction(r *http.Request, p *auth.Principal, action, scope string) error {
	ok, err := s.svc.CheckAccess(r.Context(), p.ObjectID, action, scope)
	if err != nil {
		return err
	}
	if !ok {
		client := p.ClientID
		if client == "" {
			client = p.ObjectID
		}
		return arm.Errorf(http.StatusForbidden, "AuthorizationFailed",
			"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid.",
			client, p.ObjectID, action, scope)
	}
	return nil
}
