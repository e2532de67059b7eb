package mapping

import (
	"reflect"
	"strings"
	"testing"
)

const sourcesBase = `version: 1
friendly_name: "{{ .UserName }}"
owns: [full_name, email, routing]
attributes:
  full_name: "{{ .DisplayName }}"
  email: "{{ .PrimaryEmail }}"
  routing: { skills: [sales] }
roles:
  default: [agent]
  rules:
    - when: { group: "Flex Admins" }
      grant: [admin]
`

func TestCombine(t *testing.T) {
	scimID := Identity{
		ID: "u1", UserName: "ada@example.com", Active: true, DisplayName: "Ada (SCIM)",
		Emails: []Email{{Value: "ada@scim.example"}},
		Groups: []Group{{ID: "g1", DisplayName: "Flex Agents"}},
		Title:  "Engineer",
	}
	login := &Identity{
		UserName: "ada@example.com", DisplayName: "Ada (SAML)",
		Emails: []Email{{Value: "ada@saml.example"}},
		Groups: []Group{{DisplayName: "Flex Admins"}},
		Extra:  map[string][]string{"costCenter": {"42"}},
	}
	scimWins := mustParse(t, sourcesBase)
	samlWins := mustParse(t, sourcesBase+"sources: { display_name: saml, emails: saml, groups: saml }\n")

	cases := []struct {
		name      string
		c         *Config
		scim      Identity
		scimKnown bool
		saml      *Identity
		wantName  string
		wantEmail string
		wantGroup []string
		wantRoles []string
	}{
		{"no login", scimWins, scimID, true, nil, "Ada (SCIM)", "ada@scim.example", []string{"Flex Agents"}, []string{"agent"}},
		{"scim authoritative", scimWins, scimID, true, login, "Ada (SCIM)", "ada@scim.example", []string{"Flex Agents"}, []string{"agent"}},
		{"saml authoritative", samlWins, scimID, true, login, "Ada (SAML)", "ada@saml.example", []string{"Flex Admins"}, []string{"admin"}},
		{"login-only person", scimWins, Identity{ID: "u1", UserName: "ada@example.com", Active: true}, false, login, "Ada (SAML)", "ada@saml.example", []string{"Flex Admins"}, []string{"admin"}},
		{"scim authoritative but empty: login fills name and email, never groups", scimWins,
			Identity{ID: "u1", UserName: "ada@example.com", Active: true}, true, login, "Ada (SAML)", "ada@saml.example", nil, []string{"agent"}},
		{"saml authoritative but the login has no groups attribute", samlWins, scimID, true,
			&Identity{DisplayName: "", Emails: nil, Groups: nil}, "Ada (SCIM)", "ada@scim.example", []string{"Flex Agents"}, []string{"agent"}},
		{"saml authoritative and the login has an empty groups list", samlWins, scimID, true,
			&Identity{Groups: []Group{}}, "Ada (SCIM)", "ada@scim.example", nil, []string{"agent"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.c.Combine(tc.scim, tc.scimKnown, tc.saml)
			if got.DisplayName != tc.wantName {
				t.Errorf("DisplayName = %q, want %q", got.DisplayName, tc.wantName)
			}
			if got.PrimaryEmail() != tc.wantEmail {
				t.Errorf("email = %q, want %q", got.PrimaryEmail(), tc.wantEmail)
			}
			if g := got.GroupNames(); !reflect.DeepEqual(g, tc.wantGroup) && !(len(g) == 0 && len(tc.wantGroup) == 0) {
				t.Errorf("groups = %q, want %q", g, tc.wantGroup)
			}
			if got.ID != "u1" || got.UserName != "ada@example.com" || !got.Active {
				t.Errorf("identifiers or active changed: %+v", got)
			}
			spec, err := tc.c.Evaluate(got)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(spec.Roles, tc.wantRoles) {
				t.Errorf("roles = %q, want %q", spec.Roles, tc.wantRoles)
			}
		})
	}
	// SCIM-only attributes survive; Extra comes from the login.
	got := scimWins.Combine(scimID, true, login)
	if got.Title != "Engineer" || got.Extra["costCenter"][0] != "42" {
		t.Errorf("Title %q, Extra %v", got.Title, got.Extra)
	}
	// Combine must not alias the login's slices.
	got = samlWins.Combine(scimID, true, login)
	got.Groups[0].DisplayName = "changed"
	if login.Groups[0].DisplayName != "Flex Admins" {
		t.Error("Combine returned the login's Groups slice itself")
	}
}

func TestClaims(t *testing.T) {
	id := Identity{ID: "u1", UserName: "ada@example.com", Active: true, DisplayName: "Ada",
		Groups: []Group{{DisplayName: "Flex Admins"}}}

	c := mustParse(t, sourcesBase)
	spec, err := c.Evaluate(id)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Claims(spec)
	want := map[string][]string{"roles": {"admin"}, "full_name": {"Ada"}} // email and image_url empty or not owned
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default claims = %v, want %v", got, want)
	}
	if _, ok := got["routing"]; ok {
		t.Error("routing, a key managed through TaskRouter, was sent as a claim")
	}

	c = mustParse(t, sourcesBase+"claims: [roles, email]\n")
	spec, _ = c.Evaluate(Identity{ID: "u1", UserName: "bo", Active: true, Emails: []Email{{Value: "bo@example.com"}}})
	if got := c.Claims(spec); !reflect.DeepEqual(got, map[string][]string{"roles": {"agent"}, "email": {"bo@example.com"}}) {
		t.Errorf("listed claims = %v", got)
	}
	spec, _ = c.Evaluate(Identity{ID: "u1", UserName: "bo", Active: false})
	if got := c.Claims(spec); got != nil {
		t.Errorf("claims without access = %v, want nil", got)
	}
}

func TestSourcesAndClaimsProblems(t *testing.T) {
	cases := map[string]string{
		"sources: { groups: okta }\n":             `sources.groups: must be "scim" or "saml"`,
		"sources: { roles: saml }\n":              `sources.roles: unknown key "roles"`,
		"claims: [full_name]\n":                   `claims: must include "roles"`,
		"claims: [roles, routing]\n":              `"routing" is not a claim Flex reads at login`,
		"claims: [roles, department]\n":           `"department" must be an owned key with a value under attributes`,
		"claims: [roles, roles]\n":                `"roles" is listed twice`,
		"claims: roles\n":                         `claims: must be a list`,
		"sources: { display_name: [scim] }\n":     `sources.display_name: must be a string`,
		"claims: [roles, email, channel.x.cap]\n": `"channel.x.cap" is not a claim Flex reads`,
	}
	for extra, want := range cases {
		_, err := Parse([]byte(sourcesBase + extra))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", extra, err, want)
		}
	}
}

func TestLoginEncoding(t *testing.T) {
	in := Identity{
		DisplayName: "Ada", Name: Name{GivenName: "Ada", FamilyName: "Lovelace"},
		Emails: []Email{{Value: "ada@example.com", Primary: true}},
		Groups: []Group{{ID: "dropped", ExternalID: "6b8d7f51-0d0f-4d3c-a7a4-0f5c2d0c9b1e"}, {DisplayName: "Flex Admins"}},
		Extra:  map[string][]string{"b": {"2"}, "a": {"1", "x"}},
	}
	b1, err := EncodeLogin(in)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := EncodeLogin(in)
	if string(b1) != string(b2) {
		t.Fatal("encoding is not deterministic")
	}
	out, err := DecodeLogin(b1)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Groups = []Group{{ExternalID: in.Groups[0].ExternalID}, {DisplayName: "Flex Admins"}}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, want)
	}
	// Groups: nil (not said) and empty (said: none) stay apart.
	for _, gs := range [][]Group{nil, {}} {
		b, _ := EncodeLogin(Identity{Groups: gs})
		out, _ := DecodeLogin(b)
		if (out.Groups == nil) != (gs == nil) {
			t.Errorf("groups %#v came back as %#v (%s)", gs, out.Groups, b)
		}
	}
	if _, err := DecodeLogin([]byte(`{"groups":"x"}`)); err == nil {
		t.Error("a malformed stored identity was accepted")
	}
}

func TestTaskRouterOnlyKeys(t *testing.T) {
	c := mustParse(t, sourcesBase)
	if got, want := c.TaskRouterOnlyKeys(), []string{"flexbridge", "routing"}; !reflect.DeepEqual(got, want) {
		t.Errorf("TaskRouterOnlyKeys = %v, want %v", got, want)
	}
	c = mustParse(t, sourcesBase+"claims: [roles]\n")
	if got, want := c.TaskRouterOnlyKeys(), []string{"email", "flexbridge", "full_name", "routing"}; !reflect.DeepEqual(got, want) {
		t.Errorf("with claims [roles]: TaskRouterOnlyKeys = %v, want %v", got, want)
	}
}
