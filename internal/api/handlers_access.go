package api

import (
	"net/http"

	"github.com/pgvault/pgvault/internal/api/arm"
	"github.com/pgvault/pgvault/internal/vault"
)

// operationScope authorises an operation's status and result on the
// resource it acts on, so whoever may read the resource may poll it.
func (s *Server) operationScope(r *http.Request, p arm.Params) (string, error) {
	op, err := s.operation(r, p)
	if err != nil {
		return "", err
	}
	return op.ResourceID, nil
}

// --- role assignments ---

func (s *Server) putRoleAssignment(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		Properties *vault.RoleAssignmentProperties `json:"properties"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.Properties == nil {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty", "The role assignment needs properties with roleDefinitionId and principalId.").WithTarget("properties")
	}
	ra, created, err := s.svc.PutRoleAssignment(r.Context(), p.Get("scope"), p.Get("roleAssignmentName"), *in.Properties, principal(r))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	arm.WriteJSON(w, status, ra)
	return nil
}

func (s *Server) getRoleAssignment(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ra, err := s.svc.RoleAssignment(r.Context(), p.Get("scope"), p.Get("roleAssignmentName"))
	return respond(w, ra, err)
}

func (s *Server) deleteRoleAssignment(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ra, err := s.svc.DeleteRoleAssignment(r.Context(), p.Get("scope"), p.Get("roleAssignmentName"))
	if err != nil {
		return err
	}
	if ra == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	arm.WriteJSON(w, http.StatusOK, ra)
	return nil
}

func (s *Server) listRoleAssignments(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	as, err := s.svc.ListRoleAssignments(r.Context(), p.Get("scope"), r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	return writeList(s, w, r, vault.Page[*vault.RoleAssignment]{Items: as})
}

// --- role definitions ---

func (s *Server) getRoleDefinition(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	rd, err := s.svc.RoleDefinition(p.Get("scope"), p.Get("roleDefinitionId"))
	return respond(w, rd, err)
}

func (s *Server) listRoleDefinitions(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	rds, err := s.svc.ListRoleDefinitions(p.Get("scope"), r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	return writeList(s, w, r, vault.Page[*vault.RoleDefinition]{Items: rds})
}

// --- service principals ---

func (s *Server) putServicePrincipal(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		Properties *struct {
			ClientSecret string `json:"clientSecret"`
		} `json:"properties"`
	}
	if e := arm.DecodeBody(r, &in); e != nil {
		return e
	}
	if in.Properties == nil || in.Properties.ClientSecret == "" {
		return arm.Errorf(http.StatusBadRequest, "MissingProperty",
			"The service principal needs properties.clientSecret: a random secret of at least %d characters that you keep (pgvault stores only its hash).", vault.MinSecretLength).WithTarget("properties.clientSecret")
	}
	// If-None-Match: * creates only: a secret is never replaced by accident.
	createOnly := r.Header.Get("If-None-Match") == "*"
	sp, created, err := s.svc.PutServicePrincipal(r.Context(), p.Get("servicePrincipalName"), in.Properties.ClientSecret, createOnly)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	arm.WriteJSON(w, status, sp)
	return nil
}

func (s *Server) getServicePrincipal(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	sp, err := s.svc.ServicePrincipal(r.Context(), p.Get("servicePrincipalName"))
	return respond(w, sp, err)
}

func (s *Server) deleteServicePrincipal(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	existed, err := s.svc.DeleteServicePrincipal(r.Context(), p.Get("servicePrincipalName"))
	if err != nil {
		return err
	}
	writeDeleted(w, existed)
	return nil
}

func (s *Server) listServicePrincipals(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	return serveList(s, w, r, func(a string, n int) (vault.Page[*vault.ServicePrincipal], error) {
		return s.svc.ListServicePrincipals(r.Context(), a, n)
	})
}
