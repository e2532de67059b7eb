package runscope

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	v, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const sampleList = `{
  "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
  "totalResults": 2, "itemsPerPage": 1, "startIndex": 1,
  "Resources": [{
    "id": "u1", "userName": "a@b.c", "active": false,
    "name": {"givenName": "Ann", "familyName": ""},
    "emails": [{"value": "a@b.c", "primary": true}, {"value": "x@y.z"}]
  }],
  "status": 404, "ratio": 1.50, "nothing": null, "empty": [], "obj": {}
}`

func TestPropertyPaths(t *testing.T) {
	doc := mustJSON(t, sampleList)
	tests := []struct {
		path, want, err string
	}{
		{"totalResults", "2", ""},
		{"ratio", "1.50", ""},
		{"schemas", `["urn:ietf:params:scim:api:messages:2.0:ListResponse"]`, ""},
		{"Resources[0].id", "u1", ""},
		{"Resources[0].name.givenName", "Ann", ""},
		{"Resources[0].name.familyName", "", ""},
		{"Resources[0].active", "false", ""},
		{"Resources[0].emails[0].value", "a@b.c", ""},
		{"Resources[0].emails[1].value", "x@y.z", ""},
		{"Resources[0].emails[0].primary", "true", ""},
		{"nothing", "null", ""},
		{"Resources[1].id", "", "Resources[1]: not found (array has 1 elements)"},
		{"Resources[0].emails[2].value", "", "Resources[0].emails[2]: not found (array has 2 elements)"},
		{"Resources[0].nickName", "", "Resources[0].nickName: not found"},
		{"detail", "", "detail: not found"},
		{"totalResults.x", "", "totalResults.x: not found (totalResults is a number, not an object)"},
		{"Resources.id", "", "Resources.id: not found (Resources is an array, not an object)"},
		{"schemas[0][0]", "", "schemas[0][0]: not found (schemas[0] is a string, not an array)"},
		{"nothing[0]", "", "nothing[0]: not found (nothing is null, not an array)"},
		{"[0]", "", "[0]: not found (the body is an object, not an array)"},
	}
	for _, tt := range tests {
		path, err := parsePath(tt.path)
		if err != nil {
			t.Errorf("parsePath(%q): %v", tt.path, err)
			continue
		}
		got, err := lookup(doc, path)
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err {
				t.Errorf("lookup(%q) error = %v, want %q", tt.path, err, tt.err)
			}
		case err != nil:
			t.Errorf("lookup(%q): %v", tt.path, err)
		case stringOf(got) != tt.want:
			t.Errorf("lookup(%q) = %q, want %q", tt.path, stringOf(got), tt.want)
		}
	}

	// A body that is an array.
	arr := mustJSON(t, `[{"id": "z"}]`)
	if p, err := parsePath("[0].id"); err != nil {
		t.Error(err)
	} else if v, err := lookup(arr, p); err != nil || v != "z" {
		t.Errorf("[0].id = %v, %v", v, err)
	}

	for _, bad := range []string{"", ".a", "a.", "a..b", "a[", "a[]", "a[-1]", "a[01]", "a[+1]", "a[x]", `a["b"]`, "a]", "a b", "1a", "a.1", "a[0]b", "urn:x:y"} {
		if _, err := parsePath(bad); err == nil {
			t.Errorf("parsePath(%q) succeeded, want an error", bad)
		}
	}
}

func TestComparisons(t *testing.T) {
	doc := mustJSON(t, sampleList)
	get := func(p string) any {
		path, err := parsePath(p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := lookup(doc, path)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	str := func(s string) any { return s }
	num := func(s string) any { return json.Number(s) }
	tests := []struct {
		comparison string
		actual     any
		expected   string
		pass       bool
	}{
		// equal: string comparison after conversion.
		{CompareEqual, get("Resources[0].id"), "u1", true},
		{CompareEqual, get("Resources[0].id"), "U1", false},
		{CompareEqual, get("Resources[0].active"), "false", true},
		{CompareEqual, get("Resources[0].active"), "False", false},
		{CompareEqual, get("totalResults"), "2", true},
		{CompareEqual, get("ratio"), "1.5", false}, // numbers as written
		{CompareEqual, get("status"), "404", true}, // number vs the SCIM string "404"
		{CompareEqual, str("404"), "404", true},
		{CompareEqual, get("nothing"), "", false},
		{CompareEqual, get("Resources[0].name.familyName"), "", true},
		// equal_number: numeric, strings cast.
		{CompareEqualNumber, num("200"), "200", true},
		{CompareEqualNumber, num("201"), "200", false},
		{CompareEqualNumber, get("ratio"), "1.5", true},
		{CompareEqualNumber, str("0"), "0.0", true},
		{CompareEqualNumber, str("zero"), "0", false},
		{CompareEqualNumber, get("nothing"), "0", false},
		{CompareEqualNumber, get("Resources[0].active"), "0", false},
		{CompareEqualNumber, num("1"), "one", false},
		// not_empty.
		{CompareNotEmpty, get("Resources"), "", true},
		{CompareNotEmpty, get("Resources[0].id"), "", true},
		{CompareNotEmpty, get("Resources[0].active"), "", true}, // false is not empty
		{CompareNotEmpty, num("0"), "", true},
		{CompareNotEmpty, get("Resources[0].name.familyName"), "", false},
		{CompareNotEmpty, get("nothing"), "", false},
		{CompareNotEmpty, get("empty"), "", false},
		{CompareNotEmpty, get("obj"), "", false},
		// has_value: arrays and objects.
		{CompareHasValue, get("schemas"), "urn:ietf:params:scim:api:messages:2.0:ListResponse", true},
		{CompareHasValue, get("schemas"), "urn:ietf:params:scim:api:messages:2.0:Error", false},
		{CompareHasValue, get("Resources[0].name"), "Ann", true},
		{CompareHasValue, get("Resources[0].name"), "givenName", false}, // keys are not values
		{CompareHasValue, get("Resources[0].emails[0]"), "true", true},
		{CompareHasValue, str("urn:ietf:params:scim:api:messages:2.0:ListResponse"), "urn:ietf:params:scim:api:messages:2.0:ListResponse", false},
		{CompareHasValue, get("empty"), "", false},
		// is_a_number.
		{CompareIsANumber, get("totalResults"), "", true},
		{CompareIsANumber, get("ratio"), "", true},
		{CompareIsANumber, str("12"), "", true},
		{CompareIsANumber, str(" -1.5e3 "), "", true},
		{CompareIsANumber, str("12abc"), "", false},
		{CompareIsANumber, str("0x10"), "", false},
		{CompareIsANumber, str("NaN"), "", false},
		{CompareIsANumber, str(""), "", false},
		{CompareIsANumber, get("Resources[0].active"), "", false},
		{CompareIsANumber, get("nothing"), "", false},
		{CompareIsANumber, get("schemas"), "", false},
		// contains: array membership, substring for scalars.
		{CompareContains, get("schemas"), "urn:ietf:params:scim:api:messages:2.0:ListResponse", true},
		{CompareContains, get("schemas"), "ListResponse", false},
		{CompareContains, get("Resources[0].userName"), "@b.", true},
		{CompareContains, get("Resources[0].userName"), "@B.", false},
		{CompareContains, get("totalResults"), "2", true},
		{CompareContains, get("Resources[0].name"), "Ann", false},
		{CompareContains, get("nothing"), "null", false},
		// is_less_than.
		{CompareIsLessThan, num("599"), "600", true},
		{CompareIsLessThan, num("600"), "600", false},
		{CompareIsLessThan, str("12.5"), "13", true},
		{CompareIsLessThan, str("fast"), "600", false},
		{CompareIsLessThan, num("1"), "soon", false},
		// Comparisons Runscope has but the suites do not use: never pass.
		{"empty", get("nothing"), "", false},
		{"empty", str(""), "", false},
		{"does_not_contain", get("schemas"), "nope", false},
		{"not_equal", str("a"), "b", false},
		{"is_null", get("nothing"), "", false},
		{"", str(""), "", false},
	}
	for _, tt := range tests {
		why := compare(tt.comparison, tt.actual, tt.expected)
		if (why == "") != tt.pass {
			t.Errorf("compare(%q, %s, %q) = %q, want pass=%v", tt.comparison, display(tt.actual), tt.expected, why, tt.pass)
		}
	}
}

func TestEvaluateMessages(t *testing.T) {
	resp := &response{status: 404, elapsed: 1234 * time.Millisecond, body: []byte(sampleList)}
	env := map[string]string{"id": "u1", "other": "u2"}
	tests := []struct {
		a    Assertion
		want string
	}{
		{Assertion{Source: SourceStatus, Comparison: CompareEqualNumber, Value: "404", HasValue: true}, ""},
		{Assertion{Source: SourceStatus, Comparison: CompareEqualNumber, Value: "200", HasValue: true},
			`response_status equal_number "200": failed, actual 404 (numbers differ)`},
		{Assertion{Source: SourceTime, Comparison: CompareIsLessThan, Value: "600", HasValue: true},
			`response_time is_less_than "600": failed, actual 1234 (not less)`},
		{Assertion{Source: SourceJSON, Property: "Resources[0].id", Comparison: CompareEqual, Value: "{{id}}", HasValue: true}, ""},
		{Assertion{Source: SourceJSON, Property: "Resources[0].id", Comparison: CompareEqual, Value: "{{other}}", HasValue: true},
			`response_json Resources[0].id equal "u2": failed, actual "u1" (not equal)`},
		{Assertion{Source: SourceJSON, Property: "Resources[0].id", Comparison: CompareEqual, Value: "{{unset}}", HasValue: true},
			`response_json Resources[0].id equal "{{unset}}": undefined variable(s) {{unset}}`},
		{Assertion{Source: SourceJSON, Property: "detail", Comparison: CompareNotEmpty},
			`response_json detail not_empty: failed, detail: not found`},
		{Assertion{Source: SourceJSON, Property: "totalResults", Comparison: CompareEqual, Value: "2", HasValue: true}, ""},
		{Assertion{Source: SourceJSON, Property: "totalResults", Comparison: "empty"},
			`response_json totalResults empty: unsupported comparison`},
		{Assertion{Source: "response_headers", Property: "Location", Comparison: CompareNotEmpty},
			`response_headers not_empty: unsupported source`},
	}
	for _, tt := range tests {
		if got := evaluate(tt.a, resp, env); got != tt.want {
			t.Errorf("evaluate(%+v)\n got %q\nwant %q", tt.a, got, tt.want)
		}
	}
	notJSON := &response{status: 200, body: []byte("<html>")}
	got := evaluate(Assertion{Source: SourceJSON, Property: "id", Comparison: CompareNotEmpty}, notJSON, nil)
	if !strings.HasPrefix(got, "response_json id not_empty: failed, response body is not JSON: ") {
		t.Errorf("not JSON: %q", got)
	}
}

func TestTemplates(t *testing.T) {
	vars := map[string]string{"SCIMBaseURL": "http://h/scim/v2", "x_1": "{{y}}", "empty": ""}
	tests := []struct {
		in, out string
		missing []string
	}{
		{"{{SCIMBaseURL}}/Users", "http://h/scim/v2/Users", nil},
		{"a{{empty}}b", "ab", nil},
		{"{{x_1}}", "{{y}}", nil}, // substituted values are not expanded again
		{"{{a}}-{{b}}", "{{a}}-{{b}}", []string{"a", "b"}},
		{`{"a":{"b":{}}}`, `{"a":{"b":{}}}`, nil},
		{"no templates }}", "no templates }}", nil},
	}
	for _, tt := range tests {
		out, missing, err := expand(tt.in, vars)
		if err != nil || out != tt.out || strings.Join(missing, ",") != strings.Join(tt.missing, ",") {
			t.Errorf("expand(%q) = %q, %v, %v; want %q, %v", tt.in, out, missing, err, tt.out, tt.missing)
		}
	}
	for _, bad := range []string{"{{", "a {{b", "{{}}", "{{ a }}", "{{a.b}}", "{{random_string(3)}}", "{{1a}}", "{{a-b}}"} {
		if err := checkTemplate(bad); err == nil {
			t.Errorf("checkTemplate(%q) succeeded", bad)
		}
	}
}

func TestRequestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://h/scim/v2/Users?count=1&startIndex=1", "http://h/scim/v2/Users?count=1&startIndex=1"},
		{`http://h/Users?filter=userName eq "a+b@x.com"`, "http://h/Users?filter=userName%20eq%20%22a%2Bb%40x.com%22"},
		{"http://h/Users?filter=userName%20eq%20%22a%22", "http://h/Users?filter=userName%20eq%20%22a%22"},
		{"http://h/Users?q=100%&flag", "http://h/Users?q=100%25&flag"},
		{"https://h:8443/api/v1/users?activate=true", "https://h:8443/api/v1/users?activate=true"},
		{"http://h/Users/abc", "http://h/Users/abc"},
	}
	for _, tt := range tests {
		u, err := requestURL(tt.in)
		if err != nil || u.String() != tt.want {
			t.Errorf("requestURL(%q) = %v, %v; want %q", tt.in, u, err, tt.want)
		}
	}
	for _, bad := range []string{"/scim/v2/Users", "{{SCIMBaseURL}}/Users", "http://h/a b", "ftp://h/x", "http://h/x?a=b#frag"} {
		if _, err := requestURL(bad); err == nil {
			t.Errorf("requestURL(%q) succeeded", bad)
		}
	}
	// What a Go server sees for the SPEC filter.
	u, _ := requestURL(`http://h/Users?filter=userName eq "RUNSCOPE1@ATKO.COM"`)
	req, _ := http.NewRequest("GET", u.String(), nil)
	if got := req.URL.Query().Get("filter"); got != `userName eq "RUNSCOPE1@ATKO.COM"` {
		t.Errorf("decoded filter = %q", got)
	}
}

func TestInitialVarsShapes(t *testing.T) {
	first := regexp.MustCompile(`^Runscope[0-9]{3}$`)
	last := regexp.MustCompile(`^[A-Z][a-z]{8}[0-9]{3}$`)
	for seed := range uint64(50) {
		v := InitialVars(SpecSuiteName, rand.New(rand.NewPCG(seed, seed)))
		email := v["randomGivenName"] + v["randomFamilyName"] + "@atko.com"
		switch {
		case !first.MatchString(v["randomGivenName"]):
			t.Errorf("randomGivenName = %q", v["randomGivenName"])
		case !last.MatchString(v["randomFamilyName"]):
			t.Errorf("randomFamilyName = %q", v["randomFamilyName"])
		case v["randomEmail"] != email || v["randomUsername"] != email:
			t.Errorf("email = %q / %q, want %q", v["randomEmail"], v["randomUsername"], email)
		case v["randomUsernameCaps"] != strings.ToUpper(email):
			t.Errorf("randomUsernameCaps = %q", v["randomUsernameCaps"])
		case v["InvalidUserEmail"] != "abcdefgh@atko.com" || v["UserIdThatDoesNotExist"] != "010101001010101011001010101011":
			t.Errorf("constants = %v", v)
		}

		c := InitialVars(CRUDSuiteName, rand.New(rand.NewPCG(seed, seed)))
		f, l := c["okta_user_firstname"], c["okta_user_lastname"]
		want := map[string]string{
			"okta_user_firstname":        v["randomGivenName"], // same draws, same order
			"okta_user_lastname":         v["randomFamilyName"],
			"okta_user_fullname":         f + " " + l,
			"okta_user_firstname_update": f + "update",
			"okta_user_fullname_update":  f + "update " + l,
			"okta_user_email":            f + l + "@atko.com",
			"okta_user_title":            "Engineer",
			"okta_user_primaryphone":     "415.123.4567",
		}
		for k, w := range want {
			if c[k] != w {
				t.Errorf("%s = %q, want %q", k, c[k], w)
			}
		}
	}
	a := InitialVars(SpecSuiteName, rand.New(rand.NewPCG(7, 7)))
	b := InitialVars(SpecSuiteName, rand.New(rand.NewPCG(7, 7)))
	c := InitialVars(SpecSuiteName, rand.New(rand.NewPCG(8, 8)))
	if a["randomEmail"] != b["randomEmail"] || a["randomEmail"] == c["randomEmail"] {
		t.Errorf("seeding: %q %q %q", a["randomEmail"], b["randomEmail"], c["randomEmail"])
	}
	if x, y := InitialVars(SpecSuiteName, nil), InitialVars(SpecSuiteName, nil); x["randomEmail"] == y["randomEmail"] {
		t.Errorf("nil rnd gave the same email twice: %q", x["randomEmail"])
	}
	if v := InitialVars("Some Other Test", nil); v != nil {
		t.Errorf("unknown suite: %v", v)
	}
}

func TestGroupsScript(t *testing.T) {
	tests := []struct {
		body string
		fail string
	}{
		{`{"totalResults":0,"Resources":[]}`, ""},
		{`{"totalResults":2,"Resources":[{},{}]}`, ""},
		{`{"totalResults":2,"Resources":null}`, ""}, // the script asserts nothing here
		{`{"totalResults":"0"}`, ""},
		{`{}`, ""},
		{`[]`, ""},
		{`null`, "TypeError"},
		{``, "JSON.parse"},
		{`<html>`, "JSON.parse"},
	}
	for _, tt := range tests {
		got := strings.Join(groupsScript(&response{body: []byte(tt.body)}), "; ")
		if (tt.fail == "") != (got == "") || !strings.Contains(got, tt.fail) {
			t.Errorf("body %q: failures %q, want %q", tt.body, got, tt.fail)
		}
	}
}
