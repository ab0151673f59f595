// Package target writes the archives of a long-term-retention backup where
// the caller of startLtrBackup asked for them: an Azure Blob Storage
// container given by a container SAS URL, or a local directory given by a
// file:// URL (a pgvault extension, allowed only inside directories the
// operator configured). It knows nothing of the HTTP API or the metadata
// store.
//
// Every object is created, never replaced: Create fails with ErrExists when
// an object of that name is already there, and an object appears under its
// name only once it is complete (a block blob's block list is committed with
// If-None-Match: *; a file is written under a temporary name, synced and
// then hard-linked to its name).
//
// A SAS URL is a secret. Spec.String, Spec.Location and every error of this
// package leave its query (the SAS token) out.
package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Kind is the kind of a target.
type Kind string

// Target kinds.
const (
	// KindBlobContainer is an Azure Blob Storage container reached with a SAS URL.
	KindBlobContainer Kind = "blobContainer"
	// KindDirectory is a local directory (file:// URL).
	KindDirectory Kind = "directory"
)

// Errors of Parse and Create, for errors.Is.
var (
	// ErrInvalidURI: the URI is neither a container SAS URL nor a file:// URL.
	ErrInvalidURI = errors.New("invalid target URI")
	// ErrNotAllowed: a file:// URL names a directory outside the allowed ones.
	ErrNotAllowed = errors.New("local target directory not allowed")
	// ErrExists: an object of that name exists in the target already.
	ErrExists = errors.New("the target already holds an object of that name")
)

// Spec says where a target is. The SASURL of a blob container is a secret:
// keep a Spec in memory only (store it sealed), and describe it with
// Location.
type Spec struct {
	Kind Kind
	// SASURL is the container URL with its SAS token (KindBlobContainer).
	SASURL string
	// Root is the allowed directory the target lies in, and Dir the target
	// directory relative to Root ("." for Root itself) (KindDirectory).
	Root, Dir string
	// Prefix is prepended to the names of the objects of a blob container
	// target: "" or a folder name ending in "/" (see Sub).
	Prefix string
}

// Sub returns the target folder of that name inside the target: a
// subdirectory of a directory, or the names that begin with name + "/" in a
// container. name is 1 to 200 letters, digits, '-', '_' and '.', and is
// neither "." nor "..".
func (s Spec) Sub(name string) (Spec, error) {
	if !validFolder(name) {
		return Spec{}, fmt.Errorf("%w: %q is not a folder name (1 to 200 letters, digits, '-', '_' and '.', not \".\" or \"..\")", ErrInvalidURI, name)
	}
	switch s.Kind {
	case KindBlobContainer:
		s.Prefix += name + "/"
	case KindDirectory:
		s.Dir = filepath.Join(s.Dir, name)
	default:
		return Spec{}, fmt.Errorf("%w: unknown target kind %q", ErrInvalidURI, s.Kind)
	}
	return s, nil
}

// validFolder reports whether name may name a folder of a target.
func validFolder(name string) bool {
	if len(name) < 1 || len(name) > 200 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Location describes the target without secrets: the container URL without
// its query, or the file:// URL of the directory.
func (s Spec) Location() string {
	switch s.Kind {
	case KindBlobContainer:
		u, err := url.Parse(s.SASURL)
		if err != nil {
			return "(invalid URL)"
		}
		u.RawQuery, u.Fragment, u.User = "", "", nil
		if s.Prefix != "" {
			u.Path = strings.TrimSuffix(u.Path, "/") + "/" + strings.TrimSuffix(s.Prefix, "/")
			u.RawPath = ""
		}
		return u.String()
	case KindDirectory:
		return (&url.URL{Scheme: "file", Path: filepath.Join(s.Root, s.Dir)}).String()
	}
	return "(unknown target)"
}

// String is Location, so that a Spec printed by mistake shows no secret.
func (s Spec) String() string { return s.Location() }

// GoString is Location too (%#v).
func (s Spec) GoString() string { return "target.Spec(" + s.Location() + ")" }

// containerName is Azure's rule for container names: 3 to 63 lower-case
// letters, digits and single hyphens, starting and ending with a letter or digit.
var containerName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Parse checks a target URI and returns its Spec. A blob container is an
// https URL (http only to a loopback host, for emulators) whose path ends
// with the container name (/container, or /account/container for an
// emulator) and whose query is a SAS token (it has a sig parameter). A
// directory is file:///absolute/path (host empty or localhost) that lies in
// one of allowedDirs (absolute); it need not exist yet, but the part of it
// that exists must not lead out of the allowed directory through a symbolic
// link. Errors wrap ErrInvalidURI or ErrNotAllowed and never contain the
// URI's query.
func Parse(raw string, allowedDirs []string) (Spec, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Opaque != "" {
		return Spec{}, fmt.Errorf("%w: it is not a URL", ErrInvalidURI)
	}
	switch strings.ToLower(u.Scheme) {
	case "https", "http":
		return parseContainer(u, raw)
	case "file":
		return parseDir(u, allowedDirs)
	case "":
		return Spec{}, fmt.Errorf("%w: it is not an absolute URL; give an Azure Blob Storage container SAS URL (https://account.blob.core.windows.net/container?sv=...&sig=...)", ErrInvalidURI)
	}
	return Spec{}, fmt.Errorf("%w: the scheme %q is not supported; give an Azure Blob Storage container SAS URL (https) or a file:// URL", ErrInvalidURI, u.Scheme)
}

func parseContainer(u *url.URL, raw string) (Spec, error) {
	if u.Host == "" || u.Hostname() == "" {
		return Spec{}, fmt.Errorf("%w: the URL has no host", ErrInvalidURI)
	}
	if u.User != nil {
		return Spec{}, fmt.Errorf("%w: the URL must not carry user information", ErrInvalidURI)
	}
	if u.Fragment != "" {
		return Spec{}, fmt.Errorf("%w: the URL must not have a fragment", ErrInvalidURI)
	}
	if strings.EqualFold(u.Scheme, "http") && !isLoopback(u.Hostname()) {
		return Spec{}, fmt.Errorf("%w: a SAS URL must use https (plain http is accepted only for an emulator on a loopback address), or its token would cross the network in clear", ErrInvalidURI)
	}
	segs := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	if len(segs) == 0 || segs[0] == "" || len(segs) > 2 {
		return Spec{}, fmt.Errorf("%w: the URL's path must be the container (/container, or /account/container for an emulator)", ErrInvalidURI)
	}
	if name := segs[len(segs)-1]; len(name) < 3 || len(name) > 63 || !containerName.MatchString(name) {
		return Spec{}, fmt.Errorf("%w: %q is not a container name (3 to 63 lower-case letters, digits and single hyphens)", ErrInvalidURI, name)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil || q.Get("sig") == "" {
		return Spec{}, fmt.Errorf("%w: the URL has no SAS token (a query with sv, sp, se, sig, ...)", ErrInvalidURI)
	}
	return Spec{Kind: KindBlobContainer, SASURL: strings.TrimSpace(raw)}, nil
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseDir(u *url.URL, allowedDirs []string) (Spec, error) {
	if u.Host != "" && !strings.EqualFold(u.Host, "localhost") {
		return Spec{}, fmt.Errorf("%w: a file:// URL must name a local directory (file:///path), not host %q", ErrInvalidURI, u.Host)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Spec{}, fmt.Errorf("%w: a file:// URL must be file:///absolute/path, without query or fragment", ErrInvalidURI)
	}
	if !filepath.IsAbs(u.Path) {
		return Spec{}, fmt.Errorf("%w: a file:// URL must hold an absolute path (file:///absolute/path)", ErrInvalidURI)
	}
	dir := filepath.Clean(u.Path)
	for _, a := range allowedDirs {
		for _, root := range rootForms(a) {
			rel, err := filepath.Rel(root, dir)
			if err != nil || !filepath.IsLocal(rel) {
				continue
			}
			if err := checkInside(root, rel); err != nil {
				return Spec{}, err
			}
			return Spec{Kind: KindDirectory, Root: root, Dir: rel}, nil
		}
	}
	if len(allowedDirs) == 0 {
		return Spec{}, fmt.Errorf("%w: this pgvault server allows no local directories here", ErrNotAllowed)
	}
	return Spec{}, fmt.Errorf("%w: %s is not inside a directory this pgvault server allows here", ErrNotAllowed, dir)
}

// rootForms returns an allowed directory as given (cleaned) and, when it
// differs, with its symbolic links resolved.
func rootForms(dir string) []string {
	dir = filepath.Clean(dir)
	forms := []string{dir}
	if r, err := filepath.EvalSymlinks(dir); err == nil && r != dir {
		forms = append(forms, r)
	}
	return forms
}

// checkInside checks that rel, the part of it that exists, stays inside root
// (no symbolic link leads out) and is a directory.
func checkInside(root, rel string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("%w: the allowed directory %s cannot be opened: %v", ErrNotAllowed, root, unwrapPath(err))
	}
	defer func() { _ = r.Close() }()
	// Walk down to the deepest existing directory.
	p := "."
	for _, seg := range strings.Split(rel, string(filepath.Separator)) {
		if seg == "." || seg == "" {
			continue
		}
		next := filepath.Join(p, seg)
		fi, err := r.Stat(next)
		if errors.Is(err, os.ErrNotExist) {
			return nil // created when the backup runs
		}
		if err != nil {
			return fmt.Errorf("%w: %s leads out of the allowed directory %s or cannot be read: %v", ErrNotAllowed, filepath.Join(root, next), root, unwrapPath(err))
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory", ErrInvalidURI, filepath.Join(root, next))
		}
		p = next
	}
	return nil
}

// unwrapPath drops the operation and path of an *os.PathError (the caller
// names the path itself).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Target receives the archives of one backup.
type Target interface {
	// Location describes the target without secrets.
	Location() string
	// Exists reports whether an object of that name is in the target. For
	// a container whose SAS does not allow reading, it reports false
	// (Create still refuses to replace).
	Exists(ctx context.Context, name string) (bool, error)
	// Create streams r, to its end, into a new object name and returns the
	// bytes written. sizeHint (≤ 0: unknown) is the expected size, used to
	// choose block sizes. It fails with an error wrapping ErrExists when an
	// object of that name exists; on any error no object of that name is
	// left behind by this call.
	Create(ctx context.Context, name string, sizeHint int64, r io.Reader) (int64, error)
	// Close releases the target.
	Close() error
}

// Options tune the targets. Zero values mean defaults.
type Options struct {
	// BlockSize is the least block size of blob uploads (default 4 MiB); it
	// grows for large objects so that one fits in Azure's 50,000 blocks.
	BlockSize int64
	// Concurrency is how many blocks of one blob are uploaded at once
	// (default 2). An upload holds at most Concurrency blocks in memory.
	Concurrency int
}

// Empty reports whether the target holds nothing yet: no blob whose name
// begins with its Prefix in a container (listing needs the SAS token's list
// permission), no entry in a directory (a directory that does not exist yet
// is empty). It changes nothing.
func Empty(ctx context.Context, s Spec) (bool, error) {
	switch s.Kind {
	case KindBlobContainer:
		c, err := openContainer(s, Options{})
		if err != nil {
			return false, err
		}
		return c.empty(ctx)
	case KindDirectory:
		return dirEmpty(s)
	}
	return false, fmt.Errorf("while looking into a target: unknown kind %q", s.Kind)
}

// Open makes the target of a Spec. A directory target is created (with its
// missing parents, mode 0700) inside its root.
func Open(ctx context.Context, s Spec, opts Options) (Target, error) {
	switch s.Kind {
	case KindBlobContainer:
		return openContainer(s, opts)
	case KindDirectory:
		return openDir(s)
	}
	return nil, fmt.Errorf("while opening a backup target: unknown kind %q", s.Kind)
}
