package vault

import "time"

// Resource types and the datasource type pgvault protects.
const (
	TypeResourceGroup  = "Microsoft.Resources/resourceGroups"
	TypeVault          = "Microsoft.DataProtection/backupVaults"
	TypePolicy         = "Microsoft.DataProtection/backupVaults/backupPolicies"
	TypeBackupInstance = "Microsoft.DataProtection/backupVaults/backupInstances"
	DatasourceType     = "Microsoft.DBforPostgreSQL/flexibleServers"
)

// Provisioning states. Only Succeeded, Failed and Canceled are terminal; the
// Azure SDK pollers loop on anything else.
const (
	StateProvisioning = "Provisioning"
	StateUpdating     = "Updating"
	StateSucceeded    = "Succeeded"
	StateFailed       = "Failed"
	StateCanceled     = "Canceled"
)

// SystemData records who created and last modified a resource, and when.
type SystemData struct {
	CreatedBy          string    `json:"createdBy,omitempty"`
	CreatedByType      string    `json:"createdByType,omitempty"`
	CreatedAt          time.Time `json:"createdAt"`
	LastModifiedBy     string    `json:"lastModifiedBy,omitempty"`
	LastModifiedByType string    `json:"lastModifiedByType,omitempty"`
	LastModifiedAt     time.Time `json:"lastModifiedAt"`
}

// ResourceGroup is a Microsoft.Resources resource group.
type ResourceGroup struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Type      string            `json:"type"`
	Location  string            `json:"location"`
	ManagedBy string            `json:"managedBy,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	// Properties holds the provisioning state.
	Properties ResourceGroupProperties `json:"properties"`
}

// ResourceGroupProperties are a resource group's properties.
type ResourceGroupProperties struct {
	ProvisioningState string `json:"provisioningState"`
}

// Vault is a backup vault (BackupVaultResource).
type Vault struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	ETag       string            `json:"eTag,omitempty"`
	Identity   *Identity         `json:"identity,omitempty"`
	SystemData *SystemData       `json:"systemData,omitempty"`
	Properties VaultProperties   `json:"properties"`
}

// Identity is a vault's managed identity (DppIdentityDetails).
type Identity struct {
	// Type is SystemAssigned or None (compared case-insensitively on input).
	Type                   string         `json:"type,omitempty"`
	PrincipalID            string         `json:"principalId,omitempty"`
	TenantID               string         `json:"tenantId,omitempty"`
	UserAssignedIdentities map[string]any `json:"userAssignedIdentities,omitempty"`
}

// VaultProperties are a vault's properties (BackupVault).
type VaultProperties struct {
	StorageSettings                 []StorageSetting    `json:"storageSettings"`
	MonitoringSettings              *MonitoringSettings `json:"monitoringSettings,omitempty"`
	SecuritySettings                *SecuritySettings   `json:"securitySettings,omitempty"`
	FeatureSettings                 *FeatureSettings    `json:"featureSettings,omitempty"`
	ProvisioningState               string              `json:"provisioningState,omitempty"`
	ResourceMoveState               string              `json:"resourceMoveState,omitempty"`
	IsVaultProtectedByResourceGuard bool                `json:"isVaultProtectedByResourceGuard"`
	SecureScore                     string              `json:"secureScore,omitempty"`
	BcdrSecurityLevel               string              `json:"bcdrSecurityLevel,omitempty"`
	ReplicatedRegions               []string            `json:"replicatedRegions,omitempty"`
}

// StorageSetting names a datastore and its redundancy.
type StorageSetting struct {
	DatastoreType string `json:"datastoreType,omitempty"`
	Type          string `json:"type,omitempty"`
}

// MonitoringSettings of a vault.
type MonitoringSettings struct {
	AzureMonitorAlertSettings *AzureMonitorAlertSettings `json:"azureMonitorAlertSettings,omitempty"`
}

// AzureMonitorAlertSettings of a vault.
type AzureMonitorAlertSettings struct {
	AlertsForAllJobFailures string `json:"alertsForAllJobFailures,omitempty"`
}

// SecuritySettings of a vault.
type SecuritySettings struct {
	SoftDeleteSettings   *SoftDeleteSettings   `json:"softDeleteSettings,omitempty"`
	ImmutabilitySettings *ImmutabilitySettings `json:"immutabilitySettings,omitempty"`
}

// SoftDeleteSettings of a vault.
type SoftDeleteSettings struct {
	State                   string   `json:"state,omitempty"`
	RetentionDurationInDays *float64 `json:"retentionDurationInDays,omitempty"`
}

// ImmutabilitySettings of a vault.
type ImmutabilitySettings struct {
	State string `json:"state,omitempty"`
}

// FeatureSettings of a vault.
type FeatureSettings struct {
	CrossSubscriptionRestoreSettings *StateSetting `json:"crossSubscriptionRestoreSettings,omitempty"`
	CrossRegionRestoreSettings       *StateSetting `json:"crossRegionRestoreSettings,omitempty"`
}

// StateSetting is a setting with a single state value.
type StateSetting struct {
	State string `json:"state,omitempty"`
}

// VaultPatch is the body of a vault PATCH (PatchResourceRequestInput).
type VaultPatch struct {
	Identity   *Identity             `json:"identity,omitempty"`
	Tags       *map[string]string    `json:"tags,omitempty"`
	Properties *VaultPatchProperties `json:"properties,omitempty"`
}

// VaultPatchProperties are the settings a vault PATCH may change (PatchBackupVaultInput).
type VaultPatchProperties struct {
	MonitoringSettings *MonitoringSettings `json:"monitoringSettings,omitempty"`
	SecuritySettings   *SecuritySettings   `json:"securitySettings,omitempty"`
	FeatureSettings    *FeatureSettings    `json:"featureSettings,omitempty"`
}

// Policy is a backup policy (BaseBackupPolicyResource).
type Policy struct {
	ID         string       `json:"id"`
	Name       string       `json:"name"`
	Type       string       `json:"type"`
	SystemData *SystemData  `json:"systemData,omitempty"`
	Properties BackupPolicy `json:"properties"`
}

// BackupPolicy is a policy's properties (objectType BackupPolicy).
type BackupPolicy struct {
	ObjectType      string       `json:"objectType"`
	DatasourceTypes []string     `json:"datasourceTypes"`
	PolicyRules     []PolicyRule `json:"policyRules"`
}

// Policy rule and trigger object types.
const (
	ObjectBackupRule      = "AzureBackupRule"
	ObjectRetentionRule   = "AzureRetentionRule"
	ObjectScheduleTrigger = "ScheduleBasedTriggerContext"
	ObjectAdhocTrigger    = "AdhocBasedTriggerContext"
)

// PolicyRule is an AzureBackupRule or an AzureRetentionRule; only the fields
// of its ObjectType are set.
type PolicyRule struct {
	Name       string `json:"name"`
	ObjectType string `json:"objectType"`

	// AzureBackupRule fields.
	BackupParameters *BackupParameters `json:"backupParameters,omitempty"`
	DataStore        *DataStoreInfo    `json:"dataStore,omitempty"`
	Trigger          *Trigger          `json:"trigger,omitempty"`

	// AzureRetentionRule fields.
	IsDefault  *bool             `json:"isDefault,omitempty"`
	Lifecycles []SourceLifeCycle `json:"lifecycles,omitempty"`
}

// BackupParameters (AzureBackupParams).
type BackupParameters struct {
	ObjectType string `json:"objectType"`
	BackupType string `json:"backupType"`
}

// DataStoreInfo (DataStoreInfoBase).
type DataStoreInfo struct {
	DataStoreType string `json:"dataStoreType"`
	ObjectType    string `json:"objectType"`
}

// Trigger is a ScheduleBasedTriggerContext (the only trigger pgvault accepts
// for PostgreSQL flexible servers).
type Trigger struct {
	ObjectType      string             `json:"objectType"`
	Schedule        *BackupSchedule    `json:"schedule,omitempty"`
	TaggingCriteria []TaggingCriterion `json:"taggingCriteria,omitempty"`
}

// BackupSchedule lists ISO 8601 repeating intervals in a time zone.
type BackupSchedule struct {
	RepeatingTimeIntervals []string `json:"repeatingTimeIntervals"`
	TimeZone               string   `json:"timeZone,omitempty"`
}

// TaggingCriterion links matching backups to a retention tag.
type TaggingCriterion struct {
	IsDefault       *bool            `json:"isDefault"`
	TaggingPriority *int64           `json:"taggingPriority"`
	TagInfo         *RetentionTag    `json:"tagInfo"`
	Criteria        []BackupCriteria `json:"criteria,omitempty"`
}

// RetentionTag names a tag; ID and ETag are read-only.
type RetentionTag struct {
	TagName string `json:"tagName"`
	ID      string `json:"id,omitempty"`
	ETag    string `json:"eTag,omitempty"`
}

// BackupCriteria is a ScheduleBasedBackupCriteria.
type BackupCriteria struct {
	ObjectType       string   `json:"objectType"`
	AbsoluteCriteria []string `json:"absoluteCriteria,omitempty"`
	DaysOfTheWeek    []string `json:"daysOfTheWeek,omitempty"`
	DaysOfMonth      []Day    `json:"daysOfMonth,omitempty"`
	WeeksOfTheMonth  []string `json:"weeksOfTheMonth,omitempty"`
	MonthsOfYear     []string `json:"monthsOfYear,omitempty"`
	ScheduleTimes    []string `json:"scheduleTimes,omitempty"`
}

// Day is a day of a month.
type Day struct {
	Date   *int32 `json:"date,omitempty"`
	IsLast *bool  `json:"isLast,omitempty"`
}

// SourceLifeCycle says how long backups stay in a data store.
type SourceLifeCycle struct {
	DeleteAfter                 *DeleteOption  `json:"deleteAfter"`
	SourceDataStore             *DataStoreInfo `json:"sourceDataStore"`
	TargetDataStoreCopySettings []CopySetting  `json:"targetDataStoreCopySettings,omitempty"`
}

// DeleteOption is an AbsoluteDeleteOption.
type DeleteOption struct {
	ObjectType string `json:"objectType"`
	Duration   string `json:"duration"`
}

// CopySetting is a TargetCopySetting; pgvault accepts none for PostgreSQL.
type CopySetting struct {
	CopyAfter map[string]any `json:"copyAfter,omitempty"`
	DataStore *DataStoreInfo `json:"dataStore,omitempty"`
}

// NameAvailability answers checkNameAvailability.
type NameAvailability struct {
	NameAvailable bool   `json:"nameAvailable"`
	Reason        string `json:"reason,omitempty"`
	Message       string `json:"message,omitempty"`
}
