package runscope

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file is a map-backed fake of what the Okta suites talk to: a SCIM 2.0
// server under /scim/v2 (bearer token) and, for the CRUD suite, the few Okta
// management API calls under /api/v1 (SSWS token), which "provision" into the
// same store the way Okta would push to a SCIM app.

const (
	fakeSCIMToken = "fake-scim-token"
	fakeOktaToken = "fake-okta-token"
	fakeAppID     = "0oafakeapp"
	seededUserID  = "seeded-user-1"

	schemaUser  = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaList  = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	schemaError = "urn:ietf:params:scim:api:messages:2.0:Error"
)

// mutation breaks the fake in one specific way.
type mutation struct {
	unknownUserOK     bool          // GET /Users/{unknown} answers 200 instead of 404
	nullResources     bool          // list responses carry "Resources": null
	omitTotalResults  bool          // list responses lack totalResults
	ignoreFilter      bool          // filter ignored: every user listed
	duplicateCreated  bool          // POST of an existing userName answers 201, not 409
	plainUnauthorized bool          // 401 with a text/plain body
	groupsDelay       time.Duration // GET /Groups answers slowly
	groupsNotJSON     bool          // GET /Groups answers 200 with an HTML body
	userNameMangled   bool          // created users come back with userName lower-cased + "x"
	dropProfilePush   bool          // Okta profile updates are not pushed to SCIM
	dropDeactivate    bool          // Okta lifecycle/deactivate is not pushed to SCIM
}

type fakeUser struct {
	ID, UserName, GivenName, FamilyName, Email string
	Active                                     bool
}

type oktaUser struct {
	ID, FirstName, LastName, Email string
	Status                         string
	SCIMID                         string // provisioned SCIM user, "" if never
	Assigned                       bool
}

type fakeServer struct {
	mut mutation

	mu     sync.Mutex
	users  map[string]*fakeUser
	order  []string
	okta   map[string]*oktaUser
	nextID int
	srv    *httptest.Server
	hits   map[string]int // "METHOD pattern" -> count
}

func newFakeServer(t *testing.T, m mutation) *fakeServer {
	t.Helper()
	f := &fakeServer{
		mut:   m,
		users: map[string]*fakeUser{},
		okta:  map[string]*oktaUser{},
		hits:  map[string]int{},
	}
	// The SPEC suite's first step needs an existing user.
	f.addUser(&fakeUser{ID: seededUserID, UserName: "seeded@example.com", GivenName: "Seeded",
		FamilyName: "User", Email: "seeded@example.com", Active: true})

	mux := http.NewServeMux()
	scim := func(pattern string, h http.HandlerFunc) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(method+" /scim/v2"+path, f.count(pattern, f.scimAuth(h)))
	}
	scim("GET /Users", f.listUsers)
	scim("POST /Users", f.createUser)
	scim("GET /Users/{id}", f.getUser)
	scim("GET /Groups", f.listGroups)
	okta := func(pattern string, h http.HandlerFunc) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(method+" /api/v1"+path, f.count(pattern, f.oktaAuth(h)))
	}
	okta("GET /apps/{app}", f.oktaGetApp)
	okta("POST /users", f.oktaCreateUser)
	okta("PUT /users/{uid}", f.oktaUpdateUser)
	okta("POST /users/{uid}/lifecycle/{op}", f.oktaLifecycle)
	okta("POST /apps/{app}/users", f.oktaAssign)
	okta("DELETE /apps/{app}/users/{uid}", f.oktaUnassign)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fake: unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) specVars() map[string]string {
	return map[string]string{
		"SCIMBaseURL": f.srv.URL + "/scim/v2",
		"auth":        "Bearer " + fakeSCIMToken,
	}
}

func (f *fakeServer) crudVars() map[string]string {
	return map[string]string{
		"SCIMUrl":    f.srv.URL + "/scim/v2",
		"SCIMAuth":   "Bearer " + fakeSCIMToken,
		"oktaOrgUrl": f.srv.URL,
		"oktaAppId":  fakeAppID,
		"oktaToken":  fakeOktaToken,
	}
}

func (f *fakeServer) count(pattern string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits[pattern]++
		f.mu.Unlock()
		h(w, r)
	}
}

func (f *fakeServer) hitCount(pattern string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[pattern]
}

func (f *fakeServer) addUser(u *fakeUser) {
	f.users[u.ID] = u
	f.order = append(f.order, u.ID)
}

func (f *fakeServer) newID(prefix string) string {
	f.nextID++
	return fmt.Sprintf("%s%04d", prefix, f.nextID)
}

func baseURL(r *http.Request) string { return "http://" + r.Host }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func scimError(w http.ResponseWriter, status int, scimType, detail string) {
	body := map[string]any{
		"schemas": []string{schemaError},
		"status":  strconv.Itoa(status),
		"detail":  detail,
	}
	if scimType != "" {
		body["scimType"] = scimType
	}
	writeJSON(w, status, body)
}

func (f *fakeServer) scimAuth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fakeSCIMToken {
			if f.mut.plainUnauthorized {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte("unauthorized\n"))
				return
			}
			scimError(w, http.StatusUnauthorized, "", "missing or invalid bearer token")
			return
		}
		h(w, r)
	}
}

func (u *fakeUser) json(base string) map[string]any {
	return map[string]any{
		"schemas":     []string{schemaUser},
		"id":          u.ID,
		"userName":    u.UserName,
		"name":        map[string]any{"givenName": u.GivenName, "familyName": u.FamilyName},
		"displayName": u.GivenName + " " + u.FamilyName,
		"emails":      []any{map[string]any{"value": u.Email, "type": "work", "primary": true}},
		"active":      u.Active,
		"meta":        map[string]any{"resourceType": "User", "location": base + "/scim/v2/Users/" + u.ID},
	}
}

var userNameFilter = regexp.MustCompile(`^userName eq "([^"]*)"$`)

func (f *fakeServer) listResponse(w http.ResponseWriter, total, startIndex int, resources []any) {
	body := map[string]any{
		"schemas":      []string{schemaList},
		"totalResults": total,
		"startIndex":   startIndex,
		"itemsPerPage": len(resources),
		"Resources":    resources,
	}
	if f.mut.nullResources {
		body["Resources"] = nil
	}
	if f.mut.omitTotalResults {
		delete(body, "totalResults")
	}
	writeJSON(w, http.StatusOK, body)
}

func (f *fakeServer) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	startIndex, count := 1, -1
	if v := q.Get("startIndex"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			scimError(w, http.StatusBadRequest, "invalidValue", "bad startIndex")
			return
		}
		startIndex = max(n, 1)
	}
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			scimError(w, http.StatusBadRequest, "invalidValue", "bad count")
			return
		}
		count = max(n, 0)
	}
	var want *string
	if filter := q.Get("filter"); filter != "" && !f.mut.ignoreFilter {
		m := userNameFilter.FindStringSubmatch(filter)
		if m == nil {
			scimError(w, http.StatusBadRequest, "invalidFilter", "unsupported filter")
			return
		}
		want = &m[1]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var matched []*fakeUser
	for _, id := range f.order {
		u := f.users[id]
		// userName is caseExact=false (RFC 7643 section 4.1.1).
		if want == nil || strings.EqualFold(u.UserName, *want) {
			matched = append(matched, u)
		}
	}
	page := []any{}
	for i := startIndex - 1; i < len(matched) && (count < 0 || len(page) < count); i++ {
		page = append(page, matched[i].json(baseURL(r)))
	}
	f.listResponse(w, len(matched), startIndex, page)
}

func (f *fakeServer) getUser(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[r.PathValue("id")]
	if !ok {
		status := http.StatusNotFound
		if f.mut.unknownUserOK {
			status = http.StatusOK
		}
		scimError(w, status, "", "User "+r.PathValue("id")+" not found")
		return
	}
	writeJSON(w, http.StatusOK, u.json(baseURL(r)))
}

func (f *fakeServer) createUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserName string `json:"userName"`
		Name     struct {
			GivenName  string `json:"givenName"`
			FamilyName string `json:"familyName"`
		} `json:"name"`
		Emails []struct {
			Value string `json:"value"`
		} `json:"emails"`
		Active *bool `json:"active"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.UserName == "" {
		scimError(w, http.StatusBadRequest, "invalidSyntax", "bad user")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if strings.EqualFold(u.UserName, in.UserName) && !f.mut.duplicateCreated {
			scimError(w, http.StatusConflict, "uniqueness", "userName already exists")
			return
		}
	}
	u := &fakeUser{ID: f.newID("scim-"), UserName: in.UserName, GivenName: in.Name.GivenName,
		FamilyName: in.Name.FamilyName, Active: in.Active == nil || *in.Active}
	if f.mut.userNameMangled {
		u.UserName = strings.ToLower(u.UserName) + "x"
	}
	if len(in.Emails) > 0 {
		u.Email = in.Emails[0].Value
	}
	f.addUser(u)
	w.Header().Set("Location", baseURL(r)+"/scim/v2/Users/"+u.ID)
	writeJSON(w, http.StatusCreated, u.json(baseURL(r)))
}

func (f *fakeServer) listGroups(w http.ResponseWriter, r *http.Request) {
	if f.mut.groupsDelay > 0 {
		time.Sleep(f.mut.groupsDelay)
	}
	if f.mut.groupsNotJSON {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>groups</html>"))
		return
	}
	f.listResponse(w, 0, 1, []any{})
}

// --- Okta management API (just what the CRUD suite calls) ---

func (f *fakeServer) oktaAuth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "SSWS "+fakeOktaToken {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errorCode":"E0000011","errorSummary":"Invalid token provided"}`))
			return
		}
		if app := r.PathValue("app"); app != "" && app != fakeAppID {
			http.Error(w, `{"errorCode":"E0000007"}`, http.StatusNotFound)
			return
		}
		h(w, r)
	}
}

func oktaJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeServer) oktaGetApp(w http.ResponseWriter, r *http.Request) {
	oktaJSON(w, http.StatusOK, map[string]any{"id": fakeAppID, "name": "fake_scim_app", "status": "ACTIVE"})
}

type oktaProfile struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Email     string `json:"email"`
}

func (f *fakeServer) oktaCreateUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Profile oktaProfile `json:"profile"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || r.URL.Query().Get("activate") != "true" {
		oktaJSON(w, http.StatusBadRequest, map[string]any{"errorCode": "E0000001"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := &oktaUser{ID: f.newID("00u"), FirstName: in.Profile.FirstName, LastName: in.Profile.LastName,
		Email: in.Profile.Email, Status: "ACTIVE"}
	f.okta[u.ID] = u
	oktaJSON(w, http.StatusOK, map[string]any{"id": u.ID, "status": u.Status, "profile": in.Profile})
}

func (f *fakeServer) oktaUser(w http.ResponseWriter, id string) *oktaUser {
	u, ok := f.okta[id]
	if !ok {
		oktaJSON(w, http.StatusNotFound, map[string]any{"errorCode": "E0000007"})
	}
	return u
}

func (f *fakeServer) oktaUpdateUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Profile oktaProfile `json:"profile"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		oktaJSON(w, http.StatusBadRequest, map[string]any{"errorCode": "E0000001"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.oktaUser(w, r.PathValue("uid"))
	if u == nil {
		return
	}
	u.FirstName, u.LastName, u.Email = in.Profile.FirstName, in.Profile.LastName, in.Profile.Email
	if s := f.users[u.SCIMID]; s != nil && u.Assigned && !f.mut.dropProfilePush {
		s.GivenName, s.FamilyName = u.FirstName, u.LastName
	}
	oktaJSON(w, http.StatusOK, map[string]any{"id": u.ID, "status": u.Status, "profile": in.Profile})
}

func (f *fakeServer) oktaLifecycle(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.oktaUser(w, r.PathValue("uid"))
	if u == nil {
		return
	}
	switch r.PathValue("op") {
	case "deactivate":
		// Deactivating an Okta user unassigns it from its apps, which
		// deactivates the SCIM user.
		u.Status = "DEPROVISIONED"
		if s := f.users[u.SCIMID]; s != nil && u.Assigned && !f.mut.dropDeactivate {
			s.Active = false
		}
		u.Assigned = false
	case "activate":
		u.Status = "ACTIVE"
	default:
		oktaJSON(w, http.StatusBadRequest, map[string]any{"errorCode": "E0000001"})
		return
	}
	oktaJSON(w, http.StatusOK, map[string]any{})
}

func (f *fakeServer) oktaAssign(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID          string `json:"id"`
		Scope       string `json:"scope"`
		Credentials struct {
			UserName string `json:"userName"`
		} `json:"credentials"`
		Profile struct {
			GivenName  string `json:"givenName"`
			FamilyName string `json:"familyName"`
			Email      string `json:"email"`
		} `json:"profile"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Scope != "USER" {
		oktaJSON(w, http.StatusBadRequest, map[string]any{"errorCode": "E0000001"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.oktaUser(w, in.ID)
	if u == nil {
		return
	}
	if s := f.users[u.SCIMID]; s != nil {
		s.GivenName, s.FamilyName, s.Email, s.Active = in.Profile.GivenName, in.Profile.FamilyName, in.Profile.Email, true
	} else {
		s := &fakeUser{ID: f.newID("scim-"), UserName: in.Credentials.UserName, GivenName: in.Profile.GivenName,
			FamilyName: in.Profile.FamilyName, Email: in.Profile.Email, Active: true}
		f.addUser(s)
		u.SCIMID = s.ID
	}
	u.Assigned = true
	oktaJSON(w, http.StatusOK, map[string]any{"id": u.ID, "scope": "USER", "status": "PROVISIONED"})
}

func (f *fakeServer) oktaUnassign(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.oktaUser(w, r.PathValue("uid"))
	if u == nil {
		return
	}
	if s := f.users[u.SCIMID]; s != nil && u.Assigned {
		s.Active = false
	}
	u.Assigned = false
	w.WriteHeader(http.StatusNoContent)
}
