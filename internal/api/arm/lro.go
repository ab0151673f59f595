package arm

import (
	"net/http"
	"net/url"
	"strconv"
)

// AsyncHeaders sets the headers of an accepted long-running operation:
// absolute Azure-AsyncOperation (the operation status) and Location (the
// operation result) URLs carrying the api-version, and Retry-After in seconds.
func AsyncHeaders(w http.ResponseWriter, statusURL, resultURL string, retryAfterSeconds int) {
	h := w.Header()
	h.Set("Azure-AsyncOperation", statusURL)
	if resultURL != "" {
		h.Set("Location", resultURL)
	}
	h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
}

// OperationURL builds an absolute URL base+path?api-version=v, escaping each
// path segment given in segs.
func OperationURL(base, apiVersion string, segs ...string) string {
	u := base
	for _, s := range segs {
		u += "/" + url.PathEscape(s)
	}
	return u + "?api-version=" + url.QueryEscape(apiVersion)
}
