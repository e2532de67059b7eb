package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// The JSON shapes below follow the schemas of Twilio's OpenAPI description
// (components.schemas."taskrouter.v1.workspace", ".workspace.activity", ".workspace.worker")
// field for field.

type workerJSON struct {
	AccountSID        string            `json:"account_sid"`
	ActivityName      string            `json:"activity_name"`
	ActivitySID       string            `json:"activity_sid"`
	Attributes        *string           `json:"attributes"` // null in lists, as documented
	Available         bool              `json:"available"`
	DateCreated       string            `json:"date_created"`
	DateStatusChanged string            `json:"date_status_changed"`
	DateUpdated       string            `json:"date_updated"`
	FriendlyName      string            `json:"friendly_name"`
	SID               string            `json:"sid"`
	WorkspaceSID      string            `json:"workspace_sid"`
	URL               string            `json:"url"`
	Links             map[string]string `json:"links"`
}

type activityJSON struct {
	AccountSID   string            `json:"account_sid"`
	Available    bool              `json:"available"`
	DateCreated  string            `json:"date_created"`
	DateUpdated  string            `json:"date_updated"`
	FriendlyName string            `json:"friendly_name"`
	SID          string            `json:"sid"`
	WorkspaceSID string            `json:"workspace_sid"`
	URL          string            `json:"url"`
	Links        map[string]string `json:"links"`
}

type workspaceJSON struct {
	AccountSID           string            `json:"account_sid"`
	DateCreated          string            `json:"date_created"`
	DateUpdated          string            `json:"date_updated"`
	DefaultActivityName  string            `json:"default_activity_name"`
	DefaultActivitySID   string            `json:"default_activity_sid"`
	EventCallbackURL     *string           `json:"event_callback_url"`
	EventsFilter         *string           `json:"events_filter"`
	FriendlyName         string            `json:"friendly_name"`
	MultiTaskEnabled     bool              `json:"multi_task_enabled"`
	SID                  string            `json:"sid"`
	TimeoutActivityName  string            `json:"timeout_activity_name"`
	TimeoutActivitySID   string            `json:"timeout_activity_sid"`
	PrioritizeQueueOrder string            `json:"prioritize_queue_order"`
	URL                  string            `json:"url"`
	Links                map[string]string `json:"links"`
}

type metaJSON struct {
	Page            int     `json:"page"`
	PageSize        int     `json:"page_size"`
	FirstPageURL    string  `json:"first_page_url"`
	PreviousPageURL *string `json:"previous_page_url"`
	NextPageURL     *string `json:"next_page_url"`
	URL             string  `json:"url"`
	Key             string  `json:"key"`
}

// isoTime formats t the way the spec's `format: date-time` fields are written by
// TaskRouter: ISO 8601 / RFC 3339 in UTC, whole seconds ("2017-05-30T23:19:38Z").
func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Server) workerJSON(base string, ws *workspace, wk *worker, withAttributes bool) workerJSON {
	wsURL := base + "/v1/Workspaces/" + ws.sid
	u := wsURL + "/Workers/" + wk.sid
	out := workerJSON{
		AccountSID:        s.accountSID,
		ActivityName:      wk.activity.friendlyName,
		ActivitySID:       wk.activity.sid,
		Available:         wk.activity.available,
		DateCreated:       isoTime(wk.created),
		DateStatusChanged: isoTime(wk.statusChanged),
		DateUpdated:       isoTime(wk.updated),
		FriendlyName:      wk.friendlyName,
		SID:               wk.sid,
		WorkspaceSID:      ws.sid,
		URL:               u,
		Links: map[string]string{
			"channels":              u + "/Channels",
			"activity":              wsURL + "/Activities/" + wk.activity.sid,
			"workspace":             wsURL,
			"statistics":            wsURL + "/Workers/Statistics",
			"real_time_statistics":  wsURL + "/Workers/RealTimeStatistics",
			"cumulative_statistics": wsURL + "/Workers/CumulativeStatistics",
			"worker_statistics":     u + "/Statistics",
			"worker_channels":       u + "/Channels",
			"reservations":          u + "/Reservations",
		},
	}
	if withAttributes {
		a := wk.attributes
		out.Attributes = &a
	}
	return out
}

func (s *Server) activityJSON(base string, ws *workspace, a *activity) activityJSON {
	wsURL := base + "/v1/Workspaces/" + ws.sid
	return activityJSON{
		AccountSID:   s.accountSID,
		Available:    a.available,
		DateCreated:  isoTime(a.created),
		DateUpdated:  isoTime(a.created),
		FriendlyName: a.friendlyName,
		SID:          a.sid,
		WorkspaceSID: ws.sid,
		URL:          wsURL + "/Activities/" + a.sid,
		Links:        map[string]string{"workspace": wsURL},
	}
}

func (s *Server) workspaceJSON(base string, ws *workspace) workspaceJSON {
	u := base + "/v1/Workspaces/" + ws.sid
	links := make(map[string]string)
	for _, l := range []struct{ key, path string }{
		{"activities", "/Activities"},
		{"statistics", "/Statistics"},
		{"real_time_statistics", "/RealTimeStatistics"},
		{"cumulative_statistics", "/CumulativeStatistics"},
		{"task_queues", "/TaskQueues"},
		{"tasks", "/Tasks"},
		{"workers", "/Workers"},
		{"workflows", "/Workflows"},
		{"task_channels", "/TaskChannels"},
		{"events", "/Events"},
	} {
		links[l.key] = u + l.path
	}
	return workspaceJSON{
		AccountSID:           s.accountSID,
		DateCreated:          isoTime(ws.created),
		DateUpdated:          isoTime(ws.created),
		DefaultActivityName:  ws.defaultActivity.friendlyName,
		DefaultActivitySID:   ws.defaultActivity.sid,
		FriendlyName:         ws.friendlyName,
		MultiTaskEnabled:     true,
		SID:                  ws.sid,
		TimeoutActivityName:  ws.defaultActivity.friendlyName,
		TimeoutActivitySID:   ws.defaultActivity.sid,
		PrioritizeQueueOrder: "FIFO",
		URL:                  u,
		Links:                links,
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep the & of page URLs readable
	if err := enc.Encode(v); err != nil {
		// Only plain structs, strings and maps are encoded here: this cannot fail.
		panic("sandbox: encoding a response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeList writes a list response: {"<key>": [...], "meta": {...}}.
func writeList[T any](w http.ResponseWriter, key string, items []T, meta metaJSON) {
	writeJSON(w, http.StatusOK, map[string]any{key: items, "meta": meta})
}

// apiError is a Twilio REST error:
// {"code": 20404, "message": "...", "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.MoreInfo == "" {
		e.MoreInfo = "https://www.twilio.com/docs/errors/" + strconv.Itoa(e.Code)
	}
	writeJSON(w, e.Status, e)
}

// errInvalid is TaskRouter's answer to an invalid parameter: 400 with code 20001
// (a duplicate FriendlyName included).
func errInvalid(msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: 20001, Message: msg}
}

func errNotFound(path string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: 20404,
		Message: "The requested resource " + path + " was not found"}
}

func errAuthenticate() *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: 20003, Message: "Authenticate"}
}

func errPrecondition(wk *worker) *apiError {
	return &apiError{Status: http.StatusPreconditionFailed, Code: 20412,
		Message: "Precondition Failed: If-Match does not match the current ETag " + wk.etag() + " of Worker " + wk.sid}
}

// defaultCode is the Twilio error code that usually comes with an HTTP status.
func defaultCode(status int) int {
	switch status {
	case http.StatusTooManyRequests:
		return 20429
	case http.StatusServiceUnavailable:
		return 20503
	case http.StatusNotFound:
		return 20404
	case http.StatusPreconditionFailed:
		return 20412
	case http.StatusUnauthorized:
		return 20003
	case http.StatusMethodNotAllowed:
		return 20004
	}
	if status >= 500 {
		return 20500
	}
	return 20001
}
