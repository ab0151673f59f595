package engine

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/pg"
	"github.com/pgvault/pgvault/internal/repo"
)

// TarOwner is the user and group name the tar headers of WriteTarFormat
// carry, as PostgreSQL's own archives do. The repository keeps no numeric
// owner, so the headers' uid and gid are 0: tar run as root gives the files
// to the "postgres" user of the machine it runs on when there is one.
const TarOwner = "postgres"

// Buffer sizes of WriteTarFormat: one copy buffer and one output buffer.
const (
	tarCopyBuffer   = 256 << 10
	tarOutputBuffer = 256 << 10
)

// serverDotNames are the entries PostgreSQL's server names with a leading
// "./" in base.tar: it writes these directories by hand after pg_wal/
// (PostgreSQL 17 added pg_wal/summaries). Backup stores them at their clean
// paths; WriteTarFormat gives them their original names back.
var serverDotNames = map[string]bool{"pg_wal/archive_status": true, "pg_wal/summaries": true}

// WriteTarFormat rebuilds, from snapshot s of a backup, the files
// `pg_basebackup -Ft` would have written for that backup, in the order it
// writes them: one "<oid>.tar" per extra tablespace (its files, without the
// pg_tblspc/<oid>/ prefix they have in the snapshot), in the order the server
// sent them; "base.tar" (every other file of the snapshot, in the order the
// server sent them, tablespace_map and the WAL included); and, when the
// snapshot has one, "backup_manifest". Restore them as pg_basebackup's:
// extract base.tar into the new data directory and each "<oid>.tar" where the
// tablespace should live, and write that location into tablespace_map.
//
// The tar archives are ustar (PAX only for a path ustar cannot hold), end
// with the two zero blocks of a complete archive and carry each file's
// mode, size and modification time (whole seconds); directory and symlink
// names end in "/", as in PostgreSQL's archives. See TarOwner for ownership.
//
// create is called once per file, in order, with its name, and must return
// where to write it; WriteTarFormat closes it. Content is streamed from the
// repository through fixed-size buffers, never held whole, and every byte is
// verified as it is read (repo.ReadFiles): damage in the repository is an
// error wrapping repo.ErrCorrupt, never wrong bytes. When writing a file
// fails, it is closed with CloseWithError(err) if it has that method (as
// *io.PipeWriter does), else with Close, and WriteTarFormat returns the
// error at once: that file is incomplete (an archive lacks its end-of-archive
// marker) and the caller must discard everything written.
//
// Each archive takes one pass over the snapshot's file tree (repo.ReadFiles:
// content read ahead in spans, in parallel). A repository lock is held
// throughout, as by RestoreDir (docs/design.md R44).
func WriteTarFormat(ctx context.Context, r *repo.Repo, s *repo.Snapshot, create func(name string) (io.WriteCloser, error)) error {
	oids, err := SnapshotTablespaces(s)
	if err != nil {
		return err
	}
	lock, err := r.LockForReading(ctx)
	if err != nil {
		return fmt.Errorf("while reading snapshot %s: while locking the repository: %w", s.ID, err)
	}
	defer lock.Release(context.WithoutCancel(ctx))
	isTablespace := make(map[string]bool, len(oids))
	for _, oid := range oids {
		isTablespace[oid] = true
	}
	buf := make([]byte, tarCopyBuffer)
	for _, oid := range oids {
		prefix := "pg_tblspc/" + oid + "/"
		err := writeArchive(ctx, r, s, oid+".tar", create, buf, func(p string) (string, bool) {
			return strings.CutPrefix(p, prefix)
		})
		if err != nil {
			return err
		}
	}
	err = writeArchive(ctx, r, s, pg.BaseArchiveName, create, buf, func(p string) (string, bool) {
		if p == ManifestPath {
			return "", false
		}
		if serverDotNames[p] {
			return "./" + p, true
		}
		if rest, ok := strings.CutPrefix(p, "pg_tblspc/"); ok {
			oid, _, _ := strings.Cut(rest, "/")
			if isTablespace[oid] {
				return "", false
			}
		}
		return p, true
	})
	if err != nil {
		return err
	}
	return writeManifest(ctx, r, s, create, buf)
}

// SnapshotTablespaces returns the OIDs of the extra tablespaces of a backup's
// snapshot, in the order the server sent them (see MetaTablespaceOIDs). It
// fails for a snapshot that is not a backup's.
func SnapshotTablespaces(s *repo.Snapshot) ([]string, error) {
	if list, ok := s.Meta[MetaTablespaceOIDs]; ok {
		if list == "" {
			return nil, nil
		}
		oids := strings.Split(list, ",")
		for _, oid := range oids {
			if !validOID(oid) {
				return nil, fmt.Errorf("while reading the tablespaces of snapshot %s: bad OID %q in %s", s.ID, oid, MetaTablespaceOIDs)
			}
		}
		return oids, nil
	}
	// Snapshots written before MetaTablespaceOIDs: "oid=location,...", where
	// a location may itself hold commas.
	list, ok := s.Meta[MetaTablespaces]
	if !ok {
		return nil, fmt.Errorf("while reading the tablespaces of snapshot %s: it is not a backup's (no %s metadata)", s.ID, MetaTablespaces)
	}
	var oids []string
	for part := range strings.SplitSeq(list, ",") {
		if oid, _, ok := strings.Cut(part, "="); ok && validOID(oid) {
			oids = append(oids, oid)
		} else if len(oids) == 0 && part != "" {
			return nil, fmt.Errorf("while reading the tablespaces of snapshot %s: %s does not parse", s.ID, MetaTablespaces)
		}
	}
	return oids, nil
}

// validOID reports whether s is the decimal form of a non-zero OID.
func validOID(s string) bool {
	n, err := strconv.ParseUint(s, 10, 32)
	return err == nil && n != 0 && strconv.FormatUint(n, 10) == s
}

// writeArchive writes the tar archive name holding the snapshot's files for
// which entryName returns a name.
func writeArchive(ctx context.Context, r *repo.Repo, s *repo.Snapshot, name string, create func(string) (io.WriteCloser, error),
	buf []byte, entryName func(path string) (string, bool)) error {
	w, err := create(name)
	if err != nil {
		return fmt.Errorf("while creating %s: %w", name, err)
	}
	bw := bufio.NewWriterSize(w, tarOutputBuffer)
	tw := tar.NewWriter(bw)
	want := func(f repo.File) bool { _, ok := entryName(f.Path); return ok }
	err = r.ReadFiles(ctx, s, 0, want, func(f repo.File, content io.Reader) error {
		n, _ := entryName(f.Path)
		return writeEntry(ctx, tw, f, n, content, buf)
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		err = fmt.Errorf("while writing %s of snapshot %s: %w", name, s.ID, err)
		closeWithError(w, err)
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("while closing %s: %w", name, err)
	}
	return nil
}

// writeEntry writes one file of the snapshot, with its content, into a tar
// archive as name.
func writeEntry(ctx context.Context, tw *tar.Writer, f repo.File, name string, content io.Reader, buf []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := &tar.Header{
		Name:    name,
		Mode:    modeToTar(f.Mode),
		ModTime: f.ModTime.Truncate(time.Second), // as stat's st_mtime; also keeps ustar
		Uname:   TarOwner,
		Gname:   TarOwner,
	}
	switch f.Type {
	case repo.TypeRegular:
		h.Typeflag, h.Size = tar.TypeReg, f.Size
	case repo.TypeDir:
		h.Typeflag, h.Name = tar.TypeDir, name+"/"
	case repo.TypeSymlink:
		// PostgreSQL's archives mark symlinks (to directories) with a
		// trailing slash too.
		h.Typeflag, h.Name, h.Linkname = tar.TypeSymlink, name+"/", f.LinkTarget
	default:
		return fmt.Errorf("while archiving %q: it is a %v", f.Path, f.Type)
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("while archiving %q: %w", f.Path, err)
	}
	if f.Type != repo.TypeRegular {
		return nil
	}
	if err := copyExactly(tw, content, f.Size, buf); err != nil {
		return fmt.Errorf("while archiving %q: %w", f.Path, err)
	}
	return nil
}

// copyExactly copies n bytes from src to dst and checks that src ends
// there; reading src to its end makes the repository check the file whole.
func copyExactly(dst io.Writer, src io.Reader, n int64, buf []byte) error {
	var done int64
	for done < n {
		m, err := src.Read(buf[:min(int64(len(buf)), n-done)])
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return werr
			}
			done += int64(m)
		}
		if errors.Is(err, io.EOF) {
			if done < n {
				return fmt.Errorf("the content ended after %d bytes, its size is %d", done, n)
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	var one [1]byte
	for {
		m, err := src.Read(one[:])
		if m > 0 {
			return fmt.Errorf("the content is longer than its size %d", n)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// writeManifest writes the snapshot's backup manifest, if it has one.
func writeManifest(ctx context.Context, r *repo.Repo, s *repo.Snapshot, create func(string) (io.WriteCloser, error), buf []byte) error {
	rc, err := r.OpenFile(ctx, s, ManifestPath)
	if errors.Is(err, repo.ErrNotFound) {
		return nil // a backup taken without a manifest
	}
	if err != nil {
		return fmt.Errorf("while reading the backup manifest of snapshot %s: %w", s.ID, err)
	}
	defer rc.Close()
	w, err := create(pg.ManifestName)
	if err != nil {
		return fmt.Errorf("while creating %s: %w", pg.ManifestName, err)
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{rc}, buf); err != nil {
		err = fmt.Errorf("while writing %s of snapshot %s: %w", pg.ManifestName, s.ID, err)
		closeWithError(w, err)
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("while closing %s: %w", pg.ManifestName, err)
	}
	return nil
}

// closeWithError closes a failed output, telling it why when it can hear it.
func closeWithError(w io.WriteCloser, err error) {
	if c, ok := w.(interface{ CloseWithError(error) error }); ok {
		_ = c.CloseWithError(err)
		return
	}
	_ = w.Close()
}
