package saml

// ACS throughput next to the limit: bare crewjam ParseResponse on the same signed response, in
// the same run (issue 4 asks for >= 0.8x). Both decode the same POST form; BenchmarkACS goes
// through the whole handler (form, checks, crewjam, extraction, replay cache, handler, 303).
// Parallel, so ns/op is the inverse of logins per second on GOMAXPROCS cores:
//
//	go test -run='^$' -bench='ACS|Crewjam' -cpu=2 -benchtime=3s ./saml/
//
// The replay cache always answers "fresh" so that one document serves every iteration; the
// document is signed once per benchmark and stays valid for 90 s.

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
)

func benchForm(b *testing.B) string {
	s := fresh(b, "")
	return url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(s.build(b))}}.Encode()
}

// acsBench posts form to the full handler.
func acsBench(b *testing.B) func(form string) {
	e := newEnv(b, func(o *Options) { o.Replay = alwaysFresh{} })
	return func(form string) {
		req := httptest.NewRequest(http.MethodPost, ACSPath, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusSeeOther {
			b.Fatalf("status %d: %v", rec.Code, e.reasons())
		}
	}
}

// crewjamBench hands form to a bare crewjam ServiceProvider configured like ours (same
// metadata, both certificates, IdP-initiated allowed so that no request id is needed).
func crewjamBench(b *testing.B) func(form string) {
	k := keys(b)
	md, err := parseIdPMetadata(idpMetadata(oktaEntityID, oktaSSO, k.okta.cert, k.oktaNext.cert), "")
	if err != nil {
		b.Fatal(err)
	}
	acs, _ := url.Parse(testACS)
	meta, _ := url.Parse(testEntityID)
	sp := &crewjam.ServiceProvider{
		EntityID: testEntityID, Key: k.sp.key, Certificate: k.sp.cert,
		AcsURL: *acs, MetadataURL: *meta, IDPMetadata: md, AllowIDPInitiated: true,
	}
	return func(form string) {
		req := httptest.NewRequest(http.MethodPost, ACSPath, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if err := req.ParseForm(); err != nil { // crewjam expects the caller to have parsed the form
			b.Fatal(err)
		}
		if _, err := sp.ParseResponse(req, []string{""}); err != nil {
			var ire *crewjam.InvalidResponseError
			if errors.As(err, &ire) {
				err = ire.PrivateErr
			}
			b.Fatal(err)
		}
	}
}

func runParallel(b *testing.B, do func(string)) {
	form := benchForm(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			do(form)
		}
	})
}

func BenchmarkACS(b *testing.B) { runParallel(b, acsBench(b)) }

func BenchmarkCrewjamParseResponse(b *testing.B) { runParallel(b, crewjamBench(b)) }

// BenchmarkACSVersusCrewjam alternates the two on the same response in every goroutine, so
// that a noisy machine slows both alike; it reports the ACS throughput as a fraction of
// crewjam's (issue 4's target: >= 0.8).
func BenchmarkACSVersusCrewjam(b *testing.B) {
	acs, bare := acsBench(b), crewjamBench(b)
	form := benchForm(b)
	var acsNS, bareNS atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			acs(form)
			t1 := time.Now()
			bare(form)
			acsNS.Add(int64(t1.Sub(t0)))
			bareNS.Add(int64(time.Since(t1)))
		}
	})
	b.ReportMetric(float64(acsNS.Load())/float64(b.N), "acs-ns/login")
	b.ReportMetric(float64(bareNS.Load())/float64(b.N), "crewjam-ns/parse")
	b.ReportMetric(float64(bareNS.Load())/float64(acsNS.Load()), "acs/crewjam-throughput")
}
