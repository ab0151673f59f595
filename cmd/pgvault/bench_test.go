package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"
)

// TestBenchBackup runs `pgvault bench backup --scale 1 -o json` end to end and
// checks that the report has every figure of every tool and phase, the
// restores included. pgBackRest
// is optional: without it, its entry must say so.
func TestBenchBackup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	if err := run(ctx, []string{"bench", "backup", "--scale", "1", "-o", "json"}, func(string) string { return "" },
		nil, &stdout, &stderr); err != nil {
		t.Fatalf("bench backup: %v\n%s", err, stderr.String())
	}
	t.Logf("bench backup --scale 1 took %s", time.Since(start).Round(time.Millisecond))

	var raw map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("the output is not JSON: %v\n%s", err, stdout.String())
	}
	for _, k := range []string{"scale", "postgres_version", "database_bytes", "updated_rows", "cpus", "tools", "ratios"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q in the report", k)
		}
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Scale != 1 || rep.DatabaseBytes < 10e6 || rep.UpdatedRows != 1000 || rep.PostgresVersion == "" {
		t.Errorf("report header: %+v", rep)
	}
	_, lookErr := exec.LookPath("pgbackrest")
	wantTools := []string{benchPgvault, benchBasebackup, benchPgbackrest}
	if len(rep.Tools) != len(wantTools) {
		t.Fatalf("%d tools, want %d", len(rep.Tools), len(wantTools))
	}
	peers := 0
	for i, tool := range rep.Tools {
		if tool.Name != wantTools[i] {
			t.Errorf("tool %d is %q, want %q", i, tool.Name, wantTools[i])
		}
		if tool.Name == benchPgbackrest && lookErr != nil {
			if tool.Available || tool.Note == "" || len(tool.Runs) != 0 {
				t.Errorf("pgbackrest not installed, yet: %+v", tool)
			}
			continue
		}
		if !tool.Available || tool.Command == "" || tool.Version == "" {
			t.Errorf("%s: %+v", tool.Name, tool)
		}
		if tool.Name != benchPgvault {
			peers++
		}
		phases := []string{benchPhaseFull, benchPhaseCluster, benchPhaseScatter, benchPhaseRestore}
		if len(tool.Runs) != len(phases) {
			t.Fatalf("%s: %d runs, want %d", tool.Name, len(tool.Runs), len(phases))
		}
		for j, r := range tool.Runs {
			if r.Phase != phases[j] || r.Kind == "" || r.WallSeconds <= 0 || r.ThroughputMBs <= 0 || r.CPUSeconds <= 0 ||
				r.ServerCPUSeconds < 0 || r.PeakRSSBytes <= 0 || r.StoredBytes <= 0 || r.TotalBytes < r.StoredBytes {
				t.Errorf("%s run %d: %+v", tool.Name, j, r)
			}
			if r.Phase == benchPhaseRestore && r.StoredBytes < rep.DatabaseBytes/2 {
				t.Errorf("%s restored %d bytes of a %d-byte cluster", tool.Name, r.StoredBytes, rep.DatabaseBytes)
			}
			if tool.Name == benchPgvault && (r.PeakGoHeapBytes <= 0 || r.SnapshotNewBytes <= 0 && r.Phase != benchPhaseRestore) {
				t.Errorf("pgvault run %d: %+v", j, r)
			}
		}
		// A 1% change must cost pgvault and pgBackRest much less than a full.
		if tool.Name != benchBasebackup && tool.Runs[1].StoredBytes*2 > tool.Runs[0].StoredBytes {
			t.Errorf("%s stored %d bytes for 1%% clustered changes, %d for the full", tool.Name, tool.Runs[1].StoredBytes, tool.Runs[0].StoredBytes)
		}
	}
	if len(rep.Ratios) != 4*peers {
		t.Errorf("%d ratios, want %d: %+v", len(rep.Ratios), 4*peers, rep.Ratios)
	}
	for _, r := range rep.Ratios {
		if r.Wall <= 0 || r.CPU <= 0 || r.PeakRSS <= 0 || r.Stored <= 0 {
			t.Errorf("ratio: %+v", r)
		}
	}
}
