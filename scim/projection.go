package scim

import (
	"net/url"
	"strings"
)

// alwaysReturned are never removed by attributes/excludedAttributes (RFC 7643 §7: returned
// "always"; meta and schemas are kept so answers stay self-describing).
var alwaysReturned = map[string]bool{"id": true, "schemas": true, "meta": true}

// attrRef is one entry of an attributes/excludedAttributes list: an optional schema URN, an
// attribute and an optional sub-attribute.
type attrRef struct{ uri, name, sub string }

func parseAttrList(s string) []attrRef {
	var out []attrRef
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var ref attrRef
		if strings.HasPrefix(strings.ToLower(item), "urn:") {
			i := strings.LastIndex(item, ":")
			ref.uri, item = item[:i], item[i+1:]
		}
		ref.name, ref.sub, _ = strings.Cut(item, ".")
		out = append(out, ref)
	}
	return out
}

// project applies RFC 7644 §3.4.2.5 attributes / excludedAttributes to a served resource.
func project(res map[string]any, q url.Values) {
	if incl := parseAttrList(q.Get("attributes")); len(incl) > 0 {
		keep := map[string]any{}
		for k, v := range res {
			if alwaysReturned[strings.ToLower(k)] {
				keep[k] = v
			}
		}
		for _, ref := range incl {
			src, dst := containerPair(res, keep, ref.uri)
			if src == nil {
				continue
			}
			k := findKey(src, ref.name)
			v, ok := src[k]
			if !ok {
				continue
			}
			if ref.sub == "" {
				dst[k] = v
				continue
			}
			copySub(src, dst, k, ref.sub)
		}
		for k := range res {
			delete(res, k)
		}
		for k, v := range keep {
			res[k] = v
		}
		return
	}
	for _, ref := range parseAttrList(q.Get("excludedAttributes")) {
		c, top := res, true
		if ref.uri != "" && !strings.EqualFold(ref.uri, userSchema) && !strings.EqualFold(ref.uri, groupSchema) {
			top = false
			c, _ = res[findKey(res, ref.uri)].(map[string]any)
		}
		if c == nil {
			continue
		}
		k := findKey(c, ref.name)
		if top && alwaysReturned[strings.ToLower(k)] {
			continue
		}
		if ref.sub == "" {
			delete(c, k)
			continue
		}
		switch v := c[k].(type) {
		case map[string]any:
			delete(v, findKey(v, ref.sub))
		case []any:
			for _, el := range v {
				if m, ok := el.(map[string]any); ok {
					delete(m, findKey(m, ref.sub))
				}
			}
		}
	}
}

// containerPair returns the object holding attributes of the schema uri in the source resource
// and the matching (created on demand) object in the projection.
func containerPair(src, dst map[string]any, uri string) (map[string]any, map[string]any) {
	if uri == "" || strings.EqualFold(uri, userSchema) || strings.EqualFold(uri, groupSchema) {
		return src, dst
	}
	k := findKey(src, uri)
	s, ok := src[k].(map[string]any)
	if !ok {
		return nil, nil
	}
	d, ok := dst[k].(map[string]any)
	if !ok {
		d = map[string]any{}
		dst[k] = d
	}
	return s, d
}

// copySub copies attribute k's sub-attribute sub from src to dst (for a list, from each element).
func copySub(src, dst map[string]any, k, sub string) {
	switch v := src[k].(type) {
	case map[string]any:
		d, _ := dst[k].(map[string]any)
		if d == nil {
			d = map[string]any{}
			dst[k] = d
		}
		sk := findKey(v, sub)
		if sv, ok := v[sk]; ok {
			d[sk] = sv
		}
	case []any:
		d, _ := dst[k].([]any)
		if len(d) != len(v) {
			d = make([]any, len(v))
			for i := range d {
				d[i] = map[string]any{}
			}
		}
		for i, el := range v {
			if m, ok := el.(map[string]any); ok {
				sk := findKey(m, sub)
				if sv, ok := m[sk]; ok {
					d[i].(map[string]any)[sk] = sv
				}
			}
		}
		dst[k] = d
	}
}
