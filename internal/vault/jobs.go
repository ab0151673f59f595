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

// JobResource is a backup job (AzureBackupJobResource).
type JobResource struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Properties AzureJob `json:"properties"`
}

// AzureJob is an AzureBackupJob.
type AzureJob struct {
	ActivityID                 string             `json:"activityID"`
	BackupInstanceFriendlyName string             `json:"backupInstanceFriendlyName"`
	BackupInstanceID           string             `json:"backupInstanceId"`
	DataSourceID               string             `json:"dataSourceId"`
	DataSourceLocation         string             `json:"dataSourceLocation"`
	DataSourceName             string             `json:"dataSourceName"`
	DataSourceSetName          string             `json:"dataSourceSetName,omitempty"`
	DataSourceType             string             `json:"dataSourceType"`
	Duration                   string             `json:"duration,omitempty"`
	StartTime                  time.Time          `json:"startTime"`
	EndTime                    *time.Time         `json:"endTime,omitempty"`
	ErrorDetails               []*UserFacingError `json:"errorDetails,omitempty"`
	ExtendedInfo               *JobExtendedInfo   `json:"extendedInfo,omitempty"`
	IsUserTriggered            bool               `json:"isUserTriggered"`
	Operation                  string             `json:"operation"`
	OperationCategory          string             `json:"operationCategory"`
	PolicyID                   string             `json:"policyId,omitempty"`
	PolicyName                 string             `json:"policyName,omitempty"`
	RestoreType                string             `json:"restoreType,omitempty"`
	ProgressEnabled            bool               `json:"progressEnabled"`
	SourceResourceGroup        string             `json:"sourceResourceGroup"`
	SourceSubscriptionID       string             `json:"sourceSubscriptionID"`
	Status                     string             `json:"status"`
	SubscriptionID             string             `json:"subscriptionId"`
	SupportedActions           []string           `json:"supportedActions"`
	VaultName                  string             `json:"vaultName"`
	SourceDataStoreName        string             `json:"sourceDataStoreName,omitempty"`
	DestinationDataStoreName   string             `json:"destinationDataStoreName,omitempty"`
}

// JobExtendedInfo is a job's JobExtendedInfo.
type JobExtendedInfo struct {
	AdditionalDetails      map[string]string `json:"additionalDetails,omitempty"`
	BackupInstanceState    string            `json:"backupInstanceState,omitempty"`
	DataTransferredInBytes float64           `json:"dataTransferredInBytes"`
	RecoveryDestination    string            `json:"recoveryDestination,omitempty"`
	SourceRecoverPoint     *JobRecoveryPoint `json:"sourceRecoverPoint,omitempty"`
	SubTasks               []JobSubTask      `json:"subTasks,omitempty"`
}

// JobRecoveryPoint is a RestoreJobRecoveryPointDetails: the recovery point
// a restore job restores.
type JobRecoveryPoint struct {
	RecoveryPointID   string    `json:"recoveryPointID"`
	RecoveryPointTime time.Time `json:"recoveryPointTime"`
}

// JobSubTask is a step of a job.
type JobSubTask struct {
	TaskID       int32  `json:"taskId"`
	TaskName     string `json:"taskName"`
	TaskStatus   string `json:"taskStatus"`
	TaskProgress string `json:"taskProgress,omitempty"`
}

// azureJobStatus maps queue statuses to what Azure shows.
func azureJobStatus(status string) string {
	switch status {
	case store.JobSucceeded:
		return JobStatusCompleted
	case store.JobFailed:
		return JobStatusFailed
	case store.JobCanceled:
		return JobStatusCancelled
	}
	return JobStatusInProgress
}

// jobResource describes a queued job as Azure does.
func (s *Service) jobResource(j *store.Job) (*JobResource, error) {
	if j.Kind == JobKindRestore {
		return s.restoreJobResource(j)
	}
	var in BackupJobInput
	if err := json.Unmarshal(j.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding job %s: %w", j.ID, err)
	}
	aj := newAzureJob(j, in.VaultID, in.ServerID, in.ServerName, in.ServerLocation, in.InstanceID, in.InstanceName)
	aj.IsUserTriggered, aj.OperationCategory = in.UserTriggered, "Backup"
	aj.PolicyID, aj.PolicyName, aj.DestinationDataStoreName = in.PolicyID, in.PolicyName, "VaultStore"
	if in.UserTriggered {
		aj.Operation = "OnDemandBackup"
	} else {
		aj.Operation = "ScheduledBackup"
	}
	ext := aj.ExtendedInfo
	ext.AdditionalDetails["PolicyRuleName"] = in.RuleName
	if in.RetentionTag != "" {
		ext.AdditionalDetails["RetentionTag"] = in.RetentionTag
	}
	if in.ScheduledFor != nil {
		ext.AdditionalDetails["ScheduledFor"] = in.ScheduledFor.UTC().Format(time.RFC3339)
	}
	if len(j.Result) > 0 {
		var res BackupJobResult
		if err := json.Unmarshal(j.Result, &res); err == nil {
			ext.DataTransferredInBytes = float64(res.DataBytes)
			ext.AdditionalDetails["RecoveryPointId"] = res.RecoveryPointID
			if res.RetentionTag != "" {
				ext.AdditionalDetails["RetentionTag"] = res.RetentionTag
			}
			ext.AdditionalDetails["StoredBytes"] = fmt.Sprint(res.StoredBytes)
		}
	}
	return &JobResource{ID: in.VaultID + "/backupJobs/" + j.ID, Name: j.ID, Type: TypeJob, Properties: *aj}, nil
}

// restoreJobResource describes a restore job: operation Restore, the
// recovery point restored and where to.
func (s *Service) restoreJobResource(j *store.Job) (*JobResource, error) {
	var in RestoreJobInput
	if err := json.Unmarshal(j.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding job %s: %w", j.ID, err)
	}
	aj := newAzureJob(j, in.VaultID, in.ServerID, in.ServerName, in.ServerLocation, in.InstanceID, in.InstanceName)
	aj.IsUserTriggered, aj.Operation, aj.OperationCategory, aj.SourceDataStoreName = true, "Restore", "Restore", "VaultStore"
	aj.RestoreType = "RecoveryPointBasedRestore"
	ext := aj.ExtendedInfo
	ext.RecoveryDestination = in.Destination
	ext.SourceRecoverPoint = &JobRecoveryPoint{RecoveryPointID: in.RecoveryPointID, RecoveryPointTime: in.RecoveryPointTime}
	ext.AdditionalDetails["RecoveryPointId"] = in.RecoveryPointID
	if len(j.Result) > 0 {
		var res RestoreJobResult
		if err := json.Unmarshal(j.Result, &res); err == nil {
			ext.DataTransferredInBytes = float64(res.Bytes)
			if res.ServerID != "" {
				ext.AdditionalDetails["ServerId"] = res.ServerID
			} else {
				ext.AdditionalDetails["Files"] = fmt.Sprint(len(res.Files))
			}
		}
	}
	return &JobResource{ID: in.VaultID + "/backupJobs/" + j.ID, Name: j.ID, Type: TypeJob, Properties: *aj}, nil
}

// newAzureJob fills in what backup and restore jobs share: names, times,
// status, progress and errors.
func newAzureJob(j *store.Job, vaultID, serverID, serverName, serverLocation, instanceID, instanceName string) *AzureJob {
	srvSub, srvRG, _, _ := parseServerID(serverID)
	start := j.Created
	if !j.Started.IsZero() {
		start = j.Started
	}
	aj := &AzureJob{
		ActivityID: j.ID, BackupInstanceFriendlyName: instanceName, BackupInstanceID: instanceID,
		DataSourceID: serverID, DataSourceLocation: serverLocation, DataSourceName: serverName, DataSourceSetName: serverName,
		DataSourceType: DatasourceType, StartTime: start, ProgressEnabled: true,
		SourceResourceGroup: srvRG, SourceSubscriptionID: srvSub, Status: azureJobStatus(j.Status), SubscriptionID: j.Subscription,
		SupportedActions: []string{}, VaultName: vaultID[strings.LastIndex(vaultID, "/")+1:],
	}
	ext := &JobExtendedInfo{AdditionalDetails: map[string]string{}}
	var prog JobProgress
	if len(j.Progress) > 0 {
		_ = json.Unmarshal(j.Progress, &prog)
		ext.DataTransferredInBytes = float64(prog.BytesDone)
		if prog.Phase != "" {
			ext.AdditionalDetails["Phase"] = prog.Phase
		}
		if prog.BytesTotal > 0 {
			ext.AdditionalDetails["BytesTotal"] = fmt.Sprint(prog.BytesTotal)
		}
	}
	aj.ExtendedInfo = ext
	if !j.Ended.IsZero() {
		end := j.Ended
		aj.EndTime = &end
		aj.Duration = end.Sub(start).Round(time.Millisecond).String()
	} else if j.Status == store.JobQueued {
		aj.SupportedActions = []string{"Cancellable"}
	}
	if len(j.Error) > 0 {
		var e struct{ Code, Message string }
		_ = json.Unmarshal(j.Error, &e)
		aj.ErrorDetails = []*UserFacingError{{Code: e.Code, Message: e.Message}}
	}
	return aj
}

// Job returns a backup job of a vault.
func (s *Service) Job(ctx context.Context, sub, rg, vaultName, id string) (*JobResource, error) {
	v, err := s.Vault(ctx, sub, rg, vaultName)
	if err != nil {
		return nil, err
	}
	j, err := s.store.JobGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !strings.EqualFold(j.ResourceID, v.ID)) {
		return nil, newError(KindNotFound, "ResourceNotFound", "jobId", "The job '%s' was not found in backup vault '%s'.", id, vaultName)
	}
	if err != nil {
		return nil, storeErr("reading job", err)
	}
	return s.jobResource(j)
}

// ListJobs lists a vault's jobs, newest first.
func (s *Service) ListJobs(ctx context.Context, sub, rg, vaultName, after string, pageSize int) (Page[*JobResource], error) {
	v, err := s.Vault(ctx, sub, rg, vaultName)
	if err != nil {
		return Page[*JobResource]{}, err
	}
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	js, err := s.store.JobList(ctx, store.JobListParams{ResourceID: v.ID, After: after, Limit: pageSize + 1})
	if err != nil {
		return Page[*JobResource]{}, storeErr("listing jobs", err)
	}
	var page Page[*JobResource]
	if len(js) > pageSize {
		js = js[:pageSize]
		page.Next = js[pageSize-1].ID
	}
	for _, j := range js {
		jr, err := s.jobResource(j)
		if err != nil {
			return Page[*JobResource]{}, err
		}
		page.Items = append(page.Items, jr)
	}
	return page, nil
}
