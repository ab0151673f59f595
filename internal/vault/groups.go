package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pgvault/pgvault/internal/store"
)

// ResourceGroupID returns the ARM ID of a resource group.
func ResourceGroupID(sub, rg string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg
}

// PutResourceGroup creates or updates a resource group. created reports
// whether it did not exist before.
func (s *Service) PutResourceGroup(ctx context.Context, sub, name string, in ResourceGroup) (rg *ResourceGroup, created bool, err error) {
	if strings.TrimSpace(in.Location) == "" {
		return nil, false, invalid("LocationRequired", "location", "The location property is required for this definition.")
	}
	id := ResourceGroupID(sub, name)
	old, err := s.ResourceGroup(ctx, sub, name)
	switch {
	case err == nil:
		if !strings.EqualFold(old.Location, in.Location) {
			return nil, false, newError(KindConflict, "InvalidResourceGroupLocation", "location",
				"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", in.Location, old.Location)
		}
		id, name = old.ID, old.Name
	case !isNotFound(err):
		return nil, false, err
	}
	rg = &ResourceGroup{
		ID: id, Name: name, Type: TypeResourceGroup, Location: in.Location, ManagedBy: in.ManagedBy, Tags: in.Tags,
		Properties: ResourceGroupProperties{ProvisioningState: StateSucceeded},
	}
	body, _ := json.Marshal(rg)
	now := s.nowUTC()
	r := &store.Resource{ID: id, Type: TypeResourceGroup, Subscription: sub, Name: name, Body: body, ETag: newETag(), Created: now, Updated: now}
	if err := s.store.ResourcePut(ctx, r, store.PutOptions{}); err != nil {
		return nil, false, storeErr("writing resource group", err)
	}
	return rg, old == nil, nil
}

// ResourceGroup returns a resource group.
func (s *Service) ResourceGroup(ctx context.Context, sub, name string) (*ResourceGroup, error) {
	r, err := s.store.ResourceGet(ctx, ResourceGroupID(sub, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, resourceGroupNotFound(name)
	}
	if err != nil {
		return nil, storeErr("reading resource group", err)
	}
	return decodeResourceGroup(r)
}

func decodeResourceGroup(r *store.Resource) (*ResourceGroup, error) {
	var rg ResourceGroup
	if err := json.Unmarshal(r.Body, &rg); err != nil {
		return nil, fmt.Errorf("while decoding resource group %q: %w", r.ID, err)
	}
	rg.ID, rg.Name = r.ID, r.Name
	return &rg, nil
}

func resourceGroupNotFound(name string) *Error {
	return newError(KindNotFound, "ResourceGroupNotFound", "resourceGroupName", "Resource group '%s' could not be found.", name)
}

// ListResourceGroups lists a subscription's resource groups, a page at a time.
func (s *Service) ListResourceGroups(ctx context.Context, sub, after string, pageSize int) (Page[*ResourceGroup], error) {
	return listPage(ctx, s.store, store.ListParams{Type: TypeResourceGroup, Subscription: sub, After: after}, pageSize, decodeResourceGroup)
}

// groupBlockingTypes are the resources that keep a group from being deleted.
// Role assignments at the group's scope are not among them: they go with it.
var groupBlockingTypes = []string{TypeVault, TypeServer}

// DeleteResourceGroup deletes an empty resource group. Unlike Azure, pgvault
// refuses to delete a group that still holds resources, so that deleting a
// group never deletes backups by accident. It returns false if the group did
// not exist.
func (s *Service) DeleteResourceGroup(ctx context.Context, sub, name string) (bool, error) {
	err := s.store.ResourceDelete(ctx, ResourceGroupID(sub, name), store.DeleteOptions{BlockingChildTypes: groupBlockingTypes})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case errors.Is(err, store.ErrHasChildren):
		return false, newError(KindConflict, "ResourceGroupNotEmpty", "resourceGroupName",
			"The resource group '%s' still contains resources; delete them first (pgvault never deletes backup vaults together with their group).", name)
	case err != nil:
		return false, storeErr("deleting resource group", err)
	}
	return true, nil
}

func isNotFound(err error) bool {
	e, ok := AsError(err)
	return ok && e.Kind == KindNotFound
}
