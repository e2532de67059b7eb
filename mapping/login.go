package mapping

import (
	"encoding/json"
	"fmt"
)

// The stored form of what a SAML login said about a person: the parts of an
// Identity an assertion can carry. The directory keeps it as JSON
// (directory.SAMLIdentity); Combine merges it with the SCIM view.

type loginJSON struct {
	DisplayName string              `json:"displayName,omitempty"`
	Name        *loginName          `json:"name,omitempty"`
	Emails      []loginEmail        `json:"emails,omitempty"`
	Groups      *[]loginGroup       `json:"groups,omitempty"` // absent: the login said nothing about groups
	Extra       map[string][]string `json:"extra,omitempty"`
}

type loginName struct {
	Formatted  string `json:"formatted,omitempty"`
	GivenName  string `json:"givenName,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
	MiddleName string `json:"middleName,omitempty"`
}

type loginEmail struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

type loginGroup struct {
	ExternalID  string `json:"externalId,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
}

// EncodeLogin returns the stored form of a login's identity: DisplayName,
// Name, Emails, Groups (nil: not said; group IDs are dropped, a login only
// knows the IdP's names and ids) and Extra. The encoding is deterministic, so
// equal logins encode to equal bytes.
func EncodeLogin(id Identity) ([]byte, error) {
	var j loginJSON
	j.DisplayName = id.DisplayName
	if id.Name != (Name{}) {
		j.Name = &loginName{id.Name.Formatted, id.Name.GivenName, id.Name.FamilyName, id.Name.MiddleName}
	}
	for _, e := range id.Emails {
		j.Emails = append(j.Emails, loginEmail(e))
	}
	if id.Groups != nil {
		gs := make([]loginGroup, 0, len(id.Groups))
		for _, g := range id.Groups {
			gs = append(gs, loginGroup{ExternalID: g.ExternalID, DisplayName: g.DisplayName})
		}
		j.Groups = &gs
	}
	if len(id.Extra) > 0 {
		j.Extra = id.Extra
	}
	return json.Marshal(j) // map keys are sorted
}

// DecodeLogin reads what EncodeLogin wrote.
func DecodeLogin(data []byte) (Identity, error) {
	var j loginJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return Identity{}, fmt.Errorf("mapping: stored login identity: %w", err)
	}
	id := Identity{DisplayName: j.DisplayName, Extra: j.Extra}
	if j.Name != nil {
		id.Name = Name(*j.Name)
	}
	for _, e := range j.Emails {
		id.Emails = append(id.Emails, Email(e))
	}
	if j.Groups != nil {
		id.Groups = make([]Group, 0, len(*j.Groups))
		for _, g := range *j.Groups {
			id.Groups = append(id.Groups, Group{ExternalID: g.ExternalID, DisplayName: g.DisplayName})
		}
	}
	return id, nil
}
