package scim

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	elimityfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
)

// GroupStore is what the Groups endpoint needs from the directory. A membership change and
// the "needs sync" mark of exactly the affected users commit together (the store's contract).
type GroupStore interface {
	CreateGroup(ctx context.Context, g directory.Group) (directory.Group, error)
	GetGroup(ctx context.Context, id string) (directory.Group, error)
	ListGroups(ctx context.Context, q directory.GroupQuery) ([]directory.Group, int, error)
	UpdateGroup(ctx context.Context, id string, mutate func(*directory.Group) error) (directory.Group, error)
	DeleteGroup(ctx context.Context, id string, check func(version int64) error) error
}

// groups implements elimity's ResourceHandler for SCIM Groups over the directory.
type groups struct {
	schema    schema.Schema // for filter evaluation
	store     GroupStore
	log       *zap.Logger
	onChange  func()
	publicURL string
}

var _ elimity.ResourceHandler = (*groups)(nil)

func (h *groups) changed() {
	if h.onChange != nil {
		h.onChange()
	}
}

// groupFields checks a whole group resource and splits it into what the directory indexes.
func groupFields(attrs map[string]any) (displayName, externalID string, members []string, err error) {
	for _, k := range []string{"id", "meta", "schemas"} {
		delete(attrs, findKey(attrs, k))
	}
	dn, _ := attrs[findKey(attrs, "displayName")].(string)
	dn = strings.TrimSpace(dn)
	if dn == "" {
		return "", "", nil, badRequest(scimerrors.ScimTypeInvalidValue, "displayName is required.")
	}
	externalID, _ = attrs[findKey(attrs, "externalId")].(string)
	mk := findKey(attrs, "members")
	var list []any
	switch v := attrs[mk].(type) {
	case nil:
	case []any:
		list = v
	case map[string]any:
		list = []any{v} // one member sent as an object
	default:
		return "", "", nil, badRequest(scimerrors.ScimTypeInvalidValue, "members must be a list of {\"value\": <user id>}.")
	}
	seen := map[string]bool{}
	for _, m := range list {
		el, ok := m.(map[string]any)
		if !ok {
			return "", "", nil, badRequest(scimerrors.ScimTypeInvalidValue, "Every member must be an object with a value.")
		}
		v, _ := el[findKey(el, "value")].(string)
		if v == "" {
			return "", "", nil, badRequest(scimerrors.ScimTypeInvalidValue, "Every member needs a value (the user's id).")
		}
		if typ, _ := el[findKey(el, "type")].(string); typ != "" && !strings.EqualFold(typ, "User") {
			return "", "", nil, badRequest(scimerrors.ScimTypeInvalidValue, "Only users can be group members.")
		}
		if !seen[v] {
			seen[v] = true
			members = append(members, v)
		}
	}
	delete(attrs, mk)
	slices.Sort(members)
	return dn, externalID, members, nil
}

func (h *groups) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	var ng directory.Group
	if err := fillGroup(&ng, map[string]any(attrs)); err != nil {
		return elimity.Resource{}, err
	}
	g, err := h.store.CreateGroup(r.Context(), ng)
	if err != nil {
		return elimity.Resource{}, toSCIMError(r.Context(), h.log, err)
	}
	h.changed()
	return h.toResource(g, true)
}

// fillGroup sets g's document, indexed fields and members from a whole SCIM group document.
func fillGroup(g *directory.Group, m map[string]any) error {
	dn, ext, members, err := groupFields(m)
	if err != nil {
		return err
	}
	raw, err := marshalDoc(m)
	if err != nil {
		return err
	}
	g.DisplayName, g.ExternalID, g.Resource, g.Members = dn, ext, raw, members
	return nil
}

// update replaces a stored group with the document edit makes from it, in one store
// transaction, honouring If-Match: the shared path of PUT and PATCH.
func (h *groups) update(r *http.Request, id string, edit func(directory.Group) (map[string]any, error)) (directory.Group, error) {
	ifMatch := r.Header.Get("If-Match")
	g, err := h.store.UpdateGroup(r.Context(), id, func(g *directory.Group) error {
		if !versionMatches(ifMatch, g.Version) {
			return errVersionMismatch
		}
		m, err := edit(*g)
		if err != nil {
			return err
		}
		return fillGroup(g, m)
	})
	if err != nil {
		return directory.Group{}, toSCIMError(r.Context(), h.log, err)
	}
	h.changed()
	return g, nil
}

func (h *groups) Get(r *http.Request, id string) (elimity.Resource, error) {
	g, err := h.store.GetGroup(r.Context(), id)
	if err != nil {
		return elimity.Resource{}, toSCIMError(r.Context(), h.log, err)
	}
	return h.toResource(g, !excludes(r, "members"))
}

func (h *groups) GetAll(r *http.Request, params elimity.ListRequestParams) (elimity.Page, error) {
	ctx := r.Context()
	offset := max(params.StartIndex, 1) - 1
	limit := params.Count
	if limit <= 0 {
		limit = -1
	}
	withMembers := !excludes(r, "members")
	var expr filter.Expression
	if e := requestFilter(r.Context()); e != nil {
		expr = e
	}
	q, indexed := indexedGroupQuery(expr)
	q.WithMembers = withMembers
	var list []directory.Group
	var total int
	var err error
	if indexed {
		q.Offset, q.Limit = offset, limit
		list, total, err = h.store.ListGroups(ctx, q)
		if err != nil {
			return elimity.Page{}, toSCIMError(ctx, h.log, err)
		}
	} else {
		fv := elimityfilter.NewFilterValidator(multiValuedAsValuePath(expr), h.schema)
		all, n, err := h.store.ListGroups(ctx, directory.GroupQuery{Limit: maxScan, WithMembers: true})
		if err != nil {
			return elimity.Page{}, toSCIMError(ctx, h.log, err)
		}
		if n > maxScan {
			return elimity.Page{}, scimerrors.ScimErrorTooMany
		}
		for _, g := range all {
			res, err := h.toResource(g, true)
			if err != nil {
				return elimity.Page{}, err
			}
			ok, err := passesResource(fv, res)
			if err != nil {
				return elimity.Page{}, err
			}
			if ok {
				list = append(list, g)
			}
		}
		total = len(list)
		if offset >= len(list) || limit < 0 {
			list = nil
		} else {
			list = list[offset:min(len(list), offset+limit)]
		}
	}
	p := elimity.Page{TotalResults: total, Resources: make([]elimity.Resource, 0, len(list))}
	for _, g := range list {
		res, err := h.toResource(g, withMembers)
		if err != nil {
			return elimity.Page{}, err
		}
		p.Resources = append(p.Resources, res)
	}
	return p, nil
}

func indexedGroupQuery(e filter.Expression) (directory.GroupQuery, bool) {
	if e == nil {
		return directory.GroupQuery{}, true
	}
	ae, ok := e.(*filter.AttributeExpression)
	if !ok || ae.Operator != filter.EQ || ae.AttributePath.SubAttribute != nil || ae.AttributePath.URI() != "" {
		return directory.GroupQuery{}, false
	}
	s, ok := ae.CompareValue.(string)
	if !ok {
		return directory.GroupQuery{}, false
	}
	switch strings.ToLower(ae.AttributePath.AttributeName) {
	case "displayname":
		return directory.GroupQuery{DisplayName: &s}, true
	case "externalid":
		return directory.GroupQuery{ExternalID: &s}, true
	}
	return directory.GroupQuery{}, false
}

func (h *groups) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	g, err := h.update(r, id, func(directory.Group) (map[string]any, error) { return attrs, nil })
	if err != nil {
		return elimity.Resource{}, err
	}
	return h.toResource(g, true)
}

func (h *groups) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	g, err := h.update(r, id, func(g directory.Group) (map[string]any, error) {
		m, err := groupDocument(g)
		if err != nil {
			return nil, err
		}
		return m, applyPatch(m, ops)
	})
	if err != nil {
		return elimity.Resource{}, err
	}
	// RFC 7644 §3.5.2: 204 is fine for a PATCH; large groups are not echoed back.
	if excludes(r, "members") || len(g.Members) > MaxResults {
		return elimity.Resource{}, nil
	}
	return h.toResource(g, true)
}

func (h *groups) Delete(r *http.Request, id string) error {
	return deleteIfMatch(r, h.log, id, h.store.DeleteGroup, h.changed)
}

// groupDocument is the group as a SCIM document, members included, for PATCH.
func groupDocument(g directory.Group) (map[string]any, error) {
	m := map[string]any{}
	if len(g.Resource) > 0 {
		if err := json.Unmarshal(g.Resource, &m); err != nil {
			return nil, err
		}
	}
	m[findKey(m, "displayName")] = g.DisplayName
	if g.ExternalID != "" {
		m[findKey(m, "externalId")] = g.ExternalID
	}
	if len(g.Members) > 0 {
		list := make([]any, 0, len(g.Members))
		for _, id := range g.Members {
			list = append(list, map[string]any{"value": id})
		}
		m["members"] = list
	}
	return m, nil
}

func (h *groups) toResource(g directory.Group, withMembers bool) (elimity.Resource, error) {
	m, err := groupDocument(directory.Group{DisplayName: g.DisplayName, Resource: g.Resource})
	if err != nil {
		return elimity.Resource{}, err
	}
	delete(m, findKey(m, "externalId"))
	if withMembers {
		list := make([]any, 0, len(g.Members))
		for _, id := range g.Members {
			list = append(list, map[string]any{"value": id, "type": "User", "$ref": h.publicURL + BasePath + "/Users/" + id})
		}
		m["members"] = list
	}
	created, modified := g.Created.UTC(), g.Modified.UTC()
	res := elimity.Resource{
		ID:         g.ID,
		Attributes: m,
		Meta:       elimity.Meta{Created: &created, LastModified: &modified, Version: etag(g.Version)},
	}
	if g.ExternalID != "" {
		res.ExternalID = optional.NewString(g.ExternalID)
	}
	return res, nil
}

// excludes reports whether the request's excludedAttributes names attr.
func excludes(r *http.Request, attr string) bool {
	for _, a := range strings.Split(r.URL.Query().Get("excludedAttributes"), ",") {
		if strings.EqualFold(strings.TrimSpace(a), attr) {
			return true
		}
	}
	return false
}
