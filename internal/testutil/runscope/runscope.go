// Package runscope is a small interpreter for Runscope (BlazeMeter API
// Monitoring) "radar" test exports, written to replay Okta's published SCIM
// 2.0 test suites (test/conformance/okta) against a running SCIM server from
// Go tests.
//
// It implements exactly the subset of the export format those suites use and
// rejects everything else when the suite is loaded (and again before it is
// run), so that an unknown construct can never pass silently:
//
//   - step types "request" and "pause" (duration in seconds);
//   - request fields method, url, headers (a list of values or a single
//     string), body, note, skipped; auth, form and multipart_form must be
//     empty and binary_body null;
//   - templates {{name}} in url, header values, body and assertion values,
//     where name is a plain identifier looked up in the run's variables (no
//     Runscope built-ins or template functions: none is used by the suites);
//   - assertion sources response_status, response_json and response_time
//     (milliseconds);
//   - comparisons equal, equal_number, not_empty, has_value, is_a_number,
//     contains and is_less_than (see [Assertion] for their exact meaning);
//   - variables extracted from response_json;
//   - JSON property paths in JavaScript dot/index notation: name, a.b, a[0].b;
//   - post-response scripts that are blank or that are byte-for-byte one of
//     the scripts in the Okta suites, each re-implemented in Go (see
//     scripts.go); before_scripts must be blank.
//
// The initial scripts that accompany the Okta suites (Initial_Script_*.txt)
// are JavaScript; [InitialVars] produces the same variables in Go.
package runscope

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"time"
)

// Step types.
const (
	StepRequest = "request"
	StepPause   = "pause"
)

// Assertion sources.
const (
	SourceStatus = "response_status"
	SourceJSON   = "response_json"
	SourceTime   = "response_time"
)

// Comparisons.
const (
	CompareEqual       = "equal"
	CompareEqualNumber = "equal_number"
	CompareNotEmpty    = "not_empty"
	CompareHasValue    = "has_value"
	CompareIsANumber   = "is_a_number"
	CompareContains    = "contains"
	CompareIsLessThan  = "is_less_than"
)

// needsValue reports, for every supported comparison, whether it compares
// against a target value.
var needsValue = map[string]bool{
	CompareEqual:       true,
	CompareEqualNumber: true,
	CompareNotEmpty:    false,
	CompareHasValue:    true,
	CompareIsANumber:   false,
	CompareContains:    true,
	CompareIsLessThan:  true,
}

// Suite is a loaded Runscope test.
type Suite struct {
	Name        string
	Description string
	Steps       []Step

	// Pause is called for every non-skipped pause step. When nil, Run sleeps
	// for the step's duration (returning early with the context's error if
	// ctx is done). The Okta suites pause 5 to 40 seconds between requests
	// to give Okta's asynchronous provisioning time to reach the SCIM server.
	Pause func(ctx context.Context, d time.Duration) error
}

// Step is one step of a suite: an HTTP request (Type StepRequest) or a pause
// (Type StepPause, which only uses Skipped and Duration).
type Step struct {
	Type    string
	Skipped bool
	Note    string

	Method     string
	URL        string              // template
	Headers    map[string][]string // values are templates
	Body       string              // template; empty means no body
	Assertions []Assertion
	Variables  []Variable
	// Scripts are post-response JavaScript snippets. Only blank scripts and
	// the scripts known to this package (see scripts.go) are accepted.
	Scripts []string
	// BeforeScripts are pre-request scripts; they must all be blank.
	BeforeScripts []string

	Duration time.Duration
}

// Assertion is one check on a response.
//
// Source selects the actual value: the status code (response_status), the
// response time in milliseconds (response_time) or the value at Property in
// the JSON body (response_json). Values are compared as strings when needed:
// JSON strings as themselves, numbers as written in the response, true/false,
// null, and arrays and objects as compact JSON.
//
//   - equal: the actual value, as a string, equals Value.
//   - equal_number: actual and Value are both numbers (or numeric strings) and
//     numerically equal ("1.0" equals "1").
//   - not_empty: the actual value exists and is not null, "", [] or {}.
//     false and 0 are not empty.
//   - has_value: the actual value is an array with an element, or an object
//     with a member value, equal (as a string) to Value.
//   - is_a_number: the actual value is a number or a numeric string.
//   - contains: the actual value is an array with an element equal (as a
//     string) to Value, or a string, number or boolean whose string form
//     contains Value as a substring.
//   - is_less_than: actual and Value are both numbers (or numeric strings)
//     and actual < Value.
//
// A missing property or a body that is not JSON fails every response_json
// assertion. Any other comparison fails.
type Assertion struct {
	Source     string
	Property   string
	Comparison string
	// Value is the target value (a template). HasValue is false when the
	// export has "value": null, which is only allowed for comparisons that
	// take no target value.
	Value    string
	HasValue bool
}

// Variable extracts a value from a response into the run's variables.
// Only Source response_json is supported; the value is stored as a string
// (see [Assertion] for how non-strings are converted).
type Variable struct {
	Name     string
	Source   string
	Property string
}

// Load reads and validates a Runscope test export.
func Load(path string) (*Suite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates a Runscope test export. Unknown fields, step
// types, sources, comparisons, scripts and template syntax are errors.
func Parse(data []byte) (*Suite, error) {
	var w struct {
		Version     string            `json:"version"`
		ExportedAt  json.Number       `json:"exported_at"`
		Name        string            `json:"name"`
		Description string            `json:"description"`
		TriggerURL  string            `json:"trigger_url"`
		Steps       []json.RawMessage `json:"steps"`
	}
	if err := decodeStrict(data, &w); err != nil {
		return nil, err
	}
	if w.Version != "1.0" {
		return nil, fmt.Errorf("unsupported export version %q (want \"1.0\")", w.Version)
	}
	s := &Suite{Name: w.Name, Description: w.Description}
	for i, raw := range w.Steps {
		st, err := parseStep(raw)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		s.Steps = append(s.Steps, st)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// headerValues accepts both forms found in exports: ["v1", "v2"] and "v".
type headerValues []string

func (h *headerValues) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*h = headerValues{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("header value must be a string or a list of strings, got %s", b)
	}
	*h = many
	return nil
}

type wireAssertion struct {
	Comparison string          `json:"comparison"`
	Source     string          `json:"source"`
	Property   *string         `json:"property"`
	Value      json.RawMessage `json:"value"`
}

type wireVariable struct {
	Name     *string `json:"name"`
	Source   string  `json:"source"`
	Property string  `json:"property"`
}

type wireRequest struct {
	StepType      string                  `json:"step_type"`
	Skipped       bool                    `json:"skipped"`
	Note          string                  `json:"note"`
	Auth          map[string]any          `json:"auth"`
	Form          map[string]any          `json:"form"`
	MultipartForm []any                   `json:"multipart_form"`
	BinaryBody    any                     `json:"binary_body"`
	Headers       map[string]headerValues `json:"headers"`
	Method        string                  `json:"method"`
	URL           string                  `json:"url"`
	Body          string                  `json:"body"`
	Assertions    []wireAssertion         `json:"assertions"`
	Variables     []wireVariable          `json:"variables"`
	Scripts       []string                `json:"scripts"`
	BeforeScripts []string                `json:"before_scripts"`
}

type wirePause struct {
	StepType string      `json:"step_type"`
	Skipped  bool        `json:"skipped"`
	Duration json.Number `json:"duration"`
}

func parseStep(raw json.RawMessage) (Step, error) {
	var head struct {
		StepType string `json:"step_type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return Step{}, err
	}
	switch head.StepType {
	case StepPause:
		var w wirePause
		if err := decodeStrict(raw, &w); err != nil {
			return Step{}, fmt.Errorf("pause: %w", err)
		}
		secs, err := w.Duration.Float64()
		if err != nil || secs < 0 || math.IsInf(secs, 0) {
			return Step{}, fmt.Errorf("pause: bad duration %q", w.Duration)
		}
		return Step{Type: StepPause, Skipped: w.Skipped, Duration: time.Duration(secs * float64(time.Second))}, nil
	case StepRequest:
		return parseRequest(raw)
	default:
		return Step{}, fmt.Errorf("unsupported step_type %q", head.StepType)
	}
}

func parseRequest(raw json.RawMessage) (Step, error) {
	var w wireRequest
	if err := decodeStrict(raw, &w); err != nil {
		return Step{}, fmt.Errorf("request: %w", err)
	}
	switch {
	case len(w.Auth) != 0:
		return Step{}, fmt.Errorf("request auth is not supported (use an Authorization header): %v", w.Auth)
	case len(w.Form) != 0:
		return Step{}, errors.New("request form bodies are not supported")
	case len(w.MultipartForm) != 0:
		return Step{}, errors.New("multipart_form bodies are not supported")
	case w.BinaryBody != nil:
		return Step{}, errors.New("binary_body is not supported")
	}
	st := Step{
		Type:          StepRequest,
		Skipped:       w.Skipped,
		Note:          w.Note,
		Method:        w.Method,
		URL:           w.URL,
		Body:          w.Body,
		Scripts:       w.Scripts,
		BeforeScripts: w.BeforeScripts,
	}
	if len(w.Headers) > 0 {
		st.Headers = make(map[string][]string, len(w.Headers))
		for k, v := range w.Headers {
			st.Headers[k] = []string(v)
		}
	}
	for i, wa := range w.Assertions {
		a := Assertion{Source: wa.Source, Comparison: wa.Comparison}
		if wa.Property != nil {
			a.Property = *wa.Property
		}
		v, has, err := scalarValue(wa.Value)
		if err != nil {
			return Step{}, fmt.Errorf("assertion %d: value: %w", i+1, err)
		}
		a.Value, a.HasValue = v, has
		st.Assertions = append(st.Assertions, a)
	}
	for i, wv := range w.Variables {
		name := ""
		if wv.Name != nil {
			name = *wv.Name
		}
		if name == "" && wv.Property == "" {
			// A blank row left behind by the Runscope editor
			// ("name": null, "property": ""): it extracts nothing.
			continue
		}
		if name == "" {
			return Step{}, fmt.Errorf("variable %d: property %q has no name", i+1, wv.Property)
		}
		st.Variables = append(st.Variables, Variable{Name: name, Source: wv.Source, Property: wv.Property})
	}
	return st, nil
}

// scalarValue converts an assertion's "value": a string, a number (the CRUD
// suite writes 200 rather than "200") or null.
func scalarValue(raw json.RawMessage) (string, bool, error) {
	if len(raw) == 0 {
		return "", false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", false, err
	}
	switch v := v.(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	case json.Number:
		return v.String(), true, nil
	default:
		return "", false, fmt.Errorf("must be a string, a number or null, got %s", raw)
	}
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodHead: true,
	http.MethodOptions: true,
}

// validate checks every step, including skipped ones, so that Run refuses a
// hand-built suite with constructs this package does not implement.
func (s *Suite) validate() error {
	for i, st := range s.Steps {
		if err := st.validate(); err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, st.label(), err)
		}
	}
	return nil
}

func (st Step) label() string {
	if st.Type == StepRequest {
		return fmt.Sprintf("%s %s %q", st.Method, st.URL, st.Note)
	}
	return st.Type
}

func (st Step) validate() error {
	switch st.Type {
	case StepPause:
		if st.Duration < 0 {
			return errors.New("negative pause duration")
		}
		return nil
	case StepRequest:
	default:
		return fmt.Errorf("unsupported step_type %q", st.Type)
	}
	if !knownMethods[st.Method] {
		return fmt.Errorf("unsupported method %q", st.Method)
	}
	if st.URL == "" {
		return errors.New("empty url")
	}
	if err := checkTemplate(st.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	for k, vs := range st.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return fmt.Errorf("bad header name %q", k)
		}
		for _, v := range vs {
			if err := checkTemplate(v); err != nil {
				return fmt.Errorf("header %s: %w", k, err)
			}
		}
	}
	if err := checkTemplate(st.Body); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	for i, a := range st.Assertions {
		if err := a.validate(); err != nil {
			return fmt.Errorf("assertion %d: %w", i+1, err)
		}
	}
	for i, v := range st.Variables {
		if v.Source != SourceJSON {
			return fmt.Errorf("variable %d (%s): unsupported source %q", i+1, v.Name, v.Source)
		}
		if !isIdent(v.Name) {
			return fmt.Errorf("variable %d: name %q is not an identifier", i+1, v.Name)
		}
		if _, err := parsePath(v.Property); err != nil {
			return fmt.Errorf("variable %d (%s): %w", i+1, v.Name, err)
		}
	}
	for i, sc := range st.Scripts {
		if strings.TrimSpace(sc) == "" {
			continue
		}
		if _, ok := lookupScript(sc); !ok {
			return fmt.Errorf("script %d: unsupported script (only the scripts of the Okta suites are implemented): %.80q", i+1, sc)
		}
	}
	for i, sc := range st.BeforeScripts {
		if strings.TrimSpace(sc) != "" {
			return fmt.Errorf("before_script %d: pre-request scripts are not supported: %.80q", i+1, sc)
		}
	}
	return nil
}

func (a Assertion) validate() error {
	want, ok := needsValue[a.Comparison]
	if !ok {
		return fmt.Errorf("unsupported comparison %q", a.Comparison)
	}
	if want && !a.HasValue {
		return fmt.Errorf("comparison %s needs a value", a.Comparison)
	}
	if a.HasValue {
		if err := checkTemplate(a.Value); err != nil {
			return fmt.Errorf("value: %w", err)
		}
	}
	switch a.Source {
	case SourceStatus, SourceTime:
		if a.Property != "" {
			return fmt.Errorf("source %s takes no property (got %q)", a.Source, a.Property)
		}
		switch a.Comparison {
		case CompareEqual, CompareEqualNumber, CompareIsLessThan, CompareIsANumber, CompareNotEmpty:
		default:
			return fmt.Errorf("comparison %s is not supported for source %s", a.Comparison, a.Source)
		}
	case SourceJSON:
		if _, err := parsePath(a.Property); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported source %q", a.Source)
	}
	return nil
}
