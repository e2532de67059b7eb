package prism_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexbridge/flexbridge/internal/testutil/prism"
)

const workerPath = "/v1/Workspaces/WSaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Workers/WKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func spec(t *testing.T) string {
	return filepath.Join(prism.ModuleRoot(t), "test", "specs", "twilio_taskrouter_v1.yaml")
}

func get(t *testing.T, c *prism.Checker, rawURL string, auth bool) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.SetBasicAuth("ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "token")
	}
	resp, err := (&http.Client{Transport: c}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// In proxy mode, a response that breaks the description is caught, with the location
// of each fault, and replaced by Prism's 500.
func TestProxyReportsResponseViolations(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"sid":"WK1","date_created":"Tue, 30 May 2017 23:19:38 +0000","available":"no"}`)
	}))
	defer upstream.Close()
	base := prism.Start(t, "proxy", spec(t), upstream.URL)

	c := &prism.Checker{}
	resp := get(t, c, base+workerPath, true)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status %d, want Prism's 500", resp.StatusCode)
	}
	got := map[string]bool{}
	for _, v := range prism.Errors(c.Violations()) {
		got[v.Location] = true
	}
	for _, want := range []string{"response.body.sid", "response.body.date_created", "response.body.available", "prism#VIOLATIONS"} {
		if !got[want] {
			t.Errorf("no violation at %s; got %v", want, c.Violations())
		}
	}
	// The body is still readable after Violations looked at it.
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "VIOLATIONS") {
		t.Errorf("body not readable: %q", body)
	}
}

// In mock mode, a valid request gets an example and no violation; an invalid one, or one
// without credentials, is refused and reported.
func TestMockChecksRequests(t *testing.T) {
	base := prism.Start(t, "mock", spec(t), "")

	ok := &prism.Checker{}
	resp := get(t, ok, base+workerPath, true)
	if resp.StatusCode != http.StatusOK || len(ok.Violations()) != 0 {
		t.Errorf("valid request: %d, violations %v", resp.StatusCode, ok.Violations())
	}

	bad := &prism.Checker{}
	resp = get(t, bad, base+"/v1/Workspaces/WSaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Workers?PageSize=0", true)
	if resp.StatusCode != http.StatusUnprocessableEntity || len(prism.Errors(bad.Violations())) == 0 {
		t.Errorf("PageSize=0: %d, violations %v", resp.StatusCode, bad.Violations())
	}
	anon := &prism.Checker{}
	resp = get(t, anon, base+workerPath, false)
	vs := anon.Violations()
	if resp.StatusCode != http.StatusUnauthorized || len(vs) == 0 || vs[len(vs)-1].Location != "prism#UNAUTHORIZED" {
		t.Errorf("no credentials: %d, violations %v", resp.StatusCode, vs)
	}
	if anon.Exchanges() != 1 {
		t.Errorf("Exchanges = %d", anon.Exchanges())
	}
}
