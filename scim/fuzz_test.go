package scim

// Fuzz targets at the SCIM trust boundary (issue 3): the filter query parameter, PATCH bodies
// and POST/PUT bodies, each sent through the real handler (bearer auth, limits, the library,
// the users and groups handlers) over a real SQLite directory.
//
// Every answer must be a 2xx of the right kind or a 4xx SCIM error (RFC 7644 §3.12) without
// internal text, never a 5xx or a panic, within fuzzBudget. After every 2xx write the stored
// user or group is read back from the store and checked against the invariants the rest of
// flexbridge relies on (see checkUser and checkGroup).
//
// Each target builds its environment once per process (the F body runs once in every fuzz
// worker), and puts its fixtures back only after an iteration changed them, so an iteration
// costs a few requests. In fuzz inputs, $U1, $U2 and $U3 stand for the ids of three fixture
// users, $UID for the user that PATCH and PUT target and $GID for the group they target; they
// are replaced before the request is sent, so corpus entries can name real resources.
//
// Seeds: testdata/fuzz/FuzzFilter, FuzzPatch and FuzzDecode (the IdP shapes of
// /work/shared/conformance/idp-behaviours.md and scim_test.go, and hostile inputs).
//
//	go test -run='^$' -fuzz='^FuzzPatch$' -fuzztime=60s ./scim/

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	efilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
)

// fuzzBudget is the longest one request may take. The filter and body limits exist so that no
// request costs seconds of CPU; a request slower than this is a finding.
const fuzzBudget = 2 * time.Second

const (
	listResponseSchema = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	fuzzPublicURL      = "https://bridge.example.com"
)

// FuzzFilter sends the filter query parameter (and further raw query parameters, such as
// startIndex, count, excludedAttributes) as an attacker would to GET /Users and GET /Groups.
// It also checks checkFilter and the library's filter parsing directly.
func FuzzFilter(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, filterText, extraQuery string) {
		filterText = e.subst.Replace(filterText)
		onPassword := checkFilterDirectly(t, filterText)
		q := "filter=" + url.QueryEscape(filterText)
		if extraQuery != "" {
			q += "&" + extraQuery
		}
		for _, resource := range []string{"/Users", "/Groups"} {
			a := e.send(t, http.MethodGet, resource, q, nil)
			if a.status != http.StatusOK && !a.isClientError() {
				t.Fatalf("GET %s?%s: status %d: %s", resource, q, a.status, a.raw)
			}
			if a.status == http.StatusOK {
				if onPassword {
					t.Fatalf("GET %s?%s: a filter on password was served", resource, q)
				}
				e.checkList(t, resource, a)
			}
		}
	})
}

// FuzzPatch sends one PATCH body to a user and to a group. A 2xx must leave the stored
// resource valid; anything else must leave it unchanged (nothing is written).
//
// The body is the raw bytes of body when it is not empty. When it is, the body is one
// operation built from op, path and value (value as JSON when it is JSON, as a JSON string
// otherwise), so that the fuzzer also explores paths and values and not only JSON syntax.
func FuzzPatch(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, op, path string, value []byte) {
		if len(body) == 0 {
			body = patchOperation(op, path, value)
		}
		body = e.substBytes(body)

		e.resetUser(t)
		a := e.send(t, http.MethodPatch, "/Users/"+e.user.ID, "", body)
		switch {
		case a.status == http.StatusOK || a.status == http.StatusNoContent:
			e.userDirty = true
			e.checkUser(t, e.user.ID, a)
		case a.isClientError():
			e.checkUnchangedUser(t)
		default:
			t.Fatalf("PATCH /Users: status %d: %s", a.status, a.raw)
		}

		e.resetGroup(t)
		a = e.send(t, http.MethodPatch, "/Groups/"+e.group.ID, "", body)
		switch {
		case a.status == http.StatusOK || a.status == http.StatusNoContent:
			e.groupDirty = true
			e.checkGroup(t, e.group.ID, a)
		case a.isClientError():
			e.checkUnchangedGroup(t)
		default:
			t.Fatalf("PATCH /Groups: status %d: %s", a.status, a.raw)
		}
	})
}

// FuzzDecode sends one body as POST and PUT to Users and to Groups.
//
// The body is the raw bytes of body when it is not empty. When it is, Users get a valid user
// and Groups a valid group, each with the attribute key set to value (value as JSON when it is
// JSON, as a JSON string otherwise).
func FuzzDecode(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, key string, value []byte) {
		userBody, groupBody := body, body
		if len(body) == 0 {
			userBody = withAttribute(baseUser, key, value)
			groupBody = withAttribute(baseGroup, key, value)
		}
		userBody, groupBody = e.substBytes(userBody), e.substBytes(groupBody)
		e.resetUser(t)
		e.resetGroup(t)

		body = userBody
		a := e.send(t, http.MethodPost, "/Users", "", body)
		switch {
		case a.status == http.StatusCreated:
			id, _ := a.doc["id"].(string)
			e.checkUser(t, id, a)
			e.removeUser(t, id)
		case !a.isClientError():
			t.Fatalf("POST /Users: status %d: %s", a.status, a.raw)
		}

		a = e.send(t, http.MethodPut, "/Users/"+e.user.ID, "", body)
		switch {
		case a.status == http.StatusOK:
			e.userDirty = true
			e.checkUser(t, e.user.ID, a)
		case a.isClientError():
			e.checkUnchangedUser(t)
		default:
			t.Fatalf("PUT /Users: status %d: %s", a.status, a.raw)
		}

		body = groupBody
		a = e.send(t, http.MethodPost, "/Groups", "", body)
		switch {
		case a.status == http.StatusCreated:
			id, _ := a.doc["id"].(string)
			e.checkGroup(t, id, a)
			if err := e.store.DeleteGroup(context.Background(), id, nil); err != nil {
				t.Fatalf("delete the created group: %v", err)
			}
		case !a.isClientError():
			t.Fatalf("POST /Groups: status %d: %s", a.status, a.raw)
		}

		a = e.send(t, http.MethodPut, "/Groups/"+e.group.ID, "", body)
		switch {
		case a.status == http.StatusOK:
			e.groupDirty = true
			e.checkGroup(t, e.group.ID, a)
		case a.isClientError():
			e.checkUnchangedGroup(t)
		default:
			t.Fatalf("PUT /Groups: status %d: %s", a.status, a.raw)
		}
	})
}

// baseUser and baseGroup are the valid bodies FuzzDecode adds one attribute to.
const (
	baseUser = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"fuzz@example.com",` +
		`"name":{"givenName":"Fuzz","familyName":"Tester"},"emails":[{"primary":true,"value":"fuzz@example.com","type":"work"}],` +
		`"active":true}`
	baseGroup = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Fuzz Group",` +
		`"members":[{"value":"$U1"}]}`
)

// withAttribute returns the JSON object doc with "key": value added at its end.
func withAttribute(doc, key string, value []byte) []byte {
	k, _ := json.Marshal(key)
	out := append([]byte(strings.TrimSuffix(doc, "}")), ',')
	out = append(out, k...)
	out = append(out, ':')
	return append(out, jsonValue(value)...)
}

// patchOperation returns a PATCH body with one operation; an empty path or value is left out.
func patchOperation(op, path string, value []byte) []byte {
	o, _ := json.Marshal(op)
	b := []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":`)
	b = append(b, o...)
	if path != "" {
		p, _ := json.Marshal(path)
		b = append(append(b, `,"path":`...), p...)
	}
	if len(value) > 0 {
		b = append(append(b, `,"value":`...), jsonValue(value)...)
	}
	return append(b, "}]}"...)
}

// jsonValue returns v if it is JSON, else v as a JSON string.
func jsonValue(v []byte) []byte {
	if json.Valid(v) {
		return v
	}
	s, _ := json.Marshal(string(v))
	return s
}

// fuzzEnv is the SCIM handler over a SQLite directory holding three fixture users, the user
// that PATCH and PUT target, a fixture group "Flex Agents" and the target group
// "Flex Supervisors" (members $U1 and $U2).
type fuzzEnv struct {
	store   directory.Store
	handler http.Handler
	auth    string
	fixture [3]string // ids of the fixture users
	user    directory.User
	group   directory.Group
	subst   *strings.Replacer

	userDirty, groupDirty bool // a 2xx may have changed the target since its last reset
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	ctx := context.Background()
	// The database lives in memory when /dev/shm is there: an iteration commits several
	// transactions, and waiting for the disk slows the fuzzer down about threefold. The
	// targets put the store back after every input, so it does not grow.
	dir := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "flexbridge-fuzz-"); err == nil {
			dir = d
			f.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	if dir == "" {
		dir = f.TempDir()
	}
	st, err := directory.Open(ctx, directory.Options{Driver: directory.DriverSQLite, DSN: dir + "/fb.db"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	secret, hash, err := NewToken()
	if err != nil {
		f.Fatal(err)
	}
	if _, err := st.CreateToken(ctx, "fuzz", hash); err != nil {
		f.Fatal(err)
	}
	h, err := New(Options{Store: st, Logger: zap.NewNop(), PublicURL: fuzzPublicURL})
	if err != nil {
		f.Fatal(err)
	}
	e := &fuzzEnv{store: st, handler: h, auth: "Bearer " + secret}

	create := func(path, body string) string {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, BasePath+path, strings.NewReader(body))
		req.Header.Set("Authorization", e.auth)
		req.Header.Set("Content-Type", contentType)
		e.handler.ServeHTTP(rec, req)
		var doc struct{ ID string }
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); rec.Code != http.StatusCreated || err != nil || doc.ID == "" {
			f.Fatalf("fixture POST %s: %d %s", path, rec.Code, rec.Body)
		}
		return doc.ID
	}
	for i, name := range []string{"one", "two", "three"} {
		e.fixture[i] = create("/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],`+
			`"userName":"%s@example.com","name":{"givenName":"%s","familyName":"Fixture"},`+
			`"emails":[{"primary":true,"value":"%s@example.com","type":"work"}],"displayName":"%s Fixture",`+
			`"externalId":"ext-%s","active":true}`, name, name, name, name, name))
	}
	// The target user is shaped like Entra ID's create (enterprise extension, manager, roles).
	uid := create("/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",`+
		`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],`+
		`"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Runscope123Abc@atko.com","active":true,`+
		`"name":{"givenName":"Grace","familyName":"Hopper","formatted":"Grace Hopper"},"displayName":"Grace Hopper",`+
		`"title":"Rear Admiral","nickName":"Amazing","locale":"en-US",`+
		`"emails":[{"primary":true,"value":"grace@example.com","type":"work"},{"value":"g@home.example","type":"home"}],`+
		`"phoneNumbers":[{"value":"+15555550100","type":"work"}],"roles":[],`+
		`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","employeeNumber":"42",`+
		`"costCenter":"CC1","manager":{"value":"`+e.fixture[0]+`"}}}`)
	create("/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Flex Agents","members":[]}`)
	gid := create("/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Flex Supervisors",`+
		`"externalId":"grp-1","members":[{"value":"`+e.fixture[0]+`","display":"one@example.com"},{"value":"`+e.fixture[1]+`"}]}`)
	if e.user, err = st.GetUser(ctx, uid); err != nil {
		f.Fatal(err)
	}
	if e.group, err = st.GetGroup(ctx, gid); err != nil {
		f.Fatal(err)
	}
	e.subst = strings.NewReplacer("$U1", e.fixture[0], "$U2", e.fixture[1], "$U3", e.fixture[2],
		"$UID", uid, "$GID", gid)
	return e
}

func (e *fuzzEnv) substBytes(b []byte) []byte {
	if !bytes.Contains(b, []byte("$")) {
		return b
	}
	return []byte(e.subst.Replace(string(b)))
}

// removeUser deletes a user an input created, tombstone included (as the reconciler would
// once the worker is gone), so that every input meets the same state and the database does
// not grow while the fuzzer runs.
func (e *fuzzEnv) removeUser(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	if err := e.store.DeleteUser(ctx, id, nil); err != nil {
		t.Fatalf("delete the created user: %v", err)
	}
	st, err := e.store.GetSyncState(ctx, id)
	if err != nil {
		t.Fatalf("sync state of the deleted user: %v", err)
	}
	if err := e.store.MarkApplied(ctx, id, st.DesiredGen, ""); err != nil {
		t.Fatalf("remove the tombstone: %v", err)
	}
}

// resetUser puts the target user back as it was created, if a 2xx may have changed it.
func (e *fuzzEnv) resetUser(t *testing.T) {
	t.Helper()
	if !e.userDirty {
		return
	}
	u, err := e.store.UpdateUser(context.Background(), e.user.ID, func(u *directory.User) error {
		u.UserName, u.ExternalID, u.Active, u.Resource = e.user.UserName, e.user.ExternalID, e.user.Active, e.user.Resource
		return nil
	})
	if err != nil {
		t.Fatalf("reset the target user: %v", err)
	}
	e.user.Version = u.Version
	e.userDirty = false
}

// resetGroup puts the target group back as it was created, if a 2xx may have changed it.
func (e *fuzzEnv) resetGroup(t *testing.T) {
	t.Helper()
	if !e.groupDirty {
		return
	}
	g, err := e.store.UpdateGroup(context.Background(), e.group.ID, func(g *directory.Group) error {
		g.DisplayName, g.ExternalID, g.Resource, g.Members = e.group.DisplayName, e.group.ExternalID, e.group.Resource, e.group.Members
		return nil
	})
	if err != nil {
		t.Fatalf("reset the target group: %v", err)
	}
	e.group.Version = g.Version
	e.groupDirty = false
}

// answer is one response, its body decoded when it is JSON.
type answer struct {
	method, path string
	body         string // the request body
	input        string // what the client sent (query and body), to tell echoes from leaks
	status       int
	header       http.Header
	raw          []byte
	doc          map[string]any
}

func (a answer) isClientError() bool { return a.status >= 400 && a.status < 500 }

// send serves one request and checks what every answer must satisfy: no 5xx, within
// fuzzBudget, the SCIM content type, a JSON object body, and for errors the RFC 7644 §3.12
// shape without internal text.
func (e *fuzzEnv) send(t *testing.T, method, path, rawQuery string, body []byte) answer {
	t.Helper()
	var req *http.Request
	if body != nil {
		req = httptest.NewRequest(method, BasePath+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
	} else {
		req = httptest.NewRequest(method, BasePath+path, nil)
	}
	req.URL.RawQuery = rawQuery
	req.Header.Set("Authorization", e.auth)
	rec := httptest.NewRecorder()
	start := time.Now()
	e.handler.ServeHTTP(rec, req)
	took := time.Since(start)

	a := answer{method: method, path: path, body: string(body), input: rawQuery + "\n" + string(body), status: rec.Code,
		header: rec.Header(), raw: rec.Body.Bytes()}
	if q, err := url.QueryUnescape(rawQuery); err == nil {
		a.input += "\n" + q
	}
	var decoded any
	if json.Unmarshal(body, &decoded) == nil {
		// Keys and strings as the server reads them ("\u0073ql" is "sql"), for echoes.
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if enc.Encode(decoded) == nil {
			a.input += "\n" + b.String()
		}
	}
	if took > fuzzBudget {
		t.Fatalf("%s %s took %v (budget %v); status %d", method, path, took, fuzzBudget, a.status)
	}
	if a.status >= 500 {
		t.Fatalf("%s %s: server error %d: %s", method, path, a.status, a.raw)
	}
	if a.status == http.StatusNoContent {
		if len(a.raw) != 0 {
			t.Fatalf("%s %s: 204 with a body: %s", method, path, a.raw)
		}
		return a
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, contentType) {
		t.Fatalf("%s %s: status %d with Content-Type %q", method, path, a.status, ct)
	}
	d := json.NewDecoder(bytes.NewReader(a.raw))
	d.UseNumber()
	if err := d.Decode(&a.doc); err != nil || a.doc == nil || d.More() {
		t.Fatalf("%s %s: status %d, body is not one JSON object (%v): %s", method, path, a.status, err, a.raw)
	}
	if a.status >= 400 {
		checkErrorBody(t, a)
	}
	return a
}

// scimTypes are the error types RFC 7644 §3.12 defines.
var scimTypes = []string{"invalidFilter", "tooMany", "uniqueness", "mutability", "invalidSyntax",
	"invalidPath", "noTarget", "invalidValue", "invalidVers", "sensitive"}

// leakMarkers are texts that only internal errors contain (Go, SQL, parser and decoder
// messages, package names). An error body may contain one only if the client sent it.
var leakMarkers = []string{"sql", "SQL", "goroutine", ".go:", "panic", "runtime error", "directory:",
	"elimity", "parse conflict", "expected int32", "invalid character", "json:", "unexpected end of JSON",
	"strconv.", "cannot unmarshal", "interface {}", "map[string]", "%!"}

func checkErrorBody(t *testing.T, a answer) {
	t.Helper()
	schemas, _ := a.doc["schemas"].([]any)
	if len(schemas) != 1 || schemas[0] != errorSchema {
		t.Fatalf("%s %s: error %d without the Error schema: %s", a.method, a.path, a.status, a.raw)
	}
	if a.doc["status"] != strconv.Itoa(a.status) {
		t.Fatalf("%s %s: error %d with status field %v", a.method, a.path, a.status, a.doc["status"])
	}
	detail, _ := a.doc["detail"].(string)
	if strings.TrimSpace(detail) == "" {
		t.Fatalf("%s %s: error %d without detail: %s", a.method, a.path, a.status, a.raw)
	}
	if st, ok := a.doc["scimType"]; ok {
		if s, _ := st.(string); !slices.Contains(scimTypes, s) {
			t.Fatalf("%s %s: error %d with scimType %v", a.method, a.path, a.status, st)
		}
	}
	for _, m := range leakMarkers {
		if strings.Contains(string(a.raw), m) && !strings.Contains(a.input, m) {
			t.Fatalf("%s %s: error %d leaks %q: %s", a.method, a.path, a.status, m, a.raw)
		}
	}
}

// checkList checks a 200 list answer (RFC 7644 §3.4.2).
func (e *fuzzEnv) checkList(t *testing.T, resource string, a answer) {
	t.Helper()
	schemas, _ := a.doc["schemas"].([]any)
	if len(schemas) != 1 || schemas[0] != listResponseSchema {
		t.Fatalf("GET %s: list without the ListResponse schema: %s", resource, a.raw)
	}
	total, ok := intOf(a.doc["totalResults"])
	if !ok || total < 0 {
		t.Fatalf("GET %s: totalResults %v", resource, a.doc["totalResults"])
	}
	res, ok := a.doc["Resources"].([]any)
	if !ok {
		t.Fatalf(`GET %s: "Resources" is not a list: %s`, resource, a.raw)
	}
	if n, ok := intOf(a.doc["itemsPerPage"]); !ok || n != len(res) {
		t.Fatalf("GET %s: itemsPerPage %v for %d resources", resource, a.doc["itemsPerPage"], len(res))
	}
	if start, ok := intOf(a.doc["startIndex"]); !ok || start < 1 {
		t.Fatalf("GET %s: startIndex %v", resource, a.doc["startIndex"])
	}
	if len(res) > total || len(res) > MaxResults {
		t.Fatalf("GET %s: %d resources of totalResults %d", resource, len(res), total)
	}
	for _, r := range res {
		m, ok := r.(map[string]any)
		if !ok {
			t.Fatalf("GET %s: a resource is not an object: %s", resource, a.raw)
		}
		if id, _ := m["id"].(string); id == "" {
			t.Fatalf("GET %s: a resource without id: %s", resource, a.raw)
		}
		if resource == "/Users" {
			checkServedUser(t, "GET /Users", m, false)
		} else if dn, _ := m["displayName"].(string); dn == "" {
			t.Fatalf("GET /Groups: a group without displayName: %s", a.raw)
		}
	}
}

// checkServedUser checks a user as the server shows it. In a list, attributes and
// excludedAttributes may leave out userName and active.
func checkServedUser(t *testing.T, what string, m map[string]any, whole bool) {
	t.Helper()
	if un, present := m["userName"]; present || whole {
		if s, _ := un.(string); strings.TrimSpace(s) == "" {
			t.Fatalf("%s: userName %#v: %v", what, un, m)
		}
	}
	if v, present := m["active"]; present || whole {
		if _, ok := v.(bool); !ok {
			t.Fatalf("%s: active is %#v, not a boolean", what, v)
		}
	}
	for k := range m {
		if strings.EqualFold(k, "password") {
			t.Fatalf("%s: the user has a password: %v", what, m)
		}
	}
}

// checkUser checks the stored user id after a 2xx write, the answer to that write and a GET.
//
// Invariants: userName is a non-empty string of at most 256 bytes without surrounding
// space; the resource is one JSON object whose top-level keys are distinct case-insensitively
// and include none of password, groups, id, meta; its active is a boolean equal to the
// indexed Active, its userName (trimmed) the indexed UserName, its externalId the indexed
// ExternalID.
func (e *fuzzEnv) checkUser(t *testing.T, id string, a answer) {
	t.Helper()
	u, err := e.store.GetUser(context.Background(), id)
	if err != nil {
		t.Fatalf("%s %s answered %d but user %q cannot be read: %v: %s", a.method, a.path, a.status, id, err, a.raw)
	}
	if u.UserName == "" || u.UserName != strings.TrimSpace(u.UserName) || len(u.UserName) > 256 {
		t.Fatalf("%s %s: stored userName %q", a.method, a.path, u.UserName)
	}
	doc := storedObject(t, a, u.Resource)
	for _, k := range []string{"password", "groups", "id", "meta"} {
		if v, n := lookup(doc, k); n > 0 {
			t.Fatalf("%s %s: stored user has %s = %v: %s", a.method, a.path, k, v, u.Resource)
		}
	}
	checkShape(t, a, doc, schema.CoreUserSchema().Attributes, "")
	if ext, n := lookup(doc, enterpriseSchema); n > 0 && ext != nil {
		m, ok := ext.(map[string]any)
		if !ok {
			t.Fatalf("%s %s: stored enterprise extension is %T: %s", a.method, a.path, ext, u.Resource)
		}
		checkShape(t, a, m, schema.ExtensionEnterpriseUser().Attributes, enterpriseSchema+":")
	}
	if v, n := lookup(doc, "active"); n != 1 || v != u.Active {
		t.Fatalf("%s %s: stored active %#v (%d keys), indexed %v: %s", a.method, a.path, v, n, u.Active, u.Resource)
	}
	if v, n := lookup(doc, "userName"); n != 1 {
		t.Fatalf("%s %s: stored user has %d userName keys: %s", a.method, a.path, n, u.Resource)
	} else if s, ok := v.(string); !ok || strings.TrimSpace(s) != u.UserName {
		t.Fatalf("%s %s: stored userName %#v, indexed %q", a.method, a.path, v, u.UserName)
	}
	ext, _ := lookup(doc, "externalId")
	if s, _ := ext.(string); s != u.ExternalID {
		t.Fatalf("%s %s: stored externalId %#v, indexed %q", a.method, a.path, ext, u.ExternalID)
	}
	if a.doc != nil { // 204 has none
		checkAnswerIs(t, a, id, "Users")
		if a.doc["userName"] != u.UserName || a.doc["active"] != u.Active {
			t.Fatalf("%s %s answered userName %v active %v; stored %q %v", a.method, a.path,
				a.doc["userName"], a.doc["active"], u.UserName, u.Active)
		}
		checkServedUser(t, a.method+" "+a.path, a.doc, true)
	}
	g := e.send(t, http.MethodGet, "/Users/"+id, "", nil)
	if g.status != http.StatusOK {
		t.Fatalf("after %s %s, GET answers %d: %s", a.method, a.path, g.status, g.raw)
	}
	checkServedUser(t, "GET /Users/{id}", g.doc, true)
	if g.doc["id"] != id || g.doc["userName"] != u.UserName || g.doc["active"] != u.Active {
		t.Fatalf("after %s %s, GET shows %s", a.method, a.path, g.raw)
	}
}

// checkGroup checks the stored group id after a 2xx write, the answer to that write and a GET.
//
// Invariants: displayName is non-empty; members are distinct, sorted, existing user ids; the
// resource is one JSON object whose top-level keys are distinct case-insensitively and include
// none of id, meta, members, schemas.
func (e *fuzzEnv) checkGroup(t *testing.T, id string, a answer) {
	t.Helper()
	ctx := context.Background()
	g, err := e.store.GetGroup(ctx, id)
	if err != nil {
		t.Fatalf("%s %s answered %d but group %q cannot be read: %v: %s", a.method, a.path, a.status, id, err, a.raw)
	}
	if strings.TrimSpace(g.DisplayName) == "" {
		t.Fatalf("%s %s: stored displayName %q", a.method, a.path, g.DisplayName)
	}
	if !slices.IsSorted(g.Members) || len(slices.Compact(slices.Clone(g.Members))) != len(g.Members) {
		t.Fatalf("%s %s: stored members %q", a.method, a.path, g.Members)
	}
	for _, m := range g.Members {
		if _, err := e.store.GetUser(ctx, m); err != nil {
			t.Fatalf("%s %s: member %q is not a user: %v", a.method, a.path, m, err)
		}
	}
	doc := storedObject(t, a, g.Resource)
	for _, k := range []string{"id", "meta", "members", "schemas"} {
		if v, n := lookup(doc, k); n > 0 {
			t.Fatalf("%s %s: stored group has %s = %v: %s", a.method, a.path, k, v, g.Resource)
		}
	}
	checkShape(t, a, doc, schema.CoreGroupSchema().Attributes, "")
	if a.method == http.MethodPost || a.method == http.MethodPut {
		// A create or replace names the whole membership: none of it may be dropped.
		for _, m := range sentMembers([]byte(a.body)) {
			if !slices.Contains(g.Members, m) {
				t.Fatalf("%s %s answered %d but dropped member %q: stored members %q", a.method, a.path, a.status, m, g.Members)
			}
		}
	}
	if a.doc != nil {
		checkAnswerIs(t, a, id, "Groups")
		if a.doc["displayName"] != g.DisplayName {
			t.Fatalf("%s %s answered displayName %v; stored %q", a.method, a.path, a.doc["displayName"], g.DisplayName)
		}
	}
	r := e.send(t, http.MethodGet, "/Groups/"+id, "", nil)
	if r.status != http.StatusOK || r.doc["id"] != id || r.doc["displayName"] != g.DisplayName {
		t.Fatalf("after %s %s, GET answers %d: %s", a.method, a.path, r.status, r.raw)
	}
	list, _ := r.doc["members"].([]any)
	var shown []string
	for _, m := range list {
		v, _ := m.(map[string]any)["value"].(string)
		shown = append(shown, v)
	}
	if !slices.Equal(shown, g.Members) && !(len(shown) == 0 && len(g.Members) == 0) {
		t.Fatalf("after %s %s, GET shows members %q, stored %q", a.method, a.path, shown, g.Members)
	}
}

// checkAnswerIs checks the resource a 200 or 201 answer carries: its id, its meta and, for
// 201, the Location header.
func checkAnswerIs(t *testing.T, a answer, id, endpoint string) {
	t.Helper()
	if a.doc["id"] != id {
		t.Fatalf("%s %s answered id %v for %s", a.method, a.path, a.doc["id"], id)
	}
	meta, _ := a.doc["meta"].(map[string]any)
	loc := fuzzPublicURL + BasePath + "/" + endpoint + "/" + id
	if meta["location"] != loc {
		t.Fatalf("%s %s: meta %v", a.method, a.path, a.doc["meta"])
	}
	if v, _ := meta["version"].(string); v == "" || a.header.Get("Etag") != v {
		t.Fatalf("%s %s: meta.version %v, ETag %q", a.method, a.path, meta["version"], a.header.Get("Etag"))
	}
	if a.status == http.StatusCreated && a.header.Get("Location") != loc {
		t.Fatalf("%s %s: Location %q", a.method, a.path, a.header.Get("Location"))
	}
}

// checkUnchangedUser checks that a refused write left the target user as it was.
func (e *fuzzEnv) checkUnchangedUser(t *testing.T) {
	t.Helper()
	u, err := e.store.GetUser(context.Background(), e.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != e.user.Version {
		t.Fatalf("a refused write changed the user (version %d -> %d)", e.user.Version, u.Version)
	}
}

// checkUnchangedGroup checks that a refused write left the target group as it was.
func (e *fuzzEnv) checkUnchangedGroup(t *testing.T) {
	t.Helper()
	g, err := e.store.GetGroup(context.Background(), e.group.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Version != e.group.Version {
		t.Fatalf("a refused write changed the group (version %d -> %d)", e.group.Version, g.Version)
	}
}

// checkShape fails when an attribute the schema declares multi-valued is stored as anything
// but a list, or one it declares complex as anything but an object (RFC 7643 §2.3, §2.4): the
// mapping and every client read them in those shapes.
func checkShape(t *testing.T, a answer, doc map[string]any, attrs schema.Attributes, prefix string) {
	t.Helper()
	for _, attr := range attrs {
		v, _ := lookup(doc, attr.Name())
		if v == nil {
			continue
		}
		if attr.MultiValued() {
			list, ok := v.([]any)
			if !ok {
				t.Fatalf("%s %s: multi-valued %s%s is stored as %T: %v", a.method, a.path, prefix, attr.Name(), v, doc)
			}
			for _, el := range list {
				if _, ok := el.(map[string]any); !ok && attr.HasSubAttributes() {
					t.Fatalf("%s %s: a value of %s%s is stored as %T: %v", a.method, a.path, prefix, attr.Name(), el, doc)
				}
			}
		} else if _, ok := v.(map[string]any); !ok && attr.HasSubAttributes() {
			t.Fatalf("%s %s: complex %s%s is stored as %T: %v", a.method, a.path, prefix, attr.Name(), v, doc)
		}
	}
}

// sentMembers returns the member ids a Group body names, whether members is a list or a
// single object.
func sentMembers(body []byte) []string {
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		return nil
	}
	var els []any
	switch v, _ := lookup(doc, "members"); v := v.(type) {
	case []any:
		els = v
	case map[string]any:
		els = []any{v}
	}
	var ids []string
	for _, el := range els {
		if m, ok := el.(map[string]any); ok {
			if id, ok := lookupValue(m, "value").(string); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

func lookupValue(m map[string]any, name string) any {
	v, _ := lookup(m, name)
	return v
}

// storedObject decodes a stored resource, which must be one JSON object whose top-level keys
// are distinct case-insensitively (SCIM attribute names are case-insensitive, so two
// spellings of one name would make the document ambiguous).
func storedObject(t *testing.T, a answer, raw json.RawMessage) map[string]any {
	t.Helper()
	if len(raw) == 0 {
		return map[string]any{}
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var doc map[string]any
	if err := d.Decode(&doc); err != nil || doc == nil || d.More() {
		t.Fatalf("%s %s: stored resource is not a JSON object (%v): %s", a.method, a.path, err, raw)
	}
	seen := map[string]string{}
	for k := range doc {
		if prev, dup := seen[strings.ToLower(k)]; dup {
			t.Fatalf("%s %s: stored resource has both %q and %q: %s", a.method, a.path, prev, k, raw)
		}
		seen[strings.ToLower(k)] = k
	}
	return doc
}

// lookup returns the value of m's key equal to name case-insensitively, and how many keys match.
func lookup(m map[string]any, name string) (v any, n int) {
	for k, x := range m {
		if strings.EqualFold(k, name) {
			v, n = x, n+1
		}
	}
	return v, n
}

func intOf(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(string(n))
	return i, err == nil
}

// checkFilterDirectly checks checkFilter and the library's parsing of a filter: no panic, a
// refusal is a 400 invalidFilter or tooMany, and what is let through has at most
// MaxFilterClauses clauses. It reports whether the filter, as given or with surrounding space
// trimmed (as the library reads it), compares password: such a filter must never be served.
func checkFilterDirectly(t *testing.T, f string) (onPassword bool) {
	t.Helper()
	se, ok := checkFilter(f)
	if !ok {
		if se.Status != http.StatusBadRequest || (se.ScimType != "invalidFilter" && se.ScimType != "tooMany") || se.Detail == "" {
			t.Fatalf("checkFilter(%q) refused with %+v", f, se)
		}
		return false
	}
	if len(f) > MaxFilterLength {
		t.Fatalf("checkFilter let through a filter of %d bytes", len(f))
	}
	for _, text := range []string{f, strings.TrimSpace(f)} {
		if text == "" {
			continue
		}
		expr, err := filter.ParseFilter([]byte(text))
		if err != nil {
			continue
		}
		if expr == nil {
			t.Fatalf("ParseFilter(%q) = nil, nil", text)
		}
		n, pw := clauses(t, expr)
		if n > MaxFilterClauses {
			t.Fatalf("checkFilter let through %d clauses (at most %d): %q", n, MaxFilterClauses, f)
		}
		onPassword = onPassword || pw
	}
	if trimmed := strings.TrimSpace(f); trimmed != "" {
		for _, s := range []schema.Schema{schema.CoreUserSchema(), schema.CoreGroupSchema()} {
			if v, err := efilter.NewValidator(trimmed, s, schema.ExtensionEnterpriseUser()); err == nil {
				_ = v.Validate()
			}
		}
	}
	return onPassword
}

// clauses counts the attribute expressions and value paths of a parsed filter, and reports
// whether one of them compares password.
func clauses(t *testing.T, e filter.Expression) (n int, onPassword bool) {
	t.Helper()
	isPassword := func(p filter.AttributePath) bool {
		return strings.EqualFold(p.AttributeName, "password") || strings.EqualFold(p.SubAttributeName(), "password")
	}
	switch e := e.(type) {
	case *filter.AttributeExpression:
		return 1, isPassword(e.AttributePath)
	case *filter.ValuePath:
		n, pw := clauses(t, e.ValueFilter)
		return 1 + n, pw || isPassword(e.AttributePath)
	case *filter.LogicalExpression:
		l, lpw := clauses(t, e.Left)
		r, rpw := clauses(t, e.Right)
		return l + r, lpw || rpw
	case *filter.NotExpression:
		return clauses(t, e.Expression)
	case nil:
		return 0, false
	}
	t.Fatalf("unknown expression %T", e)
	return 0, false
}
