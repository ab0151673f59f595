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
