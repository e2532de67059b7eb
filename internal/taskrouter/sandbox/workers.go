package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

type workspace struct {
	sid          string
	friendlyName string
	seq          uint64
	created      time.Time

	activities      map[string]*activity
	activityList    []*activity // creation order
	defaultActivity *activity

	workers    map[string]*worker
	workerList []*worker          // creation order
	byName     map[string]*worker // nameKey(friendly name) -> worker
}

type activity struct {
	sid          string
	friendlyName string
	available    bool
	seq          uint64
	created      time.Time
}

type worker struct {
	sid           string
	friendlyName  string
	attributes    string
	activity      *activity
	seq           uint64
	rev           uint64 // bumped by every update; the ETag
	created       time.Time
	updated       time.Time
	statusChanged time.Time
}

func (w *worker) etag() string { return `"` + strconv.FormatUint(w.rev, 10) + `"` }

// The activities every sandbox workspace has, as a new Flex workspace does. The first is
// the default (and timeout) activity.
var defaultActivities = []struct {
	name      string
	available bool
}{
	{"Offline", false},
	{"Available", true},
	{"Unavailable", false},
	{"Break", false},
}

func (s *Server) newWorkspace(sid, name string) *workspace {
	now := s.timestamp()
	ws := &workspace{
		sid:          sid,
		friendlyName: name,
		seq:          s.nextSeq(),
		created:      now,
		activities:   make(map[string]*activity),
		workers:      make(map[string]*worker),
		byName:       make(map[string]*worker),
	}
	for _, d := range defaultActivities {
		a := &activity{sid: newSID("WA"), friendlyName: d.name, available: d.available, seq: s.nextSeq(), created: now}
		ws.activities[a.sid] = a
		ws.activityList = append(ws.activityList, a)
	}
	ws.defaultActivity = ws.activityList[0]
	return ws
}

// nameKey is the key under which FriendlyNames are compared: TaskRouter treats them
// case-insensitively.
func nameKey(name string) string { return strings.ToLower(name) }

var activitySIDPattern = regexp.MustCompile(`^WA[0-9a-fA-F]{32}$`)

func validateFriendlyName(name string) *apiError {
	if name == "" {
		return errInvalid("FriendlyName cannot be empty")
	}
	if n := utf8.RuneCountInString(name); n > MaxFriendlyNameLength {
		return errInvalid(fmt.Sprintf("FriendlyName cannot be longer than %d characters (got %d)", MaxFriendlyNameLength, n))
	}
	return nil
}

func validateAttributes(attrs string) *apiError {
	if n := utf8.RuneCountInString(attrs); n > MaxAttributesLength {
		return errInvalid(fmt.Sprintf("Attributes cannot be longer than %d characters (got %d)", MaxAttributesLength, n))
	}
	if !json.Valid([]byte(attrs)) || !strings.HasPrefix(strings.TrimLeft(attrs, " \t\r\n"), "{") {
		return errInvalid("Attributes must be a valid JSON object")
	}
	return nil
}

// activityParam is the activity named by the ActivitySid form parameter, or def without one.
func (ws *workspace) activityParam(form map[string][]string, def *activity) (*activity, *apiError) {
	if v, ok := first(form, "ActivitySid"); ok {
		return ws.lookupActivity(v)
	}
	return def, nil
}

func (ws *workspace) lookupActivity(sid string) (*activity, *apiError) {
	if !activitySIDPattern.MatchString(sid) {
		return nil, errInvalid(fmt.Sprintf("ActivitySid %s is not a valid Activity SID", sid))
	}
	a, ok := ws.activities[sid]
	if !ok {
		return nil, errInvalid(fmt.Sprintf("Activity %s not found in Workspace %s", sid, ws.sid))
	}
	return a, nil
}

// duplicateName reports a FriendlyName another worker of ws has.
func (ws *workspace) duplicateName(name string) *apiError {
	return errInvalid(fmt.Sprintf("Worker named %s already exists for workspace %s", name, ws.sid))
}

func (s *Server) createWorker(w http.ResponseWriter, base string, ws *workspace, form map[string][]string) {
	name, ok := first(form, "FriendlyName")
	if !ok {
		writeError(w, errInvalid("Missing required parameter FriendlyName in the post body"))
		return
	}
	if aerr := validateFriendlyName(name); aerr != nil {
		writeError(w, aerr)
		return
	}
	attrs := "{}"
	if v, ok := first(form, "Attributes"); ok {
		if aerr := validateAttributes(v); aerr != nil {
			writeError(w, aerr)
			return
		}
		attrs = v
	}
	act, aerr := ws.activityParam(form, ws.defaultActivity)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if _, dup := ws.byName[nameKey(name)]; dup {
		writeError(w, ws.duplicateName(name))
		return
	}

	now := s.timestamp()
	wk := &worker{
		sid:           newSID("WK"),
		friendlyName:  name,
		attributes:    attrs,
		activity:      act,
		seq:           s.nextSeq(),
		rev:           1,
		created:       now,
		updated:       now,
		statusChanged: now,
	}
	ws.workers[wk.sid] = wk
	ws.workerList = append(ws.workerList, wk)
	ws.byName[nameKey(name)] = wk

	w.Header().Set("ETag", wk.etag())
	writeJSON(w, http.StatusCreated, s.workerJSON(base, ws, wk, true))
}

func (s *Server) fetchWorker(w http.ResponseWriter, r *http.Request, base string, ws *workspace, sid string) {
	wk, ok := ws.workers[sid]
	if !ok {
		writeError(w, errNotFound(r.URL.Path))
		return
	}
	w.Header().Set("ETag", wk.etag())
	writeJSON(w, http.StatusOK, s.workerJSON(base, ws, wk, true))
}

func (s *Server) updateWorker(w http.ResponseWriter, r *http.Request, base string, ws *workspace, sid string, form map[string][]string) {
	wk, ok := ws.workers[sid]
	if !ok {
		writeError(w, errNotFound(r.URL.Path))
		return
	}
	if !ifMatch(r.Header.Values("If-Match"), wk) {
		writeError(w, errPrecondition(wk))
		return
	}

	name, setName := first(form, "FriendlyName")
	if setName {
		if aerr := validateFriendlyName(name); aerr != nil {
			writeError(w, aerr)
			return
		}
		if other, dup := ws.byName[nameKey(name)]; dup && other != wk {
			writeError(w, ws.duplicateName(name))
			return
		}
	}
	attrs, setAttrs := first(form, "Attributes")
	if setAttrs {
		if aerr := validateAttributes(attrs); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	act, aerr := ws.activityParam(form, wk.activity)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if v, ok := first(form, "RejectPendingReservations"); ok {
		reject, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, errInvalid(fmt.Sprintf("RejectPendingReservations must be true or false, got %q", v)))
			return
		}
		// The sandbox has no tasks, so there is nothing to reject; but TaskRouter only
		// accepts the flag when the worker's new activity is unavailable.
		if reject && act.available {
			writeError(w, errInvalid("RejectPendingReservations can only be used when the Worker's new Activity is not available"))
			return
		}
	}

	now := s.timestamp()
	if setName {
		delete(ws.byName, nameKey(wk.friendlyName))
		wk.friendlyName = name
		ws.byName[nameKey(name)] = wk
	}
	if setAttrs {
		wk.attributes = attrs
	}
	if act != wk.activity {
		wk.activity = act
		wk.statusChanged = now
	}
	wk.updated = now
	wk.rev++

	w.Header().Set("ETag", wk.etag())
	writeJSON(w, http.StatusOK, s.workerJSON(base, ws, wk, true))
}

func (s *Server) deleteWorker(w http.ResponseWriter, r *http.Request, ws *workspace, sid string) {
	wk, ok := ws.workers[sid]
	if !ok {
		writeError(w, errNotFound(r.URL.Path))
		return
	}
	if !ifMatch(r.Header.Values("If-Match"), wk) {
		writeError(w, errPrecondition(wk))
		return
	}
	delete(ws.workers, sid)
	delete(ws.byName, nameKey(wk.friendlyName))
	for i, x := range ws.workerList {
		if x == wk {
			ws.workerList = append(ws.workerList[:i:i], ws.workerList[i+1:]...)
			break
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ifMatch reports whether the If-Match header values (none, "*", or a list of entity
// tags, quoted or not, weak or strong) allow changing wk.
func ifMatch(values []string, wk *worker) bool {
	if len(values) == 0 {
		return true
	}
	current := strconv.FormatUint(wk.rev, 10)
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return true
			}
			tag = strings.TrimPrefix(tag, "W/")
			tag = strings.Trim(tag, `"`)
			if tag == current {
				return true
			}
		}
	}
	return false
}

func (s *Server) listWorkers(w http.ResponseWriter, base string, ws *workspace, q map[string][]string) {
	p, aerr := parsePaging(q)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	name, byName := first(q, "FriendlyName")
	actName, byActName := first(q, "ActivityName")
	actSID, byActSID := first(q, "ActivitySid")
	avail, byAvail := first(q, "Available")
	wantAvailable := isTrue(avail)

	var items []*worker
	if byName {
		// FriendlyName is unique: at most one match.
		if wk, ok := ws.byName[nameKey(name)]; ok {
			items = append(items, wk)
		}
	} else {
		items = ws.workerList
	}
	matched := make([]*worker, 0, len(items))
	for _, wk := range items {
		switch {
		case byActName && !strings.EqualFold(wk.activity.friendlyName, actName),
			byActSID && wk.activity.sid != actSID,
			byAvail && wk.activity.available != wantAvailable:
			continue
		}
		matched = append(matched, wk)
	}

	pg := paginate(matched, func(wk *worker) uint64 { return wk.seq }, p)
	out := make([]workerJSON, 0, len(pg.items))
	for _, wk := range pg.items {
		out = append(out, s.workerJSON(base, ws, wk, false))
	}
	// The filters echoed in the page URLs, in the order Twilio writes them. The ignored
	// ones (TargetWorkersExpression, TaskQueue*, Ordering) are echoed too.
	filters := echoFilters(q, "Available", "TargetWorkersExpression", "TaskQueueName", "ActivityName",
		"ActivitySid", "TaskQueueSid", "FriendlyName", "Ordering")
	writeList(w, "workers", out, pg.meta(base+"/v1/Workspaces/"+ws.sid+"/Workers", "workers", filters, p))
}

func (s *Server) listActivities(w http.ResponseWriter, base string, ws *workspace, q map[string][]string) {
	p, aerr := parsePaging(q)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	name, byName := first(q, "FriendlyName")
	avail, byAvail := first(q, "Available")
	wantAvailable := isTrue(avail)
	var matched []*activity
	for _, a := range ws.activityList {
		if byName && !strings.EqualFold(a.friendlyName, name) {
			continue
		}
		if byAvail && a.available != wantAvailable {
			continue
		}
		matched = append(matched, a)
	}
	pg := paginate(matched, func(a *activity) uint64 { return a.seq }, p)
	out := make([]activityJSON, 0, len(pg.items))
	for _, a := range pg.items {
		out = append(out, s.activityJSON(base, ws, a))
	}
	filters := echoFilters(q, "Available", "FriendlyName")
	writeList(w, "activities", out, pg.meta(base+"/v1/Workspaces/"+ws.sid+"/Activities", "activities", filters, p))
}

// isTrue interprets a boolean filter the way TaskRouter documents it: "true", "1" and
// "yes" mean true, anything else false.
func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "true", "1", "yes":
		return true
	}
	return false
}
