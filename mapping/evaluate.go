package mapping

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/template"
	"unicode/utf16"
)

// Reasons a WorkerSpec grants no access.
const (
	ReasonInactive = "inactive"
	ReasonNoRole   = "no role"
)

// WorkerSpec is what one identity should look like as a TaskRouter worker.
type WorkerSpec struct {
	FriendlyName string
	// Access is false when no worker should exist: the user is inactive, or
	// no rule grants a base role and roles.default is empty.
	Access bool
	// Reason says why there is no access (ReasonInactive, ReasonNoRole);
	// empty when Access.
	Reason string
	// Roles are the Flex roles, sorted and deduplicated; nil without access.
	Roles []string
	// Attributes holds the value of each owned key the worker should carry,
	// including RolesKey ([]string) and MarkerKey. An owned key absent here
	// is removed from the worker. Nil without access.
	Attributes map[string]any
	// Owned lists the sorted keys the bridge owns, always including RolesKey
	// and MarkerKey.
	Owned []string
	// Warnings name combinations Flex cannot honour (Insights roles for an
	// agent-only user), handled per roles.insights; the caller audits them.
	Warnings []string
}

// Marker is the value of the MarkerKey attribute.
type Marker struct {
	Managed bool   `json:"managed"`
	UserID  string `json:"user_id"`
}

// Evaluate computes the worker spec of one identity. It is a pure function
// of the config and the identity, and safe for concurrent use.
//
// Without access, FriendlyName is still filled when it renders, so that the
// caller can find a worker to remove; a rendering failure is not an error
// then.
func (c *Config) Evaluate(id Identity) (WorkerSpec, error) {
	spec := WorkerSpec{Owned: c.Owned()}
	fail := func(path string, err error) (WorkerSpec, error) {
		return WorkerSpec{}, &EvalError{UserID: id.ID, Path: path, Err: err}
	}
	name, nameErr := c.renderFriendlyName(&id)
	if nameErr == nil {
		spec.FriendlyName = name
	}
	if !id.Active {
		spec.Reason = ReasonInactive
		return spec, nil
	}
	roles := c.roles(&id)
	if len(roles) == 0 {
		spec.Reason = ReasonNoRole
		return spec, nil
	}
	if nameErr != nil {
		return fail("friendly_name", nameErr)
	}
	if id.ID == "" {
		return fail(MarkerKey, ErrNoUserID)
	}
	spec.Access = true
	roles, spec.Warnings = c.checkInsights(roles)
	spec.Roles = roles
	spec.Attributes = make(map[string]any, len(c.attrs)+2)
	for _, a := range c.attrs {
		path := "attributes." + a.key
		v, err := a.val.eval(&id, path)
		if err != nil {
			var ee *EvalError
			if errors.As(err, &ee) { // carries the path of the failing template
				ee.UserID = id.ID
				return WorkerSpec{}, ee
			}
			return fail(path, err)
		}
		if a.key == "contact_uri" && !ValidContactURI(v.(string)) {
			return fail(path, fmt.Errorf("%w: %q is not client:<name>, sip:<uri> or an E.164 number", ErrInvalidContactURI, v))
		}
		spec.Attributes[a.key] = v
	}
	spec.Attributes[RolesKey] = slices.Clone(roles)
	spec.Attributes[MarkerKey] = map[string]any{"managed": true, "user_id": id.ID}
	return spec, nil
}

func (c *Config) renderFriendlyName(id *Identity) (string, error) {
	name, err := render(c.friendlyName, id)
	if err != nil {
		return "", err
	}
	if n := CharCount(name); n < 1 || n > MaxFriendlyNameLength {
		return "", fmt.Errorf("%w: %q is %d characters; must be 1 to %d", ErrInvalidFriendlyName, name, n, MaxFriendlyNameLength)
	}
	return name, nil
}

// roles returns the sorted, deduplicated roles of id, or nil when it gets
// no base role.
func (c *Config) roles(id *Identity) []string {
	var roles []string
	for i := range c.rules {
		if c.rules[i].matches(id) {
			roles = append(roles, c.rules[i].grant...)
		}
	}
	if !slices.ContainsFunc(roles, IsBaseRole) {
		roles = append(roles, c.defaultRoles...)
	}
	if !slices.ContainsFunc(roles, IsBaseRole) {
		return nil
	}
	slices.Sort(roles)
	return slices.Compact(roles)
}

// checkInsights applies the Insights policy: wfo.* roles need supervisor or admin in Flex.
func (c *Config) checkInsights(roles []string) ([]string, []string) {
	if slices.Contains(roles, RoleSupervisor) || slices.Contains(roles, RoleAdmin) {
		return roles, nil
	}
	var wfo []string
	for _, r := range roles {
		if strings.HasPrefix(r, "wfo.") {
			wfo = append(wfo, r)
		}
	}
	if len(wfo) == 0 {
		return roles, nil
	}
	msg := fmt.Sprintf("Insights roles %s need supervisor or admin: Flex does not honour them for agent-only users", strings.Join(wfo, ", "))
	if c.insights == InsightsStrip {
		kept := slices.DeleteFunc(slices.Clone(roles), func(r string) bool { return strings.HasPrefix(r, "wfo.") })
		return kept, []string{msg + " (removed)"}
	}
	return roles, []string{msg}
}

// CharCount counts characters the way TaskRouter's limits are applied, in
// UTF-16 code units: one per character of the Basic Multilingual Plane, two
// for others such as emoji. It is never less than the number of runes.
func CharCount(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// value is a compiled attribute value.
type value interface {
	eval(id *Identity, path string) (any, error)
}

type tmplValue struct{ t *template.Template }

func (v tmplValue) eval(id *Identity, path string) (any, error) {
	s, err := render(v.t, id)
	if err != nil {
		return nil, &EvalError{Path: path, Err: err}
	}
	return s, nil
}

type constValue struct{ v any }

func (v constValue) eval(*Identity, string) (any, error) { return v.v, nil }

type listValue []value

func (l listValue) eval(id *Identity, path string) (any, error) {
	out := make([]any, len(l))
	for i, v := range l {
		x, err := v.eval(id, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out[i] = x
	}
	return out, nil
}

type mapValue struct {
	keys []string
	vals []value
}

func (m mapValue) eval(id *Identity, path string) (any, error) {
	out := make(map[string]any, len(m.keys))
	for i, k := range m.keys {
		x, err := m.vals[i].eval(id, joinPath(path, k))
		if err != nil {
			return nil, err
		}
		out[k] = x
	}
	return out, nil
}
