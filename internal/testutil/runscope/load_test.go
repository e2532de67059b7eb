package runscope

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestLoadOktaSuites(t *testing.T) {
	spec, err := Load(specPath)
	if err != nil {
		t.Fatal(err)
	}
	crud, err := Load(crudPath)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name != SpecSuiteName || crud.Name != CRUDSuiteName {
		t.Errorf("names = %q, %q", spec.Name, crud.Name)
	}
	count := func(s *Suite, typ string) int {
		n := 0
		for _, st := range s.Steps {
			if st.Type == typ {
				n++
			}
		}
		return n
	}
	if len(spec.Steps) != 23 || count(spec, StepRequest) != 12 || count(spec, StepPause) != 11 {
		t.Errorf("SPEC: %d steps, %d requests", len(spec.Steps), count(spec, StepRequest))
	}
	if len(crud.Steps) != 19 || count(crud, StepRequest) != 13 || count(crud, StepPause) != 6 {
		t.Errorf("CRUD: %d steps, %d requests", len(crud.Steps), count(crud, StepRequest))
	}

	// Format variants in the CRUD export: single-string header values,
	// numeric assertion values and a blank variable row.
	st := crud.Steps[0]
	if got := st.Headers["Authorization"]; !slices.Equal(got, []string{"SSWS {{oktaToken}}"}) {
		t.Errorf("CRUD step 1 Authorization = %q", got)
	}
	if a := st.Assertions[0]; a.Value != "200" || !a.HasValue || a.Comparison != CompareEqualNumber {
		t.Errorf("CRUD step 1 assertion = %+v", a)
	}
	if v := crud.Steps[14].Variables; len(v) != 0 {
		t.Errorf("CRUD step 15 variables = %+v, want the blank row dropped", v)
	}
	if d := crud.Steps[15].Duration; d != 40*time.Second {
		t.Errorf("CRUD step 16 pause = %s", d)
	}

	// SPEC step 19's script is recognised; step 11's is blank.
	if _, ok := lookupScript(spec.Steps[18].Scripts[0]); !ok {
		t.Error("Groups script not recognised")
	}
	if spec.Steps[10].Scripts[0] != "" {
		t.Errorf("step 11 script = %q", spec.Steps[10].Scripts[0])
	}
}

// TestOktaSuitesUseOnlyKnownVariables checks that every {{variable}} the
// suites use comes from the initial script, from a previous step's variable,
// or from the documented environment settings.
func TestOktaSuitesUseOnlyKnownVariables(t *testing.T) {
	env := map[string][]string{
		specPath: {"SCIMBaseURL", "auth"},
		crudPath: {"SCIMUrl", "SCIMAuth", "oktaOrgUrl", "oktaAppId", "oktaToken"},
	}
	for path, settings := range env {
		s, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		known := InitialVars(s.Name, nil)
		for _, k := range settings {
			known[k] = "x"
		}
		for i, st := range s.Steps {
			var templates []string
			templates = append(templates, st.URL, st.Body)
			for _, vs := range st.Headers {
				templates = append(templates, vs...)
			}
			for _, a := range st.Assertions {
				templates = append(templates, a.Value)
			}
			for _, tmpl := range templates {
				if _, missing, err := expand(tmpl, known); err != nil || len(missing) > 0 {
					t.Errorf("%s step %d: %q uses %v (err %v)", s.Name, i+1, tmpl, missing, err)
				}
			}
			for _, v := range st.Variables {
				known[v.Name] = "x"
			}
		}
	}
}

// TestInitialVarsMatchScripts checks that InitialVars sets exactly the
// variables that the JavaScript initial scripts set.
func TestInitialVarsMatchScripts(t *testing.T) {
	setRE := regexp.MustCompile(`variables\.set\("([^"]+)"`)
	for suite, file := range map[string]string{
		SpecSuiteName: "../../../test/conformance/okta/Initial_Script_Spec.txt",
		CRUDSuiteName: "../../../test/conformance/okta/Initial_Script_CRUD.txt",
	} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, m := range setRE.FindAllStringSubmatch(string(src), -1) {
			want = append(want, m[1])
		}
		sort.Strings(want)
		var got []string
		for k := range InitialVars(suite, nil) {
			got = append(got, k)
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: InitialVars sets %v, script sets %v", suite, got, want)
		}
	}
}

// TestParseRejectsUnsupported edits the SPEC export in one place at a time;
// each edit must make loading fail with a message naming the problem.
func TestParseRejectsUnsupported(t *testing.T) {
	orig, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	type obj = map[string]any
	step := func(doc obj, n int) obj { return doc["steps"].([]any)[n-1].(obj) }
	assertion := func(doc obj, n, i int) obj { return step(doc, n)["assertions"].([]any)[i-1].(obj) }
	tests := []struct {
		name string
		edit func(doc obj)
		want string
	}{
		{"comparison empty", func(d obj) { assertion(d, 1, 2)["comparison"] = "empty" },
			`step 1 (GET {{SCIMBaseURL}}/Users?count=1&startIndex=1 "Required Test: Test Users endpoint"): assertion 2: unsupported comparison "empty"`},
		{"comparison does_not_contain", func(d obj) { assertion(d, 11, 6)["comparison"] = "does_not_contain" },
			`assertion 6: unsupported comparison "does_not_contain"`},
		{"unknown comparison", func(d obj) { assertion(d, 1, 1)["comparison"] = "equal_numbr" }, `unsupported comparison "equal_numbr"`},
		{"source response_headers", func(d obj) { assertion(d, 1, 3)["source"] = "response_headers" }, `unsupported source "response_headers"`},
		{"source response_size", func(d obj) { assertion(d, 1, 1)["source"] = "response_size" }, `unsupported source "response_size"`},
		{"value missing", func(d obj) { assertion(d, 3, 8)["value"] = nil }, "comparison equal needs a value"},
		{"boolean value", func(d obj) { assertion(d, 11, 2)["value"] = true }, "must be a string, a number or null"},
		{"property quoted", func(d obj) { assertion(d, 1, 7)["property"] = `Resources[0]["id"]` }, `unsupported index ["id"]`},
		{"property on status", func(d obj) { assertion(d, 1, 1)["property"] = "x" }, "takes no property"},
		{"step type", func(d obj) { step(d, 2)["step_type"] = "subtest" }, `step 2: unsupported step_type "subtest"`},
		{"unknown request field", func(d obj) { step(d, 1)["follow_redirects"] = false }, `unknown field "follow_redirects"`},
		{"unknown pause field", func(d obj) { step(d, 2)["note"] = "x" }, `unknown field "note"`},
		{"unknown top-level field", func(d obj) { d["environments"] = []any{} }, `unknown field "environments"`},
		{"version", func(d obj) { d["version"] = "2.0" }, `unsupported export version "2.0"`},
		{"auth", func(d obj) { step(d, 1)["auth"] = obj{"auth_type": "basic"} }, "request auth is not supported"},
		{"form", func(d obj) { step(d, 11)["form"] = obj{"a": []any{"b"}} }, "form bodies are not supported"},
		{"multipart", func(d obj) { step(d, 11)["multipart_form"] = []any{obj{"a": "b"}} }, "multipart_form bodies are not supported"},
		{"binary body", func(d obj) { step(d, 11)["binary_body"] = "AAAA" }, "binary_body is not supported"},
		{"script changed", func(d obj) { s := step(d, 19); s["scripts"] = []any{s["scripts"].([]any)[0].(string) + " "} },
			"script 1: unsupported script"},
		{"new script", func(d obj) { step(d, 11)["scripts"] = []any{`assert.equal(1, 1);`} }, "script 1: unsupported script"},
		{"before script", func(d obj) { step(d, 1)["before_scripts"] = []any{`log("x");`} }, "pre-request scripts are not supported"},
		{"template built-in function", func(d obj) { step(d, 11)["body"] = `{"userName":"{{random_string(8)}}"}` },
			"body: unsupported template expression {{random_string(8)}}"},
		{"template spaces", func(d obj) { step(d, 1)["url"] = "{{ SCIMBaseURL }}/Users" }, "url: unsupported template expression"},
		{"template unclosed", func(d obj) { assertion(d, 3, 8)["value"] = "{{ISVUserid" }, "value: unclosed {{"},
		{"header template", func(d obj) { step(d, 1)["headers"].(obj)["Authorization"] = []any{"{{auth()}}"} }, "header Authorization: unsupported template"},
		{"header value type", func(d obj) { step(d, 1)["headers"].(obj)["Accept"] = 3 }, "header value must be a string or a list of strings"},
		{"variable source", func(d obj) { step(d, 1)["variables"].([]any)[0].(obj)["source"] = "response_header" },
			`variable 1 (ISVUserid): unsupported source "response_header"`},
		{"variable without name", func(d obj) { step(d, 1)["variables"].([]any)[0].(obj)["name"] = nil }, "has no name"},
		{"variable path", func(d obj) { step(d, 1)["variables"].([]any)[0].(obj)["property"] = "Resources..id" }, "bad member name"},
		{"method", func(d obj) { step(d, 1)["method"] = "FETCH" }, `unsupported method "FETCH"`},
		{"pause duration", func(d obj) { step(d, 2)["duration"] = "five" }, "pause"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc obj
			if err := json.Unmarshal(orig, &doc); err != nil {
				t.Fatal(err)
			}
			tt.edit(doc)
			data, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	// The unedited round trip still parses, so the edits above are what fail.
	var doc obj
	if err := json.Unmarshal(orig, &doc); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(doc)
	if _, err := Parse(data); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}
