package api

import (
	"net/http"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/vault"
)

// validateRestore serves BackupInstances_ValidateForRestore: the body is a
// ValidateRestoreRequestObject wrapping the restore request. 202 with
// Azure-AsyncOperation and Location; the operation checks the vault
// identity's access to the target and that the target is empty.
func (s *Server) validateRestore(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		RestoreRequestObject *vault.RestoreRequest `json:"restoreRequestObject"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if err := s.authorizeNewServer(r, in.RestoreRequestObject); err != nil {
		return err
	}
	return s.instanceOperation(w, r, p, func(sub, rg, v, bi string) (*store.Operation, error) {
		return s.svc.ValidateRestore(r.Context(), sub, rg, v, bi, in.RestoreRequestObject, "restoreRequestObject.")
	})
}

// triggerRestore serves BackupInstances_TriggerRestore: 202 with
// Azure-AsyncOperation and Location; the operation's result is an
// OperationJobExtendedInfo naming the restore job.
func (s *Server) triggerRestore(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in vault.RestoreRequest
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if err := s.authorizeNewServer(r, &in); err != nil {
		return err
	}
	return s.instanceOperation(w, r, p, func(sub, rg, v, bi string) (*store.Operation, error) {
		return s.svc.TriggerRestore(r.Context(), sub, rg, v, bi, &in)
	})
}

// authorizeNewServer checks that a caller restoring as a new server may
// also create that server (Microsoft.DBforPostgreSQL/flexibleServers/write
// on its ID), as creating it through the servers API would need.
func (s *Server) authorizeNewServer(r *http.Request, req *vault.RestoreRequest) error {
	if req == nil || req.RestoreTargetInfo == nil || req.RestoreTargetInfo.DatasourceInfo == nil || req.RestoreTargetInfo.DatasourceInfo.ResourceID == "" {
		return nil
	}
	id := req.RestoreTargetInfo.DatasourceInfo.ResourceID
	if e := vault.ValidateScope(id); e != nil {
		return nil // the service refuses the ID with the right target
	}
	p := caller(r.Context())
	if p == nil {
		return arm.Errorf(http.StatusUnauthorized, "AuthenticationFailed", "The request has no caller.")
	}
	return s.authorizeAction(r, p, "Microsoft.DBforPostgreSQL/flexibleServers/write", id)
}

// instanceOperation starts an operation on a backup instance (on-demand
// backup, restore) and answers 202 with its polling URLs at the vault's
// location.
func (s *Server) instanceOperation(w http.ResponseWriter, r *http.Request, p arm.Params, start func(sub, rg, vault, instance string) (*store.Operation, error)) error {
	sub, rg, vaultName := p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName")
	op, err := start(sub, rg, vaultName, p.Get("backupInstanceName"))
	if err != nil {
		return err
	}
	v, err := s.svc.Vault(r.Context(), sub, rg, vaultName)
	if err != nil {
		return err
	}
	s.startedOperation(w, r, sub, v.Location, op, http.StatusAccepted, nil)
	return nil
}
