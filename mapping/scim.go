package mapping

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// EnterpriseSchema is the SCIM enterprise user extension's URN.
const EnterpriseSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// IdentityFromSCIM reads a SCIM 2.0 User resource (RFC 7643 §4.1, with the enterprise extension
// of §4.3) into an Identity. Attribute names are matched case-insensitively, as SCIM requires;
// booleans may be JSON booleans or the strings Entra ID sends ("True"). Unknown attributes are
// ignored. id is the directory's id of the user; groups are the user's group memberships.
func IdentityFromSCIM(id string, resource []byte, groups []Group) (Identity, error) {
	var m map[string]any
	if len(resource) > 0 { // none: a person created at login, never described by SCIM
		if err := json.Unmarshal(resource, &m); err != nil {
			return Identity{}, fmt.Errorf("scim user %s: %w", id, err)
		}
	}
	o := obj(m)
	ident := Identity{
		ID:                id,
		UserName:          o.str("userName"),
		ExternalID:        o.str("externalId"),
		DisplayName:       o.str("displayName"),
		Title:             o.str("title"),
		NickName:          o.str("nickName"),
		Locale:            o.str("locale"),
		Timezone:          o.str("timezone"),
		UserType:          o.str("userType"),
		PreferredLanguage: o.str("preferredLanguage"),
		Active:            o.boolean("active", true),
		Groups:            groups,
	}
	if n := o.obj("name"); n != nil {
		ident.Name = Name{
			Formatted:  n.str("formatted"),
			GivenName:  n.str("givenName"),
			FamilyName: n.str("familyName"),
			MiddleName: n.str("middleName"),
		}
	}
	for _, e := range o.list("emails") {
		ident.Emails = append(ident.Emails, Email{Value: e.str("value"), Type: e.str("type"), Primary: e.boolean("primary", false)})
	}
	for _, p := range o.list("phoneNumbers") {
		ident.PhoneNumbers = append(ident.PhoneNumbers, Phone{Value: p.str("value"), Type: p.str("type"), Primary: p.boolean("primary", false)})
	}
	var photos []contact
	for _, p := range o.list("photos") {
		photos = append(photos, contact{Value: p.str("value"), Type: p.str("type"), Primary: p.boolean("primary", false)})
	}
	ident.PhotoURL = pickContact(photos)
	if e := o.obj(EnterpriseSchema); e != nil {
		ident.Enterprise = Enterprise{
			EmployeeNumber: e.str("employeeNumber"),
			CostCenter:     e.str("costCenter"),
			Organization:   e.str("organization"),
			Division:       e.str("division"),
			Department:     e.str("department"),
		}
		if mgr := e.obj("manager"); mgr != nil {
			ident.Enterprise.Manager = Manager{ID: mgr.str("value"), DisplayName: mgr.str("displayName")}
		} else {
			ident.Enterprise.Manager = Manager{ID: e.str("manager")} // Entra sends the id as a bare string
		}
	}
	return ident, nil
}

// obj is a JSON object read with SCIM's case-insensitive attribute names.
type obj map[string]any

func (o obj) get(name string) (any, bool) {
	if v, ok := o[name]; ok {
		return v, true
	}
	for k, v := range o {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

func (o obj) str(name string) string {
	v, _ := o.get(name)
	switch v := v.(type) {
	case string:
		return v
	case float64, bool, json.Number:
		return fmt.Sprint(v)
	}
	return ""
}

func (o obj) boolean(name string, def bool) bool {
	v, ok := o.get(name)
	if !ok || v == nil {
		return def
	}
	switch v := v.(type) {
	case bool:
		return v
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil {
			return b
		}
	}
	return def
}

func (o obj) obj(name string) obj {
	v, _ := o.get(name)
	if m, ok := v.(map[string]any); ok {
		return obj(m)
	}
	return nil
}

func (o obj) list(name string) []obj {
	v, _ := o.get(name)
	l, _ := v.([]any)
	out := make([]obj, 0, len(l))
	for _, e := range l {
		if m, ok := e.(map[string]any); ok {
			out = append(out, obj(m))
		}
	}
	return out
}
