package app

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// spCertLifetime is how long a generated SP certificate is valid. IdPs pin the certificate from
// the metadata; SAML does not check its dates (crewjam does not), so a long life avoids a
// needless rotation.
const spCertLifetime = 10 * 365 * 24 * time.Hour

// loadOrCreateKeyPair reads the SAML key and certificate (PEM). When neither file exists, it
// makes an RSA 2048 key and a self-signed certificate for entityID and writes them (key 0600,
// certificate 0644, folders 0700). One file without the other is an error: generating a new
// key would silently break the trust an IdP has in the old certificate.
func loadOrCreateKeyPair(keyFile, certFile, entityID string, now time.Time, log *zap.Logger) (crypto.Signer, *x509.Certificate, error) {
	_, kerr := os.Stat(keyFile)
	_, cerr := os.Stat(certFile)
	switch {
	case kerr == nil && cerr == nil:
		return readKeyPair(keyFile, certFile)
	case errors.Is(kerr, fs.ErrNotExist) && errors.Is(cerr, fs.ErrNotExist):
	case kerr != nil && !errors.Is(kerr, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("SAML key %s: %w", keyFile, kerr)
	case cerr != nil && !errors.Is(cerr, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("SAML certificate %s: %w", certFile, cerr)
	case kerr == nil:
		return nil, nil, fmt.Errorf("SAML key %s exists but its certificate %s does not: restore it, or remove the key to have a new pair made (IdPs must then be given the new metadata)", keyFile, certFile)
	default:
		return nil, nil, fmt.Errorf("SAML certificate %s exists but its key %s does not: restore it, or remove the certificate to have a new pair made (IdPs must then be given the new metadata)", certFile, keyFile)
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	cn := entityID
	if u, err := url.Parse(entityID); err == nil && u.Hostname() != "" {
		cn = u.Hostname()
	}
	if len(cn) > 64 {
		cn = cn[:64]
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"flexbridge SAML"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(spCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := writeNew(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeNew(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		_ = os.Remove(keyFile)
		return nil, nil, err
	}
	log.Info("generated a SAML key pair; give IdPs the SP metadata", zap.String("key_file", keyFile), zap.String("cert_file", certFile))
	return key, cert, nil
}

// writeNew creates path (never overwriting) with its folder.
func writeNew(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create folder for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readKeyPair reads a PEM private key (PKCS#8, PKCS#1 or SEC 1) and the first certificate of a
// PEM file.
func readKeyPair(keyFile, certFile string) (crypto.Signer, *x509.Certificate, error) {
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("SAML key: %w", err)
	}
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("SAML certificate: %w", err)
	}
	var key crypto.Signer
	for rest := kb; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if k, err := parsePrivateKey(b); err == nil {
			key = k
			break
		}
	}
	if key == nil {
		return nil, nil, fmt.Errorf("SAML key %s: no PEM private key (PKCS#8, PKCS#1 or EC) in the file", keyFile)
	}
	var cert *x509.Certificate
	for rest := cb; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			if cert, err = x509.ParseCertificate(b.Bytes); err != nil {
				return nil, nil, fmt.Errorf("SAML certificate %s: %w", certFile, err)
			}
			break
		}
	}
	if cert == nil {
		return nil, nil, fmt.Errorf("SAML certificate %s: no PEM certificate in the file", certFile)
	}
	return key, cert, nil
}

func parsePrivateKey(b *pem.Block) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	return x509.ParseECPrivateKey(b.Bytes)
}
