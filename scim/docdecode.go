package scim

// A JSON decoder for documents already known to be valid JSON.
//
// Every SCIM request body passes checkJSONShape (json.Valid and more) before it is decoded, and
// every stored document was valid when it was stored, yet encoding/json's Decoder scans each of
// them twice more (once to find the value's end, once to decode it) through its byte-at-a-time
// state machine: about 13 µs of a user create. decodeValid is a recursive descent over input
// that is valid JSON, producing what json.Decoder with UseNumber produces for an any:
// map[string]any, []any, string, json.Number, bool and nil, the last of duplicate keys winning,
// invalid UTF-8 and lone surrogate escapes replaced by U+FFFD. On anything it does not expect it
// reports !ok and the caller decodes with encoding/json, so it can never accept what
// encoding/json refuses. TestDecodeValidMatchesDecoder and FuzzDecodeValid check both.

import (
	"bytes"
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeNumber is the library's unmarshal: encoding/json with UseNumber, the first JSON value
// of data into v.
func decodeNumber(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return d.Decode(v)
}

// decodeObject is decodeNumber into a map[string]any: m is nil when data is null, and an error
// when data is not an object.
func decodeObject(data []byte) (map[string]any, error) {
	if v, ok := decodeValid(data); ok {
		if m, isMap := v.(map[string]any); isMap || v == nil {
			return m, nil
		}
	}
	var m map[string]any
	err := decodeNumber(data, &m)
	return m, err
}

// decodeValid decodes data, a single JSON value with optional white space around it; ok is false
// when data is not that (the caller then decodes it with encoding/json).
func decodeValid(data []byte) (v any, ok bool) {
	d := validDecoder{data: data}
	d.space()
	v, ok = d.value(0)
	if !ok {
		return nil, false
	}
	d.space()
	return v, d.i == len(d.data)
}

// maxDecodeDepth bounds nesting like encoding/json's scanner does (json.Valid refuses deeper).
const maxDecodeDepth = 10000

type validDecoder struct {
	data []byte
	i    int
}

func (d *validDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *validDecoder) literal(word string) bool {
	if !bytes.HasPrefix(d.data[d.i:], []byte(word)) {
		return false
	}
	d.i += len(word)
	return true
}

func (d *validDecoder) value(depth int) (any, bool) {
	if d.i >= len(d.data) || depth > maxDecodeDepth {
		return nil, false
	}
	switch c := d.data[d.i]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		s, ok := d.str()
		return s, ok
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		start := d.i
		for d.i < len(d.data) {
			switch b := d.data[d.i]; {
			case '0' <= b && b <= '9', b == '-', b == '+', b == '.', b == 'e', b == 'E':
				d.i++
				continue
			}
			break
		}
		n := string(d.data[start:d.i])
		return json.Number(n), validNumber(n)
	}
	return nil, false
}

func (d *validDecoder) object(depth int) (any, bool) {
	d.i++ // {
	m := map[string]any{}
	d.space()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.space()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v
		if more, ok := d.after('}'); !ok {
			return nil, false
		} else if !more {
			return m, true
		}
	}
}

func (d *validDecoder) array(depth int) (any, bool) {
	d.i++ // [
	a := []any{}
	d.space()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		d.space()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if more, ok := d.after(']'); !ok {
			return nil, false
		} else if !more {
			return a, true
		}
	}
}

// after reads what follows a member or an element: a comma (more follow) or end, which closes
// the object or array.
func (d *validDecoder) after(end byte) (more, ok bool) {
	d.space()
	if d.i >= len(d.data) {
		return false, false
	}
	switch d.data[d.i] {
	case ',':
		d.i++
		return true, true
	case end:
		d.i++
		return false, true
	}
	return false, false
}

// str decodes the string starting at d.i (a quote).
func (d *validDecoder) str() (string, bool) {
	d.i++ // "
	start := d.i
	// The common case: no escapes, no control characters, valid UTF-8.
	for d.i < len(d.data) {
		c := d.data[d.i]
		if c == '"' {
			s := d.data[start:d.i]
			d.i++
			return string(s), true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		d.i++
	}
	buf := append([]byte(nil), d.data[start:d.i]...)
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			return string(buf), true
		case c < 0x20:
			return "", false
		case c == '\\':
			r, ok := d.escape()
			if !ok {
				return "", false
			}
			buf = utf8.AppendRune(buf, r)
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.data[d.i:])
			d.i += size // an invalid byte is one U+FFFD, as encoding/json writes it
			buf = utf8.AppendRune(buf, r)
		}
	}
	return "", false
}

// escape decodes the escape sequence at d.i (a backslash), a surrogate pair as one rune.
func (d *validDecoder) escape() (rune, bool) {
	if d.i+1 >= len(d.data) {
		return 0, false
	}
	c := d.data[d.i+1]
	d.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'u':
		r, ok := d.hex4()
		if !ok {
			return 0, false
		}
		if !utf16.IsSurrogate(r) {
			return r, true
		}
		// A high surrogate followed by an escaped low one is one rune; any other surrogate
		// is U+FFFD and what follows it is decoded on its own.
		if d.i+1 < len(d.data) && d.data[d.i] == '\\' && d.data[d.i+1] == 'u' {
			save := d.i
			d.i += 2
			if r2, ok := d.hex4(); ok {
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					return dec, true
				}
			}
			d.i = save
		}
		return utf8.RuneError, true
	}
	return 0, false
}

func (d *validDecoder) hex4() (rune, bool) {
	if d.i+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.i : d.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	d.i += 4
	return r, true
}
