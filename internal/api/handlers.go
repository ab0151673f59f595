package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/vault"
)

// listResponse is the wire shape of every list.
type listResponse[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

// after decodes the request's skip token into the store's keyset position.
func after(r *http.Request) (string, error) {
	t := arm.SkipToken(r)
	if t == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return "", arm.Errorf(http.StatusBadRequest, "InvalidSkipToken", "The $skipToken '%s' is invalid; use the nextLink of the previous page as it is.", t).WithTarget("$skipToken")
	}
	return string(b), nil
}

// serveList answers one page of a list: list gets the position after
// which the page starts (from $skipToken) and the page size.
func serveList[T any](s *Server, w http.ResponseWriter, r *http.Request, list func(after string, pageSize int) (vault.Page[T], error)) error {
	a, err := after(r)
	if err != nil {
		return err
	}
	page, err := list(a, s.pageSize)
	if err != nil {
		return err
	}
	return writeList(s, w, r, page)
}

func writeList[T any](s *Server, w http.ResponseWriter, r *http.Request, page vault.Page[T]) error {
	resp := listResponse[T]{Value: page.Items}
	if resp.Value == nil {
		resp.Value = []T{}
	}
	if page.Next != "" {
		resp.NextLink = arm.NextLink(r, s.publicURL, base64.RawURLEncoding.EncodeToString([]byte(page.Next)))
	}
	arm.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// respond answers 200 with v, or returns err.
func respond(w http.ResponseWriter, v any, err error) error {
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, v)
	return nil
}

// writeDeleted answers a delete: 200 when something was deleted, 204 when
// there was nothing to delete.
func writeDeleted(w http.ResponseWriter, existed bool) {
	if existed {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// principal is the authenticated caller, for systemData.
func principal(r *http.Request) vault.Principal {
	p := caller(r.Context())
	if p == nil {
		return vault.Principal{}
	}
	if p.ClientID != "" {
		return vault.Principal{ID: p.ClientID, Type: "Application"}
	}
	return vault.Principal{ID: p.ObjectID, Type: "User"}
}

// --- resource groups ---

func (s *Server) putResourceGroup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in vault.ResourceGroup
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	rg, created, err := s.svc.PutResourceGroup(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), in)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, map[bool]int{true: http.StatusCreated, false: http.StatusOK}[created], rg)
	return nil
}

func (s *Server) getResourceGroup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	rg, err := s.svc.ResourceGroup(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"))
	return respond(w, rg, err)
}

func (s *Server) headResourceGroup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if _, err := s.svc.ResourceGroup(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteResourceGroup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	existed, err := s.svc.DeleteResourceGroup(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"))
	if err != nil {
		return err
	}
	writeDeleted(w, existed)
	return nil
}

func (s *Server) listResourceGroups(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	return serveList(s, w, r, func(a string, n int) (vault.Page[*vault.ResourceGroup], error) {
		return s.svc.ListResourceGroups(r.Context(), p.Get("subscriptionId"), a, n)
	})
}

// --- vaults ---

// vaultRequest is the body of a vault PUT.
type vaultRequest struct {
	Location   string                 `json:"location"`
	Tags       map[string]string      `json:"tags"`
	Identity   *vault.Identity        `json:"identity"`
	Properties *vault.VaultProperties `json:"properties"`
}

func (s *Server) putVault(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in vaultRequest
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.Properties == nil {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The vault needs properties with at least one storage setting.").WithTarget("properties")
	}
	sub := p.Get("subscriptionId")
	v, op, err := s.svc.PutVault(r.Context(), sub, p.Get("resourceGroupName"), p.Get("vaultName"),
		&vault.Vault{Location: in.Location, Tags: in.Tags, Identity: in.Identity, Properties: *in.Properties}, principal(r))
	if err != nil {
		return err
	}
	if op == nil {
		arm.WriteJSON(w, http.StatusOK, v)
		return nil
	}
	base := arm.BaseURL(r, s.publicURL)
	arm.AsyncHeaders(w,
		arm.OperationURL(base+"/subscriptions/"+sub+"/providers/Microsoft.DataProtection/locations", r.URL.Query().Get("api-version"), v.Location, "operationStatus", op.ID),
		arm.OperationURL(base+v.ID+"/operationResults", r.URL.Query().Get("api-version"), op.ID),
		s.retryAfter)
	arm.WriteJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) getVault(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	v, err := s.svc.Vault(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"))
	return respond(w, v, err)
}

func (s *Server) patchVault(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in vault.VaultPatch
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	v, err := s.svc.PatchVault(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), &in, principal(r))
	return respond(w, v, err)
}

func (s *Server) deleteVault(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	existed, err := s.svc.DeleteVault(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"))
	if err != nil {
		return err
	}
	writeDeleted(w, existed)
	return nil
}

func (s *Server) listVaults(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	return serveList(s, w, r, func(a string, n int) (vault.Page[*vault.Vault], error) {
		return s.svc.ListVaults(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), a, n)
	})
}

func (s *Server) checkVaultName(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.Name == "" {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The name to check is required.").WithTarget("name")
	}
	res, err := s.svc.CheckVaultName(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), in.Name, in.Type)
	return respond(w, res, err)
}

// --- policies ---

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		Properties json.RawMessage `json:"properties"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	bp, e := decodePolicy(in.Properties)
	if e != nil {
		return e
	}
	pol, err := s.svc.PutPolicy(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), p.Get("backupPolicyName"), bp, principal(r))
	return respond(w, pol, err)
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	pol, err := s.svc.Policy(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), p.Get("backupPolicyName"))
	return respond(w, pol, err)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	existed, err := s.svc.DeletePolicy(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), p.Get("backupPolicyName"))
	if err != nil {
		return err
	}
	writeDeleted(w, existed)
	return nil
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	return serveList(s, w, r, func(a string, n int) (vault.Page[*vault.Policy], error) {
		return s.svc.ListPolicies(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), a, n)
	})
}

// --- operations ---

// operationResource is the wire shape of an operation status (OperationResource).
type operationResource struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	StartTime  time.Time       `json:"startTime"`
	EndTime    *time.Time      `json:"endTime,omitempty"`
	Error      json.RawMessage `json:"error,omitempty"`
	Properties json.RawMessage `json:"properties,omitempty"`
}

// operation loads an operation of the request's subscription, except the
// PostgreSQL LTR backups, which have their own endpoints (ltrOperation).
func (s *Server) operation(r *http.Request, p arm.Params) (*store.Operation, error) {
	op, err := s.svc.Operation(r.Context(), p.Get("operationId"))
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(op.Subscription, p.Get("subscriptionId")) || vault.IsLtrOperation(op) {
		return nil, arm.Errorf(http.StatusNotFound, "OperationNotFound", "The operation '%s' was not found.", p.Get("operationId")).WithTarget("operationId")
	}
	return op, nil
}

func (s *Server) operationStatus(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	op, err := s.operation(r, p)
	if err != nil {
		return err
	}
	res := operationResource{ID: r.URL.Path, Name: op.ID, Status: op.Status, StartTime: op.StartTime, Error: op.Error, Properties: op.Result}
	if op.EndTime.IsZero() {
		w.Header().Set("Retry-After", strconv.Itoa(s.retryAfter))
	} else {
		res.EndTime = &op.EndTime
	}
	arm.WriteJSON(w, http.StatusOK, res)
	return nil
}

// accepted answers an operationResults request for a running operation:
// 202 pointing at its status and at itself.
func (s *Server) accepted(w http.ResponseWriter, r *http.Request) {
	base := arm.BaseURL(r, s.publicURL)
	query := "?" + r.URL.RawQuery
	arm.AsyncHeaders(w, base+strings.Replace(r.URL.EscapedPath(), "/operationResults/", "/operationStatus/", 1)+query,
		base+r.URL.EscapedPath()+query, s.retryAfter)
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) operationResult(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	op, err := s.operation(r, p)
	if err != nil {
		return err
	}
	switch op.Status {
	case store.OperationInProgress:
		s.accepted(w, r)
	case store.OperationSucceeded:
		result := op.Result
		if len(result) == 0 {
			result = json.RawMessage(`{"objectType":"OperationJobExtendedInfo"}`)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(result)
	default:
		return operationError(op)
	}
	return nil
}

// operationError is the error a failed operation's result URL answers with.
func operationError(op *store.Operation) *arm.Error {
	var e arm.Error
	_ = json.Unmarshal(op.Error, &e)
	e.Status = http.StatusBadRequest
	return &e
}

func (s *Server) vaultOperationResult(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	op, err := s.operation(r, p)
	if err != nil {
		return err
	}
	switch op.Status {
	case store.OperationInProgress:
		s.accepted(w, r)
		return nil
	case store.OperationSucceeded:
		return s.getVault(w, r, p)
	}
	return operationError(op)
}
