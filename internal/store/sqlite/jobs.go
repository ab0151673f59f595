package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/store"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The job queue. Every write runs in a write transaction (BEGIN IMMEDIATE),
// so it holds the database's write lock, against the other Store values and
// processes on the file too, from its checks to its commit: claims are
// serialized, and a check followed by an update is atomic.

const jobColumns = `id, kind, subscription, resource_id, idempotency_key, exclusive_key, status,
	input, progress, result, error, attempt, max_attempts, lease_owner, lease_expires, created, started, ended`

func scanJob(sc scanner) (*store.Job, error) {
	var (
		j                                     store.Job
		leaseExpires, created, started, ended string
	)
	err := sc.Scan(&j.ID, &j.Kind, &j.Subscription, &j.ResourceID, &j.IdempotencyKey, &j.ExclusiveKey, &j.Status,
		&j.Input, &j.Progress, &j.Result, &j.Error, &j.Attempt, &j.MaxAttempts, &j.LeaseOwner, &leaseExpires,
		&created, &started, &ended)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		dst *time.Time
		src string
	}{{&j.LeaseExpires, leaseExpires}, {&j.Created, created}, {&j.Started, started}, {&j.Ended, ended}} {
		if *f.dst, err = parseTime(f.src); err != nil {
			return nil, err
		}
	}
	return &j, nil
}

// isUniqueViolation reports whether err is SQLite refusing a write that would
// break a primary key or a unique index.
func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) &&
		(e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// placeholders returns "?, ?, ..." for n > 0 parameters.
func placeholders(n int) string { return "?" + strings.Repeat(", ?", n-1) }

// JobCreate stores a new job; see store.Store.
func (s *Store) JobCreate(ctx context.Context, j *store.Job) error {
	if err := s.jobCreate(ctx, j); err != nil {
		return fmt.Errorf("while creating job %q: %w", j.ID, err)
	}
	return nil
}

func (s *Store) jobCreate(ctx context.Context, j *store.Job) error {
	switch {
	case j.ID == "":
		return errors.New("empty ID")
	case j.Kind == "":
		return errors.New("empty kind")
	case j.Status != store.JobQueued:
		return fmt.Errorf("status %q, want %q", j.Status, store.JobQueued)
	case j.Attempt != 0 || j.LeaseOwner != "" || !j.LeaseExpires.IsZero():
		return errors.New("a new job has no attempt and no lease")
	case !j.Started.IsZero() || !j.Ended.IsZero():
		return errors.New("a new job has neither started nor ended")
	case j.MaxAttempts < 0:
		return fmt.Errorf("negative MaxAttempts %d", j.MaxAttempts)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		// The checks name the conflict; the indexes enforce the same rules.
		var other, status string
		err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE id = ?`, j.ID).Scan(&other)
		if err == nil {
			return fmt.Errorf("%w (job ID taken)", store.ErrAlreadyExists)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if j.IdempotencyKey != "" {
			err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE idempotency_key = ?`, j.IdempotencyKey).Scan(&other)
			if err == nil {
				return fmt.Errorf("%w (idempotency key %q used by job %s)", store.ErrAlreadyExists, j.IdempotencyKey, other)
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if j.ExclusiveKey != "" {
			err := tx.QueryRowContext(ctx, `SELECT id, status FROM jobs
WHERE exclusive_key = ? AND status IN (?, ?)`, j.ExclusiveKey, store.JobQueued, store.JobRunning).Scan(&other, &status)
			if err == nil {
				return fmt.Errorf("%w (exclusive key %q held by %s job %s)", store.ErrAlreadyExists, j.ExclusiveKey, status, other)
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		zero := formatTime(time.Time{})
		_, err = tx.ExecContext(ctx, `INSERT INTO jobs (id, kind, subscription, subscription_key, resource_id, resource_id_key,
	idempotency_key, exclusive_key, status, input, progress, result, error, attempt, max_attempts,
	lease_owner, lease_expires, created, started, ended)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, '', ?, ?, ?, ?)`,
			j.ID, j.Kind, j.Subscription, fold(j.Subscription), j.ResourceID, fold(j.ResourceID),
			j.IdempotencyKey, j.ExclusiveKey, j.Status, j.Input, j.Progress, j.Result, j.Error, j.MaxAttempts,
			zero, formatTime(j.Created), zero, zero)
		if isUniqueViolation(err) {
			return fmt.Errorf("%w (%v)", store.ErrAlreadyExists, err)
		}
		return err
	})
}

// JobGet returns a job by ID; see store.Store.
func (s *Store) JobGet(ctx context.Context, id string) (*store.Job, error) {
	j, err := scanJob(s.rdb.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("while getting job %q: %w", id, err)
	}
	return j, nil
}

// JobList returns the jobs selected by p, newest first; see store.Store.
func (s *Store) JobList(ctx context.Context, p store.JobListParams) ([]*store.Job, error) {
	js, err := s.jobList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("while listing jobs: %w", err)
	}
	return js, nil
}

func (s *Store) jobList(ctx context.Context, p store.JobListParams) ([]*store.Job, error) {
	// One read transaction, so that After and the page come from one snapshot.
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE 1`
	var args []any
	if p.Subscription != "" {
		q += ` AND subscription_key = ?`
		args = append(args, fold(p.Subscription))
	}
	if p.ResourceID != "" {
		q += ` AND resource_id_key = ?`
		args = append(args, fold(p.ResourceID))
	}
	if p.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, p.Kind)
	}
	if len(p.Statuses) > 0 {
		q += ` AND status IN (` + placeholders(len(p.Statuses)) + `)`
		for _, st := range p.Statuses {
			args = append(args, st)
		}
	}
	if p.After != "" {
		var created string
		err := tx.QueryRowContext(ctx, `SELECT created FROM jobs WHERE id = ?`, p.After).Scan(&created)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w (no job %q to list after)", store.ErrNotFound, p.After)
		}
		if err != nil {
			return nil, err
		}
		q += ` AND (created, id) < (?, ?)`
		args = append(args, created, p.After)
	}
	q += ` ORDER BY created DESC, id DESC`
	if p.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, p.Limit)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var js []*store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		js = append(js, j)
	}
	return js, rows.Err()
}

// JobClaim expires lost leases and takes the oldest queued job; see store.Store.
func (s *Store) JobClaim(ctx context.Context, p store.JobClaimParams) (*store.Job, error) {
	j, err := s.jobClaim(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("while claiming a job for %q: %w", p.Owner, err)
	}
	return j, nil
}

func (s *Store) jobClaim(ctx context.Context, p store.JobClaimParams) (*store.Job, error) {
	switch {
	case p.Owner == "":
		return nil, errors.New("empty owner")
	case p.Lease <= 0:
		return nil, fmt.Errorf("lease %v is not positive", p.Lease)
	case p.Now.IsZero():
		return nil, errors.New("zero Now")
	}
	var claimed *store.Job
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := expireLeases(ctx, tx, p.Now); err != nil {
			return fmt.Errorf("while expiring leases: %w", err)
		}
		pick := `SELECT id FROM jobs WHERE status = ?`
		args := []any{store.JobRunning, p.Owner, formatTime(p.Now.Add(p.Lease)), formatTime(p.Now), store.JobQueued}
		if len(p.Kinds) > 0 {
			pick += ` AND kind IN (` + placeholders(len(p.Kinds)) + `)`
			for _, k := range p.Kinds {
				args = append(args, k)
			}
		}
		pick += ` ORDER BY created, id LIMIT 1`
		// In SET, attempt is the value before the update.
		j, err := scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET
	status = ?, attempt = attempt + 1, lease_owner = ?, lease_expires = ?,
	started = CASE WHEN attempt = 0 THEN ? ELSE started END
WHERE id = (`+pick+`)
RETURNING `+jobColumns, args...))
		if errors.Is(err, sql.ErrNoRows) {
			return nil // commit the expired leases all the same
		}
		claimed = j
		return err
	})
	if err != nil {
		return nil, err
	}
	if claimed == nil {
		return nil, store.ErrNotFound
	}
	return claimed, nil
}

// expireLeases re-queues, or fails when no attempt is left, the Running jobs
// whose lease is not after now.
func expireLeases(ctx context.Context, tx *sql.Tx, now time.Time) error {
	rows, err := tx.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs
WHERE status = ? AND lease_expires <= ?`, store.JobRunning, formatTime(now))
	if err != nil {
		return err
	}
	var expired []*store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return err
		}
		expired = append(expired, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, j := range expired {
		if j.Attempt < max(j.MaxAttempts, 1) {
			_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = ?, lease_owner = '', lease_expires = ? WHERE id = ?`,
				store.JobQueued, formatTime(time.Time{}), j.ID)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = ?, error = ?, ended = ? WHERE id = ?`,
				store.JobFailed, store.WorkerLostError(j), formatTime(now), j.ID)
		}
		if err != nil {
			return fmt.Errorf("while expiring the lease of job %q: %w", j.ID, err)
		}
	}
	return nil
}

// checkJob returns nil when job id is in status (and held by owner, unless
// owner is empty), ErrNotFound when it does not exist, and
// ErrPreconditionFailed otherwise.
func checkJob(ctx context.Context, tx *sql.Tx, id, status, owner string) error {
	var st, lo string
	err := tx.QueryRowContext(ctx, `SELECT status, lease_owner FROM jobs WHERE id = ?`, id).Scan(&st, &lo)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	case st != status:
		return fmt.Errorf("%w (the job is %s)", store.ErrPreconditionFailed, st)
	case owner != "" && lo != owner:
		return fmt.Errorf("%w (the job is held by %q)", store.ErrPreconditionFailed, lo)
	}
	return nil
}

// JobHeartbeat renews a lease and stores progress; see store.Store.
func (s *Store) JobHeartbeat(ctx context.Context, id, owner string, leaseExpires time.Time, progress []byte) error {
	err := func() error {
		if owner == "" {
			return errors.New("empty owner")
		}
		return s.write(ctx, func(tx *sql.Tx) error {
			if err := checkJob(ctx, tx, id, store.JobRunning, owner); err != nil {
				return err
			}
			q, args := `UPDATE jobs SET lease_expires = ?`, []any{formatTime(leaseExpires)}
			if progress != nil {
				q += `, progress = ?`
				args = append(args, progress)
			}
			_, err := tx.ExecContext(ctx, q+` WHERE id = ?`, append(args, id)...)
			return err
		})
	}()
	if err != nil {
		return fmt.Errorf("while renewing the lease of job %q for %q: %w", id, owner, err)
	}
	return nil
}

// JobFinish ends a job held by owner; see store.Store.
func (s *Store) JobFinish(ctx context.Context, id, owner, status string, result, errJSON []byte, ended time.Time) error {
	err := func() error {
		switch {
		case owner == "":
			return errors.New("empty owner")
		case status != store.JobSucceeded && status != store.JobFailed && status != store.JobCanceled:
			return fmt.Errorf("cannot finish with status %q", status)
		}
		return s.write(ctx, func(tx *sql.Tx) error {
			if err := checkJob(ctx, tx, id, store.JobRunning, owner); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, result = ?, error = ?, ended = ? WHERE id = ?`,
				status, result, errJSON, formatTime(ended), id)
			return err
		})
	}()
	if err != nil {
		return fmt.Errorf("while finishing job %q for %q: %w", id, owner, err)
	}
	return nil
}

// JobCancel cancels a queued job; see store.Store.
func (s *Store) JobCancel(ctx context.Context, id string, ended time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := checkJob(ctx, tx, id, store.JobQueued, ""); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, ended = ? WHERE id = ?`,
			store.JobCanceled, formatTime(ended), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("while canceling job %q: %w", id, err)
	}
	return nil
}
