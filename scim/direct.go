package scim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"
)

// The Users endpoint's frequent requests (create, list/lookup, get, PATCH) are served here
// without the library's ServeHTTP: it would validate with schemas it rebuilds on every request,
// marshal its answer, and finish would decode and re-encode that answer. The functions below do what the library's handler and
// finish do, in the same order and with the same results (statuses, headers, bodies, the calls
// to the users handler), building the answer once, through the library's exported schema and
// handler API only (PATCH: direct_patch.go). Everything else (PUT, DELETE, Groups, discovery,
// unknown paths) still goes through the library and finish.
//
// The behaviour matched is that of github.com/elimity-com/scim at the version go.mod pins,
// observed through its HTTP answers; a library upgrade must be checked against it
// (TestDirectMatchesLibrary sends the same requests both ways and compares the answers).

// userType is what the direct path needs of the User resource type.
type userType struct {
	rt elimity.ResourceType // exactly as registered with the library
	// withCommon is rt.Schema with the externalId attribute the library's schemaWithCommon
	// appends on every request; built once.
	withCommon schema.Schema
	extensions []schema.Schema
	schemas    []string // the "schemas" of a served user
}

func newUserType(rt elimity.ResourceType) *userType {
	t := &userType{rt: rt, withCommon: rt.Schema}
	t.withCommon.Attributes = append(append(schema.Attributes(nil), rt.Schema.Attributes...),
		schema.SimpleCoreAttribute(schema.SimpleStringParams(schema.StringParams{
			CaseExact:  true,
			Mutability: schema.AttributeMutabilityReadWrite(),
			Name:       schema.CommonAttributeExternalID,
			Uniqueness: schema.AttributeUniquenessNone(),
		})))
	t.schemas = []string{rt.Schema.ID}
	for _, e := range rt.SchemaExtensions {
		t.extensions = append(t.extensions, e.Schema)
		t.schemas = append(t.schemas, e.Schema.ID)
	}
	return t
}

// serveDirect serves the request if it is one of the Users requests handled here, and reports
// whether it did. path is the request path below BasePath; body is the prepared request body
// (nil for GET), and doc, when not nil, is body decoded with UseNumber.
func (s *server) serveDirect(w http.ResponseWriter, r *http.Request, path string, body []byte, doc map[string]any) bool {
	if s.userType == nil {
		return false
	}
	ep := s.userType.rt.Endpoint // "/Users"
	switch {
	case path == ep && r.Method == http.MethodPost && body != nil:
		s.directCreate(w, r, body, doc)
		return true
	case path == ep && r.Method == http.MethodGet:
		return s.directList(w, r)
	case strings.HasPrefix(path, ep+"/") && (r.Method == http.MethodGet || r.Method == http.MethodPatch && body != nil):
		// The library unescapes the (already unescaped) path once more; an error there
		// makes it answer 404 for an unknown endpoint.
		id, err := url.PathUnescape(strings.TrimPrefix(path, ep+"/"))
		if err != nil {
			return false
		}
		if r.Method == http.MethodPatch {
			s.directPatch(w, r, id, body)
		} else {
			s.directGet(w, r, id)
		}
		return true
	}
	return false
}

func (s *server) directCreate(w http.ResponseWriter, r *http.Request, body []byte, m map[string]any) {
	t := s.userType
	// ResourceType.validate (the body is decoded already when prepareBody left it unchanged)
	if m == nil {
		var err error
		if m, err = decodeObject(body); err != nil {
			s.libError(w, r, scimerrors.ScimErrorInvalidSyntax)
			return
		}
	}
	attributes, se := t.withCommon.Validate(m)
	if se != nil {
		s.libError(w, r, *se)
		return
	}
	for _, ext := range t.rt.SchemaExtensions {
		field := m[ext.Schema.ID]
		if field == nil {
			if ext.Required {
				s.libError(w, r, scimerrors.ScimErrorInvalidValue)
				return
			}
			continue
		}
		extAttrs, se := ext.Schema.Validate(field)
		if se != nil {
			s.libError(w, r, *se)
			return
		}
		attributes[ext.Schema.ID] = extAttrs
	}
	res, err := t.rt.Handler.Create(r, attributes)
	if err != nil {
		s.libError(w, r, scimerrors.CheckScimError(err, http.MethodPost))
		return
	}
	s.writeResource(w, r, http.StatusCreated, res)
}

func (s *server) directGet(w http.ResponseWriter, r *http.Request, id string) {
	res, err := s.userType.rt.Handler.Get(r, id)
	if err != nil {
		s.libError(w, r, scimerrors.CheckScimError(err, http.MethodGet))
		return
	}
	s.writeResource(w, r, http.StatusOK, res)
}

// directList answers a list request as the library does. It reports false (and writes nothing) for a
// request with a filter the server left to the library, which cannot happen for Users (the
// server parses and removes every non-empty filter) but keeps the two paths equal if it did.
func (s *server) directList(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	if strings.TrimSpace(q.Get("filter")) != "" {
		return false
	}
	// Server.parseRequestParams
	var invalid []string
	count, ok := intParam(q, "count", s.listCount)
	if !ok {
		invalid = append(invalid, "count")
	}
	count = max(min(count, s.listCount), 0)
	startIndex, ok := intParam(q, "startIndex", 1)
	if !ok {
		invalid = append(invalid, "startIndex")
	}
	if startIndex < 1 {
		startIndex = 1
	}
	if len(invalid) > 0 {
		s.libError(w, r, scimerrors.ScimErrorBadParams(invalid))
		return true
	}
	page, err := s.userType.rt.Handler.GetAll(r, elimity.ListRequestParams{Count: count, StartIndex: startIndex})
	if err != nil {
		s.libError(w, r, scimerrors.CheckScimError(err, http.MethodGet))
		return true
	}
	// Page.resources: nil stays nil (JSON null), empty stays empty.
	var resources any
	switch {
	case len(page.Resources) > 0:
		list := make([]any, len(page.Resources))
		for i, res := range page.Resources {
			list[i] = s.userType.response(res)
		}
		resources = list
	case page.Resources != nil:
		resources = []any{}
	}
	doc := map[string]any{
		"schemas":      []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
		"totalResults": page.TotalResults,
		"itemsPerPage": count,
		"startIndex":   startIndex,
		"Resources":    resources,
	}
	s.writeDoc(w, r, http.StatusOK, http.Header{}, doc)
	return true
}

// intParam reads an integer query parameter as the library does (absent: def).
func intParam(q url.Values, key string, def int) (int, bool) {
	v := q.Get(key)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	return n, true
}

// response is the resource document the library would send, with meta as the JSON object its
// answers carry.
func (t *userType) response(res elimity.Resource) map[string]any {
	doc := map[string]any(res.Attributes)
	if doc == nil {
		doc = map[string]any{}
	}
	doc[schema.CommonAttributeID] = res.ID
	if res.ExternalID.Present() {
		doc[schema.CommonAttributeExternalID] = res.ExternalID.Value()
	}
	doc["schemas"] = t.schemas
	meta := map[string]any{
		"resourceType": t.rt.Name,
		"location":     t.rt.Endpoint[1:] + "/" + url.PathEscape(res.ID),
	}
	if res.Meta.Created != nil {
		if v := res.Meta.Created.Format(time.RFC3339); v != "" {
			meta["created"] = v
		}
	}
	if res.Meta.LastModified != nil {
		if v := res.Meta.LastModified.Format(time.RFC3339); v != "" {
			meta["lastModified"] = v
		}
	}
	if res.Meta.Version != "" {
		meta["version"] = res.Meta.Version
	}
	doc[schema.CommonAttributeMeta] = meta
	return doc
}

// writeResource answers with one resource, as the library's handlers and then finish do.
func (s *server) writeResource(w http.ResponseWriter, r *http.Request, status int, res elimity.Resource) {
	h := http.Header{}
	if res.Meta.Version != "" {
		h.Set("Etag", res.Meta.Version)
	}
	s.writeDoc(w, r, status, h, s.userType.response(res))
}

// writeDoc is finish for an answer the library would have encoded from doc.
func (s *server) writeDoc(w http.ResponseWriter, r *http.Request, status int, h http.Header, doc map[string]any) {
	s.rewrite(r, status, h, doc)
	body, err := marshalDoc(doc)
	if err != nil {
		// The library answers 500 when it cannot encode its answer.
		s.libError(w, r, scimerrors.ScimErrorInternal)
		return
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// libError answers with an error the library would have written, through finish.
func (s *server) libError(w http.ResponseWriter, r *http.Request, se scimerrors.ScimError) {
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	rec.header.Set("Content-Type", contentType)
	raw, err := json.Marshal(se)
	if err == nil {
		rec.WriteHeader(se.Status)
		_, _ = rec.Write(raw)
	}
	s.finish(w, r, rec)
}
