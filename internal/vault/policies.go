package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pgvault/pgvault/internal/store"
)

// PolicyID returns the ARM ID of a backup policy.
func PolicyID(sub, rg, vault, name string) string {
	return VaultID(sub, rg, vault) + "/backupPolicies/" + name
}

// ValidatePolicyName applies the policy name rule pgvault enforces: 3 to 150
// characters, letters, digits and hyphens, starting with a letter or digit.
func ValidatePolicyName(name string) *Error {
	ok := len(name) >= 3 && len(name) <= 150
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = isASCIILetter(c) || c >= '0' && c <= '9' || c == '-' && i > 0
	}
	if !ok {
		return invalid("InvalidResourceName", "backupPolicyName",
			"The backup policy name '%s' is invalid: it must be 3 to 150 characters long and contain only letters, digits and hyphens, not starting with a hyphen.", name)
	}
	return nil
}

// PutPolicy creates or replaces a backup policy after validating it as Azure
// does for PostgreSQL flexible servers. A policy that a backup instance uses
// cannot be changed: create a new one and assign it instead.
func (s *Service) PutPolicy(ctx context.Context, sub, rg, vault, name string, in *BackupPolicy, by Principal) (*Policy, error) {
	v, err := s.Vault(ctx, sub, rg, vault)
	if err != nil {
		return nil, err
	}
	old, err := s.Policy(ctx, sub, rg, vault, name)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	if old == nil {
		if e := ValidatePolicyName(name); e != nil {
			return nil, e
		}
	}
	if err := ValidatePolicy(in, s.nowUTC()); err != nil {
		return nil, err
	}
	now := s.nowUTC()
	p := &Policy{
		ID: v.ID + "/backupPolicies/" + name, Name: name, Type: TypePolicy, Properties: *in,
		SystemData: &SystemData{CreatedBy: by.ID, CreatedByType: by.Type, CreatedAt: now, LastModifiedBy: by.ID, LastModifiedByType: by.Type, LastModifiedAt: now},
	}
	opts := store.PutOptions{IfNoneMatch: true}
	var etag string
	if old != nil {
		if inUse, err := s.policyInUse(ctx, old.ID); err != nil {
			return nil, err
		} else if inUse {
			return nil, newError(KindConflict, "UserErrorPolicyInUse", "backupPolicyName",
				"The backup policy '%s' is used by backup instances and cannot be modified; create a new policy and assign it to the instances instead.", name)
		}
		p.ID, p.Name = old.ID, old.Name
		p.SystemData.CreatedBy, p.SystemData.CreatedByType, p.SystemData.CreatedAt = old.SystemData.CreatedBy, old.SystemData.CreatedByType, old.SystemData.CreatedAt
		r, err := s.store.ResourceGet(ctx, old.ID)
		if err != nil {
			return nil, storeErr("reading policy", err)
		}
		etag = r.ETag
		opts = store.PutOptions{IfMatch: etag}
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("while encoding policy: %w", err)
	}
	err = s.store.ResourcePut(ctx, &store.Resource{
		ID: p.ID, Type: TypePolicy, Parent: v.ID, Subscription: sub, Name: p.Name,
		Body: body, ETag: newETag(), Created: p.SystemData.CreatedAt, Updated: now,
	}, opts)
	switch {
	case errors.Is(err, store.ErrParentNotFound):
		return nil, newError(KindNotFound, "ResourceNotFound", "vaultName", "The backup vault '%s' was deleted meanwhile.", vault)
	case errors.Is(err, store.ErrAlreadyExists), errors.Is(err, store.ErrPreconditionFailed), errors.Is(err, store.ErrNotFound):
		return nil, &Error{Kind: KindPreconditionFailed, Code: "ConcurrentUpdate", Message: "The policy was changed by another request at the same time; retry.", Err: err}
	case err != nil:
		return nil, storeErr("writing policy", err)
	}
	return p, nil
}

func (s *Service) policyInUse(ctx context.Context, id string) (bool, error) {
	rs, err := s.store.ResourceList(ctx, store.ListParams{Type: TypeBackupInstance, RefersTo: id, Limit: 1})
	if err != nil {
		return false, storeErr("listing backup instances of a policy", err)
	}
	return len(rs) > 0, nil
}

// Policy returns a backup policy.
func (s *Service) Policy(ctx context.Context, sub, rg, vault, name string) (*Policy, error) {
	r, err := s.store.ResourceGet(ctx, PolicyID(sub, rg, vault, name))
	if errors.Is(err, store.ErrNotFound) {
		if _, verr := s.Vault(ctx, sub, rg, vault); verr != nil {
			return nil, verr
		}
		return nil, newError(KindNotFound, "ResourceNotFound", "backupPolicyName",
			"The backup policy '%s' was not found in backup vault '%s'.", name, vault)
	}
	if err != nil {
		return nil, storeErr("reading policy", err)
	}
	return decodePolicy(r)
}

func decodePolicy(r *store.Resource) (*Policy, error) {
	var p Policy
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, fmt.Errorf("while decoding policy %q: %w", r.ID, err)
	}
	p.ID, p.Name = r.ID, r.Name
	return &p, nil
}

// ListPolicies lists a vault's backup policies.
func (s *Service) ListPolicies(ctx context.Context, sub, rg, vault, after string, pageSize int) (Page[*Policy], error) {
	v, err := s.Vault(ctx, sub, rg, vault)
	if err != nil {
		return Page[*Policy]{}, err
	}
	return listPage(ctx, s.store, store.ListParams{Type: TypePolicy, Parent: v.ID, After: after}, pageSize, decodePolicy)
}

// DeletePolicy deletes a backup policy no backup instance uses. It returns
// false if the policy did not exist.
func (s *Service) DeletePolicy(ctx context.Context, sub, rg, vault, name string) (bool, error) {
	if _, err := s.Vault(ctx, sub, rg, vault); err != nil {
		return false, err
	}
	err := s.store.ResourceDelete(ctx, PolicyID(sub, rg, vault, name), store.DeleteOptions{RefuseIfReferenced: true})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case errors.Is(err, store.ErrReferenced):
		return false, newError(KindConflict, "UserErrorPolicyInUse", "backupPolicyName",
			"The backup policy '%s' is used by backup instances; assign another policy to them or delete them first.", name)
	case err != nil:
		return false, storeErr("deleting policy", err)
	}
	return true, nil
}
