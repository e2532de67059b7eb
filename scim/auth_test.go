package scim_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/scim"
)

// countingStore counts the reads of the token table.
type countingStore struct {
	directory.Store
	reads atomic.Int64
}

func (c *countingStore) ActiveTokens(ctx context.Context) ([]directory.Token, error) {
	c.reads.Add(1)
	return c.Store.ActiveTokens(ctx)
}

// TestTokenCacheAcrossProcesses: the server caches the active tokens, yet a token revoked or
// created through another store over the same database (what `flexbridge token` does from
// another process) counts from the very next request, and the cache is not kept longer than
// directory.TokenCacheMaxAge.
func TestTokenCacheAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "fb.db")
	open := func() directory.Store {
		st, err := directory.Open(ctx, directory.Options{Driver: directory.DriverSQLite, DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	server, cli := &countingStore{Store: open()}, open()
	okta, oktaHash, _ := scim.NewToken()
	if _, err := cli.CreateToken(ctx, "okta", oktaHash); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h, err := scim.New(scim.Options{Store: server, Logger: zap.NewNop(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	status := func(token string) int {
		req := httptest.NewRequest(http.MethodGet, scim.BasePath+"/Users?count=0", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}

	for range 20 {
		if got := status(okta); got != http.StatusOK {
			t.Fatalf("okta token: %d", got)
		}
	}
	if n := server.reads.Load(); n != 1 {
		t.Errorf("20 requests read the tokens %d times, want 1 (cached)", n)
	}

	entra, entraHash, _ := scim.NewToken()
	if _, err := cli.CreateToken(ctx, "entra", entraHash); err != nil {
		t.Fatal(err)
	}
	if got := status(entra); got != http.StatusOK {
		t.Errorf("a token created by another process: %d on the next request, want 200", got)
	}
	if err := cli.RevokeToken(ctx, "okta"); err != nil {
		t.Fatal(err)
	}
	if got := status(okta); got != http.StatusUnauthorized {
		t.Errorf("a token revoked by another process: %d on the next request, want 401", got)
	}
	if got := status(entra); got != http.StatusOK {
		t.Errorf("the other token after the revocation: %d", got)
	}

	reads := server.reads.Load()
	status(entra)
	mu.Lock()
	now = now.Add(directory.TokenCacheMaxAge)
	mu.Unlock()
	status(entra)
	if got := server.reads.Load() - reads; got != 1 {
		t.Errorf("two requests %v apart read the tokens %d times, want 1 (the cache expired)", directory.TokenCacheMaxAge, got)
	}
}
