package pg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"
)

// Manifest is what pgvault reads of a backup manifest (versions 1 and 2):
// the files the server sent with their sizes and checksums.
type Manifest struct {
	Version          int
	SystemIdentifier string // version 2 on; "" before
	Files            []ManifestFile
	WALRanges        []WALRange
}

// WALRange is the WAL of one timeline a backup needs to be consistent.
type WALRange struct {
	Timeline int32
	Start    string // LSN, as in BaseBackupInfo
	End      string
}

// ManifestFile is one file of a backup manifest.
type ManifestFile struct {
	Path      string // relative to the data directory, "/"-separated (pg_tblspc/<oid>/... for tablespaces)
	Size      int64
	Algorithm string // ChecksumCRC32C, ChecksumSHA256, ... or "NONE"
	Checksum  string // lower-case hex; "" with "NONE"
}

// manifestJSON is a backup manifest as PostgreSQL writes it.
type manifestJSON struct {
	Version  int     `json:"PostgreSQL-Backup-Manifest-Version"`
	SystemID *uint64 `json:"System-Identifier"`
	Files    []struct {
		Path        *string `json:"Path"`
		EncodedPath *string `json:"Encoded-Path"`
		Size        *int64  `json:"Size"`
		Algorithm   string  `json:"Checksum-Algorithm"`
		Checksum    string  `json:"Checksum"`
	} `json:"Files"`
	WALRanges []struct {
		Timeline int32  `json:"Timeline"`
		Start    string `json:"Start-LSN"`
		End      string `json:"End-LSN"`
	} `json:"WAL-Ranges"`
	Checksum string `json:"Manifest-Checksum"`
}

// MaxManifest bounds the backup manifest a client holds in memory (a line
// per file: 128 MiB is about 800k files).
const MaxManifest = 128 << 20

// ReadManifest reads a backup manifest from the server's stream, refusing
// one larger than MaxManifest.
func ReadManifest(rd io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(rd, MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("while reading the backup manifest: %w", err)
	}
	if len(b) > MaxManifest {
		return nil, errors.New("the backup manifest is larger than 128 MiB")
	}
	return b, nil
}

// VerifyBackup parses manifest (nil: the server sent none) and checks what
// a client received against it (Manifest.Verify).
func VerifyBackup(manifest []byte, files map[string]FileSum, algorithm string, info *BaseBackupInfo) error {
	if manifest == nil {
		return errors.New("while verifying the backup: the server sent no backup manifest")
	}
	m, err := ParseManifest(manifest)
	if err == nil {
		err = m.Verify(files, algorithm, info)
	}
	if err != nil {
		return fmt.Errorf("while verifying the backup: %w", err)
	}
	return nil
}

// errManifest marks a manifest that does not parse or verify.
var errManifest = errors.New("the backup manifest is not valid")

// ParseManifest parses a backup manifest and verifies its own checksum
// (the SHA256 of everything before its "Manifest-Checksum" line).
func ParseManifest(b []byte) (*Manifest, error) {
	var m manifestJSON
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", errManifest, err)
	}
	if m.Version != 1 && m.Version != 2 {
		return nil, fmt.Errorf("%w: version %d (pgvault reads 1 and 2)", errManifest, m.Version)
	}
	i := bytes.LastIndex(b, []byte("\n\"Manifest-Checksum\""))
	if i < 0 {
		return nil, fmt.Errorf("%w: it has no Manifest-Checksum line", errManifest)
	}
	if sum := sha256.Sum256(b[:i+1]); hex.EncodeToString(sum[:]) != m.Checksum {
		return nil, fmt.Errorf("%w: its checksum %q does not match its contents", errManifest, m.Checksum)
	}
	out := &Manifest{Version: m.Version, Files: make([]ManifestFile, 0, len(m.Files))}
	if m.Version >= 2 {
		if m.SystemID == nil {
			return nil, fmt.Errorf("%w: version %d without System-Identifier", errManifest, m.Version)
		}
		out.SystemIdentifier = strconv.FormatUint(*m.SystemID, 10)
	}
	for _, r := range m.WALRanges {
		start, err1 := pglogrepl.ParseLSN(r.Start)
		end, err2 := pglogrepl.ParseLSN(r.End)
		if err1 != nil || err2 != nil || end < start || r.Timeline < 1 {
			return nil, fmt.Errorf("%w: WAL range %d %s-%s", errManifest, r.Timeline, r.Start, r.End)
		}
		out.WALRanges = append(out.WALRanges, WALRange{Timeline: r.Timeline, Start: r.Start, End: r.End})
	}
	seen := make(map[string]bool, len(m.Files))
	for n, f := range m.Files {
		var p string
		switch {
		case f.Path != nil && f.EncodedPath == nil:
			p = *f.Path
		case f.EncodedPath != nil && f.Path == nil:
			raw, err := hex.DecodeString(*f.EncodedPath)
			if err != nil {
				return nil, fmt.Errorf("%w: file %d: Encoded-Path: %v", errManifest, n, err)
			}
			p = string(raw)
		default:
			return nil, fmt.Errorf("%w: file %d has neither or both of Path and Encoded-Path", errManifest, n)
		}
		if p == "" || strings.HasPrefix(p, "/") || seen[p] {
			return nil, fmt.Errorf("%w: file %d: bad or repeated path %q", errManifest, n, p)
		}
		seen[p] = true
		if f.Size == nil || *f.Size < 0 {
			return nil, fmt.Errorf("%w: %s: no valid Size", errManifest, quotePath(p))
		}
		algo := f.Algorithm
		if algo == "" {
			algo = "NONE"
		}
		if (algo == "NONE") != (f.Checksum == "") {
			return nil, fmt.Errorf("%w: %s: checksum %q with algorithm %s", errManifest, quotePath(p), f.Checksum, algo)
		}
		if _, err := hex.DecodeString(f.Checksum); err != nil {
			return nil, fmt.Errorf("%w: %s: checksum %q is not hex", errManifest, quotePath(p), f.Checksum)
		}
		out.Files = append(out.Files, ManifestFile{Path: p, Size: *f.Size, Algorithm: algo, Checksum: strings.ToLower(f.Checksum)})
	}
	return out, nil
}

// quotePath shows a path in an error: as it is when it is printable UTF-8.
func quotePath(p string) string {
	if utf8.ValidString(p) && !strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return p
	}
	return fmt.Sprintf("%q", p)
}

// castagnoli is the CRC32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C accumulates a file's CRC32C as a backup manifest writes it.
type CRC32C struct{ crc uint32 }

// Write adds p to the checksum; it never fails.
func (c *CRC32C) Write(p []byte) (int, error) {
	c.crc = crc32.Update(c.crc, castagnoli, p)
	return len(p), nil
}

// Hex is the checksum as a manifest writes it: the little-endian bytes of
// the CRC (as PostgreSQL keeps it in memory), in lower-case hex.
func (c *CRC32C) Hex() string {
	return hex.EncodeToString(binary.LittleEndian.AppendUint32(nil, c.crc))
}

// ErrManifestMismatch is a backup whose files do not match the server's
// backup manifest: what was received is not what the server meant to send.
var ErrManifestMismatch = errors.New("the backup does not match the server's backup manifest")

// FileSum is what a client received of one regular file of a backup: its
// size and its checksum in the manifest's algorithm (lower-case hex, as
// the manifest writes it; "" for algorithm NONE).
type FileSum struct {
	Size     int64
	Checksum string
}

// maxReported is how many differences a mismatch error names.
const maxReported = 5

// Verify checks what a client received of a backup against its manifest,
// as pg_verifybackup checks a backup on disk: the system identifier and
// the WAL range are the backup's (info); every file the manifest lists was
// received with its size and its checksum in algorithm (the one the backup
// asked for); no other file was received but WAL (under pg_wal/); and,
// when the WAL is on one timeline, every WAL segment from the start to the
// end of the backup was received whole. files maps data directory paths
// (pg_tblspc/<oid>/... for tablespaces) to what was received. The manifest's
// own checksum was checked by ParseManifest. A difference is an error
// wrapping ErrManifestMismatch that names the first few.
func (m *Manifest) Verify(files map[string]FileSum, algorithm string, info *BaseBackupInfo) error {
	var bad []string
	if m.SystemIdentifier != "" && m.SystemIdentifier != info.SystemIdentifier {
		bad = append(bad, fmt.Sprintf("the manifest is of system %s, the server is %s", m.SystemIdentifier, info.SystemIdentifier))
	}
	listed := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		listed[f.Path] = true
		got, ok := files[f.Path]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: listed (%d bytes) but not received", quotePath(f.Path), f.Size))
			continue
		}
		if f.Algorithm != algorithm && f.Algorithm != "NONE" {
			return fmt.Errorf("%w: %s: checksum algorithm %s, not the %s asked for", ErrManifestMismatch, quotePath(f.Path), f.Algorithm, algorithm)
		}
		sum := got.Checksum
		if f.Algorithm == "NONE" {
			sum = ""
		}
		if got.Size != f.Size || sum != f.Checksum {
			bad = append(bad, fmt.Sprintf("%s: received %d bytes, %s %s; the manifest says %d bytes, %s",
				quotePath(f.Path), got.Size, f.Algorithm, sum, f.Size, f.Checksum))
		}
	}
	var unlisted []string
	for p := range files {
		if !listed[p] && !strings.HasPrefix(p, "pg_wal/") {
			unlisted = append(unlisted, p)
		}
	}
	slices.Sort(unlisted)
	for _, p := range unlisted {
		bad = append(bad, fmt.Sprintf("%s: received but not listed", quotePath(p)))
	}
	bad = append(bad, m.verifyWAL(files, info)...)
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
func (m *Manifest) verifyWAL(files map[string]FileSum, info *BaseBackupInfo) []string {
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
	for p, f := range files {
		if name, ok := strings.CutPrefix(p, "pg_wal/"); ok && isSegmentName(name) {
			segSize = f.Size
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
		name := fmt.Sprintf("%08X%08X%08X", first.Timeline, seg/perID, seg%perID)
		if f, ok := files["pg_wal/"+name]; !ok || f.Size != segSize {
			bad = append(bad, fmt.Sprintf("WAL segment %s, which the backup needs, was not received whole", name))
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
