package engine

import (
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/jackc/pglogrepl"

	"github.com/pgvault/pgvault/internal/pg"
)

// ErrManifestMismatch is a backup whose files do not match the server's
// backup manifest: what was received is not what the server meant to send.
var ErrManifestMismatch = errors.New("the backup does not match the server's backup manifest")

// fileSum is what a backup received of one regular file.
type fileSum struct {
	size int64
	crc  pg.CRC32C
}

// received collects the size and CRC32C of every regular file a backup
// stores, to check them against the manifest when it arrives.
type received struct {
	files map[string]*fileSum
}

func newReceived() *received { return &received{files: make(map[string]*fileSum)} }

// reader returns rd, counting and checksumming what is read through it as
// the content of file p.
func (r *received) reader(p string, rd io.Reader) io.Reader {
	s := &fileSum{}
	r.files[p] = s
	return &summingReader{rd: rd, sum: s}
}

type summingReader struct {
	rd  io.Reader
	sum *fileSum
}

func (s *summingReader) Read(p []byte) (int, error) {
	n, err := s.rd.Read(p)
	s.sum.size += int64(n)
	_, _ = s.sum.crc.Write(p[:n])
	return n, err
}

// maxReported is how many mismatching files an error names.
const maxReported = 5

// verify checks what the backup received against the server's manifest, as
// pg_verifybackup checks a backup on disk (docs/design.md R47): the
// manifest's own checksum (ParseManifest), its system identifier and WAL
// range against the backup's, every file it lists received with its size
// and checksum, no other file but WAL, and every WAL segment from the start
// to the end of the backup received whole.
func (r *received) verify(m *pg.Manifest, info *pg.BaseBackupInfo) error {
	var bad []string
	if m.SystemIdentifier != "" && m.SystemIdentifier != info.SystemIdentifier {
		bad = append(bad, fmt.Sprintf("the manifest is of system %s, the server is %s", m.SystemIdentifier, info.SystemIdentifier))
	}
	listed := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		listed[f.Path] = true
		got, ok := r.files[f.Path]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: listed (%d bytes) but not received", f.Path, f.Size))
			continue
		}
		sum := ""
		switch f.Algorithm {
		case pg.ChecksumCRC32C:
			sum = got.crc.Hex()
		case "NONE":
		default:
			return fmt.Errorf("%w: %s: checksum algorithm %s (pgvault asks for %s)", ErrManifestMismatch, f.Path, f.Algorithm, pg.ChecksumCRC32C)
		}
		if got.size != f.Size || sum != f.Checksum {
			bad = append(bad, fmt.Sprintf("%s: received %d bytes, %s %s; the manifest says %d bytes, %s", f.Path, got.size, f.Algorithm, sum, f.Size, f.Checksum))
		}
	}
	var unlisted []string
	for p := range r.files {
		if !listed[p] && !strings.HasPrefix(p, "pg_wal/") {
			unlisted = append(unlisted, p)
		}
	}
	sort.Strings(unlisted)
	for _, p := range unlisted {
		bad = append(bad, fmt.Sprintf("%s: received but not listed", p))
	}
	bad = append(bad, r.verifyWAL(m, info)...)
	if len(bad) == 0 {
		return nil
	}
	msg := strings.Join(bad[:min(len(bad), maxReported)], "; ")
	if len(bad) > maxReported {
		msg += fmt.Sprintf("; and %d more", len(bad)-maxReported)
	}
	return fmt.Errorf("%w: %s", ErrManifestMismatch, msg)
}

// verifyWAL checks the manifest's WAL range against the backup's and that
// every segment of it was received. A backup with WAL on more than one
// timeline (a standby promoted while it ran) is only checked for its range.
func (r *received) verifyWAL(m *pg.Manifest, info *pg.BaseBackupInfo) []string {
	if len(m.WALRanges) == 0 {
		return []string{"the manifest has no WAL range"}
	}
	first, last := m.WALRanges[0], m.WALRanges[len(m.WALRanges)-1]
	if !sameLSN(first.Start, info.StartLSN) || !sameLSN(last.End, info.EndLSN) || first.Timeline != info.Timeline {
		return []string{fmt.Sprintf("the manifest's WAL runs from %s to %s on timeline %d, the backup from %s to %s on timeline %d",
			first.Start, last.End, first.Timeline, info.StartLSN, info.EndLSN, info.Timeline)}
	}
	if len(m.WALRanges) > 1 {
		return nil
	}
	// The segment size is the size of the WAL segments received.
	var segSize int64
	for p, f := range r.files {
		if name, ok := strings.CutPrefix(p, "pg_wal/"); ok && isSegmentName(name) {
			segSize = f.size
			break
		}
	}
	if segSize < 1<<20 || segSize > 1<<30 || segSize&(segSize-1) != 0 {
		return []string{fmt.Sprintf("no whole WAL segment received (size %d)", segSize)}
	}
	start, _ := pglogrepl.ParseLSN(first.Start)
	end, _ := pglogrepl.ParseLSN(first.End)
	perID := uint64(0x100000000) / uint64(segSize)
	var bad []string
	for seg := uint64(start) / uint64(segSize); seg <= (uint64(max(end, 1))-1)/uint64(segSize); seg++ {
		p := fmt.Sprintf("pg_wal/%08X%08X%08X", first.Timeline, seg/perID, seg%perID)
		if f, ok := r.files[p]; !ok || f.size != segSize {
			bad = append(bad, fmt.Sprintf("WAL segment %s, which the backup needs, was not received whole", path.Base(p)))
		}
	}
	return bad
}

// isSegmentName reports whether name is a WAL segment file's name.
func isSegmentName(name string) bool {
	if len(name) != 24 {
		return false
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func sameLSN(a, b string) bool {
	x, err1 := pglogrepl.ParseLSN(a)
	y, err2 := pglogrepl.ParseLSN(b)
	return err1 == nil && err2 == nil && x == y
}
