package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flexbridge/flexbridge/internal/directory"
)

var groupTests = []subtest{
	{"CreateGetGroup", testCreateGetGroup},
	{"CreateGroupInvalid", testCreateGroupInvalid},
	{"GroupNotFound", testGroupNotFound},
	{"GroupDisplayNameConflict", testGroupDisplayNameConflict},
	{"ListGroups", testListGroups},
	{"UpdateGroup", testUpdateGroup},
	{"UpdateGroupErrors", testUpdateGroupErrors},
	{"GroupWritesMarkExactlyAffectedUsers", testGroupMarks},
	{"ClaimReturnsGroups", testClaimGroups},
	{"DeleteUserRemovesMemberships", testDeleteUserMemberships},
	{"ConcurrentGroupWrites", testConcurrentGroupWrites},
	{"LargeGroupSmallChange", testLargeGroup},
	{"DeleteGroupPrecondition", testDeleteGroupPrecondition},
}

// ---------------------------------------------------------------- helpers

func createGroup(t *testing.T, e *env, displayName string, members ...string) directory.Group {
	t.Helper()
	g, err := e.s.CreateGroup(e.ctx, directory.Group{
		DisplayName: displayName,
		Resource:    json.RawMessage(fmt.Sprintf(`{"displayName":%q}`, displayName)),
		Members:     members,
	})
	mustNil(t, err, "CreateGroup "+displayName)
	return g
}

func getGroup(t *testing.T, e *env, id string) directory.Group {
	t.Helper()
	g, err := e.s.GetGroup(e.ctx, id)
	mustNil(t, err, "GetGroup")
	return g
}

func setMembers(t *testing.T, e *env, id string, members ...string) directory.Group {
	t.Helper()
	g, err := e.s.UpdateGroup(e.ctx, id, func(g *directory.Group) error { g.Members = members; return nil })
	mustNil(t, err, "UpdateGroup members")
	return g
}

func groupDiff(got, want directory.Group) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q != %q", got.ID, want.ID))
	}
	if got.DisplayName != want.DisplayName {
		d = append(d, fmt.Sprintf("DisplayName %q != %q", got.DisplayName, want.DisplayName))
	}
	if got.ExternalID != want.ExternalID {
		d = append(d, fmt.Sprintf("ExternalID %q != %q", got.ExternalID, want.ExternalID))
	}
	if !bytes.Equal(got.Resource, want.Resource) || (got.Resource == nil) != (want.Resource == nil) {
		d = append(d, fmt.Sprintf("Resource %q != %q", got.Resource, want.Resource))
	}
	if !slices.Equal(got.Members, want.Members) || (got.Members == nil) != (want.Members == nil) {
		d = append(d, fmt.Sprintf("Members %q (nil %v) != %q (nil %v)",
			got.Members, got.Members == nil, want.Members, want.Members == nil))
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

func wantGroup(t *testing.T, got, want directory.Group, what string) {
	t.Helper()
	if d := groupDiff(got, want); d != "" {
		t.Fatalf("%s: group differs (got != want): %s", what, d)
	}
}

func sorted(ids ...string) []string {
	out := append([]string{}, ids...)
	slices.Sort(out)
	return out
}

func ids(us ...directory.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

// states snapshots every sync state by user ID.
func states(t *testing.T, e *env) map[string]directory.SyncState {
	t.Helper()
	all, err := e.s.ListSyncStates(e.ctx)
	mustNil(t, err, "ListSyncStates")
	out := make(map[string]directory.SyncState, len(all))
	for _, st := range all {
		out[st.UserID] = st
	}
	return out
}

// wantMarked checks that exactly the users in marked were marked for sync
// since before was taken (desired_gen+1, due now, failures forgotten) and
// that every other state is unchanged.
func wantMarked(t *testing.T, e *env, before map[string]directory.SyncState, what string, marked ...string) {
	t.Helper()
	after := states(t, e)
	if len(after) != len(before) {
		t.Fatalf("%s: %d sync states, had %d", what, len(after), len(before))
	}
	bumped := map[string]bool{}
	for _, id := range marked {
		bumped[id] = true
	}
	for id, b := range before {
		a, ok := after[id]
		if !ok {
			t.Fatalf("%s: sync state of %s disappeared", what, id)
		}
		want := b
		if bumped[id] {
			want.DesiredGen++
			want.LastError, want.Attempts = "", 0
			want.NextAttemptAt, want.UpdatedAt = e.now(), e.now()
		}
		if d := stateDiff(a, want); d != "" {
			verb := "left alone"
			if bumped[id] {
				verb = "marked"
			}
			t.Fatalf("%s: %s (%s) should be %s: got != want: %s", what, id, b.UserName, verb, d)
		}
	}
}

// settle claims every pending state and reports it applied.
func settle(t *testing.T, e *env) {
	t.Helper()
	for {
		items := claim(t, e, "settle", time.Minute, 500)
		if len(items) == 0 {
			return
		}
		for _, it := range items {
			mustNil(t, e.s.MarkApplied(e.ctx, it.State.UserID, it.State.DesiredGen, "WK"+it.State.UserName), "MarkApplied")
		}
	}
}

func refNames(refs []directory.GroupRef) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.DisplayName)
	}
	return out
}

// ------------------------------------------------------------------ tests

func testCreateGetGroup(t *testing.T, e *env) {
	a := createUser(t, e, "a@example.com")
	b := createUser(t, e, "b@example.com")
	e.clock.Advance(time.Second)
	res := json.RawMessage(`{"displayName":"Flex Agents",  "schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]}`)
	in := directory.Group{
		ID: "client-chosen", DisplayName: "Flex Agents", ExternalID: "0f4c-entra-object-id",
		Resource: res, Members: []string{b.ID, a.ID, b.ID}, Version: 7, Created: time.Unix(0, 0),
	}
	got, err := e.s.CreateGroup(e.ctx, in)
	mustNil(t, err, "CreateGroup")
	id, err := uuid.Parse(got.ID)
	if err != nil || id.Version() != 7 || got.ID == in.ID {
		t.Fatalf("ID = %q, want a fresh UUID v7 (err %v)", got.ID, err)
	}
	want := directory.Group{
		ID: got.ID, DisplayName: "Flex Agents", ExternalID: "0f4c-entra-object-id", Resource: res,
		Members: sorted(a.ID, b.ID), Version: 1, Created: e.now(), Modified: e.now(),
	}
	wantGroup(t, got, want, "CreateGroup result")
	mustUTC(t, "CreateGroup", got.Created, got.Modified)
	fetched := getGroup(t, e, got.ID)
	wantGroup(t, fetched, want, "GetGroup")
	mustUTC(t, "GetGroup", fetched.Created, fetched.Modified)
	// The caller's slice is not the store's.
	in.Members[0] = "changed"
	got.Members[0] = "changed"
	wantGroup(t, getGroup(t, e, got.ID), want, "GetGroup after the caller changed its slices")

	// Minimal group: no members, externalId or resource. Members is filled
	// (empty, not nil) wherever the store promises it.
	bare, err := e.s.CreateGroup(e.ctx, directory.Group{DisplayName: "Ünïcode Group"})
	mustNil(t, err, "CreateGroup bare")
	wantBare := directory.Group{
		ID: bare.ID, DisplayName: "Ünïcode Group", Members: []string{}, Version: 1, Created: e.now(), Modified: e.now(),
	}
	wantGroup(t, bare, wantBare, "CreateGroup bare result")
	wantGroup(t, getGroup(t, e, bare.ID), wantBare, "GetGroup bare")
}

func testCreateGroupInvalid(t *testing.T, e *env) {
	a := createUser(t, e, "a@example.com")
	before := states(t, e)
	ghost1, ghost2 := uuid.NewString(), uuid.NewString()
	tooMany := make([]string, directory.MaxGroupMembers+1)
	for i := range tooMany {
		tooMany[i] = a.ID // even repeats count: the list itself is bounded
	}
	for _, tc := range []struct {
		name    string
		g       directory.Group
		mention string // the error must name it
	}{
		{"empty displayName", directory.Group{DisplayName: ""}, ""},
		{"blank displayName", directory.Group{DisplayName: " \t"}, ""},
		{"displayName not UTF-8", directory.Group{DisplayName: "a\xffb"}, ""},
		{"displayName with NUL", directory.Group{DisplayName: "a\x00b"}, ""},
		{"externalId not UTF-8", directory.Group{DisplayName: "ok", ExternalID: "\xfe"}, ""},
		{"resource not JSON", directory.Group{DisplayName: "ok", Resource: json.RawMessage(`{"a":`)}, ""},
		{"unknown member", directory.Group{DisplayName: "ok", Members: []string{a.ID, ghost1}}, ghost1},
		{"first unknown member named", directory.Group{DisplayName: "ok", Members: []string{ghost2, a.ID, ghost1}}, ghost2},
		{"empty member id", directory.Group{DisplayName: "ok", Members: []string{a.ID, ""}}, `""`},
		{"member id not UTF-8", directory.Group{DisplayName: "ok", Members: []string{"\xff"}}, ""},
		{"too many members", directory.Group{DisplayName: "ok", Members: tooMany}, ""},
	} {
		_, err := e.s.CreateGroup(e.ctx, tc.g)
		wantKind(t, err, directory.ErrInvalid, tc.name)
		if tc.mention != "" && !strings.Contains(err.Error(), tc.mention) {
			t.Fatalf("%s: error %q does not name %s", tc.name, err, tc.mention)
		}
	}
	_, total, err := e.s.ListGroups(e.ctx, directory.GroupQuery{})
	mustNil(t, err, "ListGroups")
	if total != 0 {
		t.Fatalf("invalid creates left %d groups", total)
	}
	refs, err := e.s.GroupsOfUser(e.ctx, a.ID)
	mustNil(t, err, "GroupsOfUser")
	if len(refs) != 0 {
		t.Fatalf("invalid creates left memberships: %+v", refs)
	}
	wantMarked(t, e, before, "after invalid creates")
}

func testGroupNotFound(t *testing.T, e *env) {
	createGroup(t, e, "exists")
	for _, id := range []string{"", "nope", uuid.NewString()} {
		_, err := e.s.GetGroup(e.ctx, id)
		wantKind(t, err, directory.ErrNotFound, fmt.Sprintf("GetGroup(%q)", id))
		called := false
		_, err = e.s.UpdateGroup(e.ctx, id, func(*directory.Group) error { called = true; return nil })
		wantKind(t, err, directory.ErrNotFound, fmt.Sprintf("UpdateGroup(%q)", id))
		if called {
			t.Fatal("mutate called for an unknown group")
		}
		wantKind(t, e.s.DeleteGroup(e.ctx, id, nil), directory.ErrNotFound, fmt.Sprintf("DeleteGroup(%q)", id))
		_, err = e.s.GroupsOfUser(e.ctx, id)
		wantKind(t, err, directory.ErrNotFound, fmt.Sprintf("GroupsOfUser(%q)", id))
	}
}

func testGroupDisplayNameConflict(t *testing.T, e *env) {
	u := createUser(t, e, "u@example.com")
	agents := createGroup(t, e, "Agents")
	for _, name := range []string{"Agents", "AGENTS", "agents"} {
		_, err := e.s.CreateGroup(e.ctx, directory.Group{DisplayName: name, Members: []string{u.ID}})
		wantKind(t, err, directory.ErrConflict, "CreateGroup "+name)
	}
	equipe := createGroup(t, e, "Équipe")
	_, err := e.s.CreateGroup(e.ctx, directory.Group{DisplayName: "équipe"})
	wantKind(t, err, directory.ErrConflict, "CreateGroup équipe (non-ASCII case)")
	// A displayName may equal a userName: different namespaces.
	createGroup(t, e, "u@example.com")

	sup := createGroup(t, e, "Supervisors", u.ID)
	before := states(t, e)
	_, err = e.s.UpdateGroup(e.ctx, sup.ID, func(g *directory.Group) error {
		g.DisplayName = "aGENTS"
		g.Members = nil
		return nil
	})
	wantKind(t, err, directory.ErrConflict, "rename Supervisors to aGENTS")
	wantGroup(t, getGroup(t, e, sup.ID), sup, "Supervisors after failed rename")
	wantMarked(t, e, before, "failed rename")

	// Changing the case of one's own name is not a conflict.
	got, err := e.s.UpdateGroup(e.ctx, agents.ID, func(g *directory.Group) error { g.DisplayName = "AGENTS"; return nil })
	mustNil(t, err, "recase own displayName")
	if got.DisplayName != "AGENTS" || got.Version != 2 {
		t.Fatalf("recased group = %+v", got)
	}
	// Nor is the name of a deleted group.
	mustNil(t, e.s.DeleteGroup(e.ctx, equipe.ID, nil), "DeleteGroup")
	createGroup(t, e, "ÉQUIPE")
	_, total, err := e.s.ListGroups(e.ctx, directory.GroupQuery{})
	mustNil(t, err, "ListGroups")
	if total != 4 {
		t.Fatalf("ListGroups total %d, want 4", total)
	}
}

func testListGroups(t *testing.T, e *env) {
	groups, total, err := e.s.ListGroups(e.ctx, directory.GroupQuery{})
	mustNil(t, err, "ListGroups empty")
	if total != 0 || len(groups) != 0 {
		t.Fatalf("empty store: %d groups, total %d", len(groups), total)
	}
	u1 := createUser(t, e, "u1")
	u2 := createUser(t, e, "u2")

	// Five groups created at the same instant order by ID; three later ones
	// by creation time whatever their IDs.
	var same, later []directory.Group
	for i := range 5 {
		g, err := e.s.CreateGroup(e.ctx, directory.Group{
			DisplayName: fmt.Sprintf("Group %d", i), ExternalID: fmt.Sprintf("ext-%d", i),
		})
		mustNil(t, err, "CreateGroup")
		same = append(same, g)
	}
	slices.SortFunc(same, func(a, b directory.Group) int { return strings.Compare(a.ID, b.ID) })
	for i := 5; i < 8; i++ {
		e.clock.Advance(time.Millisecond)
		var members []string
		switch i {
		case 5:
			members = []string{u2.ID, u1.ID}
		case 6:
			members = []string{u2.ID}
		}
		later = append(later, createGroup(t, e, fmt.Sprintf("Group %d", i), members...))
	}
	all := append(same, later...)
	noMembers := func(gs []directory.Group) []directory.Group {
		out := make([]directory.Group, len(gs))
		for i, g := range gs {
			g.Members = nil
			out[i] = g
		}
		return out
	}

	check := func(q directory.GroupQuery, wantTotal int, want []directory.Group) {
		t.Helper()
		got, total, err := e.s.ListGroups(e.ctx, q)
		mustNil(t, err, "ListGroups")
		if total != wantTotal || len(got) != len(want) {
			t.Fatalf("ListGroups(%+v): %d groups, total %d; want %d groups, total %d", q, len(got), total, len(want), wantTotal)
		}
		for i := range want {
			wantGroup(t, got[i], want[i], fmt.Sprintf("ListGroups(%+v)[%d]", q, i))
		}
	}
	check(directory.GroupQuery{WithMembers: true}, 8, all)
	check(directory.GroupQuery{}, 8, noMembers(all))
	check(directory.GroupQuery{Limit: 3}, 8, noMembers(all[:3]))
	check(directory.GroupQuery{Offset: 3, Limit: 3}, 8, noMembers(all[3:6]))
	check(directory.GroupQuery{Offset: 5, Limit: 2, WithMembers: true}, 8, all[5:7])
	check(directory.GroupQuery{Offset: 6}, 8, noMembers(all[6:]))
	check(directory.GroupQuery{Offset: 8, Limit: 3}, 8, nil)
	check(directory.GroupQuery{Offset: 100}, 8, nil)
	check(directory.GroupQuery{Limit: -1, WithMembers: true}, 8, nil)

	// displayName: exact, case-insensitive.
	check(directory.GroupQuery{DisplayName: ptr("GROUP 5"), WithMembers: true}, 1, all[5:6])
	check(directory.GroupQuery{DisplayName: ptr("group 5")}, 1, noMembers(all[5:6]))
	check(directory.GroupQuery{DisplayName: ptr("group")}, 0, nil)
	check(directory.GroupQuery{DisplayName: ptr("group 5"), Limit: -1}, 1, nil)

	// externalId: exact and case-sensitive; groups without one never match.
	byExt := func(x string) []directory.Group {
		var out []directory.Group
		for _, g := range all {
			if g.ExternalID == x {
				out = append(out, g)
			}
		}
		return out
	}
	check(directory.GroupQuery{ExternalID: ptr("ext-2"), WithMembers: true}, 1, byExt("ext-2"))
	check(directory.GroupQuery{ExternalID: ptr("EXT-2")}, 0, nil)
	check(directory.GroupQuery{ExternalID: ptr("")}, 0, nil)
	check(directory.GroupQuery{ExternalID: ptr("ext-2"), DisplayName: ptr("group 3")}, 0, nil)

	// externalId is not unique.
	_, err = e.s.UpdateGroup(e.ctx, later[0].ID, func(g *directory.Group) error { g.ExternalID = "ext-2"; return nil })
	mustNil(t, err, "UpdateGroup")
	got, total, err := e.s.ListGroups(e.ctx, directory.GroupQuery{ExternalID: ptr("ext-2"), Offset: 1, WithMembers: true})
	mustNil(t, err, "ListGroups")
	if total != 2 || len(got) != 1 || got[0].ID != later[0].ID || !slices.Equal(got[0].Members, sorted(u1.ID, u2.ID)) {
		t.Fatalf("externalId shared by two groups, offset 1: total %d, %+v", total, got)
	}
}

func testUpdateGroup(t *testing.T, e *env) {
	a := createUser(t, e, "a")
	b := createUser(t, e, "b")
	c := createUser(t, e, "c")
	orig, err := e.s.CreateGroup(e.ctx, directory.Group{
		DisplayName: "Sales", ExternalID: "ext-1", Resource: json.RawMessage(`{"displayName":"Sales"}`),
		Members: []string{a.ID, b.ID},
	})
	mustNil(t, err, "CreateGroup")
	e.clock.Advance(time.Minute)
	newRes := json.RawMessage(`{"displayName":"Sales EMEA", "x":1}`)
	var seen directory.Group
	got, err := e.s.UpdateGroup(e.ctx, orig.ID, func(g *directory.Group) error {
		seen = *g
		seen.Members = slices.Clone(g.Members)
		g.DisplayName = "Sales EMEA"
		g.ExternalID = "ext-2"
		g.Resource = newRes
		g.Members = []string{c.ID, a.ID, c.ID}
		// The store owns these:
		g.ID, g.Version, g.Created, g.Modified = "hijack", 99, time.Time{}, time.Time{}
		return nil
	})
	mustNil(t, err, "UpdateGroup")
	wantGroup(t, seen, orig, "mutate's input (with Members)")
	want := directory.Group{
		ID: orig.ID, DisplayName: "Sales EMEA", ExternalID: "ext-2", Resource: newRes,
		Members: sorted(a.ID, c.ID), Version: 2, Created: orig.Created, Modified: e.now(),
	}
	wantGroup(t, got, want, "UpdateGroup result")
	wantGroup(t, getGroup(t, e, orig.ID), want, "GetGroup after update")
	if _, err := e.s.GetGroup(e.ctx, "hijack"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("mutate changed the ID: %v", err)
	}

	// An update that changes nothing still writes a new version.
	got, err = e.s.UpdateGroup(e.ctx, orig.ID, func(*directory.Group) error { return nil })
	mustNil(t, err, "UpdateGroup no-op")
	want.Version = 3
	wantGroup(t, got, want, "no-op update")

	// Clearing resource, externalId and members.
	got, err = e.s.UpdateGroup(e.ctx, orig.ID, func(g *directory.Group) error {
		g.Resource, g.ExternalID, g.Members = nil, "", nil
		return nil
	})
	mustNil(t, err, "UpdateGroup clear")
	want = directory.Group{
		ID: orig.ID, DisplayName: "Sales EMEA", Members: []string{}, Version: 4, Created: orig.Created, Modified: e.now(),
	}
	wantGroup(t, got, want, "cleared group")
	wantGroup(t, getGroup(t, e, orig.ID), want, "cleared group read back")
	if _, total, _ := e.s.ListGroups(e.ctx, directory.GroupQuery{ExternalID: ptr("ext-2")}); total != 0 {
		t.Fatal("cleared externalId still matches")
	}
}

func testUpdateGroupErrors(t *testing.T, e *env) {
	a := createUser(t, e, "a")
	b := createUser(t, e, "b")
	g := createGroup(t, e, "Ops", a.ID)
	before := states(t, e)
	boom := errors.New("boom")
	_, err := e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error {
		g.DisplayName = "changed"
		g.Members = append(g.Members, b.ID)
		return boom
	})
	if err != boom { //nolint:errorlint // must be returned as is
		t.Fatalf("mutate's error came back as %v, want it as is", err)
	}
	ghost := uuid.NewString()
	_, err = e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error {
		g.Members = []string{b.ID, ghost}
		g.DisplayName = "renamed too"
		return nil
	})
	wantKind(t, err, directory.ErrInvalid, "UpdateGroup adding an unknown member")
	if !strings.Contains(err.Error(), ghost) {
		t.Fatalf("error %q does not name the unknown member %s", err, ghost)
	}
	for name, mutate := range map[string]func(*directory.Group) error{
		"empty displayName":  func(g *directory.Group) error { g.DisplayName = ""; return nil },
		"invalid resource":   func(g *directory.Group) error { g.Resource = json.RawMessage("nope"); return nil },
		"invalid externalId": func(g *directory.Group) error { g.ExternalID = "\xff"; return nil },
		"too many members": func(g *directory.Group) error {
			g.Members = make([]string, directory.MaxGroupMembers+1)
			return nil
		},
	} {
		_, err := e.s.UpdateGroup(e.ctx, g.ID, mutate)
		wantKind(t, err, directory.ErrInvalid, "UpdateGroup: "+name)
	}
	wantGroup(t, getGroup(t, e, g.ID), g, "group after failed updates")
	wantMarked(t, e, before, "failed group updates")
}

// testGroupMarks: every group write marks exactly the users whose desired
// state it changes, in its own transaction.
func testGroupMarks(t *testing.T, e *env) {
	a := createUser(t, e, "a")
	b := createUser(t, e, "b")
	c := createUser(t, e, "c")
	d := createUser(t, e, "d")
	outsider := createUser(t, e, "outsider")
	settle(t, e)

	step := func(what string, write func() error, marked ...directory.User) {
		t.Helper()
		e.clock.Advance(time.Minute)
		before := states(t, e)
		mustNil(t, write(), what)
		wantMarked(t, e, before, what, ids(marked...)...)
	}
	var g directory.Group
	step("create group with a and b", func() (err error) {
		g, err = e.s.CreateGroup(e.ctx, directory.Group{DisplayName: "Agents", Members: []string{a.ID, b.ID}})
		return err
	}, a, b)
	if st := getState(t, e, a.ID); st.DesiredGen != 2 || !st.Pending() {
		t.Fatalf("a after create group: %+v", st)
	}

	// c has failed attempts pending: the mark forgets them and makes c due now.
	_, err := e.s.UpdateUser(e.ctx, c.ID, func(u *directory.User) error { u.Active = false; return nil })
	mustNil(t, err, "UpdateUser c")
	for _, it := range claim(t, e, "w", time.Minute, 100) {
		mustNil(t, e.s.MarkFailed(e.ctx, it.State.UserID, it.State.DesiredGen, "twilio: 503", e.now().Add(time.Hour)), "MarkFailed")
	}
	if st := getState(t, e, c.ID); st.Attempts != 1 || st.LastError == "" {
		t.Fatalf("c before being added: %+v", st)
	}
	step("add c", func() error { setMembers(t, e, g.ID, a.ID, b.ID, c.ID); return nil }, c)
	step("remove b", func() error { setMembers(t, e, g.ID, c.ID, a.ID); return nil }, b)
	step("same members, other order, new resource", func() error {
		_, err := e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error {
			g.Members = []string{c.ID, a.ID, c.ID}
			g.Resource = json.RawMessage(`{"note":"resource only"}`)
			return nil
		})
		return err
	})
	step("rename", func() error {
		_, err := e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error { g.DisplayName = "Agents EMEA"; return nil })
		return err
	}, a, c)
	step("set externalId", func() error {
		_, err := e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error { g.ExternalID = "entra-obj-1"; return nil })
		return err
	}, a, c)
	step("recase the name", func() error {
		_, err := e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error { g.DisplayName = "AGENTS EMEA"; return nil })
		return err
	}, a, c)
	step("rename and swap a for d", func() error {
		_, err := e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error {
			g.DisplayName = "Agents"
			g.Members = []string{c.ID, d.ID}
			return nil
		})
		return err
	}, a, c, d)
	step("swap c for b", func() error { setMembers(t, e, g.ID, d.ID, b.ID); return nil }, b, c)
	step("empty group", func() error { setMembers(t, e, g.ID); return nil }, b, d)
	step("fill again", func() error { setMembers(t, e, g.ID, a.ID, b.ID, c.ID); return nil }, a, b, c)
	other := createGroup(t, e, "Other", a.ID)
	step("delete group", func() error { return e.s.DeleteGroup(e.ctx, g.ID, nil) }, a, b, c)
	step("delete empty group", func() error {
		empty := createGroup(t, e, "Empty")
		return e.s.DeleteGroup(e.ctx, empty.ID, nil)
	})
	// Memberships of a user who is deleted meanwhile: the tombstone is not
	// touched by later group writes.
	mustNil(t, e.s.DeleteUser(e.ctx, a.ID, nil), "DeleteUser a")
	step("rename a group whose member was deleted", func() error {
		_, err := e.s.UpdateGroup(e.ctx, other.ID, func(g *directory.Group) error { g.DisplayName = "Other 2"; return nil })
		return err
	})
	if got := getGroup(t, e, other.ID); len(got.Members) != 0 {
		t.Fatalf("deleted user still a member: %v", got.Members)
	}
	if st := getState(t, e, outsider.ID); st.DesiredGen != 1 || st.Pending() {
		t.Fatalf("outsider was marked: %+v", st)
	}
}

func testClaimGroups(t *testing.T, e *env) {
	a := createUser(t, e, "a")
	b := createUser(t, e, "b")
	c := createUser(t, e, "c")
	// Bytewise order would be "Mid", "Zeta", "alpha": the store orders
	// case-insensitively.
	zeta, err := e.s.CreateGroup(e.ctx, directory.Group{DisplayName: "Zeta", ExternalID: "z-1", Members: []string{a.ID, b.ID}})
	mustNil(t, err, "CreateGroup Zeta")
	alpha := createGroup(t, e, "alpha", a.ID)
	mid := createGroup(t, e, "Mid", a.ID)
	createGroup(t, e, "Nobody")

	wantA := []directory.GroupRef{
		{ID: alpha.ID, DisplayName: "alpha"},
		{ID: mid.ID, DisplayName: "Mid"},
		{ID: zeta.ID, DisplayName: "Zeta", ExternalID: "z-1"},
	}
	wantB := []directory.GroupRef{{ID: zeta.ID, DisplayName: "Zeta", ExternalID: "z-1"}}
	check := func(what string, got, want []directory.GroupRef) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: groups %+v, want %+v", what, got, want)
		}
	}
	items := claim(t, e, "w", time.Minute, 10)
	if len(items) != 3 {
		t.Fatalf("claimed %d", len(items))
	}
	var genA int64
	for _, it := range items {
		switch it.State.UserID {
		case a.ID:
			genA = it.State.DesiredGen
			check("claimed a", it.Groups, wantA)
		case b.ID:
			check("claimed b", it.Groups, wantB)
		case c.ID:
			check("claimed c", it.Groups, nil)
		}
		mustNil(t, e.s.MarkApplied(e.ctx, it.State.UserID, it.State.DesiredGen, "WK"), "MarkApplied")
	}
	for _, tc := range []struct {
		u    directory.User
		want []directory.GroupRef
	}{{a, wantA}, {b, wantB}, {c, nil}} {
		got, err := e.s.GroupsOfUser(e.ctx, tc.u.ID)
		mustNil(t, err, "GroupsOfUser")
		check("GroupsOfUser "+tc.u.UserName, got, tc.want)
	}

	// A rename is handed out with the generation it marked.
	e.clock.Advance(time.Second)
	_, err = e.s.UpdateGroup(e.ctx, alpha.ID, func(g *directory.Group) error { g.DisplayName = "Omega"; return nil })
	mustNil(t, err, "rename alpha")
	items = claim(t, e, "w", time.Minute, 10)
	if len(items) != 1 || items[0].State.UserID != a.ID || items[0].State.DesiredGen != genA+1 {
		t.Fatalf("claim after rename: %+v", items)
	}
	check("claimed a after rename", items[0].Groups, []directory.GroupRef{
		{ID: mid.ID, DisplayName: "Mid"},
		{ID: alpha.ID, DisplayName: "Omega"},
		{ID: zeta.ID, DisplayName: "Zeta", ExternalID: "z-1"},
	})

	// A deleted user's tombstone carries no groups.
	mustNil(t, e.s.DeleteUser(e.ctx, b.ID, nil), "DeleteUser b")
	items = claim(t, e, "w", time.Minute, 10)
	if len(items) != 1 || items[0].State.UserID != b.ID || items[0].User != nil || items[0].Groups != nil {
		t.Fatalf("claim of a tombstone: %+v", items)
	}
}

func testDeleteUserMemberships(t *testing.T, e *env) {
	a := createUser(t, e, "a")
	b := createUser(t, e, "b")
	g := createGroup(t, e, "Team", a.ID, b.ID)
	h := createGroup(t, e, "Only A", a.ID)
	settle(t, e)
	e.clock.Advance(time.Minute)
	before := states(t, e)
	mustNil(t, e.s.DeleteUser(e.ctx, a.ID, nil), "DeleteUser a")

	// The memberships are gone; the groups' versions are not bumped.
	want := g
	want.Members = []string{b.ID}
	wantGroup(t, getGroup(t, e, g.ID), want, "Team after DeleteUser")
	want = h
	want.Members = []string{}
	wantGroup(t, getGroup(t, e, h.ID), want, "Only A after DeleteUser")
	listed, _, err := e.s.ListGroups(e.ctx, directory.GroupQuery{WithMembers: true})
	mustNil(t, err, "ListGroups")
	for _, lg := range listed {
		if slices.Contains(lg.Members, a.ID) {
			t.Fatalf("ListGroups still lists the deleted user in %s", lg.DisplayName)
		}
	}
	_, err = e.s.GroupsOfUser(e.ctx, a.ID)
	wantKind(t, err, directory.ErrNotFound, "GroupsOfUser deleted user")
	// Only a's own state changes (it becomes a tombstone); b is left alone.
	after := states(t, e)
	if st := after[a.ID]; !st.Deleted || st.DesiredGen != before[a.ID].DesiredGen+1 {
		t.Fatalf("tombstone of a: %+v", st)
	}
	delete(before, a.ID)
	delete(after, a.ID)
	for id, st := range before {
		wantState(t, after[id], st, "other user after DeleteUser")
	}

	// The deleted ID cannot be added back.
	_, err = e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error { g.Members = append(g.Members, a.ID); return nil })
	wantKind(t, err, directory.ErrInvalid, "re-adding a deleted user")
	// A user re-created with the same name is a new user, in no group.
	again := createUser(t, e, "a")
	refs, err := e.s.GroupsOfUser(e.ctx, again.ID)
	mustNil(t, err, "GroupsOfUser re-created")
	if len(refs) != 0 {
		t.Fatalf("re-created user inherited groups: %+v", refs)
	}
}

// testConcurrentGroupWrites: concurrent writers of one group lose no update;
// writers of different groups with shared members do not fail (PostgreSQL:
// no deadlocks between their sync marks).
func testConcurrentGroupWrites(t *testing.T, e *env) {
	const nUsers = 24
	var users []string
	for i := range nUsers {
		users = append(users, createUser(t, e, fmt.Sprintf("user%02d", i)).ID)
	}
	shared := createGroup(t, e, "Shared")
	var groups []directory.Group
	for i := range 4 {
		groups = append(groups, createGroup(t, e, fmt.Sprintf("G%d", i), users...))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	// Each worker adds its own users to Shared, one at a time.
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < nUsers; i += 4 {
				_, err := e.s.UpdateGroup(e.ctx, shared.ID, func(g *directory.Group) error {
					g.Members = append(g.Members, users[i])
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("add to Shared: %w", err)
				}
			}
		})
	}
	// Others rename and reshape the overlapping groups G0..G3.
	for gi, g := range groups {
		wg.Go(func() {
			for round := range 6 {
				_, err := e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error {
					g.DisplayName = fmt.Sprintf("G%d round %d", gi, round)
					if round%2 == 0 {
						g.Members = users[round : nUsers-gi]
					} else {
						g.Members = users
					}
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("reshape G%d: %w", gi, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := getGroup(t, e, shared.ID)
	if !slices.Equal(got.Members, sorted(users...)) || got.Version != 1+nUsers {
		t.Fatalf("Shared after %d concurrent adds: %d members, version %d (lost updates)", nUsers, len(got.Members), got.Version)
	}
}

// testLargeGroup: adding one member to a large group touches that member
// only (the store diffs the member lists; see also the backends' row-write
// count tests).
func testLargeGroup(t *testing.T, e *env) {
	n := 5000
	if testing.Short() {
		n = 500
	}
	members := make([]string, n)
	for i := range members {
		u, err := e.s.CreateUser(e.ctx, directory.User{UserName: fmt.Sprintf("member%05d", i)})
		mustNil(t, err, "CreateUser")
		members[i] = u.ID
	}
	newcomer := createUser(t, e, "newcomer")
	g := createGroup(t, e, "Everyone", members...)
	if len(g.Members) != n {
		t.Fatalf("created with %d members", len(g.Members))
	}

	e.clock.Advance(time.Minute)
	before := states(t, e)
	got, err := e.s.UpdateGroup(e.ctx, g.ID, func(g *directory.Group) error {
		if len(g.Members) != n {
			return fmt.Errorf("mutate saw %d members", len(g.Members))
		}
		g.Members = append(g.Members, newcomer.ID)
		return nil
	})
	mustNil(t, err, "add one member")
	if len(got.Members) != n+1 || !slices.Contains(got.Members, newcomer.ID) {
		t.Fatalf("after adding one: %d members", len(got.Members))
	}
	wantMarked(t, e, before, "add one member to a large group", newcomer.ID)

	e.clock.Advance(time.Minute)
	before = states(t, e)
	setMembers(t, e, g.ID, members[1:]...) // drops members[0] and the newcomer
	wantMarked(t, e, before, "remove two members of a large group", members[0], newcomer.ID)
	if got := getGroup(t, e, g.ID); len(got.Members) != n-1 {
		t.Fatalf("after removing two: %d members", len(got.Members))
	}
}

// testDeleteGroupPrecondition: DeleteGroup's check sees the group's version
// and, by failing, keeps the group and its members, and marks nobody.
func testDeleteGroupPrecondition(t *testing.T, e *env) {
	a := createUser(t, e, "dora@example.com")
	g := createGroup(t, e, "Night shift", a.ID)
	g = setMembers(t, e, g.ID, a.ID) // version 2, same members
	before := getState(t, e, a.ID)
	e.clock.Advance(time.Minute)

	refused := errors.New("version does not match")
	var seen []int64
	err := e.s.DeleteGroup(e.ctx, g.ID, func(v int64) error { seen = append(seen, v); return refused })
	if !errors.Is(err, refused) {
		t.Fatalf("DeleteGroup with a failing check: %v, want the check's error as is", err)
	}
	if len(seen) != 1 || seen[0] != g.Version {
		t.Fatalf("check saw versions %v, want [%d]", seen, g.Version)
	}
	got := getGroup(t, e, g.ID)
	if got.Version != g.Version || len(got.Members) != 1 || got.Members[0] != a.ID {
		t.Fatalf("after a refused delete: version %d members %v", got.Version, got.Members)
	}
	wantState(t, getState(t, e, a.ID), before, "member's sync state after a refused delete")

	mustNil(t, e.s.DeleteGroup(e.ctx, g.ID, func(int64) error { return nil }), "DeleteGroup with a passing check")
	_, err = e.s.GetGroup(e.ctx, g.ID)
	wantKind(t, err, directory.ErrNotFound, "GetGroup after the delete")
	wantKind(t, e.s.DeleteGroup(e.ctx, g.ID, func(int64) error { t.Error("check called for a missing group"); return nil }),
		directory.ErrNotFound, "DeleteGroup of a missing group with a check")
}
