package target

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// Block sizes and limits of blob uploads.
const (
	defaultBlockSize   = 4 << 20
	maxBlockSize       = 4000 << 20 // Azure's limit for one block
	maxBlocks          = 50000      // Azure's limit of blocks in a block blob
	defaultConcurrency = 2
)

// container writes block blobs into an Azure Blob Storage container with a
// SAS URL (the package's only holder of the token).
type container struct {
	base     *url.URL // the container URL with its SAS query
	location string   // the container URL without the query
	prefix   string   // prepended to object names (Spec.Prefix)
	secrets  []string // strings that must not appear in errors
	opts     Options
}

func openContainer(s Spec, opts Options) (*container, error) {
	u, err := url.Parse(s.SASURL)
	if err != nil {
		return nil, fmt.Errorf("while opening a backup target: %w: it is not a URL", ErrInvalidURI)
	}
	c := &container{base: u, location: s.Location(), prefix: s.Prefix, opts: opts}
	if c.opts.BlockSize <= 0 {
		c.opts.BlockSize = defaultBlockSize
	}
	if c.opts.Concurrency <= 0 {
		c.opts.Concurrency = defaultConcurrency
	}
	// The raw query, its signature raw and decoded: what must never leak.
	c.secrets = append(c.secrets, u.RawQuery)
	if q, err := url.ParseQuery(u.RawQuery); err == nil {
		if sig := q.Get("sig"); sig != "" {
			c.secrets = append(c.secrets, sig, url.QueryEscape(sig), url.PathEscape(sig))
		}
	}
	return c, nil
}

func (c *container) Location() string { return c.location }

func (c *container) Close() error { return nil }

// blobClient is a client of one blob of the container.
func (c *container) blobClient(name string) (*blockblob.Client, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + c.prefix + name
	u.RawPath = ""
	bc, err := blockblob.NewClientWithNoCredential(u.String(), &blockblob.ClientOptions{ClientOptions: policy.ClientOptions{
		Telemetry: policy.TelemetryOptions{Disabled: true},
	}})
	if err != nil {
		return nil, c.fail("making a client for blob "+name, err)
	}
	return bc, nil
}

// Exists asks the service for the blob's properties.
func (c *container) Exists(ctx context.Context, name string) (bool, error) {
	bc, err := c.blobClient(name)
	if err != nil {
		return false, err
	}
	_, err = bc.GetProperties(ctx, nil)
	var re *azcore.ResponseError
	switch {
	case err == nil:
		return true, nil
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		return false, nil
	case errors.As(err, &re) && re.StatusCode == http.StatusNotFound && re.ErrorCode == "":
		return false, nil // HEAD answers carry no error code
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden && bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch):
		return false, nil // a write-only SAS: Create's condition still guards the blob
	}
	return false, c.fail("looking for blob "+name+" in "+c.location, err)
}

// empty lists at most one blob whose name begins with the prefix (List
// Blobs, by hand: the SDK's container package pulls in a large dependency).
func (c *container) empty(ctx context.Context) (bool, error) {
	u := *c.base
	q := u.Query()
	q.Set("restype", "container")
	q.Set("comp", "list")
	q.Set("maxresults", "1")
	if c.prefix != "" {
		q.Set("prefix", c.prefix)
	}
	u.RawQuery = q.Encode()
	req, err := runtime.NewRequest(ctx, http.MethodGet, u.String())
	if err != nil {
		return false, c.fail("listing the blobs of "+c.location, err)
	}
	req.Raw().Header.Set("x-ms-version", listAPIVersion)
	pl := runtime.NewPipeline("pgvault-target", "", runtime.PipelineOptions{}, &policy.ClientOptions{Telemetry: policy.TelemetryOptions{Disabled: true}})
	resp, err := pl.Do(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = runtime.NewResponseError(resp)
	}
	if err != nil {
		if bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
			return false, &serviceError{msg: fmt.Sprintf("while listing the blobs of %s: the SAS token does not allow listing (give it the list permission, sp=...l...)", c.location)}
		}
		return false, c.fail("listing the blobs of "+c.location, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var list struct {
		Blobs []struct {
			Name string `xml:"Name"`
		} `xml:"Blobs>Blob"`
	}
	if err := xml.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&list); err != nil {
		return false, &serviceError{msg: fmt.Sprintf("while listing the blobs of %s: the answer does not parse: %v", c.location, err)}
	}
	return len(list.Blobs) == 0, nil
}

// listAPIVersion is the x-ms-version of List Blobs requests.
const listAPIVersion = "2023-11-03"

// blockSize is the block size for an object of about size bytes: at least
// the configured one, and large enough that twice the size fits in the
// service's block limit (the estimate may be low).
func (c *container) blockSize(size int64) int64 {
	bs := c.opts.BlockSize
	if size > 0 {
		need := (2*size + maxBlocks - 1) / maxBlocks
		need = (need + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB
		bs = max(bs, need)
	}
	return min(bs, maxBlockSize)
}

// Create uploads r as a block blob: blocks are staged Concurrency at a time
// from buffers of one block each, and the block list is committed only if
// no blob of that name exists (If-None-Match: *), so a blob appears whole or
// not at all and an existing one is never replaced.
func (c *container) Create(ctx context.Context, name string, sizeHint int64, r io.Reader) (int64, error) {
	if exists, err := c.Exists(ctx, name); err != nil {
		return 0, err
	} else if exists {
		return 0, fmt.Errorf("while creating blob %s in %s: %w", name, c.location, ErrExists)
	}
	return c.upload(ctx, name, sizeHint, r)
}

// upload stages and commits the blob (without looking for an existing one first).
func (c *container) upload(ctx context.Context, name string, sizeHint int64, r io.Reader) (int64, error) {
	bc, err := c.blobClient(name)
	if err != nil {
		return 0, err
	}
	cr := &countingReader{r: r}
	_, err = bc.UploadStream(ctx, cr, &blockblob.UploadStreamOptions{
		BlockSize:   c.blockSize(sizeHint),
		Concurrency: c.opts.Concurrency,
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: ptr(contentType(name))},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{
			IfNoneMatch: ptr(azcore.ETagAny),
		}},
	})
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return cr.n, fmt.Errorf("while creating blob %s in %s: %w", name, c.location, ErrExists)
	}
	if err != nil {
		return cr.n, c.fail("uploading blob "+name+" to "+c.location, err)
	}
	return cr.n, nil
}

// fail describes an error of the storage service or of the network without
// the SAS token: a service error by its status and code (its body may quote
// the request), a transport error without its URL, anything else scrubbed.
func (c *container) fail(doing string, err error) error {
	var re *azcore.ResponseError
	var ue *url.Error
	switch {
	case errors.As(err, &re):
		hint := ""
		switch {
		case re.StatusCode == http.StatusForbidden:
			hint = " (the SAS token does not allow this, has expired or is not valid for this container)"
		case re.ErrorCode == string(bloberror.ContainerNotFound):
			hint = " (the container does not exist)"
		}
		code := re.ErrorCode
		if code == "" {
			code = http.StatusText(re.StatusCode)
		}
		return &serviceError{msg: fmt.Sprintf("while %s: the storage service answered %d %s%s", doing, re.StatusCode, code, hint)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if ctxErr := contextErr(err); ctxErr != nil {
			return fmt.Errorf("while %s: %w", doing, ctxErr)
		}
	case errors.As(err, &ue):
		return &serviceError{msg: fmt.Sprintf("while %s: %s", doing, c.scrub(ue.Err.Error()))}
	}
	msg := err.Error()
	if scrubbed := c.scrub(msg); scrubbed != msg {
		return &serviceError{msg: fmt.Sprintf("while %s: %s", doing, scrubbed)}
	}
	return fmt.Errorf("while %s: %w", doing, err) // e.g. the source's error, kept for errors.Is/As
}

// scrub replaces every secret in s.
func (c *container) scrub(s string) string {
	for _, sec := range c.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "REDACTED")
		}
	}
	return s
}

// contextErr returns context.Canceled or context.DeadlineExceeded when err is one.
func contextErr(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return nil
}

// serviceError is a storage failure, described without secrets; it keeps no
// reference to the original error (whose text may hold the SAS token).
type serviceError struct{ msg string }

func (e *serviceError) Error() string { return e.msg }

// contentType is the Content-Type of an archive.
func contentType(name string) string {
	if strings.HasSuffix(name, ".tar") {
		return "application/x-tar"
	}
	return "application/octet-stream"
}

func ptr[T any](v T) *T { return &v }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
