package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// page is the wire shape of one page of an ARM list.
type page struct {
	Value    []json.RawMessage `json:"value"`
	NextLink string            `json:"nextLink"`
}

// ListPages GETs the list at path and calls fn with the items of each page,
// following nextLink (an absolute URL, used as it is) until a page has none.
// It stops at the first error, of the server or of fn, and refuses a
// nextLink it has already followed.
func (c *Client) ListPages(ctx context.Context, path, apiVersion string, fn func(items []json.RawMessage) error) error {
	seen := map[string]bool{}
	next := path
	for {
		resp, err := c.Get(ctx, next, apiVersion)
		if err != nil {
			return err
		}
		var p page
		if err := resp.Decode(&p); err != nil {
			return err
		}
		if err := fn(p.Value); err != nil {
			return err
		}
		if p.NextLink == "" {
			return nil
		}
		if seen[p.NextLink] {
			return fmt.Errorf("while listing %s: the server sent the nextLink %s twice", path, p.NextLink)
		}
		seen[p.NextLink] = true
		next = p.NextLink
	}
}

// List returns the items of every page of the list at path.
func (c *Client) List(ctx context.Context, path, apiVersion string) ([]json.RawMessage, error) {
	items := []json.RawMessage{}
	err := c.ListPages(ctx, path, apiVersion, func(page []json.RawMessage) error {
		items = append(items, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// ListAs returns the items of every page of the list at path, decoded as T.
func ListAs[T any](ctx context.Context, c *Client, path, apiVersion string) ([]T, error) {
	raw, err := c.List(ctx, path, apiVersion)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(raw))
	for i, r := range raw {
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("while decoding item %d of %s: %w", i, path, err)
		}
		out = append(out, v)
	}
	return out, nil
}
