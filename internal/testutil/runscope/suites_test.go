package runscope

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	specPath = "../../../test/conformance/okta/Okta-SCIM-20-SPEC-Test.json"
	crudPath = "../../../test/conformance/okta/Okta-SCIM-20-CRUD-Test.json"
)

// replay loads the suite at path and runs it against f with seeded initial
// variables, recording pauses instead of sleeping.
func replay(t *testing.T, path string, f *fakeServer) ([]Result, []time.Duration) {
	t.Helper()
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var pauses []time.Duration
	s.Pause = func(_ context.Context, d time.Duration) error {
		pauses = append(pauses, d)
		return nil
	}
	vars := InitialVars(s.Name, rand.New(rand.NewPCG(1, 2)))
	if s.Name == SpecSuiteName {
		maps.Copy(vars, f.specVars())
	} else {
		maps.Copy(vars, f.crudVars())
	}
	results, err := s.Run(t.Context(), f.srv.Client(), vars)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return results, pauses
}

func failing(results []Result) map[int][]string {
	out := map[int][]string{}
	for _, r := range results {
		if !r.Passed() {
			out[r.Step] = r.Failures
		}
	}
	return out
}

func stepNumbers(results []Result) []int {
	var out []int
	for _, r := range results {
		out = append(out, r.Step)
	}
	return out
}

func seconds(ss ...int) []time.Duration {
	var out []time.Duration
	for _, s := range ss {
		out = append(out, time.Duration(s)*time.Second)
	}
	return out
}

func TestSpecSuitePassesAgainstFake(t *testing.T) {
	f := newFakeServer(t, mutation{})
	results, pauses := replay(t, specPath, f)
	for _, r := range results {
		if !r.Passed() {
			t.Error(FormatFailure(SpecSuiteName, r))
		}
	}
	if got, want := stepNumbers(results), []int{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}; !slices.Equal(got, want) {
		t.Errorf("request steps = %v, want %v", got, want)
	}
	if want := seconds(5, 5, 5, 5, 5, 5, 10, 5, 5, 5, 5); !slices.Equal(pauses, want) {
		t.Errorf("pauses = %v, want %v", pauses, want)
	}
	// Step 3 uses the id extracted by step 1; step 13 the id created by 11.
	if !strings.HasSuffix(results[1].URL, "/scim/v2/Users/"+seededUserID) {
		t.Errorf("step 3 URL = %q, want the seeded user's id from step 1", results[1].URL)
	}
	if !strings.HasSuffix(results[6].URL, "/scim/v2/Users/scim-0001") {
		t.Errorf("step 13 URL = %q, want the id created by step 11", results[6].URL)
	}
	// Queries are sent encoded and decoded back intact by the server.
	wantURL := f.srv.URL + `/scim/v2/Users?filter=userName eq "abcdefgh@atko.com"`
	if results[2].URL != wantURL || results[2].Status != http.StatusOK {
		t.Errorf("step 5 = %s -> %d, want %s -> 200", results[2].URL, results[2].Status, wantURL)
	}
	for pattern, want := range map[string]int{
		"GET /Users": 5, "GET /Users/{id}": 4, "POST /Users": 2, "GET /Groups": 1,
	} {
		if got := f.hitCount(pattern); got != want {
			t.Errorf("%s requests = %d, want %d", pattern, got, want)
		}
	}
}

func TestCRUDSuitePassesAgainstFake(t *testing.T) {
	f := newFakeServer(t, mutation{})
	results, pauses := replay(t, crudPath, f)
	for _, r := range results {
		if !r.Passed() {
			t.Error(FormatFailure(CRUDSuiteName, r))
		}
	}
	if got, want := stepNumbers(results), []int{1, 2, 3, 5, 6, 8, 9, 11, 12, 13, 15, 17, 19}; !slices.Equal(got, want) {
		t.Errorf("request steps = %v, want %v", got, want)
	}
	if want := seconds(20, 20, 20, 20, 40, 40); !slices.Equal(pauses, want) {
		t.Errorf("pauses = %v, want %v", pauses, want)
	}
	if got := f.hitCount("DELETE /apps/{app}/users/{uid}"); got != 1 {
		t.Errorf("unassign requests = %d, want 1", got)
	}
}

// TestMutatedFakesFailSpecificSteps proves that assertions, variables and
// scripts are evaluated: each way of breaking the fake must fail exactly the
// steps that check that behaviour, with the expected and actual values.
func TestMutatedFakesFailSpecificSteps(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		mut   mutation
		fails map[int][]string // step -> substrings of its failures
	}{
		{"unknown user answers 200", specPath, mutation{unknownUserOK: true}, map[int][]string{
			7:  {`assertion 1: response_status equal_number "404": failed, actual 200 (numbers differ)`},
			23: {`assertion 1: response_status equal_number "404": failed, actual 200`},
		}},
		{"Resources null", specPath, mutation{nullResources: true}, map[int][]string{
			1: {
				`assertion 2: response_json Resources not_empty: failed, actual null (null is empty)`,
				`assertion 7: response_json Resources[0].id not_empty: failed, Resources[0]: not found (Resources is null, not an array)`,
				`variable ISVUserid (response_json Resources[0].id): Resources[0]: not found`,
			},
			3: {`request not sent: undefined variable(s) {{ISVUserid}}`},
		}},
		{"totalResults missing", specPath, mutation{omitTotalResults: true}, map[int][]string{
			1: {`response_json totalResults is_a_number: failed, totalResults: not found`},
			5: {`response_json totalResults equal "0": failed, totalResults: not found`},
			9: {`response_json totalResults equal_number "0": failed, totalResults: not found`},
		}},
		{"filter ignored", specPath, mutation{ignoreFilter: true}, map[int][]string{
			5: {`response_json totalResults equal "0": failed, actual 1 (not equal)`},
			9: {`response_json totalResults equal_number "0": failed, actual 1 (numbers differ)`},
		}},
		{"duplicate userName accepted", specPath, mutation{duplicateCreated: true}, map[int][]string{
			15: {`response_status equal_number "409": failed, actual 201`},
		}},
		{"userName not stored as sent", specPath, mutation{userNameMangled: true}, map[int][]string{
			11: {`assertion 7: response_json userName equal "Runscope`},
			13: {`assertion 2: response_json userName equal "Runscope`},
			15: {`response_status equal_number "409": failed, actual 201`},
		}},
		{"401 without a SCIM error body", specPath, mutation{plainUnauthorized: true}, map[int][]string{
			21: {
				`assertion 2: response_json detail not_empty: failed, response body is not JSON`,
				`assertion 3: response_json status equal "401": failed, response body is not JSON`,
				`assertion 4: response_json schemas has_value "urn:ietf:params:scim:api:messages:2.0:Error": failed`,
			},
		}},
		{"slow Groups endpoint", specPath, mutation{groupsDelay: 700 * time.Millisecond}, map[int][]string{
			19: {`assertion 2: response_time is_less_than "600": failed, actual `},
		}},
		{"Groups body not JSON", specPath, mutation{groupsNotJSON: true}, map[int][]string{
			19: {`script: JSON.parse(response.body) throws`},
		}},
		{"profile update not pushed", crudPath, mutation{dropProfilePush: true}, map[int][]string{
			8: {`response_json name.givenName equal "Runscope`, `update": failed, actual "Runscope`},
		}},
		{"deactivation not pushed", crudPath, mutation{dropDeactivate: true}, map[int][]string{
			11: {`assertion 2: response_json active equal "false": failed, actual true (not equal)`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeServer(t, tt.mut)
			results, _ := replay(t, tt.path, f)
			got := failing(results)
			if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.fails))) {
				for _, r := range results {
					if !r.Passed() {
						t.Log(FormatFailure("", r))
					}
				}
				t.Fatalf("failing steps = %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.fails)))
			}
			for step, wants := range tt.fails {
				joined := strings.Join(got[step], "\n")
				for _, w := range wants {
					if !strings.Contains(joined, w) {
						t.Errorf("step %d failures:\n%s\nwant one containing %q", step, joined, w)
					}
				}
			}
		})
	}
}

func TestRunWithoutEnvironmentSendsNothing(t *testing.T) {
	f := newFakeServer(t, mutation{})
	s, err := Load(specPath)
	if err != nil {
		t.Fatal(err)
	}
	s.Pause = func(context.Context, time.Duration) error { return nil }
	results, err := s.Run(t.Context(), f.srv.Client(), InitialVars(s.Name, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 12 {
		t.Fatalf("got %d results, want 12", len(results))
	}
	for _, r := range results {
		if r.Status != 0 || len(r.Failures) != 1 || !strings.Contains(r.Failures[0], "request not sent: undefined variable(s) {{SCIMBaseURL}}") {
			t.Errorf("step %d: status %d, failures %q", r.Step, r.Status, r.Failures)
		}
	}
	if n := f.hitCount("GET /Users"); n != 0 {
		t.Errorf("server got %d requests", n)
	}
}

func TestRunDoesNotModifyCallerVars(t *testing.T) {
	f := newFakeServer(t, mutation{})
	s, err := Load(specPath)
	if err != nil {
		t.Fatal(err)
	}
	s.Pause = func(context.Context, time.Duration) error { return nil }
	vars := InitialVars(s.Name, nil)
	maps.Copy(vars, f.specVars())
	before := maps.Clone(vars)
	if _, err := s.Run(t.Context(), f.srv.Client(), vars); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(vars, before) {
		t.Errorf("Run modified vars: %v", vars)
	}
}

// TestRunRejectsUnsupported checks that a hand-built suite using anything
// not implemented fails the replay before any request is made.
func TestRunRejectsUnsupported(t *testing.T) {
	f := newFakeServer(t, mutation{})
	base := func() Step {
		return Step{Type: StepRequest, Method: "GET", URL: "{{SCIMBaseURL}}/Users",
			Headers:    map[string][]string{"Authorization": {"{{auth}}"}},
			Assertions: []Assertion{{Source: SourceStatus, Comparison: CompareEqualNumber, Value: "200", HasValue: true}}}
	}
	tests := []struct {
		name string
		edit func(*Step)
		want string
	}{
		{"comparison empty", func(s *Step) { s.Assertions[0].Comparison = "empty" }, `unsupported comparison "empty"`},
		{"comparison does_not_contain", func(s *Step) {
			s.Assertions = append(s.Assertions, Assertion{Source: SourceJSON, Property: "schemas", Comparison: "does_not_contain", Value: "x", HasValue: true})
		}, `assertion 2: unsupported comparison "does_not_contain"`},
		{"source response_headers", func(s *Step) {
			s.Assertions[0] = Assertion{Source: "response_headers", Property: "Content-Type", Comparison: CompareContains, Value: "json", HasValue: true}
		}, `unsupported source "response_headers"`},
		{"step type", func(s *Step) { s.Type = "condition" }, `unsupported step_type "condition"`},
		{"script", func(s *Step) { s.Scripts = []string{`assert.equal(1, 2);`} }, "unsupported script"},
		{"before script", func(s *Step) { s.BeforeScripts = []string{`variables.set("x", 1);`} }, "pre-request scripts are not supported"},
		{"template function", func(s *Step) { s.URL = "{{SCIMBaseURL}}/Users?x={{random_string(4)}}" }, "unsupported template expression"},
		{"variable source", func(s *Step) { s.Variables = []Variable{{Name: "x", Source: "response_text", Property: "a"}} }, `unsupported source "response_text"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := base()
			tt.edit(&bad)
			// The bad step is skipped and last: it must still be refused.
			ok := base()
			bad.Skipped = true
			s := &Suite{Name: "hand-built", Steps: []Step{ok, bad}}
			results, err := s.Run(t.Context(), f.srv.Client(), f.specVars())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run error = %v, want one containing %q", err, tt.want)
			}
			if len(results) != 0 || f.hitCount("GET /Users") != 0 {
				t.Errorf("Run made requests before refusing the suite")
			}
		})
	}
}

func TestRunStopsWhenContextDone(t *testing.T) {
	f := newFakeServer(t, mutation{})
	s, err := Load(specPath)
	if err != nil {
		t.Fatal(err)
	}
	// Real pauses (Pause nil): the first one must end early with ctx.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	vars := InitialVars(s.Name, nil)
	maps.Copy(vars, f.specVars())
	start := time.Now()
	results, err := s.Run(ctx, f.srv.Client(), vars)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("Run took %s; the pause did not honour ctx", time.Since(start))
	}
	if len(results) != 1 || !results[0].Passed() {
		t.Errorf("results = %+v, want step 1 only, passed", results)
	}
}

// recorder is a reporter that records instead of failing.
type recorder struct {
	ctx          context.Context
	errs, logs   []string
	fatal        string
	helperCalled bool
}

func (r *recorder) Helper()                      { r.helperCalled = true }
func (r *recorder) Context() context.Context     { return r.ctx }
func (r *recorder) Errorf(f string, args ...any) { r.errs = append(r.errs, fmt.Sprintf(f, args...)) }
func (r *recorder) Logf(f string, args ...any)   { r.logs = append(r.logs, fmt.Sprintf(f, args...)) }
func (r *recorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }

func TestRunTReportsFailingSteps(t *testing.T) {
	f := newFakeServer(t, mutation{unknownUserOK: true})
	rec := &recorder{ctx: t.Context()}
	runT(rec, specPath, f.specVars())
	if rec.fatal != "" {
		t.Fatal(rec.fatal)
	}
	if len(rec.errs) != 2 {
		t.Fatalf("Errorf calls = %d, want 2 (steps 7 and 23):\n%s", len(rec.errs), strings.Join(rec.errs, "\n"))
	}
	wantFirst := []string{
		`Okta SCIM 2.0 SPEC Test step 7 "Required Test: Test invalid User by ID": GET ` + f.srv.URL + `/scim/v2/Users/010101001010101011001010101011 -> 200`,
		"\n\tassertion 1: response_status equal_number \"404\": failed, actual 200 (numbers differ)",
		"\n\tresponse body: {",
	}
	for _, w := range wantFirst {
		if !strings.Contains(rec.errs[0], w) {
			t.Errorf("error:\n%s\nwant it to contain %q", rec.errs[0], w)
		}
	}
	if !strings.Contains(rec.errs[1], `step 23 "Required Test: Check status 404"`) {
		t.Errorf("second error = %q", rec.errs[1])
	}
	if len(rec.logs) != 1 || !strings.Contains(rec.logs[0], "Okta SCIM 2.0 SPEC Test: 12 steps, 10 passed (11 pauses totalling 1m0s not slept)") {
		t.Errorf("logs = %q", rec.logs)
	}
}

func TestRunTMissingFile(t *testing.T) {
	rec := &recorder{ctx: t.Context()}
	runT(rec, "testdata/no-such-suite.json", nil)
	if !strings.Contains(rec.fatal, "no-such-suite.json") {
		t.Errorf("fatal = %q", rec.fatal)
	}
}

func TestRunTAgainstFake(t *testing.T) {
	f := newFakeServer(t, mutation{})
	RunT(t, specPath, f.specVars())
	RunT(t, crudPath, f.crudVars())
}
