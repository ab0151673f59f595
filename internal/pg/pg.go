// Package pg is pgvault's PostgreSQL knowledge: how to reach a server, what it is, and
// whether a physical backup (BASE_BACKUP over the replication protocol) can be taken from it.
//
// Errors never contain a password: pgx's errors name the user and database but not the
// password; pgvault additionally masks the password in every message it builds from them
// and does not keep pgx's connection errors (whose Config field holds it) in the chain.
package pg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// ConnectTimeout bounds each connection attempt, so a dead or unroutable host fails fast.
const ConnectTimeout = 5 * time.Second

// connectTimeout is ConnectTimeout; tests shorten it.
var connectTimeout = ConnectTimeout

// replicationReadBuffer is the read buffer of a replication connection.
const replicationReadBuffer = 256 << 10

// MinMajor is the oldest PostgreSQL major pgvault backs up.
const MinMajor = 13

// Conn says how to reach a server.
type Conn struct {
	Host     string
	Port     int    // 0 means 5432
	User     string // the role pgvault logs in as
	Password string
	Database string // default "postgres"
	SSLMode  string // libpq's sslmode: disable, allow, prefer (default), require, verify-ca, verify-full
}

// String describes the connection for logs, e.g. "alice@db.example:5432/postgres
// (sslmode=prefer)". It never includes the password.
func (c Conn) String() string {
	c = c.withDefaults()
	return fmt.Sprintf("%s@%s/%s (sslmode=%s)", c.User, net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), c.Database, c.SSLMode)
}

// GoString keeps the password out of %#v as well.
func (c Conn) GoString() string {
	pw := ""
	if c.Password != "" {
		pw = redactedMark
	}
	return fmt.Sprintf("pg.Conn{Host:%q, Port:%d, User:%q, Password:%q, Database:%q, SSLMode:%q}",
		c.Host, c.Port, c.User, pw, c.Database, c.SSLMode)
}

func (c Conn) withDefaults() Conn {
	if c.Port == 0 {
		c.Port = 5432
	}
	if c.Database == "" {
		c.Database = "postgres"
	}
	if c.SSLMode == "" {
		c.SSLMode = "prefer"
	}
	return c
}

// ServerInfo is what pgvault learns from a server.
type ServerInfo struct {
	VersionNum int    // server_version_num, e.g. 150018
	Version    string // e.g. "15.18"
	Major      int    // e.g. 15
	// SystemIdentifier is the cluster's database system identifier (decimal), from
	// IDENTIFY_SYSTEM on a replication connection or pg_control_system(); "" when neither
	// was allowed.
	SystemIdentifier string
	// DataSizeBytes is the sum of pg_database_size over all databases the role may measure
	// (those it may CONNECT to, or all with pg_read_all_stats or as superuser).
	DataSizeBytes   int64
	WalLevel        string // minimal, replica or logical
	MaxWalSenders   int
	WalSendersInUse int // rows of pg_stat_replication: WAL senders connected now
}

// Check codes: CheckError.Code.
const (
	// CodeServerUnreachable: no connection (refused, timed out, unknown host, server
	// starting up or shutting down).
	CodeServerUnreachable = "ServerUnreachable"
	// CodeServerAuthenticationFailed: wrong password, unknown role, or pg_hba.conf rejects
	// the login (SQLSTATE 28P01, 28000).
	CodeServerAuthenticationFailed = "ServerAuthenticationFailed"
	// CodeServerConnectionFailed: the connection failed for another reason the server or
	// the TLS layer gave (unknown database, too many connections, TLS required...).
	CodeServerConnectionFailed = "ServerConnectionFailed"
	// CodeServerVersionNotSupported: PostgreSQL older than MinMajor.
	CodeServerVersionNotSupported = "ServerVersionNotSupported"
	// CodeInsufficientReplicationPrivilege: the role is neither superuser nor REPLICATION.
	CodeInsufficientReplicationPrivilege = "InsufficientReplicationPrivilege"
	// CodeReplicationConnectionRejected: pg_hba.conf refuses a replication connection for
	// the role from pgvault's address.
	CodeReplicationConnectionRejected = "ReplicationConnectionRejected"
	// CodeWalLevelTooLow: wal_level is minimal.
	CodeWalLevelTooLow = "WalLevelTooLow"
	// CodeNoFreeWalSender: max_wal_senders is 0 or every WAL sender is in use.
	CodeNoFreeWalSender = "NoFreeWalSender"
)

// CheckError is a failed check: a stable Code, a Message that says what to do, and the
// underlying error (password-free) if any.
type CheckError struct {
	Code    string
	Message string
	Err     error
}

// Error returns "Code: Message".
func (e *CheckError) Error() string {
	return e.Code + ": " + e.Message
}

// Unwrap returns the underlying error.
func (e *CheckError) Unwrap() error { return e.Err }

// Probe connects with a normal connection and reads version, sizes and WAL settings. It
// returns a *CheckError when the server cannot be reached or refuses the login (codes
// ServerUnreachable, ServerAuthenticationFailed, ServerConnectionFailed) or reports a
// version it cannot parse (ServerVersionNotSupported); it does not judge the version or
// the settings (CheckBackup does). For a server older than MinMajor only the version
// fields are filled.
//
// Settings Conn does not name (e.g. sslrootcert) come from pgx's defaults, which include
// libpq's PG* environment variables and ~/.pgpass of the process.
func Probe(ctx context.Context, c Conn) (*ServerInfo, error) {
	c = c.withDefaults()
	conn, err := connect(ctx, c)
	if err != nil {
		return nil, maskCheckError(err, c.Password)
	}
	defer closeConn(conn)
	info, err := probe(ctx, conn, c)
	return info, maskCheckError(err, c.Password)
}

// CheckBackup runs every check a physical backup (BASE_BACKUP over the replication
// protocol) needs, in this order: reach and log in (normal connection), version, the
// role's REPLICATION privilege, wal_level, a free WAL sender, and a real replication
// connection running IDENTIFY_SYSTEM. It returns what it learnt (nil only when it could
// not log in) and a *CheckError for the first failed check, nil when all pass. Other
// errors (ctx ended, a query failed) are returned as they are.
func CheckBackup(ctx context.Context, c Conn) (*ServerInfo, error) {
	c = c.withDefaults()
	info, err := checkBackup(ctx, c)
	return info, maskCheckError(err, c.Password)
}

func checkBackup(ctx context.Context, c Conn) (*ServerInfo, error) {
	conn, err := connect(ctx, c)
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	info, err := probe(ctx, conn, c)
	if err != nil {
		return info, err
	}
	if info.Major < MinMajor {
		return info, &CheckError{Code: CodeServerVersionNotSupported, Message: fmt.Sprintf(
			"The server runs PostgreSQL %s; pgvault supports PostgreSQL %d and newer. Upgrade the server to a supported major version.",
			info.Version, MinMajor)}
	}

	var super, repl bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user").Scan(&super, &repl); err != nil {
		return info, queryError(ctx, c, "reading the role's attributes", err)
	}
	if !super && !repl {
		return info, &CheckError{Code: CodeInsufficientReplicationPrivilege, Message: fmt.Sprintf(
			"Role %s may not open replication connections, which physical backups need. Grant it as a superuser with: ALTER ROLE %s REPLICATION; (or use a superuser role).",
			quoteIdent(c.User), quoteIdent(c.User))}
	}

	if info.WalLevel == "minimal" {
		return info, &CheckError{Code: CodeWalLevelTooLow, Message: "wal_level is minimal, which cannot support a physical backup. " +
			"Set wal_level = replica (or logical) in postgresql.conf and restart the server (wal_level = minimal also requires max_wal_senders = 0, so raise max_wal_senders too)."}
	}
	if err := walSenderError(info, nil); err != nil {
		return info, err
	}

	sysID, err := identifySystem(ctx, c, info)
	if err != nil {
		return info, err
	}
	info.SystemIdentifier = sysID
	return info, nil
}

// connect opens a normal connection and classifies failures as *CheckError.
func connect(ctx context.Context, c Conn) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString(c, false))
	if err != nil {
		return nil, fmt.Errorf("while parsing the connection settings for %s: %w", c, redact(err, c.Password))
	}
	cfg.Password = c.Password
	cfg.ConnectTimeout = connectTimeout
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(ctx, c, "connecting", err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// connString is a keyword/value connection string without the password (which is set on
// the parsed config, so no parse error can contain it).
func connString(c Conn, replication bool) string {
	kv := []string{
		"host=" + quoteConnValue(c.Host),
		"port=" + strconv.Itoa(c.Port),
		"user=" + quoteConnValue(c.User),
		"dbname=" + quoteConnValue(c.Database),
		"sslmode=" + quoteConnValue(c.SSLMode),
		"application_name=pgvault",
	}
	if replication {
		kv = append(kv, "replication=true")
	}
	return strings.Join(kv, " ")
}

func quoteConnValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// probe reads what a normal connection can tell.
func probe(ctx context.Context, conn *pgx.Conn, c Conn) (*ServerInfo, error) {
	info := &ServerInfo{Version: conn.PgConn().ParameterStatus("server_version")}
	info.VersionNum, info.Major = parseServerVersion(info.Version)
	if info.Major == 0 {
		return nil, &CheckError{Code: CodeServerVersionNotSupported, Message: fmt.Sprintf(
			"The server reports version %q, which pgvault does not understand; pgvault supports PostgreSQL %d and newer.",
			info.Version, MinMajor)}
	}
	if f := strings.Fields(info.Version); len(f) > 0 {
		info.Version = f[0] // "15.18 (Debian 15.18-1.pgdg120+1)" -> "15.18"
	}
	if info.Major < MinMajor {
		// Old servers may lack what the queries below use; the version is what counts.
		return info, nil
	}

	var num, maxSenders, inUse int
	var size *int64
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int,
		current_setting('wal_level'),
		current_setting('max_wal_senders')::int,
		(SELECT count(*) FROM pg_stat_replication)::int,
		(SELECT sum(pg_database_size(d.oid))::bigint FROM pg_database d
		  WHERE has_database_privilege(d.oid, 'CONNECT') OR pg_has_role('pg_read_all_stats', 'MEMBER'))`).
		Scan(&num, &info.WalLevel, &maxSenders, &inUse, &size)
	if err != nil {
		return info, queryError(ctx, c, "reading the server's version, settings and size", err)
	}
	info.VersionNum, info.MaxWalSenders, info.WalSendersInUse = num, maxSenders, inUse
	if size != nil {
		info.DataSizeBytes = *size
	}

	// pg_control_system() is executable by every role unless an administrator revoked
	// it; then only CheckBackup's replication connection (IDENTIFY_SYSTEM) tells it.
	var allowed bool
	if err := conn.QueryRow(ctx, "SELECT has_function_privilege('pg_control_system()', 'EXECUTE')").Scan(&allowed); err != nil {
		return info, queryError(ctx, c, "checking access to pg_control_system()", err)
	}
	if allowed {
		if err := conn.QueryRow(ctx, "SELECT system_identifier::text FROM pg_control_system()").Scan(&info.SystemIdentifier); err != nil {
			return info, queryError(ctx, c, "reading the system identifier", err)
		}
	}
	return info, nil
}

// parseServerVersion turns server_version ("15.18 (Debian ...)", "17beta1", "9.6.24")
// into server_version_num and the major version; 0, 0 when it cannot.
func parseServerVersion(v string) (num, major int) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0, 0
	}
	s := f[0]
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.') {
		end++
	}
	parts := strings.Split(strings.Trim(s[:end], "."), ".")
	nums := make([]int, 3)
	for i := 0; i < len(parts) && i < 3; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return 0, 0
		}
		nums[i] = n
	}
	if nums[0] == 0 {
		return 0, 0
	}
	if nums[0] >= 10 {
		return nums[0]*10000 + nums[1], nums[0]
	}
	return nums[0]*10000 + nums[1]*100 + nums[2], nums[0] // 9.6.24: major 9 (9.6)
}

// walSenderError is the NoFreeWalSender error when info says no WAL sender is free (or
// cause, a refused replication connection, says so).
func walSenderError(info *ServerInfo, cause error) error {
	if info.MaxWalSenders == 0 {
		return &CheckError{Code: CodeNoFreeWalSender, Err: cause, Message: "max_wal_senders is 0, so the server accepts no replication connections. " +
			"Set max_wal_senders (e.g. 10) in postgresql.conf and restart the server."}
	}
	if info.WalSendersInUse >= info.MaxWalSenders || cause != nil {
		return &CheckError{Code: CodeNoFreeWalSender, Err: cause, Message: fmt.Sprintf(
			"All WAL senders are in use (max_wal_senders = %d). Raise max_wal_senders in postgresql.conf and restart the server, "+
				"or end replication connections that are no longer needed (see pg_stat_replication).", info.MaxWalSenders)}
	}
	return nil
}

// identifySystem opens a replication connection (as BASE_BACKUP will) and runs
// IDENTIFY_SYSTEM; it returns the system identifier.
func identifySystem(ctx context.Context, c Conn, info *ServerInfo) (string, error) {
	conn, err := replicationConnect(ctx, c, info)
	if err != nil {
		return "", err
	}
	defer closeReplication(conn)
	res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil {
		return "", queryError(ctx, c, "running IDENTIFY_SYSTEM on a replication connection", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 1 {
		return "", fmt.Errorf("while running IDENTIFY_SYSTEM on %s: unexpected result shape", c)
	}
	return string(res[0].Rows[0][0]), nil
}

// replicationConnect opens a physical replication connection and classifies failures as
// *CheckError: ReplicationConnectionRejected, InsufficientReplicationPrivilege,
// NoFreeWalSender, else those of connectError. info is what CheckBackup learnt on a
// normal connection, nil when replicationConnect is the first contact (BaseBackup): then
// the WAL sender count is unknown, and a wrong password (which a normal login would have
// caught first) is ServerAuthenticationFailed rather than a pg_hba.conf matter.
func replicationConnect(ctx context.Context, c Conn, info *ServerInfo) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(connString(c, true))
	if err != nil {
		return nil, fmt.Errorf("while parsing the replication connection settings for %s: %w", c, redact(err, c.Password))
	}
	cfg.Password = c.Password
	cfg.ConnectTimeout = connectTimeout
	// A base backup streams hundreds of MB in CopyData messages of at most 8 KiB or
	// so; pgproto3 reads into an 8 KiB buffer, one read system call a message. A
	// larger buffer drains what the socket holds in one call.
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, replicationReadBuffer), w)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && !(info == nil && pgErr.Code == "28P01") {
			cause := redact(pgErr, c.Password)
			switch pgErr.Code {
			case "28000", "28P01": // invalid_authorization_specification (pg_hba), invalid_password
				return nil, &CheckError{Code: CodeReplicationConnectionRejected, Err: cause, Message: fmt.Sprintf(
					"The server refused a replication connection for role %s: %s. Add a line such as "+
						"\"host replication %s <pgvault's address>/32 scram-sha-256\" to pg_hba.conf above any line that rejects it, "+
						"then reload the configuration (SELECT pg_reload_conf();).",
					quoteIdent(c.User), redactString(pgErr.Message, c.Password), hbaRole(c.User))}
			case "42501": // insufficient_privilege: "must be superuser or replication role to start walsender"
				return nil, &CheckError{Code: CodeInsufficientReplicationPrivilege, Err: cause, Message: fmt.Sprintf(
					"Role %s may not open replication connections: %s. Grant it as a superuser with: ALTER ROLE %s REPLICATION;",
					quoteIdent(c.User), redactString(pgErr.Message, c.Password), quoteIdent(c.User))}
			case "53300": // too_many_connections: "number of requested standby connections exceeds max_wal_senders"
				if info == nil {
					return nil, &CheckError{Code: CodeNoFreeWalSender, Err: cause, Message: fmt.Sprintf(
						"The server has no free WAL sender: %s. Raise max_wal_senders in postgresql.conf and restart the server, "+
							"or end replication connections that are no longer needed (see pg_stat_replication).",
						redactString(pgErr.Message, c.Password))}
				}
				return nil, walSenderError(info, cause)
			}
		}
		return nil, connectError(ctx, c, "opening a replication connection", err)
	}
	return conn, nil
}

// closeReplication closes a replication connection, waiting at most a second.
func closeReplication(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// hbaRole is how a role name appears in pg_hba.conf.
func hbaRole(user string) string {
	if user == "" || user == "all" || strings.ContainsAny(user, " \t,\"#") || strings.HasPrefix(user, "+") || strings.HasPrefix(user, "@") {
		return `"` + strings.ReplaceAll(user, `"`, `""`) + `"`
	}
	return user
}

// connectError classifies a failed connection attempt.
func connectError(ctx context.Context, c Conn, doing string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("while %s to %s: %w", doing, c, ctxErr)
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		cause := redact(pgErr, c.Password)
		msg := redactString(pgErr.Message, c.Password)
		switch {
		case pgErr.Code == "28P01" || pgErr.Code == "28000":
			return &CheckError{Code: CodeServerAuthenticationFailed, Err: cause, Message: fmt.Sprintf(
				"The server at %s refused the login of role %s: %s. Check the user name and password, "+
					"and that pg_hba.conf allows this role to connect to database %s from pgvault's address.",
				addr, quoteIdent(c.User), msg, quoteIdent(c.Database))}
		case pgErr.Code == "57P03": // cannot_connect_now: starting up, shutting down, in recovery without hot standby
			return &CheckError{Code: CodeServerUnreachable, Err: cause, Message: fmt.Sprintf(
				"The server at %s does not accept connections now: %s. Retry when it has finished starting (or stopping).", addr, msg)}
		case pgErr.Code == "3D000":
			return &CheckError{Code: CodeServerConnectionFailed, Err: cause, Message: fmt.Sprintf(
				"The server at %s has no database %s: %s. Use an existing database (e.g. postgres).", addr, quoteIdent(c.Database), msg)}
		case pgErr.Code == "53300":
			return &CheckError{Code: CodeServerConnectionFailed, Err: cause, Message: fmt.Sprintf(
				"The server at %s has no free connection: %s. Raise max_connections or close idle connections.", addr, msg)}
		default:
			return &CheckError{Code: CodeServerConnectionFailed, Err: cause, Message: fmt.Sprintf(
				"The server at %s refused the connection: %s (SQLSTATE %s).", addr, msg, pgErr.Code)}
		}
	}
	reason := redactString(innermost(err), c.Password)
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		return &CheckError{Code: CodeServerUnreachable, Err: redact(dnsErr, c.Password), Message: fmt.Sprintf(
			"Could not resolve the host name %q: %s. Check the server's host name.", c.Host, reason)}
	case pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded):
		return &CheckError{Code: CodeServerUnreachable, Err: errors.New(reason), Message: fmt.Sprintf(
			"Could not reach the PostgreSQL server at %s within %s. Check the host and port, that the server is running, "+
				"and that no firewall drops the connection.", addr, connectTimeout)}
	case errors.As(err, &opErr):
		return &CheckError{Code: CodeServerUnreachable, Err: redact(opErr, c.Password), Message: fmt.Sprintf(
			"Could not reach the PostgreSQL server at %s: %s. Check the host and port, that the server is running "+
				"and listens on this address (listen_addresses), and that no firewall blocks the connection.", addr, reason)}
	}
	return &CheckError{Code: CodeServerConnectionFailed, Err: errors.New(reason), Message: fmt.Sprintf(
		"Could not connect to the PostgreSQL server at %s: %s.", addr, reason)}
}

// queryError wraps a failed query (no check failed: the server misbehaved or ctx ended).
func queryError(ctx context.Context, c Conn, doing string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("while %s on %s: %w", doing, c, ctxErr)
	}
	return fmt.Errorf("while %s on %s: %w", doing, c, redact(err, c.Password))
}

// innermost is the message of the deepest error in err's chain (joined errors: each
// branch's deepest), without pgx's "failed to connect to `user=... database=...`" prefix.
func innermost(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var msgs []string
		seen := map[string]bool{}
		for _, e := range j.Unwrap() {
			if m := innermost(e); !seen[m] {
				seen[m] = true
				msgs = append(msgs, m)
			}
		}
		return strings.Join(msgs, "; ")
	}
	if u := errors.Unwrap(err); u != nil {
		return innermost(u)
	}
	return err.Error()
}

const redactedMark = "********"

// redactString masks every occurrence of password in s.
func redactString(s, password string) string {
	if password == "" {
		return s
	}
	return strings.ReplaceAll(s, password, redactedMark)
}

// maskCheckError masks the password in a *CheckError's message (it can appear there
// when, say, the role is named like its password); other errors are masked already.
func maskCheckError(err error, password string) error {
	var ce *CheckError
	if errors.As(err, &ce) {
		ce.Message = redactString(ce.Message, password)
	}
	return err
}

// redact returns err with the password masked: a *pgconn.PgError as a copy with masked
// fields (so errors.As still finds one), another error whose message contains the
// password as a new error with the masked message, anything else as it is.
func redact(err error, password string) error {
	if err == nil || password == "" {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && err == error(pgErr) {
		cp := *pgErr
		for _, f := range []*string{&cp.Message, &cp.Detail, &cp.Hint, &cp.Where, &cp.InternalQuery,
			&cp.SchemaName, &cp.TableName, &cp.ColumnName, &cp.DataTypeName, &cp.ConstraintName} {
			*f = redactString(*f, password)
		}
		return &cp
	}
	if msg := err.Error(); strings.Contains(msg, password) {
		return errors.New(redactString(msg, password))
	}
	return err
}
