package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/vault"
)

// --- PostgreSQL long-term-retention backups ---

// startLtrBackup serves FlexibleServer_StartLtrBackup: 202 with
// Azure-AsyncOperation and Location at the server's location under
// Microsoft.DBforPostgreSQL, and Retry-After. The SAS URIs of the body are
// secrets: they are handed to the service and never echoed.
func (s *Server) startLtrBackup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		BackupSettings *struct {
			BackupName string `json:"backupName"`
		} `json:"backupSettings"`
		TargetDetails *struct {
			SasURIList []string `json:"sasUriList"`
		} `json:"targetDetails"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.BackupSettings == nil {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The request needs backupSettings with a backupName.").WithTarget("backupSettings")
	}
	if in.TargetDetails == nil || in.TargetDetails.SasURIList == nil {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The request needs targetDetails with sasUriList: one container SAS URI per container ltrPreBackup asks for.").WithTarget("targetDetails.sasUriList")
	}
	sub := p.Get("subscriptionId")
	started, err := s.svc.StartLtrBackup(r.Context(), sub, p.Get("resourceGroupName"), p.Get("serverName"),
		in.BackupSettings.BackupName, in.TargetDetails.SasURIList, principal(r))
	if err != nil {
		return err
	}
	base := arm.BaseURL(r, s.publicURL) + "/subscriptions/" + sub + "/providers/Microsoft.DBforPostgreSQL/locations"
	v := r.URL.Query().Get("api-version")
	arm.AsyncHeaders(w, arm.OperationURL(base, v, started.Location, "azureAsyncOperation", started.Operation.ID),
		arm.OperationURL(base, v, started.Location, "operationResults", started.Operation.ID), s.retryAfter)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) getLtrBackupOperation(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	op, err := s.svc.LtrBackupOperation(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("serverName"), p.Get("backupName"))
	return respond(w, op, err)
}

func (s *Server) listLtrBackupOperations(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	return serveList(s, w, r, func(a string, n int) (vault.Page[*vault.LtrBackupOperation], error) {
		return s.svc.ListLtrBackupOperations(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("serverName"), a, n)
	})
}

// ltrOperation loads an LTR backup operation of the request's subscription;
// other operations are not found here (they have their own endpoints).
func (s *Server) ltrOperation(r *http.Request, p arm.Params) (*store.Operation, error) {
	op, err := s.svc.Operation(r.Context(), p.Get("operationId"))
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(op.Subscription, p.Get("subscriptionId")) || !vault.IsLtrOperation(op) {
		return nil, arm.Errorf(http.StatusNotFound, "OperationNotFound", "The operation '%s' was not found.", p.Get("operationId")).WithTarget("operationId")
	}
	return op, nil
}

// ltrOperationScope authorises an LTR operation's status and result on the
// server it backs up.
func (s *Server) ltrOperationScope(r *http.Request, p arm.Params) (string, error) {
	op, err := s.ltrOperation(r, p)
	if err != nil {
		return "", err
	}
	return op.ResourceID, nil
}

// ltrOperationStatus serves the Azure-AsyncOperation URL: the status as
// PostgreSQL's service spells it (InProgress, Succeeded, Failed), with the
// error of a failed backup.
func (s *Server) ltrOperationStatus(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	op, err := s.ltrOperation(r, p)
	if err != nil {
		return err
	}
	status := op.Status
	if status == store.OperationInProgress {
		status = "InProgress"
	}
	res := operationResource{ID: r.URL.Path, Name: op.ID, Status: status, StartTime: op.StartTime, Error: op.Error}
	if op.EndTime.IsZero() {
		w.Header().Set("Retry-After", strconv.Itoa(s.retryAfter))
	} else {
		res.EndTime = &op.EndTime
	}
	arm.WriteJSON(w, http.StatusOK, res)
	return nil
}

// ltrOperationResult serves the Location URL: 202 while the backup runs,
// then 200 with the LtrBackupResponse, or the error of a failed backup.
func (s *Server) ltrOperationResult(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	op, err := s.ltrOperation(r, p)
	if err != nil {
		return err
	}
	switch op.Status {
	case store.OperationInProgress:
		base := arm.BaseURL(r, s.publicURL)
		path, query := r.URL.EscapedPath(), "?"+r.URL.RawQuery
		status := path
		if i := strings.LastIndex(strings.ToLower(path), "/operationresults/"); i >= 0 {
			status = path[:i] + "/azureAsyncOperation/" + path[i+len("/operationresults/"):]
		}
		arm.AsyncHeaders(w, base+status+query, base+path+query, s.retryAfter)
		w.WriteHeader(http.StatusAccepted)
	case store.OperationSucceeded:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(json.RawMessage(op.Result))
	default:
		return operationError(op)
	}
	return nil
}
