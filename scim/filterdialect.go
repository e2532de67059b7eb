package scim

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
)

// subAfterValuePath matches Entra ID's work-email lookup, emails[type eq "work"].value eq "x",
// which RFC 7644's grammar does not allow (a value path takes no sub-attribute in a filter).
var subAfterValuePath = regexp.MustCompile(`^\s*([A-Za-z][\w$-]*)\[([^\[\]]+)\]\.([A-Za-z][\w$-]*)\s+(eq|ne|co|sw|ew|gt|ge|lt|le)\s+(.+?)\s*$`)

// normaliseFilter rewrites the filter dialects IdPs send into standard RFC 7644 filters the
// library understands, or returns f unchanged:
//   - emails[type eq "work"].value eq "x"  ->  emails[type eq "work" and value eq "x"]
//   - an unqualified manager (Entra's "id eq … and manager eq …") -> the enterprise
//     extension's manager.value
func normaliseFilter(f string) string {
	// (The pattern needs a "[": most filters have none and skip the regular expression.)
	if strings.Contains(f, "[") {
		if m := subAfterValuePath.FindStringSubmatch(f); m != nil && !strings.Contains(strings.ToLower(m[2]), " or ") {
			// (The parser takes no parentheses inside a value path, so only and-ed inner filters.)
			f = fmt.Sprintf("%s[%s and %s %s %s]", m[1], m[2], m[3], m[4], m[5])
		}
	}
	if !strings.Contains(strings.ToLower(f), "manager") {
		return f
	}
	expr, err := filter.ParseFilter([]byte(f))
	if err != nil {
		return f // the library reports the syntax error
	}
	changed := false
	expr = qualifyManager(expr, &changed)
	if !changed {
		return f
	}
	return formatFilter(expr)
}

func qualifyManager(e filter.Expression, changed *bool) filter.Expression {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		ap := e.AttributePath
		if ap.URIPrefix == nil && strings.EqualFold(ap.AttributeName, "manager") {
			uri, sub := enterpriseSchema, "value"
			if ap.SubAttribute != nil {
				sub = *ap.SubAttribute
			}
			*changed = true
			return &filter.AttributeExpression{
				AttributePath: filter.AttributePath{URIPrefix: &uri, AttributeName: "manager", SubAttribute: &sub},
				Operator:      e.Operator, CompareValue: e.CompareValue,
			}
		}
	case *filter.LogicalExpression:
		return &filter.LogicalExpression{Left: qualifyManager(e.Left, changed), Right: qualifyManager(e.Right, changed), Operator: e.Operator}
	case *filter.NotExpression:
		return &filter.NotExpression{Expression: qualifyManager(e.Expression, changed)}
	}
	return e
}

// formatFilter writes a parsed filter back as text, parenthesising every logical node so the
// result parses to the same tree.
func formatFilter(e filter.Expression) string {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		s := e.AttributePath.String() + " " + string(e.Operator)
		if e.Operator != filter.PR {
			v, _ := json.Marshal(e.CompareValue)
			s += " " + string(v)
		}
		return s
	case *filter.LogicalExpression:
		return "(" + formatFilter(e.Left) + " " + string(e.Operator) + " " + formatFilter(e.Right) + ")"
	case *filter.NotExpression:
		return "not (" + formatFilter(e.Expression) + ")"
	case *filter.ValuePath:
		return e.AttributePath.String() + "[" + formatFilter(e.ValueFilter) + "]"
	}
	return ""
}

type filterKey struct{}

// requestFilter is the parsed, validated filter of a list request (nil when none). The server
// validates filters itself because the library validates a whole filter against one schema, so
// it refuses filters that mix core and extension attributes (userName eq "x" and
// urn:…:enterprise:2.0:User:department eq "y"), which evaluate fine.
func requestFilter(ctx context.Context) filter.Expression {
	e, _ := ctx.Value(filterKey{}).(filter.Expression)
	return e
}

// validateFilter checks that every attribute path in e names an attribute of one of the schemas
// (a URN-qualified path: of the schema with that id).
func validateFilter(e filter.Expression, schemas []schema.Schema) error {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		return validatePath(e.AttributePath, schemas, nil)
	case *filter.ValuePath:
		var sub schema.Attributes
		if err := validatePath(e.AttributePath, schemas, &sub); err != nil {
			return err
		}
		if len(sub) == 0 {
			return fmt.Errorf("%s has no sub-attributes", e.AttributePath)
		}
		return validateFilter(e.ValueFilter, []schema.Schema{{Attributes: sub}})
	case *filter.LogicalExpression:
		if err := validateFilter(e.Left, schemas); err != nil {
			return err
		}
		return validateFilter(e.Right, schemas)
	case *filter.NotExpression:
		return validateFilter(e.Expression, schemas)
	}
	return fmt.Errorf("unsupported filter expression")
}

func validatePath(ap filter.AttributePath, schemas []schema.Schema, sub *schema.Attributes) error {
	for _, s := range schemas {
		if uri := ap.URI(); uri != "" && !strings.EqualFold(uri, s.ID) {
			continue
		}
		attr, ok := s.Attributes.ContainsAttribute(ap.AttributeName)
		if !ok {
			continue
		}
		if name := ap.SubAttributeName(); name != "" {
			if _, ok := attr.SubAttributes().ContainsAttribute(name); !ok {
				return fmt.Errorf("%s has no sub-attribute %s", ap.AttributeName, name)
			}
		}
		if sub != nil {
			*sub = attr.SubAttributes()
		}
		return nil
	}
	return fmt.Errorf("unknown attribute %s", ap)
}
