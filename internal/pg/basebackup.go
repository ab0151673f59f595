package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Names of the archives BaseBackup passes to its archive function besides "<oid>.tar",
// one per extra tablespace: the same names pg_basebackup -Ft gives the files it writes.
const (
	// BaseArchiveName is the tar archive of the main data directory. It holds
	// backup_label, the WAL needed to make the backup consistent under pg_wal/ (unless
	// BaseBackupOptions.NoWAL) and tablespace_map: one line "<oid> <location>" per extra
	// tablespace. pg_tblspc/ holds no links: the server makes them from tablespace_map
	// when it starts recovery from backup_label, so a restore extracts "<oid>.tar" where
	// it likes and writes that location into tablespace_map (tools that read the
	// extracted directory before that, such as pg_verifybackup, need the
	// pg_tblspc/<oid> link made by hand).
	BaseArchiveName = "base.tar"
	// ManifestName is the backup manifest (JSON, with a checksum of every file in the
	// archives, see BaseBackupOptions.ManifestChecksums), as pg_verifybackup expects it next to the restored data directory.
	ManifestName = "backup_manifest"
)

// Manifest checksum algorithms for BaseBackupOptions.ManifestChecksums.
const (
	ChecksumSHA256 = "SHA256"
	ChecksumCRC32C = "CRC32C"
)

// DefaultBackupLabel is the backup label when BaseBackupOptions.Label is empty.
const DefaultBackupLabel = "pgvault base backup"

// MaxRate bounds (kB/s) the server accepts for BaseBackupOptions.MaxRate.
const (
	MinMaxRate = 32
	MaxMaxRate = 1048576
)

// abortTimeout bounds how long an aborted backup waits for the server to acknowledge the
// cancel before it drops the connection.
const abortTimeout = 5 * time.Second

// progressInterval is the least time between two calls of BaseBackupOptions.Progress
// within an archive.
const progressInterval = time.Second

// maxWarnings bounds BaseBackupInfo.Warnings.
const maxWarnings = 100

// BaseBackupOptions configure BaseBackup. The zero value takes a self-contained backup
// (the WAL it needs included) with a manifest, after a spread checkpoint, at full speed.
//
// NoWAL and NoManifest are negative so that the zero value is the safe default: a backup
// that can be restored on its own and verified.
type BaseBackupOptions struct {
	// Label is the backup label, written into backup_label and the server log; empty
	// means DefaultBackupLabel. At most 1024 bytes, no control characters.
	Label string
	// Fast requests an immediate checkpoint (CHECKPOINT 'fast'). Without it the server
	// spreads the checkpoint that starts the backup over checkpoint_completion_target of
	// checkpoint_timeout (minutes on an idle server); tests always set it.
	Fast bool
	// NoWAL leaves out the WAL between the start and end of the backup (BASE_BACKUP's
	// WAL option). Such a backup can be restored only together with that WAL taken
	// elsewhere (a WAL archive); the server then also waits until it has archived the last
	// segment the backup needs (WAIT true).
	NoWAL bool
	// NoManifest leaves out the backup manifest (by default it is requested and passed
	// on as ManifestName after the tablespace archives).
	NoManifest bool
	// ManifestChecksums is the algorithm of the manifest's per-file checksums:
	// ChecksumSHA256 when empty, or ChecksumCRC32C (PostgreSQL's own default, what
	// pg_basebackup uses unless told otherwise), which costs the server far less CPU.
	ManifestChecksums string
	// MaxRate limits how fast the server sends, in kB/s (MinMaxRate to MaxMaxRate); 0
	// means unlimited.
	MaxRate int
	// Progress, if set, is called (on BaseBackup's goroutine) with the bytes of the
	// tablespace archives streamed so far and the server's estimate of their total, at
	// most about once a second and at the end of every tablespace archive. The estimate
	// leaves out the WAL and changes made during the backup, so done may exceed it. Setting
	// Progress makes the server measure the tablespaces before it sends them (BASE_BACKUP's
	// PROGRESS option), which costs one more walk over the data directory.
	Progress func(done, total int64)
}

// Tablespace is one tablespace of a base backup.
type Tablespace struct {
	// OID is the tablespace's OID; 0 for the main data directory (which holds the
	// pg_default and pg_global tablespaces).
	OID uint32
	// Location is the tablespace's directory on the server; "" for the main data directory.
	Location string
	// Size is the server's estimate of the tablespace's size in bytes, -1 when unknown
	// (BaseBackupOptions.Progress not set).
	Size int64
}

// BaseBackupInfo is what BaseBackup reports about a finished backup.
type BaseBackupInfo struct {
	// StartLSN and EndLSN are the WAL positions where the backup starts and ends, as the
	// server prints them (e.g. "0/2000028"): a restore must replay the WAL up to EndLSN to
	// be consistent.
	StartLSN, EndLSN string
	// Timeline is the timeline of StartLSN; EndTimeline that of EndLSN (they differ only
	// when a standby was promoted during the backup).
	Timeline, EndTimeline int32
	// SystemIdentifier is the cluster's database system identifier (decimal).
	SystemIdentifier string
	// ServerVersion is the server's server_version_num, e.g. 150018.
	ServerVersion int
	// Tablespaces are the backup's tablespaces in the order the server sent their
	// archives, the main data directory (OID 0) included.
	Tablespaces []Tablespace
	// Bytes is the number of bytes passed to the archive function over all archives.
	Bytes int64
	// Duration is how long the backup took, connecting included.
	Duration time.Duration
	// Warnings are the notices and warnings the server sent during the backup (e.g. about
	// WAL archiving or page checksum failures), "SEVERITY: message", at most 100.
	Warnings []string
}

// BaseBackup takes a physical backup of the whole cluster over the replication protocol
// (BASE_BACKUP) and calls archive for every archive the server sends, in the server's
// order: the tar archive of each extra tablespace ("<oid>.tar"), that of the main data
// directory (BaseArchiveName, OID 0, always after the others) and, unless
// opts.NoManifest, the backup manifest (ManifestName, with a zero Tablespace). The tar
// archives are complete (end-of-archive marker included) on every server version.
//
// archive must read r to its end (io.EOF) before it returns nil, and must not keep r:
// the data is streamed from the connection as archive reads it, never staged in memory
// or on disk, so a slow archive function slows the server down. If archive returns an
// error, or ctx ends, the backup is cancelled on the server (which ends it cleanly and
// frees its WAL sender) and BaseBackup returns the error (errors.Is(err, ctx.Err())
// when ctx ended).
//
// BaseBackup supports PostgreSQL 13 and newer. It returns a *CheckError when the server
// refuses the replication connection (codes of CheckBackup: ServerUnreachable,
// ServerAuthenticationFailed, ReplicationConnectionRejected,
// InsufficientReplicationPrivilege, NoFreeWalSender, ...) or is too old, and otherwise a
// wrapped error ("while ...") that says what it was doing; neither ever contains the
// password.
func BaseBackup(ctx context.Context, c Conn, opts BaseBackupOptions, archive func(name string, tablespace Tablespace, r io.Reader) error) (*BaseBackupInfo, error) {
	c = c.withDefaults()
	info, err := baseBackup(ctx, c, opts, archive)
	return info, maskCheckError(err, c.Password)
}

func baseBackup(ctx context.Context, c Conn, opts BaseBackupOptions, archive func(string, Tablespace, io.Reader) error) (*BaseBackupInfo, error) {
	began := time.Now()
	if archive == nil {
		return nil, fmt.Errorf("while starting a base backup of %s: no archive function", c)
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("while starting a base backup of %s: %w", c, err)
	}
	conn, err := replicationConnect(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	version := conn.ParameterStatus("server_version")
	num, major := parseServerVersion(version)
	if major < MinMajor {
		closeReplication(conn)
		if f := strings.Fields(version); len(f) > 0 {
			version = f[0]
		}
		return nil, &CheckError{Code: CodeServerVersionNotSupported, Message: fmt.Sprintf(
			"The server runs PostgreSQL %s; pgvault supports PostgreSQL %d and newer. Upgrade the server to a supported major version.",
			version, MinMajor)}
	}
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		closeReplication(conn)
		return nil, queryError(ctx, c, "running IDENTIFY_SYSTEM on a replication connection", err)
	}

	s := &bbStream{
		ctx:      ctx,
		c:        c,
		conn:     conn,
		legacy:   major < 15,
		archive:  archive,
		progress: opts.Progress,
		manifest: !opts.NoManifest,
		info:     &BaseBackupInfo{SystemIdentifier: sys.SystemID, ServerVersion: num},
	}
	// One watcher for the whole stream instead of pgconn's per call (a registration and
	// a channel per message): when ctx ends, the pending read fails at once, and abort
	// cancels the backup on the server.
	stop := context.AfterFunc(ctx, func() { _ = conn.Conn().SetDeadline(time.Now()) })
	err = s.run(baseBackupCommand(major, opts))
	stop()
	if err != nil {
		s.abort()
		return nil, err
	}
	closeReplication(conn)
	s.info.Duration = time.Since(began)
	return s.info, nil
}

func (o BaseBackupOptions) validate() error {
	if len(o.Label) > 1024 {
		return fmt.Errorf("the backup label is %d bytes long; at most 1024 are allowed", len(o.Label))
	}
	for _, b := range []byte(o.Label) {
		if b < 0x20 || b == 0x7f {
			return errors.New("the backup label contains a control character")
		}
	}
	if o.MaxRate != 0 && (o.MaxRate < MinMaxRate || o.MaxRate > MaxMaxRate) {
		return fmt.Errorf("MaxRate %d kB/s is out of range: use 0 (unlimited) or %d to %d", o.MaxRate, MinMaxRate, MaxMaxRate)
	}
	switch o.ManifestChecksums {
	case "", ChecksumSHA256, ChecksumCRC32C:
	default:
		return fmt.Errorf("manifest checksums %q are not supported: use %s or %s", o.ManifestChecksums, ChecksumSHA256, ChecksumCRC32C)
	}
	return nil
}

// manifestChecksums is the algorithm the manifest is requested with.
func (o BaseBackupOptions) manifestChecksums() string {
	if o.ManifestChecksums == "" {
		return ChecksumSHA256
	}
	return o.ManifestChecksums
}

// baseBackupCommand is the BASE_BACKUP command for a server of the given major: the
// parenthesised option list of PostgreSQL 15 and newer, the bare keywords before. The
// options are those pg_basebackup -Ft -X fetch sends: TABLESPACE_MAP puts the tablespace
// locations into a file a restore can edit, and with the WAL included the server need
// not wait for WAL archiving.
func baseBackupCommand(major int, o BaseBackupOptions) string {
	label := o.Label
	if label == "" {
		label = DefaultBackupLabel
	}
	// The replication grammar's string literals know only '' as an escape.
	label = "'" + strings.ReplaceAll(label, "'", "''") + "'"
	if major >= 15 {
		opts := []string{"LABEL " + label}
		if o.Progress != nil {
			opts = append(opts, "PROGRESS")
		}
		if o.Fast {
			opts = append(opts, "CHECKPOINT 'fast'")
		}
		if !o.NoWAL {
			opts = append(opts, "WAL", "WAIT 0")
		}
		if o.MaxRate > 0 {
			opts = append(opts, "MAX_RATE "+strconv.Itoa(o.MaxRate))
		}
		opts = append(opts, "TABLESPACE_MAP")
		if !o.NoManifest {
			opts = append(opts, "MANIFEST 'yes'", "MANIFEST_CHECKSUMS '"+o.manifestChecksums()+"'")
		}
		return "BASE_BACKUP (" + strings.Join(opts, ", ") + ")"
	}
	opts := []string{"BASE_BACKUP", "LABEL " + label}
	if o.Progress != nil {
		opts = append(opts, "PROGRESS")
	}
	if o.Fast {
		opts = append(opts, "FAST")
	}
	if !o.NoWAL {
		opts = append(opts, "WAL", "NOWAIT")
	}
	if o.MaxRate > 0 {
		opts = append(opts, "MAX_RATE "+strconv.Itoa(o.MaxRate))
	}
	opts = append(opts, "TABLESPACE_MAP")
	if !o.NoManifest {
		opts = append(opts, "MANIFEST 'yes'", "MANIFEST_CHECKSUMS '"+o.manifestChecksums()+"'")
	}
	return strings.Join(opts, " ")
}

// bbStream reads the replies to one BASE_BACKUP command.
//
// After two result sets (start position and timeline; one row per tablespace) the server
// streams the archives, framed by version:
//
//   - PostgreSQL 15 and newer: one CopyOutResponse; every CopyData starts with a type
//     byte: 'n' a new archive follows (archive name and tablespace location, both
//     NUL-terminated), 'd' archive data, 'p' progress (bytes sent so far, int64), 'm' the
//     manifest follows (its data in 'd' messages); then CopyDone. Tar archives end with
//     the two zero blocks that terminate a tar file.
//   - PostgreSQL 13 and 14: one CopyOutResponse ... CopyDone per tablespace, in the order
//     of the tablespace result set, whose CopyData are raw tar data without the
//     terminating zero blocks (pg_basebackup adds them, and so does bbStream); then, if
//     requested, one more CopyOutResponse ... CopyDone with the manifest.
//
// Then a result set with the end position and timeline, CommandComplete and
// ReadyForQuery.
type bbStream struct {
	ctx      context.Context
	c        Conn
	conn     *pgconn.PgConn
	legacy   bool // PostgreSQL 13 and 14 framing
	archive  func(string, Tablespace, io.Reader) error
	progress func(done, total int64)
	manifest bool // the manifest was requested
	info     *BaseBackupInfo

	next pgproto3.BackendMessage // read ahead, not handled yet

	// The archive being streamed.
	name     string
	isTar    bool   // not the manifest: counts for progress
	data     []byte // unread data of the current CopyData (pgconn's buffer: valid until the next receive)
	trailer  bool   // legacy: add the tar end-of-archive marker at CopyDone
	eof      bool   // no more messages for this archive (data may still hold its last bytes)
	err      error  // the stream failed (sticky)
	done     int64  // bytes of tar archives passed on
	total    int64  // estimated bytes of all tar archives, -1 if unknown
	lastCall time.Time
}

// tarTrailer terminates a tar archive: two zero blocks of 512 bytes.
var tarTrailer [1024]byte

// run sends cmd and reads everything up to the final ReadyForQuery.
func (s *bbStream) run(cmd string) error {
	s.conn.Frontend().SendQuery(&pgproto3.Query{String: cmd})
	if err := s.conn.Frontend().Flush(); err != nil {
		return s.fail("sending BASE_BACKUP", err)
	}
	start, tli, err := s.readPosition("starting the base backup (checkpoint)")
	if err != nil {
		return err
	}
	s.info.StartLSN, s.info.Timeline = start, tli
	if err := s.readTablespaces(); err != nil {
		return err
	}
	if s.legacy {
		err = s.streamLegacy()
	} else {
		err = s.streamModern()
	}
	if err != nil {
		return err
	}
	end, tli, err := s.readPosition("finishing the base backup")
	if err != nil {
		return err
	}
	s.info.EndLSN, s.info.EndTimeline = end, tli
	for {
		msg, err := s.receive("finishing the base backup")
		if err != nil {
			return err
		}
		switch msg.(type) {
		case *pgproto3.CommandComplete:
		case *pgproto3.ReadyForQuery:
			return nil
		default:
			return s.unexpected("finishing the base backup", msg)
		}
	}
}

// receive returns the next message that is neither a notice nor a parameter status; an
// ErrorResponse becomes an error.
func (s *bbStream) receive(doing string) (pgproto3.BackendMessage, error) {
	for {
		msg := s.next
		s.next = nil
		if msg == nil {
			if err := s.ctx.Err(); err != nil {
				return nil, s.fail(doing, err)
			}
			var err error
			msg, err = s.conn.ReceiveMessage(context.Background()) // ctx: see the AfterFunc in baseBackup
			if err != nil {
				return nil, s.fail(doing, err)
			}
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse:
			if len(s.info.Warnings) < maxWarnings {
				s.info.Warnings = append(s.info.Warnings, m.Severity+": "+redactString(m.Message, s.c.Password))
			}
		case *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			return nil, s.fail(doing, pgconn.ErrorResponseToPgError(m))
		default:
			return msg, nil
		}
	}
}

// fail turns err into the error BaseBackup returns (ctx's error when ctx ended) and
// records it as the stream's.
func (s *bbStream) fail(doing string, err error) error {
	if s.err != nil {
		return s.err
	}
	if ctxErr := s.ctx.Err(); ctxErr != nil {
		s.err = fmt.Errorf("while %s on %s: %w", doing, s.c, ctxErr)
		return s.err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		cause := redact(pgErr, s.c.Password)
		switch {
		case pgErr.Code == "55000" && strings.Contains(pgErr.Message+" "+pgErr.Hint, "wal_level"):
			// "WAL level not sufficient for making an online backup"
			s.err = &CheckError{Code: CodeWalLevelTooLow, Err: cause, Message: "wal_level is minimal, which cannot support a physical backup. " +
				"Set wal_level = replica (or logical) in postgresql.conf and restart the server."}
		case pgErr.Code == "42501":
			s.err = fmt.Errorf("while %s on %s: the server could not read a file of its own (check the ownership and permissions in its data directory): %w", doing, s.c, cause)
		default:
			s.err = fmt.Errorf("while %s on %s: %w", doing, s.c, cause)
		}
		return s.err
	}
	s.err = fmt.Errorf("while %s on %s: %w", doing, s.c, redact(err, s.c.Password))
	return s.err
}

func (s *bbStream) unexpected(doing string, msg pgproto3.BackendMessage) error {
	return s.fail(doing, fmt.Errorf("protocol error: unexpected message %T", msg))
}

// readPosition reads a result set of one row (recptr text, tli): the start or end.
func (s *bbStream) readPosition(doing string) (lsn string, tli int32, err error) {
	got := false
	for {
		msg, err := s.receive(doing)
		if err != nil {
			return "", 0, err
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			if len(m.Fields) != 2 {
				return "", 0, s.fail(doing, fmt.Errorf("protocol error: position result with %d columns, want 2", len(m.Fields)))
			}
		case *pgproto3.DataRow:
			if len(m.Values) != 2 || m.Values[0] == nil || m.Values[1] == nil {
				return "", 0, s.fail(doing, errors.New("protocol error: malformed position row"))
			}
			lsn = string(m.Values[0])
			if _, err := pglogrepl.ParseLSN(lsn); err != nil {
				return "", 0, s.fail(doing, fmt.Errorf("protocol error: bad WAL position %q: %w", lsn, err))
			}
			t, err := strconv.ParseInt(string(m.Values[1]), 10, 32)
			if err != nil {
				return "", 0, s.fail(doing, fmt.Errorf("protocol error: bad timeline %q", m.Values[1]))
			}
			tli, got = int32(t), true
		case *pgproto3.CommandComplete:
			if !got {
				return "", 0, s.fail(doing, errors.New("protocol error: no position row"))
			}
			return lsn, tli, nil
		default:
			return "", 0, s.unexpected(doing, msg)
		}
	}
}

// readTablespaces reads the result set with one row (spcoid, spclocation, size in kB)
// per tablespace; the main data directory's has NULL spcoid and spclocation.
func (s *bbStream) readTablespaces() error {
	const doing = "reading the tablespaces of the base backup"
	for {
		msg, err := s.receive(doing)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			if len(m.Fields) != 3 {
				return s.fail(doing, fmt.Errorf("protocol error: tablespace result with %d columns, want 3", len(m.Fields)))
			}
		case *pgproto3.DataRow:
			if len(m.Values) != 3 {
				return s.fail(doing, errors.New("protocol error: malformed tablespace row"))
			}
			ts := Tablespace{Location: string(m.Values[1]), Size: -1}
			if m.Values[0] != nil {
				oid, err := strconv.ParseUint(string(m.Values[0]), 10, 32)
				if err != nil || oid == 0 {
					return s.fail(doing, fmt.Errorf("protocol error: bad tablespace OID %q", m.Values[0]))
				}
				ts.OID = uint32(oid)
			}
			if m.Values[2] != nil {
				kb, err := strconv.ParseInt(string(m.Values[2]), 10, 64)
				if err != nil || kb < 0 {
					return s.fail(doing, fmt.Errorf("protocol error: bad tablespace size %q", m.Values[2]))
				}
				ts.Size = kb * 1024
			}
			s.info.Tablespaces = append(s.info.Tablespaces, ts)
		case *pgproto3.CommandComplete:
			s.total = 0
			for _, ts := range s.info.Tablespaces {
				if ts.Size < 0 {
					s.total = -1
					break
				}
				s.total += ts.Size
			}
			return nil
		default:
			return s.unexpected(doing, msg)
		}
	}
}

// streamModern streams the archives of PostgreSQL 15 and newer (one COPY stream).
func (s *bbStream) streamModern() error {
	const doing = "receiving the archives of the base backup"
	msg, err := s.receive(doing)
	if err != nil {
		return err
	}
	if _, ok := msg.(*pgproto3.CopyOutResponse); !ok {
		return s.unexpected(doing, msg)
	}
	gotManifest := false
	for {
		msg, err := s.receive(doing)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				return s.fail(doing, errors.New("protocol error: empty CopyData"))
			}
			switch m.Data[0] {
			case 'n': // new archive: name, tablespace location
				name, rest, ok := cutCString(m.Data[1:])
				location, _, ok2 := cutCString(rest)
				if !ok || !ok2 || name == "" || strings.ContainsAny(name, "/\\") {
					return s.fail(doing, errors.New("protocol error: malformed new-archive message"))
				}
				if err := s.stream(name, s.tablespaceAt(name, location), true); err != nil {
					return err
				}
			case 'm': // the manifest follows
				gotManifest = true
				if err := s.stream(ManifestName, Tablespace{}, false); err != nil {
					return err
				}
			case 'p': // progress: the server's count of bytes sent
			case 'd':
				return s.fail(doing, errors.New("protocol error: archive data before any archive"))
			default:
				return s.fail(doing, fmt.Errorf("protocol error: unknown CopyData type %q", m.Data[0]))
			}
		case *pgproto3.CopyDone:
			if s.manifest && !gotManifest {
				return s.fail(doing, errors.New("the server sent no backup manifest"))
			}
			return nil
		default:
			return s.unexpected(doing, msg)
		}
	}
}

// tablespaceAt returns the tablespace at location (from the tablespace result set).
func (s *bbStream) tablespaceAt(name, location string) Tablespace {
	for _, ts := range s.info.Tablespaces {
		if ts.Location == location {
			return ts
		}
	}
	ts := Tablespace{Location: location, Size: -1}
	if oid, err := strconv.ParseUint(strings.TrimSuffix(name, ".tar"), 10, 32); err == nil {
		ts.OID = uint32(oid)
	}
	return ts
}

// streamLegacy streams the archives of PostgreSQL 13 and 14 (one COPY stream each).
func (s *bbStream) streamLegacy() error {
	const doing = "receiving the archives of the base backup"
	for _, ts := range s.info.Tablespaces {
		msg, err := s.receive(doing)
		if err != nil {
			return err
		}
		if _, ok := msg.(*pgproto3.CopyOutResponse); !ok {
			return s.unexpected(doing, msg)
		}
		name := BaseArchiveName
		if ts.OID != 0 {
			name = strconv.FormatUint(uint64(ts.OID), 10) + ".tar"
		}
		if err := s.stream(name, ts, true); err != nil {
			return err
		}
	}
	msg, err := s.receive(doing)
	if err != nil {
		return err
	}
	if _, ok := msg.(*pgproto3.CopyOutResponse); ok {
		return s.stream(ManifestName, Tablespace{}, false)
	}
	if s.manifest {
		return s.fail(doing, errors.New("the server sent no backup manifest"))
	}
	s.next = msg // the end position
	return nil
}

// stream hands one archive to the archive function.
func (s *bbStream) stream(name string, ts Tablespace, isTar bool) error {
	s.name, s.isTar, s.data, s.eof = name, isTar, nil, false
	s.trailer = s.legacy && isTar
	r := &archiveReader{s: s}
	err := s.archive(name, ts, r)
	r.s = nil
	if s.err != nil {
		return s.err // what made the archive function fail
	}
	if err != nil {
		if ctxErr := s.ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", err, ctxErr)
		}
		s.err = fmt.Errorf("while storing archive %s of the base backup of %s: %w", name, s.c, redact(err, s.c.Password))
		return s.err
	}
	// A reader that stops right at the end (archive/tar stops at the end-of-archive
	// marker) has read everything without seeing io.EOF: check that nothing is left.
	for len(s.data) > 0 || !s.eof {
		if len(s.data) > 0 {
			s.err = fmt.Errorf("while storing archive %s of the base backup of %s: the archive function returned before reading the archive to its end", name, s.c)
			return s.err
		}
		if err := s.fill(); err != nil {
			return err
		}
	}
	if isTar {
		s.report(true)
	}
	return nil
}

// fill reads the next piece of the current archive into s.data, or sets s.eof: it
// returns with data or at the end.
func (s *bbStream) fill() error {
	doing := "receiving archive " + s.name + " of the base backup"
	for len(s.data) == 0 && !s.eof {
		msg, err := s.receive(doing)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if s.legacy {
				s.data = m.Data
				continue
			}
			if len(m.Data) == 0 {
				return s.fail(doing, errors.New("protocol error: empty CopyData"))
			}
			switch m.Data[0] {
			case 'd':
				s.data = m.Data[1:]
			case 'p':
			default: // the next archive, the manifest: this one has ended
				s.next, s.eof = msg, true
			}
		case *pgproto3.CopyDone:
			if !s.legacy {
				s.next, s.eof = msg, true
				continue
			}
			if s.trailer {
				s.data, s.trailer = tarTrailer[:], false
			}
			s.eof = true
		default:
			return s.unexpected(doing, msg)
		}
	}
	return nil
}

// report calls the progress function, at most once per progressInterval unless final.
func (s *bbStream) report(final bool) {
	if s.progress == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(s.lastCall) < progressInterval {
		return
	}
	s.lastCall = now
	s.progress(s.done, s.total)
}

// abort cancels the running BASE_BACKUP: a cancel request makes the server end it
// cleanly (do_pg_abort_backup) and free its WAL sender; the connection is closed after
// the server's ReadyForQuery, or after abortTimeout.
func (s *bbStream) abort() {
	conn := s.conn
	if conn.IsClosed() {
		return
	}
	deadline := time.Now().Add(abortTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	_ = conn.Conn().SetDeadline(deadline)
	_ = conn.CancelRequest(ctx)
	for {
		msg, err := conn.ReceiveMessage(context.Background()) // bounded by the deadline
		if err != nil {
			break
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	_ = conn.Close(ctx)
}

// archiveReader is the io.Reader an archive function gets.
type archiveReader struct {
	s *bbStream // nil once the archive function has returned
}

var errReaderClosed = errors.New("pg: archive reader used after the archive function returned")

// Read reads archive data as it arrives from the server.
func (r *archiveReader) Read(p []byte) (int, error) {
	s := r.s
	if s == nil {
		return 0, errReaderClosed
	}
	if s.err != nil {
		return 0, s.err
	}
	if len(s.data) == 0 {
		if err := s.fill(); err != nil {
			return 0, err
		}
		if len(s.data) == 0 {
			return 0, io.EOF
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	s.info.Bytes += int64(n)
	if s.isTar {
		s.done += int64(n)
		s.report(false)
	}
	return n, nil
}

// WriteTo writes the rest of the archive to w without an intermediate buffer (io.Copy
// uses it).
func (r *archiveReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		s := r.s
		if s == nil {
			return total, errReaderClosed
		}
		if s.err != nil {
			return total, s.err
		}
		if len(s.data) == 0 {
			if err := s.fill(); err != nil {
				return total, err
			}
			if len(s.data) == 0 {
				return total, nil
			}
		}
		n, err := w.Write(s.data)
		if n > len(s.data) || n < 0 {
			n = 0
			if err == nil {
				err = errors.New("invalid write result")
			}
		}
		s.data = s.data[n:]
		total += int64(n)
		s.info.Bytes += int64(n)
		if s.isTar {
			s.done += int64(n)
			s.report(false)
		}
		if err != nil {
			return total, err
		}
	}
}

// cutCString splits b after its first NUL.
func cutCString(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}
