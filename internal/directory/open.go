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
// BEGIN IMMEDIATE transactions, so in-process writers queue in database/sql
// and other processes (e.g. `flexbridge token create` next to `serve`) wait
// for the lock instead of failing with "database is locked"; reads use a
// separate pool of read-only connections and never block writes.
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
	if err := s.migrate(ctx); err != nil {
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

	// A file: URI, so that any character in the path is escaped.
	uri := (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
	busy := strconv.FormatInt(SQLiteBusyTimeout.Milliseconds(), 10)
	common := "_busy_timeout=" + busy + "&_foreign_keys=1"

	wdb, err := sql.Open("sqlite", uri+"?"+common+"&_journal_mode=WAL&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("directory: open sqlite: %w", err)
	}
	// One writer connection: in-process writers wait in database/sql (with
	// their context) rather than spinning in SQLite's busy handler.
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)

	rdb, err := sql.Open("sqlite", uri+"?"+common+"&_query_only=1")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("directory: open sqlite: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)

	return newSQLStore(sqliteDialect, wdb, rdb, opts), nil
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
	d         *dialect
	wdb, rdb  *sql.DB
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
		err := s.wdb.Close()
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
}

func (q *querier) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.x.ExecContext(ctx, q.d.rebind(query), args...)
}

func (q *querier) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.x.QueryContext(ctx, q.d.rebind(query), args...)
}

func (q *querier) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return q.x.QueryRowContext(ctx, q.d.rebind(query), args...)
}

// write runs fn in a write transaction (SQLite: BEGIN IMMEDIATE on the single
// writer connection; PostgreSQL: READ COMMITTED, rows locked explicitly with
// d.lockRow). fn's error is returned unchanged after rolling back.
func (s *sqlStore) write(ctx context.Context, fn func(q *querier) error) error {
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
	return fn(&querier{x: tx, d: s.d})
}

// pool returns a querier for single statements outside a transaction.
func (s *sqlStore) pool() *querier { return &querier{x: s.rdb, d: s.d} }
