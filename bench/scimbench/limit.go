package main

import (
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	"github.com/google/uuid"
	filter "github.com/scim2/filter-parser/v2"
)

// newLimit returns the bare elimity-com/scim server the benchmark compares flexbridge with:
// the library's own request handling over a mutex-protected in-memory map, no authentication,
// no durability. Whatever flexbridge adds (auth, limits, response rewriting, the store) costs
// time relative to it.
func newLimit() (http.Handler, error) {
	lib, err := elimity.NewServer(&elimity.ServerArgs{
		ServiceProviderConfig: &elimity.ServiceProviderConfig{
			MaxResults:       200,
			SupportFiltering: true,
			SupportPatch:     true,
		},
		ResourceTypes: []elimity.ResourceType{{
			ID:               optional.NewString("User"),
			Name:             "User",
			Endpoint:         "/Users",
			Schema:           schema.CoreUserSchema(),
			SchemaExtensions: []elimity.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}},
			Handler:          newMemUsers(),
		}},
	})
	if err != nil {
		return nil, err
	}
	// Mounted like flexbridge: /scim/v2/Users. The library strips "/v2" itself.
	return http.StripPrefix("/scim", lib), nil
}

// memUsers is an elimity ResourceHandler over a map. Stored attribute maps are never changed
// in place (the library adds id, schemas and meta to the map it is given), so every read
// hands out a shallow copy and every write stores a new map.
type memUsers struct {
	mu     sync.Mutex
	byID   map[string]*memUser
	byName map[string]string // lower-cased userName -> id
}

type memUser struct {
	attrs    map[string]any
	created  time.Time
	modified time.Time
	version  int
}

func newMemUsers() *memUsers {
	return &memUsers{byID: map[string]*memUser{}, byName: map[string]string{}}
}

func userNameOf(attrs map[string]any) string {
	s, _ := attrs["userName"].(string)
	return strings.ToLower(s)
}

func (u *memUser) resource(id string) elimity.Resource {
	created, modified := u.created, u.modified
	return elimity.Resource{
		ID:         id,
		Attributes: maps.Clone(u.attrs),
		Meta:       elimity.Meta{Created: &created, LastModified: &modified, Version: etag(u.version)},
	}
}

func etag(v int) string { return `W/"` + strconv.Itoa(v) + `"` }

func (m *memUsers) Create(_ *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	name := userNameOf(attrs)
	if name == "" {
		return elimity.Resource{}, scimerrors.ScimErrorInvalidValue
	}
	now := time.Now().UTC()
	id := uuid.NewString()
	u := &memUser{attrs: attrs, created: now, modified: now, version: 1}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, taken := m.byName[name]; taken {
		return elimity.Resource{}, scimerrors.ScimErrorUniqueness
	}
	m.byID[id] = u
	m.byName[name] = id
	return u.resource(id), nil
}

func (m *memUsers) Get(_ *http.Request, id string) (elimity.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.byID[id]
	if !ok {
		return elimity.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	return u.resource(id), nil
}

// GetAll answers `userName eq "..."` from the name index and evaluates any other filter over
// every user with the library's evaluator.
func (m *memUsers) GetAll(_ *http.Request, p elimity.ListRequestParams) (elimity.Page, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var hits []elimity.Resource
	if name, ok := userNameEq(p); ok {
		if id, ok := m.byName[strings.ToLower(name)]; ok {
			hits = append(hits, m.byID[id].resource(id))
		}
	} else {
		for id, u := range m.byID {
			if p.FilterValidator != nil && p.FilterValidator.PassesFilter(u.attrs) != nil {
				continue
			}
			hits = append(hits, u.resource(id))
		}
	}
	total := len(hits)
	start := max(p.StartIndex, 1) - 1
	switch {
	case p.Count <= 0 || start >= len(hits):
		hits = hits[:0]
	default:
		hits = hits[start:min(len(hits), start+p.Count)]
	}
	return elimity.Page{TotalResults: total, Resources: hits}, nil
}

func userNameEq(p elimity.ListRequestParams) (string, bool) {
	if p.FilterValidator == nil {
		return "", false
	}
	e, ok := p.FilterValidator.GetFilter().(*filter.AttributeExpression)
	if !ok || e.Operator != filter.EQ || !strings.EqualFold(e.AttributePath.AttributeName, "userName") ||
		e.AttributePath.SubAttribute != nil {
		return "", false
	}
	s, ok := e.CompareValue.(string)
	return s, ok
}

func (m *memUsers) Replace(_ *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.byID[id]
	if !ok {
		return elimity.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	oldName, newName := userNameOf(u.attrs), userNameOf(attrs)
	if newName != oldName {
		if _, taken := m.byName[newName]; taken {
			return elimity.Resource{}, scimerrors.ScimErrorUniqueness
		}
		delete(m.byName, oldName)
		m.byName[newName] = id
	}
	next := &memUser{attrs: attrs, created: u.created, modified: time.Now().UTC(), version: u.version + 1}
	m.byID[id] = next
	return next.resource(id), nil
}

func (m *memUsers) Delete(_ *http.Request, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.byID[id]
	if !ok {
		return scimerrors.ScimErrorResourceNotFound(id)
	}
	delete(m.byName, userNameOf(u.attrs))
	delete(m.byID, id)
	return nil
}

// Patch supports what the benchmark sends (and simple top-level paths): add/replace of a
// path-less value map or of a top-level attribute, and remove of a top-level attribute.
// userName is not patchable here, so the name index stays valid.
func (m *memUsers) Patch(_ *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.byID[id]
	if !ok {
		return elimity.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	attrs := maps.Clone(u.attrs)
	for _, op := range ops {
		switch {
		case op.Path == nil && op.Op != elimity.PatchOperationRemove:
			values, ok := op.Value.(map[string]any)
			if !ok {
				return elimity.Resource{}, scimerrors.ScimErrorInvalidValue
			}
			for k, v := range values {
				if strings.EqualFold(k, "userName") {
					return elimity.Resource{}, scimerrors.ScimErrorMutability
				}
				attrs[k] = v
			}
		case op.Path == nil:
			return elimity.Resource{}, scimerrors.ScimErrorNoTarget
		case op.Path.AttributePath.SubAttribute != nil || op.Path.ValueExpression != nil ||
			strings.EqualFold(op.Path.AttributePath.AttributeName, "userName"):
			return elimity.Resource{}, scimerrors.ScimErrorInvalidPath
		case op.Op == elimity.PatchOperationRemove:
			delete(attrs, op.Path.AttributePath.AttributeName)
		default:
			attrs[op.Path.AttributePath.AttributeName] = op.Value
		}
	}
	next := &memUser{attrs: attrs, created: u.created, modified: time.Now().UTC(), version: u.version + 1}
	m.byID[id] = next
	return next.resource(id), nil
}
