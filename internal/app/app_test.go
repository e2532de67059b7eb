package app

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/config"
	"github.com/flexbridge/flexbridge/internal/directory"
)

// TestNewOnABusyPortLeavesTheStoreAlone: a second `serve` whose port is taken fails before it
// touches the store; with the sandbox it would otherwise mark every user for sync, making the
// running server redo them all.
func TestNewOnABusyPortLeavesTheStoreAlone(t *testing.T) {
	ctx := t.Context()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c := config.Default()
	c.Store.Driver, c.Store.DSN = directory.DriverSQLite, filepath.Join(t.TempDir(), "fb.db")
	c.Server.Listen = busy.Addr().String()
	c.Mapping.File = filepath.Join("..", "..", "configs", "mapping.yaml")

	st, err := directory.Open(ctx, directory.Options{Driver: c.Store.Driver, DSN: c.Store.DSN})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, directory.User{UserName: "alice@example.com", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	before, err := st.GetSyncState(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := New(ctx, Options{Config: c, Logger: zap.NewNop()}); err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("New on a busy port: %v, want a listen error", err)
	}
	after, err := st.GetSyncState(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.DesiredGen != before.DesiredGen {
		t.Errorf("desired generation %d -> %d: the failed start marked the user for sync", before.DesiredGen, after.DesiredGen)
	}
	toks, err := st.ListTokens(ctx)
	if err != nil || len(toks) != 0 {
		t.Errorf("the failed start made %d tokens (%v)", len(toks), err)
	}
}
