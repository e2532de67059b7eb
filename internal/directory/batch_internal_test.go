package directory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// batchEnv is a store plus, for SQLite, the means to make writes queue up so
// that they run in one batch: hold blocks the committer with a write of its
// own until release is called, and queued waits until n writes wait behind it.
// For PostgreSQL (no batching) both do nothing and the writes simply race.
type batchEnv struct {
	s      *sqlStore
	hold   func(t *testing.T) (release func())
	queued func(t *testing.T, n int)
}

func openBatchSQLite(t *testing.T, path string) *sqlStore {
	t.Helper()
	st, err := Open(t.Context(), Options{Driver: DriverSQLite, DSN: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*sqlStore)
}

// usersAfterReopen opens the SQLite database at path again (its first store
// closed) and returns how many users it holds.
func usersAfterReopen(t *testing.T, path string) int {
	t.Helper()
	s := openBatchSQLite(t, path)
	_, total, err := s.ListUsers(t.Context(), UserQuery{Limit: -1})
	if err != nil {
		t.Fatalf("ListUsers after reopening: %v", err)
	}
	return total
}

func sqliteBatchEnv(t *testing.T) batchEnv {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "fb.db"))
	return batchEnv{s: s, hold: func(t *testing.T) func() { return holdCommitter(t, s) }, queued: func(t *testing.T, n int) { waitQueued(t, s, n) }}
}

func postgresBatchEnv(t *testing.T) batchEnv {
	st, err := Open(t.Context(), Options{Driver: DriverPostgres, DSN: internalTestSchema(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return batchEnv{s: st.(*sqlStore), hold: func(*testing.T) func() { return func() {} }, queued: func(*testing.T, int) {}}
}

// holdCommitter occupies the committer with a write that waits for release.
func holdCommitter(t *testing.T, s *sqlStore) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.write(context.Background(), func(*querier) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-errc; err != nil {
			t.Errorf("holding write: %v", err)
		}
	}
}

// waitQueued waits until at least n writes wait for the committer.
func waitQueued(t *testing.T, s *sqlStore, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.batch.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued after 10s, want %d", len(s.batch.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func forBothBackends(t *testing.T, test func(t *testing.T, e batchEnv)) {
	t.Run("sqlite", func(t *testing.T) { test(t, sqliteBatchEnv(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, postgresBatchEnv(t)) })
}

// TestBatchConcurrentCreateConflicts: 40 userNames, each created 3 times at
// once in different cases, all in one group-committed transaction on SQLite:
// exactly one create per name succeeds and the two others get ErrConflict.
func TestBatchConcurrentCreateConflicts(t *testing.T) {
	forBothBackends(t, func(t *testing.T, e batchEnv) {
		const names, tries = 40, 3
		ctx := t.Context()
		s := e.s
		txs0, writes0, batched := BatchStats(s)

		type outcome struct {
			name int
			u    User
			err  error
		}
		results := make(chan outcome, names*tries)
		release := e.hold(t)
		var wg sync.WaitGroup
		for i := range names {
			for j := range tries {
				userName := fmt.Sprintf("user%02d@example.com", i)
				switch j {
				case 1:
					userName = strings.ToUpper(userName)
				case 2:
					userName = "User" + userName[4:]
				}
				wg.Go(func() {
					u, err := s.CreateUser(ctx, User{UserName: userName, Active: true, Resource: []byte(`{"n":1}`)})
					results <- outcome{i, u, err}
				})
			}
		}
		e.queued(t, names*tries)
		release()
		wg.Wait()
		close(results)

		wins := map[int]User{}
		conflicts := map[int]int{}
		for o := range results {
			switch {
			case o.err == nil:
				if prev, dup := wins[o.name]; dup {
					t.Errorf("name %d created twice: %q and %q", o.name, prev.UserName, o.u.UserName)
				}
				wins[o.name] = o.u
			case errors.Is(o.err, ErrConflict):
				conflicts[o.name]++
			default:
				t.Errorf("name %d: unexpected error %v", o.name, o.err)
			}
		}
		for i := range names {
			if _, ok := wins[i]; !ok || conflicts[i] != tries-1 {
				t.Errorf("name %d: success %v, %d conflicts; want one success and %d conflicts", i, ok, conflicts[i], tries-1)
			}
		}
		_, total, err := s.ListUsers(ctx, UserQuery{Limit: -1})
		if err != nil || total != names {
			t.Fatalf("%d users stored (%v), want %d", total, err, names)
		}
		for _, w := range wins {
			got, err := s.GetUser(ctx, w.ID)
			if err != nil || got.UserName != w.UserName || got.Version != 1 {
				t.Errorf("winner %q: stored %+v, %v", w.UserName, got, err)
			}
			st, err := s.GetSyncState(ctx, w.ID)
			if err != nil || st.DesiredGen != 1 {
				t.Errorf("winner %q: sync state %+v, %v; want desired_gen 1", w.UserName, st, err)
			}
		}
		states, err := s.ListSyncStates(ctx)
		if err != nil || len(states) != names {
			t.Fatalf("%d sync states (%v), want %d: a losing create left a mark", len(states), err, names)
		}
		if batched {
			txs, writes, _ := BatchStats(s)
			// The holding write and all 120 creates queued behind it: one transaction.
			if txs-txs0 != 1 || writes-writes0 != names*tries+1 {
				t.Errorf("%d writes in %d transactions, want %d in 1", writes-writes0, txs-txs0, names*tries+1)
			}
		}
	})
}

// TestBatchUpdateUserErrors: UpdateUsers running in one transaction, every
// other one failing (its mutate returns an error after changing the user, or
// its new userName is taken): each failure is rolled back alone and returned
// as is; the successes are all stored, with their sync marks.
func TestBatchUpdateUserErrors(t *testing.T) {
	forBothBackends(t, func(t *testing.T, e batchEnv) {
		ctx := t.Context()
		s := e.s
		const n = 20
		users := make([]User, n)
		for i := range users {
			u, err := s.CreateUser(ctx, User{UserName: fmt.Sprintf("u%02d", i), Active: true, Resource: []byte(`{"v":0}`)})
			if err != nil {
				t.Fatal(err)
			}
			users[i] = u
		}
		if _, err := s.CreateUser(ctx, User{UserName: "taken"}); err != nil {
			t.Fatal(err)
		}
		errBoom := errors.New("boom")
		errs := make([]error, n)
		release := e.hold(t)
		var wg sync.WaitGroup
		for i, u := range users {
			wg.Go(func() {
				_, errs[i] = s.UpdateUser(ctx, u.ID, func(x *User) error {
					x.Active = false
					x.Resource = []byte(`{"v":1}`)
					switch {
					case i == n-1:
						x.UserName = "TAKEN" // fails in the database
					case i%2 == 0:
						x.UserName += "-renamed"
						return fmt.Errorf("mutate %d: %w", i, errBoom)
					default:
						x.UserName += "-renamed"
					}
					return nil
				})
			})
		}
		e.queued(t, n)
		release()
		wg.Wait()

		for i, u := range users {
			got, err := s.GetUser(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.GetSyncState(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			failed := i%2 == 0 || i == n-1
			switch {
			case i == n-1 && !errors.Is(errs[i], ErrConflict):
				t.Errorf("update %d: %v, want ErrConflict", i, errs[i])
			case i%2 == 0 && !errors.Is(errs[i], errBoom):
				t.Errorf("update %d: %v, want mutate's error", i, errs[i])
			case !failed && errs[i] != nil:
				t.Errorf("update %d: %v", i, errs[i])
			}
			if failed {
				if got.Version != 1 || got.UserName != u.UserName || !got.Active || string(got.Resource) != `{"v":0}` || st.DesiredGen != 1 {
					t.Errorf("failed update %d left a trace: %+v, desired_gen %d", i, got, st.DesiredGen)
				}
			} else if got.Version != 2 || got.UserName != u.UserName+"-renamed" || got.Active || string(got.Resource) != `{"v":1}` || st.DesiredGen != 2 {
				t.Errorf("update %d not stored: %+v, desired_gen %d", i, got, st.DesiredGen)
			}
		}
	})
}

// batchOf queues the writes one after another behind a held committer, so
// that they run in this order in one transaction, then releases them and
// returns their errors (and a recovered panic's value, for writes that
// panicked).
func batchOf(t *testing.T, e batchEnv, writes ...func() error) (errs []error, panics []any) {
	t.Helper()
	errs, panics = make([]error, len(writes)), make([]any, len(writes))
	release := e.hold(t)
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			errs[i] = w()
		})
		e.queued(t, i+1)
	}
	release()
	wg.Wait()
	return errs, panics
}

func userNamed(t *testing.T, s *sqlStore, name string) (User, bool) {
	t.Helper()
	us, _, err := s.ListUsers(t.Context(), UserQuery{UserName: &name})
	if err != nil {
		t.Fatal(err)
	}
	if len(us) == 0 {
		return User{}, false
	}
	return us[0], true
}

// insertUser is a raw write: a user row and its sync mark.
func insertUser(ctx context.Context, s *sqlStore, q *querier, name string) error {
	id, now := uuid.NewString(), s.d.t(s.now())
	if _, err := q.exec(ctx, `INSERT INTO users (`+userCols+`, user_name_lower) VALUES (?, NULL, ?, TRUE, NULL, 1, ?, ?, ?)`,
		id, name, now, now, foldUserName(name)); err != nil {
		return err
	}
	return s.markSync(ctx, q, id, name, false)
}

// TestBatchRollsBackOnlyTheFailedWrite: a write that has already written rows
// when it fails, or panics, is rolled back to its savepoint; the writes before
// and after it in the same transaction commit. A panic reaches the writer.
func TestBatchRollsBackOnlyTheFailedWrite(t *testing.T) {
	e := sqliteBatchEnv(t)
	s, ctx := e.s, t.Context()
	errBoom := errors.New("boom")
	create := func(name string) func() error {
		return func() error { _, err := s.CreateUser(ctx, User{UserName: name}); return err }
	}
	errs, panics := batchOf(t, e,
		create("before"),
		func() error {
			return s.write(ctx, func(q *querier) error {
				if err := insertUser(ctx, s, q, "failed"); err != nil {
					return err
				}
				return errBoom
			})
		},
		create("middle"),
		func() error {
			return s.write(ctx, func(q *querier) error {
				if err := insertUser(ctx, s, q, "panicked"); err != nil {
					return err
				}
				panic("write panics")
			})
		},
		create("after"),
	)
	if errs[0] != nil || errs[2] != nil || errs[4] != nil {
		t.Fatalf("the good writes failed: %v", errs)
	}
	if !errors.Is(errs[1], errBoom) {
		t.Errorf("failing write: %v, want its own error", errs[1])
	}
	if panics[3] != "write panics" {
		t.Errorf("panicking write: recovered %v in the writer", panics[3])
	}
	for _, name := range []string{"before", "middle", "after"} {
		if _, ok := userNamed(t, s, name); !ok {
			t.Errorf("%q is missing", name)
		}
	}
	for _, name := range []string{"failed", "panicked"} {
		if _, ok := userNamed(t, s, name); ok {
			t.Errorf("%q was stored", name)
		}
	}
	states, err := s.ListSyncStates(ctx)
	if err != nil || len(states) != 3 {
		t.Errorf("%d sync states (%v), want 3", len(states), err)
	}
}

// TestBatchSeesEarlierWrites: a write sees the writes before it in its batch.
func TestBatchSeesEarlierWrites(t *testing.T) {
	e := sqliteBatchEnv(t)
	s, ctx := e.s, t.Context()
	var seen int
	errs, _ := batchOf(t, e,
		func() error { _, err := s.CreateUser(ctx, User{UserName: "first"}); return err },
		func() error { _, err := s.CreateUser(ctx, User{UserName: "FIRST"}); return err },
		func() error {
			return s.write(ctx, func(q *querier) error {
				return q.queryRow(ctx, `SELECT COUNT(*) FROM users WHERE user_name_lower = 'first'`).Scan(&seen)
			})
		},
	)
	if errs[0] != nil || !errors.Is(errs[1], ErrConflict) || errs[2] != nil {
		t.Fatalf("errors %v, want nil, ErrConflict, nil", errs)
	}
	if seen != 1 {
		t.Fatalf("a later write of the batch saw %d users named first, want 1", seen)
	}
}

// TestBatchBrokenTransaction: when the shared transaction itself fails (here a
// write ends it behind the committer's back), every write of the transaction
// gets an error and none is stored, successes included; the writes queued
// behind the breaking one run in the next transaction.
func TestBatchBrokenTransaction(t *testing.T) {
	e := sqliteBatchEnv(t)
	s, ctx := e.s, t.Context()
	create := func(name string) func() error {
		return func() error { _, err := s.CreateUser(ctx, User{UserName: name}); return err }
	}
	started, unblock := make(chan struct{}), make(chan struct{})
	holdErr := make(chan error, 1)
	go func() {
		holdErr <- s.write(ctx, func(q *querier) error {
			close(started)
			<-unblock
			return insertUser(ctx, s, q, "held")
		})
	}()
	<-started
	writes := []func() error{
		create("a"),
		func() error {
			return s.write(ctx, func(q *querier) error {
				_, err := q.exec(ctx, `ROLLBACK`)
				return err
			})
		},
		create("b"),
	}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() { errs[i] = w() })
		waitQueued(t, s, i+1)
	}
	close(unblock)
	wg.Wait()
	if err := <-holdErr; err == nil {
		t.Error("the first write of the broken transaction succeeded")
	}
	for i, err := range errs[:2] {
		if err == nil {
			t.Errorf("write %d of the broken transaction succeeded", i)
		}
	}
	for _, name := range []string{"held", "a"} {
		if _, ok := userNamed(t, s, name); ok {
			t.Errorf("%q was stored by a failed transaction", name)
		}
	}
	if errs[2] != nil {
		t.Errorf("the write after the breaking one: %v", errs[2])
	}
	if _, ok := userNamed(t, s, "b"); !ok {
		t.Error("the write after the breaking one was not stored")
	}
	if _, err := s.CreateUser(ctx, User{UserName: "a"}); err != nil {
		t.Fatalf("write after the broken batch: %v", err)
	}
}

// TestBatchAbandonedWrite: a writer whose context ends while its write is
// queued gets the context's error and the write never runs.
func TestBatchAbandonedWrite(t *testing.T) {
	e := sqliteBatchEnv(t)
	s := e.s
	release := e.hold(t)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := s.CreateUser(ctx, User{UserName: "gone"})
		errc <- err
	}()
	e.queued(t, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned write: %v, want context.Canceled", err)
	}
	release()
	if _, err := s.CreateUser(t.Context(), User{UserName: "kept"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := userNamed(t, s, "gone"); ok {
		t.Fatal("the abandoned write was stored")
	}
}

// TestBatchCloseFinishesQueuedWrites: Close lets the queued writes commit,
// and refuses writes after it.
func TestBatchCloseFinishesQueuedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fb.db")
	s := openBatchSQLite(t, path)
	release := holdCommitter(t, s)
	const n = 5
	errc := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.CreateUser(context.Background(), User{UserName: fmt.Sprintf("q%d", i)})
			errc <- err
		}()
	}
	waitQueued(t, s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close waits for the committer, which waits for the queued writes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.batch.mu.RLock()
		c := s.batch.closed
		s.batch.mu.RUnlock()
		if c {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := s.CreateUser(context.Background(), User{UserName: "late"}); !errors.Is(err, errStoreClosed) {
		t.Errorf("write during Close: %v, want errStoreClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errc; err != nil {
			t.Errorf("queued write: %v", err)
		}
	}
	if total := usersAfterReopen(t, path); total != n {
		t.Fatalf("%d users after reopening, want %d", total, n)
	}
}

// TestSQLiteWriterIsDurable: the writer connection commits in WAL mode with
// synchronous=NORMAL, and the committer has the WAL fsynced after each commit:
// no writer is answered, and no reader sees the write, before that fsync has
// returned.
func TestSQLiteWriterIsDurable(t *testing.T) {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "fb.db"))
	ctx := t.Context()
	var sync int
	var mode string
	if err := s.wdb.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if err := s.wdb.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if sync != 1 || mode != "wal" {
		t.Fatalf("writer: synchronous=%d journal_mode=%s, want 1 (NORMAL) and wal", sync, mode)
	}

	h := holdSync(t, s, "durable", syncFile)
	if h.file != s.batch.wal.path || !strings.HasSuffix(h.file, "fb.db-wal") {
		t.Fatalf("synced %q, want the WAL", h.file)
	}
	// Committed (SQLite would show it), not yet synced.
	if c, d := s.batch.committed.Load(), s.batch.durable.Load(); c <= d {
		t.Fatalf("committed %d, durable %d: the create is not waiting for its sync", c, d)
	}
	read := make(chan bool, 1)
	go func() {
		_, ok := userNamed(t, s, "durable")
		read <- ok
	}()
	select {
	case err := <-h.created:
		t.Fatalf("the create was answered (%v) before its fsync returned", err)
	case <-read:
		t.Fatal("a read returned before the fsync of what it could see")
	case <-time.After(100 * time.Millisecond):
	}
	if err := h.done(); err != nil {
		t.Fatal(err)
	}
	if ok := <-read; !ok {
		t.Error("the read after the fsync did not find the user")
	}
	// With nothing being synced, a read does not wait.
	s.batch.wal.sync = syncFile
	if _, ok := userNamed(t, s, "durable"); !ok {
		t.Error("user not found")
	}
}

// TestSQLiteFsyncFailure: when the fsync after a commit fails, the batch's
// writers get the error, and so does every later write (the kernel may have
// dropped what it could not write); reads do not hang.
func TestSQLiteFsyncFailure(t *testing.T) {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "fb.db"))
	ctx := t.Context()
	if _, err := s.CreateUser(ctx, User{UserName: "before"}); err != nil {
		t.Fatal(err)
	}
	errEIO := errors.New("input/output error")
	s.batch.wal.sync = func(*os.File) error { return errEIO }
	if _, err := s.CreateUser(ctx, User{UserName: "lost"}); !errors.Is(err, errEIO) {
		t.Fatalf("create whose fsync failed: %v, want the fsync's error", err)
	}
	s.batch.wal.sync = syncFile
	if _, err := s.CreateUser(ctx, User{UserName: "after"}); !errors.Is(err, errEIO) {
		t.Fatalf("create after a failed fsync: %v, want the fsync's error", err)
	}
	if _, ok := userNamed(t, s, "before"); !ok {
		t.Error("the user written before the failure is not found")
	}
}

// TestSQLiteWriterSettings checks the writer connection's settings that the
// committer relies on: WAL, synchronous=NORMAL (it fsyncs the WAL itself),
// in-memory savepoint journals and no checkpoints inside commits (the
// checkpointer makes them).
func TestSQLiteWriterSettings(t *testing.T) {
	s := openBatchSQLite(t, filepath.Join(t.TempDir(), "w.db"))
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "1", "temp_store": "2", "wal_autocheckpoint": "0"} {
		var got string
		if err := s.wdb.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("writer PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

// TestSQLiteCheckpointerBoundsTheWAL: with the writer's own checkpoints off,
// the checkpointer copies the log into the database beside the writes and,
// under a load that never pauses, has the committer catch up so that the log
// starts over: the WAL file (whose size is the most it ever held) stays
// small, every write is in the database, and what was written survives a
// reopen.
func TestSQLiteCheckpointerBoundsTheWAL(t *testing.T) {
	oldCommits, oldPages := ckptCommits, walRestartPages
	ckptCommits, walRestartPages = 8, 200
	t.Cleanup(func() { ckptCommits, walRestartPages = oldCommits, oldPages })

	path := filepath.Join(t.TempDir(), "ckpt.db")
	s := openBatchSQLite(t, path)
	const writers, each = 32, 100
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.CreateUser(t.Context(), User{UserName: fmt.Sprintf("w%d-%d@example.com", w, i),
					Resource: []byte(fmt.Sprintf(`{"userName":"w%d-%d@example.com","title":"%s"}`, w, i, strings.Repeat("x", 300)))}); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	txs, _, _ := BatchStats(s)
	runs := s.batch.ckpt.runs.Load()
	if runs == 0 {
		t.Fatalf("no checkpoint ran in %d commits", txs)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// A page is 4,096 bytes plus a 24-byte frame header. The log may hold
	// walRestartPages, plus what ckptCommits commits of up to maxBatch
	// writes add before the next checkpoint reports it; 1,500 pages leave
	// room for that, and are far below what these writes fill without
	// checkpoints (about 2,000 pages of users alone).
	const pageBytes = 4096 + 24
	if pages := fi.Size() / pageBytes; pages > 1500 {
		t.Errorf("WAL grew to %d pages (%d commits, %d checkpoints); want at most 1500", pages, txs, runs)
	}
	t.Logf("%d writes in %d commits, %d checkpoints, WAL file %d pages", writers*each, txs, runs, fi.Size()/pageBytes)

	var n int
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT count(*) FROM users`).Scan(&n); err != nil || n != writers*each {
		t.Fatalf("users: %d, %v; want %d", n, err, writers*each)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if total := usersAfterReopen(t, path); total != writers*each {
		t.Fatalf("%d users after reopening, want %d", total, writers*each)
	}
}
