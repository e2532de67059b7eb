// Package scim is flexbridge's SCIM 2.0 service provider (RFC 7643/7644) over
// github.com/elimity-com/scim. The library's schemas validate resources, its filter grammar and
// evaluator serve filters, and it serves Groups, PUT, DELETE and discovery; the frequent Users
// requests are served here over its exported API with the same results (direct.go). This
// package adds what the library lacks at the pinned version: bearer authentication, body
// limits, one error mapping without internal text, absolute locations and the Location header,
// truthful discovery, ETags, and the translation to the directory store.
package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
)

// Store is everything the SCIM endpoint needs from the directory.
type Store interface {
	UserStore
	GroupStore
	TokenStore
}

// Options configure the SCIM handler.
type Options struct {
	Store        Store
	Logger       *zap.Logger
	Now          func() time.Time
	PublicURL    string // e.g. https://bridge.example.com; locations are <PublicURL>/scim/v2/...
	MaxBodyBytes int64  // default 1 MiB
	// OnChange is called after every successful write, to wake the reconciler early.
	OnChange func()
	// Check, if set, vets a user about to be stored (e.g. that the mapping can turn it into a
	// worker); an error refuses the write with 400 invalidValue and the error's text.
	Check func(ctx context.Context, u directory.User) error
}

// BasePath is where the handler must be mounted.
const BasePath = "/scim/v2"

// MaxResults is the largest page the server returns (and the default page size).
const MaxResults = 200

func init() {
	// Entra ID sends booleans as "True"/"False" strings. This is a package-level switch of the
	// library, so it is set once here rather than per server.
	schema.SetAllowStringValues(true)
}

// New returns the http.Handler serving BasePath and everything below it.
func New(opts Options) (http.Handler, error) {
	h, _, err := newHandler(opts)
	return h, err
}

// newHandler is New, also returning the server behind the authentication (for tests).
func newHandler(opts Options) (http.Handler, *server, error) {
	if opts.Store == nil {
		return nil, nil, errors.New("scim: a store is required")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	log := opts.Logger.Named("scim")
	publicURL := strings.TrimRight(opts.PublicURL, "/")
	userRT, groupRT := withCommon(schema.CoreUserSchema()), withCommon(schema.CoreGroupSchema())
	u := &users{store: opts.Store, log: log, onChange: opts.OnChange, check: opts.Check,
		schema: userRT, extensions: []schema.Schema{schema.ExtensionEnterpriseUser()}}
	g := &groups{store: opts.Store, log: log, onChange: opts.OnChange, publicURL: publicURL, schema: groupRT}
	userType := elimity.ResourceType{
		ID:          optional.NewString("User"),
		Name:        "User",
		Description: optional.NewString("User Account"),
		Endpoint:    "/Users",
		Schema:      userRT,
		SchemaExtensions: []elimity.SchemaExtension{
			{Schema: schema.ExtensionEnterpriseUser()},
		},
		Handler: u,
	}
	lib, err := elimity.NewServer(&elimity.ServerArgs{
		ServiceProviderConfig: &elimity.ServiceProviderConfig{
			DocumentationURI: optional.NewString("https://github.com/flexbridge/flexbridge#scim"),
			AuthenticationSchemes: []elimity.AuthenticationScheme{{
				Type: elimity.AuthenticationTypeOauthBearerToken, Name: "Bearer token",
				Description: "A token made with `flexbridge token create`.", Primary: true,
			}},
			MaxResults:       MaxResults,
			SupportFiltering: true,
			SupportPatch:     true,
		},
		ResourceTypes: []elimity.ResourceType{userType, {
			ID:          optional.NewString("Group"),
			Name:        "Group",
			Description: optional.NewString("Group"),
			Endpoint:    "/Groups",
			Schema:      groupRT,
			Handler:     g,
		}},
	}, elimity.WithLogger(libLogger{log}))
	if err != nil {
		return nil, nil, fmt.Errorf("scim: %w", err)
	}
	s := &server{
		lib:       lib,
		log:       log,
		publicURL: publicURL,
		maxBody:   opts.MaxBodyBytes,
		userType:  newUserType(userType),
		listCount: MaxResults,
		filterSchemas: map[string][]schema.Schema{
			"Users":  {userRT, schema.ExtensionEnterpriseUser()},
			"Groups": {groupRT},
		},
	}
	auth := &bearerAuth{tokens: opts.Store, log: log, now: opts.Now, touched: map[int64]time.Time{}}
	return auth.wrap(s), s, nil
}

// withCommon adds the common attributes id, externalId and meta (RFC 7643 §3.1) to a core
// schema so filters on them validate (Entra matches on externalId; incremental imports filter on
// meta.lastModified). The library adds common attributes only when it validates bodies, and its
// own definition of id is "required", which would refuse every create, so id is declared here.
func withCommon(s schema.Schema) schema.Schema {
	s.Attributes = append(s.Attributes,
		schema.SimpleCoreAttribute(schema.SimpleStringParams(schema.StringParams{
			CaseExact:  true,
			Mutability: schema.AttributeMutabilityReadOnly(),
			Name:       "id",
			Returned:   schema.AttributeReturnedAlways(),
			Uniqueness: schema.AttributeUniquenessServer(),
		})),
		schema.SimpleCoreAttribute(schema.SimpleStringParams(schema.StringParams{
			CaseExact:  true,
			Mutability: schema.AttributeMutabilityReadWrite(),
			Name:       schema.CommonAttributeExternalID,
			Uniqueness: schema.AttributeUniquenessNone(),
		})),
	)
	for _, a := range schema.CommonAttributes() {
		if a.Name() == "meta" {
			s.Attributes = append(s.Attributes, a)
		}
	}
	return s
}

type server struct {
	// filterSchemas are the schemas list filters may name, by endpoint ("Users", "Groups").
	filterSchemas map[string][]schema.Schema
	lib           elimity.Server
	log           *zap.Logger
	publicURL     string
	maxBody       int64
	// userType, when set, serves the Users endpoint's frequent requests without the library
	// (direct.go); listCount is the library's default and largest page (its MaxResults).
	userType  *userType
	listCount int
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, BasePath)
	if path == r.URL.Path {
		writeError(w, scimerrors.ScimError{Status: http.StatusNotFound, Detail: "Specified endpoint does not exist."})
		return
	}
	switch path {
	case "/ServiceProviderConfig", "/Schemas", "/ResourceTypes":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, scimerrors.ScimError{Status: http.StatusMethodNotAllowed, Detail: "Only GET is allowed here."})
			return
		}
	}
	if path == "/ServiceProviderConfig" {
		s.serviceProviderConfig(w)
		return
	}
	if f := r.URL.Query().Get("filter"); f != "" {
		if se, ok := checkFilter(f); !ok {
			writeError(w, se)
			return
		}
		if schemas, ok := s.filterSchemas[strings.TrimPrefix(path, "/")]; ok && r.Method == http.MethodGet {
			// Users and Groups lists: parse and validate here, hand the parsed filter to the
			// handler through the context, and keep the library's validator out of it.
			expr, err := parseFilter(normaliseFilter(f))
			if err != nil {
				writeError(w, badRequest(scimerrors.ScimTypeInvalidFilter, "The filter is not valid RFC 7644 filter syntax."))
				return
			}
			if err := validateFilter(expr, schemas); err != nil {
				writeError(w, badRequest(scimerrors.ScimTypeInvalidFilter, "The filter is not valid: "+err.Error()+"."))
				return
			}
			q := r.URL.Query()
			q.Del("filter")
			r = r.Clone(context.WithValue(r.Context(), filterKey{}, expr))
			r.URL.RawQuery = q.Encode()
		}
	}
	var (
		body []byte
		doc  map[string]any // body decoded, when prepareBodyDoc left it unchanged
	)
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodDelete {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || (mt != "application/scim+json" && mt != "application/json") {
				writeError(w, scimerrors.ScimError{Status: http.StatusUnsupportedMediaType,
					Detail: "Send application/scim+json or application/json."})
				return
			}
		}
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, scimerrors.ScimError{Status: http.StatusRequestEntityTooLarge,
					Detail: fmt.Sprintf("The request body is larger than %d bytes.", s.maxBody)})
				return
			}
			writeError(w, badRequest(scimerrors.ScimTypeInvalidSyntax, "The request body could not be read."))
			return
		}
		// prepareBodyDoc refuses invalid JSON first (checkJSONShape).
		if body, doc, err = prepareBodyDoc(bodyKind(path, r.Method), body); err != nil {
			writeError(w, toSCIMError(r.Context(), s.log, err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r = r.WithContext(context.WithValue(r.Context(), rawBodyKey{}, body))
		if body == nil {
			body = []byte{}
		}
	}
	if s.serveDirect(w, r, path, body, doc) {
		return
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	r2 := r.Clone(r.Context())
	r2.URL.Path = path // elimity strips a leading /v2 itself; give it the bare resource path
	s.lib.ServeHTTP(rec, r2)
	s.finish(w, r, rec)
}

// Filter limits, enforced before the library parses a filter (its parser and evaluator take
// seconds of CPU on filters with thousands of clauses).
const (
	MaxFilterLength  = 1024
	MaxFilterClauses = 16
)

// checkFilter refuses filters that are too long or have too many clauses, and filters on
// password (a write-only attribute that must never be queryable).
func checkFilter(f string) (scimerrors.ScimError, bool) {
	if f == "" {
		return scimerrors.ScimError{}, true
	}
	if len(f) > MaxFilterLength {
		return badRequest(scimerrors.ScimTypeInvalidFilter, fmt.Sprintf("The filter is longer than %d characters.", MaxFilterLength)), false
	}
	lower := strings.ToLower(f)
	clauses := 1 + strings.Count(lower, " and ") + strings.Count(lower, " or ") + strings.Count(lower, "[")
	if clauses > MaxFilterClauses {
		return badRequest(scimerrors.ScimTypeTooMany, fmt.Sprintf("The filter has more than %d clauses.", MaxFilterClauses)), false
	}
	if strings.Contains(lower, "password") {
		if expr, err := filter.ParseFilter([]byte(f)); err == nil && filtersOn(expr, "password") {
			return badRequest(scimerrors.ScimTypeInvalidFilter, "Filtering on password is not allowed."), false
		}
	}
	return scimerrors.ScimError{}, true
}

// filtersOn reports whether the filter compares the attribute name (in any part, any case).
func filtersOn(e filter.Expression, name string) bool {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		return strings.EqualFold(e.AttributePath.AttributeName, name) || strings.EqualFold(e.AttributePath.SubAttributeName(), name)
	case *filter.LogicalExpression:
		return filtersOn(e.Left, name) || filtersOn(e.Right, name)
	case *filter.NotExpression:
		return filtersOn(e.Expression, name)
	case *filter.ValuePath:
		return strings.EqualFold(e.AttributePath.AttributeName, name) || filtersOn(e.ValueFilter, name)
	}
	return false
}

// finish rewrites the library's response where it falls short of RFC 7644, then sends it.
func (s *server) finish(w http.ResponseWriter, r *http.Request, rec *recorder) {
	body := rec.body.Bytes()
	if rec.status >= 500 {
		// The library puts raw error text in 500 bodies; never pass it on.
		s.log.Error("scim library answered with a server error", zap.Int("status", rec.status))
		writeError(w, scimerrors.ScimError{Status: rec.status, Detail: "Internal error."})
		return
	}
	if rec.status >= 400 {
		var se struct {
			ScimType string `json:"scimType"`
			Detail   string `json:"detail"`
		}
		_ = json.Unmarshal(body, &se)
		writeError(w, scimerrors.ScimError{Status: rec.status, ScimType: scimerrors.ScimType(se.ScimType), Detail: se.Detail})
		return
	}
	if len(body) > 0 {
		if doc, err := decodeObject(body); err == nil {
			s.rewrite(r, rec.status, rec.header, doc)
			if b, err := marshalDoc(doc); err == nil {
				body = b
			}
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(rec.status)
	_, _ = w.Write(body)
}

// rewrite corrects a successful answer's document in place: absolute locations (and the
// Location header of a 201), itemsPerPage of a list, and the attributes/excludedAttributes
// projection of a GET.
func (s *server) rewrite(r *http.Request, status int, header http.Header, doc map[string]any) {
	projected := false
	var q url.Values
	if r.Method == http.MethodGet && r.URL.RawQuery != "" {
		q = r.URL.Query()
		projected = q.Get("attributes") != "" || q.Get("excludedAttributes") != ""
	}
	if res, ok := doc["Resources"].([]any); ok {
		doc["itemsPerPage"] = len(res)
		for _, r := range res {
			if m, ok := r.(map[string]any); ok {
				s.absoluteLocation(m)
				if projected {
					project(m, q)
				}
			}
		}
		return
	}
	if loc := s.absoluteLocation(doc); loc != "" && status == http.StatusCreated {
		header.Set("Location", loc)
	}
	if projected && doc["id"] != nil {
		project(doc, q)
	}
}

// absoluteLocation makes meta.location absolute and returns it.
func (s *server) absoluteLocation(res map[string]any) string {
	meta, ok := res["meta"].(map[string]any)
	if !ok {
		return ""
	}
	rel, _ := meta["location"].(string)
	if rel == "" || strings.Contains(rel, "://") {
		return rel
	}
	loc := s.publicURL + BasePath + "/" + strings.TrimPrefix(rel, "/")
	meta["location"] = loc
	return loc
}

func (s *server) serviceProviderConfig(w http.ResponseWriter) {
	doc := map[string]any{
		"schemas":          []string{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		"documentationUri": "https://github.com/flexbridge/flexbridge#scim",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": MaxResults},
		"changePassword":   map[string]any{"supported": false},
		"sort":             map[string]any{"supported": false},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []map[string]any{{
			"type": "oauthbearertoken", "name": "Bearer token", "primary": true,
			"description": "A token made with `flexbridge token create`; send it as Authorization: Bearer <token>.",
		}},
		"meta": map[string]any{"resourceType": "ServiceProviderConfig", "location": s.publicURL + BasePath + "/ServiceProviderConfig"},
	}
	raw, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(raw)
}

type rawBodyKey struct{}

// rawBody is the request body as the client sent it (after prepareBody), for the few places
// where the library's schema validation drops something an IdP relies on.
func rawBody(ctx context.Context) []byte {
	b, _ := ctx.Value(rawBodyKey{}).([]byte)
	return b
}

// recorder buffers the library's response so finish can correct it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}

// libLogger passes the library's error reports to zap without their arguments, which can
// hold whole resources (personal data).
type libLogger struct{ log *zap.Logger }

func (l libLogger) Error(args ...any) {
	msg := "scim library error"
	if len(args) > 0 {
		if s, ok := args[0].(string); ok {
			msg = s
		}
	}
	for i := 1; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "error" {
			if err, ok := args[i+1].(error); ok {
				l.log.Error(msg, zap.Error(err))
				return
			}
		}
	}
	l.log.Error(msg)
}
