package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads the YAML file at path and returns the configuration it
// describes, with ${ENV} references expanded from the process environment,
// defaults applied and every setting validated. With path "" it returns
// [Default] (validated). A configuration problem is returned as an error
// wrapping an [*Error].
func Load(path string) (*Config, error) {
	if path == "" {
		c := Default()
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a YAML configuration, strictly: unknown keys, duplicate
// keys, values of the wrong type and unset environment references are all
// problems. Then it applies defaults and validates. Every problem found is
// returned at once in an [*Error].
//
// String values may reference the environment, looked up with lookupEnv
// (nil means an empty environment):
//
//	${NAME}            the value of NAME; a problem if NAME is unset
//	${NAME:-default}   the value of NAME, or default if NAME is unset or empty
//	$${                a literal "${"
//
// References are expanded inside scalar values after YAML parsing, so an
// environment value can never change the structure of the file. A "$" not
// followed by "{" is kept as is; defaults cannot nest references.
//
// A key set to null (or left empty) keeps its default, as does an empty
// server.public_url, sqlite store.dsn, saml.sp.entity_id, saml.sp.key_file
// or saml.sp.cert_file. server.public_url and twilio.api_base_url are stored
// without a trailing slash.
//
// A list (saml.idps) replaces its default as a whole; each item is decoded
// as strictly as the rest, with paths like "saml.idps[0].name". An empty
// list is stored as nil.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	p := &parser{lookupEnv: lookupEnv, lines: map[string]int{}, failed: map[string]bool{}, fromEnv: map[string]string{}}
	c := base()
	if root := p.document(data); root != nil {
		p.decode(root, reflect.ValueOf(c).Elem(), "", schema)
	}
	c.Server.PublicURL = strings.TrimSuffix(c.Server.PublicURL, "/")
	c.Twilio.APIBaseURL = strings.TrimSuffix(c.Twilio.APIBaseURL, "/")
	c.applyDerivedDefaults()
	if c.Server.PublicURL == "" {
		// Not set, and not derivable from an invalid server.listen: the
		// listen problem says what to fix.
		p.failed["server.public_url"] = true
	}

	for _, pr := range c.problems(p.hidden, p.broken) {
		if p.broken(pr.Path) {
			continue // already reported while decoding, e.g. an unset ${VAR}
		}
		line := p.line(pr.Path)
		pr.Message += lineSuffix(line)
		p.problems = append(p.problems, located{pr, line})
	}
	if len(p.problems) == 0 {
		return c, nil
	}
	// File order: problems with the whole file first, then by line, then
	// those about keys absent from the file.
	rank := func(l located) int {
		switch {
		case l.Path == "":
			return -1
		case l.line == 0:
			return math.MaxInt
		}
		return l.line
	}
	slices.SortStableFunc(p.problems, func(a, b located) int { return cmp.Compare(rank(a), rank(b)) })
	problems := make([]Problem, len(p.problems))
	for i, l := range p.problems {
		problems[i] = l.Problem
	}
	return nil, &Error{Problems: redact(problems, c.secrets())}
}

// located is a Problem and the line it is about (0 if unknown).
type located struct {
	Problem
	line int
}

// parser decodes a yaml.Node tree onto a Config, collecting problems.
type parser struct {
	lookupEnv func(string) (string, bool)
	problems  []located
	lines     map[string]int  // key path -> line of its key
	failed    map[string]bool // key paths whose value could not be decoded
	// fromEnv maps a key path whose value was taken (at least in part)
	// from the environment to the variables used, like "${A}, ${B}". Such
	// values are never shown in messages: the environment holds secrets.
	fromEnv map[string]string
}

// broken reports whether the value at path, or one it is part of, could not
// be decoded (and was reported): validation says nothing more about it.
func (p *parser) broken(path string) bool {
	if p.failed[path] {
		return true
	}
	for i := 0; i < len(path); i++ {
		if (path[i] == '.' || path[i] == '[') && p.failed[path[:i]] {
			return true
		}
	}
	return false
}

// line is the line of the key at path; for a key absent from a list item,
// the line where the item starts; 0 if unknown.
func (p *parser) line(path string) int {
	if l := p.lines[path]; l > 0 {
		return l
	}
	if i := strings.LastIndexByte(path, ']'); i > 0 {
		return p.lines[path[:i+1]]
	}
	return 0
}

// hidden describes the value at path when it came from the environment.
func (p *parser) hidden(path string) string {
	if refs, ok := p.fromEnv[path]; ok {
		return "the value of " + refs
	}
	return ""
}

// show renders a decoded value at path for a message.
func (p *parser) show(path, v string) string {
	if d := p.hidden(path); d != "" {
		return d + " (not shown)"
	}
	return quote(v)
}

func (p *parser) add(path string, line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...) + lineSuffix(line)
	p.problems = append(p.problems, located{Problem{Path: path, Message: msg}, line})
}

// fail records a problem with a value; validation does not report the same
// key again.
func (p *parser) fail(path string, line int, format string, args ...any) {
	p.add(path, line, format, args...)
	p.failed[path] = true
}

func lineSuffix(line int) string {
	if line <= 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", line)
}

// document parses data and returns its top-level mapping, or nil when the
// document is empty or unusable (a problem is recorded for the latter).
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			p.add("", 0, "%s", yamlMessage(err))
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.add("", 0, "%s", yamlMessage(err))
	default:
		p.add("", next.Line, "the file must hold a single YAML document; found another")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	root = resolve(root)
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		p.add("", root.Line, "the top level must be a mapping of sections (%s), got %s", strings.Join(schema.keys, ", "), kindName(root))
		return nil
	}
	return root
}

// yamlMessage strips the "yaml: " prefix of a yaml.v3 error.
func yamlMessage(err error) string {
	return "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
}

// decode walks n onto v. For a struct it expects a mapping and reports
// unknown and duplicate keys with their paths; for a slice it expects a list
// and decodes every item; for a leaf it expands environment references and
// converts the scalar.
func (p *parser) decode(n *yaml.Node, v reflect.Value, path string, s *node) {
	n = resolve(n)
	if isNull(n) {
		return // keep the default
	}
	switch {
	case s.elem != nil:
		p.list(n, v, path, s)
		return
	case s.fields == nil:
		p.leaf(n, v, path)
		return
	}
	if n.Kind != yaml.MappingNode {
		p.fail(path, n.Line, "must be %s, got %s", s.describe(), kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.add(path, k.Line, "keys must be strings, got %s", kindName(k))
			continue
		}
		kp := joinPath(path, k.Value)
		if k.Value == "<<" {
			p.fail(kp, k.Line, "merge keys are not supported; write the keys out")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.fail(kp, k.Line, "duplicate key (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := s.fields[k.Value]
		if !ok {
			p.add(kp, k.Line, "unknown key%s", suggest(k.Value, path, s))
			continue
		}
		p.lines[kp] = k.Line
		p.decode(val, v.Field(f.index), kp, f.node)
	}
}

// list decodes a sequence onto a slice, replacing its default. Items are
// decoded onto zero values with paths like "saml.idps[0]"; an empty item is
// a problem. An empty list is stored as nil.
func (p *parser) list(n *yaml.Node, v reflect.Value, path string, s *node) {
	if n.Kind != yaml.SequenceNode {
		p.fail(path, n.Line, "must be %s, got %s", s.describe(), kindName(n))
		return
	}
	if len(n.Content) == 0 {
		v.SetZero()
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		p.lines[ip] = item.Line
		if r := resolve(item); isNull(r) {
			p.fail(ip, r.Line, "is an empty list item; remove it or fill it in")
			continue
		}
		p.decode(item, out.Index(i), ip, s.elem)
	}
	v.Set(out)
}

var durationType = reflect.TypeOf(time.Duration(0))

// leaf decodes a scalar onto a string, boolean, integer or duration field.
func (p *parser) leaf(n *yaml.Node, v reflect.Value, path string) {
	want := typeName(v.Type())
	if n.Kind != yaml.ScalarNode {
		p.fail(path, n.Line, "must be %s, got %s", want, kindName(n))
		return
	}
	s, ok := p.expand(n.Value, path, n.Line)
	if !ok {
		return
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			if _, ierr := strconv.ParseInt(s, 10, 64); ierr == nil {
				p.fail(path, n.Line, "must be %s: add a unit, got %s", want, p.show(path, s))
			} else {
				p.fail(path, n.Line, "must be %s, got %s", want, p.show(path, s))
			}
			return
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		// YAML 1.2's spellings only: "yes", "on" and "1" are mistakes here.
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			p.fail(path, n.Line, "must be %s, got %s", want, p.show(path, s))
		}
	case v.CanInt():
		i, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				p.fail(path, n.Line, "is out of range, got %s", p.show(path, s))
			} else {
				p.fail(path, n.Line, "must be %s, got %s", want, p.show(path, s))
			}
			return
		}
		v.SetInt(i)
	default:
		// Unreachable for the Config schema; TestSchemaTypes guards it.
		p.fail(path, n.Line, "has unsupported type %s", v.Type())
	}
}

// expand replaces ${NAME} and ${NAME:-default} references in s. It reports
// every unset variable and malformed reference and returns false if there
// was any. Messages name variables, never values.
func (p *parser) expand(s, path string, line int) (string, bool) {
	if !strings.Contains(s, "${") {
		return s, true
	}
	var b strings.Builder
	var used []string
	defer func() {
		if len(used) > 0 {
			p.fromEnv[path] = strings.Join(used, ", ")
		}
	}()
	ok := true
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			p.fail(path, line, "unterminated environment reference: \"${\" without \"}\" (write \"$${\" for a literal \"${\")")
			return "", false
		}
		ref := s[i+2 : i+2+end]
		i += 2 + end + 1
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			p.fail(path, line, "invalid environment reference: want ${NAME} or ${NAME:-default} with NAME of letters, digits and _ (write \"$${\" for a literal \"${\")")
			ok = false
			continue
		}
		if strings.Contains(def, "${") {
			p.fail(path, line, "environment reference ${%s:-...}: the default cannot contain another reference", name)
			ok = false
			continue
		}
		val, set := p.lookupEnv(name)
		switch {
		case set && !(hasDef && val == ""):
			b.WriteString(val)
			used = append(used, "${"+name+"}")
		case hasDef:
			b.WriteString(def)
		default:
			p.fail(path, line, "environment variable %s is not set; set it, or write ${%s:-default}", name, name)
			ok = false
		}
	}
	return b.String(), ok
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// resolve follows aliases (bounded, in case of a cycle).
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 16 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration like "20s" or "5m"`
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	default:
		return "a whole number"
	}
}

// joinPath appends a key to a dotted path, quoting a key that would make
// the path ambiguous.
func joinPath(path, key string) string {
	if key == "" || strings.ContainsAny(key, ". \t\n\"") {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// node is the schema of one level of Config: the keys of a struct, a list
// (elem != nil), or a leaf (neither).
type node struct {
	fields map[string]field
	keys   []string // in declaration order, for messages
	elem   *node    // a slice's items
	typ    reflect.Type
}

// describe says what a YAML value must be to decode onto n.
func (n *node) describe() string {
	switch {
	case n.elem != nil && n.elem.fields != nil:
		return fmt.Sprintf("a list of mappings (items starting with \"- \") with keys %s", strings.Join(n.elem.keys, ", "))
	case n.elem != nil && n.elem.typ.Kind() == reflect.String:
		return "a list of strings"
	case n.elem != nil:
		return "a list whose items are each " + n.elem.describe()
	case n.fields != nil:
		return "a mapping with keys " + strings.Join(n.keys, ", ")
	}
	return typeName(n.typ)
}

type field struct {
	index int
	node  *node
}

// schema is derived once from the yaml tags of Config.
var schema = schemaOf(reflect.TypeOf(Config{}))

func schemaOf(t reflect.Type) *node {
	switch {
	case t.Kind() == reflect.Slice:
		return &node{elem: schemaOf(t.Elem()), typ: t}
	case t.Kind() != reflect.Struct:
		return &node{typ: t}
	}
	n := &node{fields: map[string]field{}, typ: t}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" || !f.IsExported() {
			continue
		}
		n.fields[key] = field{index: i, node: schemaOf(f.Type)}
		n.keys = append(n.keys, key)
	}
	return n
}

// leafPaths lists every leaf key path of s ("server.listen", ...). A list of
// leaves is a leaf; the keys of the items of a list of mappings are listed
// with "[]" for the index ("saml.idps[].name").
func leafPaths(s *node, prefix string) []string {
	var out []string
	for _, k := range s.keys {
		f := s.fields[k]
		p := joinPath(prefix, k)
		switch {
		case f.node.elem != nil && f.node.elem.fields != nil:
			out = append(out, leafPaths(f.node.elem, p+"[]")...)
		case f.node.fields != nil:
			out = append(out, leafPaths(f.node, p)...)
		default:
			out = append(out, p)
		}
	}
	return out
}

// itemIndex matches the index of a list item in a key path.
var itemIndex = regexp.MustCompile(`\[[0-9]+\]`)

// suggest proposes what an unknown key under path was meant to be: a
// sibling written in another case or style ("publicURL", "public-url"), a
// key that belongs elsewhere ("listen" at the top level; "email" directly in
// an IdP, suggested as "attributes.email"), or a near-miss spelling.
func suggest(key, path string, s *node) string {
	norm := func(k string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(k))
	}
	for _, k := range s.keys {
		if norm(k) == norm(key) {
			return fmt.Sprintf("; did you mean %q?", k)
		}
	}
	var elsewhere []string
	here := itemIndex.ReplaceAllString(path, "[]") + "."
	for _, lp := range leafPaths(schema, "") {
		if strings.HasSuffix(lp, "."+key) {
			// Below this key, name it relative to here.
			elsewhere = append(elsewhere, strings.TrimPrefix(lp, here))
		}
	}
	for _, k := range schema.keys {
		if k == key && path != "" {
			elsewhere = append(elsewhere, k)
		}
	}
	if len(elsewhere) == 1 {
		return fmt.Sprintf("; did you mean %q?", elsewhere[0])
	}
	best, bestDist := "", 3
	for _, k := range s.keys {
		if d := editDistance(norm(key), norm(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	if len(s.keys) > 0 {
		return "; known keys here: " + strings.Join(s.keys, ", ")
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
