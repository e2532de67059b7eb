package directory

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SAMLIdentity is a person as their last SAML login described them.
type SAMLIdentity struct {
	UserID string
	IdP    string // the configured IdP name the login came from
	// Identity is a JSON object (the SAML-borne parts of mapping.Identity); the
	// store keeps it byte for byte.
	Identity json.RawMessage
	LoginAt  time.Time
}

// Deprovisioned records a userName whose user was deleted (through SCIM).
type Deprovisioned struct {
	UserName  string
	UserID    string
	DeletedAt time.Time
}

// maxAssertionID caps replay-cache keys (the SAML layer caps IDs lower).
const maxAssertionID = 1024

// RememberAssertion records a consumed SAML assertion ID until until and reports
// whether it was new. Entries past their time are dropped first, so an ID is
// refused as long as its assertion could otherwise be accepted. The INSERT is
// atomic across processes and replicas sharing the database.
func (s *sqlStore) RememberAssertion(ctx context.Context, id string, until time.Time) (bool, error) {
	if id == "" || len(id) > maxAssertionID {
		return false, fmt.Errorf("directory: assertion id of %d bytes: %w", len(id), ErrInvalid)
	}
	if err := checkText("assertion id", id); err != nil {
		return false, err
	}
	now := s.now()
	var fresh bool
	err := s.write(ctx, func(q *querier) error {
		if _, err := q.exec(ctx, `DELETE FROM saml_assertions WHERE expires_at <= ?`, s.d.t(now)); err != nil {
			return fmt.Errorf("directory: prune assertions: %w", err)
		}
		res, err := q.exec(ctx, `INSERT INTO saml_assertions (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`,
			id, s.d.t(normTime(until)))
		if err != nil {
			return fmt.Errorf("directory: remember assertion: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("directory: remember assertion: %w", err)
		}
		fresh = n == 1
		return nil
	})
	return fresh, err
}

// PutSAMLIdentity stores the identity a login described for an existing user
// and the login time. When the IdP or the identity differ from what was stored,
// the user is marked for sync in the same transaction; it reports whether they
// did. ErrNotFound if there is no such user, ErrInvalid if Identity is not a
// JSON object.
func (s *sqlStore) PutSAMLIdentity(ctx context.Context, si SAMLIdentity) (changed bool, err error) {
	var probe map[string]json.RawMessage
	if len(si.Identity) == 0 || json.Unmarshal(si.Identity, &probe) != nil || probe == nil {
		return false, fmt.Errorf("directory: SAML identity is not a JSON object: %w", ErrInvalid)
	}
	for field, v := range map[string]string{"user id": si.UserID, "idp": si.IdP, "identity": string(si.Identity)} {
		if err := checkText(field, v); err != nil {
			return false, err
		}
	}
	at := si.LoginAt
	if at.IsZero() {
		at = s.now()
	}
	err = s.write(ctx, func(q *querier) error {
		var userName string
		err := q.queryRow(ctx, `SELECT user_name FROM users WHERE id = ?`+s.d.lockRow, si.UserID).Scan(&userName)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("directory: user %q: %w", si.UserID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("directory: read user: %w", err)
		}
		var idp, identity string
		err = q.queryRow(ctx, `SELECT idp, identity FROM saml_identities WHERE user_id = ?`, si.UserID).Scan(&idp, &identity)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			changed = true
		case err != nil:
			return fmt.Errorf("directory: read SAML identity: %w", err)
		default:
			changed = idp != si.IdP || !bytes.Equal([]byte(identity), si.Identity)
		}
		_, err = q.exec(ctx, `INSERT INTO saml_identities (user_id, idp, identity, login_at) VALUES (?, ?, ?, ?)
ON CONFLICT (user_id) DO UPDATE SET idp = excluded.idp, identity = excluded.identity, login_at = excluded.login_at`,
			si.UserID, si.IdP, string(si.Identity), s.d.t(normTime(at)))
		if err != nil {
			return fmt.Errorf("directory: store SAML identity: %w", err)
		}
		if !changed {
			return nil
		}
		return s.markSync(ctx, q, si.UserID, userName, false)
	})
	if err != nil {
		return false, err
	}
	return changed, nil
}

// GetSAMLIdentity returns what the user's last SAML login described, or
// ErrNotFound if they never logged in (or do not exist).
func (s *sqlStore) GetSAMLIdentity(ctx context.Context, userID string) (SAMLIdentity, error) {
	var (
		si       SAMLIdentity
		identity string
		at       dbTime
	)
	err := s.pool().queryRow(ctx, `SELECT user_id, idp, identity, login_at FROM saml_identities WHERE user_id = ?`, userID).
		Scan(&si.UserID, &si.IdP, &identity, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return SAMLIdentity{}, fmt.Errorf("directory: SAML identity of %q: %w", userID, ErrNotFound)
	}
	if err != nil {
		return SAMLIdentity{}, fmt.Errorf("directory: read SAML identity: %w", err)
	}
	si.Identity, si.LoginAt = json.RawMessage(identity), at.T
	return si, nil
}

// GetDeprovisioned returns the record of a deleted user with that userName
// (case-insensitively), or ErrNotFound. A record stays after a new user takes
// the name; callers look for a live user first.
func (s *sqlStore) GetDeprovisioned(ctx context.Context, userName string) (Deprovisioned, error) {
	var (
		d  Deprovisioned
		at dbTime
	)
	err := s.pool().queryRow(ctx, `SELECT user_name, user_id, deleted_at FROM deprovisioned WHERE user_name_lower = ?`,
		foldUserName(userName)).Scan(&d.UserName, &d.UserID, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Deprovisioned{}, fmt.Errorf("directory: no deleted user named %q: %w", userName, ErrNotFound)
	}
	if err != nil {
		return Deprovisioned{}, fmt.Errorf("directory: read deprovisioned: %w", err)
	}
	d.DeletedAt = at.T
	return d, nil
}

// recordDeprovisioned is called by DeleteUser in its transaction.
func (s *sqlStore) recordDeprovisioned(ctx context.Context, q *querier, userID, userName string) error {
	_, err := q.exec(ctx, `INSERT INTO deprovisioned (user_name_lower, user_name, user_id, deleted_at) VALUES (?, ?, ?, ?)
ON CONFLICT (user_name_lower) DO UPDATE SET user_name = excluded.user_name, user_id = excluded.user_id, deleted_at = excluded.deleted_at`,
		foldUserName(userName), userName, userID, s.d.t(s.now()))
	if err != nil {
		return fmt.Errorf("directory: record deleted user: %w", err)
	}
	return nil
}
