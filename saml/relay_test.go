package saml

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestIsLocalPath(t *testing.T) {
	for s, want := range map[string]bool{
		"/":                           true,
		"/flex/agent-desktop":         true,
		"/a?b=c&d=/e#f":               true,
		"/%2F%2Fevil.example.com":     true, // stays on this host: the browser does not decode it into //
		"":                            false,
		"relative/path":               false,
		"//evil.example.com":          false,
		"/\\evil.example.com":         false,
		"/a\\b":                       false,
		"https://evil.example.com/":   false,
		"javascript:alert(1)":         false,
		"JavaScript:alert(1)":         false,
		"data:text/html,<script>":     false,
		"/x\r\nLocation: http://evil": false,
		"/x\ty":                       false,
		"/\u2028":                     false,
		"/\x7f":                       false,
		"/\xff":                       false,
		"/" + string(make([]byte, maxRelayState)): false,
	} {
		if got := isLocalPath(s); got != want {
			t.Errorf("isLocalPath(%q) = %v, want %v", s, got, want)
		}
	}
	for s, want := range map[string]bool{
		"/home": true, "https://flex.twilio.com/x": true, "http://localhost:3000/": true,
		"javascript:alert(1)": false, "//evil": false, "https://user:pw@evil/": false, "ftp://x/": false,
	} {
		if got := isSafeRedirect(s); got != want {
			t.Errorf("isSafeRedirect(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestRequestCookieOnPlainHTTP(t *testing.T) {
	// On http (local set-ups, the SimpleSAMLphp recipe) the cookie is not Secure and has no
	// SameSite attribute: Chromium drops SameSite=None without Secure, and refuses Lax cookies on
	// the IdP's cross-site POST.
	e := newEnv(t, func(o *Options) { o.PublicURL = "http://127.0.0.1:8080/bridge" })
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, LoginPath+"?idp=okta", nil))
	cs := rec.Result().Cookies()
	if len(cs) != 1 || cs[0].Secure || cs[0].SameSite != 0 || cs[0].Path != "/bridge/saml/" || !cs[0].HttpOnly {
		t.Fatalf("cookies %+v", cs)
	}
	if e.sp.ACSURL() != "http://127.0.0.1:8080/bridge/saml/acs" || e.sp.EntityID() != "http://127.0.0.1:8080/bridge/saml/metadata" {
		t.Fatal(e.sp.ACSURL(), e.sp.EntityID())
	}
}

func TestMemoryReplayCache(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := NewMemoryReplayCache(func() time.Time { return now })
	ctx := context.Background()
	if fresh, _ := c.Remember(ctx, "a", now.Add(time.Minute)); !fresh {
		t.Fatal("first use")
	}
	if fresh, _ := c.Remember(ctx, "a", now.Add(time.Minute)); fresh {
		t.Fatal("second use")
	}
	now = now.Add(2 * time.Minute)
	if fresh, _ := c.Remember(ctx, "a", now.Add(time.Minute)); !fresh {
		t.Fatal("after expiry the id may be forgotten")
	}
}

func TestCheckRawXML(t *testing.T) {
	for s, want := range map[string]error{
		`<a/>`:                                        nil,
		`<a><!-- c --><![CDATA[x]]></a>`:              nil,
		`<!DOCTYPE a><a/>`:                            errDOCTYPE,
		`<!doctype a><a/>`:                            errDOCTYPE,
		`<a><!ENTITY x "y"></a>`:                      errDOCTYPE,
		`<a><![CDATA[<!DOCTYPE]]></a>`:                errDOCTYPE, // strict: refused wherever it appears
		"<a>\xff</a>":                                 errNotUTF8,
		"\xfe\xff\x00<\x00a\x00/\x00>":                errNotUTF8,
		`<?xml version="1.0"?><a>x</a>`:               nil,
		`<?xml version="1.0" encoding="UTF-16"?><a/>`: nil, // declared, but the bytes are UTF-8 and etree does not convert
	} {
		if got := checkRawXML([]byte(s)); got != want {
			t.Errorf("checkRawXML(%q) = %v, want %v", s, got, want)
		}
	}
}
