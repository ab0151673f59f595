package arm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// Provider names used to pick accepted api-versions.
const (
	ProviderDataProtection = "Microsoft.DataProtection"
	ProviderPostgreSQL     = "Microsoft.DBforPostgreSQL"
	ProviderResources      = "Microsoft.Resources"
	ProviderAuthorization  = "Microsoft.Authorization"
	// ProviderIdentity is pgvault's own provider for service principals
	// (what Microsoft Graph does for Azure).
	ProviderIdentity = "Pgvault.Identity"
)

// APIVersions lists the api-versions each provider accepts, newest first.
// The SDKs pin them: armdataprotection/v3 sends 2024-04-01 and
// armpostgresqlflexibleservers/v4 sends 2024-08-01; armresources and
// armauthorization versions vary by SDK release, so a range is accepted.
var APIVersions = map[string][]string{
	ProviderDataProtection: {"2024-04-01"},
	ProviderPostgreSQL:     {"2024-08-01"},
	ProviderResources:      {"2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-09-01", "2021-04-01", "2020-06-01"},
	ProviderAuthorization:  {"2022-04-01", "2020-10-01", "2018-01-01-preview", "2015-07-01"},
	ProviderIdentity:       {"2026-11-01"},
}

// CheckAPIVersion validates the api-version query parameter for a provider.
func CheckAPIVersion(r *http.Request, provider string) *Error {
	q := r.URL.Query()
	v := q.Get("api-version")
	if v == "" {
		return Errorf(http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.").WithTarget("api-version")
	}
	supported := APIVersions[provider]
	if slices.Contains(supported, v) {
		return nil
	}
	if !wellFormedAPIVersion(v) {
		return Errorf(http.StatusBadRequest, "InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are '%s'.", v, strings.Join(supported, ",")).WithTarget("api-version")
	}
	return Errorf(http.StatusBadRequest, "NoRegisteredProviderFound",
		"No registered resource provider found for API version '%s' of namespace '%s'. The supported api-versions are '%s'.",
		v, provider, strings.Join(supported, ", ")).WithTarget("api-version")
}

// wellFormedAPIVersion accepts YYYY-MM-DD with an optional -suffix.
func wellFormedAPIVersion(v string) bool {
	date, _, _ := strings.Cut(v, "-preview")
	if len(date) != 10 {
		return false
	}
	for i := 0; i < len(date); i++ {
		if i == 4 || i == 7 {
			if date[i] != '-' {
				return false
			}
		} else if date[i] < '0' || date[i] > '9' {
			return false
		}
	}
	return true
}

// NewID returns a random (version 4) UUID string.
func NewID() string { return uuid.NewString() }

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 4 << 20

// DecodeBody reads a required JSON request body into v. It refuses a non-JSON
// content type, an empty or oversized body, invalid JSON, trailing data and
// values of the wrong type (naming the field in the error's target). Unknown
// fields are ignored, as ARM does.
func DecodeBody(r *http.Request, v any) *Error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Errorf(http.StatusUnsupportedMediaType, "UnsupportedMediaType",
				"The content media type '%s' is not supported. Only 'application/json' is supported.", ct)
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return Errorf(http.StatusBadRequest, "InvalidRequestContent", "The request content could not be read: %v.", err)
	}
	if len(body) > MaxBodyBytes {
		return Errorf(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			"The request content is larger than the limit of %d bytes.", MaxBodyBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Errorf(http.StatusBadRequest, "InvalidRequestContent", "The request content is empty; a JSON body is required.")
	}
	return DecodeJSON(body, v, "")
}

// DecodeJSON decodes one JSON value from data into v. Errors are 400
// InvalidRequestContent whose target is the offending field, prefixed with
// prefix (e.g. "properties.policyRules[0]").
func DecodeJSON(data []byte, v any, prefix string) *Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON value")
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON value")
		}
	}
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		target := JoinPath(prefix, typ.Field)
		return Errorf(http.StatusBadRequest, "InvalidRequestContent",
			"The request content was invalid: the value at '%s' must be %s, not a JSON %s.", target, jsonKind(typ.Type.Kind().String()), typ.Value).WithTarget(target)
	case errors.As(err, &syn):
		return Errorf(http.StatusBadRequest, "InvalidRequestContent",
			"The request content was invalid and could not be deserialized: %v at offset %d.", syn, syn.Offset).WithTarget(prefix)
	default:
		return Errorf(http.StatusBadRequest, "InvalidRequestContent",
			"The request content was invalid and could not be deserialized: %v.", err).WithTarget(prefix)
	}
}

// JoinPath joins a JSON path prefix and a field path with a dot.
func JoinPath(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	}
	return prefix + "." + field
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "a " + goKind
}

// BaseURL is the scheme and host the client used, for absolute links
// (nextLink, Azure-AsyncOperation, Location). A configured public URL wins.
func BaseURL(r *http.Request, public string) string {
	if public != "" {
		return strings.TrimRight(public, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// NextLink returns the absolute URL of the next page of a list: the request's
// URL with $skipToken set (api-version and other query parameters kept).
func NextLink(r *http.Request, public, skipToken string) string {
	q := r.URL.Query()
	q.Set("$skipToken", skipToken)
	return BaseURL(r, public) + r.URL.EscapedPath() + "?" + encodeQuery(q)
}

// encodeQuery is url.Values.Encode keeping '$' readable.
func encodeQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "%24", "$")
}

// SkipToken returns the request's $skipToken (also accepted as skipToken).
func SkipToken(r *http.Request) string {
	q := r.URL.Query()
	if t := q.Get("$skipToken"); t != "" {
		return t
	}
	return q.Get("skipToken")
}
