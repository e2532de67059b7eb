package saml

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock for Options.Now and BrokerOptions.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sessionCookieOf returns the session cookie rec sets, or nil.
func sessionCookieOf(rec *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

// withCookies is a GET request carrying cookies.
func withCookies(target string, cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

func TestSessionRoundTrip(t *testing.T) {
	clock := newTestClock()
	e := newEnv(t, func(o *Options) { o.Now = clock.now })
	before := clock.now()
	rec := e.post(fresh(t, "").build(t), "")
	e.expectLogin(t, rec, "/welcome")
	ck := sessionCookieOf(rec)
	if ck == nil {
		t.Fatal("no session cookie after an accepted login")
	}
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/saml/" || ck.MaxAge != 600 {
		t.Fatalf("session cookie attributes: %+v", ck)
	}
	s, ok := e.sp.Session(withCookies("/saml/idp/sso", ck))
	if !ok {
		t.Fatal("the session cookie is not accepted")
	}
	if s.IdP != "okta" || s.UserName != testNameID {
		t.Fatalf("session %+v", s)
	}
	if s.AuthnInstant.Unix() != before.Unix() || !s.Expires.Equal(s.AuthnInstant.Add(DefaultSessionLifetime)) {
		t.Fatalf("session times %+v (login at %s)", s, before)
	}
	if _, ok := e.sp.Session(httptest.NewRequest(http.MethodGet, "/", nil)); ok {
		t.Fatal("a session without a cookie")
	}
}

func TestSessionTampered(t *testing.T) {
	e := newEnv(t)
	ck := sessionCookieOf(e.post(fresh(t, "").build(t), ""))
	if ck == nil {
		t.Fatal("no session cookie")
	}
	payload, mac, _ := strings.Cut(ck.Value, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"p":"okta","u":"mallory@example.com","a":1,"e":99999999999}`))
	other := newEnv(t, func(o *Options) { o.CookieKey = []byte(strings.Repeat("k", 32)) })
	otherCk := sessionCookieOf(other.post(fresh(t, "").build(t), ""))
	_, relay, reqCookie := e.startLogin("okta", "")
	_ = relay

	for name, value := range map[string]string{
		"payload changed":      forged + "." + mac,
		"mac changed":          payload + "." + strings.Repeat("A", len(mac)),
		"no mac":               payload,
		"empty":                "",
		"another key":          otherCk.Value,
		"a request cookie":     reqCookie.Value, // authenticated, but for another cookie name
		"oversized":            strings.Repeat("A", maxSealedCookie) + "." + mac,
		"not base64":           "!!!." + mac,
		"payload not json":     base64.RawURLEncoding.EncodeToString([]byte("x")) + "." + mac,
		"valid, with garbage":  ck.Value + "x",
		"valid, twice the mac": ck.Value + "." + mac,
	} {
		if s, ok := e.sp.Session(withCookies("/", &http.Cookie{Name: sessionCookie, Value: value})); ok {
			t.Errorf("%s: accepted as %+v", name, s)
		}
	}
	// The untouched cookie still works.
	if _, ok := e.sp.Session(withCookies("/", ck)); !ok {
		t.Fatal("the genuine cookie is refused")
	}
}

func TestSessionExpiry(t *testing.T) {
	clock := newTestClock()
	e := newEnv(t, func(o *Options) { o.Now = clock.now; o.SessionLifetime = 3 * time.Minute })
	rec := e.post(fresh(t, "").build(t), "")
	ck := sessionCookieOf(rec)
	if ck == nil || ck.MaxAge != 180 {
		t.Fatalf("session cookie %+v", ck)
	}
	clock.advance(3*time.Minute - time.Second)
	if _, ok := e.sp.Session(withCookies("/", ck)); !ok {
		t.Fatal("refused before its expiry")
	}
	clock.advance(time.Second)
	if _, ok := e.sp.Session(withCookies("/", ck)); ok {
		t.Fatal("accepted at its expiry")
	}

	// A session from the future (another replica's clock far ahead) is refused too.
	clock.advance(-time.Hour)
	if _, ok := e.sp.Session(withCookies("/", ck)); ok {
		t.Fatal("accepted an hour before it was made")
	}
}

func TestSessionNotSetOnRefusedLogin(t *testing.T) {
	e := newEnv(t)
	e.err = fmt.Errorf("user is deactivated: %w", ErrRefused)
	rec := e.post(fresh(t, "").build(t), "")
	if rec.Code != http.StatusForbidden || sessionCookieOf(rec) != nil {
		t.Fatalf("refused login: %d, session cookie %+v", rec.Code, sessionCookieOf(rec))
	}
	e.err = errors.New("store is down")
	if rec := e.post(fresh(t, "").build(t), ""); rec.Code != http.StatusInternalServerError || sessionCookieOf(rec) != nil {
		t.Fatalf("failed login: %d", rec.Code)
	}
	e.err = nil
	bad := fresh(t, "")
	bad.Key = keys(t).foreign // signed by somebody else
	if rec := e.post(bad.build(t), ""); rec.Code != http.StatusForbidden || sessionCookieOf(rec) != nil {
		t.Fatalf("forged response: %d", rec.Code)
	}
	e.redirect = "javascript:alert(1)"
	if rec := e.post(fresh(t, "").build(t), ""); rec.Code != http.StatusInternalServerError || sessionCookieOf(rec) != nil {
		t.Fatalf("unusable redirect: %d", rec.Code)
	}
}

func TestSessionCookieOnPlainHTTP(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PublicURL = "http://127.0.0.1:8080/bridge" })
	s := fresh(t, "")
	s.Destination, s.A.Recipient = "http://127.0.0.1:8080/bridge/saml/acs", "http://127.0.0.1:8080/bridge/saml/acs"
	s.A.Audiences = [][]string{{"http://127.0.0.1:8080/bridge/saml/metadata"}}
	rec := e.post(s.build(t), "")
	ck := sessionCookieOf(rec)
	if ck == nil || ck.Secure || ck.SameSite != 0 || ck.Path != "/bridge/saml/" || !ck.HttpOnly {
		t.Fatalf("%d, session cookie %+v", rec.Code, ck)
	}
	if _, ok := e.sp.Session(withCookies("/", ck)); !ok {
		t.Fatal("refused")
	}
}
