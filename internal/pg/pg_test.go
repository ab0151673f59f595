package pg_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/pgtest"
)

// conn is how pgvault reaches cluster c as user.
func conn(c *pgtest.Cluster, user, password string) pg.Conn {
	return pg.Conn{Host: c.Host, Port: c.Port, User: user, Password: password}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails unless err is a *pg.CheckError with code, and checks that neither the
// error nor anything it wraps mentions password.
func wantCode(t *testing.T, err error, code, password string) *pg.CheckError {
	t.Helper()
	var ce *pg.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a *pg.CheckError with code %s", err, err, code)
	}
	if ce.Code != code {
		t.Fatalf("code = %s (%v), want %s", ce.Code, err, code)
	}
	if !strings.HasPrefix(err.Error(), code+": ") || len(ce.Message) < 20 {
		t.Errorf("Error() = %q, want %q and a message", err.Error(), code+": ...")
	}
	assertNoPassword(t, err, password)
	t.Logf("%v", err)
	return ce
}

// assertNoPassword checks err's message, its whole chain and its %+v and %#v forms.
func assertNoPassword(t *testing.T, err error, password string) {
	t.Helper()
	if password == "" || err == nil {
		return
	}
	var texts []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
		if ce, ok := e.(*pg.CheckError); ok {
			texts = append(texts, ce.Message)
		}
	}
	for _, s := range texts {
		if strings.Contains(s, password) {
			t.Errorf("error text contains the password: %s", s)
		}
	}
}

const backupPW = "Backup-Secret-7"

// checkSucceeds: role "backup" (REPLICATION, password backupPW) and the superuser pass
// every check on cluster c of the given major.
func checkSucceeds(t *testing.T, c *pgtest.Cluster, major int) {
	wantSysID := c.QueryString(t, "SELECT system_identifier FROM pg_control_system()")
	wantNum := c.QueryString(t, "SHOW server_version_num")
	ctx := testCtx(t)

	info, err := pg.CheckBackup(ctx, conn(c, "backup", backupPW))
	if err != nil {
		t.Fatalf("CheckBackup: %v", err)
	}
	if strconv.Itoa(info.VersionNum) != wantNum || info.Major != major ||
		!strings.HasPrefix(info.Version, strconv.Itoa(major)+".") || strings.Contains(info.Version, " ") {
		t.Errorf("version: num %d, %q, major %d; want num %s, major %d", info.VersionNum, info.Version, info.Major, wantNum, major)
	}
	if info.SystemIdentifier != wantSysID || wantSysID == "" {
		t.Errorf("SystemIdentifier = %q, want %q", info.SystemIdentifier, wantSysID)
	}
	if info.DataSizeBytes < 1<<20 {
		t.Errorf("DataSizeBytes = %d, want the size of the databases (> 1 MiB)", info.DataSizeBytes)
	}
	if info.WalLevel != "replica" || info.MaxWalSenders != 10 || info.WalSendersInUse != 0 {
		t.Errorf("WAL: level %q, max senders %d, in use %d; want replica, 10, 0", info.WalLevel, info.MaxWalSenders, info.WalSendersInUse)
	}

	// The superuser passes too, and Probe (normal connection only) reads the same
	// (pg_control_system() is executable by every role by default).
	if _, err := pg.CheckBackup(ctx, conn(c, c.SuperUser, c.SuperPassword)); err != nil {
		t.Errorf("CheckBackup as superuser: %v", err)
	}
	p, err := pg.Probe(ctx, conn(c, c.SuperUser, c.SuperPassword))
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if p.VersionNum != info.VersionNum || p.SystemIdentifier != wantSysID || p.DataSizeBytes < 1<<20 {
		t.Errorf("Probe = %+v, want the version, system identifier and size of %+v", p, info)
	}
	p, err = pg.Probe(ctx, conn(c, "backup", backupPW))
	if err != nil {
		t.Fatalf("Probe as backup: %v", err)
	}
	if p.SystemIdentifier != wantSysID || p.DataSizeBytes < 1<<20 {
		t.Errorf("Probe as backup = %+v, want the system identifier and size of %+v", p, info)
	}
}

// TestCheckBackup17: PostgreSQL 17 (from npm) passes.
func TestCheckBackup17(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{Major: 17})
	c.CreateRole(t, "backup", backupPW, "LOGIN REPLICATION")
	checkSucceeds(t, c, 17)
}

// TestCheckBackup15 shares one cluster (Debian's PostgreSQL 15) between success and the
// login, privilege and pg_hba failures.
func TestCheckBackup15(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{HBA: []string{
		"host replication hbarejected 127.0.0.1/32 reject", // before the default allow line
	}})
	c.CreateRole(t, "backup", backupPW, "LOGIN REPLICATION")
	c.CreateRole(t, "norepl", "Norepl-Secret-8", "LOGIN")
	c.CreateRole(t, "hbarejected", "Hba-Secret-9", "LOGIN REPLICATION")
	c.CreateRole(t, "Same-Name-Secret", "Same-Name-Secret", "LOGIN")
	// Before the failure cases run in parallel (they add connections and log lines only).
	t.Run("succeeds", func(t *testing.T) { checkSucceeds(t, c, 15) })

	cases := []struct {
		name, user, password, db, code string
		info                           bool // a *ServerInfo is returned (the login worked)
	}{
		{"wrong password", "backup", "Wrong-Secret-1", "", pg.CodeServerAuthenticationFailed, false},
		{"unknown role", "nobody", "Nobody-Secret-2", "", pg.CodeServerAuthenticationFailed, false},
		{"password in the role name", "Same-Name-Secret", "Wrong-Same-Name-Secret", "", pg.CodeServerAuthenticationFailed, false},
		{"unknown database", "backup", backupPW, "nodb", pg.CodeServerConnectionFailed, false},
		{"role without REPLICATION", "norepl", "Norepl-Secret-8", "", pg.CodeInsufficientReplicationPrivilege, true},
		{"role name equals password", "Same-Name-Secret", "Same-Name-Secret", "", pg.CodeInsufficientReplicationPrivilege, true},
		{"pg_hba rejects replication", "hbarejected", "Hba-Secret-9", "", pg.CodeReplicationConnectionRejected, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cn := conn(c, tc.user, tc.password)
			cn.Database = tc.db
			info, err := pg.CheckBackup(testCtx(t), cn)
			ce := wantCode(t, err, tc.code, tc.password)
			if (info != nil) != tc.info {
				t.Errorf("info = %+v, want info: %v", info, tc.info)
			}
			if tc.info && (info.Major != 15 || info.WalLevel != "replica") {
				t.Errorf("info = %+v, want what the normal connection learnt", info)
			}
			switch tc.code {
			case pg.CodeInsufficientReplicationPrivilege:
				if !strings.Contains(ce.Message, "REPLICATION") || !strings.Contains(ce.Message, "ALTER ROLE") {
					t.Errorf("message %q does not say how to grant REPLICATION", ce.Message)
				}
			case pg.CodeReplicationConnectionRejected:
				if !strings.Contains(ce.Message, "pg_hba.conf") || !strings.Contains(ce.Message, "host replication hbarejected") {
					t.Errorf("message %q does not say which pg_hba.conf line to add", ce.Message)
				}
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "28000" {
					t.Errorf("err does not wrap the server's SQLSTATE 28000 error: %#v", ce.Err)
				}
			case pg.CodeServerAuthenticationFailed:
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || (pgErr.Code != "28P01" && pgErr.Code != "28000") {
					t.Errorf("err does not wrap the server's error: %#v", ce.Err)
				}
			}
			// Probe reports the same login failures and nothing else.
			_, perr := pg.Probe(testCtx(t), cn)
			if tc.info {
				if perr != nil {
					t.Errorf("Probe: %v", perr)
				}
			} else {
				wantCode(t, perr, tc.code, tc.password)
			}
		})
	}

	// The race CheckBackup's query cannot see: privileges revoked between the normal and
	// the replication connection.
	t.Run("replication connection without privilege", func(t *testing.T) {
		_, err := pg.IdentifySystem(testCtx(t), conn(c, "norepl", "Norepl-Secret-8"), &pg.ServerInfo{MaxWalSenders: 10})
		wantCode(t, err, pg.CodeInsufficientReplicationPrivilege, "Norepl-Secret-8")
	})
}

// TestCheckBackupServerSettings walks one cluster through wal_level=minimal, busy and
// absent WAL senders and a stopped server.
func TestCheckBackupServerSettings(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"}})
	super := conn(c, c.SuperUser, c.SuperPassword)
	ctx := testCtx(t)

	info, err := pg.CheckBackup(ctx, super)
	ce := wantCode(t, err, pg.CodeWalLevelTooLow, c.SuperPassword)
	if !strings.Contains(ce.Message, "Set wal_level = replica (or logical) in postgresql.conf and restart the server") {
		t.Errorf("message %q does not say what to do", ce.Message)
	}
	if info == nil || info.WalLevel != "minimal" {
		t.Errorf("info = %+v, want WalLevel minimal", info)
	}

	// All WAL senders busy: max_wal_senders = 1 and one replication connection held open.
	c.Exec(t, "ALTER SYSTEM SET wal_level = replica")
	c.Exec(t, "ALTER SYSTEM SET max_wal_senders = 1")
	c.Restart(t)
	held := replicationConn(t, c)
	info, err = pg.CheckBackup(ctx, super)
	ce = wantCode(t, err, pg.CodeNoFreeWalSender, c.SuperPassword)
	if info == nil || info.MaxWalSenders != 1 || info.WalSendersInUse != 1 {
		t.Errorf("info = %+v, want 1 of 1 WAL senders in use", info)
	}
	if !strings.Contains(ce.Message, "max_wal_senders") {
		t.Errorf("message %q does not name max_wal_senders", ce.Message)
	}
	// The replication connection itself is refused with SQLSTATE 53300 (the race where a
	// sender is taken after CheckBackup's query).
	_, err = pg.IdentifySystem(ctx, super, &pg.ServerInfo{MaxWalSenders: 1})
	wantCode(t, err, pg.CodeNoFreeWalSender, c.SuperPassword)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "53300" {
		t.Errorf("err = %v, want one wrapping SQLSTATE 53300", err)
	}

	// Once the sender is free again (the walsender exits asynchronously) all checks pass.
	if err := held.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = pg.CheckBackup(ctx, super)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("CheckBackup after the sender was freed: %v", err)
	}

	// max_wal_senders = 0 with wal_level = replica.
	c.Exec(t, "ALTER SYSTEM SET max_wal_senders = 0")
	c.Restart(t)
	_, err = pg.CheckBackup(ctx, super)
	ce = wantCode(t, err, pg.CodeNoFreeWalSender, c.SuperPassword)
	if !strings.Contains(ce.Message, "max_wal_senders is 0") {
		t.Errorf("message %q does not say max_wal_senders is 0", ce.Message)
	}

	// A stopped server.
	c.Stop(t)
	start := time.Now()
	info, err = pg.CheckBackup(ctx, super)
	wantCode(t, err, pg.CodeServerUnreachable, c.SuperPassword)
	if info != nil {
		t.Errorf("info = %+v, want nil", info)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a refused connection took %s", d)
	}
	_, err = pg.Probe(ctx, super)
	wantCode(t, err, pg.CodeServerUnreachable, c.SuperPassword)
}

// replicationConn opens a physical replication connection as the superuser and runs
// IDENTIFY_SYSTEM on it; it occupies one WAL sender until closed.
func replicationConn(t *testing.T, c *pgtest.Cluster) *pgconn.PgConn {
	t.Helper()
	ctx := testCtx(t)
	rc, err := pgconn.Connect(ctx, c.SuperDSN()+"&replication=true")
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	t.Cleanup(func() { _ = rc.Close(context.Background()) })
	if _, err := rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll(); err != nil {
		t.Fatalf("IDENTIFY_SYSTEM: %v", err)
	}
	return rc
}

// TestUnreachable: no server at all (unknown host, a port that accepts but never answers),
// and the caller's ctx.
func TestUnreachable(t *testing.T) {
	ctx := testCtx(t)
	const pw = "Unreachable-Secret-3"

	_, err := pg.CheckBackup(ctx, pg.Conn{Host: "pgvault-test.invalid", Port: 5432, User: "u", Password: pw})
	wantCode(t, err, pg.CodeServerUnreachable, pw)

	// A listener that accepts and never answers: the connect timeout ends it.
	addr := silentListener(t)
	defer pg.SetConnectTimeout(300 * time.Millisecond)()
	start := time.Now()
	_, err = pg.CheckBackup(ctx, pg.Conn{Host: addr.IP.String(), Port: addr.Port, User: "u", Password: pw, SSLMode: "disable"})
	ce := wantCode(t, err, pg.CodeServerUnreachable, pw)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the connect timeout took %s", d)
	}
	if !strings.Contains(ce.Message, "within") {
		t.Errorf("message %q does not mention the timeout", ce.Message)
	}

	// The caller's ctx ending is not a failed check.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	defer pg.SetConnectTimeout(time.Minute)()
	_, err = pg.CheckBackup(short, pg.Conn{Host: addr.IP.String(), Port: addr.Port, User: "u", Password: pw, SSLMode: "disable"})
	var ce2 *pg.CheckError
	if errors.As(err, &ce2) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the ctx's deadline, not a CheckError", err)
	}
	assertNoPassword(t, err, pw)
}

// silentListener accepts TCP connections and never writes to them.
func silentListener(t *testing.T) *net.TCPAddr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { <-done; _ = c.Close() }()
		}
	}()
	return l.Addr().(*net.TCPAddr)
}

// TestVersionNotSupported uses a fake server that speaks the startup protocol as
// PostgreSQL 12 would (no PostgreSQL older than 13 can be installed here).
func TestVersionNotSupported(t *testing.T) {
	for _, v := range []string{"12.22 (Debian 12.22-1.pgdg120+1)", "9.6.24"} {
		addr := fakeServer(t, v)
		const pw = "Fake-Secret-4"
		info, err := pg.CheckBackup(testCtx(t), pg.Conn{Host: addr.IP.String(), Port: addr.Port, User: "u", Password: pw, SSLMode: "disable"})
		ce := wantCode(t, err, pg.CodeServerVersionNotSupported, pw)
		if info == nil || info.Major >= 13 || !strings.Contains(ce.Message, info.Version) || !strings.Contains(ce.Message, "13") {
			t.Errorf("info = %+v, message %q; want the old version in both", info, ce.Message)
		}
		// Probe does not judge the version.
		if info, err := pg.Probe(testCtx(t), pg.Conn{Host: addr.IP.String(), Port: addr.Port, User: "u", Password: pw, SSLMode: "disable"}); err != nil || info.Major >= 13 {
			t.Errorf("Probe = %+v, %v", info, err)
		}
	}
}

// fakeServer answers every connection with a successful login as server version v and
// then waits for the client to leave.
func fakeServer(t *testing.T, v string) *net.TCPAddr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				be := pgproto3.NewBackend(c, c)
				for {
					msg, err := be.ReceiveStartupMessage()
					if err != nil {
						return
					}
					if _, ok := msg.(*pgproto3.StartupMessage); ok {
						break
					}
					if _, err := c.Write([]byte("N")); err != nil { // no TLS, no GSS encryption
						return
					}
				}
				be.Send(&pgproto3.AuthenticationOk{})
				for k, val := range map[string]string{"server_version": v, "standard_conforming_strings": "on", "client_encoding": "UTF8"} {
					be.Send(&pgproto3.ParameterStatus{Name: k, Value: val})
				}
				be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
				be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
				if err := be.Flush(); err != nil {
					return
				}
				for {
					if _, err := be.Receive(); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr)
}

func TestParseServerVersion(t *testing.T) {
	for _, tc := range []struct {
		in         string
		num, major int
	}{
		{"15.18 (Debian 15.18-1.pgdg120+1)", 150018, 15},
		{"17.10", 170010, 17},
		{"18beta1", 180000, 18},
		{"13.23", 130023, 13},
		{"9.6.24", 90624, 9},
		{"", 0, 0},
		{"abc", 0, 0},
	} {
		num, major := pg.ParseServerVersion(tc.in)
		if num != tc.num || major != tc.major {
			t.Errorf("parseServerVersion(%q) = %d, %d; want %d, %d", tc.in, num, major, tc.num, tc.major)
		}
	}
}

func TestConnStringHasNoPassword(t *testing.T) {
	c := pg.Conn{Host: "db.example", User: "alice", Password: "Conn-Secret-5"}
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(&c)} {
		if strings.Contains(s, "Conn-Secret-5") {
			t.Errorf("%q contains the password", s)
		}
	}
	if got, want := c.String(), "alice@db.example:5432/postgres (sslmode=prefer)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
