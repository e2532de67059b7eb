package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/mapping"
	"github.com/flexbridge/flexbridge/saml"
)

// loginStore is what login-time provisioning needs from the directory.
type loginStore interface {
	ListUsers(ctx context.Context, q directory.UserQuery) ([]directory.User, int, error)
	CreateUser(ctx context.Context, u directory.User) (directory.User, error)
	GroupsOfUser(ctx context.Context, userID string) ([]directory.GroupRef, error)
	GetDeprovisioned(ctx context.Context, userName string) (directory.Deprovisioned, error)
	PutSAMLIdentity(ctx context.Context, si directory.SAMLIdentity) (bool, error)
	GetSAMLIdentity(ctx context.Context, userID string) (directory.SAMLIdentity, error)
	GetSyncState(ctx context.Context, userID string) (directory.SyncState, error)
	AppendAudit(ctx context.Context, r directory.AuditRecord) error
}

// logins is the LoginHandler of the SAML service provider: login-time provisioning.
type logins struct {
	store    loginStore
	mapping  func() *mapping.Config
	notify   func()        // wakes the reconciler
	wait     time.Duration // saml.login_wait
	landing  string        // saml.after_login_url
	log      *zap.Logger
	now      func() time.Time
	pollStep time.Duration
}

// Login admits a person the IdP authenticated, or refuses them:
//   - a person SCIM deactivated, or deleted (and not provisioned again), is refused;
//   - a person the mapping gives no worker (no role), with what this login says, is refused;
//   - otherwise what the login says is stored (creating the person if SCIM never did), which
//     marks them for sync when it changed, and the browser waits up to saml.login_wait for
//     their worker to be created or updated; then it goes on to the RelayState or
//     saml.after_login_url (the sync finishes in the background if it took longer).
//
// A refusal writes nothing but an audit record: no user, no SAML identity, no worker change.
func (h *logins) Login(ctx context.Context, l saml.Login) (string, error) {
	for attempt := 0; ; attempt++ {
		redirect, err := h.login(ctx, l)
		if errors.Is(err, directory.ErrConflict) && attempt < 2 {
			continue // SCIM created the person meanwhile: decide again with their SCIM record
		}
		return redirect, err
	}
}

func (h *logins) login(ctx context.Context, l saml.Login) (string, error) {
	userName := l.Identity.UserName
	u, found, err := h.findUser(ctx, userName)
	if err != nil {
		return "", err
	}
	if !found {
		if d, err := h.store.GetDeprovisioned(ctx, userName); err == nil {
			return "", h.refuse(ctx, l, d.UserID, "deleted through SCIM on "+d.DeletedAt.UTC().Format(time.RFC3339))
		} else if !errors.Is(err, directory.ErrNotFound) {
			return "", err
		}
	} else if !u.Active {
		return "", h.refuse(ctx, l, u.ID, "deactivated through SCIM")
	}

	login, err := mapping.EncodeLogin(l.Identity)
	if err != nil {
		return "", err
	}
	// Decide with what the mapping will see after this login, before writing anything.
	if !found {
		u = directory.User{UserName: userName, Active: true}
	}
	groups, err := groupsOf(ctx, h.store, u)
	if err != nil {
		return "", err
	}
	spec, err := specOf(h.mapping(), u, groups, login)
	if err != nil {
		return "", err
	}
	if !spec.Access {
		return "", h.refuse(ctx, l, u.ID, "the mapping gives no access: "+spec.Reason)
	}

	if !found {
		u, err = h.store.CreateUser(ctx, u)
		if err != nil {
			return "", err
		}
	}
	changed, err := h.store.PutSAMLIdentity(ctx, directory.SAMLIdentity{UserID: u.ID, IdP: l.IdP, Identity: login, LoginAt: h.now()})
	if err != nil {
		return "", err
	}
	if changed {
		h.notify()
	}
	synced := h.waitForSync(ctx, u.ID)
	h.audit(ctx, l, u.ID, "accepted", map[string]any{"created": !found, "changed": changed, "synced": synced})
	h.log.Info("saml login admitted", zap.String("user_id", u.ID), zap.String("idp", l.IdP),
		zap.Bool("created", !found), zap.Bool("changed", changed), zap.Bool("worker_synced", synced))
	if l.RelayState != "" {
		return l.RelayState, nil
	}
	return h.landing, nil
}

// findUser looks the person up by userName (case-insensitively).
func (h *logins) findUser(ctx context.Context, userName string) (directory.User, bool, error) {
	users, _, err := h.store.ListUsers(ctx, directory.UserQuery{UserName: &userName, Limit: 1})
	if err != nil {
		return directory.User{}, false, err
	}
	if len(users) == 0 {
		return directory.User{}, false, nil
	}
	return users[0], true, nil
}

// waitForSync waits up to h.wait for the reconciler to apply every change of the user, and
// reports whether it did.
func (h *logins) waitForSync(ctx context.Context, userID string) bool {
	ctx, cancel := context.WithTimeout(ctx, h.wait)
	defer cancel()
	step := h.pollStep
	if step <= 0 {
		step = 25 * time.Millisecond
	}
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		st, err := h.store.GetSyncState(ctx, userID)
		if err == nil && !st.Pending() && st.LastError == "" {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// refuse audits a refusal and returns the error that makes the SP answer the access-denied
// page. The reason is logged and audited, never shown to the browser.
func (h *logins) refuse(ctx context.Context, l saml.Login, userID, reason string) error {
	h.audit(ctx, l, userID, "refused", map[string]any{"reason": reason})
	return fmt.Errorf("login of %q refused: %s: %w", l.Identity.UserName, reason, saml.ErrRefused)
}

func (h *logins) audit(ctx context.Context, l saml.Login, userID, outcome string, detail map[string]any) {
	detail["idp"] = l.IdP
	detail["idp_initiated"] = l.IdPInitiated
	d, _ := json.Marshal(detail)
	err := h.store.AppendAudit(ctx, directory.AuditRecord{
		Actor:    "saml:" + l.IdP,
		Action:   "saml.login",
		UserID:   userID,
		UserName: l.Identity.UserName,
		Outcome:  outcome,
		Detail:   d,
	})
	if err != nil {
		h.log.Warn("could not audit a SAML login", zap.Error(err))
	}
}
