package taskrouter

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexbridge/flexbridge/internal/testutil/prism"
)

// TestContractTwilioOpenAPI runs every request the adapter makes against `prism mock`
// of Twilio's official TaskRouter v1 description with --errors: a request Twilio's
// description rejects (wrong SID pattern, missing required field, wrong type, no
// credentials, unknown path) comes back as a 422/401/404 problem+json, which the adapter
// reports as an error and prism.Checker records as a violation.
func TestContractTwilioOpenAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prism (about 10s)")
	}
	spec := filepath.Join(prism.ModuleRoot(t), "test", "specs", "twilio_taskrouter_v1.yaml")
	base := prism.Start(t, "mock", spec, "")

	checker := &prism.Checker{}
	c := newTestClient(t, base, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: checker}
		cfg.Timeout = 30 * time.Second
	})
	ctx := context.Background()
	wk := sid("WK", 0xabc)
	attrs := `{"roles":["agent"],"full_name":"Ann Example","email":"ann@example.com","routing":{"skills":["en"]}}`

	t.Run("CreateWorker", func(t *testing.T) {
		w, err := c.CreateWorker(ctx, "ann@example.com", attrs)
		if err != nil {
			t.Fatal(err)
		}
		if w.SID == "" || w.FriendlyName == "" {
			t.Errorf("CreateWorker = %+v", w)
		}
	})
	t.Run("FetchWorker", func(t *testing.T) {
		w, err := c.FetchWorker(ctx, wk)
		if err != nil {
			t.Fatal(err)
		}
		if w.SID == "" || w.ETag == "" || w.DateCreated.IsZero() {
			t.Errorf("FetchWorker = %+v, want SID, ETag and dates", w)
		}
	})
	t.Run("FindWorker", func(t *testing.T) {
		// The description's list example holds one worker named testWorker.
		w, found, err := c.FindWorker(ctx, "testWorker")
		if err != nil || !found {
			t.Fatalf("FindWorker = %v, %v", found, err)
		}
		if w.ETag == "" {
			t.Errorf("FindWorker did not fetch the worker: %+v", w)
		}
	})
	t.Run("ListWorkers", func(t *testing.T) {
		n := 0
		if err := c.ListWorkers(ctx, func(Worker) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Error("ListWorkers visited nothing")
		}
	})
	t.Run("UpdateWorkerAttributes", func(t *testing.T) {
		if _, err := c.UpdateWorkerAttributes(ctx, wk, attrs, `"etag-1"`); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UpdateWorkerAttributes(ctx, wk, attrs, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TakeOffline", func(t *testing.T) {
		// The lookup request must be valid; the description's example workspace has no
		// "Offline" activity, so the lookup itself finds nothing.
		err := c.TakeOffline(ctx, wk)
		if err == nil || !strings.Contains(err.Error(), `no activity named "Offline"`) {
			t.Fatalf("TakeOffline against the mock = %v, want the missing-activity error", err)
		}
		// With the activity known, the worker update itself.
		c.offlineSID = sid("WA", 9)
		if err := c.TakeOffline(ctx, wk); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("DeleteWorker", func(t *testing.T) {
		if err := c.DeleteWorker(ctx, wk, `"etag-1"`); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteWorker(ctx, wk, ""); err != nil {
			t.Fatal(err)
		}
	})

	// create, fetch, find (list+fetch), list, 2 updates, activities, offline update, 2 deletes
	if got, want := checker.Exchanges(), 11; got != want {
		t.Errorf("Prism saw %d exchanges, want %d", got, want)
	}
	for _, v := range checker.Violations() {
		t.Errorf("Prism: %s", v)
	}

	// Negative controls: the mock does refuse what Twilio would refuse, so the checks
	// above are not vacuous.
	t.Run("refuses invalid requests", func(t *testing.T) {
		bad := &prism.Checker{}
		badWS := newTestClient(t, base, func(cfg *Config) {
			cfg.HTTPClient = &http.Client{Transport: bad}
			cfg.WorkspaceSID = "WS" + strings.Repeat("z", 32) // alphanumeric, but not ^WS[0-9a-fA-F]{32}$
		})
		_, err := badWS.FetchWorker(ctx, wk)
		if e, ok := asError(err); !ok || e.Status != http.StatusUnprocessableEntity {
			t.Errorf("FetchWorker in a malformed workspace = %v, want HTTP 422", err)
		}
		_, err = c.FetchWorker(ctx, "WK123")
		if e, ok := asError(err); !ok || e.Status != http.StatusUnprocessableEntity || IsTransient(err) {
			t.Errorf("FetchWorker of a malformed SID = %v, want HTTP 422", err)
		}
		if len(bad.Violations()) == 0 {
			t.Error("the Checker recorded no violation for a malformed request")
		}
	})
}
