package api

import (
	"net/http"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/vault"
)

func (s *Server) adhocBackup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		BackupRuleOptions *struct {
			RuleName      string `json:"ruleName"`
			TriggerOption *struct {
				RetentionTagOverride string `json:"retentionTagOverride"`
			} `json:"triggerOption"`
		} `json:"backupRuleOptions"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.BackupRuleOptions == nil {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The request needs backupRuleOptions with ruleName and triggerOption.").WithTarget("backupRuleOptions")
	}
	tag := ""
	if in.BackupRuleOptions.TriggerOption != nil {
		tag = in.BackupRuleOptions.TriggerOption.RetentionTagOverride
	}
	return s.instanceOperation(w, r, p, func(sub, rg, v, bi string) (*store.Operation, error) {
		return s.svc.AdhocBackup(r.Context(), sub, rg, v, bi, in.BackupRuleOptions.RuleName, tag)
	})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	j, err := s.svc.Job(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), p.Get("jobId"))
	return respond(w, j, err)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	return serveList(s, w, r, func(a string, n int) (vault.Page[*vault.JobResource], error) {
		return s.svc.ListJobs(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), a, n)
	})
}

func (s *Server) getRecoveryPoint(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	rp, err := s.svc.RecoveryPoint(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), p.Get("backupInstanceName"), p.Get("recoveryPointId"))
	return respond(w, rp, err)
}

func (s *Server) listRecoveryPoints(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	return serveList(s, w, r, func(a string, n int) (vault.Page[*vault.RecoveryPointResource], error) {
		return s.svc.ListRecoveryPoints(r.Context(), p.Get("subscriptionId"), p.Get("resourceGroupName"), p.Get("vaultName"), p.Get("backupInstanceName"), r.URL.Query().Get("$filter"), a, n)
	})
}
