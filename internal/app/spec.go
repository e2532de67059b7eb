package app

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/internal/sync"
	"github.com/flexbridge/flexbridge/mapping"
)

// unassignedID stands in for the directory id of a user not stored yet: the mapping only needs
// its length (for the ownership marker's size).
const unassignedID = "00000000-0000-0000-0000-000000000000"

// groupsOf reads a stored user's groups; a user not stored yet (no ID) or gone has none.
func groupsOf(ctx context.Context, store interface {
	GroupsOfUser(ctx context.Context, userID string) ([]directory.GroupRef, error)
}, u directory.User) ([]directory.GroupRef, error) {
	if u.ID == "" {
		return nil, nil
	}
	groups, err := store.GroupsOfUser(ctx, u.ID)
	if err != nil && !errors.Is(err, directory.ErrNotFound) {
		return nil, err
	}
	return groups, nil
}

// specOf is the worker the reconciler will compute for u: the mapping over their SCIM record
// and groups, merged with a SAML login identity (nil: none) as the mapping's sources say. SCIM
// writes (checkUser), logins and broker claims decide with it before anything is written.
func specOf(cfg *mapping.Config, u directory.User, groups []directory.GroupRef, login json.RawMessage) (mapping.WorkerSpec, error) {
	id, err := sync.IdentityOf(u, groups)
	if err != nil {
		return mapping.WorkerSpec{}, err
	}
	if id, err = sync.WithLogin(cfg, id, u, login); err != nil {
		return mapping.WorkerSpec{}, err
	}
	if id.ID == "" {
		id.ID = unassignedID
	}
	return cfg.Evaluate(id) // its errors name the mapping problem; SCIM shows them to the IdP
}
