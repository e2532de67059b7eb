package saml

// Broker tests. A crewjam ServiceProvider stands in for Twilio Flex: it makes the
// AuthnRequests, and its ParseResponse must accept what the broker answers.

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flexbridge/flexbridge/internal/testutil/browser"
)

const (
	flexEntityID  = "urn:flex:JQ0123456789abcdef0123456789abcdef"
	flexACS       = "https://login.flex.us1.twilio.com/login/callback?connection=JQ0123456789abcdef0123456789abcdef"
	flexLegacyACS = "https://iam.twilio.com/v1/Accounts/AC0123456789abcdef0123456789abcdef/saml2"
	flexTarget    = "https://flex.twilio.com/agent-desktop/"
	testBrokerSSO = testPublicURL + BrokerSSOPath
	testBrokerID  = testPublicURL + BrokerMetadataPath
)

var (
	brokerKeysOnce sync.Once
	brokerKeys     struct{ idp, flex keyPair }
)

func bkeys(tb testing.TB) *struct{ idp, flex keyPair } {
	brokerKeysOnce.Do(func() {
		now := time.Now()
		brokerKeys.idp = newKeyPair(tb, "flexbridge broker", now.Add(-24*time.Hour), now.Add(365*24*time.Hour))
		brokerKeys.flex = newKeyPair(tb, "flex", now.Add(-24*time.Hour), now.Add(365*24*time.Hour))
	})
	return &brokerKeys
}

// brokerEnv is a Broker with a settable session and claims, and observed logs.
type brokerEnv struct {
	tb   testing.TB
	b    *Broker
	mux  *http.ServeMux
	logs *observer.ObservedLogs

	mu        sync.Mutex
	session   *Session
	claims    BrokerClaims
	claimsErr error
	asked     []Session
}

func (e *brokerEnv) Session(*http.Request) (Session, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.session == nil {
		return Session{}, false
	}
	return *e.session, true
}

func (e *brokerEnv) setSession(s *Session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.session = s
}

func aliceSession() *Session {
	now := time.Now().Truncate(time.Second).UTC()
	return &Session{IdP: "okta", UserName: testNameID, AuthnInstant: now.Add(-time.Minute), Expires: now.Add(9 * time.Minute)}
}

func aliceClaims() BrokerClaims {
	return BrokerClaims{
		NameID: "alice_example",
		Attributes: []BrokerAttribute{
			{Name: "roles", Values: []string{"agent", "supervisor"}},
			{Name: "full_name", Values: []string{"Alice Example"}},
			{Name: "email", Values: []string{testNameID}},
			{Name: "image_url", Values: []string{"https://img.example.com/alice.png?s=64&x=<y>"}},
			{Name: "department", Values: []string{"Sales & Support"}},
		},
	}
}

func brokerOptions(e *brokerEnv) BrokerOptions {
	k := bkeys(e.tb)
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	return BrokerOptions{
		PublicURL:        testPublicURL,
		Key:              k.idp.key,
		Cert:             k.idp.cert,
		ServiceProviders: []BrokerSP{{Name: "flex", EntityID: flexEntityID, ACSURLs: []string{flexACS}}},
		RelayTargets:     []string{flexTarget},
		Sessions:         e,
		UpstreamLogin: func(ret string) string {
			return LoginPath + "?idp=okta&return=" + url.QueryEscape(ret)
		},
		Claims: ClaimsFunc(func(_ context.Context, s Session) (BrokerClaims, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.asked = append(e.asked, s)
			return e.claims, e.claimsErr
		}),
		ManagedKeys: []string{"roles", "skills", "contact_uri"},
		Logger:      zap.New(core),
	}
}

func newBrokerEnv(tb testing.TB, mods ...func(*BrokerOptions)) *brokerEnv {
	tb.Helper()
	e := &brokerEnv{tb: tb, session: aliceSession(), claims: aliceClaims()}
	o := brokerOptions(e)
	for _, m := range mods {
		m(&o)
	}
	b, err := NewBroker(o)
	if err != nil {
		tb.Fatal(err)
	}
	b.onPanic = func(p any) { tb.Errorf("panic: %v", p) }
	e.b = b
	e.mux = http.NewServeMux()
	b.Routes(e.mux)
	return e
}

// reasons are the reasons of every refusal logged so far.
func (e *brokerEnv) reasons() []string {
	var out []string
	for _, entry := range e.logs.FilterMessage("saml request refused").All() {
		out = append(out, entry.ContextMap()["reason"].(string))
	}
	return out
}

func (e *brokerEnv) lastReason() string {
	r := e.reasons()
	if len(r) == 0 {
		return ""
	}
	return r[len(r)-1]
}

// flex is the Flex stand-in, trusting the broker's metadata and consuming at acs.
func (e *brokerEnv) flex(acs string) *crewjam.ServiceProvider {
	e.tb.Helper()
	raw, err := e.b.Metadata()
	if err != nil {
		e.tb.Fatal(err)
	}
	var md crewjam.EntityDescriptor
	if err := xml.Unmarshal(raw, &md); err != nil {
		e.tb.Fatal(err)
	}
	u, err := url.Parse(acs)
	if err != nil {
		e.tb.Fatal(err)
	}
	k := bkeys(e.tb)
	return &crewjam.ServiceProvider{
		EntityID: flexEntityID, Key: k.flex.key, Certificate: k.flex.cert,
		AcsURL: *u, IDPMetadata: &md, AuthnNameIDFormat: crewjam.UnspecifiedNameIDFormat,
	}
}

func (e *brokerEnv) serve(r *http.Request, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, r)
	return rec
}

func (e *brokerEnv) get(target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	return e.serve(httptest.NewRequest(http.MethodGet, target, nil), cookies...)
}

// authnRequest is an AuthnRequest from sp; mod may change it before it is encoded.
func (e *brokerEnv) authnRequest(sp *crewjam.ServiceProvider, mod func(*crewjam.AuthnRequest)) *crewjam.AuthnRequest {
	e.tb.Helper()
	req, err := sp.MakeAuthenticationRequest(testBrokerSSO, crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		e.tb.Fatal(err)
	}
	if mod != nil {
		mod(req)
	}
	return req
}

// redirectSSO sends req by the HTTP-Redirect binding.
func (e *brokerEnv) redirectSSO(sp *crewjam.ServiceProvider, req *crewjam.AuthnRequest, relay string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	e.tb.Helper()
	u, err := req.Redirect(relay, sp)
	if err != nil {
		e.tb.Fatal(err)
	}
	return e.get(u.RequestURI(), cookies...)
}

func authnRequestXML(tb testing.TB, req *crewjam.AuthnRequest) []byte {
	doc := etree.NewDocument()
	doc.SetRoot(req.Element())
	out, err := doc.WriteToBytes()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// postSSO sends raw XML by the HTTP-POST binding.
func (e *brokerEnv) postSSO(raw []byte, relay string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}}
	if relay != "" {
		form.Set("RelayState", relay)
	}
	r := httptest.NewRequest(http.MethodPost, BrokerSSOPath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.serve(r, cookies...)
}

// redirectRaw sends raw XML by the HTTP-Redirect binding (deflated).
func (e *brokerEnv) redirectRaw(raw []byte) *httptest.ResponseRecorder {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = w.Write(raw)
	_ = w.Close()
	return e.get(BrokerSSOPath + "?SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes())))
}

var (
	formAction = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	formField  = func(name string) *regexp.Regexp {
		return regexp.MustCompile(`<input type="hidden" name="` + name + `" value="([^"]*)">`)
	}
)

type postedForm struct {
	Action, SAMLResponse, RelayState string
	HasRelayState                    bool
	XML                              []byte
}

// postPage reads the auto-POST page the broker answered.
func postPage(tb testing.TB, rec *httptest.ResponseRecorder) postedForm {
	tb.Helper()
	if rec.Code != http.StatusOK {
		tb.Fatalf("status %d, want the auto-POST page: %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	var f postedForm
	m := formAction.FindStringSubmatch(body)
	if m == nil {
		tb.Fatalf("no form in %s", body)
	}
	f.Action = html.UnescapeString(m[1])
	if m := formField("SAMLResponse").FindStringSubmatch(body); m != nil {
		f.SAMLResponse = html.UnescapeString(m[1])
	} else {
		tb.Fatalf("no SAMLResponse in %s", body)
	}
	if m := formField("RelayState").FindStringSubmatch(body); m != nil {
		f.RelayState, f.HasRelayState = html.UnescapeString(m[1]), true
	}
	var err error
	if f.XML, err = base64.StdEncoding.DecodeString(f.SAMLResponse); err != nil {
		tb.Fatal(err)
	}
	return f
}

// consume has the Flex stand-in validate the posted response, as its ACS would.
func consume(tb testing.TB, sp *crewjam.ServiceProvider, f postedForm, requestIDs ...string) *crewjam.Assertion {
	tb.Helper()
	form := url.Values{"SAMLResponse": {f.SAMLResponse}, "RelayState": {f.RelayState}}
	r := httptest.NewRequest(http.MethodPost, f.Action, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := r.ParseForm(); err != nil {
		tb.Fatal(err)
	}
	a, err := sp.ParseResponse(r, requestIDs)
	if err != nil {
		var ire *crewjam.InvalidResponseError
		if errors.As(err, &ire) {
			err = ire.PrivateErr
		}
		tb.Fatalf("Flex refuses the response: %v", err)
	}
	return a
}

func attributesOf(a *crewjam.Assertion) ([]string, map[string][]string) {
	var names []string
	vals := map[string][]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			names = append(names, at.Name)
			for _, v := range at.Values {
				vals[at.Name] = append(vals[at.Name], v.Value)
			}
		}
	}
	return names, vals
}

func cookieNamed(rec *httptest.ResponseRecorder, prefix string) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if strings.HasPrefix(c.Name, prefix) && c.MaxAge > 0 {
			return c
		}
	}
	return nil
}

func clearedCookie(rec *httptest.ResponseRecorder, name string) bool {
	for _, c := range rec.Result().Cookies() {
		if c.Name == name && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

// expectFailure asserts a failure page with status and reason, carrying the correlation id and
// no SAML message.
func (e *brokerEnv) expectFailure(t *testing.T, rec *httptest.ResponseRecorder, status int, reason string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; reasons %v; body %s", rec.Code, status, e.reasons(), rec.Body)
	}
	if got := e.lastReason(); got != reason {
		t.Fatalf("reason %q, want %q (all: %v)", got, reason, e.reasons())
	}
	body := rec.Body.String()
	rid := rec.Header().Get(requestIDHeader)
	if rid == "" || !strings.Contains(body, rid) {
		t.Fatalf("the page lacks the correlation id %q: %s", rid, body)
	}
	if strings.Contains(body, "SAMLResponse") || strings.Contains(body, "<form") || rec.Header().Get("Location") != "" {
		t.Fatalf("a failure answers something to post or follow: %s", body)
	}
}

func TestBrokerSPInitiatedWithSession(t *testing.T) {
	e := newBrokerEnv(t)
	flex := e.flex(flexACS)
	req := e.authnRequest(flex, nil)
	rec := e.redirectSSO(flex, req, "flex-relay/ü<2>")

	f := postPage(t, rec)
	if f.Action != flexACS || f.RelayState != "flex-relay/ü<2>" {
		t.Fatalf("form to %q with RelayState %q", f.Action, f.RelayState)
	}
	h := rec.Header()
	if h.Get("Cache-Control") != "no-store" || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'sha256-") ||
		strings.Contains(h.Get("Content-Security-Policy"), "unsafe-inline") {
		t.Fatalf("headers %v", h)
	}

	a := consume(t, flex, f, req.ID)
	if a.Subject.NameID.Value != "alice_example" || a.Subject.NameID.Format != nameIDUnspecified {
		t.Fatalf("NameID %+v", a.Subject.NameID)
	}
	names, vals := attributesOf(a)
	if want := []string{"roles", "full_name", "email", "image_url", "department"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("attributes %v, want exactly %v", names, want)
	}
	want := map[string][]string{
		"roles": {"agent", "supervisor"}, "full_name": {"Alice Example"}, "email": {testNameID},
		"image_url": {"https://img.example.com/alice.png?s=64&x=<y>"}, "department": {"Sales & Support"},
	}
	if !reflect.DeepEqual(vals, want) {
		t.Fatalf("values %v", vals)
	}
	if got := a.AuthnStatements[0].AuthnInstant; !got.Equal(e.session.AuthnInstant) {
		t.Fatalf("AuthnInstant %s", got)
	}
	if len(e.asked) != 1 || e.asked[0].UserName != testNameID {
		t.Fatalf("claims asked for %+v", e.asked)
	}

	// The XML itself: both signatures RSA-SHA256 over SHA-256 with exclusive c14n, and the
	// fields Flex relies on.
	root, err := parseXML(f.XML)
	if err != nil {
		t.Fatal(err)
	}
	assertion := only(root, nsAssertion, "Assertion")
	for _, el := range []*etree.Element{root, assertion} {
		sig := only(el, nsDSig, "Signature")
		if sig == nil {
			t.Fatalf("%s is not signed", el.Tag)
		}
		if f := checkSignature(sig, el); f != nil {
			t.Fatalf("%s signature: %v", el.Tag, f)
		}
		si := only(sig, nsDSig, "SignedInfo")
		if m, _ := attr(only(si, nsDSig, "SignatureMethod"), "Algorithm"); m != dsig.RSASHA256SignatureMethod {
			t.Fatalf("%s signature method %q", el.Tag, m)
		}
		if m, _ := attr(only(si, nsDSig, "CanonicalizationMethod"), "Algorithm"); m != string(dsig.CanonicalXML10ExclusiveAlgorithmId) {
			t.Fatalf("%s canonicalization %q", el.Tag, m)
		}
	}
	if v, _ := attr(root, "InResponseTo"); v != req.ID {
		t.Fatalf("InResponseTo %q", v)
	}
	if v, _ := attr(root, "Destination"); v != flexACS {
		t.Fatalf("Destination %q", v)
	}
	if iss := textOf(only(root, nsAssertion, "Issuer")); iss != testBrokerID || textOf(only(assertion, nsAssertion, "Issuer")) != testBrokerID {
		t.Fatalf("Issuer %q", iss)
	}
	scd := assertion.FindElement("./Subject/SubjectConfirmation/SubjectConfirmationData")
	if rcpt, _ := attr(scd, "Recipient"); rcpt != flexACS {
		t.Fatalf("Recipient %q", rcpt)
	}
	if irt, _ := attr(scd, "InResponseTo"); irt != req.ID {
		t.Fatalf("SubjectConfirmationData InResponseTo %q", irt)
	}
	if noa, _ := attr(scd, "NotOnOrAfter"); noa == "" {
		t.Fatal("no NotOnOrAfter")
	}
	if aud := assertion.FindElement("./Conditions/AudienceRestriction/Audience"); aud == nil || textOf(aud) != flexEntityID {
		t.Fatal("Audience")
	}
	for _, at := range assertion.FindElements("./AttributeStatement/Attribute") {
		if nf, _ := attr(at, "NameFormat"); nf != attrNameUnspecified {
			t.Fatalf("NameFormat %q", nf)
		}
	}
	if strings.Contains(string(f.XML), "urn:oid:") || strings.Contains(string(f.XML), "eduPerson") {
		t.Fatal("crewjam's default attributes leaked into the assertion")
	}
	for _, entry := range e.logs.All() {
		for k, v := range entry.ContextMap() {
			if s, ok := v.(string); ok && (strings.Contains(s, "<saml") || strings.Contains(s, f.SAMLResponse[:40])) {
				t.Fatalf("log field %s holds a SAML message", k)
			}
		}
	}
}

func TestBrokerPOSTBinding(t *testing.T) {
	e := newBrokerEnv(t)
	flex := e.flex(flexACS)
	req := e.authnRequest(flex, nil)
	rec := e.postSSO(authnRequestXML(t, req), "")
	f := postPage(t, rec)
	if f.HasRelayState {
		t.Fatal("a RelayState field without a RelayState")
	}
	consume(t, flex, f, req.ID)

	// Without a visible session (a cross-site POST carries no Lax cookie), the broker looks
	// again from a top-level GET before sending the person upstream.
	e.setSession(nil)
	rec = e.postSSO(authnRequestXML(t, e.authnRequest(flex, nil)), "r1")
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), BrokerResumePath+"?id=") {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Location"))
	}
	pending := cookieNamed(rec, pendingCookiePrefix)
	if pending == nil || !pending.HttpOnly || !pending.Secure || pending.SameSite != http.SameSiteLaxMode || pending.Path != "/saml/idp/" {
		t.Fatalf("pending cookie %+v", pending)
	}
	rec = e.get(rec.Header().Get("Location"), pending)
	if rec.Code != http.StatusFound || !strings.HasPrefix(rec.Header().Get("Location"), LoginPath+"?idp=okta&return=") {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Location"))
	}
}

// TestBrokerUpstreamRoundTrip runs the whole flow through the real SP: no session, the
// upstream login, the session it sets, resume, and the response to Flex.
func TestBrokerUpstreamRoundTrip(t *testing.T) {
	spEnv := newEnv(t)
	spEnv.redirect = "" // the LoginHandler sends the browser on to RelayState
	e := newBrokerEnv(t, func(o *BrokerOptions) { o.Sessions = spEnv.sp })
	e.mux = spEnv.mux
	e.b.Routes(e.mux)
	flex := e.flex(flexACS)
	req := e.authnRequest(flex, nil)

	// 1. Flex sends the person; no session: a pending cookie and the upstream login.
	rec := e.redirectSSO(flex, req, "flex-state")
	if rec.Code != http.StatusFound {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	ret := loc.Query().Get("return")
	if loc.Path != LoginPath || loc.Query().Get("idp") != "okta" || !strings.HasPrefix(ret, BrokerResumePath+"?id=") {
		t.Fatalf("upstream login %q", loc)
	}
	pending := cookieNamed(rec, pendingCookiePrefix)
	if pending == nil || pending.Name != pendingCookiePrefix+strings.TrimPrefix(ret, BrokerResumePath+"?id=") {
		t.Fatalf("pending cookie %+v for %q", pending, ret)
	}

	// 2. The upstream login, answered by the Okta stand-in: the SP sets the session and
	// redirects to resume.
	upReq, relay, reqCookie := spEnv.startLogin("okta", ret)
	rec = spEnv.post(fresh(t, upReq.ID).build(t), relay, reqCookie)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != ret {
		t.Fatalf("ACS: %d %q (reasons %v)", rec.Code, rec.Header().Get("Location"), spEnv.reasons())
	}
	session := sessionCookieOf(rec)
	if session == nil {
		t.Fatal("no session cookie")
	}

	// 3. Resume: the response to Flex's request, with its RelayState.
	rec = e.get(ret, pending, session)
	f := postPage(t, rec)
	if f.RelayState != "flex-state" || f.Action != flexACS {
		t.Fatalf("form %+v", f)
	}
	a := consume(t, flex, f, req.ID)
	if a.Subject.NameID.Value != "alice_example" {
		t.Fatal(a.Subject.NameID.Value)
	}
	if len(e.asked) != 1 || e.asked[0].IdP != "okta" || e.asked[0].UserName != testNameID {
		t.Fatalf("claims asked for %+v", e.asked)
	}
	if !clearedCookie(rec, pending.Name) {
		t.Fatal("the pending cookie was not cleared")
	}

	// Resume without the session cookie (blocked cookies): no second trip upstream, a 403.
	rec = e.get(ret, pending)
	e.expectFailure(t, rec, http.StatusForbidden, "session_missing")

	// And with the session, Flex's next request is answered at once.
	rec = e.redirectSSO(flex, e.authnRequest(flex, nil), "", session)
	postPage(t, rec)
}

func TestBrokerIdPInitiated(t *testing.T) {
	e := newBrokerEnv(t)
	flex := e.flex(flexACS)
	flex.AllowIDPInitiated = true

	rec := e.get(BrokerLoginPath + "?sp=flex&RelayState=" + url.QueryEscape(flexTarget))
	f := postPage(t, rec)
	if f.RelayState != flexTarget || f.Action != flexACS {
		t.Fatalf("form %+v", f)
	}
	consume(t, flex, f)
	root, _ := parseXML(f.XML)
	if _, ok := attr(root, "InResponseTo"); ok {
		t.Fatal("an unsolicited response with InResponseTo")
	}

	// One SP: the name may be left out; no RelayState is fine.
	f = postPage(t, e.get(BrokerLoginPath))
	if f.HasRelayState {
		t.Fatal("RelayState without one")
	}

	for _, q := range []string{
		"sp=flex&RelayState=" + url.QueryEscape("https://evil.example/"),
		"sp=flex&RelayState=" + url.QueryEscape(flexTarget+"x"),
		"sp=flex&RelayState=" + url.QueryEscape(flexTarget) + "&RelayState=" + url.QueryEscape(flexTarget),
	} {
		e.expectFailure(t, e.get(BrokerLoginPath+"?"+q), http.StatusBadRequest, "relay_target_not_allowed")
	}
	e.expectFailure(t, e.get(BrokerLoginPath+"?sp=other"), http.StatusBadRequest, "unknown_sp")

	// Without a session: the upstream login, then resume answers unsolicited.
	e.setSession(nil)
	rec = e.get(BrokerLoginPath + "?sp=flex&RelayState=" + url.QueryEscape(flexTarget))
	pending := cookieNamed(rec, pendingCookiePrefix)
	if rec.Code != http.StatusFound || pending == nil {
		t.Fatalf("%d %+v", rec.Code, pending)
	}
	e.setSession(aliceSession())
	f = postPage(t, e.get(BrokerResumePath+"?id="+strings.TrimPrefix(pending.Name, pendingCookiePrefix), pending))
	if f.RelayState != flexTarget {
		t.Fatal(f.RelayState)
	}
	consume(t, flex, f)
}

func TestBrokerUnknownIssuer(t *testing.T) {
	e := newBrokerEnv(t)
	other := e.flex(flexACS)
	other.EntityID = "urn:flex:JQffffffffffffffffffffffffffffffff"
	e.expectFailure(t, e.redirectSSO(other, e.authnRequest(other, nil), ""), http.StatusBadRequest, "unknown_sp")
	if len(e.asked) != 0 {
		t.Fatal("claims asked for an unknown SP")
	}
}

func TestBrokerACSNotAllowed(t *testing.T) {
	e := newBrokerEnv(t)
	for _, acs := range []string{
		"https://evil.example/login/callback?connection=JQ0123456789abcdef0123456789abcdef",
		flexACS + "&x=1",
		strings.Replace(flexACS, "https:", "http:", 1),
		flexLegacyACS, // not configured here
	} {
		flex := e.flex(acs)
		e.expectFailure(t, e.redirectSSO(flex, e.authnRequest(flex, nil), ""), http.StatusBadRequest, "acs_not_allowed")
	}
	flex := e.flex(flexACS)
	for _, mod := range []func(*crewjam.AuthnRequest){
		func(r *crewjam.AuthnRequest) {
			r.AssertionConsumerServiceURL, r.AssertionConsumerServiceIndex = "", "1"
		},
		func(r *crewjam.AuthnRequest) {
			r.AssertionConsumerServiceURL, r.AssertionConsumerServiceIndex = "", "x"
		},
		func(r *crewjam.AuthnRequest) { r.AssertionConsumerServiceIndex = "0" }, // both
	} {
		e.expectFailure(t, e.redirectSSO(flex, e.authnRequest(flex, mod), ""), http.StatusBadRequest, "acs_not_allowed")
	}
	e.expectFailure(t, e.redirectSSO(flex, e.authnRequest(flex, func(r *crewjam.AuthnRequest) { r.ProtocolBinding = crewjam.HTTPArtifactBinding }), ""),
		http.StatusBadRequest, "binding_unsupported")

	// No ACS named: the first configured one.
	f := postPage(t, e.redirectSSO(flex, e.authnRequest(flex, func(r *crewjam.AuthnRequest) { r.AssertionConsumerServiceURL = "" }), ""))
	if f.Action != flexACS {
		t.Fatal(f.Action)
	}
}

func TestBrokerLegacyACS(t *testing.T) {
	e := newBrokerEnv(t, func(o *BrokerOptions) { o.ServiceProviders[0].ACSURLs = []string{flexACS, flexLegacyACS} })
	legacy := e.flex(flexLegacyACS)
	req := e.authnRequest(legacy, nil)
	f := postPage(t, e.redirectSSO(legacy, req, ""))
	if f.Action != flexLegacyACS {
		t.Fatal(f.Action)
	}
	consume(t, legacy, f, req.ID)

	// By index too.
	req = e.authnRequest(legacy, func(r *crewjam.AuthnRequest) {
		r.AssertionConsumerServiceURL, r.AssertionConsumerServiceIndex = "", "1"
	})
	f = postPage(t, e.redirectSSO(legacy, req, ""))
	if f.Action != flexLegacyACS {
		t.Fatal(f.Action)
	}
	consume(t, legacy, f, req.ID)

	// The current form still works.
	flex := e.flex(flexACS)
	req = e.authnRequest(flex, nil)
	consume(t, flex, postPage(t, e.redirectSSO(flex, req, "")), req.ID)
}

func TestBrokerClaimsRefusal(t *testing.T) {
	e := newBrokerEnv(t)
	flex := e.flex(flexACS)
	send := func() *httptest.ResponseRecorder { return e.redirectSSO(flex, e.authnRequest(flex, nil), "") }

	e.claimsErr = fmt.Errorf("user 42 was deprovisioned through SCIM: %w", ErrRefused)
	rec := send()
	e.expectFailure(t, rec, http.StatusForbidden, "claims_refused")
	if !strings.Contains(rec.Body.String(), "not allowed to sign in") || strings.Contains(rec.Body.String(), "SCIM") {
		t.Fatalf("page %s", rec.Body)
	}

	e.claimsErr = errors.New("store is down: dial tcp 10.0.0.5:5432")
	rec = send()
	e.expectFailure(t, rec, http.StatusInternalServerError, "internal")
	if strings.Contains(rec.Body.String(), "10.0.0.5") {
		t.Fatal("the page shows the error")
	}
	e.claimsErr = nil

	cases := []struct {
		reason string
		mod    func(*BrokerClaims)
	}{
		{"claims_nameid_invalid", func(c *BrokerClaims) { c.NameID = "" }},
		{"claims_nameid_invalid", func(c *BrokerClaims) { c.NameID = "alice\x00" }},
		{"claims_roles_missing", func(c *BrokerClaims) { c.Attributes = c.Attributes[1:] }},
		{"claims_roles_missing", func(c *BrokerClaims) { c.Attributes[0].Values = []string{" "} }},
		{"claims_managed_key", func(c *BrokerClaims) {
			c.Attributes = append(c.Attributes, BrokerAttribute{Name: "skills", Values: []string{"sales"}})
		}},
		{"claims_managed_key", func(c *BrokerClaims) {
			c.Attributes = append(c.Attributes, BrokerAttribute{Name: "flexbridge", Values: []string{`{"managed":true}`}})
		}},
		{"claims_name_invalid", func(c *BrokerClaims) {
			c.Attributes = append(c.Attributes, BrokerAttribute{Name: "urn:oid:0.9.2342.19200300.100.1.3", Values: []string{"x"}})
		}},
		{"claims_name_invalid", func(c *BrokerClaims) { c.Attributes = append(c.Attributes, c.Attributes[1]) }},
		{"claims_value_invalid", func(c *BrokerClaims) { c.Attributes[1].Values = []string{"Alice\x1b"} }},
	}
	for _, c := range cases {
		e.claims = aliceClaims()
		c.mod(&e.claims)
		e.expectFailure(t, send(), http.StatusInternalServerError, c.reason)
	}
}

func TestBrokerPendingCookieTampered(t *testing.T) {
	e := newBrokerEnv(t)
	e.setSession(nil)
	flex := e.flex(flexACS)
	rec := e.redirectSSO(flex, e.authnRequest(flex, nil), "")
	pending := cookieNamed(rec, pendingCookiePrefix)
	if rec.Code != http.StatusFound || pending == nil {
		t.Fatalf("%d %+v", rec.Code, pending)
	}
	id := strings.TrimPrefix(pending.Name, pendingCookiePrefix)
	resume := BrokerResumePath + "?id=" + id
	e.setSession(aliceSession())

	payload, mac, _ := strings.Cut(pending.Value, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	evil := bytes.Replace(raw, []byte(`"a":0`), []byte(`"a":1`), 1)
	otherID := newRelayID()
	for name, ck := range map[string]*http.Cookie{
		"payload changed": {Name: pending.Name, Value: base64.RawURLEncoding.EncodeToString(evil) + "." + mac},
		"mac changed":     {Name: pending.Name, Value: payload + "." + strings.Repeat("A", len(mac))},
		"another id":      {Name: pendingCookiePrefix + otherID, Value: pending.Value},
		"missing":         {Name: "unrelated", Value: "x"},
	} {
		e.expectFailure(t, e.get(resume, ck), http.StatusBadRequest, "pending_missing")
		_ = name
	}
	e.expectFailure(t, e.get(BrokerResumePath+"?id=short", pending), http.StatusBadRequest, "pending_missing")
	e.expectFailure(t, e.get(BrokerResumePath+"?id="+otherID, &http.Cookie{Name: pendingCookiePrefix + otherID, Value: pending.Value}),
		http.StatusBadRequest, "pending_missing")
	if len(e.asked) != 0 {
		t.Fatal("answered a tampered request")
	}
	// The genuine one works.
	postPage(t, e.get(resume, pending))
}

func TestBrokerPendingExpiry(t *testing.T) {
	clock := newTestClock()
	e := newBrokerEnv(t, func(o *BrokerOptions) { o.Now = clock.now; o.PendingLifetime = 2 * time.Minute })
	e.setSession(nil)
	rec := e.get(BrokerLoginPath)
	pending := cookieNamed(rec, pendingCookiePrefix)
	if pending == nil || pending.MaxAge != 120 {
		t.Fatalf("pending cookie %+v", pending)
	}
	e.setSession(aliceSession())
	clock.advance(2 * time.Minute)
	e.expectFailure(t, e.get(BrokerResumePath+"?id="+strings.TrimPrefix(pending.Name, pendingCookiePrefix), pending), http.StatusBadRequest, "pending_missing")
}

func TestBrokerForceAuthn(t *testing.T) {
	e := newBrokerEnv(t)
	flex := e.flex(flexACS)
	yes := true
	req := e.authnRequest(flex, func(r *crewjam.AuthnRequest) { r.ForceAuthn = &yes })
	rec := e.redirectSSO(flex, req, "")
	pending := cookieNamed(rec, pendingCookiePrefix)
	if rec.Code != http.StatusFound || pending == nil || len(e.asked) != 0 {
		t.Fatalf("ForceAuthn answered from the old session: %d", rec.Code)
	}
	resume := BrokerResumePath + "?id=" + strings.TrimPrefix(pending.Name, pendingCookiePrefix)
	// Back with the old session only: refused, no loop.
	e.expectFailure(t, e.get(resume, pending), http.StatusForbidden, "session_missing")
	// Back with a session from a new login: answered.
	s := aliceSession()
	s.AuthnInstant = time.Now().Add(time.Second).Truncate(time.Second)
	e.setSession(s)
	consume(t, flex, postPage(t, e.get(resume, pending)), req.ID)
}

func TestBrokerIsPassive(t *testing.T) {
	e := newBrokerEnv(t)
	flex := e.flex(flexACS)
	yes := true
	passive := func(r *crewjam.AuthnRequest) { r.IsPassive = &yes }
	postPage(t, e.redirectSSO(flex, e.authnRequest(flex, passive), ""))
	e.setSession(nil)
	rec := e.redirectSSO(flex, e.authnRequest(flex, passive), "")
	e.expectFailure(t, rec, http.StatusForbidden, "passive_without_session")
}

func TestBrokerOversizedRequest(t *testing.T) {
	e := newBrokerEnv(t)
	// A redirect parameter over the cap.
	big := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), 2*DefaultMaxAuthnRequestBytes))
	e.expectFailure(t, e.get(BrokerSSOPath+"?SAMLRequest="+url.QueryEscape(big)), http.StatusRequestEntityTooLarge, "request_too_large")
	// A small parameter that inflates past the cap.
	padded := []byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><!--` + strings.Repeat(" ", 1<<20) + `--></samlp:AuthnRequest>`)
	e.expectFailure(t, e.redirectRaw(padded), http.StatusRequestEntityTooLarge, "request_too_large")
	// A POST body over the cap.
	body := "SAMLRequest=" + strings.Repeat("A", 4*DefaultMaxAuthnRequestBytes+32<<10)
	r := httptest.NewRequest(http.MethodPost, BrokerSSOPath, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	e.expectFailure(t, e.serve(r), http.StatusRequestEntityTooLarge, "body_too_large")
	// A POSTed request over the cap.
	e.expectFailure(t, e.postSSO(padded[:DefaultMaxAuthnRequestBytes+1], ""), http.StatusRequestEntityTooLarge, "request_too_large")
	// A RelayState over the cap.
	flex := e.flex(flexACS)
	e.expectFailure(t, e.redirectSSO(flex, e.authnRequest(flex, nil), strings.Repeat("r", maxRelayState+1)), http.StatusBadRequest, "relay_state_invalid")
}

func TestBrokerHostileRequests(t *testing.T) {
	e := newBrokerEnv(t)
	flex := e.flex(flexACS)
	good := string(authnRequestXML(t, e.authnRequest(flex, nil)))
	doctype := `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "flex">]>` + good
	e.expectFailure(t, e.redirectRaw([]byte(doctype)), http.StatusBadRequest, "doctype")
	e.expectFailure(t, e.postSSO([]byte(doctype), ""), http.StatusBadRequest, "doctype")

	cases := map[string]string{
		"not xml":        "<samlp:AuthnRequest",
		"not a request":  strings.ReplaceAll(good, "AuthnRequest", "LogoutRequest"),
		"version":        strings.Replace(good, `Version="2.0"`, `Version="1.1"`, 1),
		"no id":          regexp.MustCompile(` ID="[^"]*"`).ReplaceAllString(good, ""),
		"wrong dest":     strings.Replace(good, testBrokerSSO, "https://other.example/sso", 1),
		"too old":        regexp.MustCompile(`IssueInstant="[^"]*"`).ReplaceAllString(good, `IssueInstant="2001-01-01T00:00:00Z"`),
		"future":         regexp.MustCompile(`IssueInstant="[^"]*"`).ReplaceAllString(good, `IssueInstant="2999-01-01T00:00:00Z"`),
		"deep":           strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100),
		"latin1":         "<a>\xff</a>",
		"no issuer":      regexp.MustCompile(`<saml:Issuer[^>]*>[^<]*</saml:Issuer>`).ReplaceAllString(good, ""),
		"two issuers":    regexp.MustCompile(`(<saml:Issuer[^>]*>[^<]*</saml:Issuer>)`).ReplaceAllString(good, "$1$1"),
		"no instant":     regexp.MustCompile(` IssueInstant="[^"]*"`).ReplaceAllString(good, ""),
		"dup attributes": strings.Replace(good, `Version="2.0"`, `Version="2.0" Version="2.0"`, 1),
	}
	for name, doc := range cases {
		rec := e.redirectRaw([]byte(doc))
		if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), "SAMLResponse") {
			t.Errorf("%s: %d (reasons %v)", name, rec.Code, e.reasons())
		}
	}
	for _, q := range []string{"", "SAMLRequest=", "SAMLRequest=%%%", "SAMLRequest=bm90IGRlZmxhdGU%3D", "SAMLRequest=a&SAMLRequest=b"} {
		if rec := e.get(BrokerSSOPath + "?" + q); rec.Code != http.StatusBadRequest {
			t.Errorf("%q: %d", q, rec.Code)
		}
	}
	r := httptest.NewRequest(http.MethodPost, BrokerSSOPath, strings.NewReader("SAMLRequest=x"))
	r.Header.Set("Content-Type", "text/plain")
	e.expectFailure(t, e.serve(r), http.StatusBadRequest, "form_invalid")
	if len(e.asked) != 0 {
		t.Fatal("claims asked for a hostile request")
	}
}

func TestBrokerMetadata(t *testing.T) {
	e := newBrokerEnv(t)
	rec := e.get(BrokerMetadataPath)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/samlmetadata+xml" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	var md crewjam.EntityDescriptor
	if err := xml.Unmarshal(rec.Body.Bytes(), &md); err != nil {
		t.Fatal(err)
	}
	if md.EntityID != testBrokerID || e.b.EntityID() != testBrokerID || len(md.IDPSSODescriptors) != 1 {
		t.Fatalf("metadata %+v", md)
	}
	d := md.IDPSSODescriptors[0]
	bindings := map[string]string{}
	for _, s := range d.SingleSignOnServices {
		bindings[s.Binding] = s.Location
	}
	if bindings[crewjam.HTTPRedirectBinding] != testBrokerSSO || bindings[crewjam.HTTPPostBinding] != testBrokerSSO || len(bindings) != 2 {
		t.Fatalf("SSO endpoints %v", bindings)
	}
	if len(d.KeyDescriptors) != 1 || d.KeyDescriptors[0].Use != "signing" ||
		d.KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data != base64.StdEncoding.EncodeToString(bkeys(t).idp.cert.Raw) {
		t.Fatalf("key descriptors %+v", d.KeyDescriptors)
	}

	// A URN entity id and a path prefix.
	e = newBrokerEnv(t, func(o *BrokerOptions) {
		o.EntityID = "urn:flexbridge:idp"
		o.PublicURL = "https://bridge.example.com/fb/"
	})
	flex := e.flex(flexACS)
	req, err := flex.MakeAuthenticationRequest("https://bridge.example.com/fb"+BrokerSSOPath, crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	u, err := req.Redirect("", flex)
	if err != nil {
		t.Fatal(err)
	}
	// Routes are registered without the prefix (a proxy strips it).
	consume(t, flex, postPage(t, e.get(strings.TrimPrefix(u.RequestURI(), "/fb"))), req.ID)
	e.setSession(nil)
	rec = e.get(BrokerLoginPath)
	if loc := rec.Header().Get("Location"); !strings.Contains(loc, url.QueryEscape("/fb"+BrokerResumePath+"?id=")) {
		t.Fatalf("upstream login %q", loc)
	}
	if ck := cookieNamed(rec, pendingCookiePrefix); ck == nil || ck.Path != "/fb/saml/idp/" {
		t.Fatalf("pending cookie %+v", ck)
	}
}

func TestBrokerPendingCookiesBounded(t *testing.T) {
	e := newBrokerEnv(t)
	e.setSession(nil)
	var cookies []*http.Cookie
	for range 8 {
		cookies = append(cookies, cookieNamed(e.get(BrokerLoginPath), pendingCookiePrefix))
	}
	rec := e.get(BrokerLoginPath, cookies...)
	cleared := 0
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			cleared++
		}
	}
	if cleared != len(cookies)-(maxPending-1) {
		t.Fatalf("cleared %d of %d pending cookies", cleared, len(cookies))
	}
}

func TestBrokerUpstreamLoginURLChecked(t *testing.T) {
	e := newBrokerEnv(t, func(o *BrokerOptions) { o.UpstreamLogin = func(string) string { return "javascript:alert(1)" } })
	e.setSession(nil)
	e.expectFailure(t, e.get(BrokerLoginPath), http.StatusInternalServerError, "upstream_login_url")
}

func TestBrokerOptionsValidation(t *testing.T) {
	k, bk := keys(t), bkeys(t)
	_, err := NewBroker(BrokerOptions{
		PublicURL: "ftp://x", EntityID: " x", Key: bk.idp.key, Cert: k.okta.cert,
		ServiceProviders: []BrokerSP{
			{Name: "a b", EntityID: flexEntityID, ACSURLs: []string{"http://login.flex.us1.twilio.com/cb"}},
			{Name: "flex2", EntityID: flexEntityID},
			{Name: "flex3", EntityID: "urn:x", ACSURLs: []string{flexACS, flexACS, "https://user:pw@x.example/"}},
		},
		RelayTargets:      []string{"/local"},
		AssertionLifetime: 2 * time.Hour,
		CookieKey:         []byte("short"),
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"public URL", "entity id \" x\"", "does not match", "session source", "claims source", "upstream login",
		"assertion lifetime", `name "a b"`, "must be https", "entity id \"urn:flex", "at least one ACS URL",
		"listed twice", "user info", "relay_targets[0]", "cookie key must be at least 32 bytes",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := NewBroker(BrokerOptions{}); err == nil || !strings.Contains(err.Error(), "key and certificate") ||
		!strings.Contains(err.Error(), "at least one service provider") {
		t.Fatalf("empty options: %v", err)
	}
	// Not RSA: no RSA-SHA256.
	e := &brokerEnv{tb: t}
	o := brokerOptions(e)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ec"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	o.Key = ecKey
	if o.Cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if _, err := NewBroker(o); err == nil || !strings.Contains(err.Error(), "must be RSA") {
		t.Fatalf("ECDSA key: %v", err)
	}
}

// TestBrokerAutoPostInChromium checks that the answer page posts itself under its CSP in a
// real browser.
func TestBrokerAutoPostInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	var (
		handler http.Handler
		mu      sync.Mutex
		posted  url.Values
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	defer ts.Close()
	acs := ts.URL + "/flex/callback?connection=JQ0123456789abcdef0123456789abcdef"
	e := newBrokerEnv(t, func(o *BrokerOptions) {
		o.PublicURL = ts.URL
		o.ServiceProviders[0].ACSURLs = []string{acs}
	})
	mux := http.NewServeMux()
	e.b.Routes(mux)
	mux.HandleFunc("POST /flex/callback", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		posted = r.PostForm
		mu.Unlock()
		_, _ = fmt.Fprint(w, "flex received the response")
	})
	handler = mux

	flex := e.flex(acs)
	req, err := flex.MakeAuthenticationRequest(ts.URL+BrokerSSOPath, crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	u, err := req.Redirect("chromium-relay", flex)
	if err != nil {
		t.Fatal(err)
	}
	b := browser.New(t)
	final, text := b.Open(t, u.String())
	if !strings.HasPrefix(final, acs) || !strings.Contains(text, "flex received the response") {
		t.Fatalf("the browser ended at %s: %s", final, text)
	}
	mu.Lock()
	defer mu.Unlock()
	if posted.Get("RelayState") != "chromium-relay" {
		t.Fatalf("RelayState %q", posted.Get("RelayState"))
	}
	consume(t, flex, postedForm{Action: acs, SAMLResponse: posted.Get("SAMLResponse"), RelayState: "chromium-relay"}, req.ID)
}

// FuzzBrokerAuthnRequest feeds arbitrary bytes to the SSO endpoint (HTTP-POST binding): no
// panic, no answer but a page, a redirect or a refusal.
func FuzzBrokerAuthnRequest(f *testing.F) {
	e := newBrokerEnv(f)
	flex := e.flex(flexACS)
	good := authnRequestXML(f, e.authnRequest(flex, nil))
	f.Add(good)
	f.Add([]byte(`<!DOCTYPE x><x/>`))
	f.Add(bytes.Replace(good, []byte(`Version="2.0"`), []byte(`Version="2.0" Version="2.0"`), 1))
	f.Add([]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a" Version="2.0"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">` + flexEntityID + `</saml:Issuer></samlp:AuthnRequest>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e.b.onPanic = func(p any) { t.Errorf("panic: %v", p) }
		switch rec := e.postSSO(data, ""); rec.Code {
		case http.StatusOK, http.StatusSeeOther, http.StatusFound, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
