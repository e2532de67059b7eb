package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flexbridge/flexbridge/internal/testutil/browser"
	"github.com/flexbridge/flexbridge/internal/testutil/ssp"
)

// samlStack is the e2e stack with SAML single sign-on at a real SimpleSAMLphp IdP.
type samlStack struct {
	*stack
	idp *ssp.IdP
}

func startSAMLStack(t *testing.T) *samlStack {
	t.Helper()
	return startSAMLStackWith(t, "")
}

// startSAMLStackWith adds more, YAML indented as keys of the saml section.
func startSAMLStackWith(t *testing.T, more string) *samlStack {
	t.Helper()
	s := &samlStack{}
	s.stack = startStackWith(t, func(base string) string {
		s.idp = ssp.Start(t, base)
		return fmt.Sprintf(`saml:
  login_wait: 10s
  idps:
    - name: ssp
      metadata_file: %q
      attributes:
        email: email
        display_name: displayName
        groups: groups
`, s.idp.MetadataFile()) + more
	})
	return s
}

// login signs user in through the real IdP in a fresh headless Chromium, starting at
// flexbridge's SP-initiated login, and returns where the browser ends up.
func (s *samlStack) login(t *testing.T, u ssp.User) (finalURL, text string) {
	t.Helper()
	b := browser.New(t)
	return b.LoginSSP(t, s.base+"/saml/login?idp=ssp", u.Username, u.Password)
}

func roles(t *testing.T, a map[string]any) []string {
	t.Helper()
	var out []string
	raw, _ := json.Marshal(a["roles"])
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("roles %v: %v", a["roles"], err)
	}
	return out
}

// TestSAMLLoginProvisionsWorker: a person the IdP authenticates, never provisioned by SCIM,
// logs in SP-initiated; their groups map to roles and the worker exists before the browser
// lands on the welcome page.
func TestSAMLLoginProvisionsWorker(t *testing.T) {
	s := startSAMLStack(t)

	// The SP metadata is public and names the ACS under public_url.
	resp, err := http.Get(s.base + "/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "samlmetadata+xml") {
		t.Fatalf("GET /saml/metadata: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	began := time.Now()
	finalURL, text := s.login(t, ssp.Alice)
	took := time.Since(began)
	if finalURL != s.base+"/saml/welcome" {
		t.Fatalf("Alice landed on %s, want the welcome page:\n%s", finalURL, text)
	}
	if !strings.Contains(text, "signed in as "+ssp.Alice.Email) || !strings.Contains(text, "Your Flex worker: ready") {
		t.Errorf("welcome page text:\n%s", text)
	}
	// The worker is there by the time the browser is sent on (login_wait), not eventually.
	w, err := s.worker(ssp.Alice.Email)
	if err != nil || w == nil {
		t.Fatalf("no worker for %s right after the login (err %v)", ssp.Alice.Email, err)
	}
	a := attrs(t, w)
	got := roles(t, a)
	slices.Sort(got)
	if want := []string{"agent", "supervisor", "wfo.team_leader"}; !slices.Equal(got, want) {
		t.Errorf("roles from Alice's groups %v = %v, want %v", ssp.Alice.Groups, got, want)
	}
	if a["full_name"] != ssp.Alice.DisplayName || a["email"] != ssp.Alice.Email {
		t.Errorf("full_name %v, email %v", a["full_name"], a["email"])
	}
	t.Logf("SP-initiated login through SimpleSAMLphp to worker in place: %v", took.Round(time.Millisecond))

	// Bob, in "Flex Agents" only, is an agent; the person now shows in SCIM too.
	if finalURL, text := s.login(t, ssp.Bob); finalURL != s.base+"/saml/welcome" {
		t.Fatalf("Bob landed on %s:\n%s", finalURL, text)
	}
	w, _ = s.worker(ssp.Bob.Email)
	if w == nil || !slices.Equal(roles(t, attrs(t, w)), []string{"agent"}) {
		t.Fatalf("Bob's worker: %+v", w)
	}
	status, _, doc := s.scim(t, "GET", "/Users?filter=userName%20eq%20%22bob@example.com%22", "", nil)
	if status != 200 || doc["totalResults"] != float64(1) {
		t.Errorf("SCIM lookup of the person created at login: %d %v", status, doc)
	}
}

// TestSAMLDeprovisionedAreRefused: people deleted or deactivated through SCIM cannot come back
// by logging in; no worker is created for them.
func TestSAMLDeprovisionedAreRefused(t *testing.T) {
	s := startSAMLStack(t)

	create := func(u ssp.User) string {
		status, _, doc := s.scim(t, "POST", "/Users", "application/scim+json", map[string]any{
			"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
			"userName": u.Email, "active": true, "displayName": u.DisplayName,
			"emails": []map[string]any{{"value": u.Email, "type": "work", "primary": true}},
		})
		if status != 201 {
			t.Fatalf("SCIM create %s: %d %v", u.Email, status, doc)
		}
		waitFor(t, "worker of "+u.Email, 10*time.Second, func() (bool, error) {
			w, err := s.worker(u.Email)
			return w != nil, err
		})
		return doc["id"].(string)
	}
	// Bob is deleted through SCIM, Carol deactivated (Okta's PATCH).
	bob := create(ssp.Bob)
	carol := create(ssp.Carol)
	if status, _, doc := s.scim(t, "DELETE", "/Users/"+bob, "", nil); status != 204 {
		t.Fatalf("DELETE bob: %d %v", status, doc)
	}
	if status, _, doc := s.scim(t, "PATCH", "/Users/"+carol, "application/scim+json", map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "value": map[string]any{"active": false}}},
	}); status != 200 {
		t.Fatalf("deactivate carol: %d %v", status, doc)
	}
	for _, u := range []ssp.User{ssp.Bob, ssp.Carol} {
		waitFor(t, "worker of "+u.Email+" removed", 10*time.Second, func() (bool, error) {
			w, err := s.worker(u.Email)
			return w == nil, err
		})
	}

	for _, u := range []ssp.User{ssp.Bob, ssp.Carol} {
		t.Run(u.Username, func(t *testing.T) {
			finalURL, text := s.login(t, u)
			if !strings.HasPrefix(finalURL, s.base+"/saml/acs") {
				t.Errorf("refused login ended at %s, want the ACS's error page", finalURL)
			}
			low := strings.ToLower(text)
			if !strings.Contains(low, "not allowed") && !strings.Contains(low, "denied") {
				t.Errorf("refusal page does not say the account may not sign in:\n%s", text)
			}
			if !strings.Contains(low, "reference") && !strings.Contains(low, "correlation") {
				t.Errorf("refusal page has no correlation id:\n%s", text)
			}
			// Give a sync pass every chance to run: still no worker.
			time.Sleep(500 * time.Millisecond)
			if w, err := s.worker(u.Email); err != nil || w != nil {
				t.Errorf("a worker exists for the refused %s (err %v)", u.Email, err)
			}
		})
	}
	// IdP-initiated logins are off unless the IdP's allow_idp_initiated says otherwise: a
	// person in good standing is refused when the login did not start here.
	b := browser.New(t)
	finalURL, text := b.LoginSSP(t, s.idp.IdPInitiatedURL(""), ssp.Alice.Username, ssp.Alice.Password)
	if !strings.HasPrefix(finalURL, s.base+"/saml/acs") || strings.Contains(text, "signed in as") {
		t.Errorf("IdP-initiated login with allow_idp_initiated off ended at %s:\n%s", finalURL, text)
	}
	if w, _ := s.worker(ssp.Alice.Email); w != nil {
		t.Error("a refused IdP-initiated login created a worker")
	}
	if !strings.Contains(s.serve.Stderr(), "deleted through SCIM") || !strings.Contains(s.serve.Stderr(), "deactivated through SCIM") {
		t.Error("the log does not give the reasons of the refusals")
	}
}
