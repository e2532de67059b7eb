// Package conformance is the test suite every directory.Store backend must
// pass. A backend's test is a few lines:
//
//	func TestMyBackend(t *testing.T) {
//		conformance.RunTests(t, func(t *testing.T) directory.Store {
//			s, err := directory.Open(t.Context(), directory.Options{
//				Driver: ..., DSN: ..., Now: conformance.Clock(t).Now,
//			})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// newStore must return an empty store that uses Clock(t) as its clock.
package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/flexbridge/flexbridge/internal/directory"
)

// env is what each test gets.
type env struct {
	ctx   context.Context
	s     directory.Store
	clock *FakeClock
}

// now is the clock's time at the store's resolution.
func (e *env) now() time.Time { return e.clock.Now().UTC().Truncate(time.Microsecond) }

type subtest struct {
	name string
	run  func(t *testing.T, e *env)
}

// RunTests runs the whole suite; each subtest gets a fresh store from
// newStore and its own fake clock (Clock(t)). The suite closes the store.
func RunTests(t *testing.T, newStore func(t *testing.T) directory.Store) {
	tests := []subtest{
		{"InjectedClock", testInjectedClock},
		{"PingClose", testPingClose},
		{"CreateGetUser", testCreateGetUser},
		{"CreateUserInvalid", testCreateUserInvalid},
		{"UserNameConflict", testUserNameConflict},
		{"GetUserNotFound", testGetUserNotFound},
		{"ListUsers", testListUsers},
		{"UpdateUser", testUpdateUser},
		{"UpdateUserErrors", testUpdateUserErrors},
		{"UpdateUserConcurrent", testUpdateUserConcurrent},
		{"DeleteUser", testDeleteUser},
		{"DeleteUserPrecondition", testDeleteUserPrecondition},
		{"WriteMarksSyncInSameTx", testWriteMarksSync},
		{"ClaimAndApply", testClaimAndApply},
		{"GenerationRace", testGenerationRace},
		{"StaleAndInvalidReports", testStaleReports},
		{"MarkFailedBackoff", testMarkFailedBackoff},
		{"ClaimOrderAndLimit", testClaimOrderAndLimit},
		{"Leases", testLeases},
		{"ConcurrentClaims", testConcurrentClaims},
		{"TombstoneLifecycle", testTombstoneLifecycle},
		{"DeleteDuringSync", testDeleteDuringSync},
		{"MarkAllForSync", testMarkAllForSync},
		{"ListSyncStates", testListSyncStates},
		{"Audit", testAudit},
		{"Tokens", testTokens},
	}
	tests = append(tests, groupTests...)
	tests = append(tests, samlTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := Clock(t)
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.run(t, &env{ctx: t.Context(), s: s, clock: clock})
		})
	}
}

// ---------------------------------------------------------------- helpers

func ptr[T any](v T) *T { return &v }

func wantKind(t *testing.T, err, kind error, what string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got error %v, want %v", what, err, kind)
	}
}

func mustNil(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func createUser(t *testing.T, e *env, userName string) directory.User {
	t.Helper()
	u, err := e.s.CreateUser(e.ctx, directory.User{
		UserName: userName,
		Active:   true,
		Resource: json.RawMessage(fmt.Sprintf(`{"userName":%q}`, userName)),
	})
	mustNil(t, err, "CreateUser "+userName)
	return u
}

func getUser(t *testing.T, e *env, id string) directory.User {
	t.Helper()
	u, err := e.s.GetUser(e.ctx, id)
	mustNil(t, err, "GetUser")
	return u
}

func getState(t *testing.T, e *env, id string) directory.SyncState {
	t.Helper()
	st, err := e.s.GetSyncState(e.ctx, id)
	mustNil(t, err, "GetSyncState")
	return st
}

func claim(t *testing.T, e *env, owner string, lease time.Duration, limit int) []directory.SyncItem {
	t.Helper()
	items, err := e.s.ClaimPending(e.ctx, owner, lease, limit)
	mustNil(t, err, "ClaimPending "+owner)
	return items
}

func claimedIDs(items []directory.SyncItem) []string {
	var ids []string
	for _, it := range items {
		ids = append(ids, it.State.UserID)
	}
	return ids
}

func userDiff(got, want directory.User) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q != %q", got.ID, want.ID))
	}
	if got.ExternalID != want.ExternalID {
		d = append(d, fmt.Sprintf("ExternalID %q != %q", got.ExternalID, want.ExternalID))
	}
	if got.UserName != want.UserName {
		d = append(d, fmt.Sprintf("UserName %q != %q", got.UserName, want.UserName))
	}
	if got.Active != want.Active {
		d = append(d, fmt.Sprintf("Active %v != %v", got.Active, want.Active))
	}
	if !bytes.Equal(got.Resource, want.Resource) || (got.Resource == nil) != (want.Resource == nil) {
		d = append(d, fmt.Sprintf("Resource %q != %q", got.Resource, want.Resource))
	}
	if got.Version != want.Version {
		d = append(d, fmt.Sprintf("Version %d != %d", got.Version, want.Version))
	}
	if !got.Created.Equal(want.Created) {
		d = append(d, fmt.Sprintf("Created %v != %v", got.Created, want.Created))
	}
	if !got.Modified.Equal(want.Modified) {
		d = append(d, fmt.Sprintf("Modified %v != %v", got.Modified, want.Modified))
	}
	return strings.Join(d, "; ")
}

func wantUser(t *testing.T, got, want directory.User, what string) {
	t.Helper()
	if d := userDiff(got, want); d != "" {
		t.Fatalf("%s: user differs (got != want): %s", what, d)
	}
}

func stateDiff(got, want directory.SyncState) string {
	var d []string
	add := func(name string, g, w any) {
		if g != w {
			d = append(d, fmt.Sprintf("%s %v != %v", name, g, w))
		}
	}
	add("UserID", got.UserID, want.UserID)
	add("UserName", got.UserName, want.UserName)
	add("DesiredGen", got.DesiredGen, want.DesiredGen)
	add("AppliedGen", got.AppliedGen, want.AppliedGen)
	add("WorkerSID", got.WorkerSID, want.WorkerSID)
	add("Deleted", got.Deleted, want.Deleted)
	add("LastError", got.LastError, want.LastError)
	add("Attempts", got.Attempts, want.Attempts)
	add("LeaseOwner", got.LeaseOwner, want.LeaseOwner)
	for _, p := range []struct {
		name string
		g, w time.Time
	}{
		{"NextAttemptAt", got.NextAttemptAt, want.NextAttemptAt},
		{"LeaseUntil", got.LeaseUntil, want.LeaseUntil},
		{"UpdatedAt", got.UpdatedAt, want.UpdatedAt},
	} {
		if !p.g.Equal(p.w) {
			d = append(d, fmt.Sprintf("%s %v != %v", p.name, p.g, p.w))
		}
	}
	return strings.Join(d, "; ")
}

func wantState(t *testing.T, got, want directory.SyncState, what string) {
	t.Helper()
	if d := stateDiff(got, want); d != "" {
		t.Fatalf("%s: sync state differs (got != want): %s", what, d)
	}
}

func mustUTC(t *testing.T, what string, ts ...time.Time) {
	t.Helper()
	for _, x := range ts {
		if x.Location() != time.UTC {
			t.Fatalf("%s: time %v is in %v, want UTC", what, x, x.Location())
		}
	}
}

// ------------------------------------------------------------------ tests

func testInjectedClock(t *testing.T, e *env) {
	u := createUser(t, e, "clock@example.com")
	if !u.Created.Equal(e.now()) {
		t.Fatalf("Created = %v, want the fake clock's %v truncated to microseconds: "+
			"newStore must pass conformance.Clock(t).Now as Options.Now", u.Created, e.now())
	}
	e.clock.Advance(time.Hour)
	u, err := e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error { return nil })
	mustNil(t, err, "UpdateUser")
	if !u.Modified.Equal(Epoch.Add(time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("Modified = %v after advancing the clock by 1h", u.Modified)
	}
}

func testPingClose(t *testing.T, e *env) {
	mustNil(t, e.s.Ping(e.ctx), "Ping")
	mustNil(t, e.s.Close(), "Close")
	mustNil(t, e.s.Close(), "second Close")
	if err := e.s.Ping(e.ctx); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

func testCreateGetUser(t *testing.T, e *env) {
	// Odd spacing and key order: the store must keep the bytes as they are.
	res := json.RawMessage(`{"userName":"Alice@Example.com",  "name":{"givenName":"Alice","familyName":"Ä"},` +
		`"emails":[{"value":"alice@example.com","primary":true}], "active":true}`)
	in := directory.User{
		ID:         "client-chosen",
		ExternalID: "00u1abcd",
		UserName:   "Alice@Example.com",
		Active:     true,
		Resource:   res,
		Version:    42,
		Created:    time.Unix(0, 0),
	}
	got, err := e.s.CreateUser(e.ctx, in)
	mustNil(t, err, "CreateUser")
	id, err := uuid.Parse(got.ID)
	if err != nil || id.Version() != 7 || got.ID == in.ID {
		t.Fatalf("ID = %q, want a fresh UUID v7 (err %v)", got.ID, err)
	}
	want := directory.User{
		ID: got.ID, ExternalID: "00u1abcd", UserName: "Alice@Example.com", Active: true,
		Resource: res, Version: 1, Created: e.now(), Modified: e.now(),
	}
	wantUser(t, got, want, "CreateUser result")
	mustUTC(t, "CreateUser", got.Created, got.Modified)

	fetched := getUser(t, e, got.ID)
	wantUser(t, fetched, want, "GetUser")
	mustUTC(t, "GetUser", fetched.Created, fetched.Modified)

	// Minimal user: no externalId, no resource, inactive.
	e.clock.Advance(time.Second)
	bare, err := e.s.CreateUser(e.ctx, directory.User{UserName: "bob"})
	mustNil(t, err, "CreateUser bare")
	wantUser(t, getUser(t, e, bare.ID), directory.User{
		ID: bare.ID, UserName: "bob", Version: 1, Created: e.now(), Modified: e.now(),
	}, "GetUser bare")

	// Unicode survives both backends.
	uni := createUser(t, e, "Zoë.Ångström@example.com")
	if got := getUser(t, e, uni.ID); got.UserName != "Zoë.Ångström@example.com" {
		t.Fatalf("UserName = %q", got.UserName)
	}
}

func testCreateUserInvalid(t *testing.T, e *env) {
	for _, tc := range []struct {
		name string
		u    directory.User
	}{
		{"empty userName", directory.User{UserName: ""}},
		{"blank userName", directory.User{UserName: "  \t"}},
		{"userName not UTF-8", directory.User{UserName: "a\xffb"}},
		{"userName with NUL", directory.User{UserName: "a\x00b"}},
		{"externalId not UTF-8", directory.User{UserName: "ok", ExternalID: "\xfe"}},
		{"resource not JSON", directory.User{UserName: "ok", Resource: json.RawMessage(`{"a":`)}},
	} {
		_, err := e.s.CreateUser(e.ctx, tc.u)
		wantKind(t, err, directory.ErrInvalid, tc.name)
	}
	_, total, err := e.s.ListUsers(e.ctx, directory.UserQuery{})
	mustNil(t, err, "ListUsers")
	states, err := e.s.ListSyncStates(e.ctx)
	mustNil(t, err, "ListSyncStates")
	if total != 0 || len(states) != 0 {
		t.Fatalf("invalid creates left %d users and %d sync states", total, len(states))
	}
}

func testUserNameConflict(t *testing.T, e *env) {
	alice := createUser(t, e, "alice@example.com")
	for _, name := range []string{"alice@example.com", "ALICE@Example.COM"} {
		_, err := e.s.CreateUser(e.ctx, directory.User{UserName: name})
		wantKind(t, err, directory.ErrConflict, "CreateUser "+name)
	}
	emile := createUser(t, e, "Émile")
	_, err := e.s.CreateUser(e.ctx, directory.User{UserName: "émile"})
	wantKind(t, err, directory.ErrConflict, "CreateUser émile (non-ASCII case)")

	bob := createUser(t, e, "bob@example.com")
	_, err = e.s.UpdateUser(e.ctx, bob.ID, func(u *directory.User) error {
		u.UserName = "Alice@EXAMPLE.com"
		return nil
	})
	wantKind(t, err, directory.ErrConflict, "rename bob to Alice@EXAMPLE.com")
	wantUser(t, getUser(t, e, bob.ID), bob, "bob after failed rename")
	if st := getState(t, e, bob.ID); st.DesiredGen != 1 {
		t.Fatalf("failed rename bumped desired_gen to %d", st.DesiredGen)
	}

	// Changing the case of one's own name is not a conflict.
	got, err := e.s.UpdateUser(e.ctx, alice.ID, func(u *directory.User) error {
		u.UserName = "Alice@Example.com"
		return nil
	})
	mustNil(t, err, "recase own userName")
	if got.UserName != "Alice@Example.com" || got.Version != 2 {
		t.Fatalf("recased user = %+v", got)
	}
	// Nor is the name of a deleted user.
	mustNil(t, e.s.DeleteUser(e.ctx, emile.ID, nil), "DeleteUser")
	createUser(t, e, "ÉMILE")

	users, total, err := e.s.ListUsers(e.ctx, directory.UserQuery{})
	mustNil(t, err, "ListUsers")
	if total != 3 || len(users) != 3 {
		t.Fatalf("ListUsers total %d len %d, want 3", total, len(users))
	}
}

func testGetUserNotFound(t *testing.T, e *env) {
	for _, id := range []string{"", "nope", uuid.NewString()} {
		_, err := e.s.GetUser(e.ctx, id)
		wantKind(t, err, directory.ErrNotFound, fmt.Sprintf("GetUser(%q)", id))
	}
}

func testListUsers(t *testing.T, e *env) {
	users, total, err := e.s.ListUsers(e.ctx, directory.UserQuery{})
	mustNil(t, err, "ListUsers empty")
	if total != 0 || len(users) != 0 {
		t.Fatalf("empty store: %d users, total %d", len(users), total)
	}

	// Five users created at the same instant order by ID; three later ones by
	// creation time whatever their IDs.
	var same, later []directory.User
	for i := range 5 {
		u, err := e.s.CreateUser(e.ctx, directory.User{
			UserName: fmt.Sprintf("u%d@example.com", i), ExternalID: fmt.Sprintf("ext-%d", i), Active: true,
		})
		mustNil(t, err, "CreateUser")
		same = append(same, u)
	}
	slices.SortFunc(same, func(a, b directory.User) int { return strings.Compare(a.ID, b.ID) })
	for i := 5; i < 8; i++ {
		e.clock.Advance(time.Millisecond)
		later = append(later, createUser(t, e, fmt.Sprintf("u%d@example.com", i)))
	}
	all := append(same, later...)

	check := func(q directory.UserQuery, wantTotal int, want []directory.User) {
		t.Helper()
		got, total, err := e.s.ListUsers(e.ctx, q)
		mustNil(t, err, "ListUsers")
		if total != wantTotal || len(got) != len(want) {
			t.Fatalf("ListUsers(%+v): %d users, total %d; want %d users, total %d", q, len(got), total, len(want), wantTotal)
		}
		for i := range want {
			wantUser(t, got[i], want[i], fmt.Sprintf("ListUsers(%+v)[%d]", q, i))
		}
	}
	check(directory.UserQuery{}, 8, all)
	check(directory.UserQuery{Limit: 3}, 8, all[:3])
	check(directory.UserQuery{Offset: 3, Limit: 3}, 8, all[3:6])
	check(directory.UserQuery{Offset: 6, Limit: 3}, 8, all[6:])
	check(directory.UserQuery{Offset: 6}, 8, all[6:])
	check(directory.UserQuery{Offset: 8, Limit: 3}, 8, nil)
	check(directory.UserQuery{Offset: 100}, 8, nil)
	check(directory.UserQuery{Limit: -1}, 8, nil)

	check(directory.UserQuery{UserName: ptr("U6@EXAMPLE.COM")}, 1, all[6:7])
	check(directory.UserQuery{UserName: ptr("u6@example.com"), Limit: -1}, 1, nil)
	check(directory.UserQuery{UserName: ptr("nobody@example.com")}, 0, nil)

	// externalId: exact and case-sensitive; users without one never match.
	check(directory.UserQuery{ExternalID: ptr("ext-2")}, 1, filter(all, func(u directory.User) bool { return u.ExternalID == "ext-2" }))
	check(directory.UserQuery{ExternalID: ptr("EXT-2")}, 0, nil)
	check(directory.UserQuery{ExternalID: ptr("")}, 0, nil)
	check(directory.UserQuery{ExternalID: ptr("ext-2"), UserName: ptr("U2@example.com")}, 1,
		filter(all, func(u directory.User) bool { return u.ExternalID == "ext-2" }))
	check(directory.UserQuery{ExternalID: ptr("ext-2"), UserName: ptr("u3@example.com")}, 0, nil)

	// Two users sharing an externalId (it is not unique).
	_, err = e.s.UpdateUser(e.ctx, later[0].ID, func(u *directory.User) error { u.ExternalID = "ext-2"; return nil })
	mustNil(t, err, "UpdateUser")
	got, total, err := e.s.ListUsers(e.ctx, directory.UserQuery{ExternalID: ptr("ext-2"), Offset: 1})
	mustNil(t, err, "ListUsers")
	if total != 2 || len(got) != 1 || got[0].ID != later[0].ID {
		t.Fatalf("externalId shared by two users, offset 1: total %d, %d users", total, len(got))
	}
}

func filter(us []directory.User, keep func(directory.User) bool) []directory.User {
	var out []directory.User
	for _, u := range us {
		if keep(u) {
			out = append(out, u)
		}
	}
	return out
}

func testUpdateUser(t *testing.T, e *env) {
	orig := createUser(t, e, "alice@example.com")
	e.clock.Advance(time.Minute)
	newRes := json.RawMessage(`{"userName":"alice.smith@example.com","title":"Lead"}`)
	var seen directory.User
	got, err := e.s.UpdateUser(e.ctx, orig.ID, func(u *directory.User) error {
		seen = *u
		u.UserName = "alice.smith@example.com"
		u.ExternalID = "ext-9"
		u.Active = false
		u.Resource = newRes
		// The store owns these:
		u.ID, u.Version, u.Created, u.Modified = "hijack", 99, time.Time{}, time.Time{}
		return nil
	})
	mustNil(t, err, "UpdateUser")
	wantUser(t, seen, orig, "mutate's input")
	want := directory.User{
		ID: orig.ID, ExternalID: "ext-9", UserName: "alice.smith@example.com", Active: false,
		Resource: newRes, Version: 2, Created: orig.Created, Modified: e.now(),
	}
	wantUser(t, got, want, "UpdateUser result")
	wantUser(t, getUser(t, e, orig.ID), want, "GetUser after update")
	if _, err := e.s.GetUser(e.ctx, "hijack"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("mutate changed the ID: %v", err)
	}
	st := getState(t, e, orig.ID)
	if st.DesiredGen != 2 || st.UserName != "alice.smith@example.com" {
		t.Fatalf("sync state after update: %+v", st)
	}

	// Clearing the resource and externalId.
	got, err = e.s.UpdateUser(e.ctx, orig.ID, func(u *directory.User) error {
		u.Resource, u.ExternalID = nil, ""
		return nil
	})
	mustNil(t, err, "UpdateUser clear")
	if got.Resource != nil || got.Version != 3 {
		t.Fatalf("cleared user: %+v", got)
	}
	fetched := getUser(t, e, orig.ID)
	if fetched.Resource != nil || fetched.ExternalID != "" {
		t.Fatalf("cleared user reads back as Resource %q ExternalID %q", fetched.Resource, fetched.ExternalID)
	}
	if _, total, _ := e.s.ListUsers(e.ctx, directory.UserQuery{ExternalID: ptr("ext-9")}); total != 0 {
		t.Fatal("cleared externalId still matches")
	}
}

func testUpdateUserErrors(t *testing.T, e *env) {
	called := false
	_, err := e.s.UpdateUser(e.ctx, uuid.NewString(), func(*directory.User) error { called = true; return nil })
	wantKind(t, err, directory.ErrNotFound, "UpdateUser unknown")
	if called {
		t.Fatal("mutate called for an unknown user")
	}

	u := createUser(t, e, "alice@example.com")
	before := getState(t, e, u.ID)
	boom := errors.New("boom")
	_, err = e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error {
		u.UserName = "changed"
		return boom
	})
	if err != boom { //nolint:errorlint // must be returned as is
		t.Fatalf("mutate's error came back as %v, want it as is", err)
	}
	_, err = e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error { u.UserName = ""; return nil })
	wantKind(t, err, directory.ErrInvalid, "UpdateUser to empty userName")
	_, err = e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error { u.Resource = json.RawMessage("nope"); return nil })
	wantKind(t, err, directory.ErrInvalid, "UpdateUser to invalid resource")

	wantUser(t, getUser(t, e, u.ID), u, "user after failed updates")
	wantState(t, getState(t, e, u.ID), before, "sync state after failed updates")
}

func testUpdateUserConcurrent(t *testing.T, e *env) {
	u, err := e.s.CreateUser(e.ctx, directory.User{UserName: "counter", Resource: json.RawMessage(`{"n":0}`)})
	mustNil(t, err, "CreateUser")
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				_, err := e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error {
					var v struct{ N int }
					if err := json.Unmarshal(u.Resource, &v); err != nil {
						return err
					}
					u.Resource = json.RawMessage(fmt.Sprintf(`{"n":%d}`, v.N+1))
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent UpdateUser: %v", err)
	}
	got := getUser(t, e, u.ID)
	if string(got.Resource) != fmt.Sprintf(`{"n":%d}`, workers*each) || got.Version != 1+workers*each {
		t.Fatalf("after %d concurrent increments: resource %s version %d (lost updates)", workers*each, got.Resource, got.Version)
	}
	if st := getState(t, e, u.ID); st.DesiredGen != 1+workers*each {
		t.Fatalf("desired_gen %d, want %d", st.DesiredGen, 1+workers*each)
	}
}

func testDeleteUser(t *testing.T, e *env) {
	alice := createUser(t, e, "alice@example.com")
	bob := createUser(t, e, "bob@example.com")
	e.clock.Advance(time.Minute)
	mustNil(t, e.s.DeleteUser(e.ctx, alice.ID, nil), "DeleteUser")

	_, err := e.s.GetUser(e.ctx, alice.ID)
	wantKind(t, err, directory.ErrNotFound, "GetUser deleted")
	wantKind(t, e.s.DeleteUser(e.ctx, alice.ID, nil), directory.ErrNotFound, "DeleteUser twice")
	wantKind(t, e.s.DeleteUser(e.ctx, uuid.NewString(), nil), directory.ErrNotFound, "DeleteUser unknown")
	_, err = e.s.UpdateUser(e.ctx, alice.ID, func(*directory.User) error { return nil })
	wantKind(t, err, directory.ErrNotFound, "UpdateUser deleted")

	users, total, err := e.s.ListUsers(e.ctx, directory.UserQuery{})
	mustNil(t, err, "ListUsers")
	if total != 1 || users[0].ID != bob.ID {
		t.Fatalf("after delete: total %d", total)
	}
	wantState(t, getState(t, e, alice.ID), directory.SyncState{
		UserID: alice.ID, UserName: "alice@example.com", DesiredGen: 2, Deleted: true,
		NextAttemptAt: e.now(), UpdatedAt: e.now(),
	}, "tombstone")

	again := createUser(t, e, "Alice@example.com")
	if again.ID == alice.ID {
		t.Fatal("re-created user reused the deleted ID")
	}
}

// testDeleteUserPrecondition: DeleteUser's check sees the version the delete
// would remove and, by failing, keeps everything as it was: the user, its
// sync state, its userName not deprovisioned.
func testDeleteUserPrecondition(t *testing.T, e *env) {
	u := createUser(t, e, "carol@example.com")
	u, err := e.s.UpdateUser(e.ctx, u.ID, func(x *directory.User) error { x.Active = false; return nil })
	mustNil(t, err, "UpdateUser")
	before := getState(t, e, u.ID)
	e.clock.Advance(time.Minute)

	refused := errors.New("version does not match")
	var seen []int64
	err = e.s.DeleteUser(e.ctx, u.ID, func(v int64) error { seen = append(seen, v); return refused })
	if !errors.Is(err, refused) {
		t.Fatalf("DeleteUser with a failing check: %v, want the check's error as is", err)
	}
	if len(seen) != 1 || seen[0] != 2 {
		t.Fatalf("check saw versions %v, want [2]", seen)
	}
	got, err := e.s.GetUser(e.ctx, u.ID)
	mustNil(t, err, "GetUser after a refused delete")
	if got.Version != 2 || got.Active {
		t.Fatalf("after a refused delete: version %d active %v", got.Version, got.Active)
	}
	wantState(t, getState(t, e, u.ID), before, "sync state after a refused delete")
	_, err = e.s.GetDeprovisioned(e.ctx, u.UserName)
	wantKind(t, err, directory.ErrNotFound, "GetDeprovisioned after a refused delete")

	mustNil(t, e.s.DeleteUser(e.ctx, u.ID, func(v int64) error { seen = append(seen, v); return nil }), "DeleteUser with a passing check")
	if len(seen) != 2 || seen[1] != 2 {
		t.Fatalf("check saw versions %v, want [2 2]", seen)
	}
	_, err = e.s.GetUser(e.ctx, u.ID)
	wantKind(t, err, directory.ErrNotFound, "GetUser after the delete")
	wantKind(t, e.s.DeleteUser(e.ctx, u.ID, func(int64) error { t.Error("check called for a missing user"); return nil }),
		directory.ErrNotFound, "DeleteUser of a missing user with a check")
}

func testWriteMarksSync(t *testing.T, e *env) {
	t0 := e.now()
	u := createUser(t, e, "alice@example.com")
	st := getState(t, e, u.ID)
	wantState(t, st, directory.SyncState{
		UserID: u.ID, UserName: "alice@example.com", DesiredGen: 1, AppliedGen: 0,
		NextAttemptAt: t0, UpdatedAt: t0,
	}, "state after create")
	if !st.Pending() {
		t.Fatal("new user not pending")
	}

	// Two failures with backoff...
	items := claim(t, e, "w1", time.Minute, 10)
	if len(items) != 1 {
		t.Fatalf("claimed %d", len(items))
	}
	mustNil(t, e.s.MarkFailed(e.ctx, u.ID, 1, "twilio: 503", t0.Add(time.Hour)), "MarkFailed")
	mustNil(t, e.s.MarkFailed(e.ctx, u.ID, 1, "twilio: 429", t0.Add(2*time.Hour)), "MarkFailed")
	st = getState(t, e, u.ID)
	if st.Attempts != 2 || st.LastError != "twilio: 429" || !st.NextAttemptAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("after two failures: %+v", st)
	}

	// ...are forgotten by the next write, which is due at once.
	e.clock.Advance(time.Minute)
	_, err := e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error { u.Active = false; return nil })
	mustNil(t, err, "UpdateUser")
	wantState(t, getState(t, e, u.ID), directory.SyncState{
		UserID: u.ID, UserName: "alice@example.com", DesiredGen: 2, AppliedGen: 0,
		NextAttemptAt: e.now(), UpdatedAt: e.now(),
	}, "state after update")
	if got := claim(t, e, "w1", time.Minute, 10); len(got) != 1 || got[0].State.DesiredGen != 2 || got[0].User.Active {
		t.Fatalf("update not claimable at once: %+v", got)
	}

	// A write that fails leaves the sync state untouched: the user row and
	// the mark commit or roll back together.
	mustNil(t, e.s.MarkFailed(e.ctx, u.ID, 2, "boom", e.now().Add(time.Hour)), "MarkFailed")
	before := getState(t, e, u.ID)
	createUser(t, e, "bob@example.com")
	_, err = e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error { u.UserName = "BOB@example.com"; return nil })
	wantKind(t, err, directory.ErrConflict, "rename onto bob")
	_, err = e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error { return errors.New("abort") })
	if err == nil {
		t.Fatal("aborted update succeeded")
	}
	wantState(t, getState(t, e, u.ID), before, "state after failed writes")

	// Delete marks too.
	e.clock.Advance(time.Minute)
	mustNil(t, e.s.DeleteUser(e.ctx, u.ID, nil), "DeleteUser")
	st = getState(t, e, u.ID)
	if st.DesiredGen != 3 || !st.Deleted || st.Attempts != 0 || st.LastError != "" || !st.NextAttemptAt.Equal(e.now()) {
		t.Fatalf("state after delete: %+v", st)
	}
}

func testClaimAndApply(t *testing.T, e *env) {
	a := createUser(t, e, "a@example.com")
	b := createUser(t, e, "b@example.com")
	items := claim(t, e, "w1", 30*time.Second, 10)
	if len(items) != 2 {
		t.Fatalf("claimed %d items, want 2", len(items))
	}
	until := e.now().Add(30 * time.Second)
	for _, it := range items {
		if it.User == nil {
			t.Fatalf("item %s has no user", it.State.UserID)
		}
		wantUser(t, *it.User, getUser(t, e, it.State.UserID), "claimed user")
		if it.State.DesiredGen != 1 || it.State.AppliedGen != 0 || it.State.LeaseOwner != "w1" ||
			!it.State.LeaseUntil.Equal(until) || it.State.Deleted {
			t.Fatalf("claimed state: %+v", it.State)
		}
		wantState(t, getState(t, e, it.State.UserID), it.State, "stored state of claimed item")
	}
	if got := claim(t, e, "w1", 30*time.Second, 10); len(got) != 0 {
		t.Fatalf("leased items claimed again by their owner: %v", claimedIDs(got))
	}

	e.clock.Advance(time.Second)
	mustNil(t, e.s.MarkApplied(e.ctx, a.ID, 1, "WKaaa"), "MarkApplied")
	want := directory.SyncState{
		UserID: a.ID, UserName: "a@example.com", DesiredGen: 1, AppliedGen: 1, WorkerSID: "WKaaa",
		NextAttemptAt: items[0].State.NextAttemptAt, UpdatedAt: e.now(),
	}
	wantState(t, getState(t, e, a.ID), want, "applied state")
	if getState(t, e, a.ID).Pending() {
		t.Fatal("applied state still pending")
	}
	// Idempotent.
	mustNil(t, e.s.MarkApplied(e.ctx, a.ID, 1, "WKaaa"), "MarkApplied again")
	wantState(t, getState(t, e, a.ID), want, "state after repeated MarkApplied")

	// After the lease expires only b is pending.
	e.clock.Advance(time.Minute)
	if got := claimedIDs(claim(t, e, "w2", time.Minute, 10)); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("claimed %v, want only b", got)
	}

	// A later generation may clear the worker SID.
	_, err := e.s.UpdateUser(e.ctx, a.ID, func(u *directory.User) error { u.Active = false; return nil })
	mustNil(t, err, "UpdateUser")
	if got := claim(t, e, "w2", time.Minute, 10); len(got) != 1 || got[0].State.WorkerSID != "WKaaa" {
		t.Fatalf("claim after update: %+v", got)
	}
	mustNil(t, e.s.MarkApplied(e.ctx, a.ID, 2, ""), "MarkApplied clearing SID")
	if st := getState(t, e, a.ID); st.WorkerSID != "" || st.AppliedGen != 2 {
		t.Fatalf("after clearing SID: %+v", st)
	}
}

// testGenerationRace: a write that lands while the reconciler works on an
// older generation must not be lost.
func testGenerationRace(t *testing.T, e *env) {
	u := createUser(t, e, "alice@example.com")
	items := claim(t, e, "w1", time.Minute, 10)
	if len(items) != 1 || items[0].State.DesiredGen != 1 || !items[0].User.Active {
		t.Fatalf("first claim: %+v", items)
	}
	// While w1 talks to Twilio, the IdP deactivates the user.
	e.clock.Advance(time.Second)
	_, err := e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error { u.Active = false; return nil })
	mustNil(t, err, "UpdateUser during sync")
	// w1 finishes generation 1.
	mustNil(t, e.s.MarkApplied(e.ctx, u.ID, items[0].State.DesiredGen, "WK1"), "MarkApplied gen 1")

	st := getState(t, e, u.ID)
	if st.AppliedGen != 1 || st.DesiredGen != 2 || !st.Pending() || st.WorkerSID != "WK1" || st.LeaseOwner != "" {
		t.Fatalf("after applying the older generation: %+v (want applied 1, desired 2, pending, lease released)", st)
	}
	// The next claim hands out generation 2 with the deactivated user.
	items = claim(t, e, "w2", time.Minute, 10)
	if len(items) != 1 || items[0].State.DesiredGen != 2 || items[0].User == nil ||
		items[0].User.Active || items[0].User.Version != 2 || items[0].State.WorkerSID != "WK1" {
		t.Fatalf("second claim: %+v", items)
	}
	mustNil(t, e.s.MarkApplied(e.ctx, u.ID, 2, "WK1"), "MarkApplied gen 2")
	if st := getState(t, e, u.ID); st.Pending() || st.AppliedGen != 2 {
		t.Fatalf("after applying generation 2: %+v", st)
	}
	if got := claim(t, e, "w2", time.Minute, 10); len(got) != 0 {
		t.Fatalf("nothing should be pending: %v", claimedIDs(got))
	}
}

func testStaleReports(t *testing.T, e *env) {
	u := createUser(t, e, "alice@example.com")
	claim(t, e, "w1", time.Minute, 1)
	_, err := e.s.UpdateUser(e.ctx, u.ID, func(u *directory.User) error { u.Active = false; return nil })
	mustNil(t, err, "UpdateUser")
	// w2 applies generation 2 first (w1's lease expired meanwhile)...
	e.clock.Advance(2 * time.Minute)
	claim(t, e, "w2", time.Minute, 1)
	mustNil(t, e.s.MarkApplied(e.ctx, u.ID, 2, "WK2"), "MarkApplied 2")
	want := getState(t, e, u.ID)
	// ...then w1 reports generation 1, late: nothing changes.
	e.clock.Advance(time.Second)
	mustNil(t, e.s.MarkApplied(e.ctx, u.ID, 1, "WKstale"), "late MarkApplied 1")
	mustNil(t, e.s.MarkFailed(e.ctx, u.ID, 1, "late failure", e.now().Add(time.Hour)), "late MarkFailed 1")
	mustNil(t, e.s.MarkFailed(e.ctx, u.ID, 2, "late failure", e.now().Add(time.Hour)), "late MarkFailed 2")
	wantState(t, getState(t, e, u.ID), want, "state after stale reports")

	// Generations never issued, unknown users, nonsense input.
	wantKind(t, e.s.MarkApplied(e.ctx, u.ID, 3, "WK"), directory.ErrPrecondition, "MarkApplied future gen")
	wantKind(t, e.s.MarkFailed(e.ctx, u.ID, 3, "x", e.now()), directory.ErrPrecondition, "MarkFailed future gen")
	wantKind(t, e.s.MarkApplied(e.ctx, "nobody", 1, "WK"), directory.ErrNotFound, "MarkApplied unknown")
	wantKind(t, e.s.MarkFailed(e.ctx, "nobody", 1, "x", e.now()), directory.ErrNotFound, "MarkFailed unknown")
	wantKind(t, e.s.MarkApplied(e.ctx, u.ID, 0, "WK"), directory.ErrInvalid, "MarkApplied gen 0")
	_, err = e.s.GetSyncState(e.ctx, "nobody")
	wantKind(t, err, directory.ErrNotFound, "GetSyncState unknown")
	_, err = e.s.ClaimPending(e.ctx, "", time.Minute, 1)
	wantKind(t, err, directory.ErrInvalid, "ClaimPending without owner")
	_, err = e.s.ClaimPending(e.ctx, "w", 0, 1)
	wantKind(t, err, directory.ErrInvalid, "ClaimPending without lease")
	wantState(t, getState(t, e, u.ID), want, "state after rejected reports")
}

func testMarkFailedBackoff(t *testing.T, e *env) {
	u := createUser(t, e, "alice@example.com")
	claim(t, e, "w1", time.Minute, 1)
	next := e.now().Add(10 * time.Second)
	mustNil(t, e.s.MarkFailed(e.ctx, u.ID, 1, "twilio: 429 Too Many Requests", next), "MarkFailed")
	wantState(t, getState(t, e, u.ID), directory.SyncState{
		UserID: u.ID, UserName: "alice@example.com", DesiredGen: 1, LastError: "twilio: 429 Too Many Requests",
		Attempts: 1, NextAttemptAt: next, UpdatedAt: e.now(),
	}, "after MarkFailed (lease released)")

	if got := claim(t, e, "w2", time.Minute, 1); len(got) != 0 {
		t.Fatal("claimed before next_attempt_at")
	}
	e.clock.Advance(9 * time.Second)
	if got := claim(t, e, "w2", time.Minute, 1); len(got) != 0 {
		t.Fatal("claimed 1s before next_attempt_at")
	}
	e.clock.Advance(time.Second)
	got := claim(t, e, "w2", time.Minute, 1)
	if len(got) != 1 || got[0].State.Attempts != 1 {
		t.Fatalf("not claimable at next_attempt_at: %+v", got)
	}
	// Error text of any shape is stored (as valid text).
	mustNil(t, e.s.MarkFailed(e.ctx, u.ID, 1, "bad\x00bytes\xff", e.now()), "MarkFailed odd text")
	st := getState(t, e, u.ID)
	if st.Attempts != 2 || !utf8.ValidString(st.LastError) || !strings.HasPrefix(st.LastError, "bad") {
		t.Fatalf("after second failure: %+v", st)
	}
	claim(t, e, "w2", time.Minute, 1)
	mustNil(t, e.s.MarkApplied(e.ctx, u.ID, 1, "WK1"), "MarkApplied")
	if st := getState(t, e, u.ID); st.Attempts != 0 || st.LastError != "" {
		t.Fatalf("success did not clear the failures: %+v", st)
	}
}

func testClaimOrderAndLimit(t *testing.T, e *env) {
	var us []directory.User
	for i := range 5 {
		us = append(us, createUser(t, e, fmt.Sprintf("u%d", i)))
		e.clock.Advance(time.Second)
	}
	if got, err := e.s.ClaimPending(e.ctx, "w", time.Minute, 0); err != nil || len(got) != 0 {
		t.Fatalf("limit 0 claimed %d (%v)", len(got), err)
	}
	// u0 failed and is due later than the others.
	claim(t, e, "w0", time.Minute, 1)
	mustNil(t, e.s.MarkFailed(e.ctx, us[0].ID, 1, "x", e.now().Add(time.Second)), "MarkFailed")

	if got := claimedIDs(claim(t, e, "w1", time.Minute, 2)); !slices.Equal(got, []string{us[1].ID, us[2].ID}) {
		t.Fatalf("first two by next_attempt_at: got %v", got)
	}
	e.clock.Advance(time.Second)
	if got := claimedIDs(claim(t, e, "w2", time.Minute, 10)); !slices.Equal(got, []string{us[3].ID, us[4].ID, us[0].ID}) {
		t.Fatalf("rest in next_attempt_at order: got %v", got)
	}
}

func testLeases(t *testing.T, e *env) {
	u := createUser(t, e, "alice@example.com")
	a := claim(t, e, "A", 30*time.Second, 10)
	if len(a) != 1 || a[0].State.LeaseOwner != "A" {
		t.Fatalf("A claimed %+v", a)
	}
	if got := claim(t, e, "B", 30*time.Second, 10); len(got) != 0 {
		t.Fatal("B got an item A holds")
	}
	e.clock.Advance(29 * time.Second)
	if got := claim(t, e, "B", 30*time.Second, 10); len(got) != 0 {
		t.Fatal("B got an item before A's lease expired")
	}
	e.clock.Advance(time.Second) // A's lease ends now
	b := claim(t, e, "B", 30*time.Second, 10)
	if len(b) != 1 || b[0].State.UserID != u.ID || b[0].State.LeaseOwner != "B" ||
		!b[0].State.LeaseUntil.Equal(e.now().Add(30*time.Second)) {
		t.Fatalf("B's claim after A's lease expired: %+v", b)
	}
	if got := claim(t, e, "A", 30*time.Second, 10); len(got) != 0 {
		t.Fatal("A re-claimed an item B holds")
	}
	if st := getState(t, e, u.ID); st.LeaseOwner != "B" {
		t.Fatalf("lease owner %q, want B", st.LeaseOwner)
	}
}

func testConcurrentClaims(t *testing.T, e *env) {
	const n = 40
	want := map[string]bool{}
	for i := range n {
		want[createUser(t, e, fmt.Sprintf("user%02d", i)).ID] = true
	}
	var (
		mu     sync.Mutex
		got    = map[string]string{}
		wg     sync.WaitGroup
		errs   = make(chan error, 4)
		owners = []string{"r1", "r2", "r3", "r4"}
	)
	for _, owner := range owners {
		wg.Go(func() {
			for {
				items, err := e.s.ClaimPending(e.ctx, owner, time.Hour, 3)
				if err != nil {
					errs <- err
					return
				}
				if len(items) == 0 {
					return
				}
				mu.Lock()
				for _, it := range items {
					if prev, dup := got[it.State.UserID]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("%s claimed by %s and %s", it.State.UserID, prev, owner)
						return
					}
					got[it.State.UserID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("claimed %d distinct items, want %d", len(got), n)
	}
	for id, owner := range got {
		if !want[id] {
			t.Fatalf("claimed unknown %s", id)
		}
		if st := getState(t, e, id); st.LeaseOwner != owner {
			t.Fatalf("%s: stored lease owner %q, claimed by %q", id, st.LeaseOwner, owner)
		}
	}
}

func testTombstoneLifecycle(t *testing.T, e *env) {
	u := createUser(t, e, "alice@example.com")
	claim(t, e, "w1", time.Minute, 10)
	mustNil(t, e.s.MarkApplied(e.ctx, u.ID, 1, "WK1"), "MarkApplied")

	e.clock.Advance(time.Minute)
	mustNil(t, e.s.DeleteUser(e.ctx, u.ID, nil), "DeleteUser")
	tomb := getState(t, e, u.ID)
	wantState(t, tomb, directory.SyncState{
		UserID: u.ID, UserName: "alice@example.com", DesiredGen: 2, AppliedGen: 1, WorkerSID: "WK1",
		Deleted: true, NextAttemptAt: e.now(), UpdatedAt: e.now(),
	}, "tombstone")

	// The name is free again while the tombstone waits.
	again := createUser(t, e, "alice@example.com")

	items := claim(t, e, "w1", time.Hour, 10)
	var ti *directory.SyncItem
	for i := range items {
		if items[i].State.UserID == u.ID {
			ti = &items[i]
		}
	}
	if len(items) != 2 || ti == nil || ti.User != nil || !ti.State.Deleted || ti.State.DesiredGen != 2 || ti.State.WorkerSID != "WK1" {
		t.Fatalf("claim of tombstone: %+v", items)
	}
	// Removing the worker fails once: the tombstone stays, with backoff.
	mustNil(t, e.s.MarkFailed(e.ctx, u.ID, 2, "twilio: 503", e.now().Add(time.Minute)), "MarkFailed")
	if st := getState(t, e, u.ID); !st.Deleted || st.Attempts != 1 {
		t.Fatalf("tombstone after failure: %+v", st)
	}
	e.clock.Advance(time.Minute)
	items = claim(t, e, "w2", time.Minute, 10)
	if len(items) != 1 || items[0].State.UserID != u.ID {
		t.Fatalf("reclaim tombstone: %+v", items)
	}
	// The worker is gone: the tombstone goes too.
	mustNil(t, e.s.MarkApplied(e.ctx, u.ID, 2, ""), "MarkApplied tombstone")
	_, err := e.s.GetSyncState(e.ctx, u.ID)
	wantKind(t, err, directory.ErrNotFound, "GetSyncState after tombstone removal")
	wantKind(t, e.s.MarkApplied(e.ctx, u.ID, 2, ""), directory.ErrNotFound, "MarkApplied removed tombstone")
	states, err := e.s.ListSyncStates(e.ctx)
	mustNil(t, err, "ListSyncStates")
	if len(states) != 1 || states[0].UserID != again.ID || states[0].Deleted {
		t.Fatalf("states after tombstone removal: %+v", states)
	}
}

// testDeleteDuringSync: the user is deleted while the reconciler creates its
// worker. The worker it reports must be remembered so the tombstone removes it.
func testDeleteDuringSync(t *testing.T, e *env) {
	u := createUser(t, e, "bob@example.com")
	items := claim(t, e, "w1", time.Minute, 10)
	mustNil(t, e.s.DeleteUser(e.ctx, u.ID, nil), "DeleteUser during sync")
	mustNil(t, e.s.MarkApplied(e.ctx, u.ID, items[0].State.DesiredGen, "WKnew"), "MarkApplied gen 1")
	st := getState(t, e, u.ID)
	if !st.Deleted || !st.Pending() || st.WorkerSID != "WKnew" || st.AppliedGen != 1 || st.DesiredGen != 2 {
		t.Fatalf("tombstone after in-flight create: %+v", st)
	}
	items = claim(t, e, "w1", time.Minute, 10)
	if len(items) != 1 || items[0].User != nil || items[0].State.WorkerSID != "WKnew" {
		t.Fatalf("claim tombstone: %+v", items)
	}
}

func testMarkAllForSync(t *testing.T, e *env) {
	n, err := e.s.MarkAllForSync(e.ctx)
	mustNil(t, err, "MarkAllForSync empty")
	if n != 0 {
		t.Fatalf("MarkAllForSync on empty store = %d", n)
	}
	a := createUser(t, e, "a")
	b := createUser(t, e, "b")
	c := createUser(t, e, "c")
	claim(t, e, "w", time.Minute, 10)
	for _, u := range []directory.User{a, b, c} {
		mustNil(t, e.s.MarkApplied(e.ctx, u.ID, 1, "WK"+u.UserName), "MarkApplied")
	}
	mustNil(t, e.s.MarkFailed(e.ctx, a.ID, 1, "ignored: already applied", e.now().Add(time.Hour)), "MarkFailed")
	mustNil(t, e.s.DeleteUser(e.ctx, c.ID, nil), "DeleteUser")
	tomb := getState(t, e, c.ID)

	e.clock.Advance(time.Minute)
	n, err = e.s.MarkAllForSync(e.ctx)
	mustNil(t, err, "MarkAllForSync")
	if n != 2 {
		t.Fatalf("MarkAllForSync = %d, want 2 live users", n)
	}
	for _, u := range []directory.User{a, b} {
		wantState(t, getState(t, e, u.ID), directory.SyncState{
			UserID: u.ID, UserName: u.UserName, DesiredGen: 2, AppliedGen: 1, WorkerSID: "WK" + u.UserName,
			NextAttemptAt: e.now(), UpdatedAt: e.now(),
		}, "after MarkAllForSync")
	}
	wantState(t, getState(t, e, c.ID), tomb, "tombstone after MarkAllForSync")
	if got := claim(t, e, "w", time.Minute, 10); len(got) != 3 {
		t.Fatalf("claimed %d after MarkAllForSync, want 3", len(got))
	}
}

func testListSyncStates(t *testing.T, e *env) {
	states, err := e.s.ListSyncStates(e.ctx)
	mustNil(t, err, "ListSyncStates empty")
	if len(states) != 0 {
		t.Fatalf("%d states in an empty store", len(states))
	}
	carol := createUser(t, e, "carol")
	alice := createUser(t, e, "alice")
	bob := createUser(t, e, "bob")
	mustNil(t, e.s.DeleteUser(e.ctx, alice.ID, nil), "DeleteUser")
	states, err = e.s.ListSyncStates(e.ctx)
	mustNil(t, err, "ListSyncStates")
	var got []string
	for _, st := range states {
		got = append(got, st.UserID)
		wantState(t, st, getState(t, e, st.UserID), "listed state")
	}
	if !slices.Equal(got, []string{alice.ID, bob.ID, carol.ID}) || !states[0].Deleted {
		t.Fatalf("ListSyncStates order/content: %+v", states)
	}
}

func testAudit(t *testing.T, e *env) {
	recs, err := e.s.ListAudit(e.ctx, 0)
	mustNil(t, err, "ListAudit empty")
	if len(recs) != 0 {
		t.Fatalf("%d records in an empty store", len(recs))
	}
	r1 := directory.AuditRecord{Actor: "scim:okta", Action: "user.create", UserID: "u1", UserName: "alice", Outcome: "ok"}
	mustNil(t, e.s.AppendAudit(e.ctx, r1), "AppendAudit r1")
	t1 := e.now()
	e.clock.Advance(time.Minute)
	// An explicit time older than r1's: order is by append, not by Time.
	r2 := directory.AuditRecord{Time: Epoch.Add(-time.Hour), Actor: "sync", Action: "worker.update",
		UserID: "u1", UserName: "alice", WorkerSID: "WK1", Outcome: "error"}
	mustNil(t, e.s.AppendAudit(e.ctx, r2), "AppendAudit r2")
	r3 := directory.AuditRecord{Actor: "admin:root", Action: "mapping.apply", Outcome: "ok",
		Detail: json.RawMessage(`{"changed": 3, "dry_run":false}`)}
	mustNil(t, e.s.AppendAudit(e.ctx, r3), "AppendAudit r3")

	recs, err = e.s.ListAudit(e.ctx, 0)
	mustNil(t, err, "ListAudit")
	if len(recs) != 3 {
		t.Fatalf("ListAudit returned %d records", len(recs))
	}
	if !(recs[0].ID > recs[1].ID && recs[1].ID > recs[2].ID && recs[2].ID > 0) {
		t.Fatalf("IDs not newest first: %d %d %d", recs[0].ID, recs[1].ID, recs[2].ID)
	}
	r1.Time, r2.Time, r3.Time = t1, r2.Time.Truncate(time.Microsecond), e.now()
	for i, want := range []directory.AuditRecord{r3, r2, r1} {
		got := recs[i]
		want.ID = got.ID
		if !got.Time.Equal(want.Time) || !bytes.Equal(got.Detail, want.Detail) {
			t.Fatalf("record %d: time %v detail %s; want %v %s", i, got.Time, got.Detail, want.Time, want.Detail)
		}
		got.Time, want.Time, got.Detail, want.Detail = time.Time{}, time.Time{}, nil, nil
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	mustUTC(t, "audit", recs[0].Time, recs[1].Time)

	recs, err = e.s.ListAudit(e.ctx, 2)
	mustNil(t, err, "ListAudit(2)")
	if len(recs) != 2 || recs[0].Action != "mapping.apply" || recs[1].Action != "worker.update" {
		t.Fatalf("ListAudit(2): %+v", recs)
	}

	wantKind(t, e.s.AppendAudit(e.ctx, directory.AuditRecord{Actor: "x"}), directory.ErrInvalid, "audit without action")
	wantKind(t, e.s.AppendAudit(e.ctx, directory.AuditRecord{Action: "x", Detail: json.RawMessage("{")}),
		directory.ErrInvalid, "audit with invalid detail")
	// Whatever an IdP sent is recorded, made storable.
	mustNil(t, e.s.AppendAudit(e.ctx, directory.AuditRecord{Action: "user.create", UserName: "evil\x00\xffname"}), "AppendAudit odd text")
	recs, err = e.s.ListAudit(e.ctx, 1)
	mustNil(t, err, "ListAudit(1)")
	if len(recs) != 1 || !utf8.ValidString(recs[0].UserName) || !strings.HasPrefix(recs[0].UserName, "evil") {
		t.Fatalf("odd text record: %+v", recs)
	}
}

func testTokens(t *testing.T, e *env) {
	h := func(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }
	toks, err := e.s.ListTokens(e.ctx)
	mustNil(t, err, "ListTokens empty")
	if len(toks) != 0 {
		t.Fatalf("%d tokens in an empty store", len(toks))
	}

	hash := h("secret-1")
	okta, err := e.s.CreateToken(e.ctx, "okta", hash)
	mustNil(t, err, "CreateToken okta")
	hash[0] ^= 0xff // the store must have copied it
	if okta.ID <= 0 || okta.Name != "okta" || !bytes.Equal(okta.Hash, h("secret-1")) ||
		!okta.CreatedAt.Equal(e.now()) || okta.LastUsedAt != nil || okta.RevokedAt != nil {
		t.Fatalf("CreateToken: %+v", okta)
	}
	_, err = e.s.CreateToken(e.ctx, "okta", h("secret-2"))
	wantKind(t, err, directory.ErrConflict, "CreateToken duplicate name")
	e.clock.Advance(time.Second)
	entra, err := e.s.CreateToken(e.ctx, "entra", h("secret-2"))
	mustNil(t, err, "CreateToken entra")
	for _, tc := range []struct {
		name string
		hash []byte
	}{{"", h("x")}, {"short", []byte("0123456789")}, {"bad\xff", h("x")}} {
		_, err := e.s.CreateToken(e.ctx, tc.name, tc.hash)
		wantKind(t, err, directory.ErrInvalid, fmt.Sprintf("CreateToken(%q, %d bytes)", tc.name, len(tc.hash)))
	}

	names := func(ts []directory.Token) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name)
		}
		return out
	}
	all, err := e.s.ListTokens(e.ctx)
	mustNil(t, err, "ListTokens")
	if !slices.Equal(names(all), []string{"okta", "entra"}) || !bytes.Equal(all[0].Hash, h("secret-1")) ||
		!all[0].CreatedAt.Equal(okta.CreatedAt) || all[1].ID != entra.ID {
		t.Fatalf("ListTokens: %+v", all)
	}

	// Touch: records the use, never moves backwards, unknown id is an error.
	used := e.now().Add(time.Minute)
	mustNil(t, e.s.TouchToken(e.ctx, okta.ID, used), "TouchToken")
	mustNil(t, e.s.TouchToken(e.ctx, okta.ID, used.Add(-time.Second)), "TouchToken older")
	wantKind(t, e.s.TouchToken(e.ctx, 999999, used), directory.ErrNotFound, "TouchToken unknown")
	active, err := e.s.ActiveTokens(e.ctx)
	mustNil(t, err, "ActiveTokens")
	if !slices.Equal(names(active), []string{"okta", "entra"}) || active[0].LastUsedAt == nil ||
		!active[0].LastUsedAt.Equal(used) || active[1].LastUsedAt != nil {
		t.Fatalf("ActiveTokens after touch: %+v", active)
	}

	// Revoke.
	e.clock.Advance(time.Minute)
	mustNil(t, e.s.RevokeToken(e.ctx, "okta"), "RevokeToken")
	revokedAt := e.now()
	wantKind(t, e.s.RevokeToken(e.ctx, "okta"), directory.ErrNotFound, "RevokeToken twice")
	wantKind(t, e.s.RevokeToken(e.ctx, "nope"), directory.ErrNotFound, "RevokeToken unknown")
	active, err = e.s.ActiveTokens(e.ctx)
	mustNil(t, err, "ActiveTokens")
	if !slices.Equal(names(active), []string{"entra"}) {
		t.Fatalf("ActiveTokens after revoke: %v", names(active))
	}
	// The name can be reused once the old token is revoked.
	okta2, err := e.s.CreateToken(e.ctx, "okta", h("secret-3"))
	mustNil(t, err, "CreateToken okta again")
	if okta2.ID == okta.ID {
		t.Fatal("new token reused the revoked token's ID")
	}
	all, err = e.s.ListTokens(e.ctx)
	mustNil(t, err, "ListTokens")
	if !slices.Equal(names(all), []string{"okta", "entra", "okta"}) ||
		all[0].RevokedAt == nil || !all[0].RevokedAt.Equal(revokedAt) || all[2].RevokedAt != nil {
		t.Fatalf("ListTokens after revoke and re-create: %+v", all)
	}
	mustUTC(t, "tokens", all[0].CreatedAt, *all[0].RevokedAt, *all[0].LastUsedAt)
	active, err = e.s.ActiveTokens(e.ctx)
	mustNil(t, err, "ActiveTokens")
	if !slices.Equal(names(active), []string{"entra", "okta"}) || !bytes.Equal(active[1].Hash, h("secret-3")) {
		t.Fatalf("ActiveTokens after re-create: %+v", active)
	}
}
