package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkGetVault measures GET vault through the whole HTTP stack
// (loopback TCP, routing, store read, JSON encoding).
func BenchmarkGetVault(b *testing.B) {
	e := benchEnv(b)
	req, _ := http.NewRequest(http.MethodGet, e.URL+vaultPath+dpVersion, nil)
	req.Header.Set("Authorization", "Bearer "+e.adminToken())
	client := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkPutPolicy measures PUT policy (decode, validate, store write).
func BenchmarkPutPolicy(b *testing.B) {
	e := benchEnv(b)
	body := readTestdata(b, "pgflex-policy.json")
	url := e.URL + polPath + dpVersion
	client := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.adminToken())
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkBaselineStaticJSON is the peer of BenchmarkGetVault: a bare
// net/http handler writing the same vault JSON, over the same loopback
// client. The ratio of the two is pgvault's cost per request.
func BenchmarkBaselineStaticJSON(b *testing.B) {
	e := benchEnv(b)
	body := e.do(http.MethodGet, vaultPath+dpVersion, nil).Body
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	client := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Get(srv.URL + vaultPath + dpVersion)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
