package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// Group commit (SQLite).
//
// SQLite commits one write transaction at a time, and a durable commit waits
// for an fsync of the WAL: a disk that syncs 2,000 times a second allows at
// most 2,000 committed writes a second however many clients wait. So the
// SQLite store does not give every write its own transaction. Writers hand
// their work (the fn passed to sqlStore.write) to one committer goroutine,
// which runs the writes, in arrival order, in ONE BEGIN IMMEDIATE transaction,
// each inside its own SAVEPOINT, commits once, has the WAL synced once, and
// only then answers every writer:
//
//   - A write whose fn fails is rolled back to its savepoint, so it leaves no
//     trace, and its writer gets fn's error; the other writes of the batch
//     are unaffected. A write never sees a failed write's changes.
//   - A write sees the changes of the writes before it in the batch, exactly
//     as if they had committed before it started (they commit with it, or
//     nobody's does).
//   - Nobody is answered before the batch is on disk: a success is durable
//     when it is reported, and a failure that depended on earlier writes
//     (e.g. ErrConflict against a userName created just before) is never
//     reported before those writes are durable. If a savepoint operation or
//     COMMIT fails, every writer of the batch gets that error and nothing of
//     the batch is written (if BEGIN fails, the write that was to start the
//     transaction gets the error; the next one tries again).
//   - Each write is still atomic (its statements and its sync mark commit
//     together or not at all), writes are serialised (a write reads the
//     committed-or-batched state of everything before it), and the
//     transaction boundaries visible to readers only ever contain whole
//     writes.
//
// The fsync is taken out of the serial section. The writer connection runs
// with synchronous=NORMAL, so COMMIT writes the batch's WAL frames without
// waiting for the disk, and a second goroutine, the syncer, fsyncs the WAL
// file and then answers the batch's writers: that is the fsync
// synchronous=FULL would have made inside COMMIT, moved after it. Meanwhile
// the committer already runs the next writes in a new transaction, which it
// keeps open, taking every write that arrives, until the syncer is done; only
// then does it commit that batch and hand it over. So there is at most one
// batch being synced, batches grow with the disk's latency and the load, the
// statements of one batch run while the previous one is synced, and a lone
// write pays nothing but its own commit and sync. (With synchronous=NORMAL,
// SQLite still syncs the WAL header inside the commit that restarts the WAL;
// checkpoints, which sync the WAL and the database, are made beside the
// writes by a checkpointer: see checkpoint.go.)
//
// Readers must not see a batch before it is durable either: a GET that shows
// a user whose create is then lost to a power cut would be as wrong as a 201
// for it. Every read of the store waits, after its statement has taken its
// snapshot, until every batch committed by then is synced (awaitDurable); a
// read while nothing is being synced does not wait, and a read whose context
// ends while it waits fails rather than return what it saw. If an fsync
// fails, the writers of that batch get the error (their writes may or may not
// be on disk), the batch open meanwhile is rolled back, and every later write
// fails too: the kernel may have dropped the pages it could not write, so
// nothing written since could be trusted to be on disk until the process is
// restarted.
//
// A writer whose context ends while its write is still queued leaves and gets
// the context's error; once the committer has taken the write, it runs with
// the writer's context values but without its cancellation (one writer's
// cancellation must not interrupt statements of a transaction shared with
// others), and the writer waits for the outcome.
//
// The committer also keeps the statements it runs prepared on the writer
// connection (see writerStmts), so that a write does not pay for parsing its
// SQL: for the small writes SCIM makes, SQLite parses a statement in about as
// long as it runs it.

// maxBatch bounds the writes in one transaction, and so the time the write
// lock is held and the first writer of a batch waits for the last.
const maxBatch = 128

// queueLen is how many writes may wait for the committer before writers block.
const queueLen = 1024

// errStoreClosed is the error of a write after Close.
var errStoreClosed = errors.New("the store is closed")

// Write request states.
const (
	reqQueued    int32 = iota
	reqTaken           // the committer runs it; the writer waits for the outcome
	reqAbandoned       // the writer left before the committer took it
)

type writeReq struct {
	ctx   context.Context
	fn    func(q *querier) error
	state atomic.Int32
	err   error
	// panicked and panicVal carry a panic in fn back to the writer's goroutine.
	panicked bool
	panicVal any
	done     chan struct{}
}

// syncBatch is what the committer hands to the syncer: the writes of one
// transaction, and its sequence number if it was committed (0: rolled back,
// nothing to sync; its writers are answered in order all the same).
type syncBatch struct {
	reqs []*writeReq
	seq  uint64
}

// committer runs the writes of a SQLite store in batches, one transaction each.
type committer struct {
	s      *sqlStore
	queue  chan *writeReq
	mu     sync.RWMutex // held (read) while enqueueing; Close takes it to stop new writes
	closed bool
	quit   chan struct{}
	exited chan struct{}

	// stmts and syncing are used by the loop goroutine only.
	stmts   writerStmts
	syncing bool // a batch is with the syncer

	// The syncer: toSync carries at most one batch, idle reports it done.
	toSync     chan syncBatch
	idle       chan struct{}
	syncerDone chan struct{}
	wal        walFile // the syncer's only

	// committed is the sequence number of the last COMMIT begun, durable that
	// of the last batch synced (or rolled back); durableCh is closed, and
	// replaced, whenever durable moves or the syncer fails.
	committed, durable atomic.Uint64
	durableCh          atomic.Pointer[chan struct{}]
	syncErr            atomic.Pointer[error] // set once an fsync failed

	// ckpt checkpoints the WAL beside the writes (checkpoint.go).
	ckpt *checkpointer

	// Counters for BatchStats.
	txs, writes atomic.Uint64
}

func newCommitter(s *sqlStore, walPath string, ckptDB *sql.DB) *committer {
	c := &committer{
		s:          s,
		queue:      make(chan *writeReq, queueLen),
		quit:       make(chan struct{}),
		exited:     make(chan struct{}),
		stmts:      writerStmts{db: s.wdb, m: map[string]*sql.Stmt{}},
		toSync:     make(chan syncBatch, 1),
		idle:       make(chan struct{}, 1),
		syncerDone: make(chan struct{}),
		wal:        walFile{path: walPath, sync: syncFile},
		ckpt:       newCheckpointer(ckptDB, s.log),
	}
	ch := make(chan struct{})
	c.durableCh.Store(&ch)
	go c.loop()
	go c.syncer()
	return c
}

// do queues fn and waits for its outcome.
func (c *committer) do(ctx context.Context, fn func(q *querier) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("directory: begin: %w", err)
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan struct{})}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return fmt.Errorf("directory: begin: %w", errStoreClosed)
	}
	select {
	case c.queue <- r:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return fmt.Errorf("directory: begin: %w", ctx.Err())
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return fmt.Errorf("directory: begin: %w", ctx.Err())
		}
		<-r.done // taken: the outcome follows shortly
	}
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// close stops accepting writes, lets the committer finish every queued one,
// and waits for it and the syncer to exit.
func (c *committer) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.exited
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.quit)
	<-c.exited
}

func (c *committer) loop() {
	defer close(c.exited)
	defer func() {
		close(c.toSync) // the syncer finishes the batch it has, then exits
		<-c.syncerDone
		c.wal.close()
		c.ckpt.close()
	}()
	defer c.stmts.close()
	for {
		var first *writeReq
		select {
		case first = <-c.queue:
		case <-c.quit:
			// No write can be queued any more (closed is set); finish the queue.
			select {
			case first = <-c.queue:
			default:
				return
			}
		}
		if first.state.CompareAndSwap(reqQueued, reqTaken) {
			// Between transactions the writer connection is free: catch
			// the checkpoints up if the WAL has grown too long (so that
			// the next transaction starts it over), and prepare the
			// statements the last batch ran unprepared.
			c.ckpt.catchUp(c.s.wdb)
			c.runTx(first)
			c.stmts.prepareWanted()
		}
	}
}

// savepoint statements; one name suffices since each write's savepoint is
// released (or rolled back and released) before the next write starts.
const (
	sqlSavepoint  = `SAVEPOINT fb_write`
	sqlRelease    = `RELEASE fb_write`
	sqlRollbackTo = `ROLLBACK TO fb_write`
)

// runTx runs first, taken, and the writes that arrive while the previous
// batch is being synced, in one transaction, commits it, and hands it to the
// syncer, which answers the writers.
func (c *committer) runTx(first *writeReq) {
	live := []*writeReq{first}
	if err := c.failed(); err != nil {
		first.err = err
		c.handOff(syncBatch{reqs: live})
		return
	}
	// The transaction's own statements (BEGIN, SAVEPOINT, COMMIT) never
	// carry a writer's cancellation.
	ctx := context.Background()
	failAll := func(err error) {
		for _, r := range live {
			r.err = err
		}
	}
	tx, err := c.s.wdb.BeginTx(ctx, nil)
	if err != nil {
		first.err = fmt.Errorf("directory: begin: %w", err)
		c.handOff(syncBatch{reqs: live})
		return
	}
	c.txs.Add(1)
	c.writes.Add(1)
	stmts := &txStmts{tx: tx, w: &c.stmts, m: map[string]*sql.Stmt{}}
	control := &querier{x: tx, d: c.s.d, ctx: ctx, stmts: stmts}
	// run runs one write in its own savepoint, the first one too: if a write
	// ends the transaction behind the committer's back, its RELEASE fails
	// (without it, the next SAVEPOINT would open a transaction of its own).
	run := func(r *writeReq) (broken error) {
		if _, err := control.exec(ctx, sqlSavepoint); err != nil {
			return err
		}
		r.call(&querier{x: tx, d: c.s.d, ctx: context.WithoutCancel(r.ctx), stmts: stmts})
		if r.err != nil || r.panicked {
			if _, err := control.exec(ctx, sqlRollbackTo); err != nil {
				return err
			}
		}
		_, err := control.exec(ctx, sqlRelease)
		return err
	}
	broken := run(first)
	for broken == nil && len(live) < maxBatch {
		r := c.nextWhileSyncing()
		if r == nil {
			break
		}
		if !r.state.CompareAndSwap(reqQueued, reqTaken) {
			continue // abandoned by its writer
		}
		live = append(live, r)
		c.writes.Add(1)
		broken = run(r)
	}
	c.awaitSyncer() // one batch at a time with the syncer, in order
	if broken == nil {
		// An fsync failed while this batch was open: it is refused too.
		broken = c.failed()
	}
	if broken != nil {
		// The transaction cannot be trusted (SQLite may have rolled it back
		// on its own, e.g. after an I/O error): nothing of it is kept.
		_ = tx.Rollback()
		failAll(fmt.Errorf("directory: write batch: %w", broken))
		c.handOff(syncBatch{reqs: live})
		return
	}
	// The sequence number is taken before COMMIT makes the batch visible, so
	// that a reader who sees it waits for its sync (awaitDurable).
	seq := c.committed.Add(1)
	if err := tx.Commit(); err != nil {
		// Nothing was written. Writers whose fn failed are told so too: their
		// error may have depended on writes that are now lost.
		failAll(fmt.Errorf("directory: commit: %w", err))
	} else {
		c.ckpt.committed()
	}
	c.handOff(syncBatch{reqs: live, seq: seq})
}

// nextWhileSyncing returns the next queued write, waiting for one while the
// syncer is busy; nil once the syncer is idle and nothing is queued (time to
// commit).
func (c *committer) nextWhileSyncing() *writeReq {
	select {
	case r := <-c.queue:
		return r
	default:
	}
	if !c.syncing {
		return nil
	}
	select {
	case r := <-c.queue:
		return r
	case <-c.idle:
		c.syncing = false
		return nil
	}
}

// awaitSyncer waits until the syncer has finished the batch it has.
func (c *committer) awaitSyncer() {
	if c.syncing {
		<-c.idle
		c.syncing = false
	}
}

// handOff gives a batch to the syncer, which must be idle.
func (c *committer) handOff(b syncBatch) {
	c.awaitSyncer()
	c.syncing = true
	c.toSync <- b
}

// syncer makes each committed batch durable (an fsync of the WAL), then
// answers its writers and reports that it is idle.
func (c *committer) syncer() {
	defer close(c.syncerDone)
	for b := range c.toSync {
		if b.seq != 0 {
			if err := c.failed(); err != nil {
				c.failBatch(b, err)
			} else if err := c.wal.syncNow(); err != nil {
				err = fmt.Errorf("directory: the write may or may not be on disk: sync of the write-ahead log failed: %w", err)
				c.s.log.Error("fsync failed: every later write is refused until restart", zap.Error(err))
				c.syncErr.CompareAndSwap(nil, &err)
				c.failBatch(b, err)
			}
			c.durable.Store(b.seq)
			ch := make(chan struct{})
			close(*c.durableCh.Swap(&ch))
		}
		for _, r := range b.reqs {
			close(r.done)
		}
		c.idle <- struct{}{}
	}
}

func (c *committer) failBatch(b syncBatch, err error) {
	for _, r := range b.reqs {
		if r.err == nil {
			r.err = err
		}
	}
}

// failed returns the error of a failed fsync, if one failed.
func (c *committer) failed() error {
	if p := c.syncErr.Load(); p != nil {
		return *p
	}
	return nil
}

// awaitDurable waits until every batch committed so far is synced: a read
// calls it once its statement has taken its snapshot, so that it never
// returns a write that a power cut could still undo. It returns at once when
// nothing is being synced or an fsync has failed (every write fails from then
// on), and ctx's error when ctx ends first: the read must then fail.
func (c *committer) awaitDurable(ctx context.Context) error {
	target := c.committed.Load()
	for {
		ch := *c.durableCh.Load() // before the check: a later move closes it
		if c.durable.Load() >= target || c.failed() != nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("directory: wait for the write-ahead log sync: %w", ctx.Err())
		}
	}
}

// walFile is the syncer's handle on the WAL file: opened when first needed,
// reopened if SQLite replaced the file.
type walFile struct {
	path string
	f    *os.File
	sync func(*os.File) error // syncFile; tests replace it
}

func (w *walFile) syncNow() error {
	if w.f != nil {
		// SQLite keeps the WAL while the database is open; check anyway.
		if cur, err := os.Stat(w.path); err == nil {
			if mine, err := w.f.Stat(); err != nil || !os.SameFile(cur, mine) {
				w.close()
			}
		}
	}
	if w.f == nil {
		f, err := os.OpenFile(w.path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		w.f = f
	}
	return w.sync(w.f)
}

// syncFile is what SQLite's synchronous=FULL does after a WAL commit: an
// fsync of the file.
func syncFile(f *os.File) error { return f.Sync() }

func (w *walFile) close() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
}

// call runs the write's fn, catching a panic to rethrow in the writer.
func (r *writeReq) call(q *querier) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked, r.panicVal = true, p
			r.err = fmt.Errorf("directory: write panicked: %v", p)
		}
	}()
	r.err = r.fn(q)
}

// maxWriterStmts bounds the statement texts kept prepared on the writer
// connection; texts beyond it (e.g. generated IN lists) run unprepared.
const maxWriterStmts = 256

// writerStmts keeps statements prepared on the writer connection across
// transactions. A text is run unprepared the first time; the committer
// prepares it (on the database, which needs the writer connection free)
// between transactions, and later transactions use it through
// Tx.StmtContext, which reuses the statement already prepared on the
// connection. Scripts (texts with ';') are never prepared. Used by the
// committer goroutine only.
type writerStmts struct {
	db     *sql.DB
	m      map[string]*sql.Stmt
	wanted []string
}

// lookup returns the prepared statement for query, or nil after noting that
// it is wanted.
func (w *writerStmts) lookup(query string) *sql.Stmt {
	if st, ok := w.m[query]; ok {
		return st
	}
	if len(w.m)+len(w.wanted) < maxWriterStmts && !strings.Contains(query, ";") && !slices.Contains(w.wanted, query) {
		w.wanted = append(w.wanted, query)
	}
	return nil
}

func (w *writerStmts) prepareWanted() {
	for _, q := range w.wanted {
		st, err := w.db.PrepareContext(context.Background(), q)
		if err != nil {
			// Not preparable (or the database is gone): keep running it
			// unprepared, which reports any error where it belongs.
			st = nil
		}
		w.m[q] = st
	}
	w.wanted = w.wanted[:0]
}

func (w *writerStmts) close() {
	for _, st := range w.m {
		if st != nil {
			_ = st.Close()
		}
	}
	clear(w.m)
}

// txStmts hands out the writer's prepared statements bound to one
// transaction. Used by the committer goroutine only.
type txStmts struct {
	tx *sql.Tx
	w  *writerStmts
	m  map[string]*sql.Stmt
}

// get returns the transaction's statement for query, or nil to run it
// unprepared.
func (c *txStmts) get(ctx context.Context, query string) *sql.Stmt {
	if st, ok := c.m[query]; ok {
		return st
	}
	st := c.w.lookup(query)
	if st != nil {
		st = c.tx.StmtContext(ctx, st)
	}
	c.m[query] = st
	return st
}

// BatchStats reports, for a SQLite store opened by Open, how many write
// transactions its committer has run and how many writes they carried
// (writes/transactions is the mean batch size). ok is false for stores that
// do not batch (PostgreSQL).
func BatchStats(s Store) (transactions, writes uint64, ok bool) {
	ss, isSQL := s.(*sqlStore)
	if !isSQL || ss.batch == nil {
		return 0, 0, false
	}
	return ss.batch.txs.Load(), ss.batch.writes.Load(), true
}
