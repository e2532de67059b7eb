package saml

// The hostile-input suite (issue 4, "How it is checked"): the in-test IdP signs fresh
// responses and each case mutates one. Every case must be refused with the expected status and
// the specific reason in the log, the LoginHandler must never run, and the page must show the
// correlation id and nothing of the reason.

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

type hostileCase struct {
	name   string
	status int
	reason string
	mods   []func(*Options)
	run    func(t *testing.T, e *env) *httptest.ResponseRecorder
}

// idpInit posts a fresh Okta IdP-initiated response changed by mod.
func idpInit(mod func(*responseSpec)) func(*testing.T, *env) *httptest.ResponseRecorder {
	return idpInitRelay("", mod)
}

func idpInitRelay(relay string, mod func(*responseSpec)) func(*testing.T, *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		s := fresh(t, "")
		if mod != nil {
			mod(&s)
		}
		return e.post(s.build(t), relay)
	}
}

// edited posts a fresh signed response whose bytes edit changes after signing.
func edited(mod func(*responseSpec), edit func(t *testing.T, doc []byte) []byte) func(*testing.T, *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		s := fresh(t, "")
		if mod != nil {
			mod(&s)
		}
		return e.post(edit(t, s.build(t)), "")
	}
}

// tree edits the signed document as a tree: root is the Response.
func tree(edit func(t *testing.T, root *etree.Element)) func(*testing.T, []byte) []byte {
	return func(t *testing.T, doc []byte) []byte {
		d := etree.NewDocument()
		if err := d.ReadFromBytes(doc); err != nil {
			t.Fatal(err)
		}
		edit(t, d.Root())
		out, err := d.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func replace(old, new string) func(*testing.T, []byte) []byte {
	return func(t *testing.T, doc []byte) []byte {
		if !bytes.Contains(doc, []byte(old)) {
			t.Fatalf("the document has no %q", old)
		}
		return bytes.Replace(doc, []byte(old), []byte(new), 1)
	}
}

func assertionOf(root *etree.Element) *etree.Element { return root.SelectElement("Assertion") }

func spInit(mod func(reqID string, s *responseSpec), relayFor func(relay string) string) func(*testing.T, *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		req, relay, cookie := e.startLogin("okta", "")
		s := fresh(t, req.ID)
		if mod != nil {
			mod(req.ID, &s)
		}
		if relayFor != nil {
			relay = relayFor(relay)
		}
		return e.post(s.build(t), relay, cookie)
	}
}

func hostileCases() []hostileCase {
	minute := time.Minute
	return []hostileCase{
		// Signatures.
		{"stripped signature", 403, "signature_missing", nil, idpInit(func(s *responseSpec) { s.SignAssertion = false })},
		{"signature element removed after signing", 403, "signature_missing", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			a := assertionOf(root)
			a.RemoveChild(a.SelectElement("Signature"))
		}))},
		{"foreign signature (attacker's key and certificate)", 403, "signature_untrusted_key", nil, idpInit(func(s *responseSpec) { s.Key = keys(nil).foreign })},
		{"foreign signature without KeyInfo", 403, "signature_invalid", nil, idpInit(func(s *responseSpec) { s.Key, s.NoKeyInfo = keys(nil).foreign, true })},
		{"another IdP's key (Entra signs an Okta assertion)", 403, "signature_untrusted_key", nil, idpInit(func(s *responseSpec) { s.Key = keys(nil).entra })},
		{"NameID changed after signing", 403, "signature_invalid", nil, edited(nil, replace(">"+testNameID+"</saml:NameID>", ">admin@example.com</saml:NameID>"))},
		{"role added after signing", 403, "signature_invalid", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			for _, at := range assertionOf(root).FindElements("./AttributeStatement/Attribute") {
				if at.SelectAttrValue("Name", "") == "roles" {
					at.SelectElement("AttributeValue").SetText("admin")
				}
			}
		}))},
		{"SHA-1 signature", 403, "signature_sha1", nil, idpInit(func(s *responseSpec) { s.Hash = crypto.SHA1 })},
		{"SHA-1 response signature over a SHA-256 assertion", 403, "signature_sha1", nil, edited(func(s *responseSpec) { s.SignResponse = true }, tree(func(t *testing.T, root *etree.Element) {
			root.FindElement("./Signature/SignedInfo/SignatureMethod").SelectAttr("Algorithm").Value = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
		}))},
		{"SHA-1 digest under an RSA-SHA256 signature", 403, "signature_sha1", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			assertionOf(root).FindElement("./Signature/SignedInfo/Reference/DigestMethod").SelectAttr("Algorithm").Value = "http://www.w3.org/2000/09/xmldsig#sha1"
		}))},
		{"HMAC signature method", 403, "signature_sha1", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			assertionOf(root).FindElement("./Signature/SignedInfo/SignatureMethod").SelectAttr("Algorithm").Value = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
		}))},
		{"expired IdP certificate", 403, "signature_invalid", []func(*Options){func(o *Options) {
			o.IdPs[0].MetadataXML = idpMetadata(oktaEntityID, oktaSSO, keys(nil).okta.cert, keys(nil).expired.cert)
		}}, idpInit(func(s *responseSpec) { s.Key = keys(nil).expired })},
		{"extra transform (XPath)", 403, "signature_transform", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			ts := assertionOf(root).FindElement("./Signature/SignedInfo/Reference/Transforms")
			ts.CreateElement("ds:Transform").CreateAttr("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
		}))},

		// Signature wrapping.
		{"XSW: a second, unsigned assertion next to the signed one", 403, "assertion_count", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			evil := assertionOf(root).Copy()
			evil.RemoveChild(evil.SelectElement("Signature"))
			evil.SelectAttr("ID").Value = "_evil"
			evil.FindElement("./Subject/NameID").SetText("admin@example.com")
			root.InsertChildAt(assertionOf(root).Index(), evil)
		}))},
		{"XSW: the signed assertion wrapped inside an evil one", 403, "assertion_misplaced", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			orig := assertionOf(root)
			evil := orig.Copy()
			evil.RemoveChild(evil.SelectElement("Signature"))
			evil.SelectAttr("ID").Value = "_evil"
			evil.FindElement("./Subject/NameID").SetText("admin@example.com")
			root.RemoveChild(orig)
			evil.AddChild(orig)
			root.AddChild(evil)
		}))},
		{"XSW: evil assertion carries the copied signature, original hidden in Extensions", 403, "assertion_misplaced", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			orig := assertionOf(root)
			evil := orig.Copy()
			evil.SelectAttr("ID").Value = "_evil"
			evil.FindElement("./Subject/NameID").SetText("admin@example.com")
			root.RemoveChild(orig)
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(orig)
			root.InsertChildAt(root.SelectElement("Status").Index(), ext)
			root.AddChild(evil)
		}))},
		{"XSW: evil assertion carries the copied signature, original dropped", 403, "signature_reference", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			orig := assertionOf(root)
			orig.SelectAttr("ID").Value = "_evil"
			orig.FindElement("./Subject/NameID").SetText("admin@example.com")
		}))},
		{"XSW: signed Response moved into the Extensions of an unsigned one", 403, "assertion_misplaced", nil, edited(func(s *responseSpec) { s.SignAssertion, s.SignResponse = false, true }, func(t *testing.T, doc []byte) []byte {
			s := fresh(t, "")
			s.SignAssertion = false
			s.A.NameID = "admin@example.com"
			outer := s.build(t)
			i := bytes.Index(outer, []byte("<samlp:Status>"))
			inner := bytes.TrimPrefix(doc, []byte(`<?xml version="1.0" encoding="UTF-8"?>`))
			return append(append(append(outer[:i:i], "<samlp:Extensions>"...), append(inner, "</samlp:Extensions>"...)...), outer[i:]...)
		})},
		{"XSW: the signature hides the signed assertion in ds:Object", 403, "assertion_misplaced", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			orig := assertionOf(root)
			evil := orig.Copy()
			evil.SelectAttr("ID").Value = "_evil"
			evil.FindElement("./Subject/NameID").SetText("admin@example.com")
			root.RemoveChild(orig)
			evil.SelectElement("Signature").CreateElement("ds:Object").AddChild(orig)
			root.AddChild(evil)
		}))},
		{"two elements share an ID", 403, "duplicate_id", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			root.SelectElement("Status").CreateAttr("ID", assertionOf(root).SelectAttrValue("ID", ""))
		}))},
		{"Signature inside the Subject", 403, "signature_misplaced", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			a := assertionOf(root)
			a.SelectElement("Subject").AddChild(a.SelectElement("Signature").Copy())
		}))},
		{"duplicate attribute", 400, "duplicate_attribute", nil, edited(nil, replace(`<saml:Assertion `, `<saml:Assertion Version="2.0" `))},
		{"two assertions, both signed", 403, "assertion_count", nil, edited(nil, func(t *testing.T, doc []byte) []byte {
			other := fresh(t, "")
			other.A.NameID = "bob@example.com"
			d := etree.NewDocument()
			_ = d.ReadFromBytes(other.build(t))
			a2 := assertionOf(d.Root())
			return tree(func(t *testing.T, root *etree.Element) { root.AddChild(a2) })(t, doc)
		})},
		{"an EncryptedAssertion next to an Assertion", 403, "assertion_mix", nil, edited(nil, func(t *testing.T, doc []byte) []byte {
			enc := fresh(t, "")
			enc.Encrypt = keys(t).sp.cert
			d := etree.NewDocument()
			_ = d.ReadFromBytes(enc.build(t))
			ea := d.Root().SelectElement("EncryptedAssertion")
			return tree(func(t *testing.T, root *etree.Element) { root.AddChild(ea) })(t, doc)
		})},

		// Audience, recipient, destination, confirmation.
		{"wrong audience", 403, "audience_mismatch", nil, idpInit(func(s *responseSpec) { s.A.Audiences = [][]string{{"https://other-sp.example.com"}} })},
		{"one of two AudienceRestrictions is not us", 403, "audience_mismatch", nil, idpInit(func(s *responseSpec) {
			s.A.Audiences = [][]string{{testEntityID}, {"https://other-sp.example.com"}}
		})},
		{"no AudienceRestriction", 403, "audience_missing", nil, idpInit(func(s *responseSpec) { s.A.Audiences = nil })},
		{"wrong Recipient", 403, "recipient_mismatch", nil, idpInit(func(s *responseSpec) { s.A.Recipient = "https://other-sp.example.com/acs" })},
		{"no Recipient", 403, "recipient_mismatch", nil, idpInit(func(s *responseSpec) { s.A.Recipient = "" })},
		{"wrong Destination", 403, "destination_mismatch", nil, idpInit(func(s *responseSpec) { s.Destination = "https://other-sp.example.com/acs" })},
		{"signed Response without Destination", 403, "destination_missing", nil, idpInit(func(s *responseSpec) { s.Destination, s.SignResponse = "", true })},
		{"holder-of-key instead of bearer", 403, "bearer_missing", nil, idpInit(func(s *responseSpec) { s.A.Method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key" })},

		// Time.
		{"expired Conditions", 403, "expired", nil, idpInit(func(s *responseSpec) {
			s.A.NotBefore, s.A.NotOnOrAfter = time.Now().Add(-10*minute), time.Now().Add(-45*time.Second)
		})},
		{"expired SubjectConfirmationData", 403, "subject_confirmation_expired", nil, idpInit(func(s *responseSpec) { s.A.SCDNotOnOrAfter = time.Now().Add(-time.Minute) })},
		{"IssueInstant in the future", 403, "issue_instant_future", nil, idpInit(func(s *responseSpec) {
			s.A.IssueInstant = time.Now().Add(5 * minute)
		})},
		{"IssueInstant older than 90 s", 403, "issue_instant_too_old", nil, idpInit(func(s *responseSpec) {
			s.A.IssueInstant = time.Now().Add(-100 * time.Second)
		})},
		{"Response IssueInstant older than 90 s", 403, "issue_instant_too_old", nil, idpInit(func(s *responseSpec) {
			s.IssueInstant = time.Now().Add(-100 * time.Second)
		})},
		{"year-long validity", 403, "lifetime_too_long", nil, idpInit(func(s *responseSpec) {
			s.A.NotOnOrAfter = time.Now().Add(365 * 24 * time.Hour)
		})},
		{"year-long SubjectConfirmationData", 403, "lifetime_too_long", nil, idpInit(func(s *responseSpec) {
			s.A.SCDNotOnOrAfter = time.Now().Add(365 * 24 * time.Hour)
		})},
		{"not yet valid", 403, "not_yet_valid", nil, idpInit(func(s *responseSpec) { s.A.NotBefore = time.Now().Add(5 * minute) })},
		{"Conditions without NotOnOrAfter", 403, "conditions_expiry_missing", nil, idpInit(func(s *responseSpec) { s.A.NotOnOrAfter = time.Time{} })},
		{"SubjectConfirmationData without NotOnOrAfter", 403, "subject_confirmation_expiry_missing", nil, idpInit(func(s *responseSpec) { s.A.SCDNotOnOrAfter = time.Time{} })},

		// Missing elements (crewjam dereferences them without checking).
		{"no Conditions", 400, "conditions_missing", nil, idpInit(func(s *responseSpec) { s.A.NoConditions = true })},
		{"no Subject", 400, "subject_missing", nil, idpInit(func(s *responseSpec) { s.A.NoSubject = true })},
		{"no SubjectConfirmationData", 400, "subject_confirmation_data_missing", nil, idpInit(func(s *responseSpec) { s.A.NoSCD = true })},
		{"no AuthnStatement", 403, "authn_statement_missing", nil, idpInit(func(s *responseSpec) { s.A.NoAuthnStatement = true })},
		{"no Issuer", 400, "issuer_missing", nil, idpInit(func(s *responseSpec) { s.A.NoIssuer = true })},
		{"encrypted assertion without Conditions", 400, "conditions_missing", nil, idpInit(func(s *responseSpec) {
			s.A.NoConditions, s.Encrypt = true, keys(nil).sp.cert
		})},
		{"encrypted assertion whose ciphertext is not whole blocks (crewjam's xmlenc panics)", 400, "panic", nil, edited(func(s *responseSpec) { s.Encrypt = keys(nil).sp.cert }, tree(func(t *testing.T, root *etree.Element) {
			cv := root.FindElement("./EncryptedAssertion/EncryptedData/CipherData/CipherValue")
			ct, _ := base64.StdEncoding.DecodeString(cv.Text())
			cv.SetText(base64.StdEncoding.EncodeToString(append(ct, 0)))
		}))},

		// Issuer and status.
		{"unknown issuer", 403, "unknown_issuer", nil, idpInit(func(s *responseSpec) { s.A.Issuer, s.Issuer = "https://evil.example.com", "https://evil.example.com" })},
		{"Response and Assertion issuers differ", 403, "issuer_mismatch", nil, idpInit(func(s *responseSpec) { s.Issuer = entraEntityID })},
		{"IdP error status", 403, "idp_status", nil, idpInit(func(s *responseSpec) { s.Status = "urn:oasis:names:tc:SAML:2.0:status:Requester" })},

		// InResponseTo and who started the login.
		{"unknown InResponseTo (no request cookie)", 403, "unknown_in_response_to", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.post(fresh(t, "_unknown-request").build(t), newRelayID())
		}},
		{"unknown InResponseTo with an IdP-initiated-looking RelayState", 403, "unknown_in_response_to", nil, idpInitRelay("/home", func(s *responseSpec) {
			s.InResponseTo, s.A.InResponseTo = "_unknown", "_unknown"
		})},
		{"InResponseTo of another request of this browser", 403, "unknown_in_response_to", nil, spInit(func(id string, s *responseSpec) {
			s.InResponseTo, s.A.InResponseTo = "_other", "_other"
		}, nil)},
		{"SubjectConfirmationData answers another request", 403, "in_response_to_mismatch", nil, spInit(func(id string, s *responseSpec) {
			s.A.InResponseTo = "_other"
		}, nil)},
		{"IdP-initiated, but the assertion answers a request", 403, "in_response_to_mismatch", nil, idpInit(func(s *responseSpec) { s.A.InResponseTo = "_something" })},
		{"request cookie forged", 403, "unknown_in_response_to", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			req, relay, cookie := e.startLogin("okta", "")
			payload, _, _ := strings.Cut(cookie.Value, ".")
			forged := &http.Cookie{Name: cookie.Name, Value: payload + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32))}
			return e.post(fresh(t, req.ID).build(t), relay, forged)
		}},
		{"request cookie of another RelayState", 403, "unknown_in_response_to", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			req, _, cookie := e.startLogin("okta", "")
			other := newRelayID()
			return e.post(fresh(t, req.ID).build(t), other, &http.Cookie{Name: cookiePrefix + other, Value: cookie.Value})
		}},
		{"request went to Entra, the answer comes from Okta", 403, "issuer_mismatch", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			req, relay, cookie := e.startLogin("entra", "")
			return e.post(fresh(t, req.ID).build(t), relay, cookie)
		}},
		{"request expired", 403, "unknown_in_response_to", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			req, relay, cookie := e.startLogin("okta", "")
			e.sp.now = func() time.Time { return time.Now().Add(11 * time.Minute) }
			s := fresh(t, req.ID)
			return e.post(s.build(t), relay, cookie)
		}},
		{"IdP-initiated when the IdP does not allow it", 403, "idp_initiated_not_allowed", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.post(entraFresh(t, "").build(t), "")
		}},

		// RelayState.
		{"RelayState is an absolute URL", 400, "relay_state_invalid", nil, idpInitRelay("https://evil.example.com/", nil)},
		{"RelayState is //host", 400, "relay_state_invalid", nil, idpInitRelay("//evil.example.com/x", nil)},
		{"RelayState is /\\host", 400, "relay_state_invalid", nil, idpInitRelay("/\\evil.example.com", nil)},
		{"RelayState is javascript:", 400, "relay_state_invalid", nil, idpInitRelay("javascript:alert(document.cookie)", nil)},
		{"RelayState has a line break", 400, "relay_state_invalid", nil, idpInitRelay("/x\r\nSet-Cookie: a=b", nil)},
		{"IdP-initiated with a request-shaped RelayState", 403, "relay_state_invalid", nil, idpInitRelay(newRelayID(), nil)},
		{"SP-initiated answer with an absolute-URL RelayState", 400, "relay_state_invalid", nil, spInit(nil, func(string) string { return "https://evil.example.com" })},

		// Values and syntax.
		{"NameID with a bidi override", 403, "nameid_invalid", nil, idpInit(func(s *responseSpec) { s.A.NameID = "alice\u202e@example.com" })},
		{"display name with a line separator", 403, "attribute_invalid", nil, idpInit(func(s *responseSpec) { s.A.Attributes[1].Values = []string{"Alice\u2028Admin"} })},
		{"no NameID and no email", 403, "username_missing", nil, idpInit(func(s *responseSpec) {
			s.A.NameID, s.A.NameIDFormat, s.A.Attributes = "", "", nil
		})},
		{"SAML 1.1 assertion version", 400, "version", nil, idpInit(func(s *responseSpec) { s.A.Version = "1.1" })},
		{"IssueInstant is not a dateTime", 400, "time_invalid", nil, edited(func(s *responseSpec) { s.SignAssertion, s.SignResponse = false, true }, tree(func(t *testing.T, root *etree.Element) {
			assertionOf(root).FindElement("./Conditions").SelectAttr("NotOnOrAfter").Value = "tomorrow"
		}))},
		{"assertion ID with a space", 400, "assertion_id_invalid", nil, idpInit(func(s *responseSpec) { s.A.ID = "_a b" })},
		{"ds:Object inside the Signature", 403, "signature_shape", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			assertionOf(root).SelectElement("Signature").CreateElement("ds:Object").SetText("x")
		}))},
		{"DSA signature method", 403, "signature_algorithm", nil, edited(nil, tree(func(t *testing.T, root *etree.Element) {
			assertionOf(root).FindElement("./Signature/SignedInfo/SignatureMethod").SelectAttr("Algorithm").Value = "http://www.w3.org/2009/xmldsig11#dsa-sha256"
		}))},
		{"assertion encrypted to somebody else", 403, "decrypt_failed", nil, idpInit(func(s *responseSpec) { s.Encrypt = keys(nil).foreign.cert })},

		// Bytes and XML.
		{"DOCTYPE", 400, "doctype", nil, edited(nil, replace(`<samlp:Response`, `<!DOCTYPE r [<!ELEMENT r ANY>]><samlp:Response`))},
		{"XXE", 400, "doctype", nil, edited(nil, func(t *testing.T, doc []byte) []byte {
			doc = replace(`<samlp:Response`, `<!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><samlp:Response`)(t, doc)
			return replace(">"+testNameID+"<", ">&xxe;<")(t, doc)
		})},
		{"billion laughs", 400, "doctype", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.post([]byte(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&lol2;</samlp:Response>`), "")
		}},
		{"lower-case doctype", 400, "doctype", nil, edited(nil, replace(`<samlp:Response`, `<!doctype html><samlp:Response`))},
		{"10,000-deep nesting", 400, "too_deep", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.post([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">`+strings.Repeat("<a>", 10000)+strings.Repeat("</a>", 10000)+`</samlp:Response>`), "")
		}},
		{"deep nesting inside a signed response", 400, "too_deep", nil, edited(nil, replace(`<samlp:Status>`, strings.Repeat("<x>", 40)+strings.Repeat("</x>", 40)+`<samlp:Status>`))},
		{"oversized body", 413, "body_too_large", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.postForm("SAMLResponse=" + strings.Repeat("A", 2<<20))
		}},
		{"oversized response", 413, "response_too_large", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.post(append(fresh(t, "").build(t), bytes.Repeat([]byte(" "), DefaultMaxResponseBytes)...), "")
		}},
		{"not base64", 400, "base64_invalid", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.postForm("SAMLResponse=%21%21%21%21")
		}},
		{"not XML", 400, "xml_invalid", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder { return e.post([]byte("<samlp:Response"), "") }},
		{"UTF-16", 400, "not_utf8", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.post([]byte("\xff\xfe<\x00s\x00/\x00>\x00"), "")
		}},
		{"not a Response", 400, "not_a_response", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.post([]byte(`<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`), "")
		}},
		{"no SAMLResponse", 400, "saml_response_missing", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder { return e.postForm("RelayState=/x") }},
		{"two SAMLResponse fields", 400, "saml_response_missing", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.postForm("SAMLResponse=PGEvPg%3D%3D&SAMLResponse=PGEvPg%3D%3D")
		}},
		{"artifact binding", 400, "artifact_binding", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder { return e.postForm("SAMLart=AAQAA") }},
		{"multipart body", 400, "form_invalid", nil, func(t *testing.T, e *env) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, ACSPath, strings.NewReader("--x\r\n\r\n--x--"))
			req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
			rec := httptest.NewRecorder()
			e.mux.ServeHTTP(rec, req)
			return rec
		}},
	}
}

func TestHostileInputs(t *testing.T) {
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.mods...)
			rec := c.run(t, e)
			if rec.Code != c.status {
				t.Errorf("status %d, want %d; reasons %v", rec.Code, c.status, e.reasons())
			}
			if r := e.reasons(); len(r) == 0 || r[len(r)-1] != c.reason {
				t.Errorf("reasons %v, want %s last", r, c.reason)
			}
			if n := e.loginCount(); n != 0 {
				t.Errorf("the login handler ran %d times", n)
			}
			body := rec.Body.String()
			rid := rec.Header().Get(requestIDHeader)
			if rid == "" || !strings.Contains(body, rid) || strings.Contains(body, c.reason) || rec.Header().Get("Location") != "" {
				t.Errorf("page: request id %q, body %s", rid, body)
			}
			if c.reason != "panic" && len(e.panics) > 0 {
				t.Errorf("recovered panics: %v", e.panics)
			}
			for _, entry := range e.logs.All() {
				if d, _ := entry.ContextMap()["detail"].(string); strings.Contains(d, "<saml") || strings.Contains(d, "SignatureValue") {
					t.Errorf("the log holds SAML text: %s", d)
				}
			}
		})
	}
}

func TestReplay(t *testing.T) {
	e := newEnv(t)
	doc := fresh(t, "").build(t)
	e.expectLogin(t, e.post(doc, ""), "/welcome")
	if rec := e.post(doc, ""); rec.Code != http.StatusForbidden || e.reasons()[0] != "replay" || e.loginCount() != 1 {
		t.Fatalf("replay: %d %v", rec.Code, e.reasons())
	}

	// With a shared replay cache (the store), a replay to another replica is refused too.
	shared := NewMemoryReplayCache(nil)
	a := newEnv(t, func(o *Options) { o.Replay = shared })
	b := newEnv(t, func(o *Options) { o.Replay = shared })
	doc = fresh(t, "").build(t)
	a.expectLogin(t, a.post(doc, ""), "/welcome")
	if rec := b.post(doc, ""); rec.Code != http.StatusForbidden || b.reasons()[0] != "replay" || b.loginCount() != 0 {
		t.Fatalf("replay to another replica: %d %v", rec.Code, b.reasons())
	}

	// A failing replay cache fails closed.
	c := newEnv(t, func(o *Options) { o.Replay = failingCache{} })
	if rec := c.post(fresh(t, "").build(t), ""); rec.Code != http.StatusServiceUnavailable || c.loginCount() != 0 {
		t.Fatalf("cache down: %d", rec.Code)
	}
}

type failingCache struct{}

func (failingCache) Remember(context.Context, string, time.Time) (bool, error) {
	return false, context.DeadlineExceeded
}

func TestCommentInjectedNameID(t *testing.T) {
	// The IdP signs NameID "alice@example.com.evil.com" (an account the attacker registered);
	// a comment inserted after signing keeps the signature valid (exclusive c14n drops
	// comments). A vulnerable SP reads the text before the comment ("alice@example.com"). Here
	// the login carries the whole signed text.
	const signed = "alice@example.com.evil.com"
	for _, where := range []string{"NameID", "email attribute"} {
		t.Run(where, func(t *testing.T) {
			e := newEnv(t)
			s := fresh(t, "")
			s.A.NameID = signed
			s.A.Attributes[0].Values = []string{signed}
			doc := s.build(t)
			if where == "NameID" {
				doc = replace(">"+signed+"</saml:NameID>", ">alice@example.com<!---->.evil.com</saml:NameID>")(t, doc)
			} else {
				doc = replace(">"+signed+"</saml:AttributeValue>", ">alice@example.com<!-- x -->.evil.com</saml:AttributeValue>")(t, doc)
			}
			l := e.expectLogin(t, e.post(doc, ""), "/welcome")
			if l.NameID != signed || l.Identity.UserName != signed || l.Identity.PrimaryEmail() != signed {
				t.Fatalf("NameID %q, userName %q, email %q: want the whole signed text", l.NameID, l.Identity.UserName, l.Identity.PrimaryEmail())
			}
		})
	}
	t.Run("processing instruction", func(t *testing.T) {
		e := newEnv(t)
		s := fresh(t, "")
		s.A.NameID = signed
		doc := replace(">"+signed+"</saml:NameID>", ">alice@example.com<?x y?>.evil.com</saml:NameID>")(t, s.build(t))
		// Canonical XML keeps processing instructions, so the digest no longer matches.
		if rec := e.post(doc, ""); rec.Code != http.StatusForbidden || e.reasons()[0] != "signature_invalid" || e.loginCount() != 0 {
			t.Fatalf("PI in NameID: %d %v", rec.Code, e.reasons())
		}
	})
}

func TestAudienceRestrictionWithSeveralAudiences(t *testing.T) {
	// Within one AudienceRestriction any Audience may be us (across restrictions all must be).
	e := newEnv(t)
	s := fresh(t, "")
	s.A.Audiences = [][]string{{"https://other-sp.example.com", testEntityID}, {testEntityID}}
	e.expectLogin(t, e.post(s.build(t), ""), "/welcome")
}

// TestCrewjamPanics documents why the shape checks run before crewjam: v0.5.1 dereferences a
// missing Conditions in a signed assertion.
func TestCrewjamPanics(t *testing.T) {
	e := newEnv(t)
	s := fresh(t, "")
	s.A.NoConditions = true
	doc := s.build(t)
	defer func() {
		if recover() == nil {
			t.Log("crewjam no longer panics on a missing Conditions")
		}
	}()
	p := e.sp.idps.Load().byName["okta"]
	acs, _ := url.Parse(testACS)
	_, _ = p.sp.ParseXMLResponse(doc, []string{""}, *acs)
	t.Error("crewjam accepted an assertion without Conditions")
}
