package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

const evalConfig = `version: 1
friendly_name: "{{ .UserName }}"
owns: [full_name, email, department, routing, contact_uri, image_url, gone]
roles:
  default: [agent]
  rules:
    - when: {group: "Flex Admins"}
      grant: [admin]
    - when: {group: "Flex Supervisors"}
      grant: [supervisor, wfo.team_leader]
    - when: {group: "Flex Agents"}
      grant: [agent]
    - when: {group: "0b6f4c47-8a27-4f3e-9d8e-2a7f1f5c1a01"}
      grant: [admin]
    - when: {attribute: department, equals: quality}
      grant: [wfo.quality_process_manager]
    - when: {group: "Flex Supervisors", attribute: division, in: [EMEA, APAC]}
      grant: [wfo.full_access]
    - when: {attribute: extra.flexRole, equals: "team lead"}
      grant: [supervisor]
attributes:
  full_name: '{{ or .DisplayName .Name.Formatted (trim (printf "%s %s" .Name.GivenName .Name.FamilyName)) .UserName }}'
  email: "{{ .PrimaryEmail }}"
  department: "{{ .Enterprise.Department }}"
  image_url: "{{ .PhotoURL }}"
  contact_uri: '{{ with .PrimaryPhone }}{{ . }}{{ else }}client:{{ .UserName | replace "@" "_" | replace "." "_" }}{{ end }}'
  routing:
    skills: [support, "{{ .Enterprise.Department | lower }}"]
    levels: {support: 3, "Tier 1": 1.5}
    active: true
    note: null
`

func TestEvaluate(t *testing.T) {
	c := mustParse(t, evalConfig)
	deny := mustParse(t, strings.Replace(evalConfig, "default: [agent]", "default: []", 1))
	base := Identity{ID: "u1", UserName: "jo@example.com", Active: true}
	with := func(f func(*Identity)) Identity {
		id := base
		f(&id)
		return id
	}
	tests := []struct {
		name       string
		cfg        *Config
		id         Identity
		wantAccess bool
		wantReason string
		wantRoles  []string
		wantName   string
		wantAttrs  map[string]any // checked key by key when set
	}{
		{name: "no group gets default", id: base, wantAccess: true, wantRoles: []string{"agent"}, wantName: "jo@example.com"},
		{name: "admin by group name, any case", id: with(func(id *Identity) { id.Groups = []Group{{ID: "x", DisplayName: "flex ADMINS"}} }),
			wantAccess: true, wantRoles: []string{"admin"}},
		{name: "supervisor with insights role", id: with(func(id *Identity) { id.Groups = []Group{{DisplayName: "Flex Supervisors"}} }),
			wantAccess: true, wantRoles: []string{"supervisor", "wfo.team_leader"}},
		{name: "union of all matching rules", id: bob, wantAccess: true, wantRoles: []string{"admin", "agent"}, wantName: "bob@example.com"},
		{name: "group by id", id: with(func(id *Identity) {
			id.Groups = []Group{{ID: "0b6f4c47-8a27-4f3e-9d8e-2a7f1f5c1a01", DisplayName: "Renamed"}}
		}),
			wantAccess: true, wantRoles: []string{"admin"}},
		{name: "group id is exact", id: with(func(id *Identity) { id.Groups = []Group{{ID: "0B6F4C47-8A27-4F3E-9D8E-2A7F1F5C1A01"}} }),
			wantAccess: true, wantRoles: []string{"agent"}},
		{name: "insights-only grant still gets default base role",
			id:         with(func(id *Identity) { id.Enterprise.Department = " Quality " }),
			wantAccess: true, wantRoles: []string{"agent", "wfo.quality_process_manager"}},
		{name: "group and attribute both required", id: with(func(id *Identity) {
			id.Groups = []Group{{DisplayName: "Flex Supervisors"}}
			id.Enterprise.Division = "apac"
		}), wantAccess: true, wantRoles: []string{"supervisor", "wfo.full_access", "wfo.team_leader"}},
		{name: "attribute alone does not satisfy group rule", id: with(func(id *Identity) { id.Enterprise.Division = "EMEA" }),
			wantAccess: true, wantRoles: []string{"agent"}},
		{name: "explicit extra rule", id: dave, wantAccess: true, wantRoles: []string{"admin", "supervisor"}},
		{name: "free-text IdP attributes grant nothing by themselves", id: with(func(id *Identity) {
			id.Extra = map[string][]string{"roles": {"admin"}, "groups": {"Flex Admins"}, "department": {"quality"}}
		}), wantAccess: true, wantRoles: []string{"agent"}},
		{name: "deny without base role", cfg: deny, id: base, wantReason: ReasonNoRole, wantName: "jo@example.com"},
		{name: "deny policy still grants by group", cfg: deny, id: with(func(id *Identity) { id.Groups = []Group{{DisplayName: "Flex Agents"}} }),
			wantAccess: true, wantRoles: []string{"agent"}},
		{name: "deny: insights role alone is no access", cfg: deny, id: with(func(id *Identity) { id.Enterprise.Department = "Quality" }),
			wantReason: ReasonNoRole, wantName: "jo@example.com"},
		{name: "inactive admin", id: erin, wantReason: ReasonInactive, wantName: "erin@example.com"},
		{name: "inactive with unusable name is no error", id: Identity{ID: "u9", Active: false}, wantReason: ReasonInactive},
		{name: "full_name from display name", id: alice, wantAccess: true, wantRoles: []string{"agent"},
			wantAttrs: map[string]any{"full_name": "Alice Liddell", "email": "alice@example.com", "department": "Support",
				"contact_uri": "+15551230001", "image_url": "https://img.example.com/alice.png"}},
		{name: "full_name from formatted", id: with(func(id *Identity) { id.Name = Name{Formatted: "Dr. Jo", GivenName: "Jo"} }),
			wantAccess: true, wantRoles: []string{"agent"}, wantAttrs: map[string]any{"full_name": "Dr. Jo"}},
		{name: "full_name from given and family", id: with(func(id *Identity) { id.Name = Name{GivenName: "Jo", FamilyName: "March"} }),
			wantAccess: true, wantRoles: []string{"agent"}, wantAttrs: map[string]any{"full_name": "Jo March"}},
		{name: "full_name falls back to userName; empty values are set to empty", id: base,
			wantAccess: true, wantRoles: []string{"agent"},
			wantAttrs: map[string]any{"full_name": "jo@example.com", "email": "", "department": "", "image_url": "",
				"contact_uri": "client:jo_example_com"}},
		{name: "typed structured value", id: with(func(id *Identity) { id.Enterprise.Department = "Sales" }),
			wantAccess: true, wantRoles: []string{"agent"},
			wantAttrs: map[string]any{"routing": map[string]any{
				"skills": []any{"support", "sales"},
				"levels": map[string]any{"support": int64(3), "Tier 1": 1.5},
				"active": true,
				"note":   nil,
			}}},
		{name: "marker and roles attributes", id: bob, wantAccess: true, wantRoles: []string{"admin", "agent"},
			wantAttrs: map[string]any{
				MarkerKey: map[string]any{"managed": true, "user_id": "u-bob"},
				RolesKey:  []string{"admin", "agent"},
			}},
		{name: "friendly name of 64 characters", id: with(func(id *Identity) {
			id.UserName = strings.Repeat("é", 64)
			id.PhoneNumbers = []Phone{{Value: "+15550000"}}
		}),
			wantAccess: true, wantRoles: []string{"agent"}, wantName: strings.Repeat("é", 64)},
		{name: "friendly name trimmed", id: with(func(id *Identity) { id.UserName = "  jo  "; id.PhoneNumbers = []Phone{{Value: "+15550000"}} }),
			wantAccess: true, wantRoles: []string{"agent"}, wantName: "jo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg == nil {
				cfg = c
			}
			spec, err := cfg.Evaluate(tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if spec.Access != tt.wantAccess || spec.Reason != tt.wantReason {
				t.Errorf("Access, Reason = %v, %q; want %v, %q", spec.Access, spec.Reason, tt.wantAccess, tt.wantReason)
			}
			if !slices.Equal(spec.Roles, tt.wantRoles) {
				t.Errorf("Roles = %q, want %q", spec.Roles, tt.wantRoles)
			}
			if tt.wantName != "" && spec.FriendlyName != tt.wantName {
				t.Errorf("FriendlyName = %q, want %q", spec.FriendlyName, tt.wantName)
			}
			wantOwned := []string{"contact_uri", "department", "email", "flexbridge", "full_name", "gone", "image_url", "roles", "routing"}
			if !slices.Equal(spec.Owned, wantOwned) {
				t.Errorf("Owned = %q, want %q", spec.Owned, wantOwned)
			}
			if !spec.Access {
				if spec.Attributes != nil || spec.Roles != nil {
					t.Errorf("no access, yet Attributes = %v, Roles = %q", spec.Attributes, spec.Roles)
				}
				return
			}
			if _, ok := spec.Attributes["gone"]; ok {
				t.Error(`owned key "gone" has no attribute rule, yet it is in Attributes`)
			}
			if got := spec.Attributes[RolesKey]; !reflect.DeepEqual(got, spec.Roles) {
				t.Errorf("Attributes[roles] = %#v, want %#v", got, spec.Roles)
			}
			if got, want := spec.Attributes[MarkerKey], map[string]any{"managed": true, "user_id": tt.id.ID}; !reflect.DeepEqual(got, want) {
				t.Errorf("Attributes[%s] = %#v, want %#v", MarkerKey, got, want)
			}
			for k, want := range tt.wantAttrs {
				if got := spec.Attributes[k]; !reflect.DeepEqual(got, want) {
					t.Errorf("Attributes[%s] = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

func TestEvaluateErrors(t *testing.T) {
	c := mustParse(t, evalConfig)
	tests := []struct {
		name     string
		cfg      *Config
		id       Identity
		wantPath string
		wantErr  error
		wantMsg  string
	}{
		{name: "friendly name too long", id: Identity{ID: "u1", Active: true, UserName: strings.Repeat("x", 65)},
			wantPath: "friendly_name", wantErr: ErrInvalidFriendlyName, wantMsg: "65 characters; must be 1 to 64"},
		{name: "friendly name too long in UTF-16", id: Identity{ID: "u1", Active: true, UserName: strings.Repeat("😀", 33)},
			wantPath: "friendly_name", wantErr: ErrInvalidFriendlyName, wantMsg: "66 characters"},
		{name: "friendly name empty", id: Identity{ID: "u1", Active: true, UserName: "   "},
			wantPath: "friendly_name", wantErr: ErrInvalidFriendlyName, wantMsg: "0 characters"},
		{name: "no user id", id: Identity{Active: true, UserName: "jo"}, wantPath: MarkerKey, wantErr: ErrNoUserID},
		{name: "bad contact_uri", id: Identity{ID: "u1", Active: true, UserName: "jo", PhoneNumbers: []Phone{{Value: "555-1234"}}},
			wantPath: "attributes.contact_uri", wantErr: ErrInvalidContactURI, wantMsg: `"555-1234"`},
		{name: "template fails for this user",
			cfg:      mustParse(t, head+validRoles+"owns: [x]\nattributes:\n  x: {a: ['{{ if .Groups }}{{ (index .Groups 1).ID }}{{ end }}']}\n"),
			id:       Identity{ID: "u1", Active: true, UserName: "jo", Groups: []Group{{ID: "g"}}},
			wantPath: "attributes.x.a[0]", wantMsg: "index out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg == nil {
				cfg = c
			}
			spec, err := cfg.Evaluate(tt.id)
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("error = %v, want *EvalError", err)
			}
			if ee.Path != tt.wantPath || ee.UserID != tt.id.ID {
				t.Errorf("Path, UserID = %q, %q; want %q, %q", ee.Path, ee.UserID, tt.wantPath, tt.id.ID)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantMsg)
			}
			if !reflect.DeepEqual(spec, WorkerSpec{}) {
				t.Errorf("spec = %+v with an error, want zero", spec)
			}
		})
	}
}

// TestEvaluateConcurrent runs under -race: a Config is shared by sync workers.
func TestEvaluateConcurrent(t *testing.T) {
	c := mustParse(t, evalConfig)
	want, err := c.Evaluate(alice)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				got, err := c.Evaluate(alice)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("goroutine %d: got %+v, %v", i, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestExampleMapping checks what configs/mapping.yaml promises.
func TestExampleMapping(t *testing.T) {
	c, err := LoadFile("../configs/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	groups := func(names ...string) []Group {
		var gs []Group
		for i, n := range names {
			gs = append(gs, Group{ID: fmt.Sprint("g", i), DisplayName: n})
		}
		return gs
	}
	tests := []struct {
		groups []Group
		roles  []string
	}{
		{nil, []string{"agent"}},
		{groups("Engineering"), []string{"agent"}},
		{groups("Flex Admins"), []string{"admin"}},
		{groups("Flex Supervisors"), []string{"supervisor", "wfo.team_leader"}},
		{groups("Flex Agents"), []string{"agent"}},
		{groups("Flex Agents", "Flex Supervisors"), []string{"agent", "supervisor", "wfo.team_leader"}},
	}
	for _, tt := range tests {
		id := alice
		id.Groups = tt.groups
		spec, err := c.Evaluate(id)
		if err != nil {
			t.Fatal(err)
		}
		if !spec.Access || !slices.Equal(spec.Roles, tt.roles) {
			t.Errorf("groups %v: Access %v, Roles %q; want roles %q", tt.groups, spec.Access, spec.Roles, tt.roles)
		}
		for k, want := range map[string]any{
			"full_name":  alice.DisplayName,
			"email":      alice.PrimaryEmail(),
			"department": alice.Enterprise.Department,
		} {
			if got := spec.Attributes[k]; got != want {
				t.Errorf("Attributes[%s] = %v, want %v", k, got, want)
			}
		}
		if spec.FriendlyName != alice.UserName {
			t.Errorf("FriendlyName = %q, want the userName %q", spec.FriendlyName, alice.UserName)
		}
	}
}

// TestConfigFilesGolden evaluates every example mapping against the shared
// identities and compares the specs with golden JSON.
func TestConfigFilesGolden(t *testing.T) {
	files, err := filepath.Glob("../configs/mapping*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	users := []Identity{alice, bob, carol, dave, erin, {ID: "u-nobody", UserName: "nobody@example.com", Active: true}}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			c, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				User   string
				Spec   *WorkerSpec     `json:",omitempty"`
				Merged json.RawMessage `json:",omitempty"`
				Error  string          `json:",omitempty"`
			}
			var out []result
			for _, id := range users {
				r := result{User: id.UserName}
				spec, err := c.Evaluate(id)
				if err != nil {
					r.Error = err.Error()
				} else {
					r.Spec = &spec
					if spec.Access {
						merged, _, err := Merge(`{"routing":{"skills":["sales"]},"team_sid":"WTx"}`, spec)
						if err != nil {
							t.Fatal(err)
						}
						r.Merged = json.RawMessage(merged)
					}
				}
				out = append(out, r)
			}
			golden(t, "configs/"+name+".json", prettyJSON(t, out))
		})
	}
}
