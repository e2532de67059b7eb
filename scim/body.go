package scim

import (
	"fmt"
	"net/http"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
)

const (
	groupSchema   = "urn:ietf:params:scim:schemas:core:2.0:Group"
	patchOpSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	// entraLegacyGroupSchema is a schema Entra ID's own SCIM tutorial still sends on group
	// creation (Microsoft lists it as a fixed bug); it carries nothing flexbridge reads.
	entraLegacyGroupSchema = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
	// maxJSONDepth bounds nesting in request bodies; SCIM resources are at most a few levels deep.
	maxJSONDepth = 32
	// MaxPatchOperations bounds the operations of one PATCH request.
	MaxPatchOperations = 1000
	// MaxFilteredPaths bounds the value-filtered paths (emails[type eq "work"].value) of one
	// PATCH: each is a scan of its list.
	MaxFilteredPaths = 100
	// MaxUserListValues bounds each multi-valued attribute of a user (emails, phoneNumbers, ...).
	MaxUserListValues = 100
)

// knownSchemas are the schema URNs a body may declare, by the kind of body.
var knownSchemas = map[string][]string{
	"User":    {userSchema, enterpriseSchema},
	"Group":   {groupSchema, entraLegacyGroupSchema},
	"PatchOp": {patchOpSchema},
}

// bodyKind names what a write request carries: "User", "Group", "PatchOp" or "" (unknown
// endpoint; the library answers those).
func bodyKind(path, method string) string {
	resource, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if method == http.MethodPatch {
		return "PatchOp"
	}
	switch resource {
	case "Users":
		return "User"
	case "Groups":
		return "Group"
	}
	return ""
}

// prepareBody checks a request body before the library sees it, and rewrites the IdP dialects
// the library would refuse into standard SCIM. It refuses duplicate keys, deep nesting, unknown
// schemas, PATCH removes without a path (noTarget) and PATCHes of read-only attributes
// (mutability). It rewrites Entra ID's bare-string enterprise manager into {"value": id} and
// a replace with a null value into a remove.
func prepareBody(kind string, body []byte) ([]byte, error) {
	body, _, err := prepareBodyDoc(kind, body)
	return body, err
}

// prepareBodyDoc is prepareBody, also returning a User body decoded (with UseNumber) when it is
// returned unchanged (nil otherwise), so that it need not be decoded again. (PATCH bodies are
// not returned: splitClears may change the decoded operations of a body it leaves as it is.)
func prepareBodyDoc(kind string, body []byte) ([]byte, map[string]any, error) {
	if err := checkJSONShape(body); err != nil {
		return nil, nil, err
	}
	if kind == "" {
		return body, nil, nil
	}
	doc, err := decodeObject(body)
	if err != nil || doc == nil {
		return nil, nil, badRequest(scimerrors.ScimTypeInvalidSyntax, "The request body must be a JSON object.")
	}
	if err := checkSchemas(kind, doc); err != nil {
		return nil, nil, err
	}
	changed := false
	switch kind {
	case "PatchOp":
		ops, _ := doc[findKey(doc, "Operations")].([]any)
		if err := checkPatchSize(ops); err != nil {
			return nil, nil, err
		}
		var out []any
		for i, o := range ops {
			op, ok := o.(map[string]any)
			if !ok {
				return nil, nil, badRequest(scimerrors.ScimTypeInvalidSyntax, fmt.Sprintf("Operation %d is not an object.", i))
			}
			c, err := prepareOp(op)
			if err != nil {
				return nil, nil, err
			}
			changed = changed || c
			// A path-less value map that clears attributes with null or "" (Entra's null test):
			// the library refuses null members, so each clear becomes a remove of its own, and
			// a map left empty is dropped.
			removes := splitClears(op)
			if m, isMap := op[findKey(op, "value")].(map[string]any); len(removes) == 0 || !isMap || len(m) > 0 {
				out = append(out, op)
			}
			if len(removes) > 0 {
				changed = true
				out = append(out, removes...)
			}
		}
		if changed {
			doc[findKey(doc, "Operations")] = out
		}
	case "User":
		if ext, ok := doc[findKey(doc, enterpriseSchema)].(map[string]any); ok {
			changed = managerAsObject(ext, findKey(ext, "manager"))
		}
	}
	if !changed {
		if kind != "User" {
			doc = nil
		}
		return body, doc, nil
	}
	out, err := marshalDoc(doc)
	return out, nil, err
}

// checkPatchSize bounds the work one PATCH can ask for, counting each attribute of a path-less
// value map as an operation (they are applied one by one).
func checkPatchSize(ops []any) error {
	n, filtered := 0, 0
	count := func(path string) {
		n++
		if strings.Contains(path, "[") {
			filtered++
		}
	}
	for _, o := range ops {
		op, _ := o.(map[string]any)
		path, _ := op[findKey(op, "path")].(string)
		if m, ok := op[findKey(op, "value")].(map[string]any); ok && strings.TrimSpace(path) == "" {
			for k := range m {
				count(k)
			}
			continue
		}
		count(path)
	}
	if n > MaxPatchOperations {
		return badRequest(scimerrors.ScimTypeInvalidValue, fmt.Sprintf("A PATCH may change at most %d attributes.", MaxPatchOperations))
	}
	if filtered > MaxFilteredPaths {
		return badRequest(scimerrors.ScimTypeInvalidValue, fmt.Sprintf("A PATCH may use at most %d filtered paths.", MaxFilteredPaths))
	}
	return nil
}

func checkSchemas(kind string, doc map[string]any) error {
	raw, present := doc[findKey(doc, "schemas")]
	if !present {
		return nil // tolerated: several IdPs omit it on PATCH and PUT
	}
	list, ok := raw.([]any)
	if !ok {
		return badRequest(scimerrors.ScimTypeInvalidSyntax, "schemas must be a list of URNs.")
	}
	for _, s := range list {
		urn, _ := s.(string)
		known := false
		for _, k := range knownSchemas[kind] {
			if strings.EqualFold(urn, k) {
				known = true
			}
		}
		if !known {
			return badRequest(scimerrors.ScimTypeInvalidSyntax, fmt.Sprintf("Unknown schema %q for a %s.", urn, kind))
		}
	}
	return nil
}

// readOnlyPaths may not be the target of a PATCH (RFC 7643: mutability readOnly).
var readOnlyPaths = []string{"id", "meta", "schemas", "groups"}

func prepareOp(op map[string]any) (changed bool, err error) {
	opKey, pathKey, valueKey := findKey(op, "op"), findKey(op, "path"), findKey(op, "value")
	name, _ := op[opKey].(string)
	name = strings.ToLower(name)
	path, _ := op[pathKey].(string)
	path = strings.TrimSpace(path)
	switch name {
	case "add", "replace", "remove":
	default:
		return false, badRequest(scimerrors.ScimTypeInvalidValue, fmt.Sprintf("Unknown PATCH op %q.", name))
	}
	if path == "" && name == "remove" {
		return false, badRequest(scimerrors.ScimTypeNoTarget, "A remove operation needs a path.")
	}
	if path != "" {
		attr := strings.ToLower(path)
		attr = strings.TrimPrefix(attr, strings.ToLower(userSchema)+":")
		attr = strings.TrimPrefix(attr, strings.ToLower(groupSchema)+":")
		for _, ro := range readOnlyPaths {
			if attr == ro || strings.HasPrefix(attr, ro+".") || strings.HasPrefix(attr, ro+"[") {
				return false, badRequest(scimerrors.ScimTypeMutability, fmt.Sprintf("%s is read-only.", path))
			}
		}
	}
	v, hasValue := op[valueKey]
	if name == "replace" && path != "" && hasValue && v == nil {
		// Entra clears an attribute with "value": null; the library wants a remove.
		op[opKey] = "remove"
		delete(op, valueKey)
		return true, nil
	}
	if strings.EqualFold(path, "manager") {
		// Entra's sample: {"op":"Add","path":"manager","value":[{"$ref":"…","value":"<id>"}]}
		op[pathKey] = enterpriseSchema + ":manager"
		path = enterpriseSchema + ":manager"
		if l, ok := v.([]any); ok && len(l) == 1 {
			v = l[0]
		}
		if m, ok := v.(map[string]any); ok {
			v = m[findKey(m, "value")]
		}
		op[valueKey] = v
		changed = true
	}
	if path != "" && isManagerPath(path) {
		if managerAsObject(op, valueKey) {
			if op[valueKey] == nil {
				op[opKey] = "remove"
				delete(op, valueKey)
			}
			return true, nil
		}
		return changed, nil
	}
	if m, ok := v.(map[string]any); ok && path == "" {
		for k := range m {
			if isManagerPath(k) && managerAsObject(m, k) {
				changed = true
			}
		}
	}
	return changed, nil
}

// splitClears takes the null and "" members out of a path-less add/replace value map and
// returns a remove operation for each.
func splitClears(op map[string]any) []any {
	if p, _ := op[findKey(op, "path")].(string); strings.TrimSpace(p) != "" {
		return nil
	}
	name, _ := op[findKey(op, "op")].(string)
	if !strings.EqualFold(name, "replace") && !strings.EqualFold(name, "add") {
		return nil
	}
	m, ok := op[findKey(op, "value")].(map[string]any)
	if !ok {
		return nil
	}
	var removes []any
	for k, v := range m {
		if s, isStr := v.(string); v == nil || (isStr && s == "") {
			delete(m, k)
			if strings.EqualFold(name, "replace") {
				removes = append(removes, map[string]any{"op": "remove", "path": k})
			}
		}
	}
	return removes
}

func isManagerPath(p string) bool {
	return strings.EqualFold(p, enterpriseSchema+":manager")
}

// managerAsObject turns a bare manager id string at m[key] into {"value": id} ("" into null),
// as RFC 7643 §4.3 shapes it; Entra ID sends the bare string. It reports whether it changed m.
func managerAsObject(m map[string]any, key string) bool {
	s, ok := m[key].(string)
	if !ok {
		return false
	}
	if strings.TrimSpace(s) == "" {
		m[key] = nil
	} else {
		m[key] = map[string]any{"value": s}
	}
	return true
}
