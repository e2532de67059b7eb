package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Group commit (SQLite).
//
// SQLite commits one write transaction at a time and, with synchronous=FULL,
// each commit waits for an fsync of the WAL: a disk that syncs 2,000 times a
// second allows at most 2,000 committed writes a second however many clients
// wait. So the SQLite store does not give every write its own transaction.
// Writers hand their work (the fn passed to sqlStore.write) to one committer
// goroutine, which takes every write that is waiting (up to maxBatch) and runs
// them, in arrival order, in ONE BEGIN IMMEDIATE transaction, each inside its
// own SAVEPOINT, then commits once and only then answers every writer:
//
//   - A write whose fn fails is rolled back to its savepoint, so it leaves no
//     trace, and its writer gets fn's error; the other writes of the batch
//     are unaffected. A write never sees a failed write's changes.
//   - A write sees the changes of the writes before it in the batch, exactly
//     as if they had committed before it started (they commit with it, or
//     nobody's does).
//   - Nobody is answered before the commit: a success is durable when it is
//     reported, and a failure that depended on earlier writes of the batch
//     (e.g. ErrConflict against a userName created just before) is never
//     reported for a batch that did not commit. If BEGIN, a savepoint
//     operation or COMMIT fails, every writer of the batch gets that error and
//     nothing of the batch is written.
//   - Each write is still atomic (its statements and its sync mark commit
//     together or not at all), writes are serialised (a write reads the
//     committed-or-batched state of everything before it), and the
//     transaction boundaries visible to readers only ever contain whole
//     writes.
//
// A batch of one runs without a savepoint, exactly like a plain transaction.
// There is no waiting for company: the committer starts a batch as soon as a
// write arrives, and the writes that arrive while it runs and commits form the
// next batch, so batches grow with the load and a lone write pays nothing.
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

// committer runs the writes of a SQLite store in batches, one transaction each.
type committer struct {
	s      *sqlStore
	queue  chan *writeReq
	mu     sync.RWMutex // held (read) while enqueueing; Close takes it to stop new writes
	closed bool
	quit   chan struct{}
	exited chan struct{}

	// stmts is used by the loop goroutine only.
	stmts writerStmts

	// Counters for BatchStats.
	txs, writes atomic.Uint64
}

func newCommitter(s *sqlStore) *committer {
	c := &committer{
		s:      s,
		queue:  make(chan *writeReq, queueLen),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
		stmts:  writerStmts{db: s.wdb, m: map[string]*sql.Stmt{}},
	}
	go c.loop()
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
// and waits for it to exit.
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
	defer c.stmts.close()
	batch := make([]*writeReq, 0, maxBatch)
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
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-c.queue:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		c.run(batch)
		clear(batch) // drop references to finished requests
		// Between transactions the writer connection is free: prepare the
		// statements the batch ran unprepared.
		c.stmts.prepareWanted()
	}
}

// savepoint statements; one name suffices since each write's savepoint is
// released (or rolled back and released) before the next write starts.
const (
	sqlSavepoint  = `SAVEPOINT fb_write`
	sqlRelease    = `RELEASE fb_write`
	sqlRollbackTo = `ROLLBACK TO fb_write`
)

// run executes one batch in one transaction and answers every writer.
func (c *committer) run(batch []*writeReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	defer func() {
		for _, r := range live {
			close(r.done)
		}
	}()
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
		failAll(fmt.Errorf("directory: begin: %w", err))
		return
	}
	c.txs.Add(1)
	c.writes.Add(uint64(len(live)))

	stmts := &txStmts{tx: tx, w: &c.stmts, m: map[string]*sql.Stmt{}}
	if len(live) == 1 {
		// A plain transaction, as without batching.
		r := live[0]
		r.call(&querier{x: tx, d: c.s.d, ctx: context.WithoutCancel(r.ctx), stmts: stmts})
		if r.err != nil || r.panicked {
			_ = tx.Rollback()
			return
		}
		if err := tx.Commit(); err != nil {
			r.err = fmt.Errorf("directory: commit: %w", err)
		}
		return
	}

	control := &querier{x: tx, d: c.s.d, ctx: ctx, stmts: stmts}
	var broken error
	for _, r := range live {
		if _, err := control.exec(ctx, sqlSavepoint); err != nil {
			broken = err
			break
		}
		r.call(&querier{x: tx, d: c.s.d, ctx: context.WithoutCancel(r.ctx), stmts: stmts})
		if r.err != nil || r.panicked {
			if _, err := control.exec(ctx, sqlRollbackTo); err != nil {
				broken = err
				break
			}
		}
		if _, err := control.exec(ctx, sqlRelease); err != nil {
			broken = err
			break
		}
	}
	if broken != nil {
		// The transaction cannot be trusted (SQLite may have rolled it back
		// on its own, e.g. after an I/O error): nothing of it is kept.
		_ = tx.Rollback()
		failAll(fmt.Errorf("directory: write batch: %w", broken))
		return
	}
	if err := tx.Commit(); err != nil {
		// Nothing was written. Writers whose fn failed are told so too: their
		// error may have depended on writes that are now lost.
		failAll(fmt.Errorf("directory: commit: %w", err))
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
