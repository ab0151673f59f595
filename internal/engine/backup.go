// Package engine moves data: a PostgreSQL server's physical backup into the
// repository (Backup), and a recovery point back out as a data directory
// (RestoreDir) or in pg_basebackup's tar format (WriteTarFormat). It knows
// nothing of HTTP or the metadata store.
//
// A backup is stored as the data directory it describes: base.tar's entries
// at their own paths, each tablespace's entries under pg_tblspc/<oid>/ (as
// PostgreSQL lays them out), and the backup manifest as backup_manifest.
// That keeps relation files at the paths the repository cuts at page
// boundaries, and lets a restore rebuild pg_basebackup's tar format exactly.
package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/repo"
)

// Metadata keys a backup's snapshot carries.
const (
	MetaStartLSN         = "pg.start_lsn"
	MetaEndLSN           = "pg.end_lsn"
	MetaTimeline         = "pg.timeline"
	MetaSystemIdentifier = "pg.system_identifier"
	MetaServerVersion    = "pg.server_version"
	MetaTablespaces      = "pg.tablespaces" // "oid=location,..." of the source server (to read; programs use MetaTablespaceOIDs)
	// MetaTablespaceOIDs lists the OIDs of the source server's extra
	// tablespaces ("16400,16401"), in the order the server sent their
	// archives; "" when there are none. Unlike MetaTablespaces it cannot be
	// misread when a location contains "," or "=".
	MetaTablespaceOIDs = "pg.tablespace_oids"
	MetaLabel          = "pg.label"
)

// ManifestPath is where the backup manifest is kept in a snapshot.
const ManifestPath = "backup_manifest"

// BackupOptions configure Backup.
type BackupOptions struct {
	// Label is the backup label the server records.
	Label string
	// Meta is added to the snapshot's metadata (e.g. the recovery point's IDs).
	Meta map[string]string
	// Progress, when set, is called with bytes received and the server's estimate.
	Progress func(done, total int64)
	// Writer tunes the repository writer.
	Writer repo.WriterOptions
}

// BackupResult describes a finished backup.
type BackupResult struct {
	Info     *pg.BaseBackupInfo
	Snapshot *repo.Snapshot
}

// Backup takes a physical backup of the server (BASE_BACKUP with the WAL it
// needs and a manifest) and streams it into the repository. The snapshot is
// committed only after the server confirmed the end of the backup and what
// was received matched the server's manifest, file by file
// (pg.ErrManifestMismatch otherwise); on any error nothing is committed.
//
// The manifest's file checksums are CRC32C, PostgreSQL's default: what
// pg_verifybackup checks after a restore. They guard against a damaged
// restore, as every chunk's keyed content ID already does; SHA256 would
// double the walsender's CPU for no protection the repository lacks.
func Backup(ctx context.Context, c pg.Conn, r *repo.Repo, opts BackupOptions) (*BackupResult, error) {
	w, err := r.NewWriter(ctx, opts.Writer)
	if err != nil {
		return nil, fmt.Errorf("while starting the repository writer: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = w.Abort(context.WithoutCancel(ctx))
		}
	}()
	received := make(map[string]pg.FileSum) // what each regular file held (R47)
	var manifest []byte
	info, err := pg.BaseBackup(ctx, c, pg.BaseBackupOptions{
		Label: opts.Label, Fast: true, Progress: opts.Progress, ManifestChecksums: pg.ChecksumCRC32C,
	},
		func(name string, ts pg.Tablespace, rd io.Reader) error {
			if name == ManifestPath {
				var err error
				manifest, err = addManifest(ctx, w, rd)
				return err
			}
			prefix := ""
			if ts.OID != 0 {
				prefix = "pg_tblspc/" + strconv.FormatUint(uint64(ts.OID), 10)
			}
			return addArchive(ctx, w, prefix, rd, received)
		})
	if err != nil {
		return nil, fmt.Errorf("while taking the base backup: %w", err)
	}
	if err := pg.VerifyBackup(manifest, received, pg.ChecksumCRC32C, info); err != nil {
		return nil, err
	}
	meta := map[string]string{
		MetaStartLSN: info.StartLSN, MetaEndLSN: info.EndLSN, MetaTimeline: strconv.Itoa(int(info.Timeline)),
		MetaSystemIdentifier: info.SystemIdentifier, MetaServerVersion: strconv.Itoa(info.ServerVersion), MetaLabel: opts.Label,
	}
	var spc, oids []string
	for _, t := range info.Tablespaces {
		if t.OID != 0 {
			oid := strconv.FormatUint(uint64(t.OID), 10)
			spc = append(spc, oid+"="+t.Location)
			oids = append(oids, oid)
		}
	}
	meta[MetaTablespaces] = strings.Join(spc, ",")
	meta[MetaTablespaceOIDs] = strings.Join(oids, ",")
	for k, v := range opts.Meta {
		meta[k] = v
	}
	snap, err := w.Commit(ctx, meta)
	if err != nil {
		return nil, fmt.Errorf("while committing the snapshot: %w", err)
	}
	committed = true
	return &BackupResult{Info: info, Snapshot: snap}, nil
}

// addArchive stores the entries of one tar archive under prefix, noting
// in received the size and CRC32C of each regular file.
func addArchive(ctx context.Context, w *repo.Writer, prefix string, rd io.Reader, received map[string]pg.FileSum) error {
	tr := tar.NewReader(rd)
	if prefix != "" {
		if err := w.AddFile(ctx, repo.File{Path: prefix, Type: repo.TypeDir, Mode: 0o700}, nil); err != nil {
			return fmt.Errorf("while storing %s: %w", prefix, err)
		}
	}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("while reading the archive of %q: %w", prefix, err)
		}
		p, err := entryPath(prefix, h.Name)
		if err != nil {
			return err
		}
		f := repo.File{Path: p, Mode: modeFromTar(h.Mode), ModTime: h.ModTime.UTC()}
		var content io.Reader
		var sum *summingReader
		switch h.Typeflag {
		case tar.TypeReg:
			sum = &summingReader{rd: tr}
			f.Type, f.Size, content = repo.TypeRegular, h.Size, sum
		case tar.TypeDir:
			f.Type = repo.TypeDir
		case tar.TypeSymlink:
			f.Type, f.LinkTarget = repo.TypeSymlink, h.Linkname
		default:
			return fmt.Errorf("the archive holds %s of an unsupported type %q", h.Name, h.Typeflag)
		}
		if err := w.AddFile(ctx, f, content); err != nil {
			return fmt.Errorf("while storing %s: %w", p, err)
		}
		if sum != nil {
			received[p] = pg.FileSum{Size: sum.size, Checksum: sum.crc.Hex()}
		}
	}
	return nil
}

// summingReader counts and checksums (CRC32C) what is read through it.
type summingReader struct {
	rd   io.Reader
	size int64
	crc  pg.CRC32C
}

func (s *summingReader) Read(p []byte) (int, error) {
	n, err := s.rd.Read(p)
	s.size += int64(n)
	_, _ = s.crc.Write(p[:n])
	return n, err
}

// entryPath maps a tar entry to its path in the data directory.
func entryPath(prefix, name string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if clean == "." || strings.HasPrefix(clean, "../") || clean == ".." || path.IsAbs(clean) {
		return "", fmt.Errorf("the archive holds an entry with an unsafe path %q", name)
	}
	if prefix == "" {
		return clean, nil
	}
	return prefix + "/" + clean, nil
}

// addManifest stores the backup manifest and returns it. Its size is not
// known in advance, so it is read first; manifests are small (a line per
// file).
func addManifest(ctx context.Context, w *repo.Writer, rd io.Reader) ([]byte, error) {
	b, err := pg.ReadManifest(rd)
	if err != nil {
		return nil, err
	}
	f := repo.File{Path: ManifestPath, Type: repo.TypeRegular, Mode: 0o600, Size: int64(len(b)), ModTime: time.Now().UTC()}
	if err := w.AddFile(ctx, f, bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("while storing the backup manifest: %w", err)
	}
	return b, nil
}

// Unix permission bits beyond rwx, as tar headers (and stat) carry them.
const (
	unixSetuid = 0o4000
	unixSetgid = 0o2000
	unixSticky = 0o1000
)

// modeFromTar converts a tar header's mode (Unix bits) to the permission,
// setuid, setgid and sticky bits of an fs.FileMode; the file type is not
// taken from the mode.
func modeFromTar(mode int64) fs.FileMode {
	m := fs.FileMode(mode) & fs.ModePerm
	if mode&unixSetuid != 0 {
		m |= fs.ModeSetuid
	}
	if mode&unixSetgid != 0 {
		m |= fs.ModeSetgid
	}
	if mode&unixSticky != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// modeToTar is the inverse of modeFromTar.
func modeToTar(m fs.FileMode) int64 {
	mode := int64(m & fs.ModePerm)
	if m&fs.ModeSetuid != 0 {
		mode |= unixSetuid
	}
	if m&fs.ModeSetgid != 0 {
		mode |= unixSetgid
	}
	if m&fs.ModeSticky != 0 {
		mode |= unixSticky
	}
	return mode
}
