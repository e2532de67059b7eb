package runscope

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

// reporter is the part of *testing.T that RunT uses.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Context() context.Context
}

// RunT loads the suite at suitePath and runs it with the suite's initial
// variables (see [InitialVars]) overlaid with vars, which must provide the
// environment settings (for the SPEC suite: SCIMBaseURL, e.g.
// "http://127.0.0.1:8080/scim/v2", and auth, e.g. "Bearer <token>") and may
// override any initial variable.
//
// Pause steps are not slept: they exist for Okta's asynchronous provisioning,
// and a server under test answers synchronously. (Use Load and Suite.Run to
// honour them.) Requests use a client with a 30s timeout and t.Context().
//
// RunT reports each failing step with t.Errorf (step number, note, method,
// URL, status, every failure with expected and actual values and the start of
// the response body) and logs a one-line summary "N steps, N passed".
func RunT(t *testing.T, suitePath string, vars map[string]string) {
	t.Helper()
	runT(t, suitePath, vars)
}

func runT(t reporter, suitePath string, vars map[string]string) {
	t.Helper()
	s, err := Load(suitePath)
	if err != nil {
		t.Fatalf("runscope: %v", err)
		return
	}
	all := InitialVars(s.Name, nil)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, vars)

	var pauses int
	var paused time.Duration
	s.Pause = func(context.Context, time.Duration) error { return nil }
	for _, st := range s.Steps {
		if st.Type == StepPause && !st.Skipped {
			pauses++
			paused += st.Duration
		}
	}

	client := &http.Client{Timeout: 30 * time.Second}
	results, runErr := s.Run(t.Context(), client, all)
	passed := 0
	for _, r := range results {
		if r.Passed() {
			passed++
			continue
		}
		t.Errorf("%s", FormatFailure(s.Name, r))
	}
	if runErr != nil {
		t.Errorf("%s: replay aborted after %d request steps: %v", s.Name, len(results), runErr)
	}
	t.Logf("%s: %d steps, %d passed (%d pauses totalling %s not slept)", s.Name, len(results), passed, pauses, paused)
}

// FormatFailure renders a failing step for a test log.
func FormatFailure(suite string, r Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s step %d %q: %s %s -> ", suite, r.Step, r.Note, r.Method, r.URL)
	if r.Status == 0 {
		b.WriteString("no response")
	} else {
		fmt.Fprintf(&b, "%d", r.Status)
	}
	for _, f := range r.Failures {
		b.WriteString("\n\t")
		b.WriteString(f)
	}
	if r.Response != "" {
		resp := strings.TrimRight(r.Response, " \t\r\n")
		if len(resp) > 512 {
			resp = resp[:512] + "…"
		}
		b.WriteString("\n\tresponse body: ")
		b.WriteString(resp)
	}
	return b.String()
}
