package directory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

const stateCols = `s.user_id, s.user_name, s.desired_gen, s.applied_gen, s.worker_sid, s.deleted,
	s.last_error, s.attempts, s.next_attempt_at, s.lease_owner, s.lease_until, s.updated_at`

// maxErrorText caps LastError; Twilio's messages are far shorter.
const maxErrorText = 2000

type stateScan struct {
	st                                   SyncState
	nextAttempt, leaseUntil, updatedTime dbTime
}

func (x *stateScan) dest() []any {
	st := &x.st
	return []any{&st.UserID, &st.UserName, &st.DesiredGen, &st.AppliedGen, &st.WorkerSID, &st.Deleted,
		&st.LastError, &st.Attempts, &x.nextAttempt, &st.LeaseOwner, &x.leaseUntil, &x.updatedTime}
}

func (x *stateScan) state() SyncState {
	st := x.st
	st.NextAttemptAt = x.nextAttempt.T
	st.LeaseUntil = x.leaseUntil.T
	st.UpdatedAt = x.updatedTime.T
	return st
}

func (s *sqlStore) ClaimPending(ctx context.Context, owner string, lease time.Duration, limit int) ([]SyncItem, error) {
	if owner == "" || lease <= 0 {
		return nil, fmt.Errorf("directory: claim needs an owner and a positive lease: %w", ErrInvalid)
	}
	if err := checkText("owner", owner); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	now := s.now()
	until := normTime(now.Add(lease))
	var items []SyncItem
	err := s.write(ctx, func(q *querier) error {
		rows, err := q.query(ctx, `SELECT user_id FROM sync_state
WHERE desired_gen > applied_gen AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
ORDER BY next_attempt_at, user_id
LIMIT ?`+s.d.lockSkip, s.d.t(now), s.d.t(now), limit)
		if err != nil {
			return fmt.Errorf("directory: claim: %w", err)
		}
		var ids []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("directory: claim: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("directory: claim: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		in := placeholders(len(ids))
		args := append([]any{owner, s.d.t(until)}, ids...)
		if _, err := q.exec(ctx, `UPDATE sync_state SET lease_owner = ?, lease_until = ? WHERE user_id IN (`+in+`)`, args...); err != nil {
			return fmt.Errorf("directory: claim: %w", err)
		}
		rows, err = q.query(ctx, `SELECT `+stateCols+`, `+prefixed("u.", userCols)+`, si.identity
FROM sync_state s LEFT JOIN users u ON u.id = s.user_id AND s.deleted = FALSE
LEFT JOIN saml_identities si ON si.user_id = u.id
WHERE s.user_id IN (`+in+`)
ORDER BY s.next_attempt_at, s.user_id`, ids...)
		if err != nil {
			return fmt.Errorf("directory: claim: %w", err)
		}
		var live []string
		for rows.Next() {
			var (
				ss   stateScan
				us   userScan
				saml sql.NullString
			)
			if err := rows.Scan(append(append(ss.dest(), us.dest()...), &saml)...); err != nil {
				rows.Close()
				return fmt.Errorf("directory: claim: %w", err)
			}
			it := SyncItem{State: ss.state(), User: us.user()}
			if it.User != nil && saml.Valid {
				it.SAML = json.RawMessage(saml.String)
			}
			if it.User != nil {
				live = append(live, it.User.ID)
			}
			items = append(items, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("directory: claim: %w", err)
		}
		if len(live) == 0 {
			return nil
		}
		// The groups as of the same transaction: a membership change and its
		// mark commit together, so they match State.DesiredGen.
		groups, err := s.groupRefs(ctx, q, live)
		if err != nil {
			return fmt.Errorf("directory: claim: %w", err)
		}
		for i := range items {
			if items[i].User != nil {
				items[i].Groups = groups[items[i].User.ID]
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// prefixed qualifies a column list: prefixed("u.", "a, b") = "u.a, u.b".
func prefixed(p, cols string) string {
	return p + strings.ReplaceAll(cols, ", ", ", "+p)
}

// lockState reads the generations of a state row, locking it (PostgreSQL)
// for the rest of the transaction, and checks gen against them.
func (s *sqlStore) lockState(ctx context.Context, q *querier, userID string, gen int64) (desired, applied int64, deleted bool, err error) {
	if gen <= 0 {
		return 0, 0, false, fmt.Errorf("directory: generation %d: %w", gen, ErrInvalid)
	}
	err = q.queryRow(ctx, `SELECT desired_gen, applied_gen, deleted FROM sync_state WHERE user_id = ?`+s.d.lockRow, userID).
		Scan(&desired, &applied, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, fmt.Errorf("directory: sync state %q: %w", userID, ErrNotFound)
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("directory: read sync state: %w", err)
	}
	if gen > desired {
		return 0, 0, false, fmt.Errorf("directory: sync state %q: generation %d was never issued (desired %d): %w",
			userID, gen, desired, ErrPrecondition)
	}
	return desired, applied, deleted, nil
}

func (s *sqlStore) MarkApplied(ctx context.Context, userID string, gen int64, workerSID string) error {
	if err := checkText("workerSID", workerSID); err != nil {
		return err
	}
	return s.write(ctx, func(q *querier) error {
		desired, applied, deleted, err := s.lockState(ctx, q, userID, gen)
		if err != nil {
			return err
		}
		if gen < applied {
			return nil // a newer generation is already recorded
		}
		if deleted && gen >= desired {
			if _, err := q.exec(ctx, `DELETE FROM sync_state WHERE user_id = ?`, userID); err != nil {
				return fmt.Errorf("directory: remove tombstone: %w", err)
			}
			return nil
		}
		_, err = q.exec(ctx, `UPDATE sync_state SET applied_gen = ?, worker_sid = ?, last_error = '', attempts = 0,
	lease_owner = '', lease_until = NULL, updated_at = ? WHERE user_id = ?`,
			gen, workerSID, s.d.t(s.now()), userID)
		if err != nil {
			return fmt.Errorf("directory: mark applied: %w", err)
		}
		return nil
	})
}

func (s *sqlStore) MarkFailed(ctx context.Context, userID string, gen int64, errText string, next time.Time) error {
	errText = cleanText(errText, maxErrorText)
	return s.write(ctx, func(q *querier) error {
		_, applied, _, err := s.lockState(ctx, q, userID, gen)
		if err != nil {
			return err
		}
		if gen <= applied {
			return nil // that generation was applied meanwhile; the failure is stale
		}
		_, err = q.exec(ctx, `UPDATE sync_state SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,
	lease_owner = '', lease_until = NULL, updated_at = ? WHERE user_id = ?`,
			errText, s.d.t(normTime(next)), s.d.t(s.now()), userID)
		if err != nil {
			return fmt.Errorf("directory: mark failed: %w", err)
		}
		return nil
	})
}

func (s *sqlStore) GetSyncState(ctx context.Context, userID string) (SyncState, error) {
	var ss stateScan
	err := s.pool().queryRow(ctx, `SELECT `+stateCols+` FROM sync_state s WHERE s.user_id = ?`, userID).Scan(ss.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return SyncState{}, fmt.Errorf("directory: sync state %q: %w", userID, ErrNotFound)
	}
	if err != nil {
		return SyncState{}, fmt.Errorf("directory: read sync state: %w", err)
	}
	return ss.state(), nil
}

func (s *sqlStore) ListSyncStates(ctx context.Context) ([]SyncState, error) {
	rows, err := s.pool().query(ctx, `SELECT `+stateCols+` FROM sync_state s ORDER BY s.user_name, s.user_id`)
	if err != nil {
		return nil, fmt.Errorf("directory: list sync states: %w", err)
	}
	defer rows.Close()
	var out []SyncState
	for rows.Next() {
		var ss stateScan
		if err := rows.Scan(ss.dest()...); err != nil {
			return nil, fmt.Errorf("directory: list sync states: %w", err)
		}
		out = append(out, ss.state())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directory: list sync states: %w", err)
	}
	return out, nil
}

func (s *sqlStore) MarkAllForSync(ctx context.Context) (int, error) {
	var n int64
	err := s.write(ctx, func(q *querier) error {
		var err error
		if n, err = s.markStates(ctx, q, ` WHERE deleted = FALSE`); err != nil {
			return fmt.Errorf("directory: mark all for sync: %w", err)
		}
		return nil
	})
	return int(n), err
}
