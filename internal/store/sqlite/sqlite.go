// Package sqlite is the SQLite driver of store.Store, built on the pure-Go
// modernc.org/sqlite.
//
// The database runs in WAL mode. A Store keeps two connection pools on the
// file: a single writer connection, so that writes of one process queue in Go
// rather than in SQLite's busy handler, and a read-only pool for reads, which
// WAL lets run alongside the writer. Every write transaction starts with BEGIN
// IMMEDIATE and checks its preconditions inside, so checks and writes are
// atomic; several processes (or several Store values) on the same file wait
// for each other through busy_timeout.
//
// Times are stored as fixed-width UTC text with nanoseconds, so they
// round-trip exactly and sort as text.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/store"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store kept in one SQLite database file.
type Store struct {
	wdb *sql.DB // one connection, for writes
	rdb *sql.DB // read-only connections
}

const dsnParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate"

// Open opens the database file at path, creating it and its schema as
// needed, and applies pending migrations. It refuses a database whose schema
// is newer than this binary knows (ErrSchemaTooNew).
func Open(ctx context.Context, path string) (*Store, error) {
	s, err := open(ctx, path, mustSub(embedded, "migrations"))
	if err != nil {
		return nil, fmt.Errorf("while opening store %q: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string, migrations fs.FS) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// SQLite reads the DSN as a URI: escape what it would take for syntax.
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(abs) + "?" + dsnParams

	wdb, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, err
	}
	wdb.SetMaxOpenConns(1)
	if err := connect(ctx, wdb); err != nil {
		wdb.Close()
		return nil, err
	}
	if err := migrate(ctx, wdb, migrations); err != nil {
		wdb.Close()
		return nil, err
	}

	rdb, err := sql.Open("sqlite", uri+"&_pragma=query_only(1)")
	if err != nil {
		wdb.Close()
		return nil, err
	}
	n := max(4, runtime.NumCPU())
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	return &Store{wdb: wdb, rdb: rdb}, nil
}

// connect opens db's first connection. On a new file that connection
// switches the database to WAL mode, which SQLite fails at once with
// SQLITE_BUSY, rather than waiting, while another process does the same; so
// connect retries for a while.
func connect(ctx context.Context, db *sql.DB) error {
	for attempt := 1; ; attempt++ {
		err := db.PingContext(ctx)
		var e *sqlite.Error
		if err == nil || !errors.As(err, &e) || e.Code()&0xff != sqlite3.SQLITE_BUSY || attempt == 50 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
		}
	}
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a constant valid path
	}
	return sub
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

// write runs fn in a write transaction and commits it if fn succeeds.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// fold is the case-insensitive form of an ID, type or subscription.
func fold(s string) string { return strings.ToLower(s) }

const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("while parsing time %q: %w", s, err)
	}
	return t, nil
}

type scanner interface{ Scan(dest ...any) error }

// ResourcePut creates or replaces a resource; see store.Store.
func (s *Store) ResourcePut(ctx context.Context, r *store.Resource, opts store.PutOptions) error {
	if err := s.resourcePut(ctx, r, opts); err != nil {
		return fmt.Errorf("while putting resource %q: %w", r.ID, err)
	}
	return nil
}

func (s *Store) resourcePut(ctx context.Context, r *store.Resource, opts store.PutOptions) error {
	idKey, parentKey := fold(r.ID), fold(r.Parent)
	switch {
	case r.ID == "":
		return errors.New("empty ID")
	case r.Type == "":
		return errors.New("empty type")
	case idKey == parentKey:
		return errors.New("resource is its own parent")
	}
	var refs []byte
	if len(r.Refs) > 0 {
		var err error
		if refs, err = json.Marshal(r.Refs); err != nil {
			return err
		}
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var etag string
		err := tx.QueryRowContext(ctx, `SELECT etag FROM resources WHERE id_key = ?`, idKey).Scan(&etag)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		exists := err == nil
		switch {
		case opts.IfNoneMatch && exists:
			return store.ErrAlreadyExists
		case opts.IfMatch != "" && !exists:
			return store.ErrNotFound
		case opts.IfMatch != "" && etag != opts.IfMatch:
			return store.ErrPreconditionFailed
		}
		if r.Parent != "" {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM resources WHERE id_key = ?`, parentKey).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w (%s)", store.ErrParentNotFound, r.Parent)
			}
			if err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO resources
	(id_key, id, type, type_key, parent, parent_key, subscription, subscription_key, name, refs, body, etag, created, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id_key) DO UPDATE SET
	type = excluded.type, type_key = excluded.type_key,
	parent = excluded.parent, parent_key = excluded.parent_key,
	subscription = excluded.subscription, subscription_key = excluded.subscription_key,
	name = excluded.name, refs = excluded.refs, body = excluded.body, etag = excluded.etag,
	created = excluded.created, updated = excluded.updated`,
			idKey, r.ID, r.Type, fold(r.Type), r.Parent, parentKey, r.Subscription, fold(r.Subscription),
			r.Name, nullString(refs), r.Body, r.ETag, formatTime(r.Created), formatTime(r.Updated))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM resource_refs WHERE from_key = ?`, idKey); err != nil {
			return err
		}
		for _, ref := range r.Refs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO resource_refs (from_key, to_key) VALUES (?, ?)
ON CONFLICT DO NOTHING`, idKey, fold(ref)); err != nil {
				return err
			}
		}
		return nil
	})
}

// nullString is b as TEXT, or NULL when b is empty.
func nullString(b []byte) sql.NullString {
	return sql.NullString{String: string(b), Valid: len(b) > 0}
}

const resourceColumns = `id, type, parent, subscription, name, refs, body, etag, created, updated`

func scanResource(sc scanner) (*store.Resource, error) {
	var (
		r                store.Resource
		refs             sql.NullString
		created, updated string
	)
	err := sc.Scan(&r.ID, &r.Type, &r.Parent, &r.Subscription, &r.Name, &refs, &r.Body, &r.ETag, &created, &updated)
	if err != nil {
		return nil, err
	}
	if refs.Valid {
		if err := json.Unmarshal([]byte(refs.String), &r.Refs); err != nil {
			return nil, fmt.Errorf("while decoding refs: %w", err)
		}
	}
	if r.Created, err = parseTime(created); err != nil {
		return nil, err
	}
	if r.Updated, err = parseTime(updated); err != nil {
		return nil, err
	}
	return &r, nil
}

// ResourceGet returns a resource by ID; see store.Store.
func (s *Store) ResourceGet(ctx context.Context, id string) (*store.Resource, error) {
	row := s.rdb.QueryRowContext(ctx, `SELECT `+resourceColumns+` FROM resources WHERE id_key = ?`, fold(id))
	r, err := scanResource(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("while getting resource %q: %w", id, err)
	}
	return r, nil
}

// ResourceList returns the resources selected by p; see store.Store.
func (s *Store) ResourceList(ctx context.Context, p store.ListParams) ([]*store.Resource, error) {
	rs, err := s.resourceList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("while listing resources of type %q: %w", p.Type, err)
	}
	return rs, nil
}

func (s *Store) resourceList(ctx context.Context, p store.ListParams) ([]*store.Resource, error) {
	if p.Type == "" {
		return nil, errors.New("type is required")
	}
	q := `SELECT ` + resourceColumns + ` FROM resources WHERE type_key = ?`
	args := []any{fold(p.Type)}
	if p.Subscription != "" {
		q += ` AND subscription_key = ?`
		args = append(args, fold(p.Subscription))
	}
	if p.Parent != "" {
		q += ` AND parent_key = ?`
		args = append(args, fold(p.Parent))
	}
	if p.RefersTo != "" {
		q += ` AND id_key IN (SELECT from_key FROM resource_refs WHERE to_key = ?)`
		args = append(args, fold(p.RefersTo))
	}
	if p.After != "" {
		q += ` AND id_key > ?`
		args = append(args, fold(p.After))
	}
	q += ` ORDER BY id_key`
	if p.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, p.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []*store.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// subtree is a CTE naming the key bound to its one parameter and the keys of
// all its descendants.
const subtree = `WITH RECURSIVE subtree (id_key) AS (
	SELECT ?
	UNION
	SELECT r.id_key FROM resources r JOIN subtree s ON r.parent_key = s.id_key
) `

// ResourceDelete deletes a resource and its descendants; see store.Store.
func (s *Store) ResourceDelete(ctx context.Context, id string, opts store.DeleteOptions) error {
	if err := s.resourceDelete(ctx, id, opts); err != nil {
		return fmt.Errorf("while deleting resource %q: %w", id, err)
	}
	return nil
}

func (s *Store) resourceDelete(ctx context.Context, id string, opts store.DeleteOptions) error {
	idKey := fold(id)
	return s.write(ctx, func(tx *sql.Tx) error {
		var etag string
		err := tx.QueryRowContext(ctx, `SELECT etag FROM resources WHERE id_key = ?`, idKey).Scan(&etag)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if opts.IfMatch != "" && etag != opts.IfMatch {
			return store.ErrPreconditionFailed
		}

		if len(opts.BlockingChildTypes) > 0 {
			q := `SELECT id FROM resources WHERE parent_key = ?`
			args := []any{idKey}
			if !slices.Contains(opts.BlockingChildTypes, store.AnyType) {
				q += ` AND type_key IN (?` + strings.Repeat(", ?", len(opts.BlockingChildTypes)-1) + `)`
				for _, t := range opts.BlockingChildTypes {
					args = append(args, fold(t))
				}
			}
			var child string
			err := tx.QueryRowContext(ctx, q+` LIMIT 1`, args...).Scan(&child)
			if err == nil {
				return fmt.Errorf("%w (%s)", store.ErrHasChildren, child)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}

		if opts.RefuseIfReferenced {
			var from string
			err := tx.QueryRowContext(ctx, subtree+`SELECT r.id
FROM resource_refs rr JOIN resources r ON r.id_key = rr.from_key
WHERE rr.to_key IN (SELECT id_key FROM subtree) AND rr.from_key NOT IN (SELECT id_key FROM subtree)
LIMIT 1`, idKey).Scan(&from)
			if err == nil {
				return fmt.Errorf("%w (by %s)", store.ErrReferenced, from)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}

		// resource_refs rows of deleted resources go by ON DELETE CASCADE.
		_, err = tx.ExecContext(ctx, subtree+`DELETE FROM resources WHERE id_key IN (SELECT id_key FROM subtree)`, idKey)
		return err
	})
}

const operationColumns = `id, subscription, kind, resource_id, status, input, result, error, start_time, end_time`

func scanOperation(sc scanner) (*store.Operation, error) {
	var (
		op         store.Operation
		start, end string
	)
	err := sc.Scan(&op.ID, &op.Subscription, &op.Kind, &op.ResourceID, &op.Status,
		&op.Input, &op.Result, &op.Error, &start, &end)
	if err != nil {
		return nil, err
	}
	if op.StartTime, err = parseTime(start); err != nil {
		return nil, err
	}
	if op.EndTime, err = parseTime(end); err != nil {
		return nil, err
	}
	return &op, nil
}

// OperationCreate stores a new operation; see store.Store.
func (s *Store) OperationCreate(ctx context.Context, op *store.Operation) error {
	err := func() error {
		if op.ID == "" {
			return errors.New("empty ID")
		}
		res, err := s.wdb.ExecContext(ctx, `INSERT INTO operations (`+operationColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			op.ID, op.Subscription, op.Kind, op.ResourceID, op.Status, op.Input, op.Result, op.Error,
			formatTime(op.StartTime), formatTime(op.EndTime))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrAlreadyExists
		}
		return nil
	}()
	if err != nil {
		return fmt.Errorf("while creating operation %q: %w", op.ID, err)
	}
	return nil
}

// OperationGet returns an operation by ID; see store.Store.
func (s *Store) OperationGet(ctx context.Context, id string) (*store.Operation, error) {
	row := s.rdb.QueryRowContext(ctx, `SELECT `+operationColumns+` FROM operations WHERE id = ?`, id)
	op, err := scanOperation(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("while getting operation %q: %w", id, err)
	}
	return op, nil
}

// OperationFinish finishes a running operation exactly once; see store.Store.
func (s *Store) OperationFinish(ctx context.Context, op *store.Operation) error {
	err := func() error {
		if op.Status == store.OperationInProgress || op.Status == "" {
			return fmt.Errorf("cannot finish with status %q", op.Status)
		}
		res, err := s.wdb.ExecContext(ctx, `UPDATE operations SET status = ?, result = ?, error = ?, end_time = ?
WHERE id = ? AND status = ?`,
			op.Status, op.Result, op.Error, formatTime(op.EndTime), op.ID, store.OperationInProgress)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 1 {
			return nil
		}
		// Operations are never deleted, so this tells the two failures apart.
		var one int
		err = s.wdb.QueryRowContext(ctx, `SELECT 1 FROM operations WHERE id = ?`, op.ID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		return store.ErrPreconditionFailed
	}()
	if err != nil {
		return fmt.Errorf("while finishing operation %q: %w", op.ID, err)
	}
	return nil
}

// OperationListInProgress returns the running operations, oldest first.
func (s *Store) OperationListInProgress(ctx context.Context) ([]*store.Operation, error) {
	ops, err := func() ([]*store.Operation, error) {
		rows, err := s.rdb.QueryContext(ctx, `SELECT `+operationColumns+` FROM operations
WHERE status = ? ORDER BY start_time, id`, store.OperationInProgress)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var ops []*store.Operation
		for rows.Next() {
			op, err := scanOperation(rows)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op)
		}
		return ops, rows.Err()
	}()
	if err != nil {
		return nil, fmt.Errorf("while listing operations in progress: %w", err)
	}
	return ops, nil
}

// MetaGet returns an installation-wide setting; see store.Store.
func (s *Store) MetaGet(ctx context.Context, key string) (string, error) {
	var v string
	err := s.rdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("while getting setting %q: %w", key, err)
	}
	return v, nil
}

// MetaInit sets key unless it is set and returns the stored value; see store.Store.
func (s *Store) MetaInit(ctx context.Context, key, value string) (string, error) {
	var v string
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value)
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	})
	if err != nil {
		return "", fmt.Errorf("while initializing setting %q: %w", key, err)
	}
	return v, nil
}
