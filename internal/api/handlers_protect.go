package api

import (
	"net/http"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/vault"
)

// startedOperation answers a request that started a long-running operation:
// status, absolute Azure-AsyncOperation and Location URLs at the
// subscription and location of the resource, Retry-After, and body (if any).
func (s *Server) startedOperation(w http.ResponseWriter, r *http.Request, sub, location string, op *store.Operation, status int, body any) {
	base := arm.BaseURL(r, s.publicURL) + "/subscriptions/" + sub + "/providers/Microsoft.DataProtection/locations"
	v := r.URL.Query().Get("api-version")
	arm.AsyncHeaders(w, arm.OperationURL(base, v, location, "operationStatus", op.ID), arm.OperationURL(base, v, location, "operationResults", op.ID), s.retryAfter)
	if body == nil {
		w.WriteHeader(status)
		return
	}
	arm.WriteJSON(w, status, body)
}

// --- PostgreSQL flexible servers ---

type serverRequest struct {
	Location   string                  `json:"location"`
	Tags       map[string]string       `json:"tags"`
	Properties *vault.ServerProperties `json:"properties"`
}

func (s *Server) putServer(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in serverRequest
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.Properties == nil {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The server needs properties: fullyQualifiedDomainName, administratorLogin and administratorLoginPassword.").WithTarget("properties")
	}
	srv, created, err := s.svc.PutServer(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("serverName"),
		&vault.Server{Location: in.Location, Tags: in.Tags, Properties: *in.Properties}, principal(r))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	arm.WriteJSON(w, status, srv)
	return nil
}

func (s *Server) getServer(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	srv, err := s.svc.Server(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("serverName"))
	return respond(w, srv, err)
}

func (s *Server) deleteServer(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	existed, err := s.svc.DeleteServer(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("serverName"))
	if err != nil {
		return err
	}
	writeDeleted(w, existed)
	return nil
}

func (s *Server) listServers(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	return serveList(s, w, r, func(a string, n int) (vault.Page[*vault.Server], error) {
		return s.svc.ListServers(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), a, n)
	})
}

func (s *Server) ltrPreBackup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		BackupSettings *struct {
			BackupName string `json:"backupName"`
		} `json:"backupSettings"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.BackupSettings == nil {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The request needs backupSettings with a backupName.").WithTarget("backupSettings")
	}
	n, err := s.svc.LtrPreBackup(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("serverName"), in.BackupSettings.BackupName)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"properties": map[string]int{"numberOfContainers": n}})
	return nil
}

// --- backup instances ---

func (s *Server) validateForBackup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		BackupInstance *vault.BackupInstance `json:"backupInstance"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.BackupInstance == nil {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The request needs a backupInstance.").WithTarget("backupInstance")
	}
	sub := p.Get("subscriptionId")
	op, err := s.svc.ValidateForBackup(r.Context(), sub, p.Get("resourceGroupName"), p.Get("vaultName"), *in.BackupInstance)
	if err != nil {
		return err
	}
	v, err := s.svc.Vault(r.Context(), sub, p.Get("resourceGroupName"), p.Get("vaultName"))
	if err != nil {
		return err
	}
	s.startedOperation(w, r, sub, v.Location, op, http.StatusAccepted, nil)
	return nil
}

func (s *Server) putBackupInstance(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		Tags       map[string]string     `json:"tags"`
		Properties *vault.BackupInstance `json:"properties"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.Properties == nil {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The backup instance needs properties (dataSourceInfo, policyInfo, objectType BackupInstance).").WithTarget("properties")
	}
	sub, rg, vaultName := p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName")
	bi, op, err := s.svc.PutBackupInstance(r.Context(), sub, rg, vaultName, p.Get("backupInstanceName"), *in.Properties, in.Tags, principal(r))
	if err != nil {
		return err
	}
	v, err := s.svc.Vault(r.Context(), sub, rg, vaultName)
	if err != nil {
		return err
	}
	s.startedOperation(w, r, sub, v.Location, op, http.StatusCreated, bi)
	return nil
}

func (s *Server) getBackupInstance(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	bi, err := s.svc.BackupInstance(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), p.Get("backupInstanceName"))
	return respond(w, bi, err)
}

func (s *Server) listBackupInstances(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	return serveList(s, w, r, func(a string, n int) (vault.Page[*vault.BackupInstanceResource], error) {
		return s.svc.ListBackupInstances(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), a, n)
	})
}

func (s *Server) deleteBackupInstance(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	sub, rg, vaultName := p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName")
	op, err := s.svc.DeleteBackupInstance(r.Context(), sub, rg, vaultName, p.Get("backupInstanceName"))
	if err != nil {
		return err
	}
	if op == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	v, err := s.svc.Vault(r.Context(), sub, rg, vaultName)
	if err != nil {
		return err
	}
	s.startedOperation(w, r, sub, v.Location, op, http.StatusAccepted, nil)
	return nil
}

// protectionAction serves stopProtection, suspendBackups, resumeProtection
// and resumeBackups.
func (s *Server) protectionAction(action string) func(http.ResponseWriter, *http.Request, arm.Params) error {
	return func(w http.ResponseWriter, r *http.Request, p arm.Params) error {
		err := s.svc.SetProtection(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), p.Get("backupInstanceName"), action)
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
}

func (s *Server) backupInstanceOperationResult(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	op, err := s.operation(r, p)
	if err != nil {
		return err
	}
	switch op.Status {
	case store.OperationInProgress:
		s.accepted(w, r)
		return nil
	case store.OperationSucceeded:
		return s.getBackupInstance(w, r, p)
	}
	return operationError(op)
}
