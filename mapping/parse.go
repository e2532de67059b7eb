package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

var topKeys = []string{"version", "friendly_name", "owns", "roles", "attributes", "inactive", "sources", "claims"}

// maxValueDepth bounds the nesting of a structured attribute value.
const maxValueDepth = 16

// Parse parses and validates a mapping file. Unknown keys are rejected, and
// every problem found is reported at once in a *ValidationError.
func Parse(data []byte) (*Config, error) {
	p := &parser{}
	c := p.parse(data)
	if len(p.problems) > 0 {
		slices.SortStableFunc(p.problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &ValidationError{Problems: p.problems}
	}
	return c, nil
}

type parser struct {
	problems []Problem
}

func (p *parser) add(path string, n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.problems = append(p.problems, Problem{Path: path, Line: line, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) parse(data []byte) *Config {
	if len(data) > MaxConfigSize {
		p.add("", nil, "file is larger than %d bytes", MaxConfigSize)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add("", nil, "file is empty")
		} else {
			p.add("", nil, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		p.add("", nil, "only one YAML document is allowed")
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	top, ok := p.fields(root, "", topKeys...)
	if !ok {
		return nil
	}
	c := &Config{inactive: InactiveDelete}

	if n := p.required(top, "version", root, ""); n != nil {
		var v int
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil || v != 1 {
			p.add("version", n, "must be 1")
		}
	}
	if n := p.required(top, "friendly_name", root, ""); n != nil {
		if src, ok := p.str(n, "friendly_name"); ok {
			t, err := compileTemplate("friendly_name", src)
			if err != nil {
				p.add("friendly_name", n, "%v", err)
			}
			c.friendlyName = t
		}
	}
	owned := map[string]bool{}
	if n := top["owns"]; n != nil {
		keys, _ := p.strList(n, "owns")
		for i, k := range keys {
			path := fmt.Sprintf("owns[%d]", i)
			item := n.Content[i]
			if !p.checkKey(path, item, k) {
				continue
			}
			if owned[k] {
				p.add(path, item, "%q is listed twice", k)
				continue
			}
			owned[k] = true
			c.owned = append(c.owned, k)
		}
		slices.Sort(c.owned)
	}
	if n := p.required(top, "roles", root, ""); n != nil {
		p.roles(c, n)
	}
	if n := top["attributes"]; n != nil {
		p.attributes(c, n, owned)
	}
	if n := top["sources"]; n != nil {
		p.sources(c, n)
	}
	if n := top["claims"]; n != nil {
		valued := map[string]bool{}
		for _, a := range c.attrs {
			valued[a.key] = true
		}
		p.parseClaims(c, n, owned, valued)
	}
	if n := top["inactive"]; n != nil {
		if s, ok := p.str(n, "inactive"); ok && s != InactiveDelete {
			p.add("inactive", n, "must be %q", InactiveDelete)
		}
	}
	return c
}

func (p *parser) roles(c *Config, n *yaml.Node) {
	f, ok := p.fields(n, "roles", "default", "rules", "insights")
	if !ok {
		return
	}
	c.insights = InsightsWarn
	if in := f["insights"]; in != nil {
		if v, ok := p.str(in, "roles.insights"); ok {
			switch v {
			case InsightsWarn, InsightsStrip:
				c.insights = v
			default:
				p.add("roles.insights", in, "must be %q or %q", InsightsWarn, InsightsStrip)
			}
		}
	}
	before := len(p.problems)
	baseGranted := false
	if d := f["default"]; d != nil {
		roles, ok := p.strList(d, "roles.default")
		if ok {
			c.defaultRoles = p.roleList(d, "roles.default", roles)
			if len(c.defaultRoles) > 0 && !slices.ContainsFunc(c.defaultRoles, IsBaseRole) {
				p.add("roles.default", d, "must include a base role (admin, supervisor or agent), or be empty to deny access to users no rule grants one")
			}
			baseGranted = len(c.defaultRoles) > 0
		}
	}
	if rs := f["rules"]; rs != nil {
		if rs.Kind != yaml.SequenceNode {
			p.add("roles.rules", rs, "must be a list of rules")
		} else {
			for i, rn := range rs.Content {
				path := fmt.Sprintf("roles.rules[%d]", i)
				if r, ok := p.rule(rn, path); ok {
					c.rules = append(c.rules, r)
					baseGranted = baseGranted || slices.ContainsFunc(r.grant, IsBaseRole)
				}
			}
		}
	}
	if !baseGranted && len(p.problems) == before {
		p.add("roles", n, "no rule and no default grants a base role (admin, supervisor or agent): nobody could log in to Flex")
	}
}

func (p *parser) rule(n *yaml.Node, path string) (rule, bool) {
	var r rule
	f, ok := p.fields(n, path, "when", "grant")
	if !ok {
		return r, false
	}
	before := len(p.problems)
	if w := p.required(f, "when", n, path); w != nil {
		p.when(&r, w, path+".when")
	}
	if g := p.required(f, "grant", n, path); g != nil {
		if roles, ok := p.strList(g, path+".grant"); ok {
			r.grant = p.roleList(g, path+".grant", roles)
			if len(roles) == 0 {
				p.add(path+".grant", g, "must grant at least one role")
			}
		}
	}
	return r, len(p.problems) == before
}

func (p *parser) when(r *rule, n *yaml.Node, path string) {
	f, ok := p.fields(n, path, "group", "attribute", "equals", "in")
	if !ok {
		return
	}
	if len(f) == 0 {
		p.add(path, n, "needs a condition: group, or attribute with equals or in")
		return
	}
	if g := f["group"]; g != nil {
		if s, ok := p.str(g, path+".group"); ok {
			r.group = strings.TrimSpace(s)
			if r.group == "" {
				p.add(path+".group", g, "must not be empty")
			}
		}
	}
	eq, in := f["equals"], f["in"]
	a := f["attribute"]
	if a == nil {
		if eq != nil {
			p.add(path+".equals", eq, "needs attribute")
		}
		if in != nil {
			p.add(path+".in", in, "needs attribute")
		}
		return
	}
	if s, ok := p.str(a, path+".attribute"); ok {
		if name, isExtra := strings.CutPrefix(s, extraPrefix); isExtra {
			if name == "" {
				p.add(path+".attribute", a, "names no IdP attribute after %q", extraPrefix)
			}
			r.attribute = s
		} else if _, known := attributeNames[strings.ToLower(s)]; known {
			r.attribute = strings.ToLower(s)
		} else {
			p.add(path+".attribute", a, "unknown attribute %q; expected one of %s or %s<IdP attribute name>",
				s, strings.Join(AttributeNames(), ", "), extraPrefix)
		}
	}
	switch {
	case eq != nil && in != nil:
		p.add(path+".in", in, "use either equals or in, not both")
	case eq != nil:
		if s, ok := p.str(eq, path+".equals"); ok {
			p.matchValue(r, eq, path+".equals", s)
		}
	case in != nil:
		if vals, ok := p.strList(in, path+".in"); ok {
			if len(vals) == 0 {
				p.add(path+".in", in, "must list at least one value")
			}
			for i, v := range vals {
				p.matchValue(r, in.Content[i], fmt.Sprintf("%s.in[%d]", path, i), v)
			}
		}
	default:
		p.add(path+".attribute", a, "needs equals or in")
	}
}

func (p *parser) matchValue(r *rule, n *yaml.Node, path, v string) {
	v = strings.TrimSpace(v)
	if v == "" {
		p.add(path, n, "must not be empty")
		return
	}
	r.values = append(r.values, v)
}

// roleList validates roles and returns them sorted and deduplicated.
func (p *parser) roleList(n *yaml.Node, path string, roles []string) []string {
	var out []string
	for i, r := range roles {
		if !ValidRole(r) {
			p.add(fmt.Sprintf("%s[%d]", path, i), n.Content[i], "unknown role %q; expected admin, supervisor, agent or wfo.<name>", r)
			continue
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (p *parser) attributes(c *Config, n *yaml.Node, owned map[string]bool) {
	f, ok := p.fields(n, "attributes")
	if !ok {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := kn.Value
		if f[key] != vn { // duplicate key, already reported
			continue
		}
		path := joinPath("attributes", key)
		if !p.checkKey(path, kn, key) {
			continue
		}
		if !owned[key] {
			p.add(path, kn, "%q is not listed in owns", key)
		}
		if vn.Kind == yaml.ScalarNode && vn.ShortTag() == "!!null" {
			p.add(path, vn, "has no value: use \"\" to clear the key, or drop this line to remove the key from workers")
			continue
		}
		if key == "contact_uri" && (vn.Kind != yaml.ScalarNode || vn.ShortTag() != "!!str") {
			p.add(path, vn, "must be a string template")
			continue
		}
		v := p.value(vn, path, 0)
		if v != nil {
			c.attrs = append(c.attrs, attribute{key: key, val: v})
		}
	}
	slices.SortFunc(c.attrs, func(a, b attribute) int { return strings.Compare(a.key, b.key) })
}

// checkKey validates a top-level worker attribute key.
func (p *parser) checkKey(path string, n *yaml.Node, key string) bool {
	switch {
	case strings.Contains(key, "-"):
		p.add(path, n, "attribute key %q contains '-'; TaskRouter does not allow hyphens in attribute keys", key)
	case reservedKeys[key] != "":
		p.add(path, n, "%s", reservedKeys[key])
	case !keyRE.MatchString(key):
		p.add(path, n, "attribute key %q must be letters, digits and '_', not starting with a digit", key)
	default:
		return true
	}
	return false
}

// value compiles a structured attribute value: strings are templates, other
// scalars keep their YAML type, lists and maps nest.
func (p *parser) value(n *yaml.Node, path string, depth int) value {
	if depth > maxValueDepth {
		p.add(path, n, "nested deeper than %d levels", maxValueDepth)
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case "!!str", "!!timestamp":
			t, err := compileTemplate(path, n.Value)
			if err != nil {
				p.add(path, n, "%v", err)
				return nil
			}
			return tmplValue{t}
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil {
				p.add(path, n, "integer %s out of range", n.Value)
				return nil
			}
			return constValue{i}
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				p.add(path, n, "number %s cannot be written as JSON", n.Value)
				return nil
			}
			return constValue{f}
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				p.add(path, n, "invalid boolean %s", n.Value)
				return nil
			}
			return constValue{b}
		case "!!null":
			return constValue{nil}
		default:
			p.add(path, n, "unsupported YAML tag %s", tag)
			return nil
		}
	case yaml.SequenceNode:
		if n.ShortTag() != "!!seq" {
			p.add(path, n, "unsupported YAML tag %s", n.ShortTag())
			return nil
		}
		out := make(listValue, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			v := p.value(item, fmt.Sprintf("%s[%d]", path, i), depth+1)
			ok = ok && v != nil
			out = append(out, v)
		}
		if !ok {
			return nil
		}
		return out
	case yaml.MappingNode:
		f, fok := p.fields(n, path)
		if !fok {
			return nil
		}
		out := mapValue{}
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if f[kn.Value] != vn {
				continue
			}
			kp := joinPath(path, kn.Value)
			if kn.Value == "" || strings.Contains(kn.Value, "-") {
				p.add(kp, kn, "attribute key %q must be non-empty and contain no '-'", kn.Value)
				ok = false
				continue
			}
			v := p.value(vn, kp, depth+1)
			ok = ok && v != nil
			out.keys = append(out.keys, kn.Value)
			out.vals = append(out.vals, v)
		}
		if !ok {
			return nil
		}
		return out
	case yaml.AliasNode:
		p.add(path, n, "YAML aliases are not supported")
	default:
		p.add(path, n, "unsupported YAML node")
	}
	return nil
}

// fields checks that n is a mapping with unique scalar keys, all among
// allowed (any key when allowed is empty), and returns the values by key.
func (p *parser) fields(n *yaml.Node, path string, allowed ...string) (map[string]*yaml.Node, bool) {
	if !p.kind(n, path, yaml.MappingNode, "a mapping") {
		return nil, false
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			p.add(path, kn, "keys must be plain strings")
			continue
		}
		kp := joinPath(path, kn.Value)
		if len(allowed) > 0 && !slices.Contains(allowed, kn.Value) {
			p.add(kp, kn, "unknown key %q; expected one of %s", kn.Value, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[kn.Value]; dup {
			p.add(kp, kn, "duplicate key %q", kn.Value)
			continue
		}
		out[kn.Value] = vn
	}
	return out, true
}

func (p *parser) required(f map[string]*yaml.Node, key string, parent *yaml.Node, path string) *yaml.Node {
	n := f[key]
	if n == nil {
		p.add(joinPath(path, key), parent, "is required")
	}
	return n
}

func (p *parser) kind(n *yaml.Node, path string, kind yaml.Kind, what string) bool {
	if path == "" {
		what = "a mapping of the keys " + strings.Join(topKeys, ", ")
	}
	switch {
	case n.Kind == kind:
		return true
	case n.Kind == yaml.AliasNode:
		p.add(path, n, "YAML aliases are not supported")
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		p.add(path, n, "must be %s, not empty", what)
	default:
		p.add(path, n, "must be %s", what)
	}
	return false
}

// str returns the text of a scalar. Any YAML scalar type is accepted as text
// (group: 2024 is the group named "2024"), except null and custom tags.
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if !p.kind(n, path, yaml.ScalarNode, "a string") {
		return "", false
	}
	switch tag := n.ShortTag(); tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return n.Value, true
	case "!!null":
		p.add(path, n, "must not be empty")
	default:
		p.add(path, n, "unsupported YAML tag %s", tag)
	}
	return "", false
}

// strList returns the items of a list of strings; ok is false if any item
// is not a string (each is reported).
func (p *parser) strList(n *yaml.Node, path string) ([]string, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, true // "key:" with no value is an empty list
	}
	if !p.kind(n, path, yaml.SequenceNode, "a list") {
		return nil, false
	}
	out := make([]string, len(n.Content))
	ok := true
	for i, item := range n.Content {
		s, sok := p.str(item, fmt.Sprintf("%s[%d]", path, i))
		out[i] = s
		ok = ok && sok
	}
	return out, ok
}

// joinPath appends key to path, quoting keys that are not identifiers.
func joinPath(path, key string) string {
	if !keyRE.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
