package directory

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// migrationFS holds the schema, one folder per dialect, one file per step:
// NNNN_description.sql. A step is applied once, in a transaction, and recorded
// in schema_migrations. Never edit a released step; add a new one.
//
//go:embed migrations/*/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the dialect's steps in version order.
func (d *dialect) migrations() ([]migration, error) {
	dir := path.Join("migrations", d.name)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("directory: migrations for %s: %w", d.name, err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		prefix, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("directory: migration %s/%s: name must be NNNN_description.sql", dir, e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("directory: migrations %s and %s share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(migrationFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(e.Name(), ".sql"), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate brings the schema up to date. It runs in one write transaction that
// excludes concurrent migrators (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
// advisory lock), so any number of processes may open the same database at
// once; the first applies the steps, the others find them recorded.
func (s *sqlStore) migrate(ctx context.Context) error {
	ms, err := s.d.migrations()
	if err != nil {
		return err
	}
	return s.write(ctx, func(q *querier) error {
		if s.d.migrationLock != "" {
			if _, err := q.exec(ctx, s.d.migrationLock); err != nil {
				return fmt.Errorf("directory: migration lock: %w", err)
			}
		}
		if _, err := q.exec(ctx, s.d.migrationTable); err != nil {
			return fmt.Errorf("directory: create schema_migrations: %w", err)
		}
		rows, err := q.query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("directory: read schema_migrations: %w", err)
		}
		applied := map[int]bool{}
		maxApplied := 0
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			applied[v] = true
			maxApplied = max(maxApplied, v)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		known := ms[len(ms)-1].version
		if maxApplied > known {
			// A newer binary migrated this database (e.g. during a rolling
			// upgrade). Steps are additive, so carry on, but say so.
			s.log.Warn("database schema is newer than this binary",
				zap.Int("schema_version", maxApplied), zap.Int("binary_version", known))
		}
		now := s.now()
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			if _, err := q.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("directory: migration %s: %w", m.name, err)
			}
			if _, err := q.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, s.d.t(now)); err != nil {
				return fmt.Errorf("directory: record migration %s: %w", m.name, err)
			}
			s.log.Info("applied schema migration", zap.Int("version", m.version), zap.String("name", m.name))
		}
		return nil
	})
}
