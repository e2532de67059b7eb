package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"go.uber.org/zap"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Open connects to the database described by opts and migrates its schema.
//
// SQLite: the file (and its folder) is created if needed with owner-only
// permissions; the database runs in WAL mode with foreign keys on and a busy
// timeout of SQLiteBusyTimeout. Writes go through a single connection in
// BEGIN IMMEDIATE transactions, so other processes (e.g. `flexbridge token
// create` next to `serve`) wait for the lock instead of failing with
// "database is locked"; in-process writers are group-committed (see
// batch.go): one goroutine runs the writes that wait, each in its own
// savepoint, in one transaction, and a second one fsyncs the WAL after the
// commit; nobody is answered, and no read returns a write, before that. A
// third copies the WAL into the database file beside the writes
// (checkpoint.go).
// Reads use a separate pool of read-only connections and never block writes.
func Open(ctx context.Context, opts Options) (Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	var (
		s   *sqlStore
		err error
	)
	switch opts.Driver {
	case DriverSQLite:
		s, err = openSQLite(opts)
	case DriverPostgres:
		s, err = openPostgres(opts)
	default:
		return nil, fmt.Errorf("directory: unknown driver %q (want %q or %q): %w",
			opts.Driver, DriverSQLite, DriverPostgres, ErrInvalid)
	}
	if err != nil {
		return nil, err
	}
	if err := migrateRetrying(ctx, s, opts.Driver); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openSQLite(opts Options) (*sqlStore, error) {
	if opts.DSN == "" || opts.DSN == ":memory:" || strings.HasPrefix(opts.DSN, "file:") {
		return nil, fmt.Errorf("directory: sqlite DSN must be a file path, got %q: %w", opts.DSN, ErrInvalid)
	}
	path, err := filepath.Abs(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("directory: sqlite path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("directory: create sqlite folder: %w", err)
	}
	// Create the file ourselves so it (and the -wal/-shm files SQLite derives
	// from it) is readable by the owner only: it holds personal data and
	// token hashes.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("directory: create sqlite file: %w", err)
	}
	f.Close()
	// SQLite resolves symbolic links and keeps the -wal and -shm files beside
	// the real file; the committer fsyncs that WAL, and every process must
	// find the same token change file: use the real path for everything.
	if path, err = filepath.EvalSymlinks(path); err != nil {
		return nil, fmt.Errorf("directory: sqlite path: %w", err)
	}
	// The token change file (tokenmark.go), likewise the owner's only.
	f, err = os.OpenFile(path+tokenMarkSuffix, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("directory: create token change file: %w", err)
	}
	f.Close()

	// A file: URI, so that any character in the path is escaped.
	uri := (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
	busy := strconv.FormatInt(SQLiteBusyTimeout.Milliseconds(), 10)
	common := "_busy_timeout=" + busy + "&_foreign_keys=1"

	// temp_store=MEMORY: every write runs in a savepoint of the committer's
	// transaction (batch.go), and SQLite keeps the pages a savepoint changes
	// in a sub-journal that otherwise spills to a temporary file past 64 KiB
	// (profiles of bench/scimbench showed it did, two write calls per page
	// kept, about a sixth of the committer's time). It holds only the pages
	// one write changes.
	//
	// wal_autocheckpoint=0: the writer never checkpoints inside a commit
	// (SQLite's default does at 1,000 WAL pages, fsyncing the WAL and the
	// database while every writer waits); a checkpointer of its own does it
	// beside the writes (checkpoint.go).
	wdb, err := sql.Open("sqlite", uri+"?"+common+"&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate&_pragma=temp_store(memory)&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		return nil, fmt.Errorf("directory: open sqlite: %w", err)
	}
	// One writer connection: in-process writers wait for the committer (with
	// their context) rather than spinning in SQLite's busy handler.
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)

	rdb, err := sql.Open("sqlite", uri+"?"+common+"&_query_only=1")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("directory: open sqlite: %w", err)
	}
	// The checkpointer's connection (synchronous=FULL, SQLite's default:
	// a checkpoint fsyncs the WAL before it copies pages and the database
	// after).
	cdb, err := sql.Open("sqlite", uri+"?"+common)
	if err != nil {
		wdb.Close()
		rdb.Close()
		return nil, fmt.Errorf("directory: open sqlite: %w", err)
	}
	cdb.SetMaxOpenConns(1)
	cdb.SetMaxIdleConns(1)
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)

	s := newSQLStore(sqliteDialect, wdb, rdb, opts)
	// synchronous=NORMAL: the committer fsyncs the WAL itself after each
	// commit, outside the serial section, before answering (batch.go).
	s.batch = newCommitter(s, path+"-wal", cdb)
	s.tokenMark = path + tokenMarkSuffix
	s.rstmts = &poolStmts{db: rdb, m: map[string]*sql.Stmt{}}
	return s, nil
}

func openPostgres(opts Options) (*sqlStore, error) {
	if opts.DSN == "" {
		return nil, fmt.Errorf("directory: postgres DSN is empty: %w", ErrInvalid)
	}
	db, err := sql.Open("pgx", opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("directory: open postgres: %w", err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return newSQLStore(postgresDialect, db, db, opts), nil
}

func newSQLStore(d *dialect, wdb, rdb *sql.DB, opts Options) *sqlStore {
	return &sqlStore{
		d:     d,
		wdb:   wdb,
		rdb:   rdb,
		clock: opts.Now,
		log:   opts.Logger.With(zap.String("component", "directory"), zap.String("driver", d.name)),
	}
}

// sqlStore implements Store over database/sql. wdb serves write
// transactions, rdb reads; for PostgreSQL they are the same pool.
type sqlStore struct {
	d        *dialect
	wdb, rdb *sql.DB
	// batch group-commits the writes (SQLite); nil: one transaction per
	// write (PostgreSQL, whose writers run in parallel on many connections).
	batch *committer
	// rstmts keeps single statements on the read pool prepared (SQLite);
	// nil: not kept (pgx caches statements itself).
	rstmts *poolStmts
	// tokenMark is the file whose size counts token changes (SQLite; tokenmark.go).
	tokenMark string
	clock     func() time.Time
	log       *zap.Logger
	closeOnce sync.Once
	closeErr  error
}

// now is the store's clock at the resolution both backends keep.
func (s *sqlStore) now() time.Time { return normTime(s.clock()) }

func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.wdb.PingContext(ctx); err != nil {
		return fmt.Errorf("directory: ping: %w", err)
	}
	if s.rdb != s.wdb {
		if err := s.rdb.PingContext(ctx); err != nil {
			return fmt.Errorf("directory: ping: %w", err)
		}
	}
	return nil
}

func (s *sqlStore) Close() error {
	s.closeOnce.Do(func() {
		var err error
		if s.batch != nil {
			s.batch.close() // finishes the queued writes
		}
		if s.rstmts != nil {
			err = s.rstmts.close()
		}
		err = errors.Join(err, s.wdb.Close())
		if s.rdb != s.wdb {
			err = errors.Join(err, s.rdb.Close())
		}
		s.closeErr = err
	})
	return s.closeErr
}

// querier runs rebound queries on a transaction or a pool.
type querier struct {
	x interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
	d *dialect
	// ctx, when set, replaces the context callers pass (a write running in a
	// shared batch transaction: see batch.go).
	ctx context.Context
	// stmts, when set, supplies prepared statements.
	stmts stmtSource
	// read, when set, runs after a query has taken its snapshot (its first
	// step), before its rows are returned: the read pool's durability wait;
	// its error fails the query.
	read func(ctx context.Context) error
}

// rowScanner is what callers use of a single-row query (a *sql.Row).
type rowScanner interface {
	Scan(dest ...any) error
}

// errRow is a single-row query that failed after it ran.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// stmtSource returns a prepared statement for a query text, or nil to run
// the text unprepared.
type stmtSource interface {
	get(ctx context.Context, query string) *sql.Stmt
}

func (q *querier) prepared(ctx context.Context, query string) *sql.Stmt {
	if q.stmts == nil {
		return nil
	}
	return q.stmts.get(ctx, query)
}

func (q *querier) context(ctx context.Context) context.Context {
	if q.ctx != nil {
		return q.ctx
	}
	return ctx
}

func (q *querier) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, query = q.context(ctx), q.d.rebind(query)
	if st := q.prepared(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.x.ExecContext(ctx, query, args...)
}

func (q *querier) query(ctx context.Context, query string, args ...any) (rows *sql.Rows, err error) {
	ctx, query = q.context(ctx), q.d.rebind(query)
	if st := q.prepared(ctx, query); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = q.x.QueryContext(ctx, query, args...)
	}
	if err == nil && q.read != nil {
		if werr := q.read(ctx); werr != nil {
			rows.Close()
			return nil, werr
		}
	}
	return rows, err
}

func (q *querier) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	ctx, query = q.context(ctx), q.d.rebind(query)
	var row *sql.Row
	if st := q.prepared(ctx, query); st != nil {
		row = st.QueryRowContext(ctx, args...)
	} else {
		row = q.x.QueryRowContext(ctx, query, args...)
	}
	if q.read != nil {
		if err := q.read(ctx); err != nil {
			_ = row.Scan() // closes it
			return errRow{err}
		}
	}
	return row
}

// write runs fn as one atomic write: SQLite: group-committed by s.batch, fn
// in its own savepoint of a BEGIN IMMEDIATE transaction on the single writer
// connection, answered after the commit; PostgreSQL: its own READ COMMITTED
// transaction, rows locked explicitly with d.lockRow. fn's error is returned
// unchanged after rolling fn's changes back.
func (s *sqlStore) write(ctx context.Context, fn func(q *querier) error) error {
	if s.batch != nil {
		return s.batch.do(ctx, fn)
	}
	return s.writeTx(ctx, fn)
}

// writeTx runs fn in a transaction of its own.
func (s *sqlStore) writeTx(ctx context.Context, fn func(q *querier) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("directory: begin: %w", err)
	}
	if err := fn(&querier{x: tx, d: s.d}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("directory: commit: %w", err)
	}
	return nil
}

// read runs fn in a read-only transaction that sees one snapshot.
func (s *sqlStore) read(ctx context.Context, fn func(q *querier) error) error {
	opts := s.d.readTx
	tx, err := s.rdb.BeginTx(ctx, &opts)
	if err != nil {
		return fmt.Errorf("directory: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	if err := fn(&querier{x: tx, d: s.d}); err != nil {
		return err
	}
	return s.awaitDurable(ctx)
}

// awaitDurable waits until what a read may have seen is on disk (SQLite; see
// batch.go).
func (s *sqlStore) awaitDurable(ctx context.Context) error {
	if s.batch != nil {
		return s.batch.awaitDurable(ctx)
	}
	return nil
}

// pool returns a querier for single statements outside a transaction.
func (s *sqlStore) pool() *querier {
	q := &querier{x: s.rdb, d: s.d}
	if s.rstmts != nil {
		q.stmts = s.rstmts
	}
	if s.batch != nil {
		q.read = s.batch.awaitDurable
	}
	return q
}

// maxPoolStmts bounds the statement texts poolStmts keeps prepared; texts
// beyond it (e.g. ListAudit with many different limits) run unprepared.
const maxPoolStmts = 64

// poolStmts keeps the single statements run on the read pool prepared: for
// the point queries of every SCIM request (the token list, a user by id or
// userName) SQLite takes about as long to parse a statement as to run it.
// Each *sql.Stmt is prepared on a pool connection when first used there.
// Only statements run outside transactions use it, so preparing (which needs
// a free connection) never waits for a connection its caller holds.
type poolStmts struct {
	db     *sql.DB
	mu     sync.RWMutex
	m      map[string]*sql.Stmt
	closed bool
}

func (c *poolStmts) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.RLock()
	st, ok := c.m[query]
	full := c.closed || len(c.m) >= maxPoolStmts
	c.mu.RUnlock()
	if ok || full || strings.Contains(query, ";") {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil // running it unprepared reports the error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[query]; ok || c.closed || len(c.m) >= maxPoolStmts {
		_ = st.Close()
		return prev // nil if the cache closed or filled meanwhile
	}
	c.m[query] = st
	return st
}

func (c *poolStmts) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var err error
	for _, st := range c.m {
		err = errors.Join(err, st.Close())
	}
	clear(c.m)
	return err
}

// migrateRetrying migrates, retrying on SQLite a first open that lost the race for the file to
// another process opening it at the same moment (SQLITE_BUSY while switching to WAL or
// migrating): the busy timeout does not cover every step of the first connection.
func migrateRetrying(ctx context.Context, s *sqlStore, driver string) error {
	for attempt := 1; ; attempt++ {
		err := s.migrate(ctx)
		if err == nil || driver != DriverSQLite || attempt >= 10 || !isSQLiteBusy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
}

func isSQLiteBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}
