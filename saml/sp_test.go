package saml

import (
	"context"
	"crypto"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/server"
	"github.com/flexbridge/flexbridge/mapping"
)

// answer runs an SP-initiated login at idpName, answered by the response make builds.
func (e *env) answer(idpName string, make func(testing.TB, string) responseSpec) *httptest.ResponseRecorder {
	req, relay, cookie := e.startLogin(idpName, "")
	return e.post(make(e.tb, req.ID).build(e.tb), relay, cookie)
}

// expectLogin asserts a 303 to want and returns the Login the handler got.
func (e *env) expectLogin(t *testing.T, rec *httptest.ResponseRecorder, want string) Login {
	t.Helper()
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("status %d, want 303; refusals logged: %v", rec.Code, e.reasons())
	}
	if got := rec.Header().Get("Location"); got != want {
		t.Fatalf("Location %q, want %q", got, want)
	}
	return e.lastLogin()
}

func TestSPInitiatedRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.redirect = "/flex/welcome"
	req, relay, cookie := e.startLogin("okta", "/admin/users?x=1")

	// The AuthnRequest: to the IdP's redirect endpoint, for our ACS, from our entity id.
	if req.Destination != oktaSSO || req.AssertionConsumerServiceURL != testACS || req.Issuer.Value != testEntityID {
		t.Fatalf("AuthnRequest destination %q, ACS %q, issuer %q", req.Destination, req.AssertionConsumerServiceURL, req.Issuer.Value)
	}
	if req.ProtocolBinding != crewjam.HTTPPostBinding {
		t.Fatalf("ProtocolBinding %q", req.ProtocolBinding)
	}
	if !relayIDPattern.MatchString(relay) {
		t.Fatalf("RelayState %q is not a server-issued id", relay)
	}
	if !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteNoneMode || cookie.Path != "/saml/" {
		t.Fatalf("request cookie attributes: %+v", cookie)
	}

	rec := e.post(fresh(t, req.ID).build(t), relay, cookie)
	l := e.expectLogin(t, rec, "/flex/welcome")
	if l.IdP != "okta" || l.NameID != testNameID || l.IdPInitiated || l.RelayState != "/admin/users?x=1" || l.SessionIndex != "_session1" {
		t.Fatalf("login %+v", l)
	}
	if l.Identity.UserName != testNameID || l.Identity.DisplayName != "Alice Example" || l.Identity.PrimaryEmail() != testNameID || !l.Identity.Active {
		t.Fatalf("identity %+v", l.Identity)
	}
	// The request cookie is spent.
	spent := false
	for _, c := range rec.Result().Cookies() {
		spent = spent || (c.Name == cookie.Name && c.MaxAge < 0)
	}
	if !spent {
		t.Fatal("the request cookie was not cleared")
	}

	// The same response again (a replay) is refused, and so is a second one answering the
	// same, now spent, request.
	if rec := e.post(fresh(t, req.ID).build(t), relay); rec.Code != http.StatusForbidden {
		t.Fatalf("second answer to a spent request: %d", rec.Code)
	}
	if n := e.loginCount(); n != 1 {
		t.Fatalf("%d logins", n)
	}
}

func TestEmptyRedirectGoesToRelayState(t *testing.T) {
	e := newEnv(t)
	e.redirect = ""
	req, relay, cookie := e.startLogin("okta", "/flex/home")
	e.expectLogin(t, e.post(fresh(t, req.ID).build(t), relay, cookie), "/flex/home")

	e.redirect = ""
	e.expectLogin(t, e.post(fresh(t, "").build(t), ""), "/")
	e.expectLogin(t, e.post(fresh(t, "").build(t), "/deep/link"), "/deep/link")
}

func TestLoginHandlerRefusal(t *testing.T) {
	e := newEnv(t)
	// Words that cannot occur in the page's hexadecimal reference.
	e.err = fmt.Errorf("user quinn was deactivated through SCIM: %w", ErrRefused)
	rec := e.post(fresh(t, "").build(t), "")
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "not allowed to sign in") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "SCIM") || strings.Contains(rec.Body.String(), "quinn") {
		t.Fatalf("the page shows the handler's error text: %s", rec.Body)
	}
	if r := e.reasons(); r[len(r)-1] != "login_handler_refused" {
		t.Fatalf("reasons %v", r)
	}

	e.err = errors.New("store is down: dial tcp 10.0.0.5:5432")
	rec = e.post(fresh(t, "").build(t), "")
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "10.0.0.5") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}

	e.err = nil
	e.redirect = "javascript:alert(1)"
	if rec := e.post(fresh(t, "").build(t), ""); rec.Code != http.StatusInternalServerError || rec.Header().Get("Location") != "" {
		t.Fatalf("an unusable handler redirect: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}

func TestSigningVariants(t *testing.T) {
	k := keys(t)
	cases := []struct {
		name string
		mod  func(*responseSpec)
	}{
		{"assertion signed", func(s *responseSpec) {}},
		{"response signed", func(s *responseSpec) { s.SignAssertion, s.SignResponse = false, true }},
		{"both signed", func(s *responseSpec) { s.SignResponse = true }},
		{"rotation: next certificate", func(s *responseSpec) { s.Key = k.oktaNext }},
		{"rotation: next certificate, no KeyInfo", func(s *responseSpec) { s.Key, s.NoKeyInfo = k.oktaNext, true }},
		{"no KeyInfo", func(s *responseSpec) { s.NoKeyInfo = true }},
		{"RSA-SHA512", func(s *responseSpec) { s.Hash = crypto.SHA512 }},
		{"encrypted, assertion signed", func(s *responseSpec) { s.Encrypt = k.sp.cert }},
		{"encrypted, both signed", func(s *responseSpec) { s.Encrypt, s.SignResponse = k.sp.cert, true }},
		{"encrypted, response signed", func(s *responseSpec) { s.Encrypt, s.SignAssertion, s.SignResponse = k.sp.cert, false, true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			s := fresh(t, "")
			c.mod(&s)
			l := e.expectLogin(t, e.post(s.build(t), ""), "/welcome")
			if l.NameID != testNameID {
				t.Fatalf("NameID %q", l.NameID)
			}
		})
	}
}

func TestIdPInitiatedAllowed(t *testing.T) {
	// idp-behaviours 54: empty InResponseTo with IdP-initiated allowed is accepted.
	e := newEnv(t)
	l := e.expectLogin(t, e.post(fresh(t, "").build(t), "/flex/queue"), "/welcome")
	if !l.IdPInitiated || l.RelayState != "/flex/queue" {
		t.Fatalf("login %+v", l)
	}
}

func TestAttributes(t *testing.T) {
	// idp-behaviours 51: several values and one comma-joined value read the same.
	multi := fresh(t, "")
	joined := fresh(t, "")
	joined.A.Attributes = []attribute{
		{Name: "email", Values: []string{testNameID}},
		{Name: "groups", Values: []string{"Flex Agents, Flex Supervisors"}},
		{Name: "roles", Values: []string{"agent,supervisor"}},
		{Name: "location", Values: []string{"Paris, France"}},
	}
	var got []Login
	for _, s := range []responseSpec{multi, joined} {
		e := newEnv(t)
		got = append(got, e.expectLogin(t, e.post(s.build(t), ""), "/welcome"))
	}
	for _, l := range got {
		if want := []string{"agent", "supervisor"}; !reflect.DeepEqual(l.Identity.Extra["roles"], want) {
			t.Fatalf("roles %v", l.Identity.Extra["roles"])
		}
		want := []mapping.Group{{DisplayName: "Flex Agents"}, {DisplayName: "Flex Supervisors"}}
		if !reflect.DeepEqual(l.Identity.Groups, want) {
			t.Fatalf("groups %+v", l.Identity.Groups)
		}
		// Free-text attributes are not split: a comma is part of a location.
		if v := l.Identity.ExtraValue("location"); v != "Paris, France" {
			t.Fatalf("location %q", v)
		}
	}
}

func TestEntraClaims(t *testing.T) {
	// idp-behaviours 52: Entra's claim URIs and group object ids; mapping rules match the ids.
	e := newEnv(t)
	l := e.expectLogin(t, e.answer("entra", entraFresh), "/welcome")
	id := l.Identity
	if l.IdP != "entra" || id.UserName != "alice@contoso.com" || id.DisplayName != "Alice Contoso" || id.PrimaryEmail() != "alice@contoso.com" {
		t.Fatalf("login %+v", l)
	}
	want := []mapping.Group{{ExternalID: "0b6f4c47-8a27-4f3e-9d8e-2a7f1f5c1a01"}, {ExternalID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c03"}}
	if !reflect.DeepEqual(id.Groups, want) {
		t.Fatalf("groups %+v", id.Groups)
	}
	if got := id.Extra[EntraGroupsClaim]; len(got) != 2 {
		t.Fatalf("Extra keeps the claim by its URI: %v", got)
	}
	// The shipped Entra mapping (GUID → role table) grants from these groups.
	m, err := mapping.LoadFile("../configs/mapping-entra.yaml")
	if err != nil {
		t.Fatal(err)
	}
	id.ID = "00000000-0000-0000-0000-000000000001"
	spec, err := m.Evaluate(id)
	if err != nil {
		t.Fatal(err)
	}
	if !spec.Access || !reflect.DeepEqual(spec.Roles, []string{"admin", "agent", "wfo.full_access"}) {
		t.Fatalf("spec access %v roles %v", spec.Access, spec.Roles)
	}
}

func TestNameVersusFriendlyName(t *testing.T) {
	// idp-behaviours 53: the configured key selects by Name first, then FriendlyName; crewjam's
	// samlsp would let a FriendlyName shadow another attribute's Name.
	s := fresh(t, "")
	s.A.Attributes = []attribute{
		{Name: "urn:oid:0.9.2342.19200300.100.1.3", FriendlyName: "email", Values: []string{"by-friendly-name@example.com"}},
		{Name: "email", FriendlyName: "mail", Values: []string{"by-name@example.com"}},
		{Name: "urn:oid:2.16.840.1.113730.3.1.241", FriendlyName: "displayName", Values: []string{"Friendly Alice"}},
		{Name: "groups", Values: []string{"x"}},
	}
	cases := []struct{ emailKey, want string }{
		{"email", "by-name@example.com"},                                      // a Name wins over a FriendlyName
		{"mail", "by-name@example.com"},                                       // FriendlyName of the second
		{"urn:oid:0.9.2342.19200300.100.1.3", "by-friendly-name@example.com"}, // the first, by Name
	}
	for _, c := range cases {
		e := newEnv(t, func(o *Options) {
			o.IdPs[0].Attributes.Email = c.emailKey
			o.IdPs[0].Attributes.DisplayName = "displayName"
		})
		l := e.expectLogin(t, e.post(s.build(t), ""), "/welcome")
		if got := l.Identity.PrimaryEmail(); got != c.want {
			t.Errorf("email key %q: got %q, want %q", c.emailKey, got, c.want)
		}
		if l.Identity.DisplayName != "Friendly Alice" {
			t.Errorf("display name %q", l.Identity.DisplayName)
		}
		if got := l.Identity.Extra["email"]; !reflect.DeepEqual(got, []string{"by-name@example.com"}) {
			t.Errorf("Extra[email] = %v: a FriendlyName must not shadow a Name", got)
		}
		if got := l.Identity.Extra["mail"]; !reflect.DeepEqual(got, []string{"by-name@example.com"}) {
			t.Errorf("Extra[mail] = %v: a FriendlyName no Name uses is a key too", got)
		}
	}
}

func TestUserNameSource(t *testing.T) {
	transient := fresh(t, "")
	transient.A.NameIDFormat = transientNameID
	transient.A.NameID = "_a8f7e6d5c4b3"

	e := newEnv(t) // auto: a transient NameID gives way to the email attribute
	if l := e.expectLogin(t, e.post(transient.build(t), ""), "/welcome"); l.Identity.UserName != testNameID || l.NameID != "_a8f7e6d5c4b3" {
		t.Fatalf("auto with a transient NameID: %+v", l)
	}
	e = newEnv(t, func(o *Options) { o.IdPs[0].UserName = UserNameNameID })
	if rec := e.post(transient.build(t), ""); rec.Code != http.StatusForbidden || e.reasons()[0] != "nameid_unusable" {
		t.Fatalf("nameid with a transient NameID: %d %v", rec.Code, e.reasons())
	}
	e = newEnv(t, func(o *Options) { o.IdPs[0].UserName = UserNameEmail })
	s := fresh(t, "")
	s.A.NameID = "00u1abcd"
	if l := e.expectLogin(t, e.post(s.build(t), ""), "/welcome"); l.Identity.UserName != testNameID {
		t.Fatalf("email: %+v", l.Identity)
	}
}

func TestGroupsOverage(t *testing.T) {
	// idp-behaviours 52: no groups claim (Entra past 150 groups) → the configured fallback,
	// deny by default; never the groups of somebody else, never a silent grant.
	overage := entraFresh(t, "")
	overage.A.Attributes = append(overage.A.Attributes[:4:4],
		attribute{Name: EntraGroupsOverageClaim, Values: []string{"https://graph.windows.net/72f988bf/users/f3b2c1d0/getMemberObjects"}})

	e := newEnv(t, func(o *Options) { o.IdPs[1].AllowIdPInitiated = true })
	rec := e.post(overage.build(t), "")
	if rec.Code != http.StatusForbidden || e.loginCount() != 0 || e.reasons()[0] != "groups_absent" {
		t.Fatalf("deny: %d, %d logins, %v", rec.Code, e.loginCount(), e.reasons())
	}

	e = newEnv(t, func(o *Options) {
		o.IdPs[1].GroupsFallback, o.IdPs[1].AllowIdPInitiated = "Flex Agents (overage)", true
	})
	l := e.expectLogin(t, e.post(overage.build(t), ""), "/welcome")
	if want := []mapping.Group{{DisplayName: "Flex Agents (overage)"}}; !reflect.DeepEqual(l.Identity.Groups, want) {
		t.Fatalf("fallback groups %+v", l.Identity.Groups)
	}

	// An empty groups claim is not an overage: the person is in no group.
	empty := entraFresh(t, "")
	empty.A.Attributes[4].Values = nil
	l = e.expectLogin(t, e.post(empty.build(t), ""), "/welcome")
	if len(l.Identity.Groups) != 0 {
		t.Fatalf("groups %+v", l.Identity.Groups)
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, MetadataPath, nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/samlmetadata+xml" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	var md crewjam.EntityDescriptor
	if err := xml.Unmarshal(rec.Body.Bytes(), &md); err != nil {
		t.Fatal(err)
	}
	if md.EntityID != testEntityID || len(md.SPSSODescriptors) != 1 {
		t.Fatalf("metadata %+v", md)
	}
	d := md.SPSSODescriptors[0]
	if len(d.AssertionConsumerServices) != 1 || d.AssertionConsumerServices[0].Location != testACS ||
		d.AssertionConsumerServices[0].Binding != crewjam.HTTPPostBinding {
		t.Fatalf("ACS endpoints %+v (no artifact binding may be advertised)", d.AssertionConsumerServices)
	}
	if d.WantAssertionsSigned == nil || !*d.WantAssertionsSigned || len(d.KeyDescriptors) == 0 {
		t.Fatalf("descriptor %+v", d)
	}
}

func TestLoginEndpoint(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{
		"idp=nope", "", // two IdPs: the name is required
		"idp=okta&return=https://evil.example", "idp=okta&return=//evil.example/x",
		"idp=okta&return=javascript:alert(1)", "idp=okta&return=/%0d%0aSet-Cookie:x", "idp=okta&idp=entra",
	} {
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, LoginPath+"?"+q, nil))
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
			t.Errorf("%q: %d %q", q, rec.Code, rec.Header().Get("Location"))
		}
	}

	// One IdP: the name may be left out.
	e = newEnv(t, func(o *Options) { o.IdPs = o.IdPs[:1] })
	req, _, _ := e.startLogin("", "")
	if req.Destination != oktaSSO {
		t.Fatal(req.Destination)
	}

	// Pending requests per browser are bounded.
	var cookies []*http.Cookie
	for range 8 {
		_, _, c := e.startLogin("okta", "")
		cookies = append(cookies, c)
	}
	r := httptest.NewRequest(http.MethodGet, LoginPath+"?idp=okta", nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, r)
	cleared := 0
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			cleared++
		}
	}
	if cleared != len(cookies)-(maxPending-1) {
		t.Fatalf("cleared %d of %d pending request cookies", cleared, len(cookies))
	}
}

func TestCorrelationIDBehindServerMiddleware(t *testing.T) {
	// Behind internal/server.Wrap the page shows the request's X-Request-Id, and the log line
	// with the reason carries the same id.
	e := newEnv(t)
	h := server.Wrap(e.mux, zap.NewNop(), nil)
	_ = h
	body := url.Values{"SAMLResponse": {"bm90IHhtbA=="}}.Encode()
	req := httptest.NewRequest(http.MethodPost, ACSPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(server.RequestIDHeader, "corr-123")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "corr-123") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if requestIDHeader != server.RequestIDHeader {
		t.Fatal("the request id header names differ")
	}
}

func TestOptionsValidation(t *testing.T) {
	k := keys(t)
	_, err := New(Options{
		PublicURL: "ftp://x", Key: k.sp.key, Cert: k.okta.cert, MaxIssueDelay: time.Hour,
		IdPs: []IdPConfig{{Name: "a b"}, {Name: "x", MetadataURL: "http://idp.example.com/md", UserName: "upn"}},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"public URL", "does not match", "replay cache", "login handler", "MaxIssueDelay",
		"name \"a b\"", "exactly one of metadata", "must be https", "user name source"} {
		if !strings.Contains(err.Error(), want) && !strings.Contains(strings.ReplaceAll(err.Error(), "max issue delay", "MaxIssueDelay"), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestMetadataURLAndRefresh(t *testing.T) {
	k := keys(t)
	current := idpMetadata(oktaEntityID, oktaSSO, k.okta.cert)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(current) }))
	defer ts.Close()
	e := newEnv(t, func(o *Options) {
		o.IdPs = []IdPConfig{{Name: "okta", MetadataURL: ts.URL + "/metadata", AllowIdPInitiated: true, Attributes: Attributes{Email: "email"}}}
	})
	s := fresh(t, "")
	s.Key = k.oktaNext
	if rec := e.post(s.build(t), ""); rec.Code != http.StatusForbidden {
		t.Fatalf("a key the metadata does not list yet: %d", rec.Code)
	}
	current = idpMetadata(oktaEntityID, oktaSSO, k.okta.cert, k.oktaNext.cert) // the IdP starts a rotation
	if err := e.sp.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.expectLogin(t, e.post(s.build(t), ""), "/welcome")

	current = []byte("<garbage")
	if err := e.sp.Refresh(context.Background()); err == nil {
		t.Fatal("no error for bad metadata")
	}
	s.A.ID = randomID()
	e.expectLogin(t, e.post(s.build(t), ""), "/welcome") // the previous metadata is kept
}
