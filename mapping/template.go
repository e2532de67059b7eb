package mapping

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"
)

// maxTemplateOutput bounds what one template may write. Nothing the bridge
// writes to a worker can be longer than the attributes limit anyway.
const maxTemplateOutput = MaxAttributesLength

var errTemplateOutput = fmt.Errorf("output longer than %d bytes", maxTemplateOutput)

// funcs is the function map available to every template, in addition to the
// text/template builtins (and, or, not, eq, ne, lt, le, gt, ge, len, index,
// slice, print, printf, println, html, js, urlquery). The value a function
// works on comes last so that it can be piped: {{ .Title | lower }}.
var funcs = template.FuncMap{
	// default returns def when v is empty: {{ .NickName | default .UserName }}.
	"default": func(def string, v string) string {
		if strings.TrimSpace(v) == "" {
			return def
		}
		return v
	},
	"lower":      strings.ToLower,
	"upper":      strings.ToUpper,
	"trim":       strings.TrimSpace,
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"replace": func(old, new, s string) (string, error) {
		if old == "" {
			return "", errors.New("replace: empty search string")
		}
		if n := len(s) + strings.Count(s, old)*(len(new)-len(old)); n > maxTemplateOutput && n > len(s) {
			return "", errors.New("replace: " + errTemplateOutput.Error())
		}
		return strings.ReplaceAll(s, old, new), nil
	},
	"contains":  func(substr, s string) bool { return strings.Contains(s, substr) },
	"hasPrefix": func(prefix, s string) bool { return strings.HasPrefix(s, prefix) },
	"hasSuffix": func(suffix, s string) bool { return strings.HasSuffix(s, suffix) },
	"join": func(sep string, list []string) (string, error) {
		n := len(sep) * max(len(list)-1, 0)
		for _, s := range list {
			n += len(s)
		}
		if n > maxTemplateOutput {
			return "", errors.New("join: " + errTemplateOutput.Error())
		}
		return strings.Join(list, sep), nil
	},
	"split": func(sep, s string) []string { return strings.Split(s, sep) },
	"first": func(list []string) string {
		if len(list) == 0 {
			return ""
		}
		return list[0]
	},
	"last": func(list []string) string {
		if len(list) == 0 {
			return ""
		}
		return list[len(list)-1]
	},
	// printf replaces the builtin with one whose output is bounded.
	"printf": printf,
	// truncate keeps the first n characters (runes) of s.
	"truncate": func(n int, s string) (string, error) {
		if n < 0 {
			return "", errors.New("truncate: negative length")
		}
		if utf8.RuneCountInString(s) <= n {
			return s, nil
		}
		i := 0
		for pos := range s {
			if i == n {
				return s[:pos], nil
			}
			i++
		}
		return s, nil
	},
}

// printf is fmt.Sprintf without explicit argument indexes or '*' widths,
// formatting one verb at a time so that the output can be bounded: the
// builtin would build {{ printf "%0999999d%0999999d..." }} in full.
func printf(format string, args ...any) (string, error) {
	var b strings.Builder
	for len(format) > 0 {
		i := strings.IndexByte(format, '%')
		if i < 0 {
			b.WriteString(format)
			break
		}
		b.WriteString(format[:i])
		// A verb: '%', flags, width, precision, then a letter (or '%').
		j := i + 1
		for j < len(format) && strings.IndexByte("+-# 0123456789.", format[j]) >= 0 {
			j++
		}
		if j == len(format) {
			return "", errors.New("printf: incomplete verb at end of format")
		}
		_, size := utf8.DecodeRuneInString(format[j:])
		verb := format[i : j+size]
		switch c := format[j]; {
		case c == '%':
			b.WriteByte('%')
		case c == '[' || c == '*':
			return "", fmt.Errorf("printf: %q: argument indexes and * widths are not supported", verb)
		default:
			for _, num := range strings.FieldsFunc(verb, func(r rune) bool { return r < '0' || r > '9' }) {
				if n, err := strconv.Atoi(num); err != nil || n > maxTemplateOutput {
					return "", fmt.Errorf("printf: %q: width or precision above %d", verb, maxTemplateOutput)
				}
			}
			if len(args) == 0 {
				return "", fmt.Errorf("printf: missing argument for %q", verb)
			}
			fmt.Fprintf(&b, verb, args[0])
			args = args[1:]
		}
		if b.Len() > maxTemplateOutput {
			return "", errors.New("printf: " + errTemplateOutput.Error())
		}
		format = format[j+size:]
	}
	if len(args) > 0 {
		return "", fmt.Errorf("printf: too many arguments (%d unused)", len(args))
	}
	return b.String(), nil
}

// FuncNames lists the functions mapping templates may call besides the
// text/template builtins, sorted.
func FuncNames() []string {
	names := make([]string, 0, len(funcs))
	for n := range funcs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// compileTemplate parses src and checks that it can neither loop without
// bound nor recurse, then executes it once against a zero Identity so that
// unknown fields, wrong argument types and unguarded indexing are reported
// when the mapping is loaded rather than when a user is synced.
func compileTemplate(name, src string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(src)
	if err != nil {
		return nil, cleanTemplateError(name, err)
	}
	if len(t.Templates()) > 1 {
		return nil, errors.New("{{define}} and {{block}} are not allowed")
	}
	if t.Tree != nil && t.Root != nil {
		if err := checkNode(t.Root, 0); err != nil {
			return nil, err
		}
	}
	if _, err := render(t, &Identity{}); err != nil {
		hint := "guard optional fields with if, with or default"
		if strings.Contains(err.Error(), "map has no entry for key") {
			hint = `read IdP attributes with .ExtraValue "name"`
		}
		return nil, fmt.Errorf("fails for a user with no data (%s): %w", hint, err)
	}
	return t, nil
}

// maxRangeNesting bounds {{range}} within {{range}}: each level multiplies
// the work by the size of a list in the identity.
const maxRangeNesting = 2

// checkNode rejects {{template}} calls and {{range}} over anything but
// identity data: since Go 1.22 {{range 1000000000}} loops over an integer,
// which would let a mapping file stall Parse.
func checkNode(n parse.Node, ranges int) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNode(c, ranges); err != nil {
				return err
			}
		}
	case *parse.TemplateNode:
		return errors.New("{{template}} is not allowed")
	case *parse.RangeNode:
		if !rangeOverData(n.Pipe) {
			return fmt.Errorf("{{range %s}}: range may only iterate over identity fields (e.g. .Groups)", n.Pipe)
		}
		if ranges == maxRangeNesting {
			return fmt.Errorf("{{range %s}}: ranges nest deeper than %d", n.Pipe, maxRangeNesting)
		}
		if err := checkNode(n.List, ranges+1); err != nil {
			return err
		}
		return checkNode(n.ElseList, ranges)
	case *parse.IfNode:
		if err := checkNode(n.List, ranges); err != nil {
			return err
		}
		return checkNode(n.ElseList, ranges)
	case *parse.WithNode:
		if err := checkNode(n.List, ranges); err != nil {
			return err
		}
		return checkNode(n.ElseList, ranges)
	}
	return nil
}

func rangeOverData(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) == 0 {
		return false
	}
	args := p.Cmds[0].Args
	if id, ok := args[0].(*parse.IdentifierNode); ok {
		// index and slice only narrow what they are given.
		return (id.Ident == "index" || id.Ident == "slice") && len(args) > 1 && isData(args[1])
	}
	return len(args) == 1 && isData(args[0])
}

// isData reports whether n denotes identity data: a field, the dot, or a
// variable with fields ($ itself is the identity).
func isData(n parse.Node) bool {
	switch a := n.(type) {
	case *parse.FieldNode, *parse.DotNode:
		return true
	case *parse.ChainNode:
		return isData(a.Node)
	case *parse.VariableNode:
		return a.Ident[0] == "$" || len(a.Ident) > 1
	}
	return false
}

func cleanTemplateError(name string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "template: ")
	msg = strings.TrimPrefix(msg, name+":")
	return errors.New(msg)
}

// render executes t and trims surrounding white space from the result.
func render(t *template.Template, id *Identity) (string, error) {
	var w limitedWriter
	if err := t.Execute(&w, id); err != nil {
		if errors.Is(err, errTemplateOutput) {
			return "", errTemplateOutput
		}
		return "", cleanTemplateError(t.Name(), err)
	}
	return strings.TrimSpace(w.b.String()), nil
}

type limitedWriter struct{ b strings.Builder }

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > maxTemplateOutput {
		return 0, errTemplateOutput
	}
	return w.b.Write(p)
}
