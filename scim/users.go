package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	elimityfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
)

const (
	userSchema       = "urn:ietf:params:scim:schemas:core:2.0:User"
	enterpriseSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	contentType      = "application/scim+json"
)

var errVersionMismatch = errors.New("if-match does not match the current version")

// UserStore is what the Users endpoint needs from the directory. Every write also marks the
// user as needing sync, in the same transaction (the store's contract).
type UserStore interface {
	CreateUser(ctx context.Context, u directory.User) (directory.User, error)
	GetUser(ctx context.Context, id string) (directory.User, error)
	ListUsers(ctx context.Context, q directory.UserQuery) ([]directory.User, int, error)
	UpdateUser(ctx context.Context, id string, mutate func(*directory.User) error) (directory.User, error)
	DeleteUser(ctx context.Context, id string, check func(version int64) error) error
}

// users implements elimity's ResourceHandler over the directory.
type users struct {
	store      UserStore
	log        *zap.Logger
	onChange   func()
	check      func(context.Context, directory.User) error
	schema     schema.Schema   // for filter evaluation
	extensions []schema.Schema // likewise
}

var _ elimity.ResourceHandler = (*users)(nil)

// readOnlyUserAttrs are never taken from a client body (RFC 7643 §4.1: groups is readOnly;
// password is writeOnly and flexbridge keeps no passwords at all).
var readOnlyUserAttrs = []string{"id", "meta", "groups", "password", "schemas"}

// normalise checks and cleans a whole user resource after create, replace or patch, and returns
// the fields the directory indexes.
func normalise(attrs map[string]any) (userName, externalID string, active bool, err error) {
	for _, k := range readOnlyUserAttrs {
		delete(attrs, findKey(attrs, k))
	}
	un, _ := attrs[findKey(attrs, "userName")].(string)
	un = strings.TrimSpace(un)
	if un == "" {
		return "", "", false, badRequest(scimerrors.ScimTypeInvalidValue, "userName is required.")
	}
	if len(un) > 256 {
		return "", "", false, badRequest(scimerrors.ScimTypeInvalidValue, "userName is longer than 256 characters.")
	}
	ext, _ := attrs[findKey(attrs, "externalId")].(string)
	active = true
	if v, ok := attrs[findKey(attrs, "active")]; ok && v != nil {
		switch v := v.(type) {
		case bool:
			active = v
		case string: // Entra's "True"/"False"
			b, perr := strconv.ParseBool(v)
			if perr != nil {
				return "", "", false, badRequest(scimerrors.ScimTypeInvalidValue, "active must be a boolean.")
			}
			active = b
		default:
			return "", "", false, badRequest(scimerrors.ScimTypeInvalidValue, "active must be a boolean.")
		}
	}
	attrs[findKey(attrs, "active")] = active
	for k, v := range attrs {
		if l, ok := v.([]any); ok && len(l) > MaxUserListValues {
			return "", "", false, badRequest(scimerrors.ScimTypeInvalidValue, fmt.Sprintf("%s has more than %d values.", k, MaxUserListValues))
		}
	}
	return un, ext, active, nil
}

// vet runs the configured check on a user about to be stored.
func (h *users) vet(ctx context.Context, u directory.User) error {
	if h.check == nil {
		return nil
	}
	if err := h.check(ctx, u); err != nil {
		return badRequest(scimerrors.ScimTypeInvalidValue, "The user cannot be turned into a Flex worker: "+err.Error())
	}
	return nil
}

func (h *users) changed() {
	if h.onChange != nil {
		h.onChange()
	}
}

// keepManagerDisplayName puts back the enterprise manager's displayName that the library drops
// as read-only: OneLogin sends {"value":"","displayName":"Maria Garcia"} and nothing else
// identifies the manager.
func keepManagerDisplayName(m map[string]any, raw []byte) {
	// Most bodies carry no manager at all: skip decoding them a second time.
	if !bytes.Contains(bytes.ToLower(raw), []byte("manager")) {
		return
	}
	var body map[string]any
	if json.Unmarshal(raw, &body) != nil {
		return
	}
	src, _ := body[findKey(body, enterpriseSchema)].(map[string]any)
	mgr, _ := src[findKey(src, "manager")].(map[string]any)
	dn, _ := mgr[findKey(mgr, "displayName")].(string)
	if dn == "" {
		return
	}
	ext, _ := m[findKey(m, enterpriseSchema)].(map[string]any)
	if ext == nil {
		ext = map[string]any{}
		m[enterpriseSchema] = ext
	}
	dst, _ := ext[findKey(ext, "manager")].(map[string]any)
	if dst == nil {
		dst = map[string]any{}
		ext["manager"] = dst
	}
	dst["displayName"] = dn
}

func (h *users) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	m := map[string]any(attrs)
	keepManagerDisplayName(m, rawBody(r.Context()))
	var nu directory.User
	if err := fill(&nu, m); err != nil {
		return elimity.Resource{}, err
	}
	if err := h.vet(r.Context(), nu); err != nil {
		return elimity.Resource{}, err
	}
	u, err := h.store.CreateUser(r.Context(), nu)
	if err != nil {
		return elimity.Resource{}, toSCIMError(r.Context(), h.log, err)
	}
	h.changed()
	return resourceOf(u, m), nil
}

// fill sets u's document and indexed fields from a whole SCIM user document, after checking and
// cleaning it (normalise).
func fill(u *directory.User, m map[string]any) error {
	un, ext, active, err := normalise(m)
	if err != nil {
		return err
	}
	raw, err := marshalDoc(m)
	if err != nil {
		return err
	}
	u.UserName, u.ExternalID, u.Active, u.Resource = un, ext, active, raw
	return nil
}

// update replaces a stored user with the document edit makes from it, in one store transaction,
// honouring If-Match and the configured check: the shared path of PUT and PATCH.
func (h *users) update(r *http.Request, id string, edit func(directory.User) (map[string]any, error)) (elimity.Resource, error) {
	ifMatch := r.Header.Get("If-Match")
	var m map[string]any // the document stored
	u, err := h.store.UpdateUser(r.Context(), id, func(u *directory.User) error {
		if !versionMatches(ifMatch, u.Version) {
			return errVersionMismatch
		}
		var err error
		if m, err = edit(*u); err != nil {
			return err
		}
		if err := fill(u, m); err != nil {
			return err
		}
		return h.vet(r.Context(), *u)
	})
	if err != nil {
		return elimity.Resource{}, toSCIMError(r.Context(), h.log, err)
	}
	h.changed()
	return resourceOf(u, m), nil
}

func (h *users) Get(r *http.Request, id string) (elimity.Resource, error) {
	u, err := h.store.GetUser(r.Context(), id)
	if err != nil {
		return elimity.Resource{}, toSCIMError(r.Context(), h.log, err)
	}
	return toResource(u)
}

// maxScan bounds how many users a filter that the store cannot answer by index may scan.
const maxScan = 100000

func (h *users) GetAll(r *http.Request, params elimity.ListRequestParams) (elimity.Page, error) {
	ctx := r.Context()
	offset := max(params.StartIndex, 1) - 1
	limit := params.Count
	if limit <= 0 {
		limit = -1 // only the total
	}
	var expr filter.Expression
	if e := requestFilter(r.Context()); e != nil {
		expr = e
	}
	if id, ok := idEquals(expr); ok {
		// id eq "…": one read by primary key.
		u, err := h.store.GetUser(ctx, id)
		if errors.Is(err, directory.ErrNotFound) {
			return page(nil, 0)
		}
		if err != nil {
			return elimity.Page{}, toSCIMError(ctx, h.log, err)
		}
		if offset > 0 || limit < 0 {
			return page(nil, 1)
		}
		return page([]directory.User{u}, 1)
	}
	q, indexed := indexedQuery(expr)
	if indexed {
		q.Offset, q.Limit = offset, limit
		list, total, err := h.store.ListUsers(ctx, q)
		if err != nil {
			return elimity.Page{}, toSCIMError(ctx, h.log, err)
		}
		return page(list, total)
	}
	// A filter the store cannot answer by index: scan and evaluate it with elimity's evaluator.
	fv := elimityfilter.NewFilterValidator(multiValuedAsValuePath(expr), h.schema, h.extensions...)
	all, total, err := h.store.ListUsers(ctx, directory.UserQuery{Limit: maxScan})
	if err != nil {
		return elimity.Page{}, toSCIMError(ctx, h.log, err)
	}
	if total > maxScan {
		return elimity.Page{}, scimerrors.ScimErrorTooMany
	}
	var hits []directory.User
	for _, u := range all {
		ok, err := passes(fv, u)
		if err != nil {
			return elimity.Page{}, err
		}
		if ok {
			hits = append(hits, u)
		}
	}
	total = len(hits)
	if offset >= len(hits) || limit < 0 {
		hits = nil
	} else {
		hits = hits[offset:min(len(hits), offset+limit)]
	}
	return page(hits, total)
}

// filterer is elimity's filter evaluator.
type filterer interface {
	PassesFilter(map[string]any) error
}

func passes(v filterer, u directory.User) (bool, error) {
	res, err := toResource(u)
	if err != nil {
		return false, err
	}
	return passesResource(v, res)
}

// passesResource evaluates a filter the store cannot answer over a resource as it is served,
// common attributes (id, externalId, meta) included.
func passesResource(v filterer, res elimity.Resource) (ok bool, err error) {
	m := maps.Clone(map[string]any(res.Attributes))
	m["id"] = res.ID
	if res.ExternalID.Present() {
		m["externalId"] = res.ExternalID.Value()
	}
	meta := map[string]any{}
	if res.Meta.Created != nil {
		meta["created"] = res.Meta.Created.UTC().Format(time.RFC3339Nano)
	}
	if res.Meta.LastModified != nil {
		meta["lastModified"] = res.Meta.LastModified.UTC().Format(time.RFC3339Nano)
	}
	m["meta"] = meta
	// The library looks extension attributes up as "<schema URN>:<name>" at the top level.
	for k, v := range res.Attributes {
		if ext, ok := v.(map[string]any); ok && strings.HasPrefix(strings.ToLower(k), "urn:") {
			for ek, ev := range ext {
				m[k+":"+ek] = ev
			}
		}
	}
	defer func() {
		// elimity's evaluator panics on expression kinds it does not know.
		if p := recover(); p != nil {
			ok, err = false, scimerrors.ScimErrorInvalidFilter
		}
	}()
	return v.PassesFilter(m) == nil, nil
}

// multiValued names the multi-valued complex attributes of Users and Groups (RFC 7643 §4).
var multiValued = map[string]bool{"emails": true, "phonenumbers": true, "ims": true, "photos": true, "addresses": true,
	"groups": true, "entitlements": true, "roles": true, "x509certificates": true, "members": true}

// multiValuedAsValuePath rewrites emails.value eq "x" into the equivalent emails[value eq "x"]:
// RFC 7644 §3.4.2.2 allows both, and the library evaluates only the second over a list.
func multiValuedAsValuePath(e filter.Expression) filter.Expression {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		ap := e.AttributePath
		if ap.SubAttribute == nil || !multiValued[strings.ToLower(ap.AttributeName)] {
			return e
		}
		return &filter.ValuePath{
			AttributePath: filter.AttributePath{URIPrefix: ap.URIPrefix, AttributeName: ap.AttributeName},
			ValueFilter: &filter.AttributeExpression{
				AttributePath: filter.AttributePath{AttributeName: *ap.SubAttribute},
				Operator:      e.Operator,
				CompareValue:  e.CompareValue,
			},
		}
	case *filter.LogicalExpression:
		return &filter.LogicalExpression{Left: multiValuedAsValuePath(e.Left), Right: multiValuedAsValuePath(e.Right), Operator: e.Operator}
	case *filter.NotExpression:
		return &filter.NotExpression{Expression: multiValuedAsValuePath(e.Expression)}
	}
	return e
}

// idEquals recognises the filter id eq "…".
func idEquals(e filter.Expression) (string, bool) {
	ae, ok := e.(*filter.AttributeExpression)
	if !ok || ae.Operator != filter.EQ || ae.AttributePath.SubAttribute != nil || ae.AttributePath.URI() != "" ||
		!strings.EqualFold(ae.AttributePath.AttributeName, "id") {
		return "", false
	}
	s, ok := ae.CompareValue.(string)
	return s, ok
}

// indexedQuery recognises the filters IdPs use to look a user up (userName eq, externalId eq)
// so the store answers them by index.
func indexedQuery(e filter.Expression) (directory.UserQuery, bool) {
	if e == nil {
		return directory.UserQuery{}, true
	}
	ae, ok := e.(*filter.AttributeExpression)
	if !ok || ae.Operator != filter.EQ || ae.AttributePath.SubAttribute != nil {
		return directory.UserQuery{}, false
	}
	if uri := ae.AttributePath.URI(); uri != "" && !strings.EqualFold(uri, userSchema) {
		return directory.UserQuery{}, false
	}
	s, ok := ae.CompareValue.(string)
	if !ok {
		return directory.UserQuery{}, false
	}
	switch strings.ToLower(ae.AttributePath.AttributeName) {
	case "username":
		return directory.UserQuery{UserName: &s}, true
	case "externalid":
		return directory.UserQuery{ExternalID: &s}, true
	}
	return directory.UserQuery{}, false
}

func page(list []directory.User, total int) (elimity.Page, error) {
	p := elimity.Page{TotalResults: total, Resources: make([]elimity.Resource, 0, len(list))}
	for _, u := range list {
		res, err := toResource(u)
		if err != nil {
			return elimity.Page{}, err
		}
		p.Resources = append(p.Resources, res)
	}
	return p, nil
}

func (h *users) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	m := map[string]any(attrs)
	keepManagerDisplayName(m, rawBody(r.Context()))
	return h.update(r, id, func(directory.User) (map[string]any, error) { return m, nil })
}

func (h *users) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	return h.update(r, id, func(u directory.User) (map[string]any, error) {
		m, err := decodeResource(u)
		if err != nil {
			return nil, err
		}
		return m, applyPatch(m, ops)
	})
}

func (h *users) Delete(r *http.Request, id string) error {
	return deleteIfMatch(r, h.log, id, h.store.DeleteUser, h.changed)
}

// deleteIfMatch deletes a resource; an If-Match header is checked against
// its version by the store, in the transaction that deletes it, so that a
// write landing between a check and the delete cannot be lost.
func deleteIfMatch(r *http.Request, log *zap.Logger, id string,
	del func(ctx context.Context, id string, check func(version int64) error) error, changed func()) error {
	ctx := r.Context()
	var check func(int64) error
	if ifMatch := r.Header.Get("If-Match"); ifMatch != "" {
		check = func(v int64) error {
			if !versionMatches(ifMatch, v) {
				return errVersionMismatch
			}
			return nil
		}
	}
	if err := del(ctx, id, check); err != nil {
		return toSCIMError(ctx, log, err)
	}
	changed()
	return nil
}

// etag is the weak entity tag of a stored version.
func etag(version int64) string { return fmt.Sprintf(`W/"%d"`, version) }

// versionMatches reports whether an If-Match header allows writing over version.
func versionMatches(ifMatch string, version int64) bool {
	ifMatch = strings.TrimSpace(ifMatch)
	if ifMatch == "" || ifMatch == "*" {
		return true
	}
	want := etag(version)
	for _, t := range strings.Split(ifMatch, ",") {
		t = strings.TrimSpace(t)
		if t == want || "W/"+t == want {
			return true
		}
	}
	return false
}

func decodeResource(u directory.User) (map[string]any, error) {
	var m map[string]any
	if len(u.Resource) > 0 {
		var err error
		if m, err = decodeObject(u.Resource); err != nil {
			return nil, fmt.Errorf("stored user %s: %w", u.ID, err)
		}
	}
	if m == nil {
		m = map[string]any{}
	}
	m[findKey(m, "userName")] = u.UserName
	m[findKey(m, "active")] = u.Active
	return m, nil
}

func toResource(u directory.User) (elimity.Resource, error) {
	m, err := decodeResource(u)
	if err != nil {
		return elimity.Resource{}, err
	}
	return resourceOf(u, m), nil
}

// resourceOf is the resource of user u whose document is m: u.Resource decoded, or the
// document fill just encoded into u.Resource (its answer is then built without decoding what
// was just encoded; encoding m gives the same JSON as encoding it decoded, which
// TestDirectMatchesLibrary checks against a GET of every user written).
func resourceOf(u directory.User, m map[string]any) elimity.Resource {
	m[findKey(m, "userName")] = u.UserName
	m[findKey(m, "active")] = u.Active
	delete(m, findKey(m, "externalId"))
	created, modified := u.Created.UTC(), u.Modified.UTC()
	res := elimity.Resource{
		ID:         u.ID,
		Attributes: m,
		Meta:       elimity.Meta{Created: &created, LastModified: &modified, Version: etag(u.Version)},
	}
	if u.ExternalID != "" {
		res.ExternalID = optional.NewString(u.ExternalID)
	}
	return res
}
