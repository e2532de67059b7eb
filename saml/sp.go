// Package saml is flexbridge's SAML 2.0 service provider: it serves the SP metadata, starts
// SP-initiated logins (HTTP-Redirect binding) and consumes responses at the ACS (HTTP-POST
// binding), then hands a checked Login to a LoginHandler that the composition root supplies.
//
// github.com/crewjam/saml v0.5.1 verifies signatures and decrypts assertions. At that version it
// misses checks that an SP exposed to the internet needs (../shared/DESIGN.md, "Security
// facts"), so every response goes through this package's own checks first (acs.go, xmlcheck.go):
// a size cap and a DOCTYPE ban before any parsing, a shape that leaves no room for signature
// wrapping (exactly one assertion, signatures only where they belong, unique IDs), a signature
// algorithm policy without SHA-1, the audience, bearer confirmation, recipient, destination,
// time and lifetime rules, InResponseTo bound to a request this browser started, a replay
// cache, and RelayState limited to a server-issued id or a local path. crewjam's panics on
// missing elements are recovered into a 400.
//
// Protocol checks are apart from the HTTP glue: validate (acs.go) takes the decoded response,
// the RelayState and a lookup of pending requests, and returns a Login or a failure; the
// handlers only read forms, set cookies, call the replay cache and LoginHandler, and write
// pages. Every failure becomes a page in one function (errors.go).
package saml

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	crewjam "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/mapping"
)

// Paths served by Routes, below the public URL.
const (
	MetadataPath = "/saml/metadata"
	LoginPath    = "/saml/login"
	ACSPath      = "/saml/acs"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxResponseBytes     = 256 << 10
	DefaultMaxAssertionLifetime = 2 * time.Hour
	DefaultMaxIssueDelay        = 90 * time.Second
	DefaultClockSkew            = 30 * time.Second
	DefaultRequestLifetime      = 10 * time.Minute
	DefaultMetadataRefresh      = time.Hour
)

// GroupsFallbackDeny refuses a login whose groups attribute is absent (the default).
const GroupsFallbackDeny = "deny"

// UserName sources for IdPConfig.UserName.
const (
	UserNameAuto   = ""       // NameID, unless it is transient or empty: then the email attribute
	UserNameNameID = "nameid" // always the NameID
	UserNameEmail  = "email"  // always the configured email attribute
)

// Attributes names the assertion attributes that carry a person's details. Each is matched
// against an attribute's Name first, then its FriendlyName (so "mail" finds
// Name="urn:oid:0.9.2342.19200300.100.1.3" FriendlyName="mail"). Empty means not read.
type Attributes struct {
	Email       string
	DisplayName string
	// Groups: every value, split on commas, becomes a group: a GUID (Entra object id) as
	// mapping.Group.ExternalID, anything else as DisplayName.
	Groups string
	// Roles: every value, split on commas, is a role; they are in Identity.Extra["roles"].
	Roles string
}

// IdPConfig is one trusted identity provider.
type IdPConfig struct {
	// Name identifies the IdP in /saml/login?idp=NAME and in logs: 1 to 64 of [A-Za-z0-9_.-].
	Name string
	// MetadataXML or MetadataURL (exactly one): the IdP's SAML metadata. A URL must be https,
	// or http on a loopback address; it is fetched by New and again by Run.
	MetadataXML []byte
	MetadataURL string
	// EntityID picks the IdP out of metadata that describes several (an aggregate). Optional.
	EntityID string
	// AllowIdPInitiated accepts responses that answer no request of ours (empty InResponseTo).
	AllowIdPInitiated bool
	Attributes        Attributes
	// UserName says where Identity.UserName comes from: UserNameAuto (default), UserNameNameID
	// or UserNameEmail.
	UserName string
	// GroupsFallback applies when Attributes.Groups is set but the assertion has no such
	// attribute (Entra omits it past 150 groups, the "overage"): GroupsFallbackDeny or "" refuses
	// the login; any other value is used as the one group name. Never a silent grant.
	GroupsFallback string
	// NameIDFormat asks the IdP for this NameID format in AuthnRequests; default: unspecified.
	NameIDFormat string
}

// ReplayCache remembers assertion IDs, so that an assertion is consumed at most once. It is
// backed by the shared store, so that a replay to another replica is refused too.
type ReplayCache interface {
	// Remember records id until the given time and reports whether it was new. It must be
	// atomic across replicas (an INSERT that fails on a duplicate key).
	Remember(ctx context.Context, assertionID string, until time.Time) (fresh bool, err error)
}

// Login is a person the IdP authenticated, with every check passed.
type Login struct {
	IdP          string // IdPConfig.Name
	NameID       string
	NameIDFormat string
	// Identity: UserName (see IdPConfig.UserName), DisplayName, Emails (the email attribute,
	// primary), Groups, Active (true: the IdP just authenticated the person; the handler must
	// still refuse people the directory has deactivated or deleted), and Extra: every attribute
	// by Name (and by FriendlyName when no attribute has that Name), trimmed values, plus
	// Extra["roles"] from Attributes.Roles. Roles and groups read the same whether the IdP
	// sends several values or one comma-joined value.
	Identity     mapping.Identity
	SessionIndex string
	// RelayState is where the person wants to land: the return path given to /saml/login, or
	// the local path an IdP-initiated response carried. Always "" or a local path ("/...").
	RelayState   string
	AssertionID  string
	IdPInitiated bool
}

// LoginHandler receives every accepted login. It upserts the person into the directory, runs
// the mapping, and answers where to send the browser (a local path or an absolute http(s) URL;
// "" means RelayState, or "/"). An error wrapping ErrRefused answers 403 with the access-denied
// page (a deprovisioned person); any other error answers 500.
type LoginHandler interface {
	Login(ctx context.Context, l Login) (redirect string, err error)
}

// LoginHandlerFunc adapts a function to LoginHandler.
type LoginHandlerFunc func(ctx context.Context, l Login) (string, error)

// Login calls f.
func (f LoginHandlerFunc) Login(ctx context.Context, l Login) (string, error) { return f(ctx, l) }

// Options configure an SP.
type Options struct {
	// PublicURL is the absolute http(s) URL where browsers and IdPs reach flexbridge; the ACS is
	// PublicURL+"/saml/acs" and the metadata PublicURL+"/saml/metadata".
	PublicURL string
	// EntityID is the SP's SAML entity id; default PublicURL+"/saml/metadata".
	EntityID string
	// Key and Cert are the SP's key pair: signing AuthnRequests (if SignAuthnRequests),
	// decrypting encrypted assertions (RSA keys only), and the request cookie MAC when CookieKey
	// is empty.
	Key  crypto.Signer
	Cert *x509.Certificate
	IdPs []IdPConfig
	// Replay and Logins are required.
	Replay ReplayCache
	Logins LoginHandler
	Logger *zap.Logger
	Now    func() time.Time
	// HTTPClient fetches metadata URLs; default: a client with a 30 s timeout.
	HTTPClient *http.Client

	// MaxResponseBytes caps the decoded SAMLResponse (default 256 KiB); the form body is capped
	// at four times as much. Both are enforced before any XML parsing.
	MaxResponseBytes int
	// MaxAssertionLifetime caps how long an assertion claims to be valid: Conditions
	// NotOnOrAfter - NotBefore, and Conditions and SubjectConfirmationData NotOnOrAfter -
	// IssueInstant (default 2 h; Entra's window is usually 65 minutes, Okta's 10, SimpleSAMLphp's
	// about 5). Whatever the window, an assertion is accepted only within MaxIssueDelay of issue.
	MaxAssertionLifetime time.Duration
	// MaxIssueDelay is how old a Response or Assertion IssueInstant may be (default 90 s). It
	// cannot be raised above crewjam's package variable saml.MaxIssueDelay (90 s), which applies
	// too.
	MaxIssueDelay time.Duration
	// ClockSkew is the tolerance for the IdP's clock on NotBefore, NotOnOrAfter and a future
	// IssueInstant (default 30 s).
	ClockSkew time.Duration
	// RequestLifetime is how long an SP-initiated login may take at the IdP (default 10 min).
	RequestLifetime time.Duration
	// MetadataRefresh is how often Run refetches metadata URLs (default 1 h).
	MetadataRefresh time.Duration
	// CookieKey authenticates the pending-request and session cookies; at least 32 bytes. Default: derived
	// from Key, so every replica with the same SP key accepts every other's cookies.
	CookieKey []byte
	// SignAuthnRequests signs AuthnRequests (RSA-SHA256 or ECDSA-SHA256, per Key).
	SignAuthnRequests bool
	// SessionLifetime is how long the browser session set after an accepted login lasts
	// (default 10 min; see Session). Broker mode answers Flex from it without another upstream
	// login.
	SessionLifetime time.Duration
}

// SP is the service provider. It is safe for concurrent use.
type SP struct {
	o        Options
	log      *zap.Logger
	now      func() time.Time
	entityID string
	acs      string // the ACS URL, exactly as it must appear in Destination and Recipient
	acsURL   url.URL
	base     crewjam.ServiceProvider // shared settings of the per-IdP crewjam SPs
	cookies  requestCookies
	idps     atomic.Pointer[idpSet]

	// onPanic, when set (tests), is told about every panic recovered while parsing.
	onPanic func(any)
}

// namePattern is what an IdP name may look like (it travels in URLs and cookies).
var namePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// New checks o, reporting every problem at once, loads (or fetches) every IdP's metadata, and
// returns an SP ready to serve.
func New(o Options) (*SP, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	setDefault(&o.MaxResponseBytes, DefaultMaxResponseBytes)
	setDefault(&o.MaxAssertionLifetime, DefaultMaxAssertionLifetime)
	setDefault(&o.MaxIssueDelay, DefaultMaxIssueDelay)
	setDefault(&o.ClockSkew, DefaultClockSkew)
	setDefault(&o.RequestLifetime, DefaultRequestLifetime)
	setDefault(&o.MetadataRefresh, DefaultMetadataRefresh)
	setDefault(&o.SessionLifetime, DefaultSessionLifetime)

	var problems []error
	problem := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	pub, err := url.Parse(strings.TrimRight(o.PublicURL, "/"))
	if err != nil || (pub.Scheme != "https" && pub.Scheme != "http") || pub.Host == "" ||
		pub.RawQuery != "" || pub.Fragment != "" || pub.User != nil {
		problem("public URL %q must be an absolute http(s) URL without query or fragment", o.PublicURL)
		pub = &url.URL{Scheme: "https", Host: "invalid.invalid"}
	}
	if o.EntityID == "" {
		o.EntityID = pub.String() + MetadataPath
	}
	if o.Key == nil || o.Cert == nil {
		problem("an SP key and certificate are required")
	} else if !publicKeysEqual(o.Key.Public(), o.Cert.PublicKey) {
		problem("the SP certificate does not match the SP key")
	}
	if o.Replay == nil {
		problem("a replay cache is required")
	}
	if o.Logins == nil {
		problem("a login handler is required")
	}
	if o.MaxIssueDelay > crewjam.MaxIssueDelay {
		problem("max issue delay %s is above crewjam's saml.MaxIssueDelay (%s), which applies as well", o.MaxIssueDelay, crewjam.MaxIssueDelay)
	}
	if o.MaxResponseBytes < 4<<10 {
		problem("max response bytes %d is too small for any signed response", o.MaxResponseBytes)
	}
	if len(o.IdPs) == 0 {
		problem("at least one IdP is required")
	}
	names := map[string]bool{}
	for i, c := range o.IdPs {
		if !namePattern.MatchString(c.Name) {
			problem("idps[%d]: name %q must be 1 to 64 of A-Z a-z 0-9 _ . -", i, c.Name)
		} else if names[c.Name] {
			problem("idps[%d]: name %q is used twice", i, c.Name)
		}
		names[c.Name] = true
		if (len(c.MetadataXML) == 0) == (c.MetadataURL == "") {
			problem("idps[%d] (%s): exactly one of metadata XML and metadata URL is required", i, c.Name)
		}
		if c.MetadataURL != "" {
			if err := checkMetadataURL(c.MetadataURL); err != nil {
				problem("idps[%d] (%s): %v", i, c.Name, err)
			}
		}
		switch c.UserName {
		case UserNameAuto, UserNameNameID:
		case UserNameEmail:
			if c.Attributes.Email == "" {
				problem("idps[%d] (%s): user name from email needs attributes.email", i, c.Name)
			}
		default:
			problem("idps[%d] (%s): user name source %q is not nameid or email", i, c.Name, c.UserName)
		}
	}

	sp := &SP{o: o, log: o.Logger.Named("saml"), now: o.Now, entityID: o.EntityID}
	sp.acsURL = *pub.JoinPath(ACSPath)
	sp.acs = sp.acsURL.String()
	metaURL := *pub.JoinPath(MetadataPath)
	key := o.CookieKey
	if len(key) == 0 && o.Key != nil {
		if key, err = deriveCookieKey(o.Key); err != nil {
			problem("%v", err)
		}
	} else if len(key) < 32 {
		problem("cookie key must be at least 32 bytes")
	}
	sp.cookies = requestCookies{
		key:      key,
		path:     strings.TrimRight(pub.EscapedPath(), "/") + "/saml/",
		secure:   pub.Scheme == "https",
		lifetime: o.RequestLifetime,
	}
	sp.base = crewjam.ServiceProvider{
		EntityID:          o.EntityID,
		Key:               o.Key,
		Certificate:       o.Cert,
		MetadataURL:       metaURL,
		AcsURL:            sp.acsURL,
		AuthnNameIDFormat: crewjam.UnspecifiedNameIDFormat,
		// Never relax: InResponseTo is decided by this package and handed to crewjam as the only
		// possible request id ("" for IdP-initiated), so crewjam's own check agrees with ours.
		AllowIDPInitiated: false,
	}
	if o.SignAuthnRequests && o.Key != nil {
		switch o.Key.(type) {
		case *rsa.PrivateKey:
			sp.base.SignatureMethod = dsig.RSASHA256SignatureMethod
		case *ecdsa.PrivateKey:
			sp.base.SignatureMethod = dsig.ECDSASHA256SignatureMethod
		default:
			problem("signing AuthnRequests needs an RSA or ECDSA key, not %T", o.Key)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("saml: invalid options: %w", errors.Join(problems...))
	}

	ctx, cancel := context.WithTimeout(context.Background(), sp.fetchTimeout())
	defer cancel()
	set, err := sp.loadIdPs(ctx)
	if err != nil {
		return nil, fmt.Errorf("saml: %w", err)
	}
	sp.idps.Store(set)
	return sp, nil
}

// fetchTimeout bounds one round of metadata fetches.
func (sp *SP) fetchTimeout() time.Duration {
	if t := sp.o.HTTPClient.Timeout; t > 0 {
		return t + time.Second
	}
	return 30 * time.Second
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// deriveCookieKey derives the request-cookie MAC key from the SP private key, so that replicas
// sharing the key agree without another secret.
func deriveCookieKey(k crypto.Signer) ([]byte, error) {
	switch k.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("cannot derive a cookie key from a %T: set a cookie key", k)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("cannot derive a cookie key: %w", err)
	}
	m := hmac.New(sha256.New, []byte("flexbridge saml request cookie v1"))
	m.Write(der)
	return m.Sum(nil), nil
}

// Routes registers GET /saml/metadata, GET /saml/login and POST /saml/acs on mux.
func (sp *SP) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+MetadataPath, sp.serveMetadata)
	mux.HandleFunc("GET "+LoginPath, sp.serveLogin)
	mux.HandleFunc("POST "+ACSPath, sp.serveACS)
}

// EntityID is the SP's entity id.
func (sp *SP) EntityID() string { return sp.entityID }

// ACSURL is the assertion consumer service URL.
func (sp *SP) ACSURL() string { return sp.acs }

// Metadata returns the SP metadata document.
func (sp *SP) Metadata() ([]byte, error) {
	md := sp.base.Metadata()
	// crewjam also lists an HTTP-Artifact ACS endpoint; this SP resolves no artifacts, so an IdP
	// must not be invited to use that binding.
	for i := range md.SPSSODescriptors {
		var acs []crewjam.IndexedEndpoint
		for _, e := range md.SPSSODescriptors[i].AssertionConsumerServices {
			if e.Binding == crewjam.HTTPPostBinding {
				acs = append(acs, e)
			}
		}
		md.SPSSODescriptors[i].AssertionConsumerServices = acs
	}
	out, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), out...), nil
}

func (sp *SP) serveMetadata(w http.ResponseWriter, r *http.Request) {
	log, rid := sp.requestLog(w, r)
	out, err := sp.Metadata()
	if err != nil {
		writeFailure(w, log, rid, fail(kindInternal, "metadata", "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(out)
}

// serveLogin starts an SP-initiated login: GET /saml/login?idp=NAME[&return=/local/path]
// redirects to the IdP with an AuthnRequest, and remembers the request in a cookie keyed by the
// RelayState it sends along.
func (sp *SP) serveLogin(w http.ResponseWriter, r *http.Request) {
	log, rid := sp.requestLog(w, r)
	q := r.URL.Query()
	set := sp.idps.Load()
	name := q.Get("idp")
	if name == "" && len(set.list) == 1 {
		name = set.list[0].cfg.Name
	}
	p, ok := set.byName[name]
	if !ok || len(q["idp"]) > 1 {
		writeFailure(w, log, rid, malformed("unknown_idp", "no IdP named %q", truncate(name, 64)))
		return
	}
	ret := q.Get("return")
	if len(q["return"]) > 1 || (ret != "" && !isLocalPath(ret)) {
		writeFailure(w, log, rid, malformed("return_not_local", "the return parameter is not a local path"), zap.String("idp", p.cfg.Name))
		return
	}
	if p.ssoURL == "" {
		writeFailure(w, log, rid, fail(kindInternal, "idp_without_sso", "the IdP metadata lists no HTTP-Redirect SingleSignOnService"), zap.String("idp", p.cfg.Name))
		return
	}
	req, err := p.sp.MakeAuthenticationRequest(p.ssoURL, crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		writeFailure(w, log, rid, fail(kindInternal, "authn_request", "%v", err), zap.String("idp", p.cfg.Name))
		return
	}
	relay := newRelayID()
	sp.cookies.prune(w, r, sp.now())
	sp.cookies.set(w, relay, pendingRequest{ID: req.ID, IdP: p.cfg.Name, Return: ret}, sp.now())
	to, err := req.Redirect(relay, p.sp)
	if err != nil {
		writeFailure(w, log, rid, fail(kindInternal, "authn_request", "%v", err), zap.String("idp", p.cfg.Name))
		return
	}
	log.Info("saml login started", zap.String("idp", p.cfg.Name), zap.String("request_id_saml", req.ID))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", to.String())
	w.WriteHeader(http.StatusFound)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
