package mapping

import (
	"fmt"
	"regexp"
	"slices"

	yaml "go.yaml.in/yaml/v3"
)

// A person may be described by two ingresses: SCIM provisioning (the stored
// SCIM resource and group memberships) and SAML logins (the attributes and
// groups of their last assertion). The mapping's `sources` section says which
// one is authoritative for each part; Combine merges the two accordingly.

// Sources of identity data.
const (
	SourceSCIM = "scim"
	SourceSAML = "saml"
)

// Parts of an identity whose source the mapping chooses.
const (
	PartDisplayName = "display_name" // DisplayName and Name
	PartEmails      = "emails"
	PartGroups      = "groups"
)

var sourceParts = []string{PartDisplayName, PartEmails, PartGroups}

// DefaultClaims are the claims broker mode sends Flex when the mapping does
// not list them.
var DefaultClaims = []string{RolesKey, "full_name", "email", "image_url"}

// flexClaimRE matches the claims Flex reads from a login assertion and merges
// into the worker (besides roles): the documented names, channel settings and
// typed custom attributes.
var flexClaimRE = regexp.MustCompile(`^(full_name|email|image_url|department|location|manager|phone|team_id|team_name|team_name_in_hierarchy|channel\.[a-z]+\.(capacity|availability)|[A-Za-z_][A-Za-z0-9_]*\.(int|stringarray))$`)

// Source returns the authoritative source (SourceSCIM or SourceSAML) of a
// part (PartDisplayName, PartEmails, PartGroups). SourceSCIM unless the
// mapping says otherwise.
func (c *Config) Source(part string) string {
	if s, ok := c.sources[part]; ok {
		return s
	}
	return SourceSCIM
}

// Combine merges what SCIM provisioning and the last SAML login say about one
// person. scim is the identity from the stored SCIM resource and groups;
// scimKnown says whether SCIM ever described the person (false for someone
// created at login: then the login is all there is). saml is the identity
// from the last login, nil when there was none; saml.Groups == nil means the
// login said nothing about groups (the IdP's groups attribute is not read).
//
// For each part: when SAML is authoritative, the login's value is used if it
// has one; when SCIM is, SCIM's value is used if it has one, else the login's.
// Groups never fall back: with SCIM authoritative, a SCIM-provisioned person
// has exactly their SCIM memberships (no login can add a group the IdP's
// provisioning took away). Identifiers (ID, UserName, ExternalID), Active and
// the attributes only SCIM carries always come from scim; Extra (other
// assertion attributes) only exists in logins.
func (c *Config) Combine(scim Identity, scimKnown bool, saml *Identity) Identity {
	out := scim
	if saml == nil {
		return out
	}
	samlWins := func(part string) bool { return !scimKnown || c.Source(part) == SourceSAML }

	samlName := saml.DisplayName != "" || saml.Name != (Name{})
	scimName := out.DisplayName != "" || out.Name != (Name{})
	if (samlWins(PartDisplayName) && samlName) || !scimName {
		out.DisplayName, out.Name = saml.DisplayName, saml.Name
	}
	if (samlWins(PartEmails) && len(saml.Emails) > 0) || len(out.Emails) == 0 {
		out.Emails = slices.Clone(saml.Emails)
	}
	if samlWins(PartGroups) && saml.Groups != nil {
		out.Groups = slices.Clone(saml.Groups)
	}
	if len(saml.Extra) > 0 {
		out.Extra = make(map[string][]string, len(saml.Extra)+len(scim.Extra))
		for k, v := range scim.Extra {
			out.Extra[k] = v
		}
		for k, v := range saml.Extra {
			out.Extra[k] = v
		}
	}
	return out
}

// Claims returns the claims broker mode sends Flex: the listed keys of the
// mapping's claims section (default DefaultClaims) that the spec has a
// non-empty value for, as attribute name -> values. "roles" is multi-valued;
// other values are rendered as Flex reads them. A spec without access has
// no claims.
func (c *Config) Claims(spec WorkerSpec) map[string][]string {
	if !spec.Access {
		return nil
	}
	keys := c.claims
	if keys == nil {
		keys = DefaultClaims
	}
	out := make(map[string][]string, len(keys))
	for _, k := range keys {
		if k == RolesKey {
			out[k] = slices.Clone(spec.Roles)
			continue
		}
		switch v := spec.Attributes[k].(type) {
		case nil:
		case string:
			if v != "" {
				out[k] = []string{v}
			}
		case []any:
			var vals []string
			for _, e := range v {
				vals = append(vals, fmt.Sprint(e))
			}
			if len(vals) > 0 {
				out[k] = vals
			}
		default:
			out[k] = []string{fmt.Sprint(v)}
		}
	}
	return out
}

// parseSources reads the `sources` section.
func (p *parser) sources(c *Config, n *yaml.Node) {
	f, ok := p.fields(n, "sources", sourceParts...)
	if !ok {
		return
	}
	c.sources = map[string]string{}
	for _, part := range sourceParts {
		v := f[part]
		if v == nil {
			continue
		}
		path := "sources." + part
		s, ok := p.str(v, path)
		if !ok {
			continue
		}
		if s != SourceSCIM && s != SourceSAML {
			p.add(path, v, "must be %q or %q", SourceSCIM, SourceSAML)
			continue
		}
		c.sources[part] = s
	}
}

// parseClaims reads the `claims` section: Flex claim names, each "roles" or
// an owned key with a value under attributes. A key the bridge owns that Flex
// does not read as a claim (routing, skills...) can never be a claim, so a
// login cannot overwrite what the bridge writes through TaskRouter.
func (p *parser) parseClaims(c *Config, n *yaml.Node, owned map[string]bool, valued map[string]bool) {
	list, ok := p.strList(n, "claims")
	if !ok {
		return
	}
	c.claims = []string{}
	seen := map[string]bool{}
	for i, k := range list {
		path := fmt.Sprintf("claims[%d]", i)
		item := n.Content[i]
		switch {
		case seen[k]:
			p.add(path, item, "%q is listed twice", k)
		case k == RolesKey:
		case !flexClaimRE.MatchString(k):
			p.add(path, item, "%q is not a claim Flex reads at login (full_name, email, image_url, department, location, manager, phone, team_id, team_name, team_name_in_hierarchy, channel.<name>.capacity|availability, <name>.int, <name>.stringarray)", k)
		case !owned[k] || !valued[k]:
			p.add(path, item, "%q must be an owned key with a value under attributes: a claim carries the value the bridge computes", k)
		}
		seen[k] = true
		c.claims = append(c.claims, k)
	}
	if !slices.Contains(c.claims, RolesKey) {
		p.add("claims", n, "must include %q: Flex refuses a login without roles (error 45050)", RolesKey)
	}
}

// ClaimKeys returns the claims section (default DefaultClaims).
func (c *Config) ClaimKeys() []string {
	if c.claims == nil {
		return slices.Clone(DefaultClaims)
	}
	return slices.Clone(c.claims)
}

// TaskRouterOnlyKeys returns the keys the bridge writes only through TaskRouter: every owned
// key (the ownership marker included) that is not a claim. Broker mode must never send them as
// claims, since Flex merges claims into the worker at login.
func (c *Config) TaskRouterOnlyKeys() []string {
	claims := c.ClaimKeys()
	var out []string
	for _, k := range c.Owned() {
		if !slices.Contains(claims, k) {
			out = append(out, k)
		}
	}
	return out
}
