// Package sandbox is an in-memory stand-in for Twilio's TaskRouter v1 REST API, limited
// to what flexbridge uses: the Workspace, its Activities, and its Workers.
//
// It answers the way Twilio's OpenAPI description (test/specs/twilio_taskrouter_v1.yaml)
// and documentation say TaskRouter answers: the same paths, form parameters, JSON shapes
// (every field of the schema, ISO 8601 dates, absolute url/links), list paging through
// meta.next_page_url, HTTP basic authentication with the Account SID and Auth Token,
// ETag/If-Match on workers, and Twilio-shaped errors. The real twilio-go client works
// against it unchanged once its base URL is redirected.
//
// It serves three purposes: the workspace `flexbridge serve` talks to when no Twilio
// credentials are configured, the server behind `flexbridge sandbox --listen ADDR`, and
// the fake that tests point twilio-go at. For the latter, InjectFault makes chosen
// requests fail (429 with Retry-After, 5xx, a lost response after the change was applied,
// a slow answer) and Stats counts requests per route.
//
// Behaviour worth knowing (all as Twilio documents it):
//   - list responses carry "attributes": null; only a fetch of one worker returns them;
//   - FriendlyName is unique per workspace, case-insensitively (400, code 20001);
//   - Attributes must be a JSON object of at most 4,096 characters;
//   - a worker without ActivitySid starts in the workspace's default activity, "Offline";
//   - paging is keyset based: next_page_url carries an opaque PageToken, so workers
//     created or deleted while a client pages never make it skip or repeat one.
package sandbox

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Limits TaskRouter enforces on workers.
const (
	MaxFriendlyNameLength = 64   // characters
	MaxAttributesLength   = 4096 // characters of the JSON text, whitespace included
	DefaultPageSize       = 50
	MaxPageSize           = 1000
)

// Route names: the second half of the keys of Stats.Requests ("GET /Workers/{Sid}").
const (
	RouteWorkspaces = "/Workspaces"
	RouteWorkspace  = "/Workspaces/{Sid}"
	RouteWorkers    = "/Workers"
	RouteWorker     = "/Workers/{Sid}"
	RouteActivities = "/Activities"
	RouteActivity   = "/Activities/{Sid}"
	RouteUnknown    = "unknown"
)

// Options configures a Server. The zero value is usable: it serves one workspace with a
// generated SID and accepts any credentials.
type Options struct {
	// AccountSID is the user name of HTTP basic authentication and the account_sid of
	// every resource; "" generates one (AC + 32 hex digits).
	AccountSID string
	// AuthToken is the password of HTTP basic authentication. If it is "", any
	// credentials are accepted, but a request without an Authorization header is still
	// refused with 401 like Twilio does.
	AuthToken string
	// Workspaces lists the workspace SIDs served (WS + 32 hex digits); empty serves one
	// workspace with a generated SID.
	Workspaces []string
	// Logger receives one debug line per request; nil logs nothing.
	Logger *zap.Logger
	// Now is the clock used for date_* fields; nil uses time.Now.
	Now func() time.Time
	// BaseURL is the absolute base ("https://taskrouter.twilio.com") of the url,
	// links and *_page_url fields; "" derives it from each request (scheme + Host).
	BaseURL string
}

// Fault makes matching requests fail with a Twilio-shaped error, for tests of code that
// must survive TaskRouter's failures.
type Fault struct {
	// Method matches the request method ("POST"); "" matches any.
	Method string
	// PathSuffix matches the end of the request path: "/Workers" matches only the list
	// and create endpoint, "/Workers/WK..." one worker; "" matches any path.
	PathSuffix string
	// Status is the HTTP status to answer (0 means 500).
	Status int
	// Code is the Twilio error code; 0 picks the usual one for Status (429: 20429,
	// 500: 20500, 503: 20503, 404: 20404, 412: 20412, 401: 20003, otherwise 20001).
	Code int
	// Message is the error message; "" uses the status text.
	Message string
	// RetryAfter, if not "", is sent as the Retry-After header.
	RetryAfter string
	// Times is how many matching requests fail; 0 or less fails every matching request
	// until ClearFaults.
	Times int
	// Apply carries the request out (a create creates, a delete deletes) before
	// answering with the error: the response was lost, the change was not.
	Apply bool
	// Delay holds the answer back this long (or until the client gives up), to exercise
	// client timeouts. With Apply, the change is made before the wait: a client that
	// times out has still changed the worker.
	Delay time.Duration
}

// Stats counts the requests a Server received.
type Stats struct {
	// Requests counts authenticated requests by "METHOD route", e.g. "POST /Workers",
	// "GET /Workers/{Sid}" (see the Route constants), including those a fault answered.
	Requests map[string]int
	// Unauthorized counts requests refused with 401 for missing or wrong credentials.
	Unauthorized int
	// Faults counts requests answered by an injected fault.
	Faults int
}

// Count returns Requests[method+" "+route].
func (s Stats) Count(method, route string) int { return s.Requests[method+" "+route] }

// Server is the sandbox. It is an http.Handler and safe for concurrent use.
type Server struct {
	accountSID string
	authToken  string
	baseURL    string
	log        *zap.Logger
	now        func() time.Time

	mu     sync.Mutex
	spaces map[string]*workspace
	order  []string // workspace SIDs in configuration order
	seq    uint64   // creation counter: the paging order of every resource
	faults []*activeFault
	stats  Stats
}

type activeFault struct {
	Fault
	left int // remaining matches; <0: unlimited
}

var (
	accountSIDPattern   = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	workspaceSIDPattern = regexp.MustCompile(`^WS[0-9a-fA-F]{32}$`)
)

// New returns a Server with the workspaces of opts, each holding the activities Offline
// (the default), Available, Unavailable and Break, and no workers.
func New(opts Options) *Server {
	s := &Server{
		accountSID: opts.AccountSID,
		authToken:  opts.AuthToken,
		baseURL:    strings.TrimRight(opts.BaseURL, "/"),
		log:        opts.Logger,
		now:        opts.Now,
		spaces:     make(map[string]*workspace),
		stats:      Stats{Requests: make(map[string]int)},
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.log = s.log.With(zap.String("component", "taskrouter-sandbox"))
	if s.now == nil {
		s.now = time.Now
	}
	if s.accountSID == "" {
		s.accountSID = newSID("AC")
	} else if !accountSIDPattern.MatchString(s.accountSID) {
		s.log.Warn("account SID does not look like a Twilio account SID (AC + 32 hex digits)",
			zap.String("account_sid", s.accountSID))
	}
	sids := opts.Workspaces
	if len(sids) == 0 {
		sids = []string{newSID("WS")}
	}
	for _, sid := range sids {
		if _, dup := s.spaces[sid]; dup {
			continue
		}
		if !workspaceSIDPattern.MatchString(sid) {
			s.log.Warn("workspace SID does not look like a Twilio workspace SID (WS + 32 hex digits)",
				zap.String("workspace_sid", sid))
		}
		name := "Flex Task Assignment"
		if len(s.order) > 0 {
			name = fmt.Sprintf("Sandbox Workspace %d", len(s.order)+1)
		}
		s.spaces[sid] = s.newWorkspace(sid, name)
		s.order = append(s.order, sid)
	}
	return s
}

// Workspaces returns the SIDs of the workspaces served, in configuration order.
func (s *Server) Workspaces() []string {
	return append([]string(nil), s.order...)
}

// AccountSID returns the account SID the server authenticates and reports.
func (s *Server) AccountSID() string { return s.accountSID }

// InjectFault adds f; faults are tried in the order they were injected and the first one
// that matches a request answers it.
func (s *Server) InjectFault(f Fault) {
	if f.Status == 0 {
		f.Status = http.StatusInternalServerError
	}
	if f.Code == 0 {
		f.Code = defaultCode(f.Status)
	}
	if f.Message == "" {
		f.Message = http.StatusText(f.Status)
	}
	left := f.Times
	if left <= 0 {
		left = -1
	}
	s.mu.Lock()
	s.faults = append(s.faults, &activeFault{Fault: f, left: left})
	s.mu.Unlock()
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// Stats returns a copy of the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.Requests = make(map[string]int, len(s.stats.Requests))
	for k, v := range s.stats.Requests {
		out.Requests[k] = v
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusWriter{ResponseWriter: w}
	route := RouteUnknown
	defer func() {
		s.log.Debug("request",
			zap.String("method", r.Method),
			zap.String("path", r.URL.Path),
			zap.String("route", route),
			zap.Int("status", rec.status),
			zap.Duration("duration", time.Since(start)))
	}()

	if !s.authenticate(r) {
		s.mu.Lock()
		s.stats.Unauthorized++
		s.mu.Unlock()
		rec.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(rec, errAuthenticate())
		return
	}

	rt := parseRoute(r.URL.Path)
	route = rt.name
	s.mu.Lock()
	s.stats.Requests[r.Method+" "+rt.name]++
	fault := s.takeFault(r)
	s.mu.Unlock()

	if fault != nil {
		if fault.Apply {
			s.handle(discardWriter{h: make(http.Header)}, r, rt)
		}
		if fault.Delay > 0 {
			t := time.NewTimer(fault.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if fault.RetryAfter != "" {
			rec.Header().Set("Retry-After", fault.RetryAfter)
		}
		writeError(rec, &apiError{Status: fault.Status, Code: fault.Code, Message: fault.Message})
		return
	}
	s.handle(rec, r, rt)
}

// takeFault returns the first fault matching r and uses up one of its matches. s.mu held.
func (s *Server) takeFault(r *http.Request) *Fault {
	for i, f := range s.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
			continue
		}
		if f.PathSuffix != "" && !strings.HasSuffix(r.URL.Path, f.PathSuffix) {
			continue
		}
		s.stats.Faults++
		out := f.Fault
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &out
	}
	return nil
}

func (s *Server) authenticate(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	if s.authToken == "" {
		return true
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(s.accountSID)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(s.authToken)) == 1
	return userOK && passOK
}

// route is a parsed request path.
type route struct {
	name      string // one of the Route constants
	workspace string
	sid       string // worker or activity SID, for instance routes
}

func parseRoute(path string) route {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) < 2 || parts[0] != "v1" || parts[1] != "Workspaces" {
		return route{name: RouteUnknown}
	}
	for _, p := range parts[2:] {
		if p == "" {
			return route{name: RouteUnknown}
		}
	}
	switch len(parts) {
	case 2:
		return route{name: RouteWorkspaces}
	case 3:
		return route{name: RouteWorkspace, workspace: parts[2]}
	case 4:
		switch parts[3] {
		case "Workers":
			return route{name: RouteWorkers, workspace: parts[2]}
		case "Activities":
			return route{name: RouteActivities, workspace: parts[2]}
		}
	case 5:
		switch parts[3] {
		case "Workers":
			return route{name: RouteWorker, workspace: parts[2], sid: parts[4]}
		case "Activities":
			return route{name: RouteActivity, workspace: parts[2], sid: parts[4]}
		}
	}
	return route{name: RouteUnknown}
}

// allowedMethods lists the methods each route answers.
var allowedMethods = map[string][]string{
	RouteWorkspaces: {http.MethodGet},
	RouteWorkspace:  {http.MethodGet},
	RouteWorkers:    {http.MethodGet, http.MethodPost},
	RouteWorker:     {http.MethodGet, http.MethodPost, http.MethodDelete},
	RouteActivities: {http.MethodGet},
	RouteActivity:   {http.MethodGet},
}

// handle dispatches an authenticated request.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, rt route) {
	base := s.base(r)
	allowed := allowedMethods[rt.name]
	if rt.name == RouteUnknown {
		writeError(w, errNotFound(r.URL.Path))
		return
	}
	if !contains(allowed, r.Method) {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: 20004, Message: "Method not allowed"})
		return
	}

	var form map[string][]string
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			writeError(w, errInvalid("Unable to parse the request body: "+err.Error()))
			return
		}
		form = r.PostForm
	}
	query := r.URL.Query()

	s.mu.Lock()
	defer s.mu.Unlock()

	if rt.name == RouteWorkspaces {
		s.listWorkspaces(w, base, query)
		return
	}
	ws, ok := s.spaces[rt.workspace]
	if !ok {
		writeError(w, errNotFound(r.URL.Path))
		return
	}
	switch rt.name + " " + r.Method {
	case RouteWorkspace + " GET":
		writeJSON(w, http.StatusOK, s.workspaceJSON(base, ws))
	case RouteActivities + " GET":
		s.listActivities(w, base, ws, query)
	case RouteActivity + " GET":
		a, ok := ws.activities[rt.sid]
		if !ok {
			writeError(w, errNotFound(r.URL.Path))
			return
		}
		writeJSON(w, http.StatusOK, s.activityJSON(base, ws, a))
	case RouteWorkers + " GET":
		s.listWorkers(w, base, ws, query)
	case RouteWorkers + " POST":
		s.createWorker(w, base, ws, form)
	case RouteWorker + " GET":
		s.fetchWorker(w, r, base, ws, rt.sid)
	case RouteWorker + " POST":
		s.updateWorker(w, r, base, ws, rt.sid, form)
	case RouteWorker + " DELETE":
		s.deleteWorker(w, r, ws, rt.sid)
	}
}

// base returns the absolute URL prefix of every url field of a response to r.
func (s *Server) base(r *http.Request) string {
	if s.baseURL != "" {
		return s.baseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// timestamp returns the current time as TaskRouter stores it: UTC, whole seconds.
func (s *Server) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Second)
}

func (s *Server) nextSeq() uint64 {
	s.seq++
	return s.seq
}

func (s *Server) listWorkspaces(w http.ResponseWriter, base string, q map[string][]string) {
	p, aerr := parsePaging(q)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	name, hasName := first(q, "FriendlyName")
	var items []*workspace
	for _, sid := range s.order {
		ws := s.spaces[sid]
		if hasName && !strings.EqualFold(ws.friendlyName, name) {
			continue
		}
		items = append(items, ws)
	}
	pg := paginate(items, func(ws *workspace) uint64 { return ws.seq }, p)
	out := make([]workspaceJSON, 0, len(pg.items))
	for _, ws := range pg.items {
		out = append(out, s.workspaceJSON(base, ws))
	}
	writeList(w, "workspaces", out, pg.meta(base+"/v1/Workspaces", "workspaces", echoFilters(q, "FriendlyName"), p))
}

// newSID returns prefix followed by 32 random lower-case hex digits.
func newSID(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("sandbox: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	return prefix + hex.EncodeToString(b[:])
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// first returns the first value of key in v and whether key was present.
func first(v map[string][]string, key string) (string, bool) {
	vals, ok := v[key]
	if !ok || len(vals) == 0 {
		return "", false
	}
	return vals[0], true
}

// statusWriter remembers the status written, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// discardWriter swallows the answer of a request a fault with Apply carried out.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
