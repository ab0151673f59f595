package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/store"
)

// Protection states of a backup instance (CurrentProtectionState and
// ProtectionStatus.status).
const (
	ProtectionConfiguring       = "ConfiguringProtection"
	ProtectionConfigured        = "ProtectionConfigured"
	ProtectionConfiguringFailed = "ConfiguringProtectionFailed"
	ProtectionStopped           = "ProtectionStopped"
	BackupSchedulesSuspended    = "BackupSchedulesSuspended"
)

const (
	opValidateForBackup = "instance.validate"
	opConfigure         = "instance.configure"
	opDeleteInstance    = "instance.delete"
)

// The actions a vault's identity needs for PostgreSQL flexible server
// backups: the long-term retention backup role on the server, and read
// access to the server's resource group (Reader).
const (
	actionLtrBackup = "Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupOperations/read"
	actionStartLtr  = "Microsoft.DBforPostgreSQL/flexibleServers/startLtrBackup/action"
	actionReadGroup = "Microsoft.Resources/subscriptions/resourceGroups/read"
)

// BackupInstanceID returns the ARM ID of a backup instance.
func BackupInstanceID(sub, rg, vault, name string) string {
	return VaultID(sub, rg, vault) + "/backupInstances/" + name
}

// BackupInstanceResource is a backup instance (BackupInstanceResource).
type BackupInstanceResource struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Tags       map[string]string `json:"tags,omitempty"`
	SystemData *SystemData       `json:"systemData,omitempty"`
	Properties BackupInstance    `json:"properties"`
}

// BackupInstance is a backup instance's properties.
type BackupInstance struct {
	FriendlyName           string            `json:"friendlyName,omitempty"`
	DataSourceInfo         *Datasource       `json:"dataSourceInfo"`
	DataSourceSetInfo      *Datasource       `json:"dataSourceSetInfo,omitempty"`
	PolicyInfo             *PolicyInfo       `json:"policyInfo"`
	ProtectionStatus       *ProtectionStatus `json:"protectionStatus,omitempty"`
	CurrentProtectionState string            `json:"currentProtectionState,omitempty"`
	ProtectionErrorDetails *UserFacingError  `json:"protectionErrorDetails,omitempty"`
	ProvisioningState      string            `json:"provisioningState,omitempty"`
	ValidationType         string            `json:"validationType,omitempty"`
	ObjectType             string            `json:"objectType"`
	// Pgvault is pgvault's read-only extension: the schedule and retention
	// as they apply to this instance. Computed on read, never stored.
	Pgvault *InstanceExtension `json:"pgvault,omitempty"`
}

// Datasource (and DatasourceSet) names the protected server.
type Datasource struct {
	ResourceID       string `json:"resourceID"`
	ResourceURI      string `json:"resourceUri"`
	DatasourceType   string `json:"datasourceType,omitempty"`
	ResourceName     string `json:"resourceName,omitempty"`
	ResourceType     string `json:"resourceType,omitempty"`
	ResourceLocation string `json:"resourceLocation,omitempty"`
	ObjectType       string `json:"objectType,omitempty"`
}

// PolicyInfo names the instance's policy.
type PolicyInfo struct {
	PolicyID      string `json:"policyId"`
	PolicyVersion string `json:"policyVersion"`
}

// ProtectionStatus of an instance.
type ProtectionStatus struct {
	Status       string           `json:"status,omitempty"`
	ErrorDetails *UserFacingError `json:"errorDetails,omitempty"`
}

// UserFacingError is Azure Backup's detailed error.
type UserFacingError struct {
	Code              string            `json:"code,omitempty"`
	Message           string            `json:"message,omitempty"`
	Target            string            `json:"target,omitempty"`
	RecommendedAction []string          `json:"recommendedAction,omitempty"`
	InnerError        *InnerError       `json:"innerError,omitempty"`
	IsRetryable       bool              `json:"isRetryable"`
	IsUserError       bool              `json:"isUserError"`
	Properties        map[string]string `json:"properties,omitempty"`
}

// InnerError is a UserFacingError's inner error.
type InnerError struct {
	Code           string            `json:"code,omitempty"`
	AdditionalInfo map[string]string `json:"additionalInfo,omitempty"`
}

// userFacing attaches Azure Backup's UserFacingError to an error, as the
// service puts it in additionalInfo.
func userFacing(e *Error, recommended []string, inner *InnerError) *Error {
	e.Info = append(e.Info, Info{Type: "UserFacingError", Info: &UserFacingError{
		Code: e.Code, Message: e.Message, RecommendedAction: recommended, InnerError: inner, IsUserError: true,
	}})
	return e
}

// protectionRequest is a checked backup instance request.
type protectionRequest struct {
	vault  *Vault
	server *serverRecord
	policy *Policy
	bi     BackupInstance
}

// checkInstanceRequest validates a backup instance body against the vault:
// a PostgreSQL flexible server that pgvault knows, and a policy of this vault.
func (s *Service) checkInstanceRequest(ctx context.Context, sub, rg, vaultName string, bi BackupInstance, target string) (*protectionRequest, error) {
	v, err := s.Vault(ctx, sub, rg, vaultName)
	if err != nil {
		return nil, err
	}
	if bi.ObjectType != "BackupInstance" {
		return nil, invalid("InvalidObjectType", target+".objectType", "The backup instance objectType must be 'BackupInstance', not '%s'.", bi.ObjectType)
	}
	ds := bi.DataSourceInfo
	if ds == nil || ds.ResourceID == "" {
		return nil, invalid("MissingProperty", target+".dataSourceInfo.resourceID", "The backup instance needs dataSourceInfo.resourceID: the ARM ID of the PostgreSQL flexible server.")
	}
	if ds.DatasourceType != "" && !strings.EqualFold(ds.DatasourceType, DatasourceType) {
		return nil, invalid("UserErrorDatasourceTypeNotSupported", target+".dataSourceInfo.datasourceType", "pgvault protects only '%s', not '%s'.", DatasourceType, ds.DatasourceType)
	}
	srvSub, srvRG, srvName, ok := parseServerID(ds.ResourceID)
	if !ok {
		return nil, invalid("InvalidPropertyValue", target+".dataSourceInfo.resourceID",
			"'%s' is not the ARM ID of a PostgreSQL flexible server (/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{name}).", ds.ResourceID)
	}
	srv, err := s.serverRecord(ctx, srvSub, srvRG, srvName)
	if err != nil {
		if e, ok := AsError(err); ok && e.Kind == KindNotFound {
			return nil, newError(KindNotFound, "UserErrorDatasourceNotFound", target+".dataSourceInfo.resourceID",
				"The PostgreSQL flexible server '%s' is not registered with pgvault; register it (PUT the flexibleServers resource) first.", ds.ResourceID)
		}
		return nil, err
	}
	if bi.PolicyInfo == nil || bi.PolicyInfo.PolicyID == "" {
		return nil, invalid("MissingProperty", target+".policyInfo.policyId", "The backup instance needs policyInfo.policyId: a backup policy of this vault.")
	}
	polSub, polRG, polVault, polName, ok := parsePolicyID(bi.PolicyInfo.PolicyID)
	if !ok || !strings.EqualFold(VaultID(polSub, polRG, polVault), v.ID) {
		return nil, invalid("UserErrorPolicyNotInVault", target+".policyInfo.policyId", "The policy '%s' is not a policy of the backup vault '%s'.", bi.PolicyInfo.PolicyID, v.Name)
	}
	pol, err := s.Policy(ctx, polSub, polRG, polVault, polName)
	if err != nil {
		if e, ok := AsError(err); ok && e.Kind == KindNotFound {
			return nil, invalid("UserErrorPolicyNotFound", target+".policyInfo.policyId", "The policy '%s' does not exist.", bi.PolicyInfo.PolicyID)
		}
		return nil, err
	}
	// Canonical datasource information, as Azure fills it in.
	canon := &Datasource{ResourceID: srv.ID, ResourceURI: "", DatasourceType: DatasourceType, ResourceName: srv.Name,
		ResourceType: TypeServer, ResourceLocation: srv.Location, ObjectType: "Datasource"}
	set := *canon
	set.ObjectType = "DatasourceSet"
	bi.DataSourceInfo, bi.DataSourceSetInfo = canon, &set
	bi.PolicyInfo = &PolicyInfo{PolicyID: pol.ID, PolicyVersion: bi.PolicyInfo.PolicyVersion}
	return &protectionRequest{vault: v, server: srv, policy: pol, bi: bi}, nil
}

// parseServerID splits the ARM ID of a flexible server.
func parseServerID(id string) (sub, rg, name string, ok bool) {
	p := strings.Split(strings.Trim(id, "/"), "/")
	if len(p) != 8 || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[2], "resourceGroups") ||
		!strings.EqualFold(p[4], "providers") || !strings.EqualFold(p[5], "Microsoft.DBforPostgreSQL") || !strings.EqualFold(p[6], "flexibleServers") {
		return "", "", "", false
	}
	return p[1], p[3], p[7], p[1] != "" && p[3] != "" && p[7] != ""
}

// parsePolicyID splits the ARM ID of a backup policy.
func parsePolicyID(id string) (sub, rg, vault, name string, ok bool) {
	p := strings.Split(strings.Trim(id, "/"), "/")
	if len(p) != 10 || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[2], "resourceGroups") ||
		!strings.EqualFold(p[4], "providers") || !strings.EqualFold(p[5], "Microsoft.DataProtection") ||
		!strings.EqualFold(p[6], "backupVaults") || !strings.EqualFold(p[8], "backupPolicies") {
		return "", "", "", "", false
	}
	return p[1], p[3], p[7], p[9], true
}

// protectingInstance returns the backup instance that protects a server, if any.
func (s *Service) protectingInstance(ctx context.Context, serverID string) (*store.Resource, error) {
	rs, err := s.store.ResourceList(ctx, store.ListParams{Type: TypeBackupInstance, RefersTo: serverID, Limit: 1})
	if err != nil {
		return nil, storeErr("looking up the protection of a server", err)
	}
	if len(rs) == 0 {
		return nil, nil
	}
	return rs[0], nil
}

// alreadyProtected is the error for a server another instance protects.
func alreadyProtected(inst *store.Resource) *Error {
	vaultID := inst.Parent
	e := invalid("UserErrorDppDatasourceAlreadyProtected", "", "Datasource is already protected under the Backup vault %s.", vaultID)
	return userFacing(e, []string{fmt.Sprintf("Delete the backup instance %s from the Backup vault %s to re-protect the datasource in any other vault.", inst.Name, vaultID)}, nil)
}

// ValidateForBackup checks that a backup instance could be created. A server
// that is already protected is refused at once; the other checks (the vault
// identity's permissions, the server's readiness) run as an operation.
func (s *Service) ValidateForBackup(ctx context.Context, sub, rg, vaultName string, bi BackupInstance) (*store.Operation, error) {
	req, err := s.checkInstanceRequest(ctx, sub, rg, vaultName, bi, "backupInstance")
	if err != nil {
		return nil, err
	}
	if inst, err := s.protectingInstance(ctx, req.server.ID); err != nil {
		return nil, err
	} else if inst != nil {
		return nil, alreadyProtected(inst)
	}
	return s.startOperation(ctx, sub, opValidateForBackup, req.vault.ID, instanceOpInput{VaultID: req.vault.ID, ServerID: req.server.ID})
}

type instanceOpInput struct {
	VaultID    string `json:"vaultId"`
	ServerID   string `json:"serverId"`
	InstanceID string `json:"instanceId,omitempty"`
}

// operationResult is what a successful operation's result URL serves.
type operationResult struct {
	ObjectType string `json:"objectType"`
	JobID      string `json:"jobId,omitempty"`
}

func (s *Service) runValidateForBackup(ctx context.Context, op *store.Operation) (any, error) {
	var in instanceOpInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding operation input: %w", err)
	}
	if err := s.validateProtection(ctx, in.VaultID, in.ServerID); err != nil {
		return nil, err
	}
	return operationResult{ObjectType: "OperationJobExtendedInfo"}, nil
}

// vaultPrincipal returns the principal ID of a vault's system-assigned
// identity, or UserErrorMissingMSI when it has none (roles names what the
// identity is to be granted).
func (s *Service) vaultPrincipal(ctx context.Context, vaultID, roles string) (string, error) {
	vr, err := s.store.ResourceGet(ctx, vaultID)
	if err != nil {
		return "", storeErr("reading vault", err)
	}
	v, err := decodeVault(vr)
	if err != nil {
		return "", err
	}
	if v.Identity == nil || v.Identity.PrincipalID == "" {
		e := invalid("UserErrorMissingMSI", "", "The backup vault %s has no system-assigned identity; enable it (identity.type SystemAssigned) and grant it %s.", v.ID, roles)
		return "", userFacing(e, []string{"Enable the system-assigned managed identity of the backup vault and retry."}, nil)
	}
	return v.Identity.PrincipalID, nil
}

// validateProtection runs the checks of protecting a server from a vault:
// the vault's identity holds the roles it needs, and the server is ready.
func (s *Service) validateProtection(ctx context.Context, vaultID, serverID string) error {
	sr, err := s.store.ResourceGet(ctx, serverID)
	if errors.Is(err, store.ErrNotFound) {
		return newError(KindNotFound, "UserErrorDatasourceNotFound", "", "The server %s is no longer registered.", serverID)
	}
	if err != nil {
		return storeErr("reading server", err)
	}
	srv, err := decodeServer(sr)
	if err != nil {
		return err
	}
	principal, err := s.vaultPrincipal(ctx, vaultID, "the roles it needs")
	if err != nil {
		return err
	}
	for _, need := range []struct{ action, scope string }{
		{actionStartLtr, srv.ID},
		{actionLtrBackup, srv.ID},
		{actionReadGroup, srv.parent},
	} {
		ok, err := s.CheckAccess(ctx, principal, need.action, need.scope)
		if err != nil {
			return err
		}
		if !ok {
			e := invalid("UserErrorMissingRequiredPermissions", "", "Appropriate permissions to perform the operation is missing.")
			return userFacing(e,
				[]string{"Grant the backup vault's identity the 'PostgreSQL Flexible Server Long Term Retention Backup Role' on the server and 'Reader' on its resource group, then retry the operation."},
				&InnerError{Code: "UserErrorMissingRequiredPermissions", AdditionalInfo: map[string]string{
					"DetailedNonLocalisedMessage": fmt.Sprintf("Validate for Protection failed. Exception Message: The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
						principal, principal, need.action, need.scope),
				}})
		}
	}
	if _, err := s.checkServer(ctx, srv); err != nil {
		if e, ok := AsError(err); ok && e.Kind != KindInternal {
			inner := e.Code
			e2 := invalid("PostgreSQLFlexOperationFailedUserError", "", "The PostgreSQL server is not ready for backups: %s", e.Message)
			return userFacing(e2, []string{"Fix the reported problem on the server and retry."}, &InnerError{Code: inner})
		}
		return err
	}
	return nil
}

// PutBackupInstance creates a backup instance (or changes its policy). It
// re-runs the validation as an operation; the instance is
// ConfiguringProtection until it succeeds. A server is protected by at most
// one instance across all vaults.
func (s *Service) PutBackupInstance(ctx context.Context, sub, rg, vaultName, name string, bi BackupInstance, tags map[string]string, by Principal) (*BackupInstanceResource, *store.Operation, error) {
	if e := validateInstanceName(name); e != nil {
		return nil, nil, e
	}
	req, err := s.checkInstanceRequest(ctx, sub, rg, vaultName, bi, "properties")
	if err != nil {
		return nil, nil, err
	}
	id := req.vault.ID + "/backupInstances/" + name
	if inst, err := s.protectingInstance(ctx, req.server.ID); err != nil {
		return nil, nil, err
	} else if inst != nil && !strings.EqualFold(inst.ID, id) {
		return nil, nil, alreadyProtected(inst)
	}
	old, err := s.store.ResourceGet(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, storeErr("reading backup instance", err)
	}
	now := s.nowUTC()
	res := &BackupInstanceResource{ID: id, Name: name, Type: TypeBackupInstance, Tags: tags,
		SystemData: &SystemData{CreatedBy: by.ID, CreatedByType: by.Type, CreatedAt: now, LastModifiedBy: by.ID, LastModifiedByType: by.Type, LastModifiedAt: now}}
	res.Properties = req.bi
	res.Properties.FriendlyName = name
	res.Properties.ObjectType = "BackupInstance"
	res.Properties.ProvisioningState = StateProvisioning
	res.Properties.ProtectionStatus = &ProtectionStatus{Status: ProtectionConfiguring}
	res.Properties.CurrentProtectionState = ProtectionConfiguring
	opts := store.PutOptions{IfNoneMatch: true}
	if old != nil {
		prev, err := decodeInstance(old)
		if err != nil {
			return nil, nil, err
		}
		if !strings.EqualFold(prev.Properties.DataSourceInfo.ResourceID, req.server.ID) {
			return nil, nil, invalid("UserErrorDatasourceChangeNotAllowed", "properties.dataSourceInfo.resourceID",
				"The backup instance '%s' protects '%s'; its datasource cannot change.", name, prev.Properties.DataSourceInfo.ResourceID)
		}
		res.ID, res.Name = prev.ID, prev.Name
		res.SystemData.CreatedBy, res.SystemData.CreatedByType, res.SystemData.CreatedAt = prev.SystemData.CreatedBy, prev.SystemData.CreatedByType, prev.SystemData.CreatedAt
		opts = store.PutOptions{IfMatch: old.ETag}
	}
	if err := s.writeInstance(ctx, sub, req.vault.ID, res, req, opts); err != nil {
		return nil, nil, err
	}
	if err := s.claimServer(ctx, res.ID, req.server, now, old == nil); err != nil {
		return nil, nil, err
	}
	op, err := s.startOperation(ctx, sub, opConfigure, res.ID, instanceOpInput{VaultID: req.vault.ID, ServerID: req.server.ID, InstanceID: res.ID})
	if err != nil {
		return nil, nil, err
	}
	return res, op, nil
}

// claimServer makes "one instance per server" hold under concurrency: a
// claim row per server is created only if absent, as a child of the
// instance (so it goes when the instance goes). If another instance holds
// the claim, a just-created instance is removed again.
func (s *Service) claimServer(ctx context.Context, instanceID string, srv *serverRecord, now time.Time, created bool) error {
	claimID := "/providers/Pgvault.Protection/datasources/" + strings.ReplaceAll(strings.ToLower(srv.ID), "/", "|")
	err := s.store.ResourcePut(ctx, &store.Resource{ID: claimID, Type: "Pgvault.Protection/datasources", Parent: instanceID, Name: srv.Name,
		Body: []byte(`{}`), ETag: newETag(), Created: now, Updated: now}, store.PutOptions{IfNoneMatch: true})
	if !errors.Is(err, store.ErrAlreadyExists) {
		if err != nil {
			return storeErr("claiming the server", err)
		}
		return nil
	}
	claim, err := s.store.ResourceGet(ctx, claimID)
	if err != nil {
		return storeErr("reading the claim of the server", err)
	}
	if strings.EqualFold(claim.Parent, instanceID) {
		return nil // this instance holds it already
	}
	if created {
		if err := s.store.ResourceDelete(context.WithoutCancel(ctx), instanceID, store.DeleteOptions{}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return storeErr("removing a backup instance that lost its server to another", err)
		}
	}
	owner, err := s.store.ResourceGet(ctx, claim.Parent)
	if err != nil {
		return newError(KindConflict, "UserErrorDppDatasourceAlreadyProtected", "", "Datasource is already being protected by another backup instance.")
	}
	return alreadyProtected(owner)
}

func (s *Service) writeInstance(ctx context.Context, sub, vaultID string, res *BackupInstanceResource, req *protectionRequest, opts store.PutOptions) error {
	res.Properties.Pgvault = nil // computed on read
	body, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("while encoding backup instance: %w", err)
	}
	err = s.store.ResourcePut(ctx, &store.Resource{
		ID: res.ID, Type: TypeBackupInstance, Parent: vaultID, Subscription: sub, Name: res.Name,
		Refs: []string{req.policy.ID, req.server.ID}, Body: body, ETag: newETag(),
		Created: res.SystemData.CreatedAt, Updated: res.SystemData.LastModifiedAt,
	}, opts)
	switch {
	case errors.Is(err, store.ErrParentNotFound):
		return newError(KindNotFound, "ResourceNotFound", "vaultName", "The backup vault was deleted meanwhile.")
	case errors.Is(err, store.ErrAlreadyExists), errors.Is(err, store.ErrPreconditionFailed), errors.Is(err, store.ErrNotFound):
		return &Error{Kind: KindPreconditionFailed, Code: "ConcurrentUpdate", Message: "The backup instance was changed by another request at the same time; retry.", Err: err}
	case err != nil:
		return storeErr("writing backup instance", err)
	}
	return nil
}

// runConfigure finishes configuring protection: the validation runs again
// and the instance becomes ProtectionConfigured, or ConfiguringProtectionFailed.
func (s *Service) runConfigure(ctx context.Context, op *store.Operation) (any, error) {
	var in instanceOpInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding operation input: %w", err)
	}
	checkErr := s.validateProtection(ctx, in.VaultID, in.ServerID)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	err := s.updateInstance(ctx, in.InstanceID, func(bi *BackupInstanceResource) error {
		if checkErr != nil {
			e, _ := AsError(checkErr)
			bi.Properties.ProvisioningState = StateFailed
			bi.Properties.CurrentProtectionState = ProtectionConfiguringFailed
			ufe := &UserFacingError{Code: "InternalError", Message: "configuring protection failed"}
			if e != nil {
				ufe = &UserFacingError{Code: e.Code, Message: e.Message, IsUserError: e.Kind != KindInternal}
			}
			bi.Properties.ProtectionStatus = &ProtectionStatus{Status: ProtectionConfiguringFailed, ErrorDetails: ufe}
			bi.Properties.ProtectionErrorDetails = ufe
			return nil
		}
		bi.Properties.ProvisioningState = StateSucceeded
		bi.Properties.CurrentProtectionState = ProtectionConfigured
		bi.Properties.ProtectionStatus = &ProtectionStatus{Status: ProtectionConfigured}
		bi.Properties.ProtectionErrorDetails = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return nil, checkErr
}

// updateInstance applies change to a stored backup instance, retrying on
// concurrent writes.
func (s *Service) updateInstance(ctx context.Context, id string, change func(*BackupInstanceResource) error) error {
	for {
		r, err := s.store.ResourceGet(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return newError(KindNotFound, "ResourceNotFound", "backupInstanceName", "The backup instance '%s' was not found.", id)
		}
		if err != nil {
			return storeErr("reading backup instance", err)
		}
		bi, err := decodeInstance(r)
		if err != nil {
			return err
		}
		if err := change(bi); err != nil {
			return err
		}
		bi.SystemData.LastModifiedAt = s.nowUTC()
		body, err := json.Marshal(bi)
		if err != nil {
			return fmt.Errorf("while encoding backup instance: %w", err)
		}
		r.Body, r.Updated = body, bi.SystemData.LastModifiedAt
		oldETag := r.ETag
		r.ETag = newETag()
		err = s.store.ResourcePut(ctx, r, store.PutOptions{IfMatch: oldETag})
		if errors.Is(err, store.ErrPreconditionFailed) {
			continue
		}
		if err != nil {
			return storeErr("writing backup instance", err)
		}
		return nil
	}
}

func decodeInstance(r *store.Resource) (*BackupInstanceResource, error) {
	var bi BackupInstanceResource
	if err := json.Unmarshal(r.Body, &bi); err != nil {
		return nil, fmt.Errorf("while decoding backup instance %q: %w", r.ID, err)
	}
	bi.ID, bi.Name = r.ID, r.Name
	return &bi, nil
}

// BackupInstance returns a backup instance as the API shows it, with
// pgvault's extension (next scheduled backup, retention).
func (s *Service) BackupInstance(ctx context.Context, sub, rg, vaultName, name string) (*BackupInstanceResource, error) {
	r, err := s.instanceResource(ctx, sub, rg, vaultName, name)
	if err != nil {
		return nil, err
	}
	return s.describeInstance(ctx, r)
}

// instance returns a backup instance as stored, without the extension.
func (s *Service) instance(ctx context.Context, sub, rg, vaultName, name string) (*BackupInstanceResource, error) {
	r, err := s.instanceResource(ctx, sub, rg, vaultName, name)
	if err != nil {
		return nil, err
	}
	return decodeInstance(r)
}

// instanceResource reads a backup instance; ResourceNotFound names the
// missing vault or instance.
func (s *Service) instanceResource(ctx context.Context, sub, rg, vaultName, name string) (*store.Resource, error) {
	r, err := s.store.ResourceGet(ctx, BackupInstanceID(sub, rg, vaultName, name))
	if errors.Is(err, store.ErrNotFound) {
		if _, verr := s.Vault(ctx, sub, rg, vaultName); verr != nil {
			return nil, verr
		}
		return nil, newError(KindNotFound, "ResourceNotFound", "backupInstanceName", "The backup instance '%s' was not found in backup vault '%s'.", name, vaultName)
	}
	if err != nil {
		return nil, storeErr("reading backup instance", err)
	}
	return r, nil
}

// ListBackupInstances lists a vault's backup instances.
func (s *Service) ListBackupInstances(ctx context.Context, sub, rg, vaultName, after string, pageSize int) (Page[*BackupInstanceResource], error) {
	v, err := s.Vault(ctx, sub, rg, vaultName)
	if err != nil {
		return Page[*BackupInstanceResource]{}, err
	}
	return listPage(ctx, s.store, store.ListParams{Type: TypeBackupInstance, Parent: v.ID, After: after}, pageSize, func(r *store.Resource) (*BackupInstanceResource, error) {
		return s.describeInstance(ctx, r)
	})
}

// DeleteBackupInstance stops protection and deletes the instance with
// everything it owns, as an operation. It returns nil when there was
// nothing to delete.
func (s *Service) DeleteBackupInstance(ctx context.Context, sub, rg, vaultName, name string) (*store.Operation, error) {
	bi, err := s.instance(ctx, sub, rg, vaultName, name)
	if isNotFound(err) {
		if _, verr := s.Vault(ctx, sub, rg, vaultName); verr != nil {
			return nil, verr
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.startOperation(ctx, sub, opDeleteInstance, bi.ID, instanceOpInput{InstanceID: bi.ID})
}

func (s *Service) runDeleteInstance(ctx context.Context, op *store.Operation) (any, error) {
	var in instanceOpInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding operation input: %w", err)
	}
	err := s.store.ResourceDelete(ctx, in.InstanceID, store.DeleteOptions{})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, storeErr("deleting backup instance", err)
	}
	// Its recovery points went with it: reclaim their space.
	vaultID := in.InstanceID[:strings.LastIndex(strings.ToLower(in.InstanceID), "/backupinstances/")]
	if _, err := s.QueuePrune(ctx, vaultID, "backup instance deleted"); err != nil {
		s.log.Warn("queueing a prune after deleting a backup instance failed; the next interval's prune reclaims its space", "instance", in.InstanceID, "err", err)
	}
	return nil, nil
}

// SetProtection applies stopProtection, suspendBackups, resumeProtection or
// resumeBackups to an instance.
func (s *Service) SetProtection(ctx context.Context, sub, rg, vaultName, name, action string) error {
	if _, err := s.instance(ctx, sub, rg, vaultName, name); err != nil {
		return err
	}
	return s.updateInstance(ctx, BackupInstanceID(sub, rg, vaultName, name), func(bi *BackupInstanceResource) error {
		state := bi.Properties.CurrentProtectionState
		var next string
		switch action {
		case "stopProtection":
			if state == ProtectionConfigured || state == BackupSchedulesSuspended || state == ProtectionStopped {
				next = ProtectionStopped
			}
		case "suspendBackups":
			if state == ProtectionConfigured || state == BackupSchedulesSuspended {
				next = BackupSchedulesSuspended
			}
		case "resumeProtection":
			if state == ProtectionStopped || state == ProtectionConfigured {
				next = ProtectionConfigured
			}
		case "resumeBackups":
			if state == BackupSchedulesSuspended || state == ProtectionConfigured {
				next = ProtectionConfigured
			}
		default:
			return fmt.Errorf("unknown protection action %q", action)
		}
		if next == "" {
			return newError(KindConflict, "UserErrorInvalidProtectionState", "backupInstanceName",
				"The backup instance '%s' is %s; %s is not possible in that state.", name, state, action)
		}
		bi.Properties.CurrentProtectionState = next
		status := ProtectionConfigured
		if next == ProtectionStopped {
			status = ProtectionStopped
		}
		bi.Properties.ProtectionStatus = &ProtectionStatus{Status: status}
		return nil
	})
}

// validateInstanceName allows 1 to 150 letters, digits, '-', '_' and '.':
// room for the documented SERVERNAME-<guid> names of 63-character servers.
func validateInstanceName(name string) *Error {
	ok := len(name) >= 1 && len(name) <= 150
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = isASCIILetter(c) || c >= '0' && c <= '9' || strings.IndexByte("-_.", c) >= 0
	}
	if !ok {
		return invalid("InvalidResourceName", "backupInstanceName", "The backup instance name '%s' is invalid: use 1 to 150 letters, digits, '-', '_' or '.'.", name)
	}
	return nil
}
