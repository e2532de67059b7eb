package saml

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// verifier is crewjam's SignatureVerifier for one IdP. crewjam calls it for every signature it
// relies on (the Response's, or each Assertion's, after decryption), with el detached from its
// document. It adds to goxmldsig:
//
//   - the algorithm and shape policy of checkSignature (SHA-1 refused), also on assertions that
//     were encrypted and so could not be checked before crewjam decrypted them;
//   - certificate rotation: goxmldsig picks the certificate from KeyInfo, and refuses a
//     signature without KeyInfo when it knows more than one ("Missing x509 Element"); here each
//     of the IdP's certificates is tried in turn;
//   - the injected clock for certificate validity.
type verifier struct {
	certs []*x509.Certificate
	now   func() time.Time
}

func (v *verifier) VerifySignature(_ *dsig.ValidationContext, el *etree.Element) error {
	sig := only(el, nsDSig, "Signature")
	if sig == nil {
		return rejected("signature_missing", "no single Signature in %s", el.Tag)
	}
	if f := checkSignature(sig, el); f != nil {
		return f
	}
	candidates := v.certs
	if xc := sig.FindElement("./KeyInfo/X509Data/X509Certificate"); xc != nil {
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Text()), ""))
		if err != nil {
			return rejected("signature_invalid", "KeyInfo certificate is not base64")
		}
		candidates = nil
		for _, c := range v.certs {
			if bytes.Equal(c.Raw, der) {
				candidates = append(candidates, c)
			}
		}
		if len(candidates) == 0 {
			return rejected("signature_untrusted_key", "signed with a certificate the IdP metadata does not list")
		}
	}
	var last error
	for _, c := range candidates {
		vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{c}})
		vc.IdAttribute = "ID"
		vc.Clock = dsig.NewFakeClockAt(v.now())
		_, err := vc.Validate(el)
		if err == nil {
			return nil
		}
		last = err
	}
	return rejected("signature_invalid", "%s: %v", el.Tag, last)
}
