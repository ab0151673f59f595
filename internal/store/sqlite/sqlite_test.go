package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pgvault/pgvault/internal/store"
	"github.com/pgvault/pgvault/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "pgvault.db"))
	})
}

// openTemp opens a store at path or fails the test.
func openTemp(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func closeStore(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func group(name string) *store.Resource {
	id := "/subscriptions/sub/resourceGroups/" + name
	return &store.Resource{
		ID: id, Type: "Microsoft.Resources/resourceGroups", Subscription: "sub", Name: name,
		Body: []byte(`{}`), ETag: "e1", Created: time.Now(), Updated: time.Now(),
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pgvault.db")
	s := openTemp(t, path)
	// Nanoseconds and a zone: times come back as the same instant, to the nanosecond.
	created := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", -7*3600))
	r := group("rg")
	r.Created, r.Updated = created, created.Add(time.Nanosecond)
	r.Refs = []string{"/a", "/B"}
	if err := s.ResourcePut(ctx, r, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	op := &store.Operation{ID: "op", Status: store.OperationInProgress, StartTime: created}
	if err := s.OperationCreate(ctx, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MetaInit(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	applied := migrations(t, path)
	closeStore(t, s)

	s = openTemp(t, path)
	defer closeStore(t, s)
	got, err := s.ResourceGet(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Created != created.UTC() || got.Updated != r.Updated.UTC() || got.Refs[1] != "/B" || got.ETag != "e1" {
		t.Errorf("after reopen: got %+v, want %+v", got, r)
	}
	if ops, err := s.OperationListInProgress(ctx); err != nil || len(ops) != 1 || ops[0].StartTime != created.UTC() {
		t.Errorf("OperationListInProgress after reopen: %v, %v", ops, err)
	}
	if v, err := s.MetaGet(ctx, "k"); err != nil || v != "v" {
		t.Errorf("MetaGet after reopen = %q, %v", v, err)
	}
	// Reopening applied nothing again.
	if again := migrations(t, path); fmt.Sprint(again) != fmt.Sprint(applied) {
		t.Errorf("schema_migrations changed on reopen:\n%v\n%v", applied, again)
	}
	if n := knownMigrations(t); len(applied) != n {
		t.Errorf("%d migrations applied, %d known", len(applied), n)
	}
}

// migrations returns the rows of schema_migrations in the database at path.
func migrations(t *testing.T, path string) []string {
	t.Helper()
	db := rawDB(t, path)
	rows, err := db.Query(`SELECT version, name, applied FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ms []string
	for rows.Next() {
		var v int
		var name, applied string
		if err := rows.Scan(&v, &name, &applied); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, fmt.Sprint(v, name, applied))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ms
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pgvault.db")
	closeStore(t, openTemp(t, path))
	if _, err := rawDB(t, path).Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (9999, 'future', '')`); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema: no error")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a database with a newer schema: %v", err)
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db := rawDB(t, filepath.Join(t.TempDir(), "m.db"))
	count := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	fsys := fstest.MapFS{
		// Neither may run twice: the table exists, the count would grow.
		"0001_create.sql": {Data: []byte(`CREATE TABLE t (n INTEGER)`)},
		"0002_insert.sql": {Data: []byte(`INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);`)},
	}
	for range 2 {
		if err := migrate(ctx, db, fsys); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 2 {
			t.Fatalf("%d rows, want 2", n)
		}
	}

	// A failing migration is rolled back as a whole and stops the run.
	fsys["0003_bad.sql"] = &fstest.MapFile{Data: []byte(`INSERT INTO t VALUES (3); INSERT INTO nowhere VALUES (4);`)}
	fsys["0004_never.sql"] = &fstest.MapFile{Data: []byte(`INSERT INTO t VALUES (5)`)}
	if err := migrate(ctx, db, fsys); err == nil {
		t.Fatal("failing migration: no error")
	}
	if n := count(); n != 2 {
		t.Fatalf("%d rows after a failed migration, want 2", n)
	}
	if v, err := schemaVersion(ctx, db); err != nil || v != 2 {
		t.Fatalf("schema version %d, %v after a failed migration, want 2", v, err)
	}

	fsys["0003_bad.sql"] = &fstest.MapFile{Data: []byte(`INSERT INTO t VALUES (3)`)}
	if err := migrate(ctx, db, fsys); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 4 {
		t.Fatalf("%d rows, want 4", n)
	}

	delete(fsys, "0004_never.sql")
	if err := migrate(ctx, db, fsys); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("migrate with fewer migrations than applied: %v", err)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"0001_a.sql": {}, "0003_c.sql": {}},
		"duplicate": {"0001_a.sql": {}, "0001_b.sql": {}},
		"no number": {"init.sql": {}},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("loadMigrations with %s: no error", name)
		}
	}
}

// TestTwoStores writes through two Store values on the same file at once, as
// two processes would; busy_timeout must absorb the contention.
func TestTwoStores(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pgvault.db")
	stores := []*Store{openTemp(t, path), openTemp(t, path)}
	defer closeStore(t, stores[0])
	defer closeStore(t, stores[1])

	const writers, writes = 8, 20
	errs := make(chan error, writers*writes*3)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			s := stores[w%2]
			for i := range writes {
				r := group(fmt.Sprintf("rg-%d-%d", w, i))
				if err := s.ResourcePut(ctx, r, store.PutOptions{IfNoneMatch: true}); err != nil {
					errs <- err
				}
				op := &store.Operation{ID: r.Name, Status: store.OperationInProgress}
				if err := s.OperationCreate(ctx, op); err != nil {
					errs <- err
				}
				op.Status = store.OperationSucceeded
				if err := s.OperationFinish(ctx, op); err != nil {
					errs <- err
				}
				if _, err := s.MetaInit(ctx, "k", r.Name); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, s := range stores {
		rs, err := s.ResourceList(ctx, store.ListParams{Type: "Microsoft.Resources/resourceGroups"})
		if err != nil || len(rs) != writers*writes {
			t.Errorf("ResourceList: %d resources, %v; want %d", len(rs), err, writers*writes)
		}
	}
}

func BenchmarkResourceGet(b *testing.B) {
	ctx := context.Background()
	s := openTemp(b, filepath.Join(b.TempDir(), "pgvault.db"))
	defer closeStore(b, s)
	r := group("rg")
	r.Refs = []string{"/subscriptions/sub/resourceGroups/other"}
	r.Body = make([]byte, 2048)
	if err := s.ResourcePut(ctx, r, store.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ResourceGet(ctx, r.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResourcePut(b *testing.B) {
	ctx := context.Background()
	s := openTemp(b, filepath.Join(b.TempDir(), "pgvault.db"))
	defer closeStore(b, s)
	parent := group("rg")
	if err := s.ResourcePut(ctx, parent, store.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		r := group(fmt.Sprintf("rg/providers/Microsoft.DataProtection/backupVaults/v%d", i))
		r.Type, r.Parent = "Microsoft.DataProtection/backupVaults", parent.ID
		r.Refs = []string{parent.ID + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv"}
		r.Body = make([]byte, 2048)
		if err := s.ResourcePut(ctx, r, store.PutOptions{IfNoneMatch: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentOpen opens new files from several goroutines at once, as
// processes starting together would.
func TestConcurrentOpen(t *testing.T) {
	for range 25 { // the race is narrow: try it often
		path := filepath.Join(t.TempDir(), "pgvault.db")
		stores := make([]*Store, 4)
		errs := make([]error, len(stores))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range stores {
			wg.Go(func() {
				<-start
				stores[i], errs[i] = Open(context.Background(), path)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				continue
			}
			closeStore(t, stores[i])
		}
		if ms := migrations(t, path); len(ms) != knownMigrations(t) {
			t.Errorf("schema_migrations: %q", ms)
		}
	}
}

func knownMigrations(t *testing.T) int {
	t.Helper()
	ms, err := loadMigrations(mustSub(embedded, "migrations"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}
