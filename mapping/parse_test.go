package mapping

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// head is the start of a valid mapping; tests append to it.
const head = "version: 1\nfriendly_name: \"{{ .UserName }}\"\n"

// validRoles completes head into a valid mapping.
const validRoles = "roles: {default: [agent]}\n"

type wantProblem struct {
	path string
	line int
	msg  string // substring of the message
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v (%T), want *ValidationError", err, err)
	}
	if len(ve.Problems) == 0 {
		t.Fatal("ValidationError without problems")
	}
	return ve.Problems
}

func checkProblems(t *testing.T, got []Problem, want []wantProblem) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:", len(got), len(want))
		for _, p := range got {
			t.Errorf("  got  %s", p)
		}
		for _, w := range want {
			t.Errorf("  want %s: ...%s... (line %d)", w.path, w.msg, w.line)
		}
		return
	}
	for i, w := range want {
		g := got[i]
		if g.Path != w.path || !strings.Contains(g.Message, w.msg) || (w.line != 0 && g.Line != w.line) {
			t.Errorf("problem %d = %s\n         want %s: ...%s... (line %d)", i, g, w.path, w.msg, w.line)
		}
	}
}

func TestParseValid(t *testing.T) {
	c := mustParse(t, head+`owns: [routing, full_name, contact_uri, gone]
roles:
  default: [agent, wfo.agent_self_assessment]
  rules:
    - when: {group: 2024}
      grant: [supervisor, supervisor]
    - when: {attribute: extra.x, equals: "1"}
      grant: [wfo.team_leader]
    - when: {attribute: Department, in: [" Sales ", support]}
      grant: [agent]
attributes:
  full_name: "{{ .DisplayName }}"
  contact_uri: "client:{{ .NickName | default \"anonymous\" }}"
  routing:
    skills: [sales, "{{ .Enterprise.Department | lower }}"]
    levels: {sales: 3, "Tier 1": 1.5, on: true, none: null}
inactive: delete
`)
	if got, want := c.Owned(), []string{"contact_uri", "flexbridge", "full_name", "gone", "roles", "routing"}; !slices.Equal(got, want) {
		t.Errorf("Owned() = %q, want %q", got, want)
	}
	if c.Inactive() != InactiveDelete {
		t.Errorf("Inactive() = %q", c.Inactive())
	}
	if got := c.rules[0]; got.group != "2024" || !slices.Equal(got.grant, []string{"supervisor"}) {
		t.Errorf("rule 0 = %+v: YAML numbers are group names; grants are deduplicated", got)
	}
	if got := c.rules[1]; got.attribute != "extra.x" || !slices.Equal(got.values, []string{"1"}) {
		t.Errorf("rule 1 = %+v", got)
	}
	if got := c.rules[2]; got.attribute != "department" || !slices.Equal(got.values, []string{"Sales", "support"}) {
		t.Errorf("rule 2 = %+v, want attribute department, values trimmed", got)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []wantProblem
	}{
		{"empty file", "", []wantProblem{{"", 0, "file is empty"}}},
		{"comment only", "# nothing\n", []wantProblem{{"", 0, "file is empty"}}},
		{"not a mapping", "[1, 2]\n", []wantProblem{{"", 1, "must be a mapping of the keys version"}}},
		{"yaml syntax", "version: 1\n  bad: [\n", []wantProblem{{"", 0, "line"}}},
		{"two documents", head + validRoles + "---\nversion: 1\n", []wantProblem{{"", 0, "only one YAML document"}}},
		{"too large", strings.Repeat("#", MaxConfigSize+1), []wantProblem{{"", 0, "larger than"}}},
		{"missing required", "owns: []\n", []wantProblem{
			{"version", 1, "is required"}, {"friendly_name", 1, "is required"}, {"roles", 1, "is required"}}},
		{"unknown top key", head + validRoles + "colour: red\n", []wantProblem{{"colour", 4, `unknown key "colour"`}}},
		{"duplicate key", head + validRoles + "version: 1\n", []wantProblem{{"version", 4, "duplicate key"}}},
		{"version 2", "version: 2\nfriendly_name: x\n" + validRoles, []wantProblem{{"version", 1, "must be 1"}}},
		{"version string", "version: \"1\"\nfriendly_name: x\n" + validRoles, []wantProblem{{"version", 1, "must be 1"}}},
		{"friendly_name empty", "version: 1\nfriendly_name:\n" + validRoles, []wantProblem{{"friendly_name", 2, "must not be empty"}}},
		{"friendly_name list", "version: 1\nfriendly_name: [a]\n" + validRoles, []wantProblem{{"friendly_name", 2, "must be a string"}}},
		{"template syntax", "version: 1\nfriendly_name: '{{ .UserName'\n" + validRoles, []wantProblem{{"friendly_name", 2, "unclosed action"}}},
		{"template unknown field", "version: 1\nfriendly_name: '{{ .Usename }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "can't evaluate field Usename"}}},
		{"template unknown func", "version: 1\nfriendly_name: '{{ .UserName | shout }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, `function "shout" not defined`}}},
		{"template fails on zero identity", "version: 1\nfriendly_name: '{{ (index .Emails 0).Value }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "fails for a user with no data"}}},
		{"template extra map key", "version: 1\nfriendly_name: '{{ .Extra.location }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, `.ExtraValue "name"`}}},
		{"template wrong arg type", "version: 1\nfriendly_name: '{{ join \",\" .UserName }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "wrong type"}}},
		{"template define", "version: 1\nfriendly_name: '{{ define \"x\" }}a{{ end }}{{ template \"x\" }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "{{define}}"}}},
		{"template range int", "version: 1\nfriendly_name: '{{ range 1000000000 }}{{ end }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "range may only iterate over identity fields"}}},
		{"template range variable", "version: 1\nfriendly_name: '{{ $n := 9 }}{{ range $n }}{{ end }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "range may only iterate"}}},
		{"template output too long", "version: 1\nfriendly_name: '" + strings.Repeat("x", 4097) + "'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "output longer than 4096"}}},
		{"template printf width", "version: 1\nfriendly_name: '{{ printf \"%0999999d\" 0 }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "width or precision above 4096"}}},
		{"template printf output", "version: 1\nfriendly_name: '{{ printf \"" + strings.Repeat("%4000d", 2) + "\" 1 2 }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "printf: output longer than 4096"}}},
		{"template nested ranges", "version: 1\nfriendly_name: '{{ range .Groups }}{{ range $.Groups }}{{ range $.Groups }}{{ end }}{{ end }}{{ end }}'\n" + validRoles,
			[]wantProblem{{"friendly_name", 2, "ranges nest deeper than 2"}}},
		{"owns not a list", head + validRoles + "owns: full_name\n", []wantProblem{{"owns", 4, "must be a list"}}},
		{"owns hyphen", head + validRoles + "owns: [full-name]\n", []wantProblem{{"owns[0]", 4, "contains '-'"}}},
		{"owns team_sid", head + validRoles + "owns: [team_sid]\n", []wantProblem{{"owns[0]", 4, "Flex Teams"}}},
		{"owns roles", head + validRoles + "owns: [roles]\n", []wantProblem{{"owns[0]", 4, "always owned"}}},
		{"owns marker", head + validRoles + "owns: [flexbridge]\n", []wantProblem{{"owns[0]", 4, "ownership marker"}}},
		{"owns bad key", head + validRoles + "owns: [\"a.b\", 1x]\n", []wantProblem{
			{"owns[0]", 4, "letters, digits and '_'"}, {"owns[1]", 4, "letters, digits and '_'"}}},
		{"owns twice", head + validRoles + "owns: [email, email]\n", []wantProblem{{"owns[1]", 4, "listed twice"}}},
		{"roles missing base", head + "roles: {}\n", []wantProblem{{"roles", 3, "nobody could log in"}}},
		{"roles rules only wfo", head + "roles:\n  rules:\n    - when: {group: G}\n      grant: [wfo.team_leader]\n",
			[]wantProblem{{"roles", 4, "nobody could log in"}}},
		{"roles unknown key", head + "roles: {default: [agent], deny: [x]}\n", []wantProblem{{"roles.deny", 3, "unknown key"}}},
		{"default unknown role", head + "roles: {default: [agent, Admin]}\n", []wantProblem{{"roles.default[1]", 3, `unknown role "Admin"`}}},
		{"default without base role", head + "roles:\n  default: [wfo.full_access]\n  rules: [{when: {group: A}, grant: [admin]}]\n",
			[]wantProblem{{"roles.default", 4, "must include a base role"}}},
		{"rules not a list", head + "roles: {default: [agent], rules: {when: {group: A}}}\n", []wantProblem{{"roles.rules", 3, "must be a list"}}},
		{"rule without when", head + "roles:\n  default: [agent]\n  rules:\n    - grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when", 6, "is required"}}},
		{"rule without grant", head + "roles:\n  default: [agent]\n  rules:\n    - when: {group: A}\n",
			[]wantProblem{{"roles.rules[0].grant", 6, "is required"}}},
		{"rule empty grant", head + "roles:\n  default: [agent]\n  rules:\n    - when: {group: A}\n      grant: []\n",
			[]wantProblem{{"roles.rules[0].grant", 7, "at least one role"}}},
		{"rule empty when", head + "roles:\n  default: [agent]\n  rules:\n    - when: {}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when", 6, "needs a condition"}}},
		{"rule empty group", head + "roles:\n  default: [agent]\n  rules:\n    - when: {group: \" \"}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when.group", 6, "must not be empty"}}},
		{"rule unknown condition", head + "roles:\n  default: [agent]\n  rules:\n    - when: {group: A, role: x}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when.role", 6, `unknown key "role"`}}},
		{"rule unknown attribute", head + "roles:\n  default: [agent]\n  rules:\n    - when: {attribute: dept, equals: x}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when.attribute", 6, `unknown attribute "dept"`}}},
		{"rule extra prefix is lower case", head + "roles:\n  default: [agent]\n  rules:\n    - when: {attribute: EXTRA.x, equals: x}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when.attribute", 6, `unknown attribute "EXTRA.x"`}}},
		{"rule extra without name", head + "roles:\n  default: [agent]\n  rules:\n    - when: {attribute: extra., equals: x}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when.attribute", 6, "names no IdP attribute"}}},
		{"rule attribute without value", head + "roles:\n  default: [agent]\n  rules:\n    - when: {attribute: title}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when.attribute", 6, "needs equals or in"}}},
		{"rule equals without attribute", head + "roles:\n  default: [agent]\n  rules:\n    - when: {group: A, equals: x}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when.equals", 6, "needs attribute"}}},
		{"rule equals and in", head + "roles:\n  default: [agent]\n  rules:\n    - when: {attribute: title, equals: x, in: [y]}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when.in", 6, "not both"}}},
		{"rule empty in", head + "roles:\n  default: [agent]\n  rules:\n    - when: {attribute: title, in: [\"\", x]}\n      grant: [admin]\n",
			[]wantProblem{{"roles.rules[0].when.in[0]", 6, "must not be empty"}}},
		{"rule grant wfo typo", head + "roles:\n  default: [agent]\n  rules:\n    - when: {group: A}\n      grant: [wfo.Team-Leader, supervisor]\n",
			[]wantProblem{{"roles.rules[0].grant[0]", 7, "unknown role"}}},
		{"attribute not owned", head + validRoles + "attributes: {email: x}\n", []wantProblem{{"attributes.email", 4, "not listed in owns"}}},
		{"attribute hyphen", head + validRoles + "owns: [a]\nattributes: {a-b: x}\n", []wantProblem{{`attributes["a-b"]`, 5, "contains '-'"}}},
		{"attribute reserved", head + validRoles + "attributes: {team_sid: x}\n", []wantProblem{{"attributes.team_sid", 4, "Flex Teams"}}},
		{"attribute roles", head + validRoles + "attributes: {roles: [admin]}\n", []wantProblem{{"attributes.roles", 4, "always owned"}}},
		{"attribute null", head + validRoles + "owns: [a]\nattributes: {a: null}\n", []wantProblem{{"attributes.a", 5, "has no value"}}},
		{"contact_uri structured", head + validRoles + "owns: [contact_uri]\nattributes: {contact_uri: [a]}\n",
			[]wantProblem{{"attributes.contact_uri", 5, "must be a string template"}}},
		{"nested hyphen", head + validRoles + "owns: [routing]\nattributes:\n  routing: {levels: {tier-1: 1}}\n",
			[]wantProblem{{`attributes.routing.levels["tier-1"]`, 6, "contain no '-'"}}},
		{"nested template", head + validRoles + "owns: [routing]\nattributes:\n  routing: {skills: [a, '{{ .Skills }}']}\n",
			[]wantProblem{{"attributes.routing.skills[1]", 6, "can't evaluate field Skills"}}},
		{"nan", head + validRoles + "owns: [a]\nattributes: {a: [.nan, .inf]}\n",
			[]wantProblem{{"attributes.a[0]", 5, "cannot be written as JSON"}, {"attributes.a[1]", 5, "cannot be written as JSON"}}},
		{"huge int", head + validRoles + "owns: [a]\nattributes: {a: !!int 99999999999999999999}\n",
			[]wantProblem{{"attributes.a", 5, "out of range"}}},
		{"binary tag", head + validRoles + "owns: [a]\nattributes: {a: !!binary aGk=}\n", []wantProblem{{"attributes.a", 5, "unsupported YAML tag !!binary"}}},
		{"custom tag", head + validRoles + "owns: [a]\nattributes: {a: !secret x}\n", []wantProblem{{"attributes.a", 5, "unsupported YAML tag !secret"}}},
		{"alias", head + validRoles + "owns: [a, b]\nattributes:\n  a: &x [1]\n  b: *x\n", []wantProblem{{"attributes.b", 7, "aliases are not supported"}}},
		{"too deep", head + validRoles + "owns: [a]\nattributes:\n  a: " + strings.Repeat("[", 20) + strings.Repeat("]", 20) + "\n",
			[]wantProblem{{"attributes.a" + strings.Repeat("[0]", 17), 6, "nested deeper than 16"}}},
		{"complex key", head + validRoles + "? [a]\n: b\n", []wantProblem{{"", 4, "keys must be plain strings"}}},
		{"alias in a field", head + validRoles + "owns: &o []\ninactive: *o\n", []wantProblem{{"inactive", 5, "aliases are not supported"}}},
		{"custom tag on a field", head + validRoles + "inactive: !x delete\n", []wantProblem{{"inactive", 4, "unsupported YAML tag !x"}}},
		{"grant not a list", head + "roles:\n  default: [agent]\n  rules:\n    - when: {group: A}\n      grant: admin\n",
			[]wantProblem{{"roles.rules[0].grant", 7, "must be a list"}}},
		{"rule not a mapping", head + "roles:\n  default: [agent]\n  rules: [admin]\n",
			[]wantProblem{{"roles.rules[0]", 5, "must be a mapping"}}},
		{"inactive keep", head + validRoles + "inactive: keep\n", []wantProblem{{"inactive", 4, `must be "delete"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.src))
			if c != nil {
				t.Error("Parse returned a config with an error")
			}
			checkProblems(t, problemsOf(t, err), tt.want)
		})
	}
}

// TestParseAllProblemsAtOnce checks that one pass reports every problem,
// with its key path, in document order.
func TestParseAllProblemsAtOnce(t *testing.T) {
	src := `version: 2
friendly_name: "{{ .Usename }}"
owns: [full_name, team_sid, full-name]
roles:
  default: [agnt]
  rules:
    - when: {group: "Flex Admins"}
      grant: [admin]
    - when: {group: "Flex Supervisors", colour: red}
      grant: [supervisor]
    - when: {group: "Flex Agents"}
      grant: [agent, wfo.Bad]
attributes:
  full_name: "{{ .DisplayName }}"
  email: "{{ .PrimaryEmail }}"
inactive: archive
extra: true
`
	_, err := Parse([]byte(src))
	checkProblems(t, problemsOf(t, err), []wantProblem{
		{"version", 1, "must be 1"},
		{"friendly_name", 2, "Usename"},
		{"owns[1]", 3, "Flex Teams"},
		{"owns[2]", 3, "'-'"},
		{"roles.default[0]", 5, `unknown role "agnt"`},
		{"roles.rules[1].when.colour", 9, "unknown key"},
		{"roles.rules[2].grant[1]", 12, `unknown role "wfo.Bad"`},
		{"attributes.email", 15, "not listed in owns"},
		{"inactive", 16, `must be "delete"`},
		{"extra", 17, "unknown key"},
	})
	msg := err.Error()
	for _, want := range []string{"mapping: 10 problems: version: must be 1 (line 1); ", "roles.rules[2].grant[1]: unknown role"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Error() = %q, want it to contain %q", msg, want)
		}
	}
}

// TestConfigFiles loads every example mapping shipped in configs/.
func TestConfigFiles(t *testing.T) {
	files, err := filepath.Glob("../configs/mapping*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d mapping files in configs/, want at least mapping.yaml, mapping-okta.yaml, mapping-entra.yaml", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			owned := c.Owned()
			if !slices.Contains(owned, RolesKey) || !slices.Contains(owned, MarkerKey) {
				t.Errorf("Owned() = %q lacks roles or the marker", owned)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(head+"roles: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(bad)
	if !strings.HasPrefix(err.Error(), bad+": mapping: 1 problem: roles:") {
		t.Errorf("error = %q, want it prefixed by the path", err)
	}
	checkProblems(t, problemsOf(t, err), []wantProblem{{"roles", 3, "nobody could log in"}})

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxConfigSize+10), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(big)
	checkProblems(t, problemsOf(t, err), []wantProblem{{"", 0, "larger than"}})

	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: error = %v, want os.ErrNotExist", err)
	}
}

func TestValidRole(t *testing.T) {
	for r, want := range map[string]bool{
		"admin": true, "supervisor": true, "agent": true, "wfo.full_access": true, "wfo.team_leader": true,
		"Admin": false, "": false, "wfo.": false, "wfo.Full": false, "wfo.a-b": false, "guest": false, "wfo.x.y": false,
	} {
		if got := ValidRole(r); got != want {
			t.Errorf("ValidRole(%q) = %v, want %v", r, got, want)
		}
	}
}
