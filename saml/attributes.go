package saml

import (
	"regexp"
	"strings"
	"unicode"

	crewjam "github.com/crewjam/saml"

	"github.com/flexbridge/flexbridge/mapping"
)

// Well-known attribute and format names.
const (
	// EntraGroupsClaim is the claim Microsoft Entra ID sends group object ids in.
	EntraGroupsClaim = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
	// EntraGroupsOverageClaim replaces the groups claim when a user has more than 150 groups.
	EntraGroupsOverageClaim = "http://schemas.microsoft.com/claims/groups.link"
	transientNameID         = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
)

// Limits on what a login may carry into the directory.
const (
	maxNameIDLength = 256
	maxValueLength  = 1024
)

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// attributeIndex holds an assertion's attributes by Name and by FriendlyName, values in order,
// merged over every AttributeStatement.
type attributeIndex struct {
	byName     map[string][]string
	byFriendly map[string][]string
	names      []string // in order of first appearance
}

func indexAttributes(a *crewjam.Assertion) attributeIndex {
	ix := attributeIndex{byName: map[string][]string{}, byFriendly: map[string][]string{}}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			var vals []string
			for _, v := range at.Values {
				// crewjam's values come from encoding/xml, which joins the text around comments:
				// the signed (canonical) text, never a prefix of it.
				if s := strings.TrimSpace(v.Value); s != "" {
					vals = append(vals, s)
				}
			}
			if at.Name != "" {
				if _, seen := ix.byName[at.Name]; !seen {
					ix.names = append(ix.names, at.Name)
				}
				ix.byName[at.Name] = append(ix.byName[at.Name], vals...)
			}
			if at.FriendlyName != "" {
				ix.byFriendly[at.FriendlyName] = append(ix.byFriendly[at.FriendlyName], vals...)
			}
		}
	}
	return ix
}

// lookup finds the attribute key names: by Name first, then by FriendlyName (crewjam's samlsp
// does the opposite, so that a FriendlyName could shadow another attribute's Name).
func (ix attributeIndex) lookup(key string) ([]string, bool) {
	if key == "" {
		return nil, false
	}
	if v, ok := ix.byName[key]; ok {
		return v, true
	}
	v, ok := ix.byFriendly[key]
	return v, ok
}

func (ix attributeIndex) first(key string) string {
	v, _ := ix.lookup(key)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// splitValues reads several values and comma-joined values the same way: "agent,supervisor"
// and two values agent, supervisor both give [agent supervisor]; blanks and repeats go.
func splitValues(vals []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range vals {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part != "" && !seen[part] {
				seen[part] = true
				out = append(out, part)
			}
		}
	}
	return out
}

// plainText reports whether s is fit for a user name or display name: no control, format or
// line/paragraph separator characters (nothing to forge log lines or flip text direction
// with), and not too long.
func plainText(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return false
		}
	}
	return true
}

// extractLogin turns a checked assertion into a Login, applying the IdP's attribute settings.
func extractLogin(p *idp, a *crewjam.Assertion) (Login, *failure) {
	cfg := p.cfg
	nameID := strings.TrimSpace(a.Subject.NameID.Value)
	format := a.Subject.NameID.Format
	if !plainText(nameID, maxNameIDLength) {
		return Login{}, rejected("nameid_invalid", "the NameID is too long or has control characters")
	}
	ix := indexAttributes(a)
	email := ix.first(cfg.Attributes.Email)
	if !plainText(email, maxValueLength) {
		return Login{}, rejected("attribute_invalid", "the email attribute is too long or has control characters")
	}
	display := ix.first(cfg.Attributes.DisplayName)
	if !plainText(display, maxValueLength) {
		return Login{}, rejected("attribute_invalid", "the display name attribute is too long or has control characters")
	}

	var userName string
	switch cfg.UserName {
	case UserNameNameID:
		if nameID == "" || format == transientNameID {
			return Login{}, fail(kindRefused, "nameid_unusable", "the NameID is empty or transient and the user name must come from it")
		}
		userName = nameID
	case UserNameEmail:
		userName = email
	default:
		userName = nameID
		if nameID == "" || format == transientNameID {
			userName = email
		}
	}
	if userName == "" {
		return Login{}, fail(kindRefused, "username_missing", "no usable NameID or email attribute for the user name")
	}

	id := mapping.Identity{UserName: userName, DisplayName: display, Active: true, Extra: map[string][]string{}}
	if email != "" {
		id.Emails = []mapping.Email{{Value: email, Type: "work", Primary: true}}
	}
	for _, name := range ix.names {
		id.Extra[name] = ix.byName[name]
	}
	for name, vals := range ix.byFriendly {
		if _, taken := id.Extra[name]; !taken {
			id.Extra[name] = vals
		}
	}
	if cfg.Attributes.Roles != "" {
		roles, _ := ix.lookup(cfg.Attributes.Roles)
		roles = splitValues(roles)
		id.Extra[cfg.Attributes.Roles] = roles
		id.Extra["roles"] = roles
	}
	if cfg.Attributes.Groups != "" {
		vals, present := ix.lookup(cfg.Attributes.Groups)
		if !present {
			// Entra leaves the groups claim out past 150 groups (sending groups.link instead);
			// other IdPs when the user has none to release. Either way the groups are unknown.
			fallback := strings.TrimSpace(cfg.GroupsFallback)
			if fallback == "" || fallback == GroupsFallbackDeny {
				_, overage := ix.byName[EntraGroupsOverageClaim]
				return Login{}, fail(kindRefused, "groups_absent", "the groups attribute is absent (overage: %t) and the fallback is deny", overage)
			}
			vals = []string{fallback}
		}
		for _, g := range splitValues(vals) {
			if guidPattern.MatchString(g) {
				id.Groups = append(id.Groups, mapping.Group{ExternalID: strings.ToLower(g)})
			} else {
				id.Groups = append(id.Groups, mapping.Group{DisplayName: g})
			}
		}
	}
	l := Login{IdP: cfg.Name, NameID: nameID, NameIDFormat: format, Identity: id}
	for _, st := range a.AuthnStatements {
		if st.SessionIndex != "" {
			l.SessionIndex = st.SessionIndex
			break
		}
	}
	return l, nil
}
