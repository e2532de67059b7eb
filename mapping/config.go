package mapping

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

// Limits and names shared with the rest of flexbridge.
const (
	// MarkerKey is the ownership marker attribute written on every worker
	// the bridge creates: {"managed":true,"user_id":"<Identity.ID>"}.
	MarkerKey = "flexbridge"
	// RolesKey is the worker attribute that carries the Flex roles.
	RolesKey = "roles"
	// MaxFriendlyNameLength is TaskRouter's limit on a worker's FriendlyName.
	MaxFriendlyNameLength = 64
	// MaxAttributesLength is TaskRouter's limit on a worker's attributes.
	MaxAttributesLength = 4096
	// MaxConfigSize bounds the size of a mapping file.
	MaxConfigSize = 1 << 20
)

// Flex base roles. A worker needs at least one of them or Flex refuses the
// login (error 45050). Flex Insights roles are "wfo.<name>".
const (
	RoleAdmin      = "admin"
	RoleSupervisor = "supervisor"
	RoleAgent      = "agent"
)

// InactiveDelete is the only supported "inactive" policy: the worker of an
// inactive user is taken offline and deleted.
const InactiveDelete = "delete"

var (
	wfoRoleRE    = regexp.MustCompile(`^wfo\.[a-z][a-z0-9_]*$`)
	keyRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	contactURIRE = regexp.MustCompile(`^(client:[A-Za-z0-9_]+|sip:.+|\+[1-9]\d{1,14})$`)
)

// reservedKeys may never be owned by the bridge.
var reservedKeys = map[string]string{
	"team_sid": "team_sid is owned by Flex Teams",
	RolesKey:   "roles is always owned; it is computed from the roles section",
	MarkerKey:  MarkerKey + " is the ownership marker; it is always owned and written by the bridge",
}

// ValidRole reports whether r is a role a mapping may grant: admin,
// supervisor, agent or wfo.<name>.
func ValidRole(r string) bool {
	return IsBaseRole(r) || wfoRoleRE.MatchString(r)
}

// IsBaseRole reports whether r is admin, supervisor or agent.
func IsBaseRole(r string) bool {
	return r == RoleAdmin || r == RoleSupervisor || r == RoleAgent
}

// ValidContactURI reports whether s is an acceptable TaskRouter contact_uri:
// client:<identity>, sip:<uri> or an E.164 phone number.
func ValidContactURI(s string) bool { return contactURIRE.MatchString(s) }

// Config is a parsed, validated mapping. It is immutable and safe for
// concurrent use. Build one with Parse or LoadFile.
type Config struct {
	friendlyName *template.Template
	owned        []string // sorted, as listed in owns (no roles, no marker)
	attrs        []attribute
	rules        []rule
	defaultRoles []string
	inactive     string
	insights     string            // InsightsWarn or InsightsStrip
	sources      map[string]string // part -> SourceSCIM or SourceSAML; absent: SourceSCIM
	claims       []string          // broker claims; nil: DefaultClaims
}

// Policies for Flex Insights (wfo.*) roles given to a user who is neither supervisor nor admin:
// Flex does not let agent-only users into Insights, so such roles cannot be honoured.
const (
	InsightsWarn  = "warn"  // keep the roles and report a warning (audited by sync)
	InsightsStrip = "strip" // drop the wfo.* roles and report a warning
)

type attribute struct {
	key string
	val value
}

type rule struct {
	group     string
	attribute string // canonical attribute name, or "extra.<name>"
	values    []string
	grant     []string
}

// Owned returns the sorted worker attribute keys the bridge owns, always
// including RolesKey and MarkerKey.
func (c *Config) Owned() []string {
	out := append([]string{RolesKey, MarkerKey}, c.owned...)
	slices.Sort(out)
	return out
}

// Inactive returns the policy for inactive users (InactiveDelete).
func (c *Config) Inactive() string { return c.inactive }

// LoadFile reads and parses the mapping file at path.
func LoadFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("mapping: read %s: %w", path, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// attributeNames are the identity attributes a role rule may test, by lower
// case name. Multi-valued ones match when any value matches.
var attributeNames = map[string]func(*Identity) []string{
	"username":          func(id *Identity) []string { return []string{id.UserName} },
	"externalid":        func(id *Identity) []string { return []string{id.ExternalID} },
	"displayname":       func(id *Identity) []string { return []string{id.DisplayName} },
	"nickname":          func(id *Identity) []string { return []string{id.NickName} },
	"title":             func(id *Identity) []string { return []string{id.Title} },
	"usertype":          func(id *Identity) []string { return []string{id.UserType} },
	"locale":            func(id *Identity) []string { return []string{id.Locale} },
	"timezone":          func(id *Identity) []string { return []string{id.Timezone} },
	"preferredlanguage": func(id *Identity) []string { return []string{id.PreferredLanguage} },
	"employeenumber":    func(id *Identity) []string { return []string{id.Enterprise.EmployeeNumber} },
	"costcenter":        func(id *Identity) []string { return []string{id.Enterprise.CostCenter} },
	"organization":      func(id *Identity) []string { return []string{id.Enterprise.Organization} },
	"division":          func(id *Identity) []string { return []string{id.Enterprise.Division} },
	"department":        func(id *Identity) []string { return []string{id.Enterprise.Department} },
	"email": func(id *Identity) []string {
		out := make([]string, 0, len(id.Emails))
		for _, e := range id.Emails {
			out = append(out, e.Value)
		}
		return out
	},
}

// AttributeNames lists the identity attributes a role rule may name (besides
// "extra.<name>"), sorted.
func AttributeNames() []string {
	out := []string{"userName", "externalId", "displayName", "nickName", "title", "userType",
		"locale", "timezone", "preferredLanguage", "employeeNumber", "costCenter",
		"organization", "division", "department", "email"}
	slices.Sort(out)
	return out
}

const extraPrefix = "extra."

func (r *rule) matches(id *Identity) bool {
	if r.group != "" {
		found := false
		for _, g := range id.Groups {
			if g.ID == r.group || (g.ExternalID != "" && g.ExternalID == r.group) || strings.EqualFold(g.DisplayName, r.group) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if r.attribute != "" {
		var have []string
		if name, ok := strings.CutPrefix(r.attribute, extraPrefix); ok {
			have = id.Extra[name]
		} else {
			have = attributeNames[r.attribute](id)
		}
		found := false
		for _, h := range have {
			for _, want := range r.values {
				if strings.EqualFold(strings.TrimSpace(h), want) {
					found = true
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}
