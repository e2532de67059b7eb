package sandbox_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	trv1 "github.com/twilio/twilio-go/rest/taskrouter/v1"

	"github.com/flexbridge/flexbridge/internal/taskrouter/sandbox"
)

const twilioBase = "https://taskrouter.twilio.com"

var (
	workerSID   = regexp.MustCompile(`^WK[0-9a-f]{32}$`)
	activitySID = regexp.MustCompile(`^WA[0-9a-f]{32}$`)
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	srv   *sandbox.Server
	http  *httptest.Server
	tr    *trv1.ApiService
	clock *fakeClock
}

// start serves a sandbox (one workspace, testWS) with BaseURL set to Twilio's, as the
// real service writes it, and returns a twilio-go client redirected to it.
func start(t *testing.T, opts sandbox.Options) *env {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("CET", 3600))}
	if opts.AccountSID == "" {
		opts.AccountSID = testAccount
	}
	if opts.AuthToken == "" {
		opts.AuthToken = testToken
	}
	if opts.Workspaces == nil {
		opts.Workspaces = []string{testWS}
	}
	if opts.BaseURL == "" {
		opts.BaseURL = twilioBase
	}
	opts.Now = clock.Now
	srv := sandbox.New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &env{srv: srv, http: hs, tr: newTwilio(t, hs.URL, opts.AccountSID, opts.AuthToken, nil), clock: clock}
}

func (e *env) createWorker(t *testing.T, name, attrs string) *trv1.TaskrouterV1Worker {
	t.Helper()
	p := (&trv1.CreateWorkerParams{}).SetFriendlyName(name)
	if attrs != "" {
		p.SetAttributes(attrs)
	}
	wk, err := e.tr.CreateWorker(testWS, p)
	if err != nil {
		t.Fatalf("CreateWorker(%q): %v", name, err)
	}
	return wk
}

// do sends a raw request to the sandbox (path relative to it) with basic auth.
func (e *env) do(t *testing.T, method, path string, form url.Values, header http.Header) (*http.Response, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.http.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth(testAccount, testToken)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v\n%s", method, path, err, raw)
		}
	}
	return resp, out
}

func TestWorkerLifecycle(t *testing.T) {
	e := start(t, sandbox.Options{})
	created := e.clock.Now().UTC().Truncate(time.Second)

	wk := e.createWorker(t, "alice@example.com", "")
	sid := deref(t, "sid", wk.Sid)
	if !workerSID.MatchString(sid) {
		t.Errorf("sid = %q, want WK + 32 hex digits", sid)
	}
	wantURL := twilioBase + "/v1/Workspaces/" + testWS + "/Workers/" + sid
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"friendly_name", deref(t, "friendly_name", wk.FriendlyName), "alice@example.com"},
		{"attributes", deref(t, "attributes", wk.Attributes), "{}"},
		{"activity_name", deref(t, "activity_name", wk.ActivityName), "Offline"},
		{"available", deref(t, "available", wk.Available), false},
		{"account_sid", deref(t, "account_sid", wk.AccountSid), testAccount},
		{"workspace_sid", deref(t, "workspace_sid", wk.WorkspaceSid), testWS},
		{"url", deref(t, "url", wk.Url), wantURL},
		{"date_created", deref(t, "date_created", wk.DateCreated), created},
		{"date_updated", deref(t, "date_updated", wk.DateUpdated), created},
		{"date_status_changed", deref(t, "date_status_changed", wk.DateStatusChanged), created},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
	links := deref(t, "links", wk.Links)
	if links["workspace"] != twilioBase+"/v1/Workspaces/"+testWS || links["channels"] != wantURL+"/Channels" {
		t.Errorf("links = %v", links)
	}
	offlineSID := deref(t, "activity_sid", wk.ActivitySid)
	if links["activity"] != twilioBase+"/v1/Workspaces/"+testWS+"/Activities/"+offlineSID {
		t.Errorf("links.activity = %v", links["activity"])
	}

	fetched, err := e.tr.FetchWorkerWithMetadata(testWS, sid)
	if err != nil {
		t.Fatalf("FetchWorker: %v", err)
	}
	etag1 := fetched.GetHeaders().Get("ETag")
	if etag1 == "" {
		t.Fatal("fetch: no ETag header")
	}
	if got := fetched.GetResource(); deref(t, "friendly_name", got.FriendlyName) != "alice@example.com" {
		t.Errorf("fetched %v", got)
	}

	// Update with the current ETag: accepted, new ETag, dates move.
	e.clock.Advance(90 * time.Second)
	later := created.Add(90 * time.Second)
	upd, err := e.tr.UpdateWorkerWithMetadata(testWS, sid, (&trv1.UpdateWorkerParams{}).
		SetIfMatch(etag1).
		SetAttributes(`{"roles":["agent"],"email":"alice@example.com"}`))
	if err != nil {
		t.Fatalf("UpdateWorker with the current ETag: %v", err)
	}
	etag2 := upd.GetHeaders().Get("ETag")
	if etag2 == "" || etag2 == etag1 {
		t.Fatalf("ETag after update = %q, want a new value (before: %q)", etag2, etag1)
	}
	w2 := upd.GetResource()
	if got := deref(t, "attributes", w2.Attributes); got != `{"roles":["agent"],"email":"alice@example.com"}` {
		t.Errorf("attributes after update = %s", got)
	}
	if got := deref(t, "date_updated", w2.DateUpdated); !got.Equal(later) {
		t.Errorf("date_updated = %v, want %v", got, later)
	}
	if got := deref(t, "date_status_changed", w2.DateStatusChanged); !got.Equal(created) {
		t.Errorf("date_status_changed moved without an activity change: %v", got)
	}
	if again, _ := e.tr.FetchWorkerWithMetadata(testWS, sid); again.GetHeaders().Get("ETag") != etag2 {
		t.Errorf("fetch after update: ETag %q, want %q", again.GetHeaders().Get("ETag"), etag2)
	}

	// Update with the stale ETag: 412, nothing changed.
	_, err = e.tr.UpdateWorker(testWS, sid, (&trv1.UpdateWorkerParams{}).SetIfMatch(etag1).SetFriendlyName("mallory"))
	wantRestError(t, err, http.StatusPreconditionFailed, 20412)
	now, err := e.tr.FetchWorker(testWS, sid)
	if err != nil {
		t.Fatal(err)
	}
	if deref(t, "friendly_name", now.FriendlyName) != "alice@example.com" {
		t.Errorf("a refused update changed the worker: %q", *now.FriendlyName)
	}

	// Even an update that changes nothing makes a new ETag.
	upd3, err := e.tr.UpdateWorkerWithMetadata(testWS, sid, &trv1.UpdateWorkerParams{})
	if err != nil {
		t.Fatal(err)
	}
	etag3 := upd3.GetHeaders().Get("ETag")
	if etag3 == etag2 {
		t.Errorf("ETag did not change on update: %q", etag3)
	}

	// Delete: a stale If-Match is refused, the current one accepted.
	err = e.tr.DeleteWorker(testWS, sid, (&trv1.DeleteWorkerParams{}).SetIfMatch(etag2))
	wantRestError(t, err, http.StatusPreconditionFailed, 20412)
	del, err := e.tr.DeleteWorkerWithMetadata(testWS, sid, (&trv1.DeleteWorkerParams{}).SetIfMatch(etag3))
	if err != nil {
		t.Fatalf("DeleteWorker with the current ETag: %v", err)
	}
	if del.GetStatusCode() != http.StatusNoContent {
		t.Errorf("delete status = %d, want 204", del.GetStatusCode())
	}
	_, err = e.tr.FetchWorker(testWS, sid)
	re := wantRestError(t, err, http.StatusNotFound, 20404)
	if !strings.Contains(re.Message, sid) {
		t.Errorf("404 message %q does not name the resource", re.Message)
	}
	err = e.tr.DeleteWorker(testWS, sid, nil)
	wantRestError(t, err, http.StatusNotFound, 20404)
	_, err = e.tr.UpdateWorker(testWS, sid, (&trv1.UpdateWorkerParams{}).SetFriendlyName("x"))
	wantRestError(t, err, http.StatusNotFound, 20404)
}

func TestIfMatchForms(t *testing.T) {
	e := start(t, sandbox.Options{})
	sid := *e.createWorker(t, "bob", "").Sid
	res, err := e.tr.FetchWorkerWithMetadata(testWS, sid)
	if err != nil {
		t.Fatal(err)
	}
	etag := res.GetHeaders().Get("ETag")
	if !regexp.MustCompile(`^"[^"]+"$`).MatchString(etag) {
		t.Errorf("ETag %q is not a quoted entity tag", etag)
	}
	for _, form := range []func(string) string{
		func(tag string) string { return tag },
		func(tag string) string { return strings.Trim(tag, `"`) },
		func(tag string) string { return "W/" + tag },
		func(tag string) string { return `"nope", ` + tag },
		func(string) string { return "*" },
	} {
		ifMatch := form(etag)
		got, err := e.tr.UpdateWorkerWithMetadata(testWS, sid, (&trv1.UpdateWorkerParams{}).SetIfMatch(ifMatch))
		if err != nil {
			t.Fatalf("If-Match %q refused: %v", ifMatch, err)
		}
		etag = got.GetHeaders().Get("ETag")
	}
	_, err = e.tr.UpdateWorker(testWS, sid, (&trv1.UpdateWorkerParams{}).SetIfMatch(`"999"`))
	wantRestError(t, err, http.StatusPreconditionFailed, 20412)
}

func TestActivityChange(t *testing.T) {
	e := start(t, sandbox.Options{})
	acts, err := e.tr.ListActivity(testWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]trv1.TaskrouterV1Activity{}
	for _, a := range acts {
		byName[*a.FriendlyName] = a
		if !activitySID.MatchString(*a.Sid) {
			t.Errorf("activity sid %q", *a.Sid)
		}
	}
	for name, avail := range map[string]bool{"Offline": false, "Available": true, "Unavailable": false, "Break": false} {
		a, ok := byName[name]
		if !ok {
			t.Fatalf("activity %q missing (have %v)", name, acts)
		}
		if *a.Available != avail {
			t.Errorf("%s.available = %v, want %v", name, *a.Available, avail)
		}
	}
	available := *byName["Available"].Sid
	offline := *byName["Offline"].Sid

	wk, err := e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("carol").SetActivitySid(available))
	if err != nil {
		t.Fatal(err)
	}
	if *wk.ActivityName != "Available" || !*wk.Available {
		t.Errorf("created in %s available=%v, want Available/true", *wk.ActivityName, *wk.Available)
	}

	// RejectPendingReservations needs an unavailable target activity.
	_, err = e.tr.UpdateWorker(testWS, *wk.Sid, (&trv1.UpdateWorkerParams{}).SetRejectPendingReservations(true))
	wantRestError(t, err, http.StatusBadRequest, 20001)

	e.clock.Advance(time.Minute)
	upd, err := e.tr.UpdateWorker(testWS, *wk.Sid, (&trv1.UpdateWorkerParams{}).SetActivitySid(offline).SetRejectPendingReservations(true))
	if err != nil {
		t.Fatalf("taking the worker offline: %v", err)
	}
	if *upd.ActivityName != "Offline" || *upd.Available {
		t.Errorf("after update: %s available=%v", *upd.ActivityName, *upd.Available)
	}
	if !upd.DateStatusChanged.After(*wk.DateStatusChanged) {
		t.Errorf("date_status_changed %v did not move past %v", upd.DateStatusChanged, wk.DateStatusChanged)
	}

	for _, bad := range []string{"WA00000000000000000000000000000000", "Offline"} {
		_, err = e.tr.UpdateWorker(testWS, *wk.Sid, (&trv1.UpdateWorkerParams{}).SetActivitySid(bad))
		wantRestError(t, err, http.StatusBadRequest, 20001)
		_, err = e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("dave").SetActivitySid(bad))
		wantRestError(t, err, http.StatusBadRequest, 20001)
	}

	one, err := e.tr.FetchActivity(testWS, available)
	if err != nil || *one.FriendlyName != "Available" {
		t.Fatalf("FetchActivity = %v, %v", one, err)
	}
	_, err = e.tr.FetchActivity(testWS, "WA00000000000000000000000000000000")
	wantRestError(t, err, http.StatusNotFound, 20404)

	filtered, err := e.tr.ListActivity(testWS, (&trv1.ListActivityParams{}).SetFriendlyName("bREAK"))
	if err != nil || len(filtered) != 1 || *filtered[0].FriendlyName != "Break" {
		t.Errorf("ListActivity(FriendlyName=bREAK) = %v, %v", filtered, err)
	}
	availOnly, err := e.tr.ListActivity(testWS, (&trv1.ListActivityParams{}).SetAvailable("yes"))
	if err != nil || len(availOnly) != 1 || *availOnly[0].FriendlyName != "Available" {
		t.Errorf("ListActivity(Available=yes) = %v, %v", availOnly, err)
	}
}

func TestListPaging(t *testing.T) {
	e := start(t, sandbox.Options{})
	want := make([]string, 120)
	for i := range want {
		want[i] = *e.createWorker(t, fmt.Sprintf("agent%03d", i), fmt.Sprintf(`{"n":%d}`, i)).Sid
	}

	got, err := e.tr.ListWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(50))
	if err != nil {
		t.Fatalf("ListWorker: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ListWorker returned %d workers, want %d", len(got), len(want))
	}
	for i, wk := range got {
		if *wk.Sid != want[i] {
			t.Fatalf("worker %d = %s, want %s (creation order)", i, *wk.Sid, want[i])
		}
		if wk.Attributes != nil {
			t.Fatalf("list item %d carries attributes %q; TaskRouter returns them only on fetch", i, *wk.Attributes)
		}
	}
	// twilio-go made three requests (50 + 50 + 20), following next_page_url.
	if n := e.srv.Stats().Count("GET", sandbox.RouteWorkers); n != 3 {
		t.Errorf("GET /Workers requests = %d, want 3", n)
	}

	// The meta object of the first and last page.
	first, err := e.tr.PageWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(50), "", "")
	if err != nil {
		t.Fatal(err)
	}
	listURL := twilioBase + "/v1/Workspaces/" + testWS + "/Workers"
	m := first.Meta
	if m.Key != "workers" || m.Page != 0 || m.PageSize != 50 || m.PreviousPageUrl != nil ||
		m.FirstPageUrl != listURL+"?PageSize=50&Page=0" || m.Url != listURL+"?PageSize=50&Page=0" {
		t.Errorf("first page meta = %+v", m)
	}
	if m.NextPageUrl == nil || !strings.HasPrefix(*m.NextPageUrl, listURL+"?PageSize=50&Page=1&PageToken=") {
		t.Fatalf("next_page_url = %v", m.NextPageUrl)
	}
	second, err := e.tr.PageWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(50), tokenOf(t, *m.NextPageUrl), "1")
	if err != nil {
		t.Fatal(err)
	}
	third, err := e.tr.PageWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(50), tokenOf(t, *second.Meta.NextPageUrl), "2")
	if err != nil {
		t.Fatal(err)
	}
	if len(third.Workers) != 20 || third.Meta.NextPageUrl != nil || third.Meta.Page != 2 {
		t.Errorf("last page: %d workers, next %v, page %d", len(third.Workers), third.Meta.NextPageUrl, third.Meta.Page)
	}
	if third.Meta.PreviousPageUrl == nil {
		t.Fatal("last page has no previous_page_url")
	}
	prev, err := e.tr.PageWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(50), tokenOf(t, *third.Meta.PreviousPageUrl), "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(prev.Workers) != 50 || *prev.Workers[0].Sid != want[50] || *prev.Workers[49].Sid != want[99] {
		t.Errorf("previous page of the last = %d workers from %s", len(prev.Workers), *prev.Workers[0].Sid)
	}

	// Without a token, Page is an offset.
	byPage, err := e.tr.PageWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(50), "", "2")
	if err != nil || len(byPage.Workers) != 20 || *byPage.Workers[0].Sid != want[100] {
		t.Errorf("Page=2 without token: %v", err)
	}
}

// tokenOf returns the PageToken of a page URL.
func tokenOf(t *testing.T, pageURL string) string {
	t.Helper()
	u, err := url.Parse(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	tok := u.Query().Get("PageToken")
	if tok == "" {
		t.Fatalf("no PageToken in %s", pageURL)
	}
	return tok
}

// Deleting and creating workers while a client pages neither skips nor repeats one.
func TestListPagingStableUnderChanges(t *testing.T) {
	e := start(t, sandbox.Options{})
	var sids []string
	for i := 0; i < 10; i++ {
		sids = append(sids, *e.createWorker(t, fmt.Sprintf("w%d", i), "").Sid)
	}
	p1, err := e.tr.PageWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(4), "", "")
	if err != nil {
		t.Fatal(err)
	}
	// Delete one already seen and one not yet seen; add one at the end.
	for _, sid := range []string{sids[1], sids[6]} {
		if err := e.tr.DeleteWorker(testWS, sid, nil); err != nil {
			t.Fatal(err)
		}
	}
	added := *e.createWorker(t, "late", "").Sid
	seen := map[string]bool{}
	for _, wk := range p1.Workers {
		seen[*wk.Sid] = true
	}
	next := p1.Meta.NextPageUrl
	for page := 1; next != nil; page++ {
		pg, err := e.tr.PageWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(4), tokenOf(t, *next), fmt.Sprint(page))
		if err != nil {
			t.Fatal(err)
		}
		for _, wk := range pg.Workers {
			if seen[*wk.Sid] {
				t.Errorf("worker %s listed twice", *wk.Sid)
			}
			seen[*wk.Sid] = true
		}
		next = pg.Meta.NextPageUrl
	}
	for i, sid := range sids {
		if i != 6 && !seen[sid] {
			t.Errorf("worker %d (%s) skipped", i, sid)
		}
	}
	if seen[sids[6]] {
		t.Error("a worker deleted before its page was read was listed")
	}
	if !seen[added] {
		t.Error("a worker created during paging was not listed at the end")
	}
}

func TestListFilters(t *testing.T) {
	e := start(t, sandbox.Options{})
	acts, err := e.tr.ListActivity(testWS, (&trv1.ListActivityParams{}).SetFriendlyName("Available"))
	if err != nil || len(acts) != 1 {
		t.Fatal(acts, err)
	}
	for _, name := range []string{"agent1", "agent10", "Agent2"} {
		e.createWorker(t, name, "")
	}
	if _, err := e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("agent3").SetActivitySid(*acts[0].Sid)); err != nil {
		t.Fatal(err)
	}

	names := func(p *trv1.ListWorkerParams) []string {
		t.Helper()
		ws, err := e.tr.ListWorker(testWS, p)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, w := range ws {
			out = append(out, *w.FriendlyName)
		}
		return out
	}
	for _, c := range []struct {
		name string
		p    *trv1.ListWorkerParams
		want string
	}{
		{"exact name", (&trv1.ListWorkerParams{}).SetFriendlyName("agent1"), "agent1"},
		{"name in other case", (&trv1.ListWorkerParams{}).SetFriendlyName("AGENT2"), "Agent2"},
		{"no prefix match", (&trv1.ListWorkerParams{}).SetFriendlyName("agent"), ""},
		{"available", (&trv1.ListWorkerParams{}).SetAvailable("1"), "agent3"},
		{"not available", (&trv1.ListWorkerParams{}).SetAvailable("false"), "agent1,agent10,Agent2"},
		{"activity name", (&trv1.ListWorkerParams{}).SetActivityName("offline"), "agent1,agent10,Agent2"},
		{"activity sid", (&trv1.ListWorkerParams{}).SetActivitySid(*acts[0].Sid), "agent3"},
		{"ignored filter", (&trv1.ListWorkerParams{}).SetTargetWorkersExpression("1==1"), "agent1,agent10,Agent2,agent3"},
	} {
		if got := strings.Join(names(c.p), ","); got != c.want {
			t.Errorf("%s: got [%s], want [%s]", c.name, got, c.want)
		}
	}

	// Filters are kept in the page URLs.
	pg, err := e.tr.PageWorker(testWS, (&trv1.ListWorkerParams{}).SetFriendlyName("Agent 2&x").SetPageSize(1), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "?FriendlyName=Agent+2%26x&PageSize=1&Page=0"; !strings.HasSuffix(pg.Meta.Url, want) {
		t.Errorf("meta.url = %s, want suffix %s", pg.Meta.Url, want)
	}
}

func TestFriendlyNameRules(t *testing.T) {
	e := start(t, sandbox.Options{})
	alice := e.createWorker(t, "Alice@Example.com", "")
	bob := e.createWorker(t, "bob@example.com", "")

	_, err := e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("alice@example.COM"))
	re := wantRestError(t, err, http.StatusBadRequest, 20001)
	if !strings.Contains(re.Message, "already exists") {
		t.Errorf("duplicate message %q", re.Message)
	}
	_, err = e.tr.UpdateWorker(testWS, *bob.Sid, (&trv1.UpdateWorkerParams{}).SetFriendlyName("ALICE@example.com"))
	wantRestError(t, err, http.StatusBadRequest, 20001)

	// Renaming a worker to its own name in another case is fine, and frees nothing.
	if _, err := e.tr.UpdateWorker(testWS, *alice.Sid, (&trv1.UpdateWorkerParams{}).SetFriendlyName("alice@example.com")); err != nil {
		t.Fatalf("case-only rename: %v", err)
	}
	_, err = e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("Alice@Example.com"))
	wantRestError(t, err, http.StatusBadRequest, 20001)

	// A deleted worker's name can be used again; a renamed worker's old name too.
	if _, err := e.tr.UpdateWorker(testWS, *bob.Sid, (&trv1.UpdateWorkerParams{}).SetFriendlyName("robert@example.com")); err != nil {
		t.Fatal(err)
	}
	e.createWorker(t, "BOB@example.com", "")
	if err := e.tr.DeleteWorker(testWS, *alice.Sid, nil); err != nil {
		t.Fatal(err)
	}
	e.createWorker(t, "alice@example.com", "")

	// Length: 64 characters (not bytes) fit, 65 do not.
	e.createWorker(t, strings.Repeat("é", 64), "")
	_, err = e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName(strings.Repeat("x", 65)))
	wantRestError(t, err, http.StatusBadRequest, 20001)
	_, err = e.tr.UpdateWorker(testWS, *bob.Sid, (&trv1.UpdateWorkerParams{}).SetFriendlyName(strings.Repeat("x", 65)))
	wantRestError(t, err, http.StatusBadRequest, 20001)

	// Missing or empty.
	_, err = e.tr.CreateWorker(testWS, &trv1.CreateWorkerParams{})
	re = wantRestError(t, err, http.StatusBadRequest, 20001)
	if !strings.Contains(re.Message, "FriendlyName") {
		t.Errorf("missing FriendlyName message %q", re.Message)
	}
	_, err = e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName(""))
	wantRestError(t, err, http.StatusBadRequest, 20001)
}

func TestAttributesRules(t *testing.T) {
	e := start(t, sandbox.Options{})
	// {"k":"xxx..."} padded to exactly n characters.
	attrs := func(n int) string { return `{"k":"` + strings.Repeat("x", n-8) + `"}` }
	if len(attrs(4096)) != 4096 {
		t.Fatal("bad helper")
	}
	wk := e.createWorker(t, "max", attrs(sandbox.MaxAttributesLength))
	if len(*wk.Attributes) != 4096 {
		t.Errorf("stored %d characters", len(*wk.Attributes))
	}
	_, err := e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("over").SetAttributes(attrs(4097)))
	re := wantRestError(t, err, http.StatusBadRequest, 20001)
	if !strings.Contains(re.Message, "4096") {
		t.Errorf("message %q does not give the limit", re.Message)
	}
	_, err = e.tr.UpdateWorker(testWS, *wk.Sid, (&trv1.UpdateWorkerParams{}).SetAttributes(attrs(4097)))
	wantRestError(t, err, http.StatusBadRequest, 20001)

	for _, bad := range []string{`{"a":`, `["agent"]`, `"x"`, `42`, ``, `{"a":1} {"b":2}`} {
		_, err = e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("bad").SetAttributes(bad))
		wantRestError(t, err, http.StatusBadRequest, 20001)
		_, err = e.tr.UpdateWorker(testWS, *wk.Sid, (&trv1.UpdateWorkerParams{}).SetAttributes(bad))
		wantRestError(t, err, http.StatusBadRequest, 20001)
	}
	// Attributes are stored byte for byte, whitespace included.
	const spaced = "{ \"routing\" : {\"skills\": [\"en\"]},\n \"full_name\":\"Zoë\" }"
	upd, err := e.tr.UpdateWorker(testWS, *wk.Sid, (&trv1.UpdateWorkerParams{}).SetAttributes(spaced))
	if err != nil {
		t.Fatal(err)
	}
	if *upd.Attributes != spaced {
		t.Errorf("attributes = %q, want %q", *upd.Attributes, spaced)
	}
}

func TestAuthentication(t *testing.T) {
	e := start(t, sandbox.Options{})
	for _, c := range []struct{ name, user, pass string }{
		{"wrong token", testAccount, "wrong"},
		{"wrong account", "AC00000000000000000000000000000000", testToken},
		{"no credentials", "", ""},
	} {
		tr := newTwilio(t, e.http.URL, c.user, c.pass, nil)
		_, err := tr.FetchWorkspace(testWS)
		re := wantRestError(t, err, http.StatusUnauthorized, 20003)
		if re.Message != "Authenticate" {
			t.Errorf("%s: message %q", c.name, re.Message)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/v1/Workspaces/"+testWS, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("no credentials: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if st := e.srv.Stats(); st.Unauthorized != 4 || len(st.Requests) != 0 {
		t.Errorf("stats after refused requests: %+v", st)
	}

	// Without an AuthToken any credentials do, but some are needed.
	open := sandbox.New(sandbox.Options{Workspaces: []string{testWS}})
	hs := httptest.NewServer(open)
	defer hs.Close()
	if _, err := newTwilio(t, hs.URL, "ACanything", "whatever", nil).FetchWorkspace(testWS); err != nil {
		t.Errorf("open sandbox refused credentials: %v", err)
	}
	_, err = newTwilio(t, hs.URL, "", "", nil).FetchWorkspace(testWS)
	wantRestError(t, err, http.StatusUnauthorized, 20003)
}

// TestNotFoundAndMethods also checks the shape of Twilio errors, which Prism cannot:
// the description declares no error responses.
func TestNotFoundAndMethods(t *testing.T) {
	e := start(t, sandbox.Options{})
	other := "WS00000000000000000000000000000000"
	_, err := e.tr.FetchWorkspace(other)
	wantRestError(t, err, http.StatusNotFound, 20404)
	_, err = e.tr.CreateWorker(other, (&trv1.CreateWorkerParams{}).SetFriendlyName("x"))
	wantRestError(t, err, http.StatusNotFound, 20404)
	_, err = e.tr.ListWorker(other, nil)
	wantRestError(t, err, http.StatusNotFound, 20404)
	_, err = e.tr.ListActivity(other, nil)
	wantRestError(t, err, http.StatusNotFound, 20404)

	for _, c := range []struct {
		method, path string
		status, code int
	}{
		{"GET", "/v1/Workspaces/" + testWS + "/Tasks", 404, 20404},
		{"GET", "/v1/Workspaces/" + testWS + "/Workers/", 404, 20404},
		{"GET", "/2010-04-01/Accounts", 404, 20404},
		{"PUT", "/v1/Workspaces/" + testWS + "/Workers", 405, 20004},
		{"DELETE", "/v1/Workspaces/" + testWS, 405, 20004},
		{"GET", "/v1/Workspaces/" + testWS + "/Workers?PageSize=0", 400, 20001},
		{"GET", "/v1/Workspaces/" + testWS + "/Workers?PageSize=ten", 400, 20001},
		{"GET", "/v1/Workspaces/" + testWS + "/Workers?PageToken=bogus", 400, 20001},
	} {
		resp, body := e.do(t, c.method, c.path, nil, nil)
		if got := strings.Join(keys(body), ","); got != "code,message,more_info,status" {
			t.Errorf("%s %s: error fields %s, want Twilio's code,message,more_info,status", c.method, c.path, got)
		}
		if resp.StatusCode != c.status || body["code"] != float64(c.code) || body["status"] != float64(c.status) ||
			body["more_info"] != fmt.Sprintf("https://www.twilio.com/docs/errors/%d", c.code) || body["message"] == "" {
			t.Errorf("%s %s: %d %v, want %d code %d", c.method, c.path, resp.StatusCode, body, c.status, c.code)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, ct)
		}
	}

	// PageSize above the maximum is capped.
	resp, body := e.do(t, "GET", "/v1/Workspaces/"+testWS+"/Workers?PageSize=5000", nil, nil)
	if resp.StatusCode != 200 || body["meta"].(map[string]any)["page_size"] != float64(1000) {
		t.Errorf("PageSize=5000: %d %v", resp.StatusCode, body["meta"])
	}
}

func TestWorkspaces(t *testing.T) {
	second := "WS11111111111111111111111111111111"
	e := start(t, sandbox.Options{Workspaces: []string{testWS, second, testWS}})
	if got := e.srv.Workspaces(); len(got) != 2 || got[0] != testWS || got[1] != second {
		t.Fatalf("Workspaces() = %v", got)
	}
	ws, err := e.tr.FetchWorkspace(testWS)
	if err != nil {
		t.Fatal(err)
	}
	if *ws.FriendlyName != "Flex Task Assignment" || *ws.DefaultActivityName != "Offline" ||
		*ws.TimeoutActivityName != "Offline" || *ws.AccountSid != testAccount ||
		*ws.Url != twilioBase+"/v1/Workspaces/"+testWS || (*ws.Links)["workers"] != twilioBase+"/v1/Workspaces/"+testWS+"/Workers" {
		t.Errorf("workspace = %+v", ws)
	}
	list, err := e.tr.ListWorkspace(nil)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListWorkspace = %d, %v", len(list), err)
	}
	named, err := e.tr.ListWorkspace((&trv1.ListWorkspaceParams{}).SetFriendlyName("flex task assignment"))
	if err != nil || len(named) != 1 || *named[0].Sid != testWS {
		t.Errorf("ListWorkspace(FriendlyName) = %v, %v", named, err)
	}

	// Workspaces are separate: the same name in both, and workers are not visible across.
	wk := e.createWorker(t, "same", "")
	if _, err := e.tr.CreateWorker(second, (&trv1.CreateWorkerParams{}).SetFriendlyName("same")); err != nil {
		t.Fatalf("same name in another workspace: %v", err)
	}
	_, err = e.tr.FetchWorker(second, *wk.Sid)
	wantRestError(t, err, http.StatusNotFound, 20404)

	// Defaults: one generated workspace, a generated account SID.
	d := sandbox.New(sandbox.Options{})
	if got := d.Workspaces(); len(got) != 1 || !regexp.MustCompile(`^WS[0-9a-f]{32}$`).MatchString(got[0]) {
		t.Errorf("default workspaces %v", got)
	}
	if !regexp.MustCompile(`^AC[0-9a-f]{32}$`).MatchString(d.AccountSID()) {
		t.Errorf("generated account SID %q", d.AccountSID())
	}
}

// With no BaseURL, url fields point at the host the request was sent to.
func TestBaseURLFromRequest(t *testing.T) {
	srv := sandbox.New(sandbox.Options{AccountSID: testAccount, AuthToken: testToken, Workspaces: []string{testWS}})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	e := &env{srv: srv, http: hs}
	resp, body := e.do(t, "POST", "/v1/Workspaces/"+testWS+"/Workers", url.Values{"FriendlyName": {"x"}}, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %v", resp.StatusCode, body)
	}
	if want := hs.URL + "/v1/Workspaces/" + testWS + "/Workers/" + body["sid"].(string); body["url"] != want {
		t.Errorf("url = %v, want %s", body["url"], want)
	}
	_, list := e.do(t, "GET", "/v1/Workspaces/"+testWS+"/Workers?PageSize=1", nil, nil)
	if got := list["meta"].(map[string]any)["first_page_url"]; got != hs.URL+"/v1/Workspaces/"+testWS+"/Workers?PageSize=1&Page=0" {
		t.Errorf("first_page_url = %v", got)
	}
}

func TestFaults(t *testing.T) {
	e := start(t, sandbox.Options{})
	e.srv.InjectFault(sandbox.Fault{Method: "POST", PathSuffix: "/Workers", Status: 429, RetryAfter: "2", Times: 2})

	for i := 0; i < 2; i++ {
		resp, body := e.do(t, "POST", "/v1/Workspaces/"+testWS+"/Workers", url.Values{"FriendlyName": {"x"}}, nil)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || body["code"] != float64(20429) {
			t.Fatalf("attempt %d: %d Retry-After=%q %v", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	// The fault is used up; a GET was never affected.
	wk := e.createWorker(t, "x", "")
	if _, err := e.tr.ListWorker(testWS, nil); err != nil {
		t.Fatal(err)
	}

	// A fault on one worker's path leaves the list path alone.
	e.srv.InjectFault(sandbox.Fault{PathSuffix: "/Workers/" + *wk.Sid, Status: 503})
	_, err := e.tr.FetchWorker(testWS, *wk.Sid)
	wantRestError(t, err, 503, 20503)
	_, err = e.tr.UpdateWorker(testWS, *wk.Sid, &trv1.UpdateWorkerParams{})
	wantRestError(t, err, 503, 20503)
	if _, err := e.tr.ListWorker(testWS, nil); err != nil {
		t.Fatalf("list hit a fault meant for one worker: %v", err)
	}
	e.srv.ClearFaults()
	if _, err := e.tr.FetchWorker(testWS, *wk.Sid); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}

	// Apply: the create happens, its answer is lost.
	e.srv.InjectFault(sandbox.Fault{Method: "POST", PathSuffix: "/Workers", Status: 500, Times: 1, Apply: true})
	_, err = e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("ghost"))
	wantRestError(t, err, 500, 20500)
	found, err := e.tr.ListWorker(testWS, (&trv1.ListWorkerParams{}).SetFriendlyName("ghost"))
	if err != nil || len(found) != 1 {
		t.Fatalf("the applied create left %d workers named ghost (%v)", len(found), err)
	}

	// Delay: a client with a shorter timeout gives up.
	e.srv.InjectFault(sandbox.Fault{Method: "GET", Status: 500, Times: 1, Delay: 2 * time.Second})
	req, _ := http.NewRequest("GET", e.http.URL+"/v1/Workspaces/"+testWS, nil)
	req.SetBasicAuth(testAccount, testToken)
	begin := time.Now()
	if resp, err := (&http.Client{Timeout: 200 * time.Millisecond}).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("delayed request answered %d before the client timeout", resp.StatusCode)
	}
	if time.Since(begin) > time.Second {
		t.Errorf("client waited %s", time.Since(begin))
	}

	// Apply and Delay: the client times out, the worker was created all the same.
	e.srv.InjectFault(sandbox.Fault{Method: "POST", PathSuffix: "/Workers", Times: 1, Apply: true, Delay: 2 * time.Second})
	req, _ = http.NewRequest("POST", e.http.URL+"/v1/Workspaces/"+testWS+"/Workers", strings.NewReader("FriendlyName=slow"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testAccount, testToken)
	if resp, err := (&http.Client{Timeout: 200 * time.Millisecond}).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("delayed create answered %d before the client timeout", resp.StatusCode)
	}
	found, err = e.tr.ListWorker(testWS, (&trv1.ListWorkerParams{}).SetFriendlyName("slow"))
	if err != nil || len(found) != 1 {
		t.Fatalf("the timed-out create left %d workers named slow (%v)", len(found), err)
	}

	st := e.srv.Stats()
	if st.Faults != 2+2+1+1+1 {
		t.Errorf("Faults = %d, want 7", st.Faults)
	}
	if got := st.Count("POST", sandbox.RouteWorkers); got != 2+1+1+1 {
		t.Errorf("POST /Workers = %d, want 5", got)
	}
	if got := st.Count("GET", sandbox.RouteWorker); got != 2 {
		t.Errorf("GET /Workers/{Sid} = %d, want 2", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := start(t, sandbox.Options{})
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n*4)
	wins := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Everyone races for the same name; exactly one wins.
			if wk, err := e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("contested")); err == nil {
				wins <- *wk.Sid
			}
			wk, err := e.tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName(fmt.Sprintf("own%d", i)))
			if err != nil {
				errs <- err
				return
			}
			for j := 0; j < 5; j++ {
				if _, err := e.tr.UpdateWorker(testWS, *wk.Sid, (&trv1.UpdateWorkerParams{}).SetAttributes(fmt.Sprintf(`{"j":%d}`, j))); err != nil {
					errs <- err
				}
			}
			if _, err := e.tr.ListWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(3)); err != nil {
				errs <- err
			}
			_ = e.srv.Stats()
		}(i)
	}
	wg.Wait()
	close(errs)
	close(wins)
	for err := range errs {
		t.Error(err)
	}
	if len(wins) != 1 {
		t.Errorf("%d creates of the same name succeeded, want 1", len(wins))
	}
	all, err := e.tr.ListWorker(testWS, nil)
	if err != nil || len(all) != n+1 {
		t.Errorf("%d workers, want %d (%v)", len(all), n+1, err)
	}
	if got := e.srv.Stats().Count("POST", sandbox.RouteWorker); got != n*5 {
		t.Errorf("POST /Workers/{Sid} = %d, want %d", got, n*5)
	}
}
