package auth

import (
	"slices"
	"strings"
)

// RoleDefinition is an Azure role definition: what a principal assigned the
// role may do (Actions minus NotActions on the control plane, DataActions
// minus NotDataActions on the data plane). Patterns use Azure's syntax; see
// ActionMatches.
type RoleDefinition struct {
	// ID is the role's GUID as Azure uses it for built-in roles, in lower
	// case (Owner is 8e3af657-a8ff-443c-a75c-2fe8c4bcb635).
	ID string
	// Name is Azure's roleName, e.g. "Backup Contributor".
	Name string
	// Description is Azure's description of the role.
	Description string

	Actions, NotActions, DataActions, NotDataActions []string
}

// clone returns a deep copy of r: its slices share nothing with r's.
func (r RoleDefinition) clone() RoleDefinition {
	r.Actions = slices.Clone(r.Actions)
	r.NotActions = slices.Clone(r.NotActions)
	r.DataActions = slices.Clone(r.DataActions)
	r.NotDataActions = slices.Clone(r.NotDataActions)
	return r
}

// BuiltinRoles returns the Azure built-in roles pgvault knows, as a fresh
// copy the caller may modify.
func BuiltinRoles() []RoleDefinition {
	out := make([]RoleDefinition, len(builtinRoles))
	for i, r := range builtinRoles {
		out[i] = r.clone()
	}
	return out
}

// RoleByID returns the built-in role with the given ID, as a copy. The ID is
// the role's GUID (compared case-insensitively) or a full ARM role definition
// ID ending in /providers/Microsoft.Authorization/roleDefinitions/{guid},
// either tenant-level ("/providers/Microsoft.Authorization/...") or under a
// scope ("/subscriptions/{id}/providers/Microsoft.Authorization/..."), as
// role assignments carry them.
func RoleByID(id string) (RoleDefinition, bool) {
	r := builtinByID(id)
	if r == nil {
		return RoleDefinition{}, false
	}
	return r.clone(), true
}

// RoleByName returns the built-in role with the given roleName, compared
// case-insensitively ("Backup Reader", "backup reader"), as a copy.
func RoleByName(name string) (RoleDefinition, bool) {
	for i := range builtinRoles {
		if strings.EqualFold(builtinRoles[i].Name, name) {
			return builtinRoles[i].clone(), true
		}
	}
	return RoleDefinition{}, false
}

// builtinByID returns a pointer into builtinRoles, which callers must not
// modify, or nil. See RoleByID for the accepted forms of id.
func builtinByID(id string) *RoleDefinition {
	guid, ok := roleDefinitionGUID(id)
	if !ok {
		return nil
	}
	for i := range builtinRoles {
		if strings.EqualFold(builtinRoles[i].ID, guid) {
			return &builtinRoles[i]
		}
	}
	return nil
}

// roleDefinitionGUID extracts the GUID from a role definition ID: either the
// bare GUID, or an ARM ID whose last four segments are
// providers/Microsoft.Authorization/roleDefinitions/{guid} (case-insensitive)
// and whose other segments, if any, are non-empty.
func roleDefinitionGUID(id string) (string, bool) {
	if !strings.Contains(id, "/") {
		return id, id != ""
	}
	if !strings.HasPrefix(id, "/") {
		return "", false
	}
	segs := strings.Split(id[1:], "/")
	n := len(segs)
	if n < 4 || slices.Contains(segs, "") ||
		!strings.EqualFold(segs[n-4], "providers") ||
		!strings.EqualFold(segs[n-3], "Microsoft.Authorization") ||
		!strings.EqualFold(segs[n-2], "roleDefinitions") {
		return "", false
	}
	return segs[n-1], true
}

// builtinRoles is the table of the built-in roles. It is never modified:
// BuiltinRoles, RoleByID and RoleByName hand out deep copies.
//
// Every entry is Azure's definition verbatim (roleName, name as ID,
// description and the four permission lists, in Azure's order and spelling,
// duplicates included), taken from the JSON role definitions of the
// generated Azure built-in roles reference, MicrosoftDocs/azure-docs
// articles/role-based-access-control/built-in-roles/:
// privileged.md (Owner, Contributor; ms.date 07/01/2026), general.md (Reader;
// 02/23/2026), storage.md (Backup Contributor, Backup Operator, Backup Reader,
// Storage Blob Data Contributor; 07/01/2026) and databases.md (PostgreSQL
// Flexible Server Long Term Retention Backup Role; 07/01/2026). Azure revises
// built-in roles from time to time (mostly by adding actions); compare with
// `az role definition list --name <guid>` when updating.
var builtinRoles = []RoleDefinition{
	{
		ID:          "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
		Name:        "Owner",
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Actions:     []string{"*"},
	},
	{
		ID:          "b24988ac-6180-42a0-ab88-20f7382dd24c",
		Name:        "Contributor",
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
		Actions:     []string{"*"},
		NotActions: []string{
			"Microsoft.Authorization/*/Delete",
			"Microsoft.Authorization/*/Write",
			"Microsoft.Authorization/elevateAccess/Action",
			"Microsoft.Blueprint/blueprintAssignments/write",
			"Microsoft.Blueprint/blueprintAssignments/delete",
			"Microsoft.Compute/galleries/share/action",
			"Microsoft.Purview/consents/write",
			"Microsoft.Purview/consents/delete",
			"Microsoft.Resources/deploymentStacks/manageDenySetting/action",
			"Microsoft.Subscription/cancel/action",
			"Microsoft.Subscription/enable/action",
		},
	},
	{
		ID:          "acdd72a7-3385-48ef-bd42-f606fba81ae7",
		Name:        "Reader",
		Description: "View all resources, but does not allow you to make any changes.",
		Actions:     []string{"*/read"},
	},
	{
		ID:   "5e467623-bb1f-42f4-a55d-6e525e11384b",
		Name: "Backup Contributor",
		// The role definition's description property; the generated page's
		// heading text says "can't create vaults" instead, but the role does
		// grant Microsoft.DataProtection/backupVaults/write and not
		// .../backupVaults/delete.
		Description: "Lets you manage backups, but can't delete vaults and give access to others",
		Actions: []string{
			"Microsoft.Authorization/*/read",
			"Microsoft.Network/virtualNetworks/read",
			"Microsoft.RecoveryServices/locations/*",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/operationResults/*",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/*",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/refreshContainers/action",
			"Microsoft.RecoveryServices/Vaults/backupJobs/*",
			"Microsoft.RecoveryServices/Vaults/backupJobsExport/action",
			"Microsoft.RecoveryServices/Vaults/backupOperationResults/*",
			"Microsoft.RecoveryServices/Vaults/backupPolicies/*",
			"Microsoft.RecoveryServices/Vaults/backupProtectableItems/*",
			"Microsoft.RecoveryServices/Vaults/backupProtectedItems/*",
			"Microsoft.RecoveryServices/Vaults/backupProtectionContainers/*",
			"Microsoft.RecoveryServices/Vaults/backupSecurityPIN/*",
			"Microsoft.RecoveryServices/Vaults/backupUsageSummaries/read",
			"Microsoft.RecoveryServices/Vaults/certificates/*",
			"Microsoft.RecoveryServices/Vaults/extendedInformation/*",
			"Microsoft.RecoveryServices/Vaults/monitoringAlerts/read",
			"Microsoft.RecoveryServices/Vaults/monitoringConfigurations/*",
			"Microsoft.RecoveryServices/Vaults/read",
			"Microsoft.RecoveryServices/Vaults/registeredIdentities/*",
			"Microsoft.RecoveryServices/Vaults/usages/*",
			"Microsoft.Resources/deployments/*",
			"Microsoft.Resources/subscriptions/resourceGroups/read",
			"Microsoft.Storage/storageAccounts/read",
			"Microsoft.RecoveryServices/Vaults/backupstorageconfig/*",
			"Microsoft.RecoveryServices/Vaults/backupconfig/*",
			"Microsoft.RecoveryServices/Vaults/backupValidateOperation/action",
			"Microsoft.RecoveryServices/Vaults/write",
			"Microsoft.RecoveryServices/Vaults/backupOperations/read",
			"Microsoft.RecoveryServices/Vaults/backupEngines/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/backupProtectionIntent/*",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectableContainers/read",
			"Microsoft.RecoveryServices/vaults/operationStatus/read",
			"Microsoft.RecoveryServices/vaults/operationResults/read",
			"Microsoft.RecoveryServices/locations/backupStatus/action",
			"Microsoft.RecoveryServices/locations/backupPreValidateProtection/action",
			"Microsoft.RecoveryServices/locations/backupValidateFeatures/action",
			"Microsoft.RecoveryServices/Vaults/monitoringAlerts/write",
			"Microsoft.RecoveryServices/operations/read",
			"Microsoft.RecoveryServices/locations/operationStatus/read",
			"Microsoft.RecoveryServices/Vaults/backupProtectionIntents/read",
			"Microsoft.Support/*",
			"Microsoft.DataProtection/locations/getBackupStatus/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/write",
			"Microsoft.DataProtection/backupVaults/backupInstances/delete",
			"Microsoft.DataProtection/backupVaults/backupInstances/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/read",
			"Microsoft.DataProtection/backupVaults/deletedBackupInstances/read",
			"Microsoft.DataProtection/backupVaults/deletedBackupInstances/undelete/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/backup/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/validateRestore/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/restore/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/crossRegionRestore/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/validateCrossRegionRestore/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/fetchCrossRegionRestoreJobs/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/fetchCrossRegionRestoreJob/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/fetchSecondaryRecoveryPoints/action",
			"Microsoft.DataProtection/backupVaults/backupPolicies/write",
			"Microsoft.DataProtection/backupVaults/backupPolicies/delete",
			"Microsoft.DataProtection/backupVaults/backupPolicies/read",
			"Microsoft.DataProtection/backupVaults/backupPolicies/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/findRestorableTimeRanges/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/operationResults/read",
			"Microsoft.DataProtection/backupVaults/write",
			"Microsoft.DataProtection/backupVaults/read",
			"Microsoft.DataProtection/backupVaults/operationResults/read",
			"Microsoft.DataProtection/backupVaults/operationStatus/read",
			"Microsoft.DataProtection/locations/checkNameAvailability/action",
			"Microsoft.DataProtection/locations/checkFeatureSupport/action",
			"Microsoft.DataProtection/backupVaults/read",
			"Microsoft.DataProtection/backupVaults/read",
			"Microsoft.DataProtection/locations/operationStatus/read",
			"Microsoft.DataProtection/locations/operationResults/read",
			"Microsoft.DataProtection/backupVaults/validateForBackup/action",
			"Microsoft.DataProtection/operations/read",
			"Microsoft.RecoveryServices/Vaults/backupResourceGuardProxies/delete",
			"Microsoft.RecoveryServices/Vaults/backupResourceGuardProxies/read",
			"Microsoft.RecoveryServices/Vaults/backupResourceGuardProxies/unlockDelete/action",
			"Microsoft.RecoveryServices/Vaults/backupResourceGuardProxies/write",
			"Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/read",
			"Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/write",
			"Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/delete",
			"Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/unlockDelete/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/validateForModifyBackup/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/SuspendBackups/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/resumeProtection/action",
		},
	},
	{
		ID:          "00c29273-979b-4161-815c-10b084fb9324",
		Name:        "Backup Operator",
		Description: "Lets you manage backup services, except removal of backup, vault creation and giving access to others",
		Actions: []string{
			"Microsoft.Authorization/*/read",
			"Microsoft.Network/virtualNetworks/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/backup/action",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/operationsStatus/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/provisionInstantItemRecovery/action",
			"Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/accessToken/action",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/restore/action",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/revokeInstantItemRecovery/action",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/write",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/refreshContainers/action",
			"Microsoft.RecoveryServices/Vaults/backupJobs/*",
			"Microsoft.RecoveryServices/Vaults/backupJobsExport/action",
			"Microsoft.RecoveryServices/Vaults/backupOperationResults/*",
			"Microsoft.RecoveryServices/Vaults/backupPolicies/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupPolicies/read",
			"Microsoft.RecoveryServices/Vaults/backupProtectableItems/*",
			"Microsoft.RecoveryServices/Vaults/backupProtectedItems/read",
			"Microsoft.RecoveryServices/Vaults/backupProtectionContainers/read",
			"Microsoft.RecoveryServices/Vaults/backupUsageSummaries/read",
			"Microsoft.RecoveryServices/Vaults/certificates/write",
			"Microsoft.RecoveryServices/Vaults/extendedInformation/read",
			"Microsoft.RecoveryServices/Vaults/extendedInformation/write",
			"Microsoft.RecoveryServices/Vaults/monitoringAlerts/read",
			"Microsoft.RecoveryServices/Vaults/monitoringConfigurations/*",
			"Microsoft.RecoveryServices/Vaults/read",
			"Microsoft.RecoveryServices/Vaults/registeredIdentities/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/registeredIdentities/read",
			"Microsoft.RecoveryServices/Vaults/registeredIdentities/write",
			"Microsoft.RecoveryServices/Vaults/usages/read",
			"Microsoft.Resources/deployments/*",
			"Microsoft.Resources/subscriptions/resourceGroups/read",
			"Microsoft.Storage/storageAccounts/read",
			"Microsoft.RecoveryServices/Vaults/backupstorageconfig/*",
			"Microsoft.RecoveryServices/Vaults/backupValidateOperation/action",
			"Microsoft.RecoveryServices/Vaults/backupTriggerValidateOperation/action",
			"Microsoft.RecoveryServices/Vaults/backupValidateOperationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupValidateOperationsStatuses/read",
			"Microsoft.RecoveryServices/Vaults/backupOperations/read",
			"Microsoft.RecoveryServices/Vaults/backupPolicies/operations/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/write",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/inquire/action",
			"Microsoft.RecoveryServices/Vaults/backupEngines/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/backupProtectionIntent/write",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/backupProtectionIntent/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectableContainers/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/items/read",
			"Microsoft.RecoveryServices/locations/backupStatus/action",
			"Microsoft.RecoveryServices/locations/backupPreValidateProtection/action",
			"Microsoft.RecoveryServices/locations/backupValidateFeatures/action",
			"Microsoft.RecoveryServices/locations/backupAadProperties/read",
			"Microsoft.RecoveryServices/locations/backupCrrJobs/action",
			"Microsoft.RecoveryServices/locations/backupCrrJob/action",
			"Microsoft.RecoveryServices/locations/backupCrossRegionRestore/action",
			"Microsoft.RecoveryServices/locations/backupCrrOperationResults/read",
			"Microsoft.RecoveryServices/locations/backupCrrOperationsStatus/read",
			"Microsoft.RecoveryServices/Vaults/monitoringAlerts/write",
			"Microsoft.RecoveryServices/operations/read",
			"Microsoft.RecoveryServices/locations/operationStatus/read",
			"Microsoft.RecoveryServices/Vaults/backupProtectionIntents/read",
			"Microsoft.Support/*",
			"Microsoft.DataProtection/backupVaults/backupInstances/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/operationResults/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/write",
			"Microsoft.DataProtection/backupVaults/deletedBackupInstances/read",
			"Microsoft.DataProtection/backupVaults/backupPolicies/read",
			"Microsoft.DataProtection/backupVaults/backupPolicies/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/findRestorableTimeRanges/action",
			"Microsoft.DataProtection/backupVaults/read",
			"Microsoft.DataProtection/backupVaults/operationResults/read",
			"Microsoft.DataProtection/backupVaults/operationStatus/read",
			"Microsoft.DataProtection/backupVaults/read",
			"Microsoft.DataProtection/backupVaults/read",
			"Microsoft.DataProtection/locations/operationStatus/read",
			"Microsoft.DataProtection/locations/operationResults/read",
			"Microsoft.DataProtection/operations/read",
			"Microsoft.DataProtection/backupVaults/validateForBackup/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/backup/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/validateRestore/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/restore/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/crossRegionRestore/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/validateCrossRegionRestore/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/fetchCrossRegionRestoreJobs/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/fetchCrossRegionRestoreJob/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/fetchSecondaryRecoveryPoints/action",
			"Microsoft.DataProtection/locations/checkFeatureSupport/action",
			"Microsoft.RecoveryServices/Vaults/backupResourceGuardProxies/delete",
			"Microsoft.RecoveryServices/Vaults/backupResourceGuardProxies/read",
			"Microsoft.RecoveryServices/Vaults/backupResourceGuardProxies/unlockDelete/action",
			"Microsoft.RecoveryServices/Vaults/backupResourceGuardProxies/write",
			"Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/read",
			"Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/write",
			"Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/delete",
			"Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/unlockDelete/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/validateForModifyBackup/action",
		},
	},
	{
		ID:          "a795c7a0-d4a2-40c1-ae25-d81f01202912",
		Name:        "Backup Reader",
		Description: "Can view backup services, but can't make changes",
		Actions: []string{
			"Microsoft.Authorization/*/read",
			"Microsoft.RecoveryServices/locations/allocatedStamp/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/operationsStatus/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/operationsStatus/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/read",
			"Microsoft.RecoveryServices/Vaults/backupJobs/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupJobs/read",
			"Microsoft.RecoveryServices/Vaults/backupJobsExport/action",
			"Microsoft.RecoveryServices/Vaults/backupOperationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupPolicies/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/backupPolicies/read",
			"Microsoft.RecoveryServices/Vaults/backupProtectedItems/read",
			"Microsoft.RecoveryServices/Vaults/backupProtectionContainers/read",
			"Microsoft.RecoveryServices/Vaults/backupUsageSummaries/read",
			"Microsoft.RecoveryServices/Vaults/extendedInformation/read",
			"Microsoft.RecoveryServices/Vaults/monitoringAlerts/read",
			"Microsoft.RecoveryServices/Vaults/read",
			"Microsoft.RecoveryServices/Vaults/registeredIdentities/operationResults/read",
			"Microsoft.RecoveryServices/Vaults/registeredIdentities/read",
			"Microsoft.RecoveryServices/Vaults/backupstorageconfig/read",
			"Microsoft.RecoveryServices/Vaults/backupconfig/read",
			"Microsoft.RecoveryServices/Vaults/backupOperations/read",
			"Microsoft.RecoveryServices/Vaults/backupPolicies/operations/read",
			"Microsoft.RecoveryServices/Vaults/backupEngines/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/backupProtectionIntent/read",
			"Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/items/read",
			"Microsoft.RecoveryServices/locations/backupStatus/action",
			"Microsoft.RecoveryServices/Vaults/monitoringConfigurations/*",
			"Microsoft.RecoveryServices/Vaults/monitoringAlerts/write",
			"Microsoft.RecoveryServices/operations/read",
			"Microsoft.RecoveryServices/locations/operationStatus/read",
			"Microsoft.RecoveryServices/Vaults/backupProtectionIntents/read",
			"Microsoft.RecoveryServices/Vaults/usages/read",
			"Microsoft.RecoveryServices/locations/backupValidateFeatures/action",
			"Microsoft.RecoveryServices/locations/backupCrrJobs/action",
			"Microsoft.RecoveryServices/locations/backupCrrJob/action",
			"Microsoft.RecoveryServices/locations/backupCrrOperationResults/read",
			"Microsoft.RecoveryServices/locations/backupCrrOperationsStatus/read",
			"Microsoft.DataProtection/locations/getBackupStatus/action",
			"Microsoft.DataProtection/backupVaults/backupInstances/read",
			"Microsoft.DataProtection/backupVaults/deletedBackupInstances/read",
			"Microsoft.DataProtection/backupVaults/backupPolicies/read",
			"Microsoft.DataProtection/backupVaults/backupPolicies/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/operationResults/read",
			"Microsoft.DataProtection/backupVaults/backupInstances/findRestorableTimeRanges/action",
			"Microsoft.DataProtection/backupVaults/read",
			"Microsoft.DataProtection/backupVaults/operationResults/read",
			"Microsoft.DataProtection/backupVaults/operationStatus/read",
			"Microsoft.DataProtection/backupVaults/read",
			"Microsoft.DataProtection/backupVaults/read",
			"Microsoft.DataProtection/locations/operationStatus/read",
			"Microsoft.DataProtection/locations/operationResults/read",
			"Microsoft.DataProtection/operations/read",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/fetchCrossRegionRestoreJobs/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/fetchCrossRegionRestoreJob/action",
			"Microsoft.DataProtection/subscriptions/resourceGroups/providers/locations/fetchSecondaryRecoveryPoints/action",
			"Microsoft.DataProtection/locations/checkFeatureSupport/action",
		},
	},
	{
		ID:          "c088a766-074b-43ba-90d4-1fb21feae531",
		Name:        "PostgreSQL Flexible Server Long Term Retention Backup Role",
		Description: "Role to allow backup vault to access PostgreSQL Flexible Server Resource APIs for Long Term Retention Backup.",
		Actions: []string{
			"Microsoft.DBforPostgreSQL/flexibleServers/ltrBackup/action",
			"Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupAccess/action",
			"Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupOperations/read",
			"Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupPreCheck/action",
			"Microsoft.DBforPostgreSQL/flexibleServers/ltrPreBackup/action",
			"Microsoft.DBforPostgreSQL/flexibleServers/ltrRestoreFinalize/action",
			"Microsoft.DBforPostgreSQL/flexibleServers/ltrRestoreInitialize/action",
			"Microsoft.DBforPostgreSQL/flexibleServers/ltrRestorePreCheck/action",
			"Microsoft.DBforPostgreSQL/flexibleServers/read",
			"Microsoft.DBforPostgreSQL/flexibleServers/startLtrBackup/action",
			"Microsoft.DBforPostgreSQL/locations/azureAsyncOperation/read",
			"Microsoft.DBforPostgreSQL/locations/operationResults/read",
			"Microsoft.Resources/subscriptions/read",
			"Microsoft.Resources/subscriptions/resourceGroups/read",
		},
	},
	{
		ID:          "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
		Name:        "Storage Blob Data Contributor",
		Description: "Allows for read, write and delete access to Azure Storage blob containers and data",
		Actions: []string{
			"Microsoft.Storage/storageAccounts/blobServices/containers/delete",
			"Microsoft.Storage/storageAccounts/blobServices/containers/read",
			"Microsoft.Storage/storageAccounts/blobServices/containers/write",
			"Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
		},
		DataActions: []string{
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
		},
	},
}
