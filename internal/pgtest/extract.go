package pgtest

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ExtractTar extracts a tar archive into dir (created), keeping modes and
// modification times. Entries must stay inside dir.
func ExtractTar(t testing.TB, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(f)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(name) {
			t.Fatalf("%s: entry %q leaves the directory", archive, h.Name)
		}
		target := filepath.Join(dir, name)
		mode := h.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		switch h.Typeflag {
		case tar.TypeDir:
			if err = os.MkdirAll(target, 0o700); err == nil {
				err = os.Chmod(target, mode)
			}
			dirs = append(dirs, dirTime{target, h.ModTime})
		case tar.TypeReg:
			var out *os.File
			out, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err == nil {
				_, err = io.Copy(out, tr)
				if cerr := out.Close(); err == nil {
					err = cerr
				}
			}
			if err == nil {
				err = os.Chmod(target, mode)
			}
			if err == nil {
				err = os.Chtimes(target, h.ModTime, h.ModTime)
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, target)
		default:
			err = fmt.Errorf("unexpected entry type %q", h.Typeflag)
		}
		if err != nil {
			t.Fatalf("%s: %s: %v", archive, h.Name, err)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].path, dirs[i].t, dirs[i].t); err != nil {
			t.Fatal(err)
		}
	}
}
