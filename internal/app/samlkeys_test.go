package app

import (
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestSAMLKeyPairIsMadeOnceAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	keyFile, certFile := filepath.Join(dir, "saml-sp.key"), filepath.Join(dir, "saml-sp.crt")
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	key, cert, err := loadOrCreateKeyPair(keyFile, certFile, "https://bridge.example.com/saml/metadata", now, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "bridge.example.com" || !cert.NotAfter.After(now.Add(5*365*24*time.Hour)) {
		t.Errorf("certificate CN %q, not after %v", cert.Subject.CommonName, cert.NotAfter)
	}
	for path, mode := range map[string]os.FileMode{keyFile: 0o600, certFile: 0o644, dir: 0o700 | os.ModeDir} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (err %v), want %v", path, fi.Mode(), err, mode)
		}
	}
	// The next start reads the same pair.
	key2, cert2, err := loadOrCreateKeyPair(keyFile, certFile, "ignored", now, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if !cert2.Equal(cert) || !publicKeyEqual(key2.Public(), key.Public()) {
		t.Error("a second start made or read a different key pair")
	}
	// One file without the other is refused, not silently replaced.
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateKeyPair(keyFile, certFile, "x", now, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "exists but its certificate") {
		t.Errorf("key without certificate: %v", err)
	}
	// Garbage is reported with the file name.
	bad := filepath.Join(t.TempDir(), "bad.key")
	_ = os.WriteFile(bad, []byte("not pem"), 0o600)
	_ = os.WriteFile(bad+".crt", []byte("not pem"), 0o600)
	if _, _, err := loadOrCreateKeyPair(bad, bad+".crt", "x", now, zap.NewNop()); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("unreadable key: %v", err)
	}
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
