package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/flexbridge/flexbridge/internal/config"
	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/mapping"
	"github.com/flexbridge/flexbridge/saml"
)

// claimsStore is what broker claims need from the directory.
type claimsStore interface {
	ListUsers(ctx context.Context, q directory.UserQuery) ([]directory.User, int, error)
	GroupsOfUser(ctx context.Context, userID string) ([]directory.GroupRef, error)
	GetSAMLIdentity(ctx context.Context, userID string) (directory.SAMLIdentity, error)
}

// brokerClaims maps the person behind an upstream session to what Flex gets: NameID = the
// worker's FriendlyName and the mapping's claims, computed from the same identity and mapping
// the reconciler uses, so the claims agree with what is written through TaskRouter. A person
// who is gone, deactivated or denied by the mapping (since their upstream login) is refused.
type brokerClaims struct {
	store   claimsStore
	mapping func() *mapping.Config
}

func (b brokerClaims) Claims(ctx context.Context, s saml.Session) (saml.BrokerClaims, error) {
	users, _, err := b.store.ListUsers(ctx, directory.UserQuery{UserName: &s.UserName, Limit: 1})
	if err != nil {
		return saml.BrokerClaims{}, err
	}
	if len(users) == 0 {
		return saml.BrokerClaims{}, fmt.Errorf("%q is no longer in the directory: %w", s.UserName, saml.ErrRefused)
	}
	u := users[0]
	if !u.Active {
		return saml.BrokerClaims{}, fmt.Errorf("%q is deactivated: %w", s.UserName, saml.ErrRefused)
	}
	groups, err := groupsOf(ctx, b.store, u)
	if err != nil {
		return saml.BrokerClaims{}, err
	}
	var login json.RawMessage
	switch si, err := b.store.GetSAMLIdentity(ctx, u.ID); {
	case err == nil:
		login = si.Identity
	case !errors.Is(err, directory.ErrNotFound):
		return saml.BrokerClaims{}, err
	}
	cfg := b.mapping()
	spec, err := specOf(cfg, u, groups, login)
	if err != nil {
		return saml.BrokerClaims{}, err
	}
	if !spec.Access {
		return saml.BrokerClaims{}, fmt.Errorf("the mapping gives %q no access (%s): %w", s.UserName, spec.Reason, saml.ErrRefused)
	}
	claims := cfg.Claims(spec)
	out := saml.BrokerClaims{NameID: spec.FriendlyName}
	for _, k := range cfg.ClaimKeys() { // in the mapping's order
		if v, ok := claims[k]; ok {
			out.Attributes = append(out.Attributes, saml.BrokerAttribute{Name: k, Values: v})
		}
	}
	return out, nil
}

// newBroker builds broker mode over the SP: the same key pair signs what Flex gets, the SP's
// session says who authenticated upstream, and the mapping decides the claims.
func (a *App) newBroker(c *config.Config, current func() *mapping.Config) (*saml.Broker, error) {
	bc := c.SAML.Broker
	upstream := bc.IdP
	if upstream == "" {
		upstream = c.SAML.IdPs[0].Name // validation: exactly one IdP then
	}
	pub, err := url.Parse(strings.TrimRight(c.Server.PublicURL, "/"))
	if err != nil {
		return nil, err
	}
	loginPath := pub.EscapedPath() + saml.LoginPath
	sps := make([]saml.BrokerSP, 0, len(bc.Flex))
	for _, f := range bc.Flex {
		sps = append(sps, saml.BrokerSP{Name: f.Name, EntityID: f.EntityID, ACSURLs: slices.Clone(f.ACSURLs)})
	}
	key, cert := a.spKey, a.spCert
	return saml.NewBroker(saml.BrokerOptions{
		PublicURL:        c.Server.PublicURL,
		EntityID:         bc.EntityID,
		Key:              key,
		Cert:             cert,
		ServiceProviders: sps,
		RelayTargets:     slices.Clone(bc.RelayTargets),
		Sessions:         a.sp,
		UpstreamLogin: func(returnPath string) string {
			return loginPath + "?idp=" + url.QueryEscape(upstream) + "&return=" + url.QueryEscape(returnPath)
		},
		Claims:      brokerClaims{store: a.store, mapping: current},
		ManagedKeys: current().TaskRouterOnlyKeys(),
		Logger:      a.log,
		Now:         a.o.Now,
	})
}
