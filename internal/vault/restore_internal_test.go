package vault

import (
	"strings"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/target"
)

const storageSub = "/subscriptions/5f3c1a2b-9d4e-4f60-8a7b-1c2d3e4f5a6b/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"

func TestCheckStorageID(t *testing.T) {
	spec := target.Spec{Kind: target.KindBlobContainer, SASURL: "https://acct.blob.core.windows.net/restores?sv=1&sig=x"}
	for _, id := range []string{
		storageSub,
		storageSub + "/blobServices/default/containers/restores",
		strings.ToLower(storageSub) + "/BLOBSERVICES/default/Containers/restores",
	} {
		if e := checkStorageID(id, spec, "t"); e != nil {
			t.Errorf("checkStorageID(%s): %v", id, e)
		}
	}
	for _, id := range []string{
		"", "/", "acct", "/subscriptions/5f3c1a2b-9d4e-4f60-8a7b-1c2d3e4f5a6b/resourceGroups/rg",
		"/subscriptions/5f3c1a2b-9d4e-4f60-8a7b-1c2d3e4f5a6b/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1",
		storageSub + "/blobServices/default/containers/other",
		storageSub + "/fileServices/default/shares/restores",
		storageSub + "/blobServices/default",
		"/subscriptions/not-a-uuid/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
	} {
		e := checkStorageID(id, spec, "t")
		if e == nil || e.Code != "InvalidPropertyValue" || e.Target != "t" {
			t.Errorf("checkStorageID(%q) = %v", id, e)
		}
	}
}

// FuzzCheckStorageID: any string is accepted only as a storage account or
// one of its containers (the url's), and never panics.
func FuzzCheckStorageID(f *testing.F) {
	f.Add(storageSub)
	f.Add(storageSub + "/blobServices/default/containers/restores")
	f.Add(storageSub + "//")
	f.Add("/subscriptions//resourceGroups/providers")
	spec := target.Spec{Kind: target.KindBlobContainer, SASURL: "https://acct.blob.core.windows.net/restores?sv=1&sig=x"}
	f.Fuzz(func(t *testing.T, id string) {
		if checkStorageID(id, spec, "t") != nil {
			return
		}
		parts := strings.Split(strings.TrimPrefix(id, "/"), "/")
		if len(parts) != 8 && len(parts) != 12 || !strings.EqualFold(parts[5], "Microsoft.Storage") || !strings.EqualFold(parts[6], "storageAccounts") {
			t.Fatalf("accepted %q", id)
		}
		if len(parts) == 12 && parts[11] != "restores" {
			t.Fatalf("accepted another container: %q", id)
		}
	})
}

func TestParseRecoveryPointFilter(t *testing.T) {
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	rp := &RecoveryPointResource{ID: "x", Properties: RecoveryPoint{RecoveryPointTime: at("2024-05-02T09:12:40Z"), RecoveryPointState: "Completed",
		RecoveryPointDataStoresDetails: []RecoveryPointDataStore{{ID: "abc", Visible: true}}}}
	for filter, want := range map[string]bool{
		"": true,
		"startDate eq '2024-05-01T00:00:00.0000000Z' and endDate eq '2024-05-03T00:00:00.0000000Z'": true,
		"startDate eq '2024-05-02T09:12:40Z' and endDate eq '2024-05-02T09:12:40Z'":                 true,
		"startDate eq '2024-05-03'":                                             false,
		"endDate eq '2024-05-02 09:12:39'":                                      false,
		"STARTDATE EQ '2024-05-01T00:00:00' AND isVisible eq true":              true,
		"isVisible eq false":                                                    false,
		"restorePointState eq 'completed' and restorePointDataStoreId eq 'ABC'": true,
		"restorePointDataStoreId eq 'other'":                                    false,
		"extendedInfo eq true":                                                  true,
	} {
		f, e := parseRecoveryPointFilter(filter)
		if e != nil {
			t.Errorf("parse(%q): %v", filter, e)
			continue
		}
		if got := f.match(rp); got != want {
			t.Errorf("%q matches %v, want %v", filter, got, want)
		}
	}
	for _, filter := range []string{
		"startDate eq 2024-05-01", "startDate eq 'yesterday'", "startDate gt '2024-05-01'", "startDate eq '2024-05-01' and",
		"startDate eq '2024-05-01' or endDate eq '2024-05-02'", "startDate eq '2024-05-01' startDate eq '2024-05-02'",
		"startDate eq '2024-05-01' and startDate eq '2024-05-02'", "size eq '1'", "isVisible eq maybe", "isVisible eq 'maybe'",
		"restorePointState eq ''", "endDate eq '2024-05-01' and startDate eq '2024-05-02'", "'", "and",
	} {
		if _, e := parseRecoveryPointFilter(filter); e == nil || e.Code != "InvalidFilter" || e.Target != "$filter" {
			t.Errorf("parse(%q) = %v, want InvalidFilter", filter, e)
		}
	}
}

// FuzzParseRecoveryPointFilter: a filter parses or is refused with
// InvalidFilter, never panics, and parsing is deterministic.
func FuzzParseRecoveryPointFilter(f *testing.F) {
	f.Add("startDate eq '2024-05-01T00:00:00.0000000Z' and endDate eq '2024-05-03T00:00:00.0000000Z'")
	f.Add("isVisible eq true and restorePointState eq 'Completed'")
	f.Add("restorePointDataStoreId eq 'x' and extendedInfo eq 'false'")
	f.Add("startDate eq '' and")
	f.Fuzz(func(t *testing.T, filter string) {
		a, e := parseRecoveryPointFilter(filter)
		if e != nil {
			if e.Code != "InvalidFilter" {
				t.Fatalf("code %s", e.Code)
			}
			return
		}
		b, _ := parseRecoveryPointFilter(filter)
		if (a.start == nil) != (b.start == nil) || a.state != b.state || a.dataStoreID != b.dataStoreID {
			t.Fatal("not deterministic")
		}
	})
}
