package directory

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/flexbridge/flexbridge/internal/testutil/testenv"
)

// rowWrites counts the rows a function inserts, updates or deletes, per
// table.
type rowWrites func(t *testing.T, fn func()) map[string]int

// sqliteRowWrites uses total_changes() of the single writer connection:
// every row an INSERT, UPDATE or DELETE statement touched.
func sqliteRowWrites(s *sqlStore) rowWrites {
	return func(t *testing.T, fn func()) map[string]int {
		t.Helper()
		count := func() int {
			var n int
			if err := s.wdb.QueryRowContext(t.Context(), `SELECT total_changes()`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		fn()
		return map[string]int{"all": count() - before}
	}
}

// postgresRowWrites compares the physical row versions (ctid) of each table
// before and after: a row written (inserted or updated) has a new ctid.
func postgresRowWrites(s *sqlStore) rowWrites {
	return func(t *testing.T, fn func()) map[string]int {
		t.Helper()
		tables := []string{"groups", "group_members", "sync_state", "users"}
		snap := func() map[string]map[string]bool {
			out := map[string]map[string]bool{}
			for _, tab := range tables {
				rows, err := s.wdb.QueryContext(t.Context(), `SELECT ctid::text FROM `+tab)
				if err != nil {
					t.Fatal(err)
				}
				out[tab] = map[string]bool{}
				for rows.Next() {
					var c string
					if err := rows.Scan(&c); err != nil {
						t.Fatal(err)
					}
					out[tab][c] = true
				}
				rows.Close()
			}
			return out
		}
		before := snap()
		fn()
		after := snap()
		n := map[string]int{}
		for _, tab := range tables {
			for c := range after[tab] {
				if !before[tab][c] {
					n[tab]++ // inserted or new version of an updated row
				}
			}
			for c := range before[tab] {
				if !after[tab][c] {
					n[tab+" gone"]++ // deleted or old version of an updated row
				}
			}
		}
		return n
	}
}

// TestGroupWritesOnlyTheDifference: changing one member of a 5,000-member
// group writes a handful of rows, not the group's membership.
func TestGroupWritesOnlyTheDifference(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := Open(t.Context(), Options{Driver: DriverSQLite, DSN: filepath.Join(t.TempDir(), "fb.db")})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s := st.(*sqlStore)
		testGroupRowWrites(t, s, sqliteRowWrites(s))
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := Open(t.Context(), Options{Driver: DriverPostgres, DSN: internalTestSchema(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s := st.(*sqlStore)
		testGroupRowWrites(t, s, postgresRowWrites(s))
	})
}

func testGroupRowWrites(t *testing.T, s *sqlStore, measure rowWrites) {
	ctx := t.Context()
	n := 5000
	if testing.Short() {
		n = 500
	}
	// The users in two statements (CreateUser one by one takes long under
	// -race); the conformance suite covers the same through the API.
	members := make([]string, n)
	for i := range members {
		members[i] = uuid.NewString()
	}
	err := s.write(ctx, func(q *querier) error {
		now := s.d.t(s.now())
		if _, err := q.exec(ctx, `INSERT INTO users (`+userCols+`, user_name_lower)
SELECT l.v, NULL, l.v, TRUE, NULL, 1, ?, ?, l.v FROM (`+s.d.textList+`) l`, now, now, listArg(members)); err != nil {
			return err
		}
		_, err := q.exec(ctx, `INSERT INTO sync_state (user_id, user_name, desired_gen, next_attempt_at, updated_at)
SELECT l.v, l.v, 1, ?, ? FROM (`+s.d.textList+`) l`, now, now, listArg(members))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	extra, err := s.CreateUser(ctx, User{UserName: "extra"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.CreateGroup(ctx, Group{DisplayName: "Everyone", Members: members})
	if err != nil {
		t.Fatal(err)
	}
	update := func(mutate func(*Group)) func() {
		return func() {
			if _, err := s.UpdateGroup(ctx, g.ID, func(g *Group) error { mutate(g); return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	isPG := s.d == postgresDialect
	for _, tc := range []struct {
		name string
		fn   func()
		// want: SQLite, rows changed in all; PostgreSQL, per table.
		sqlite int
		pg     map[string]int
	}{
		{
			name:   "add one member",
			fn:     update(func(g *Group) { g.Members = append(g.Members, extra.ID) }),
			sqlite: 3, // the group row, one membership, the newcomer's sync state
			pg:     map[string]int{"groups": 1, "groups gone": 1, "group_members": 1, "sync_state": 1, "sync_state gone": 1},
		},
		{
			name: "remove one member",
			fn: update(func(g *Group) {
				g.Members = slices.DeleteFunc(g.Members, func(id string) bool { return id == extra.ID })
			}),
			sqlite: 3,
			pg:     map[string]int{"groups": 1, "groups gone": 1, "group_members gone": 1, "sync_state": 1, "sync_state gone": 1},
		},
		{
			name:   "same members",
			fn:     update(func(*Group) {}),
			sqlite: 1,
			pg:     map[string]int{"groups": 1, "groups gone": 1},
		},
	} {
		got := measure(t, tc.fn)
		if isPG {
			if fmt.Sprint(got) != fmt.Sprint(tc.pg) {
				t.Errorf("%s: rows written per table %v, want %v", tc.name, got, tc.pg)
			}
		} else if got["all"] != tc.sqlite {
			t.Errorf("%s: %d rows changed, want %d", tc.name, got["all"], tc.sqlite)
		}
	}
	// A rename touches every member's sync state, and still no membership.
	got := measure(t, update(func(g *Group) { g.DisplayName = "All of us" }))
	if isPG {
		if got["group_members"] != 0 || got["group_members gone"] != 0 || got["sync_state"] != n {
			t.Errorf("rename: rows written per table %v, want %d sync states and no memberships", got, n)
		}
	} else if got["all"] != 1+n {
		t.Errorf("rename: %d rows changed, want %d", got["all"], 1+n)
	}
}

// internalTestSchema returns a DSN for a fresh schema of the test server
// (FLEXBRIDGE_TEST_POSTGRES_DSN), dropped when the test ends.
func internalTestSchema(t *testing.T) string {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := "fbtest_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+name); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + name
}
