package taskrouter

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flexbridge/flexbridge/internal/taskrouter/sandbox"
)

// The adapter against the in-process sandbox: the whole worker life cycle through the
// real twilio-go client, with a redirected base URL.

func newSandbox(t *testing.T) (*sandbox.Server, *Client, string) {
	t.Helper()
	sb := sandbox.New(sandbox.Options{AccountSID: testAccount, AuthToken: testToken, Workspaces: []string{testWorkspace}})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	if got := sb.Workspaces(); len(got) != 1 || got[0] != testWorkspace {
		t.Fatalf("sandbox workspaces = %v", got)
	}
	return sb, newTestClient(t, srv.URL, nil), srv.URL
}

func TestSandboxWorkerLifecycle(t *testing.T) {
	sb, c, _ := newSandbox(t)
	ctx := context.Background()
	attrs := `{"roles":["agent"],"full_name":"Ann Example","email":"ann@example.com"}`

	created, err := c.CreateWorker(ctx, "ann@example.com", attrs)
	if err != nil {
		t.Fatalf("CreateWorker: %v", err)
	}
	if created.SID == "" || created.Attributes != attrs || created.ActivityName != "Offline" || created.DateCreated.IsZero() {
		t.Errorf("CreateWorker = %+v, want the default activity and the attributes as sent", created)
	}

	found, ok, err := c.FindWorker(ctx, "ANN@Example.com")
	if err != nil || !ok {
		t.Fatalf("FindWorker = %v, %v", ok, err)
	}
	if found.SID != created.SID || found.Attributes != attrs || found.ETag == "" {
		t.Errorf("FindWorker = %+v, want the worker with attributes and ETag", found)
	}
	if _, ok, err := c.FindWorker(ctx, "bob@example.com"); ok || err != nil {
		t.Errorf("FindWorker(unknown) = %v, %v", ok, err)
	}

	// If-Match: the current ETag wins, a stale one is refused.
	attrs2 := `{"roles":["agent","supervisor"],"full_name":"Ann Example","email":"ann@example.com"}`
	updated, err := c.UpdateWorkerAttributes(ctx, found.SID, attrs2, found.ETag)
	if err != nil {
		t.Fatalf("UpdateWorkerAttributes with the current ETag: %v", err)
	}
	if updated.Attributes != attrs2 || updated.ETag == "" || updated.ETag == found.ETag {
		t.Errorf("update = %+v, want new attributes and a new ETag (old %q)", updated, found.ETag)
	}
	_, err = c.UpdateWorkerAttributes(ctx, found.SID, `{"roles":["admin"]}`, found.ETag)
	if !IsPreconditionFailed(err) || IsTransient(err) {
		t.Fatalf("update with a stale ETag = %v, want precondition failed", err)
	}
	fetched, err := c.FetchWorker(ctx, found.SID)
	if err != nil || fetched.Attributes != attrs2 || fetched.ETag != updated.ETag {
		t.Fatalf("after the refused update: %+v, %v", fetched, err)
	}

	// FriendlyName is unique case-insensitively.
	_, err = c.CreateWorker(ctx, "Ann@Example.COM", `{}`)
	if !IsDuplicateName(err) || IsTransient(err) {
		t.Fatalf("duplicate create = %v, want IsDuplicateName", err)
	}

	// Offline, then delete (a stale If-Match first). Bob's name has a "." followed by
	// digits, which twilio-go strips from GET queries.
	bob, err := c.CreateWorker(ctx, "bob.2020@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if bob.Attributes != "{}" {
		t.Errorf("create without attributes = %q, want {}", bob.Attributes)
	}
	if _, err := c.CreateWorker(ctx, "bob@example.com", `{}`); err != nil {
		t.Fatal(err)
	}
	if w, ok, err := c.FindWorker(ctx, "bob.2020@example.com"); !ok || err != nil || w.SID != bob.SID {
		t.Errorf("FindWorker(bob.2020) = %+v, %v, %v; want %s", w, ok, err, bob.SID)
	}
	for _, s := range []string{created.SID, bob.SID, created.SID} {
		if err := c.TakeOffline(ctx, s); err != nil {
			t.Fatalf("TakeOffline(%s): %v", s, err)
		}
	}
	if n := sb.Stats().Count("GET", sandbox.RouteActivities); n != 1 {
		t.Errorf("Activities listed %d times for 3 TakeOffline, want 1", n)
	}
	offline, err := c.FetchWorker(ctx, created.SID)
	if err != nil || offline.ActivityName != "Offline" || offline.Available {
		t.Fatalf("after TakeOffline: %+v, %v", offline, err)
	}
	if err := c.DeleteWorker(ctx, created.SID, found.ETag); !IsPreconditionFailed(err) {
		t.Fatalf("delete with a stale ETag = %v, want precondition failed", err)
	}
	if err := c.DeleteWorker(ctx, created.SID, offline.ETag); err != nil {
		t.Fatalf("DeleteWorker: %v", err)
	}
	if _, err := c.FetchWorker(ctx, created.SID); !IsNotFound(err) {
		t.Errorf("fetch after delete = %v, want not found", err)
	}
	if err := c.DeleteWorker(ctx, created.SID, ""); !IsNotFound(err) {
		t.Errorf("second delete = %v, want not found", err)
	}
	if _, ok, err := c.FindWorker(ctx, "ann@example.com"); ok || err != nil {
		t.Errorf("FindWorker after delete = %v, %v", ok, err)
	}

	var names []string
	if err := c.ListWorkers(ctx, func(w Worker) error { names = append(names, w.FriendlyName); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "bob.2020@example.com bob@example.com" {
		t.Errorf("ListWorkers = %v, want both bobs", names)
	}
}

func TestSandboxListWorkersPages(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1,050 workers")
	}
	sb, c, _ := newSandbox(t)
	ctx := context.Background()
	const total = 1050 // two pages of 1,000
	for i := range total {
		if _, err := c.CreateWorker(ctx, fmt.Sprintf("user%04d@example.com", i), `{}`); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	seen := map[string]bool{}
	err := c.ListWorkers(ctx, func(w Worker) error {
		if seen[w.SID] {
			return fmt.Errorf("worker %s visited twice", w.SID)
		}
		seen[w.SID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != total {
		t.Errorf("visited %d workers, want %d", len(seen), total)
	}
	if n := sb.Stats().Count("GET", sandbox.RouteWorkers); n != 2 {
		t.Errorf("%d list requests, want 2 pages of 1,000", n)
	}
}

func TestSandboxFaults(t *testing.T) {
	sb, c, baseURL := newSandbox(t)
	ctx := context.Background()

	sb.InjectFault(sandbox.Fault{Method: "POST", PathSuffix: "/Workers", Status: 429, RetryAfter: "2", Times: 1})
	_, err := c.CreateWorker(ctx, "ann@example.com", `{}`)
	if !IsRateLimited(err) || !IsTransient(err) || RetryAfter(err) != 2*time.Second {
		t.Errorf("429 = %v (RetryAfter %s), want rate limited, 2s", err, RetryAfter(err))
	}

	sb.InjectFault(sandbox.Fault{Method: "POST", PathSuffix: "/Workers", Status: 503, Times: 1, Apply: true})
	_, err = c.CreateWorker(ctx, "ann@example.com", `{}`)
	if !IsTransient(err) || IsRateLimited(err) {
		t.Errorf("503 = %v, want transient", err)
	}
	// The response was lost but the worker exists: what the caller must look up.
	if _, ok, err := c.FindWorker(ctx, "ann@example.com"); !ok || err != nil {
		t.Errorf("worker created behind a lost response not found: %v, %v", ok, err)
	}

	short := newTestClient(t, baseURL, func(cfg *Config) { cfg.Timeout = 100 * time.Millisecond })
	sb.InjectFault(sandbox.Fault{Method: "GET", Delay: 5 * time.Second, Times: 1})
	start := time.Now()
	err = short.ListWorkers(ctx, func(Worker) error { return nil })
	if !IsTransient(err) || time.Since(start) > 3*time.Second {
		t.Errorf("slow answer = %v after %s, want a transient timeout", err, time.Since(start))
	}

	wrong := newTestClient(t, baseURL, func(cfg *Config) { cfg.AuthToken = "wrongtoken" })
	_, err = wrong.FetchWorker(ctx, sid("WK", 1))
	if e, ok := asError(err); !ok || e.Status != http.StatusUnauthorized || IsTransient(err) {
		t.Errorf("wrong token = %v, want 401, not transient", err)
	}
}
