package directory

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds everything the SQL implementation needs to know about the
// database it talks to. Queries are written once with ? placeholders and the
// syntax both SQLite (>= 3.35) and PostgreSQL accept (ON CONFLICT, RETURNING,
// TRUE/FALSE, partial indexes).
type dialect struct {
	name string
	// dollar: placeholders are $1, $2, ... instead of ?.
	dollar bool
	// lockRow is appended to a SELECT that reads a row it will write in the
	// same transaction ("" where the transaction already holds the write lock).
	lockRow string
	// lockSkip is appended to a SELECT that claims rows for a queue.
	lockSkip string
	// readTx are the options of a read-only, consistent-snapshot transaction.
	readTx sql.TxOptions
	// timeAsMicros: times are stored as INTEGER microseconds since the epoch.
	timeAsMicros bool
	// migrationTable creates schema_migrations.
	migrationTable string
	// migrationLock, when set, is executed first in the migration transaction
	// to serialise concurrent migrators.
	migrationLock string
	// textList is a one-column query (column v) yielding the strings of a
	// JSON array passed as its only argument; it lets one statement take a
	// list of any length (group members) with a single placeholder.
	textList     string
	isUnique     func(error) bool
	isForeignKey func(error) bool
}

var sqliteDialect = &dialect{
	name:         DriverSQLite,
	readTx:       sql.TxOptions{ReadOnly: true},
	timeAsMicros: true,
	migrationTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
)`,
	// Migrations run in a BEGIN IMMEDIATE transaction (the write pool's
	// _txlock), which already excludes every other writer, in-process or not.
	textList: `SELECT value AS v FROM json_each(?)`,
	isUnique: func(err error) bool {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return false
		}
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	isForeignKey: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	},
}

var postgresDialect = &dialect{
	name:     DriverPostgres,
	dollar:   true,
	lockRow:  " FOR UPDATE",
	lockSkip: " FOR UPDATE SKIP LOCKED",
	readTx:   sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead},
	migrationTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER     NOT NULL PRIMARY KEY,
	name       TEXT        NOT NULL,
	applied_at TIMESTAMPTZ NOT NULL
)`,
	// A transaction-scoped advisory lock: released on commit or rollback.
	// The key is arbitrary but fixed ("flexbridge" in ASCII).
	migrationLock: `SELECT pg_advisory_xact_lock(111542924784479)`,
	textList:      `SELECT json_array_elements_text(CAST(? AS json)) AS v`,
	isUnique: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505" // unique_violation
	},
	isForeignKey: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23503" // foreign_key_violation
	},
}

// rebind turns ? placeholders into $n for PostgreSQL. Queries never contain a
// literal ?, but quoted text is skipped anyway.
func (d *dialect) rebind(q string) string {
	if !d.dollar || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	quoted := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quoted = !quoted
			b.WriteByte(c)
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// placeholders returns "?, ?, ..." for n arguments.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// limitOffset renders LIMIT/OFFSET; limit <= 0 means no limit.
func (d *dialect) limitOffset(limit, offset int) string {
	var s string
	switch {
	case limit > 0:
		s = " LIMIT " + strconv.Itoa(limit)
	case offset > 0 && !d.dollar:
		s = " LIMIT -1" // SQLite has no OFFSET without LIMIT
	}
	if offset > 0 {
		s += " OFFSET " + strconv.Itoa(offset)
	}
	return s
}

// t converts a time for a query argument.
func (d *dialect) t(t time.Time) any {
	if d.timeAsMicros {
		return t.UnixMicro()
	}
	return t.UTC()
}

// nt converts an optional time; zero or nil is NULL.
func (d *dialect) nt(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return d.t(*t)
}

// dbTime scans a time stored either way (INTEGER microseconds or TIMESTAMPTZ);
// NULL leaves it zero.
type dbTime struct {
	T     time.Time
	Valid bool
}

func (d *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d = dbTime{}
	case int64:
		*d = dbTime{T: time.UnixMicro(v).UTC(), Valid: true}
	case time.Time:
		*d = dbTime{T: v.UTC(), Valid: true}
	default:
		return fmt.Errorf("directory: cannot scan %T as a time", src)
	}
	return nil
}

// ptr returns the time as a pointer, nil when NULL.
func (d dbTime) ptr() *time.Time {
	if !d.Valid {
		return nil
	}
	t := d.T
	return &t
}
