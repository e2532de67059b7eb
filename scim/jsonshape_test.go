package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	scimerrors "github.com/elimity-com/scim/errors"
)

// checkJSONShapeOracle is the former checkJSONShape, which walked the body with
// encoding/json's Decoder.Token. checkJSONShape must answer exactly as it does.
func checkJSONShapeOracle(body []byte) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // in an object: the next token is a key
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return badRequest(scimerrors.ScimTypeInvalidSyntax, "The request body is not valid JSON.")
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if k, ok := tok.(string); ok {
				lk := strings.ToLower(k)
				if top.keys[lk] {
					return badRequest(scimerrors.ScimTypeInvalidSyntax, fmt.Sprintf("The key %q appears twice in one object.", k))
				}
				top.keys[lk] = true
				top.expect = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxJSONDepth {
				return badRequest(scimerrors.ScimTypeInvalidSyntax, "The request body is nested too deeply.")
			}
			if top != nil && top.object {
				top.expect = true
			}
			stack = append(stack, &frame{object: tok == json.Delim('{'), keys: map[string]bool{}, expect: tok == json.Delim('{')})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if top != nil && top.object {
				top.expect = true
			}
		}
	}
}

// shapeDiff describes how checkJSONShape and checkJSONShapeOracle disagree on body, or is "".
// They must agree on valid JSON; the oracle, as Decoder.Token, accepts some invalid bodies
// (several values in a row, a body cut off between tokens), which checkJSONShape refuses as
// not valid JSON, as the server did before it too.
func shapeDiff(body []byte) string {
	got, want := checkJSONShape(body), checkJSONShapeOracle(body)
	if !json.Valid(body) {
		want = badRequest(scimerrors.ScimTypeInvalidSyntax, "The request body is not valid JSON.")
	}
	if got == nil && want == nil {
		return ""
	}
	g, gok := got.(scimerrors.ScimError)
	w, wok := want.(scimerrors.ScimError)
	if got == nil || want == nil || !gok || !wok || g != w {
		return fmt.Sprintf("checkJSONShape(%q) = %#v, want %#v", body, got, want)
	}
	return ""
}

// shapeOutcome names an answer: "ok", "syntax", "deep" or "dup <key>".
func shapeOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	se, _ := err.(scimerrors.ScimError)
	switch {
	case se.Detail == "The request body is not valid JSON.":
		return "syntax"
	case se.Detail == "The request body is nested too deeply.":
		return "deep"
	case strings.HasPrefix(se.Detail, "The key "):
		var k string
		if _, err := fmt.Sscanf(se.Detail, "The key %q appears twice in one object.", &k); err == nil {
			return "dup " + k
		}
	}
	return "unexpected " + se.Detail
}

// nested wraps inner in opens (a string of '[' and '{'), closing each; an object gets the key
// "k" for its one member.
func nested(opens, inner string) string {
	var b strings.Builder
	for _, c := range opens {
		if c == '{' {
			b.WriteString(`{"k":`)
		} else {
			b.WriteByte('[')
		}
	}
	b.WriteString(inner)
	for i := len(opens) - 1; i >= 0; i-- {
		if opens[i] == '{' {
			b.WriteByte('}')
		} else {
			b.WriteByte(']')
		}
	}
	return b.String()
}

func TestJSONShape(t *testing.T) {
	mixed32 := strings.Repeat("[{", 16)
	cases := []struct {
		name, body, want string // want: checkJSONShape's outcome, as shapeOutcome names it
	}{
		{"empty", ``, "syntax"},
		{"whitespace only", " \t\r\n ", "syntax"},
		{"form feed is not whitespace", "\f{}", "syntax"},
		{"vertical tab", "{}\v", "syntax"},
		{"nbsp", "\u00a0{}", "syntax"},
		{"bom", "\ufeff{}", "syntax"},
		{"nul byte", "{}\x00", "syntax"},
		{"empty object", `{}`, "ok"},
		{"empty array", `[]`, "ok"},
		{"simple", `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, "ok"},
		{"weird whitespace", " {\r\n\t\"a\" \t:\n1 ,\r\"b\"\t:\t[ ] }\n", "ok"},
		{"duplicate", `{"a":1,"a":2}`, "dup a"},
		{"duplicate differing in case", `{"userName":"x","USERNAME":"y"}`, "dup USERNAME"},
		{"duplicate escaped letter", `{"A":1,"\u0061":2}`, "dup a"},
		{"duplicate escaped letter first", `{"\u0041":1,"a":2}`, "dup a"},
		{"duplicate both escaped", `{"\u0041":1,"\u0061":2}`, "dup a"},
		{"escaped solidus", `{"a/b":1,"a\/B":2}`, "dup a/B"},
		{"escaped quote keys", `{"a\"b":1,"A\"B":2}`, `dup A"B`},
		{"escaped backslash keys", `{"a\\b":1,"A\\B":2}`, `dup A\B`},
		{"escaped quote vs plain", `{"a\"":1,"a":2}`, "ok"},
		{"escaped backslash vs other", `{"a\\":1,"a\"":2}`, "ok"},
		{"escaped control chars", `{"\n":1,"\u000A":2}`, "dup \n"},
		{"empty keys", `{"":1,"":2}`, "dup "},
		{"empty key vs escaped nothing", `{"":1,"\u0000":2}`, "ok"},
		{"duplicate only nested", `{"a":{"b":1,"B":2},"c":1}`, "dup B"},
		{"same key parent and child", `{"a":{"a":{"a":1}},"b":{"a":1}}`, "ok"},
		{"duplicate after nested", `{"a":{"b":1},"b":2,"A":3}`, "dup A"},
		{"duplicate after nested same name", `{"a":{"x":1},"x":2}`, "ok"},
		{"array of objects same key", `[{"value":"a"},{"value":"b"},{"VALUE":"c"}]`, "ok"},
		{"emails", `{"emails":[{"value":"a@x","type":"work"},{"value":"b@x","type":"home"}]}`, "ok"},
		{"dup in second element", `{"emails":[{"value":"a"},{"value":"b","Value":"c"}]}`, "dup Value"},
		{"string values are not keys", `{"a":"a","b":"A","c":["a","a"]}`, "ok"},
		{"strings with braces", `{"a":"{[}]","b":"}","c":"]]]","d":"{\"a\":1,\"a\":2}"}`, "ok"},
		{"keys with braces", `{"{":1,"}":2,"[":3,"]":4,":":5,",":6}`, "ok"},
		{"key with braces duplicate", `{"}":1,"}":2}`, "dup }"},
		{"non-ascii E acute", `{"É":1,"é":2}`, "dup é"},
		{"non-ascii escaped E acute", `{"\u00c9":1,"é":2}`, "dup é"},
		{"non-ascii sharp s", `{"ß":1,"SS":2,"ss":3}`, "dup ss"},
		{"non-ascii capital sharp s", `{"ẞ":1,"ß":2}`, "dup ß"},
		{"kelvin sign", `{"k":1,"K":2}`, "dup K"},
		{"kelvin sign first", `{"K":1,"K":2}`, "dup K"},
		{"kelvin escaped", `{"\u212a":1,"k":2}`, "dup k"},
		{"dotted capital I", `{"İ":1,"i":2}`, "dup i"},
		{"dotted capital I vs combining", `{"İ":1,"i̇":2}`, "ok"},
		{"dotless i", `{"ı":1,"I":2}`, "ok"},
		{"greek sigma", `{"Σ":1,"σ":2,"ς":3}`, "dup σ"},
		{"invalid utf8 keys", "{\"\xff\":1,\"\xfe\":2}", "dup \ufffd"},
		{"invalid utf8 vs replacement", "{\"\xff\":1,\"\ufffd\":2}", "dup \ufffd"},
		{"lone surrogate", `{"\ud800":1,"\ufffd":2}`, "dup \ufffd"},
		{"surrogate pair", `{"\ud83d\ude00":1,"😀":2}`, "dup 😀"},
		{"ascii DEL", "{\"\x7f\":1,\"\x7f\":2}", "dup \x7f"},
		{"many keys", `{` + manyKeys(40, "") + `}`, "ok"},
		{"many keys duplicate last", `{` + manyKeys(40, "") + `,"K39":1}`, "dup K39"},
		{"many keys duplicate escaped", `{` + manyKeys(40, "") + `,"\u006B7":1}`, "dup k7"},
		{"many non-ascii keys duplicate", `{` + manyKeys(40, "é") + `,"K3É":1}`, "dup K3É"},
		{"many keys duplicate kelvin", `{` + manyKeys(40, "") + `,"K20":1}`, "dup K20"},
		{"many keys nested", `{` + manyKeys(20, "") + `,"o":{` + manyKeys(20, "") + `},"k0":1}`, "dup k0"},
		{"depth 32 arrays", nested(strings.Repeat("[", 32), "1"), "ok"},
		{"depth 33 arrays", nested(strings.Repeat("[", 33), "1"), "deep"},
		{"depth 32 objects", nested(strings.Repeat("{", 32), "1"), "ok"},
		{"depth 33 objects", nested(strings.Repeat("{", 33), "1"), "deep"},
		{"depth 32 mixed", nested(mixed32, "1"), "ok"},
		{"depth 32 mixed empty", nested(mixed32[:31], "{}"), "ok"},
		{"depth 33 mixed", nested(mixed32, "[]"), "deep"},
		{"depth 33 mixed object", nested("{"+mixed32, "{}"), "deep"},
		{"depth 33 then syntax", nested(mixed32, "[}"), "syntax"},
		{"depth 32 then bad", nested(mixed32, "}"), "syntax"},
		{"deep then dup", nested(strings.Repeat("{", 32), "1") + `{"a":1,"a":2}`, "syntax"},
		{"deep truncated", strings.Repeat("[", 32), "syntax"},
		{"deep truncated 33", strings.Repeat("[", 33), "syntax"},
		{"siblings at depth 32", nested(strings.Repeat("[", 31), "[],[],{}"), "ok"},
		{"two objects", `{} {}`, "syntax"},
		{"two objects no space", `{}{}`, "syntax"},
		{"two numbers", `1 2`, "syntax"},
		{"leading zero", `01`, "syntax"},
		{"literals run together", `truefalsenull`, "syntax"},
		{"number then literal", `1true`, "syntax"},
		{"string then string", `"a""b"`, "syntax"},
		{"object then garbage", `{} x`, "syntax"},
		{"object then close", `{}}`, "syntax"},
		{"object then comma", `{},{}`, "syntax"},
		{"object then colon", `{}:`, "syntax"},
		{"dup in second top value", `{"a":1} {"a":1,"A":2}`, "syntax"},
		{"same key in two top values", `{"a":1} {"a":1}`, "syntax"},
		{"truncated object", `{"a":1`, "syntax"},
		{"truncated after comma", `{"a":1,`, "syntax"},
		{"truncated after colon", `{"a":`, "syntax"},
		{"truncated after key", `{"a"`, "syntax"},
		{"truncated key", `{"a`, "syntax"},
		{"truncated dup", `{"a":1,"A"`, "syntax"},
		{"dup then garbage", `{"a":1,"A"}`, "syntax"},
		{"dup then no colon", `{"a":1,"A" 1`, "syntax"},
		{"truncated array", `[1,2`, "syntax"},
		{"open brace", `{`, "syntax"},
		{"open bracket", `[`, "syntax"},
		{"truncated string value", `{"a":"b`, "syntax"},
		{"truncated escape", `{"a":"b\`, "syntax"},
		{"truncated unicode escape", `{"a":"\u12`, "syntax"},
		{"truncated number", `[1.`, "syntax"},
		{"truncated negative", `[-`, "syntax"},
		{"truncated exponent", `[1e`, "syntax"},
		{"truncated exponent sign", `[1e+`, "syntax"},
		{"truncated literal", `[tru`, "syntax"},
		{"number at eof", `[1.5e10`, "syntax"},
		{"bare number at eof", `-0.0E-0`, "ok"},
		{"lone close brace", `}`, "syntax"},
		{"lone close bracket", `]`, "syntax"},
		{"mismatched close", `{]`, "syntax"},
		{"mismatched close array", `[}`, "syntax"},
		{"mismatched nested", `{"a":[}`, "syntax"},
		{"trailing comma array", `[1,]`, "syntax"},
		{"trailing comma object", `{"a":1,}`, "syntax"},
		{"double comma", `[1,,2]`, "syntax"},
		{"leading comma", `[,1]`, "syntax"},
		{"missing comma", `[1 2]`, "syntax"},
		{"missing comma strings", `["a" "b"]`, "syntax"},
		{"missing comma object", `{"a":1 "b":2}`, "syntax"},
		{"missing colon", `{"a" 1}`, "syntax"},
		{"double colon", `{"a"::1}`, "syntax"},
		{"colon in array", `[1:2]`, "syntax"},
		{"number key", `{1:2}`, "syntax"},
		{"single quoted", `{'a':1}`, "syntax"},
		{"unquoted key", `{a:1}`, "syntax"},
		{"object as key", `{{}:1}`, "syntax"},
		{"missing value", `{"a":}`, "syntax"},
		{"value without key", `{"a"}`, "syntax"},
		{"bad literal", `[True]`, "syntax"},
		{"literal prefix", `[nul]`, "syntax"},
		{"literal run on in array", `[truex]`, "syntax"},
		{"leading zero in array", `[01]`, "syntax"},
		{"leading plus", `[+1]`, "syntax"},
		{"hex number", `[0x10]`, "syntax"},
		{"dot first", `[.5]`, "syntax"},
		{"dot last", `[5.]`, "syntax"},
		{"nan", `[NaN]`, "syntax"},
		{"infinity", `[-Infinity]`, "syntax"},
		{"big number", `[1e999999, -0.000e-0000, 123456789012345678901234567890]`, "ok"},
		{"control char in string", "[\"a\x01b\"]", "syntax"},
		{"newline in key", "{\"a\nb\":1}", "syntax"},
		{"tab in string", "[\"a\tb\"]", "syntax"},
		{"bad escape", `["\x"]`, "syntax"},
		{"bad escape in key", `{"\a":1}`, "syntax"},
		{"bad unicode escape", `["\u12g4"]`, "syntax"},
		{"upper U escape", `["\U1234"]`, "syntax"},
		{"escaped single quote", `["\'"]`, "syntax"},
		{"all escapes", `{"\"\\\/\b\f\n\r\t\u00e9\u00C9":1}`, "ok"},
		{"comment", `{"a":1 /* c */}`, "syntax"},
		{"garbage", `hello`, "syntax"},
		{"garbage after truncation", `{"a":1,"b":2` + "\x00", "syntax"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if d := shapeDiff([]byte(c.body)); d != "" {
				t.Fatal(d)
			}
			if got := shapeOutcome(checkJSONShape([]byte(c.body))); got != c.want {
				t.Errorf("checkJSONShape says %q for %q, the table %q", got, c.body, c.want)
			}
		})
	}
}

// manyKeys is n members "k0":0, "k1":1, ... with suffix after each key name.
func manyKeys(n int, suffix string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d%s":%d`, i, suffix, i)
	}
	return strings.Join(parts, ",")
}

// FuzzJSONShape checks that checkJSONShape answers exactly as checkJSONShapeOracle, on any
// bytes. Seeds: testdata/fuzz/FuzzJSONShape.
//
//	go test -run='^$' -fuzz='^FuzzJSONShape$' -fuzztime=60s ./scim/
func FuzzJSONShape(f *testing.F) {
	f.Add([]byte(shapeBenchBody))
	f.Fuzz(func(t *testing.T, body []byte) {
		if d := shapeDiff(body); d != "" {
			t.Fatal(d)
		}
		// The same bytes as the keys of one object, one key a line, so that arbitrary keys
		// (escapes, non-ASCII, invalid UTF-8) meet both in a small object and in a large one.
		lines := bytes.Split(body, []byte("\n"))
		for _, filler := range []int{0, 16} {
			var obj bytes.Buffer
			obj.WriteString("{")
			for i := range filler {
				fmt.Fprintf(&obj, "\"f%d\":0,", i)
			}
			for i, line := range lines {
				if i > 0 {
					obj.WriteByte(',')
				}
				obj.WriteByte('"')
				obj.Write(line)
				obj.WriteString("\":0")
			}
			obj.WriteString("}")
			if d := shapeDiff(obj.Bytes()); d != "" {
				t.Fatal(d)
			}
		}
	})
}

// shapeBenchBody is a create-user body as an IdP sends it.
const shapeBenchBody = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId": "8a1f0c52-4b7e-4d0e-9f3a-2c6d5e7b9a10",
  "userName": "barbara.jensen@example.com",
  "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
  "displayName": "Barbara Jensen",
  "active": true,
  "emails": [
    {"value": "barbara.jensen@example.com", "type": "work", "primary": true},
    {"value": "babs@example.org", "type": "home", "primary": false}
  ],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "701984",
    "department": "Tour Operations",
    "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
  }
}`

func BenchmarkJSONShape(b *testing.B) {
	body := []byte(shapeBenchBody)
	if err := checkJSONShape(body); err != nil {
		b.Fatal(err)
	}
	for _, impl := range []struct {
		name  string
		check func([]byte) error
	}{{"new", checkJSONShape}, {"oracle", checkJSONShapeOracle}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := impl.check(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
