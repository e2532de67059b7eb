package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// nonOwned is the brief's worker attributes: keys the bridge must preserve.
const nonOwned = `{"routing":{"skills":["sales"],"levels":{"sales":3}},"disabled_skills":{"skills":[],"levels":{}},"team_sid":"WT...","custom":1}`

func mergeSpec(attrs map[string]any, extraOwned ...string) WorkerSpec {
	owned := append([]string{"email", "full_name", "image_url", MarkerKey, RolesKey}, extraOwned...)
	slices.Sort(owned)
	a := map[string]any{
		"email":     "jo@example.com",
		"full_name": "Jo March",
		RolesKey:    []string{"agent"},
		MarkerKey:   map[string]any{"managed": true, "user_id": "u1"},
	}
	for k, v := range attrs {
		if v == nil {
			delete(a, k)
		} else {
			a[k] = v
		}
	}
	return WorkerSpec{FriendlyName: "jo", Access: true, Roles: []string{"agent"}, Attributes: a, Owned: owned}
}

// members returns the top-level members of a JSON object, minified, in order.
func members(t *testing.T, s string) (keys []string, raw map[string]string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object: %v", s, err)
	}
	raw = map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		k := tok.(string)
		keys = append(keys, k)
		raw[k] = string(v)
	}
	return keys, raw
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name        string
		current     string
		spec        WorkerSpec
		wantChanged []string
	}{
		{name: "preserves non-owned keys", current: nonOwned, spec: mergeSpec(nil),
			wantChanged: []string{"email", MarkerKey, "full_name", RolesKey}},
		{name: "empty current", current: "", spec: mergeSpec(nil),
			wantChanged: []string{"email", MarkerKey, "full_name", RolesKey}},
		{name: "empty object", current: " {} ", spec: mergeSpec(nil),
			wantChanged: []string{"email", MarkerKey, "full_name", RolesKey}},
		{name: "nothing changed", current: `{"roles":["agent"],"full_name":"Jo March","flexbridge":{"managed":true,"user_id":"u1"},"email":"jo@example.com","x":1}`,
			spec: mergeSpec(nil)},
		{name: "equal as JSON is unchanged and kept as is",
			current: `{"email":"jo@example.com","full_name":"Jo\u0020March","roles":[ "agent" ],"flexbridge":{"user_id":"u1","managed":true},"custom":{"z":1,"a":[1.0, 2]}}`,
			spec:    mergeSpec(map[string]any{"custom": map[string]any{"a": []any{1, 2.0}, "z": 1}}, "custom")},
		{name: "removes owned keys without a value", current: `{"image_url":"https://x/y.png","email":"jo@example.com","keep":"me"}`,
			spec: mergeSpec(nil), wantChanged: []string{MarkerKey, "full_name", "image_url", RolesKey}},
		{name: "owned key absent from both is not a change",
			current: `{"roles":["agent"],"full_name":"Jo March","flexbridge":{"managed":true,"user_id":"u1"},"email":"jo@example.com"}`,
			spec:    mergeSpec(nil, "location")},
		{name: "changed values", current: `{"roles":["agent","admin"],"full_name":"Jo","flexbridge":{"managed":true,"user_id":"u1"},"email":"jo@example.com"}`,
			spec: mergeSpec(nil), wantChanged: []string{"full_name", RolesKey}},
		{name: "roles order is a change", current: `{"roles":["admin","agent"],"full_name":"Jo March","flexbridge":{"managed":true,"user_id":"u1"},"email":"jo@example.com"}`,
			spec: mergeSpec(map[string]any{RolesKey: []string{"agent", "admin"}}), wantChanged: []string{RolesKey}},
		{name: "empty string is a value", current: `{"email":"old@example.com"}`,
			spec: mergeSpec(map[string]any{"email": ""}), wantChanged: []string{"email", MarkerKey, "full_name", RolesKey}},
		{name: "no HTML escaping", current: `{"custom":"<b>&amp;</b>","escaped":"\u003ci\u003e"}`,
			spec: mergeSpec(map[string]any{"full_name": "R&D <Ops> > \"Sales\""}), wantChanged: []string{"email", MarkerKey, "full_name", RolesKey}},
		{name: "typed owned values", current: `{"routing":{"levels":{"sales":3},"skills":["sales"]}}`,
			spec:        mergeSpec(map[string]any{"routing": map[string]any{"skills": []any{"sales"}, "levels": map[string]any{"sales": int64(3)}}}, "routing"),
			wantChanged: []string{"email", MarkerKey, "full_name", RolesKey}},
		{name: "pretty current is minified, nested order kept",
			current:     "{\n  \"zeta\": {\"b\": 1, \"a\": [1, 2,  3]},\n  \"alpha\": \"x y\"\n}\n",
			spec:        mergeSpec(nil),
			wantChanged: []string{"email", MarkerKey, "full_name", RolesKey}},
		{name: "duplicate keys: last wins", current: `{"custom":1,"custom":2}`, spec: mergeSpec(nil),
			wantChanged: []string{"email", MarkerKey, "full_name", RolesKey}},
		{name: "unicode", current: `{"custom":"Zoë 😀"}`, spec: mergeSpec(map[string]any{"full_name": "José"}),
			wantChanged: []string{"email", MarkerKey, "full_name", RolesKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			merged, changed, err := Merge(tt.current, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(changed, tt.wantChanged) {
				t.Errorf("changed = %q, want %q", changed, tt.wantChanged)
			}
			golden(t, "merge/"+fileName(tt.name)+".json", []byte(merged+"\n"))

			keys, got := members(t, merged)
			if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
				t.Errorf("top-level keys %q are not sorted and unique", keys)
			}
			owned := map[string]bool{}
			for _, k := range tt.spec.Owned {
				owned[k] = true
			}
			// Non-owned keys: byte-equal to the minified input.
			if strings.Trim(tt.current, jsonSpace) != "" {
				var cur map[string]json.RawMessage
				if err := json.Unmarshal([]byte(tt.current), &cur); err != nil {
					t.Fatal(err)
				}
				for k, v := range cur {
					if owned[k] {
						continue
					}
					if want := string(compactForTest(t, v)); got[k] != want {
						t.Errorf("non-owned %s = %s, want %s", k, got[k], want)
					}
				}
			}
			// Owned keys: present exactly when the spec has a value, equal as JSON.
			for _, k := range tt.spec.Owned {
				v, want := tt.spec.Attributes[k]
				g, have := got[k]
				if want != have {
					t.Errorf("owned %s: present %v, want %v", k, have, want)
					continue
				}
				if want {
					enc, _ := marshal(v)
					if !jsonBytesEqual([]byte(g), enc) {
						t.Errorf("owned %s = %s, want %s", k, g, enc)
					}
				}
			}
			// Merging again changes nothing.
			again, changed2, err := Merge(merged, tt.spec)
			if err != nil || again != merged || len(changed2) != 0 {
				t.Errorf("second Merge = %s, %q, %v; want the same output and no change", again, changed2, err)
			}
		})
	}
}

func compactForTest(t *testing.T, v []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMergePreservesBriefAttributes(t *testing.T) {
	merged, changed, err := Merge(nonOwned, mergeSpec(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"custom":1,"disabled_skills":{"skills":[],"levels":{}},"email":"jo@example.com",` +
		`"flexbridge":{"managed":true,"user_id":"u1"},"full_name":"Jo March","roles":["agent"],` +
		`"routing":{"skills":["sales"],"levels":{"sales":3}},"team_sid":"WT..."}`
	if merged != want {
		t.Errorf("merged =\n%s\nwant\n%s", merged, want)
	}
	for _, part := range []string{
		`"routing":{"skills":["sales"],"levels":{"sales":3}}`,
		`"disabled_skills":{"skills":[],"levels":{}}`,
		`"team_sid":"WT..."`,
		`"custom":1`,
	} {
		if !strings.Contains(merged, part) {
			t.Errorf("merged lost %s", part)
		}
	}
	if !slices.Equal(changed, []string{"email", "flexbridge", "full_name", "roles"}) {
		t.Errorf("changed = %q", changed)
	}
}

func TestMergeErrors(t *testing.T) {
	tests := []struct {
		name    string
		current string
		spec    WorkerSpec
		wantIs  error
		wantMsg string
	}{
		{name: "truncated", current: `{"a":1`, spec: mergeSpec(nil), wantMsg: "current attributes"},
		{name: "trailing data", current: `{"a":1} x`, spec: mergeSpec(nil), wantMsg: "current attributes"},
		{name: "array", current: `[1]`, spec: mergeSpec(nil), wantMsg: "not a JSON object"},
		{name: "null", current: `null`, spec: mergeSpec(nil), wantMsg: "not a JSON object"},
		{name: "string", current: `"{}"`, spec: mergeSpec(nil), wantMsg: "not a JSON object"},
		{name: "form feed is not JSON white space", current: "{}\f", spec: mergeSpec(nil), wantMsg: "current attributes"},
		{name: "not json", current: `roles=admin`, spec: mergeSpec(nil), wantMsg: "not a JSON object"},
		{name: "no access", current: `{}`, spec: WorkerSpec{Access: false, Reason: ReasonNoRole}, wantMsg: "grants no access"},
		{name: "attribute not owned", current: `{}`, spec: mergeSpec(map[string]any{"team_sid": "WT1"}), wantMsg: `"team_sid" is not in spec.Owned`},
		{name: "unencodable value", current: `{}`, spec: mergeSpec(map[string]any{"email": func() {}}), wantMsg: `attribute "email"`},
		{name: "too large from current", current: `{"custom":"` + strings.Repeat("x", 4096) + `"}`, spec: mergeSpec(nil),
			wantIs: ErrAttributesTooLarge, wantMsg: "4220 characters, TaskRouter allows 4096"},
		{name: "too large from spec", current: `{}`, spec: mergeSpec(map[string]any{"full_name": strings.Repeat("é", 4000)}),
			wantIs: ErrAttributesTooLarge, wantMsg: "characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			merged, changed, err := Merge(tt.current, tt.spec)
			if err == nil {
				t.Fatalf("Merge = %s, %q; want an error", merged, changed)
			}
			if merged != "" || changed != nil {
				t.Errorf("Merge returned %q, %q with an error", merged, changed)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error = %v, want %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

// TestMergeLimit checks the boundary: 4,096 characters pass, 4,097 do not,
// counted as characters (UTF-16 units), not bytes.
func TestMergeLimit(t *testing.T) {
	spec := mergeSpec(nil)
	probe, _, err := Merge(`{"custom":""}`, spec)
	if err != nil {
		t.Fatal(err)
	}
	room := MaxAttributesLength - CharCount(probe)
	for _, tt := range []struct {
		name string
		pad  string
		ok   bool
	}{
		{"ascii at limit", strings.Repeat("x", room), true},
		{"ascii over limit", strings.Repeat("x", room+1), false},
		{"two-byte runes at limit", strings.Repeat("é", room), true},
		{"emoji count twice", strings.Repeat("😀", room/2+1), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			merged, _, err := Merge(`{"custom":"`+tt.pad+`"}`, spec)
			if tt.ok && (err != nil || CharCount(merged) != MaxAttributesLength) {
				t.Errorf("err = %v, length %d; want success at exactly %d", err, CharCount(merged), MaxAttributesLength)
			}
			if !tt.ok && !errors.Is(err, ErrAttributesTooLarge) {
				t.Errorf("err = %v, want ErrAttributesTooLarge", err)
			}
		})
	}
}

func TestMarker(t *testing.T) {
	tests := []struct {
		attrs  string
		ok     bool
		userID string
	}{
		{`{"flexbridge":{"managed":true,"user_id":"u1"}}`, true, "u1"},
		{`{"flexbridge":{"managed":true}}`, true, ""},
		{`{"flexbridge":{"managed":true,"user_id":7}}`, true, ""},
		{`{"flexbridge":{"managed":false,"user_id":"u1"}}`, false, ""},
		{`{"flexbridge":{"Managed":true}}`, false, ""},
		{`{"flexbridge":{"managed":"true"}}`, false, ""},
		{`{"flexbridge":true}`, false, ""},
		{`{"FlexBridge":{"managed":true}}`, false, ""},
		{`{"flexbridge":{"managed":true}`, false, ""},
		{`{}`, false, ""},
		{``, false, ""},
		{`[]`, false, ""},
	}
	for _, tt := range tests {
		m, ok := ReadMarker(tt.attrs)
		if ok != tt.ok || m.UserID != tt.userID || HasMarker(tt.attrs) != tt.ok {
			t.Errorf("ReadMarker(%s) = %+v, %v; want user %q, %v", tt.attrs, m, ok, tt.userID, tt.ok)
		}
	}
	// Evaluate + Merge produce a marker HasMarker recognises.
	c := mustParse(t, evalConfig)
	spec, err := c.Evaluate(alice)
	if err != nil {
		t.Fatal(err)
	}
	merged, _, err := Merge("", spec)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := ReadMarker(merged); !ok || m.UserID != alice.ID {
		t.Errorf("ReadMarker(merged) = %+v, %v", m, ok)
	}
}
