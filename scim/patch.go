package scim

import (
	"fmt"
	"strings"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	filter "github.com/scim2/filter-parser/v2"
)

// applyPatch applies validated PATCH operations (RFC 7644 §3.5.2) to a resource held as a
// JSON-like map. Attribute names match case-insensitively; the stored spelling is kept.
// Operations come from elimity-com/scim, which lower-cases ops, strips an embedded "id" from
// value maps, and wraps values of multi-valued targets in a slice.
func applyPatch(res map[string]any, ops []elimity.PatchOperation) error {
	for i, op := range ops {
		if err := applyOp(res, op); err != nil {
			return fmt.Errorf("operation %d: %w", i, err)
		}
	}
	return nil
}

func applyOp(res map[string]any, op elimity.PatchOperation) error {
	if op.Path == nil {
		if op.Op == elimity.PatchOperationRemove {
			return badRequest(scimerrors.ScimTypeNoTarget, "A remove operation needs a path.")
		}
		values, ok := op.Value.(map[string]any)
		if !ok {
			return badRequest(scimerrors.ScimTypeInvalidValue, "An operation without a path needs an object value.")
		}
		for key, v := range values {
			p, err := parsePath(key)
			if err != nil {
				return badRequest(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("Invalid attribute %q.", key))
			}
			if err := applyPath(res, p, op.Op, v); err != nil {
				return err
			}
		}
		return nil
	}
	return applyPath(res, *op.Path, op.Op, op.Value)
}

// container returns the map that holds the attribute the path names: the resource itself, or
// the schema extension object named by the path's URI prefix (created when create is true).
func container(res map[string]any, ap filter.AttributePath, create bool) map[string]any {
	uri := ap.URI()
	if uri == "" || strings.EqualFold(uri, userSchema) {
		return res
	}
	key := findKey(res, uri)
	if m, ok := res[key].(map[string]any); ok {
		return m
	}
	if !create {
		return nil
	}
	m := map[string]any{}
	res[uri] = m
	return m
}

func applyPath(res map[string]any, p filter.Path, op string, value any) error {
	ap := p.AttributePath
	c := container(res, ap, op != elimity.PatchOperationRemove)
	if c == nil { // removing from an extension that is not there: nothing to do
		return nil
	}
	name := findKey(c, ap.AttributeName)

	if p.ValueExpression != nil {
		return applyFiltered(c, name, p, op, value)
	}

	if sub := ap.SubAttributeName(); sub != "" {
		if list, ok := c[name].([]any); ok || multiValued[strings.ToLower(name)] {
			// emails.value and the like, without a filter: every element's sub-attribute
			// (a new single element when there is none yet).
			return applySubToAll(c, name, list, sub, op, value)
		}
		parent, _ := c[name].(map[string]any)
		if parent == nil {
			if op == elimity.PatchOperationRemove {
				return nil
			}
			parent = map[string]any{}
			c[name] = parent
		}
		subKey := findKey(parent, sub)
		if op == elimity.PatchOperationRemove || isEmpty(value) {
			delete(parent, subKey)
			if len(parent) == 0 {
				delete(c, name)
			}
			return nil
		}
		parent[subKey] = value
		return nil
	}

	switch op {
	case elimity.PatchOperationRemove:
		if list, ok := c[name].([]any); ok && value != nil {
			// Entra removes members with a value list: drop only the listed elements.
			c[name] = removeElements(list, asList(value))
			if len(c[name].([]any)) == 0 {
				delete(c, name)
			}
			return nil
		}
		delete(c, name)
	case elimity.PatchOperationAdd:
		if isEmpty(value) {
			return nil
		}
		switch cur := c[name].(type) {
		case []any:
			c[name] = appendUnique(cur, asList(value))
		case map[string]any:
			if m, ok := value.(map[string]any); ok {
				mergeInto(cur, m)
				return nil
			}
			c[name] = value
		default:
			c[name] = value
		}
	default: // replace
		if isEmpty(value) {
			delete(c, name)
			return nil
		}
		if cur, ok := c[name].(map[string]any); ok {
			if m, ok := value.(map[string]any); ok {
				mergeInto(cur, m)
				return nil
			}
		}
		c[name] = value
	}
	return nil
}

func applySubToAll(c map[string]any, name string, list []any, sub, op string, value any) error {
	if len(list) == 0 {
		if op == elimity.PatchOperationRemove || isEmpty(value) {
			return nil
		}
		c[name] = []any{map[string]any{sub: value}}
		return nil
	}
	for _, el := range list {
		m, ok := el.(map[string]any)
		if !ok {
			continue
		}
		k := findKey(m, sub)
		if op == elimity.PatchOperationRemove || isEmpty(value) {
			delete(m, k)
		} else {
			m[k] = value
		}
	}
	return nil
}

// applyFiltered handles paths such as emails[type eq "work"].value.
func applyFiltered(c map[string]any, name string, p filter.Path, op string, value any) error {
	list, _ := c[name].([]any)
	sub := p.SubAttributeName()
	matched := false
	var kept []any
	for _, el := range list {
		m, ok := el.(map[string]any)
		if !ok {
			kept = append(kept, el)
			continue
		}
		hit, err := matches(m, p.ValueExpression)
		if err != nil {
			return err
		}
		if !hit {
			kept = append(kept, el)
			continue
		}
		matched = true
		switch {
		case op == elimity.PatchOperationRemove && sub == "":
			continue // drop the element
		case op == elimity.PatchOperationRemove:
			delete(m, findKey(m, sub))
		case sub != "":
			if isEmpty(value) {
				delete(m, findKey(m, sub))
			} else {
				m[findKey(m, sub)] = value
			}
		default:
			if v, ok := single(value).(map[string]any); ok {
				mergeInto(m, v)
			}
		}
		kept = append(kept, el)
	}
	if !matched && op != elimity.PatchOperationRemove && !isEmpty(value) {
		// Add-if-missing (Entra sends add/replace on emails[type eq "work"].value for a user
		// without a work email): build the element from the filter's equality terms.
		el, ok := elementFromFilter(p.ValueExpression)
		if !ok {
			return badRequest(scimerrors.ScimTypeNoTarget, fmt.Sprintf("No value of %s matches the filter.", name))
		}
		if sub != "" {
			el[sub] = value
		} else if v, ok := single(value).(map[string]any); ok {
			mergeInto(el, v)
		}
		kept = append(kept, el)
	}
	if len(kept) == 0 {
		delete(c, name)
	} else {
		c[name] = kept
	}
	return nil
}

// matches evaluates the small filter language allowed inside a value path against one element.
func matches(el map[string]any, e filter.Expression) (bool, error) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		got, present := el[findKey(el, e.AttributePath.AttributeName)]
		switch e.Operator {
		case filter.PR:
			return present && !isEmpty(got), nil
		case filter.EQ:
			return equalFold(got, e.CompareValue), nil
		case filter.NE:
			return !equalFold(got, e.CompareValue), nil
		}
		return false, badRequest(scimerrors.ScimTypeInvalidFilter, "Only eq, ne and pr are supported in a PATCH path filter.")
	case *filter.LogicalExpression:
		l, err := matches(el, e.Left)
		if err != nil {
			return false, err
		}
		r, err := matches(el, e.Right)
		if err != nil {
			return false, err
		}
		if e.Operator == filter.AND {
			return l && r, nil
		}
		return l || r, nil
	case *filter.NotExpression:
		v, err := matches(el, e.Expression)
		return !v, err
	}
	return false, badRequest(scimerrors.ScimTypeInvalidFilter, "Unsupported PATCH path filter.")
}

func elementFromFilter(e filter.Expression) (map[string]any, bool) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		if e.Operator != filter.EQ {
			return nil, false
		}
		return map[string]any{e.AttributePath.AttributeName: e.CompareValue}, true
	case *filter.LogicalExpression:
		if e.Operator != filter.AND {
			return nil, false
		}
		l, ok := elementFromFilter(e.Left)
		if !ok {
			return nil, false
		}
		r, ok := elementFromFilter(e.Right)
		if !ok {
			return nil, false
		}
		mergeInto(l, r)
		return l, true
	}
	return nil, false
}

func equalFold(a, b any) bool {
	as, aok := a.(string)
	bs, bok := b.(string)
	if aok && bok {
		return strings.EqualFold(as, bs)
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// findKey returns the key of m that equals name case-insensitively, or name itself.
func findKey(m map[string]any, name string) string {
	if _, ok := m[name]; ok {
		return name
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	}
	return false
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func single(v any) any {
	if l, ok := v.([]any); ok && len(l) == 1 {
		return l[0]
	}
	return v
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		key := findKey(dst, k)
		if isEmpty(v) {
			delete(dst, key)
			continue
		}
		dst[key] = v
	}
}

// elementKey identifies a multi-valued element for de-duplication: its "value" (compared
// case-insensitively) when it has one, else its whole printed form.
func elementKey(el any) string {
	if m, ok := el.(map[string]any); ok {
		if v, has := m[findKey(m, "value")]; has {
			if s, ok := v.(string); ok {
				return "v:" + strings.ToLower(s)
			}
			return "v:" + fmt.Sprint(v)
		}
	}
	return "x:" + fmt.Sprint(el)
}

// appendUnique adds the elements of add not already in list (linear in both lengths).
func appendUnique(list, add []any) []any {
	seen := make(map[string]bool, len(list)+len(add))
	for _, cur := range list {
		seen[elementKey(cur)] = true
	}
	for _, a := range add {
		if k := elementKey(a); !seen[k] {
			seen[k] = true
			list = append(list, a)
		}
	}
	return list
}

// removeElements drops from list every element that matches one of drop.
func removeElements(list, drop []any) []any {
	gone := make(map[string]bool, len(drop))
	for _, d := range drop {
		gone[elementKey(d)] = true
	}
	out := list[:0:0]
	for _, cur := range list {
		if !gone[elementKey(cur)] {
			out = append(out, cur)
		}
	}
	return out
}
