package saml

// Broker mode: flexbridge is the SAML identity provider that Twilio Flex trusts. Flex's SSO
// points at the broker; the broker has the person sign in at the upstream IdP through this
// package's SP (or finds the short session that SP set after such a login, session.go), asks
// the composition root for the person's Flex claims, and answers Flex with a signed Response
// holding a signed Assertion. crewjam's IdP side (IdentityProvider, IdpAuthnRequest) checks the
// AuthnRequest and builds, signs and posts the response; this file adds what an IdP exposed to
// the internet needs around it: size caps and the DOCTYPE ban before any XML parsing, an exact
// allow-list of ACS URLs per SP, RSA-SHA256 on both signatures, an assertion with only the
// claims given (none of crewjam's DefaultAssertionMaker attributes), and the pending request
// kept in an authenticated cookie while the person is at the upstream IdP.
//
// Flow (SP-initiated):
//
//	Flex ──AuthnRequest──▶ /saml/idp/sso ──(session)──▶ auto-POST of the SAMLResponse to Flex's ACS
//	                              └─(no session)─▶ pending cookie, 302 to UpstreamLogin(/saml/idp/resume?id=ID)
//	upstream IdP ─▶ /saml/acs (session cookie set) ─▶ /saml/idp/resume?id=ID ─▶ auto-POST to Flex
//
// IdP-initiated: GET /saml/idp/login?sp=NAME[&RelayState=URL] takes the same path and answers
// an unsolicited response (no InResponseTo).

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/mapping"
)

// Paths served by Broker.Routes, below the public URL.
const (
	BrokerMetadataPath = "/saml/idp/metadata"
	BrokerSSOPath      = "/saml/idp/sso"
	BrokerResumePath   = "/saml/idp/resume"
	BrokerLoginPath    = "/saml/idp/login"
)

// Defaults for the zero values of BrokerOptions.
const (
	DefaultAssertionLifetime    = 5 * time.Minute
	DefaultMaxAuthnRequestBytes = 32 << 10
)

const (
	// maxBrokerAssertionLifetime caps BrokerOptions.AssertionLifetime.
	maxBrokerAssertionLifetime = time.Hour
	pendingCookiePrefix        = "flexbridge_idp_"
	nameIDUnspecified          = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
	nameIDEntity               = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
	attrNameUnspecified        = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
	authnContextUnspecified    = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
	// maxClaimValueLength bounds a value Claims may return (TaskRouter attributes are at most
	// 4096 characters); a NameID is bounded like one the SP accepts (maxNameIDLength).
	maxClaimValueLength = 4096
)

// claimNamePattern is a bare claim name: a TaskRouter attribute key (letters, digits, "_").
var claimNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// BrokerSP is a service provider the broker answers: Twilio Flex.
type BrokerSP struct {
	// Name identifies the SP in /saml/idp/login?sp=NAME and in logs: 1 to 64 of [A-Za-z0-9_.-].
	Name string
	// EntityID is the SP's entity id, the Issuer of its AuthnRequests and the Audience of the
	// assertions it gets (Flex: "urn:flex:JQ...").
	EntityID string
	// ACSURLs are the SP's assertion consumer service URLs (HTTP-POST binding), compared
	// exactly. The first is used when an AuthnRequest names none and for IdP-initiated logins;
	// more allow another form of the same endpoint (Flex's legacy URL). Each must be an absolute
	// https URL (http on a loopback address, for tests).
	ACSURLs []string
}

// BrokerAttribute is one claim of the assertion: a bare attribute name and its values, each
// sent as one AttributeValue (a multi-valued claim such as roles has several).
type BrokerAttribute struct {
	Name   string
	Values []string
}

// BrokerClaims is what the broker asserts about a person.
type BrokerClaims struct {
	// NameID is the Subject's NameID (format unspecified): the worker's FriendlyName for Flex.
	NameID string
	// Attributes are sent exactly as given, in this order. "roles" must have a value.
	Attributes []BrokerAttribute
}

// SessionSource finds the person signed in at the upstream IdP in this browser. *SP is one.
type SessionSource interface {
	Session(r *http.Request) (Session, bool)
}

// ClaimsSource maps a signed-in person to the claims the broker asserts. An error wrapping
// ErrRefused answers 403 with the access-denied page (a deprovisioned person, no Flex access);
// any other error answers 500. Either way no response is sent to the SP.
type ClaimsSource interface {
	Claims(ctx context.Context, s Session) (BrokerClaims, error)
}

// ClaimsFunc adapts a function to ClaimsSource.
type ClaimsFunc func(ctx context.Context, s Session) (BrokerClaims, error)

// Claims calls f.
func (f ClaimsFunc) Claims(ctx context.Context, s Session) (BrokerClaims, error) { return f(ctx, s) }

// BrokerOptions configure a Broker.
type BrokerOptions struct {
	// PublicURL is the absolute http(s) URL where browsers reach flexbridge (the same as the
	// SP's); the SSO endpoint is PublicURL+"/saml/idp/sso".
	PublicURL string
	// EntityID is the broker's IdP entity id, the Issuer of every response; default
	// PublicURL+"/saml/idp/metadata".
	EntityID string
	// Key signs responses and assertions with RSA-SHA256: an RSA key of at least 2048 bits (a
	// crypto.Signer, so it may live in an HSM). Cert is its certificate, published in the
	// metadata.
	Key  crypto.Signer
	Cert *x509.Certificate
	// ServiceProviders are the SPs answered; at least one.
	ServiceProviders []BrokerSP
	// RelayTargets are the RelayState values allowed in IdP-initiated logins: exact absolute
	// https URLs (http on a loopback address, for tests). A RelayState sent by an SP in its AuthnRequest is echoed back unchecked.
	RelayTargets []string
	// Sessions finds the browser's upstream session (the *SP). Required.
	Sessions SessionSource
	// UpstreamLogin returns where to send a browser without a session: the SP's login endpoint
	// with returnPath as its return parameter, e.g. "/saml/login?idp=okta&return=" +
	// url.QueryEscape(returnPath). returnPath is a local path below PublicURL
	// (".../saml/idp/resume?id=..."); the LoginHandler must answer "" (go to RelayState) for the
	// browser to come back. The result must be a local path or an absolute http(s) URL. Required.
	UpstreamLogin func(returnPath string) string
	// Claims maps the session's person to claims. Required.
	Claims ClaimsSource
	// ManagedKeys are worker attribute keys the bridge writes through TaskRouter (mapping
	// Config.Owned()). Flex overwrites worker attributes from the login's claims, so a claim
	// with one of these names is refused (500) rather than sent. "roles" is exempt: it is the
	// claim Flex needs. The ownership marker (mapping.MarkerKey) is always refused.
	ManagedKeys []string
	// AssertionLifetime is how long a response may be consumed after issue (Conditions and
	// SubjectConfirmationData NotOnOrAfter); default 5 min, at most 1 h.
	AssertionLifetime time.Duration
	// PendingLifetime is how long a person may take at the upstream IdP; default 10 min.
	PendingLifetime time.Duration
	// MaxRequestBytes caps an AuthnRequest (decoded and inflated); default 32 KiB.
	MaxRequestBytes int
	// ClockSkew is the tolerance for the SP's clock on an AuthnRequest's IssueInstant, and is
	// taken off the assertion's NotBefore for the SP's; default 30 s.
	ClockSkew time.Duration
	// CookieKey authenticates the pending-request cookie; at least 32 bytes. Default: derived
	// from Key when it is an *rsa.PrivateKey (otherwise required).
	CookieKey []byte
	Logger    *zap.Logger
	Now       func() time.Time
}

// Broker is the IdP that Flex trusts. It is safe for concurrent use.
type Broker struct {
	o         BrokerOptions
	log       *zap.Logger
	now       func() time.Time
	entityID  string
	prefix    string // PublicURL's path, without trailing "/"
	idp       *crewjam.IdentityProvider
	byEntity  brokerSPs
	byName    map[string]*brokerSP
	names     []string // sorted SP names, for logs
	relays    map[string]bool
	managed   map[string]bool
	cookieKey []byte
	secure    bool

	// onPanic, when set (tests), is told about every panic recovered.
	onPanic func(any)
}

type brokerSP struct {
	cfg BrokerSP
	md  *crewjam.EntityDescriptor // ACS endpoints indexed as in cfg.ACSURLs
}

// brokerSPs is crewjam's ServiceProviderProvider over the configured SPs.
type brokerSPs map[string]*brokerSP

func (m brokerSPs) GetServiceProvider(_ *http.Request, id string) (*crewjam.EntityDescriptor, error) {
	if p, ok := m[id]; ok {
		return p.md, nil
	}
	return nil, os.ErrNotExist
}

// NewBroker checks o, reporting every problem at once, and returns a Broker ready to serve.
func NewBroker(o BrokerOptions) (*Broker, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	setDefault(&o.AssertionLifetime, DefaultAssertionLifetime)
	setDefault(&o.PendingLifetime, DefaultRequestLifetime)
	setDefault(&o.MaxRequestBytes, DefaultMaxAuthnRequestBytes)
	setDefault(&o.ClockSkew, DefaultClockSkew)

	var problems []error
	problem := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	pub, err := url.Parse(strings.TrimRight(o.PublicURL, "/"))
	if err != nil || (pub.Scheme != "https" && pub.Scheme != "http") || pub.Host == "" ||
		pub.RawQuery != "" || pub.Fragment != "" || pub.User != nil {
		problem("public URL %q must be an absolute http(s) URL without query or fragment", o.PublicURL)
		pub = &url.URL{Scheme: "https", Host: "invalid.invalid"}
	}
	if o.EntityID == "" {
		o.EntityID = pub.String() + BrokerMetadataPath
	}
	entityURL, err := url.Parse(o.EntityID)
	if err != nil || entityURL.String() != o.EntityID || len(o.EntityID) > 1024 || strings.TrimSpace(o.EntityID) != o.EntityID {
		problem("entity id %q must be a URI (an URL or a URN) of at most 1024 characters", o.EntityID)
		entityURL = &url.URL{}
	}
	if o.Key == nil || o.Cert == nil {
		problem("an IdP key and certificate are required")
	} else {
		if pk, ok := o.Key.Public().(*rsa.PublicKey); !ok {
			problem("the IdP key must be RSA (for RSA-SHA256), not %T", o.Key.Public())
		} else if pk.N.BitLen() < 2048 {
			problem("the IdP key has %d bits; at least 2048 are required", pk.N.BitLen())
		}
		if !publicKeysEqual(o.Key.Public(), o.Cert.PublicKey) {
			problem("the IdP certificate does not match the IdP key")
		}
	}
	if o.Sessions == nil {
		problem("a session source is required")
	}
	if o.Claims == nil {
		problem("a claims source is required")
	}
	if o.UpstreamLogin == nil {
		problem("an upstream login function is required")
	}
	if o.AssertionLifetime > maxBrokerAssertionLifetime {
		problem("assertion lifetime %s is above %s", o.AssertionLifetime, maxBrokerAssertionLifetime)
	}
	if o.MaxRequestBytes < 1<<10 {
		problem("max request bytes %d is too small for any AuthnRequest", o.MaxRequestBytes)
	}

	b := &Broker{
		log:      o.Logger.Named("saml").Named("broker"),
		now:      o.Now,
		entityID: o.EntityID,
		prefix:   strings.TrimRight(pub.EscapedPath(), "/"),
		byEntity: brokerSPs{},
		byName:   map[string]*brokerSP{},
		relays:   map[string]bool{},
		managed:  map[string]bool{mapping.MarkerKey: true},
		secure:   pub.Scheme == "https",
	}
	if len(o.ServiceProviders) == 0 {
		problem("at least one service provider is required")
	}
	for i, c := range o.ServiceProviders {
		if !namePattern.MatchString(c.Name) {
			problem("service_providers[%d]: name %q must be 1 to 64 of A-Z a-z 0-9 _ . -", i, c.Name)
		} else if b.byName[c.Name] != nil {
			problem("service_providers[%d]: name %q is used twice", i, c.Name)
		}
		if c.EntityID == "" || len(c.EntityID) > 1024 || strings.TrimSpace(c.EntityID) != c.EntityID {
			problem("service_providers[%d] (%s): an entity id of at most 1024 characters is required", i, c.Name)
		} else if b.byEntity[c.EntityID] != nil {
			problem("service_providers[%d] (%s): entity id %q is used twice", i, c.Name, c.EntityID)
		}
		if len(c.ACSURLs) == 0 {
			problem("service_providers[%d] (%s): at least one ACS URL is required", i, c.Name)
		}
		seen := map[string]bool{}
		for _, a := range c.ACSURLs {
			if err := checkEndpoint(a); err != nil {
				problem("service_providers[%d] (%s): ACS URL: %v", i, c.Name, err)
			} else if seen[a] {
				problem("service_providers[%d] (%s): ACS URL %q is listed twice", i, c.Name, a)
			}
			seen[a] = true
		}
		p := &brokerSP{cfg: c, md: spDescriptor(c)}
		if b.byName[c.Name] == nil {
			b.byName[c.Name] = p
			b.names = append(b.names, c.Name)
		}
		if b.byEntity[c.EntityID] == nil {
			b.byEntity[c.EntityID] = p
		}
	}
	sort.Strings(b.names)
	for i, t := range o.RelayTargets {
		if err := checkEndpoint(t); err != nil {
			problem("relay_targets[%d]: %v", i, err)
		}
		b.relays[t] = true
	}
	for _, k := range o.ManagedKeys {
		if k != mapping.RolesKey {
			b.managed[k] = true
		}
	}

	switch key := o.CookieKey; {
	case len(key) == 0:
		if k, ok := o.Key.(*rsa.PrivateKey); ok {
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				problem("cannot derive a cookie key: %v", err)
			}
			m := hmac.New(sha256.New, []byte("flexbridge saml broker cookie v1"))
			m.Write(der)
			b.cookieKey = m.Sum(nil)
		} else if o.Key != nil {
			problem("cannot derive a cookie key from a %T: set a cookie key", o.Key)
		}
	case len(key) < 32:
		problem("cookie key must be at least 32 bytes")
	default:
		b.cookieKey = append([]byte(nil), key...)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("saml: invalid broker options: %w", errors.Join(problems...))
	}

	b.o = o
	b.idp = &crewjam.IdentityProvider{
		Signer:                  o.Key,
		Key:                     o.Key,
		Certificate:             o.Cert,
		MetadataURL:             *entityURL, // crewjam uses it as the entity id and Issuer
		SSOURL:                  *pub.JoinPath(BrokerSSOPath),
		ServiceProviderProvider: b.byEntity,
		SignatureMethod:         dsig.RSASHA256SignatureMethod,
	}
	return b, nil
}

// checkEndpoint accepts an absolute https URL without user info or fragment; http only on a
// loopback address (tests, local set-ups).
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || strings.ContainsAny(raw, " \t\r\n") {
		return fmt.Errorf("%q is not an absolute URL without user info or fragment", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("%q must be https (http is allowed on loopback only)", raw)
}

// spDescriptor is the SP metadata crewjam's IdP side works from: one HTTP-POST ACS endpoint
// per URL, indexed in order, the first the default. It lists no key, so crewjam never encrypts.
func spDescriptor(c BrokerSP) *crewjam.EntityDescriptor {
	d := crewjam.SPSSODescriptor{}
	d.ProtocolSupportEnumeration = "urn:oasis:names:tc:SAML:2.0:protocol"
	for i, a := range c.ACSURLs {
		isDefault := i == 0
		d.AssertionConsumerServices = append(d.AssertionConsumerServices, crewjam.IndexedEndpoint{
			Binding: crewjam.HTTPPostBinding, Location: a, Index: i, IsDefault: &isDefault,
		})
	}
	return &crewjam.EntityDescriptor{EntityID: c.EntityID, SPSSODescriptors: []crewjam.SPSSODescriptor{d}}
}

// Routes registers GET /saml/idp/metadata, GET and POST /saml/idp/sso, GET /saml/idp/resume
// and GET /saml/idp/login on mux.
func (b *Broker) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+BrokerMetadataPath, b.serveMetadata)
	mux.HandleFunc("GET "+BrokerSSOPath, b.serveSSO)
	mux.HandleFunc("POST "+BrokerSSOPath, b.serveSSO)
	mux.HandleFunc("GET "+BrokerResumePath, b.serveResume)
	mux.HandleFunc("GET "+BrokerLoginPath, b.serveIdPInitiated)
}

// EntityID is the broker's IdP entity id.
func (b *Broker) EntityID() string { return b.entityID }

// SSOURL is the broker's single sign-on URL (HTTP-Redirect and HTTP-POST bindings).
func (b *Broker) SSOURL() string { return b.idp.SSOURL.String() }

// Metadata returns the IdP metadata document: the entity id, the signing certificate, and the
// SSO endpoint for the HTTP-Redirect and HTTP-POST bindings.
func (b *Broker) Metadata() ([]byte, error) {
	md := b.idp.Metadata()
	for i := range md.IDPSSODescriptors {
		d := &md.IDPSSODescriptors[i]
		// crewjam also offers the signing key for encryption; the broker decrypts nothing.
		var kds []crewjam.KeyDescriptor
		for _, kd := range d.KeyDescriptors {
			if kd.Use == "signing" {
				kds = append(kds, kd)
			}
		}
		d.KeyDescriptors = kds
		d.NameIDFormats = []crewjam.NameIDFormat{nameIDUnspecified}
		no := false
		d.WantAuthnRequestsSigned = &no
	}
	out, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), out...), nil
}

func (b *Broker) requestLog(w http.ResponseWriter, r *http.Request) (*zap.Logger, string) {
	return requestLogNamed(b.log, "saml.broker", w, r)
}

func (b *Broker) serveMetadata(w http.ResponseWriter, r *http.Request) {
	log, rid := b.requestLog(w, r)
	out, err := b.Metadata()
	if err != nil {
		writeFailure(w, log, rid, fail(kindInternal, "metadata", "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(out)
}

// brokerPending is a request the broker has yet to answer, kept in the browser (a cookie named
// pendingCookiePrefix+ID under an HMAC) while the person is at the upstream IdP.
type brokerPending struct {
	SP       string `json:"s"`           // BrokerSP.Name
	ACS      int    `json:"a"`           // index in ACSURLs
	ID       string `json:"i,omitempty"` // AuthnRequest ID; "" for IdP-initiated
	Relay    string `json:"r,omitempty"` // RelayState to send back
	Force    bool   `json:"f,omitempty"` // ForceAuthn: only a session newer than Created answers
	Passive  bool   `json:"p,omitempty"` // IsPassive: never sent to the upstream IdP
	Created  int64  `json:"c"`           // unix seconds
	Upstream bool   `json:"u,omitempty"` // the browser was sent to the upstream login
	Expires  int64  `json:"e"`           // unix seconds
}

// serveSSO is GET (HTTP-Redirect binding) and POST (HTTP-POST binding) /saml/idp/sso.
func (b *Broker) serveSSO(w http.ResponseWriter, r *http.Request) {
	log, rid := b.requestLog(w, r)
	raw, relay, f := b.readAuthnRequest(w, r)
	if f != nil {
		writeFailure(w, log, rid, f)
		return
	}
	t, f := b.checkAuthnRequest(log, r, raw, relay)
	fields := []zap.Field{zap.String("sp", t.SP), zap.String("request_id_saml", t.ID)}
	if f != nil {
		writeFailure(w, log, rid, f, fields...)
		return
	}
	b.proceed(w, r, log, rid, t, r.Method == http.MethodPost)
}

// readAuthnRequest reads SAMLRequest and RelayState under size caps, before anything parses XML.
func (b *Broker) readAuthnRequest(w http.ResponseWriter, r *http.Request) ([]byte, string, *failure) {
	limit := b.o.MaxRequestBytes
	var vals, relays []string
	if r.Method == http.MethodPost {
		if f := parseCappedForm(w, r, limit); f != nil {
			return nil, "", f
		}
		vals, relays = r.PostForm["SAMLRequest"], r.PostForm["RelayState"]
	} else {
		q := r.URL.Query()
		vals, relays = q["SAMLRequest"], q["RelayState"]
	}
	if len(vals) != 1 || vals[0] == "" {
		return nil, "", malformed("saml_request_missing", "%d SAMLRequest fields", len(vals))
	}
	if len(relays) > 1 {
		return nil, "", malformed("relay_state_invalid", "%d RelayState fields", len(relays))
	}
	relay := ""
	if len(relays) == 1 {
		relay = relays[0]
	}
	if len(relay) > maxRelayState || !utf8.ValidString(relay) || strings.ContainsFunc(relay, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, "", malformed("relay_state_invalid", "RelayState is over %d bytes, not UTF-8 or has control characters", maxRelayState)
	}
	// Base64 text may carry line breaks (ignored by the decoder): allow one every 38 bytes.
	if len(vals[0]) > base64.StdEncoding.EncodedLen(limit)+limit/19 {
		return nil, "", fail(kindTooLarge, "request_too_large", "the SAMLRequest field is %d bytes", len(vals[0]))
	}
	data, err := base64.StdEncoding.DecodeString(vals[0])
	if err != nil {
		return nil, "", malformed("base64_invalid", "%v", err)
	}
	if r.Method != http.MethodPost {
		// HTTP-Redirect binding: DEFLATE, inflated under the same cap (a small input can inflate
		// a thousandfold).
		data, err = io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(data)), int64(limit)+1))
		if err != nil {
			return nil, "", malformed("deflate_invalid", "%v", err)
		}
	}
	if len(data) > limit {
		return nil, "", fail(kindTooLarge, "request_too_large", "the AuthnRequest is over %d bytes", limit)
	}
	return data, relay, nil
}

// checkAuthnRequest vets an AuthnRequest and returns what answering it needs. The SP and ACS
// rules are applied here, exactly, before crewjam's Validate (which would take any ACS of the
// SP's metadata by index, and falls back to any endpoint).
func (b *Broker) checkAuthnRequest(log *zap.Logger, r *http.Request, raw []byte, relay string) (t brokerPending, f *failure) {
	defer func() {
		if p := recover(); p != nil {
			if b.onPanic != nil {
				b.onPanic(p)
			}
			log.Error("panic while reading an AuthnRequest", zap.String("panic", truncate(fmt.Sprint(p), 200)), zap.ByteString("stack", debug.Stack()))
			f = malformed("panic", "recovered from a panic in the parser")
		}
	}()
	now := b.now()
	if err := checkRawXML(raw); err != nil {
		return t, malformed(reasonOf(err), "%v", err)
	}
	root, err := parseXML(raw)
	if err != nil {
		return t, malformed(reasonOf(err), "%v", err)
	}
	if !is(root, nsProtocol, "AuthnRequest") {
		return t, malformed("not_an_authn_request", "the root element is %s", truncate(root.Tag, 40))
	}
	// Duplicate attributes or IDs, nested messages, stray signatures: nothing to guess about.
	if f := checkTree(root, func(el *etree.Element) bool { return el == root }); f != nil {
		return t, f
	}
	if ver, _ := attr(root, "Version"); ver != "2.0" {
		return t, malformed("version", "AuthnRequest version %q", truncate(ver, 20))
	}
	id, _ := attr(root, "ID")
	if id == "" || len(id) > maxIDLength || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return t, malformed("request_id_invalid", "the AuthnRequest ID is empty, too long or has spaces")
	}
	t.ID = id
	iss := only(root, nsAssertion, "Issuer")
	if iss == nil {
		return t, malformed("issuer_missing", "the AuthnRequest has no single Issuer")
	}
	sp := b.byEntity[textOf(iss)]
	if sp == nil {
		return t, malformed("unknown_sp", "no service provider has entity id %q", truncate(textOf(iss), 200))
	}
	t.SP = sp.cfg.Name
	acsURL, hasURL := attr(root, "AssertionConsumerServiceURL")
	acsIndex, hasIndex := attr(root, "AssertionConsumerServiceIndex")
	switch {
	case hasURL && hasIndex:
		return t, malformed("acs_not_allowed", "both AssertionConsumerServiceURL and AssertionConsumerServiceIndex")
	case hasURL:
		t.ACS = -1
		for i, a := range sp.cfg.ACSURLs {
			if a == acsURL {
				t.ACS = i
			}
		}
		if t.ACS < 0 {
			return t, malformed("acs_not_allowed", "AssertionConsumerServiceURL %q is not configured for this SP", truncate(acsURL, 200))
		}
	case hasIndex:
		i, err := strconv.Atoi(acsIndex)
		if err != nil || i < 0 || i >= len(sp.cfg.ACSURLs) {
			return t, malformed("acs_not_allowed", "AssertionConsumerServiceIndex %q is not configured for this SP", truncate(acsIndex, 20))
		}
		t.ACS = i
	}
	if pb, ok := attr(root, "ProtocolBinding"); ok && pb != crewjam.HTTPPostBinding {
		return t, malformed("binding_unsupported", "ProtocolBinding %q (only HTTP-POST is answered)", truncate(pb, 100))
	}
	issued, ok, f := parseTime(root, "IssueInstant")
	switch {
	case f != nil:
		return t, f
	case !ok:
		return t, malformed("issue_instant_missing", "AuthnRequest has no IssueInstant")
	case issued.After(now.Add(b.o.ClockSkew)):
		return t, malformed("issue_instant_future", "AuthnRequest IssueInstant is %s ahead", issued.Sub(now).Round(time.Second))
	}

	// crewjam: XML round trip, Destination, age (its MaxIssueDelay), version, SP and ACS.
	req := &crewjam.IdpAuthnRequest{IDP: b.idp, HTTPRequest: r, RelayState: relay, RequestBuffer: raw, Now: now}
	if err := req.Validate(); err != nil {
		msg := err.Error()
		var syn *xml.SyntaxError
		if errors.As(err, &syn) || strings.HasPrefix(msg, "roundtrip error") || strings.HasPrefix(msg, "validator:") {
			// These quote tokens of the document: log only the fact.
			return t, malformed("xml_roundtrip", "the AuthnRequest does not survive an XML round trip")
		}
		return t, malformed("authn_request_invalid", "%s", truncate(msg, 300))
	}
	if req.ACSEndpoint == nil || req.ACSEndpoint.Location != sp.cfg.ACSURLs[t.ACS] || req.ServiceProviderMetadata != sp.md {
		return t, malformed("acs_not_allowed", "crewjam chose another ACS endpoint")
	}
	t.Relay = relay
	t.Force = req.Request.ForceAuthn != nil && *req.Request.ForceAuthn
	t.Passive = req.Request.IsPassive != nil && *req.Request.IsPassive
	t.Created = now.Unix()
	return t, nil
}

// serveIdPInitiated is GET /saml/idp/login?sp=NAME[&RelayState=URL]: an unsolicited response
// to the SP's default ACS. sp may be left out when only one SP is configured; RelayState must
// be one of RelayTargets.
func (b *Broker) serveIdPInitiated(w http.ResponseWriter, r *http.Request) {
	log, rid := b.requestLog(w, r)
	q := r.URL.Query()
	name := q.Get("sp")
	if name == "" && len(b.names) == 1 {
		name = b.names[0]
	}
	sp := b.byName[name]
	if sp == nil || len(q["sp"]) > 1 {
		writeFailure(w, log, rid, malformed("unknown_sp", "no service provider named %q", truncate(name, 64)))
		return
	}
	relay := q.Get("RelayState")
	if len(q["RelayState"]) > 1 || (relay != "" && !b.relays[relay]) {
		writeFailure(w, log, rid, malformed("relay_target_not_allowed", "RelayState %q is not an allowed relay target", truncate(relay, 200)), zap.String("sp", name))
		return
	}
	b.proceed(w, r, log, rid, brokerPending{SP: name, Relay: relay, Created: b.now().Unix()}, false)
}

// usable reports whether session s may answer t.
func usable(s Session, t brokerPending) bool {
	return !t.Force || s.AuthnInstant.Unix() >= t.Created
}

// proceed answers t at once when the browser has a usable session; otherwise it remembers t in
// a pending cookie and sends the browser to the upstream login, which returns to the resume
// endpoint. A request that came by POST (the SP's auto-submitted form, cross-site) carries no
// SameSite=Lax session cookie: the browser is first sent to resume, a top-level GET that does.
func (b *Broker) proceed(w http.ResponseWriter, r *http.Request, log *zap.Logger, rid string, t brokerPending, viaPost bool) {
	if !t.Force {
		if s, ok := b.o.Sessions.Session(r); ok {
			b.respond(w, r, log, rid, t, s)
			return
		}
	}
	fields := []zap.Field{zap.String("sp", t.SP), zap.String("request_id_saml", t.ID)}
	if t.Passive && (!viaPost || t.Force) {
		// A passive request must not send the person anywhere (and cannot force a new login).
		writeFailure(w, log, rid, rejected("passive_without_session", "IsPassive, and the browser has no session"), fields...)
		return
	}
	now := b.now()
	id := newRelayID()
	t.Expires = now.Add(b.o.PendingLifetime).Unix()
	b.prunePending(w, r, now)
	if viaPost && !t.Force {
		b.setPending(w, id, t)
		log.Info("saml broker request pending", append(fields, zap.String("next", "resume"))...)
		redirect(w, b.resumePath(id), http.StatusSeeOther)
		return
	}
	b.toUpstream(w, log, rid, id, t, fields)
}

// toUpstream records that t goes to the upstream login and redirects there.
func (b *Broker) toUpstream(w http.ResponseWriter, log *zap.Logger, rid, id string, t brokerPending, fields []zap.Field) {
	to := b.o.UpstreamLogin(b.resumePath(id))
	if !isSafeRedirect(to) {
		writeFailure(w, log, rid, fail(kindInternal, "upstream_login_url", "UpstreamLogin answered an unusable URL"), fields...)
		return
	}
	t.Upstream = true
	b.setPending(w, id, t)
	log.Info("saml broker request pending", append(fields, zap.String("next", "upstream"))...)
	redirect(w, to, http.StatusFound)
}

func (b *Broker) resumePath(id string) string {
	return b.prefix + BrokerResumePath + "?id=" + id
}

func redirect(w http.ResponseWriter, to string, status int) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", to)
	w.WriteHeader(status)
}

// serveResume is GET /saml/idp/resume?id=ID: the browser is back (from the upstream login, or
// from a POSTed request) with the pending cookie for ID.
func (b *Broker) serveResume(w http.ResponseWriter, r *http.Request) {
	log, rid := b.requestLog(w, r)
	q := r.URL.Query()
	id := q.Get("id")
	if len(q["id"]) != 1 || !relayIDPattern.MatchString(id) {
		writeFailure(w, log, rid, malformed("pending_missing", "the id parameter is missing or malformed"))
		return
	}
	t, ok := b.getPending(r, id, b.now())
	if !ok {
		b.clearPending(w, id)
		writeFailure(w, log, rid, malformed("pending_missing", "this browser holds no live pending request for the id"))
		return
	}
	fields := []zap.Field{zap.String("sp", t.SP), zap.String("request_id_saml", t.ID)}
	if s, ok := b.o.Sessions.Session(r); ok && usable(s, t) {
		b.clearPending(w, id) // a request is answered once
		b.respond(w, r, log, rid, t, s)
		return
	}
	switch {
	case t.Passive:
		b.clearPending(w, id)
		writeFailure(w, log, rid, rejected("passive_without_session", "IsPassive, and the browser has no session"), fields...)
	case t.Upstream:
		// Back from the upstream login without a session: cookies are blocked, or the login
		// handler sent the browser here without signing it in. Never loop.
		b.clearPending(w, id)
		writeFailure(w, log, rid, rejected("session_missing", "back from the upstream login without a usable session"), fields...)
	default:
		b.toUpstream(w, log, rid, id, t, fields)
	}
}

// respond builds, signs and posts the response to t for the person of s.
func (b *Broker) respond(w http.ResponseWriter, r *http.Request, log *zap.Logger, rid string, t brokerPending, s Session) {
	fields := []zap.Field{zap.String("sp", t.SP), zap.String("request_id_saml", t.ID), zap.Bool("idp_initiated", t.ID == ""), zap.String("idp", s.IdP)}
	sp := b.byName[t.SP]
	if sp == nil || t.ACS < 0 || t.ACS >= len(sp.cfg.ACSURLs) {
		writeFailure(w, log, rid, malformed("unknown_sp", "the pending request names an SP or ACS no longer configured"), fields...)
		return
	}
	claims, err := b.o.Claims.Claims(r.Context(), s)
	if err != nil {
		f := asFailure(err)
		if f.reason == "login_handler_refused" {
			f.reason = "claims_refused"
		}
		writeFailure(w, log, rid, f, fields...)
		return
	}
	if f := b.checkClaims(claims); f != nil {
		writeFailure(w, log, rid, f, fields...)
		return
	}
	form, assertionID, f := b.makeResponse(log, r, sp, t, s, claims)
	if f != nil {
		writeFailure(w, log, rid, f, fields...)
		return
	}
	log.Info("saml broker response issued", append(fields, zap.String("assertion_id", assertionID))...)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", postPageCSP)
	w.WriteHeader(http.StatusOK)
	_ = postPageTemplate.Execute(w, form)
}

// checkClaims refuses claims the broker must not send: no NameID, no roles, a managed key,
// names that are not bare, duplicates, or text XML cannot carry.
func (b *Broker) checkClaims(c BrokerClaims) *failure {
	if c.NameID == "" || len(c.NameID) > maxNameIDLength || !xmlText(c.NameID) || strings.TrimSpace(c.NameID) != c.NameID {
		return fail(kindInternal, "claims_nameid_invalid", "the claims have no usable NameID")
	}
	seen := map[string]bool{}
	roles := false
	for _, a := range c.Attributes {
		switch {
		case !claimNamePattern.MatchString(a.Name):
			return fail(kindInternal, "claims_name_invalid", "claim name %q is not a bare name", truncate(a.Name, 80))
		case seen[a.Name]:
			return fail(kindInternal, "claims_name_invalid", "claim %q appears twice", a.Name)
		case b.managed[a.Name]:
			return fail(kindInternal, "claims_managed_key", "claim %q is a key the bridge manages through TaskRouter", a.Name)
		}
		seen[a.Name] = true
		for _, v := range a.Values {
			if len(v) > maxClaimValueLength || !xmlText(v) {
				return fail(kindInternal, "claims_value_invalid", "a value of claim %q is too long or has characters XML cannot carry", a.Name)
			}
			if a.Name == mapping.RolesKey && strings.TrimSpace(v) != "" {
				roles = true
			}
		}
	}
	if !roles {
		return fail(kindInternal, "claims_roles_missing", "the claims have no roles value")
	}
	return nil
}

// xmlText reports whether s is UTF-8 made only of characters XML 1.0 carries unchanged
// (no carriage return: parsers turn it into a line feed).
func xmlText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n':
		case r < 0x20, r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			return false
		}
	}
	return true
}

// makeResponse has crewjam sign the assertion and the response (RSA-SHA256, exclusive c14n)
// and returns the form to post.
func (b *Broker) makeResponse(log *zap.Logger, r *http.Request, sp *brokerSP, t brokerPending, s Session, c BrokerClaims) (form crewjam.IdpAuthnRequestForm, assertionID string, f *failure) {
	defer func() {
		if p := recover(); p != nil {
			if b.onPanic != nil {
				b.onPanic(p)
			}
			log.Error("panic while making a SAML response", zap.String("panic", truncate(fmt.Sprint(p), 200)), zap.ByteString("stack", debug.Stack()))
			f = fail(kindInternal, "panic", "recovered from a panic while signing")
		}
	}()
	now := b.now().UTC()
	d := &sp.md.SPSSODescriptors[0]
	ep := d.AssertionConsumerServices[t.ACS]
	req := &crewjam.IdpAuthnRequest{
		IDP:                     b.idp,
		HTTPRequest:             r,
		RelayState:              t.Relay,
		Request:                 crewjam.AuthnRequest{ID: t.ID},
		ServiceProviderMetadata: sp.md,
		SPSSODescriptor:         d,
		ACSEndpoint:             &ep,
		Now:                     now,
	}
	req.Assertion = b.assertion(sp, ep.Location, t.ID, s, c, now)
	if err := req.MakeResponse(); err != nil {
		return form, "", fail(kindInternal, "sign_failed", "%v", err)
	}
	form, err := req.PostBinding()
	if err != nil {
		return form, "", fail(kindInternal, "sign_failed", "%v", err)
	}
	return form, req.Assertion.ID, nil
}

// assertion is what the broker asserts: Issuer, NameID, a bearer confirmation for the ACS, the
// SP as the only audience, the upstream authentication instant, and exactly the claims.
func (b *Broker) assertion(sp *brokerSP, acs, inResponseTo string, s Session, c BrokerClaims, now time.Time) *crewjam.Assertion {
	until := now.Add(b.o.AssertionLifetime)
	var attrs []crewjam.Attribute
	for _, a := range c.Attributes {
		at := crewjam.Attribute{Name: a.Name, NameFormat: attrNameUnspecified}
		for _, v := range a.Values {
			at.Values = append(at.Values, crewjam.AttributeValue{Type: "xs:string", Value: v})
		}
		attrs = append(attrs, at)
	}
	a := &crewjam.Assertion{
		ID:           newSAMLID(),
		IssueInstant: now,
		Version:      "2.0",
		Issuer:       crewjam.Issuer{Format: nameIDEntity, Value: b.entityID},
		Subject: &crewjam.Subject{
			NameID: &crewjam.NameID{Format: nameIDUnspecified, Value: c.NameID},
			SubjectConfirmations: []crewjam.SubjectConfirmation{{
				Method: bearerMethod,
				SubjectConfirmationData: &crewjam.SubjectConfirmationData{
					InResponseTo: inResponseTo,
					NotOnOrAfter: until,
					Recipient:    acs,
				},
			}},
		},
		Conditions: &crewjam.Conditions{
			NotBefore:            now.Add(-b.o.ClockSkew),
			NotOnOrAfter:         until,
			AudienceRestrictions: []crewjam.AudienceRestriction{{Audience: crewjam.Audience{Value: sp.cfg.EntityID}}},
		},
		AuthnStatements: []crewjam.AuthnStatement{{
			AuthnInstant: s.AuthnInstant.UTC(),
			AuthnContext: crewjam.AuthnContext{AuthnContextClassRef: &crewjam.AuthnContextClassRef{Value: authnContextUnspecified}},
		}},
	}
	if len(attrs) > 0 {
		a.AttributeStatements = []crewjam.AttributeStatement{{Attributes: attrs}}
	}
	return a
}

// newSAMLID is a random xs:ID (it must not start with a digit).
func newSAMLID() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return "id-" + hex.EncodeToString(b[:])
}

// The page that posts the response: a form the browser submits by a fixed script, allowed by
// its hash in a CSP that allows nothing else; without script, a Continue button.
const postPageScript = `document.forms[0].submit();`

var (
	postPageCSP = func() string {
		sum := sha256.Sum256([]byte(postPageScript))
		return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; frame-ancestors 'none'"
	}()
	postPageTemplate = template.Must(template.New("post").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>Signing in</title></head>
<body><form method="post" action="{{.URL}}"><input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}">` +
		`{{if .RelayState}}<input type="hidden" name="RelayState" value="{{.RelayState}}">{{end}}` +
		`<noscript><p>Press Continue to finish signing in.</p></noscript><button type="submit">Continue</button></form>` +
		`<script>` + postPageScript + `</script></body></html>
`))
)

// Pending cookies.

func (b *Broker) pendingCookie(id, value string, maxAge int) *http.Cookie {
	ck := &http.Cookie{Name: pendingCookiePrefix + id, Value: value, Path: b.prefix + "/saml/idp/", MaxAge: maxAge, HttpOnly: true, Secure: b.secure}
	if b.secure {
		// Set on a top-level navigation and read by one (GET resume): Lax suffices.
		ck.SameSite = http.SameSiteLaxMode
	}
	return ck
}

func (b *Broker) setPending(w http.ResponseWriter, id string, t brokerPending) {
	maxAge := int(t.Expires - b.now().Unix())
	http.SetCookie(w, b.pendingCookie(id, sealCookie(b.cookieKey, pendingCookiePrefix+id, t), max(maxAge, 1)))
}

func (b *Broker) clearPending(w http.ResponseWriter, id string) {
	http.SetCookie(w, b.pendingCookie(id, "", -1))
}

func (b *Broker) getPending(r *http.Request, id string, now time.Time) (brokerPending, bool) {
	ck, err := r.Cookie(pendingCookiePrefix + id)
	if err != nil {
		return brokerPending{}, false
	}
	return b.decodePending(ck.Name, ck.Value, now)
}

func (b *Broker) decodePending(name, value string, now time.Time) (brokerPending, bool) {
	var t brokerPending
	if !openCookie(b.cookieKey, name, value, &t) || t.SP == "" || now.Unix() >= t.Expires {
		return brokerPending{}, false
	}
	return t, true
}

// prunePending expires this browser's dead pending cookies and all but the newest
// maxPending-1 live ones (a new one is about to be set).
func (b *Broker) prunePending(w http.ResponseWriter, r *http.Request, now time.Time) {
	pruneCookies(r, pendingCookiePrefix, func(name, value string) (int64, bool) {
		t, ok := b.decodePending(name, value, now)
		return t.Expires, ok
	}, func(id string) { b.clearPending(w, id) })
}
