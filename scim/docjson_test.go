package scim

// appendJSON must write exactly what json.Marshal writes (docjson.go): these tests compare the
// two on hand-picked documents, on real SCIM bodies and, in FuzzDocJSON, on any JSON value and
// any string.
//
//	go test -run='^$' -fuzz='^FuzzDocJSON$' -fuzztime=60s ./scim/

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sameAsMarshal fails t unless appendJSON, appending to a non-empty buffer, writes what
// json.Marshal writes for v, or fails when json.Marshal fails.
func sameAsMarshal(t *testing.T, name string, v any) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	const prefix = "prefix:"
	got, gotErr := appendJSON([]byte(prefix), v)
	switch {
	case (wantErr != nil) != (gotErr != nil):
		t.Errorf("%s: appendJSON error %v, json.Marshal error %v", name, gotErr, wantErr)
	case wantErr != nil:
	case !bytes.HasPrefix(got, []byte(prefix)):
		t.Errorf("%s: appendJSON lost the bytes before it: %q", name, got)
	case !bytes.Equal(got[len(prefix):], want):
		t.Errorf("%s:\nappendJSON   %q\njson.Marshal %q", name, got[len(prefix):], want)
	}
	if wantErr == nil {
		if m, err := marshalDoc(v); err != nil || !bytes.Equal(m, want) {
			t.Errorf("%s: marshalDoc %q, %v; json.Marshal %q", name, m, err, want)
		}
	}
}

// oktaUser is a user as Okta creates it, with the enterprise extension.
const oktaUser = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "userName": "maria.garcia@example.com",
  "name": {"givenName": "María", "familyName": "García <Sales & Ops>", "formatted": "María García"},
  "displayName": "María García",
  "locale": "es-ES",
  "externalId": "00u1abcd2EFGHijk3l4",
  "active": true,
  "password": "x\"y\\z\u2028",
  "groups": [],
  "emails": [
    {"primary": true, "value": "maria.garcia@example.com", "type": "work", "display": "Work"},
    {"primary": false, "value": "maria@example.org", "type": "home"}
  ],
  "phoneNumbers": [{"primary": true, "value": "+34 600 000 000", "type": "mobile"}],
  "addresses": [{"type": "work", "streetAddress": "Calle Mayor 1\n2º", "locality": "Madrid", "postalCode": "28013", "country": "ES", "primary": true}],
  "title": "Supervisora 👩‍💼",
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "42",
    "costCenter": 1200.50,
    "organization": "Flex",
    "division": null,
    "department": "Sales",
    "manager": {"value": "00u9mgr", "displayName": "Jo Manager", "$ref": "../Users/00u9mgr"}
  }
}`

// decodeDoc decodes raw as the handlers do (UseNumber).
func decodeDoc(tb testing.TB, raw string) any {
	tb.Helper()
	var v any
	if err := decodeNumber([]byte(raw), &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// scimAnswer is oktaUser as a SCIM answer: with id, meta and the schemas of the served user.
func scimAnswer(tb testing.TB) map[string]any {
	doc := decodeDoc(tb, oktaUser).(map[string]any)
	doc["id"] = "0b8c5e0e-7a6f-4bcb-9a43-2f1d9a7f3e11"
	doc["schemas"] = []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}
	doc["meta"] = map[string]any{
		"resourceType": "User",
		"location":     "https://bridge.example.com/scim/v2/Users/0b8c5e0e-7a6f-4bcb-9a43-2f1d9a7f3e11",
		"created":      "2024-03-20T11:09:24Z",
		"lastModified": "2024-03-20T11:09:24Z",
		"version":      `W/"1"`,
	}
	return doc
}

func TestDocJSONMatchesMarshal(t *testing.T) {
	var controls strings.Builder
	for b := 0; b < 0x20; b++ {
		controls.WriteByte(byte(b))
	}
	type plain struct {
		A string `json:"a"`
		B int    `json:"b,omitempty"`
		C []any
	}
	var (
		nilMap   map[string]any
		nilSlice []any
	)
	cases := map[string]any{
		"nil":            nil,
		"true":           true,
		"false":          false,
		"empty string":   "",
		"ascii":          "hello, world",
		"quote and back": `a"b\c/d`,
		"controls":       controls.String(),
		"del and high":   "\x7f\u0080\u00ff",
		"html":           "<script>alert('x')&</script>",
		"separators":     "a\u2028b\u2029c\u202a",
		"emoji":          "👩‍💼 ✓ \U0001F600",
		"replacement":    "\ufffd literal",
		"invalid 0xff":   "a\xffb",
		"invalid lone":   "\x80\xbf\xc0\xc1\xf5\xfe",
		"truncated":      "a\xc3",
		"truncated 3":    "\xe2\x82 \xe2",
		"truncated 4":    "\xf0\x9f\x98",
		"overlong":       "\xc0\x80\xe0\x80\xaf",
		"surrogate half": "\xed\xa0\x80\xed\xbf\xbf",
		"beyond max":     "\xf4\x90\x80\x80",
		"max rune":       "\U0010ffff",
		"mixed bad":      "<\xff>\n\xe2\x80\xa8&",
		"every byte": func() string {
			var b strings.Builder
			for i := 0; i < 256; i++ {
				b.WriteByte(byte(i))
			}
			return b.String()
		}(),

		"number":          json.Number("42"),
		"number empty":    json.Number(""),
		"number negative": json.Number("-17"),
		"number zero":     json.Number("0"),
		"number -0":       json.Number("-0"),
		"number frac":     json.Number("1200.50"),
		"number exp":      json.Number("6.02214076E+23"),
		"number exp neg":  json.Number("-1.5e-300"),
		"number big":      json.Number("123456789012345678901234567890123456789"),
		"number invalid":  json.Number("abc"),
		"number leading0": json.Number("01"),
		"number dot":      json.Number("1."),
		"number plus":     json.Number("+1"),
		"number space":    json.Number(" 1"),
		"number e":        json.Number("1e"),
		"number nan":      json.Number("NaN"),
		"number in map":   map[string]any{"n": json.Number("x")},

		"int":                42,
		"int neg":            -7,
		"int64 max":          int64(math.MaxInt64),
		"int64 min":          int64(math.MinInt64),
		"int32":              int32(-5),
		"int8":               int8(3),
		"uint":               uint(7),
		"float 1":            1.0,
		"float 1.5":          1.5,
		"float 1e20":         1e20,
		"float 1e21":         1e21,
		"float 1e-6":         1e-6,
		"float 1e-7":         1e-7,
		"float -3e-9":        -3e-9,
		"float 1e-10":        1e-10,
		"float tiny":         5e-324,
		"float huge":         math.MaxFloat64,
		"float -0":           math.Copysign(0, -1),
		"float 0.1":          0.1,
		"float NaN":          math.NaN(),
		"float +Inf":         math.Inf(1),
		"float -Inf in list": []any{1.0, math.Inf(-1)},
		"float32":            float32(0.1),

		"nil map":               nilMap,
		"nil slice":             nilSlice,
		"nil []string":          []string(nil),
		"nil []map":             []map[string]any(nil),
		"nil map[string]string": map[string]string(nil),
		"empty map":             map[string]any{},
		"empty slice":           []any{},
		"empty []string":        []string{},
		"empty []map":           []map[string]any{},
		"empty map[s]s":         map[string]string{},
		"nils inside":           []any{nilMap, nilSlice, []string(nil), map[string]any{"m": nilMap, "s": nilSlice}},
		"[]map with nil":        []map[string]any{{"a": 1}, nil, {}},
		"[]string escapes":      []string{"<", "\xff", "\u2028", ""},
		"map[s]s":               map[string]string{"b": "<", "a": "\xff", "\n": "x"},
		"nested": map[string]any{
			"emails": []any{
				map[string]any{"value": "a@example.com", "primary": true, "type": "work"},
				map[string]any{"value": "b@example.com", "primary": false},
			},
			"deep": []any{[]any{[]any{map[string]any{"x": []any{}}}}},
		},
		"keys escaped": map[string]any{"<": 1, "a\"b": 2, "\\": 3, "\n": 4, "\xff": 5, "\u2028": 6, "": 7},
		"keys order": map[string]any{
			"b": 1, "a": 2, "B": 3, "A": 4, "aa": 5, "a\x00": 6, "Z": 7,
			"é": 8, "\xc0": 9, "\xff": 10, "\ufffd": 11, "\uff61": 12, "\U0001F600": 13,
			"<": 14, "\\": 15, "~": 16, "\x7f": 17,
		},
		"keys many": func() map[string]any {
			m := map[string]any{}
			for i := 0; i < 100; i++ {
				m["attr"+strconv.Itoa(i)] = i
			}
			return m
		}(),

		"time":           time.Date(2024, 3, 20, 11, 9, 24, 5, time.UTC),
		"time in map":    map[string]any{"created": time.Date(2024, 3, 20, 11, 9, 24, 0, time.FixedZone("x", 3600))},
		"struct":         plain{A: "<a>", C: []any{json.Number("1"), "x"}},
		"struct pointer": map[string]any{"p": &plain{B: 2}, "nilp": (*plain)(nil)},
		"raw message":    map[string]any{"r": json.RawMessage(`{"b":1, "a":2}`)},
		"bad raw":        []any{json.RawMessage(`{`)},
		"map[string]int": map[string]int{"b": 1, "a": 2},
		"channel":        map[string]any{"c": make(chan int)},
		"bytes":          []byte("<bytes>"),
	}
	for name, v := range cases {
		sameAsMarshal(t, name, v)
	}
	sameAsMarshal(t, "okta user", decodeDoc(t, oktaUser))
	sameAsMarshal(t, "scim answer", scimAnswer(t))
	var floats any
	if err := json.Unmarshal([]byte(oktaUser), &floats); err != nil {
		t.Fatal(err)
	}
	sameAsMarshal(t, "okta user (float64)", floats)
	list := decodeDoc(t, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":2,`+
		`"startIndex":1,"itemsPerPage":2,"Resources":[`+oktaUser+`,{"id":"g1","displayName":"Flex & Co","members":[]}]}`)
	sameAsMarshal(t, "list response", list)
}

// FuzzDocJSON compares appendJSON with json.Marshal on any JSON value (decoded with and without
// UseNumber), on any bytes as a string, key and json.Number, and as a float64 when they parse.
func FuzzDocJSON(f *testing.F) {
	for _, s := range []string{
		// Small seeds: the fuzzer minimises every input that finds new coverage, and a
		// whole Okta user (covered by TestDocJSONMatchesMarshal) stalls it for seconds.
		`{"userName":"jo@example.com","name":{"givenName":"Jo"},"emails":[{"value":"jo@example.com","primary":true}],` +
			`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1"}},"n":1200.50}`,
		`null`, `true`, `[]`, `{}`, `""`, `[null,{},[],""]`,
		`{"a":"\u0000\u001f\b\f\n\r\t\"\\\/<>&\u2028\u2029\u007f"}`,
		`{"\ud800":"\udc00","\ud83d\ude00":"😀"}`,
		`[0,-0,1.5,1e21,1e20,1e-7,1e-6,-1.5e-300,123456789012345678901234567890,1E+2,0.1]`,
		`{"b":1,"a":2,"B":3,"é":4,"~":5,"<":6}`,
		"\"\xff\xfe\xc0\x80\xed\xa0\x80\"",
		"a\x00b\x1f\x7f",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if json.Valid(data) {
			d := json.NewDecoder(bytes.NewReader(data))
			d.UseNumber()
			var numbers any
			if err := d.Decode(&numbers); err != nil {
				t.Fatalf("valid JSON does not decode: %v", err)
			}
			sameAsMarshal(t, "UseNumber", numbers)
			var floats any
			if err := json.Unmarshal(data, &floats); err == nil { // numbers may overflow float64
				sameAsMarshal(t, "float64", floats)
			}
		}
		s := string(data)
		sameAsMarshal(t, "string", map[string]any{s: s, "<" + s: []string{s}})
		sameAsMarshal(t, "number", []any{json.Number(s)})
		if x, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			sameAsMarshal(t, "float", []any{x, -x, x * 1e-300, x * 1e300})
		}
	})
}

// benchSink keeps the benchmarks' results alive, as the handlers' are (written, or stored).
var benchSink []byte

// BenchmarkDocJSON encodes a SCIM answer as writeDoc does (marshalDoc, that is appendJSON into
// a fresh buffer) and as it did before (json.Marshal).
func BenchmarkDocJSON(b *testing.B) {
	doc := scimAnswer(b)
	want, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(want)))
		for b.Loop() {
			if benchSink, err = marshalDoc(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(want)))
		for b.Loop() {
			if benchSink, err = json.Marshal(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
