package saml

import (
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	"go.uber.org/zap"
)

const (
	bearerMethod  = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
	statusSuccess = "urn:oasis:names:tc:SAML:2.0:status:Success"
	// maxIDLength caps the ID attributes this package reads and stores (the replay cache key).
	maxIDLength = 256
)

// serveACS is POST /saml/acs (HTTP-POST binding).
func (sp *SP) serveACS(w http.ResponseWriter, r *http.Request) {
	log, rid := sp.requestLog(w, r)
	ctx := r.Context()
	raw, relay, f := sp.readForm(w, r)
	if f != nil {
		writeFailure(w, log, rid, f)
		return
	}
	now := sp.now()
	v, f := sp.validate(log, raw, relay, func(id string) (pendingRequest, bool) { return sp.cookies.get(r, id, now) })
	if v.clearRelay != "" {
		sp.cookies.clear(w, v.clearRelay) // a request is answered once, whatever the outcome
	}
	fields := []zap.Field{zap.String("idp", v.idp), zap.String("assertion_id", v.assertionID), zap.Bool("idp_initiated", v.login.IdPInitiated)}
	if f != nil {
		writeFailure(w, log, rid, f, fields...)
		return
	}

	// Replay: last of the checks, so that only assertions that passed everything else are
	// remembered. The store decides atomically, so two replicas cannot both accept one.
	fresh, err := sp.o.Replay.Remember(ctx, v.assertionID, v.replayUntil)
	if err != nil {
		writeFailure(w, log, rid, fail(kindUnavailable, "replay_cache_unavailable", "%w", err), fields...)
		return
	}
	if !fresh {
		writeFailure(w, log, rid, rejected("replay", "the assertion was used before"), fields...)
		return
	}

	redirect, err := sp.o.Logins.Login(ctx, v.login)
	if err != nil {
		writeFailure(w, log, rid, asFailure(err), fields...)
		return
	}
	if redirect == "" {
		redirect = v.login.RelayState
	}
	if redirect == "" {
		redirect = "/"
	}
	if !isSafeRedirect(redirect) {
		writeFailure(w, log, rid, fail(kindInternal, "login_handler_redirect", "the login handler answered an unusable redirect"), fields...)
		return
	}
	sp.setSession(w, v.login, now)
	log.Info("saml login accepted", fields...)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", redirect)
	w.WriteHeader(http.StatusSeeOther)
}

// readForm reads the POST form under a body cap and returns the decoded SAMLResponse, which is
// also capped, before anything parses it as XML.
func (sp *SP) readForm(w http.ResponseWriter, r *http.Request) ([]byte, string, *failure) {
	max := sp.o.MaxResponseBytes
	if f := parseCappedForm(w, r, max); f != nil {
		return nil, "", f
	}
	if _, ok := r.PostForm["SAMLart"]; ok {
		return nil, "", malformed("artifact_binding", "the HTTP-Artifact binding is not supported")
	}
	vals, relays := r.PostForm["SAMLResponse"], r.PostForm["RelayState"]
	if len(vals) != 1 || vals[0] == "" {
		return nil, "", malformed("saml_response_missing", "%d SAMLResponse fields", len(vals))
	}
	if len(relays) > 1 {
		return nil, "", malformed("relay_state_invalid", "%d RelayState fields", len(relays))
	}
	// Base64 text may carry line breaks (ignored by the decoder): allow one every 38 bytes.
	if len(vals[0]) > base64.StdEncoding.EncodedLen(max)+max/19 {
		return nil, "", fail(kindTooLarge, "response_too_large", "the SAMLResponse field is %d bytes", len(vals[0]))
	}
	raw, err := base64.StdEncoding.DecodeString(vals[0])
	if err != nil {
		return nil, "", malformed("base64_invalid", "%v", err)
	}
	relay := ""
	if len(relays) == 1 {
		relay = relays[0]
	}
	return raw, relay, nil
}

// validated is what validate found, as far as it got (the fields name the IdP and assertion in
// the log even when a later check fails).
type validated struct {
	login       Login
	idp         string
	assertionID string
	replayUntil time.Time
	clearRelay  string
}

// validate runs every check on one response and builds the Login. It never calls the replay
// cache or the LoginHandler. A panic anywhere below (in crewjam, etree or goxmldsig on input
// nobody foresaw) is recovered into a 400.
func (sp *SP) validate(log *zap.Logger, raw []byte, relay string, pending func(relay string) (pendingRequest, bool)) (v validated, f *failure) {
	defer func() {
		if p := recover(); p != nil {
			if sp.onPanic != nil {
				sp.onPanic(p)
			}
			log.Error("panic while validating a SAML response", zap.String("panic", truncate(fmt.Sprint(p), 200)), zap.ByteString("stack", debug.Stack()))
			f = malformed("panic", "recovered from a panic in the parser")
		}
	}()
	now := sp.now()

	// 1. Bytes: size, encoding, no DOCTYPE, then a depth-capped parse.
	if len(raw) > sp.o.MaxResponseBytes {
		return v, fail(kindTooLarge, "response_too_large", "the response is %d bytes", len(raw))
	}
	relayIsID := relayIDPattern.MatchString(relay)
	if relay != "" && !relayIsID && !isLocalPath(relay) {
		return v, malformed("relay_state_invalid", "RelayState is neither an id this server issued nor a local path")
	}
	if err := checkRawXML(raw); err != nil {
		return v, malformed(reasonOf(err), "%v", err)
	}
	root, err := parseXML(raw)
	if err != nil {
		return v, malformed(reasonOf(err), "%v", err)
	}

	// 2. Shape of the Response: no room for wrapping.
	if !is(root, nsProtocol, "Response") {
		return v, malformed("not_a_response", "the root element is %s", root.Tag)
	}
	if f := checkTree(root, func(el *etree.Element) bool { return el == root || is(el, nsAssertion, "Assertion") }); f != nil {
		return v, f
	}
	status := ""
	if sc := only(only(root, nsProtocol, "Status"), nsProtocol, "StatusCode"); sc != nil {
		status, _ = attr(sc, "Value")
	}
	if status != statusSuccess {
		return v, rejected("idp_status", "the IdP answered status %q", truncate(status, 120))
	}
	plain, enc := children(root, nsAssertion, "Assertion"), children(root, nsAssertion, "EncryptedAssertion")
	switch {
	case len(plain) > 0 && len(enc) > 0:
		return v, rejected("assertion_mix", "%d Assertion and %d EncryptedAssertion", len(plain), len(enc))
	case len(plain)+len(enc) != 1:
		return v, rejected("assertion_count", "%d assertions; exactly one is accepted", len(plain)+len(enc))
	}
	respSig := only(root, nsDSig, "Signature")
	if respSig != nil {
		if f := checkSignature(respSig, root); f != nil {
			return v, f
		}
	}
	var a *etree.Element
	if len(plain) == 1 {
		a = plain[0]
	} else if a, f = sp.decrypt(enc[0]); f != nil {
		return v, f
	}
	aSig := only(a, nsDSig, "Signature")
	if aSig != nil {
		if f := checkSignature(aSig, a); f != nil {
			return v, f
		}
	}
	if respSig == nil && aSig == nil {
		return v, rejected("signature_missing", "neither the Response nor the Assertion is signed")
	}
	if id, _ := attr(a, "ID"); len(id) > 0 && len(id) <= maxIDLength {
		v.assertionID = id
	}

	// 3. Which IdP, and which request this answers.
	iss := only(a, nsAssertion, "Issuer")
	if iss == nil {
		return v, malformed("issuer_missing", "the assertion has no single Issuer")
	}
	issuer := textOf(iss)
	set := sp.idps.Load()
	p := set.byEntityID[issuer]
	if p == nil {
		return v, rejected("unknown_issuer", "no IdP has entity id %q", truncate(issuer, 200))
	}
	v.idp = p.cfg.Name
	if ri := only(root, nsAssertion, "Issuer"); ri != nil && textOf(ri) != issuer {
		return v, rejected("issuer_mismatch", "the Response and Assertion issuers differ")
	}
	inResponseTo, _ := attr(root, "InResponseTo")
	var expectID, returnPath string
	if inResponseTo != "" {
		if !relayIsID {
			return v, rejected("unknown_in_response_to", "an answer to a request, without the RelayState of one")
		}
		req, ok := pending(relay)
		if !ok {
			return v, rejected("unknown_in_response_to", "this browser holds no live request for the RelayState")
		}
		v.clearRelay = relay
		if req.ID != inResponseTo {
			return v, rejected("unknown_in_response_to", "InResponseTo does not match the request this browser started")
		}
		if req.IdP != p.cfg.Name {
			return v, rejected("issuer_mismatch", "the request went to IdP %s", req.IdP)
		}
		expectID, returnPath = req.ID, req.Return
	} else {
		v.login.IdPInitiated = true
		if !p.cfg.AllowIdPInitiated {
			return v, rejected("idp_initiated_not_allowed", "unsolicited responses are not allowed for this IdP")
		}
		if relayIsID {
			return v, rejected("relay_state_invalid", "an unsolicited response carries a request RelayState")
		}
		returnPath = relay
	}

	// 4. The Response and the Assertion themselves.
	if f := sp.checkResponse(root, respSig != nil, now); f != nil {
		return v, f
	}
	facts, f := sp.checkAssertion(a, expectID, now)
	if f != nil {
		return v, f
	}

	// 5. crewjam: signatures (through verifier), decryption, its own checks, and the values.
	assertion, f := sp.parseWithCrewjam(p, raw, expectID)
	if f != nil {
		return v, f
	}
	if assertion.ID != facts.id {
		return v, rejected("assertion_mismatch", "crewjam returned another assertion than the one checked")
	}

	// 6. The person.
	login, f := extractLogin(p, assertion)
	if f != nil {
		return v, f
	}
	login.RelayState = returnPath
	login.AssertionID = facts.id
	login.IdPInitiated = v.login.IdPInitiated
	v.login = login
	v.replayUntil = facts.replayUntil
	return v, nil
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, errNotUTF8):
		return "not_utf8"
	case errors.Is(err, errDOCTYPE):
		return "doctype"
	case errors.Is(err, errTooDeep):
		return "too_deep"
	}
	return "xml_invalid"
}

// decrypt opens an EncryptedAssertion with the SP key and vets the plaintext like any other
// input (it came from the network too).
func (sp *SP) decrypt(ea *etree.Element) (*etree.Element, *failure) {
	ed := only(ea, nsXMLEnc, "EncryptedData")
	if ed == nil {
		return nil, malformed("decrypt_failed", "no single EncryptedData")
	}
	var key any = sp.o.Key
	if ek := only(ea, nsXMLEnc, "EncryptedKey"); ek != nil {
		k, err := xmlenc.Decrypt(sp.o.Key, ek)
		if err != nil {
			return nil, rejected("decrypt_failed", "%v", err)
		}
		key = k
	}
	plain, err := xmlenc.Decrypt(key, ed)
	if err != nil {
		return nil, rejected("decrypt_failed", "%v", err)
	}
	if len(plain) > sp.o.MaxResponseBytes {
		return nil, fail(kindTooLarge, "response_too_large", "the decrypted assertion is %d bytes", len(plain))
	}
	if err := checkRawXML(plain); err != nil {
		return nil, malformed(reasonOf(err), "decrypted: %v", err)
	}
	a, err := parseXML(plain)
	if err != nil {
		return nil, malformed(reasonOf(err), "decrypted: %v", err)
	}
	if !is(a, nsAssertion, "Assertion") {
		return nil, rejected("assertion_count", "the encrypted element is a %s", a.Tag)
	}
	if f := checkTree(a, func(el *etree.Element) bool { return el == a }); f != nil {
		return nil, f
	}
	return a, nil
}

// parseTime reads an xs:dateTime attribute; ok is false when it is absent.
func parseTime(el *etree.Element, key string) (t time.Time, ok bool, f *failure) {
	s, present := attr(el, key)
	if !present {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, malformed("time_invalid", "%s %s is not an xs:dateTime", el.Tag, key)
	}
	return t, true, nil
}

// checkIssueInstant: not in the future beyond the skew, not older than MaxIssueDelay.
func (sp *SP) checkIssueInstant(el *etree.Element, now time.Time) (time.Time, *failure) {
	t, ok, f := parseTime(el, "IssueInstant")
	if f != nil {
		return t, f
	}
	switch {
	case !ok:
		return t, malformed("issue_instant_missing", "%s has no IssueInstant", el.Tag)
	case t.After(now.Add(sp.o.ClockSkew)):
		return t, rejected("issue_instant_future", "%s IssueInstant is %s ahead", el.Tag, t.Sub(now).Round(time.Second))
	case now.Sub(t) > sp.o.MaxIssueDelay:
		return t, rejected("issue_instant_too_old", "%s IssueInstant is %s old", el.Tag, now.Sub(t).Round(time.Second))
	}
	return t, nil
}

// checkResponse checks the Response element: version, destination, issue instant.
func (sp *SP) checkResponse(root *etree.Element, signed bool, now time.Time) *failure {
	if ver, _ := attr(root, "Version"); ver != "2.0" {
		return malformed("version", "Response version %q", truncate(ver, 20))
	}
	dest, hasDest := attr(root, "Destination")
	switch {
	case hasDest && dest != sp.acs:
		return rejected("destination_mismatch", "Destination %q is not our ACS", truncate(dest, 200))
	case !hasDest && signed:
		// SAML bindings 3.5.5.2: a signed message sent by HTTP-POST must name its Destination.
		return rejected("destination_missing", "a signed Response without Destination")
	}
	_, f := sp.checkIssueInstant(root, now)
	return f
}

type assertionFacts struct {
	id          string
	replayUntil time.Time
}

// checkAssertion applies the rules crewjam v0.5.1 lacks or gets wrong, on the exact element
// crewjam will verify: required Subject, bearer SubjectConfirmation(s) with data, Recipient and
// expiry; InResponseTo tied to our request (or empty); required Conditions with an expiry, a
// bounded lifetime, and AudienceRestriction(s) that ALL include us; an AuthnStatement.
func (sp *SP) checkAssertion(a *etree.Element, expectID string, now time.Time) (assertionFacts, *failure) {
	var facts assertionFacts
	skew, maxLife := sp.o.ClockSkew, sp.o.MaxAssertionLifetime
	if ver, _ := attr(a, "Version"); ver != "2.0" {
		return facts, malformed("version", "Assertion version %q", truncate(ver, 20))
	}
	id, _ := attr(a, "ID")
	if id == "" || len(id) > maxIDLength || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return facts, malformed("assertion_id_invalid", "the assertion ID is empty, too long or has spaces")
	}
	facts.id = id
	issued, f := sp.checkIssueInstant(a, now)
	if f != nil {
		return facts, f
	}
	// The entry may be forgotten once the assertion would be refused anyway (as too old).
	facts.replayUntil = issued.Add(sp.o.MaxIssueDelay + skew)

	subject := only(a, nsAssertion, "Subject")
	if subject == nil {
		return facts, malformed("subject_missing", "no single Subject")
	}
	if only(subject, nsAssertion, "NameID") == nil {
		return facts, malformed("nameid_missing", "the Subject has no single NameID")
	}
	scs := children(subject, nsAssertion, "SubjectConfirmation")
	if len(scs) == 0 {
		return facts, rejected("bearer_missing", "no SubjectConfirmation")
	}
	for _, sc := range scs {
		// crewjam checks every SubjectConfirmation and dereferences its data: all must be bearer
		// confirmations with data, for us, live, and answering the right request.
		if m, _ := attr(sc, "Method"); m != bearerMethod {
			return facts, rejected("bearer_missing", "SubjectConfirmation method %q", truncate(m, 100))
		}
		scd := only(sc, nsAssertion, "SubjectConfirmationData")
		if scd == nil {
			return facts, malformed("subject_confirmation_data_missing", "a bearer SubjectConfirmation without single SubjectConfirmationData")
		}
		if rcpt, _ := attr(scd, "Recipient"); rcpt != sp.acs {
			return facts, rejected("recipient_mismatch", "Recipient %q is not our ACS", truncate(rcpt, 200))
		}
		if irt, _ := attr(scd, "InResponseTo"); irt != expectID {
			return facts, rejected("in_response_to_mismatch", "SubjectConfirmationData InResponseTo does not match the request")
		}
		nb, hasNB, f := parseTime(scd, "NotBefore")
		if f != nil {
			return facts, f
		}
		noa, hasNOA, f := parseTime(scd, "NotOnOrAfter")
		switch {
		case f != nil:
			return facts, f
		case !hasNOA:
			return facts, rejected("subject_confirmation_expiry_missing", "SubjectConfirmationData without NotOnOrAfter")
		case !now.Before(noa.Add(skew)):
			return facts, rejected("subject_confirmation_expired", "SubjectConfirmationData expired %s ago", now.Sub(noa).Round(time.Second))
		case hasNB && now.Before(nb.Add(-skew)):
			return facts, rejected("not_yet_valid", "SubjectConfirmationData valid in %s", nb.Sub(now).Round(time.Second))
		case noa.Sub(issued) > maxLife:
			return facts, rejected("lifetime_too_long", "SubjectConfirmationData valid for %s after issue", noa.Sub(issued).Round(time.Second))
		}
	}

	cond := only(a, nsAssertion, "Conditions")
	if cond == nil {
		return facts, malformed("conditions_missing", "no single Conditions")
	}
	nb, hasNB, f := parseTime(cond, "NotBefore")
	if f != nil {
		return facts, f
	}
	noa, hasNOA, f := parseTime(cond, "NotOnOrAfter")
	if f != nil {
		return facts, f
	}
	start := issued
	if hasNB {
		start = nb
	}
	switch {
	case !hasNOA:
		return facts, rejected("conditions_expiry_missing", "Conditions without NotOnOrAfter")
	case !now.Before(noa.Add(skew)):
		return facts, rejected("expired", "Conditions expired %s ago", now.Sub(noa).Round(time.Second))
	case hasNB && now.Before(nb.Add(-skew)):
		return facts, rejected("not_yet_valid", "Conditions valid in %s", nb.Sub(now).Round(time.Second))
	case noa.Sub(start) > maxLife || noa.Sub(issued) > maxLife:
		return facts, rejected("lifetime_too_long", "Conditions valid for %s", noa.Sub(start).Round(time.Second))
	}
	ars := children(cond, nsAssertion, "AudienceRestriction")
	if len(ars) == 0 {
		return facts, rejected("audience_missing", "no AudienceRestriction")
	}
	for _, ar := range ars {
		// SAML core 2.5.1.4: the assertion is addressed to us only if EVERY restriction names us
		// (crewjam v0.5.1 accepts when any one does).
		ok := false
		for _, aud := range children(ar, nsAssertion, "Audience") {
			ok = ok || textOf(aud) == sp.entityID
		}
		if !ok {
			return facts, rejected("audience_mismatch", "an AudienceRestriction does not include %s", sp.entityID)
		}
	}
	if len(children(a, nsAssertion, "AuthnStatement")) == 0 {
		return facts, rejected("authn_statement_missing", "no AuthnStatement")
	}
	return facts, nil
}

// parseWithCrewjam has crewjam verify and parse the same bytes. Its error text is logged (never
// InvalidResponseError.Response: that is the whole document); failures from our verifier come
// back as they are.
func (sp *SP) parseWithCrewjam(p *idp, raw []byte, expectID string) (*crewjam.Assertion, *failure) {
	a, err := p.sp.ParseXMLResponse(raw, []string{expectID}, sp.acsURL)
	if err == nil {
		if a == nil || a.Subject == nil || a.Subject.NameID == nil {
			return nil, malformed("nameid_missing", "crewjam returned no NameID")
		}
		return a, nil
	}
	detail := err
	var ire *crewjam.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		detail = ire.PrivateErr
	}
	var f *failure
	if errors.As(detail, &f) {
		return nil, f
	}
	msg := detail.Error()
	if strings.HasPrefix(msg, "invalid xml") {
		// xml-roundtrip-validator quotes tokens of the document: log only the fact.
		return nil, malformed("xml_roundtrip", "the document does not survive an XML round trip")
	}
	return nil, rejected("crewjam_rejected", "%s", truncate(msg, 300))
}

// parseCappedForm parses an HTTP-POST binding form (application/x-www-form-urlencoded) whose
// base64 message may decode to at most limit bytes: the body is capped at four times that plus
// room for the other fields, before anything reads it.
func parseCappedForm(w http.ResponseWriter, r *http.Request, limit int) *failure {
	r.Body = http.MaxBytesReader(w, r.Body, int64(4*limit+16<<10))
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return malformed("form_invalid", "content type %q", truncate(mt, 80))
	}
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fail(kindTooLarge, "body_too_large", "the form is over %d bytes", tooBig.Limit)
		}
		return malformed("form_invalid", "%v", err)
	}
	return nil
}
