package runscope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// pathElem is one element of a property path: a member name or, when
// isIndex, an array index.
type pathElem struct {
	name    string
	index   int
	isIndex bool
}

func (e pathElem) String() string {
	if e.isIndex {
		return "[" + strconv.Itoa(e.index) + "]"
	}
	return e.name
}

// parsePath parses a JSON property path in the JavaScript notation the
// suites use: identifiers joined by dots, each optionally followed by
// [index]; a path may also start with an index ("[0].id") for a body that is
// an array. Quoted member names (a["b"]) are not implemented.
func parsePath(p string) ([]pathElem, error) {
	if p == "" {
		return nil, errors.New("empty property path")
	}
	var out []pathElem
	s := p
	first := true
	for s != "" {
		switch {
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, fmt.Errorf("property %q: unclosed [", p)
			}
			digits := s[1:end]
			n, err := strconv.Atoi(digits)
			if err != nil || n < 0 || digits == "" || digits[0] == '+' || (len(digits) > 1 && digits[0] == '0') {
				return nil, fmt.Errorf("property %q: unsupported index [%s] (only non-negative integers)", p, digits)
			}
			out = append(out, pathElem{index: n, isIndex: true})
			s = s[end+1:]
		case first || s[0] == '.':
			if !first {
				s = s[1:]
			}
			end := strings.IndexAny(s, ".[")
			if end < 0 {
				end = len(s)
			}
			name := s[:end]
			if !isJSIdent(name) {
				return nil, fmt.Errorf("property %q: bad member name %q", p, name)
			}
			out = append(out, pathElem{name: name})
			s = s[end:]
		default:
			return nil, fmt.Errorf("property %q: unexpected %q", p, s)
		}
		first = false
	}
	return out, nil
}

func isJSIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r == '$' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// lookup follows path in doc (decoded with json.Decoder.UseNumber). It
// returns an error naming the first element that does not exist.
func lookup(doc any, path []pathElem) (any, error) {
	cur := doc
	for i, e := range path {
		where := pathString(path[:i+1])
		if e.isIndex {
			arr, ok := cur.([]any)
			if !ok {
				return nil, fmt.Errorf("%s: not found (%s is %s, not an array)", where, parentName(path[:i]), describe(cur))
			}
			if e.index >= len(arr) {
				return nil, fmt.Errorf("%s: not found (array has %d elements)", where, len(arr))
			}
			cur = arr[e.index]
			continue
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: not found (%s is %s, not an object)", where, parentName(path[:i]), describe(cur))
		}
		v, ok := obj[e.name]
		if !ok {
			return nil, fmt.Errorf("%s: not found", where)
		}
		cur = v
	}
	return cur, nil
}

func pathString(path []pathElem) string {
	var b strings.Builder
	for i, e := range path {
		if i > 0 && !e.isIndex {
			b.WriteByte('.')
		}
		b.WriteString(e.String())
	}
	return b.String()
}

func parentName(path []pathElem) string {
	if len(path) == 0 {
		return "the body"
	}
	return pathString(path)
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// decodeJSON decodes a response body, keeping numbers as written.
func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// stringOf converts a JSON value to the string that comparisons and variables
// use: strings as themselves, numbers as written, true/false/null, and arrays
// and objects as compact JSON.
func stringOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// display renders an actual value for failure messages: JSON, so that a
// string "1" and a number 1 are told apart.
func display(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	const max = 300
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

var numericRE = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// numberOf returns the numeric value of a JSON number or of a string holding
// a decimal number (Runscope casts strings for numeric comparisons).
func numberOf(v any) (float64, bool) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = strings.TrimSpace(v)
	default:
		return 0, false
	}
	if !numericRE.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// compare evaluates one comparison of actual (a decoded JSON value, or a
// json.Number for status and time) against the expanded target value. It
// returns "" when the comparison holds, otherwise why it does not. An
// unsupported comparison never holds.
func compare(comparison string, actual any, expected string) string {
	switch comparison {
	case CompareEqual:
		if stringOf(actual) == expected {
			return ""
		}
		return "not equal"
	case CompareEqualNumber, CompareIsLessThan:
		want, ok := numberOf(expected)
		if !ok {
			return fmt.Sprintf("target value %q is not a number", expected)
		}
		got, ok := numberOf(actual)
		if !ok {
			return "actual value is not a number"
		}
		if comparison == CompareEqualNumber && got == want {
			return ""
		}
		if comparison == CompareIsLessThan && got < want {
			return ""
		}
		if comparison == CompareEqualNumber {
			return "numbers differ"
		}
		return "not less"
	case CompareNotEmpty:
		switch v := actual.(type) {
		case nil:
			return "null is empty"
		case string:
			if v == "" {
				return "empty string"
			}
		case []any:
			if len(v) == 0 {
				return "empty array"
			}
		case map[string]any:
			if len(v) == 0 {
				return "empty object"
			}
		}
		return ""
	case CompareHasValue:
		switch v := actual.(type) {
		case []any:
			for _, e := range v {
				if stringOf(e) == expected {
					return ""
				}
			}
			return "no element has that value"
		case map[string]any:
			for _, e := range v {
				if stringOf(e) == expected {
					return ""
				}
			}
			return "no member has that value"
		}
		return fmt.Sprintf("actual value is %s, not an array or object", describe(actual))
	case CompareIsANumber:
		if _, ok := numberOf(actual); ok {
			return ""
		}
		return "not a number"
	case CompareContains:
		switch v := actual.(type) {
		case []any:
			for _, e := range v {
				if stringOf(e) == expected {
					return ""
				}
			}
			return "no element has that value"
		case string, json.Number, bool:
			if strings.Contains(stringOf(v), expected) {
				return ""
			}
			return "substring not found"
		}
		return fmt.Sprintf("actual value is %s, not a string or array", describe(actual))
	}
	return fmt.Sprintf("unsupported comparison %q", comparison)
}
