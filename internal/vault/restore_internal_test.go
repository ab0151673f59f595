package vault

import (
	"strings"
	"testing"

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
