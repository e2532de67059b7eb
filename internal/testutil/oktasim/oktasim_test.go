package oktasim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flexbridge/flexbridge/internal/testutil/runscope"
)

const (
	scimToken = "scim-secret"
	apiToken  = "00okta-api-token"
	crudSuite = "../../../test/conformance/okta/Okta-SCIM-20-CRUD-Test.json"
)

// recorder is a minimal in-memory SCIM server that records what it is sent.
type recorder struct {
	mu    sync.Mutex
	users map[string]map[string]any
	order []string
	next  int
	reqs  []recorded
	// failWith makes the recorder answer every request of a method with this status.
	failWith map[string]int
	srv      *httptest.Server
}

type recorded struct {
	Method, URI string
	Header      http.Header
	Body        []byte
}

func newRecorder(t *testing.T) *recorder {
	f := &recorder{users: map[string]map[string]any{}, failWith: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *recorder) base() string { return f.srv.URL + "/scim/v2" }

func (f *recorder) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func (f *recorder) user(id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users[id]
}

func (f *recorder) add(u map[string]any) string {
	f.next++
	id := fmt.Sprintf("scim-%03d", f.next)
	u["id"] = id
	f.users[id] = u
	f.order = append(f.order, id)
	return id
}

var filterRE = regexp.MustCompile(`^userName eq "((?:[^"\\]|\\.)*)"$`)

func (f *recorder) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, recorded{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone(), Body: body})
	answer := func(status int, v any) {
		w.Header().Set("Content-Type", "application/scim+json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if r.Header.Get("Authorization") != "Bearer "+scimToken {
		answer(401, map[string]any{"detail": "bad token", "status": "401"})
		return
	}
	if st := f.failWith[r.Method]; st != 0 {
		answer(st, map[string]any{"detail": "injected failure", "status": fmt.Sprint(st)})
		return
	}
	id, hasID := strings.CutPrefix(r.URL.Path, "/scim/v2/Users/")
	var doc map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &doc); err != nil {
			answer(400, map[string]any{"detail": err.Error()})
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/scim/v2/Users":
		m := filterRE.FindStringSubmatch(r.URL.Query().Get("filter"))
		if m == nil {
			answer(400, map[string]any{"detail": "unsupported filter"})
			return
		}
		want := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(m[1])
		found := []any{}
		for _, id := range f.order {
			if un, _ := f.users[id]["userName"].(string); strings.EqualFold(un, want) {
				found = append(found, f.users[id])
			}
		}
		answer(200, map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
			"totalResults": len(found), "startIndex": 1, "itemsPerPage": len(found), "Resources": found})
	case r.Method == http.MethodPost && r.URL.Path == "/scim/v2/Users":
		delete(doc, "password")
		f.add(doc)
		answer(201, doc)
	case hasID && f.users[id] == nil:
		answer(404, map[string]any{"detail": "not found"})
	case hasID && r.Method == http.MethodGet:
		answer(200, f.users[id])
	case hasID && r.Method == http.MethodPut:
		doc["id"] = id
		f.users[id] = doc
		answer(200, doc)
	case hasID && r.Method == http.MethodPatch:
		ops, _ := doc["Operations"].([]any)
		for _, op := range ops {
			value, _ := op.(map[string]any)["value"].(map[string]any)
			for k, v := range value {
				f.users[id][k] = v
			}
		}
		answer(200, f.users[id])
	default:
		answer(405, map[string]any{"detail": "unsupported"})
	}
}

func newSim(t *testing.T, f *recorder, cfg Config) (*Sim, *httptest.Server) {
	t.Helper()
	cfg.SCIMBaseURL, cfg.SCIMToken, cfg.APIToken = f.base(), scimToken, apiToken
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

// call sends a management API request and decodes the JSON answer.
func call(t *testing.T, srv *httptest.Server, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if raw, ok := body.(string); ok {
		rd = strings.NewReader(raw)
	} else if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "SSWS "+apiToken)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s %s: non-JSON answer %d: %s", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, doc
}

func userBody(first, last, email string) map[string]any {
	return map[string]any{
		"profile": map[string]any{"firstName": first, "lastName": last, "email": email, "login": email,
			"title": "Engineer", "primaryPhone": "415.123.4567"},
		"credentials": map[string]any{"password": map[string]any{"value": "Kv7J2LEa"},
			"recovery_question": map[string]any{"question": "q?", "answer": "okta"}},
	}
}

func assignBodyFor(id, email, given, family string) map[string]any {
	return map[string]any{"id": id, "scope": "USER", "credentials": map[string]any{"userName": email},
		"profile": map[string]any{"familyName": family, "givenName": given, "emailType": "work", "email": email}}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return m
}

func jsonEqual(t *testing.T, what string, got []byte, want any) {
	t.Helper()
	w, _ := json.Marshal(want)
	if !reflect.DeepEqual(decode(t, got), decode(t, w)) {
		t.Errorf("%s:\n got  %s\n want %s", what, got, w)
	}
}

func methods(xs []Exchange) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.Method)
	}
	return out
}

func lastEvent(t *testing.T, sim *Sim, action string) Event {
	t.Helper()
	evs := sim.Events()
	if len(evs) == 0 || evs[len(evs)-1].Action != action {
		t.Fatalf("last event is not %s: %+v", action, evs)
	}
	return evs[len(evs)-1]
}

func TestOktaSimConfig(t *testing.T) {
	if _, err := New(Config{SCIMBaseURL: "not a url", APIToken: "x"}); err == nil {
		t.Error("a relative SCIMBaseURL was accepted")
	}
	if _, err := New(Config{SCIMBaseURL: "http://127.0.0.1:1/scim/v2"}); err == nil {
		t.Error("an empty APIToken was accepted")
	}
	sim, err := New(Config{SCIMBaseURL: "http://127.0.0.1:1/scim/v2", APIToken: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if id := sim.AppID(); len(id) != 20 || !strings.HasPrefix(id, "0oa") {
		t.Errorf("generated app id %q is not Okta-shaped", id)
	}
}

func TestOktaSimAuth(t *testing.T) {
	f := newRecorder(t)
	sim, srv := newSim(t, f, Config{})
	for _, auth := range []string{"", "SSWS wrong", "Bearer " + apiToken, apiToken} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/apps/"+sim.AppID(), nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || decode(t, data)["errorCode"] != "E0000011" {
			t.Errorf("Authorization %q: %d %s", auth, resp.StatusCode, data)
		}
	}
	status, app := call(t, srv, "GET", "/api/v1/apps/"+sim.AppID(), nil)
	if status != 200 || app["id"] != sim.AppID() || app["status"] != "ACTIVE" {
		t.Errorf("get app: %d %v", status, app)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d SCIM requests without any provisioning", n)
	}
}

func TestOktaSimErrors(t *testing.T) {
	f := newRecorder(t)
	sim, srv := newSim(t, f, Config{})
	app := "/api/v1/apps/" + sim.AppID()
	status, u := call(t, srv, "POST", "/api/v1/users?activate=true", userBody("A", "B", "a@example.com"))
	if status != 200 {
		t.Fatalf("create: %d %v", status, u)
	}
	noLogin := userBody("A", "B", "c@example.com")
	delete(noLogin["profile"].(map[string]any), "login")
	cases := []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"GET", "/api/v1/apps/0oanotthisone", nil, 404, "E0000007"},
		{"POST", "/api/v1/users", noLogin, 400, "E0000001"},
		{"POST", "/api/v1/users", userBody("X", "Y", "A@EXAMPLE.COM"), 400, "E0000001"}, // login taken
		{"POST", "/api/v1/users", `{"profile":`, 400, "E0000003"},
		{"PUT", "/api/v1/users/00unknown", userBody("A", "B", "z@example.com"), 404, "E0000007"},
		{"POST", app + "/users", assignBodyFor("00unknown", "a@example.com", "A", "B"), 404, "E0000007"},
		{"DELETE", app + "/users/" + u["id"].(string), nil, 404, "E0000007"}, // not assigned
		{"POST", "/api/v1/users/" + u["id"].(string) + "/lifecycle/activate", nil, 403, "E0000016"},
		{"GET", "/api/v1/users", nil, 405, "E0000022"},
		{"GET", "/api/v1/groups", nil, 404, "E0000007"},
		{"GET", "/elsewhere", nil, 404, "E0000007"},
	}
	for _, c := range cases {
		var body any = c.body
		status, doc := call(t, srv, c.method, c.path, body)
		if status != c.status || doc["errorCode"] != c.code || doc["errorSummary"] == "" {
			t.Errorf("%s %s: %d %v, want %d %s", c.method, c.path, status, doc, c.status, c.code)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d SCIM requests after failed calls only", n)
	}
}

// TestOktaSimLifecycle walks the CRUD suite's sequence through the management API and checks every
// SCIM request the sim sends.
func TestOktaSimLifecycle(t *testing.T) {
	f := newRecorder(t)
	sim, srv := newSim(t, f, Config{})
	app := "/api/v1/apps/" + sim.AppID()
	const email = "ada+test@atko.com"

	status, u := call(t, srv, "POST", "/api/v1/users?activate=true", userBody("Ada", "Lovelace", email))
	if status != 200 || u["status"] != StatusActive || u["profile"].(map[string]any)["login"] != email {
		t.Fatalf("create user: %d %v", status, u)
	}
	oktaID := u["id"].(string)
	if len(oktaID) != 20 || !strings.HasPrefix(oktaID, "00u") {
		t.Errorf("user id %q is not Okta-shaped", oktaID)
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("creating an unassigned user sent %d SCIM requests", n)
	}

	// Assign: look up, then create.
	status, au := call(t, srv, "POST", app+"/users", assignBodyFor(oktaID, email, "Ada", "Lovelace"))
	if status != 200 {
		t.Fatalf("assign: %d %v", status, au)
	}
	ev := lastEvent(t, sim, ActionAssign)
	if got := methods(ev.Exchanges); !slices.Equal(got, []string{"GET", "POST"}) {
		t.Fatalf("assign sent %v:\n%v", got, ev.Exchanges)
	}
	reqs := f.requests()
	if want := "/scim/v2/Users?filter=userName%20eq%20%22ada%2Btest%40atko.com%22&startIndex=1&count=100"; reqs[0].URI != want {
		t.Errorf("lookup URI %s, want %s", reqs[0].URI, want)
	}
	for i, r := range reqs {
		if r.Header.Get("Authorization") != "Bearer "+scimToken || r.Header.Get("Accept") != "application/scim+json" ||
			r.Header.Get("User-Agent") != UserAgent {
			t.Errorf("request %d headers %v", i, r.Header)
		}
	}
	if ct := reqs[1].Header.Get("Content-Type"); ct != "application/scim+json; charset=utf-8" {
		t.Errorf("create Content-Type %q", ct)
	}
	created := decode(t, reqs[1].Body)
	pw, _ := created["password"].(string)
	if len(pw) != 8 {
		t.Errorf("create password %q", pw)
	}
	delete(created, "password")
	want := map[string]any{
		"schemas":     []any{SchemaUser},
		"userName":    email,
		"name":        map[string]any{"givenName": "Ada", "familyName": "Lovelace"},
		"emails":      []any{map[string]any{"primary": true, "value": email, "type": "work"}},
		"displayName": "Ada Lovelace",
		"locale":      "en-US",
		"externalId":  oktaID,
		"groups":      []any{},
		"active":      true,
	}
	if !reflect.DeepEqual(created, want) {
		t.Errorf("create body\n got  %v\n want %v", created, want)
	}
	scimID := f.order[0]
	if au["externalId"] != scimID || au["syncState"] != SyncSynchronized || au["id"] != oktaID {
		t.Errorf("app user answer %v", au)
	}
	if a, ok := sim.Assignment(oktaID); !ok || a.ExternalID != scimID || a.UserName != email {
		t.Errorf("Assignment = %+v, %v", a, ok)
	}

	// Profile update: PUT the whole user.
	upd := userBody("Adaupdate", "Lovelace", email)
	delete(upd, "credentials")
	status, u = call(t, srv, "PUT", "/api/v1/users/"+oktaID, upd)
	if status != 200 || u["profile"].(map[string]any)["firstName"] != "Adaupdate" {
		t.Fatalf("update: %d %v", status, u)
	}
	if _, kept := u["profile"].(map[string]any)["nickName"]; kept {
		t.Error("PUT kept a property it did not send")
	}
	ev = lastEvent(t, sim, ActionUpdateUser)
	if got := methods(ev.Exchanges); !slices.Equal(got, []string{"PUT"}) {
		t.Fatalf("update sent %v", got)
	}
	if ev.Exchanges[0].URL != f.base()+"/Users/"+scimID {
		t.Errorf("PUT URL %s", ev.Exchanges[0].URL)
	}
	want["id"] = scimID
	want["name"] = map[string]any{"givenName": "Adaupdate", "familyName": "Lovelace"}
	want["displayName"] = "Adaupdate Lovelace"
	jsonEqual(t, "profile push", ev.Exchanges[0].RequestBody, want)

	// The same profile again: nothing to push.
	status, _ = call(t, srv, "PUT", "/api/v1/users/"+oktaID, upd)
	if ev := lastEvent(t, sim, ActionUpdateUser); status != 200 || len(ev.Exchanges) != 0 {
		t.Errorf("unchanged update: %d, sent %v", status, methods(ev.Exchanges))
	}

	// Deactivate: PATCH active false, and the assignment is gone.
	status, doc := call(t, srv, "POST", "/api/v1/users/"+oktaID+"/lifecycle/deactivate", nil)
	if status != 200 || len(doc) != 0 {
		t.Fatalf("deactivate: %d %v", status, doc)
	}
	ev = lastEvent(t, sim, ActionDeactivate)
	if got := methods(ev.Exchanges); !slices.Equal(got, []string{"PATCH"}) {
		t.Fatalf("deactivate sent %v", got)
	}
	deactivate := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`
	if string(ev.Exchanges[0].RequestBody) != deactivate {
		t.Errorf("deactivation body %s", ev.Exchanges[0].RequestBody)
	}
	if f.user(scimID)["active"] != false {
		t.Error("the SCIM user is still active")
	}
	if _, ok := sim.Assignment(oktaID); ok {
		t.Error("a deactivated user is still assigned")
	}
	if u, _ := sim.User(oktaID); u.Status != StatusDeprovisioned {
		t.Errorf("status %s after deactivate", u.Status)
	}
	if status, doc := call(t, srv, "POST", "/api/v1/users/"+oktaID+"/lifecycle/deactivate", nil); status != 400 {
		t.Errorf("second deactivate: %d %v", status, doc)
	}

	// Activate: no SCIM traffic (the user has no assignment any more).
	before := len(f.requests())
	status, doc = call(t, srv, "POST", "/api/v1/users/"+oktaID+"/lifecycle/activate", nil)
	if status != 200 || len(doc) != 0 || len(f.requests()) != before {
		t.Fatalf("activate: %d %v", status, doc)
	}
	if u, _ := sim.User(email); u.Status != StatusActive {
		t.Errorf("status %s after activate", u.Status)
	}

	// Reassign: the lookup finds the inactive user; reactivate it and push the profile.
	status, au = call(t, srv, "POST", app+"/users", assignBodyFor(oktaID, email, "Adaupdate", "Lovelace"))
	if status != 200 || au["externalId"] != scimID {
		t.Fatalf("reassign: %d %v", status, au)
	}
	ev = lastEvent(t, sim, ActionAssign)
	if got := methods(ev.Exchanges); !slices.Equal(got, []string{"GET", "PATCH", "PUT"}) {
		t.Fatalf("reassign sent %v", got)
	}
	if got := string(ev.Exchanges[1].RequestBody); got != strings.Replace(deactivate, "false", "true", 1) {
		t.Errorf("reactivation body %s", got)
	}
	jsonEqual(t, "reassign profile push", ev.Exchanges[2].RequestBody, want)
	if len(f.order) != 1 || f.user(scimID)["active"] != true {
		t.Errorf("SCIM users after reassign: %v", f.users)
	}

	// Unassign: PATCH active false, 204.
	req, _ := http.NewRequest("DELETE", srv.URL+app+"/users/"+oktaID, nil)
	req.Header.Set("Authorization", "SSWS "+apiToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("unassign: %d", resp.StatusCode)
	}
	ev = lastEvent(t, sim, ActionUnassign)
	if got := methods(ev.Exchanges); !slices.Equal(got, []string{"PATCH"}) || string(ev.Exchanges[0].RequestBody) != deactivate {
		t.Fatalf("unassign sent %v", ev.Exchanges)
	}
	if f.user(scimID)["active"] != false {
		t.Error("the SCIM user is active after unassignment")
	}
	if fl := sim.Failures(); len(fl) != 0 {
		t.Errorf("failures: %v", fl)
	}
	if n := len(sim.Exchanges()); n != 8 {
		t.Errorf("%d exchanges in all, want 8", n)
	}
}

func TestOktaSimLinksExistingUser(t *testing.T) {
	f := newRecorder(t)
	existing := f.add(map[string]any{"userName": "grace@example.com", "active": true})
	sim, srv := newSim(t, f, Config{})
	_, u := call(t, srv, "POST", "/api/v1/users", userBody("Grace", "Hopper", "grace@example.com"))
	status, au := call(t, srv, "POST", "/api/v1/apps/"+sim.AppID()+"/users", map[string]any{"id": u["id"], "scope": "USER"})
	if status != 200 || au["externalId"] != existing {
		t.Fatalf("assign: %d %v", status, au)
	}
	ev := lastEvent(t, sim, ActionAssign)
	if got := methods(ev.Exchanges); !slices.Equal(got, []string{"GET", "PUT"}) {
		t.Fatalf("assign of an existing active user sent %v", got)
	}
	// The app profile comes from the Okta profile when the assignment sends none.
	pushed := decode(t, ev.Exchanges[1].RequestBody)
	if pushed["id"] != existing || pushed["displayName"] != "Grace Hopper" || pushed["userName"] != "grace@example.com" {
		t.Errorf("profile push %v", pushed)
	}
	if len(f.order) != 1 {
		t.Error("a duplicate user was created")
	}
}

func TestOktaSimPushFailures(t *testing.T) {
	f := newRecorder(t)
	f.failWith["POST"] = 500
	sim, srv := newSim(t, f, Config{})
	_, u := call(t, srv, "POST", "/api/v1/users", userBody("A", "B", "a@example.com"))
	status, au := call(t, srv, "POST", "/api/v1/apps/"+sim.AppID()+"/users", assignBodyFor(u["id"].(string), "a@example.com", "A", "B"))
	if status != 200 || au["syncState"] != SyncError || au["externalId"] != nil {
		t.Fatalf("assign with a failing server: %d %v", status, au)
	}
	fl := sim.Failures()
	if len(fl) != 1 || fl[0].Method != "POST" || fl[0].Status != 500 || !strings.Contains(fl[0].Err, "500") {
		t.Fatalf("failures %v", fl)
	}
	if s := fl[0].String(); !strings.Contains(s, "injected failure") || !strings.Contains(s, `"userName":"a@example.com"`) {
		t.Errorf("exchange rendering lacks the bodies: %s", s)
	}

	// An unreachable server.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	sim2, err := New(Config{SCIMBaseURL: dead.URL + "/scim/v2", SCIMToken: scimToken, APIToken: apiToken})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(sim2)
	defer srv2.Close()
	_, u = call(t, srv2, "POST", "/api/v1/users", userBody("A", "B", "a@example.com"))
	status, au = call(t, srv2, "POST", "/api/v1/apps/"+sim2.AppID()+"/users", map[string]any{"id": u["id"]})
	if fl := sim2.Failures(); status != 200 || au["syncState"] != SyncError || len(fl) != 1 || !strings.Contains(fl[0].Err, "request failed") {
		t.Errorf("unreachable server: %d %v %v", status, au, fl)
	}

	// A lookup answer that is not a ListResponse.
	g := newRecorder(t)
	g.failWith["GET"] = 200 // answers {"detail":...,"status":"200"}
	sim3, srv3 := newSim(t, g, Config{})
	_, u = call(t, srv3, "POST", "/api/v1/users", userBody("A", "B", "a@example.com"))
	call(t, srv3, "POST", "/api/v1/apps/"+sim3.AppID()+"/users", map[string]any{"id": u["id"]})
	if fl := sim3.Failures(); len(fl) != 1 || !strings.Contains(fl[0].Err, "totalResults") {
		t.Errorf("malformed lookup: %v", fl)
	}
	if n := len(g.requests()); n != 1 {
		t.Errorf("the sim went on after a failed lookup: %d requests", n)
	}
}

func TestOktaSimFeatures(t *testing.T) {
	f := newRecorder(t)
	sim, srv := newSim(t, f, Config{Features: []string{FeaturePushNewUsers}})
	_, u := call(t, srv, "POST", "/api/v1/users", userBody("A", "B", "a@example.com"))
	id := u["id"].(string)
	call(t, srv, "POST", "/api/v1/apps/"+sim.AppID()+"/users", map[string]any{"id": id})
	call(t, srv, "PUT", "/api/v1/users/"+id, map[string]any{"profile": map[string]any{
		"firstName": "C", "lastName": "B", "email": "a@example.com", "login": "a@example.com"}})
	call(t, srv, "POST", "/api/v1/users/"+id+"/lifecycle/deactivate", nil)
	var got []string
	for _, r := range f.requests() {
		got = append(got, r.Method)
	}
	if !slices.Equal(got, []string{"GET", "POST"}) {
		t.Errorf("with PUSH_NEW_USERS only, the sim sent %v", got)
	}
	_, app := call(t, srv, "GET", "/api/v1/apps/"+sim.AppID(), nil)
	if fmt.Sprint(app["features"]) != "[PUSH_NEW_USERS]" {
		t.Errorf("app features %v", app["features"])
	}
}

// TestOktaSimCRUDSuite runs Okta's CRUD suite with the sim as Okta and the recorder
// as the SCIM server: every step passes, and the SCIM traffic is Okta's.
func TestOktaSimCRUDSuite(t *testing.T) {
	f := newRecorder(t)
	sim, srv := newSim(t, f, Config{})
	runscope.RunT(t, crudSuite, map[string]string{
		"oktaOrgUrl": srv.URL,
		"oktaToken":  apiToken,
		"oktaAppId":  sim.AppID(),
		"SCIMUrl":    f.base(),
		"SCIMAuth":   "Bearer " + scimToken,
	})
	var got []string
	for _, x := range sim.Exchanges() {
		got = append(got, x.Action+" "+x.Method)
	}
	want := []string{
		"app.assign GET", "app.assign POST",
		"user.update PUT",
		"user.deactivate PATCH",
		"app.assign GET", "app.assign PATCH", "app.assign PUT",
		"app.unassign PATCH",
	}
	if !slices.Equal(got, want) {
		t.Errorf("SCIM exchanges\n got  %q\n want %q", got, want)
	}
	var actions []string
	for _, e := range sim.Events() {
		actions = append(actions, e.Action)
	}
	if want := []string{ActionCreateUser, ActionAssign, ActionUpdateUser, ActionDeactivate, ActionActivate, ActionAssign, ActionUnassign}; !slices.Equal(actions, want) {
		t.Errorf("events %q, want %q", actions, want)
	}
	if fl := sim.Failures(); len(fl) != 0 {
		t.Errorf("failures %v", fl)
	}
	// The suite reads the SCIM server directly between management calls.
	var gets int
	for _, r := range f.requests() {
		if r.Method == "GET" && !strings.Contains(r.URI, "startIndex=1&count=100") {
			gets++
		}
	}
	if gets != 5 {
		t.Errorf("%d suite reads of the SCIM server, want 5", gets)
	}
}
