package apitest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// A synthetic pair of swagger files: a.json refers to a parameter and to a
// definition of b.json whose name clashes with one of its own.
var syntheticFS = fstest.MapFS{
	specRoot + "/rp/a.json": {Data: []byte(`{
  "swagger": "2.0", "info": {"title": "t", "version": "1"}, "host": "management.azure.com",
  "paths": {"/things/{name}": {"get": {
    "operationId": "Things_Get",
    "parameters": [{"$ref": "../common/b.json#/parameters/ApiVersion"},
                   {"name": "name", "in": "path", "required": true, "type": "string"}],
    "responses": {
      "200": {"description": "ok", "schema": {"$ref": "#/definitions/Thing"}},
      "default": {"description": "error", "schema": {"$ref": "../common/b.json#/definitions/Thing"}}},
    "x-ms-examples": {"get": {"$ref": "./examples/missing.json"}}}}},
  "definitions": {"Thing": {"type": "object", "additionalProperties": false,
    "properties": {"size": {"type": "integer"}}}}}`)},
	specRoot + "/common/b.json": {Data: []byte(`{
  "swagger": "2.0", "info": {"title": "common", "version": "1"}, "paths": {},
  "parameters": {"ApiVersion": {"name": "api-version", "in": "query", "required": true, "type": "string", "minLength": 1}},
  "definitions": {
    "Thing": {"type": "object", "properties": {"error": {"$ref": "#/definitions/Detail"}}},
    "Detail": {"type": "object", "properties": {"code": {"type": "string"}}}}}`)},
}

func TestBundleSynthetic(t *testing.T) {
	raw, err := bundle(syntheticFS, "rp/a.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Thing_2"`, `"Detail"`, `"#/definitions/Thing_2"`, `"name":"api-version"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("bundled document lacks %s: %s", want, raw)
		}
	}
	if strings.Contains(string(raw), "b.json") || strings.Contains(string(raw), "x-ms-examples") {
		t.Errorf("bundled document still refers to other files: %s", raw)
	}

	d, err := loadDocument(syntheticFS, "rp/a.json")
	if err != nil {
		t.Fatal(err)
	}
	s := &Spec{docs: []*document{d}}
	hdr := http.Header{"Content-Type": {"application/json"}}
	check := func(target string, status int, body string) error {
		t.Helper()
		matched, err := s.ValidateResponse(httptest.NewRequest("GET", target, nil), status, hdr, []byte(body))
		if !matched {
			t.Fatalf("%s matched no operation", target)
		}
		return err
	}
	if err := check("/THINGS/a?api-version=1", 200, `{"size": 1}`); err != nil {
		t.Errorf("valid response rejected: %v", err)
	}
	if err := check("/things/a?api-version=1", 404, `{"error": {"code": "NotFound"}}`); err != nil {
		t.Errorf("valid error rejected: %v", err)
	}
	if err := check("/things/a?api-version=1", 200, `{"size": 1, "extra": true}`); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("property forbidden by additionalProperties false: got %v", err)
	}
	if err := check("/things/a?api-version=1", 404, `{"error": {"code": 1}}`); err == nil {
		t.Error("wrong type in a definition copied from another file was accepted")
	}
	// The external parameter kept its schema: api-version is required.
	if err := check("/things/a", 200, `{"size": 1}`); err == nil || !strings.Contains(err.Error(), "api-version") {
		t.Errorf("missing api-version: got %v", err)
	}
}

func TestLoadSpecOnce(t *testing.T) {
	first, second := LoadSpec(t), LoadSpec(t)
	if first != second {
		t.Error("LoadSpec loaded the specs twice")
	}
}
