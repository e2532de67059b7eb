package directory_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/internal/directory/conformance"
)

func openSQLite(t *testing.T, path string) directory.Store {
	t.Helper()
	s, err := directory.Open(t.Context(), directory.Options{
		Driver: directory.DriverSQLite,
		DSN:    path,
		Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	conformance.RunTests(t, func(t *testing.T) directory.Store {
		s, err := directory.Open(t.Context(), directory.Options{
			Driver: directory.DriverSQLite,
			DSN:    filepath.Join(t.TempDir(), "data", "flexbridge.db"), // folder made by Open
			Now:    conformance.Clock(t).Now,
			Logger: zaptest.NewLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func tokenHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TestSQLiteTwoStoresConcurrently: two Stores on one file (as `serve` and
// `flexbridge token create` are) write at the same time without "database is
// locked", and each sees the other's writes.
func TestSQLiteTwoStoresConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	serve := openSQLite(t, path)
	cli := openSQLite(t, path)
	ctx := t.Context()

	const userWriters, usersEach, tokenWriters, tokensEach = 4, 25, 2, 25
	var (
		wg      sync.WaitGroup
		errs    = make(chan error, 1000)
		mu      sync.Mutex
		slowest time.Duration // of the second store's writes
	)
	for w := range userWriters {
		wg.Go(func() {
			for i := range usersEach {
				u, err := serve.CreateUser(ctx, directory.User{UserName: fmt.Sprintf("user-%d-%d", w, i), Active: true})
				if err != nil {
					errs <- fmt.Errorf("CreateUser: %w", err)
					return
				}
				if _, err := serve.UpdateUser(ctx, u.ID, func(u *directory.User) error { u.Active = false; return nil }); err != nil {
					errs <- fmt.Errorf("UpdateUser: %w", err)
					return
				}
				if _, err := serve.ClaimPending(ctx, fmt.Sprintf("r%d", w), time.Minute, 2); err != nil {
					errs <- fmt.Errorf("ClaimPending: %w", err)
					return
				}
			}
		})
	}
	for w := range tokenWriters {
		wg.Go(func() {
			for i := range tokensEach {
				name := fmt.Sprintf("token-%d-%d", w, i)
				start := time.Now()
				tok, err := cli.CreateToken(ctx, name, tokenHash(name))
				mu.Lock()
				slowest = max(slowest, time.Since(start))
				mu.Unlock()
				if err != nil {
					errs <- fmt.Errorf("CreateToken: %w", err)
					return
				}
				if err := cli.TouchToken(ctx, tok.ID, time.Now()); err != nil {
					errs <- fmt.Errorf("TouchToken: %w", err)
					return
				}
				if _, _, err := cli.ListUsers(ctx, directory.UserQuery{Limit: 10}); err != nil {
					errs <- fmt.Errorf("ListUsers: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("slowest CreateToken while the other store wrote: %v (busy timeout %v)", slowest, directory.SQLiteBusyTimeout)
	if t.Failed() {
		return
	}
	_, total, err := cli.ListUsers(ctx, directory.UserQuery{Limit: -1})
	if err != nil || total != userWriters*usersEach {
		t.Fatalf("cli sees %d users (%v), want %d", total, err, userWriters*usersEach)
	}
	toks, err := serve.ActiveTokens(ctx)
	if err != nil || len(toks) != tokenWriters*tokensEach {
		t.Fatalf("serve sees %d tokens (%v), want %d", len(toks), err, tokenWriters*tokensEach)
	}
}

// Helper process for TestSQLiteCrossProcess; does nothing in a normal run.
func TestSQLiteHelperProcess(t *testing.T) {
	path := os.Getenv("FLEXBRIDGE_DIRECTORY_HELPER_DB")
	if path == "" {
		return // not a test of its own: only runs as TestSQLiteCrossProcess's child
	}
	n, _ := strconv.Atoi(os.Getenv("FLEXBRIDGE_DIRECTORY_HELPER_N"))
	prefix := os.Getenv("FLEXBRIDGE_DIRECTORY_HELPER_PREFIX")
	s, err := directory.Open(context.Background(), directory.Options{Driver: directory.DriverSQLite, DSN: path})
	if err != nil {
		t.Fatalf("helper Open: %v", err)
	}
	defer s.Close()
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if _, err := s.CreateToken(context.Background(), name, tokenHash(name)); err != nil {
			t.Fatalf("helper CreateToken: %v", err)
		}
	}
}

// TestSQLiteCrossProcess: two other processes open a fresh database file
// (racing to migrate it) and create tokens while this one writes users.
func TestSQLiteCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "x", "flexbridge.db")
	const perHelper = 40
	var (
		cmds []*exec.Cmd
		outs []*bytes.Buffer
	)
	for _, prefix := range []string{"p1", "p2"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			"FLEXBRIDGE_DIRECTORY_HELPER_DB="+path,
			"FLEXBRIDGE_DIRECTORY_HELPER_N="+strconv.Itoa(perHelper),
			"FLEXBRIDGE_DIRECTORY_HELPER_PREFIX="+prefix)
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	s := openSQLite(t, path)
	for i := range 40 {
		if _, err := s.CreateUser(t.Context(), directory.User{UserName: fmt.Sprintf("u%d", i)}); err != nil {
			t.Fatalf("CreateUser while other processes write: %v", err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper process: %v\n%s", err, outs[i])
		}
	}
	toks, err := s.ListTokens(t.Context())
	if err != nil || len(toks) != 2*perHelper {
		t.Fatalf("%d tokens (%v), want %d", len(toks), err, 2*perHelper)
	}
	assertMigratedOnce(t, path)
}

// assertMigratedOnce checks that schema_migrations has each step exactly once.
func assertMigratedOnce(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, distinct int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n == 0 || n != distinct {
		t.Fatalf("schema_migrations: %d rows, %d versions", n, distinct)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q (%v), want wal", mode, err)
	}
}

func TestSQLiteReopenAndConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flexbridge.db")
	// Eight Opens racing on a file that does not exist yet.
	var wg sync.WaitGroup
	stores := make([]directory.Store, 8)
	errs := make([]error, 8)
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = directory.Open(t.Context(), directory.Options{Driver: directory.DriverSQLite, DSN: path})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	u, err := stores[0].CreateUser(t.Context(), directory.User{UserName: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Reopening keeps the data and applies nothing twice.
	s := openSQLite(t, path)
	if got, err := s.GetUser(t.Context(), u.ID); err != nil || got.UserName != "alice" {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	assertMigratedOnce(t, path)

	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, o := range []directory.Options{
		{Driver: directory.DriverSQLite, DSN: ""},
		{Driver: directory.DriverSQLite, DSN: ":memory:"},
		{Driver: directory.DriverSQLite, DSN: "file:x.db?mode=memory"},
		{Driver: directory.DriverPostgres, DSN: ""},
		{Driver: "mysql", DSN: "x"},
	} {
		s, err := directory.Open(t.Context(), o)
		if !errors.Is(err, directory.ErrInvalid) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%+v) = %v, want ErrInvalid", o, err)
		}
	}
}

// TestSQLiteTokenVersion: every token created or revoked through one store
// changes the TokenVersion another store over the same file reads, before the
// call returns; other writes leave it alone.
func TestSQLiteTokenVersion(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fb.db")
	server, cli := openSQLite(t, path), openSQLite(t, path)
	version := func() directory.TokenVersion {
		t.Helper()
		v, ok := server.TokenVersion()
		if !ok {
			t.Fatal("TokenVersion: not known for SQLite")
		}
		return v
	}
	v0 := version()
	tok, err := cli.CreateToken(ctx, "okta", tokenHash("a"))
	if err != nil {
		t.Fatal(err)
	}
	v1 := version()
	if v1 == v0 {
		t.Error("CreateToken in another store left the version as it was")
	}
	if err := cli.TouchToken(ctx, tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.CreateUser(ctx, directory.User{UserName: "u"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.CreateToken(ctx, "okta", tokenHash("b")); err == nil {
		t.Fatal("a second active token named okta was accepted")
	}
	if v := version(); v != v1 {
		t.Error("TouchToken, CreateUser or a refused CreateToken changed the version")
	}
	if err := cli.RevokeToken(ctx, "okta"); err != nil {
		t.Fatal(err)
	}
	if v := version(); v == v1 || v == v0 {
		t.Error("RevokeToken in another store left the version as it was")
	}
	info, err := os.Stat(path + "-tokens")
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("token change file: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
}
