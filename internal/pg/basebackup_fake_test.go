package pg_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvault/pgvault/internal/pg"
)

// The framing of PostgreSQL 13 and 14, and failures in the middle of the stream, against
// a fake WAL sender: CI has no PostgreSQL older than 15 (TestBaseBackupOtherMajors
// covers real ones when installed).

const fakePW = "Fake-Secret-6"

// fakeWalSender answers replication connections as server version v: IDENTIFY_SYSTEM, and
// BASE_BACKUP with what script sends (ReadyForQuery follows). It records the commands.
type fakeWalSender struct {
	addr *net.TCPAddr
	mu   sync.Mutex
	cmds []string
}

func newFakeWalSender(t *testing.T, v string, script func(be *pgproto3.Backend)) *fakeWalSender {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	f := &fakeWalSender{addr: l.Addr().(*net.TCPAddr)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.serve(c, v, script)
		}
	}()
	return f
}

func (f *fakeWalSender) serve(c net.Conn, v string, script func(be *pgproto3.Backend)) {
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
		if _, ok := msg.(*pgproto3.CancelRequest); ok {
			return
		}
		if _, err := c.Write([]byte("N")); err != nil { // no TLS, no GSS encryption
			return
		}
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: v})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		q, ok := msg.(*pgproto3.Query)
		if !ok {
			return // Terminate
		}
		f.mu.Lock()
		f.cmds = append(f.cmds, q.String)
		f.mu.Unlock()
		switch {
		case q.String == "IDENTIFY_SYSTEM":
			be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
				{Name: []byte("systemid"), DataTypeOID: 25}, {Name: []byte("timeline"), DataTypeOID: 23},
				{Name: []byte("xlogpos"), DataTypeOID: 25}, {Name: []byte("dbname"), DataTypeOID: 25}}})
			be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("7000000000000000001"), []byte("1"), []byte("0/3000000"), nil}})
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("IDENTIFY_SYSTEM")})
		case strings.HasPrefix(q.String, "BASE_BACKUP"):
			script(be)
		default:
			be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error"})
		}
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if be.Flush() != nil {
			return
		}
	}
}

func (f *fakeWalSender) conn() pg.Conn {
	return pg.Conn{Host: f.addr.IP.String(), Port: f.addr.Port, User: "backup", Password: fakePW, SSLMode: "disable"}
}

func (f *fakeWalSender) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

// Pieces of a BASE_BACKUP reply.

func sendPosition(be *pgproto3.Backend, lsn string) {
	be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("recptr"), DataTypeOID: 25}, {Name: []byte("tli"), DataTypeOID: 20}}})
	be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte(lsn), []byte("1")}})
	be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT")})
}

func sendTablespaces(be *pgproto3.Backend) {
	be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("spcoid"), DataTypeOID: 26}, {Name: []byte("spclocation"), DataTypeOID: 25}, {Name: []byte("size"), DataTypeOID: 20}}})
	be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("16400"), []byte("/srv/ts"), []byte("10")}})
	be.Send(&pgproto3.DataRow{Values: [][]byte{nil, nil, []byte("20")}})
	be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT")})
}

func sendCopy(be *pgproto3.Backend, chunks ...string) {
	be.Send(&pgproto3.CopyOutResponse{})
	for _, c := range chunks {
		be.Send(&pgproto3.CopyData{Data: []byte(c)})
	}
	be.Send(&pgproto3.CopyDone{})
}

// collect reads every archive into memory.
func collect(got map[string]string, order *[]string) func(string, pg.Tablespace, io.Reader) error {
	return func(name string, ts pg.Tablespace, r io.Reader) error {
		*order = append(*order, name)
		b, err := io.ReadAll(r)
		got[name] = string(b)
		return err
	}
}

var zeros1024 = string(make([]byte, 1024))

func TestBaseBackupLegacyFraming(t *testing.T) {
	f := newFakeWalSender(t, "14.11", func(be *pgproto3.Backend) {
		sendPosition(be, "0/5000028")
		sendTablespaces(be)
		sendCopy(be, "TS1", "TS2")
		be.Send(&pgproto3.NoticeResponse{Severity: "WARNING", Message: "checksum verification failed"})
		sendCopy(be, "BASE1", "BASE2", "BASE3")
		sendCopy(be, "{manifest}")
		sendPosition(be, "0/5000100")
		be.Send(&pgproto3.CommandComplete{CommandTag: []byte("BASE_BACKUP")})
	})
	got := map[string]string{}
	var order []string
	var progress [][2]int64
	info, err := pg.BaseBackup(testCtx(t), f.conn(), pg.BaseBackupOptions{Fast: true, Progress: func(d, tot int64) {
		progress = append(progress, [2]int64{d, tot})
	}}, collect(got, &order))
	if err != nil {
		t.Fatal(err)
	}
	if cmds := f.commands(); len(cmds) != 2 || cmds[1] != "BASE_BACKUP LABEL 'pgvault base backup' PROGRESS FAST WAL NOWAIT TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'SHA256'" {
		t.Errorf("commands %q", cmds)
	}
	if strings.Join(order, " ") != "16400.tar base.tar backup_manifest" {
		t.Errorf("archives %q", order)
	}
	if got["16400.tar"] != "TS1TS2"+zeros1024 || got["base.tar"] != "BASE1BASE2BASE3"+zeros1024 || got["backup_manifest"] != "{manifest}" {
		t.Errorf("archives %q", got)
	}
	want := pg.BaseBackupInfo{StartLSN: "0/5000028", EndLSN: "0/5000100", Timeline: 1, EndTimeline: 1,
		SystemIdentifier: "7000000000000000001", ServerVersion: 140011,
		Tablespaces: []pg.Tablespace{{OID: 16400, Location: "/srv/ts", Size: 10240}, {Size: 20480}},
		Bytes:       int64(6 + 15 + 2*1024 + 10), Warnings: []string{"WARNING: checksum verification failed"}}
	info.Duration = 0
	if !equalInfo(*info, want) {
		t.Errorf("info\n got %+v\nwant %+v", *info, want)
	}
	// The first read reports at once, then the end of each archive.
	if len(progress) != 3 || progress[1] != [2]int64{6 + 1024, 30720} || progress[2] != [2]int64{6 + 15 + 2048, 30720} {
		t.Errorf("progress %v", progress)
	}
}

func equalInfo(a, b pg.BaseBackupInfo) bool {
	return a.StartLSN == b.StartLSN && a.EndLSN == b.EndLSN && a.Timeline == b.Timeline && a.EndTimeline == b.EndTimeline &&
		a.SystemIdentifier == b.SystemIdentifier && a.ServerVersion == b.ServerVersion && a.Bytes == b.Bytes &&
		strings.Join(a.Warnings, "|") == strings.Join(b.Warnings, "|") &&
		len(a.Tablespaces) == len(b.Tablespaces) && (len(a.Tablespaces) == 0 || a.Tablespaces[0] == b.Tablespaces[0] && a.Tablespaces[1] == b.Tablespaces[1])
}

// TestBaseBackupModernFraming: progress messages, notices and the archive order of
// PostgreSQL 15 and newer, including an archive name the tablespace rows do not explain.
func TestBaseBackupModernFraming(t *testing.T) {
	f := newFakeWalSender(t, "15.6", func(be *pgproto3.Backend) {
		sendPosition(be, "0/5000028")
		sendTablespaces(be)
		be.Send(&pgproto3.CopyOutResponse{})
		be.Send(&pgproto3.CopyData{Data: []byte("n16400.tar\x00/srv/ts\x00")})
		be.Send(&pgproto3.CopyData{Data: []byte("dTS1")})
		be.Send(&pgproto3.CopyData{Data: []byte("p\x00\x00\x00\x00\x00\x00\x00\x03")})
		be.Send(&pgproto3.CopyData{Data: []byte("dTS2")})
		be.Send(&pgproto3.CopyData{Data: []byte("nbase.tar\x00\x00")})
		be.Send(&pgproto3.NoticeResponse{Severity: "NOTICE", Message: "hello"})
		be.Send(&pgproto3.CopyData{Data: []byte("dBASE")})
		be.Send(&pgproto3.CopyData{Data: []byte("m")})
		be.Send(&pgproto3.CopyData{Data: []byte("d{manifest}")})
		be.Send(&pgproto3.CopyDone{})
		sendPosition(be, "0/5000100")
		be.Send(&pgproto3.CommandComplete{CommandTag: []byte("BASE_BACKUP")})
	})
	got := map[string]string{}
	var order []string
	info, err := pg.BaseBackup(testCtx(t), f.conn(), pg.BaseBackupOptions{NoWAL: true}, collect(got, &order))
	if err != nil {
		t.Fatal(err)
	}
	if cmds := f.commands(); len(cmds) != 2 || cmds[1] != "BASE_BACKUP (LABEL 'pgvault base backup', TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256')" {
		t.Errorf("commands %q", cmds)
	}
	if strings.Join(order, " ") != "16400.tar base.tar backup_manifest" || got["16400.tar"] != "TS1TS2" || got["base.tar"] != "BASE" || got["backup_manifest"] != "{manifest}" {
		t.Errorf("archives %q: %q", order, got)
	}
	if len(info.Warnings) != 1 || info.Bytes != 20 || info.ServerVersion != 150006 {
		t.Errorf("info %+v", info)
	}
}

// TestBaseBackupStreamFailures: what the server or the stream gets wrong.
func TestBaseBackupStreamFailures(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		noManifest    bool
		script        func(be *pgproto3.Backend)
		want          string // in the error
		wantCode      string // SQLSTATE
	}{
		{name: "server error mid-stream", version: "14.11", script: func(be *pgproto3.Backend) {
			sendPosition(be, "0/5000028")
			sendTablespaces(be)
			sendCopy(be, "TS")
			be.Send(&pgproto3.CopyOutResponse{})
			be.Send(&pgproto3.CopyData{Data: []byte("BASE")})
			be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "58P01", Message: "requested WAL segment 000000010000000000000003 has already been removed " + fakePW})
		}, want: "receiving archive base.tar", wantCode: "58P01"},
		{name: "error before the start", version: "15.6", script: func(be *pgproto3.Backend) {
			be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "55000", Message: "WAL level not sufficient for making an online backup",
				Hint: "wal_level must be set to \"replica\" or \"logical\" at server start."})
		}, want: pg.CodeWalLevelTooLow, wantCode: "55000"},
		{name: "unknown message type", version: "15.6", script: func(be *pgproto3.Backend) {
			sendPosition(be, "0/5000028")
			sendTablespaces(be)
			be.Send(&pgproto3.CopyOutResponse{})
			be.Send(&pgproto3.CopyData{Data: []byte("x")})
		}, want: "unknown CopyData type"},
		{name: "no manifest", version: "14.11", script: func(be *pgproto3.Backend) {
			sendPosition(be, "0/5000028")
			sendTablespaces(be)
			sendCopy(be, "TS")
			sendCopy(be, "BASE")
			sendPosition(be, "0/5000100")
		}, want: "sent no backup manifest"},
		{name: "no manifest requested", version: "14.11", noManifest: true, script: func(be *pgproto3.Backend) {
			sendPosition(be, "0/5000028")
			sendTablespaces(be)
			sendCopy(be, "TS")
			sendCopy(be, "BASE")
			sendPosition(be, "0/5000100")
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("BASE_BACKUP")})
		}},
		{name: "bad position", version: "15.6", script: func(be *pgproto3.Backend) {
			sendPosition(be, "nonsense")
		}, want: "bad WAL position"},
		{name: "too old", version: "12.22", script: func(be *pgproto3.Backend) {}, want: pg.CodeServerVersionNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWalSender(t, tc.version, tc.script)
			info, err := pg.BaseBackup(testCtx(t), f.conn(), pg.BaseBackupOptions{NoManifest: tc.noManifest}, discardArchives)
			assertNoPassword(t, err, fakePW)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || info != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("info %+v, err = %v; want an error with %q", info, err, tc.want)
			}
			var pgErr *pgconn.PgError
			if tc.wantCode != "" && (!errors.As(err, &pgErr) || pgErr.Code != tc.wantCode) {
				t.Errorf("err = %v, want a PgError %s in the chain", err, tc.wantCode)
			}
			t.Logf("%v", err)
		})
	}
}

// TestBaseBackupReaderMisuse: a reader used after its archive function returned.
func TestBaseBackupReaderMisuse(t *testing.T) {
	f := newFakeWalSender(t, "14.11", func(be *pgproto3.Backend) {
		sendPosition(be, "0/5000028")
		sendTablespaces(be)
		sendCopy(be, "TS")
		sendCopy(be, "BASE")
		sendCopy(be, "{}")
		sendPosition(be, "0/5000100")
		be.Send(&pgproto3.CommandComplete{CommandTag: []byte("BASE_BACKUP")})
	})
	var kept io.Reader
	_, err := pg.BaseBackup(context.Background(), f.conn(), pg.BaseBackupOptions{}, func(_ string, _ pg.Tablespace, r io.Reader) error {
		kept = r
		var b bytes.Buffer
		_, err := b.ReadFrom(r) // WriteTo is not used by ReadFrom: the Read path
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kept.Read(make([]byte, 10)); err == nil {
		t.Error("a kept reader still reads")
	}
}
