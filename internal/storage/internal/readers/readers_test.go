package readers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestExact(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		r       io.Reader
		size    int64
		wantErr func(error) bool
	}{
		{"exact", strings.NewReader("abcd"), 4, nil},
		{"empty", strings.NewReader(""), 0, nil},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader("abcd")), 4, nil},
		{"data with EOF", iotest.DataErrReader(strings.NewReader("abcd")), 4, nil},
		{"short", strings.NewReader("abc"), 4, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"long", strings.NewReader("abcde"), 4, func(err error) bool { return err != nil && strings.Contains(err.Error(), "longer") }},
		{"long from empty", strings.NewReader("a"), 0, func(err error) bool { return err != nil && strings.Contains(err.Error(), "longer") }},
		{"failing", io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(errBoom)), 4, func(err error) bool { return errors.Is(err, errBoom) }},
		{"failing at the end", io.MultiReader(strings.NewReader("abcd"), iotest.ErrReader(errBoom)), 4, func(err error) bool { return errors.Is(err, errBoom) }},
	}
	for _, tt := range tests {
		var got bytes.Buffer
		_, err := io.Copy(&got, Exact(t.Context(), tt.r, tt.size))
		if tt.wantErr == nil {
			if err != nil || int64(got.Len()) != tt.size {
				t.Errorf("%s: got %q, %v", tt.name, got.String(), err)
			}
		} else if !tt.wantErr(err) {
			t.Errorf("%s: got %v", tt.name, err)
		}
	}
}

func TestExactContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	r := Exact(ctx, strings.NewReader("abcd"), 4)
	buf := make([]byte, 2)
	if n, err := r.Read(buf); n != 2 || err != nil {
		t.Fatalf("Read: %d, %v", n, err)
	}
	cancel()
	if _, err := r.Read(buf); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel: got %v, want context.Canceled", err)
	}
	// Errors are sticky.
	if _, err := r.Read(buf); !errors.Is(err, context.Canceled) {
		t.Errorf("second Read after cancel: got %v, want context.Canceled", err)
	}
}

func TestWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	rc := WithContext(ctx, io.NopCloser(strings.NewReader("abcd")))
	buf := make([]byte, 2)
	if n, err := rc.Read(buf); n != 2 || err != nil {
		t.Fatalf("Read: %d, %v", n, err)
	}
	cancel()
	if _, err := rc.Read(buf); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel: got %v, want context.Canceled", err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
