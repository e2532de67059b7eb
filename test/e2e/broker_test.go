package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/flexbridge/flexbridge/internal/testutil/browser"
	"github.com/flexbridge/flexbridge/internal/testutil/ssp"
)

const flexConnection = "JQ0123456789abcdef0123456789abcdef"

// flexStandIn is a SAML service provider standing in for Flex: crewjam's SP, trusting
// flexbridge's broker metadata, with Flex's ACS shape (/login/callback?connection=JQ...) and
// entity id (urn:flex:JQ...). It validates what it receives with crewjam's ParseResponse and
// shows the NameID and every attribute.
type flexStandIn struct {
	srv *httptest.Server
	mu  sync.Mutex
	sp  *crewjam.ServiceProvider
	ids []string // AuthnRequest IDs it sent
	got []*crewjam.Assertion
	err []string
}

func newFlexStandIn(t *testing.T) *flexStandIn {
	t.Helper()
	f := &flexStandIn{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", f.login)
	mux.HandleFunc("POST /login/callback", f.acs)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *flexStandIn) entityID() string { return "urn:flex:" + flexConnection }
func (f *flexStandIn) acsURL() string {
	return f.srv.URL + "/login/callback?connection=" + flexConnection
}

// trust configures the SP with the broker's IdP metadata.
func (f *flexStandIn) trust(t *testing.T, metadataURL string) {
	t.Helper()
	resp, err := http.Get(metadataURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", metadataURL, resp.StatusCode, raw)
	}
	var md crewjam.EntityDescriptor
	if err := xml.Unmarshal(raw, &md); err != nil {
		t.Fatalf("broker metadata: %v", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flex stand-in"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	acs, _ := url.Parse(f.acsURL())
	meta, _ := url.Parse(f.srv.URL + "/metadata")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sp = &crewjam.ServiceProvider{
		EntityID: f.entityID(), Key: key, Certificate: cert, AcsURL: *acs, MetadataURL: *meta,
		IDPMetadata: &md, AuthnNameIDFormat: crewjam.UnspecifiedNameIDFormat,
	}
}

// login starts a Flex login: an AuthnRequest to the broker (HTTP-Redirect binding).
func (f *flexStandIn) login(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	sp := f.sp
	f.mu.Unlock()
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(crewjam.HTTPRedirectBinding), crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	to, err := req.Redirect("flex-relay-state", sp)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	f.mu.Lock()
	f.ids = append(f.ids, req.ID)
	f.mu.Unlock()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

func (f *flexStandIn) acs(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	sp, ids := f.sp, slices.Clone(f.ids)
	f.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	a, err := sp.ParseResponse(r, ids)
	if err != nil {
		detail := err.Error()
		if ie, ok := err.(*crewjam.InvalidResponseError); ok {
			detail = ie.PrivateErr.Error()
		}
		f.mu.Lock()
		f.err = append(f.err, detail)
		f.mu.Unlock()
		http.Error(w, "flex stand-in: invalid response: "+detail, http.StatusForbidden)
		return
	}
	f.mu.Lock()
	f.got = append(f.got, a)
	f.mu.Unlock()
	var lines []string
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			var vals []string
			for _, v := range at.Values {
				vals = append(vals, v.Value)
			}
			lines = append(lines, at.Name+": "+strings.Join(vals, ","))
		}
	}
	sort.Strings(lines)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<pre>flex stand-in: logged in\nnameid: %s\nrelay: %s\n%s</pre>", html.EscapeString(a.Subject.NameID.Value),
		html.EscapeString(r.PostForm.Get("RelayState")), html.EscapeString(strings.Join(lines, "\n")))
}

// TestBrokerLoginDeliversToFlex: Flex's SSO points at flexbridge. A Flex login goes to the
// broker, on to the real IdP (SimpleSAMLphp in Chromium), back through flexbridge's ACS
// (which provisions the worker), and ends with a signed assertion the Flex stand-in accepts,
// carrying NameID = the worker's FriendlyName and the mapping's claims only.
func TestBrokerLoginDeliversToFlex(t *testing.T) {
	flex := newFlexStandIn(t)
	s := startSAMLStackWith(t, fmt.Sprintf(`  broker:
    flex:
      - name: flex
        entity_id: %q
        acs_urls: [%q]
`, flex.entityID(), flex.acsURL()))
	flex.trust(t, s.base+"/saml/idp/metadata")

	b := browser.New(t)
	finalURL, text := b.LoginSSP(t, flex.srv.URL+"/login", ssp.Alice.Username, ssp.Alice.Password)
	if !strings.HasPrefix(finalURL, flex.srv.URL+"/login/callback") || !strings.Contains(text, "flex stand-in: logged in") {
		flex.mu.Lock()
		errs := slices.Clone(flex.err)
		flex.mu.Unlock()
		t.Fatalf("the browser ended at %s (stand-in errors %v):\n%s", finalURL, errs, text)
	}
	for _, want := range []string{
		"nameid: " + ssp.Alice.Email,
		"relay: flex-relay-state",
		"roles: agent,supervisor,wfo.team_leader",
		"full_name: " + ssp.Alice.DisplayName,
		"email: " + ssp.Alice.Email,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the Flex stand-in's page lacks %q:\n%s", want, text)
		}
	}
	flex.mu.Lock()
	a := flex.got[len(flex.got)-1]
	flex.mu.Unlock()
	var names []string
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			names = append(names, at.Name)
		}
	}
	sort.Strings(names)
	// image_url is a default claim, but Alice has no photo: not sent. Keys managed only
	// through TaskRouter (department, manager, phone in the example mapping) are never claims.
	if want := []string{"email", "full_name", "roles"}; !slices.Equal(names, want) {
		t.Errorf("claims sent to Flex = %v, want exactly %v", names, want)
	}
	// The worker was provisioned on the way, with the same name Flex will use.
	w, err := s.worker(ssp.Alice.Email)
	if err != nil || w == nil {
		t.Fatalf("no worker %s after the broker login (err %v)", ssp.Alice.Email, err)
	}

	// Deprovisioned through SCIM while the browser still has its upstream session: the next
	// Flex login through the broker is refused, and Flex gets nothing.
	status, _, doc := s.scim(t, "GET", "/Users?filter="+url.QueryEscape(`userName eq "`+ssp.Alice.Email+`"`), "", nil)
	if status != 200 {
		t.Fatalf("SCIM lookup: %d %v", status, doc)
	}
	id := doc["Resources"].([]any)[0].(map[string]any)["id"].(string)
	if status, _, doc := s.scim(t, "PATCH", "/Users/"+id, "application/scim+json", map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "value": map[string]any{"active": false}}},
	}); status != 200 {
		t.Fatalf("deactivate: %d %v", status, doc)
	}
	before := len(flex.got)
	finalURL, text = b.Open(t, flex.srv.URL+"/login")
	if strings.HasPrefix(finalURL, flex.srv.URL+"/login/callback") || len(flex.got) != before {
		t.Fatalf("a deactivated person got through to Flex: %s\n%s", finalURL, text)
	}
	if low := strings.ToLower(text); !strings.Contains(low, "not allowed") && !strings.Contains(low, "denied") {
		t.Errorf("refusal page:\n%s", text)
	}
}
