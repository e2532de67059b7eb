package saml

// FuzzACS drives POST /saml/acs with arbitrary SAMLResponse bytes and RelayState, through the
// form handling, the byte and shape checks, crewjam and the attribute extraction, against an
// SP that trusts the in-test Okta stand-in.
//
// Every answer must be a 303 or a 400, 403 or 413 page, within fuzzBudget, without a recovered
// panic (a panic in this package's checks is a finding even though the handler survives it).
// An accepted response must carry exactly the identity the in-test IdP signed: anything else
// would be a signature bypass. The replay cache always answers "fresh", so that a mutation that
// keeps the signature valid (whitespace between attributes, a comment) is accepted each time
// and checked against that oracle.
//
// Seeds: freshly signed responses added here (valid for 90 s, so mutations of valid documents
// get that long), and testdata/fuzz/FuzzACS (hostile shapes: wrapping, DOCTYPE, XXE, deep
// nesting, comment injection, encrypted, expired; regenerate with
// FLEXBRIDGE_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./saml/).
//
//	go test -run='^$' -fuzz='^FuzzACS$' -fuzztime=60s ./saml/

import (
	"context"
	"crypto"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

const fuzzBudget = 2 * time.Second

type alwaysFresh struct{}

func (alwaysFresh) Remember(context.Context, string, time.Time) (bool, error) { return true, nil }

func FuzzACS(f *testing.F) {
	e := newEnv(f, func(o *Options) { o.Replay = alwaysFresh{} })
	if rec := e.post(fresh(f, "").build(f), ""); rec.Code != http.StatusSeeOther {
		f.Fatalf("the reference login failed: %d %v", rec.Code, e.reasons())
	}
	want := e.lastLogin()

	f.Add(fresh(f, "").build(f), "")
	f.Add(fresh(f, "").build(f), "/flex/home")
	both := fresh(f, "")
	both.SignResponse = true
	f.Add(both.build(f), "")
	noKeyInfo := fresh(f, "")
	noKeyInfo.NoKeyInfo = true
	f.Add(noKeyInfo.build(f), "")

	f.Fuzz(func(t *testing.T, doc []byte, relay string) {
		e.mu.Lock()
		before, panics := len(e.logins), len(e.panics)
		e.mu.Unlock()
		start := time.Now()
		rec := e.post(doc, relay)
		if took := time.Since(start); took > fuzzBudget {
			t.Fatalf("took %s", took)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.panics) > panics {
			t.Fatalf("recovered a panic: %v", e.panics[len(e.panics)-1])
		}
		switch rec.Code {
		case http.StatusSeeOther:
			if len(e.logins) != before+1 {
				t.Fatalf("303 with %d new logins", len(e.logins)-before)
			}
			got := e.logins[len(e.logins)-1]
			if got.NameID != want.NameID || got.IdP != want.IdP || !reflect.DeepEqual(got.Identity, want.Identity) {
				t.Fatalf("accepted an identity the IdP did not sign: %+v", got)
			}
			if got.RelayState != "" && !isLocalPath(got.RelayState) {
				t.Fatalf("RelayState %q", got.RelayState)
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge:
			if len(e.logins) != before {
				t.Fatalf("status %d, yet the login handler ran", rec.Code)
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzACS from the in-test IdP. The signed
// entries expire within 90 s: they seed shapes, not valid logins.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("FLEXBRIDGE_WRITE_FUZZ_CORPUS") == "" {
		// Not regenerating (set FLEXBRIDGE_WRITE_FUZZ_CORPUS=1 for that): check the committed
		// corpus is there and well-formed, so FuzzACS starts from real responses.
		dir := filepath.Join("testdata", "fuzz", "FuzzACS")
		files, err := os.ReadDir(dir)
		if err != nil || len(files) < 10 {
			t.Fatalf("seed corpus %s: %d files, %v", dir, len(files), err)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, f.Name()))
			if err != nil || !strings.HasPrefix(string(b), "go test fuzz v1\n") {
				t.Errorf("%s is not a fuzz corpus file: %v", f.Name(), err)
			}
		}
		return
	}
	k := keys(t)
	entries := map[string][2]string{}
	add := func(name string, doc []byte, relay string) { entries[name] = [2]string{string(doc), relay} }
	build := func(mod func(*responseSpec)) []byte {
		s := fresh(t, "")
		if mod != nil {
			mod(&s)
		}
		return s.build(t)
	}
	edit := func(doc []byte, f func(root *etree.Element)) []byte {
		return tree(func(_ *testing.T, r *etree.Element) { f(r) })(t, doc)
	}

	add("signed-assertion", build(nil), "")
	add("signed-response", build(func(s *responseSpec) { s.SignAssertion, s.SignResponse = false, true }), "/flex/home")
	add("signed-both-no-keyinfo", build(func(s *responseSpec) { s.SignResponse, s.NoKeyInfo = true, true }), "")
	add("sp-initiated", build(func(s *responseSpec) { s.InResponseTo, s.A.InResponseTo = "_req1", "_req1" }), newRelayID())
	add("encrypted", build(func(s *responseSpec) { s.Encrypt = k.sp.cert }), "")
	add("entra", entraFresh(t, "").build(t), "")
	add("unsigned", build(func(s *responseSpec) { s.SignAssertion = false }), "")
	add("sha1", build(func(s *responseSpec) { s.Hash = crypto.SHA1 }), "")
	add("no-conditions", build(func(s *responseSpec) { s.A.NoConditions = true }), "")
	add("no-subject", build(func(s *responseSpec) { s.A.NoSubject = true }), "")
	add("no-scd", build(func(s *responseSpec) { s.A.NoSCD = true }), "")
	add("two-audiences", build(func(s *responseSpec) { s.A.Audiences = [][]string{{testEntityID}, {"https://x"}} }), "")
	add("comment-nameid", []byte(strings.Replace(string(build(func(s *responseSpec) { s.A.NameID = "alice@example.com.evil.com" })),
		"alice@example.com.evil.com</saml:NameID>", "alice@example.com<!---->.evil.com</saml:NameID>", 1)), "")
	add("xsw-sibling", edit(build(nil), func(root *etree.Element) {
		evil := assertionOf(root).Copy()
		evil.RemoveChild(evil.SelectElement("Signature"))
		evil.SelectAttr("ID").Value = "_evil"
		root.InsertChildAt(assertionOf(root).Index(), evil)
	}), "")
	add("xsw-extensions", edit(build(nil), func(root *etree.Element) {
		orig := assertionOf(root)
		evil := orig.Copy()
		evil.SelectAttr("ID").Value = "_evil"
		root.RemoveChild(orig)
		root.CreateElement("samlp:Extensions").AddChild(orig)
		root.AddChild(evil)
	}), "")
	add("doctype", []byte(`<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&x;</samlp:Response>`), "")
	add("deep-2000", []byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">`+strings.Repeat("<a>", 2000)+strings.Repeat("</a>", 2000)+`</samlp:Response>`), "")
	add("relay-absolute", build(nil), "https://evil.example.com/")
	add("relay-scheme-relative", build(nil), "//evil.example.com")
	add("relay-javascript", build(nil), "javascript:alert(1)")
	add("empty", nil, "")
	add("not-xml", []byte("hello"), "")

	dir := filepath.Join("testdata", "fuzz", "FuzzACS")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range entries {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nstring(%q)\n", v[0], v[1])
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
