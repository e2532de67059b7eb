package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fuzzIdentities are evaluated against every config FuzzParse accepts.
var fuzzIdentities = []Identity{
	{ID: "u0", Active: true},
	alice, bob, carol, dave, erin,
}

// FuzzParse feeds arbitrary mapping files to Parse. A file is either
// rejected with a *ValidationError listing at least one problem, or it yields
// a config whose evaluation keeps the WorkerSpec invariants.
// Seeds: the example files in configs/ and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../configs/mapping*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(evalConfig))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error %v (%T) is not a ValidationError with problems", err, err)
			}
			for _, p := range ve.Problems {
				if p.Message == "" {
					t.Fatalf("problem without message: %+v", p)
				}
			}
			if c != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		owned := c.Owned()
		if !slices.IsSorted(owned) || !slices.Contains(owned, RolesKey) || !slices.Contains(owned, MarkerKey) {
			t.Fatalf("Owned() = %q", owned)
		}
		for _, id := range fuzzIdentities {
			spec, err := c.Evaluate(id)
			if err != nil {
				var ee *EvalError
				if !errors.As(err, &ee) {
					t.Fatalf("Evaluate error %v is not an EvalError", err)
				}
				continue
			}
			if !slices.Equal(spec.Owned, owned) {
				t.Fatalf("spec.Owned = %q, want %q", spec.Owned, owned)
			}
			if !spec.Access {
				if spec.Reason != ReasonInactive && spec.Reason != ReasonNoRole {
					t.Fatalf("no access with reason %q", spec.Reason)
				}
				if !id.Active != (spec.Reason == ReasonInactive) {
					t.Fatalf("active %v, reason %q", id.Active, spec.Reason)
				}
				continue
			}
			if n := CharCount(spec.FriendlyName); n < 1 || n > MaxFriendlyNameLength {
				t.Fatalf("FriendlyName %q has %d characters", spec.FriendlyName, n)
			}
			if !slices.IsSorted(spec.Roles) || !slices.ContainsFunc(spec.Roles, IsBaseRole) {
				t.Fatalf("Roles = %q", spec.Roles)
			}
			for _, r := range spec.Roles {
				if !ValidRole(r) {
					t.Fatalf("invalid role %q", r)
				}
			}
			for k := range spec.Attributes {
				if !slices.Contains(owned, k) {
					t.Fatalf("attribute %q is not owned", k)
				}
			}
			merged, _, err := Merge("", spec)
			if err != nil {
				if !errors.Is(err, ErrAttributesTooLarge) {
					t.Fatalf("Merge: %v", err)
				}
				continue
			}
			if !HasMarker(merged) {
				t.Fatalf("merged attributes %s have no marker", merged)
			}
		}
	})
}

// FuzzMerge feeds arbitrary current attributes (and a user's display name,
// which becomes an owned value) to Merge and checks its contract.
// Seeds: testdata/fuzz/FuzzMerge.
func FuzzMerge(f *testing.F) {
	f.Add(nonOwned, "Jo March")
	f.Add("", "<b>R&D</b>")
	f.Add("", strings.Repeat("\xa1", maxTemplateOutput+1)) // a name no attribute can hold
	c, err := Parse([]byte(evalConfig))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, current, displayName string) {
		id := alice
		id.DisplayName = displayName
		spec, err := c.Evaluate(id)
		if errors.Is(err, errTemplateOutput) && len(displayName) > maxTemplateOutput/6 {
			return // refused as it must be: the name renders longer than an attribute may be
		}
		if err != nil {
			t.Fatal(err)
		}
		merged, changed, err := Merge(current, spec)
		if err != nil {
			if errors.Is(err, ErrAttributesTooLarge) {
				return
			}
			trimmed := strings.Trim(current, jsonSpace)
			var obj map[string]json.RawMessage
			if trimmed == "" || (trimmed[0] == '{' && json.Unmarshal([]byte(trimmed), &obj) == nil) {
				t.Fatalf("Merge rejected a valid object %q: %v", current, err)
			}
			return
		}
		if !json.Valid([]byte(merged)) {
			t.Fatalf("merged is not JSON: %s", merged)
		}
		if n := CharCount(merged); n > MaxAttributesLength {
			t.Fatalf("merged has %d characters", n)
		}
		if !slices.IsSorted(changed) {
			t.Fatalf("changed %q not sorted", changed)
		}
		keys, got := members(t, merged)
		if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
			t.Fatalf("keys %q not sorted and unique", keys)
		}
		owned := map[string]bool{}
		for _, k := range spec.Owned {
			owned[k] = true
		}
		var cur map[string]json.RawMessage
		if strings.Trim(current, jsonSpace) != "" {
			if err := json.Unmarshal([]byte(current), &cur); err != nil {
				t.Fatalf("Merge accepted invalid %q", current)
			}
		}
		for k, v := range cur {
			if owned[k] {
				continue
			}
			var b bytes.Buffer
			if err := json.Compact(&b, v); err != nil {
				t.Fatal(err)
			}
			if got[k] != b.String() {
				t.Fatalf("non-owned %q = %s, want %s", k, got[k], b.String())
			}
		}
		for _, k := range spec.Owned {
			v, want := spec.Attributes[k]
			g, have := got[k]
			if want != have {
				t.Fatalf("owned %q present %v, want %v", k, have, want)
			}
			if want {
				enc, _ := marshal(v)
				if !jsonBytesEqual([]byte(g), enc) {
					t.Fatalf("owned %q = %s, want %s", k, g, enc)
				}
			}
			old, had := cur[k]
			wantChanged := had != want || (want && !jsonBytesEqual(old, []byte(g)))
			if slices.Contains(changed, k) != wantChanged {
				t.Fatalf("changed %q wrong about %q (current %s, merged %s)", changed, k, old, g)
			}
			if enc, _ := marshal(v); wantChanged && want && g != string(enc) {
				// A written value is exactly its encoding: minified, no HTML escaping.
				t.Fatalf("owned %q written as %s, want %s", k, g, enc)
			}
		}
		for _, k := range changed {
			if !owned[k] {
				t.Fatalf("changed lists non-owned %q", k)
			}
		}
		again, changed2, err := Merge(merged, spec)
		if err != nil || again != merged || len(changed2) != 0 {
			t.Fatalf("second Merge = %s, %q, %v; want %s unchanged", again, changed2, err, merged)
		}
	})
}
