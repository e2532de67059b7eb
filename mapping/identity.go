package mapping

import "strings"

// Email is one of a user's e-mail addresses (SCIM "emails").
type Email struct {
	Value   string
	Type    string
	Primary bool
}

// Phone is one of a user's phone numbers (SCIM "phoneNumbers").
type Phone struct {
	Value   string
	Type    string
	Primary bool
}

// Name is a user's structured name (SCIM "name").
type Name struct {
	Formatted  string
	GivenName  string
	FamilyName string
	MiddleName string
}

// Manager is the user's manager from the SCIM enterprise extension.
type Manager struct {
	ID          string
	DisplayName string
}

// Enterprise holds the SCIM enterprise user extension
// (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User).
type Enterprise struct {
	EmployeeNumber string
	CostCenter     string
	Organization   string
	Division       string
	Department     string
	Manager        Manager
}

// Group is a group the user is a member of. ID is flexbridge's id of the group
// (the SCIM id); ExternalID is the identifier the IdP knows it by (for Entra
// ID, the group's object id), or "" when the IdP sent none.
type Group struct {
	ID          string
	ExternalID  string
	DisplayName string
}

// Identity is the desired state of one user as the IdP describes it. It is
// the input of Config.Evaluate and the data of every mapping template.
type Identity struct {
	ID                string // flexbridge directory id of the user
	UserName          string
	ExternalID        string
	DisplayName       string
	Name              Name
	Emails            []Email
	PhoneNumbers      []Phone
	Title             string
	NickName          string
	Locale            string
	Timezone          string
	UserType          string
	PreferredLanguage string
	PhotoURL          string
	Active            bool
	Enterprise        Enterprise
	Groups            []Group
	// Extra holds free-text IdP attributes (e.g. from a SAML assertion),
	// keyed by attribute name. They never grant roles unless a rule names
	// them explicitly.
	Extra map[string][]string
}

// PrimaryEmail returns the address marked primary, else the first of type
// "work", else the first one. Entries with an empty value are skipped.
func (id Identity) PrimaryEmail() string {
	vals := make([]contact, 0, len(id.Emails))
	for _, e := range id.Emails {
		vals = append(vals, contact(e))
	}
	return pickContact(vals)
}

// PrimaryPhone returns the phone number marked primary, else the first of
// type "work", else the first one. Entries with an empty value are skipped.
func (id Identity) PrimaryPhone() string {
	vals := make([]contact, 0, len(id.PhoneNumbers))
	for _, p := range id.PhoneNumbers {
		vals = append(vals, contact(p))
	}
	return pickContact(vals)
}

// GroupNames returns the display names of the user's groups, in order.
func (id Identity) GroupNames() []string {
	names := make([]string, 0, len(id.Groups))
	for _, g := range id.Groups {
		names = append(names, g.DisplayName)
	}
	return names
}

// ExtraValue returns the first value of the free-text IdP attribute name,
// or "" when the attribute is absent. Templates use it as
// {{ .ExtraValue "location" }}: unlike .Extra.location it does not fail when
// the attribute is missing.
func (id Identity) ExtraValue(name string) string {
	if vs := id.Extra[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

type contact struct {
	Value   string
	Type    string
	Primary bool
}

func pickContact(cs []contact) string {
	first, work := "", ""
	for _, c := range cs {
		v := strings.TrimSpace(c.Value)
		if v == "" {
			continue
		}
		if c.Primary {
			return v
		}
		if first == "" {
			first = v
		}
		if work == "" && strings.EqualFold(c.Type, "work") {
			work = v
		}
	}
	if work != "" {
		return work
	}
	return first
}
