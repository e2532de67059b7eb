package app

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/config"
	"github.com/flexbridge/flexbridge/mapping"
	"github.com/flexbridge/flexbridge/saml"
)

// replayCache keeps consumed assertion IDs in the directory, shared by every replica.
type replayCache struct {
	store interface {
		RememberAssertion(ctx context.Context, id string, until time.Time) (bool, error)
	}
}

func (r replayCache) Remember(ctx context.Context, id string, until time.Time) (bool, error) {
	return r.store.RememberAssertion(ctx, id, until)
}

// newSP builds the SAML service provider from the saml section: the SP key pair (made on first
// start when absent), each IdP's metadata, the store-backed replay cache and login-time
// provisioning.
func (a *App) newSP(c *config.Config, current func() *mapping.Config) (*saml.SP, error) {
	key, cert, err := loadOrCreateKeyPair(c.SAML.SP.KeyFile, c.SAML.SP.CertFile, c.SAML.SP.EntityID, a.o.Now(), a.log)
	if err != nil {
		return nil, err
	}
	a.spKey, a.spCert = key, cert
	idps := make([]saml.IdPConfig, 0, len(c.SAML.IdPs))
	for _, ic := range c.SAML.IdPs {
		p := saml.IdPConfig{
			Name:              ic.Name,
			MetadataURL:       ic.MetadataURL,
			EntityID:          ic.EntityID,
			AllowIdPInitiated: ic.AllowIdPInitiated,
			UserName:          ic.UserName,
			GroupsFallback:    ic.GroupsFallback,
			Attributes: saml.Attributes{
				Email:       ic.Attributes.Email,
				DisplayName: ic.Attributes.DisplayName,
				Groups:      ic.Attributes.Groups,
				Roles:       ic.Attributes.Roles,
			},
		}
		if ic.MetadataFile != "" {
			if p.MetadataXML, err = os.ReadFile(ic.MetadataFile); err != nil {
				return nil, fmt.Errorf("saml.idps %s: metadata: %w", ic.Name, err)
			}
		}
		idps = append(idps, p)
	}
	sp, err := saml.New(saml.Options{
		PublicURL:         c.Server.PublicURL,
		EntityID:          c.SAML.SP.EntityID,
		Key:               key,
		Cert:              cert,
		IdPs:              idps,
		Replay:            replayCache{a.store},
		SignAuthnRequests: c.SAML.SP.SignAuthnRequests,
		Logger:            a.log,
		Now:               a.o.Now,
		Logins: &logins{
			store:   a.store,
			mapping: current,
			notify:  a.reconciler.Notify,
			wait:    c.SAML.LoginWait,
			landing: c.SAML.AfterLoginURL,
			log:     a.log.Named("saml"),
			now:     a.o.Now,
		},
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("SAML single sign-on enabled", zap.String("entity_id", sp.EntityID()), zap.String("acs", sp.ACSURL()),
		zap.Int("idps", len(idps)))
	return sp, nil
}
