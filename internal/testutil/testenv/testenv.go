// Package testenv holds what every flexbridge test that needs an outside tool shares: where
// the module lives, and the rule for a missing tool — skip on a developer's machine, fail in CI
// (CI=true), because CI installs everything and a skip there would hide a missing install step.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run in CI (the environment variable CI is "true").
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing ends the test because something it needs is not installed: t.Fatal in CI, t.Skip
// elsewhere. msg says what is missing and how to install it.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// ModuleRoot returns the directory holding go.mod, found by walking up from the working
// directory of the test (its package directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// PostgresDSN returns the PostgreSQL server the tests use (FLEXBRIDGE_TEST_POSTGRES_DSN, which
// test/pg.sh starts and prints), or ends the test per Missing.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("FLEXBRIDGE_TEST_POSTGRES_DSN")
	if dsn == "" {
		Missing(t, "FLEXBRIDGE_TEST_POSTGRES_DSN is not set: run test/pg.sh and export the DSN it prints "+
			`(export FLEXBRIDGE_TEST_POSTGRES_DSN="$(bash test/pg.sh | tail -n1)")`)
	}
	return dsn
}
