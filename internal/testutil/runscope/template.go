package runscope

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Templates use Runscope's {{name}} syntax. Only plain identifiers are
// supported: Runscope's built-ins and functions ({{timestamp}},
// {{random_string}}, {{encode_base64(...)}}, ...) are not used by the Okta
// suites. A syntactically valid name that the run does not define is reported
// as an undefined variable when the step runs.

// checkTemplate reports a syntax error in s: an unclosed "{{" or anything
// other than an identifier between the braces.
func checkTemplate(s string) error {
	_, _, err := expand(s, nil)
	return err
}

// expand substitutes {{name}} references in s with vars[name]. Names missing
// from vars are left in place and returned in missing.
func expand(s string, vars map[string]string) (out string, missing []string, err error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), missing, nil
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return "", nil, fmt.Errorf("unclosed {{ in %q", s)
		}
		name := rest[:j]
		if !isIdent(name) {
			return "", nil, fmt.Errorf("unsupported template expression {{%s}} (only {{variable}} is implemented)", name)
		}
		if v, ok := vars[name]; ok {
			b.WriteString(v)
		} else {
			if vars != nil {
				missing = append(missing, name)
			}
			b.WriteString("{{" + name + "}}")
		}
		s = rest[j+2:]
	}
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// requestURL turns an expanded step URL into one that can be sent. The
// suites write queries unencoded (?filter=userName eq "x"), as typed into
// Runscope's editor; every query key and value is percent-encoded here,
// keeping valid escapes already present and sending spaces as %20 (never
// "+", which some servers do not decode as a space).
func requestURL(raw string) (*url.URL, error) {
	base, query, hasQuery := strings.Cut(raw, "?")
	if strings.ContainsAny(base, " \"") {
		return nil, errors.New("unencoded space or quote in URL path")
	}
	if hasQuery {
		if strings.Contains(query, "#") {
			return nil, errors.New("URL fragments are not supported")
		}
		parts := strings.Split(query, "&")
		for i, p := range parts {
			k, v, hasEq := strings.Cut(p, "=")
			parts[i] = escapeQuery(k)
			if hasEq {
				parts[i] += "=" + escapeQuery(v)
			}
		}
		base += "?" + strings.Join(parts, "&")
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("URL %q is not absolute http(s)", raw)
	}
	return u, nil
}

func escapeQuery(s string) string {
	// PathUnescape, unlike QueryUnescape, keeps a literal "+" (as in an
	// e-mail address) instead of turning it into a space.
	if u, err := url.PathUnescape(s); err == nil {
		s = u
	}
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
