package scim

import (
	"strings"
	"sync"
	"unicode/utf8"

	filter "github.com/scim2/filter-parser/v2"
)

// The filter grammar's parser (github.com/scim2/filter-parser over github.com/di-wu/parser)
// allocates heavily: parsing `userName eq "x"` or the PATCH attribute name `active` costs more
// than the rest of the request. The two shapes nearly every request has are recognised here
// directly, with the parser's exact result; everything else goes to the parser. FuzzParsePath
// and FuzzParseFilter check the results against the parser's.

// isAlpha and isNameChar are the grammar's ALPHA and nameChar ("-" / "_" / DIGIT / ALPHA).
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool {
	return isAlpha(c) || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// plainAttrPath recognises ATTRNAME ["." ATTRNAME] (no URI prefix, no "$") at the start of s
// and returns the attribute path and the length taken; n is 0 when s does not start so.
func plainAttrPath(s string) (ap filter.AttributePath, n int) {
	name := func(i int) int { // the end of an attribute name starting at i, or -1
		if i >= len(s) || !isAlpha(s[i]) {
			return -1
		}
		i++
		for i < len(s) && isNameChar(s[i]) {
			i++
		}
		return i
	}
	end := name(0)
	if end < 0 {
		return ap, 0
	}
	ap.AttributeName = s[:end]
	if end < len(s) && s[end] == '.' {
		subEnd := name(end + 1)
		if subEnd < 0 {
			return filter.AttributePath{}, 0
		}
		sub := s[end+1 : subEnd]
		ap.SubAttribute = &sub
		end = subEnd
	}
	if end < len(s) && (s[end] == ':' || s[end] == '.') {
		// A URI prefix ("urn:...:name") or something else the grammar treats differently.
		return filter.AttributePath{}, 0
	}
	return ap, end
}

// pathCache keeps the parser's results for the attribute paths that are not plain names
// (URN-qualified extension attributes, value filters), bounded in entries and key length.
var pathCache = struct {
	sync.Mutex
	m map[string]pathResult
}{m: map[string]pathResult{}}

// maxCachedPaths bounds the entries of pathCache, and maxCachedPathLen the paths worth keeping.
const (
	maxCachedPaths   = 1024
	maxCachedPathLen = 256
)

type pathResult struct {
	path filter.Path
	err  error
}

// parsePath is filter.ParsePath.
func parsePath(s string) (filter.Path, error) {
	if ap, n := plainAttrPath(s); n > 0 && n == len(s) {
		return filter.Path{AttributePath: ap}, nil
	}
	pathCache.Lock()
	r, ok := pathCache.m[s]
	pathCache.Unlock()
	if ok {
		return clonePath(r.path), r.err
	}
	p, err := filter.ParsePath([]byte(s))
	if len(s) <= maxCachedPathLen {
		pathCache.Lock()
		if len(pathCache.m) < maxCachedPaths {
			pathCache.m[s] = pathResult{path: p, err: err}
		}
		pathCache.Unlock()
	}
	return clonePath(p), err
}

// clonePath copies the parts of a path a caller could change through its pointers, so that a
// cached path is never changed. (Value filters are read only.)
func clonePath(p filter.Path) filter.Path {
	if p.AttributePath.URIPrefix != nil {
		u := *p.AttributePath.URIPrefix
		p.AttributePath.URIPrefix = &u
	}
	if p.AttributePath.SubAttribute != nil {
		s := *p.AttributePath.SubAttribute
		p.AttributePath.SubAttribute = &s
	}
	if p.SubAttribute != nil {
		s := *p.SubAttribute
		p.SubAttribute = &s
	}
	return p
}

// compareOps are the grammar's compareOp, matched case-insensitively ("pr" takes no value).
var compareOps = []filter.CompareOperator{filter.EQ, filter.NE, filter.CO, filter.SW, filter.EW, filter.GT, filter.LT,
	filter.GE, filter.LE}

// parseFilter is filter.ParseFilter.
func parseFilter(f string) (filter.Expression, error) {
	if e, ok := simpleFilter(f); ok {
		return e, nil
	}
	return filter.ParseFilter([]byte(f))
}

// simpleFilter recognises ATTRPATH SP COMPAREOP SP STRING, single spaces, with a plain
// attribute path and a string without escapes or control characters: the lookups IdPs make.
func simpleFilter(f string) (filter.Expression, bool) {
	ap, n := plainAttrPath(f)
	if n == 0 || n+4 > len(f) || f[n] != ' ' || f[n+3] != ' ' {
		return nil, false
	}
	var op filter.CompareOperator
	for _, o := range compareOps {
		if strings.EqualFold(f[n+1:n+3], string(o)) {
			op = o
			break
		}
	}
	v := f[n+4:]
	if op == "" || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	v = v[1 : len(v)-1]
	if !utf8.ValidString(v) {
		return nil, false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' {
			return nil, false
		}
	}
	return &filter.AttributeExpression{AttributePath: ap, Operator: op, CompareValue: v}, true
}
