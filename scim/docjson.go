package scim

// A JSON encoder for the decoded documents SCIM answers and the store are made of.
//
// Every SCIM answer and every stored user or group document is a tree of map[string]any,
// []any, strings, json.Numbers and a few other plain values, and encoding/json.Marshal of them
// was about 7% of the CPU of a user create (reflection, sorting reflected keys, allocations). This
// encoder walks such trees with a type switch instead, and hands anything else (structs,
// pointers, time.Time, json.Marshalers, other maps and slices) to json.Marshal, so its output is
// byte for byte that of json.Marshal: TestDocJSONMatchesMarshal and FuzzDocJSON check it.
//
// What it has to match (go1.26): strings escape `"` and `\`, use \b \f \n \r \t for those
// control characters and \u00XX for the other bytes below 0x20, escape <, > and & (HTML) and
// U+2028 and U+2029, leave 0x7f as it is, and write \ufffd for each byte that is not part of a
// valid UTF-8 sequence; object keys are escaped the same way and sorted by their bytes before
// escaping; nil maps and slices are null; floats use the shortest representation that
// round-trips, in exponent form (with a one-digit exponent written without its leading zero)
// below 1e-6 and from 1e21 on.

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// marshalDoc is json.Marshal for a SCIM document (see appendJSON). Most users and groups
// encode to less than 2 KiB, so one allocation usually does.
func marshalDoc(v any) ([]byte, error) {
	return appendJSON(make([]byte, 0, 2048), v)
}

// appendJSON appends json.Marshal(v) to dst. On an error, what it returns is unspecified but
// the error.
func appendJSON(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case string:
		return appendJSONString(dst, v), nil
	case json.Number:
		if v == "" {
			return append(dst, '0'), nil // as json.Marshal writes an empty Number
		}
		if validNumber(string(v)) {
			return append(dst, v...), nil
		}
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case float64:
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			return appendJSONFloat(dst, v), nil
		}
	case map[string]any:
		return appendJSONObject(dst, v, appendJSON)
	case map[string]string:
		return appendJSONObject(dst, v, appendJSONStringValue)
	case []any:
		return appendJSONArray(dst, v, appendJSON)
	case []map[string]any:
		return appendJSONArray(dst, v, appendJSONObjectValue)
	case []string:
		return appendJSONArray(dst, v, appendJSONStringValue)
	}
	// Anything else, and the values above that json.Marshal refuses (an invalid Number, NaN,
	// ±Inf), are json.Marshal's to encode or refuse.
	raw, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, raw...), nil
}

// appendJSONObject appends m with its keys sorted by their bytes, each value encoded by enc;
// a nil map is null.
func appendJSONObject[V any](dst []byte, m map[string]V, enc func([]byte, V) ([]byte, error)) ([]byte, error) {
	if m == nil {
		return append(dst, "null"...), nil
	}
	var buf [32]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = enc(dst, m[k]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// appendJSONArray appends v, each element encoded by enc; a nil slice is null.
func appendJSONArray[E any](dst []byte, v []E, enc func([]byte, E) ([]byte, error)) ([]byte, error) {
	if v == nil {
		return append(dst, "null"...), nil
	}
	dst = append(dst, '[')
	for i, e := range v {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = enc(dst, e); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

func appendJSONStringValue(dst []byte, s string) ([]byte, error) {
	return appendJSONString(dst, s), nil
}

func appendJSONObjectValue(dst []byte, m map[string]any) ([]byte, error) {
	return appendJSONObject(dst, m, appendJSON)
}

// appendJSONFloat appends a finite float64 as json.Marshal writes it.
func appendJSONFloat(dst []byte, f float64) []byte {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		start := len(dst)
		dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
		// strconv writes at least two exponent digits (1e-07); json.Marshal writes 1e-7.
		if n := len(dst); n-start >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// validNumber reports whether s is a JSON number (RFC 8259 §6).
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int { // skips digits, returning how many
		n := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// jsonPlain marks the ASCII bytes a JSON string holds as they are.
var jsonPlain = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = true
	}
	for _, b := range `"\<>&` {
		t[b] = false
	}
	return t
}()

// appendJSONString appends s as json.Marshal writes a string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	plain := 0 // s[plain:i] is still to be appended as it is
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonPlain[b] {
				i++
				continue
			}
			dst = append(dst, s[plain:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // other control characters, <, > and &
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			i++
			plain = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[plain:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[plain:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		plain = i
	}
	dst = append(dst, s[plain:]...)
	return append(dst, '"')
}
