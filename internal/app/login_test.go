package app

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/mapping"
	"github.com/flexbridge/flexbridge/saml"
)

// Login-time provisioning against a real SQLite store, without a reconciler (sync waits time
// out after wait); the browser flow through a real IdP is in test/e2e.

const loginMapping = `version: 1
friendly_name: "{{ .UserName }}"
owns: [full_name]
attributes:
  full_name: "{{ .DisplayName }}"
roles:
  default: []
  rules:
    - when: { group: "Flex Agents" }
      grant: [agent]
    - when: { group: "Flex Admins" }
      grant: [admin]
`

type loginEnv struct {
	ctx     context.Context
	store   directory.Store
	h       *logins
	notices int
}

func newLoginEnv(t *testing.T, mappingYAML string) *loginEnv {
	t.Helper()
	st, err := directory.Open(t.Context(), directory.Options{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "fb.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := mapping.Parse([]byte(mappingYAML))
	if err != nil {
		t.Fatal(err)
	}
	e := &loginEnv{ctx: t.Context(), store: st}
	e.h = &logins{
		store: st, mapping: func() *mapping.Config { return m }, notify: func() { e.notices++ },
		wait: 50 * time.Millisecond, landing: "/saml/welcome", log: zap.NewNop(), now: time.Now,
		pollStep: 5 * time.Millisecond,
	}
	return e
}

func aLogin(userName string, groups ...string) saml.Login {
	id := mapping.Identity{UserName: userName, Active: true, DisplayName: "Person " + userName, Groups: []mapping.Group{}}
	for _, g := range groups {
		id.Groups = append(id.Groups, mapping.Group{DisplayName: g})
	}
	return saml.Login{IdP: "okta", NameID: userName, Identity: id}
}

func (e *loginEnv) user(t *testing.T, userName string) (directory.User, bool) {
	t.Helper()
	us, _, err := e.store.ListUsers(e.ctx, directory.UserQuery{UserName: &userName})
	if err != nil {
		t.Fatal(err)
	}
	if len(us) == 0 {
		return directory.User{}, false
	}
	return us[0], true
}

func (e *loginEnv) lastAudit(t *testing.T) directory.AuditRecord {
	t.Helper()
	recs, err := e.store.ListAudit(e.ctx, 1)
	if err != nil || len(recs) == 0 {
		t.Fatalf("no audit record (err %v)", err)
	}
	return recs[0]
}

func wantRefused(t *testing.T, err error, reason string) {
	t.Helper()
	if !errors.Is(err, saml.ErrRefused) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("err = %v, want a refusal (saml.ErrRefused) saying %q", err, reason)
	}
}

func TestLoginCreatesAndUpdates(t *testing.T) {
	e := newLoginEnv(t, loginMapping)
	redirect, err := e.h.Login(e.ctx, aLogin("ada@example.com", "Flex Agents"))
	if err != nil {
		t.Fatal(err)
	}
	if redirect != "/saml/welcome" {
		t.Errorf("redirect = %q, want the landing page", redirect)
	}
	u, ok := e.user(t, "ADA@example.com")
	if !ok || !u.Active || len(u.Resource) != 0 {
		t.Fatalf("person created at login: %+v (found %v)", u, ok)
	}
	si, err := e.store.GetSAMLIdentity(e.ctx, u.ID)
	if err != nil || si.IdP != "okta" || !strings.Contains(string(si.Identity), "Flex Agents") {
		t.Fatalf("stored login identity %+v, %v", si, err)
	}
	if st, _ := e.store.GetSyncState(e.ctx, u.ID); !st.Pending() {
		t.Errorf("the new person is not marked for sync: %+v", st)
	}
	if e.notices != 1 {
		t.Errorf("reconciler woken %d times, want 1", e.notices)
	}
	if a := e.lastAudit(t); a.Action != "saml.login" || a.Outcome != "accepted" || a.UserID != u.ID {
		t.Errorf("audit %+v", a)
	}

	// The same login again changes nothing; a RelayState wins over the landing page.
	l := aLogin("ada@example.com", "Flex Agents")
	l.RelayState = "/somewhere?x=1"
	before, _ := e.store.GetSyncState(e.ctx, u.ID)
	if redirect, err = e.h.Login(e.ctx, l); err != nil || redirect != "/somewhere?x=1" {
		t.Fatalf("second login: %q, %v", redirect, err)
	}
	if after, _ := e.store.GetSyncState(e.ctx, u.ID); after.DesiredGen != before.DesiredGen || e.notices != 1 {
		t.Errorf("an unchanged login re-marked the person: gen %d -> %d, notices %d", before.DesiredGen, after.DesiredGen, e.notices)
	}
	// New groups: stored and marked.
	if _, err = e.h.Login(e.ctx, aLogin("ada@example.com", "Flex Agents", "Flex Admins")); err != nil {
		t.Fatal(err)
	}
	if after, _ := e.store.GetSyncState(e.ctx, u.ID); after.DesiredGen != before.DesiredGen+1 || e.notices != 2 {
		t.Errorf("a changed login was not marked: gen %d -> %d", before.DesiredGen, after.DesiredGen)
	}
}

func TestLoginRefusals(t *testing.T) {
	e := newLoginEnv(t, loginMapping)
	scimUser := func(name string, active bool) directory.User {
		u, err := e.store.CreateUser(e.ctx, directory.User{UserName: name, Active: active,
			Resource: json.RawMessage(`{"userName":"` + name + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	// Denied by the mapping (no group grants a role, no default): nothing is written.
	_, err := e.h.Login(e.ctx, aLogin("nobody@example.com"))
	wantRefused(t, err, "no access")
	if _, ok := e.user(t, "nobody@example.com"); ok {
		t.Error("a person the mapping denies was created")
	}
	if a := e.lastAudit(t); a.Outcome != "refused" || a.UserName != "nobody@example.com" {
		t.Errorf("audit %+v", a)
	}

	// Deactivated through SCIM.
	off := scimUser("off@example.com", false)
	gen, _ := e.store.GetSyncState(e.ctx, off.ID)
	_, err = e.h.Login(e.ctx, aLogin("off@example.com", "Flex Agents"))
	wantRefused(t, err, "deactivated through SCIM")
	if _, err := e.store.GetSAMLIdentity(e.ctx, off.ID); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("a refused login stored an identity: %v", err)
	}
	if st, _ := e.store.GetSyncState(e.ctx, off.ID); st.DesiredGen != gen.DesiredGen {
		t.Error("a refused login marked the person for sync")
	}

	// Deleted through SCIM: refused, and not re-created.
	gone := scimUser("gone@example.com", true)
	if err := e.store.DeleteUser(e.ctx, gone.ID, nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.h.Login(e.ctx, aLogin("Gone@Example.com", "Flex Agents"))
	wantRefused(t, err, "deleted through SCIM")
	if _, ok := e.user(t, "gone@example.com"); ok {
		t.Error("a person deleted through SCIM was re-created at login")
	}
	// Provisioned again through SCIM (into a group that grants a role): welcome back.
	back := scimUser("gone@example.com", true)
	if _, err := e.store.CreateGroup(e.ctx, directory.Group{DisplayName: "Flex Agents", Resource: json.RawMessage(`{}`), Members: []string{back.ID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.Login(e.ctx, aLogin("gone@example.com", "Flex Agents")); err != nil {
		t.Errorf("login after SCIM re-provisioned the person: %v", err)
	}

	// A SCIM user whose SCIM groups give nothing, and the mapping keeps SCIM authoritative for
	// groups: the login's groups do not grant access.
	scimUser("plain@example.com", true)
	_, err = e.h.Login(e.ctx, aLogin("plain@example.com", "Flex Admins"))
	wantRefused(t, err, "no access")
}

func TestLoginWaitsForTheWorker(t *testing.T) {
	e := newLoginEnv(t, loginMapping)
	e.h.wait = 2 * time.Second
	// A stand-in reconciler applies every pending state when woken.
	e.h.notify = func() {
		go func() {
			items, err := e.store.ClaimPending(context.Background(), "test", time.Minute, 10)
			if err != nil {
				return
			}
			for _, it := range items {
				_ = e.store.MarkApplied(context.Background(), it.State.UserID, it.State.DesiredGen, "WK0123")
			}
		}()
	}
	began := time.Now()
	if _, err := e.h.Login(e.ctx, aLogin("ada@example.com", "Flex Agents")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took >= e.h.wait {
		t.Errorf("login took %v: it did not return when the sync was done", took)
	}
	if a := e.lastAudit(t); !strings.Contains(string(a.Detail), `"synced":true`) {
		t.Errorf("audit detail %s, want synced", a.Detail)
	}
}

// TestReplayIsRefusedByAnotherReplica: two replicas (two stores over one database file) share
// the replay cache: an assertion consumed at one is refused at the other.
func TestReplayIsRefusedByAnotherReplica(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "fb.db")
	var caches []replayCache
	for range 2 {
		st, err := directory.Open(t.Context(), directory.Options{Driver: "sqlite", DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		caches = append(caches, replayCache{st})
	}
	until := time.Now().Add(5 * time.Minute)
	fresh, err := caches[0].Remember(t.Context(), "_assertion-1", until)
	if err != nil || !fresh {
		t.Fatalf("first use at replica 0: fresh=%v err=%v", fresh, err)
	}
	fresh, err = caches[1].Remember(t.Context(), "_assertion-1", until)
	if err != nil || fresh {
		t.Fatalf("replay at replica 1: fresh=%v err=%v, want refused", fresh, err)
	}
	if fresh, _ := caches[1].Remember(t.Context(), "_assertion-2", until); !fresh {
		t.Error("another assertion was refused")
	}
}
