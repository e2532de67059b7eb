package directory

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

const userCols = `id, external_id, user_name, active, resource, version, created_at, modified_at`

// userScan receives a users row; every field is nullable so that the same
// code reads a LEFT JOIN where the user is missing.
type userScan struct {
	id, externalID, userName, resource sql.NullString
	active                             sql.NullBool
	version                            sql.NullInt64
	created, modified                  dbTime
}

func (u *userScan) dest() []any {
	return []any{&u.id, &u.externalID, &u.userName, &u.active, &u.resource, &u.version, &u.created, &u.modified}
}

// user returns the scanned user, nil if the row had none.
func (u *userScan) user() *User {
	if !u.id.Valid {
		return nil
	}
	out := &User{
		ID:         u.id.String,
		ExternalID: u.externalID.String,
		UserName:   u.userName.String,
		Active:     u.active.Bool,
		Version:    u.version.Int64,
		Created:    u.created.T,
		Modified:   u.modified.T,
	}
	if u.resource.Valid {
		out.Resource = json.RawMessage(u.resource.String)
	}
	return out
}

// foldUserName is the case-insensitive form of a userName (SCIM: caseExact
// false). It is computed here, not by the database, so both backends agree.
func foldUserName(s string) string { return strings.ToLower(s) }

// checkText rejects strings PostgreSQL cannot store (invalid UTF-8, NUL), so
// both backends accept the same input.
func checkText(field, s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("directory: %s is not valid UTF-8 text: %w", field, ErrInvalid)
	}
	return nil
}

// cleanText makes s storable; for text that must not be refused (audit, errors).
func cleanText(s string, maxLen int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if maxLen > 0 && len(s) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// jsonArg validates optional JSON and converts it for a query (NULL if empty).
func jsonArg(field string, b json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("directory: %s is not valid JSON: %w", field, ErrInvalid)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, fmt.Errorf("directory: %s contains NUL: %w", field, ErrInvalid)
	}
	return string(b), nil
}

func validateUser(u *User) (resource any, err error) {
	if strings.TrimSpace(u.UserName) == "" {
		return nil, fmt.Errorf("directory: userName is empty: %w", ErrInvalid)
	}
	if err := checkText("userName", u.UserName); err != nil {
		return nil, err
	}
	if err := checkText("externalId", u.ExternalID); err != nil {
		return nil, err
	}
	return jsonArg("resource", u.Resource)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// conflictErr maps a unique violation on users to ErrConflict.
func (s *sqlStore) userConflict(err error, userName string) error {
	if s.d.isUnique(err) {
		return fmt.Errorf("directory: userName %q is taken: %w", userName, ErrConflict)
	}
	return fmt.Errorf("directory: write user: %w", err)
}

// markSync records, in the caller's transaction, that the user needs sync:
// desired_gen++ (1 for a new state), the next attempt now, failures
// forgotten. The lease, if any, is left to its holder: its report of an older
// generation will leave the state pending.
func (s *sqlStore) markSync(ctx context.Context, q *querier, userID, userName string, deleted bool) error {
	now := s.d.t(s.now())
	_, err := q.exec(ctx, `INSERT INTO sync_state
	(user_id, user_name, desired_gen, applied_gen, worker_sid, deleted, last_error, attempts,
	 next_attempt_at, lease_owner, lease_until, updated_at)
VALUES (?, ?, 1, 0, '', ?, '', 0, ?, '', NULL, ?)
ON CONFLICT (user_id) DO UPDATE SET
	user_name = excluded.user_name,
	desired_gen = sync_state.desired_gen + 1,
	deleted = excluded.deleted,
	last_error = '',
	attempts = 0,
	next_attempt_at = excluded.next_attempt_at,
	updated_at = excluded.updated_at`,
		userID, userName, deleted, now, now)
	if err != nil {
		return fmt.Errorf("directory: mark %s for sync: %w", userID, err)
	}
	return nil
}

func (s *sqlStore) CreateUser(ctx context.Context, u User) (User, error) {
	resource, err := validateUser(&u)
	if err != nil {
		return User{}, err
	}
	now := s.now()
	u.ID = newID()
	u.Version = 1
	u.Created, u.Modified = now, now
	if resource == nil {
		u.Resource = nil
	}
	err = s.write(ctx, func(q *querier) error {
		_, err := q.exec(ctx, `INSERT INTO users (`+userCols+`, user_name_lower) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, nullString(u.ExternalID), u.UserName, u.Active, resource, u.Version,
			s.d.t(now), s.d.t(now), foldUserName(u.UserName))
		if err != nil {
			return s.userConflict(err, u.UserName)
		}
		return s.markSync(ctx, q, u.ID, u.UserName, false)
	})
	if err != nil {
		return User{}, err
	}
	u.Resource = cloneJSON(u.Resource)
	return u, nil
}

func cloneJSON(b json.RawMessage) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage(nil), b...)
}

func (s *sqlStore) getUser(ctx context.Context, q *querier, id, lock string) (User, error) {
	var us userScan
	err := q.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`+lock, id).Scan(us.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("directory: user %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("directory: read user: %w", err)
	}
	return *us.user(), nil
}

func (s *sqlStore) GetUser(ctx context.Context, id string) (User, error) {
	return s.getUser(ctx, s.pool(), id, "")
}

func (s *sqlStore) ListUsers(ctx context.Context, uq UserQuery) ([]User, int, error) {
	var (
		where []string
		args  []any
	)
	if uq.UserName != nil {
		where = append(where, "user_name_lower = ?")
		args = append(args, foldUserName(*uq.UserName))
	}
	if uq.ExternalID != nil {
		where = append(where, "external_id = ?")
		args = append(args, *uq.ExternalID)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	if uq.UserName != nil {
		// userName is unique: at most one row matches. One statement (its
		// own snapshot) answers the page and the total; this is the lookup
		// IdPs make before every create.
		return s.listByUniqueName(ctx, cond, args, uq)
	}
	var (
		users []User
		total int
	)
	err := s.read(ctx, func(q *querier) error {
		if err := q.queryRow(ctx, `SELECT COUNT(*) FROM users`+cond, args...).Scan(&total); err != nil {
			return fmt.Errorf("directory: count users: %w", err)
		}
		if uq.Limit < 0 || uq.Offset >= total {
			return nil
		}
		rows, err := q.query(ctx, `SELECT `+userCols+` FROM users`+cond+
			` ORDER BY created_at, id`+s.d.limitOffset(uq.Limit, max(uq.Offset, 0)), args...)
		if err != nil {
			return fmt.Errorf("directory: list users: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var us userScan
			if err := rows.Scan(us.dest()...); err != nil {
				return fmt.Errorf("directory: list users: %w", err)
			}
			users = append(users, *us.user())
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, err
	}
	return users, total, nil
}

// listByUniqueName is ListUsers for a query with a userName, which matches at
// most one user.
func (s *sqlStore) listByUniqueName(ctx context.Context, cond string, args []any, uq UserQuery) ([]User, int, error) {
	rows, err := s.pool().query(ctx, `SELECT `+userCols+` FROM users`+cond+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("directory: list users: %w", err)
	}
	defer rows.Close()
	var all []User
	for rows.Next() {
		var us userScan
		if err := rows.Scan(us.dest()...); err != nil {
			return nil, 0, fmt.Errorf("directory: list users: %w", err)
		}
		all = append(all, *us.user())
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("directory: list users: %w", err)
	}
	total := len(all)
	offset := max(uq.Offset, 0)
	if uq.Limit < 0 || offset >= total {
		return nil, total, nil
	}
	all = all[offset:]
	if uq.Limit > 0 && uq.Limit < len(all) {
		all = all[:uq.Limit]
	}
	return all, total, nil
}

func (s *sqlStore) UpdateUser(ctx context.Context, id string, mutate func(*User) error) (User, error) {
	var out User
	err := s.write(ctx, func(q *querier) error {
		cur, err := s.getUser(ctx, q, id, s.d.lockRow)
		if err != nil {
			return err
		}
		next := cur
		next.Resource = cloneJSON(cur.Resource)
		if err := mutate(&next); err != nil {
			return err // as is
		}
		resource, err := validateUser(&next)
		if err != nil {
			return err
		}
		if resource == nil {
			next.Resource = nil
		}
		next.ID, next.Created = cur.ID, cur.Created
		next.Version = cur.Version + 1
		next.Modified = s.now()
		_, err = q.exec(ctx, `UPDATE users SET external_id = ?, user_name = ?, user_name_lower = ?, active = ?,
	resource = ?, version = ?, modified_at = ? WHERE id = ?`,
			nullString(next.ExternalID), next.UserName, foldUserName(next.UserName), next.Active,
			resource, next.Version, s.d.t(next.Modified), id)
		if err != nil {
			return s.userConflict(err, next.UserName)
		}
		if err := s.markSync(ctx, q, id, next.UserName, false); err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		return User{}, err
	}
	out.Resource = cloneJSON(out.Resource)
	return out, nil
}

func (s *sqlStore) DeleteUser(ctx context.Context, id string, check func(version int64) error) error {
	return s.write(ctx, func(q *querier) error {
		var (
			userName string
			version  int64
		)
		err := q.queryRow(ctx, `DELETE FROM users WHERE id = ? RETURNING user_name, version`, id).Scan(&userName, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("directory: user %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("directory: delete user: %w", err)
		}
		// The row is gone only if the transaction commits: a refusal here
		// rolls the delete back with everything else.
		if check != nil {
			if err := check(version); err != nil {
				return err
			}
		}
		if err := s.recordDeprovisioned(ctx, q, id, userName); err != nil {
			return err
		}
		return s.markSync(ctx, q, id, userName, true)
	})
}

// newID returns a new resource id: a UUIDv7 (RFC 9562), whose leading bits are the time, so that
// ids made one after the other sit side by side in the primary-key indexes of users,
// sync_state and groups. A random (v4) id makes every insert touch another index page, and each
// page touched is one more page the commit writes to the WAL.
func newID() string { return uuid.Must(uuid.NewV7()).String() }
