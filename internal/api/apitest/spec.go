// Package apitest checks HTTP traffic against the Azure swagger files that
// define the ARM API pgvault serves: Microsoft.DataProtection 2024-04-01
// (backup vaults, policies, instances, ...) and the PostgreSQL flexible server
// long-term-retention operations of Microsoft.DBforPostgreSQL 2024-08-01.
//
// Tests wrap the HTTP client given to the Azure SDK:
//
//	spec := apitest.LoadSpec(t)
//	client := spec.Client(t, nil)
//	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{Transport: client}}
//	... drive the SDK ...
//	if spec.Validated(client) == 0 { t.Error("no response was checked") }
//
// Every response whose request matches an operation of the specs is checked;
// violations are reported with tb.Errorf.
//
// The swagger files are embedded (testdata/specs, see its README.md). They are
// loaded with kin-openapi, which needs help with two Azure idioms:
//
//   - External references. Before conversion to OpenAPI 3 every cross-file
//     $ref is inlined: definitions of another file are copied into the
//     document's definitions (renamed on a clash) and parameter references are
//     replaced by the parameter itself (openapi2conv drops the schema of a
//     parameter referenced from another swagger-2 file).
//   - Polymorphism. kin-openapi validates a discriminated object only against
//     its base schema. After the ordinary validation the response is walked
//     together with its schema; wherever a schema has a discriminator, the
//     object is also validated against the subtype named by the discriminator
//     property (x-ms-discriminator-value, or the definition name), and a value
//     naming no known subtype is an error.
package apitest

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

//go:embed testdata/specs
var specFS embed.FS

// specRoot is the directory of specFS that mirrors the upstream
// azure-rest-api-specs "specification" folder.
const specRoot = "testdata/specs/specification"

// specFiles are the swagger documents with operations, relative to specRoot.
// The files they reference are found through their relative $refs.
var specFiles = []string{
	"dataprotection/resource-manager/Microsoft.DataProtection/stable/2024-04-01/dataprotection.json",
	"postgresql/resource-manager/Microsoft.DBforPostgreSQL/stable/2024-08-01/LongTermRetentionOperation.json",
}

// Spec is the loaded API contract. It is read-only and safe for concurrent use.
type Spec struct {
	docs []*document
}

// document is one converted swagger file with its router.
type document struct {
	file   string
	doc    *openapi3.T
	router routers.Router
	// paths maps the lower-cased path templates the router knows to the
	// templates of the spec.
	paths map[string]string
	// subtypes maps a schema with a discriminator to its concrete schemas by
	// discriminator value (the base itself is listed under its own value).
	subtypes map[*openapi3.Schema]map[string]*openapi3.Schema
}

var (
	loadOnce   sync.Once
	loadedSpec *Spec
	errLoad    error
)

// LoadSpec returns the embedded API specs, loading them on first use (once
// per process). It fails the test if they cannot be loaded.
func LoadSpec(tb testing.TB) *Spec {
	tb.Helper()
	loadOnce.Do(func() { loadedSpec, errLoad = load(specFS) })
	if errLoad != nil {
		tb.Fatalf("apitest: while loading the Azure API specs: %v", errLoad)
	}
	return loadedSpec
}

func load(fsys fs.FS) (*Spec, error) {
	s := &Spec{}
	for _, file := range specFiles {
		d, err := loadDocument(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("while loading %s: %w", file, err)
		}
		s.docs = append(s.docs, d)
	}
	return s, nil
}

func loadDocument(fsys fs.FS, file string) (*document, error) {
	raw, err := bundle(fsys, file)
	if err != nil {
		return nil, fmt.Errorf("while inlining external references: %w", err)
	}
	var doc2 openapi2.T
	if err := json.Unmarshal(raw, &doc2); err != nil {
		return nil, fmt.Errorf("while parsing swagger 2.0: %w", err)
	}
	doc, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("while converting to OpenAPI 3: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("while validating the converted document: %w", err)
	}

	// ARM paths are case-insensitive: route on lower-cased templates, and
	// without servers so that any host matches.
	d := &document{file: file, doc: doc, paths: map[string]string{}}
	routing := &openapi3.T{OpenAPI: doc.OpenAPI, Info: doc.Info, Paths: openapi3.NewPaths()}
	for p, item := range doc.Paths.Map() {
		lp := lowerLiterals(p)
		if other, dup := d.paths[lp]; dup {
			return nil, fmt.Errorf("while building the router: paths %q and %q differ only by case", p, other)
		}
		d.paths[lp] = p
		routing.Paths.Set(lp, item)
	}
	if d.router, err = gorillamux.NewRouter(routing); err != nil {
		return nil, fmt.Errorf("while building the router: %w", err)
	}
	d.subtypes = indexSubtypes(doc)
	return d, nil
}

// lowerLiterals lower-cases the literal segments of a path template, keeping
// {parameter} names as they are.
func lowerLiterals(template string) string {
	segs := strings.Split(template, "/")
	for i, seg := range segs {
		if !strings.HasPrefix(seg, "{") {
			segs[i] = strings.ToLower(seg)
		}
	}
	return strings.Join(segs, "/")
}

// ValidateResponse checks one exchange against the specs. matched reports
// whether the request's method and path name an operation of the specs
// (compared case-insensitively); if not, nothing is checked and err is nil.
// Otherwise err describes every violation found:
//   - request parameters (path, query such as the required api-version,
//     headers); request bodies are not checked;
//   - the status: a status below 400 must be declared by the operation, an
//     error status may fall back to "default" (which in ARM describes errors);
//   - the response headers and body against the schema, including concrete
//     subtypes of discriminated (polymorphic) objects.
//
// Unknown properties are accepted unless a schema sets additionalProperties
// to false; enums are closed even where x-ms-enum says modelAsString.
func (s *Spec) ValidateResponse(req *http.Request, status int, header http.Header, body []byte) (matched bool, err error) {
	for _, d := range s.docs {
		route, params, ok := d.findRoute(req)
		if !ok {
			continue
		}
		return true, d.validate(req, route, params, status, header, body)
	}
	return false, nil
}

// findRoute finds the operation for req, ignoring the case of the path.
func (d *document) findRoute(req *http.Request) (*routers.Route, map[string]string, bool) {
	lower := *req.URL
	lower.Path = strings.ToLower(lower.Path)
	lower.RawPath = strings.ToLower(lower.RawPath)
	lreq := req.Clone(req.Context())
	lreq.URL = &lower
	route, vars, err := d.router.FindRoute(lreq)
	if err != nil { // routers.ErrPathNotFound or ErrMethodNotAllowed
		return nil, nil, false
	}
	r := *route
	r.Spec = d.doc
	r.Path = d.paths[route.Path]
	// Take the parameter values from the request as sent, not lower-cased.
	tsegs := strings.Split(route.Path, "/")
	rsegs := strings.Split(req.URL.EscapedPath(), "/")
	params := make(map[string]string, len(vars))
	for k, v := range vars {
		params[k] = v
	}
	if len(tsegs) == len(rsegs) {
		for i, seg := range tsegs {
			name, ok := strings.CutPrefix(seg, "{")
			name, ok2 := strings.CutSuffix(name, "}")
			if !ok || !ok2 {
				continue
			}
			if v, err := url.PathUnescape(rsegs[i]); err == nil {
				params[name] = v
			}
		}
	}
	return &r, params, true
}

// briefErrors leaves the schema and value dumps out of kin-openapi's errors;
// the JSON pointer and the reason remain.
var briefErrors = []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()}

// subtypeOptions are used to validate a response object against a subtype.
var subtypeOptions = []openapi3.SchemaValidationOption{
	openapi3.DisableSchemaErrorDetails(), openapi3.VisitAsResponse(), openapi3.MultiErrors(),
}

func (d *document) validate(req *http.Request, route *routers.Route, params map[string]string, status int, header http.Header, body []byte) error {
	op := route.Operation
	var errs []error
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			ExcludeRequestBody:         true, // already sent, and tests may send bad ones on purpose
			ExcludeReadOnlyValidations: true, // ARM ignores readOnly properties in requests
			AuthenticationFunc:         openapi3filter.NoopAuthenticationFunc,
			MultiError:                 true,
			SchemaValidationOptions:    briefErrors,
		},
	}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		errs = append(errs, fmt.Errorf("request: %w", err))
	}

	if status < 400 && op.Responses.Status(status) == nil {
		errs = append(errs, fmt.Errorf("status %d is not declared by %s (declared: %s)",
			status, op.OperationID, strings.Join(slices.Sorted(maps.Keys(op.Responses.Map())), ", ")))
		return errors.Join(errs...)
	}
	if err := openapi3filter.ValidateResponse(req.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			MultiError:              true,
			SchemaValidationOptions: briefErrors,
		},
	}); err != nil {
		errs = append(errs, err)
	}
	if schema := responseSchema(op, status, header); schema != nil && len(bytes.TrimSpace(body)) > 0 {
		var v any
		if json.Unmarshal(body, &v) == nil { // decoding errors were reported above
			d.checkSubtypes(schema, v, "$", &errs)
		}
	}
	return errors.Join(errs...)
}

// responseSchema returns the body schema for status (or default), or nil.
func responseSchema(op *openapi3.Operation, status int, header http.Header) *openapi3.Schema {
	resp := op.Responses.Status(status)
	if resp == nil {
		resp = op.Responses.Default()
	}
	if resp == nil || resp.Value == nil {
		return nil
	}
	mt := resp.Value.Content.Get(header.Get("Content-Type"))
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// indexSubtypes finds, for every schema with a discriminator, the component
// schemas deriving from it (through allOf, transitively), keyed by their
// x-ms-discriminator-value or else their component name.
func indexSubtypes(doc *openapi3.T) map[*openapi3.Schema]map[string]*openapi3.Schema {
	idx := map[*openapi3.Schema]map[string]*openapi3.Schema{}
	for _, name := range slices.Sorted(maps.Keys(doc.Components.Schemas)) {
		s := doc.Components.Schemas[name].Value
		value := name
		if v, ok := s.Extensions["x-ms-discriminator-value"].(string); ok {
			value = v
		}
		for _, base := range discriminatedAncestors(s, nil) {
			if idx[base] == nil {
				idx[base] = map[string]*openapi3.Schema{}
			}
			if _, dup := idx[base][value]; !dup {
				idx[base][value] = s
			}
		}
	}
	return idx
}

// discriminatedAncestors returns s and the schemas it inherits from through
// allOf that have a discriminator.
func discriminatedAncestors(s *openapi3.Schema, seen []*openapi3.Schema) []*openapi3.Schema {
	if s == nil || slices.Contains(seen, s) {
		return nil
	}
	seen = append(seen, s)
	var out []*openapi3.Schema
	if s.Discriminator != nil {
		out = append(out, s)
	}
	for _, p := range s.AllOf {
		out = append(out, discriminatedAncestors(p.Value, seen)...)
	}
	return out
}

// discriminatorBase returns the first schema with a discriminator among s
// and its allOf ancestors, or nil.
func discriminatorBase(s *openapi3.Schema) *openapi3.Schema {
	if b := discriminatedAncestors(s, nil); len(b) > 0 {
		return b[0]
	}
	return nil
}

// checkSubtypes walks the JSON value v (at JSON path at) with its schema s
// and validates every discriminated object against its concrete subtype.
func (d *document) checkSubtypes(s *openapi3.Schema, v any, at string, errs *[]error) {
	if s == nil {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		if base := discriminatorBase(s); base != nil {
			prop := base.Discriminator.PropertyName
			if tag, ok := v[prop].(string); ok {
				switch sub := d.subtypes[base][tag]; {
				case sub == nil:
					*errs = append(*errs, fmt.Errorf("%s: %s %q names no known subtype (known: %s)",
						at, prop, tag, strings.Join(slices.Sorted(maps.Keys(d.subtypes[base])), ", ")))
				case sub != s:
					if err := sub.VisitJSON(v, subtypeOptions...); err != nil {
						*errs = append(*errs, fmt.Errorf("%s: as %s %q: %w", at, prop, tag, err))
					}
					s = sub
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			d.checkSubtypes(propertySchema(s, k), v[k], at+"."+k, errs)
		}
	case []any:
		items := itemsSchema(s)
		for i, e := range v {
			d.checkSubtypes(items, e, at+"["+strconv.Itoa(i)+"]", errs)
		}
	}
}

// propertySchema returns the schema of property k of s, looking through
// allOf and then additionalProperties.
func propertySchema(s *openapi3.Schema, k string) *openapi3.Schema {
	if p := s.Properties[k]; p != nil {
		return p.Value
	}
	for _, a := range s.AllOf {
		if a.Value != nil {
			if p := propertySchema(a.Value, k); p != nil {
				return p
			}
		}
	}
	if ap := s.AdditionalProperties.Schema; ap != nil {
		return ap.Value
	}
	return nil
}

// itemsSchema returns the item schema of an array schema, looking through allOf.
func itemsSchema(s *openapi3.Schema) *openapi3.Schema {
	if s.Items != nil {
		return s.Items.Value
	}
	for _, a := range s.AllOf {
		if a.Value != nil {
			if it := itemsSchema(a.Value); it != nil {
				return it
			}
		}
	}
	return nil
}

// Transport is an http.RoundTripper that checks every response against the
// specs (see Spec.ValidateResponse) and reports violations with tb.Errorf.
// The response body is read and restored, so callers see it unchanged.
type Transport struct {
	spec      *Spec
	tb        testing.TB
	base      http.RoundTripper
	validated atomic.Int64
}

// Transport returns a validating wrapper around base (http.DefaultTransport
// if nil).
func (s *Spec) Transport(tb testing.TB, base http.RoundTripper) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Transport{spec: s, tb: tb, base: base}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("while reading the response body of %s %s: %w", req.Method, req.URL.Path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	matched, err := t.spec.ValidateResponse(req, resp.StatusCode, resp.Header, body)
	if matched {
		t.validated.Add(1)
	}
	if err != nil {
		shown := body
		if len(shown) > 4096 {
			shown = append(shown[:4096:4096], "..."...)
		}
		t.tb.Errorf("apitest: %s %s -> %d violates the API spec: %v\nresponse body: %s",
			req.Method, req.URL.Path, resp.StatusCode, err, shown)
	}
	return resp, nil
}

// Validated returns how many responses matched an operation of the specs and
// were checked (whether or not they passed).
func (t *Transport) Validated() int { return int(t.validated.Load()) }

// Client returns a copy of base (http.DefaultClient if nil) whose transport
// validates every response; pass it to the Azure SDK as
// policy.ClientOptions.Transport.
func (s *Spec) Client(tb testing.TB, base *http.Client) *http.Client {
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	c.Transport = s.Transport(tb, base.Transport)
	return &c
}

// Validated returns how many responses c, a client made by Client, has
// checked; 0 for any other client.
func (s *Spec) Validated(c *http.Client) int {
	if t, ok := c.Transport.(*Transport); ok {
		return t.Validated()
	}
	return 0
}

// bundle reads the swagger file main from fsys (relative to specRoot) and
// returns it as JSON with every $ref made local: definitions of other files
// are copied into its definitions, parameters and responses are inlined
// where referenced, and x-ms-examples are dropped.
func bundle(fsys fs.FS, main string) ([]byte, error) {
	b := &bundler{fsys: fsys, main: main, files: map[string]map[string]any{}, names: map[string]string{}}
	doc, err := b.file(main)
	if err != nil {
		return nil, err
	}
	defs, _ := doc["definitions"].(map[string]any)
	if defs == nil {
		defs = map[string]any{}
		doc["definitions"] = defs
	}
	b.defs = defs
	own := slices.Sorted(maps.Keys(defs))
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		if k == "definitions" {
			continue
		}
		if doc[k], err = b.rewrite(doc[k], main); err != nil {
			return nil, err
		}
	}
	for _, k := range own {
		if defs[k], err = b.rewrite(defs[k], main); err != nil {
			return nil, err
		}
	}
	return json.Marshal(doc)
}

type bundler struct {
	fsys  fs.FS
	main  string
	files map[string]map[string]any // parsed swagger files by path
	defs  map[string]any            // the main file's definitions, extended
	names map[string]string         // "file#/definitions/X" of other files -> name in defs
}

// file returns the parsed swagger file p (relative to specRoot).
func (b *bundler) file(p string) (map[string]any, error) {
	if doc, ok := b.files[p]; ok {
		return doc, nil
	}
	data, err := fs.ReadFile(b.fsys, path.Join(specRoot, p))
	if err != nil {
		return nil, fmt.Errorf("while reading %s: %w", p, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("while parsing %s: %w", p, err)
	}
	b.files[p] = doc
	return doc, nil
}

// rewrite returns v, a value of file cur, with its references made local.
func (b *bundler) rewrite(v any, cur string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			return b.resolve(v, ref, cur)
		}
		delete(v, "x-ms-examples")
		for _, k := range slices.Sorted(maps.Keys(v)) {
			nv, err := b.rewrite(v[k], cur)
			if err != nil {
				return nil, err
			}
			v[k] = nv
		}
	case []any:
		for i := range v {
			nv, err := b.rewrite(v[i], cur)
			if err != nil {
				return nil, err
			}
			v[i] = nv
		}
	}
	return v, nil
}

// resolve handles the reference node {"$ref": ref, ...} found in file cur.
func (b *bundler) resolve(node map[string]any, ref, cur string) (any, error) {
	file, frag, _ := strings.Cut(ref, "#")
	target := cur
	if file != "" {
		target = path.Join(path.Dir(cur), file)
	}
	parts := strings.Split(strings.TrimPrefix(frag, "/"), "/")
	if len(parts) != 2 {
		return nil, fmt.Errorf("while resolving %q in %s: unsupported reference", ref, cur)
	}
	kind, name := parts[0], parts[1]
	doc, err := b.file(target)
	if err != nil {
		return nil, fmt.Errorf("while resolving %q in %s: %w", ref, cur, err)
	}
	section, _ := doc[kind].(map[string]any)
	value, ok := section[name]
	if !ok {
		return nil, fmt.Errorf("while resolving %q in %s: %s has no %s %q", ref, cur, target, kind, name)
	}
	switch kind {
	case "definitions":
		if target == b.main {
			node["$ref"] = "#/definitions/" + name
			return node, nil
		}
		key := target + "#/definitions/" + name
		local, ok := b.names[key]
		if !ok {
			local = name
			for i := 2; b.defs[local] != nil; i++ {
				local = name + "_" + strconv.Itoa(i)
			}
			b.names[key] = local
			b.defs[local] = true // reserve the name while the copy is rewritten
			copied, err := b.rewrite(deepCopy(value), target)
			if err != nil {
				return nil, err
			}
			b.defs[local] = copied
		}
		node["$ref"] = "#/definitions/" + local
		return node, nil
	case "parameters", "responses":
		return b.rewrite(deepCopy(value), target)
	}
	return nil, fmt.Errorf("while resolving %q in %s: unsupported reference kind %q", ref, cur, kind)
}

// deepCopy copies a decoded JSON value.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}
