package taskrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Fakes over mocks: an httptest server that plays TaskRouter, recording what it saw.

func sid(prefix string, n int) string { return fmt.Sprintf("%s%032x", prefix, n) }

var (
	testAccount   = sid("AC", 1)
	testToken     = "t0ken5ecretDoNotLog"
	testWorkspace = sid("WS", 2)
	offlineSID    = sid("WA", 9)
)

type seen struct {
	Method, Path, RawQuery string
	Query, Form            url.Values
	Header                 http.Header
	User, Pass             string
	HasAuth                bool
}

type fake struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []seen
	handle func(w http.ResponseWriter, r *http.Request, s seen)
}

func newFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, s seen)) *fake {
	t.Helper()
	f := &fake{handle: handle}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		user, pass, ok := r.BasicAuth()
		s := seen{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Query: r.URL.Query(), Form: form,
			Header: r.Header.Clone(), User: user, Pass: pass, HasAuth: ok}
		f.mu.Lock()
		f.seen = append(f.seen, s)
		f.mu.Unlock()
		f.handle(w, r, s)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.seen...)
}

func (f *fake) count(pred func(seen) bool) int {
	n := 0
	for _, s := range f.requests() {
		if pred(s) {
			n++
		}
	}
	return n
}

func newTestClient(t *testing.T, baseURL string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{AccountSID: testAccount, AuthToken: testToken, WorkspaceSID: testWorkspace, BaseURL: baseURL, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func workerJSON(workerSID, name, attrs string) map[string]any {
	m := map[string]any{
		"sid": workerSID, "friendly_name": name, "account_sid": testAccount, "workspace_sid": testWorkspace,
		"activity_sid": sid("WA", 3), "activity_name": "Available", "available": true,
		"date_created": "2024-01-02T03:04:05Z", "date_updated": "2024-02-03T04:05:06Z",
	}
	if attrs != "" {
		m["attributes"] = attrs
	}
	return m
}

func workersPath(rest string) string { return "/v1/Workspaces/" + testWorkspace + "/Workers" + rest }

func TestNewRefusesBadConfig(t *testing.T) {
	// twilio-go's NewRestClientWithParams would read these when credentials are empty.
	t.Setenv("TWILIO_ACCOUNT_SID", testAccount)
	t.Setenv("TWILIO_AUTH_TOKEN", testToken)

	ok := Config{AccountSID: testAccount, AuthToken: testToken, WorkspaceSID: testWorkspace}
	tests := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"empty account", func(c *Config) { c.AccountSID = "" }, []string{"AccountSID is empty"}},
		{"empty token", func(c *Config) { c.AuthToken = "" }, []string{"AuthToken is empty"}},
		{"all empty", func(c *Config) { *c = Config{} }, []string{"AccountSID is empty", "AuthToken is empty", "WorkspaceSID is empty"}},
		{"token with symbols", func(c *Config) { c.AuthToken = "abc:def" }, []string{"AuthToken must contain only letters and digits"}},
		{"workspace path injection", func(c *Config) { c.WorkspaceSID = "WS1/../../Accounts" }, []string{"WorkspaceSID"}},
		{"relative base", func(c *Config) { c.BaseURL = "localhost:4010" }, []string{"BaseURL"}},
		{"base with query", func(c *Config) { c.BaseURL = "http://localhost:4010/?x=1" }, []string{"BaseURL"}},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, []string{"Timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			c, err := New(cfg, nil)
			if err == nil {
				t.Fatalf("New accepted %+v", cfg)
			}
			if c != nil {
				t.Errorf("New returned a client with an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "abc:def") {
				t.Errorf("error leaks the auth token: %q", err)
			}
		})
	}
	if _, err := New(ok, nil); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}

func TestBaseURLRedirectAuthAndFetch(t *testing.T) {
	// Env that twilio-go's NewRequestHandler would turn into
	// taskrouter.sydney.au1.twilio.com, escaping the redirect.
	t.Setenv("TWILIO_EDGE", "sydney")
	t.Setenv("TWILIO_REGION", "au1")
	wk := sid("WK", 10)
	attrs := `{"roles":["agent"],"full_name":"Ann  Example","x":"é"}`
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		w.Header().Set("ETag", `"42"`)
		writeJSON(w, 200, workerJSON(wk, "ann@example.com", attrs))
	})
	c := newTestClient(t, f.srv.URL+"/sandbox/", nil)

	got, err := c.FetchWorker(context.Background(), wk)
	if err != nil {
		t.Fatalf("FetchWorker: %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if want := "/sandbox" + workersPath("/"+wk); r.Method != "GET" || r.Path != want {
		t.Errorf("request = %s %s, want GET %s", r.Method, r.Path, want)
	}
	if !r.HasAuth || r.User != testAccount || r.Pass != testToken {
		t.Errorf("basic auth = (%v, %q, %q), want account SID and token", r.HasAuth, r.User, r.Pass)
	}
	if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "twilio-go/") || !strings.Contains(ua, "flexbridge") {
		t.Errorf("User-Agent = %q", ua)
	}
	want := Worker{
		SID: wk, FriendlyName: "ann@example.com", Attributes: attrs, ActivitySID: sid("WA", 3), ActivityName: "Available",
		ETag: `"42"`, Available: true,
		DateCreated: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), DateUpdated: time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC),
	}
	if !got.DateCreated.Equal(want.DateCreated) || !got.DateUpdated.Equal(want.DateUpdated) {
		t.Errorf("dates = %v, %v", got.DateCreated, got.DateUpdated)
	}
	got.DateCreated, got.DateUpdated = want.DateCreated, want.DateUpdated
	if got != want {
		t.Errorf("FetchWorker =\n %+v\nwant\n %+v", got, want)
	}
}

func TestCreateUpdateDeleteRequests(t *testing.T) {
	wk := sid("WK", 11)
	// Not minified on purpose: the adapter must pass attributes through untouched.
	attrs := "{ \"roles\": [\"agent\"],  \"email\":\"a+b@example.com\", \"n\": 1.50 }"
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		switch {
		case r.Method == "POST" && s.Path == workersPath(""):
			w.Header().Set("ETag", "e1")
			writeJSON(w, 201, workerJSON(wk, s.Form.Get("FriendlyName"), s.Form.Get("Attributes")))
		case r.Method == "POST":
			w.Header().Set("ETag", "e2")
			writeJSON(w, 200, workerJSON(wk, "ann", s.Form.Get("Attributes")))
		case r.Method == "DELETE":
			w.WriteHeader(204)
		default:
			http.NotFound(w, r)
		}
	})
	c := newTestClient(t, f.srv.URL, nil)
	ctx := context.Background()

	w, err := c.CreateWorker(ctx, "ann", attrs)
	if err != nil {
		t.Fatalf("CreateWorker: %v", err)
	}
	if w.SID != wk || w.ETag != "e1" || w.Attributes != attrs {
		t.Errorf("CreateWorker = %+v", w)
	}
	if _, err := c.UpdateWorkerAttributes(ctx, wk, `{"a":1}`, "e1"); err != nil {
		t.Fatalf("UpdateWorkerAttributes: %v", err)
	}
	w, err = c.UpdateWorkerAttributes(ctx, wk, `{"a":2}`, "")
	if err != nil || w.ETag != "e2" {
		t.Fatalf("UpdateWorkerAttributes unconditional = %+v, %v", w, err)
	}
	if err := c.DeleteWorker(ctx, wk, "e2"); err != nil {
		t.Fatalf("DeleteWorker: %v", err)
	}
	if err := c.DeleteWorker(ctx, wk, ""); err != nil {
		t.Fatalf("DeleteWorker unconditional: %v", err)
	}

	reqs := f.requests()
	if len(reqs) != 5 {
		t.Fatalf("saw %d requests, want 5", len(reqs))
	}
	create := reqs[0]
	if create.Form.Get("FriendlyName") != "ann" || create.Form.Get("Attributes") != attrs {
		t.Errorf("create form = %v", create.Form)
	}
	if _, set := create.Form["ActivitySid"]; set {
		t.Errorf("create sent ActivitySid %q; the worker must land in the default activity", create.Form.Get("ActivitySid"))
	}
	if ct := create.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("create Content-Type = %q", ct)
	}
	upd, updNoMatch, del, delNoMatch := reqs[1], reqs[2], reqs[3], reqs[4]
	if upd.Path != workersPath("/"+wk) || upd.Header.Get("If-Match") != "e1" || upd.Form.Get("Attributes") != `{"a":1}` {
		t.Errorf("update = %s If-Match=%q form=%v", upd.Path, upd.Header.Get("If-Match"), upd.Form)
	}
	if len(upd.Form) != 1 {
		t.Errorf("update sent more than Attributes: %v", upd.Form)
	}
	if _, has := updNoMatch.Header["If-Match"]; has {
		t.Errorf("unconditional update sent If-Match %q", updNoMatch.Header.Get("If-Match"))
	}
	if del.Method != "DELETE" || del.Path != workersPath("/"+wk) || del.Header.Get("If-Match") != "e2" {
		t.Errorf("delete = %s %s If-Match=%q", del.Method, del.Path, del.Header.Get("If-Match"))
	}
	if _, has := delNoMatch.Header["If-Match"]; has {
		t.Errorf("unconditional delete sent If-Match")
	}
}

func TestInvalidArgumentsSendNothing(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) { writeJSON(w, 200, map[string]any{}) })
	c := newTestClient(t, f.srv.URL, nil)
	ctx := context.Background()
	for name, err := range map[string]error{
		"fetch path":   func() error { _, err := c.FetchWorker(ctx, "WK1/../../x"); return err }(),
		"fetch empty":  func() error { _, err := c.FetchWorker(ctx, ""); return err }(),
		"update query": func() error { _, err := c.UpdateWorkerAttributes(ctx, "WK1?x=1", "{}", ""); return err }(),
		"offline":      c.TakeOffline(ctx, "a b"),
		"delete":       c.DeleteWorker(ctx, "WK#1", ""),
		"create":       func() error { _, err := c.CreateWorker(ctx, "", "{}"); return err }(),
		"update empty": func() error { _, err := c.UpdateWorkerAttributes(ctx, sid("WK", 1), "", ""); return err }(),
		"find":         func() error { _, _, err := c.FindWorker(ctx, ""); return err }(),
	} {
		if !errors.Is(err, errInvalidArgument) || IsTransient(err) {
			t.Errorf("%s: err = %v, want invalid argument", name, err)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("server saw %d requests for invalid arguments", n)
	}
}

func TestErrorClassification(t *testing.T) {
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	type kinds struct{ notFound, precondition, duplicate, rateLimited, transient bool }
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		want       kinds
		code       int
		retryAfter time.Duration // exact, or for HTTP dates a lower bound
	}{
		{"404 20404", 404, nil, `{"code":20404,"message":"The requested resource was not found","more_info":"https://www.twilio.com/docs/errors/20404","status":404}`,
			kinds{notFound: true}, 20404, 0},
		{"412", 412, nil, `{"code":20412,"message":"Precondition failed","status":412}`, kinds{precondition: true}, 20412, 0},
		{"400 20001", 400, nil, `{"code":20001,"message":"Worker with FriendlyName ann already exists","status":400}`, kinds{duplicate: true}, 20001, 0},
		{"429 Retry-After 3", 429, map[string]string{"Retry-After": "3"}, `{"code":20429,"message":"Too Many Requests","status":429}`,
			kinds{rateLimited: true, transient: true}, 20429, 3 * time.Second},
		{"429 Retry-After date", 429, map[string]string{"Retry-After": httpDate}, `{"code":20429,"message":"Too Many Requests","status":429}`,
			kinds{rateLimited: true, transient: true}, 20429, 80 * time.Second},
		{"503 html", 503, map[string]string{"Retry-After": "7", "Content-Type": "text/html"}, `<html>Service Unavailable</html>`,
			kinds{transient: true}, 0, 7 * time.Second},
		{"500 json", 500, nil, `{"code":20500,"message":"Internal Server Error","status":500}`, kinds{transient: true}, 20500, 0},
		{"401", 401, nil, `{"code":20003,"message":"Authenticate","status":401}`, kinds{}, 20003, 0},
		{"400 empty body", 400, nil, ``, kinds{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c := newTestClient(t, f.srv.URL, nil)
			_, err := c.FetchWorker(context.Background(), sid("WK", 1))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %T %v, want *Error", err, err)
			}
			if e.Op != "FetchWorker" || e.Status != tt.status || e.Code != tt.code {
				t.Errorf("Error = {Op %q Status %d Code %d}, want {FetchWorker %d %d}", e.Op, e.Status, e.Code, tt.status, tt.code)
			}
			got := kinds{IsNotFound(err), IsPreconditionFailed(err), IsDuplicateName(err), IsRateLimited(err), IsTransient(err)}
			if got != tt.want {
				t.Errorf("kinds = %+v, want %+v", got, tt.want)
			}
			ra := RetryAfter(err)
			if strings.Contains(tt.name, "date") {
				if ra < tt.retryAfter || ra > 91*time.Second {
					t.Errorf("RetryAfter = %s, want about 90s", ra)
				}
			} else if ra != tt.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", ra, tt.retryAfter)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error text leaks the token")
			}
		})
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	c := newTestClient(t, f.srv.URL, func(cfg *Config) { cfg.Timeout = 100 * time.Millisecond })
	start := time.Now()
	_, err := c.FetchWorker(context.Background(), sid("WK", 1))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("FetchWorker took %s with a 100ms timeout", d)
	}
	if !IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a transient deadline error", err)
	}
	if IsNotFound(err) || IsRateLimited(err) {
		t.Errorf("timeout misclassified: %v", err)
	}
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newTestClient(t, "http://"+addr, nil)
	_, err = c.FetchWorker(context.Background(), sid("WK", 1))
	if !IsTransient(err) {
		t.Fatalf("err = %v, want transient", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != 0 {
		t.Errorf("err = %#v, want *Error without status", err)
	}
}

func TestContextCancellation(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	c := newTestClient(t, f.srv.URL, func(cfg *Config) { cfg.Timeout = time.Minute })

	t.Run("already cancelled: no request", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := c.DeleteWorker(ctx, sid("WK", 1), "")
		if !errors.Is(err, context.Canceled) || IsTransient(err) {
			t.Errorf("err = %v, want context.Canceled, not transient", err)
		}
		if n := len(f.requests()); n != 0 {
			t.Errorf("server saw %d requests", n)
		}
	})
	t.Run("cancelled in flight: returns at once", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.FetchWorker(ctx, sid("WK", 1))
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("returned after %s, the request timeout is 1m", d)
		}
		if !errors.Is(err, context.Canceled) || IsTransient(err) {
			t.Errorf("err = %v, want context.Canceled, not transient", err)
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.FetchWorker(ctx, sid("WK", 1))
		if !errors.Is(err, context.DeadlineExceeded) || IsTransient(err) {
			t.Errorf("err = %v, want the caller's DeadlineExceeded, not transient", err)
		}
	})
}

// Retry-After must belong to the call that got it, whatever runs concurrently.
func TestRetryAfterPerCallUnderConcurrency(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		var n int
		_, _ = fmt.Sscanf(strings.TrimPrefix(s.Path, workersPath("/WK")), "%x", &n)
		if n%2 == 0 {
			writeJSON(w, 200, workerJSON(sid("WK", n), "w", "{}"))
			return
		}
		time.Sleep(time.Duration(n%5) * time.Millisecond)
		w.Header().Set("Retry-After", fmt.Sprint(n))
		writeJSON(w, 429, map[string]any{"code": 20429, "message": "Too Many Requests", "status": 429})
	})
	c := newTestClient(t, f.srv.URL, nil)
	var wg sync.WaitGroup
	for n := 1; n <= 40; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.FetchWorker(context.Background(), sid("WK", n))
			if n%2 == 0 {
				if err != nil {
					t.Errorf("worker %d: %v", n, err)
				}
				return
			}
			if !IsRateLimited(err) || RetryAfter(err) != time.Duration(n)*time.Second {
				t.Errorf("worker %d: err = %v, RetryAfter = %s, want %ds", n, err, RetryAfter(err), n)
			}
		}()
	}
	wg.Wait()
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"Sun, 01 Jun 2025 11:59:00 GMT", 0}, // in the past
		{"Sunday, 01-Jun-25 12:01:00 GMT", time.Minute},
		{"99999999999999999999", 0}, // does not parse as int64
		{"9223372036854775807", time.Duration(1<<63 - 1)},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func activitiesHandler(w http.ResponseWriter, s seen) {
	var acts []map[string]any
	for _, a := range []struct {
		sid, name string
		avail     bool
	}{{sid("WA", 3), "Available", true}, {offlineSID, "Offline", false}, {sid("WA", 5), "Offline Break", false}} {
		if q := s.Query.Get("FriendlyName"); q != "" && !strings.EqualFold(q, a.name) {
			continue
		}
		acts = append(acts, map[string]any{"sid": a.sid, "friendly_name": a.name, "available": a.avail})
	}
	writeJSON(w, 200, map[string]any{"activities": acts, "meta": map[string]any{"key": "activities", "page_size": 50}})
}

func TestTakeOfflineCachesActivity(t *testing.T) {
	var failActivities atomic.Bool
	failActivities.Store(true)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		switch {
		case strings.HasSuffix(s.Path, "/Activities"):
			if failActivities.Swap(false) {
				w.WriteHeader(503)
				return
			}
			activitiesHandler(w, s)
		case r.Method == "POST" && strings.HasPrefix(s.Path, workersPath("/")):
			writeJSON(w, 200, workerJSON(strings.TrimPrefix(s.Path, workersPath("/")), "w", ""))
		default:
			http.NotFound(w, r)
		}
	})
	c := newTestClient(t, f.srv.URL, nil)
	ctx := context.Background()
	isActivities := func(s seen) bool { return strings.HasSuffix(s.Path, "/Activities") }

	// A failed lookup is not cached.
	if err := c.TakeOffline(ctx, sid("WK", 100)); !IsTransient(err) {
		t.Fatalf("TakeOffline with failing Activities = %v, want transient error", err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.TakeOffline(ctx, sid("WK", i)); err != nil {
				t.Errorf("TakeOffline %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if n := f.count(isActivities); n != 2 {
		t.Errorf("Activities requested %d times, want 2 (one failed, one cached)", n)
	}
	for _, s := range f.requests() {
		if isActivities(s) {
			if s.Method != "GET" || s.Query.Get("FriendlyName") != "Offline" {
				t.Errorf("activity lookup = %s ?%s", s.Method, s.RawQuery)
			}
			continue
		}
		if s.Form.Get("ActivitySid") != offlineSID || s.Form.Get("RejectPendingReservations") != "true" || len(s.Form) != 2 {
			t.Errorf("offline update form = %v", s.Form)
		}
		if _, has := s.Header["If-Match"]; has {
			t.Errorf("offline update sent If-Match")
		}
	}
	if n := f.count(func(s seen) bool { return s.Method == "POST" }); n != 20 {
		t.Errorf("%d worker updates, want 20", n)
	}
}

func TestTakeOfflineWithoutOfflineActivity(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		writeJSON(w, 200, map[string]any{"activities": []any{map[string]any{"sid": sid("WA", 5), "friendly_name": "Offline Break"}}, "meta": map[string]any{}})
	})
	c := newTestClient(t, f.srv.URL, nil)
	err := c.TakeOffline(context.Background(), sid("WK", 1))
	if err == nil || !strings.Contains(err.Error(), `no activity named "Offline"`) || IsTransient(err) {
		t.Fatalf("err = %v", err)
	}
	if n := f.count(func(s seen) bool { return s.Method == "POST" }); n != 0 {
		t.Errorf("worker updated without an Offline activity")
	}
}

// pagedFake serves pages of workers; page i links to page i+1 with next_page_url
// built by link(i+1).
func pagedFake(t *testing.T, pages [][]string, link func(f *fake, next int) string) *fake {
	var f *fake
	f = newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		p := 0
		if tok := s.Query.Get("PageToken"); tok != "" {
			_, _ = fmt.Sscanf(tok, "PT%d", &p)
		}
		var ws []map[string]any
		for i, name := range pages[p] {
			ws = append(ws, workerJSON(sid("WK", p*100+i), name, ""))
		}
		meta := map[string]any{"page": p, "page_size": 1000, "key": "workers", "next_page_url": nil}
		if p+1 < len(pages) {
			meta["next_page_url"] = link(f, p+1)
		}
		writeJSON(w, 200, map[string]any{"workers": ws, "meta": meta})
	})
	return f
}

func TestListWorkersFollowsNextPageURL(t *testing.T) {
	pages := [][]string{{"a1", "a2"}, {"b1"}, {"c1", "c2", "c3"}}
	f := pagedFake(t, pages, func(f *fake, next int) string {
		q := fmt.Sprintf("?PageSize=1000&Page=%d&PageToken=PT%d", next, next)
		if next == 1 {
			// As real Twilio writes it: redirected to the base URL.
			return twilioBaseURL + workersPath("") + q
		}
		// As a redirected server may write it: its own address.
		return f.srv.URL + "/prefix" + workersPath("") + q
	})
	c := newTestClient(t, f.srv.URL+"/prefix", nil)
	var names []string
	err := c.ListWorkers(context.Background(), func(w Worker) error {
		names = append(names, w.FriendlyName)
		if w.ETag != "" {
			t.Errorf("listed worker has an ETag")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ListWorkers: %v", err)
	}
	if got := strings.Join(names, ","); got != "a1,a2,b1,c1,c2,c3" {
		t.Errorf("visited %s", got)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.Path != "/prefix"+workersPath("") || r.Query.Get("PageSize") != "1000" || !r.HasAuth {
			t.Errorf("request %d = %s?%s auth=%v", i, r.Path, r.RawQuery, r.HasAuth)
		}
		if i > 0 && r.Query.Get("PageToken") != fmt.Sprintf("PT%d", i) {
			t.Errorf("request %d did not follow next_page_url: %s", i, r.RawQuery)
		}
	}

	// An error from visit stops the walk and comes back as is.
	stop := errors.New("stop")
	before := len(f.requests())
	err = c.ListWorkers(context.Background(), func(w Worker) error { return stop })
	if err != stop {
		t.Errorf("err = %v, want the visit error", err)
	}
	if n := len(f.requests()) - before; n != 1 {
		t.Errorf("%d requests after the visit error, want 1", n)
	}
}

func TestListWorkersRefusesForeignNextPage(t *testing.T) {
	var foreignHits atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { foreignHits.Add(1) }))
	defer foreign.Close()
	f := pagedFake(t, [][]string{{"a"}, {"b"}}, func(_ *fake, next int) string {
		return foreign.URL + workersPath("") + "?PageToken=PT1"
	})
	c := newTestClient(t, f.srv.URL, nil)
	err := c.ListWorkers(context.Background(), func(Worker) error { return nil })
	if err == nil || !errors.Is(err, errForeignHost) || IsTransient(err) {
		t.Fatalf("err = %v, want refusal", err)
	}
	if foreignHits.Load() != 0 {
		t.Errorf("foreign host was contacted")
	}
}

func TestListWorkersStopsOnRepeatedPage(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		writeJSON(w, 200, map[string]any{"workers": []any{}, "meta": map[string]any{"next_page_url": twilioBaseURL + workersPath("") + "?PageToken=same"}})
	})
	c := newTestClient(t, f.srv.URL, nil)
	err := c.ListWorkers(context.Background(), func(Worker) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestFindWorker(t *testing.T) {
	wk := sid("WK", 77)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		switch s.Path {
		case workersPath(""):
			var ws []map[string]any
			if strings.EqualFold(s.Query.Get("FriendlyName"), "Ann@Example.com") {
				ws = append(ws, workerJSON(wk, "ann@example.com", "")) // lists omit attributes
			}
			if s.Query.Get("FriendlyName") == "near" {
				ws = append(ws, workerJSON(sid("WK", 78), "nearly", ""))
			}
			writeJSON(w, 200, map[string]any{"workers": ws, "meta": map[string]any{}})
		case workersPath("/" + wk):
			w.Header().Set("ETag", "etag-77")
			writeJSON(w, 200, workerJSON(wk, "ann@example.com", `{"roles":["admin"]}`))
		default:
			writeJSON(w, 404, map[string]any{"code": 20404, "status": 404})
		}
	})
	c := newTestClient(t, f.srv.URL, nil)
	ctx := context.Background()

	w, found, err := c.FindWorker(ctx, "ANN@example.com")
	if err != nil || !found {
		t.Fatalf("FindWorker = %v, %v", found, err)
	}
	if w.SID != wk || w.Attributes != `{"roles":["admin"]}` || w.ETag != "etag-77" {
		t.Errorf("FindWorker = %+v, want attributes and ETag from the fetch", w)
	}
	reqs := f.requests()
	if len(reqs) != 2 || reqs[0].Query.Get("FriendlyName") != "ANN@example.com" || reqs[1].Path != workersPath("/"+wk) {
		t.Errorf("requests = %+v", reqs)
	}
	// twilio-go's PageWorker would send FriendlyName=jane@example.com for this one.
	before := len(f.requests())
	if _, found, err := c.FindWorker(ctx, "jane.2020@example.com"); found || err != nil {
		t.Errorf("FindWorker(jane.2020) = %v, %v", found, err)
	}
	if r := f.requests()[before]; r.Query.Get("FriendlyName") != "jane.2020@example.com" || r.Query.Get("PageSize") != "50" {
		t.Errorf("FindWorker sent query %q", r.RawQuery)
	}
	for _, name := range []string{"nobody", "near"} {
		if _, found, err := c.FindWorker(ctx, name); found || err != nil {
			t.Errorf("FindWorker(%q) = %v, %v; want not found", name, found, err)
		}
	}
}

func TestErrorBodiesAreClosedAndConnectionsReused(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The JSON value first, then (chunked, a moment later) trailing whitespace:
		// twilio-go's decoder stops after the value, so the body is not at EOF when
		// twilio-go returns, and it never closes error bodies.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(404)
		_, _ = io.WriteString(w, `{"code":20404,"message":"not found","status":404}`)
		w.(http.Flusher).Flush()
		time.Sleep(5 * time.Millisecond)
		_, _ = io.WriteString(w, strings.Repeat(" ", 100)+"\n")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.HTTPClient = srv.Client() })
	for range 5 {
		if _, err := c.FetchWorker(context.Background(), sid("WK", 1)); !IsNotFound(err) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential calls, want 1 (error bodies leaked?)", n)
	}
}

func TestLogsCarryNoSecretsOrAttributes(t *testing.T) {
	const marker = "SECRET-ATTRIBUTE-VALUE"
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, s seen) {
		if r.Method == "POST" && s.Path == workersPath("") {
			writeJSON(w, 201, workerJSON(sid("WK", 5), "private.person@example.com", s.Form.Get("Attributes")))
			return
		}
		writeJSON(w, 400, map[string]any{"code": 20001, "message": "Worker private.person@example.com " + marker, "status": 400})
	})
	core, logs := observer.New(zapcore.DebugLevel)
	c, err := New(Config{AccountSID: testAccount, AuthToken: testToken, WorkspaceSID: testWorkspace, BaseURL: f.srv.URL}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CreateWorker(ctx, "private.person@example.com", `{"k":"`+marker+`"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateWorkerAttributes(ctx, sid("WK", 5), `{"k":"`+marker+`"}`, ""); !IsDuplicateName(err) {
		t.Fatalf("err = %v", err)
	}
	entries := logs.AllUntimed()
	if len(entries) < 2 {
		t.Fatalf("%d log entries, want one per call", len(entries))
	}
	sawSID := false
	for _, e := range entries {
		text := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		for _, secret := range []string{testToken, marker, "private.person"} {
			if strings.Contains(text, secret) {
				t.Errorf("log entry leaks %q: %s", secret, text)
			}
		}
		if e.ContextMap()["worker_sid"] == sid("WK", 5) && e.ContextMap()["workspace_sid"] == testWorkspace {
			sawSID = true
		}
	}
	if !sawSID {
		t.Errorf("no log entry carries the worker and workspace SIDs: %v", entries)
	}
}
