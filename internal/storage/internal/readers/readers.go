// Package readers holds the io.Reader wrappers every backend needs to keep
// the storage contract: a reader that delivers exactly the announced size of
// a Put and one that ties the readers of Get and GetRange to their context.
package readers

import (
	"context"
	"fmt"
	"io"
)

// Exact returns a reader of exactly size bytes from r that backends copy a
// Put's data from. It fails with an error wrapping io.ErrUnexpectedEOF when r
// ends early, with an error when r holds more than size bytes, with r's own
// error when r fails, and with ctx.Err() once ctx is done (checked before
// every read of r). It returns io.EOF only after it has seen r end right
// after size bytes, so a backend that copies until io.EOF has checked all of
// the above. Errors are sticky. size must not be negative.
func Exact(ctx context.Context, r io.Reader, size int64) io.Reader {
	return &exact{ctx: ctx, r: r, size: size, left: size}
}

type exact struct {
	ctx        context.Context
	r          io.Reader
	size, left int64
	err        error
}

// Read implements io.Reader.
func (e *exact) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if err := e.ctx.Err(); err != nil {
		e.err = err
		return 0, err
	}
	if e.left == 0 {
		// All size bytes are in: r must be at its end.
		var b [1]byte
		n, err := e.r.Read(b[:])
		switch {
		case n > 0:
			e.err = fmt.Errorf("the data is longer than the announced %d bytes", e.size)
		case err != nil:
			e.err = err
		}
		return 0, e.err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = fmt.Errorf("the data ended after %d of the announced %d bytes: %w", e.size-e.left, e.size, io.ErrUnexpectedEOF)
	case err != nil:
		e.err = err
	}
	return n, e.err
}

// WithContext returns rc with reads that fail with ctx.Err() once ctx is done.
func WithContext(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	return &ctxReader{ctx: ctx, rc: rc}
}

type ctxReader struct {
	ctx context.Context
	rc  io.ReadCloser
}

// Read implements io.Reader.
func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.rc.Read(p)
}

// Close implements io.Closer.
func (c *ctxReader) Close() error {
	return c.rc.Close()
}
