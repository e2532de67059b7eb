package scim

// decodeValid must decode valid JSON exactly as json.Decoder with UseNumber does, and
// decodeObject must answer as decodeNumber into a map does for any input (docdecode.go).
//
//	go test -run='^$' -fuzz='^FuzzDecodeValid$' -fuzztime=60s ./scim/

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// sameAsDecoder fails t unless decodeObject answers for data what decodeNumber into a map
// answers, and, when data is valid JSON, decodeValid decodes it (ok) to what json.Decoder with
// UseNumber decodes into an any.
func sameAsDecoder(t *testing.T, data []byte) {
	t.Helper()
	var want map[string]any
	wantErr := decodeNumber(data, &want)
	got, gotErr := decodeObject(data)
	if (wantErr != nil) != (gotErr != nil) {
		t.Errorf("%q: decodeObject error %v, decodeNumber error %v", data, gotErr, wantErr)
	} else if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Errorf("%q:\ndecodeObject %#v\ndecodeNumber %#v", data, got, want)
	}
	if !json.Valid(data) {
		return
	}
	var wantAny any
	if err := decodeNumber(data, &wantAny); err != nil {
		t.Fatalf("%q: valid JSON does not decode: %v", data, err)
	}
	gotAny, ok := decodeValid(data)
	if !ok {
		t.Errorf("%q: decodeValid refused valid JSON", data)
	} else if !reflect.DeepEqual(gotAny, wantAny) {
		t.Errorf("%q:\ndecodeValid %#v\njson.Decoder %#v", data, gotAny, wantAny)
	}
}

func TestDecodeValidMatchesDecoder(t *testing.T) {
	for _, s := range []string{
		oktaUser,
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e+300`, `""`, ` { "a" : [ 1 , 2 ] } `,
		"\t\r\n{\"a\":1}\n",
		`{"a":1,"a":2,"A":3}`, // the last of duplicate keys wins; keys differing in case are kept
		`{"a":{"b":{"c":[[[]],{}]}}}`,
		`{"n":[0,-1,1.25,1E5,1e-7,-0.0,123456789012345678901234567890]}`,
		`{"s":"\" \\ \/ \b \f \n \r \t \u0000 \u001f \u00e9 \u20AC"}`,
		`{"pair":"\ud83d\ude00","lone high":"\ud800","lone low":"\udc00","high then letter":"\ud800\u0041",` +
			`"high high low":"\ud800\ud800\udc00","low high":"\udc00\ud800","high then text":"\ud800x"}`,
		"{\"raw\":\"\xff \xc0\x80 \xed\xa0\x80 \xe2\x82 \xef\xbf\xbd é 😀\"}",
		"{\"\xff\":\"invalid key\",\"\\u00e9\":\"escaped key\"}",
		strings.Repeat("[", 200) + strings.Repeat("]", 200),
		// Not decodeValid's to decode: decodeObject must still answer as decodeNumber.
		`{} trailing`, `{"a":1}{"b":2}`, `[1]`, `"text"`, `{"a":01}`, `{"a":1.}`, `{"a":tru}`, `{`, ``, ` `,
		`{"a":"unterminated}`, "{\"ctl\":\"\x01\"}", `{"a":"\x"}`, `{"a":"\u12"}`, `{,}`, `{"a" 1}`, `[1,]`,
	} {
		sameAsDecoder(t, []byte(s))
	}
}

// FuzzDecodeValid compares decodeObject with decodeNumber on any bytes, and decodeValid with
// json.Decoder on any valid JSON.
func FuzzDecodeValid(f *testing.F) {
	for _, s := range []string{
		`{"userName":"jo@example.com","name":{"givenName":"Jo"},"emails":[{"value":"jo@example.com","primary":true}],` +
			`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1"}},"n":1200.50}`,
		`null`, `[1,"a",null,true,{}]`, `{"a":1,"a":2}`, `{"s":"\ud800\udc00\ud800\u0041\\\/"}`,
		"{\"\xff\":\"\xed\xa0\x80\"}", `{} x`, `{"a":-01}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsDecoder(t, data)
	})
}

// BenchmarkDecodeDoc decodes a user body as the handlers do now (decodeObject) and did before
// (json.Decoder with UseNumber).
func BenchmarkDecodeDoc(b *testing.B) {
	data := []byte(oktaUser)
	b.Run("decodeObject", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if m, err := decodeObject(data); err != nil || m == nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Decoder", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var m map[string]any
			if err := decodeNumber(data, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
