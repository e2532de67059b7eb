package saml

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// After a successful upstream login, serveACS sets a short browser session: a cookie named
// sessionCookie that holds the IdP name, the user name, the authentication instant and an
// expiry, under an HMAC with the SP's cookie key (the keyed MAC of relay.go, so the cookie name
// is part of what is authenticated: a request cookie can never pass for a session). Nothing is
// kept on the server, so every replica with the same key accepts it. Broker mode reads it
// (SP.Session) to answer Flex without sending the person to the upstream IdP again.
//
// On https the cookie is Secure and SameSite=Lax: Flex sends the browser here by a top-level
// GET, which carries Lax cookies, and a cross-site POST does not (which is right: it cannot
// ride a form another site submits). On plain http (local set-ups) it is neither, as relay.go
// explains for request cookies.

// DefaultSessionLifetime is the default of Options.SessionLifetime.
const DefaultSessionLifetime = 10 * time.Minute

const (
	sessionCookie = "flexbridge_session"
	// maxSealedCookie caps a sealed cookie value before it is decoded (browsers keep at most
	// 4096 bytes per cookie anyway).
	maxSealedCookie = 4096
)

// Session is a person who signed in at an upstream IdP through this SP a short time ago.
type Session struct {
	IdP          string    // IdPConfig.Name
	UserName     string    // Login.Identity.UserName
	AuthnInstant time.Time // when this SP accepted the upstream login (whole seconds)
	Expires      time.Time // when the session ends (whole seconds)
}

type sessionPayload struct {
	IdP      string `json:"p"`
	UserName string `json:"u"`
	Authn    int64  `json:"a"` // unix seconds
	Expires  int64  `json:"e"` // unix seconds
}

// sealCookie returns a cookie value carrying v as JSON, authenticated with key for the cookie
// name: base64url(JSON) "." base64url(HMAC-SHA256(key, name 0x00 JSON)).
func sealCookie(key []byte, name string, v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keeps RelayState text short; the value is base64 anyway
	_ = enc.Encode(v)
	payload := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return base64.RawURLEncoding.EncodeToString(payload) + "." +
		base64.RawURLEncoding.EncodeToString(requestCookies{key: key}.mac(name, payload))
}

// openCookie checks value's MAC for name and decodes its JSON into v. It reports false for
// anything oversized, malformed or not authentic.
func openCookie(key []byte, name, value string, v any) bool {
	b64, sig, ok := strings.Cut(value, ".")
	if !ok || len(value) > maxSealedCookie {
		return false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(b64)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, requestCookies{key: key}.mac(name, payload)) {
		return false
	}
	return json.Unmarshal(payload, v) == nil
}

// sessionCookieFor builds the session cookie with its attributes; maxAge < 0 deletes it.
func (sp *SP) sessionCookieFor(value string, maxAge int) *http.Cookie {
	ck := &http.Cookie{Name: sessionCookie, Value: value, Path: sp.cookies.path, MaxAge: maxAge, HttpOnly: true, Secure: sp.cookies.secure}
	if sp.cookies.secure {
		ck.SameSite = http.SameSiteLaxMode
	}
	return ck
}

// setSession starts the browser session of an accepted login. A login without a user name
// gets none (and ends any session the browser had).
func (sp *SP) setSession(w http.ResponseWriter, l Login, now time.Time) {
	if l.IdP == "" || l.Identity.UserName == "" {
		http.SetCookie(w, sp.sessionCookieFor("", -1))
		return
	}
	p := sessionPayload{IdP: l.IdP, UserName: l.Identity.UserName, Authn: now.Unix(), Expires: now.Add(sp.o.SessionLifetime).Unix()}
	value := sealCookie(sp.cookies.key, sessionCookie, p)
	if len(value) > maxSealedCookie {
		http.SetCookie(w, sp.sessionCookieFor("", -1))
		return
	}
	http.SetCookie(w, sp.sessionCookieFor(value, int(sp.o.SessionLifetime/time.Second)))
}

// Session returns the browser session of r: the person who last signed in through this SP in
// this browser, if that was less than Options.SessionLifetime ago. It reports false when there
// is no session cookie, or it is not authentic, expired, or names an IdP no longer configured.
func (sp *SP) Session(r *http.Request) (Session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return Session{}, false
	}
	var p sessionPayload
	if !openCookie(sp.cookies.key, sessionCookie, ck.Value, &p) || p.IdP == "" || p.UserName == "" {
		return Session{}, false
	}
	now := sp.now().Unix()
	if now >= p.Expires || now-p.Authn >= int64(sp.o.SessionLifetime/time.Second) || p.Authn > now+int64(sp.o.ClockSkew/time.Second) {
		return Session{}, false
	}
	if _, ok := sp.idps.Load().byName[p.IdP]; !ok {
		return Session{}, false
	}
	return Session{IdP: p.IdP, UserName: p.UserName, AuthnInstant: time.Unix(p.Authn, 0).UTC(), Expires: time.Unix(p.Expires, 0).UTC()}, true
}
