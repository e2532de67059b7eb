package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Merge writes the owned keys of spec into a worker's current attributes
// JSON and returns the result with the top-level keys that changed.
//
// current may be "" or "{}"; anything but a JSON object is an error. Keys
// not in spec.Owned keep their value byte for byte, only minified (nested
// key order and string escapes are untouched). Owned keys take their value
// from spec.Attributes, or are removed when absent there. An owned value
// that is already equal as JSON (e.g. the same object with its keys in
// another order) is left as it is and not reported as changed, so merging
// the result again changes nothing.
//
// The result is minified, has its top-level keys sorted, and is not
// HTML-escaped. changed is sorted and nil when nothing changed. A result
// longer than MaxAttributesLength characters yields an error wrapping
// ErrAttributesTooLarge.
func Merge(current string, spec WorkerSpec) (merged string, changed []string, err error) {
	if !spec.Access {
		return "", nil, errors.New("mapping: merge: the spec grants no access; the worker should not exist")
	}
	owned := make(map[string]bool, len(spec.Owned))
	for _, k := range spec.Owned {
		owned[k] = true
	}
	for k := range spec.Attributes {
		if !owned[k] {
			return "", nil, fmt.Errorf("mapping: merge: attribute %q is not in spec.Owned", k)
		}
	}
	cur, err := decodeObject(current)
	if err != nil {
		return "", nil, fmt.Errorf("mapping: merge: current attributes: %w", err)
	}

	out := make(map[string][]byte, len(cur)+len(spec.Attributes))
	for k, raw := range cur {
		if !owned[k] {
			out[k] = raw
		}
	}
	for _, k := range spec.Owned {
		old, had := cur[k]
		v, want := spec.Attributes[k]
		switch {
		case !want:
			if had {
				changed = append(changed, k)
			}
		default:
			enc, err := marshal(v)
			if err != nil {
				return "", nil, fmt.Errorf("mapping: merge: attribute %q: %w", k, err)
			}
			if had && jsonBytesEqual(old, enc) {
				out[k] = old
				continue
			}
			out[k] = enc
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	changed = slices.Compact(changed)

	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := marshal(k)
		if err != nil {
			return "", nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(out[k])
	}
	b.WriteByte('}')
	merged = b.String()
	if n := CharCount(merged); n > MaxAttributesLength {
		return "", nil, fmt.Errorf("mapping: merge: %w: %d characters, TaskRouter allows %d", ErrAttributesTooLarge, n, MaxAttributesLength)
	}
	return merged, changed, nil
}

// jsonSpace is the white space JSON allows around values.
const jsonSpace = " \t\r\n"

// decodeObject splits a JSON object into its members, each minified.
func decodeObject(s string) (map[string][]byte, error) {
	s = strings.Trim(s, jsonSpace)
	if s == "" {
		return map[string][]byte{}, nil
	}
	if s[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(raw))
	for k, v := range raw {
		var b bytes.Buffer
		if err := json.Compact(&b, v); err != nil {
			return nil, err
		}
		out[k] = b.Bytes()
	}
	return out, nil
}

// marshal encodes v as minified JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// jsonBytesEqual reports whether two JSON texts denote the same value.
func jsonBytesEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	va, ea := decodeAny(a)
	vb, eb := decodeAny(b)
	return ea == nil && eb == nil && jsonEqual(va, vb)
}

func decodeAny(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok || !jsonEqual(av, bv) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		return ok && numberEqual(a, b)
	default: // string, bool, nil
		return a == b
	}
}

// numberEqual compares two JSON numbers: exactly as integers when both are
// integers that fit in 64 bits, else as float64 (3 equals 3.0 and 3e0).
func numberEqual(a, b json.Number) bool {
	if a == b {
		return true
	}
	ai, aerr := strconv.ParseInt(string(a), 10, 64)
	bi, berr := strconv.ParseInt(string(b), 10, 64)
	if aerr == nil && berr == nil {
		return ai == bi
	}
	af, aerr := strconv.ParseFloat(string(a), 64)
	bf, berr := strconv.ParseFloat(string(b), 64)
	return aerr == nil && berr == nil && af == bf
}

// HasMarker reports whether worker attributes carry the bridge's ownership
// marker ({"flexbridge":{"managed":true,...}}). Invalid JSON has no marker.
func HasMarker(attributes string) bool {
	_, ok := ReadMarker(attributes)
	return ok
}

// ReadMarker returns the ownership marker of worker attributes; ok is false
// when there is none (or it is not managed:true, or the JSON is invalid).
// Key names are matched exactly.
func ReadMarker(attributes string) (m Marker, ok bool) {
	top, err := decodeObject(attributes)
	if err != nil {
		return Marker{}, false
	}
	raw, found := top[MarkerKey]
	if !found || len(raw) == 0 || raw[0] != '{' {
		return Marker{}, false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return Marker{}, false
	}
	if string(fields["managed"]) != "true" {
		return Marker{}, false
	}
	m.Managed = true
	if id, ok := fields["user_id"]; ok {
		_ = json.Unmarshal(id, &m.UserID) // a non-string user_id reads as ""
	}
	return m, true
}
