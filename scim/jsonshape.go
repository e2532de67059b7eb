package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
)

// checkJSONShape refuses a body that is not one valid JSON value, that has the same key twice in
// one object (compared case-insensitively, as SCIM attribute names are: strings.ToLower of the
// decoded key), or that nests deeper than maxJSONDepth. The first problem in the body answers.
//
// encoding/json checks the syntax; the walk below then needs to know only where strings start
// and end, and allocates nothing for the plain ASCII keys SCIM bodies have.
func checkJSONShape(body []byte) error {
	if !json.Valid(body) {
		return badRequest(scimerrors.ScimTypeInvalidSyntax, "The request body is not valid JSON.")
	}
	type frame struct {
		object   bool
		keyStart int                 // this object's keys are keys[keyStart:]
		set      map[string]struct{} // its keys, once there are more than a few
	}
	type span struct{ start, end int } // a key in arena
	const linearKeys = 16
	var (
		stackBuf [maxJSONDepth]frame
		keyBuf   [64]span
		arenaBuf [1024]byte
		stack    = stackBuf[:0]
		keys     = keyBuf[:0]   // the keys of the open objects, innermost last
		arena    = arenaBuf[:0] // their lower-cased bytes
		inObject bool           // the innermost open value is an object
		isKey    bool           // the next string is a key
	)
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '{', '[':
			if len(stack) == maxJSONDepth {
				return badRequest(scimerrors.ScimTypeInvalidSyntax, "The request body is nested too deeply.")
			}
			stack = append(stack, frame{object: c == '{', keyStart: len(keys)})
			inObject, isKey = c == '{', c == '{'
		case '}', ']':
			keys = keys[:stack[len(stack)-1].keyStart]
			if len(keys) > 0 {
				arena = arena[:keys[len(keys)-1].end]
			} else {
				arena = arena[:0]
			}
			stack = stack[:len(stack)-1]
			inObject = len(stack) > 0 && stack[len(stack)-1].object
			isKey = false
		case ',':
			isKey = inObject
		case '"':
			end, plain := stringEnd(body, i)
			if isKey {
				raw := body[i : end+1]
				start := len(arena)
				arena = appendLowerKey(arena, raw, plain)
				key := arena[start:]
				top := &stack[len(stack)-1]
				dup := false
				if top.set != nil {
					_, dup = top.set[string(key)]
				} else {
					for _, k := range keys[top.keyStart:] {
						if bytes.Equal(arena[k.start:k.end], key) {
							dup = true
							break
						}
					}
				}
				if dup {
					var k string
					_ = json.Unmarshal(raw, &k)
					return badRequest(scimerrors.ScimTypeInvalidSyntax, fmt.Sprintf("The key %q appears twice in one object.", k))
				}
				switch {
				case top.set != nil:
					top.set[string(key)] = struct{}{}
					arena = arena[:start]
				case len(keys)-top.keyStart == linearKeys:
					// Many keys: a set, so that a large object is not checked in quadratic time.
					top.set = make(map[string]struct{}, 2*linearKeys)
					for _, k := range keys[top.keyStart:] {
						top.set[string(arena[k.start:k.end])] = struct{}{}
					}
					top.set[string(key)] = struct{}{}
					arena = arena[:start]
				default:
					keys = append(keys, span{start, len(arena)})
				}
				isKey = false
			}
			i = end
		}
	}
	return nil
}

// stringEnd returns the index of the quote closing the JSON string that opens at start, and
// whether the string is plain: printable ASCII without escapes. body is valid JSON.
func stringEnd(body []byte, start int) (end int, plain bool) {
	plain = true
	for i := start + 1; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"':
			return i, plain
		case c == '\\':
			plain = false
			i++ // the escaped character (for \uXXXX the hex digits are no quotes)
		case c >= 0x80:
			plain = false
		}
	}
	return len(body) - 1, plain // not reached for valid JSON
}

// appendLowerKey appends strings.ToLower of the key the quoted JSON string raw decodes to.
func appendLowerKey(dst, raw []byte, plain bool) []byte {
	if !plain {
		var s string
		_ = json.Unmarshal(raw, &s)
		return append(dst, strings.ToLower(s)...)
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
