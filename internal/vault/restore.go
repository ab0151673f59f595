package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/target"
)

// Restores (BackupInstances_ValidateForRestore, BackupInstances_TriggerRestore).
//
// Both take an AzureBackupRecoveryPointBasedRestoreRequest. Its form is
// checked at once (400 with the JSON path at fault, nothing recorded);
// what needs a look at the world (the vault identity's access to a blob
// target, whether the target is empty) is checked by the long-running
// operation. ValidateForRestore stops there; TriggerRestore's operation then
// queues a job of kind JobKindRestore and names it in its result. The job
// (internal/job) writes the recovery point into the target. A target's SAS
// URL is kept only sealed, in the operation's and the job's input.

// Job and operation kinds of restores.
const (
	JobKindRestore       = "restore"
	opValidateRestore    = "instance.validateRestore"
	opTriggerRestore     = "instance.restore"
	restoreRequestType   = "AzureBackupRecoveryPointBasedRestoreRequest"
	filesTargetType      = "RestoreFilesTargetInfo"
	serverTargetType     = "RestoreTargetInfo"
	locationAzureBlobs   = "AzureBlobs"
	recoveryFailIfExists = "FailIfExists"
	sourceVaultStore     = "VaultStore"
)

// The data action the vault identity needs on a blob restore target
// (granted by Storage Blob Data Contributor).
const actionWriteBlobs = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"

// RestoreRequest is an AzureBackupRestoreRequest as pgvault reads it.
type RestoreRequest struct {
	ObjectType          string             `json:"objectType"`
	RecoveryPointID     string             `json:"recoveryPointId"`
	SourceDataStoreType string             `json:"sourceDataStoreType"`
	SourceResourceID    string             `json:"sourceResourceId,omitempty"`
	RestoreTargetInfo   *RestoreTargetInfo `json:"restoreTargetInfo"`
}

// RestoreTargetInfo is a RestoreFilesTargetInfo (the only kind PostgreSQL
// flexible servers support in Azure), or a RestoreTargetInfo naming a new
// server in DatasourceInfo with pgvault's extension Pgvault (restore as a
// new server on the pgvault host).
type RestoreTargetInfo struct {
	ObjectType      string                `json:"objectType"`
	RecoveryOption  string                `json:"recoveryOption"`
	RestoreLocation string                `json:"restoreLocation,omitempty"`
	TargetDetails   *RestoreTargetDetails `json:"targetDetails,omitempty"`
	DatasourceInfo  *Datasource           `json:"datasourceInfo,omitempty"`
	Pgvault         *NewServerOptions     `json:"pgvault,omitempty"`
}

// NewServerOptions are pgvault's extension of RestoreTargetInfo: where the
// new server's data directory goes and how it runs.
type NewServerOptions struct {
	// DataDirectory is the new data directory: an absolute path inside a
	// directory of serve --restore-local-dir, absent or empty. Extra
	// tablespaces go to DataDirectory + "-tablespaces/<oid>".
	DataDirectory string `json:"dataDirectory"`
	// Port is the TCP port the new server listens on (on the pgvault host).
	Port int `json:"port"`
	// Start starts the server once restored (default: left stopped).
	Start bool `json:"start"`
}

// NewServerRestore is the new server of a restore, as its job input keeps it.
type NewServerRestore struct {
	ServerID string `json:"serverId"`
	Name     string `json:"name"`
	Location string `json:"location"`
	// Root is the allowed directory, DataDir the data directory relative to it.
	Root    string `json:"root"`
	DataDir string `json:"dataDir"`
	Port    int    `json:"port"`
	Start   bool   `json:"start"`
}

// DataDirectory is the new server's absolute data directory.
func (n *NewServerRestore) DataDirectory() string { return filepath.Join(n.Root, n.DataDir) }

// TablespaceDirectory is where a new server's extra tablespace goes.
func (n *NewServerRestore) TablespaceDirectory(oid string) string {
	return filepath.Join(n.Root, n.DataDir+"-tablespaces", oid)
}

// RestoreTargetDetails are a RestoreFilesTargetInfo's TargetDetails.
type RestoreTargetDetails struct {
	URL                       string `json:"url"`
	FilePrefix                string `json:"filePrefix"`
	RestoreTargetLocationType string `json:"restoreTargetLocationType"`
	TargetResourceArmID       string `json:"targetResourceArmId,omitempty"`
}

// SealedTarget is a backup or restore target as the inputs of operations
// and jobs keep it: a blob container's SAS URL only sealed.
type SealedTarget struct {
	Kind     target.Kind `json:"kind"`
	Location string      `json:"location"`
	// SealedURL is the SAS URL sealed by the secret box (blob containers).
	SealedURL string `json:"sealedUrl,omitempty"`
}

// RestoreJobInput is what a restore job (and the operations that check and
// queue it) needs; the job runner reads it.
type RestoreJobInput struct {
	// JobID is the ID of the restore job (chosen when the restore is asked for).
	JobID             string    `json:"jobId"`
	InstanceID        string    `json:"instanceId"`
	VaultID           string    `json:"vaultId"`
	ServerID          string    `json:"serverId"`
	RecoveryPointID   string    `json:"recoveryPointId"`
	RecoveryPointTime time.Time `json:"recoveryPointTime"`
	SnapshotID        string    `json:"snapshotId"`
	// Target is the container or directory of the url, FilePrefix the
	// folder inside it that receives the files, and Destination that
	// folder's location (without secrets).
	Target      SealedTarget `json:"target"`
	FilePrefix  string       `json:"filePrefix"`
	Destination string       `json:"destination"`
	// TargetResourceID is the storage account or container ARM ID of a
	// blob target, on which the vault identity needs its role.
	TargetResourceID string `json:"targetResourceId,omitempty"`
	// NewServer, instead of Target, is a new server to restore into.
	NewServer *NewServerRestore `json:"newServer,omitempty"`

	// Names kept for the job's description after the resources are gone.
	InstanceName   string `json:"instanceName"`
	ServerName     string `json:"serverName"`
	ServerLocation string `json:"serverLocation"`
}

// exclusiveKey keeps two restores from writing into one place at once: the
// folder of a files restore, the data directory of a new server.
func (in *RestoreJobInput) exclusiveKey() string {
	if in.NewServer != nil {
		return "restore:" + strings.ToLower((&url.URL{Scheme: "file", Path: in.NewServer.DataDirectory()}).String())
	}
	return "restore:" + strings.ToLower(in.Destination)
}

// RestoredFile is one file a restore wrote.
type RestoredFile struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// RestoreJobResult is what a finished restore job reports.
type RestoreJobResult struct {
	// Location is where the files are, without secrets.
	Location string         `json:"location"`
	Files    []RestoredFile `json:"files,omitempty"`
	Bytes    int64          `json:"bytes"`
	// ServerID is the new server of a restore as a new server.
	ServerID string `json:"serverId,omitempty"`
}

// restoreContext binds a sealed restore target URL to its restore.
func restoreContext(jobID string) string { return "restore#" + strings.ToLower(jobID) }

// ValidateRestore checks a restore request (at, the JSON path of the
// request in the body, prefixes the targets of errors) and starts the
// operation that checks the vault identity's access and the target.
func (s *Service) ValidateRestore(ctx context.Context, sub, rg, vaultName, instance string, req *RestoreRequest, at string) (*store.Operation, error) {
	in, err := s.checkRestore(ctx, sub, rg, vaultName, instance, req, at)
	if err != nil {
		return nil, err
	}
	return s.startOperation(ctx, sub, opValidateRestore, in.InstanceID, in)
}

// TriggerRestore checks a restore request and starts the operation that
// checks the target and queues the restore job; its result names the job.
func (s *Service) TriggerRestore(ctx context.Context, sub, rg, vaultName, instance string, req *RestoreRequest) (*store.Operation, error) {
	in, err := s.checkRestore(ctx, sub, rg, vaultName, instance, req, "")
	if err != nil {
		return nil, err
	}
	return s.startOperation(ctx, sub, opTriggerRestore, in.InstanceID, in)
}

// checkRestore checks the form of a restore request and returns the input
// of its operation and job.
func (s *Service) checkRestore(ctx context.Context, sub, rg, vaultName, instance string, req *RestoreRequest, at string) (*RestoreJobInput, error) {
	if s.secrets == nil {
		return nil, errors.New("vault: no secret box configured: restores cannot be started")
	}
	path := func(p string) string { return at + p }
	if req == nil {
		return nil, invalid("MissingProperty", strings.TrimSuffix(at, "."), "The request needs a restore request object (objectType %s).", restoreRequestType)
	}
	bi, err := s.instance(ctx, sub, rg, vaultName, instance)
	if err != nil {
		return nil, err
	}
	switch {
	case req.ObjectType == "":
		return nil, invalid("MissingProperty", path("objectType"), "objectType is required: %s.", restoreRequestType)
	case req.ObjectType != restoreRequestType:
		return nil, invalid("UserErrorRestoreTypeNotSupported", path("objectType"),
			"The restore type '%s' is not supported for PostgreSQL flexible servers; use %s.", req.ObjectType, restoreRequestType)
	case req.RecoveryPointID == "":
		return nil, invalid("MissingProperty", path("recoveryPointId"), "recoveryPointId is required.")
	case !strings.EqualFold(req.SourceDataStoreType, sourceVaultStore):
		return nil, invalid("UserErrorRestoreTypeNotSupported", path("sourceDataStoreType"),
			"The source data store '%s' is not supported; recovery points of PostgreSQL flexible servers are in the %s.", req.SourceDataStoreType, sourceVaultStore)
	case req.SourceResourceID != "" && !strings.EqualFold(req.SourceResourceID, bi.Properties.DataSourceInfo.ResourceID):
		return nil, invalid("InvalidPropertyValue", path("sourceResourceId"),
			"sourceResourceId '%s' is not the server '%s' that the backup instance protects.", req.SourceResourceID, bi.Properties.DataSourceInfo.ResourceID)
	}
	rp, err := s.RecoveryPoint(ctx, sub, rg, vaultName, instance, req.RecoveryPointID)
	if e, ok := AsError(err); ok && e.Kind == KindNotFound && e.Target == "recoveryPointId" {
		e.Target = path("recoveryPointId")
		return nil, e
	}
	if err != nil {
		return nil, err
	}
	if rp.Properties.Pgvault == nil || rp.Properties.Pgvault.SnapshotID == "" {
		return nil, invalid("UserErrorRecoveryPointNotRestorable", path("recoveryPointId"), "The recovery point '%s' names no backup data.", rp.Name)
	}
	ti := req.RestoreTargetInfo
	tp := path("restoreTargetInfo")
	switch {
	case ti == nil:
		return nil, invalid("MissingProperty", tp, "restoreTargetInfo is required (objectType %s).", filesTargetType)
	case ti.ObjectType != filesTargetType && ti.ObjectType != serverTargetType:
		return nil, invalid("UserErrorRestoreTypeNotSupported", tp+".objectType",
			"The restore target type '%s' is not supported; use %s (or %s with pgvault's extension, to restore as a new server).", ti.ObjectType, filesTargetType, serverTargetType)
	case ti.RecoveryOption != recoveryFailIfExists:
		return nil, invalid("InvalidPropertyValue", tp+".recoveryOption", "recoveryOption must be %s (got '%s').", recoveryFailIfExists, ti.RecoveryOption)
	}
	ds := bi.Properties.DataSourceInfo
	in := &RestoreJobInput{
		JobID: newUUID(), InstanceID: bi.ID, VaultID: bi.ID[:strings.LastIndex(strings.ToLower(bi.ID), "/backupinstances/")],
		ServerID: ds.ResourceID, RecoveryPointID: rp.Name, RecoveryPointTime: rp.Properties.RecoveryPointTime,
		SnapshotID: rp.Properties.Pgvault.SnapshotID, InstanceName: bi.Name, ServerName: ds.ResourceName, ServerLocation: ds.ResourceLocation,
	}
	if ti.ObjectType == serverTargetType {
		if err := s.checkServerTarget(ctx, ti, tp, in); err != nil {
			return nil, err
		}
		return in, nil
	}
	if err := s.checkFilesTarget(ti.TargetDetails, tp+".targetDetails", in); err != nil {
		return nil, err
	}
	return in, nil
}

// checkFilesTarget checks a RestoreFilesTargetInfo's targetDetails and
// fills in the target of the restore.
func (s *Service) checkFilesTarget(td *RestoreTargetDetails, at string, in *RestoreJobInput) error {
	switch {
	case td == nil:
		return invalid("MissingProperty", at, "targetDetails is required: url, filePrefix and restoreTargetLocationType %s.", locationAzureBlobs)
	case td.RestoreTargetLocationType != locationAzureBlobs:
		return invalid("UserErrorRestoreTypeNotSupported", at+".restoreTargetLocationType",
			"The restore target location type '%s' is not supported; use %s (a blob container, or a file:// directory).", td.RestoreTargetLocationType, locationAzureBlobs)
	case td.URL == "":
		return invalid("MissingProperty", at+".url", "url is required: the SAS URL of a blob container (or a file:// URL of a directory the pgvault server allows).")
	case td.FilePrefix == "":
		return invalid("MissingProperty", at+".filePrefix", "filePrefix is required: the folder of the container (or directory) that receives the files.")
	}
	spec, err := target.Parse(td.URL, s.restoreDirs)
	switch {
	case errors.Is(err, target.ErrNotAllowed):
		return &Error{Kind: KindInvalid, Code: "UserErrorRestoreTargetNotAllowed", Target: at + ".url",
			Message: fmt.Sprintf("The url cannot be used: %v. A file:// URL must name a directory inside one of the directories the pgvault server allows for restores (serve --restore-local-dir).", err)}
	case err != nil:
		return &Error{Kind: KindInvalid, Code: "InvalidRestoreTargetUrl", Target: at + ".url", Message: fmt.Sprintf("The url cannot be used: %v.", err)}
	}
	full, err := spec.Sub(td.FilePrefix)
	if err != nil {
		return invalid("InvalidPropertyValue", at+".filePrefix", "The filePrefix '%s' cannot be used: use 1 to 200 letters, digits, '-', '_' and '.' (it names a folder).", td.FilePrefix)
	}
	in.FilePrefix = td.FilePrefix
	in.Target = SealedTarget{Kind: spec.Kind, Location: spec.Location()}
	in.Destination = full.Location()
	if spec.Kind == target.KindBlobContainer {
		if td.TargetResourceArmID == "" {
			return invalid("MissingProperty", at+".targetResourceArmId",
				"targetResourceArmId is required for a blob container: the ARM ID of the storage account or container, on which the vault's identity needs Storage Blob Data Contributor.")
		}
		if e := checkStorageID(td.TargetResourceArmID, spec, at+".targetResourceArmId"); e != nil {
			return e
		}
		in.TargetResourceID = td.TargetResourceArmID
		in.Target.SealedURL = s.secrets.Seal(spec.SASURL, restoreContext(in.JobID))
	}
	return nil
}

// checkServerTarget checks a restore as a new server: a RestoreTargetInfo
// naming a new server (in a resource group that exists) in datasourceInfo,
// with pgvault's extension giving a data directory inside an allowed
// directory and a port.
func (s *Service) checkServerTarget(ctx context.Context, ti *RestoreTargetInfo, at string, in *RestoreJobInput) error {
	if ti.DatasourceInfo == nil || ti.DatasourceInfo.ResourceID == "" {
		return invalid("MissingProperty", at+".datasourceInfo.resourceID", "datasourceInfo.resourceID is required: the ARM ID of the new server (Microsoft.DBforPostgreSQL/flexibleServers).")
	}
	sub, rg, name, ok := parseServerID(ti.DatasourceInfo.ResourceID)
	if !ok {
		return invalid("InvalidPropertyValue", at+".datasourceInfo.resourceID", "'%s' is not the ARM ID of a PostgreSQL flexible server.", ti.DatasourceInfo.ResourceID)
	}
	if e := ValidateServerName(name); e != nil {
		e.Target = at + ".datasourceInfo.resourceID"
		return e
	}
	group, err := s.ResourceGroup(ctx, sub, rg)
	if err != nil {
		if e, ok := AsError(err); ok {
			e.Target = at + ".datasourceInfo.resourceID"
		}
		return err
	}
	if _, err := s.serverRecord(ctx, sub, group.Name, name); err == nil {
		return newError(KindConflict, "UserErrorRestoreTargetAlreadyExists", at+".datasourceInfo.resourceID",
			"The server '%s' exists already; restore as a new server needs a name that is free.", name)
	} else if !isNotFound(err) {
		return err
	}
	x := ti.Pgvault
	if x == nil || x.DataDirectory == "" {
		return invalid("MissingProperty", at+".pgvault.dataDirectory",
			"pgvault.dataDirectory is required to restore as a new server: the new data directory, inside a directory the pgvault server allows (serve --restore-local-dir).")
	}
	if !filepath.IsAbs(x.DataDirectory) {
		return invalid("InvalidPropertyValue", at+".pgvault.dataDirectory", "The data directory '%s' is not an absolute path.", x.DataDirectory)
	}
	spec, err := target.Parse((&url.URL{Scheme: "file", Path: x.DataDirectory}).String(), s.restoreDirs)
	if err == nil && spec.Dir == "." {
		err = fmt.Errorf("%w: the data directory must be a directory inside %s, not that directory itself", target.ErrNotAllowed, spec.Root)
	}
	switch {
	case errors.Is(err, target.ErrNotAllowed):
		return &Error{Kind: KindInvalid, Code: "UserErrorRestoreTargetNotAllowed", Target: at + ".pgvault.dataDirectory",
			Message: fmt.Sprintf("The data directory cannot be used: %v. It must lie inside one of the directories the pgvault server allows for restores (serve --restore-local-dir).", err)}
	case err != nil:
		return invalid("InvalidPropertyValue", at+".pgvault.dataDirectory", "The data directory cannot be used: %v.", err)
	}
	if x.Port < 1 || x.Port > 65535 {
		return invalid("InvalidPropertyValue", at+".pgvault.port", "pgvault.port must be the TCP port (1-65535) the new server listens on; got %d.", x.Port)
	}
	loc := ti.RestoreLocation
	if loc == "" {
		loc = in.ServerLocation
	}
	in.NewServer = &NewServerRestore{ServerID: ServerID(sub, group.Name, name), Name: name, Location: loc,
		Root: spec.Root, DataDir: spec.Dir, Port: x.Port, Start: x.Start}
	in.Destination = in.NewServer.ServerID
	return nil
}

// checkStorageID checks that id is the ARM ID of a storage account, or of a
// container of one, and that a container ID names the URL's container.
func checkStorageID(id string, spec target.Spec, at string) *Error {
	bad := func(why string) *Error {
		return invalid("InvalidPropertyValue", at, "'%s' is not usable: %s.", id, why)
	}
	if e := ValidateScope(id); e != nil {
		return bad("it is not an ARM ID")
	}
	parts := strings.Split(strings.TrimPrefix(id, "/"), "/")
	// subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Storage/storageAccounts/{a}[/blobServices/default/containers/{c}]
	if len(parts) < 8 || !strings.EqualFold(parts[5], "Microsoft.Storage") || !strings.EqualFold(parts[6], "storageAccounts") {
		return bad("give the ID of a storage account (/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{account}) or of its container")
	}
	switch len(parts) {
	case 8:
		return nil
	case 12:
		if !strings.EqualFold(parts[8], "blobServices") || !strings.EqualFold(parts[9], "default") || !strings.EqualFold(parts[10], "containers") {
			return bad("a container's ID ends in /blobServices/default/containers/{container}")
		}
		if loc := strings.TrimSuffix(spec.Location(), "/"); !strings.HasSuffix(loc, "/"+parts[11]) {
			return bad("it names container '" + parts[11] + "', not the container of the url")
		}
		return nil
	}
	return bad("give the ID of a storage account or of one of its containers")
}

// RestorePlan is what a restore needs to write: the target, SAS token
// included (keep it in memory only), or the new server's directories.
type RestorePlan struct {
	Target target.Spec
	// DataDir and TablespaceRoot (of a restore as a new server) are the
	// data directory and the directory of its tablespaces, as targets.
	DataDir, TablespaceRoot *target.Spec
}

// newServerPlan checks again that the new server's directories are allowed
// and that its name is free.
func (s *Service) newServerPlan(ctx context.Context, in RestoreJobInput) (*RestorePlan, error) {
	n := in.NewServer
	var specs [2]target.Spec
	for i, dir := range []string{n.DataDirectory(), n.DataDirectory() + "-tablespaces"} {
		spec, err := target.Parse((&url.URL{Scheme: "file", Path: dir}).String(), s.restoreDirs)
		if err != nil {
			return nil, &Error{Kind: KindInvalid, Code: "UserErrorRestoreTargetNotAllowed", Err: err,
				Message: fmt.Sprintf("The directory %s cannot be used any more: %v.", dir, err)}
		}
		specs[i] = spec
	}
	if _, err := s.store.ResourceGet(ctx, n.ServerID); err == nil {
		return nil, newError(KindConflict, "UserErrorRestoreTargetAlreadyExists", "", "The server %s was registered meanwhile; restore under another name.", n.ServerID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, storeErr("reading server", err)
	}
	return &RestorePlan{DataDir: &specs[0], TablespaceRoot: &specs[1]}, nil
}

// RestorePlan resolves a restore's input: it opens the sealed target URL
// and checks again that a local directory is allowed (the configuration may
// have changed since the restore was asked for).
func (s *Service) RestorePlan(ctx context.Context, in RestoreJobInput) (*RestorePlan, error) {
	if in.NewServer != nil {
		return s.newServerPlan(ctx, in)
	}
	spec, err := s.openTarget(in.Target, restoreContext(in.JobID), s.restoreDirs, "UserErrorRestoreTargetNotAllowed")
	if err != nil {
		return nil, err
	}
	if spec, err = spec.Sub(in.FilePrefix); err != nil {
		return nil, invalid("InvalidPropertyValue", "", "The filePrefix '%s' cannot be used: %v.", in.FilePrefix, err)
	}
	return &RestorePlan{Target: spec}, nil
}

// openTarget opens a sealed target URL (bound to context) and parses it
// again against the allowed local directories; notAllowed is the error code
// of a directory that is no longer allowed.
func (s *Service) openTarget(t SealedTarget, context string, allowed []string, notAllowed string) (target.Spec, error) {
	uri := t.Location
	if t.Kind == target.KindBlobContainer {
		var err error
		if uri, err = s.secrets.Open(t.SealedURL, context); err != nil {
			return target.Spec{}, &Error{Kind: KindInvalid, Code: "TargetUnreadable", Err: err,
				Message: "The SAS URL of the target cannot be decrypted: pgvault's secrets key is not the one it was stored with. Start again."}
		}
	}
	spec, err := target.Parse(uri, allowed)
	if err != nil {
		code := "InvalidSasUri"
		if errors.Is(err, target.ErrNotAllowed) {
			code = notAllowed
		}
		return target.Spec{}, &Error{Kind: KindInvalid, Code: code, Message: fmt.Sprintf("The target %s cannot be used any more: %v.", t.Location, err)}
	}
	return spec, nil
}

// checkRestoreTarget runs the checks that need a look at the world: the
// vault identity holds Storage Blob Data Contributor on a blob target's
// storage account or container, and the target folder is empty.
func (s *Service) checkRestoreTarget(ctx context.Context, in *RestoreJobInput) error {
	if in.Target.Kind == target.KindBlobContainer {
		principal, err := s.vaultPrincipal(ctx, in.VaultID, "Storage Blob Data Contributor on the restore target")
		if err != nil {
			return err
		}
		ok, err := s.CheckDataAccess(ctx, principal, actionWriteBlobs, in.TargetResourceID)
		if err != nil {
			return err
		}
		if !ok {
			e := invalid("UserErrorMSIMissingPermissions", "", "The backup vault's identity lacks permissions on the restore target: grant it Storage Blob Data Contributor on %s.", in.TargetResourceID)
			return userFacing(e,
				[]string{"Grant the backup vault's identity the 'Storage Blob Data Contributor' role on the target storage account or container, then retry the operation."},
				&InnerError{Code: "UserErrorMSIMissingPermissions", AdditionalInfo: map[string]string{
					"DetailedNonLocalisedMessage": fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform data action '%s' over scope '%s'.",
						principal, principal, actionWriteBlobs, in.TargetResourceID),
				}})
		}
	}
	plan, err := s.RestorePlan(ctx, *in)
	if err != nil {
		return err
	}
	if plan.DataDir != nil {
		if err := CheckRestoreTargetEmpty(ctx, *plan.DataDir); err != nil {
			return err
		}
		return CheckRestoreTargetEmpty(ctx, *plan.TablespaceRoot)
	}
	return CheckRestoreTargetEmpty(ctx, plan.Target)
}

// CheckRestoreTargetEmpty fails with UserErrorRestoreTargetAlreadyExists
// when the target folder holds anything, and with
// UserErrorRestoreTargetNotAccessible when it cannot be looked into.
func CheckRestoreTargetEmpty(ctx context.Context, spec target.Spec) error {
	empty, err := target.Empty(ctx, spec)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &Error{Kind: KindInvalid, Code: "UserErrorRestoreTargetNotAccessible", Err: err,
			Message: fmt.Sprintf("The restore target %s cannot be looked into: %v.", spec.Location(), err)}
	}
	if !empty {
		return &Error{Kind: KindConflict, Code: "UserErrorRestoreTargetAlreadyExists",
			Message: fmt.Sprintf("The restore target %s already holds files; pgvault restores only into an empty folder (recoveryOption FailIfExists). Give another filePrefix or an empty container or directory.", spec.Location())}
	}
	return nil
}

// runValidateRestore checks access and the target; nothing is queued.
func (s *Service) runValidateRestore(ctx context.Context, op *store.Operation) (any, error) {
	var in RestoreJobInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding operation input: %w", err)
	}
	if err := s.checkRestoreTarget(ctx, &in); err != nil {
		return nil, err
	}
	return operationResult{ObjectType: "OperationJobExtendedInfo"}, nil
}

// runTriggerRestore checks access and the target, then queues the restore
// job (once: a resumed operation finds the job it queued).
func (s *Service) runTriggerRestore(ctx context.Context, op *store.Operation) (any, error) {
	var in RestoreJobInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding operation input: %w", err)
	}
	result := operationResult{ObjectType: "OperationJobExtendedInfo", JobID: in.VaultID + "/backupJobs/" + in.JobID}
	if _, err := s.store.JobGet(ctx, in.JobID); err == nil {
		return result, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, storeErr("reading job", err)
	}
	if err := s.checkRestoreTarget(ctx, &in); err != nil {
		return nil, err
	}
	input, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("while encoding job input: %w", err)
	}
	job := &store.Job{ID: in.JobID, Kind: JobKindRestore, Subscription: op.Subscription, ResourceID: in.VaultID,
		ExclusiveKey: in.exclusiveKey(), Status: store.JobQueued, Input: input, MaxAttempts: 1, Created: s.nowUTC()}
	err = s.store.JobCreate(ctx, job)
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, newError(KindConflict, "UserErrorRestoreTargetAlreadyExists", "",
			"Another restore into %s is queued or running.", in.Destination)
	}
	if err != nil {
		return nil, storeErr("queueing a restore job", err)
	}
	if s.jobQueued != nil {
		s.jobQueued()
	}
	return result, nil
}

// Server state of a restored server that was not started.
const ServerStopped = "Stopped"

// RegisterRestoredServer registers the new server of a finished restore as
// a flexibleServers resource, so that it can be protected in turn: at
// 127.0.0.1 on the restore's port, with the source server's login and
// password (the restored cluster has the source's roles). A started server
// is probed (Ready, with its version and system identifier); one left
// stopped is Stopped, with major its major version.
func (s *Service) RegisterRestoredServer(ctx context.Context, in RestoreJobInput, major int) (*Server, error) {
	n := in.NewServer
	if n == nil {
		return nil, errors.New("vault: the restore has no new server")
	}
	sr, err := s.store.ResourceGet(ctx, in.ServerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(KindNotFound, "UserErrorDatasourceNotFound", "",
			"The source server %s was deleted: its login, which the restored server shares, is unknown. Register %s by hand.", in.ServerID, n.ServerID)
	}
	if err != nil {
		return nil, storeErr("reading server", err)
	}
	src, err := decodeServer(sr)
	if err != nil {
		return nil, err
	}
	password, err := s.secrets.Open(src.SealedPassword, src.ID)
	if err != nil {
		return nil, unreadablePassword(src.Name, err)
	}
	sub, rg, _, _ := parseServerID(n.ServerID)
	ext := ServerExtension{Port: n.Port, SSLMode: "prefer", Database: "postgres"}
	if src.Properties.Pgvault != nil && src.Properties.Pgvault.Database != "" {
		ext.Database = src.Properties.Pgvault.Database
	}
	now := s.nowUTC()
	ext.LastCheckedAt = &now
	props := ServerProperties{FullyQualifiedDomainName: "127.0.0.1", AdministratorLogin: src.Properties.AdministratorLogin,
		Version: fmt.Sprint(major), State: ServerStopped, Pgvault: &ext}
	if n.Start {
		info, err := pg.Probe(ctx, pg.Conn{Host: "127.0.0.1", Port: n.Port, User: src.Properties.AdministratorLogin, Password: password,
			Database: ext.Database, SSLMode: ext.SSLMode})
		if err != nil {
			return nil, serverCheckError(err, n.Name)
		}
		props.Version, props.MinorVersion, props.State, ext.SystemIdentifier = fmt.Sprint(info.Major), info.Version, ServerReady, info.SystemIdentifier
	} else {
		ext.StateReason = "restored by pgvault and not started: start it with pg_ctl -D " + n.DataDirectory() + " start"
	}
	rec := &serverRecord{Server: Server{ID: n.ServerID, Name: n.Name, Type: TypeServer, Location: n.Location,
		Tags:       map[string]string{"pgvault-restored-from": in.InstanceID + "/recoveryPoints/" + in.RecoveryPointID},
		SystemData: &SystemData{CreatedBy: "pgvault", CreatedByType: "Application", CreatedAt: now, LastModifiedBy: "pgvault", LastModifiedByType: "Application", LastModifiedAt: now},
		Properties: props}}
	rec.SealedPassword = s.secrets.Seal(password, n.ServerID)
	if err := s.writeServer(ctx, sub, ResourceGroupID(sub, rg), rec, store.PutOptions{IfNoneMatch: true}); err != nil {
		return nil, err
	}
	out := rec.Server
	return &out, nil
}
