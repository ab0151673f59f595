// Package azuritetest runs Azurite, Microsoft's Azure Blob Storage emulator,
// for tests: one blob service per call of Start, on a free loopback port,
// with its data in the test's temporary directory, stopped when the test
// ends. It makes containers and container SAS URLs with the emulator's
// well-known account (devstoreaccount1) and reads blobs back.
//
// Azurite is the npm package azurite@3.35.0, installed by scripts/test into
// <repository>/.tools/azurite (or the npm prefix directory named by
// PGVAULT_TEST_AZURITE_DIR), run with the node on PATH. A test that needs it
// when it is missing fails with the command that installs it.
//
// The package talks to the emulator with plain HTTP requests signed with
// account SAS tokens (azblob's sas package), so that tests need not build
// azblob's container client.
package azuritetest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// Version is the Azurite release the tests use.
const Version = "3.35.0"

// EnvDir names the environment variable with Azurite's npm prefix directory.
const EnvDir = "PGVAULT_TEST_AZURITE_DIR"

// The emulator's well-known development account.
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Server is a running Azurite blob service.
type Server struct {
	// URL is the blob service URL of the account, http://127.0.0.1:<port>/devstoreaccount1.
	URL string
	// Port is the TCP port it listens on.
	Port int

	cred *sas.SharedKeyCredential
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   sync.Mutex
}

// Start starts Azurite and registers its stop with t.Cleanup. It fails the
// test when Azurite or node is missing or when it does not answer.
func Start(t testing.TB) *Server {
	t.Helper()
	mainJS, err := mainScript()
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("azuritetest: node is not on PATH (Azurite runs on Node.js 20): %v", err)
	}
	cred, err := blob.NewSharedKeyCredential(Account, Key)
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("azuritetest: while looking for a free port: %v", err)
		}
		s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d/%s", port, Account), Port: port, cred: cred, log: &bytes.Buffer{}}
		s.cmd = exec.Command(node, mainJS, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
			"--location", filepath.Join(dir, "data"), "--silent", "--loose", "--skipApiVersionCheck", "--disableTelemetry")
		s.cmd.Dir = dir
		s.cmd.Stdout = lockedWriter{s}
		s.cmd.Stderr = lockedWriter{s}
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("azuritetest: while starting %s %s: %v", node, mainJS, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- s.cmd.Wait() }()
		stop := func() {
			// Exactly the process started here (node runs Azurite itself, no children).
			_ = s.cmd.Process.Kill()
			<-exited
		}
		if lastErr = s.waitReady(exited); lastErr == nil {
			t.Cleanup(stop)
			return s
		}
		stop()
		if !strings.Contains(s.output(), "EADDRINUSE") {
			break
		}
	}
	t.Fatalf("azuritetest: %v", lastErr)
	return nil
}

// mainScript finds Azurite's blob service entry point.
func mainScript() (string, error) {
	dir := os.Getenv(EnvDir)
	if dir == "" {
		root, err := repositoryRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".tools", "azurite")
	}
	mainJS := filepath.Join(dir, "node_modules", "azurite", "dist", "src", "blob", "main.js")
	if _, err := os.Stat(mainJS); err != nil {
		return "", fmt.Errorf("azurite is not installed in %s (%v); install it with\n\tnpm install --no-audit --no-fund --prefix %s azurite@%s\nor run scripts/test", dir, err, dir, Version)
	}
	return mainJS, nil
}

// repositoryRoot is the nearest directory above the working directory with a go.mod.
func repositoryRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: set " + EnvDir)
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

func (s *Server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// waitReady waits until the service answers HTTP, the process exits or 30 s pass.
func (s *Server) waitReady(exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("azurite exited before it answered (%v):\n%s", err, s.output())
		default:
		}
		resp, err := client.Get(s.URL + "?comp=list")
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("azurite did not answer on port %d within 30 s: %v\n%s", s.Port, err, s.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// accountSAS is an account SAS query allowing everything for an hour.
func (s *Server) accountSAS(t testing.TB) string {
	t.Helper()
	q, err := sas.AccountSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().UTC().Add(time.Hour),
		Permissions:   (&sas.AccountPermissions{Read: true, Write: true, Delete: true, List: true, Add: true, Create: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(s.cred)
	if err != nil {
		t.Fatalf("azuritetest: while signing an account SAS: %v", err)
	}
	return q.Encode()
}

// do sends a request with the account SAS and returns the body of a 2xx answer.
func (s *Server) do(t testing.TB, method, path, query string, body io.Reader) []byte {
	t.Helper()
	u := s.URL + path + "?" + s.accountSAS(t)
	if query != "" {
		u += "&" + query
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-ms-version", sas.Version)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("azuritetest: %s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("azuritetest: %s %s: %v", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("azuritetest: %s %s: %s\n%s", method, path, resp.Status, b)
	}
	return b
}

// CreateContainer creates a container.
func (s *Server) CreateContainer(t testing.TB, name string) {
	t.Helper()
	s.do(t, http.MethodPut, "/"+name, "restype=container", nil)
}

// ContainerSASURL returns the URL of a container with a SAS token that may
// read, add, create, write and list its blobs for an hour.
func (s *Server) ContainerSASURL(t testing.TB, name string) string {
	t.Helper()
	return s.ContainerSASURLWith(t, name, sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, List: true})
}

// ContainerSASURLWith returns the URL of a container with a SAS token that
// has the given permissions for an hour.
func (s *Server) ContainerSASURLWith(t testing.TB, name string, perms sas.ContainerPermissions) string {
	t.Helper()
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().UTC().Add(time.Hour),
		Permissions:   perms.String(),
		ContainerName: name,
	}.SignWithSharedKey(s.cred)
	if err != nil {
		t.Fatalf("azuritetest: while signing a container SAS: %v", err)
	}
	return s.URL + "/" + name + "?" + q.Encode()
}

// Blobs lists the names of a container's blobs (committed ones), in order.
func (s *Server) Blobs(t testing.TB, container string) []string {
	t.Helper()
	var names []string
	marker := ""
	for {
		q := "restype=container&comp=list"
		if marker != "" {
			q += "&marker=" + url.QueryEscape(marker)
		}
		var res struct {
			Blobs []struct {
				Name string `xml:"Name"`
			} `xml:"Blobs>Blob"`
			NextMarker string `xml:"NextMarker"`
		}
		if err := xml.Unmarshal(s.do(t, http.MethodGet, "/"+container, q, nil), &res); err != nil {
			t.Fatalf("azuritetest: while reading the blob list of %s: %v", container, err)
		}
		for _, b := range res.Blobs {
			names = append(names, b.Name)
		}
		if res.NextMarker == "" {
			return names
		}
		marker = res.NextMarker
	}
}

// Download writes a blob to a file.
func (s *Server) Download(t testing.TB, container, name, path string) {
	t.Helper()
	if err := os.WriteFile(path, s.Read(t, container, name), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Read returns a blob's content.
func (s *Server) Read(t testing.TB, container, name string) []byte {
	t.Helper()
	return s.do(t, http.MethodGet, "/"+container+"/"+name, "", nil)
}

// Upload creates or replaces a blob with a single request.
func (s *Server) Upload(t testing.TB, container, name string, data []byte) {
	t.Helper()
	u := s.URL + "/" + container + "/" + name + "?" + s.accountSAS(t)
	req, err := http.NewRequest(http.MethodPut, u, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-ms-version", sas.Version)
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("azuritetest: PUT %s/%s: %v", container, name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("azuritetest: PUT %s/%s: %s\n%s", container, name, resp.Status, b)
	}
}
