package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Terminal statuses of a long-running operation.
const (
	StatusSucceeded = "Succeeded"
	StatusFailed    = "Failed"
	StatusCanceled  = "Canceled"
)

// minPollDelay is the shortest wait between polls, whatever Retry-After says.
const minPollDelay = 100 * time.Millisecond

// Operation is the state of a long-running operation: the body of its
// Azure-AsyncOperation status URL.
type Operation struct {
	// ID is the status resource's ID (its path).
	ID string `json:"id"`
	// Name is the operation's ID.
	Name string `json:"name"`
	// Status is Succeeded, Failed, Canceled, or any other value while it runs
	// (pgvault says Inprogress).
	Status    string     `json:"status"`
	StartTime time.Time  `json:"startTime"`
	EndTime   *time.Time `json:"endTime,omitempty"`
	// Properties is the operation's result, if it has one.
	Properties json.RawMessage `json:"properties,omitempty"`
	// Error is the operation's error once it failed.
	Error *APIError `json:"-"`
	// Polls counts the polls made so far, the one that returned this state included.
	Polls int `json:"-"`
	// Elapsed is the time since waiting started.
	Elapsed time.Duration `json:"-"`
}

// Done reports whether the operation reached a terminal status.
func (o *Operation) Done() bool { return isTerminal(o.Status) }

func isTerminal(s string) bool {
	return strings.EqualFold(s, StatusSucceeded) || strings.EqualFold(s, StatusFailed) ||
		strings.EqualFold(s, StatusCanceled) || strings.EqualFold(s, "Cancelled")
}

// PollOptions tune Wait. The zero value is usable.
type PollOptions struct {
	// Frequency is the delay between polls when the server sends no
	// Retry-After; default 1s. A Retry-After always wins.
	Frequency time.Duration
	// Progress, when set, is called after every poll with the operation's
	// state, terminal or not.
	Progress func(*Operation)
}

// IsLongRunning reports whether resp started a long-running operation: a
// 201 or 202 with an Azure-AsyncOperation header, or a 202 with a Location
// header.
func IsLongRunning(resp *Response) bool {
	switch resp.StatusCode {
	case http.StatusCreated:
		return resp.Header.Get("Azure-AsyncOperation") != ""
	case http.StatusAccepted:
		return resp.Header.Get("Azure-AsyncOperation") != "" || resp.Header.Get("Location") != ""
	}
	return false
}

// OperationURL returns the URL Wait polls for resp: its Azure-AsyncOperation,
// else (for a 202) its Location, resolved against the request URL; "" when
// resp is not long-running.
func OperationURL(resp *Response) string {
	if !IsLongRunning(resp) {
		return ""
	}
	u, _, _ := pollTarget(resp)
	return u
}

// pollTarget returns the URL to poll and whether it is a status URL
// (Azure-AsyncOperation) rather than a Location.
func pollTarget(resp *Response) (string, bool, error) {
	raw, status := resp.Header.Get("Azure-AsyncOperation"), true
	if raw == "" {
		raw, status = resp.Header.Get("Location"), false
	}
	ref, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("while parsing the operation URL %q: %w", raw, err)
	}
	if !ref.IsAbs() {
		base, err := url.Parse(resp.URL)
		if err != nil {
			return "", false, fmt.Errorf("while parsing the request URL %q: %w", resp.URL, err)
		}
		ref = base.ResolveReference(ref)
	}
	return ref.String(), status, nil
}

// Wait polls the long-running operation that resp started until its status
// is Succeeded, Failed or Canceled, or until ctx is done (its deadline
// included). Before each poll it waits as long as the latest response's
// Retry-After says (opts.Frequency without one; never less than 100ms), and
// after every poll it calls opts.Progress.
//
// It returns the operation's final state. When the operation failed or was
// canceled, the error is the operation's *APIError (also in Operation.Error).
// A resp that is not long-running (see IsLongRunning) is an error.
//
// With only a Location header (no Azure-AsyncOperation), the Location is
// polled: 202 means running, any other 2xx success (its body becomes the
// operation's Properties), an error status failure.
func (c *Client) Wait(ctx context.Context, resp *Response, opts *PollOptions) (*Operation, error) {
	if resp == nil || !IsLongRunning(resp) {
		return nil, fmt.Errorf("while waiting for an operation: the response is not a long-running operation (no Azure-AsyncOperation or Location header with a 201 or 202)")
	}
	if opts == nil {
		opts = &PollOptions{}
	}
	freq := opts.Frequency
	if freq <= 0 {
		freq = time.Second
	}
	target, isStatus, err := pollTarget(resp)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	op := &Operation{Name: operationName(target)}
	delay := retryAfter(resp.Header, freq)
	for {
		if err := sleep(ctx, delay); err != nil {
			return op, fmt.Errorf("while waiting for operation %s (last status %q): %w", op.Name, op.Status, err)
		}
		var pr *Response
		if isStatus {
			pr, err = c.Get(ctx, target, "")
			if err != nil {
				return op, fmt.Errorf("while polling operation %s: %w", op.Name, err)
			}
			var next Operation
			if err := pr.Decode(&next); err != nil {
				return op, err
			}
			var body struct {
				Error *wireError `json:"error"`
			}
			_ = json.Unmarshal(pr.Body, &body)
			if body.Error != nil && (body.Error.Code != "" || body.Error.Message != "") {
				next.Error = body.Error.toAPI(0)
			}
			if next.Name == "" {
				next.Name = op.Name
			}
			next.Polls = op.Polls
			op = &next
		} else {
			pr, err = c.Get(ctx, target, "")
			var ae *APIError
			switch {
			case errors.As(err, &ae):
				op.Status, op.Error = StatusFailed, ae
				err = nil
			case err != nil:
				return op, fmt.Errorf("while polling operation %s: %w", op.Name, err)
			case pr.StatusCode == http.StatusAccepted:
				op.Status = "InProgress"
			default:
				op.Status = StatusSucceeded
				op.Properties = json.RawMessage(pr.Body)
			}
		}
		op.Polls++
		op.Elapsed = time.Since(start)
		if opts.Progress != nil {
			opts.Progress(op)
		}
		if op.Done() {
			return op, operationError(op)
		}
		delay = freq
		if pr != nil {
			delay = retryAfter(pr.Header, freq)
		}
	}
}

// operationError is the error of a finished operation, or nil.
func operationError(op *Operation) error {
	switch {
	case strings.EqualFold(op.Status, StatusSucceeded):
		return nil
	case strings.EqualFold(op.Status, StatusFailed):
		if op.Error == nil {
			op.Error = &APIError{Code: "OperationFailed", Message: fmt.Sprintf("The operation %s failed; the server gave no reason.", op.Name)}
		}
	default:
		if op.Error == nil {
			op.Error = &APIError{Code: "OperationCanceled", Message: fmt.Sprintf("The operation %s was canceled.", op.Name)}
		}
	}
	return op.Error
}

// operationName is the last path segment of an operation URL.
func operationName(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return path.Base(u.Path)
}

// retryAfter reads the delay a response asks for: retry-after-ms,
// x-ms-retry-after-ms, or Retry-After in seconds or as an HTTP date. It is
// def when none is given and never less than minPollDelay.
func retryAfter(h http.Header, def time.Duration) time.Duration {
	d, ok := time.Duration(0), false
	for _, k := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v := h.Get(k); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
				d, ok = time.Duration(ms)*time.Millisecond, true
				break
			}
		}
	}
	if v := h.Get("Retry-After"); !ok && v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
			d, ok = time.Duration(s)*time.Second, true
		} else if t, err := http.ParseTime(v); err == nil {
			d, ok = max(time.Until(t), 0), true
		}
	}
	if !ok {
		d = def
	}
	return max(d, minPollDelay)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
