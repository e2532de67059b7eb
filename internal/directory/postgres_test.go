package directory_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap/zaptest"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/internal/directory/conformance"
	"github.com/flexbridge/flexbridge/internal/testutil/testenv"
)

// postgresDSN returns the server the PostgreSQL tests use (test/pg.sh starts
// one and prints its DSN). Without it the tests skip, except in CI.
func postgresDSN(t *testing.T) string {
	t.Helper()
	return testenv.PostgresDSN(t)
}

// newSchema creates an empty schema, dropped when the test ends, and returns
// a DSN whose search_path is that schema.
func newSchema(t *testing.T, dsn string) string {
	t.Helper()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := "fbtest_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+name); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		// t.Context() is already done here.
		if _, err := admin.Exec("DROP SCHEMA " + name + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return withSearchPath(t, dsn, name)
}

func withSearchPath(t *testing.T, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("FLEXBRIDGE_TEST_POSTGRES_DSN: %v", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

func openPostgres(t *testing.T, dsn string, now func() time.Time) directory.Store {
	t.Helper()
	s, err := directory.Open(t.Context(), directory.Options{
		Driver: directory.DriverPostgres, DSN: dsn, Now: now, Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgres(t *testing.T) {
	dsn := postgresDSN(t)
	conformance.RunTests(t, func(t *testing.T) directory.Store {
		s, err := directory.Open(t.Context(), directory.Options{
			Driver: directory.DriverPostgres,
			DSN:    newSchema(t, dsn),
			Now:    conformance.Clock(t).Now,
			Logger: zaptest.NewLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestPostgresReplicas: several replicas open (and migrate) one fresh schema
// at once, then claim work concurrently; no item goes to two of them.
func TestPostgresReplicas(t *testing.T) {
	dsn := newSchema(t, postgresDSN(t))
	const replicas = 4
	stores := make([]directory.Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = directory.Open(t.Context(), directory.Options{Driver: directory.DriverPostgres, DSN: dsn})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d Open: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}

	const users = 60
	for i := range users {
		if _, err := stores[i%replicas].CreateUser(t.Context(), directory.User{UserName: fmt.Sprintf("u%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		failed  = make(chan error, replicas*2)
	)
	for r := range replicas * 2 { // two workers per replica
		wg.Go(func() {
			for {
				items, err := stores[r%replicas].ClaimPending(t.Context(), fmt.Sprintf("w%d", r), time.Hour, 2)
				if err != nil {
					failed <- err
					return
				}
				if len(items) == 0 {
					return
				}
				mu.Lock()
				for _, it := range items {
					claimed[it.State.UserID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(failed)
	for err := range failed {
		t.Fatal(err)
	}
	if len(claimed) != users {
		t.Fatalf("%d distinct users claimed, want %d", len(claimed), users)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Fatalf("%s claimed %d times", id, n)
		}
	}

	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n, distinct int
	if err := admin.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n == 0 || n != distinct {
		t.Fatalf("schema_migrations: %d rows, %d versions", n, distinct)
	}
}

// TestPostgresTokenVersion: replicas share no file, so the store says it
// cannot tell and callers read the tokens on each request.
func TestPostgresTokenVersion(t *testing.T) {
	s := openPostgres(t, newSchema(t, postgresDSN(t)), nil)
	if _, err := s.CreateToken(t.Context(), "okta", make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.TokenVersion(); ok {
		t.Error("TokenVersion is known for PostgreSQL")
	}
}

// TestPostgresMarkAllForSyncBesideGroupWrites: marking every user for sync
// (after a mapping change) while group writes mark their members must not
// deadlock. Both lock sync_state rows; the group write locks them in user_id
// order, so marking all must too. The rows are first rewritten in a shuffled
// order so that the table's physical order is not the id order (PostgreSQL
// writes a new row version on every update).
func TestPostgresMarkAllForSyncBesideGroupWrites(t *testing.T) {
	s := openPostgres(t, newSchema(t, postgresDSN(t)), nil)
	ctx := t.Context()
	const n = 200
	ids := make([]string, n)
	for i := range ids {
		u, err := s.CreateUser(ctx, directory.User{UserName: fmt.Sprintf("user%03d@example.com", i), Active: true})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = u.ID
	}
	for _, i := range rand.Perm(n) {
		if _, err := s.UpdateUser(ctx, ids[i], func(u *directory.User) error { u.Active = !u.Active; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	g, err := s.CreateGroup(ctx, directory.Group{DisplayName: "Flex Agents", Members: ids})
	if err != nil {
		t.Fatal(err)
	}

	const rounds = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range rounds {
			marked, err := s.MarkAllForSync(ctx)
			if err != nil {
				errs <- fmt.Errorf("MarkAllForSync: %w", err)
			} else if marked != n {
				errs <- fmt.Errorf("MarkAllForSync marked %d users, want %d", marked, n)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for r := range rounds {
			// Every other round drops the first half of the members, the
			// next one adds them back: each write marks 100 users.
			_, err := s.UpdateGroup(ctx, g.ID, func(g *directory.Group) error {
				if r%2 == 0 {
					g.Members = ids[n/2:]
				} else {
					g.Members = ids
				}
				return nil
			})
			if err != nil {
				errs <- fmt.Errorf("UpdateGroup: %w", err)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
