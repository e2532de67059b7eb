package directory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

const groupCols = `id, display_name, external_id, resource, version, created_at, modified_at`

type groupScan struct {
	id, displayName      string
	externalID, resource sql.NullString
	version              int64
	created, modified    dbTime
}

func (g *groupScan) dest() []any {
	return []any{&g.id, &g.displayName, &g.externalID, &g.resource, &g.version, &g.created, &g.modified}
}

func (g *groupScan) group() Group {
	out := Group{
		ID:          g.id,
		DisplayName: g.displayName,
		ExternalID:  g.externalID.String,
		Version:     g.version,
		Created:     g.created.T,
		Modified:    g.modified.T,
	}
	if g.resource.Valid {
		out.Resource = json.RawMessage(g.resource.String)
	}
	return out
}

// foldDisplayName is the case-insensitive form of a group's displayName,
// folded like a userName.
func foldDisplayName(s string) string { return foldUserName(s) }

// validateGroup checks what can be checked without the database and returns
// the Resource argument and the member list without duplicates, in the
// caller's order (so that an error can name the first bad one).
func validateGroup(g *Group) (resource any, members []string, err error) {
	if strings.TrimSpace(g.DisplayName) == "" {
		return nil, nil, fmt.Errorf("directory: displayName is empty: %w", ErrInvalid)
	}
	if err := checkText("displayName", g.DisplayName); err != nil {
		return nil, nil, err
	}
	if err := checkText("externalId", g.ExternalID); err != nil {
		return nil, nil, err
	}
	if len(g.Members) > MaxGroupMembers {
		return nil, nil, fmt.Errorf("directory: %d members, at most %d are allowed: %w",
			len(g.Members), MaxGroupMembers, ErrInvalid)
	}
	members = make([]string, 0, len(g.Members))
	seen := make(map[string]bool, len(g.Members))
	for _, m := range g.Members {
		if seen[m] {
			continue
		}
		if err := checkText("member id", m); err != nil {
			return nil, nil, fmt.Errorf("directory: member %q is not a user: %w", m, err)
		}
		seen[m] = true
		members = append(members, m)
	}
	resource, err = jsonArg("resource", g.Resource)
	return resource, members, err
}

// sortedCopy returns the IDs sorted bytewise, never nil.
func sortedCopy(ids []string) []string {
	out := append(make([]string, 0, len(ids)), ids...)
	slices.Sort(out)
	return out
}

// listArg encodes a list of IDs for d.textList.
func listArg(ids []string) string {
	b, err := json.Marshal(ids)
	if err != nil { // cannot happen for strings that passed checkText
		panic(err)
	}
	return string(b)
}

func (s *sqlStore) groupConflict(err error, displayName string) error {
	if s.d.isUnique(err) {
		return fmt.Errorf("directory: displayName %q is taken: %w", displayName, ErrConflict)
	}
	return fmt.Errorf("directory: write group: %w", err)
}

// checkMembers returns ErrInvalid naming the first of ids (in their order)
// that is not a user.
func (s *sqlStore) checkMembers(ctx context.Context, q *querier, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := q.query(ctx, `SELECT l.v FROM (`+s.d.textList+`) l
WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = l.v)`, listArg(ids))
	if err != nil {
		return fmt.Errorf("directory: check members: %w", err)
	}
	defer rows.Close()
	unknown := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("directory: check members: %w", err)
		}
		unknown[id] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("directory: check members: %w", err)
	}
	for _, id := range ids {
		if unknown[id] {
			return fmt.Errorf("directory: member %q is not a user: %w", id, ErrInvalid)
		}
	}
	return nil
}

// addMembers inserts memberships of users known to exist. A user deleted
// since the check (PostgreSQL, concurrently) fails the foreign key.
func (s *sqlStore) addMembers(ctx context.Context, q *querier, groupID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := q.exec(ctx, `INSERT INTO group_members (group_id, user_id)
SELECT CAST(? AS TEXT), l.v FROM (`+s.d.textList+`) l`, groupID, listArg(ids))
	if s.d.isForeignKey(err) {
		return fmt.Errorf("directory: a member was deleted meanwhile: %w", ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("directory: add members: %w", err)
	}
	return nil
}

func (s *sqlStore) removeMembers(ctx context.Context, q *querier, groupID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := q.exec(ctx, `DELETE FROM group_members WHERE group_id = ? AND user_id IN (`+s.d.textList+`)`,
		groupID, listArg(ids))
	if err != nil {
		return fmt.Errorf("directory: remove members: %w", err)
	}
	return nil
}

// markSyncMany marks the live users among ids for sync in the caller's
// transaction (see markStates), in one statement whatever the number of
// users. Tombstones are left alone: a group change cannot revive a deleted
// user.
func (s *sqlStore) markSyncMany(ctx context.Context, q *querier, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.markStates(ctx, q, ` WHERE deleted = FALSE AND user_id IN (`+s.d.textList+`)`, listArg(ids)); err != nil {
		return fmt.Errorf("directory: mark members for sync: %w", err)
	}
	return nil
}

// markStates makes, to every sync state matching cond (a WHERE clause), the
// change markSync makes to an existing state (desired_gen++, due now,
// failures forgotten), and returns how many it changed. Every write that
// marks several users goes through it. PostgreSQL: the rows are locked in
// user_id order first, so two such writes (two group writes sharing members,
// a group write and a mapping change) cannot deadlock each other; SQLite
// serialises its writes anyway.
func (s *sqlStore) markStates(ctx context.Context, q *querier, cond string, args ...any) (int64, error) {
	if s.d.lockRow != "" {
		rows, err := q.query(ctx, `SELECT user_id FROM sync_state`+cond+` ORDER BY user_id`+s.d.lockRow, args...)
		if err != nil {
			return 0, err
		}
		// Drain: the rows are locked as they are read.
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return 0, err
		}
	}
	now := s.d.t(s.now())
	res, err := q.exec(ctx, `UPDATE sync_state SET desired_gen = desired_gen + 1, last_error = '', attempts = 0,
	next_attempt_at = ?, updated_at = ?`+cond, append([]any{now, now}, args...)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *sqlStore) CreateGroup(ctx context.Context, g Group) (Group, error) {
	resource, members, err := validateGroup(&g)
	if err != nil {
		return Group{}, err
	}
	now := s.now()
	g.ID = newID()
	g.Version = 1
	g.Created, g.Modified = now, now
	if resource == nil {
		g.Resource = nil
	}
	err = s.write(ctx, func(q *querier) error {
		if err := s.checkMembers(ctx, q, members); err != nil {
			return err
		}
		_, err := q.exec(ctx, `INSERT INTO groups (`+groupCols+`, display_name_lower) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			g.ID, g.DisplayName, nullString(g.ExternalID), resource, g.Version,
			s.d.t(now), s.d.t(now), foldDisplayName(g.DisplayName))
		if err != nil {
			return s.groupConflict(err, g.DisplayName)
		}
		if err := s.addMembers(ctx, q, g.ID, members); err != nil {
			return err
		}
		return s.markSyncMany(ctx, q, members)
	})
	if err != nil {
		return Group{}, err
	}
	g.Resource = cloneJSON(g.Resource)
	g.Members = sortedCopy(members)
	return g, nil
}

// getGroup reads one group (locked with lock) and its members.
func (s *sqlStore) getGroup(ctx context.Context, q *querier, id, lock string) (Group, error) {
	var gs groupScan
	err := q.queryRow(ctx, `SELECT `+groupCols+` FROM groups WHERE id = ?`+lock, id).Scan(gs.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return Group{}, fmt.Errorf("directory: group %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Group{}, fmt.Errorf("directory: read group: %w", err)
	}
	g := gs.group()
	members, err := s.membersOf(ctx, q, []string{id})
	if err != nil {
		return Group{}, err
	}
	g.Members = members[id]
	if g.Members == nil {
		g.Members = []string{}
	}
	return g, nil
}

// membersOf returns the sorted member lists of the groups.
func (s *sqlStore) membersOf(ctx context.Context, q *querier, groupIDs []string) (map[string][]string, error) {
	rows, err := q.query(ctx, `SELECT group_id, user_id FROM group_members
WHERE group_id IN (`+s.d.textList+`) ORDER BY group_id, user_id`, listArg(groupIDs))
	if err != nil {
		return nil, fmt.Errorf("directory: read members: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var g, u string
		if err := rows.Scan(&g, &u); err != nil {
			return nil, fmt.Errorf("directory: read members: %w", err)
		}
		out[g] = append(out[g], u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directory: read members: %w", err)
	}
	return out, nil
}

func (s *sqlStore) GetGroup(ctx context.Context, id string) (Group, error) {
	var g Group
	err := s.read(ctx, func(q *querier) error {
		var err error
		g, err = s.getGroup(ctx, q, id, "")
		return err
	})
	return g, err
}

func (s *sqlStore) ListGroups(ctx context.Context, gq GroupQuery) ([]Group, int, error) {
	var (
		where []string
		args  []any
	)
	if gq.DisplayName != nil {
		where = append(where, "display_name_lower = ?")
		args = append(args, foldDisplayName(*gq.DisplayName))
	}
	if gq.ExternalID != nil {
		where = append(where, "external_id = ?")
		args = append(args, *gq.ExternalID)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var (
		groups []Group
		total  int
	)
	err := s.read(ctx, func(q *querier) error {
		if err := q.queryRow(ctx, `SELECT COUNT(*) FROM groups`+cond, args...).Scan(&total); err != nil {
			return fmt.Errorf("directory: count groups: %w", err)
		}
		if gq.Limit < 0 || gq.Offset >= total {
			return nil
		}
		rows, err := q.query(ctx, `SELECT `+groupCols+` FROM groups`+cond+
			` ORDER BY created_at, id`+s.d.limitOffset(gq.Limit, max(gq.Offset, 0)), args...)
		if err != nil {
			return fmt.Errorf("directory: list groups: %w", err)
		}
		for rows.Next() {
			var gs groupScan
			if err := rows.Scan(gs.dest()...); err != nil {
				rows.Close()
				return fmt.Errorf("directory: list groups: %w", err)
			}
			groups = append(groups, gs.group())
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("directory: list groups: %w", err)
		}
		if !gq.WithMembers || len(groups) == 0 {
			return nil
		}
		ids := make([]string, len(groups))
		for i, g := range groups {
			ids[i] = g.ID
		}
		members, err := s.membersOf(ctx, q, ids)
		if err != nil {
			return err
		}
		for i := range groups {
			groups[i].Members = members[groups[i].ID]
			if groups[i].Members == nil {
				groups[i].Members = []string{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return groups, total, nil
}

func (s *sqlStore) UpdateGroup(ctx context.Context, id string, mutate func(*Group) error) (Group, error) {
	var out Group
	err := s.write(ctx, func(q *querier) error {
		cur, err := s.getGroup(ctx, q, id, s.d.lockRow)
		if err != nil {
			return err
		}
		next := cur
		next.Resource = cloneJSON(cur.Resource)
		next.Members = slices.Clone(cur.Members)
		if err := mutate(&next); err != nil {
			return err // as is
		}
		resource, members, err := validateGroup(&next)
		if err != nil {
			return err
		}
		if resource == nil {
			next.Resource = nil
		}
		added, removed := diffMembers(cur.Members, members)
		if err := s.checkMembers(ctx, q, added); err != nil {
			return err
		}
		next.ID, next.Created = cur.ID, cur.Created
		next.Version = cur.Version + 1
		next.Modified = s.now()
		next.Members = sortedCopy(members)
		_, err = q.exec(ctx, `UPDATE groups SET display_name = ?, display_name_lower = ?, external_id = ?,
	resource = ?, version = ?, modified_at = ? WHERE id = ?`,
			next.DisplayName, foldDisplayName(next.DisplayName), nullString(next.ExternalID),
			resource, next.Version, s.d.t(next.Modified), id)
		if err != nil {
			return s.groupConflict(err, next.DisplayName)
		}
		if err := s.removeMembers(ctx, q, id, removed); err != nil {
			return err
		}
		if err := s.addMembers(ctx, q, id, added); err != nil {
			return err
		}
		mark := slices.Concat(added, removed)
		if next.DisplayName != cur.DisplayName || next.ExternalID != cur.ExternalID {
			// The mapping matches groups by name or id: every member's
			// desired state changed.
			mark = slices.Concat(next.Members, removed)
		}
		if err := s.markSyncMany(ctx, q, mark); err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		return Group{}, err
	}
	out.Resource = cloneJSON(out.Resource)
	return out, nil
}

// diffMembers returns the IDs of next not in cur (in next's order) and those
// of cur not in next (in cur's order).
func diffMembers(cur, next []string) (added, removed []string) {
	in := make(map[string]bool, len(cur))
	for _, id := range cur {
		in[id] = true
	}
	keep := make(map[string]bool, len(next))
	for _, id := range next {
		keep[id] = true
		if !in[id] {
			added = append(added, id)
		}
	}
	for _, id := range cur {
		if !keep[id] {
			removed = append(removed, id)
		}
	}
	return added, removed
}

func (s *sqlStore) DeleteGroup(ctx context.Context, id string, check func(version int64) error) error {
	return s.write(ctx, func(q *querier) error {
		var version int64
		err := q.queryRow(ctx, `SELECT version FROM groups WHERE id = ?`+s.d.lockRow, id).Scan(&version)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("directory: group %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("directory: delete group: %w", err)
		}
		if check != nil {
			if err := check(version); err != nil {
				return err
			}
		}
		// Memberships first, then the sync marks: the lock order DeleteUser
		// follows (memberships, then sync state), so the two cannot deadlock.
		rows, err := q.query(ctx, `DELETE FROM group_members WHERE group_id = ? RETURNING user_id`, id)
		if err != nil {
			return fmt.Errorf("directory: delete group: %w", err)
		}
		var ex []string
		for rows.Next() {
			var u string
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return fmt.Errorf("directory: delete group: %w", err)
			}
			ex = append(ex, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("directory: delete group: %w", err)
		}
		if _, err := q.exec(ctx, `DELETE FROM groups WHERE id = ?`, id); err != nil {
			return fmt.Errorf("directory: delete group: %w", err)
		}
		return s.markSyncMany(ctx, q, ex)
	})
}

// groupRefs returns the groups of each of the users, ordered by the folded
// displayName.
func (s *sqlStore) groupRefs(ctx context.Context, q *querier, userIDs []string) (map[string][]GroupRef, error) {
	rows, err := q.query(ctx, `SELECT m.user_id, g.id, g.display_name, g.external_id
FROM group_members m JOIN groups g ON g.id = m.group_id
WHERE m.user_id IN (`+s.d.textList+`)
ORDER BY m.user_id, g.display_name_lower`, listArg(userIDs))
	if err != nil {
		return nil, fmt.Errorf("directory: read groups of users: %w", err)
	}
	defer rows.Close()
	out := map[string][]GroupRef{}
	for rows.Next() {
		var (
			user string
			ref  GroupRef
			ext  sql.NullString
		)
		if err := rows.Scan(&user, &ref.ID, &ref.DisplayName, &ext); err != nil {
			return nil, fmt.Errorf("directory: read groups of users: %w", err)
		}
		ref.ExternalID = ext.String
		out[user] = append(out[user], ref)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directory: read groups of users: %w", err)
	}
	return out, nil
}

func (s *sqlStore) GroupsOfUser(ctx context.Context, userID string) ([]GroupRef, error) {
	var out []GroupRef
	err := s.read(ctx, func(q *querier) error {
		var found string
		err := q.queryRow(ctx, `SELECT id FROM users WHERE id = ?`, userID).Scan(&found)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("directory: user %q: %w", userID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("directory: read user: %w", err)
		}
		refs, err := s.groupRefs(ctx, q, []string{userID})
		out = refs[userID]
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
