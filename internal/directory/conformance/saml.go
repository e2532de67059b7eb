package conformance

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexbridge/flexbridge/internal/directory"
)

var samlTests = []subtest{
	{"RememberAssertion", testRememberAssertion},
	{"RememberAssertionConcurrent", testRememberAssertionConcurrent},
	{"SAMLIdentity", testSAMLIdentity},
	{"SAMLIdentityReachesClaim", testSAMLIdentityReachesClaim},
	{"Deprovisioned", testDeprovisioned},
}

func testRememberAssertion(t *testing.T, e *env) {
	until := e.now().Add(5 * time.Minute)
	fresh, err := e.s.RememberAssertion(e.ctx, "_a1", until)
	mustNil(t, err, "RememberAssertion")
	if !fresh {
		t.Fatal("first use of _a1: fresh = false")
	}
	fresh, err = e.s.RememberAssertion(e.ctx, "_a1", until)
	mustNil(t, err, "RememberAssertion again")
	if fresh {
		t.Fatal("replay of _a1 was reported fresh")
	}
	fresh, err = e.s.RememberAssertion(e.ctx, "_A1", until)
	mustNil(t, err, "RememberAssertion _A1")
	if !fresh {
		t.Fatal("IDs are case-sensitive: _A1 is not _a1")
	}
	// Still refused just before its time, forgotten once past it.
	e.clock.Advance(5*time.Minute - time.Second)
	if fresh, err = e.s.RememberAssertion(e.ctx, "_a1", until); err != nil || fresh {
		t.Fatalf("_a1 before expiry: fresh=%v err=%v, want refused", fresh, err)
	}
	e.clock.Advance(2 * time.Second)
	if fresh, err = e.s.RememberAssertion(e.ctx, "_a1", e.now().Add(time.Minute)); err != nil || !fresh {
		t.Fatalf("_a1 after expiry: fresh=%v err=%v, want accepted", fresh, err)
	}
	for _, bad := range []string{"", strings.Repeat("x", 1025), "a\x00b", "\xff"} {
		_, err := e.s.RememberAssertion(e.ctx, bad, until)
		wantKind(t, err, directory.ErrInvalid, fmt.Sprintf("RememberAssertion(%q)", bad))
	}
}

func testRememberAssertionConcurrent(t *testing.T, e *env) {
	const n = 16
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh int
		errs  []error
	)
	until := e.now().Add(time.Hour)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := e.s.RememberAssertion(e.ctx, "_race", until)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				fresh++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent RememberAssertion: %v", errs[0])
	}
	if fresh != 1 {
		t.Fatalf("%d of %d concurrent uses of one assertion were accepted, want exactly 1", fresh, n)
	}
}

func testSAMLIdentity(t *testing.T, e *env) {
	u := createUser(t, e, "ada@example.com")
	_, err := e.s.GetSAMLIdentity(e.ctx, u.ID)
	wantKind(t, err, directory.ErrNotFound, "GetSAMLIdentity before any login")

	before := getState(t, e, u.ID).DesiredGen
	id1 := json.RawMessage(`{"groups":["Flex Admins"]}`)
	changed, err := e.s.PutSAMLIdentity(e.ctx, directory.SAMLIdentity{UserID: u.ID, IdP: "okta", Identity: id1})
	mustNil(t, err, "PutSAMLIdentity")
	if !changed {
		t.Fatal("first PutSAMLIdentity: changed = false")
	}
	if got := getState(t, e, u.ID).DesiredGen; got != before+1 {
		t.Fatalf("desired gen after a changed identity = %d, want %d", got, before+1)
	}
	si, err := e.s.GetSAMLIdentity(e.ctx, u.ID)
	mustNil(t, err, "GetSAMLIdentity")
	if si.UserID != u.ID || si.IdP != "okta" || string(si.Identity) != string(id1) || !si.LoginAt.Equal(e.now()) {
		t.Fatalf("GetSAMLIdentity = %+v", si)
	}
	if got := getUser(t, e, u.ID).Version; got != u.Version {
		t.Fatalf("a SAML login changed the SCIM version: %d, want %d", got, u.Version)
	}

	// The same identity again: the login time moves, nothing is marked.
	e.clock.Advance(time.Minute)
	changed, err = e.s.PutSAMLIdentity(e.ctx, directory.SAMLIdentity{UserID: u.ID, IdP: "okta", Identity: id1})
	mustNil(t, err, "PutSAMLIdentity unchanged")
	if changed {
		t.Fatal("unchanged identity reported changed")
	}
	if got := getState(t, e, u.ID).DesiredGen; got != before+1 {
		t.Fatalf("unchanged identity marked the user: gen %d", got)
	}
	si, _ = e.s.GetSAMLIdentity(e.ctx, u.ID)
	if !si.LoginAt.Equal(e.now()) {
		t.Fatalf("LoginAt = %v, want %v", si.LoginAt, e.now())
	}
	// Another IdP with the same identity counts as a change.
	changed, err = e.s.PutSAMLIdentity(e.ctx, directory.SAMLIdentity{UserID: u.ID, IdP: "entra", Identity: id1})
	mustNil(t, err, "PutSAMLIdentity other IdP")
	if !changed || getState(t, e, u.ID).DesiredGen != before+2 {
		t.Fatal("a change of IdP was not marked")
	}

	_, err = e.s.PutSAMLIdentity(e.ctx, directory.SAMLIdentity{UserID: "no-such-user", IdP: "okta", Identity: id1})
	wantKind(t, err, directory.ErrNotFound, "PutSAMLIdentity for an unknown user")
	for _, bad := range []string{"", "[]", "null", "{", `"x"`} {
		_, err = e.s.PutSAMLIdentity(e.ctx, directory.SAMLIdentity{UserID: u.ID, IdP: "okta", Identity: json.RawMessage(bad)})
		wantKind(t, err, directory.ErrInvalid, fmt.Sprintf("PutSAMLIdentity(%q)", bad))
	}

	// Deleting the user removes the identity.
	mustNil(t, e.s.DeleteUser(e.ctx, u.ID, nil), "DeleteUser")
	_, err = e.s.GetSAMLIdentity(e.ctx, u.ID)
	wantKind(t, err, directory.ErrNotFound, "GetSAMLIdentity after DeleteUser")
}

func testSAMLIdentityReachesClaim(t *testing.T, e *env) {
	a := createUser(t, e, "a@example.com")
	b := createUser(t, e, "b@example.com")
	id := json.RawMessage(`{"displayName":"A"}`)
	_, err := e.s.PutSAMLIdentity(e.ctx, directory.SAMLIdentity{UserID: a.ID, IdP: "okta", Identity: id})
	mustNil(t, err, "PutSAMLIdentity")
	items := claim(t, e, "r1", time.Minute, 10)
	if len(items) != 2 {
		t.Fatalf("claimed %d items, want 2", len(items))
	}
	for _, it := range items {
		switch it.State.UserID {
		case a.ID:
			if string(it.SAML) != string(id) {
				t.Fatalf("claimed item of a: SAML = %q, want %q", it.SAML, id)
			}
		case b.ID:
			if it.SAML != nil {
				t.Fatalf("claimed item of b (no login): SAML = %q, want nil", it.SAML)
			}
		}
	}
}

func testDeprovisioned(t *testing.T, e *env) {
	u := createUser(t, e, "Grace@Example.com")
	_, err := e.s.GetDeprovisioned(e.ctx, "grace@example.com")
	wantKind(t, err, directory.ErrNotFound, "GetDeprovisioned of a live user")
	mustNil(t, e.s.DeleteUser(e.ctx, u.ID, nil), "DeleteUser")
	d, err := e.s.GetDeprovisioned(e.ctx, "GRACE@example.COM")
	mustNil(t, err, "GetDeprovisioned")
	if d.UserName != "Grace@Example.com" || d.UserID != u.ID || !d.DeletedAt.Equal(e.now()) {
		t.Fatalf("GetDeprovisioned = %+v", d)
	}
	_, err = e.s.GetDeprovisioned(e.ctx, "someone@example.com")
	wantKind(t, err, directory.ErrNotFound, "GetDeprovisioned of a stranger")

	// The name is taken again and deleted again: the record follows the newest.
	e.clock.Advance(time.Hour)
	u2 := createUser(t, e, "grace@example.com")
	mustNil(t, e.s.DeleteUser(e.ctx, u2.ID, nil), "DeleteUser again")
	d, err = e.s.GetDeprovisioned(e.ctx, "grace@example.com")
	mustNil(t, err, "GetDeprovisioned again")
	if d.UserID != u2.ID || !d.DeletedAt.Equal(e.now()) {
		t.Fatalf("GetDeprovisioned after the second delete = %+v", d)
	}
}
