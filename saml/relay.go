package saml

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// An SP-initiated login is remembered in the browser, not on the server: /saml/login sets a
// cookie named cookiePrefix+RelayState whose value is the AuthnRequest ID, the IdP and the
// return path, with an expiry, under an HMAC. Any replica holding the same key accepts it, and
// only the browser that started the login can present it, so a response the IdP sent to
// somebody else (or an attacker's own, for login CSRF) finds no matching request.

const (
	cookiePrefix = "flexbridge_saml_"
	// maxPending is how many unfinished logins one browser may have; older ones are dropped.
	maxPending = 5
	// maxRelayState caps RelayState (SAML bindings say 80 bytes; local paths may be longer).
	maxRelayState = 1024
)

// relayIDPattern is what newRelayID makes: 16 random bytes, unpadded base64url.
var relayIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

func newRelayID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

type pendingRequest struct {
	ID      string `json:"i"`           // AuthnRequest ID, the expected InResponseTo
	IdP     string `json:"p"`           // IdPConfig.Name the request went to
	Return  string `json:"r,omitempty"` // local path to land on
	Expires int64  `json:"e"`           // unix seconds
}

type requestCookies struct {
	key      []byte
	path     string // covers /saml/login (pruning) and /saml/acs
	secure   bool
	lifetime time.Duration
}

func (c requestCookies) mac(name string, payload []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

func (c requestCookies) cookie(name, value string, maxAge int) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: c.path, MaxAge: maxAge, HttpOnly: true, Secure: c.secure}
	if c.secure {
		// The ACS POST comes from the IdP's site: only SameSite=None cookies travel with it.
		ck.SameSite = http.SameSiteNoneMode
	}
	// On plain http (local set-ups) no SameSite attribute is sent: Chromium then lets a fresh
	// cookie ride a cross-site top-level POST ("Lax-allowing-unsafe"), while None needs Secure.
	return ck
}

func (c requestCookies) set(w http.ResponseWriter, relay string, p pendingRequest, now time.Time) {
	p.Expires = now.Add(c.lifetime).Unix()
	payload, _ := json.Marshal(p)
	name := cookiePrefix + relay
	value := base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(c.mac(name, payload))
	http.SetCookie(w, c.cookie(name, value, int(c.lifetime/time.Second)))
}

func (c requestCookies) clear(w http.ResponseWriter, relay string) {
	http.SetCookie(w, c.cookie(cookiePrefix+relay, "", -1))
}

// get returns the pending request the browser holds for relay, if it is authentic and live.
func (c requestCookies) get(r *http.Request, relay string, now time.Time) (pendingRequest, bool) {
	ck, err := r.Cookie(cookiePrefix + relay)
	if err != nil {
		return pendingRequest{}, false
	}
	return c.decode(ck.Name, ck.Value, now)
}

func (c requestCookies) decode(name, value string, now time.Time) (pendingRequest, bool) {
	var p pendingRequest
	b64, sig, ok := strings.Cut(value, ".")
	if !ok || len(value) > 2048 {
		return p, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(b64)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, c.mac(name, payload)) {
		return p, false
	}
	if json.Unmarshal(payload, &p) != nil || p.ID == "" || now.Unix() >= p.Expires {
		return pendingRequest{}, false
	}
	return p, true
}

// prune expires this browser's dead request cookies and all but the newest maxPending-1 live
// ones (a new one is about to be set), so repeated login attempts cannot bloat its headers.
func (c requestCookies) prune(w http.ResponseWriter, r *http.Request, now time.Time) {
	pruneCookies(r, cookiePrefix, func(name, value string) (int64, bool) {
		p, ok := c.decode(name, value, now)
		return p.Expires, ok
	}, func(id string) { c.clear(w, id) })
}

// pruneCookies keeps at most maxPending-1 of the browser's cookies named prefix+ID (ID as
// newRelayID makes them): those that live (expires decodes them and reports their expiry) and
// are newest. clear is called for every other one.
func pruneCookies(r *http.Request, prefix string, expires func(name, value string) (int64, bool), clear func(id string)) {
	type live struct {
		id      string
		expires int64
	}
	var alive []live
	for _, ck := range r.Cookies() {
		id, ok := strings.CutPrefix(ck.Name, prefix)
		if !ok || !relayIDPattern.MatchString(id) {
			continue
		}
		if e, ok := expires(ck.Name, ck.Value); ok {
			alive = append(alive, live{id, e})
		} else {
			clear(id)
		}
	}
	sort.Slice(alive, func(i, j int) bool { return alive[i].expires > alive[j].expires })
	for i := maxPending - 1; i < len(alive); i++ {
		clear(alive[i].id)
	}
}

// isLocalPath reports whether s is a path on this site that is safe to redirect to: it starts
// with one "/" (not "//" or "/\", which browsers read as another host), has no scheme, host or
// user info, and no control characters or backslashes. "javascript:..." and absolute URLs fail.
func isLocalPath(s string) bool {
	if len(s) == 0 || len(s) > maxRelayState || s[0] != '/' || !utf8.ValidString(s) {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\\' || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && u.Opaque == "" && strings.HasPrefix(u.Path, "/")
}

// isSafeRedirect accepts what a LoginHandler may answer: a local path, or an absolute http(s) URL.
func isSafeRedirect(s string) bool {
	if isLocalPath(s) {
		return true
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return false
		}
	}
	return true
}
