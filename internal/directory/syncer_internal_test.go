package directory

// Tests of the syncer (batch.go): the fsync after each commit, the reads that
// wait for it, and the failure paths around it.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// blockSync makes the next fsyncs of s's syncer wait until release is
// closed, then return result(f). entered receives the name of each file whose
// fsync has begun.
func blockSync(s *sqlStore, result func(*os.File) error) (entered chan string, release chan struct{}) {
	entered, release = make(chan string, 16), make(chan struct{})
	s.batch.wal.sync = func(f *os.File) error {
		entered <- f.Name()
		<-release
		return result(f)
	}
	return entered, release
}

// heldSync is a create whose batch is committed and whose fsync is held.
type heldSync struct {
	created chan error // the create's outcome
	release chan struct{}
	once    sync.Once
	file    string // the file being fsynced
}

// holdSync starts creating a user named name and returns once the fsync of
// its batch has begun; that fsync waits for let (at the latest when the test
// ends, so that a failing test does not hang in Close), then returns
// result(f).
func holdSync(t *testing.T, s *sqlStore, name string, result func(*os.File) error) *heldSync {
	entered, release := blockSync(s, result)
	h := &heldSync{created: make(chan error, 1), release: release}
	t.Cleanup(h.let)
	go func() {
		_, err := s.CreateUser(context.Background(), User{UserName: name})
		h.created <- err
	}()
	h.file = <-entered
	return h
}

// let lets the held fsync finish.
func (h *heldSync) let() { h.once.Do(func() { close(h.release) }) }

// done lets the fsync finish and returns the create's error.
func (h *heldSync) done() error {
	h.let()
	return <-h.created
}

// symlinkedDB returns a database path that is a symbolic link to target, a
// file in another folder.
func symlinkedDB(t *testing.T) (target, link string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	target, link = filepath.Join(dir, "data", "real.db"), filepath.Join(dir, "fb.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return target, link
}

// rawCount counts users named name straight from the read pool, without the
// durability wait: what SQLite has committed.
func rawCount(t *testing.T, s *sqlStore, name string) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM users WHERE user_name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSyncerFailedFsyncRefusesTheOpenBatch: when the fsync of one batch fails,
// the batch the committer holds open meanwhile is rolled back, not committed:
// its writers are told the error, and their writes are nowhere, not even after
// a restart.
func TestSyncerFailedFsyncRefusesTheOpenBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fb.db")
	s := openBatchSQLite(t, path)
	ctx := context.Background()
	errEIO := errors.New("input/output error")
	a := holdSync(t, s, "a", func(*os.File) error { return errEIO }) // batch {a} is with the syncer

	bRan := make(chan struct{})
	errB := make(chan error, 1)
	go func() {
		errB <- s.write(ctx, func(q *querier) error {
			defer close(bRan)
			return insertUser(ctx, s, q, "b")
		})
	}()
	<-bRan // b runs in the open transaction of the next batch
	if err := a.done(); !errors.Is(err, errEIO) {
		t.Fatalf("a: %v, want the fsync error", err)
	}
	if err := <-errB; !errors.Is(err, errEIO) {
		t.Fatalf("b: %v, want the fsync error", err)
	}
	if n := rawCount(t, s, "b"); n != 0 {
		t.Errorf("b was reported failed (fsync error) but is committed (%d row)", n)
	}
	if _, ok := userNamed(t, s, "b"); ok {
		t.Errorf("a reader sees b, whose writer got an error")
	}
	s.Close()
	s2 := openBatchSQLite(t, path)
	if n := rawCount(t, s2, "b"); n != 0 {
		t.Errorf("after a restart b, reported failed, is stored")
	}
}

// TestSyncerReadFailsWhenCtxEndsBeforeTheSync: a read transaction (ListUsers,
// groups...) whose context ends while it waits for the fsync of what it saw
// fails with the context's error instead of returning unsynced data.
func TestSyncerReadFailsWhenCtxEndsBeforeTheSync(t *testing.T) {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "fb.db"))
	h := holdSync(t, s, "unsynced", syncFile)
	defer func() {
		if err := h.done(); err != nil {
			t.Error(err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	users, total, err := s.ListUsers(ctx, UserQuery{})
	if err == nil {
		t.Errorf("ListUsers returned %d users (total %d) with a nil error before their fsync; want the context's error", len(users), total)
	}
}

// TestSyncerGetUserFailsWhenCtxEndsBeforeTheSync: the same through the read
// pool (querier.queryRow): the row already read is not handed out.
func TestSyncerGetUserFailsWhenCtxEndsBeforeTheSync(t *testing.T) {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "fb.db"))
	h := holdSync(t, s, "unsynced", syncFile)
	defer func() {
		if err := h.done(); err != nil {
			t.Error(err)
		}
	}()
	var id string
	if err := s.rdb.QueryRow(`SELECT id FROM users WHERE user_name = 'unsynced'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	leaks := 0
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		if _, err := s.GetUser(ctx, id); err == nil {
			leaks++
		}
		cancel()
	}
	if leaks > 0 {
		t.Errorf("GetUser returned the not yet synced user, without error, %d times out of 20", leaks)
	}
}

// TestSyncerSymlinkedDatabase: SQLite resolves a symlinked database path and
// keeps its WAL next to the target; the store syncs that WAL.
func TestSyncerSymlinkedDatabase(t *testing.T) {
	_, link := symlinkedDB(t)
	st, err := Open(t.Context(), Options{Driver: DriverSQLite, DSN: link})
	if err != nil {
		t.Fatalf("Open through a symlink: %v", err)
	}
	defer st.Close()
	if _, err := st.CreateUser(t.Context(), User{UserName: "x"}); err != nil {
		t.Fatalf("write through a symlinked path: %v", err)
	}
}

// TestSyncerSymlinkedDatabaseStaleWAL: with a leftover regular file
// <DSN>-wal next to the symlink, the store still fsyncs the WAL SQLite
// writes, not the leftover.
func TestSyncerSymlinkedDatabaseStaleWAL(t *testing.T) {
	target, link := symlinkedDB(t)
	if err := os.WriteFile(link+"-wal", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openBatchSQLite(t, link)
	var (
		seq        int
		name, file string
	)
	if err := s.wdb.QueryRow(`PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
		t.Fatal(err)
	}
	if file != target {
		t.Errorf("SQLite uses %s, want the link's target %s", file, target)
	}
	synced := make(chan *os.File, 1)
	s.batch.wal.sync = func(f *os.File) error {
		synced <- f
		return f.Sync()
	}
	if _, err := s.CreateUser(t.Context(), User{UserName: "x"}); err != nil {
		t.Fatal(err)
	}
	f := <-synced
	mine, err1 := f.Stat()
	real, err2 := os.Stat(file + "-wal")
	if err1 != nil || err2 != nil || !os.SameFile(mine, real) {
		t.Errorf("the syncer fsynced %s, SQLite writes its WAL to %s-wal (%v, %v)", f.Name(), file, err1, err2)
	}
}

// TestSyncerFirstWriteEndsTheTransaction: a first write of a transaction that
// ends it behind the committer's back (a ROLLBACK, or an error SQLite answers
// by rolling back that fn does not return) is caught by its savepoint's
// RELEASE; without it, the next write's SAVEPOINT would open an autocommit
// transaction of its own and its RELEASE commit it on the spot, while its
// writer is told the write failed.
func TestSyncerFirstWriteEndsTheTransaction(t *testing.T) {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "fb.db"))
	ctx := context.Background()
	a := holdSync(t, s, "a", syncFile)

	w1Ran := make(chan struct{})
	err1 := make(chan error, 1)
	go func() {
		err1 <- s.write(ctx, func(q *querier) error {
			defer close(w1Ran)
			_, err := q.exec(ctx, `ROLLBACK`)
			return err
		})
	}()
	<-w1Ran
	w2Ran := make(chan struct{})
	err2 := make(chan error, 1)
	go func() {
		err2 <- s.write(ctx, func(q *querier) error {
			defer close(w2Ran)
			return insertUser(ctx, s, q, "y")
		})
	}()
	select { // the second write would run in the open transaction
	case <-w2Ran:
	case <-time.After(200 * time.Millisecond):
	}
	if err := a.done(); err != nil {
		t.Fatal(err)
	}
	e1, e2 := <-err1, <-err2
	n := rawCount(t, s, "y")
	if (e2 != nil) != (n == 0) {
		t.Errorf("second write: error %v, but %d row stored", e2, n)
	}
	t.Logf("first write: %v; second write: %v; rows: %d", e1, e2, n)
}

// TestSyncerWriteReadsThePoolWhileSyncing: a write fn that reads through
// the read pool (awaitDurable inside the committer) while the previous batch
// is being synced does not deadlock.
func TestSyncerWriteReadsThePoolWhileSyncing(t *testing.T) {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "fb.db"))
	ctx := context.Background()
	u, err := s.CreateUser(ctx, User{UserName: "base"})
	if err != nil {
		t.Fatal(err)
	}
	a := holdSync(t, s, "a", syncFile)
	errs := make(chan error, 2)
	for range 2 { // first write of the next tx, then one in a savepoint
		go func() {
			errs <- s.write(ctx, func(q *querier) error {
				_, err := s.GetUser(ctx, u.ID) // waits for batch {a}
				return err
			})
		}()
	}
	time.Sleep(50 * time.Millisecond)
	a.let()
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("deadlock: a write reading the pool never returned")
		}
	}
	if err := <-a.created; err != nil {
		t.Fatal(err)
	}
}

// TestSyncerCloseWhileSyncingAndTxOpen: Close while one batch is with the
// syncer and the next is open and filling answers everybody and keeps the
// successful writes.
func TestSyncerCloseWhileSyncingAndTxOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fb.db")
	s := openBatchSQLite(t, path)
	ctx := context.Background()
	entered, release := blockSync(s, syncFile)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	wg.Go(func() { _, err := s.CreateUser(ctx, User{UserName: "first"}); errs <- err })
	<-entered
	for i := range 200 - 1 {
		wg.Go(func() {
			_, err := s.CreateUser(ctx, User{UserName: "u" + string(rune('A'+i%26)) + string(rune('a'+i/26))})
			errs <- err
		})
	}
	waitFor(t, "writes queued or taken", func() bool { w := s.batch.writes.Load(); return w >= 1+3 })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	time.Sleep(20 * time.Millisecond)
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close hangs")
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, errStoreClosed):
		default:
			t.Errorf("write: %v", err)
		}
	}
	if total := usersAfterReopen(t, path); total != ok {
		t.Fatalf("%d users after reopening, %d writes succeeded", total, ok)
	}
}

// TestSyncerReadTxWaitsForSync: a read transaction (ListUsers without a
// userName) does not return before the fsync of a batch it could see.
func TestSyncerReadTxWaitsForSync(t *testing.T) {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "fb.db"))
	h := holdSync(t, s, "x", syncFile)
	got := make(chan int, 1)
	go func() {
		_, total, err := s.ListUsers(context.Background(), UserQuery{})
		if err != nil {
			t.Error(err)
		}
		got <- total
	}()
	select {
	case n := <-got:
		t.Fatalf("ListUsers returned (total %d) before the fsync", n)
	case <-time.After(100 * time.Millisecond):
	}
	if err := h.done(); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 1 {
		t.Fatalf("total %d, want 1", n)
	}
}

// TestSyncerPanicFirstWriteWhileSyncing: a panic in the first write of a
// transaction opened while the syncer is busy reaches its writer; the writes
// queued behind it run.
func TestSyncerPanicFirstWriteWhileSyncing(t *testing.T) {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "fb.db"))
	ctx := context.Background()
	a := holdSync(t, s, "a", syncFile)
	ran := make(chan struct{})
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_ = s.write(ctx, func(q *querier) error {
			if err := insertUser(ctx, s, q, "p"); err != nil {
				return err
			}
			close(ran)
			panic("boom")
		})
	}()
	<-ran
	errB := make(chan error, 1)
	go func() { _, err := s.CreateUser(ctx, User{UserName: "b"}); errB <- err }()
	waitQueued(t, s, 0)
	time.Sleep(20 * time.Millisecond)
	if err := a.done(); err != nil {
		t.Error(err)
	}
	if p := <-panicked; p != "boom" {
		t.Errorf("recovered %v", p)
	}
	if err := <-errB; err != nil {
		t.Error(err)
	}
	if rawCount(t, s, "p") != 0 || rawCount(t, s, "b") != 1 {
		t.Error("the panicking write was kept or the next one lost")
	}
}
