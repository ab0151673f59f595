package engine

import (
	"io"

	"github.com/pgvault/pgvault/internal/pg"
)

// fileSum is what a backup received of one regular file.
type fileSum struct {
	size int64
	crc  pg.CRC32C
}

// received collects the size and CRC32C of every regular file a backup
// stores, to check them against the manifest when it arrives (R47).
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

// verify checks what the backup received against the server's manifest
// (pg.Manifest.Verify; docs/design.md R47).
func (r *received) verify(m *pg.Manifest, info *pg.BaseBackupInfo) error {
	files := make(map[string]pg.FileSum, len(r.files))
	for p, s := range r.files {
		files[p] = pg.FileSum{Size: s.size, Checksum: s.crc.Hex()}
	}
	return m.Verify(files, pg.ChecksumCRC32C, info)
}
