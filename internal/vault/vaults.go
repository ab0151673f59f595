package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pgvault/pgvault/internal/store"
)

const opVaultProvision = "vault.provision"

// VaultID returns the ARM ID of a backup vault.
func VaultID(sub, rg, name string) string {
	return ResourceGroupID(sub, rg) + "/providers/Microsoft.DataProtection/backupVaults/" + name
}

// Principal is the caller, recorded in systemData.
type Principal struct {
	ID   string
	Type string // User, Application, ManagedIdentity, Key
}

// ValidateVaultName applies Azure's backup vault name rule: 2 to 50
// characters, letters, digits and hyphens, starting with a letter.
func ValidateVaultName(name string) *Error {
	ok := len(name) >= 2 && len(name) <= 50 && isASCIILetter(name[0])
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = isASCIILetter(c) || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return invalid("InvalidResourceName", "vaultName",
			"The backup vault name '%s' is invalid: it must be 2 to 50 characters long, start with a letter and contain only letters, digits and hyphens.", name)
	}
	return nil
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

var (
	datastoreTypes   = []string{"ArchiveStore", "OperationalStore", "VaultStore"}
	redundancyTypes  = []string{"GeoRedundant", "LocallyRedundant", "ZoneRedundant"}
	enabledDisabled  = []string{"Enabled", "Disabled"}
	softDeleteStates = []string{"Off", "On", "AlwaysOn"}
	immutableStates  = []string{"Disabled", "Unlocked", "Locked"}
	crossSubStates   = []string{"Disabled", "PermanentlyDisabled", "Enabled"}
)

// canonicalEnum returns the allowed value equal to v ignoring case.
func canonicalEnum(v string, allowed []string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(a, v) {
			return a, true
		}
	}
	return "", false
}

func checkEnum(p *string, allowed []string, target string) *Error {
	if *p == "" {
		return nil
	}
	c, ok := canonicalEnum(*p, allowed)
	if !ok {
		return invalid("InvalidPropertyValue", target, "The value '%s' of '%s' is invalid; allowed values are %s.", *p, target, strings.Join(allowed, ", "))
	}
	*p = c
	return nil
}

// validateVaultSettings checks and canonicalises the settable parts of a vault.
func validateVaultSettings(mon *MonitoringSettings, sec *SecuritySettings, feat *FeatureSettings) *Error {
	if mon != nil && mon.AzureMonitorAlertSettings != nil {
		if e := checkEnum(&mon.AzureMonitorAlertSettings.AlertsForAllJobFailures, enabledDisabled, "properties.monitoringSettings.azureMonitorAlertSettings.alertsForAllJobFailures"); e != nil {
			return e
		}
	}
	if sec != nil {
		if sd := sec.SoftDeleteSettings; sd != nil {
			if e := checkEnum(&sd.State, softDeleteStates, "properties.securitySettings.softDeleteSettings.state"); e != nil {
				return e
			}
			if d := sd.RetentionDurationInDays; d != nil && (*d < 14 || *d > 180) {
				return invalid("InvalidPropertyValue", "properties.securitySettings.softDeleteSettings.retentionDurationInDays",
					"The soft delete retention must be between 14 and 180 days, not %g.", *d)
			}
		}
		if im := sec.ImmutabilitySettings; im != nil {
			if e := checkEnum(&im.State, immutableStates, "properties.securitySettings.immutabilitySettings.state"); e != nil {
				return e
			}
		}
	}
	if feat != nil {
		if c := feat.CrossSubscriptionRestoreSettings; c != nil {
			if e := checkEnum(&c.State, crossSubStates, "properties.featureSettings.crossSubscriptionRestoreSettings.state"); e != nil {
				return e
			}
		}
		if c := feat.CrossRegionRestoreSettings; c != nil {
			if e := checkEnum(&c.State, enabledDisabled, "properties.featureSettings.crossRegionRestoreSettings.state"); e != nil {
				return e
			}
		}
	}
	return nil
}

// checkIrreversible refuses to undo settings Azure makes one-way: a Locked
// immutability and an AlwaysOn soft delete.
func checkIrreversible(old, new *SecuritySettings) *Error {
	if old == nil {
		return nil
	}
	if o := old.ImmutabilitySettings; o != nil && o.State == "Locked" {
		if new == nil || new.ImmutabilitySettings == nil || new.ImmutabilitySettings.State != "Locked" {
			return invalid("UserErrorImmutabilityLocked", "properties.securitySettings.immutabilitySettings.state",
				"Immutability of this vault is Locked and cannot be changed.")
		}
	}
	if o := old.SoftDeleteSettings; o != nil && o.State == "AlwaysOn" {
		if new == nil || new.SoftDeleteSettings == nil || new.SoftDeleteSettings.State != "AlwaysOn" {
			return invalid("UserErrorSoftDeleteAlwaysOn", "properties.securitySettings.softDeleteSettings.state",
				"Soft delete of this vault is AlwaysOn and cannot be changed.")
		}
	}
	return nil
}

// applyIdentity sets v's identity from the requested one, keeping a stable
// principal ID across updates.
func (s *Service) applyIdentity(v *Vault, req *Identity, old *Identity) *Error {
	if req == nil {
		v.Identity = old
		return nil
	}
	switch {
	case strings.EqualFold(req.Type, "SystemAssigned"):
		id := &Identity{Type: "SystemAssigned", TenantID: s.tenantID, PrincipalID: newUUID()}
		if old != nil && old.PrincipalID != "" {
			id.PrincipalID, id.TenantID = old.PrincipalID, old.TenantID
		}
		v.Identity = id
	case strings.EqualFold(req.Type, "None") || req.Type == "":
		v.Identity = &Identity{Type: "None"}
	default:
		return invalid("UnsupportedIdentityType", "identity.type",
			"The identity type '%s' is not supported; use SystemAssigned or None.", req.Type)
	}
	return nil
}

// PutVault creates or replaces a backup vault. A new vault is provisioned by
// a long-running operation, returned as op; an update completes at once
// (op is nil).
func (s *Service) PutVault(ctx context.Context, sub, rg, name string, in *Vault, by Principal) (v *Vault, op *store.Operation, err error) {
	if strings.TrimSpace(in.Location) == "" {
		return nil, nil, invalid("LocationRequired", "location", "The location property is required for this definition.")
	}
	if len(in.Properties.StorageSettings) == 0 {
		return nil, nil, invalid("MissingProperty", "properties.storageSettings", "The vault must have at least one storage setting (e.g. datastoreType VaultStore, type LocallyRedundant).")
	}
	for i := range in.Properties.StorageSettings {
		ss := &in.Properties.StorageSettings[i]
		target := fmt.Sprintf("properties.storageSettings[%d]", i)
		if ss.DatastoreType == "" {
			return nil, nil, invalid("MissingProperty", target+".datastoreType", "The storage setting needs a datastoreType.")
		}
		if e := checkEnum(&ss.DatastoreType, datastoreTypes, target+".datastoreType"); e != nil {
			return nil, nil, e
		}
		if ss.Type == "" {
			return nil, nil, invalid("MissingProperty", target+".type", "The storage setting needs a redundancy type.")
		}
		if e := checkEnum(&ss.Type, redundancyTypes, target+".type"); e != nil {
			return nil, nil, e
		}
	}
	p := in.Properties
	if e := validateVaultSettings(p.MonitoringSettings, p.SecuritySettings, p.FeatureSettings); e != nil {
		return nil, nil, e
	}
	group, err := s.ResourceGroup(ctx, sub, rg)
	if err != nil {
		return nil, nil, err
	}
	old, err := s.Vault(ctx, sub, rg, name)
	if err != nil && !isNotFound(err) {
		return nil, nil, err
	}
	if old == nil {
		if e := ValidateVaultName(name); e != nil {
			return nil, nil, e
		}
	}
	now := s.nowUTC()
	v = &Vault{
		ID: VaultID(sub, group.Name, name), Name: name, Type: TypeVault, Location: in.Location, Tags: in.Tags,
		ETag: newETag(),
		Properties: VaultProperties{
			StorageSettings:    p.StorageSettings,
			MonitoringSettings: p.MonitoringSettings,
			SecuritySettings:   p.SecuritySettings,
			FeatureSettings:    p.FeatureSettings,
			ProvisioningState:  StateProvisioning,
			SecureScore:        "Minimum",
			BcdrSecurityLevel:  "NotSupported",
		},
		SystemData: &SystemData{CreatedBy: by.ID, CreatedByType: by.Type, CreatedAt: now, LastModifiedBy: by.ID, LastModifiedByType: by.Type, LastModifiedAt: now},
	}
	var oldIdentity *Identity
	putOpts := store.PutOptions{IfNoneMatch: true}
	if old != nil {
		if !strings.EqualFold(old.Location, in.Location) {
			return nil, nil, newError(KindConflict, "InvalidResourceLocation", "location",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'.",
				old.Name, old.Location, group.Name, in.Location)
		}
		if e := checkIrreversible(old.Properties.SecuritySettings, p.SecuritySettings); e != nil {
			return nil, nil, e
		}
		v.ID, v.Name = old.ID, old.Name
		v.Properties.ProvisioningState = StateSucceeded
		v.SystemData.CreatedBy, v.SystemData.CreatedByType, v.SystemData.CreatedAt = old.SystemData.CreatedBy, old.SystemData.CreatedByType, old.SystemData.CreatedAt
		oldIdentity = old.Identity
		putOpts = store.PutOptions{IfMatch: old.ETag}
	}
	if e := s.applyIdentity(v, in.Identity, oldIdentity); e != nil {
		return nil, nil, e
	}
	if err := s.writeVault(ctx, sub, group.ID, v, putOpts, now); err != nil {
		return nil, nil, err
	}
	if old != nil {
		return v, nil, nil
	}
	op, err = s.startOperation(ctx, sub, opVaultProvision, v.ID, vaultOpInput{VaultID: v.ID})
	if err != nil {
		return nil, nil, err
	}
	return v, op, nil
}

type vaultOpInput struct {
	VaultID string `json:"vaultId"`
}

// runVaultProvision completes a new vault's provisioning.
func (s *Service) runVaultProvision(ctx context.Context, op *store.Operation) (any, error) {
	var in vaultOpInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return nil, fmt.Errorf("while decoding operation input: %w", err)
	}
	for {
		r, err := s.store.ResourceGet(ctx, in.VaultID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, newError(KindNotFound, "ResourceNotFound", "", "The vault '%s' was deleted while it was being provisioned.", in.VaultID)
		}
		if err != nil {
			return nil, storeErr("reading vault", err)
		}
		v, err := decodeVault(r)
		if err != nil {
			return nil, err
		}
		if v.Properties.ProvisioningState != StateProvisioning {
			return nil, nil
		}
		v.Properties.ProvisioningState = StateSucceeded
		v.ETag = newETag()
		err = s.writeVault(ctx, op.Subscription, r.Parent, v, store.PutOptions{IfMatch: r.ETag}, s.nowUTC())
		if e, ok := AsError(err); ok && e.Kind == KindPreconditionFailed {
			continue // changed meanwhile: look again
		}
		return nil, err
	}
}

func (s *Service) writeVault(ctx context.Context, sub, parent string, v *Vault, opts store.PutOptions, now time.Time) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("while encoding vault: %w", err)
	}
	var refs []string
	if v.Identity != nil && v.Identity.PrincipalID != "" {
		refs = []string{principalRef(v.Identity.PrincipalID)} // the identity is a principal
	}
	err = s.store.ResourcePut(ctx, &store.Resource{
		ID: v.ID, Type: TypeVault, Parent: parent, Subscription: sub, Name: v.Name, Refs: refs,
		Body: body, ETag: v.ETag, Created: v.SystemData.CreatedAt, Updated: now,
	}, opts)
	switch {
	case errors.Is(err, store.ErrParentNotFound):
		return newError(KindNotFound, "ResourceGroupNotFound", "resourceGroupName", "Resource group of vault '%s' could not be found.", v.Name)
	case errors.Is(err, store.ErrAlreadyExists), errors.Is(err, store.ErrPreconditionFailed), errors.Is(err, store.ErrNotFound):
		return &Error{Kind: KindPreconditionFailed, Code: "ConcurrentUpdate", Message: "The vault was changed by another request at the same time; retry.", Err: err}
	case err != nil:
		return storeErr("writing vault", err)
	}
	return nil
}

// Vault returns a backup vault.
func (s *Service) Vault(ctx context.Context, sub, rg, name string) (*Vault, error) {
	r, err := s.store.ResourceGet(ctx, VaultID(sub, rg, name))
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := s.ResourceGroup(ctx, sub, rg); gerr != nil {
			return nil, gerr
		}
		return nil, newError(KindNotFound, "ResourceNotFound", "vaultName",
			"The Resource 'Microsoft.DataProtection/backupVaults/%s' under resource group '%s' was not found.", name, rg)
	}
	if err != nil {
		return nil, storeErr("reading vault", err)
	}
	return decodeVault(r)
}

func decodeVault(r *store.Resource) (*Vault, error) {
	var v Vault
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return nil, fmt.Errorf("while decoding vault %q: %w", r.ID, err)
	}
	v.ID, v.Name, v.ETag = r.ID, r.Name, r.ETag
	return &v, nil
}

// ListVaults lists the vaults of a resource group (rg != "") or of a subscription.
func (s *Service) ListVaults(ctx context.Context, sub, rg, after string, pageSize int) (Page[*Vault], error) {
	p := store.ListParams{Type: TypeVault, Subscription: sub, After: after}
	if rg != "" {
		if _, err := s.ResourceGroup(ctx, sub, rg); err != nil {
			return Page[*Vault]{}, err
		}
		p.Parent = ResourceGroupID(sub, rg)
	}
	return listPage(ctx, s.store, p, pageSize, decodeVault)
}

// PatchVault updates a vault's tags, identity and settings.
func (s *Service) PatchVault(ctx context.Context, sub, rg, name string, patch *VaultPatch, by Principal) (*Vault, error) {
	for {
		v, err := s.Vault(ctx, sub, rg, name)
		if err != nil {
			return nil, err
		}
		oldSec := v.Properties.SecuritySettings
		if patch.Tags != nil {
			v.Tags = *patch.Tags
		}
		if pp := patch.Properties; pp != nil {
			if e := validateVaultSettings(pp.MonitoringSettings, pp.SecuritySettings, pp.FeatureSettings); e != nil {
				return nil, e
			}
			if pp.MonitoringSettings != nil {
				v.Properties.MonitoringSettings = pp.MonitoringSettings
			}
			if pp.SecuritySettings != nil {
				merged := mergeSecurity(oldSec, pp.SecuritySettings)
				if e := checkIrreversible(oldSec, merged); e != nil {
					return nil, e
				}
				v.Properties.SecuritySettings = merged
			}
			if pp.FeatureSettings != nil {
				v.Properties.FeatureSettings = pp.FeatureSettings
			}
		}
		if e := s.applyIdentity(v, patch.Identity, v.Identity); e != nil {
			return nil, e
		}
		now := s.nowUTC()
		v.SystemData.LastModifiedBy, v.SystemData.LastModifiedByType, v.SystemData.LastModifiedAt = by.ID, by.Type, now
		oldETag := v.ETag
		v.ETag = newETag()
		err = s.writeVault(ctx, sub, ResourceGroupID(sub, rg), v, store.PutOptions{IfMatch: oldETag}, now)
		if e, ok := AsError(err); ok && e.Kind == KindPreconditionFailed {
			continue
		}
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}

// mergeSecurity applies a PATCH's security settings field by field (JSON
// merge-patch semantics): what the patch leaves out is kept.
func mergeSecurity(old, patch *SecuritySettings) *SecuritySettings {
	out := &SecuritySettings{}
	if old != nil {
		*out = *old
	}
	if p := patch.SoftDeleteSettings; p != nil {
		sd := &SoftDeleteSettings{}
		if out.SoftDeleteSettings != nil {
			*sd = *out.SoftDeleteSettings
		}
		if p.State != "" {
			sd.State = p.State
		}
		if p.RetentionDurationInDays != nil {
			sd.RetentionDurationInDays = p.RetentionDurationInDays
		}
		out.SoftDeleteSettings = sd
	}
	if patch.ImmutabilitySettings != nil {
		out.ImmutabilitySettings = patch.ImmutabilitySettings
	}
	return out
}

// DeleteVault deletes a vault and its policies. It refuses while the vault
// holds backup instances. It returns false if the vault did not exist.
func (s *Service) DeleteVault(ctx context.Context, sub, rg, name string) (bool, error) {
	id := VaultID(sub, rg, name)
	err := s.store.ResourceDelete(ctx, id, store.DeleteOptions{BlockingChildTypes: []string{TypeBackupInstance}})
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, gerr := s.ResourceGroup(ctx, sub, rg); gerr != nil {
			return false, gerr
		}
		return false, nil
	case errors.Is(err, store.ErrHasChildren):
		return false, newError(KindConflict, "UserErrorVaultHasBackupInstances", "vaultName",
			"The backup vault '%s' cannot be deleted because it still protects backup instances. Stop protection and delete each backup instance first.", name)
	case err != nil:
		return false, storeErr("deleting vault", err)
	}
	return true, nil
}

// CheckVaultName answers whether a vault name can be used in a resource group.
func (s *Service) CheckVaultName(ctx context.Context, sub, rg, name, typ string) (*NameAvailability, error) {
	if typ != "" && !strings.EqualFold(typ, TypeVault) {
		return nil, invalid("InvalidPropertyValue", "type", "The type '%s' is not supported; use '%s'.", typ, TypeVault)
	}
	if e := ValidateVaultName(name); e != nil {
		return &NameAvailability{NameAvailable: false, Reason: "Invalid", Message: e.Message}, nil
	}
	if _, err := s.ResourceGroup(ctx, sub, rg); err != nil {
		return nil, err
	}
	_, err := s.store.ResourceGet(ctx, VaultID(sub, rg, name))
	switch {
	case err == nil:
		return &NameAvailability{NameAvailable: false, Reason: "AlreadyExists", Message: fmt.Sprintf("A backup vault named '%s' already exists in resource group '%s'.", name, rg)}, nil
	case errors.Is(err, store.ErrNotFound):
		return &NameAvailability{NameAvailable: true}, nil
	}
	return nil, storeErr("reading vault", err)
}

// IsTerminalState reports whether a provisioning state is terminal.
func IsTerminalState(s string) bool {
	return slices.Contains([]string{StateSucceeded, StateFailed, StateCanceled}, s)
}
