package saml

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
	"go.uber.org/zap"
)

// maxMetadataBytes caps an IdP metadata document (a large aggregate is a few hundred KiB).
const maxMetadataBytes = 4 << 20

// idp is one trusted IdP with its metadata applied.
type idp struct {
	cfg      IdPConfig
	entityID string
	ssoURL   string              // HTTP-Redirect SingleSignOnService, "" if none
	certs    []*x509.Certificate // signing certificates (several during a rotation)
	sp       *crewjam.ServiceProvider
}

// idpSet is an immutable snapshot; Run swaps in a new one when metadata changes.
type idpSet struct {
	list       []*idp
	byName     map[string]*idp
	byEntityID map[string]*idp
}

// loadIdPs builds the first set, fetching metadata URLs; any failure is an error. Later
// refreshes (Refresh) keep an IdP's previous metadata when its fetch fails.
func (sp *SP) loadIdPs(ctx context.Context) (*idpSet, error) {
	set := &idpSet{byName: map[string]*idp{}, byEntityID: map[string]*idp{}}
	var problems []error
	for _, c := range sp.o.IdPs {
		p, err := sp.loadIdP(ctx, c)
		if err != nil {
			problems = append(problems, fmt.Errorf("idp %s: %w", c.Name, err))
			continue
		}
		if other, dup := set.byEntityID[p.entityID]; dup {
			problems = append(problems, fmt.Errorf("idp %s: entity id %q is also IdP %s", c.Name, p.entityID, other.cfg.Name))
			continue
		}
		set.list = append(set.list, p)
		set.byName[c.Name] = p
		set.byEntityID[p.entityID] = p
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return set, nil
}

func (sp *SP) loadIdP(ctx context.Context, c IdPConfig) (*idp, error) {
	data := c.MetadataXML
	if c.MetadataURL != "" {
		var err error
		if data, err = sp.fetchMetadata(ctx, c.MetadataURL); err != nil {
			return nil, err
		}
	}
	ed, err := parseIdPMetadata(data, c.EntityID)
	if err != nil {
		return nil, err
	}
	p := &idp{cfg: c, entityID: ed.EntityID}
	for _, d := range ed.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Data), ""))
				if err != nil {
					return nil, fmt.Errorf("metadata signing certificate: %w", err)
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, fmt.Errorf("metadata signing certificate: %w", err)
				}
				p.certs = append(p.certs, cert)
			}
		}
		for _, s := range d.SingleSignOnServices {
			if s.Binding == crewjam.HTTPRedirectBinding && p.ssoURL == "" {
				p.ssoURL = s.Location
			}
		}
	}
	if len(p.certs) == 0 {
		return nil, errors.New("the metadata has no signing certificate")
	}
	if p.ssoURL == "" && !c.AllowIdPInitiated {
		return nil, errors.New("the metadata has no HTTP-Redirect SingleSignOnService (needed for SP-initiated login)")
	}
	csp := sp.base // a copy: per-IdP metadata and verifier over the shared settings
	csp.IDPMetadata = ed
	csp.SignatureVerifier = &verifier{certs: p.certs, now: sp.now}
	if c.NameIDFormat != "" {
		csp.AuthnNameIDFormat = crewjam.NameIDFormat(c.NameIDFormat)
	}
	p.sp = &csp
	return p, nil
}

// parseIdPMetadata reads an EntityDescriptor, or picks the IdP out of an EntitiesDescriptor.
func parseIdPMetadata(data []byte, want string) (*crewjam.EntityDescriptor, error) {
	if len(data) > maxMetadataBytes {
		return nil, fmt.Errorf("metadata is over %d bytes", maxMetadataBytes)
	}
	if err := checkRawXML(data); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	root, err := rootName(data)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var candidates []crewjam.EntityDescriptor
	switch root {
	case xml.Name{Space: nsMetadata, Local: "EntityDescriptor"}:
		var ed crewjam.EntityDescriptor
		if err := xml.Unmarshal(data, &ed); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		candidates = append(candidates, ed)
	case xml.Name{Space: nsMetadata, Local: "EntitiesDescriptor"}:
		var eds crewjam.EntitiesDescriptor
		if err := xml.Unmarshal(data, &eds); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		candidates = eds.EntityDescriptors
	default:
		return nil, fmt.Errorf("metadata: root element is %s %s, not an EntityDescriptor", root.Space, root.Local)
	}
	var found []*crewjam.EntityDescriptor
	for i := range candidates {
		e := &candidates[i]
		if len(e.IDPSSODescriptors) > 0 && (want == "" || e.EntityID == want) {
			found = append(found, e)
		}
	}
	switch {
	case len(found) == 0 && want != "":
		return nil, fmt.Errorf("metadata: no IdP with entity id %q", want)
	case len(found) == 0:
		return nil, errors.New("metadata: no IDPSSODescriptor")
	case len(found) > 1:
		return nil, errors.New("metadata: several IdPs; set the entity id to pick one")
	case found[0].EntityID == "":
		return nil, errors.New("metadata: the IdP has no entity id")
	}
	return found[0], nil
}

func rootName(data []byte) (xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name, nil
		}
	}
}

// checkMetadataURL allows https, and http only to a loopback address: metadata carries the keys
// every login is checked with, so it must not cross a network in the clear.
func checkMetadataURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("metadata URL %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return fmt.Errorf("metadata URL %q must be https (http is allowed on loopback only)", raw)
	}
	return fmt.Errorf("metadata URL %q must be https", raw)
}

func (sp *SP) fetchMetadata(ctx context.Context, raw string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
	resp, err := sp.o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch metadata: HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	return data, nil
}

// Refresh refetches every metadata URL now. An IdP whose fetch fails keeps its previous
// metadata; the error is returned (and logged) all the same.
func (sp *SP) Refresh(ctx context.Context) error {
	var failed []error
	set := &idpSet{byName: map[string]*idp{}, byEntityID: map[string]*idp{}}
	prev := sp.idps.Load()
	for _, old := range prev.list {
		p := old
		if old.cfg.MetadataURL != "" {
			np, err := sp.loadIdP(ctx, old.cfg)
			if err != nil {
				sp.log.Warn("could not refresh IdP metadata; keeping the previous one", zap.String("idp", old.cfg.Name), zap.Error(err))
				failed = append(failed, fmt.Errorf("idp %s: %w", old.cfg.Name, err))
			} else if other, dup := prev.byEntityID[np.entityID]; dup && other.cfg.Name != old.cfg.Name {
				failed = append(failed, fmt.Errorf("idp %s: entity id %q is also IdP %s", old.cfg.Name, np.entityID, other.cfg.Name))
			} else {
				p = np
			}
		}
		set.list = append(set.list, p)
		set.byName[p.cfg.Name] = p
		set.byEntityID[p.entityID] = p
	}
	sp.idps.Store(set)
	return errors.Join(failed...)
}

// Run refreshes metadata URLs every MetadataRefresh until ctx is done. With no metadata URL it
// only waits. The composition root runs it next to the HTTP server.
func (sp *SP) Run(ctx context.Context) error {
	hasURL := false
	for _, c := range sp.o.IdPs {
		hasURL = hasURL || c.MetadataURL != ""
	}
	if !hasURL {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(sp.o.MetadataRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, sp.fetchTimeout())
			_ = sp.Refresh(rctx)
			cancel()
		}
	}
}
