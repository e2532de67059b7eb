package scim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/mapping"
	"github.com/flexbridge/flexbridge/scim"
)

type env struct {
	t      *testing.T
	srv    *httptest.Server
	store  directory.Store
	token  string
	logs   *observer.ObservedLogs
	writes int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := directory.Open(ctx, directory.Options{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "fb.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	secret, hash, err := scim.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateToken(ctx, "okta", hash); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	e := &env{t: t, store: st, token: secret, logs: logs}
	h, err := scim.New(scim.Options{Store: st, Logger: zap.New(core), PublicURL: "https://bridge.example.com",
		MaxBodyBytes: 64 << 10, OnChange: func() { e.writes++ }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(scim.BasePath+"/", h)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) do(method, path, contentType, body string, hdr ...string) answer {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+scim.BasePath+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			e.t.Fatalf("%s %s: answer is not JSON (%d): %s", method, path, resp.StatusCode, raw)
		}
	}
	return a
}

const okta = "application/scim+json; charset=utf-8"

func userJSON(userName string, extra ...string) string {
	s := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"` + userName + `",` +
		`"name":{"givenName":"Grace","familyName":"Hopper"},"emails":[{"primary":true,"value":"` + userName + `","type":"work"}],` +
		`"displayName":"Grace Hopper","externalId":"00u1","active":true`
	for _, x := range extra {
		s += "," + x
	}
	return s + "}"
}

func (e *env) create(userName string, extra ...string) string {
	e.t.Helper()
	a := e.do("POST", "/Users", okta, userJSON(userName, extra...))
	if a.status != 201 {
		e.t.Fatalf("create %s: %d %s", userName, a.status, a.raw)
	}
	return a.body["id"].(string)
}

// assertSCIMError checks the RFC 7644 §3.12 error shape and that nothing internal leaks.
func assertSCIMError(t *testing.T, a answer, status int, scimType string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.raw)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
		t.Errorf("Content-Type %q", ct)
	}
	schemas, _ := a.body["schemas"].([]any)
	if len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Errorf("schemas = %v", a.body["schemas"])
	}
	if a.body["status"] != itoa(status) {
		t.Errorf("status field = %v", a.body["status"])
	}
	if scimType != "" && a.body["scimType"] != scimType {
		t.Errorf("scimType = %v, want %s", a.body["scimType"], scimType)
	}
	if d, _ := a.body["detail"].(string); d == "" {
		t.Error("detail is empty")
	}
	for _, leak := range []string{"sql", "SQL", "goroutine", ".go:", "panic", "directory", "elimity"} {
		if strings.Contains(a.raw, leak) {
			t.Errorf("error body leaks %q: %s", leak, a.raw)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	id := e.create("ok@example.com")

	t.Run("malformed JSON", func(t *testing.T) {
		assertSCIMError(t, e.do("POST", "/Users", okta, `{"userName":`), 400, "invalidSyntax")
	})
	t.Run("missing userName", func(t *testing.T) {
		a := e.do("POST", "/Users", okta, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"active":true}`)
		assertSCIMError(t, a, 400, "invalidValue")
	})
	t.Run("blank userName", func(t *testing.T) {
		a := e.do("POST", "/Users", okta, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"  "}`)
		assertSCIMError(t, a, 400, "invalidValue")
	})
	t.Run("unknown user id", func(t *testing.T) {
		assertSCIMError(t, e.do("GET", "/Users/010101001010101011001010101011", "", ""), 404, "")
		assertSCIMError(t, e.do("PUT", "/Users/nope", okta, userJSON("x@example.com")), 404, "")
		assertSCIMError(t, e.do("DELETE", "/Users/nope", "", ""), 404, "")
		patch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`
		assertSCIMError(t, e.do("PATCH", "/Users/nope", okta, patch), 404, "")
	})
	t.Run("duplicate userName in other case", func(t *testing.T) {
		assertSCIMError(t, e.do("POST", "/Users", okta, userJSON("OK@EXAMPLE.COM")), 409, "uniqueness")
	})
	t.Run("body too large", func(t *testing.T) {
		big := userJSON("big@example.com", `"title":"`+strings.Repeat("x", 70<<10)+`"`)
		assertSCIMError(t, e.do("POST", "/Users", okta, big), 413, "")
	})
	t.Run("wrong content type", func(t *testing.T) {
		assertSCIMError(t, e.do("POST", "/Users", "text/plain", userJSON("ct@example.com")), 415, "")
	})
	t.Run("unknown PATCH path", func(t *testing.T) {
		patch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"fooBar","value":1}]}`
		assertSCIMError(t, e.do("PATCH", "/Users/"+id, okta, patch), 400, "invalidPath")
	})
	t.Run("filter limits", func(t *testing.T) {
		long := `userName eq "` + strings.Repeat("a", 1100) + `"`
		assertSCIMError(t, e.do("GET", "/Users?filter="+url.QueryEscape(long), "", ""), 400, "invalidFilter")
		many := strings.TrimSuffix(strings.Repeat(`userName eq "x" or `, 20), " or ")
		assertSCIMError(t, e.do("GET", "/Users?filter="+url.QueryEscape(many), "", ""), 400, "tooMany")
		assertSCIMError(t, e.do("GET", "/Users?filter="+url.QueryEscape(`password eq "1mz050nq"`), "", ""), 400, "invalidFilter")
		assertSCIMError(t, e.do("GET", "/Users?filter="+url.QueryEscape(`userName eq "a" or PASSWORD pr`), "", ""), 400, "invalidFilter")
	})
	t.Run("POST ServiceProviderConfig", func(t *testing.T) {
		assertSCIMError(t, e.do("POST", "/ServiceProviderConfig", okta, `{}`), 405, "")
	})
	t.Run("bad If-Match", func(t *testing.T) {
		assertSCIMError(t, e.do("PUT", "/Users/"+id, okta, userJSON("ok@example.com"), "If-Match", `W/"999"`), 412, "")
	})
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	for name, header := range map[string]string{
		"none":        "",
		"not bearer":  "non-token",
		"basic":       "Basic b2t0YTpva3Rh",
		"wrong token": "Bearer fbt_wrong",
		"empty":       "Bearer ",
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+"/scim/v2/Users", nil)
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var body map[string]any
			_ = json.Unmarshal(raw, &body)
			assertSCIMError(t, answer{status: resp.StatusCode, header: resp.Header, body: body, raw: string(raw)}, 401, "")
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("revocation is immediate", func(t *testing.T) {
		if a := e.do("GET", "/Users", "", ""); a.status != 200 {
			t.Fatalf("before revoke: %d", a.status)
		}
		if err := e.store.RevokeToken(context.Background(), "okta"); err != nil {
			t.Fatal(err)
		}
		assertSCIMError(t, e.do("GET", "/Users", "", ""), 401, "")
	})
	for _, entry := range e.logs.All() {
		for _, f := range entry.Context {
			if strings.Contains(f.String, e.token) || strings.Contains(f.String, "fbt_wrong") {
				t.Errorf("a token was logged: %v", entry)
			}
		}
	}
}

func TestCreateGetAndList(t *testing.T) {
	e := newEnv(t)
	a := e.do("POST", "/Users", "application/json", userJSON("Runscope123Abc@atko.com", `"password":"1mz050nq"`, `"groups":[]`,
		`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}`))
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.raw)
	}
	id := a.body["id"].(string)
	if a.body["userName"] != "Runscope123Abc@atko.com" || a.body["active"] != true {
		t.Errorf("create answered %v", a.body)
	}
	if _, ok := a.body["password"]; ok || strings.Contains(a.raw, "1mz050nq") {
		t.Error("password echoed")
	}
	if a.header.Get("Location") != "https://bridge.example.com/scim/v2/Users/"+id {
		t.Errorf("Location = %q", a.header.Get("Location"))
	}
	meta := a.body["meta"].(map[string]any)
	if meta["location"] != "https://bridge.example.com/scim/v2/Users/"+id || meta["version"] != `W/"1"` || meta["resourceType"] != "User" {
		t.Errorf("meta = %v", meta)
	}
	if e.writes != 1 {
		t.Errorf("OnChange called %d times, want 1", e.writes)
	}
	stored, err := e.store.GetUser(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored.Resource), "1mz050nq") {
		t.Error("password stored")
	}

	g := e.do("GET", "/Users/"+id, "", "")
	if g.status != 200 || g.body["userName"] != "Runscope123Abc@atko.com" || g.header.Get("Etag") != `W/"1"` {
		t.Errorf("get: %d %v etag %q", g.status, g.body, g.header.Get("Etag"))
	}

	for _, q := range []struct {
		filter string
		total  float64
	}{
		{`userName eq "runscope123abc@atko.com"`, 1},
		{`userName eq "RUNSCOPE123ABC@ATKO.COM"`, 1},
		{`userName eq "abcdefgh@atko.com"`, 0},
		{`externalId eq "00u1"`, 1},
		{`externalId eq "00U1"`, 0},
		{`userName eq "runscope123abc@atko.com" and active eq true`, 1},
		{`userName sw "runscope"`, 1},
		{`active eq false`, 0},
		{`active eq true`, 1},
		{`emails.value eq "runscope123abc@atko.com"`, 1},
		{`emails.value eq "Runscope123Abc@atko.com"`, 1},
		{`emails[type eq "work" and value eq "runscope123abc@atko.com"]`, 1},
		{`displayName eq "Grace Hopper"`, 1},
		{`displayName co "Hop"`, 1},
		{`title pr`, 0},
		{`name.familyName pr`, 1},
		{`userName eq "nobody@x" or displayName eq "Grace Hopper"`, 1},
		{`id eq "` + id + `"`, 1},
		{`id eq "00000000-0000-0000-0000-000000000000"`, 0},
		{`meta.lastModified gt "2000-01-01T00:00:00Z"`, 1},
		{`meta.lastModified ge "2999-01-01T00:00:00Z"`, 0},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales"`, 1},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Retail"`, 0},
		{`userName eq "password.reset@atko.com"`, 0},
	} {
		l := e.do("GET", "/Users?filter="+url.QueryEscape(q.filter)+"&startIndex=1&count=100", "", "")
		if l.status != 200 || l.body["totalResults"] != q.total {
			t.Errorf("filter %s: %d %v", q.filter, l.status, l.raw)
			continue
		}
		res, ok := l.body["Resources"].([]any)
		if !ok || float64(len(res)) != q.total || l.body["itemsPerPage"] != q.total {
			t.Errorf("filter %s: Resources %#v itemsPerPage %v", q.filter, l.body["Resources"], l.body["itemsPerPage"])
		}
	}
	assertSCIMError(t, e.do("GET", "/Users?filter="+url.QueryEscape(`userName eq`), "", ""), 400, "invalidFilter")
}

func TestPaging(t *testing.T) {
	e := newEnv(t)
	want := map[string]bool{}
	for i := range 25 {
		want[e.create("user"+itoa(100+i)+"@example.com")] = true
	}
	seen := map[string]bool{}
	var order []string
	for start := 1; start <= 25; start += 10 {
		l := e.do("GET", "/Users?startIndex="+itoa(start)+"&count=10", "", "")
		if l.status != 200 || l.body["totalResults"] != float64(25) || l.body["startIndex"] != float64(start) {
			t.Fatalf("page at %d: %s", start, l.raw)
		}
		res := l.body["Resources"].([]any)
		if wantN := min(10, 25-start+1); len(res) != wantN || l.body["itemsPerPage"] != float64(wantN) {
			t.Fatalf("page at %d has %d resources, itemsPerPage %v", start, len(res), l.body["itemsPerPage"])
		}
		for _, r := range res {
			id := r.(map[string]any)["id"].(string)
			if seen[id] {
				t.Errorf("id %s on two pages", id)
			}
			seen[id] = true
			order = append(order, id)
		}
	}
	if len(seen) != 25 {
		t.Errorf("pages covered %d of 25 users", len(seen))
	}
	// count=0: only the total.
	l := e.do("GET", "/Users?count=0", "", "")
	if res, ok := l.body["Resources"].([]any); l.status != 200 || l.body["totalResults"] != float64(25) || !ok || len(res) != 0 {
		t.Errorf("count=0: %s", l.raw)
	}
	// Stable order: a second walk gives the same sequence.
	l = e.do("GET", "/Users?startIndex=1&count=25", "", "")
	for i, r := range l.body["Resources"].([]any) {
		if r.(map[string]any)["id"] != order[i] {
			t.Fatalf("order changed at %d", i)
		}
	}
}

func patchBody(ops string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + ops + `]}`
}

// TestPatchShapes sends the exact PATCH bodies IdPs send and checks the stored user and the
// identity the mapping sees.
func TestPatchShapes(t *testing.T) {
	cases := []struct {
		name  string
		ops   string
		check func(t *testing.T, id mapping.Identity, body map[string]any)
	}{
		{"okta deactivate", `{"op":"replace","value":{"active":false}}`, func(t *testing.T, id mapping.Identity, b map[string]any) {
			if id.Active || b["active"] != false {
				t.Errorf("still active")
			}
		}},
		{"entra legacy deactivate", `{"op":"Replace","path":"active","value":"False"}`, func(t *testing.T, id mapping.Identity, b map[string]any) {
			if id.Active || b["active"] != false {
				t.Errorf("still active")
			}
		}},
		{"entra compliant deactivate", `{"op":"replace","path":"active","value":false}`, func(t *testing.T, id mapping.Identity, b map[string]any) {
			if id.Active {
				t.Errorf("still active")
			}
		}},
		{"entra multi-attribute value map", `{"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}`,
			func(t *testing.T, id mapping.Identity, b map[string]any) {
				if id.DisplayName != "Bjfe" || id.Name.GivenName != "Kkom" || id.Name.FamilyName != "Unua" || id.Enterprise.EmployeeNumber != "Aklq" {
					t.Errorf("identity %+v", id)
				}
			}},
		{"work email replace", `{"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@example.com"}`,
			func(t *testing.T, id mapping.Identity, b map[string]any) {
				if len(id.Emails) != 1 || id.Emails[0].Value != "new@example.com" || id.PrimaryEmail() != "new@example.com" {
					t.Errorf("emails %+v", id.Emails)
				}
			}},
		{"enterprise department add", `{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Retail"}`,
			func(t *testing.T, id mapping.Identity, b map[string]any) {
				if id.Enterprise.Department != "Retail" {
					t.Errorf("department %q", id.Enterprise.Department)
				}
			}},
		{"clear title with empty string", `{"op":"replace","path":"title","value":""}`,
			func(t *testing.T, id mapping.Identity, b map[string]any) {
				if id.Title != "" {
					t.Errorf("title %q", id.Title)
				}
			}},
		{"mixed-case ops", `{"op":"ADD","path":"title","value":"Boss"},{"op":"Replace","path":"nickName","value":"G"}`,
			func(t *testing.T, id mapping.Identity, b map[string]any) {
				if id.Title != "Boss" || id.NickName != "G" {
					t.Errorf("title %q nick %q", id.Title, id.NickName)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.create("grace@example.com", `"title":"Rear Admiral"`)
			a := e.do("PATCH", "/Users/"+id, okta, patchBody(c.ops))
			if a.status != 200 {
				t.Fatalf("patch: %d %s", a.status, a.raw)
			}
			if a.body["meta"].(map[string]any)["version"] != `W/"2"` {
				t.Errorf("version after patch = %v", a.body["meta"])
			}
			u, err := e.store.GetUser(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			ident, err := mapping.IdentityFromSCIM(u.ID, u.Resource, nil)
			if err != nil {
				t.Fatal(err)
			}
			ident.Active = u.Active
			c.check(t, ident, a.body)
		})
	}
}

func TestReplaceKeepsIDAndChangesUserName(t *testing.T) {
	e := newEnv(t)
	id := e.create("old@example.com")
	a := e.do("PUT", "/Users/"+id, okta, userJSON("new@example.com"), "If-Match", `W/"1"`)
	if a.status != 200 || a.body["id"] != id || a.body["userName"] != "new@example.com" {
		t.Fatalf("put: %d %s", a.status, a.raw)
	}
	if l := e.do("GET", "/Users?filter="+url.QueryEscape(`userName eq "old@example.com"`), "", ""); l.body["totalResults"] != float64(0) {
		t.Errorf("old userName still found: %s", l.raw)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	id := e.create("gone@example.com")
	if a := e.do("DELETE", "/Users/"+id, "", ""); a.status != 204 {
		t.Fatalf("delete: %d %s", a.status, a.raw)
	}
	assertSCIMError(t, e.do("GET", "/Users/"+id, "", ""), 404, "")
	assertSCIMError(t, e.do("DELETE", "/Users/"+id, "", ""), 404, "")
	st, err := e.store.GetSyncState(context.Background(), id)
	if err != nil || !st.Deleted {
		t.Errorf("sync state after delete: %+v %v", st, err)
	}
}

// TestDeleteIfMatch: DELETE honours If-Match on users and groups; a stale
// version is refused with 412 and removes nothing.
func TestDeleteIfMatch(t *testing.T) {
	e := newEnv(t)
	g := e.do("POST", "/Groups", okta, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Etag Group","members":[]}`)
	if g.status != 201 {
		t.Fatalf("create group: %d %s", g.status, g.raw)
	}
	gid := g.body["id"].(string)
	for _, kind := range []string{"Users", "Groups"} {
		for i, c := range []struct {
			ifMatch string
			status  int
		}{
			{`W/"2"`, 412},
			{`"2", W/"3"`, 412},
			{`W/"1", W/"7"`, 204},
			{`"1"`, 204},
			{`*`, 204},
		} {
			id := gid
			if kind == "Users" {
				id = e.create(fmt.Sprintf("etag%d@example.com", i))
			} else if c.status == 204 {
				r := e.do("POST", "/Groups", okta, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Etag %d"}`, i))
				if r.status != 201 {
					t.Fatalf("create group: %d %s", r.status, r.raw)
				}
				id = r.body["id"].(string)
			}
			a := e.do("DELETE", "/"+kind+"/"+id, "", "", "If-Match", c.ifMatch)
			if c.status == 412 {
				assertSCIMError(t, a, 412, "")
				if got := e.do("GET", "/"+kind+"/"+id, "", ""); got.status != 200 {
					t.Errorf("%s after a refused DELETE (If-Match %s): GET %d", kind, c.ifMatch, got.status)
				}
				continue
			}
			if a.status != 204 {
				t.Errorf("DELETE %s with If-Match %s: %d %s", kind, c.ifMatch, a.status, a.raw)
			}
			assertSCIMError(t, e.do("GET", "/"+kind+"/"+id, "", ""), 404, "")
		}
	}
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	spc := e.do("GET", "/ServiceProviderConfig", "", "")
	if spc.status != 200 {
		t.Fatalf("%d", spc.status)
	}
	for _, k := range []string{"patch", "filter", "etag"} {
		if spc.body[k].(map[string]any)["supported"] != true {
			t.Errorf("%s not supported: %v", k, spc.body[k])
		}
	}
	for _, k := range []string{"bulk", "sort", "changePassword"} {
		if spc.body[k].(map[string]any)["supported"] != false {
			t.Errorf("%s claimed: %v", k, spc.body[k])
		}
	}
	if spc.body["filter"].(map[string]any)["maxResults"] != float64(scim.MaxResults) {
		t.Errorf("maxResults %v", spc.body["filter"])
	}
	s := e.do("GET", "/Schemas", "", "")
	if s.status != 200 || !strings.Contains(s.raw, `"User Account"`) || !strings.Contains(s.raw, "enterprise:2.0:User") {
		t.Errorf("schemas: %d %.300s", s.status, s.raw)
	}
	rt := e.do("GET", "/ResourceTypes", "", "")
	if rt.status != 200 || !strings.Contains(rt.raw, `"/Users"`) {
		t.Errorf("resource types: %d %.300s", rt.status, rt.raw)
	}
}

func TestTokenHash(t *testing.T) {
	secret, hash, err := scim.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, scim.TokenPrefix) || len(secret) < 40 {
		t.Errorf("secret %q", secret)
	}
	if !bytes.Equal(hash, scim.HashToken(secret)) || len(hash) != 32 {
		t.Error("hash is not the SHA-256 of the secret")
	}
	other, _, _ := scim.NewToken()
	if other == secret {
		t.Error("two tokens alike")
	}
	_ = time.Now
}

func (e *env) members(gid string) []string {
	e.t.Helper()
	g, err := e.store.GetGroup(context.Background(), gid)
	if err != nil {
		e.t.Fatal(err)
	}
	return g.Members
}

func (e *env) desiredGen(uid string) int64 {
	e.t.Helper()
	st, err := e.store.GetSyncState(context.Background(), uid)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.DesiredGen
}

// TestGroups drives /Groups with the exact shapes Okta and Entra send.
func TestGroups(t *testing.T) {
	e := newEnv(t)
	u1, u2, u3 := e.create("one@example.com"), e.create("two@example.com"), e.create("three@example.com")
	a := e.do("POST", "/Groups", okta, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Flex Supervisors","members":[]}`)
	if a.status != 201 || a.body["displayName"] != "Flex Supervisors" {
		t.Fatalf("create group: %d %s", a.status, a.raw)
	}
	gid := a.body["id"].(string)
	if a.header.Get("Location") != "https://bridge.example.com/scim/v2/Groups/"+gid {
		t.Errorf("Location %q", a.header.Get("Location"))
	}
	assertSCIMError(t, e.do("POST", "/Groups", okta, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"flex supervisors"}`), 409, "uniqueness")
	assertSCIMError(t, e.do("POST", "/Groups", okta, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"members":[]}`), 400, "")

	patch := func(ops string) answer {
		t.Helper()
		a := e.do("PATCH", "/Groups/"+gid, okta, patchBody(ops))
		if a.status != 200 && a.status != 204 {
			t.Fatalf("patch %s: %d %s", ops, a.status, a.raw)
		}
		return a
	}
	g1, g3 := e.desiredGen(u1), e.desiredGen(u3)
	patch(`{"op":"add","path":"members","value":[{"value":"` + u1 + `","display":"one@example.com"},{"value":"` + u2 + `"}]}`)
	if got := strings.Join(e.members(gid), ","); got != strings.Join(sorted(u1, u2), ",") {
		t.Errorf("after add: %s", got)
	}
	if e.desiredGen(u1) != g1+1 || e.desiredGen(u3) != g3 {
		t.Errorf("sync marks: u1 %d->%d, u3 %d->%d", g1, e.desiredGen(u1), g3, e.desiredGen(u3))
	}
	patch(`{"op":"remove","path":"members[value eq \"` + u1 + `\"]"}`)
	if got := e.members(gid); len(got) != 1 || got[0] != u2 {
		t.Errorf("after remove by filter: %v", got)
	}
	patch(`{"op":"Add","path":"members","value":[{"value":"` + u3 + `"}]}`)
	patch(`{"op":"Remove","path":"members","value":[{"value":"` + u3 + `"}]}`) // Entra: only that member
	if got := e.members(gid); len(got) != 1 || got[0] != u2 {
		t.Errorf("after Entra remove: %v", got)
	}
	patch(`{"op":"replace","path":"members","value":[{"value":"` + u1 + `"},{"value":"` + u3 + `"}]}`)
	if got := strings.Join(e.members(gid), ","); got != strings.Join(sorted(u1, u3), ",") {
		t.Errorf("after replace: %s", got)
	}
	patch(`{"op":"replace","value":{"id":"` + gid + `","displayName":"Flex Supervisors EU"}}`) // Okta rename
	g := e.do("GET", "/Groups/"+gid, "", "")
	if g.body["displayName"] != "Flex Supervisors EU" || g.body["id"] != gid {
		t.Errorf("after rename: %s", g.raw)
	}
	assertSCIMError(t, e.do("PATCH", "/Groups/"+gid, okta, patchBody(`{"op":"add","path":"members","value":[{"value":"no-such-user"}]}`)), 400, "invalidValue")

	l := e.do("GET", "/Groups?excludedAttributes=members&filter="+url.QueryEscape(`displayName eq "flex supervisors eu"`), "", "")
	res, _ := l.body["Resources"].([]any)
	if l.status != 200 || l.body["totalResults"] != float64(1) || len(res) != 1 {
		t.Fatalf("list by displayName: %s", l.raw)
	}
	if _, has := res[0].(map[string]any)["members"]; has {
		t.Error("excludedAttributes=members ignored")
	}
	if l := e.do("GET", "/Groups?filter="+url.QueryEscape(`displayName eq "Nobody"`), "", ""); l.body["totalResults"] != float64(0) {
		t.Errorf("unknown displayName: %s", l.raw)
	}

	patch(`{"op":"remove","path":"members"}`)
	if got := e.members(gid); len(got) != 0 {
		t.Errorf("after remove all: %v", got)
	}
	patch(`{"op":"add","path":"members","value":[{"value":"` + u2 + `"}]}`)
	before := e.desiredGen(u2)
	if a := e.do("DELETE", "/Groups/"+gid, "", ""); a.status != 204 {
		t.Fatalf("delete group: %d %s", a.status, a.raw)
	}
	if e.desiredGen(u2) != before+1 {
		t.Error("deleting a group did not mark its ex-member for sync")
	}
	assertSCIMError(t, e.do("GET", "/Groups/"+gid, "", ""), 404, "")
}

func sorted(s ...string) []string { return slices.Sorted(slices.Values(s)) }

func TestBodyChecks(t *testing.T) {
	e := newEnv(t)
	id := e.create("body@example.com")
	cases := []struct {
		name, method, path, body string
		status                   int
		scimType                 string
	}{
		{"duplicate key", "POST", "/Users", `{"userName":"a@example.com","userName":"b@example.com"}`, 400, "invalidSyntax"},
		{"duplicate key other case", "POST", "/Users", `{"userName":"a@example.com","USERNAME":"b@example.com"}`, 400, "invalidSyntax"},
		{"duplicate nested key", "POST", "/Users", `{"userName":"a@example.com","name":{"givenName":"A","givenName":"B"}}`, 400, "invalidSyntax"},
		{"unknown schema", "POST", "/Users", `{"schemas":["urn:example:evil"],"userName":"a@example.com"}`, 400, "invalidSyntax"},
		{"too deep", "POST", "/Users", `{"userName":"a@example.com","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, 400, "invalidSyntax"},
		{"remove without path", "PATCH", "/Users/" + id, patchBody(`{"op":"remove"}`), 400, "noTarget"},
		{"patch id", "PATCH", "/Users/" + id, patchBody(`{"op":"replace","path":"id","value":"x"}`), 400, "mutability"},
		{"patch meta", "PATCH", "/Users/" + id, patchBody(`{"op":"replace","path":"meta.created","value":"x"}`), 400, "mutability"},
		{"patch groups", "PATCH", "/Users/" + id, patchBody(`{"op":"add","path":"groups","value":[{"value":"g"}]}`), 400, "mutability"},
		{"unknown op", "PATCH", "/Users/" + id, patchBody(`{"op":"merge","path":"title","value":"x"}`), 400, "invalidValue"},
		{"patch schema", "PATCH", "/Users/" + id, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"Operations":[{"op":"replace","path":"title","value":"x"}]}`, 400, "invalidSyntax"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertSCIMError(t, e.do(c.method, c.path, okta, c.body), c.status, c.scimType)
		})
	}
}

// TestEntraManagerAndNull covers Entra ID's manager test (set, change, clear with "") and its
// null test (replace with "" and with null clear the attribute).
func TestEntraManagerAndNull(t *testing.T) {
	e := newEnv(t)
	id := e.create("emp@example.com", `"title":"Engineer"`)
	manager := func() string {
		u, err := e.store.GetUser(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		ident, _ := mapping.IdentityFromSCIM(u.ID, u.Resource, nil)
		return ident.Enterprise.Manager.ID
	}
	steps := []struct{ ops, want string }{
		{`{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"mgrId"}`, "mgrId"},
		{`{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"mgr2"}`, "mgr2"},
		{`{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":""}`, ""},
		{`{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":"mgr3"}}`, "mgr3"},
	}
	for _, s := range steps {
		a := e.do("PATCH", "/Users/"+id, okta, patchBody(s.ops))
		if a.status != 200 {
			t.Fatalf("%s: %d %s", s.ops, a.status, a.raw)
		}
		if got := manager(); got != s.want {
			t.Errorf("after %s: manager %q, want %q", s.ops, got, s.want)
		}
	}
	for _, clear := range []string{`""`, `null`} {
		e.do("PATCH", "/Users/"+id, okta, patchBody(`{"op":"replace","path":"title","value":"Boss"}`))
		a := e.do("PATCH", "/Users/"+id, okta, patchBody(`{"op":"replace","path":"title","value":`+clear+`}`))
		if a.status != 200 {
			t.Fatalf("clear with %s: %d %s", clear, a.status, a.raw)
		}
		if _, has := a.body["title"]; has {
			t.Errorf("title still present after clearing with %s: %v", clear, a.body["title"])
		}
	}
}

func TestPathlessClear(t *testing.T) {
	e := newEnv(t)
	id := e.create("clear@example.com", `"title":"Dr","nickName":"G","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1"},"department":"Sales"}`)
	a := e.do("PATCH", "/Users/"+id, okta, patchBody(`{"op":"replace","value":{"title":null,"nickName":"","displayName":"Kept","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":""}}`))
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if _, has := a.body["title"]; has {
		t.Errorf("title not cleared: %s", a.raw)
	}
	if _, has := a.body["nickName"]; has {
		t.Errorf("nickName not cleared: %s", a.raw)
	}
	if a.body["displayName"] != "Kept" {
		t.Errorf("displayName not set: %s", a.raw)
	}
	ext, _ := a.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
	if _, has := ext["manager"]; has || ext["department"] != "Sales" {
		t.Errorf("extension after clearing manager: %v", ext)
	}
	// Only clears: the value map ends up empty and only the removes remain.
	if a := e.do("PATCH", "/Users/"+id, okta, patchBody(`{"op":"replace","value":{"displayName":null}}`)); a.status != 200 || a.body["displayName"] != nil {
		t.Errorf("clear-only map: %d %s", a.status, a.raw)
	}
}

// One PATCH may not ask for unbounded work inside the write transaction.
func TestPatchSizeLimits(t *testing.T) {
	e := newEnv(t)
	id := e.create("big@example.com")
	var keys []string
	for i := range 150 {
		keys = append(keys, `"emails[type eq \"t`+itoa(i)+`\"].value":"v`+itoa(i)+`@x.y"`)
	}
	assertSCIMError(t, e.do("PATCH", "/Users/"+id, okta, patchBody(`{"op":"replace","value":{`+strings.Join(keys, ",")+`}}`)), 400, "invalidValue")
	var ops []string
	for i := range 1001 {
		ops = append(ops, `{"op":"replace","path":"title","value":"t`+itoa(i)+`"}`)
	}
	assertSCIMError(t, e.do("PATCH", "/Users/"+id, okta, patchBody(strings.Join(ops, ","))), 400, "invalidValue")
}
