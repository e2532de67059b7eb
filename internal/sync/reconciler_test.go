package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/flexbridge/flexbridge/internal/directory"
	fbsync "github.com/flexbridge/flexbridge/internal/sync"
	"github.com/flexbridge/flexbridge/internal/taskrouter"
	"github.com/flexbridge/flexbridge/internal/taskrouter/sandbox"
	"github.com/flexbridge/flexbridge/mapping"
)

// clock is a fake clock shared by the store and the reconciler.
type clock struct {
	mu gosync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t       *testing.T
	ctx     context.Context
	clk     *clock
	store   directory.Store
	sb      *sandbox.Server
	workers *taskrouter.Client
	rec     *fbsync.Reconciler
	mapping *mapping.Config
}

const (
	testAccount = "AC0123456789abcdef0123456789abcdef"
	testToken   = "0123456789abcdef0123456789abcdef"
)

func newHarness(t *testing.T, mappingFile string) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), clk: &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}}
	var err error
	h.store, err = directory.Open(h.ctx, directory.Options{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "fb.db"), Now: h.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.store.Close() })
	h.sb = sandbox.New(sandbox.Options{AccountSID: testAccount, AuthToken: testToken})
	srv := httptest.NewServer(h.sb)
	t.Cleanup(srv.Close)
	h.workers, err = taskrouter.New(taskrouter.Config{AccountSID: testAccount, AuthToken: testToken,
		WorkspaceSID: h.sb.Workspaces()[0], BaseURL: srv.URL, Timeout: 5 * time.Second}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if mappingFile == "" {
		mappingFile = filepath.Join("..", "..", "configs", "mapping.yaml")
	}
	h.mapping, err = mapping.LoadFile(mappingFile)
	if err != nil {
		t.Fatal(err)
	}
	h.rec = fbsync.New(fbsync.Options{
		Store: h.store, Workers: h.workers, Mapping: func() *mapping.Config { return h.mapping },
		Logger: zaptest.NewLogger(t), Now: h.clk.Now, Owner: "test", MaxBackoff: time.Minute,
	})
	return h
}

func userResource(userName, display string, extra ...string) json.RawMessage {
	s := `{"userName":"` + userName + `","displayName":"` + display + `","emails":[{"value":"` + userName + `","type":"work","primary":true}],"active":true`
	for _, x := range extra {
		s += "," + x
	}
	return json.RawMessage(s + "}")
}

func (h *harness) createUser(userName, display string, extra ...string) directory.User {
	h.t.Helper()
	u, err := h.store.CreateUser(h.ctx, directory.User{UserName: userName, Active: true, Resource: userResource(userName, display, extra...)})
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

// pass runs one reconciler pass and returns how many users it processed.
func (h *harness) pass() int {
	h.t.Helper()
	n, err := h.rec.RunOnce(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) worker(name string) (taskrouter.Worker, bool) {
	h.t.Helper()
	w, found, err := h.workers.FindWorker(h.ctx, name)
	if err != nil {
		h.t.Fatal(err)
	}
	return w, found
}

func (h *harness) state(id string) directory.SyncState {
	h.t.Helper()
	st, err := h.store.GetSyncState(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func decode(t *testing.T, attrs string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(attrs), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCreateUpdateDeactivate(t *testing.T) {
	h := newHarness(t, "")
	u := h.createUser("ada@example.com", "Ada Lovelace")
	if n := h.pass(); n != 1 {
		t.Fatalf("processed %d users, want 1", n)
	}
	w, found := h.worker("ada@example.com")
	if !found {
		t.Fatal("no worker created")
	}
	a := decode(t, w.Attributes)
	if a["full_name"] != "Ada Lovelace" || a["email"] != "ada@example.com" || strings.Join(toStrings(a["roles"]), ",") != "agent" {
		t.Errorf("attributes %s", w.Attributes)
	}
	if !mapping.HasMarker(w.Attributes) {
		t.Error("no ownership marker")
	}
	st := h.state(u.ID)
	if st.WorkerSID != w.SID || st.AppliedGen != st.DesiredGen || st.LastError != "" {
		t.Errorf("state %+v", st)
	}
	if h.pass() != 0 {
		t.Error("an applied user was claimed again")
	}

	// Keys the bridge does not own survive, byte for byte.
	foreign := `{"routing":{"skills":["sales"],"levels":{"sales":3}},"disabled_skills":{"skills":[],"levels":{}},"team_sid":"WTaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","custom":1}`
	var withForeign map[string]json.RawMessage
	_ = json.Unmarshal([]byte(w.Attributes), &withForeign)
	_ = json.Unmarshal([]byte(foreign), &withForeign)
	raw, _ := json.Marshal(withForeign)
	if _, err := h.workers.UpdateWorkerAttributes(h.ctx, w.SID, string(raw), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.UpdateUser(h.ctx, u.ID, func(u *directory.User) error {
		u.Resource = userResource("ada@example.com", "Augusta Ada King")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.pass()
	w, _ = h.worker("ada@example.com")
	if decode(t, w.Attributes)["full_name"] != "Augusta Ada King" {
		t.Errorf("full_name not updated: %s", w.Attributes)
	}
	for _, k := range []string{`"routing":{"skills":["sales"],"levels":{"sales":3}}`, `"disabled_skills":{"skills":[],"levels":{}}`,
		`"team_sid":"WTaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"`, `"custom":1`} {
		if !strings.Contains(w.Attributes, k) {
			t.Errorf("unowned %s not preserved: %s", k, w.Attributes)
		}
	}

	// Deactivate: offline (rejecting reservations) first, then delete.
	before := h.sb.Stats()
	if _, err := h.store.UpdateUser(h.ctx, u.ID, func(u *directory.User) error { u.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	h.pass()
	if _, found := h.worker("ada@example.com"); found {
		t.Fatal("worker still there after deactivation")
	}
	after := h.sb.Stats()
	if after.Count("POST", sandbox.RouteWorker)-before.Count("POST", sandbox.RouteWorker) != 1 ||
		after.Count("DELETE", sandbox.RouteWorker)-before.Count("DELETE", sandbox.RouteWorker) != 1 {
		t.Errorf("want one offline update and one delete, stats %v", after.Requests)
	}
	if st := h.state(u.ID); st.WorkerSID != "" || st.AppliedGen != st.DesiredGen {
		t.Errorf("state after deactivation %+v", st)
	}

	// Reactivation brings a worker back for the same user.
	if _, err := h.store.UpdateUser(h.ctx, u.ID, func(u *directory.User) error { u.Active = true; return nil }); err != nil {
		t.Fatal(err)
	}
	h.pass()
	if _, found := h.worker("ada@example.com"); !found {
		t.Fatal("no worker after reactivation")
	}

	audit, err := h.store.ListAudit(h.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range audit {
		actions = append(actions, r.Action)
		if strings.Contains(string(r.Detail), "Ada") {
			t.Errorf("audit detail carries personal data: %s", r.Detail)
		}
	}
	if got := strings.Join(actions, ","); got != "worker.create,worker.delete,worker.update,worker.create" {
		t.Errorf("audit actions (newest first) = %s", got)
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestDeletedUserRemovesWorkerAndTombstone(t *testing.T) {
	h := newHarness(t, "")
	u := h.createUser("gone@example.com", "Gone")
	h.pass()
	if err := h.store.DeleteUser(h.ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	h.pass()
	if _, found := h.worker("gone@example.com"); found {
		t.Error("worker of a deleted user remains")
	}
	if _, err := h.store.GetSyncState(h.ctx, u.ID); err == nil {
		t.Error("tombstone not cleared after the worker was removed")
	}
}

func TestPreconditionFailedIsRetriedWithAFreshRead(t *testing.T) {
	h := newHarness(t, "")
	u := h.createUser("eve@example.com", "Eve")
	h.pass()
	w, _ := h.worker("eve@example.com")
	h.sb.InjectFault(sandbox.Fault{Method: "POST", PathSuffix: "/Workers/" + w.SID, Status: 412, Times: 1})
	if _, err := h.store.UpdateUser(h.ctx, u.ID, func(u *directory.User) error {
		u.Resource = userResource("eve@example.com", "Eve Changed")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.pass()
	w, _ = h.worker("eve@example.com")
	if decode(t, w.Attributes)["full_name"] != "Eve Changed" {
		t.Errorf("update lost after a 412: %s", w.Attributes)
	}
	if st := h.state(u.ID); st.AppliedGen != st.DesiredGen || st.Attempts != 0 {
		t.Errorf("state %+v", st)
	}
	if h.sb.Stats().Faults != 1 {
		t.Errorf("faults answered: %d", h.sb.Stats().Faults)
	}
}

func TestRateLimitBacksOffAtLeastRetryAfter(t *testing.T) {
	h := newHarness(t, "")
	u := h.createUser("rl@example.com", "Rate Limited")
	h.sb.InjectFault(sandbox.Fault{Method: "POST", PathSuffix: "/Workers", Status: 429, RetryAfter: "7", Times: 1})
	h.pass()
	st := h.state(u.ID)
	if st.Attempts != 1 || st.LastError == "" || st.AppliedGen >= st.DesiredGen {
		t.Fatalf("state after 429 %+v", st)
	}
	if wait := st.NextAttemptAt.Sub(h.clk.Now()); wait < 7*time.Second {
		t.Errorf("retry scheduled after %s, want at least Retry-After 7s", wait)
	}
	if h.pass() != 0 {
		t.Error("retried before the backoff elapsed")
	}
	h.clk.Advance(time.Minute + time.Second)
	if h.pass() != 1 {
		t.Fatal("not retried after the backoff")
	}
	if _, found := h.worker("rl@example.com"); !found {
		t.Error("no worker after the retry")
	}
}

func TestLostCreateResponseAdoptsInsteadOfDuplicating(t *testing.T) {
	h := newHarness(t, "")
	u := h.createUser("lost@example.com", "Lost Response")
	// The create happens, but the answer is a 503: the bridge cannot know it worked.
	h.sb.InjectFault(sandbox.Fault{Method: "POST", PathSuffix: "/Workers", Status: 503, Times: 1, Apply: true})
	h.pass()
	h.clk.Advance(2 * time.Minute)
	h.pass()
	w, found := h.worker("lost@example.com")
	if !found {
		t.Fatal("no worker")
	}
	if st := h.state(u.ID); st.WorkerSID != w.SID || st.AppliedGen != st.DesiredGen {
		t.Errorf("state %+v, worker %s", st, w.SID)
	}
	if n := h.sb.Stats().Count("POST", sandbox.RouteWorkers); n != 1 {
		t.Errorf("%d creates, want 1", n)
	}
}

func TestForeignWorkerIsNotAdopted(t *testing.T) {
	h := newHarness(t, "")
	// Flex made this worker at an SSO login; it carries no flexbridge marker.
	flex, err := h.workers.CreateWorker(h.ctx, "flexuser@example.com", `{"roles":["admin"],"full_name":"Set By Flex"}`)
	if err != nil {
		t.Fatal(err)
	}
	u := h.createUser("flexuser@example.com", "From IdP")
	h.pass()
	st := h.state(u.ID)
	if st.LastError == "" || !strings.Contains(st.LastError, "not created by flexbridge") {
		t.Errorf("want a recorded refusal, state %+v", st)
	}
	w, _ := h.workers.FetchWorker(h.ctx, flex.SID)
	if w.Attributes != `{"roles":["admin"],"full_name":"Set By Flex"}` {
		t.Errorf("foreign worker changed: %s", w.Attributes)
	}
}

func TestWorkerDeletedBehindOurBackIsRecreated(t *testing.T) {
	h := newHarness(t, "")
	u := h.createUser("phoenix@example.com", "Phoenix")
	h.pass()
	w, _ := h.worker("phoenix@example.com")
	if err := h.workers.DeleteWorker(h.ctx, w.SID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.MarkAllForSync(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.pass()
	w2, found := h.worker("phoenix@example.com")
	if !found || w2.SID == w.SID {
		t.Fatalf("not recreated: %v %s", found, w2.SID)
	}
	if st := h.state(u.ID); st.WorkerSID != w2.SID {
		t.Errorf("state points at %s, want %s", st.WorkerSID, w2.SID)
	}
}

func TestNoRoleMeansNoWorker(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mapping.yaml")
	deny := "version: 1\nfriendly_name: \"{{ .UserName }}\"\nroles:\n  rules:\n    - when: { group: \"Flex Agents\" }\n      grant: [agent]\n"
	if err := os.WriteFile(file, []byte(deny), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, file)
	u := h.createUser("nobody@example.com", "No Body")
	h.pass()
	if _, found := h.worker("nobody@example.com"); found {
		t.Error("a user without a role got a worker")
	}
	if st := h.state(u.ID); st.AppliedGen != st.DesiredGen || st.WorkerSID != "" {
		t.Errorf("state %+v", st)
	}
}

func TestConcurrentPassesCreateOneWorkerEach(t *testing.T) {
	h := newHarness(t, "")
	for i := range 40 {
		h.createUser("u"+string(rune('a'+i%26))+string(rune('a'+i/26))+"@example.com", "User")
	}
	var wg gosync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = h.rec.RunOnce(h.ctx) }()
	}
	wg.Wait()
	for h.pass() > 0 {
	}
	n := 0
	if err := h.workers.ListWorkers(h.ctx, func(taskrouter.Worker) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 40 {
		t.Errorf("%d workers, want 40", n)
	}
	if c := h.sb.Stats().Count("POST", sandbox.RouteWorkers); c != 40 {
		t.Errorf("%d creates, want 40", c)
	}
}

func TestGroupMembershipDrivesRoles(t *testing.T) {
	h := newHarness(t, "")
	u := h.createUser("sup@example.com", "Super Visor")
	other := h.createUser("bystander@example.com", "By Stander")
	h.pass()
	g, err := h.store.CreateGroup(h.ctx, directory.Group{DisplayName: "Flex Supervisors", Resource: json.RawMessage(`{}`), Members: []string{u.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if n := h.pass(); n != 1 {
		t.Errorf("a membership change re-synced %d users, want exactly 1", n)
	}
	w, _ := h.worker("sup@example.com")
	if got := strings.Join(toStrings(decode(t, w.Attributes)["roles"]), ","); got != "supervisor,wfo.team_leader" {
		t.Errorf("roles = %s", got)
	}
	if _, err := h.store.UpdateGroup(h.ctx, g.ID, func(g *directory.Group) error { g.Members = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	h.pass()
	w, _ = h.worker("sup@example.com")
	if got := strings.Join(toStrings(decode(t, w.Attributes)["roles"]), ","); got != "agent" {
		t.Errorf("roles after leaving the group = %s", got)
	}
	if st := h.state(other.ID); st.DesiredGen != 1 {
		t.Errorf("bystander re-synced: %+v", st)
	}
}

func TestInsightsWarningIsAudited(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mapping.yaml")
	m := "version: 1\nfriendly_name: \"{{ .UserName }}\"\nroles:\n  default: [agent]\n  rules:\n    - when: { group: \"Insights QM\" }\n      grant: [wfo.quality_manager]\n"
	if err := os.WriteFile(file, []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, file)
	u := h.createUser("qm@example.com", "Quality Manager")
	if _, err := h.store.CreateGroup(h.ctx, directory.Group{DisplayName: "Insights QM", Resource: json.RawMessage(`{}`), Members: []string{u.ID}}); err != nil {
		t.Fatal(err)
	}
	h.pass()
	audit, err := h.store.ListAudit(h.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range audit {
		if r.Action == "mapping.warning" {
			found = true
			if r.Outcome != "warning" || !strings.Contains(string(r.Detail), "wfo.quality_manager") || r.UserID != u.ID {
				t.Errorf("warning record %+v %s", r, r.Detail)
			}
		}
	}
	if !found {
		t.Errorf("no mapping.warning audit record among %d", len(audit))
	}
}

func (h *harness) rename(id, userName string) {
	h.t.Helper()
	if _, err := h.store.UpdateUser(h.ctx, id, func(u *directory.User) error {
		u.UserName = userName
		u.Resource = userResource(userName, "Renamed")
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
}

// A userName change renames the worker (Flex's NameID at the next login is the new name), and
// a new user who takes the old name gets a worker of its own, never the first user's.
func TestRenameAndNameReuse(t *testing.T) {
	h := newHarness(t, "")
	a := h.createUser("ada@example.com", "Ada")
	h.pass()
	wa, _ := h.worker("ada@example.com")
	h.rename(a.ID, "ada.lovelace@example.com")
	h.pass()
	if _, found := h.worker("ada@example.com"); found {
		t.Error("old name still in use after the rename")
	}
	renamed, found := h.worker("ada.lovelace@example.com")
	if !found || renamed.SID != wa.SID {
		t.Fatalf("worker not renamed in place: found=%v sid=%s want %s", found, renamed.SID, wa.SID)
	}
	b := h.createUser("ada@example.com", "Second Ada")
	h.pass()
	wb, found := h.worker("ada@example.com")
	if !found || wb.SID == wa.SID {
		t.Fatalf("second user got %s (first user's is %s)", wb.SID, wa.SID)
	}
	if m, _ := mapping.ReadMarker(wb.Attributes); m.UserID != b.ID {
		t.Errorf("second worker's marker names %s, want %s", m.UserID, b.ID)
	}
	// Deactivating the second user removes only its own worker.
	if _, err := h.store.UpdateUser(h.ctx, b.ID, func(u *directory.User) error { u.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	h.pass()
	if w, err := h.workers.FetchWorker(h.ctx, wa.SID); err != nil || w.FriendlyName != "ada.lovelace@example.com" {
		t.Errorf("first user's worker affected: %v %v", w.FriendlyName, err)
	}
}

// A worker carrying another user's marker is never adopted.
func TestOtherUsersWorkerIsNotAdopted(t *testing.T) {
	h := newHarness(t, "")
	if _, err := h.workers.CreateWorker(h.ctx, "taken@example.com",
		`{"flexbridge":{"managed":true,"user_id":"someone-else"},"roles":["admin"]}`); err != nil {
		t.Fatal(err)
	}
	u := h.createUser("taken@example.com", "Taken")
	h.pass()
	if st := h.state(u.ID); !strings.Contains(st.LastError, "belongs to another flexbridge user") || st.WorkerSID != "" {
		t.Errorf("state %+v", st)
	}
	w, _ := h.worker("taken@example.com")
	if m, _ := mapping.ReadMarker(w.Attributes); m.UserID != "someone-else" {
		t.Errorf("foreign marker overwritten: %s", w.Attributes)
	}
}

// Deleting a user whose create answer was lost still removes the worker that was created.
func TestDeleteAfterLostCreateRemovesWorker(t *testing.T) {
	h := newHarness(t, "")
	u := h.createUser("lost.delete@example.com", "Lost Delete")
	h.sb.InjectFault(sandbox.Fault{Method: "POST", PathSuffix: "/Workers", Status: 503, Times: 1, Apply: true})
	h.pass()
	if _, found := h.worker("lost.delete@example.com"); !found {
		t.Fatal("the faulted create did not create the worker")
	}
	if err := h.store.DeleteUser(h.ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(10 * time.Minute)
	for h.pass() > 0 {
	}
	if _, found := h.worker("lost.delete@example.com"); found {
		t.Error("orphan worker left behind")
	}
}

func TestLoginIdentityFollowsSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mapping.yaml")
	m := "version: 1\nfriendly_name: \"{{ .UserName }}\"\nowns: [full_name]\nattributes:\n  full_name: \"{{ .DisplayName }}\"\n" +
		"roles:\n  default: [agent]\n  rules:\n    - when: { group: \"Flex Admins\" }\n      grant: [admin]\n" +
		"sources: { groups: saml }\n"
	if err := os.WriteFile(file, []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, file)
	// A person provisioned by SCIM, whose logins are authoritative for groups only.
	u := h.createUser("ada@example.com", "Ada (SCIM)")
	h.pass()
	login, err := mapping.EncodeLogin(mapping.Identity{DisplayName: "Ada (SAML)", Groups: []mapping.Group{{DisplayName: "Flex Admins"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.PutSAMLIdentity(h.ctx, directory.SAMLIdentity{UserID: u.ID, IdP: "okta", Identity: login}); err != nil {
		t.Fatal(err)
	}
	if n := h.pass(); n != 1 {
		t.Fatalf("a changed login identity re-synced %d users, want 1", n)
	}
	w, _ := h.worker("ada@example.com")
	attrs := decode(t, w.Attributes)
	if got := strings.Join(toStrings(attrs["roles"]), ","); got != "admin" {
		t.Errorf("roles = %s, want admin (groups from the login)", got)
	}
	if attrs["full_name"] != "Ada (SCIM)" {
		t.Errorf("full_name = %v, want SCIM's (display_name stays scim)", attrs["full_name"])
	}

	// A person who only ever logged in: the login describes them entirely.
	jit, err := h.store.CreateUser(h.ctx, directory.User{UserName: "bo@example.com", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	login, _ = mapping.EncodeLogin(mapping.Identity{DisplayName: "Bo", Groups: []mapping.Group{}})
	if _, err := h.store.PutSAMLIdentity(h.ctx, directory.SAMLIdentity{UserID: jit.ID, IdP: "okta", Identity: login}); err != nil {
		t.Fatal(err)
	}
	h.pass()
	w, ok := h.worker("bo@example.com")
	if !ok {
		t.Fatal("no worker for the login-only person")
	}
	attrs = decode(t, w.Attributes)
	if attrs["full_name"] != "Bo" || strings.Join(toStrings(attrs["roles"]), ",") != "agent" {
		t.Errorf("login-only worker attributes = %v", attrs)
	}
}

// stopAfter is the sandbox's TaskRouter client with a shutdown arriving during a CreateWorker:
// after the create (applied) or instead of its answer (interrupted).
type stopAfter struct {
	*taskrouter.Client
	stop    context.CancelFunc
	applied bool
}

func (s *stopAfter) CreateWorker(ctx context.Context, friendlyName, attributes string) (taskrouter.Worker, error) {
	if !s.applied {
		s.stop()
		return taskrouter.Worker{}, ctx.Err()
	}
	w, err := s.Client.CreateWorker(ctx, friendlyName, attributes)
	s.stop()
	return w, err
}

// TestShutdownDuringAPass: a pass whose context ends while it works still records what it
// did in TaskRouter (applied generation, audit), and a pass cut short before its change hands
// its claim back without a failure in the audit trail, so the next pass (here at the same
// instant) takes it up instead of waiting out the lease.
func TestShutdownDuringAPass(t *testing.T) {
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			h := newHarness(t, "")
			u := h.createUser("stop@example.com", "Stop Me")
			ctx, stop := context.WithCancel(h.ctx)
			rec := fbsync.New(fbsync.Options{
				Store: h.store, Workers: &stopAfter{Client: h.workers, stop: stop, applied: applied},
				Mapping: func() *mapping.Config { return h.mapping }, Logger: zaptest.NewLogger(t), Now: h.clk.Now, Owner: "test",
			})
			if _, err := rec.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if ctx.Err() == nil {
				t.Fatal("the pass was not stopped")
			}
			st := h.state(u.ID)
			audit, err := h.store.ListAudit(h.ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			for _, r := range audit {
				actions = append(actions, r.Action+":"+r.Outcome)
			}
			if applied {
				w, found := h.worker("stop@example.com")
				if !found || st.AppliedGen != st.DesiredGen || st.WorkerSID != w.SID {
					t.Fatalf("after a create cut short by a shutdown: state %+v, worker found %v", st, found)
				}
				if !slices.Contains(actions, "worker.create:ok") {
					t.Errorf("audit %v, want the create recorded", actions)
				}
				return
			}
			if st.AppliedGen == st.DesiredGen || st.LeaseOwner != "" || st.NextAttemptAt.After(h.clk.Now()) {
				t.Fatalf("after an interrupted pass: state %+v, want pending, unleased, due now", st)
			}
			if len(actions) != 0 {
				t.Errorf("audit %v, want nothing for an interrupted pass", actions)
			}
			if n := h.pass(); n != 1 {
				t.Fatalf("the next pass claimed %d users, want 1", n)
			}
			if _, found := h.worker("stop@example.com"); !found {
				t.Error("no worker after the next pass")
			}
		})
	}
}
