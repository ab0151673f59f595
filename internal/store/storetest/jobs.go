package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvault/pgvault/internal/store"
)

// The job queue. Tests drive time through JobClaimParams.Now and explicit
// lease ends: nothing sleeps.

const (
	kindBackup  = "backup"
	kindRestore = "restore"
	lease       = time.Minute
)

// inst1 and inst2 are backup instances jobs act on.
var (
	inst1 = instanceID(vaultID(groupID(sub1, "rg"), "v"), "Inst-1")
	inst2 = instanceID(vaultID(groupID(sub1, "rg"), "v"), "Inst-2")
)

// job returns a new backup job on inst1 in sub1.
func job(id string, created time.Time) *store.Job {
	return &store.Job{
		ID:           id,
		Kind:         kindBackup,
		Subscription: sub1,
		ResourceID:   inst1,
		Status:       store.JobQueued,
		Input:        []byte(`{"input":"` + id + `"}`),
		Created:      created,
	}
}

func createJob(t *testing.T, s store.Store, j *store.Job) {
	t.Helper()
	if err := s.JobCreate(context.Background(), j); err != nil {
		t.Fatalf("JobCreate(%s): %v", j.ID, err)
	}
}

func getJob(t *testing.T, s store.Store, id string) *store.Job {
	t.Helper()
	j, err := s.JobGet(context.Background(), id)
	if err != nil {
		t.Fatalf("JobGet(%s): %v", id, err)
	}
	return j
}

// diffJob describes how got differs from want ("" if it does not).
func diffJob(got, want *store.Job) string {
	var d []string
	check := func(field string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
		}
	}
	check("ID", got.ID == want.ID, got.ID, want.ID)
	check("Kind", got.Kind == want.Kind, got.Kind, want.Kind)
	check("Subscription", got.Subscription == want.Subscription, got.Subscription, want.Subscription)
	check("ResourceID", got.ResourceID == want.ResourceID, got.ResourceID, want.ResourceID)
	check("IdempotencyKey", got.IdempotencyKey == want.IdempotencyKey, got.IdempotencyKey, want.IdempotencyKey)
	check("ExclusiveKey", got.ExclusiveKey == want.ExclusiveKey, got.ExclusiveKey, want.ExclusiveKey)
	check("Status", got.Status == want.Status, got.Status, want.Status)
	check("Input", bytes.Equal(got.Input, want.Input), string(got.Input), string(want.Input))
	check("Progress", bytes.Equal(got.Progress, want.Progress), string(got.Progress), string(want.Progress))
	check("Result", bytes.Equal(got.Result, want.Result), string(got.Result), string(want.Result))
	check("Error", bytes.Equal(got.Error, want.Error), string(got.Error), string(want.Error))
	check("Attempt", got.Attempt == want.Attempt, got.Attempt, want.Attempt)
	check("MaxAttempts", got.MaxAttempts == want.MaxAttempts, got.MaxAttempts, want.MaxAttempts)
	check("LeaseOwner", got.LeaseOwner == want.LeaseOwner, got.LeaseOwner, want.LeaseOwner)
	check("LeaseExpires", got.LeaseExpires.Equal(want.LeaseExpires), got.LeaseExpires, want.LeaseExpires)
	check("Created", got.Created.Equal(want.Created), got.Created, want.Created)
	check("Started", got.Started.Equal(want.Started), got.Started, want.Started)
	check("Ended", got.Ended.Equal(want.Ended), got.Ended, want.Ended)
	return strings.Join(d, "; ")
}

// wantJob checks that the stored job equals want.
func wantJob(t *testing.T, s store.Store, want *store.Job) {
	t.Helper()
	if d := diffJob(getJob(t, s, want.ID), want); d != "" {
		t.Fatalf("JobGet(%s): %s", want.ID, d)
	}
}

func wantStatus(t *testing.T, s store.Store, id, status string) *store.Job {
	t.Helper()
	j := getJob(t, s, id)
	if j.Status != status {
		t.Fatalf("job %s is %s, want %s", id, j.Status, status)
	}
	return j
}

func listJobs(t *testing.T, s store.Store, p store.JobListParams) []string {
	t.Helper()
	js, err := s.JobList(context.Background(), p)
	if err != nil {
		t.Fatalf("JobList(%+v): %v", p, err)
	}
	ids := []string{}
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	return ids
}

// claim claims a job of one of kinds for owner at now, or fails the test.
func claim(t *testing.T, s store.Store, owner string, now time.Time, kinds ...string) *store.Job {
	t.Helper()
	j, err := s.JobClaim(context.Background(), store.JobClaimParams{Owner: owner, Kinds: kinds, Lease: lease, Now: now})
	if err != nil {
		t.Fatalf("JobClaim(%s at %v, %q): %v", owner, now, kinds, err)
	}
	return j
}

// noClaim checks that a claim for owner at now finds nothing.
func noClaim(t *testing.T, s store.Store, owner string, now time.Time, kinds ...string) {
	t.Helper()
	j, err := s.JobClaim(context.Background(), store.JobClaimParams{Owner: owner, Kinds: kinds, Lease: lease, Now: now})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("JobClaim(%s at %v, %q) = %v, %v; want %v", owner, now, kinds, j, err, store.ErrNotFound)
	}
}

// running returns j as JobClaim by owner at now makes it, for the attempt-th time.
func running(j *store.Job, owner string, now time.Time, attempt int) *store.Job {
	r := *j
	r.Status = store.JobRunning
	r.Attempt = attempt
	r.LeaseOwner = owner
	r.LeaseExpires = now.Add(lease)
	if attempt == 1 {
		r.Started = now
	}
	return &r
}

func finish(t *testing.T, s store.Store, j *store.Job, status string, result, errJSON []byte, ended time.Time) {
	t.Helper()
	if err := s.JobFinish(context.Background(), j.ID, j.LeaseOwner, status, result, errJSON, ended); err != nil {
		t.Fatalf("JobFinish(%s, %s, %s): %v", j.ID, j.LeaseOwner, status, err)
	}
}

// wantWorkerLost checks that job id failed at ended because its lease expired
// on its last attempt.
func wantWorkerLost(t *testing.T, s store.Store, id string, attempt int, ended time.Time) {
	t.Helper()
	j := wantStatus(t, s, id, store.JobFailed)
	var e struct{ Code, Message string }
	if err := json.Unmarshal(j.Error, &e); err != nil {
		t.Fatalf("job %s: Error %q: %v", id, j.Error, err)
	}
	if e.Code != store.JobErrorWorkerLost || e.Message == "" {
		t.Fatalf("job %s: Error %s, want code %s and a message", id, j.Error, store.JobErrorWorkerLost)
	}
	if j.Attempt != attempt || !j.Ended.Equal(ended) || j.Result != nil {
		t.Fatalf("job %s: Attempt %d, Ended %v, Result %q; want %d, %v, none", id, j.Attempt, j.Ended, j.Result, attempt, ended)
	}
}

func testJobCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.JobGet(ctx, "job-1")
	wantErr(t, "JobGet on an empty store", err, store.ErrNotFound)

	j := job("job-AbC_1", t0)
	j.IdempotencyKey = "scheduled:inst-1:2025-03-14T15:00:00Z"
	j.ExclusiveKey = "backup:inst-1"
	j.MaxAttempts = 3
	j.Progress = []byte(`{"percent":0}`)
	createJob(t, s, j)
	wantJob(t, s, j)

	// Changing what JobGet returned does not change the store.
	got := getJob(t, s, j.ID)
	got.Input[0] = 'X'
	got.Status = store.JobFailed
	wantJob(t, s, j)

	dup := job(j.ID, t0.Add(time.Hour))
	dup.Kind = kindRestore
	err = s.JobCreate(ctx, dup)
	wantErr(t, "JobCreate with a taken ID", err, store.ErrAlreadyExists)
	wantJob(t, s, j)

	// IDs match exactly.
	_, err = s.JobGet(ctx, "job-abc_1")
	wantErr(t, "JobGet in another case", err, store.ErrNotFound)
	lower := job("job-abc_1", t0)
	createJob(t, s, lower)
	wantJob(t, s, lower)

	// Jobs that are not new are refused.
	for what, change := range map[string]func(j *store.Job){
		"empty ID":             func(j *store.Job) { j.ID = "" },
		"empty kind":           func(j *store.Job) { j.Kind = "" },
		"empty status":         func(j *store.Job) { j.Status = "" },
		"status Running":       func(j *store.Job) { j.Status = store.JobRunning },
		"status Succeeded":     func(j *store.Job) { j.Status = store.JobSucceeded },
		"an attempt":           func(j *store.Job) { j.Attempt = 1 },
		"a lease owner":        func(j *store.Job) { j.LeaseOwner = "w1" },
		"a lease":              func(j *store.Job) { j.LeaseExpires = t0 },
		"a start":              func(j *store.Job) { j.Started = t0 },
		"an end":               func(j *store.Job) { j.Ended = t0 },
		"negative MaxAttempts": func(j *store.Job) { j.MaxAttempts = -1 },
	} {
		bad := job("job-bad", t0)
		change(bad)
		if err := s.JobCreate(ctx, bad); err == nil || errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("JobCreate of a job with %s: got error %v, want a validation error", what, err)
		}
	}
	_, err = s.JobGet(ctx, "job-bad")
	wantErr(t, "JobGet of a refused job", err, store.ErrNotFound)
}

func testJobList(t *testing.T, s store.Store) {
	ctx := context.Background()
	wantIDs(t, "jobs in an empty store", listJobs(t, s, store.JobListParams{}))

	// Created out of order; e and f share their creation time.
	mk := func(id, kind, sub, resource string, created time.Time) *store.Job {
		j := job(id, created)
		j.Kind, j.Subscription, j.ResourceID = kind, sub, resource
		createJob(t, s, j)
		return j
	}
	inst3 := instanceID(vaultID(groupID(sub2, "rg"), "v"), "Inst-3")
	mk("c", kindBackup, sub1, inst1, t0.Add(3*time.Second))
	mk("a", kindBackup, sub1, inst1, t0.Add(1*time.Second))
	mk("f", kindRestore, sub1, strings.ToLower(inst2), t0.Add(5*time.Second))
	mk("b", kindRestore, sub1, inst1, t0.Add(2*time.Second).In(time.FixedZone("East", 5*3600)))
	mk("e", kindBackup, sub1, inst2, t0.Add(5*time.Second))
	d := mk("d", kindBackup, strings.ToUpper(sub2), inst3, t0.Add(4*time.Second))
	now := t0.Add(time.Hour)
	// a is Succeeded, b Running, c Canceled, d Failed, e and f Queued.
	finish(t, s, claim(t, s, "w1", now, kindBackup), store.JobSucceeded, nil, nil, now) // a
	claim(t, s, "w1", now, kindRestore)                                                 // b
	if err := s.JobCancel(ctx, "c", now); err != nil {
		t.Fatalf("JobCancel: %v", err)
	}
	claimedD := claim(t, s, "w1", now, kindBackup)
	if claimedD.ID != "d" {
		t.Fatalf("claimed %s, want d", claimedD.ID)
	}
	finish(t, s, claimedD, store.JobFailed, nil, []byte(`{"code":"Boom"}`), now)

	all := []string{"f", "e", "d", "c", "b", "a"}
	wantIDs(t, "all jobs", listJobs(t, s, store.JobListParams{}), all...)
	wantIDs(t, "jobs in sub1, mixed case",
		listJobs(t, s, store.JobListParams{Subscription: strings.ToUpper(sub1)}), "f", "e", "c", "b", "a")
	wantIDs(t, "jobs in sub2", listJobs(t, s, store.JobListParams{Subscription: sub2}), "d")
	wantIDs(t, "jobs on inst1, upper case",
		listJobs(t, s, store.JobListParams{ResourceID: strings.ToUpper(inst1)}), "c", "b", "a")
	wantIDs(t, "jobs on inst2, stored in two cases",
		listJobs(t, s, store.JobListParams{ResourceID: inst2}), "f", "e")
	wantIDs(t, "restore jobs", listJobs(t, s, store.JobListParams{Kind: kindRestore}), "f", "b")
	wantIDs(t, "jobs of kind BACKUP (kinds are exact)", listJobs(t, s, store.JobListParams{Kind: "BACKUP"}))
	wantIDs(t, "queued jobs", listJobs(t, s, store.JobListParams{Statuses: []string{store.JobQueued}}), "f", "e")
	wantIDs(t, "active jobs",
		listJobs(t, s, store.JobListParams{Statuses: []string{store.JobRunning, store.JobQueued}}), "f", "e", "b")
	wantIDs(t, "ended jobs", listJobs(t, s, store.JobListParams{
		Statuses: []string{store.JobSucceeded, store.JobFailed, store.JobCanceled}}), "d", "c", "a")
	wantIDs(t, "queued backups on inst2 in sub1", listJobs(t, s, store.JobListParams{
		Subscription: sub1, ResourceID: inst2, Kind: kindBackup, Statuses: []string{store.JobQueued}}), "e")
	wantIDs(t, "queued jobs on inst1", listJobs(t, s, store.JobListParams{
		ResourceID: inst1, Statuses: []string{store.JobQueued}}))
	wantIDs(t, "jobs in an unknown status", listJobs(t, s, store.JobListParams{Statuses: []string{"Paused"}}))
	wantIDs(t, "first 2 jobs", listJobs(t, s, store.JobListParams{Limit: 2}), "f", "e")
	wantIDs(t, "restore jobs after e (which is not one)",
		listJobs(t, s, store.JobListParams{Kind: kindRestore, After: "e"}), "b")

	// Listed jobs are complete.
	js, err := s.JobList(ctx, store.JobListParams{Subscription: sub2})
	if err != nil || len(js) != 1 {
		t.Fatalf("JobList: %d jobs, %v", len(js), err)
	}
	if diff := diffJob(js[0], getJob(t, s, "d")); diff != "" {
		t.Fatalf("listed job: %s", diff)
	}
	want := *d
	want.Status, want.Attempt, want.LeaseOwner, want.LeaseExpires = store.JobFailed, 1, "w1", now.Add(lease)
	want.Started, want.Ended, want.Error = now, now, []byte(`{"code":"Boom"}`)
	if diff := diffJob(js[0], &want); diff != "" {
		t.Fatalf("listed job: %s", diff)
	}
}

func testJobListPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 60
	var want, wantRestores []string
	index := map[string]int{}
	for i := range n {
		// Inserted out of order, with many jobs created at the same instant.
		k := (i * 37) % n
		j := job(fmt.Sprintf("job-%03d", k), t0.Add(time.Duration(k%7)*time.Second))
		if k%3 == 0 {
			j.Kind = kindRestore
		}
		createJob(t, s, j)
		index[j.ID] = k
		want = append(want, j.ID)
	}
	slices.SortFunc(want, func(a, b string) int { // newest first
		if c := index[b]%7 - index[a]%7; c != 0 {
			return c
		}
		return strings.Compare(b, a)
	})
	for _, id := range want {
		if index[id]%3 == 0 {
			wantRestores = append(wantRestores, id)
		}
	}
	wantIDs(t, "all jobs", listJobs(t, s, store.JobListParams{}), want...)

	for _, p := range []struct {
		kind string
		want []string
	}{{"", want}, {kindRestore, wantRestores}} {
		for _, limit := range []int{1, 7, len(p.want) - 1, len(p.want), len(p.want) + 1} {
			var got []string
			after := ""
			for page := 0; ; page++ {
				if page > n {
					t.Fatalf("limit %d: paging does not end", limit)
				}
				ids := listJobs(t, s, store.JobListParams{Kind: p.kind, After: after, Limit: limit})
				if len(ids) > limit {
					t.Fatalf("limit %d: got %d results", limit, len(ids))
				}
				got = append(got, ids...)
				if len(ids) < limit {
					break
				}
				after = ids[len(ids)-1]
			}
			wantIDs(t, fmt.Sprintf("pages of %d jobs of kind %q", limit, p.kind), got, p.want...)
		}
	}

	wantIDs(t, "jobs after the last", listJobs(t, s, store.JobListParams{After: want[n-1]}))
	_, err := s.JobList(ctx, store.JobListParams{After: "job-missing"})
	wantErr(t, "JobList after an unknown job", err, store.ErrNotFound)
}

func testJobIdempotencyKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	const key = "scheduled:inst-1:2025-03-14T15:00:00Z"
	a := job("a", t0)
	a.IdempotencyKey = key
	createJob(t, s, a)

	b := job("b", t0)
	b.IdempotencyKey = key
	err := s.JobCreate(ctx, b)
	wantErr(t, "JobCreate with a used idempotency key", err, store.ErrAlreadyExists)
	_, err = s.JobGet(ctx, "b")
	wantErr(t, "JobGet of the refused job", err, store.ErrNotFound)

	// The key stays used once its job ended, whatever the end.
	finish(t, s, claim(t, s, "w1", t0), store.JobSucceeded, nil, nil, t0)
	err = s.JobCreate(ctx, b)
	wantErr(t, "JobCreate with the idempotency key of a finished job", err, store.ErrAlreadyExists)
	c := job("c", t0)
	c.IdempotencyKey = key + ":c"
	createJob(t, s, c)
	if err := s.JobCancel(ctx, "c", t0); err != nil {
		t.Fatalf("JobCancel: %v", err)
	}
	b.IdempotencyKey = c.IdempotencyKey
	err = s.JobCreate(ctx, b)
	wantErr(t, "JobCreate with the idempotency key of a canceled job", err, store.ErrAlreadyExists)

	// Keys are exact; the refused ID is free; empty keys never collide.
	b.IdempotencyKey = strings.ToUpper(key)
	createJob(t, s, b)
	for i := range 3 {
		createJob(t, s, job(fmt.Sprint("no-key-", i), t0))
	}
	wantIDs(t, "jobs", listJobs(t, s, store.JobListParams{}), "no-key-2", "no-key-1", "no-key-0", "c", "b", "a")
}

func testJobExclusiveKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	const key = "backup:inst-1"
	now := t0.Add(time.Hour)
	mk := func(id string) *store.Job {
		j := job(id, t0)
		j.ExclusiveKey = key
		j.IdempotencyKey = "idem-" + id
		return j
	}
	refused := func(what string, j *store.Job) {
		t.Helper()
		err := s.JobCreate(ctx, j)
		wantErr(t, "JobCreate with the exclusive key of a "+what+" job", err, store.ErrAlreadyExists)
		_, err = s.JobGet(ctx, j.ID)
		wantErr(t, "JobGet of the refused job", err, store.ErrNotFound)
	}

	createJob(t, s, mk("a"))
	refused("Queued", mk("b"))
	a := claim(t, s, "w1", now)
	refused("Running", mk("b"))
	// Other keys, and no key, are not held.
	other := mk("other")
	other.ExclusiveKey = "backup:inst-2"
	createJob(t, s, other)
	createJob(t, s, job("no-key", t0))

	// Finishing frees the key; a refused job used neither its ID nor its
	// idempotency key.
	finish(t, s, a, store.JobFailed, nil, []byte(`{}`), now)
	createJob(t, s, mk("b"))
	refused("Queued", mk("c"))
	// Canceling frees the key.
	if err := s.JobCancel(ctx, "b", now); err != nil {
		t.Fatalf("JobCancel: %v", err)
	}
	c := mk("c")
	c.MaxAttempts = 2
	c.Created = t0.Add(-time.Hour) // claimed first
	createJob(t, s, c)

	// A job re-queued after its lease expired holds the key; one failed
	// when its lease expired frees it.
	claimed := claim(t, s, "w1", now)
	if claimed.ID != "c" {
		t.Fatalf("claimed %s, want c", claimed.ID)
	}
	noClaim(t, s, "w2", now.Add(lease), "none") // re-queues c
	wantStatus(t, s, "c", store.JobQueued)
	refused("re-queued", mk("d"))
	if claimed = claim(t, s, "w2", now.Add(lease)); claimed.ID != "c" {
		t.Fatalf("claimed %s, want c", claimed.ID)
	}
	noClaim(t, s, "w3", now.Add(2*lease), "none") // fails c
	wantWorkerLost(t, s, "c", 2, now.Add(2*lease))
	createJob(t, s, mk("d"))
}

func testConcurrentJobExclusiveKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	jobs := make([]*store.Job, racers)
	for i := range jobs {
		jobs[i] = job(fmt.Sprintf("job-%02d", i), t0)
		jobs[i].ExclusiveKey = "backup:inst-1"
	}
	errs := race(racers, func(i int) error { return s.JobCreate(ctx, jobs[i]) })
	w := oneWinner(t, errs, store.ErrAlreadyExists)
	wantIDs(t, "jobs", listJobs(t, s, store.JobListParams{}), jobs[w].ID)
	wantJob(t, s, jobs[w])

	// Once the winner ended, the next round has a winner too.
	if err := s.JobCancel(ctx, jobs[w].ID, t0); err != nil {
		t.Fatalf("JobCancel: %v", err)
	}
	for i := range jobs {
		jobs[i] = job(fmt.Sprintf("job-2-%02d", i), t0)
		jobs[i].ExclusiveKey = "backup:inst-1"
	}
	errs = race(racers, func(i int) error { return s.JobCreate(ctx, jobs[i]) })
	w = oneWinner(t, errs, store.ErrAlreadyExists)
	wantIDs(t, "queued jobs", listJobs(t, s, store.JobListParams{Statuses: []string{store.JobQueued}}), jobs[w].ID)
}

func testConcurrentJobIdempotencyKey(t *testing.T, s store.Store) {
	jobs := make([]*store.Job, racers)
	for i := range jobs {
		jobs[i] = job(fmt.Sprintf("job-%02d", i), t0)
		jobs[i].IdempotencyKey = "scheduled:inst-1:2025-03-14T15:00:00Z"
	}
	errs := race(racers, func(i int) error { return s.JobCreate(context.Background(), jobs[i]) })
	w := oneWinner(t, errs, store.ErrAlreadyExists)
	wantIDs(t, "jobs", listJobs(t, s, store.JobListParams{}), jobs[w].ID)
}

func testJobClaim(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	noClaim(t, s, "w1", now)

	// Backups c and a share their creation time: the ID breaks the tie.
	mk := func(id, kind string, created time.Time) *store.Job {
		j := job(id, created)
		j.Kind = kind
		createJob(t, s, j)
		return j
	}
	mk("job-c", kindBackup, t0.Add(time.Second))
	a := mk("job-a", kindBackup, t0.Add(time.Second).In(time.FixedZone("West", -8*3600)))
	mk("job-b", kindBackup, t0.Add(2*time.Second))
	mk("job-r", kindRestore, t0)
	mk("job-x", kindBackup, t0.Add(-time.Hour))
	if err := s.JobCancel(ctx, "job-x", now); err != nil { // canceled: never claimed
		t.Fatalf("JobCancel: %v", err)
	}

	// Invalid claims take nothing.
	for what, p := range map[string]store.JobClaimParams{
		"no owner":       {Lease: lease, Now: now},
		"no lease":       {Owner: "w1", Now: now},
		"negative lease": {Owner: "w1", Lease: -lease, Now: now},
		"no time":        {Owner: "w1", Lease: lease},
	} {
		if j, err := s.JobClaim(ctx, p); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("JobClaim with %s = %v, %v; want a validation error", what, j, err)
		}
	}
	wantIDs(t, "queued jobs after invalid claims",
		listJobs(t, s, store.JobListParams{Statuses: []string{store.JobQueued}}), "job-b", "job-c", "job-a", "job-r")

	got := claim(t, s, "w1", now, kindBackup)
	want := running(a, "w1", now, 1)
	if d := diffJob(got, want); d != "" {
		t.Fatalf("claimed job: %s", d)
	}
	wantJob(t, s, want)

	noClaim(t, s, "w2", now, "none", "BACKUP")
	for _, step := range []struct {
		kinds []string
		want  string
	}{
		{[]string{kindBackup}, "job-c"},
		{[]string{"none", kindBackup}, "job-b"},
		{[]string{kindBackup, kindRestore}, "job-r"},
	} {
		if got := claim(t, s, "w2", now, step.kinds...); got.ID != step.want {
			t.Fatalf("JobClaim(%q) claimed %s, want %s", step.kinds, got.ID, step.want)
		}
	}
	noClaim(t, s, "w2", now)

	// No kinds means any kind.
	mk("job-o", "other", t0)
	if got := claim(t, s, "w3", now); got.ID != "job-o" {
		t.Fatalf("JobClaim of any kind claimed %s, want job-o", got.ID)
	}
	// Leases not yet expired are left alone.
	noClaim(t, s, "w4", now.Add(lease-time.Microsecond))
	wantIDs(t, "running jobs", listJobs(t, s, store.JobListParams{Statuses: []string{store.JobRunning}}),
		"job-b", "job-c", "job-a", "job-r", "job-o")
	wantJob(t, s, want)
}

func testConcurrentJobClaim(t *testing.T, s store.Store) {
	const m = 50
	for i := range m {
		createJob(t, s, job(fmt.Sprintf("job-%02d", i), t0.Add(time.Duration(i)*time.Second)))
	}
	claimed := make([][]*store.Job, racers)
	now := t0.Add(time.Hour)
	errs := race(racers, func(w int) error {
		for {
			j, err := s.JobClaim(context.Background(), store.JobClaimParams{
				Owner: fmt.Sprint("worker-", w), Kinds: []string{kindBackup}, Lease: lease, Now: now})
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			claimed[w] = append(claimed[w], j)
		}
	})
	owners := map[string]string{}
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
		for _, j := range claimed[w] {
			owner := fmt.Sprint("worker-", w)
			if prev, ok := owners[j.ID]; ok {
				t.Fatalf("job %s claimed by both %s and %s", j.ID, prev, owner)
			}
			owners[j.ID] = owner
			if j.LeaseOwner != owner || j.Attempt != 1 || j.Status != store.JobRunning {
				t.Fatalf("job %s claimed by %s: owner %s, attempt %d, status %s", j.ID, owner, j.LeaseOwner, j.Attempt, j.Status)
			}
		}
	}
	if len(owners) != m {
		t.Fatalf("%d jobs claimed, want %d", len(owners), m)
	}
	for id, owner := range owners {
		if j := wantStatus(t, s, id, store.JobRunning); j.LeaseOwner != owner || j.Attempt != 1 {
			t.Fatalf("job %s: owner %s, attempt %d; want %s, 1", id, j.LeaseOwner, j.Attempt, owner)
		}
	}
}

func testJobHeartbeat(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	err := s.JobHeartbeat(ctx, "missing", "w1", now, nil)
	wantErr(t, "JobHeartbeat of a missing job", err, store.ErrNotFound)

	createJob(t, s, job("queued", t0.Add(time.Second)))
	err = s.JobHeartbeat(ctx, "queued", "w1", now, nil)
	wantErr(t, "JobHeartbeat of a queued job", err, store.ErrPreconditionFailed)

	j := job("job", t0)
	createJob(t, s, j)
	want := running(j, "w1", now, 1)
	claim(t, s, "w1", now)

	// The owner renews its lease and stores progress; nil progress keeps it.
	want.LeaseExpires = now.Add(2 * lease)
	want.Progress = []byte(`{"percent":10}`)
	if err := s.JobHeartbeat(ctx, "job", "w1", want.LeaseExpires, want.Progress); err != nil {
		t.Fatalf("JobHeartbeat: %v", err)
	}
	wantJob(t, s, want)
	want.LeaseExpires = now.Add(3 * lease)
	if err := s.JobHeartbeat(ctx, "job", "w1", want.LeaseExpires, nil); err != nil {
		t.Fatalf("JobHeartbeat without progress: %v", err)
	}
	wantJob(t, s, want)

	// Others cannot.
	err = s.JobHeartbeat(ctx, "job", "w2", now.Add(time.Hour), []byte(`{"percent":99}`))
	wantErr(t, "JobHeartbeat by another worker", err, store.ErrPreconditionFailed)
	wantJob(t, s, want)

	// The renewed lease holds past the first: a claim at its old end takes
	// the queued job, not this one.
	if got := claim(t, s, "w2", now.Add(lease)); got.ID != "queued" {
		t.Fatalf("claimed %s, want queued", got.ID)
	}
	wantJob(t, s, want)

	// A lease that expired but was not taken over can still be renewed.
	late := now.Add(4 * lease)
	want.LeaseExpires = late.Add(lease)
	if err := s.JobHeartbeat(ctx, "job", "w1", want.LeaseExpires, nil); err != nil {
		t.Fatalf("late JobHeartbeat: %v", err)
	}
	noClaim(t, s, "w3", late.Add(lease-time.Microsecond), kindRestore)
	wantJob(t, s, want)

	finish(t, s, want, store.JobSucceeded, nil, nil, late)
	err = s.JobHeartbeat(ctx, "job", "w1", late.Add(lease), nil)
	wantErr(t, "JobHeartbeat of a finished job", err, store.ErrPreconditionFailed)
}

func testJobFinish(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	err := s.JobFinish(ctx, "missing", "w1", store.JobSucceeded, nil, nil, now)
	wantErr(t, "JobFinish of a missing job", err, store.ErrNotFound)

	for i, status := range []string{store.JobSucceeded, store.JobFailed, store.JobCanceled} {
		j := job("job-"+status, t0.Add(time.Duration(i)*time.Second))
		createJob(t, s, j)
		err := s.JobFinish(ctx, j.ID, "w1", status, nil, nil, now)
		wantErr(t, "JobFinish of a queued job", err, store.ErrPreconditionFailed)

		want := running(j, "w1", now, 1)
		claim(t, s, "w1", now)
		want.Progress = []byte(`{"percent":50}`)
		if err := s.JobHeartbeat(ctx, j.ID, "w1", want.LeaseExpires, want.Progress); err != nil {
			t.Fatalf("JobHeartbeat: %v", err)
		}
		for _, bad := range []string{"", store.JobQueued, store.JobRunning, "Done"} {
			if err := s.JobFinish(ctx, j.ID, "w1", bad, nil, nil, now); err == nil || errors.Is(err, store.ErrPreconditionFailed) {
				t.Fatalf("JobFinish with status %q: got error %v, want a validation error", bad, err)
			}
		}
		err = s.JobFinish(ctx, j.ID, "w2", status, nil, nil, now)
		wantErr(t, "JobFinish by another worker", err, store.ErrPreconditionFailed)
		wantJob(t, s, want)

		want.Status = status
		want.Ended = now.Add(time.Minute)
		if status == store.JobFailed {
			want.Error = []byte(`{"code":"Boom","message":"it broke"}`)
		} else {
			want.Result = []byte(`{"ok":true}`)
		}
		finish(t, s, want, status, want.Result, want.Error, want.Ended)
		wantJob(t, s, want) // progress and lease are kept

		err = s.JobFinish(ctx, j.ID, "w1", store.JobSucceeded, []byte(`{"again":true}`), nil, now.Add(time.Hour))
		wantErr(t, "second JobFinish", err, store.ErrPreconditionFailed)
		wantJob(t, s, want)
	}
	// Ended jobs are never claimed.
	noClaim(t, s, "w1", now.Add(time.Hour))
}

func testJobLeaseExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	j := job("job", t0)
	j.MaxAttempts = 2
	createJob(t, s, j)
	r := job("restore", t0.Add(time.Second))
	r.Kind = kindRestore
	createJob(t, s, r)

	claim(t, s, "w1", now, kindBackup)
	progress := []byte(`{"percent":30}`)
	if err := s.JobHeartbeat(ctx, "job", "w1", now.Add(lease), progress); err != nil {
		t.Fatalf("JobHeartbeat: %v", err)
	}
	// Until its lease ends the job is w1's.
	noClaim(t, s, "w2", now.Add(lease-time.Microsecond), kindBackup)

	// When it ends (at LeaseExpires itself), the next claim re-queues the job
	// and takes it: attempt 2, same Started, progress kept.
	t2 := now.Add(lease)
	want := running(j, "w2", t2, 2)
	want.Started = now
	want.Progress = progress
	if d := diffJob(claim(t, s, "w2", t2, kindBackup), want); d != "" {
		t.Fatalf("job taken over: %s", d)
	}
	wantJob(t, s, want)

	// w1 has lost it.
	err := s.JobHeartbeat(ctx, "job", "w1", t2.Add(lease), nil)
	wantErr(t, "JobHeartbeat after the lease was taken over", err, store.ErrPreconditionFailed)
	err = s.JobFinish(ctx, "job", "w1", store.JobSucceeded, nil, nil, t2)
	wantErr(t, "JobFinish after the lease was taken over", err, store.ErrPreconditionFailed)
	wantJob(t, s, want)

	// w2's lease expires too, and no attempt is left: a claim of another
	// kind fails the job, and takes the restore job.
	t3 := t2.Add(2 * lease)
	if got := claim(t, s, "w3", t3, kindRestore); got.ID != "restore" {
		t.Fatalf("claimed %s, want restore", got.ID)
	}
	wantWorkerLost(t, s, "job", 2, t3)
	failed := getJob(t, s, "job")
	if failed.LeaseOwner != "w2" || !bytes.Equal(failed.Progress, progress) {
		t.Fatalf("failed job: LeaseOwner %q, Progress %s; want w2, %s", failed.LeaseOwner, failed.Progress, progress)
	}
	err = s.JobFinish(ctx, "job", "w2", store.JobSucceeded, nil, nil, t3)
	wantErr(t, "JobFinish of a job failed by lease expiry", err, store.ErrPreconditionFailed)
	noClaim(t, s, "w3", t3.Add(time.Hour), kindBackup)

	// MaxAttempts 0 means one attempt. A claim that finds nothing to take
	// still fails expired jobs.
	once := job("once", t0)
	createJob(t, s, once)
	claim(t, s, "w1", t3, kindBackup)
	t4 := t3.Add(lease)
	noClaim(t, s, "w2", t4, "none")
	wantWorkerLost(t, s, "once", 1, t4)

	// A claim that finds nothing to take still re-queues expired jobs.
	again := job("again", t0)
	again.MaxAttempts = 3
	createJob(t, s, again)
	claim(t, s, "w1", t4, kindBackup)
	t5 := t4.Add(lease)
	noClaim(t, s, "w2", t5, "none")
	requeued := *again
	requeued.Attempt, requeued.Started, requeued.Ended = 1, t4, time.Time{}
	wantJob(t, s, &requeued) // Queued, no lease
	claim(t, s, "w2", t5, kindBackup)
	noClaim(t, s, "w3", t5.Add(lease), kindRestore)
	got := claim(t, s, "w3", t5.Add(lease), kindBackup)
	if got.ID != "again" || got.Attempt != 3 || !got.Started.Equal(t4) {
		t.Fatalf("third claim: %s, attempt %d, started %v", got.ID, got.Attempt, got.Started)
	}
	finish(t, s, got, store.JobSucceeded, []byte(`{"attempts":3}`), nil, t5.Add(lease))
	wantStatus(t, s, "again", store.JobSucceeded)
}

// testJobTakeover has the old owner of a job act on its stale view of the
// job after a takeover.
func testJobTakeover(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	j := job("job", t0)
	j.MaxAttempts = 3
	j.ExclusiveKey = "backup:inst-1"
	createJob(t, s, j)
	stale := claim(t, s, "w1", now)
	t2 := stale.LeaseExpires
	fresh := claim(t, s, "w2", t2)

	// While the new owner works, and after it finished, the old one can do nothing.
	for _, phase := range []string{"running", "finished"} {
		err := s.JobHeartbeat(ctx, stale.ID, stale.LeaseOwner, t2.Add(time.Hour), []byte(`{"stale":true}`))
		wantErr(t, "JobHeartbeat by the old owner ("+phase+")", err, store.ErrPreconditionFailed)
		for _, status := range []string{store.JobSucceeded, store.JobFailed, store.JobCanceled} {
			err := s.JobFinish(ctx, stale.ID, stale.LeaseOwner, status, []byte(`{"stale":true}`), nil, t2)
			wantErr(t, "JobFinish by the old owner ("+phase+")", err, store.ErrPreconditionFailed)
		}
		err = s.JobCancel(ctx, stale.ID, t2)
		wantErr(t, "JobCancel of a job taken over ("+phase+")", err, store.ErrPreconditionFailed)
		if phase == "running" {
			wantJob(t, s, fresh)
			finish(t, s, fresh, store.JobSucceeded, []byte(`{"by":"w2"}`), nil, t2.Add(time.Second))
		}
	}
	done := *fresh
	done.Status, done.Result, done.Ended = store.JobSucceeded, []byte(`{"by":"w2"}`), t2.Add(time.Second)
	wantJob(t, s, &done)

	// Both owners finishing at once after a takeover: only the new one can win.
	k := job("job-2", t0)
	k.MaxAttempts = 2
	createJob(t, s, k)
	old := claim(t, s, "w1", now)
	cur := claim(t, s, "w2", old.LeaseExpires)
	errs := race(racers, func(i int) error {
		owner := []string{old.LeaseOwner, cur.LeaseOwner}[i%2]
		return s.JobFinish(ctx, k.ID, owner, store.JobSucceeded, fmt.Appendf(nil, `{"by":%d}`, i), nil, t2)
	})
	if w := oneWinner(t, errs, store.ErrPreconditionFailed); w%2 != 1 {
		t.Fatalf("the old owner finished the job (racer %d)", w)
	}
}

func testJobCancel(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	err := s.JobCancel(ctx, "missing", now)
	wantErr(t, "JobCancel of a missing job", err, store.ErrNotFound)

	j := job("job", t0)
	createJob(t, s, j)
	if err := s.JobCancel(ctx, "job", now); err != nil {
		t.Fatalf("JobCancel: %v", err)
	}
	want := *j
	want.Status, want.Ended = store.JobCanceled, now
	wantJob(t, s, &want)
	err = s.JobCancel(ctx, "job", now.Add(time.Hour))
	wantErr(t, "second JobCancel", err, store.ErrPreconditionFailed)
	wantJob(t, s, &want)
	noClaim(t, s, "w1", now)

	// Running and finished jobs are not canceled.
	r := job("running", t0)
	createJob(t, s, r)
	claimed := claim(t, s, "w1", now)
	err = s.JobCancel(ctx, "running", now)
	wantErr(t, "JobCancel of a running job", err, store.ErrPreconditionFailed)
	wantJob(t, s, claimed)
	finish(t, s, claimed, store.JobSucceeded, nil, nil, now)
	err = s.JobCancel(ctx, "running", now)
	wantErr(t, "JobCancel of a finished job", err, store.ErrPreconditionFailed)
	wantStatus(t, s, "running", store.JobSucceeded)
}

// testConcurrentJobCancelClaim races cancels and claims of one job: either
// one cancel or one claim wins.
func testConcurrentJobCancelClaim(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	for round := range 5 {
		id := fmt.Sprint("job-", round)
		createJob(t, s, job(id, t0))
		errs := race(racers, func(i int) error {
			if i%2 == 0 {
				return s.JobCancel(ctx, id, now)
			}
			_, err := s.JobClaim(ctx, store.JobClaimParams{Owner: fmt.Sprint("w", i), Lease: lease, Now: now})
			return err
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: both %d and %d won", round, winner, i)
			case err == nil:
				winner = i
			case i%2 == 0 && !errors.Is(err, store.ErrPreconditionFailed),
				i%2 == 1 && !errors.Is(err, store.ErrNotFound):
				t.Fatalf("round %d: racer %d: unexpected error %v", round, i, err)
			}
		}
		switch got := getJob(t, s, id); {
		case winner < 0:
			t.Fatalf("round %d: nobody won", round)
		case winner%2 == 0 && got.Status != store.JobCanceled,
			winner%2 == 1 && (got.Status != store.JobRunning || got.LeaseOwner != fmt.Sprint("w", winner)):
			t.Fatalf("round %d: racer %d won, job is %s under %q", round, winner, got.Status, got.LeaseOwner)
		case got.Status == store.JobRunning:
			finish(t, s, got, store.JobSucceeded, nil, nil, now)
		}
	}
}

// testConcurrentJobLifecycle runs workers that claim, renew, finish and
// sometimes abandon jobs (as crashed workers would) against a shared clock
// that jumps past leases when everyone is idle. Whatever the interleaving,
// every job ends, each claim is counted in Attempt, and a job is finished
// at most once, by the owner of its last claim.
func testConcurrentJobLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	const m, maxAttempts = 40, 3
	// Job k is abandoned on its attempts up to k%4: jobs with k%4 == 3 never succeed.
	abandon := func(k, attempt int) bool { return attempt <= k%4 }
	index := map[string]int{}
	for k := range m {
		j := job(fmt.Sprintf("job-%02d", k), t0.Add(time.Duration(k)*time.Second))
		j.MaxAttempts = maxAttempts
		j.ExclusiveKey = j.ID
		createJob(t, s, j)
		index[j.ID] = k
	}

	var (
		clock    atomic.Int64 // offset from t0
		holding  atomic.Int64 // workers between a claim and its end
		mu       sync.Mutex
		claims   = map[string]int{}
		finishes = map[string][]string{} // owners whose JobFinish succeeded
	)
	errs := race(racers, func(w int) error {
		for n := 0; ; n++ {
			if n > 10000 {
				return errors.New("too many rounds")
			}
			offset := clock.Load()
			now := t0.Add(time.Duration(offset))
			owner := fmt.Sprintf("w%d-%d", w, n)
			j, err := s.JobClaim(ctx, store.JobClaimParams{Owner: owner, Lease: lease, Now: now})
			if errors.Is(err, store.ErrNotFound) {
				active, err := s.JobList(ctx, store.JobListParams{
					Statuses: []string{store.JobQueued, store.JobRunning}, Limit: 1})
				if err != nil {
					return err
				}
				if len(active) == 0 {
					return nil
				}
				// When nobody holds a job, only abandoned leases are left
				// to expire. (A worker that just claimed may not count yet:
				// its lease may then expire early, a takeover the checks allow.)
				if holding.Load() == 0 {
					clock.CompareAndSwap(offset, offset+int64(lease))
				}
				continue
			}
			if err != nil {
				return err
			}
			holding.Add(1)
			mu.Lock()
			claims[j.ID]++
			mu.Unlock()
			if abandon(index[j.ID], j.Attempt) {
				holding.Add(-1)
				continue
			}
			err = s.JobHeartbeat(ctx, j.ID, owner, now.Add(lease), fmt.Appendf(nil, `{"worker":%d}`, w))
			if err == nil {
				err = s.JobFinish(ctx, j.ID, owner, store.JobSucceeded, fmt.Appendf(nil, `{"by":%q}`, owner), nil, now)
				if err == nil {
					mu.Lock()
					finishes[j.ID] = append(finishes[j.ID], owner)
					mu.Unlock()
				}
			}
			holding.Add(-1)
			if err != nil && !errors.Is(err, store.ErrPreconditionFailed) { // lost: a legitimate end
				return err
			}
		}
	})
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}

	succeeded, failed, allClaims := 0, 0, 0
	for id, k := range index {
		allClaims += claims[id]
		j := getJob(t, s, id)
		if j.Attempt != claims[id] {
			t.Errorf("job %s: Attempt %d, claimed %d times", id, j.Attempt, claims[id])
		}
		switch j.Status {
		case store.JobSucceeded:
			succeeded++
			if len(finishes[id]) != 1 || finishes[id][0] != j.LeaseOwner {
				t.Errorf("job %s finished by %q, last claimed by %s", id, finishes[id], j.LeaseOwner)
			}
			if want := fmt.Sprintf(`{"by":%q}`, j.LeaseOwner); string(j.Result) != want {
				t.Errorf("job %s: Result %s, want %s", id, j.Result, want)
			}
			if k%4 == 3 {
				t.Errorf("job %s succeeded, but all its attempts were abandoned", id)
			}
		case store.JobFailed:
			failed++
			if len(finishes[id]) != 0 {
				t.Errorf("job %s failed, but finished by %q", id, finishes[id])
			}
			wantWorkerLost(t, s, id, maxAttempts, j.Ended)
		default:
			t.Errorf("job %s is %s after all workers stopped", id, j.Status)
		}
	}
	if succeeded == 0 {
		t.Error("no job succeeded")
	}
	t.Logf("%d jobs: %d succeeded, %d failed, after %d claims", m, succeeded, failed, allClaims)
}
