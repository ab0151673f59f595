// Package storetest is the conformance suite of store.Store. Every driver
// runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// The suite uses times with microsecond precision, so drivers on databases
// that keep no finer times pass too.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ResourcePutGet", testResourcePutGet},
		{"ResourceReplace", testResourceReplace},
		{"ResourceCaseInsensitive", testResourceCaseInsensitive},
		{"ResourceIfNoneMatch", testResourceIfNoneMatch},
		{"ResourceIfMatch", testResourceIfMatch},
		{"ResourceParentNotFound", testResourceParentNotFound},
		{"ResourceDelete", testResourceDelete},
		{"ResourceDeleteCascade", testResourceDeleteCascade},
		{"ResourceDeleteBlockingChildren", testResourceDeleteBlockingChildren},
		{"ResourceDeleteReferenced", testResourceDeleteReferenced},
		{"ResourceList", testResourceList},
		{"ResourceListPaging", testResourceListPaging},
		{"ResourceRefs", testResourceRefs},
		{"OperationCreateGet", testOperationCreateGet},
		{"OperationFinish", testOperationFinish},
		{"OperationListInProgress", testOperationListInProgress},
		{"Meta", testMeta},
		{"ConcurrentMetaInit", testConcurrentMetaInit},
		{"ConcurrentOperationFinish", testConcurrentOperationFinish},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentIfMatch", testConcurrentIfMatch},
		{"JobCreateGet", testJobCreateGet},
		{"JobList", testJobList},
		{"JobListPaging", testJobListPaging},
		{"JobIdempotencyKey", testJobIdempotencyKey},
		{"JobExclusiveKey", testJobExclusiveKey},
		{"JobClaim", testJobClaim},
		{"JobHeartbeat", testJobHeartbeat},
		{"JobFinish", testJobFinish},
		{"JobLeaseExpiry", testJobLeaseExpiry},
		{"JobTakeover", testJobTakeover},
		{"JobCancel", testJobCancel},
		{"ConcurrentJobExclusiveKey", testConcurrentJobExclusiveKey},
		{"ConcurrentJobIdempotencyKey", testConcurrentJobIdempotencyKey},
		{"ConcurrentJobClaim", testConcurrentJobClaim},
		{"ConcurrentJobCancelClaim", testConcurrentJobCancelClaim},
		{"ConcurrentJobLifecycle", testConcurrentJobLifecycle},
		{"ContextCanceled", testContextCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// Fixtures: a tree of subscription / resource group / vault / {policy, instance}
// and servers that instances refer to.
const (
	sub1 = "0b2bd1f4-1111-4a4b-9d9c-6f3e1b9a0001"
	sub2 = "0b2bd1f4-2222-4a4b-9d9c-6f3e1b9a0002"

	typeGroup    = "Microsoft.Resources/resourceGroups"
	typeVault    = "Microsoft.DataProtection/backupVaults"
	typePolicy   = "Microsoft.DataProtection/backupVaults/backupPolicies"
	typeInstance = "Microsoft.DataProtection/backupVaults/backupInstances"
	typeServer   = "Microsoft.DBforPostgreSQL/flexibleServers"
)

// t0 is not UTC and has microseconds, to check that times round-trip as instants.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.FixedZone("CET", 3600))

func groupID(sub, name string) string { return "/subscriptions/" + sub + "/resourceGroups/" + name }
func vaultID(group, name string) string {
	return group + "/providers/Microsoft.DataProtection/backupVaults/" + name
}
func policyID(vault, name string) string   { return vault + "/backupPolicies/" + name }
func instanceID(vault, name string) string { return vault + "/backupInstances/" + name }
func serverID(group, name string) string {
	return group + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + name
}

// res returns a resource with the given fields and the others derived.
func res(typ, id, parent string, refs ...string) *store.Resource {
	sub := strings.Split(id, "/")[2]
	name := id[strings.LastIndex(id, "/")+1:]
	return &store.Resource{
		ID:           id,
		Type:         typ,
		Parent:       parent,
		Subscription: sub,
		Name:         name,
		Refs:         refs,
		Body:         []byte(`{"name":"` + name + `"}`),
		ETag:         "etag-1",
		Created:      t0,
		Updated:      t0.Add(time.Second),
	}
}

// tree puts, in sub1: group rg with vault v, which has policy p and instance i
// referring to p and to server srv in group rg2. It returns their IDs.
type ids struct{ rg, rg2, v, p, i, srv string }

func tree(t *testing.T, s store.Store) ids {
	t.Helper()
	var x ids
	x.rg = groupID(sub1, "rg")
	x.rg2 = groupID(sub1, "rg2")
	x.v = vaultID(x.rg, "v")
	x.p = policyID(x.v, "p")
	x.srv = serverID(x.rg2, "srv")
	x.i = instanceID(x.v, "i")
	put(t, s, res(typeGroup, x.rg, ""))
	put(t, s, res(typeGroup, x.rg2, ""))
	put(t, s, res(typeVault, x.v, x.rg))
	put(t, s, res(typePolicy, x.p, x.v))
	put(t, s, res(typeServer, x.srv, x.rg2))
	put(t, s, res(typeInstance, x.i, x.v, x.p, x.srv))
	return x
}

func put(t *testing.T, s store.Store, r *store.Resource) {
	t.Helper()
	if err := s.ResourcePut(context.Background(), r, store.PutOptions{}); err != nil {
		t.Fatalf("ResourcePut(%s): %v", r.ID, err)
	}
}

func get(t *testing.T, s store.Store, id string) *store.Resource {
	t.Helper()
	r, err := s.ResourceGet(context.Background(), id)
	if err != nil {
		t.Fatalf("ResourceGet(%s): %v", id, err)
	}
	return r
}

// exists reports whether id can be got, failing on errors other than ErrNotFound.
func exists(t *testing.T, s store.Store, id string) bool {
	t.Helper()
	_, err := s.ResourceGet(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf("ResourceGet(%s): %v", id, err)
	}
	return true
}

func list(t *testing.T, s store.Store, p store.ListParams) []string {
	t.Helper()
	rs, err := s.ResourceList(context.Background(), p)
	if err != nil {
		t.Fatalf("ResourceList(%+v): %v", p, err)
	}
	ids := []string{}
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// diffResource describes how got differs from want ("" if it does not).
func diffResource(got, want *store.Resource) string {
	var d []string
	check := func(field string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
		}
	}
	check("ID", got.ID == want.ID, got.ID, want.ID)
	check("Type", got.Type == want.Type, got.Type, want.Type)
	check("Parent", got.Parent == want.Parent, got.Parent, want.Parent)
	check("Subscription", got.Subscription == want.Subscription, got.Subscription, want.Subscription)
	check("Name", got.Name == want.Name, got.Name, want.Name)
	check("Refs", slices.Equal(got.Refs, want.Refs), got.Refs, want.Refs)
	check("Body", bytes.Equal(got.Body, want.Body), string(got.Body), string(want.Body))
	check("ETag", got.ETag == want.ETag, got.ETag, want.ETag)
	check("Created", got.Created.Equal(want.Created), got.Created, want.Created)
	check("Updated", got.Updated.Equal(want.Updated), got.Updated, want.Updated)
	return strings.Join(d, "; ")
}

func wantResource(t *testing.T, s store.Store, id string, want *store.Resource) {
	t.Helper()
	if d := diffResource(get(t, s, id), want); d != "" {
		t.Fatalf("ResourceGet(%s): %s", id, d)
	}
}

func testResourcePutGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.ResourceGet(ctx, groupID(sub1, "rg"))
	wantErr(t, "ResourceGet on an empty store", err, store.ErrNotFound)

	x := tree(t, s)
	for _, r := range []*store.Resource{
		res(typeGroup, x.rg, ""),
		res(typeVault, x.v, x.rg),
		res(typeInstance, x.i, x.v, x.p, x.srv),
	} {
		wantResource(t, s, r.ID, r)
	}

	// Changing what ResourceGet returned does not change the store.
	r := get(t, s, x.v)
	r.Body[0] = 'X'
	r.ETag = "changed"
	wantResource(t, s, x.v, res(typeVault, x.v, x.rg))

	_, err = s.ResourceGet(ctx, x.v+"/backupPolicies/missing")
	wantErr(t, "ResourceGet of a missing resource", err, store.ErrNotFound)
}

func testResourceReplace(t *testing.T, s store.Store) {
	x := tree(t, s)
	r := res(typeInstance, x.i, x.v, x.srv) // drops the reference to the policy
	r.Body = []byte(`{"properties":{"changed":true}}`)
	r.ETag = "etag-2"
	r.Created = t0.Add(time.Hour)
	r.Updated = t0.Add(2 * time.Hour)
	put(t, s, r)
	wantResource(t, s, x.i, r)
	wantIDs(t, "instances referring to the dropped policy",
		list(t, s, store.ListParams{Type: typeInstance, RefersTo: x.p}))
	wantIDs(t, "instances referring to the server",
		list(t, s, store.ListParams{Type: typeInstance, RefersTo: x.srv}), x.i)
	wantIDs(t, "instances after replace", list(t, s, store.ListParams{Type: typeInstance}), x.i)
}

func testResourceCaseInsensitive(t *testing.T, s store.Store) {
	ctx := context.Background()
	rg := groupID("0B2BD1F4-AAAA-4A4B-9D9C-6F3E1B9A00FF", "Rg-Ünïcode")
	put(t, s, res(typeGroup, rg, ""))
	for _, id := range []string{rg, strings.ToLower(rg), strings.ToUpper(rg)} {
		if got := get(t, s, id).ID; got != rg {
			t.Fatalf("ResourceGet(%s).ID = %s, want %s", id, got, rg)
		}
	}

	// A replace under another case keeps the first case of the ID and takes the rest.
	r := res(typeGroup, strings.ToUpper(rg), "")
	r.ETag = "etag-2"
	put(t, s, r)
	r.ID = rg
	wantResource(t, s, strings.ToLower(rg), r)
	wantIDs(t, "groups", list(t, s, store.ListParams{Type: typeGroup}), rg)

	// Parent, Type, Subscription and RefersTo match case-insensitively too.
	v := vaultID(rg, "Vault")
	put(t, s, res(typeVault, v, strings.ToLower(rg)))
	srv := serverID(rg, "Srv")
	put(t, s, res(typeServer, srv, rg))
	i := instanceID(v, "I")
	put(t, s, res(typeInstance, i, strings.ToUpper(v), strings.ToUpper(srv)))
	mixedSub := strings.ToLower(r.Subscription[:9]) + r.Subscription[9:] // neither the stored case nor lower case
	wantIDs(t, "vaults by upper-case type and mixed-case subscription",
		list(t, s, store.ListParams{Type: strings.ToUpper(typeVault), Subscription: mixedSub}), v)
	wantIDs(t, "vaults by lower-case parent",
		list(t, s, store.ListParams{Type: typeVault, Parent: strings.ToLower(rg)}), v)
	wantIDs(t, "instances referring to the lower-case server",
		list(t, s, store.ListParams{Type: typeInstance, RefersTo: strings.ToLower(srv)}), i)
	err := s.ResourceDelete(ctx, strings.ToLower(srv), store.DeleteOptions{RefuseIfReferenced: true})
	wantErr(t, "ResourceDelete of a server referred to in another case", err, store.ErrReferenced)

	if err := s.ResourceDelete(ctx, strings.ToUpper(rg), store.DeleteOptions{}); err != nil {
		t.Fatalf("ResourceDelete: %v", err)
	}
	for _, id := range []string{rg, v, srv, i} {
		if exists(t, s, id) {
			t.Fatalf("%s exists after its group was deleted", id)
		}
	}
}

func testResourceIfNoneMatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	rg := groupID(sub1, "rg")
	first := res(typeGroup, rg, "")
	if err := s.ResourcePut(ctx, first, store.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatalf("ResourcePut with IfNoneMatch of a new resource: %v", err)
	}
	for _, id := range []string{rg, strings.ToUpper(rg)} {
		r := res(typeGroup, id, "")
		r.ETag = "etag-2"
		err := s.ResourcePut(ctx, r, store.PutOptions{IfNoneMatch: true})
		wantErr(t, "ResourcePut with IfNoneMatch of an existing resource", err, store.ErrAlreadyExists)
	}
	wantResource(t, s, rg, first)
}

func testResourceIfMatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	rg := groupID(sub1, "rg")
	r := res(typeGroup, rg, "")
	err := s.ResourcePut(ctx, r, store.PutOptions{IfMatch: "etag-1"})
	wantErr(t, "ResourcePut with IfMatch of a missing resource", err, store.ErrNotFound)
	if exists(t, s, rg) {
		t.Fatal("a failed ResourcePut created the resource")
	}

	put(t, s, r)
	r2 := res(typeGroup, rg, "")
	r2.ETag = "etag-2"
	err = s.ResourcePut(ctx, r2, store.PutOptions{IfMatch: "etag-0"})
	wantErr(t, "ResourcePut with a stale IfMatch", err, store.ErrPreconditionFailed)
	wantResource(t, s, rg, r)

	if err := s.ResourcePut(ctx, r2, store.PutOptions{IfMatch: "etag-1"}); err != nil {
		t.Fatalf("ResourcePut with a matching IfMatch: %v", err)
	}
	wantResource(t, s, rg, r2)
}

func testResourceParentNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	rg := groupID(sub1, "rg")
	v := vaultID(rg, "v")
	err := s.ResourcePut(ctx, res(typeVault, v, rg), store.PutOptions{})
	wantErr(t, "ResourcePut with a missing parent", err, store.ErrParentNotFound)
	if exists(t, s, v) {
		t.Fatal("ResourcePut with a missing parent created the resource")
	}
	put(t, s, res(typeGroup, rg, ""))
	put(t, s, res(typeVault, v, rg))

	// Replacing with a missing parent fails too and changes nothing.
	r := res(typeVault, v, groupID(sub1, "other"))
	r.ETag = "etag-2"
	err = s.ResourcePut(ctx, r, store.PutOptions{})
	wantErr(t, "ResourcePut replacing with a missing parent", err, store.ErrParentNotFound)
	wantResource(t, s, v, res(typeVault, v, rg))
}

func testResourceDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	rg := groupID(sub1, "rg")
	err := s.ResourceDelete(ctx, rg, store.DeleteOptions{})
	wantErr(t, "ResourceDelete of a missing resource", err, store.ErrNotFound)

	put(t, s, res(typeGroup, rg, ""))
	err = s.ResourceDelete(ctx, rg, store.DeleteOptions{IfMatch: "etag-0"})
	wantErr(t, "ResourceDelete with a stale IfMatch", err, store.ErrPreconditionFailed)
	if !exists(t, s, rg) {
		t.Fatal("a failed ResourceDelete deleted the resource")
	}
	if err := s.ResourceDelete(ctx, rg, store.DeleteOptions{IfMatch: "etag-1"}); err != nil {
		t.Fatalf("ResourceDelete with a matching IfMatch: %v", err)
	}
	if exists(t, s, rg) {
		t.Fatal("resource exists after ResourceDelete")
	}
	err = s.ResourceDelete(ctx, rg, store.DeleteOptions{})
	wantErr(t, "second ResourceDelete", err, store.ErrNotFound)

	// The ID can be used again.
	put(t, s, res(typeGroup, rg, ""))
	wantResource(t, s, rg, res(typeGroup, rg, ""))
}

func testResourceDeleteCascade(t *testing.T, s store.Store) {
	x := tree(t, s)
	// A second tree that must survive.
	other := groupID(sub1, "other")
	ov := vaultID(other, "v")
	op := policyID(ov, "p")
	put(t, s, res(typeGroup, other, ""))
	put(t, s, res(typeVault, ov, other))
	put(t, s, res(typePolicy, op, ov))

	if err := s.ResourceDelete(context.Background(), x.rg, store.DeleteOptions{}); err != nil {
		t.Fatalf("ResourceDelete: %v", err)
	}
	for _, id := range []string{x.rg, x.v, x.p, x.i} {
		if exists(t, s, id) {
			t.Errorf("%s exists after its ancestor was deleted", id)
		}
	}
	for _, id := range []string{other, ov, op, x.rg2, x.srv} {
		if !exists(t, s, id) {
			t.Errorf("%s was deleted with an unrelated resource", id)
		}
	}
	wantIDs(t, "vaults", list(t, s, store.ListParams{Type: typeVault}), ov)
	wantIDs(t, "policies", list(t, s, store.ListParams{Type: typePolicy}), op)
	wantIDs(t, "instances", list(t, s, store.ListParams{Type: typeInstance}))
	// The deleted instance no longer refers to the server.
	wantIDs(t, "instances referring to the server", list(t, s, store.ListParams{Type: typeInstance, RefersTo: x.srv}))
}

func testResourceDeleteBlockingChildren(t *testing.T, s store.Store) {
	ctx := context.Background()
	x := tree(t, s)
	for _, types := range [][]string{
		{typePolicy},
		{typeServer, strings.ToUpper(typeInstance)},
		{store.AnyType},
	} {
		err := s.ResourceDelete(ctx, x.v, store.DeleteOptions{BlockingChildTypes: types})
		wantErr(t, fmt.Sprintf("ResourceDelete blocked by %q", types), err, store.ErrHasChildren)
	}
	for _, id := range []string{x.v, x.p, x.i} {
		if !exists(t, s, id) {
			t.Fatalf("%s was deleted by a refused delete", id)
		}
	}

	// Only direct children block: the group's vault has policies, but the
	// group has no policy children.
	err := s.ResourceDelete(ctx, x.rg, store.DeleteOptions{BlockingChildTypes: []string{typePolicy, typeInstance}})
	if err != nil {
		t.Fatalf("ResourceDelete blocked by grandchildren: %v", err)
	}
	for _, id := range []string{x.rg, x.v, x.p, x.i} {
		if exists(t, s, id) {
			t.Fatalf("%s exists after delete", id)
		}
	}

	// Children of other types are deleted with the resource; no children, no block.
	err = s.ResourceDelete(ctx, x.rg2, store.DeleteOptions{BlockingChildTypes: []string{typeVault}})
	if err != nil {
		t.Fatalf("ResourceDelete with non-blocking children: %v", err)
	}
	if exists(t, s, x.srv) {
		t.Fatal("server exists after its group was deleted")
	}
	put(t, s, res(typeGroup, x.rg, ""))
	if err := s.ResourceDelete(ctx, x.rg, store.DeleteOptions{BlockingChildTypes: []string{store.AnyType}}); err != nil {
		t.Fatalf("ResourceDelete of a childless resource with AnyType: %v", err)
	}
}

func testResourceDeleteReferenced(t *testing.T, s store.Store) {
	ctx := context.Background()
	x := tree(t, s) // instance i refers to policy p and server srv
	refuse := store.DeleteOptions{RefuseIfReferenced: true}
	for _, id := range []string{
		x.p,   // referenced itself
		x.srv, // referenced itself
		x.rg2, // a descendant (srv) is referenced
	} {
		err := s.ResourceDelete(ctx, id, refuse)
		wantErr(t, "ResourceDelete of referenced "+id, err, store.ErrReferenced)
	}
	for _, id := range []string{x.p, x.srv, x.rg2} {
		if !exists(t, s, id) {
			t.Fatalf("%s was deleted by a refused delete", id)
		}
	}

	// The vault's policy is referenced only by the vault's own instance, which
	// goes in the same cascade: no refusal. Referring out (to srv) does not block either.
	if err := s.ResourceDelete(ctx, x.v, refuse); err != nil {
		t.Fatalf("ResourceDelete with references from inside the cascade: %v", err)
	}
	// The deleted instance's references are gone.
	if err := s.ResourceDelete(ctx, x.rg2, refuse); err != nil {
		t.Fatalf("ResourceDelete after the referrer was deleted: %v", err)
	}

	// Without RefuseIfReferenced, references do not block.
	srv := serverID(x.rg, "srv")
	put(t, s, res(typeServer, srv, x.rg))
	v2 := vaultID(x.rg, "v2")
	put(t, s, res(typeVault, v2, x.rg))
	put(t, s, res(typeInstance, instanceID(v2, "i"), v2, srv))
	if err := s.ResourceDelete(ctx, srv, store.DeleteOptions{}); err != nil {
		t.Fatalf("ResourceDelete of a referenced resource without RefuseIfReferenced: %v", err)
	}

	// A resource referring to itself does not block its own delete.
	self := groupID(sub1, "self")
	put(t, s, res(typeGroup, self, "", self))
	if err := s.ResourceDelete(ctx, self, refuse); err != nil {
		t.Fatalf("ResourceDelete of a self-referring resource: %v", err)
	}
}

func testResourceList(t *testing.T, s store.Store) {
	ctx := context.Background()
	// IDs whose order differs between raw and lower-cased comparison.
	rgA := groupID(sub1, "a-group")
	rgB := groupID(sub1, "B-group")
	rgC := groupID(sub2, "c-group")
	put(t, s, res(typeGroup, rgA, ""))
	put(t, s, res(typeGroup, rgB, ""))
	put(t, s, res(typeGroup, rgC, ""))
	vaA1, vaA2 := vaultID(rgA, "Zeta"), vaultID(rgA, "alpha")
	vaB := vaultID(rgB, "beta")
	vaC := vaultID(rgC, "gamma")
	for _, v := range []struct{ id, parent string }{{vaA1, rgA}, {vaA2, rgA}, {vaB, rgB}, {vaC, rgC}} {
		put(t, s, res(typeVault, v.id, v.parent))
	}
	srv := serverID(rgC, "srv")
	put(t, s, res(typeServer, srv, rgC))
	pA := policyID(vaA1, "p")
	put(t, s, res(typePolicy, pA, vaA1))
	iA := instanceID(vaA1, "i")
	iB := instanceID(vaB, "i")
	put(t, s, res(typeInstance, iA, vaA1, pA, srv))
	put(t, s, res(typeInstance, iB, vaB, srv))

	wantIDs(t, "groups", list(t, s, store.ListParams{Type: typeGroup}), rgA, rgB, rgC)
	wantIDs(t, "vaults", list(t, s, store.ListParams{Type: typeVault}), vaA2, vaA1, vaB, vaC)
	wantIDs(t, "vaults in sub1", list(t, s, store.ListParams{Type: typeVault, Subscription: sub1}), vaA2, vaA1, vaB)
	wantIDs(t, "vaults in sub2", list(t, s, store.ListParams{Type: typeVault, Subscription: sub2}), vaC)
	wantIDs(t, "vaults in group A", list(t, s, store.ListParams{Type: typeVault, Parent: rgA}), vaA2, vaA1)
	wantIDs(t, "vaults in group A and sub2", list(t, s, store.ListParams{Type: typeVault, Parent: rgA, Subscription: sub2}))
	wantIDs(t, "policies in group A (not a parent)", list(t, s, store.ListParams{Type: typePolicy, Parent: rgA}))
	wantIDs(t, "servers in group A", list(t, s, store.ListParams{Type: typeServer, Parent: rgA}))
	wantIDs(t, "instances referring to srv", list(t, s, store.ListParams{Type: typeInstance, RefersTo: srv}), iA, iB)
	wantIDs(t, "instances referring to pA", list(t, s, store.ListParams{Type: typeInstance, RefersTo: pA}), iA)
	wantIDs(t, "instances in vault B referring to srv",
		list(t, s, store.ListParams{Type: typeInstance, RefersTo: srv, Parent: vaB}), iB)
	wantIDs(t, "instances in sub2 referring to srv",
		list(t, s, store.ListParams{Type: typeInstance, RefersTo: srv, Subscription: sub2}))
	wantIDs(t, "vaults referring to srv", list(t, s, store.ListParams{Type: typeVault, RefersTo: srv}))
	wantIDs(t, "unknown type", list(t, s, store.ListParams{Type: "Microsoft.Nothing/nothing"}))
	wantIDs(t, "vaults after the first, limit 2",
		list(t, s, store.ListParams{Type: typeVault, After: vaA2, Limit: 2}), vaA1, vaB)

	// Listed resources are complete.
	rs, err := s.ResourceList(ctx, store.ListParams{Type: typeInstance, Parent: vaA1})
	if err != nil || len(rs) != 1 {
		t.Fatalf("ResourceList: %d resources, %v", len(rs), err)
	}
	if d := diffResource(rs[0], res(typeInstance, iA, vaA1, pA, srv)); d != "" {
		t.Fatalf("listed resource: %s", d)
	}

	if _, err := s.ResourceList(ctx, store.ListParams{}); err == nil {
		t.Fatal("ResourceList without a type: no error")
	}
}

func testResourceListPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	rg := groupID(sub1, "rg")
	v := vaultID(rg, "v")
	put(t, s, res(typeGroup, rg, ""))
	put(t, s, res(typeVault, v, rg))
	const n = 150
	var want []string
	for i := range n {
		// Mixed case, inserted out of order.
		name := fmt.Sprintf("Policy-%03d", (i*37)%n)
		if i%2 == 0 {
			name = strings.ToLower(name)
		}
		id := policyID(v, name)
		want = append(want, id)
		put(t, s, res(typePolicy, id, v))
	}
	slices.SortFunc(want, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })

	wantIDs(t, "all policies", list(t, s, store.ListParams{Type: typePolicy, Parent: v}), want...)

	for _, limit := range []int{1, 7, n - 1, n, n + 1} {
		var got []string
		after := ""
		for page := 0; ; page++ {
			if page > n {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			ids := list(t, s, store.ListParams{Type: typePolicy, Parent: v, After: after, Limit: limit})
			if len(ids) > limit {
				t.Fatalf("limit %d: got %d results", limit, len(ids))
			}
			got = append(got, ids...)
			if len(ids) < limit {
				break
			}
			after = strings.ToUpper(ids[len(ids)-1]) // After matches case-insensitively
		}
		wantIDs(t, fmt.Sprintf("pages of %d", limit), got, want...)
	}

	rs, err := s.ResourceList(ctx, store.ListParams{Type: typePolicy, After: want[n-1]})
	if err != nil || len(rs) != 0 {
		t.Fatalf("ResourceList after the last: %d resources, %v", len(rs), err)
	}
}

func testResourceRefs(t *testing.T, s store.Store) {
	ctx := context.Background()
	x := tree(t, s)
	// Refs come back as written: order, case, and refs to resources that do not exist.
	i2 := instanceID(x.v, "i2")
	refs := []string{strings.ToUpper(x.srv), x.p, groupID(sub2, "missing")}
	r := res(typeInstance, i2, x.v, refs...)
	put(t, s, r)
	wantResource(t, s, i2, r)

	// No refs.
	r = res(typeInstance, i2, x.v)
	put(t, s, r)
	if got := get(t, s, i2).Refs; len(got) != 0 {
		t.Fatalf("Refs after replacing with none: %q", got)
	}
	wantIDs(t, "instances referring to srv", list(t, s, store.ListParams{Type: typeInstance, RefersTo: x.srv}), x.i)

	// Duplicate refs (in different case) are harmless.
	r = res(typeInstance, i2, x.v, x.srv, strings.ToLower(x.srv))
	put(t, s, r)
	wantResource(t, s, i2, r)
	wantIDs(t, "instances referring to srv", list(t, s, store.ListParams{Type: typeInstance, RefersTo: x.srv}), x.i, i2)
	err := s.ResourceDelete(ctx, x.srv, store.DeleteOptions{RefuseIfReferenced: true})
	wantErr(t, "ResourceDelete of referenced server", err, store.ErrReferenced)
}

func op(id string, start time.Time) *store.Operation {
	return &store.Operation{
		ID:           id,
		Subscription: sub1,
		Kind:         "vault.provision",
		ResourceID:   vaultID(groupID(sub1, "rg"), "v"),
		Status:       store.OperationInProgress,
		Input:        []byte(`{"input":"` + id + `"}`),
		StartTime:    start,
	}
}

func diffOperation(got, want *store.Operation) string {
	var d []string
	check := func(field string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
		}
	}
	check("ID", got.ID == want.ID, got.ID, want.ID)
	check("Subscription", got.Subscription == want.Subscription, got.Subscription, want.Subscription)
	check("Kind", got.Kind == want.Kind, got.Kind, want.Kind)
	check("ResourceID", got.ResourceID == want.ResourceID, got.ResourceID, want.ResourceID)
	check("Status", got.Status == want.Status, got.Status, want.Status)
	check("Input", bytes.Equal(got.Input, want.Input), string(got.Input), string(want.Input))
	check("Result", bytes.Equal(got.Result, want.Result), string(got.Result), string(want.Result))
	check("Error", bytes.Equal(got.Error, want.Error), string(got.Error), string(want.Error))
	check("StartTime", got.StartTime.Equal(want.StartTime), got.StartTime, want.StartTime)
	check("EndTime", got.EndTime.Equal(want.EndTime), got.EndTime, want.EndTime)
	return strings.Join(d, "; ")
}

func wantOperation(t *testing.T, s store.Store, want *store.Operation) {
	t.Helper()
	got, err := s.OperationGet(context.Background(), want.ID)
	if err != nil {
		t.Fatalf("OperationGet(%s): %v", want.ID, err)
	}
	if d := diffOperation(got, want); d != "" {
		t.Fatalf("OperationGet(%s): %s", want.ID, d)
	}
	if want.EndTime.IsZero() && !got.EndTime.IsZero() {
		t.Fatalf("OperationGet(%s): EndTime %v, want zero", want.ID, got.EndTime)
	}
}

func testOperationCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.OperationGet(ctx, "op-1")
	wantErr(t, "OperationGet on an empty store", err, store.ErrNotFound)

	o := op("op-AbC_1", t0)
	if err := s.OperationCreate(ctx, o); err != nil {
		t.Fatalf("OperationCreate: %v", err)
	}
	wantOperation(t, s, o)

	dup := op("op-AbC_1", t0.Add(time.Hour))
	err = s.OperationCreate(ctx, dup)
	wantErr(t, "OperationCreate with a taken ID", err, store.ErrAlreadyExists)
	wantOperation(t, s, o)

	// IDs match exactly.
	_, err = s.OperationGet(ctx, "op-abc_1")
	wantErr(t, "OperationGet in another case", err, store.ErrNotFound)
	lower := op("op-abc_1", t0)
	if err := s.OperationCreate(ctx, lower); err != nil {
		t.Fatalf("OperationCreate of an ID differing in case: %v", err)
	}
	wantOperation(t, s, lower)
	wantOperation(t, s, o)
}

func testOperationFinish(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.OperationFinish(ctx, &store.Operation{ID: "missing", Status: store.OperationSucceeded, EndTime: t0})
	wantErr(t, "OperationFinish of a missing operation", err, store.ErrNotFound)

	for _, status := range []string{store.OperationSucceeded, store.OperationFailed, store.OperationCanceled} {
		o := op("op-"+status, t0)
		if err := s.OperationCreate(ctx, o); err != nil {
			t.Fatalf("OperationCreate: %v", err)
		}
		done := *o
		done.Status = status
		done.EndTime = t0.Add(time.Minute)
		if status == store.OperationFailed {
			done.Error = []byte(`{"code":"Boom"}`)
		} else {
			done.Result = []byte(`{"ok":true}`)
		}
		if err := s.OperationFinish(ctx, &done); err != nil {
			t.Fatalf("OperationFinish(%s): %v", status, err)
		}
		wantOperation(t, s, &done)

		again := done
		again.Status = store.OperationSucceeded
		again.Result = []byte(`{"again":true}`)
		again.Error = nil
		again.EndTime = t0.Add(time.Hour)
		err := s.OperationFinish(ctx, &again)
		wantErr(t, "second OperationFinish", err, store.ErrPreconditionFailed)
		wantOperation(t, s, &done)
	}
}

func testOperationListInProgress(t *testing.T, s store.Store) {
	ctx := context.Background()
	ops, err := s.OperationListInProgress(ctx)
	if err != nil || len(ops) != 0 {
		t.Fatalf("OperationListInProgress on an empty store: %d, %v", len(ops), err)
	}
	// Created out of order, IDs not in start order; c and e are finished.
	for _, o := range []*store.Operation{
		op("b", t0.Add(2*time.Second)),
		op("a", t0.Add(4*time.Second)),
		op("d", t0.Add(1*time.Second).In(time.FixedZone("East", 5*3600))),
		op("c", t0.Add(3*time.Second)),
		op("e", t0.Add(-time.Hour)),
	} {
		if err := s.OperationCreate(ctx, o); err != nil {
			t.Fatalf("OperationCreate: %v", err)
		}
	}
	for _, id := range []string{"c", "e"} {
		err := s.OperationFinish(ctx, &store.Operation{ID: id, Status: store.OperationSucceeded, EndTime: t0.Add(time.Hour)})
		if err != nil {
			t.Fatalf("OperationFinish: %v", err)
		}
	}
	ops, err = s.OperationListInProgress(ctx)
	if err != nil {
		t.Fatalf("OperationListInProgress: %v", err)
	}
	var got []string
	for _, o := range ops {
		got = append(got, o.ID)
	}
	wantIDs(t, "operations in progress", got, "d", "b", "a")
	if d := diffOperation(ops[1], op("b", t0.Add(2*time.Second))); d != "" {
		t.Fatalf("listed operation: %s", d)
	}
}

func testMeta(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.MetaGet(ctx, "installation-id")
	wantErr(t, "MetaGet of an unset key", err, store.ErrNotFound)

	for _, step := range []struct{ key, value, want string }{
		{"installation-id", "first", "first"},
		{"installation-id", "second", "first"},
		{"Installation-ID", "other", "other"}, // keys are exact
		{"empty", "", ""},
		{"empty", "not empty", ""},
	} {
		got, err := s.MetaInit(ctx, step.key, step.value)
		if err != nil || got != step.want {
			t.Fatalf("MetaInit(%q, %q) = %q, %v; want %q", step.key, step.value, got, err, step.want)
		}
		got, err = s.MetaGet(ctx, step.key)
		if err != nil || got != step.want {
			t.Fatalf("MetaGet(%q) = %q, %v; want %q", step.key, got, err, step.want)
		}
	}
}

// race runs fn(i) for i in [0, n) in n goroutines released at once and
// returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one of errs is nil and all others are loser,
// and returns the winner's index.
func oneWinner(t *testing.T, errs []error, loser error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("both %d and %d won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, loser):
			t.Fatalf("goroutine %d: got error %v, want %v", i, err, loser)
		}
	}
	if winner < 0 {
		t.Fatal("nobody won")
	}
	return winner
}

const racers = 16

func testConcurrentMetaInit(t *testing.T, s store.Store) {
	values := make([]string, racers)
	errs := race(racers, func(i int) error {
		var err error
		values[i], err = s.MetaInit(context.Background(), "installation-id", fmt.Sprint("value-", i))
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("MetaInit %d: %v", i, err)
		}
		if values[i] != values[0] {
			t.Fatalf("MetaInit disagrees: %q and %q", values[0], values[i])
		}
	}
	if !strings.HasPrefix(values[0], "value-") {
		t.Fatalf("MetaInit returned %q", values[0])
	}
	got, err := s.MetaGet(context.Background(), "installation-id")
	if err != nil || got != values[0] {
		t.Fatalf("MetaGet = %q, %v; want %q", got, err, values[0])
	}
}

func testConcurrentOperationFinish(t *testing.T, s store.Store) {
	ctx := context.Background()
	o := op("op-1", t0)
	if err := s.OperationCreate(ctx, o); err != nil {
		t.Fatalf("OperationCreate: %v", err)
	}
	finishes := make([]*store.Operation, racers)
	for i := range finishes {
		f := *o
		f.Status = store.OperationSucceeded
		f.Result = fmt.Appendf(nil, `{"winner":%d}`, i)
		f.EndTime = t0.Add(time.Duration(i+1) * time.Second)
		finishes[i] = &f
	}
	errs := race(racers, func(i int) error { return s.OperationFinish(ctx, finishes[i]) })
	w := oneWinner(t, errs, store.ErrPreconditionFailed)
	wantOperation(t, s, finishes[w])
}

func testConcurrentCreate(t *testing.T, s store.Store) {
	rg := groupID(sub1, "rg")
	put(t, s, res(typeGroup, rg, ""))
	v := vaultID(rg, "v")
	puts := make([]*store.Resource, racers)
	for i := range puts {
		id := v
		if i%2 == 1 {
			id = strings.ToUpper(v)
		}
		puts[i] = res(typeVault, id, rg)
		puts[i].ETag = fmt.Sprint("etag-", i)
	}
	errs := race(racers, func(i int) error {
		return s.ResourcePut(context.Background(), puts[i], store.PutOptions{IfNoneMatch: true})
	})
	w := oneWinner(t, errs, store.ErrAlreadyExists)
	wantResource(t, s, v, puts[w])
}

func testConcurrentIfMatch(t *testing.T, s store.Store) {
	rg := groupID(sub1, "rg")
	put(t, s, res(typeGroup, rg, ""))
	puts := make([]*store.Resource, racers)
	for i := range puts {
		puts[i] = res(typeGroup, rg, "")
		puts[i].ETag = fmt.Sprint("etag-new-", i)
	}
	errs := race(racers, func(i int) error {
		return s.ResourcePut(context.Background(), puts[i], store.PutOptions{IfMatch: "etag-1"})
	})
	w := oneWinner(t, errs, store.ErrPreconditionFailed)
	wantResource(t, s, rg, puts[w])
}

func testContextCanceled(t *testing.T, s store.Store) {
	x := tree(t, s)
	o := op("op-1", t0)
	if err := s.OperationCreate(context.Background(), o); err != nil {
		t.Fatalf("OperationCreate: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	rg3 := groupID(sub1, "rg3")
	_, errGet := s.ResourceGet(ctx, x.rg)
	_, errList := s.ResourceList(ctx, store.ListParams{Type: typeGroup})
	_, errOpGet := s.OperationGet(ctx, o.ID)
	_, errOpList := s.OperationListInProgress(ctx)
	_, errMetaGet := s.MetaGet(ctx, "k")
	_, errMetaInit := s.MetaInit(ctx, "k", "v")
	finished := *o
	finished.Status = store.OperationSucceeded
	queued, running := job("job-queued", t0), job("job-running", t0.Add(time.Second))
	for _, j := range []*store.Job{queued, running} {
		if err := s.JobCreate(context.Background(), j); err != nil {
			t.Fatalf("JobCreate: %v", err)
		}
	}
	claimed, err := s.JobClaim(context.Background(), store.JobClaimParams{Owner: "w1", Lease: lease, Now: t0})
	if err != nil || claimed.ID != queued.ID {
		t.Fatalf("JobClaim = %v, %v", claimed, err)
	}
	_, errJobGet := s.JobGet(ctx, queued.ID)
	_, errJobList := s.JobList(ctx, store.JobListParams{})
	_, errJobClaim := s.JobClaim(ctx, store.JobClaimParams{Owner: "w2", Lease: lease, Now: t0.Add(time.Hour)})
	for what, err := range map[string]error{
		"JobCreate":               s.JobCreate(ctx, job("job-new", t0)),
		"JobGet":                  errJobGet,
		"JobList":                 errJobList,
		"JobClaim":                errJobClaim,
		"JobHeartbeat":            s.JobHeartbeat(ctx, claimed.ID, "w1", t0.Add(time.Hour), []byte(`{}`)),
		"JobFinish":               s.JobFinish(ctx, claimed.ID, "w1", store.JobSucceeded, nil, nil, t0),
		"JobCancel":               s.JobCancel(ctx, running.ID, t0),
		"ResourcePut":             s.ResourcePut(ctx, res(typeGroup, rg3, ""), store.PutOptions{}),
		"ResourceGet":             errGet,
		"ResourceList":            errList,
		"ResourceDelete":          s.ResourceDelete(ctx, x.rg, store.DeleteOptions{}),
		"OperationCreate":         s.OperationCreate(ctx, op("op-2", t0)),
		"OperationGet":            errOpGet,
		"OperationFinish":         s.OperationFinish(ctx, &finished),
		"OperationListInProgress": errOpList,
		"MetaGet":                 errMetaGet,
		"MetaInit":                errMetaInit,
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: got error %v, want %v", what, err, context.Canceled)
		}
	}

	// Nothing was written.
	if exists(t, s, rg3) || !exists(t, s, x.rg) || !exists(t, s, x.i) {
		t.Error("a write with a canceled context changed resources")
	}
	if _, err := s.OperationGet(context.Background(), "op-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OperationGet of an operation created with a canceled context: %v", err)
	}
	wantOperation(t, s, o)
	if _, err := s.MetaGet(context.Background(), "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MetaGet of a key set with a canceled context: %v", err)
	}
	// The claim neither expired the lease nor took the other job; the
	// heartbeat, finish and cancel changed nothing.
	if _, err := s.JobGet(context.Background(), "job-new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("JobGet of a job created with a canceled context: %v", err)
	}
	wantJob(t, s, claimed)
	wantJob(t, s, running)
}
