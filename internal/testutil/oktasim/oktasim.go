// Package oktasim is a stand-in for an Okta org, for tests: an [http.Handler] that answers
// the Okta management API calls made by Okta's "SCIM 2.0 CRUD" Runscope test
// (test/conformance/okta/Okta-SCIM-20-CRUD-Test.json) from an in-memory org (users, one
// app, the app's assignments), and that provisions a SCIM 2.0 server the way Okta's SCIM
// client does. It lets the CRUD suite, which otherwise needs a real Okta org, run against a
// local SCIM server:
//
//	sim, _ := oktasim.New(oktasim.Config{SCIMBaseURL: base + "/scim/v2", SCIMToken: tok, APIToken: "x"})
//	okta := httptest.NewServer(sim) // oktaOrgUrl = okta.URL, oktaAppId = sim.AppID(), oktaToken = "x"
//
// # Management API
//
// Exactly the calls of the CRUD suite, authenticated with "Authorization: SSWS <APIToken>"
// (anything else: 401, errorCode E0000011 "Invalid token provided"):
//
//   - GET /api/v1/apps/{appId}: the app (id, name, label, status ACTIVE, signOnMode, features).
//   - POST /api/v1/users?activate=true|false: create a user from {"profile", "credentials"}.
//     profile.login, email, firstName and lastName are required (Okta's default user schema),
//     login is unique ignoring case. Status: STAGED with activate=false, otherwise ACTIVE
//     with a password, PROVISIONED without one. Answers 200 with the user.
//   - PUT /api/v1/users/{id}: replace the user's profile (Okta's strict-update semantics:
//     properties not sent are dropped) and push the change (below). Answers 200 with the user.
//   - POST /api/v1/users/{id}/lifecycle/deactivate: status DEPROVISIONED, deprovision the
//     app user and remove the assignment (a reactivated user must be assigned again, which is
//     what the suite does). Answers 200 {}.
//   - POST /api/v1/users/{id}/lifecycle/activate[?sendEmail=false]: STAGED or DEPROVISIONED
//     users only (otherwise 403 E0000016). Answers 200 {} or, with sendEmail=false, an
//     activationUrl and activationToken.
//   - POST /api/v1/apps/{appId}/users: assign {"id", "scope", "credentials": {"userName"},
//     "profile"} and provision (below). Answers 200 with the app user, whose externalId is
//     the SCIM id. Assigning an assigned user updates its app profile (and pushes it).
//   - DELETE /api/v1/apps/{appId}/users/{userId}: unassign and deprovision. Answers 204.
//
// {id} is a user id or login. Unknown users, apps and paths: 404 E0000007; a wrong method:
// 405 E0000022; malformed JSON: 400 E0000003; validation: 400 E0000001. Errors have Okta's
// shape (errorCode, errorSummary, errorLink, errorId, errorCauses).
//
// # SCIM provisioning
//
// What the sim sends mirrors Okta's SCIM 2.0 reference
// (https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20) and Okta's
// published CRUD test. Every request carries "Authorization: Bearer <SCIMToken>", "Accept:
// application/scim+json", "User-Agent: Okta SCIM Client 1.0.0" and, with a body,
// "Content-Type: application/scim+json; charset=utf-8".
//
//   - Assignment (feature PUSH_NEW_USERS): Okta first asks whether the user exists,
//     GET /Users?filter=userName eq "<userName>"&startIndex=1&count=100. If not, it creates
//     it with POST /Users and the body
//     {schemas, userName, name{givenName,familyName}, emails[{primary:true,value,type}],
//     displayName, locale, externalId, groups:[], password, active:true} and keeps the
//     answer's id as the app user's externalId. If the lookup finds a user, Okta links to it
//     (keeps its id) instead of creating a duplicate; if that user is inactive it is
//     reactivated with PATCH active true (feature REACTIVATE_USERS), and the app profile is
//     then pushed with PUT (feature PUSH_PROFILE_UPDATES). Okta's developer forum describes
//     this reactivation-then-profile-update pair for the CRUD test's reactivate-and-reassign
//     steps (devforum.okta.com/t/scim-re-activate-and-re-assign-sends-wrong-active-field);
//     the sim sends active:true in both, i.e. it does not reproduce the stale active:false
//     reported there.
//   - Profile push (PUSH_PROFILE_UPDATES): when a profile update changes the app user's
//     profile, PUT /Users/{id} with the whole user: the body above with "id" and without
//     "password", active true.
//   - Deactivation and unassignment (PUSH_USER_DEACTIVATION): PATCH /Users/{id} with
//     {"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
//     "Operations":[{"op":"replace","value":{"active":false}}]}. Okta never sends DELETE.
//
// The SCIM attributes come from the app user: userName from its credentials (the Okta login
// unless the assignment names another), givenName, familyName, email and emailType
// ("work" when unset) from its profile. That profile is the Okta profile mapped with the
// sim's fixed Okta-to-app mappings (firstName→givenName, lastName→familyName, email→email,
// displayName, locale; Okta's are configurable per app) overlaid with the profile sent in
// the assignment; a profile update re-applies the mappings. displayName is the profile's displayName or else "givenName familyName";
// locale defaults to "en-US"; externalId is the Okta user id; the password is random.
//
// Okta provisions asynchronously (the suite pauses 20-40 s for it); the sim pushes
// synchronously before it answers the management call, so pauses need not be slept. A push
// that fails (transport error, non-2xx, a create answer without an id, a malformed list
// answer) does not change the management answer, as with Okta, where it becomes a task in
// the admin console: the app user gets syncState ERROR and the exchange is recorded with
// its error (see [Sim.Failures]). Every SCIM exchange is recorded in full
// ([Sim.Exchanges]), grouped by the management call that caused it ([Sim.Events]).
//
// Not modelled: groups and group push, password sync, imports, rate limits, other
// management endpoints, pagination of the lookup, and Okta's retry of failed pushes.
package oktasim

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// App features (Okta's app "features" values) that decide what the sim pushes.
const (
	FeaturePushNewUsers         = "PUSH_NEW_USERS"
	FeaturePushProfileUpdates   = "PUSH_PROFILE_UPDATES"
	FeaturePushUserDeactivation = "PUSH_USER_DEACTIVATION"
	FeatureReactivateUsers      = "REACTIVATE_USERS"
)

// Okta user statuses used by the sim.
const (
	StatusStaged        = "STAGED"
	StatusProvisioned   = "PROVISIONED"
	StatusActive        = "ACTIVE"
	StatusDeprovisioned = "DEPROVISIONED"
)

// App user sync states.
const (
	SyncSynchronized = "SYNCHRONIZED"
	SyncError        = "ERROR"
	SyncDisabled     = "DISABLED"
)

// Management actions, as recorded in [Event.Action] and [Exchange.Action].
const (
	ActionCreateUser = "user.create"
	ActionUpdateUser = "user.update"
	ActionDeactivate = "user.deactivate"
	ActionActivate   = "user.activate"
	ActionAssign     = "app.assign"
	ActionUnassign   = "app.unassign"
)

// SCIM schema URNs and the User-Agent Okta's SCIM client sends.
const (
	SchemaUser    = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaPatchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	UserAgent     = "Okta SCIM Client 1.0.0"
)

// Config configures a [Sim].
type Config struct {
	// SCIMBaseURL is the SCIM server's base URL, e.g. http://127.0.0.1:8080/scim/v2.
	SCIMBaseURL string
	// SCIMToken is sent as "Authorization: Bearer <SCIMToken>".
	SCIMToken string
	// APIToken is the Okta API token the management API accepts ("SSWS <APIToken>").
	APIToken string
	// AppID is the app's id; a random Okta-style id (0oa…) when empty.
	AppID string
	// AppLabel is the app's label; "SCIM 2.0 Test App (Header Auth)" when empty.
	AppLabel string
	// Features are the app's provisioning features; nil means all four Feature* constants.
	Features []string
	// Client sends the SCIM requests; nil means a client with a 30 s timeout.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sim is an in-memory Okta org with one SCIM app. It is safe for concurrent use; management
// calls are served one at a time, pushes included.
type Sim struct {
	cfg      Config
	scimBase string
	client   *http.Client
	now      func() time.Time
	features map[string]bool
	created  time.Time

	mu        sync.Mutex
	users     map[string]*user
	order     []string
	assigned  map[string]*appUser // by Okta user id
	exchanges []Exchange
	events    []Event
}

type user struct {
	id            string
	status        string
	profile       map[string]any
	password      bool
	question      string
	created       time.Time
	activated     time.Time
	statusChanged time.Time
	lastUpdated   time.Time
	pwChanged     time.Time
}

type appUser struct {
	userID     string
	externalID string
	userName   string
	scope      string
	profile    map[string]any
	password   string
	status     string
	syncState  string
	created    time.Time
	updated    time.Time
	lastSync   time.Time
}

// User is a snapshot of an Okta user.
type User struct {
	ID      string
	Status  string
	Profile map[string]any
}

// AppUser is a snapshot of an assignment of a user to the app.
type AppUser struct {
	UserID string
	// ExternalID is the user's id on the SCIM server ("" until provisioned).
	ExternalID string
	UserName   string
	Profile    map[string]any
	Status     string
	SyncState  string
}

// Exchange is one SCIM request the sim sent and what came back.
type Exchange struct {
	Action        string // the management action that caused it (Action*)
	UserID        string // the Okta user
	Method        string
	URL           string
	RequestHeader http.Header
	RequestBody   []byte
	// Status is the response status, 0 when no response arrived.
	Status         int
	ResponseHeader http.Header
	ResponseBody   []byte
	// Err says why Okta would count the exchange as failed ("" if it succeeded).
	Err string
}

// String renders the exchange for a test log: request line, bodies and any error.
func (x Exchange) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s %s] %s %s -> ", x.Action, x.UserID, x.Method, x.URL)
	if x.Status == 0 {
		b.WriteString("no response")
	} else {
		fmt.Fprintf(&b, "%d", x.Status)
	}
	if len(x.RequestBody) > 0 {
		fmt.Fprintf(&b, "\n\trequest:  %s", x.RequestBody)
	}
	if len(x.ResponseBody) > 0 {
		fmt.Fprintf(&b, "\n\tresponse: %s", bytes.TrimSpace(x.ResponseBody))
	}
	if x.Err != "" {
		fmt.Fprintf(&b, "\n\terror: %s", x.Err)
	}
	return b.String()
}

// Event is one successful state-changing management call and the SCIM exchanges it caused.
type Event struct {
	Action    string
	UserID    string
	Exchanges []Exchange
}

// New returns a Sim. SCIMBaseURL and APIToken are required.
func New(cfg Config) (*Sim, error) {
	u, err := url.Parse(cfg.SCIMBaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("oktasim: SCIMBaseURL %q is not an absolute http(s) URL", cfg.SCIMBaseURL)
	}
	if cfg.APIToken == "" {
		return nil, errors.New("oktasim: APIToken is required")
	}
	s := &Sim{
		cfg:      cfg,
		scimBase: strings.TrimRight(cfg.SCIMBaseURL, "/"),
		client:   cfg.Client,
		now:      cfg.Now,
		features: map[string]bool{},
		users:    map[string]*user{},
		assigned: map[string]*appUser{},
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.AppID == "" {
		s.cfg.AppID = newID("0oa")
	}
	if s.cfg.AppLabel == "" {
		s.cfg.AppLabel = "SCIM 2.0 Test App (Header Auth)"
	}
	features := cfg.Features
	if features == nil {
		features = []string{FeaturePushNewUsers, FeaturePushProfileUpdates, FeaturePushUserDeactivation, FeatureReactivateUsers}
	}
	for _, f := range features {
		s.features[f] = true
	}
	s.cfg.Features = slices.Clone(features)
	s.created = s.now()
	return s, nil
}

// AppID is the id of the sim's app.
func (s *Sim) AppID() string { return s.cfg.AppID }

// User returns a snapshot of the Okta user with the id or login.
func (s *Sim) User(idOrLogin string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.findUser(idOrLogin)
	if u == nil {
		return User{}, false
	}
	return User{ID: u.id, Status: u.status, Profile: maps.Clone(u.profile)}, true
}

// Assignment returns a snapshot of the user's assignment to the app, if assigned.
func (s *Sim) Assignment(userID string) (AppUser, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	au := s.assigned[userID]
	if au == nil {
		return AppUser{}, false
	}
	return AppUser{UserID: au.userID, ExternalID: au.externalID, UserName: au.userName,
		Profile: maps.Clone(au.profile), Status: au.status, SyncState: au.syncState}, true
}

// Exchanges returns every SCIM exchange so far, in order.
func (s *Sim) Exchanges() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.exchanges)
}

// Failures returns the SCIM exchanges that failed (Err set).
func (s *Sim) Failures() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Exchange
	for _, x := range s.exchanges {
		if x.Err != "" {
			out = append(out, x)
		}
	}
	return out
}

// Events returns the successful state-changing management calls so far, in order.
func (s *Sim) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.events))
	for i, e := range s.events {
		out[i] = Event{Action: e.Action, UserID: e.UserID, Exchanges: slices.Clone(e.Exchanges)}
	}
	return out
}

// ServeHTTP answers the management API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "SSWS "+s.cfg.APIToken {
		oktaError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) < 3 || segs[0] != "api" || segs[1] != "v1" {
		notFoundPath(w, r)
		return
	}
	segs = segs[2:]
	base := orgURL(r)
	switch {
	case segs[0] == "apps" && len(segs) == 2:
		if !allow(w, r, http.MethodGet) {
			return
		}
		if segs[1] != s.cfg.AppID {
			notFound(w, segs[1], "AppInstance")
			return
		}
		writeJSON(w, http.StatusOK, s.appJSON(base))
	case segs[0] == "apps" && len(segs) == 3 && segs[2] == "users":
		if !allow(w, r, http.MethodPost) {
			return
		}
		if segs[1] != s.cfg.AppID {
			notFound(w, segs[1], "AppInstance")
			return
		}
		s.assign(w, r, base)
	case segs[0] == "apps" && len(segs) == 4 && segs[2] == "users":
		if !allow(w, r, http.MethodDelete) {
			return
		}
		if segs[1] != s.cfg.AppID {
			notFound(w, segs[1], "AppInstance")
			return
		}
		s.unassign(w, segs[3])
	case segs[0] == "users" && len(segs) == 1:
		if !allow(w, r, http.MethodPost) {
			return
		}
		s.createUser(w, r, base)
	case segs[0] == "users" && len(segs) == 2:
		if !allow(w, r, http.MethodPut) {
			return
		}
		s.replaceUser(w, r, base, segs[1])
	case segs[0] == "users" && len(segs) == 4 && segs[2] == "lifecycle" && (segs[3] == "deactivate" || segs[3] == "activate"):
		if !allow(w, r, http.MethodPost) {
			return
		}
		if segs[3] == "deactivate" {
			s.deactivate(w, segs[1])
		} else {
			s.activate(w, r, base, segs[1])
		}
	default:
		notFoundPath(w, r)
	}
}

// ---- management calls (s.mu held) ----

type createUserBody struct {
	Profile     map[string]any `json:"profile"`
	Credentials *struct {
		Password *struct {
			Value string `json:"value"`
		} `json:"password"`
		RecoveryQuestion *struct {
			Question string `json:"question"`
			Answer   string `json:"answer"`
		} `json:"recovery_question"`
	} `json:"credentials"`
}

func (s *Sim) createUser(w http.ResponseWriter, r *http.Request, base string) {
	var body createUserBody
	if !decodeBody(w, r, &body) {
		return
	}
	if !s.validProfile(w, body.Profile, "") {
		return
	}
	now := s.now()
	u := &user{id: newID("00u"), profile: body.Profile, created: now, lastUpdated: now}
	s.setCredentials(u, &body, now)
	switch {
	case r.URL.Query().Get("activate") == "false":
		u.status = StatusStaged
	case u.password:
		u.status, u.activated, u.statusChanged = StatusActive, now, now
	default:
		u.status, u.activated, u.statusChanged = StatusProvisioned, now, now
	}
	s.users[u.id] = u
	s.order = append(s.order, u.id)
	s.events = append(s.events, Event{Action: ActionCreateUser, UserID: u.id})
	writeJSON(w, http.StatusOK, userJSON(base, u))
}

func (s *Sim) setCredentials(u *user, body *createUserBody, now time.Time) {
	if body.Credentials == nil {
		return
	}
	if p := body.Credentials.Password; p != nil && p.Value != "" {
		u.password, u.pwChanged = true, now
	}
	if q := body.Credentials.RecoveryQuestion; q != nil && q.Question != "" {
		u.question = q.Question
	}
}

// validProfile checks the fields Okta's default user schema requires and login uniqueness.
func (s *Sim) validProfile(w http.ResponseWriter, p map[string]any, self string) bool {
	var causes []string
	if p == nil {
		causes = append(causes, "profile: The field cannot be left blank")
	}
	for _, k := range []string{"login", "email", "firstName", "lastName"} {
		if p == nil {
			break
		}
		if v, _ := p[k].(string); strings.TrimSpace(v) == "" {
			causes = append(causes, k+": The field cannot be left blank")
		}
	}
	if login, _ := p["login"].(string); login != "" {
		if other := s.findUser(login); other != nil && other.id != self {
			causes = append(causes, "login: An object with this field already exists in the current organization")
		}
	}
	if len(causes) == 0 {
		return true
	}
	field, _, _ := strings.Cut(causes[0], ":")
	oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: "+field, causes...)
	return false
}

func (s *Sim) replaceUser(w http.ResponseWriter, r *http.Request, base, idOrLogin string) {
	u := s.findUser(idOrLogin)
	if u == nil {
		notFound(w, idOrLogin, "User")
		return
	}
	var body createUserBody
	if !decodeBody(w, r, &body) {
		return
	}
	if !s.validProfile(w, body.Profile, u.id) {
		return
	}
	now := s.now()
	oldLogin, _ := u.profile["login"].(string)
	u.profile, u.lastUpdated = body.Profile, now
	s.setCredentials(u, &body, now)
	ev := Event{Action: ActionUpdateUser, UserID: u.id}
	mark := len(s.exchanges)
	if au := s.assigned[u.id]; au != nil {
		s.remap(u, au, oldLogin)
	}
	ev.Exchanges = slices.Clone(s.exchanges[mark:])
	s.events = append(s.events, ev)
	writeJSON(w, http.StatusOK, userJSON(base, u))
}

// remap re-applies the Okta→app mappings after a profile change and pushes the app user if
// its view changed.
func (s *Sim) remap(u *user, au *appUser, oldLogin string) {
	before := s.scimUser(u, au)
	for k, v := range mappedProfile(u.profile) {
		au.profile[k] = v
	}
	if login, _ := u.profile["login"].(string); au.userName == oldLogin && login != "" {
		au.userName = login // userName template ${source.login}
	}
	au.updated = s.now()
	after := s.scimUser(u, au)
	if !s.features[FeaturePushProfileUpdates] || au.externalID == "" || sameJSON(before, after) {
		return
	}
	s.pushProfile(ActionUpdateUser, u, au)
}

type assignBody struct {
	ID          string `json:"id"`
	Scope       string `json:"scope"`
	Credentials *struct {
		UserName string `json:"userName"`
	} `json:"credentials"`
	Profile map[string]any `json:"profile"`
}

func (s *Sim) assign(w http.ResponseWriter, r *http.Request, base string) {
	var body assignBody
	if !decodeBody(w, r, &body) {
		return
	}
	u := s.findUser(body.ID)
	if u == nil {
		notFound(w, body.ID, "User")
		return
	}
	if u.status != StatusActive && u.status != StatusProvisioned {
		oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: user",
			fmt.Sprintf("user: the user is %s; only ACTIVE or PROVISIONED users can be assigned", u.status))
		return
	}
	ev := Event{Action: ActionAssign, UserID: u.id}
	mark := len(s.exchanges)
	now := s.now()
	if au := s.assigned[u.id]; au != nil {
		// An assigned user: the call updates the app user, and a changed profile is pushed.
		before := s.scimUser(u, au)
		if body.Credentials != nil && body.Credentials.UserName != "" {
			au.userName = body.Credentials.UserName
		}
		maps.Copy(au.profile, body.Profile)
		au.updated = now
		if s.features[FeaturePushProfileUpdates] && au.externalID != "" && !sameJSON(before, s.scimUser(u, au)) {
			s.pushProfile(ActionAssign, u, au)
		}
	} else {
		au := &appUser{userID: u.id, scope: "USER", profile: mappedProfile(u.profile),
			password: randomString(8), created: now, updated: now, status: StatusProvisioned}
		if body.Scope != "" {
			au.scope = body.Scope
		}
		au.userName, _ = u.profile["login"].(string)
		if body.Credentials != nil && body.Credentials.UserName != "" {
			au.userName = body.Credentials.UserName
		}
		maps.Copy(au.profile, body.Profile)
		s.assigned[u.id] = au
		s.provision(u, au)
	}
	ev.Exchanges = slices.Clone(s.exchanges[mark:])
	s.events = append(s.events, ev)
	writeJSON(w, http.StatusOK, s.appUserJSON(base, s.assigned[u.id]))
}

func (s *Sim) unassign(w http.ResponseWriter, idOrLogin string) {
	u := s.findUser(idOrLogin)
	if u == nil || s.assigned[u.id] == nil {
		notFound(w, idOrLogin, "AppUser")
		return
	}
	ev := Event{Action: ActionUnassign, UserID: u.id}
	mark := len(s.exchanges)
	s.deprovision(ActionUnassign, u, s.assigned[u.id])
	delete(s.assigned, u.id)
	ev.Exchanges = slices.Clone(s.exchanges[mark:])
	s.events = append(s.events, ev)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) deactivate(w http.ResponseWriter, idOrLogin string) {
	u := s.findUser(idOrLogin)
	if u == nil {
		notFound(w, idOrLogin, "User")
		return
	}
	if u.status == StatusDeprovisioned {
		oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: status", "status: the user is already deactivated")
		return
	}
	ev := Event{Action: ActionDeactivate, UserID: u.id}
	mark := len(s.exchanges)
	if au := s.assigned[u.id]; au != nil {
		s.deprovision(ActionDeactivate, u, au)
		delete(s.assigned, u.id)
	}
	now := s.now()
	u.status, u.statusChanged, u.lastUpdated = StatusDeprovisioned, now, now
	ev.Exchanges = slices.Clone(s.exchanges[mark:])
	s.events = append(s.events, ev)
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (s *Sim) activate(w http.ResponseWriter, r *http.Request, base, idOrLogin string) {
	u := s.findUser(idOrLogin)
	if u == nil {
		notFound(w, idOrLogin, "User")
		return
	}
	if u.status != StatusStaged && u.status != StatusDeprovisioned {
		oktaError(w, http.StatusForbidden, "E0000016", "Activation failed because the user is already active")
		return
	}
	now := s.now()
	u.status = StatusProvisioned
	if u.password {
		u.status = StatusActive
	}
	u.activated, u.statusChanged, u.lastUpdated = now, now, now
	s.events = append(s.events, Event{Action: ActionActivate, UserID: u.id})
	if r.URL.Query().Get("sendEmail") == "false" {
		token := randomString(20)
		writeJSON(w, http.StatusOK, map[string]any{
			"activationUrl":   base + "/welcome/" + token,
			"activationToken": token,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (s *Sim) findUser(idOrLogin string) *user {
	if u := s.users[idOrLogin]; u != nil {
		return u
	}
	for _, id := range s.order {
		u := s.users[id]
		if login, _ := u.profile["login"].(string); login != "" && strings.EqualFold(login, idOrLogin) {
			return u
		}
	}
	return nil
}

// mappedProfile is the app user profile Okta's default mappings derive from a user profile.
func mappedProfile(p map[string]any) map[string]any {
	out := map[string]any{}
	for from, to := range map[string]string{
		"firstName": "givenName", "lastName": "familyName", "email": "email",
		"displayName": "displayName", "locale": "locale",
	} {
		if v, ok := p[from].(string); ok && v != "" {
			out[to] = v
		}
	}
	return out
}

// ---- JSON answers ----

func (s *Sim) appJSON(base string) map[string]any {
	ts := stamp(s.created)
	return map[string]any{
		"id":          s.cfg.AppID,
		"name":        "scim2headerauth",
		"label":       s.cfg.AppLabel,
		"status":      "ACTIVE",
		"created":     ts,
		"lastUpdated": ts,
		"signOnMode":  "SAML_2_0",
		"features":    slices.Clone(s.cfg.Features),
		"accessibility": map[string]any{
			"selfService": false, "errorRedirectUrl": nil, "loginRedirectUrl": nil,
		},
		"visibility": map[string]any{
			"autoSubmitToolbar": false,
			"hide":              map[string]any{"iOS": false, "web": false},
		},
		"credentials": map[string]any{
			"userNameTemplate": map[string]any{"template": "${source.login}", "type": "BUILT_IN"},
		},
		"settings": map[string]any{"app": map[string]any{}},
		"_links": map[string]any{
			"self":  map[string]any{"href": base + "/api/v1/apps/" + s.cfg.AppID},
			"users": map[string]any{"href": base + "/api/v1/apps/" + s.cfg.AppID + "/users"},
		},
	}
}

func userJSON(base string, u *user) map[string]any {
	creds := map[string]any{"provider": map[string]any{"type": "OKTA", "name": "OKTA"}}
	if u.password {
		creds["password"] = map[string]any{}
	}
	if u.question != "" {
		creds["recovery_question"] = map[string]any{"question": u.question}
	}
	return map[string]any{
		"id":              u.id,
		"status":          u.status,
		"created":         stamp(u.created),
		"activated":       stampOrNil(u.activated),
		"statusChanged":   stampOrNil(u.statusChanged),
		"lastLogin":       nil,
		"lastUpdated":     stamp(u.lastUpdated),
		"passwordChanged": stampOrNil(u.pwChanged),
		"profile":         u.profile,
		"credentials":     creds,
		"_links":          map[string]any{"self": map[string]any{"href": base + "/api/v1/users/" + u.id}},
	}
}

func (s *Sim) appUserJSON(base string, au *appUser) map[string]any {
	return map[string]any{
		"id":              au.userID,
		"externalId":      nilIfEmpty(au.externalID),
		"created":         stamp(au.created),
		"lastUpdated":     stamp(au.updated),
		"scope":           au.scope,
		"status":          au.status,
		"statusChanged":   stamp(au.created),
		"passwordChanged": nil,
		"syncState":       au.syncState,
		"lastSync":        stampOrNil(au.lastSync),
		"credentials":     map[string]any{"userName": au.userName},
		"profile":         au.profile,
		"_links": map[string]any{
			"app":  map[string]any{"href": base + "/api/v1/apps/" + s.cfg.AppID},
			"user": map[string]any{"href": base + "/api/v1/users/" + au.userID},
		},
	}
}

// ---- helpers ----

func orgURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	oktaError(w, http.StatusMethodNotAllowed, "E0000022", "The endpoint does not support the provided HTTP method")
	return false
}

func notFound(w http.ResponseWriter, id, kind string) {
	oktaError(w, http.StatusNotFound, "E0000007", fmt.Sprintf("Not found: Resource not found: %s (%s)", id, kind))
}

func notFoundPath(w http.ResponseWriter, r *http.Request) {
	oktaError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+r.URL.Path+" (oktasim implements only the CRUD suite's calls)")
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		oktaError(w, http.StatusBadRequest, "E0000003", "The request body was not well-formed.", err.Error())
		return false
	}
	return true
}

func oktaError(w http.ResponseWriter, status int, code, summary string, causes ...string) {
	list := []any{}
	for _, c := range causes {
		list = append(list, map[string]any{"errorSummary": c})
	}
	writeJSON(w, status, map[string]any{
		"errorCode":    code,
		"errorSummary": summary,
		"errorLink":    code,
		"errorId":      newID("oae"),
		"errorCauses":  list,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func stampOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return stamp(t)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// newID returns an Okta-style 20-character id with the prefix (00u users, 0oa apps).
func newID(prefix string) string { return prefix + randomString(20-len(prefix)) }

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
