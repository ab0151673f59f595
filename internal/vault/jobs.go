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
	SubTasks               []JobSubTask      `json:"subTasks,omitempty"`
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
	var in BackupJobInput
	if err := json.Unmarshal(j.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding job %s: %w", j.ID, err)
	}
	srvSub, srvRG, _, _ := parseServerID(in.ServerID)
	vaultName := in.VaultID[strings.LastIndex(in.VaultID, "/")+1:]
	start := j.Created
	if !j.Started.IsZero() {
		start = j.Started
	}
	aj := AzureJob{
		ActivityID: j.ID, BackupInstanceFriendlyName: in.InstanceName, BackupInstanceID: in.InstanceID,
		DataSourceID: in.ServerID, DataSourceLocation: in.ServerLocation, DataSourceName: in.ServerName, DataSourceSetName: in.ServerName,
		DataSourceType: DatasourceType, StartTime: start, IsUserTriggered: in.UserTriggered,
		Operation: "Backup", OperationCategory: "Backup", PolicyID: in.PolicyID, PolicyName: in.PolicyName, ProgressEnabled: true,
		SourceResourceGroup: srvRG, SourceSubscriptionID: srvSub, Status: azureJobStatus(j.Status), SubscriptionID: j.Subscription,
		SupportedActions: []string{}, VaultName: vaultName, DestinationDataStoreName: "VaultStore",
	}
	if in.UserTriggered {
		aj.Operation = "OnDemandBackup"
	} else {
		aj.Operation = "ScheduledBackup"
	}
	ext := &JobExtendedInfo{AdditionalDetails: map[string]string{"RetentionTag": in.RetentionTag, "PolicyRuleName": in.RuleName}}
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
	if len(j.Result) > 0 {
		var res BackupJobResult
		if err := json.Unmarshal(j.Result, &res); err == nil {
			ext.DataTransferredInBytes = float64(res.DataBytes)
			ext.AdditionalDetails["RecoveryPointId"] = res.RecoveryPointID
			ext.AdditionalDetails["StoredBytes"] = fmt.Sprint(res.StoredBytes)
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
	return &JobResource{ID: in.VaultID + "/backupJobs/" + j.ID, Name: j.ID, Type: TypeJob, Properties: aj}, nil
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
