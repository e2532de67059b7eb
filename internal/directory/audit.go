package directory

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// maxAuditText caps each text field of an audit record.
const maxAuditText = 4096

func (s *sqlStore) AppendAudit(ctx context.Context, r AuditRecord) error {
	if strings.TrimSpace(r.Action) == "" {
		return fmt.Errorf("directory: audit record without action: %w", ErrInvalid)
	}
	detail, err := jsonArg("audit detail", r.Detail)
	if err != nil {
		return err
	}
	at := s.now()
	if !r.Time.IsZero() {
		at = normTime(r.Time)
	}
	// Audit text comes from IdPs and errors: store it cleaned rather than
	// refuse the record.
	c := func(v string) string { return cleanText(v, maxAuditText) }
	return s.write(ctx, func(q *querier) error {
		_, err := q.exec(ctx, `INSERT INTO audit_log (at, actor, action, user_id, user_name, worker_sid, outcome, detail)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			s.d.t(at), c(r.Actor), c(r.Action), c(r.UserID), c(r.UserName), c(r.WorkerSID), c(r.Outcome), detail)
		if err != nil {
			return fmt.Errorf("directory: append audit: %w", err)
		}
		return nil
	})
}

func (s *sqlStore) ListAudit(ctx context.Context, limit int) ([]AuditRecord, error) {
	rows, err := s.pool().query(ctx, `SELECT id, at, actor, action, user_id, user_name, worker_sid, outcome, detail
FROM audit_log ORDER BY id DESC`+s.d.limitOffset(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("directory: list audit: %w", err)
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		var (
			r      AuditRecord
			at     dbTime
			detail sql.NullString
		)
		if err := rows.Scan(&r.ID, &at, &r.Actor, &r.Action, &r.UserID, &r.UserName, &r.WorkerSID, &r.Outcome, &detail); err != nil {
			return nil, fmt.Errorf("directory: list audit: %w", err)
		}
		r.Time = at.T
		if detail.Valid {
			r.Detail = json.RawMessage(detail.String)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directory: list audit: %w", err)
	}
	return out, nil
}

const tokenCols = `id, name, hash, created_at, last_used_at, revoked_at`

func scanToken(sc interface{ Scan(...any) error }) (Token, error) {
	var (
		t                      Token
		created, used, revoked dbTime
	)
	if err := sc.Scan(&t.ID, &t.Name, &t.Hash, &created, &used, &revoked); err != nil {
		return Token{}, err
	}
	t.CreatedAt = created.T
	t.LastUsedAt = used.ptr()
	t.RevokedAt = revoked.ptr()
	return t, nil
}

func (s *sqlStore) CreateToken(ctx context.Context, name string, hash []byte) (Token, error) {
	if strings.TrimSpace(name) == "" {
		return Token{}, fmt.Errorf("directory: token name is empty: %w", ErrInvalid)
	}
	if err := checkText("token name", name); err != nil {
		return Token{}, err
	}
	if len(hash) != sha256.Size {
		return Token{}, fmt.Errorf("directory: token hash must be a SHA-256 digest (%d bytes), got %d bytes: %w",
			sha256.Size, len(hash), ErrInvalid)
	}
	t := Token{Name: name, Hash: append([]byte(nil), hash...), CreatedAt: s.now()}
	err := s.write(ctx, func(q *querier) error {
		err := q.queryRow(ctx, `INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?) RETURNING id`,
			t.Name, t.Hash, s.d.t(t.CreatedAt)).Scan(&t.ID)
		if s.d.isUnique(err) {
			return fmt.Errorf("directory: token %q exists: %w", name, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("directory: create token: %w", err)
		}
		return nil
	})
	if err != nil {
		return Token{}, err
	}
	return t, s.markTokensChanged()
}

func (s *sqlStore) listTokens(ctx context.Context, cond string) ([]Token, error) {
	rows, err := s.pool().query(ctx, `SELECT `+tokenCols+` FROM tokens`+cond+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("directory: list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("directory: list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directory: list tokens: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ListTokens(ctx context.Context) ([]Token, error) {
	return s.listTokens(ctx, "")
}

func (s *sqlStore) ActiveTokens(ctx context.Context) ([]Token, error) {
	return s.listTokens(ctx, " WHERE revoked_at IS NULL")
}

func (s *sqlStore) RevokeToken(ctx context.Context, name string) error {
	err := s.write(ctx, func(q *querier) error {
		res, err := q.exec(ctx, `UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`,
			s.d.t(s.now()), name)
		if err != nil {
			return fmt.Errorf("directory: revoke token: %w", err)
		}
		return requireRow(res, fmt.Sprintf("active token %q", name))
	})
	if err != nil {
		return err
	}
	return s.markTokensChanged()
}

func (s *sqlStore) TouchToken(ctx context.Context, id int64, at time.Time) error {
	at = normTime(at)
	return s.write(ctx, func(q *querier) error {
		res, err := q.exec(ctx, `UPDATE tokens SET last_used_at = CASE
	WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END
WHERE id = ?`, s.d.t(at), s.d.t(at), id)
		if err != nil {
			return fmt.Errorf("directory: touch token: %w", err)
		}
		return requireRow(res, fmt.Sprintf("token %d", id))
	})
}

// requireRow turns "no row matched" into ErrNotFound.
func requireRow(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("directory: %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("directory: %s: %w", what, ErrNotFound)
	}
	return nil
}
