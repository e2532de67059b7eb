package runscope

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds how much of a response body is read.
const maxBody = 8 << 20

// responseExcerpt bounds Result.Response.
const responseExcerpt = 2048

// Result is the outcome of one request step.
type Result struct {
	// Step is the 1-based position of the step in the suite's steps,
	// counting pause steps, so it matches the order in the export.
	Step   int
	Note   string
	Method string
	// URL is the step's URL with variables substituted (before the query is
	// percent-encoded), or its template if substitution failed.
	URL string
	// Status is the response status code, 0 if no response was received.
	Status int
	// Failures lists every failed assertion (with expected and actual
	// values), failed variable extraction, failed script and transport
	// error. The step passed if it is empty.
	Failures []string
	// Response is the start of the response body, for diagnostics.
	Response string
}

// Passed reports whether the step had no failures.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// Run executes every non-skipped step in order and returns one Result per
// request step. vars holds the initial variables (see [InitialVars]) and the
// caller's settings such as SCIMBaseURL and auth; it is not modified.
// Variables extracted from responses are visible to later steps.
//
// A step that fails does not stop the run. A step whose URL, headers or body
// refer to an undefined variable is not sent and fails. Run returns an error,
// with the results so far, if the suite contains anything this package does
// not implement (before any request is made) or if ctx is done. A nil client
// means http.DefaultClient.
func (s *Suite) Run(ctx context.Context, client *http.Client, vars map[string]string) ([]Result, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	env := maps.Clone(vars)
	if env == nil {
		env = map[string]string{}
	}
	pause := s.Pause
	if pause == nil {
		pause = sleep
	}
	var results []Result
	for i, st := range s.Steps {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		if st.Skipped {
			continue
		}
		switch st.Type {
		case StepPause:
			if err := pause(ctx, st.Duration); err != nil {
				return results, fmt.Errorf("step %d (pause %s): %w", i+1, st.Duration, err)
			}
		case StepRequest:
			results = append(results, runRequest(ctx, client, i+1, st, env))
		}
	}
	return results, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// response is what assertions, variables and scripts see.
type response struct {
	status  int
	elapsed time.Duration
	body    []byte

	parsed  bool
	doc     any
	jsonErr error
}

func (r *response) json() (any, error) {
	if !r.parsed {
		r.parsed = true
		r.doc, r.jsonErr = decodeJSON(r.body)
	}
	return r.doc, r.jsonErr
}

// jsonValue returns the value at property in the JSON body.
func (r *response) jsonValue(property string) (any, error) {
	path, err := parsePath(property)
	if err != nil {
		return nil, err
	}
	doc, err := r.json()
	if err != nil {
		return nil, fmt.Errorf("response body is not JSON: %v", err)
	}
	return lookup(doc, path)
}

func runRequest(ctx context.Context, client *http.Client, n int, st Step, env map[string]string) Result {
	res := Result{Step: n, Note: st.Note, Method: st.Method, URL: st.URL}
	var undefined []string
	expandOr := func(tmpl string) string {
		out, missing, err := expand(tmpl, env)
		if err != nil { // validated earlier; kept for safety
			undefined = append(undefined, err.Error())
			return tmpl
		}
		undefined = append(undefined, missing...)
		return out
	}
	rawURL := expandOr(st.URL)
	header := make(http.Header)
	for k, vs := range st.Headers {
		for _, v := range vs {
			header.Add(k, expandOr(v))
		}
	}
	body := expandOr(st.Body)
	if len(undefined) > 0 {
		res.Failures = append(res.Failures, fmt.Sprintf("request not sent: undefined variable(s) %s", formatNames(undefined)))
		return res
	}
	res.URL = rawURL

	u, err := requestURL(rawURL)
	if err != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("request not sent: bad URL %q: %v", rawURL, err))
		return res
	}
	var bodyReader io.Reader
	if body != "" {
		bodyReader = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, st.Method, u.String(), bodyReader)
	if err != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("request not sent: %v", err))
		return res
	}
	req.Header = header

	start := time.Now()
	httpResp, err := client.Do(req)
	if err != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("request failed: %v", err))
		return res
	}
	data, err := io.ReadAll(io.LimitReader(httpResp.Body, maxBody+1))
	httpResp.Body.Close()
	elapsed := time.Since(start)
	res.Status = httpResp.StatusCode
	res.Response = excerpt(data)
	if err != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("reading response body: %v", err))
		return res
	}
	if len(data) > maxBody {
		res.Failures = append(res.Failures, fmt.Sprintf("response body larger than %d bytes", maxBody))
		return res
	}
	resp := &response{status: httpResp.StatusCode, elapsed: elapsed, body: data}

	for _, v := range st.Variables {
		val, err := resp.jsonValue(v.Property)
		if err != nil {
			delete(env, v.Name)
			res.Failures = append(res.Failures, fmt.Sprintf("variable %s (response_json %s): %v", v.Name, v.Property, err))
			continue
		}
		env[v.Name] = stringOf(val)
	}
	for i, a := range st.Assertions {
		if msg := evaluate(a, resp, env); msg != "" {
			res.Failures = append(res.Failures, fmt.Sprintf("assertion %d: %s", i+1, msg))
		}
	}
	for i, sc := range st.Scripts {
		if strings.TrimSpace(sc) == "" {
			continue
		}
		f, ok := lookupScript(sc)
		if !ok { // validated earlier; kept for safety
			res.Failures = append(res.Failures, fmt.Sprintf("script %d: unsupported script", i+1))
			continue
		}
		res.Failures = append(res.Failures, f(resp)...)
	}
	return res
}

// evaluate checks one assertion and returns "" if it holds, otherwise a
// message with the expected and actual values.
func evaluate(a Assertion, resp *response, env map[string]string) string {
	what := a.Source
	if a.Source == SourceJSON {
		what += " " + a.Property
	}
	what += " " + a.Comparison
	expected := ""
	if a.HasValue {
		out, missing, err := expand(a.Value, env)
		if err != nil {
			return fmt.Sprintf("%s: %v", what, err)
		}
		if len(missing) > 0 {
			return fmt.Sprintf("%s %q: undefined variable(s) %s", what, a.Value, formatNames(missing))
		}
		expected = out
		what += fmt.Sprintf(" %q", expected)
	}
	var actual any
	switch a.Source {
	case SourceStatus:
		actual = json.Number(strconv.Itoa(resp.status))
	case SourceTime:
		actual = json.Number(strconv.FormatInt(resp.elapsed.Milliseconds(), 10))
	case SourceJSON:
		v, err := resp.jsonValue(a.Property)
		if err != nil {
			return fmt.Sprintf("%s: failed, %v", what, err)
		}
		actual = v
	default:
		return fmt.Sprintf("%s: unsupported source", what)
	}
	if _, ok := needsValue[a.Comparison]; !ok {
		return fmt.Sprintf("%s: unsupported comparison", what)
	}
	why := compare(a.Comparison, actual, expected)
	if why == "" {
		return ""
	}
	return fmt.Sprintf("%s: failed, actual %s (%s)", what, display(actual), why)
}

func formatNames(names []string) string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, "{{"+n+"}}")
		}
	}
	return strings.Join(out, ", ")
}

func excerpt(b []byte) string {
	if len(b) <= responseExcerpt {
		return string(b)
	}
	return string(b[:responseExcerpt]) + "…"
}
