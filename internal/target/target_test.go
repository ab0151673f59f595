package target

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/pgvault/pgvault/internal/azuritetest"
)

func TestParse(t *testing.T) {
	allowed := t.TempDir()
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(allowed, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(allowed, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(allowed, "escape")); err != nil {
		t.Fatal(err)
	}
	const sig = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
	sasQuery := "?sv=2024-08-04&sr=c&sp=racwl&se=2099-01-01T00%3A00%3A00Z&sig=" + sig
	ok := []struct {
		uri  string
		want Spec
	}{
		{"https://acct.blob.core.windows.net/backups" + sasQuery, Spec{Kind: KindBlobContainer, SASURL: "https://acct.blob.core.windows.net/backups" + sasQuery}},
		{"http://127.0.0.1:10000/devstoreaccount1/backups" + sasQuery, Spec{Kind: KindBlobContainer, SASURL: "http://127.0.0.1:10000/devstoreaccount1/backups" + sasQuery}},
		{"http://localhost:10000/devstoreaccount1/backups-2" + sasQuery, Spec{Kind: KindBlobContainer, SASURL: "http://localhost:10000/devstoreaccount1/backups-2" + sasQuery}},
		{"file://" + allowed, Spec{Kind: KindDirectory, Root: allowed, Dir: "."}},
		{"file://" + allowed + "/sub/new/deeper", Spec{Kind: KindDirectory, Root: allowed, Dir: "sub/new/deeper"}},
		{"file://localhost" + allowed + "/sub/../sub", Spec{Kind: KindDirectory, Root: allowed, Dir: "sub"}},
	}
	for _, tc := range ok {
		got, err := Parse(tc.uri, []string{outside + "/nothing", allowed})
		if err != nil || got != tc.want {
			t.Errorf("Parse(%s) = %+v, %v; want %+v", tc.uri, got, err, tc.want)
		}
	}
	bad := []struct {
		uri  string
		want error
	}{
		{"ftp://acct/backups" + sasQuery, ErrInvalidURI},
		{"backups" + sasQuery, ErrInvalidURI},
		{"http://acct.blob.core.windows.net/backups" + sasQuery, ErrInvalidURI}, // token in clear on the network
		{"https://acct.blob.core.windows.net/backups", ErrInvalidURI},           // no SAS
		{"https://acct.blob.core.windows.net/" + sasQuery, ErrInvalidURI},       // no container
		{"https://acct.blob.core.windows.net/Bad_Name" + sasQuery, ErrInvalidURI},
		{"https://acct.blob.core.windows.net/a/b/c" + sasQuery, ErrInvalidURI},
		{"https://user:pw@acct.blob.core.windows.net/backups" + sasQuery, ErrInvalidURI},
		{"https://acct.blob.core.windows.net/backups" + sasQuery + "#frag", ErrInvalidURI},
		{"https://%zz/backups" + sasQuery, ErrInvalidURI},
		{"file://" + outside, ErrNotAllowed},
		{"file://" + allowed + "/../x", ErrNotAllowed},
		{"file://" + allowed + "/escape/x", ErrNotAllowed}, // a symbolic link out of the allowed directory
		{"file://" + allowed + "/file", ErrInvalidURI},
		{"file://otherhost" + allowed, ErrInvalidURI},
		{"file:relative/dir", ErrInvalidURI},
		{"file://" + allowed + "?x=1", ErrInvalidURI},
	}
	for _, tc := range bad {
		_, err := Parse(tc.uri, []string{allowed})
		if !errors.Is(err, tc.want) {
			t.Errorf("Parse(%s) = %v, want %v", tc.uri, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), "c2VjcmV0")) {
			t.Errorf("Parse(%s): the error shows the SAS token: %v", tc.uri, err)
		}
	}
	if _, err := Parse("file://"+allowed, nil); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("no allowed directories: %v", err)
	}
	// Location and String never show the token.
	s, err := Parse("https://acct.blob.core.windows.net/backups"+sasQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, str := range []string{s.Location(), s.String(), s.GoString()} {
		if strings.Contains(str, "sig") || !strings.Contains(str, "https://acct.blob.core.windows.net/backups") {
			t.Errorf("location %q", str)
		}
	}
}

func TestDirectory(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	tg, err := Open(ctx, Spec{Kind: KindDirectory, Root: root, Dir: "a/b"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if want := "file://" + root + "/a/b"; tg.Location() != want {
		t.Errorf("Location %q, want %q", tg.Location(), want)
	}
	data := randomBytes(t, 3<<20+17)
	n, err := tg.Create(ctx, "base.tar", int64(len(data)), bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Create: %d, %v", n, err)
	}
	got, err := os.ReadFile(filepath.Join(root, "a", "b", "base.tar"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file content differs (%v)", err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "a", "b", "base.tar")); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if ok, err := tg.Exists(ctx, "base.tar"); !ok || err != nil {
		t.Errorf("Exists: %v %v", ok, err)
	}
	// A second file of that name is refused, and the first is kept.
	if _, err := tg.Create(ctx, "base.tar", 0, strings.NewReader("other")); !errors.Is(err, ErrExists) {
		t.Errorf("second Create: %v", err)
	}
	// A failing source leaves nothing behind.
	boom := errors.New("boom")
	if _, err := tg.Create(ctx, "1234.tar", 0, io.MultiReader(bytes.NewReader(data[:1<<20]), iotest.ErrReader(boom))); !errors.Is(err, boom) {
		t.Errorf("failing source: %v", err)
	}
	entries, err := os.ReadDir(filepath.Join(root, "a", "b"))
	if err != nil || len(entries) != 1 || entries[0].Name() != "base.tar" {
		t.Errorf("directory holds %v (%v), want base.tar only", entries, err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "a", "b", "base.tar")); !bytes.Equal(got, data) {
		t.Error("base.tar was changed")
	}
	if _, err := tg.Create(ctx, "../x", 0, strings.NewReader("x")); err == nil {
		t.Error("a name with a path was accepted")
	}

	// A symbolic link swapped in after Parse cannot lead a write out.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Spec{Kind: KindDirectory, Root: root, Dir: "link/x"}, Options{}); err == nil {
		t.Error("Open followed a symbolic link out of the root")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("something was written outside: %v", entries)
	}
}

func TestBlobContainer(t *testing.T) {
	ctx := context.Background()
	az := azuritetest.Start(t)
	az.CreateContainer(t, "ltr")
	sasURL := az.ContainerSASURL(t, "ltr")
	spec, err := Parse(sasURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := Open(ctx, spec, Options{BlockSize: 1 << 20, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if want := az.URL + "/ltr"; tg.Location() != want {
		t.Errorf("Location %q, want %q", tg.Location(), want)
	}
	data := randomBytes(t, 5<<20+3) // six blocks
	if ok, err := tg.Exists(ctx, "base.tar"); ok || err != nil {
		t.Fatalf("Exists before: %v %v", ok, err)
	}
	n, err := tg.Create(ctx, "base.tar", int64(len(data)), bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Create: %d, %v", n, err)
	}
	if got := az.Read(t, "ltr", "base.tar"); !bytes.Equal(got, data) {
		t.Fatal("the blob's content differs")
	}
	if ok, err := tg.Exists(ctx, "base.tar"); !ok || err != nil {
		t.Errorf("Exists after: %v %v", ok, err)
	}
	if _, err := tg.Create(ctx, "base.tar", 0, strings.NewReader("other")); !errors.Is(err, ErrExists) {
		t.Errorf("second Create: %v", err)
	}
	// The commit itself refuses to replace a blob (a blob made between the
	// check and the commit).
	if _, err := tg.(*container).upload(ctx, "base.tar", 0, strings.NewReader("other")); !errors.Is(err, ErrExists) {
		t.Errorf("conditional commit: %v", err)
	}
	if got := az.Read(t, "ltr", "base.tar"); !bytes.Equal(got, data) {
		t.Fatal("base.tar was replaced")
	}
	// A failing source commits nothing.
	boom := errors.New("boom")
	if _, err := tg.Create(ctx, "16384.tar", 0, io.MultiReader(bytes.NewReader(data[:3<<20]), iotest.ErrReader(boom))); !errors.Is(err, boom) {
		t.Errorf("failing source: %v", err)
	}
	if names := az.Blobs(t, "ltr"); len(names) != 1 || names[0] != "base.tar" {
		t.Errorf("blobs %v, want base.tar only", names)
	}

	// Service errors name the status and code, never the token.
	missingURL := az.ContainerSASURL(t, "missing")
	u, _ := url.Parse(missingURL)
	sig := u.Query().Get("sig")
	missing, err := Parse(missingURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := Open(ctx, missing, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = mt.Create(ctx, "base.tar", 0, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "ContainerNotFound") || strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), url.QueryEscape(sig)) || strings.Contains(err.Error(), u.RawQuery) {
		t.Errorf("error for a missing container: %v", err)
	}
	t.Logf("missing container: %v", err)
	// A transport error (nothing listens) shows no token either.
	down, _ := Parse(strings.Replace(missingURL, az.URL, "http://127.0.0.1:1/devstoreaccount1", 1), nil)
	dt, _ := Open(ctx, down, Options{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := dt.Create(cctx, "base.tar", 0, strings.NewReader("x")); err == nil || strings.Contains(err.Error(), sig) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// TestFailScrubs: whatever the error, its text never carries the SAS token.
func TestFailScrubs(t *testing.T) {
	const sig = "c2VjcmV0LXNpZw=="
	raw := "https://acct.blob.core.windows.net/ltr?sv=2024-08-04&sp=cw&sig=" + url.QueryEscape(sig)
	spec, err := Parse(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := openContainer(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	full := "https://acct.blob.core.windows.net/ltr/base.tar?sv=2024-08-04&sp=cw&sig=" + url.QueryEscape(sig)
	req, _ := http.NewRequest(http.MethodPut, full, nil)
	resp := &http.Response{StatusCode: 403, Status: "403 Forbidden", Request: req,
		Header: http.Header{"X-Ms-Error-Code": {"AuthenticationFailed"}},
		Body:   io.NopCloser(strings.NewReader("<Error><Code>AuthenticationFailed</Code><Message>sig=" + sig + "</Message></Error>"))}
	for _, in := range []error{
		&url.Error{Op: "Put", URL: full, Err: errors.New("dial tcp 10.0.0.1:443: connect: connection refused")},
		fmt.Errorf("wrapped: %w", &url.Error{Op: "Put", URL: full, Err: errors.New("EOF")}),
		errors.New("something about " + full),
		runtime.NewResponseError(resp),
	} {
		got := c.fail("uploading", in).Error()
		if strings.Contains(got, sig) || strings.Contains(got, url.QueryEscape(sig)) || !strings.HasPrefix(got, "while uploading: ") {
			t.Errorf("fail(%T) = %q", in, got)
		}
	}
}

func TestBlockSize(t *testing.T) {
	c := &container{opts: Options{BlockSize: 4 << 20}}
	for _, tc := range []struct{ size, want int64 }{
		{0, 4 << 20},
		{1 << 30, 4 << 20},
		{1 << 40, 42 << 20}, // 1 TiB: 2 TiB / 50,000 blocks, rounded up to whole MiB
		{1 << 50, 4000 << 20},
	} {
		if got := c.blockSize(tc.size); got != tc.want {
			t.Errorf("blockSize(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSubAndEmpty: a folder of a directory or container target is empty
// until something is written into it, is refused with a bad name, and
// looking into it changes nothing.
func TestSubAndEmpty(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := Spec{Kind: KindDirectory, Root: root, Dir: "a"}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", strings.Repeat("x", 201), "ü"} {
		if _, err := dir.Sub(bad); !errors.Is(err, ErrInvalidURI) {
			t.Errorf("Sub(%q): %v", bad, err)
		}
	}
	sub, err := dir.Sub("restore-1")
	if err != nil || sub.Dir != "a/restore-1" || sub.Location() != "file://"+root+"/a/restore-1" {
		t.Fatalf("Sub: %+v %v", sub, err)
	}
	if ok, err := Empty(ctx, sub); !ok || err != nil {
		t.Errorf("Empty of a missing directory: %v %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Empty created the directory: %v", err)
	}
	tg, err := Open(ctx, sub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if ok, err := Empty(ctx, sub); !ok || err != nil {
		t.Errorf("Empty of an empty directory: %v %v", ok, err)
	}
	if _, err := tg.Create(ctx, "base.tar", 1, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if ok, err := Empty(ctx, sub); ok || err != nil {
		t.Errorf("Empty after a write: %v %v", ok, err)
	}
	if ok, err := Empty(ctx, dir); ok || err != nil {
		t.Errorf("Empty of the parent: %v %v", ok, err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Empty(ctx, Spec{Kind: KindDirectory, Root: root, Dir: "link"}); err == nil {
		t.Error("Empty followed a symbolic link out of the root")
	}

	az := azuritetest.Start(t)
	az.CreateContainer(t, "restores")
	spec, err := Parse(az.ContainerSASURL(t, "restores"), nil)
	if err != nil {
		t.Fatal(err)
	}
	bsub, err := spec.Sub("rp-1")
	if err != nil || bsub.Prefix != "rp-1/" || bsub.Location() != az.URL+"/restores/rp-1" {
		t.Fatalf("Sub: %v %v", bsub.Location(), err)
	}
	if ok, err := Empty(ctx, bsub); !ok || err != nil {
		t.Errorf("Empty of a new container: %v %v", ok, err)
	}
	az.Upload(t, "restores", "rp-10/base.tar", []byte("other")) // a longer name with the same start
	if ok, err := Empty(ctx, bsub); !ok || err != nil {
		t.Errorf("Empty with rp-10/ only: %v %v", ok, err)
	}
	bt, err := Open(ctx, bsub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bt.Create(ctx, "base.tar", 1, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if names := az.Blobs(t, "restores"); len(names) != 2 || names[0] != "rp-1/base.tar" {
		t.Errorf("blobs %v", names)
	}
	if ok, err := Empty(ctx, bsub); ok || err != nil {
		t.Errorf("Empty after a write: %v %v", ok, err)
	}
	// A SAS without the list permission: a clear error, without the token.
	noList := az.ContainerSASURLWith(t, "restores", sas.ContainerPermissions{Create: true, Write: true, Read: true})
	u, _ := url.Parse(noList)
	nl, err := Parse(noList, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Empty(ctx, nl); err == nil || !strings.Contains(err.Error(), "does not allow listing") || strings.Contains(err.Error(), u.Query().Get("sig")) {
		t.Errorf("Empty with a SAS that may not list: %v", err)
	}
	missing, _ := Parse(az.ContainerSASURL(t, "missing"), nil)
	if _, err := Empty(ctx, missing); err == nil || !strings.Contains(err.Error(), "ContainerNotFound") {
		t.Errorf("Empty of a missing container: %v", err)
	}
}

// FuzzSub: a folder name either is refused or stays inside its target.
func FuzzSub(f *testing.F) {
	for _, s := range []string{"rp-1", "..", ".", "a/b", "a\\b", "x.y_z-1", "", "...", "%2e%2e"} {
		f.Add(s)
	}
	dir := Spec{Kind: KindDirectory, Root: "/allowed", Dir: "a"}
	blob := Spec{Kind: KindBlobContainer, SASURL: "https://acct.blob.core.windows.net/c1?sv=1&sig=x"}
	f.Fuzz(func(t *testing.T, name string) {
		d, err := dir.Sub(name)
		if err != nil {
			if !errors.Is(err, ErrInvalidURI) {
				t.Fatalf("Sub(%q): %v", name, err)
			}
			return
		}
		if !filepath.IsLocal(d.Dir) || filepath.Dir(d.Dir) != "a" || filepath.Base(d.Dir) != name {
			t.Fatalf("Sub(%q) = %q", name, d.Dir)
		}
		b, err := blob.Sub(name)
		if err != nil || b.Prefix != name+"/" || strings.Count(b.Prefix, "/") != 1 || b.Location() != "https://acct.blob.core.windows.net/c1/"+name {
			t.Fatalf("blob Sub(%q) = %+v, %v", name, b, err)
		}
	})
}
