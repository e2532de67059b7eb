package sandbox_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	trv1 "github.com/twilio/twilio-go/rest/taskrouter/v1"

	"github.com/flexbridge/flexbridge/internal/taskrouter/sandbox"
	"github.com/flexbridge/flexbridge/internal/testutil/prism"
)

// startBehindPrism serves a sandbox behind Prism in proxy mode, so every response the
// sandbox gives is validated against Twilio's OpenAPI description. The sandbox's
// BaseURL is Prism's, so the next_page_url it hands out lead back through Prism.
func startBehindPrism(t *testing.T) (srv *sandbox.Server, proxyURL string) {
	t.Helper()
	spec := filepath.Join(prism.ModuleRoot(t), "test", "specs", "twilio_taskrouter_v1.yaml")
	var current atomic.Pointer[sandbox.Server]
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(upstream.Close)
	proxyURL = prism.Start(t, "proxy", spec, upstream.URL)
	srv = sandbox.New(sandbox.Options{
		AccountSID: testAccount,
		AuthToken:  testToken,
		Workspaces: []string{testWS},
		BaseURL:    proxyURL,
	})
	current.Store(srv)
	return srv, proxyURL
}

// TestContractPrism drives every endpoint the sandbox serves through Prism with the real
// twilio-go client and fails on any violation Prism reports.
func TestContractPrism(t *testing.T) {
	srv, proxyURL := startBehindPrism(t)
	checker := &prism.Checker{}
	tr := newTwilio(t, proxyURL, testAccount, testToken, checker)

	wsp, err := tr.FetchWorkspace(testWS)
	if err != nil {
		t.Fatalf("FetchWorkspace: %v", err)
	}
	if got := deref(t, "default_activity_name", wsp.DefaultActivityName); got != "Offline" {
		t.Errorf("default_activity_name = %q, want Offline", got)
	}
	if _, err := tr.ListWorkspace(&trv1.ListWorkspaceParams{}); err != nil {
		t.Fatalf("ListWorkspace: %v", err)
	}

	acts, err := tr.ListActivity(testWS, &trv1.ListActivityParams{})
	if err != nil {
		t.Fatalf("ListActivity: %v", err)
	}
	if len(acts) != 4 {
		t.Fatalf("ListActivity returned %d activities, want 4", len(acts))
	}
	avail, err := tr.ListActivity(testWS, (&trv1.ListActivityParams{}).SetFriendlyName("available"))
	if err != nil || len(avail) != 1 {
		t.Fatalf("ListActivity(FriendlyName=available) = %d activities, %v; want 1", len(avail), err)
	}
	availableSID := deref(t, "activity sid", avail[0].Sid)
	if _, err := tr.FetchActivity(testWS, availableSID); err != nil {
		t.Fatalf("FetchActivity: %v", err)
	}

	var sids []string
	for i := 0; i < 7; i++ {
		p := (&trv1.CreateWorkerParams{}).
			SetFriendlyName(fmt.Sprintf("agent%02d@example.com", i)).
			SetAttributes(fmt.Sprintf(`{"roles":["agent"],"full_name":"Agent %d"}`, i))
		if i == 0 {
			p.SetActivitySid(availableSID)
		}
		wk, err := tr.CreateWorker(testWS, p)
		if err != nil {
			t.Fatalf("CreateWorker %d: %v", i, err)
		}
		sids = append(sids, deref(t, "sid", wk.Sid))
	}

	fetched, err := tr.FetchWorkerWithMetadata(testWS, sids[0])
	if err != nil {
		t.Fatalf("FetchWorker: %v", err)
	}
	etag := fetched.GetHeaders().Get("ETag")
	if etag == "" {
		t.Fatal("FetchWorker: no ETag")
	}

	// PageSize 3 over 7 workers: three pages, reached through next_page_url (via Prism).
	all, err := tr.ListWorker(testWS, (&trv1.ListWorkerParams{}).SetPageSize(3))
	if err != nil {
		t.Fatalf("ListWorker: %v", err)
	}
	if len(all) != 7 {
		t.Fatalf("ListWorker returned %d workers, want 7", len(all))
	}
	byName, err := tr.ListWorker(testWS, (&trv1.ListWorkerParams{}).SetFriendlyName("AGENT03@example.com"))
	if err != nil || len(byName) != 1 || deref(t, "sid", byName[0].Sid) != sids[3] {
		t.Fatalf("ListWorker(FriendlyName) = %d workers, %v; want worker 3", len(byName), err)
	}
	if _, err := tr.ListWorker(testWS, (&trv1.ListWorkerParams{}).SetAvailable("true").SetActivityName("Available")); err != nil {
		t.Fatalf("ListWorker(Available, ActivityName): %v", err)
	}

	offline := deref(t, "default_activity_sid", wsp.DefaultActivitySid)
	upd, err := tr.UpdateWorkerWithMetadata(testWS, sids[0], (&trv1.UpdateWorkerParams{}).
		SetIfMatch(etag).
		SetActivitySid(offline).
		SetRejectPendingReservations(true).
		SetAttributes(`{"roles":["agent","supervisor"]}`).
		SetFriendlyName("Agent00@example.com"))
	if err != nil {
		t.Fatalf("UpdateWorker: %v", err)
	}
	newTag := upd.GetHeaders().Get("ETag")
	if newTag == "" || newTag == etag {
		t.Fatalf("UpdateWorker ETag %q, want a new one (was %q)", newTag, etag)
	}
	if err := tr.DeleteWorker(testWS, sids[0], (&trv1.DeleteWorkerParams{}).SetIfMatch(newTag)); err != nil {
		t.Fatalf("DeleteWorker: %v", err)
	}
	if err := tr.DeleteWorker(testWS, sids[1], nil); err != nil {
		t.Fatalf("DeleteWorker: %v", err)
	}

	if vs := checker.Violations(); len(vs) > 0 {
		for _, v := range vs {
			t.Errorf("Prism: %v", v)
		}
	}
	// Every exchange reached the sandbox (Prism forwarded it, it did not mock it).
	st := srv.Stats()
	reached := 0
	for _, n := range st.Requests {
		reached += n
	}
	if reached != checker.Exchanges() {
		t.Errorf("sandbox saw %d requests, the client made %d", reached, checker.Exchanges())
	}
	if got := st.Count("GET", sandbox.RouteWorkers); got < 3+1+1 {
		t.Errorf("GET /Workers reached the sandbox %d times, want at least 5 (3 pages + 2 filtered)", got)
	}
}

// TestContractPrismErrors sends requests the sandbox refuses. The description declares
// no error responses at all (only 200, 201 and 204), so Prism cannot check their bodies
// (TestNotFoundAndMethods does); it says so with one warning per answer, "Unable to match the
// returned status code". Anything else it reports fails the test.
func TestContractPrismErrors(t *testing.T) {
	_, proxyURL := startBehindPrism(t)
	checker := &prism.Checker{}
	tr := newTwilio(t, proxyURL, testAccount, testToken, checker)

	_, err := tr.FetchWorker(testWS, "WK00000000000000000000000000000000")
	wantRestError(t, err, 404, 20404)
	wk, err := tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("dup"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("DUP"))
	wantRestError(t, err, 400, 20001)
	_, err = tr.CreateWorker(testWS, (&trv1.CreateWorkerParams{}).SetFriendlyName("big").SetAttributes(`{"k":"`+strings.Repeat("x", 4092)+`"}`))
	wantRestError(t, err, 400, 20001)
	_, err = tr.UpdateWorker(testWS, *wk.Sid, (&trv1.UpdateWorkerParams{}).SetIfMatch(`"42"`))
	wantRestError(t, err, 412, 20412)
	_, err = newTwilio(t, proxyURL, testAccount, "wrongToken", checker).FetchWorkspace(testWS)
	wantRestError(t, err, 401, 20003)

	const errorAnswers = 5
	warnings := 0
	for _, v := range checker.Violations() {
		if v.Severity == "Warning" && strings.HasPrefix(v.Message, "Unable to match the returned status code") {
			warnings++
			continue
		}
		t.Errorf("Prism: %v", v)
	}
	if warnings != errorAnswers {
		t.Errorf("Prism warned about %d error answers, want %d", warnings, errorAnswers)
	}
}
