package scim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	filter "github.com/scim2/filter-parser/v2"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
)

// The direct path (direct.go, parse.go) must answer exactly as the library path
// does. TestDirectMatchesLibrary sends the same requests (the fuzz seed corpora, shaped as the
// fuzz targets shape them, and the cases below) to two servers over two stores with the same
// clock, one serving Users directly and one through the library, and compares status, headers
// and body byte for byte (ids mapped from one store to the other).

type diffSide struct {
	h     http.Handler
	store directory.Store
	auth  string
	ids   map[string]string // $U1, $UID, ... -> id
}

func newDiffSide(t testing.TB, direct bool) *diffSide {
	t.Helper()
	ctx := context.Background()
	var tick atomic.Int64
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Second) }
	st, err := directory.Open(ctx, directory.Options{Driver: directory.DriverSQLite,
		DSN: filepath.Join(t.TempDir(), "fb.db"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	secret, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateToken(ctx, "diff", hash); err != nil {
		t.Fatal(err)
	}
	h, s, err := newHandler(Options{Store: st, Logger: zap.NewNop(), PublicURL: fuzzPublicURL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !direct {
		s.userType = nil
	}
	return &diffSide{h: h, store: st, auth: "Bearer " + secret, ids: map[string]string{}}
}

type diffAnswer struct {
	status int
	header http.Header
	body   string
}

func (d *diffSide) send(method, target string, body []byte, hdr ...string) diffAnswer {
	for k, v := range d.ids {
		target = strings.ReplaceAll(target, k, v)
		body = []byte(strings.ReplaceAll(string(body), k, v))
	}
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req := httptest.NewRequest(method, target, rd)
	req.Header.Set("Authorization", d.auth)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	d.h.ServeHTTP(rec, req)
	a := diffAnswer{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	for k, v := range d.ids { // ids back to their names, so both sides compare
		a.body = strings.ReplaceAll(a.body, v, k)
		for _, name := range []string{"Location", "Etag"} {
			if h := a.header.Get(name); h != "" {
				a.header.Set(name, strings.ReplaceAll(h, v, k))
			}
		}
	}
	return a
}

type diffEnv struct {
	t            testing.TB
	direct, lib  *diffSide
	n            int
	createdCount int
}

func newDiffEnv(t testing.TB) *diffEnv {
	e := &diffEnv{t: t, direct: newDiffSide(t, true), lib: newDiffSide(t, false)}
	for i, name := range []string{"one", "two", "three"} {
		e.fixture(fmt.Sprintf("$U%d", i+1), "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],`+
			`"userName":"%s@example.com","name":{"givenName":"%s","familyName":"Fixture"},`+
			`"emails":[{"primary":true,"value":"%s@example.com","type":"work"}],"displayName":"%s Fixture",`+
			`"externalId":"ext-%s","active":true}`, name, name, name, name, name))
	}
	e.fixture("$UID", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",`+
		`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],`+
		`"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Runscope123Abc@atko.com","active":true,`+
		`"name":{"givenName":"Grace","familyName":"Hopper","formatted":"Grace Hopper"},"displayName":"Grace Hopper",`+
		`"title":"Rear Admiral","nickName":"Amazing","locale":"en-US",`+
		`"emails":[{"primary":true,"value":"grace@example.com","type":"work"},{"value":"g@home.example","type":"home"}],`+
		`"phoneNumbers":[{"value":"+15555550100","type":"work"}],"roles":[],`+
		`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","employeeNumber":"42",`+
		`"costCenter":"CC1","manager":{"value":"$U1"}}}`)
	e.fixture("$GID", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Flex Supervisors",`+
		`"externalId":"grp-1","members":[{"value":"$U1","display":"one@example.com"},{"value":"$U2"}]}`)
	return e
}

// fixture creates the same resource on both sides and names its ids; the answers are compared
// once the ids are named.
func (e *diffEnv) fixture(name, endpoint, body string) {
	e.t.Helper()
	var answers []diffAnswer
	for _, d := range []*diffSide{e.direct, e.lib} {
		a := d.send(http.MethodPost, BasePath+endpoint, []byte(body))
		if a.status != http.StatusCreated {
			e.t.Fatalf("fixture %s: %d %s", name, a.status, a.body)
		}
		var id string
		if endpoint == "/Users" {
			us, _, err := d.store.ListUsers(context.Background(), directory.UserQuery{})
			if err != nil || len(us) == 0 {
				e.t.Fatal(err)
			}
			id = us[len(us)-1].ID
		} else {
			gs, _, err := d.store.ListGroups(context.Background(), directory.GroupQuery{})
			if err != nil || len(gs) == 0 {
				e.t.Fatal(err)
			}
			id = gs[len(gs)-1].ID
		}
		d.ids[name] = id
		a.body = strings.ReplaceAll(a.body, id, name)
		a.header.Set("Location", strings.ReplaceAll(a.header.Get("Location"), id, name))
		answers = append(answers, a)
	}
	if endpoint == "/Users" && (answers[0].body != answers[1].body || !sameHeaders(answers[0].header, answers[1].header)) {
		e.t.Errorf("fixture %s:\n direct:  %v %s\n library: %v %s", name, answers[0].header, answers[0].body,
			answers[1].header, answers[1].body)
	}
}

// compare sends one request to both sides and fails when the answers differ. A created user is
// named and kept so that later answers (lists) still compare.
func (e *diffEnv) compare(method, target string, body []byte, hdr ...string) diffAnswer {
	e.t.Helper()
	e.n++
	a, b := e.direct.send(method, target, body, hdr...), e.lib.send(method, target, body, hdr...)
	if a.status == http.StatusCreated && b.status == http.StatusCreated && strings.HasSuffix(target, "/Users") {
		e.createdCount++
		name := "$C" + strconv.Itoa(e.createdCount) + "$"
		for _, pair := range []struct {
			d *diffSide
			a *diffAnswer
		}{{e.direct, &a}, {e.lib, &b}} {
			us, _, err := pair.d.store.ListUsers(context.Background(), directory.UserQuery{})
			if err != nil {
				e.t.Fatal(err)
			}
			id := us[len(us)-1].ID
			pair.d.ids[name] = id
			pair.a.body = strings.ReplaceAll(pair.a.body, id, name)
			pair.a.header.Set("Location", strings.ReplaceAll(pair.a.header.Get("Location"), id, name))
		}
	}
	if a.status != b.status || a.body != b.body || !sameHeaders(a.header, b.header) {
		e.t.Errorf("%s %s %.300q:\n direct:  %d %v %s\n library: %d %v %s", method, target, body,
			a.status, a.header, a.body, b.status, b.header, b.body)
	}
	e.answerIsStored(method, target, a)
	return a
}

// answerIsStored checks that a successful write to Users answers with the user exactly as a
// GET of it then reads it from the store: the write's answer is built from the document it
// stored, without reading it back.
func (e *diffEnv) answerIsStored(method, target string, a diffAnswer) {
	e.t.Helper()
	if method == http.MethodGet || method == http.MethodDelete || (a.status != http.StatusOK && a.status != http.StatusCreated) ||
		!strings.Contains(target, "/Users") {
		return
	}
	loc := target
	if a.status == http.StatusCreated {
		loc = strings.TrimPrefix(a.header.Get("Location"), fuzzPublicURL)
	}
	got := e.direct.send(http.MethodGet, loc, nil)
	e.lib.send(http.MethodGet, loc, nil) // keeps the two sides' clocks in step
	if got.status != http.StatusOK || got.body != a.body || got.header.Get("Etag") != a.header.Get("Etag") {
		e.t.Errorf("%s %s answered\n %s %s\nbut GET %s reads\n %d %s %s", method, target, a.header.Get("Etag"), a.body,
			loc, got.status, got.header.Get("Etag"), got.body)
	}
}

func sameHeaders(a, b http.Header) bool {
	for _, k := range []string{"Content-Type", "Etag", "Location", "Www-Authenticate", "Allow"} {
		if !reflect.DeepEqual(a.Values(k), b.Values(k)) {
			return false
		}
	}
	return true
}

// readCorpus reads the seed corpus of a fuzz target: one []any per file, in file name order.
func readCorpus(t testing.TB, target string) [][]any {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	sort.Strings(names)
	var out [][]any
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var vals []any
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "go test fuzz"):
			case strings.HasPrefix(line, "[]byte(") && strings.HasSuffix(line, ")"):
				s, err := strconv.Unquote(line[len("[]byte(") : len(line)-1])
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				vals = append(vals, []byte(s))
			case strings.HasPrefix(line, "string(") && strings.HasSuffix(line, ")"):
				s, err := strconv.Unquote(line[len("string(") : len(line)-1])
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				vals = append(vals, s)
			default:
				t.Fatalf("%s: unexpected corpus line %q", name, line)
			}
		}
		f.Close()
		out = append(out, vals)
	}
	return out
}

func TestDirectMatchesLibrary(t *testing.T) {
	e := newDiffEnv(t)
	users := BasePath + "/Users"
	uid := users + "/$UID"

	// Reads and lists.
	for _, target := range []string{
		users, users + "?count=2", users + "?startIndex=2&count=1", users + "?count=abc", users + "?count=-1&startIndex=-5",
		users + "?count=0", users + "?count=500", users + "?count=999999999999999999999", users + "?startIndex=%zz", users + "?filter=",
		users + "?attributes=userName", users + "?excludedAttributes=emails,name.givenName",
		users + "?filter=" + url.QueryEscape(`userName eq "one@example.com"`),
		users + "?filter=" + url.QueryEscape(`userName eq "one@example.com"`) + "&attributes=emails.value",
		users + "?filter=" + url.QueryEscape(`userName eq "nobody@example.com"`),
		users + "?filter=" + url.QueryEscape(`externalId eq "ext-two"`),
		users + "?filter=" + url.QueryEscape(`id eq "$U3"`) + "&count=0",
		users + "?filter=" + url.QueryEscape(`emails[type eq "work"].value eq "grace@example.com"`),
		uid, uid + "?attributes=userName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
		uid + "?excludedAttributes=meta,id,emails.type", users + "/nope", users + "/", users + "/%25zz", users + "/a%2Fb",
		users + "/$U1/extra", BasePath + "/v2/Users",
	} {
		e.compare(http.MethodGet, target, nil)
	}

	// Writes beyond the corpora.
	e.compare(http.MethodPost, users, []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"one@example.com"}`))
	e.compare(http.MethodPost, users, []byte(`{"userName":"new@example.com","externalId":"x","groups":[{"value":"g"}],"Resources":[{"meta":{"location":"x"}}]}`))
	e.compare(http.MethodPost, users, []byte(`{"userName":"mgr@example.com","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"","displayName":"Maria Garcia"}}}`))
	e.compare(http.MethodPost, users, []byte(`{"userName":"ext@example.com","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"x"}`))
	e.compare(http.MethodPost, users, []byte(`{"userName":5}`))
	e.compare(http.MethodPost, users, []byte(`null`))
	e.compare(http.MethodPost, users, []byte(`[]`))
	okta := func(active bool) []byte {
		return []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":` +
			strconv.FormatBool(active) + `}}]}`)
	}
	e.compare(http.MethodPatch, uid, okta(false))
	e.compare(http.MethodPatch, uid, okta(true), "If-Match", `W/"1"`)
	e.compare(http.MethodPatch, users+"/nope", okta(true))
	e.compare(http.MethodPatch, users+"/%25zz", okta(true))
	e.compare(http.MethodPatch, uid, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}`))
	e.compare(http.MethodPatch, uid, []byte(`{"Operations":[{"op":"replace","value":{"active":true}}]}`))
	e.compare(http.MethodPatch, uid, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"id":"x","ID":"y"}}]}`))
	e.compare(http.MethodPatch, uid, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"emails[type eq \"work\"].value","value":"w@example.com"},{"op":"replace","path":"name.givenName","value":"G"},{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]}`))
	e.compare(http.MethodPatch, uid, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","value":{"name.familyName":"H","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter":"C2","displayName":"x"}}]}`))
	e.compare(http.MethodPatch, uid, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"nope":1}}]}`))
	e.compare(http.MethodPatch, uid, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"nope[x eq 1]","value":1}]}`))
	e.compare(http.MethodPatch, uid, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":5,"value":1}]}`))
	for _, ops := range directPatchCases {
		e.compare(http.MethodPatch, uid, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":`+ops+`}`))
		e.compare(http.MethodGet, uid, nil)
	}
	for _, body := range []string{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:patchop"],"Operations":[{"op":"add","path":"title","value":"x"}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"operations":[{"op":"add","path":"title","value":"y"}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":null}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":{"op":"add"}}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp","urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"title","value":"z"}]}`,
		`{"schemas":"urn:ietf:params:scim:api:messages:2.0:PatchOp","Operations":[{"op":"add","path":"title","value":"z"}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"title","value":"z"}],"extra":1}`,
	} {
		e.compare(http.MethodPatch, uid, []byte(body))
	}
	e.compare(http.MethodPatch, users+"/$U2", okta(false))
	e.compare(http.MethodPatch, users+"/$U2/", okta(false))
	e.compare(http.MethodPatch, users+"/", okta(false))
	e.compare(http.MethodPatch, BasePath+"/v2/Users/$U2", okta(true))
	e.compare(http.MethodGet, uid, nil)

	// The fuzz corpora, as the fuzz targets send them.
	for _, in := range readCorpus(t, "FuzzFilter") {
		q := "filter=" + url.QueryEscape(in[0].(string))
		if extra := in[1].(string); extra != "" {
			q += "&" + extra
		}
		e.compare(http.MethodGet, users+"?"+q, nil)
	}
	for _, in := range readCorpus(t, "FuzzPatch") {
		body := in[0].([]byte)
		if len(body) == 0 {
			body = patchOperation(in[1].(string), in[2].(string), in[3].([]byte))
		}
		e.compare(http.MethodPatch, uid, body)
		e.compare(http.MethodGet, uid, nil)
	}
	for _, in := range readCorpus(t, "FuzzDecode") {
		body := in[0].([]byte)
		if len(body) == 0 {
			body = withAttribute(baseUser, in[1].(string), in[2].([]byte))
		}
		e.compare(http.MethodPost, users, body)
		e.compare(http.MethodPut, uid, body)
	}
	e.compare(http.MethodGet, users, nil)
	t.Logf("%d requests compared, %d users created", e.n, e.createdCount)
}

// FuzzParseFilter checks that parseFilter (parse.go) returns what the grammar's parser
// returns, for every input it answers itself.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{`userName eq "x"`, `userName EQ "Runscope123Abc@atko.com"`, `name.familyName sw "O'"`,
		`userName eq "a\"b"`, `userName eq "é ü"`, `userName  eq "x"`, `userName eq "x" `, `a-b_c9 ne ""`, `$ref eq "x"`,
		`urn:x:y eq "z"`, `a.b.c eq "x"`, `a.1 eq "x"`, `userName pr`, `x eq "\x7f"`, `x eq "` + "\xff" + `"`, `x gt "a"`,
		`emails[type eq "work"]`, `userName eq "x" and active eq true`, `9a eq "x"`, `userName eq "tab	"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, ok := simpleFilter(s)
		if !ok {
			return
		}
		want, err := filter.ParseFilter([]byte(s))
		if err != nil {
			t.Fatalf("%q: the parser refuses it (%v), simpleFilter gives %#v", s, err, e)
		}
		if !reflect.DeepEqual(e, want) {
			t.Fatalf("%q: simpleFilter gives %#v, the parser %#v", s, e, want)
		}
	})
}

// FuzzParsePath checks that parsePath returns what filter.ParsePath returns.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"active", "name.givenName", "name.", ".x", "a-b", "a_b9", "$ref", "9a", "a.b.c",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "emails[type eq \"work\"].value",
		"emails[type eq \"work\"]", "", " active", "active ", "a:b", "members[value eq \"x\"]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for range 2 { // the second time from the cache
			got, gotErr := parsePath(s)
			want, wantErr := filter.ParsePath([]byte(s))
			if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: parsePath gives %#v, %v; the parser %#v, %v", s, got, gotErr, want, wantErr)
			}
		}
	})
}

// directPatchCases are PATCH operation lists (the "Operations" member) for the comparison:
// the shapes IdPs send and the edges of the library's operation checks.
var directPatchCases = []string{
	`[{"op":"Replace","path":"active","value":"False"}]`,
	`[{"op":"replace","path":"active","value":"maybe"}]`,
	`[{"op":"replace","path":"active","value":true}]`,
	`[{"op":"ADD","path":"title","value":"Lead"}]`,
	`[{"op":"add","path":"title","value":null}]`,
	`[{"op":"add","path":"title"}]`,
	`[{"op":"replace","path":"title","value":5}]`,
	`[{"op":"replace","path":"","value":{"title":"T2"}}]`,
	`[{"op":"replace","path":" title","value":"x"}]`,
	`[{"op":"replace","path":"title ","value":"x"}]`,
	`[{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName","value":"Gr"}]`,
	`[{"op":"replace","path":"URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:name.givenName","value":"Gr"}]`,
	`[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value","value":"$U2"}]`,
	`[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"$U3","id":"x"}}]`,
	`[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope","value":"x"}]`,
	`[{"op":"replace","path":"urn:x:y:department","value":"x"}]`,
	`[{"op":"add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Ops","name.middleName":"M"}}]`,
	`[{"op":"add","value":{"urn:x:department":"Ops"}}]`,
	`[{"op":"add","value":{"9a":"x"}}]`,
	`[{"op":"add","value":{"":"x","title":"E"}}]`,
	`[{"op":"add","value":{"id":"x","":"y","title":"F"}}]`,
	`[{"op":"add","value":{"emails[type eq \"work\"].value":"v@example.com"}}]`,
	`[{"op":"add","value":"title"}]`,
	`[{"op":"add","value":["title"]}]`,
	`[{"op":"replace","path":"emails[type eq \"work\"].value","value":"w2@example.com"}]`,
	`[{"op":"replace","path":"emails[type eq \"work\"]","value":{"value":"w3@example.com","type":"work","primary":true}}]`,
	`[{"op":"replace","path":"emails[type eq \"work\"]","value":[{"value":"w4@example.com","type":"work"}]}]`,
	`[{"op":"add","path":"emails","value":{"value":"x@example.com","type":"other"}}]`,
	`[{"op":"add","path":"emails","value":[]}]`,
	`[{"op":"add","path":"emails","value":[{"value":"y@example.com"},{"value":5}]}]`,
	`[{"op":"remove","path":"emails[type eq \"other\"]"}]`,
	`[{"op":"remove","path":"emails","value":[{"value":"y@example.com"}]}]`,
	`[{"op":"remove","path":"emails","value":{"value":"x@example.com"}}]`,
	`[{"op":"remove","path":"emails[nope eq \"x\"].value"}]`,
	`[{"op":"replace","path":"emails[nope eq \"x\"].value","value":"x"}]`,
	`[{"op":"replace","path":"emails[type eq \"work\"].nope","value":"x"}]`,
	`[{"op":"replace","path":"phoneNumbers[type eq 5].value","value":"+1"}]`,
	`[{"op":"replace","path":"name[givenName eq \"Grace\"].familyName","value":"H2"}]`,
	`[{"op":"remove","path":"name[givenName eq \"Gr\"]"}]`,
	`[{"op":"replace","path":"name.nope","value":"x"}]`,
	`[{"op":"replace","path":"nickName[value eq \"N\"]","value":"y"}]`,
	`[{"op":"remove","path":"nickName[value eq \"x\"]"}]`,
	`[{"op":"remove","path":"name[nope eq \"x\"]"}]`,
	`[{"op":"replace","path":"title.nope","value":"x"}]`,
	`[{"op":"replace","path":"externalId","value":"ext-new"}]`,
	`[{"op":"add","path":"roles","value":{"value":"r1","primary":"True"}}]`,
	`[{"op":"add","path":"x509Certificates","value":[{"value":"not base64!"}]}]`,
	`[{"op":"add","path":"x509Certificates","value":[{"value":"aGVsbG8="}]}]`,
	`[{"op":"remove","path":"x509Certificates"}]`,
	`[{"op":"add","path":"userName","value":"Runscope123Abc@atko.com"},{"op":"add","path":"nickName","value":"N"}]`,
	`[{"op":"add","path":"nickName","value":"N2"},{"op":"add","path":"nope","value":"x"}]`,
	`[{"op":"add","path":"nickName","value":"N3"},{"op":"replace","path":"active","value":"no"}]`,
	`[{"op":"move","path":"nickName","value":"x"}]`,
	`[{"op":5,"path":"nickName","value":"x"}]`,
	`[{"op":"add","path":["nickName"],"value":"x"}]`,
	`[5]`,
	`[null]`,
	`[{}]`,
	`[{"op":"remove","path":"nickName","value":"N3"}]`,
	`[{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]`,
	`[{"op":"replace","path":"userName","value":""}]`,
	`[{"op":"replace","value":{"active":false,"userName":"Runscope123Abc@atko.com"}}]`,
	`[{"op":"replace","value":{"active":true}}]`,
}

// FuzzDirectPatch sends one PATCH (shaped as FuzzPatch shapes it) to both servers and
// compares the answers, then the user's state, as TestDirectMatchesLibrary does.
func FuzzDirectPatch(f *testing.F) {
	for _, in := range readCorpus(f, "FuzzPatch") {
		f.Add(in[0].([]byte), in[1].(string), in[2].(string), in[3].([]byte))
	}
	e := newDiffEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, op, path string, value []byte) {
		e.t = t
		if len(body) == 0 {
			body = patchOperation(op, path, value)
		}
		e.compare(http.MethodPatch, BasePath+"/Users/$UID", body)
		e.compare(http.MethodGet, BasePath+"/Users/$UID", nil)
	})
}
