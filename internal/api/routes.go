package api

import (
	"net/http"

	"github.com/pgvault/pgvault/internal/api/arm"
)

// Path prefixes of the routes.
const (
	pSub   = "/subscriptions/{subscriptionId}"
	pRG    = pSub + "/resourceGroups/{resourceGroupName}"
	pDP    = "/providers/Microsoft.DataProtection"
	pVault = pRG + pDP + "/backupVaults/{vaultName}"
	pBI    = pVault + "/backupInstances/{backupInstanceName}"
	pPG    = "/providers/Microsoft.DBforPostgreSQL"
	pSrv   = pRG + pPG + "/flexibleServers/{serverName}"
)

// routes lists every operation pgvault serves, with its provider (which
// selects the accepted api-versions) and its Azure RBAC action.
func (s *Server) routes() []*arm.Route {
	const (
		res   = arm.ProviderResources
		dp    = arm.ProviderDataProtection
		authz = arm.ProviderAuthorization
		ident = arm.ProviderIdentity
		pgsql = arm.ProviderPostgreSQL
		biAct = "Microsoft.DataProtection/backupVaults/backupInstances/"
		pRA   = "{*scope}/providers/Microsoft.Authorization/roleAssignments"
		pRD   = "{*scope}/providers/Microsoft.Authorization/roleDefinitions"
		pSP   = "/providers/Pgvault.Identity/servicePrincipals"
	)
	return []*arm.Route{
		// Microsoft.Resources: resource groups.
		{Method: http.MethodGet, Pattern: pSub + "/resourcegroups", Provider: res, Action: "Microsoft.Resources/subscriptions/resourceGroups/read", Handle: s.listResourceGroups},
		{Method: http.MethodPut, Pattern: pRG, Provider: res, Action: "Microsoft.Resources/subscriptions/resourceGroups/write", Handle: s.putResourceGroup},
		{Method: http.MethodGet, Pattern: pRG, Provider: res, Action: "Microsoft.Resources/subscriptions/resourceGroups/read", Handle: s.getResourceGroup},
		{Method: http.MethodHead, Pattern: pRG, Provider: res, Action: "Microsoft.Resources/subscriptions/resourceGroups/read", Handle: s.headResourceGroup},
		{Method: http.MethodDelete, Pattern: pRG, Provider: res, Action: "Microsoft.Resources/subscriptions/resourceGroups/delete", Handle: s.deleteResourceGroup},

		// Microsoft.DataProtection: backup vaults.
		{Method: http.MethodGet, Pattern: pSub + pDP + "/backupVaults", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/read", Handle: s.listVaults},
		{Method: http.MethodGet, Pattern: pRG + pDP + "/backupVaults", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/read", Handle: s.listVaults},
		{Method: http.MethodPut, Pattern: pVault, Provider: dp, Action: "Microsoft.DataProtection/backupVaults/write", Handle: s.putVault},
		{Method: http.MethodGet, Pattern: pVault, Provider: dp, Action: "Microsoft.DataProtection/backupVaults/read", Handle: s.getVault},
		{Method: http.MethodPatch, Pattern: pVault, Provider: dp, Action: "Microsoft.DataProtection/backupVaults/write", Handle: s.patchVault},
		{Method: http.MethodDelete, Pattern: pVault, Provider: dp, Action: "Microsoft.DataProtection/backupVaults/delete", Handle: s.deleteVault},
		{Method: http.MethodPost, Pattern: pRG + pDP + "/locations/{location}/checkNameAvailability", Provider: dp, Action: "Microsoft.DataProtection/locations/checkNameAvailability/action", Handle: s.checkVaultName},
		{Method: http.MethodGet, Pattern: pVault + "/operationResults/{operationId}", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/operationResults/read", Handle: s.vaultOperationResult},

		// Backup policies.
		{Method: http.MethodGet, Pattern: pVault + "/backupPolicies", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/backupPolicies/read", Handle: s.listPolicies},
		{Method: http.MethodPut, Pattern: pVault + "/backupPolicies/{backupPolicyName}", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/backupPolicies/write", Handle: s.putPolicy},
		{Method: http.MethodGet, Pattern: pVault + "/backupPolicies/{backupPolicyName}", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/backupPolicies/read", Handle: s.getPolicy},
		{Method: http.MethodDelete, Pattern: pVault + "/backupPolicies/{backupPolicyName}", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/backupPolicies/delete", Handle: s.deletePolicy},

		// Backup instances.
		{Method: http.MethodPost, Pattern: pVault + "/validateForBackup", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/validateForBackup/action", Handle: s.validateForBackup},
		{Method: http.MethodGet, Pattern: pVault + "/backupInstances", Provider: dp, Action: biAct + "read", Handle: s.listBackupInstances},
		{Method: http.MethodPut, Pattern: pBI, Provider: dp, Action: biAct + "write", Handle: s.putBackupInstance},
		{Method: http.MethodGet, Pattern: pBI, Provider: dp, Action: biAct + "read", Handle: s.getBackupInstance},
		{Method: http.MethodDelete, Pattern: pBI, Provider: dp, Action: biAct + "delete", Handle: s.deleteBackupInstance},
		{Method: http.MethodPost, Pattern: pBI + "/stopProtection", Provider: dp, Action: biAct + "stopProtection/action", Handle: s.protectionAction("stopProtection")},
		{Method: http.MethodPost, Pattern: pBI + "/suspendBackups", Provider: dp, Action: biAct + "suspendBackups/action", Handle: s.protectionAction("suspendBackups")},
		{Method: http.MethodPost, Pattern: pBI + "/resumeProtection", Provider: dp, Action: biAct + "resumeProtection/action", Handle: s.protectionAction("resumeProtection")},
		{Method: http.MethodPost, Pattern: pBI + "/resumeBackups", Provider: dp, Action: biAct + "resumeBackups/action", Handle: s.protectionAction("resumeBackups")},
		{Method: http.MethodPost, Pattern: pBI + "/backup", Provider: dp, Action: biAct + "backup/action", Handle: s.adhocBackup},
		{Method: http.MethodPost, Pattern: pBI + "/validateRestore", Provider: dp, Action: biAct + "validateRestore/action", Handle: s.validateRestore},
		{Method: http.MethodPost, Pattern: pBI + "/restore", Provider: dp, Action: biAct + "restore/action", Handle: s.triggerRestore},
		{Method: http.MethodGet, Pattern: pBI + "/recoveryPoints", Provider: dp, Action: biAct + "recoveryPoints/read", Handle: s.listRecoveryPoints},
		{Method: http.MethodGet, Pattern: pBI + "/recoveryPoints/{recoveryPointId}", Provider: dp, Action: biAct + "recoveryPoints/read", Handle: s.getRecoveryPoint},
		{Method: http.MethodGet, Pattern: pVault + "/backupJobs", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/backupJobs/read", Handle: s.listJobs},
		{Method: http.MethodGet, Pattern: pVault + "/backupJobs/{jobId}", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/backupJobs/read", Handle: s.getJob},
		{Method: http.MethodGet, Pattern: pBI + "/operationResults/{operationId}", Provider: dp, Action: biAct + "operationResults/read", Handle: s.backupInstanceOperationResult, Scope: s.operationScope},

		// Microsoft.DBforPostgreSQL: servers pgvault protects, long-term retention.
		{Method: http.MethodGet, Pattern: pSub + pPG + "/flexibleServers", Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/flexibleServers/read", Handle: s.listServers},
		{Method: http.MethodGet, Pattern: pRG + pPG + "/flexibleServers", Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/flexibleServers/read", Handle: s.listServers},
		{Method: http.MethodPut, Pattern: pSrv, Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/flexibleServers/write", Handle: s.putServer},
		{Method: http.MethodGet, Pattern: pSrv, Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/flexibleServers/read", Handle: s.getServer},
		{Method: http.MethodDelete, Pattern: pSrv, Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/flexibleServers/delete", Handle: s.deleteServer},
		{Method: http.MethodPost, Pattern: pSrv + "/ltrPreBackup", Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/flexibleServers/ltrPreBackup/action", Handle: s.ltrPreBackup},
		{Method: http.MethodPost, Pattern: pSrv + "/startLtrBackup", Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/flexibleServers/startLtrBackup/action", Handle: s.startLtrBackup},
		{Method: http.MethodGet, Pattern: pSrv + "/ltrBackupOperations", Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupOperations/read", Handle: s.listLtrBackupOperations},
		{Method: http.MethodGet, Pattern: pSrv + "/ltrBackupOperations/{backupName}", Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupOperations/read", Handle: s.getLtrBackupOperation},

		// Long-running operations, authorised on the resource they act on.
		{Method: http.MethodGet, Pattern: pSub + pDP + "/locations/{location}/operationStatus/{operationId}", Provider: dp, Action: "Microsoft.DataProtection/locations/operationStatus/read", Handle: s.operationStatus, Scope: s.operationScope},
		{Method: http.MethodGet, Pattern: pRG + pDP + "/operationStatus/{operationId}", Provider: dp, Action: "Microsoft.DataProtection/locations/operationStatus/read", Handle: s.operationStatus, Scope: s.operationScope},
		{Method: http.MethodGet, Pattern: pVault + "/operationStatus/{operationId}", Provider: dp, Action: "Microsoft.DataProtection/backupVaults/operationStatus/read", Handle: s.operationStatus, Scope: s.operationScope},
		{Method: http.MethodGet, Pattern: pSub + pDP + "/locations/{location}/operationResults/{operationId}", Provider: dp, Action: "Microsoft.DataProtection/locations/operationResults/read", Handle: s.operationResult, Scope: s.operationScope},
		{Method: http.MethodGet, Pattern: pSub + pPG + "/locations/{location}/azureAsyncOperation/{operationId}", Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/locations/azureAsyncOperation/read", Handle: s.ltrOperationStatus, Scope: s.ltrOperationScope},
		{Method: http.MethodGet, Pattern: pSub + pPG + "/locations/{location}/operationResults/{operationId}", Provider: pgsql, Action: "Microsoft.DBforPostgreSQL/locations/operationResults/read", Handle: s.ltrOperationResult, Scope: s.ltrOperationScope},

		// Microsoft.Authorization: role assignments at any scope, built-in role definitions.
		{Method: http.MethodGet, Pattern: pRA, Provider: authz, Action: "Microsoft.Authorization/roleAssignments/read", Handle: s.listRoleAssignments},
		{Method: http.MethodPut, Pattern: pRA + "/{roleAssignmentName}", Provider: authz, Action: "Microsoft.Authorization/roleAssignments/write", Handle: s.putRoleAssignment},
		{Method: http.MethodGet, Pattern: pRA + "/{roleAssignmentName}", Provider: authz, Action: "Microsoft.Authorization/roleAssignments/read", Handle: s.getRoleAssignment},
		{Method: http.MethodDelete, Pattern: pRA + "/{roleAssignmentName}", Provider: authz, Action: "Microsoft.Authorization/roleAssignments/delete", Handle: s.deleteRoleAssignment},
		{Method: http.MethodGet, Pattern: pRD, Provider: authz, Action: "Microsoft.Authorization/roleDefinitions/read", Handle: s.listRoleDefinitions},
		{Method: http.MethodGet, Pattern: pRD + "/{roleDefinitionId}", Provider: authz, Action: "Microsoft.Authorization/roleDefinitions/read", Handle: s.getRoleDefinition},

		// Pgvault.Identity: service principals (Microsoft Graph's part in Azure).
		// Their actions sit under Microsoft.Authorization so that only roles
		// that may grant access (Owner) may create them or reset their
		// secrets: Contributor's NotActions exclude Microsoft.Authorization
		// writes, so it cannot take over another principal.
		{Method: http.MethodGet, Pattern: pSP, Provider: ident, Action: "Microsoft.Authorization/servicePrincipals/read", Handle: s.listServicePrincipals},
		{Method: http.MethodPut, Pattern: pSP + "/{servicePrincipalName}", Provider: ident, Action: "Microsoft.Authorization/servicePrincipals/write", Handle: s.putServicePrincipal},
		{Method: http.MethodGet, Pattern: pSP + "/{servicePrincipalName}", Provider: ident, Action: "Microsoft.Authorization/servicePrincipals/read", Handle: s.getServicePrincipal},
		{Method: http.MethodDelete, Pattern: pSP + "/{servicePrincipalName}", Provider: ident, Action: "Microsoft.Authorization/servicePrincipals/delete", Handle: s.deleteServicePrincipal},
	}
}
