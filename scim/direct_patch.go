package scim

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	elimityfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
)

// PATCH /Users/{id}, served without the library's ServeHTTP (see direct.go).
//
// The library turns a PATCH body into []elimity.PatchOperation with code that is internal to
// it, parsing every attribute path with the grammar's parser (the costliest step of an Okta
// `{"op":"replace","value":{"active":false}}`). flexbridge does that step itself, from RFC 7644
// §3.5.2 and with the library's exported schema and filter API, so that a path is parsed once,
// by parsePath. The operations handed to the users handler, and every answer, are those of the
// library at the pinned version, observed through its HTTP answers: TestDirectMatchesLibrary
// sends every PATCH of the tests and fuzz corpora both ways and compares the answers.
//
// What the library does, and so what this does:
//   - The body is {"schemas": [PatchOp URN, exactly], "Operations": [one or more]}; a body
//     that does not decode into that shape is invalidSyntax, wrong schemas or no operations
//     invalidValue.
//   - Each operation is decoded on its own ({op, path, value}, names in any case); one that
//     does not decode, or whose path does not parse or name an attribute of the schema or its
//     extensions, is invalidPath. An "id" member of an object value is dropped (Okta sends the
//     group's id with a rename).
//   - The value is then checked against the attribute it targets, and comes out as the
//     schema's validation returns it, a multi-valued target's value always as a list; a
//     path-less add/replace takes an object whose members are paths, each checked the same
//     way. Any failure there is invalidValue. Operations are taken in order; the first failure
//     answers.

// patchOp is one operation as the body carries it.
type patchOp struct {
	Op    string
	Path  string
	Value any
}

var errPatchValue = errors.New("invalid patch value")

// directPatch answers PATCH /Users/{id} as the library's resource PATCH handler and finish do.
func (s *server) directPatch(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	t := s.userType
	ops, se := t.patchOperations(body)
	if se != nil {
		s.libError(w, r, *se)
		return
	}
	res, err := t.rt.Handler.Patch(r, id, ops)
	if err != nil {
		s.libError(w, r, scimerrors.CheckScimError(err, http.MethodPatch))
		return
	}
	if len(res.Attributes) == 0 {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.writeResource(w, r, http.StatusOK, res)
}

// patchOperations decodes and checks a PATCH body into the operations the handler applies.
func (t *userType) patchOperations(body []byte) ([]elimity.PatchOperation, *scimerrors.ScimError) {
	var req struct {
		Schemas    []string
		Operations []json.RawMessage
	}
	if err := decodeNumber(body, &req); err != nil {
		return nil, &scimerrors.ScimErrorInvalidSyntax
	}
	if len(req.Schemas) != 1 || req.Schemas[0] != patchOpSchema || len(req.Operations) == 0 {
		return nil, &scimerrors.ScimErrorInvalidValue
	}
	ops := make([]elimity.PatchOperation, 0, len(req.Operations))
	for _, raw := range req.Operations {
		var o patchOp
		if err := decodeNumber(raw, &o); err != nil {
			return nil, &scimerrors.ScimErrorInvalidPath
		}
		o.Op = strings.ToLower(o.Op)
		if m, ok := o.Value.(map[string]any); ok {
			idKeys := 0
			for k := range m {
				if strings.ToLower(k) == "id" {
					idKeys++
					delete(m, k)
				}
			}
			if idKeys > 1 {
				return nil, &scimerrors.ScimErrorInvalidPath
			}
			if idKeys == 0 {
				delete(m, "") // the library's quirk: with no id member, it deletes the member named ""
			}
		}
		var path *filter.Path
		if o.Path != "" {
			p, err := parsePath(o.Path)
			if err != nil || !t.pathExists(p) {
				return nil, &scimerrors.ScimErrorInvalidPath
			}
			path = &p
		}
		value, err := t.patchValue(o.Op, path, o.Value)
		if err != nil {
			return nil, &scimerrors.ScimErrorInvalidValue
		}
		ops = append(ops, elimity.PatchOperation{Op: o.Op, Path: path, Value: value})
	}
	return ops, nil
}

// pathExists reports whether p names an attribute of the User schema (with the common
// attributes) or, failing that, of one of its extensions: the attribute, its sub-attribute,
// the attributes a value filter compares, and the sub-attribute after the filter.
func (t *userType) pathExists(p filter.Path) bool {
	if pathIn(t.withCommon, p) {
		return true
	}
	for _, ext := range t.extensions {
		if pathIn(ext, p) {
			return true
		}
	}
	return false
}

func pathIn(ref schema.Schema, p filter.Path) bool {
	ap := p.AttributePath
	if uri := ap.URI(); uri != "" && uri != ref.ID {
		return false
	}
	attr, ok := ref.Attributes.ContainsAttribute(ap.AttributeName)
	if !ok {
		return false
	}
	if _, ok := subAttribute(attr, ap.SubAttributeName()); !ok {
		return false
	}
	if p.ValueExpression != nil {
		sub := schema.Schema{ID: ref.ID, Attributes: elimityfilter.MultiValuedFilterAttributes(attr)}
		if elimityfilter.NewFilterValidator(p.ValueExpression, sub).Validate() != nil {
			return false
		}
	}
	_, ok = subAttribute(attr, p.SubAttributeName())
	return ok
}

// patchValue checks an operation's value against the attribute its path targets and returns
// it as the schema's validation makes it (RFC 7644 §3.5.2.1-3).
func (t *userType) patchValue(op string, path *filter.Path, value any) (any, error) {
	switch op {
	case elimity.PatchOperationAdd, elimity.PatchOperationReplace:
		if value == nil {
			return nil, errPatchValue // add and replace need a value
		}
		if path == nil {
			// The target is the resource: the value's members are attribute paths.
			members, ok := value.(map[string]any)
			if !ok {
				return nil, errPatchValue
			}
			out := make(map[string]any, len(members))
			for k, v := range members {
				p, err := parsePath(k)
				if err != nil {
					return nil, err
				}
				if out[k], err = t.patchValue(op, &p, v); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
	case elimity.PatchOperationRemove:
		if path == nil {
			return nil, errPatchValue // noTarget; prepareBody answers it first
		}
	default:
		return nil, errPatchValue
	}
	attr, err := t.target(op, *path)
	if err != nil {
		return nil, err
	}
	if op == elimity.PatchOperationRemove && value == nil {
		return nil, nil
	}
	if !attr.MultiValued() {
		return validateSingular(attr, value)
	}
	list, isList := value.([]any)
	if !isList {
		v, err := validateSingular(attr, value)
		if err != nil {
			return nil, err
		}
		return []any{v}, nil
	}
	var out []any // nil for an empty list, as the library gives it
	for _, e := range list {
		v, err := validateSingular(attr, e)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// target is the attribute an operation's path ends at: in the schema the path's URI names
// (the User schema without one), the attribute, then its sub-attribute before or after a
// value filter, whose attributes are checked too (against the attribute's sub-attributes for
// add and replace, against what the filter may compare for remove, as the library does).
func (t *userType) target(op string, p filter.Path) (schema.CoreAttribute, error) {
	ref := t.withCommon
	if uri := p.AttributePath.URI(); uri != "" && uri != ref.ID {
		found := false
		for _, ext := range t.extensions {
			if ext.ID == uri {
				ref, found = ext, true
				break
			}
		}
		if !found {
			return schema.CoreAttribute{}, errPatchValue
		}
	}
	attr, ok := ref.Attributes.ContainsAttribute(p.AttributePath.AttributeName)
	if !ok {
		return schema.CoreAttribute{}, errPatchValue
	}
	if attr, ok = subAttribute(attr, p.AttributePath.SubAttributeName()); !ok {
		return schema.CoreAttribute{}, errPatchValue
	}
	if p.ValueExpression != nil {
		filterable := attr.SubAttributes()
		if op == elimity.PatchOperationRemove {
			filterable = elimityfilter.MultiValuedFilterAttributes(attr)
		}
		if err := elimityfilter.NewFilterValidator(p.ValueExpression, schema.Schema{Attributes: filterable}).Validate(); err != nil {
			return schema.CoreAttribute{}, err
		}
	}
	if attr, ok = subAttribute(attr, p.SubAttributeName()); !ok {
		return schema.CoreAttribute{}, errPatchValue
	}
	return attr, nil
}

// subAttribute returns attr's sub-attribute name (attr itself for "").
func subAttribute(attr schema.CoreAttribute, name string) (schema.CoreAttribute, bool) {
	if name == "" {
		return attr, true
	}
	if !attr.HasSubAttributes() {
		return schema.CoreAttribute{}, false
	}
	return attr.SubAttributes().ContainsAttribute(name)
}

func validateSingular(attr schema.CoreAttribute, v any) (any, error) {
	out, se := attr.ValidateSingular(v)
	if se != nil {
		return nil, errPatchValue
	}
	return out, nil
}
