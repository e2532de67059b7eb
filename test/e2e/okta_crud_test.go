package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flexbridge/flexbridge/internal/testutil/oktasim"
	"github.com/flexbridge/flexbridge/internal/testutil/runscope"
)

// TestOktaCRUDSuite replays Okta's published "SCIM 2.0 CRUD" test with oktasim playing the
// Okta org: the suite's management API calls go to the sim, which provisions the running
// flexbridge as Okta's SCIM client does, and the suite's SCIM reads go to flexbridge. At
// every pause of the suite (where Okta would be provisioning) the worker is checked through
// the sandbox: present after assignment, renamed after the profile update, gone after
// deactivation, back after reactivation and reassignment, gone after unassignment.
func TestOktaCRUDSuite(t *testing.T) {
	s := startStack(t)
	scimBase := s.base + "/scim/v2"
	const oktaToken = "00e2e-oktasim-api-token"
	sim, err := oktasim.New(oktasim.Config{SCIMBaseURL: scimBase, SCIMToken: s.token, APIToken: oktaToken})
	if err != nil {
		t.Fatal(err)
	}
	okta := httptest.NewServer(sim) // 127.0.0.1
	t.Cleanup(okta.Close)
	t.Cleanup(func() {
		if t.Failed() {
			for _, x := range sim.Exchanges() {
				t.Logf("oktasim SCIM exchange %s", x)
			}
		}
	})

	suite, err := runscope.Load(filepath.Join(repoRoot(), "test", "conformance", "okta", "Okta-SCIM-20-CRUD-Test.json"))
	if err != nil {
		t.Fatal(err)
	}
	vars := runscope.InitialVars(suite.Name, nil)
	vars["oktaOrgUrl"] = okta.URL
	vars["oktaToken"] = oktaToken
	vars["oktaAppId"] = sim.AppID()
	vars["SCIMUrl"] = scimBase
	vars["SCIMAuth"] = "Bearer " + s.token
	login := vars["okta_user_email"]

	// Each pause follows a management call (or a read after one); the sim has already pushed,
	// so check the worker as of the sim's latest management action instead of sleeping.
	var checked []string
	suite.Pause = func(context.Context, time.Duration) error {
		evs := sim.Events()
		if len(evs) == 0 {
			t.Error("a pause before any management call")
			return nil
		}
		action := evs[len(evs)-1].Action
		checked = append(checked, action)
		switch action {
		case oktasim.ActionAssign:
			s.crudExpectWorker(t, "after "+action, login, crudDisplayName(sim, login))
		case oktasim.ActionUpdateUser:
			s.crudExpectWorker(t, "after "+action, login, vars["okta_user_fullname_update"])
		case oktasim.ActionDeactivate, oktasim.ActionUnassign:
			s.crudExpectNoWorker(t, "after "+action, login)
		default:
			t.Errorf("a pause after %s, which the CRUD suite does not do", action)
		}
		return nil
	}

	results, runErr := suite.Run(t.Context(), &http.Client{Timeout: 30 * time.Second}, vars)
	passed := 0
	for _, r := range results {
		if r.Passed() {
			passed++
		} else {
			t.Errorf("%s", runscope.FormatFailure(suite.Name, r))
		}
	}
	if runErr != nil {
		t.Errorf("%s: replay aborted after %d request steps: %v", suite.Name, len(results), runErr)
	}
	t.Logf("%s: %d steps, %d passed", suite.Name, len(results), passed)
	if len(results) != 13 {
		t.Errorf("%d request steps ran, want 13", len(results))
	}

	// The last step (the SCIM user is inactive after unassignment) has no pause after it.
	s.crudExpectNoWorker(t, "at the end", login)
	if want := []string{
		oktasim.ActionAssign, oktasim.ActionUpdateUser, oktasim.ActionDeactivate,
		oktasim.ActionAssign, oktasim.ActionAssign, oktasim.ActionUnassign,
	}; !slices.Equal(checked, want) {
		t.Errorf("worker checks ran after %q, want %q", checked, want)
	}

	// flexbridge answered every push as Okta expects, and Okta's traffic was what it sends.
	for _, x := range sim.Failures() {
		t.Errorf("push failed: %s", x)
	}
	var traffic []string
	for _, x := range sim.Exchanges() {
		traffic = append(traffic, fmt.Sprintf("%s %s %d", x.Action, x.Method, x.Status))
	}
	if want := []string{
		"app.assign GET 200", "app.assign POST 201",
		"user.update PUT 200",
		"user.deactivate PATCH 200",
		"app.assign GET 200", "app.assign PATCH 200", "app.assign PUT 200",
		"app.unassign PATCH 200",
	}; !slices.Equal(traffic, want) {
		t.Errorf("SCIM traffic\n got  %q\n want %q", traffic, want)
	}
}

// crudDisplayName is the displayName the sim pushes for the user: what full_name must be.
func crudDisplayName(sim *oktasim.Sim, login string) string {
	u, ok := sim.User(login)
	if !ok {
		return ""
	}
	a, ok := sim.Assignment(u.ID)
	if !ok {
		return ""
	}
	if d, _ := a.Profile["displayName"].(string); d != "" {
		return d
	}
	given, _ := a.Profile["givenName"].(string)
	family, _ := a.Profile["familyName"].(string)
	return given + " " + family
}

// crudPoll polls cond every 20ms until it holds or timeout passes; it returns the last
// description of the state and whether cond held.
func crudPoll(timeout time.Duration, cond func() (bool, string)) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok || time.Now().After(deadline) {
			return state, ok
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// crudExpectWorker waits for the worker named login with full_name and email as expected.
func (s *stack) crudExpectWorker(t *testing.T, when, login, fullName string) {
	t.Helper()
	begin := time.Now()
	state, ok := crudPoll(20*time.Second, func() (bool, string) {
		w, err := s.worker(login)
		if err != nil || w == nil {
			return false, fmt.Sprintf("no worker (error %v)", err)
		}
		a := attrs(t, w)
		if a["full_name"] != fullName || a["email"] != login || fmt.Sprint(a["roles"]) != "[agent]" {
			return false, "worker attributes " + *w.Attributes
		}
		return true, ""
	})
	if !ok {
		t.Errorf("%s: want worker %q with full_name %q within 20s; last seen: %s", when, login, fullName, state)
		return
	}
	t.Logf("%s: worker %q with full_name %q after %s", when, login, fullName, time.Since(begin).Round(time.Millisecond))
}

// crudExpectNoWorker waits for the worker named login to be gone.
func (s *stack) crudExpectNoWorker(t *testing.T, when, login string) {
	t.Helper()
	begin := time.Now()
	state, ok := crudPoll(20*time.Second, func() (bool, string) {
		w, err := s.worker(login)
		switch {
		case err != nil:
			return false, "error " + err.Error()
		case w != nil:
			return false, "worker " + *w.Sid + " " + *w.Attributes
		}
		return true, ""
	})
	if !ok {
		t.Errorf("%s: want no worker %q within 20s; last seen: %s", when, login, state)
		return
	}
	t.Logf("%s: no worker %q after %s", when, login, time.Since(begin).Round(time.Millisecond))
}
