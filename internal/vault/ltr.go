package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/target"
)

// Long-term-retention backups (startLtrBackup, ltrBackupOperations).
//
// StartLtrBackup checks the request, records the ltrBackupOperations
// resource (status Running), a long-running operation and a job of kind
// JobKindLtrBackup. The job runner streams the base backup into the
// targets, reporting progress with LtrBackupProgress, and ends the job with
// an LtrBackupJobResult. The operation watches the job: when it ends, the
// operation moves the resource to Succeeded (with its backupMetadata) or
// Failed, and finishes. Secrets (SAS URLs) are kept only sealed, in the
// job's input.

// Job and operation kinds of LTR backups.
const (
	JobKindLtrBackup = "ltrbackup"
	opLtrBackup      = "ltr.backup"
)

// LTR backup statuses (ExecutionStatus).
const (
	LtrRunning   = "Running"
	LtrSucceeded = "Succeeded"
	LtrFailed    = "Failed"
)

// LtrMetadataFormat names the format of backupMetadata.
const LtrMetadataFormat = "pgvault-ltr/1"

// ltrBackupID is the ID of a server's LTR backup resource.
func ltrBackupID(serverID, backupName string) string {
	return serverID + "/ltrBackupOperations/" + backupName
}

// IsLtrOperation reports whether op is a long-term-retention backup, whose
// status and result are served by Microsoft.DBforPostgreSQL's endpoints.
func IsLtrOperation(op *store.Operation) bool { return op.Kind == opLtrBackup }

// LtrBackupOperation is an LtrServerBackupOperation resource.
type LtrBackupOperation struct {
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	Type       string              `json:"type"`
	SystemData *SystemData         `json:"systemData,omitempty"`
	Properties LtrBackupProperties `json:"properties"`
}

// LtrBackupProperties are LtrBackupOperationResponseProperties.
type LtrBackupProperties struct {
	DatasourceSizeInBytes  int64      `json:"datasourceSizeInBytes"`
	DataTransferredInBytes int64      `json:"dataTransferredInBytes"`
	BackupName             string     `json:"backupName"`
	BackupMetadata         string     `json:"backupMetadata,omitempty"`
	Status                 string     `json:"status"`
	StartTime              time.Time  `json:"startTime"`
	EndTime                *time.Time `json:"endTime,omitempty"`
	PercentComplete        float64    `json:"percentComplete"`
	ErrorCode              string     `json:"errorCode,omitempty"`
	ErrorMessage           string     `json:"errorMessage,omitempty"`
}

// LtrBackupResponse is the result of a finished startLtrBackup operation.
type LtrBackupResponse struct {
	Properties LtrBackupProperties `json:"properties"`
}

// ltrRecord is an LTR backup as stored.
type ltrRecord struct {
	LtrBackupOperation
	OperationID string `json:"operationId"`
	JobID       string `json:"jobId"`
}

// LtrBackupJobInput is what an LTR backup job needs; the job runner reads it.
type LtrBackupJobInput struct {
	ServerID   string         `json:"serverId"`
	BackupName string         `json:"backupName"`
	ResourceID string         `json:"resourceId"`
	Targets    []SealedTarget `json:"targets"`
}

// LtrArchive is one archive of a finished LTR backup and where it went.
type LtrArchive struct {
	// Name is the archive's name, as pg_basebackup -Ft names its files:
	// base.tar, <oid>.tar, backup_manifest.
	Name string `json:"name"`
	// TablespaceOID and TablespaceLocation describe the tablespace of an
	// <oid>.tar (the location on the source server).
	TablespaceOID      uint32 `json:"tablespaceOid,omitempty"`
	TablespaceLocation string `json:"tablespaceLocation,omitempty"`
	// Container is the index in sasUriList of the target that holds it, and
	// Location that target without secrets.
	Container int    `json:"container"`
	Location  string `json:"location"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`
}

// LtrBackupJobResult is what a finished LTR backup job reports.
type LtrBackupJobResult struct {
	ServerVersion    int          `json:"serverVersion"`
	SystemIdentifier string       `json:"systemIdentifier"`
	StartLSN         string       `json:"startLsn"`
	EndLSN           string       `json:"endLsn"`
	Timeline         int32        `json:"timeline"`
	EndTimeline      int32        `json:"endTimeline"`
	DatasourceBytes  int64        `json:"datasourceBytes"`
	Bytes            int64        `json:"bytes"`
	Archives         []LtrArchive `json:"archives"`
}

// ltrMetadata is the document in backupMetadata: what a restore needs.
type ltrMetadata struct {
	Format           string       `json:"format"`
	BackupName       string       `json:"backupName"`
	Method           string       `json:"method"`
	ServerVersion    string       `json:"serverVersion"`
	ServerVersionNum int          `json:"serverVersionNum"`
	SystemIdentifier string       `json:"systemIdentifier"`
	StartLSN         string       `json:"startLsn"`
	EndLSN           string       `json:"endLsn"`
	Timeline         int32        `json:"timeline"`
	EndTimeline      int32        `json:"endTimeline"`
	WALIncluded      bool         `json:"walIncluded"`
	ManifestChecksum string       `json:"manifestChecksums"`
	Archives         []LtrArchive `json:"archives"`
}

// ltrOpInput is the input of an LTR backup operation.
type ltrOpInput struct {
	ResourceID string `json:"resourceId"`
	JobID      string `json:"jobId"`
}

// LtrBackupStarted is the answer to StartLtrBackup.
type LtrBackupStarted struct {
	Operation *store.Operation
	// Location is the server's location (of the polling URLs).
	Location string
}

// checkLocalDirs checks the configured local target directories.
func checkLocalDirs(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("vault: the local target directory %q is not an absolute path", d)
		}
		fi, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("vault: the local target directory %s: %w", d, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("vault: the local target directory %s is not a directory", d)
		}
		out = append(out, filepath.Clean(d))
	}
	return out, nil
}

// StartLtrBackup starts a long-term-retention backup of a server into the
// given targets: it runs the checks of ltrPreBackup, checks that there are
// as many target URIs as the server needs containers and that each is a
// container SAS URL or an allowed file:// URL, records the
// ltrBackupOperations resource as Running and queues the job. The
// operation's result is an LtrBackupResponse.
func (s *Service) StartLtrBackup(ctx context.Context, sub, rg, name, backupName string, uris []string, by Principal) (*LtrBackupStarted, error) {
	if s.secrets == nil {
		return nil, errors.New("vault: no secret box configured: LTR backups cannot be started")
	}
	rec, err := s.ltrPrecheck(ctx, sub, rg, name, backupName)
	if err != nil {
		return nil, err
	}
	specs := make([]target.Spec, len(uris))
	for i, u := range uris {
		at := fmt.Sprintf("targetDetails.sasUriList[%d]", i)
		spec, err := target.Parse(u, s.localDirs)
		switch {
		case errors.Is(err, target.ErrNotAllowed):
			return nil, &Error{Kind: KindInvalid, Code: "LtrLocalTargetNotAllowed", Target: at,
				Message: fmt.Sprintf("sasUriList[%d] cannot be used: %v. A file:// URL must name a directory inside one of the directories the pgvault server allows (serve --ltr-local-dir).", i, err)}
		case err != nil:
			return nil, &Error{Kind: KindInvalid, Code: "InvalidSasUri", Target: at,
				Message: fmt.Sprintf("sasUriList[%d] cannot be used: %v.", i, err)}
		}
		specs[i] = spec
	}
	info, err := s.checkServer(ctx, rec)
	if err != nil {
		return nil, err
	}
	if n := ltrContainers(info); len(uris) != n {
		return nil, invalid("InvalidSasUriCount", "targetDetails.sasUriList",
			"The backup of server '%s' needs %d storage container(s), as ltrPreBackup answers in numberOfContainers; %d URI(s) were given in sasUriList.", rec.Name, n, len(uris))
	}

	now := s.nowUTC()
	resID := ltrBackupID(rec.ID, backupName)
	in := LtrBackupJobInput{ServerID: rec.ID, BackupName: backupName, ResourceID: resID}
	for i, spec := range specs {
		t := SealedTarget{Kind: spec.Kind, Location: spec.Location()}
		if spec.Kind == target.KindBlobContainer {
			t.SealedURL = s.secrets.Seal(spec.SASURL, ltrTargetContext(resID, i))
		}
		in.Targets = append(in.Targets, t)
	}
	lr := &ltrRecord{
		LtrBackupOperation: LtrBackupOperation{
			ID: resID, Name: backupName, Type: TypeLtrBackupOperation,
			SystemData: &SystemData{CreatedBy: by.ID, CreatedByType: by.Type, CreatedAt: now, LastModifiedBy: by.ID, LastModifiedByType: by.Type, LastModifiedAt: now},
			Properties: LtrBackupProperties{DatasourceSizeInBytes: info.DataSizeBytes, BackupName: backupName, Status: LtrRunning, StartTime: now},
		},
		OperationID: newOperationID(), JobID: newUUID(),
	}
	body, err := json.Marshal(lr)
	if err != nil {
		return nil, fmt.Errorf("while encoding LTR backup: %w", err)
	}
	err = s.store.ResourcePut(ctx, &store.Resource{ID: resID, Type: TypeLtrBackupOperation, Parent: rec.ID, Subscription: rec.sub,
		Name: backupName, Body: body, ETag: newETag(), Created: now, Updated: now}, store.PutOptions{IfNoneMatch: true})
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return nil, ltrNameTaken(backupName, rec.Name)
	case errors.Is(err, store.ErrParentNotFound):
		return nil, newError(KindNotFound, "ResourceNotFound", "serverName", "The server '%s' was deleted.", rec.Name)
	case err != nil:
		return nil, storeErr("recording an LTR backup", err)
	}
	opIn, _ := json.Marshal(ltrOpInput{ResourceID: resID, JobID: lr.JobID})
	op := &store.Operation{ID: lr.OperationID, Subscription: sub, Kind: opLtrBackup, ResourceID: rec.ID,
		Status: store.OperationInProgress, Input: opIn, StartTime: now}
	// undo removes what a start that cannot complete recorded.
	undo := func(failOp bool) {
		ctx := context.WithoutCancel(ctx)
		if err := s.store.ResourceDelete(ctx, resID, store.DeleteOptions{}); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("removing an LTR backup that could not start failed", "resource", resID, "err", err)
		}
		if failOp {
			done := *op
			done.Status, done.EndTime = store.OperationFailed, s.nowUTC()
			done.Error, _ = json.Marshal(wireError{Code: "InternalError", Message: "The backup could not be queued."})
			if err := s.store.OperationFinish(ctx, &done); err != nil {
				s.log.Error("failing an LTR backup operation that could not start failed", "operation", op.ID, "err", err)
			}
		}
	}
	if err := s.store.OperationCreate(ctx, op); err != nil {
		undo(false)
		return nil, storeErr("recording an LTR backup operation", err)
	}
	input, err := json.Marshal(in)
	if err != nil {
		undo(true)
		return nil, fmt.Errorf("while encoding job input: %w", err)
	}
	job := &store.Job{ID: lr.JobID, Kind: JobKindLtrBackup, Subscription: sub, ResourceID: rec.ID,
		ExclusiveKey: "ltrbackup:" + strings.ToLower(rec.ID), Status: store.JobQueued, Input: input, MaxAttempts: 1, Created: now}
	if err := s.store.JobCreate(ctx, job); err != nil {
		undo(true)
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, newError(KindConflict, "LtrBackupInProgress", "serverName",
				"Another long-term retention backup of server '%s' is starting or running; wait for it to finish.", rec.Name)
		}
		return nil, storeErr("queueing an LTR backup job", err)
	}
	s.launch(op)
	if s.jobQueued != nil {
		s.jobQueued()
	}
	return &LtrBackupStarted{Operation: op, Location: rec.Location}, nil
}

// ltrTargetContext binds a sealed target URL to its backup and position.
func ltrTargetContext(resourceID string, i int) string {
	return strings.ToLower(resourceID) + "#target-" + strconv.Itoa(i)
}

// LtrBackupPlan is what the job runner needs for an LTR backup: how to reach
// the server and where to write, SAS tokens included. Keep it in memory only.
type LtrBackupPlan struct {
	Conn    pg.Conn
	Targets []target.Spec
}

// LtrBackupPlan resolves an LTR backup job's input: it opens the sealed
// target URLs and checks again that local directories are allowed (the
// configuration may have changed since the backup was queued).
func (s *Service) LtrBackupPlan(ctx context.Context, in LtrBackupJobInput) (*LtrBackupPlan, error) {
	sr, err := s.store.ResourceGet(ctx, in.ServerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(KindNotFound, "ResourceNotFound", "serverName", "The server %s was deleted before its backup started.", in.ServerID)
	}
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
	plan := &LtrBackupPlan{Conn: conn}
	for i, t := range in.Targets {
		spec, err := s.openTarget(t, ltrTargetContext(in.ResourceID, i), s.localDirs, "LtrLocalTargetNotAllowed")
		if err != nil {
			return nil, err
		}
		plan.Targets = append(plan.Targets, spec)
	}
	return plan, nil
}

// LtrBackupProgress records how far a running LTR backup is: bytes written
// to its targets, and bytes of the tablespaces streamed (done) of the
// server's estimate (total, 0 if unknown). It fails with a NotFound or
// Conflict error when the backup is gone or no longer running: the job
// should stop.
func (s *Service) LtrBackupProgress(ctx context.Context, resourceID string, transferred, done, total int64) error {
	r, err := s.store.ResourceGet(ctx, resourceID)
	if errors.Is(err, store.ErrNotFound) {
		return newError(KindNotFound, "ResourceNotFound", "", "The long-term retention backup %s no longer exists (its server was deleted).", resourceID)
	}
	if err != nil {
		return storeErr("reading LTR backup", err)
	}
	rec, err := decodeLtr(r)
	if err != nil {
		return err
	}
	p := &rec.Properties
	if p.Status != LtrRunning {
		return newError(KindConflict, "LtrBackupNotRunning", "", "The long-term retention backup %s is %s.", resourceID, p.Status)
	}
	p.DataTransferredInBytes = transferred
	if total > 0 {
		p.DatasourceSizeInBytes = total
		p.PercentComplete = min(99.9, math.Floor(float64(done)*1000/float64(total))/10)
	}
	err = s.writeLtr(ctx, r, rec)
	if errors.Is(err, store.ErrPreconditionFailed) {
		return nil // changed meanwhile: the next report wins
	}
	return err
}

func (s *Service) writeLtr(ctx context.Context, old *store.Resource, rec *ltrRecord) error {
	now := s.nowUTC()
	if rec.SystemData != nil {
		rec.SystemData.LastModifiedAt = now
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("while encoding LTR backup: %w", err)
	}
	nr := *old
	nr.Body, nr.ETag, nr.Updated = body, newETag(), now
	if err := s.store.ResourcePut(ctx, &nr, store.PutOptions{IfMatch: old.ETag}); err != nil {
		return storeErr("writing LTR backup", err)
	}
	return nil
}

func decodeLtr(r *store.Resource) (*ltrRecord, error) {
	var rec ltrRecord
	if err := json.Unmarshal(r.Body, &rec); err != nil {
		return nil, fmt.Errorf("while decoding LTR backup %q: %w", r.ID, err)
	}
	rec.ID, rec.Name = r.ID, r.Name
	return &rec, nil
}

// How often an LTR operation looks at its job: first after ltrWatchFirst,
// then twice as long each time, up to ltrWatchMax.
const (
	ltrWatchFirst = 100 * time.Millisecond
	ltrWatchMax   = 2 * time.Second
)

// runLtrBackup is the LTR backup operation: it waits for the job to end,
// then records the outcome on the resource.
func (s *Service) runLtrBackup(ctx context.Context, op *store.Operation) (any, error) {
	var in ltrOpInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding operation input: %w", err)
	}
	delay := ltrWatchFirst
	for {
		j, err := s.store.JobGet(ctx, in.JobID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return s.endLtr(ctx, in, nil, &wireError{Code: "InternalError", Message: "The backup job was lost before it ran; start the backup again with another name."})
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			s.log.Warn("reading an LTR backup job failed", "job", in.JobID, "err", err)
		case j.Status == store.JobSucceeded:
			return s.endLtr(ctx, in, j.Result, nil)
		case j.Status == store.JobFailed || j.Status == store.JobCanceled:
			e := &wireError{Code: "InternalError", Message: "The backup failed."}
			if len(j.Error) > 0 {
				_ = json.Unmarshal(j.Error, e)
			}
			if j.Status == store.JobCanceled && len(j.Error) == 0 {
				e = &wireError{Code: "LtrBackupCanceled", Message: "The backup was canceled before it ran."}
			}
			return s.endLtr(ctx, in, nil, e)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, ltrWatchMax)
	}
}

// endLtr records the end of an LTR backup on its resource and returns the
// operation's result (success) or error (failure).
func (s *Service) endLtr(ctx context.Context, in ltrOpInput, result []byte, failure *wireError) (any, error) {
	var res LtrBackupJobResult
	if failure == nil {
		if err := json.Unmarshal(result, &res); err != nil {
			failure = &wireError{Code: "InternalError", Message: "The backup's result could not be read."}
			s.log.Error("decoding an LTR backup result failed", "resource", in.ResourceID, "err", err)
		}
	}
	var props LtrBackupProperties
	for attempt := 0; ; attempt++ {
		r, err := s.store.ResourceGet(ctx, in.ResourceID)
		if errors.Is(err, store.ErrNotFound) {
			break // the server was deleted with its backups: finish the operation anyway
		}
		if err != nil {
			return nil, storeErr("reading LTR backup", err)
		}
		rec, err := decodeLtr(r)
		if err != nil {
			return nil, err
		}
		p := &rec.Properties
		end := s.nowUTC()
		p.EndTime = &end
		if failure != nil {
			p.Status, p.ErrorCode, p.ErrorMessage = LtrFailed, failure.Code, failure.Message
		} else {
			p.Status, p.PercentComplete, p.DataTransferredInBytes = LtrSucceeded, 100, res.Bytes
			if res.DatasourceBytes > 0 {
				p.DatasourceSizeInBytes = res.DatasourceBytes
			}
			md, _ := json.Marshal(ltrMetadata{
				Format: LtrMetadataFormat, BackupName: p.BackupName,
				Method:        "BASE_BACKUP with WAL and manifest; archives named and laid out as by pg_basebackup --format=tar --wal-method=stream --manifest-checksums=SHA256",
				ServerVersion: serverVersionString(res.ServerVersion), ServerVersionNum: res.ServerVersion, SystemIdentifier: res.SystemIdentifier,
				StartLSN: res.StartLSN, EndLSN: res.EndLSN, Timeline: res.Timeline, EndTimeline: res.EndTimeline,
				WALIncluded: true, ManifestChecksum: "SHA256", Archives: res.Archives,
			})
			p.BackupMetadata = string(md)
		}
		props = *p
		err = s.writeLtr(ctx, r, rec)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrPreconditionFailed) || attempt >= 5 {
			return nil, err
		}
	}
	if failure != nil {
		return nil, &Error{Kind: KindInvalid, Code: failure.Code, Message: failure.Message}
	}
	return LtrBackupResponse{Properties: props}, nil
}

// serverVersionString turns server_version_num into "15.18" (or "9.6.24").
func serverVersionString(num int) string {
	if num >= 100000 {
		return fmt.Sprintf("%d.%d", num/10000, num%10000)
	}
	return fmt.Sprintf("%d.%d.%d", num/10000, num/100%100, num%100)
}

// LtrBackupOperation returns an LTR backup of a server.
func (s *Service) LtrBackupOperation(ctx context.Context, sub, rg, server, name string) (*LtrBackupOperation, error) {
	rec, err := s.serverRecord(ctx, sub, rg, server)
	if err != nil {
		return nil, err
	}
	r, err := s.store.ResourceGet(ctx, ltrBackupID(rec.ID, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(KindNotFound, "ResourceNotFound", "backupName",
			"The long-term retention backup operation '%s' of server '%s' was not found.", name, server)
	}
	if err != nil {
		return nil, storeErr("reading LTR backup", err)
	}
	lr, err := decodeLtr(r)
	if err != nil {
		return nil, err
	}
	return &lr.LtrBackupOperation, nil
}

// ListLtrBackupOperations lists the LTR backups of a server.
func (s *Service) ListLtrBackupOperations(ctx context.Context, sub, rg, server, after string, pageSize int) (Page[*LtrBackupOperation], error) {
	rec, err := s.serverRecord(ctx, sub, rg, server)
	if err != nil {
		return Page[*LtrBackupOperation]{}, err
	}
	return listPage(ctx, s.store, store.ListParams{Type: TypeLtrBackupOperation, Parent: rec.ID, After: after}, pageSize,
		func(r *store.Resource) (*LtrBackupOperation, error) {
			lr, err := decodeLtr(r)
			if err != nil {
				return nil, err
			}
			return &lr.LtrBackupOperation, nil
		})
}
