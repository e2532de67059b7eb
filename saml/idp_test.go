package saml

// The in-test IdP: RSA keys and certificates made in the test, SAML Responses built as text and
// signed with goxmldsig (exclusive canonicalization, enveloped signature placed after Issuer, as
// real IdPs do), optionally encrypted to the SP with crewjam's xmlenc. Every knob a hostile
// test needs is a field of responseSpec or assertionSpec; byte-level mutations (wrapping,
// comments, DOCTYPE) are made on the signed output.

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const (
	testPublicURL = "https://bridge.example.com"
	testACS       = testPublicURL + "/saml/acs"
	testEntityID  = testPublicURL + "/saml/metadata"
	oktaEntityID  = "http://www.okta.com/exk1fxp2wxyzABCD0h7"
	entraEntityID = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"
	oktaSSO       = "https://example.okta.com/app/flexbridge/exk1fxp2wxyzABCD0h7/sso/saml"
	entraSSO      = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/saml2"
	testNameID    = "alice@example.com"
)

type keyPair struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newKeyPair(tb testing.TB, cn string, notBefore, notAfter time.Time) keyPair {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return keyPair{key: key, cert: cert}
}

// Keys are made once per test binary: 2048-bit RSA key generation is slow under -race.
var (
	keysOnce sync.Once
	testKeys struct {
		sp, okta, oktaNext, entra, foreign, expired keyPair
	}
)

func keys(tb testing.TB) *struct{ sp, okta, oktaNext, entra, foreign, expired keyPair } {
	keysOnce.Do(func() {
		now := time.Now()
		nb, na := now.Add(-24*time.Hour), now.Add(365*24*time.Hour)
		testKeys.sp = newKeyPair(tb, "flexbridge sp", nb, na)
		testKeys.okta = newKeyPair(tb, "okta signing", nb, na)
		testKeys.oktaNext = newKeyPair(tb, "okta signing (next)", nb, na)
		testKeys.entra = newKeyPair(tb, "Microsoft Azure Federated SSO Certificate", nb, na)
		testKeys.foreign = newKeyPair(tb, "attacker", nb, na)
		testKeys.expired = newKeyPair(tb, "okta signing (expired)", now.Add(-48*time.Hour), now.Add(-time.Hour))
	})
	return &testKeys
}

func idpMetadata(entityID, ssoURL string, certs ...*x509.Certificate) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="%s">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">`, esc(entityID))
	for _, c := range certs {
		fmt.Fprintf(&b, `
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`,
			base64.StdEncoding.EncodeToString(c.Raw))
	}
	fmt.Fprintf(&b, `
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="%[1]s"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="%[1]s"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`, esc(ssoURL))
	return []byte(b.String())
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type attribute struct {
	Name, FriendlyName string
	Values             []string
}

type assertionSpec struct {
	ID, Issuer                    string
	IssueInstant                  time.Time
	NameID, NameIDFormat          string
	Method                        string // default bearer
	Recipient, InResponseTo       string
	SCDNotBefore, SCDNotOnOrAfter time.Time
	NotBefore, NotOnOrAfter       time.Time
	Audiences                     [][]string // one inner slice per AudienceRestriction
	SessionIndex                  string
	Attributes                    []attribute
	Version                       string

	NoSubject, NoSCD, NoConditions, NoAuthnStatement, NoIssuer bool
}

func attrIf(name string, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprintf(` %s="%s"`, name, stamp(t))
}

func strAttrIf(name, v string) string {
	if v == "" {
		return ""
	}
	return fmt.Sprintf(` %s="%s"`, name, esc(v))
}

func (a assertionSpec) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="%s" Version="%s"%s>`,
		esc(a.ID), esc(a.Version), attrIf("IssueInstant", a.IssueInstant))
	if !a.NoIssuer {
		fmt.Fprintf(&b, `<saml:Issuer>%s</saml:Issuer>`, esc(a.Issuer))
	}
	if !a.NoSubject {
		fmt.Fprintf(&b, `<saml:Subject><saml:NameID%s>%s</saml:NameID><saml:SubjectConfirmation Method="%s">`,
			strAttrIf("Format", a.NameIDFormat), esc(a.NameID), esc(a.Method))
		if !a.NoSCD {
			fmt.Fprintf(&b, `<saml:SubjectConfirmationData%s%s%s%s/>`,
				attrIf("NotBefore", a.SCDNotBefore), attrIf("NotOnOrAfter", a.SCDNotOnOrAfter),
				strAttrIf("Recipient", a.Recipient), strAttrIf("InResponseTo", a.InResponseTo))
		}
		b.WriteString(`</saml:SubjectConfirmation></saml:Subject>`)
	}
	if !a.NoConditions {
		fmt.Fprintf(&b, `<saml:Conditions%s%s>`, attrIf("NotBefore", a.NotBefore), attrIf("NotOnOrAfter", a.NotOnOrAfter))
		for _, r := range a.Audiences {
			b.WriteString(`<saml:AudienceRestriction>`)
			for _, aud := range r {
				fmt.Fprintf(&b, `<saml:Audience>%s</saml:Audience>`, esc(aud))
			}
			b.WriteString(`</saml:AudienceRestriction>`)
		}
		b.WriteString(`</saml:Conditions>`)
	}
	if !a.NoAuthnStatement {
		fmt.Fprintf(&b, `<saml:AuthnStatement%s%s><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`,
			attrIf("AuthnInstant", a.IssueInstant), strAttrIf("SessionIndex", a.SessionIndex))
	}
	if len(a.Attributes) > 0 {
		b.WriteString(`<saml:AttributeStatement>`)
		for _, at := range a.Attributes {
			fmt.Fprintf(&b, `<saml:Attribute%s%s NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">`,
				strAttrIf("Name", at.Name), strAttrIf("FriendlyName", at.FriendlyName))
			for _, v := range at.Values {
				fmt.Fprintf(&b, `<saml:AttributeValue xsi:type="xs:string">%s</saml:AttributeValue>`, esc(v))
			}
			b.WriteString(`</saml:Attribute>`)
		}
		b.WriteString(`</saml:AttributeStatement>`)
	}
	b.WriteString(`</saml:Assertion>`)
	return b.String()
}

type responseSpec struct {
	ID, Issuer, Destination, InResponseTo, Status, Version string
	IssueInstant                                           time.Time
	A                                                      assertionSpec

	SignAssertion, SignResponse bool
	Key                         keyPair     // signing key
	Hash                        crypto.Hash // default SHA-256
	NoKeyInfo                   bool        // leave KeyInfo out of signatures (some IdPs do)
	Encrypt                     *x509.Certificate
}

func parseEl(tb testing.TB, s string) *etree.Element {
	tb.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(s); err != nil {
		tb.Fatalf("test IdP produced bad XML: %v\n%s", err, s)
	}
	return doc.Root()
}

// signEl signs el (enveloped, exclusive c14n) and puts the Signature right after its Issuer.
func signEl(tb testing.TB, el *etree.Element, kp keyPair, hash crypto.Hash, keyInfo bool) {
	tb.Helper()
	ctx, err := dsig.NewSigningContext(kp.key, [][]byte{kp.cert.Raw})
	if err != nil {
		tb.Fatal(err)
	}
	ctx.Hash = hash
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		tb.Fatal(err)
	}
	if !keyInfo {
		if ki := sig.SelectElement("KeyInfo"); ki != nil {
			sig.RemoveChild(ki)
		}
	}
	at := 0
	if iss := el.SelectElement("Issuer"); iss != nil {
		at = iss.Index() + 1
	}
	el.InsertChildAt(at, sig)
}

func (s responseSpec) build(tb testing.TB) []byte {
	tb.Helper()
	hash := s.Hash
	if hash == 0 {
		hash = crypto.SHA256
	}
	a := parseEl(tb, s.A.render())
	if s.SignAssertion {
		signEl(tb, a, s.Key, hash, !s.NoKeyInfo)
	}
	var assertionEl *etree.Element = a
	if s.Encrypt != nil {
		doc := etree.NewDocument()
		doc.SetRoot(a)
		plain, err := doc.WriteToBytes()
		if err != nil {
			tb.Fatal(err)
		}
		enc := xmlenc.OAEP()
		enc.BlockCipher = xmlenc.AES128CBC
		enc.DigestMethod = &xmlenc.SHA1
		ed, err := enc.Encrypt(s.Encrypt, plain, nil)
		if err != nil {
			tb.Fatal(err)
		}
		ed.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
		assertionEl = etree.NewElement("saml:EncryptedAssertion")
		assertionEl.AddChild(ed)
	}
	r := parseEl(tb, fmt.Sprintf(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="%s" Version="%s"%s%s%s><saml:Issuer>%s</saml:Issuer><samlp:Status><samlp:StatusCode Value="%s"/></samlp:Status></samlp:Response>`,
		esc(s.ID), esc(s.Version), attrIf("IssueInstant", s.IssueInstant), strAttrIf("Destination", s.Destination),
		strAttrIf("InResponseTo", s.InResponseTo), esc(s.Issuer), esc(s.Status)))
	r.AddChild(assertionEl)
	if s.SignResponse {
		signEl(tb, r, s.Key, hash, !s.NoKeyInfo)
	}
	doc := etree.NewDocument()
	doc.SetRoot(r)
	out, err := doc.WriteToBytes()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func randomID() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("_%x", b)
}

// fresh is a valid signed response from the Okta stand-in, issued now, answering requestID
// ("" for IdP-initiated).
func fresh(tb testing.TB, requestID string) responseSpec {
	now := time.Now()
	k := keys(tb)
	return responseSpec{
		ID: randomID(), Issuer: oktaEntityID, Destination: testACS, InResponseTo: requestID,
		Status: statusSuccess, Version: "2.0", IssueInstant: now,
		SignAssertion: true, Key: k.okta,
		A: assertionSpec{
			ID: randomID(), Issuer: oktaEntityID, IssueInstant: now, Version: "2.0",
			NameID: testNameID, NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			Method: bearerMethod, Recipient: testACS, InResponseTo: requestID,
			SCDNotOnOrAfter: now.Add(5 * time.Minute),
			NotBefore:       now.Add(-5 * time.Minute), NotOnOrAfter: now.Add(5 * time.Minute),
			Audiences:    [][]string{{testEntityID}},
			SessionIndex: "_session1",
			Attributes: []attribute{
				{Name: "email", Values: []string{testNameID}},
				{Name: "displayName", Values: []string{"Alice Example"}},
				{Name: "groups", Values: []string{"Flex Agents", "Flex Supervisors"}},
				{Name: "roles", Values: []string{"agent", "supervisor"}},
				{Name: "location", Values: []string{"Paris, France"}},
			},
		},
	}
}

// entraFresh is a valid response shaped like Microsoft Entra ID's: claim URIs, group object ids,
// a persistent opaque NameID, a 65-minute Conditions window, the assertion signed.
func entraFresh(tb testing.TB, requestID string) responseSpec {
	s := fresh(tb, requestID)
	now := s.IssueInstant
	s.Issuer, s.A.Issuer, s.Key = entraEntityID, entraEntityID, keys(tb).entra
	s.A.NameID = "alice@contoso.com"
	s.A.NameIDFormat = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	s.A.NotBefore, s.A.NotOnOrAfter = now.Add(-5*time.Minute), now.Add(time.Hour)
	s.A.Attributes = []attribute{
		{Name: "http://schemas.microsoft.com/identity/claims/tenantid", Values: []string{"72f988bf-86f1-41af-91ab-2d7cd011db47"}},
		{Name: "http://schemas.microsoft.com/identity/claims/objectidentifier", Values: []string{"f3b2c1d0-0000-4000-8000-000000000001"}},
		{Name: "http://schemas.microsoft.com/identity/claims/displayname", Values: []string{"Alice Contoso"}},
		{Name: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", Values: []string{"alice@contoso.com"}},
		{Name: EntraGroupsClaim, Values: []string{"0B6F4C47-8A27-4F3E-9D8E-2A7F1F5C1A01", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c03"}},
	}
	return s
}

// env is one SP with the Okta and Entra stand-ins, a recording LoginHandler and observed logs.
type env struct {
	tb   testing.TB
	sp   *SP
	mux  *http.ServeMux
	logs *observer.ObservedLogs

	mu       sync.Mutex
	logins   []Login
	redirect string
	err      error
	panics   []any
}

func oktaIdP(tb testing.TB) IdPConfig {
	k := keys(tb)
	return IdPConfig{
		Name:        "okta",
		MetadataXML: idpMetadata(oktaEntityID, oktaSSO, k.okta.cert, k.oktaNext.cert),
		Attributes:  Attributes{Email: "email", DisplayName: "displayName", Groups: "groups", Roles: "roles"},
		// The default here allows IdP-initiated logins so that most tests need no request;
		// TestIdPInitiatedNotAllowed covers the default (off).
		AllowIdPInitiated: true,
	}
}

func entraIdP(tb testing.TB) IdPConfig {
	return IdPConfig{
		Name:        "entra",
		MetadataXML: idpMetadata(entraEntityID, entraSSO, keys(tb).entra.cert),
		Attributes: Attributes{
			Email:       "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
			DisplayName: "http://schemas.microsoft.com/identity/claims/displayname",
			Groups:      EntraGroupsClaim,
		},
	}
}

func newEnv(tb testing.TB, mods ...func(*Options)) *env {
	tb.Helper()
	k := keys(tb)
	core, logs := observer.New(zap.DebugLevel)
	e := &env{tb: tb, logs: logs, redirect: "/welcome"}
	o := Options{
		PublicURL: testPublicURL,
		Key:       k.sp.key,
		Cert:      k.sp.cert,
		IdPs:      []IdPConfig{oktaIdP(tb), entraIdP(tb)},
		Replay:    NewMemoryReplayCache(nil),
		Logins: LoginHandlerFunc(func(_ context.Context, l Login) (string, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.logins = append(e.logins, l)
			return e.redirect, e.err
		}),
		Logger: zap.New(core),
	}
	for _, m := range mods {
		m(&o)
	}
	sp, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	sp.onPanic = func(p any) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.panics = append(e.panics, p)
	}
	e.sp = sp
	e.mux = http.NewServeMux()
	sp.Routes(e.mux)
	return e
}

// post sends a SAMLResponse (base64-encoded here) to the ACS.
func (e *env) post(xmlDoc []byte, relay string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	form := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(xmlDoc)}}
	if relay != "" {
		form.Set("RelayState", relay)
	}
	return e.postForm(form.Encode(), cookies...)
}

func (e *env) postForm(body string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, ACSPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec
}

func (e *env) loginCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.logins)
}

func (e *env) lastLogin() Login {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.logins) == 0 {
		e.tb.Fatal("the login handler was not called")
	}
	return e.logins[len(e.logins)-1]
}

// reasons are the reasons of every refusal logged so far.
func (e *env) reasons() []string {
	var out []string
	for _, entry := range e.logs.FilterMessage("saml request refused").All() {
		out = append(out, entry.ContextMap()["reason"].(string))
	}
	return out
}

// startLogin runs GET /saml/login and returns the AuthnRequest it sent, the RelayState and the
// request cookie the browser got.
func (e *env) startLogin(idpName, ret string) (*crewjam.AuthnRequest, string, *http.Cookie) {
	e.tb.Helper()
	q := url.Values{"idp": {idpName}}
	if ret != "" {
		q.Set("return", ret)
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, LoginPath+"?"+q.Encode(), nil))
	if rec.Code != http.StatusFound {
		e.tb.Fatalf("GET /saml/login: %d %s", rec.Code, rec.Body)
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		e.tb.Fatal(err)
	}
	compressed, err := base64.StdEncoding.DecodeString(loc.Query().Get("SAMLRequest"))
	if err != nil {
		e.tb.Fatal(err)
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(compressed)))
	if err != nil {
		e.tb.Fatal(err)
	}
	var req crewjam.AuthnRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		e.tb.Fatal(err)
	}
	relay := loc.Query().Get("RelayState")
	var cookie *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookiePrefix+relay && c.MaxAge > 0 {
			cookie = c
		}
	}
	if cookie == nil {
		e.tb.Fatalf("no request cookie for RelayState %q", relay)
	}
	return &req, relay, cookie
}
