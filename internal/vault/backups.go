package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/store"
)

// Job kinds and the type of recovery points.
const (
	JobKindBackup     = "backup"
	TypeRecoveryPoint = "Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints"
	TypeJob           = "Microsoft.DataProtection/backupVaults/backupJobs"
	opAdhocBackup     = "instance.backup"
)

// Azure job statuses as pgvault reports them.
const (
	JobStatusInProgress = "InProgress"
	JobStatusCompleted  = "Completed"
	JobStatusFailed     = "Failed"
	JobStatusCancelled  = "Cancelled"
)

// BackupJobInput is what a backup job needs; the job runner reads it.
type BackupJobInput struct {
	InstanceID string `json:"instanceId"`
	VaultID    string `json:"vaultId"`
	ServerID   string `json:"serverId"`
	PolicyID   string `json:"policyId"`
	RuleName   string `json:"ruleName"`
	// RetentionTag overrides the policy's tagging criteria (an on-demand
	// backup's retentionTagOverride); "" tags by the criteria.
	RetentionTag  string `json:"retentionTag"`
	UserTriggered bool   `json:"userTriggered"`
	// ScheduledFor is the due time of a scheduled backup.
	ScheduledFor *time.Time `json:"scheduledFor,omitempty"`

	// Names kept for the job's description after the resources are gone.
	InstanceName   string `json:"instanceName"`
	ServerName     string `json:"serverName"`
	ServerLocation string `json:"serverLocation"`
	PolicyName     string `json:"policyName"`
}

// JobProgress is what a running job reports.
type JobProgress struct {
	Phase      string `json:"phase,omitempty"`
	BytesDone  int64  `json:"bytesDone"`
	BytesTotal int64  `json:"bytesTotal,omitempty"`
}

// BackupJobResult is what a finished backup job recorded.
type BackupJobResult struct {
	RecoveryPointID string `json:"recoveryPointId"`
	RetentionTag    string `json:"retentionTag,omitempty"`
	SnapshotID      string `json:"snapshotId"`
	DataBytes       int64  `json:"dataBytes"`
	StoredBytes     int64  `json:"storedBytes"`
}

// AdhocBackup starts an on-demand backup of a protected instance as an
// operation whose result names the backup job. A second backup while one
// is queued or running fails with UserErrorMaxConcurrentOperationLimitReached.
func (s *Service) AdhocBackup(ctx context.Context, sub, rg, vaultName, name, ruleName, retentionTag string) (*store.Operation, error) {
	bi, err := s.instance(ctx, sub, rg, vaultName, name)
	if err != nil {
		return nil, err
	}
	switch bi.Properties.CurrentProtectionState {
	case ProtectionConfigured, BackupSchedulesSuspended:
	default:
		return nil, newError(KindConflict, "UserErrorInvalidProtectionState", "backupInstanceName",
			"The backup instance '%s' is %s; it must be ProtectionConfigured to be backed up.", name, bi.Properties.CurrentProtectionState)
	}
	pol, err := s.policyByID(ctx, bi.Properties.PolicyInfo.PolicyID)
	if err != nil {
		return nil, err
	}
	if ruleName == "" {
		return nil, invalid("MissingProperty", "backupRuleOptions.ruleName", "The backup rule name is required (the AzureBackupRule of the policy, e.g. BackupWeekly).")
	}
	var rule *PolicyRule
	for i := range pol.Properties.PolicyRules {
		if r := &pol.Properties.PolicyRules[i]; r.ObjectType == ObjectBackupRule && strings.EqualFold(r.Name, ruleName) {
			rule = r
		}
	}
	if rule == nil {
		return nil, invalid("UserErrorBackupRuleNotFound", "backupRuleOptions.ruleName", "The policy '%s' has no backup rule named '%s'.", pol.Name, ruleName)
	}
	tag := "" // tagged by the policy's criteria, as a scheduled backup
	if retentionTag != "" {
		found := false
		for _, r := range pol.Properties.PolicyRules {
			if r.ObjectType == ObjectRetentionRule && strings.EqualFold(r.Name, retentionTag) {
				tag, found = r.Name, true
			}
		}
		if !found {
			return nil, invalid("UserErrorRetentionTagNotFound", "backupRuleOptions.triggerOption.retentionTagOverride",
				"The policy '%s' has no retention rule '%s'.", pol.Name, retentionTag)
		}
	}
	ds := bi.Properties.DataSourceInfo
	in := BackupJobInput{InstanceID: bi.ID, VaultID: bi.ID[:strings.LastIndex(strings.ToLower(bi.ID), "/backupinstances/")],
		ServerID: ds.ResourceID, PolicyID: pol.ID, RuleName: rule.Name, RetentionTag: tag, UserTriggered: true,
		InstanceName: bi.Name, ServerName: ds.ResourceName, ServerLocation: ds.ResourceLocation, PolicyName: pol.Name}
	return s.startOperation(ctx, sub, opAdhocBackup, bi.ID, in)
}

// runAdhocBackup queues the backup job; the operation's result names it.
func (s *Service) runAdhocBackup(ctx context.Context, op *store.Operation) (any, error) {
	var in BackupJobInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding operation input: %w", err)
	}
	job, err := s.QueueBackup(ctx, op.Subscription, in, "")
	if err != nil {
		return nil, err
	}
	return operationResult{ObjectType: "OperationJobExtendedInfo", JobID: in.VaultID + "/backupJobs/" + job.ID}, nil
}

// QueueBackup queues a backup job for an instance. idempotencyKey (e.g. a
// schedule's due time) makes queueing the same backup twice impossible.
func (s *Service) QueueBackup(ctx context.Context, sub string, in BackupJobInput, idempotencyKey string) (*store.Job, error) {
	job, err := s.queueBackup(ctx, sub, in, idempotencyKey)
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, invalid("UserErrorMaxConcurrentOperationLimitReached", "",
			"A backup of this backup instance is already queued or running; wait for it to finish before starting another.")
	}
	return job, err
}

// queueBackup is QueueBackup returning store.ErrAlreadyExists when the key
// was used or the instance's backup is queued or running.
func (s *Service) queueBackup(ctx context.Context, sub string, in BackupJobInput, idempotencyKey string) (*store.Job, error) {
	input, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("while encoding job input: %w", err)
	}
	job := &store.Job{
		ID: newUUID(), Kind: JobKindBackup, Subscription: sub, ResourceID: in.VaultID,
		IdempotencyKey: idempotencyKey, ExclusiveKey: "backup:" + strings.ToLower(in.InstanceID),
		Status: store.JobQueued, Input: input, MaxAttempts: 1, Created: s.nowUTC(),
	}
	err = s.store.JobCreate(ctx, job)
	if err != nil {
		return nil, storeErr("queueing a backup job", err)
	}
	if s.jobQueued != nil {
		s.jobQueued()
	}
	return job, nil
}

func (s *Service) policyByID(ctx context.Context, id string) (*Policy, error) {
	r, err := s.store.ResourceGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(KindNotFound, "UserErrorPolicyNotFound", "policyInfo.policyId", "The policy '%s' of the backup instance no longer exists.", id)
	}
	if err != nil {
		return nil, storeErr("reading policy", err)
	}
	return decodePolicy(r)
}

// BackupTarget is what the job runner needs to back up an instance: how to
// reach the server and which vault's repository receives the backup.
type BackupTarget struct {
	Conn     pg.Conn
	VaultID  string
	Instance *BackupInstanceResource
	Server   *Server
}

// BackupTarget resolves a backup job's input.
func (s *Service) BackupTarget(ctx context.Context, in BackupJobInput) (*BackupTarget, error) {
	ir, err := s.store.ResourceGet(ctx, in.InstanceID)
	if err != nil {
		return nil, storeErr("reading backup instance", err)
	}
	bi, err := decodeInstance(ir)
	if err != nil {
		return nil, err
	}
	sr, err := s.store.ResourceGet(ctx, in.ServerID)
	if err != nil {
		return nil, storeErr("reading server", err)
	}
	srv, err := decodeServer(sr)
	if err != nil {
		return nil, err
	}
	conn, err := s.conn(srv)
	if err != nil {
		return nil, err
	}
	return &BackupTarget{Conn: conn, VaultID: in.VaultID, Instance: bi, Server: &srv.Server}, nil
}

// --- recovery points ---

// RecoveryPointResource is a recovery point (AzureBackupRecoveryPointResource).
type RecoveryPointResource struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Type       string        `json:"type"`
	Properties RecoveryPoint `json:"properties"`
}

// RecoveryPoint is an AzureBackupDiscreteRecoveryPoint, plus pgvault's
// description of the backup in the Pgvault extension.
type RecoveryPoint struct {
	ObjectType                     string                   `json:"objectType"`
	RecoveryPointID                string                   `json:"recoveryPointId"`
	FriendlyName                   string                   `json:"friendlyName,omitempty"`
	RecoveryPointTime              time.Time                `json:"recoveryPointTime"`
	RecoveryPointType              string                   `json:"recoveryPointType"`
	PolicyName                     string                   `json:"policyName,omitempty"`
	PolicyVersion                  string                   `json:"policyVersion,omitempty"`
	RetentionTagName               string                   `json:"retentionTagName,omitempty"`
	RetentionTagVersion            string                   `json:"retentionTagVersion,omitempty"`
	ExpiryTime                     *time.Time               `json:"expiryTime,omitempty"`
	RecoveryPointState             string                   `json:"recoveryPointState"`
	RecoveryPointDataStoresDetails []RecoveryPointDataStore `json:"recoveryPointDataStoresDetails"`
	Pgvault                        *RecoveryPointExtension  `json:"pgvault,omitempty"`
}

// RecoveryPointDataStore is a RecoveryPointDataStoreDetails.
type RecoveryPointDataStore struct {
	ID           string     `json:"id"`
	Type         string     `json:"type"`
	CreationTime time.Time  `json:"creationTime"`
	ExpiryTime   *time.Time `json:"expiryTime,omitempty"`
	MetaData     string     `json:"metaData,omitempty"`
	State        string     `json:"state"`
	Visible      bool       `json:"visible"`
}

// RecoveryPointExtension describes the physical backup behind a recovery point.
type RecoveryPointExtension struct {
	SnapshotID       string `json:"snapshotId"`
	StartLSN         string `json:"startLsn"`
	EndLSN           string `json:"endLsn"`
	Timeline         int32  `json:"timeline"`
	SystemIdentifier string `json:"systemIdentifier"`
	ServerVersion    string `json:"serverVersion"`
	DataBytes        int64  `json:"dataBytes"`
	StoredBytes      int64  `json:"storedBytes"`
	JobID            string `json:"jobId"`
}

// RecordRecoveryPoint stores the recovery point of a finished backup, with
// the retention tag and expiry time its instance's policy gives it (see
// tagRecoveryPoint). The repository's snapshot manifest exists before this
// is called: the metadata follows the data, never the other way round.
func (s *Service) RecordRecoveryPoint(ctx context.Context, in BackupJobInput, rp RecoveryPoint) (*RecoveryPointResource, error) {
	sub := strings.Split(strings.TrimPrefix(in.InstanceID, "/subscriptions/"), "/")[0]
	ir, err := s.store.ResourceGet(ctx, in.InstanceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(KindNotFound, "ResourceNotFound", "", "The backup instance %s was deleted while it was being backed up.", in.InstanceID)
	}
	if err != nil {
		return nil, storeErr("reading backup instance", err)
	}
	bi, err := decodeInstance(ir)
	if err != nil {
		return nil, err
	}
	pol, err := s.policyByID(ctx, bi.Properties.PolicyInfo.PolicyID)
	if err != nil {
		return nil, err
	}
	if err := s.tagRecoveryPoint(ctx, pol, bi.ID, in.RetentionTag, &rp); err != nil {
		return nil, err
	}
	rp.PolicyName = pol.Name
	id := newHexID()
	rp.ObjectType, rp.RecoveryPointID = "AzureBackupDiscreteRecoveryPoint", id
	rp.RecoveryPointType, rp.RecoveryPointState = "Full", "Completed"
	if rp.FriendlyName == "" {
		rp.FriendlyName = id
	}
	res := &RecoveryPointResource{ID: in.InstanceID + "/recoveryPoints/" + id, Name: id, Type: TypeRecoveryPoint, Properties: rp}
	body, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("while encoding recovery point: %w", err)
	}
	now := s.nowUTC()
	err = s.store.ResourcePut(ctx, &store.Resource{ID: res.ID, Type: TypeRecoveryPoint, Parent: in.InstanceID, Subscription: sub, Name: id,
		Body: body, ETag: newETag(), Created: now, Updated: now}, store.PutOptions{IfNoneMatch: true})
	if errors.Is(err, store.ErrParentNotFound) {
		return nil, newError(KindNotFound, "ResourceNotFound", "", "The backup instance %s was deleted while it was being backed up.", in.InstanceID)
	}
	if err != nil {
		return nil, storeErr("recording a recovery point", err)
	}
	return res, nil
}

func newHexID() string { return strings.ReplaceAll(newUUID(), "-", "") }

// RecoveryPoint returns a recovery point of an instance.
func (s *Service) RecoveryPoint(ctx context.Context, sub, rg, vaultName, instance, id string) (*RecoveryPointResource, error) {
	bi, err := s.instance(ctx, sub, rg, vaultName, instance)
	if err != nil {
		return nil, err
	}
	r, err := s.store.ResourceGet(ctx, bi.ID+"/recoveryPoints/"+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(KindNotFound, "ResourceNotFound", "recoveryPointId", "The recovery point '%s' was not found.", id)
	}
	if err != nil {
		return nil, storeErr("reading recovery point", err)
	}
	return decodeRecoveryPoint(r)
}

func decodeRecoveryPoint(r *store.Resource) (*RecoveryPointResource, error) {
	var rp RecoveryPointResource
	if err := json.Unmarshal(r.Body, &rp); err != nil {
		return nil, fmt.Errorf("while decoding recovery point %q: %w", r.ID, err)
	}
	rp.ID, rp.Name = r.ID, r.Name
	return &rp, nil
}

// ListRecoveryPoints lists an instance's recovery points; filter is an
// OData $filter (see parseRecoveryPointFilter), "" for all.
func (s *Service) ListRecoveryPoints(ctx context.Context, sub, rg, vaultName, instance, filter, after string, pageSize int) (Page[*RecoveryPointResource], error) {
	f, e := parseRecoveryPointFilter(filter)
	if e != nil {
		return Page[*RecoveryPointResource]{}, e
	}
	bi, err := s.instance(ctx, sub, rg, vaultName, instance)
	if err != nil {
		return Page[*RecoveryPointResource]{}, err
	}
	if strings.TrimSpace(filter) != "" {
		return s.filteredPage(ctx, bi.ID, f, after, pageSize)
	}
	return listPage(ctx, s.store, store.ListParams{Type: TypeRecoveryPoint, Parent: bi.ID, After: after}, pageSize, decodeRecoveryPoint)
}
