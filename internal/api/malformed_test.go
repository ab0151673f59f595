package api_test

import (
	"net/http"
	"strings"
	"testing"
)

const (
	subPath   = "/subscriptions/" + testSub
	rgPath    = subPath + "/resourceGroups/rg"
	vaultPath = rgPath + "/providers/Microsoft.DataProtection/backupVaults/vault"
	polPath   = vaultPath + "/backupPolicies/pol"
	dpVersion = "?api-version=2024-04-01"
)

const goodVault = `{"location":"westus","identity":{"type":"SystemAssigned"},"properties":{"storageSettings":[{"datastoreType":"VaultStore","type":"LocallyRedundant"}]}}`

// policyWith returns the test policy with one substitution applied.
func policyWith(t *testing.T, old, new string) string {
	t.Helper()
	p := string(readTestdata(t, "pgflex-policy.json"))
	if !strings.Contains(p, old) {
		t.Fatalf("test policy has no %q", old)
	}
	return strings.Replace(p, old, new, 1)
}

// TestMalformedRequests sends requests that break one rule each: every one
// gets a 4xx ARM error with a specific code and target, and changes nothing.
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createGroup("rg")
	if r := e.do(http.MethodPut, vaultPath+dpVersion, goodVault); r.Status != http.StatusCreated {
		t.Fatalf("creating vault: %d %s", r.Status, r.Body)
	}
	waitFor(t, "vault provisioning", func() bool {
		r := e.do(http.MethodGet, vaultPath+dpVersion, nil)
		return strings.Contains(string(r.Body), `"provisioningState":"Succeeded"`)
	})
	if r := e.do(http.MethodPut, polPath+dpVersion, readTestdata(t, "pgflex-policy.json")); r.Status != http.StatusOK {
		t.Fatalf("creating policy: %d %s", r.Status, r.Body)
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		code, target             string
	}{
		{"missing api-version", "GET", vaultPath, "", 400, "MissingApiVersionParameter", "api-version"},
		{"unsupported api-version", "GET", vaultPath + "?api-version=2019-01-01", "", 400, "NoRegisteredProviderFound", "api-version"},
		{"malformed api-version", "GET", vaultPath + "?api-version=latest", "", 400, "InvalidApiVersionParameter", "api-version"},
		{"dataprotection version on a resource group", "GET", rgPath + dpVersion, "", 400, "NoRegisteredProviderFound", "api-version"},
		{"subscription not a UUID", "GET", "/subscriptions/not-a-uuid/resourceGroups/rg" + "?api-version=2021-04-01", "", 400, "InvalidSubscriptionId", "subscriptionId"},
		{"resource group name with invalid character", "PUT", subPath + "/resourceGroups/bad!name?api-version=2021-04-01", `{"location":"westus"}`, 400, "InvalidResourceGroup", "resourceGroupName"},
		{"resource group name too long", "PUT", subPath + "/resourceGroups/" + strings.Repeat("a", 91) + "?api-version=2021-04-01", `{"location":"westus"}`, 400, "InvalidResourceGroup", "resourceGroupName"},
		{"resource group name ending in a period", "PUT", subPath + "/resourceGroups/rg.?api-version=2021-04-01", `{"location":"westus"}`, 400, "InvalidResourceGroup", "resourceGroupName"},
		{"resource group without location", "PUT", subPath + "/resourceGroups/rg2?api-version=2021-04-01", `{}`, 400, "LocationRequired", "location"},
		{"vault in a missing group", "PUT", subPath + "/resourceGroups/nogroup/providers/Microsoft.DataProtection/backupVaults/v1" + dpVersion, goodVault, 404, "ResourceGroupNotFound", "resourceGroupName"},
		{"vault name invalid", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/1vault" + dpVersion, goodVault, 400, "InvalidResourceName", "vaultName"},
		{"invalid JSON", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion, `{"location":`, 400, "InvalidRequestContent", ""},
		{"trailing data after JSON", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion, goodVault + `{}`, 400, "InvalidRequestContent", ""},
		{"empty body", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion, ``, 400, "InvalidRequestContent", ""},
		{"location of the wrong type", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion, `{"location":42,"properties":{"storageSettings":[]}}`, 400, "InvalidRequestContent", "location"},
		{"storageSettings of the wrong type", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion, `{"location":"westus","properties":{"storageSettings":"x"}}`, 400, "InvalidRequestContent", "properties.storageSettings"},
		{"vault without properties", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion, `{"location":"westus"}`, 400, "MissingProperty", "properties"},
		{"vault without storage settings", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion, `{"location":"westus","properties":{"storageSettings":[]}}`, 400, "MissingProperty", "properties.storageSettings"},
		{"vault with unknown datastore", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion, `{"location":"westus","properties":{"storageSettings":[{"datastoreType":"TapeStore","type":"LocallyRedundant"}]}}`, 400, "InvalidPropertyValue", "properties.storageSettings[0].datastoreType"},
		{"vault with a user-assigned identity", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion, `{"location":"westus","identity":{"type":"UserAssigned"},"properties":{"storageSettings":[{"datastoreType":"VaultStore","type":"LocallyRedundant"}]}}`, 400, "UnsupportedIdentityType", "identity.type"},
		{"vault moved to another location", "PUT", vaultPath + dpVersion, strings.Replace(goodVault, "westus", "eastus", 1), 409, "InvalidResourceLocation", "location"},
		{"non-JSON content type", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/v2" + dpVersion + "&ct=text", goodVault, 415, "UnsupportedMediaType", ""},
		{"unknown route", "GET", rgPath + "/providers/Microsoft.DataProtection/backupWidgets/x" + dpVersion, "", 404, "InvalidResourceType", ""},
		{"method not allowed", "POST", vaultPath + dpVersion, "{}", 405, "MethodNotAllowed", ""},
		{"invalid skip token", "GET", rgPath + "/providers/Microsoft.DataProtection/backupVaults" + dpVersion + "&$skipToken=%25%25", "", 400, "InvalidSkipToken", "$skipToken"},
		{"policy without properties", "PUT", polPath + "2" + dpVersion, `{}`, 400, "MissingProperty", "properties"},
		{"policy without objectType", "PUT", polPath + "2" + dpVersion, policyWith(t, `"objectType": "BackupPolicy",`, ``), 400, "MissingObjectType", "properties.objectType"},
		{"policy with wrong objectType", "PUT", polPath + "2" + dpVersion, policyWith(t, `"objectType": "BackupPolicy"`, `"objectType": "BackupPolicyX"`), 400, "InvalidObjectType", "properties.objectType"},
		{"rule with unknown objectType", "PUT", polPath + "2" + dpVersion, policyWith(t, `"objectType": "AzureBackupRule"`, `"objectType": "AzureSnapshotRule"`), 400, "InvalidObjectType", "properties.policyRules[0].objectType"},
		{"trigger with unknown objectType", "PUT", polPath + "2" + dpVersion, policyWith(t, `"objectType": "ScheduleBasedTriggerContext"`, `"objectType": "CronTrigger"`), 400, "InvalidObjectType", "properties.policyRules[0].trigger.objectType"},
		{"policyRules of the wrong type", "PUT", polPath + "2" + dpVersion, `{"properties":{"objectType":"BackupPolicy","datasourceTypes":["Microsoft.DBforPostgreSQL/flexibleServers"],"policyRules":{}}}`, 400, "InvalidRequestContent", "properties.policyRules"},
		{"taggingPriority of the wrong type", "PUT", polPath + "2" + dpVersion, policyWith(t, `"taggingPriority": 15`, `"taggingPriority": "high"`), 400, "InvalidRequestContent", "properties.policyRules[0].trigger.taggingCriteria.taggingPriority"},
		{"unsupported datasource type", "PUT", polPath + "2" + dpVersion, policyWith(t, `"Microsoft.DBforPostgreSQL/flexibleServers"`, `"Microsoft.Compute/disks"`), 400, "UserErrorDatasourceTypeNotSupported", "properties.datasourceTypes"},
		{"broken repeating interval", "PUT", polPath + "2" + dpVersion, policyWith(t, `R/2021-08-15T06:30:00+00:00/P1W`, `R/2021-08-15/P1W`), 400, "UserErrorInvalidRepeatingTimeInterval", "properties.policyRules[0].trigger.schedule.repeatingTimeIntervals[0]"},
		{"interval without period", "PUT", polPath + "2" + dpVersion, policyWith(t, `R/2021-08-15T06:30:00+00:00/P1W`, `R/2021-08-15T06:30:00+00:00`), 400, "UserErrorInvalidRepeatingTimeInterval", "properties.policyRules[0].trigger.schedule.repeatingTimeIntervals[0]"},
		{"hourly backups", "PUT", polPath + "2" + dpVersion, policyWith(t, `R/2021-08-15T06:30:00+00:00/P1W`, `R/2021-08-15T06:30:00+00:00/PT4H`), 400, "UserErrorUnsupportedBackupFrequency", "properties.policyRules[0].trigger.schedule.repeatingTimeIntervals[0]"},
		{"unknown time zone", "PUT", polPath + "2" + dpVersion, policyWith(t, `"timeZone": "UTC"`, `"timeZone": "Mars/Olympus_Mons"`), 400, "UserErrorInvalidTimeZone", "properties.policyRules[0].trigger.schedule.timeZone"},
		{"no Default tag", "PUT", polPath + "2" + dpVersion, policyWith(t, `{"isDefault": true, "taggingPriority": 99, "tagInfo": {"tagName": "Default"}}`, `{"isDefault": false, "taggingPriority": 99, "tagInfo": {"tagName": "Weekly"}, "criteria": [{"absoluteCriteria": ["FirstOfWeek"], "objectType": "ScheduleBasedBackupCriteria"}]}`), 400, "UserErrorMissingDefaultTaggingCriteria", "properties.policyRules[0].trigger.taggingCriteria"},
		{"tag without its retention rule", "PUT", polPath + "2" + dpVersion, policyWith(t, `"name": "Monthly"`, `"name": "Yearly"`), 400, "UserErrorTagWithoutRetentionRule", "properties.policyRules[0].trigger.taggingCriteria[0].tagInfo.tagName"},
		{"retention over P10Y", "PUT", polPath + "2" + dpVersion, policyWith(t, `"P6M"`, `"P11Y"`), 400, "UserErrorRetentionTooLong", "properties.policyRules[1].lifecycles[0].deleteAfter.duration"},
		{"retention in days over P10Y", "PUT", polPath + "2" + dpVersion, policyWith(t, `"P6M"`, `"P3660D"`), 400, "UserErrorRetentionTooLong", "properties.policyRules[1].lifecycles[0].deleteAfter.duration"},
		{"retention not a duration", "PUT", polPath + "2" + dpVersion, policyWith(t, `"P6M"`, `"6 months"`), 400, "UserErrorInvalidRetentionDuration", "properties.policyRules[1].lifecycles[0].deleteAfter.duration"},
		{"wrong criterion for the tag", "PUT", polPath + "2" + dpVersion, policyWith(t, `["FirstOfMonth"]`, `["FirstOfYear"]`), 400, "InvalidTaggingCriteria", "properties.policyRules[0].trigger.taggingCriteria[0].criteria[0].absoluteCriteria[0]"},
		{"unknown absolute criterion", "PUT", polPath + "2" + dpVersion, policyWith(t, `["FirstOfMonth"]`, `["EveryFullMoon"]`), 400, "InvalidPropertyValue", "properties.policyRules[0].trigger.taggingCriteria[0].criteria[0].absoluteCriteria[0]"},
		{"operational store", "PUT", polPath + "2" + dpVersion, policyWith(t, `"dataStore": {"dataStoreType": "VaultStore"`, `"dataStore": {"dataStoreType": "OperationalStore"`), 400, "UserErrorUnsupportedDataStore", "properties.policyRules[0].dataStore.dataStoreType"},
		{"incremental backups", "PUT", polPath + "2" + dpVersion, policyWith(t, `"backupType": "Full"`, `"backupType": "Incremental"`), 400, "UserErrorUnsupportedBackupType", "properties.policyRules[0].backupParameters.backupType"},
		{"policy in a missing vault", "PUT", rgPath + "/providers/Microsoft.DataProtection/backupVaults/novault/backupPolicies/p" + dpVersion, string(readTestdata(t, "pgflex-policy.json")), 404, "ResourceNotFound", "vaultName"},
		{"vault delete in a missing group", "DELETE", subPath + "/resourceGroups/nogroup/providers/Microsoft.DataProtection/backupVaults/v1" + dpVersion, "", 404, "ResourceGroupNotFound", "resourceGroupName"},
		{"unknown operation", "GET", subPath + "/providers/Microsoft.DataProtection/locations/westus/operationStatus/nope" + dpVersion, "", 404, "OperationNotFound", "operationId"},
		{"resource group delete while it holds a vault", "DELETE", rgPath + "?api-version=2021-04-01", "", 409, "ResourceGroupNotEmpty", "resourceGroupName"},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	before := e.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" || c.method == "PUT" {
				body = c.body
			}
			r := e.doCT(c.method, c.path, body, strings.Contains(c.path, "&ct=text"))
			code, target := r.armError(t)
			if r.Status != c.status || code != c.code || target != c.target {
				t.Errorf("got %d %s target %q, want %d %s target %q\nbody: %s", r.Status, code, target, c.status, c.code, c.target, r.Body)
			}
		})
	}
	if after := e.snapshot(); after != before {
		t.Errorf("malformed requests changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
