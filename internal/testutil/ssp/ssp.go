// Package ssp runs a real SAML 2.0 identity provider, SimpleSAMLphp 1.19 from the Debian
// package, for end-to-end tests of flexbridge's service provider.
//
// Start copies the configuration in test/idp (config/ and metadata/) into a temporary
// directory, makes a throw-away IdP key and certificate, and serves SimpleSAMLphp with PHP's
// built-in web server on 127.0.0.2 and a free port:
//
//	SIMPLESAMLPHP_CONFIG_DIR=<tmp>/config php -S 127.0.0.2:PORT -t /usr/share/simplesamlphp/www
//
// The IdP knows one service provider, registered from the base URL given to Start: entity
// id <base>/saml/metadata, assertion consumer service <base>/saml/acs (HTTP-POST). The SP's
// AuthnRequest must name exactly that ACS URL. The IdP signs both the Response and the
// Assertion with RSA-SHA256, releases uid, email, displayName and a multi-valued groups
// attribute (NameFormat basic), and sends the email address as NameID. Its users are
// Alice, Bob and Carol (see users.go); log in with a browser, e.g. package
// internal/testutil/browser's LoginSSP.
//
// Because the IdP (127.0.0.2) and an SP on 127.0.0.1 are different sites for the browser,
// the IdP's POST to the ACS is a cross-site POST: cookies the SP set with SameSite=Lax or
// Strict before the redirect to the IdP are not sent with it (see test/idp/README.md).
//
// The packages are installed by test/idp/install.sh (simplesamlphp php-cli php-xml). When
// they are missing, Start skips the test, or fails it when the environment variable CI is
// "true".
package ssp

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flexbridge/flexbridge/internal/testutil/testenv"
)

// DocRoot is where the Debian package puts SimpleSAMLphp's web root.
const DocRoot = "/usr/share/simplesamlphp/www"

// DefaultHost is the loopback address the IdP listens on. It differs from 127.0.0.1 (where
// SPs under test usually listen) so that the IdP and the SP have separate cookie jars.
const DefaultHost = "127.0.0.2"

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 5 * time.Second
)

// Options configure StartWith. Only SPBaseURL is required.
type Options struct {
	// SPBaseURL is the public URL of the service provider, without a trailing slash,
	// e.g. "http://127.0.0.1:8080".
	SPBaseURL string
	// SPEntityID defaults to SPBaseURL + "/saml/metadata".
	SPEntityID string
	// SPACSURL defaults to SPBaseURL + "/saml/acs" (HTTP-POST binding).
	SPACSURL string
	// SPCertFile, when set, is the path of the SP's PEM certificate, and the IdP encrypts
	// its assertions to it.
	SPCertFile string
	// NameIDFormat is "email" (the default: NameID format emailAddress, value the email
	// attribute), "transient", "persistent" or "unspecified" (value the uid attribute).
	NameIDFormat string
	// Host is the loopback address to listen on; DefaultHost when empty.
	Host string
	// LogLevel is SimpleSAMLphp's log level: DEBUG, INFO (default), NOTICE, WARNING, ERR.
	LogLevel string
}

// IdP is a running SimpleSAMLphp identity provider.
type IdP struct {
	baseURL  string // ends with "/"
	dir      string
	logPath  string
	metadata []byte
	entityID string
	certPEM  []byte
	spEntity string
	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

// Start runs an IdP that trusts the service provider at spBaseURL (entity id
// <spBaseURL>/saml/metadata, ACS <spBaseURL>/saml/acs). It is stopped when the test ends;
// if the test failed, its log is printed.
func Start(t testing.TB, spBaseURL string) *IdP {
	t.Helper()
	return StartWith(t, Options{SPBaseURL: spBaseURL})
}

// StartWith is Start with more options.
func StartWith(t testing.TB, o Options) *IdP {
	t.Helper()
	if o.SPBaseURL == "" && (o.SPEntityID == "" || o.SPACSURL == "") {
		t.Fatal("ssp: Options.SPBaseURL is required (or both SPEntityID and SPACSURL)")
	}
	o.SPBaseURL = strings.TrimRight(o.SPBaseURL, "/")
	if o.SPEntityID == "" {
		o.SPEntityID = o.SPBaseURL + "/saml/metadata"
	}
	if o.SPACSURL == "" {
		o.SPACSURL = o.SPBaseURL + "/saml/acs"
	}
	if o.Host == "" {
		o.Host = DefaultHost
	}
	if o.NameIDFormat == "" {
		o.NameIDFormat = "email"
	}
	php := requirePackages(t)
	src := filepath.Join(testenv.ModuleRoot(t), "test", "idp")

	dir := t.TempDir()
	for _, sub := range []string{"config", "metadata"} {
		if err := copyDir(filepath.Join(src, sub), filepath.Join(dir, sub)); err != nil {
			t.Fatalf("ssp: copying test/idp/%s: %v", sub, err)
		}
	}
	certPEM, keyPEM, err := newKeyPair("flexbridge-test-idp")
	if err != nil {
		t.Fatalf("ssp: making the IdP key: %v", err)
	}
	certDir := filepath.Join(dir, "cert")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certDir, "idp.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certDir, "idp.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		port, err := freePort(o.Host)
		if err != nil {
			t.Fatalf("ssp: finding a free port on %s: %v", o.Host, err)
		}
		idp := &IdP{
			baseURL:  "http://" + net.JoinHostPort(o.Host, strconv.Itoa(port)) + "/",
			dir:      dir,
			logPath:  filepath.Join(dir, fmt.Sprintf("php-%d.log", attempt)),
			certPEM:  certPEM,
			spEntity: o.SPEntityID,
		}
		env := append(os.Environ(),
			"SIMPLESAMLPHP_CONFIG_DIR="+filepath.Join(dir, "config"),
			"SSP_BASE="+filepath.Join(dir, "run"),
			"SSP_BASEURL="+idp.baseURL,
			"SSP_CERTDIR="+certDir,
			"SSP_METADATADIR="+filepath.Join(dir, "metadata"),
			"SSP_LOG_LEVEL="+o.LogLevel,
			"SP_BASEURL="+o.SPBaseURL,
			"SP_ENTITY_ID="+o.SPEntityID,
			"SP_ACS_URL="+o.SPACSURL,
			"SP_CERT="+o.SPCertFile,
			"SP_NAMEID_FORMAT="+o.NameIDFormat,
		)
		lastErr = idp.start(php, env, net.JoinHostPort(o.Host, strconv.Itoa(port)))
		if lastErr == nil {
			t.Cleanup(func() {
				idp.stop()
				if t.Failed() {
					t.Logf("ssp: SimpleSAMLphp log (%s):\n%s", idp.baseURL, tail(withoutConnLines(idp.Log()), 200))
				}
			})
			return idp
		}
		idp.stop()
		if !strings.Contains(idp.Log(), "Address already in use") {
			t.Fatalf("ssp: %v\nlog:\n%s", lastErr, tail(idp.Log(), 200))
		}
	}
	t.Fatalf("ssp: %v", lastErr)
	return nil
}

// start launches php -S and waits until the metadata URL answers.
func (idp *IdP) start(php string, env []string, addr string) error {
	logf, err := os.Create(idp.logPath)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(php, "-S", addr, "-t", DocRoot)
	cmd.Env = env
	cmd.Dir = idp.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", php, err)
	}
	idp.cmd = cmd
	idp.exited = make(chan struct{})
	go func() { cmd.Wait(); close(idp.exited) }()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	var last error
	for {
		select {
		case <-idp.exited:
			return fmt.Errorf("php -S %s exited: %v", addr, cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer within %v: %v", idp.MetadataURL(), startTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
		body, err := get(client, idp.MetadataURL())
		if err != nil {
			last = err
			continue
		}
		var ed struct {
			XMLName  xml.Name `xml:"urn:oasis:names:tc:SAML:2.0:metadata EntityDescriptor"`
			EntityID string   `xml:"entityID,attr"`
		}
		if err := xml.Unmarshal(body, &ed); err != nil || ed.EntityID == "" {
			return fmt.Errorf("%s: not SAML metadata (%v): %.300s", idp.MetadataURL(), err, body)
		}
		idp.metadata, idp.entityID = body, ed.EntityID
		if err := os.WriteFile(idp.MetadataFile(), body, 0o600); err != nil {
			return err
		}
		return nil
	}
}

func get(client *http.Client, u string) ([]byte, error) {
	resp, err := client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.300s", u, resp.Status, body)
	}
	return body, nil
}

// stop ends php -S: SIGTERM, then SIGKILL after stopTimeout.
func (idp *IdP) stop() {
	idp.stopOnce.Do(func() {
		if idp.cmd == nil || idp.cmd.Process == nil {
			return
		}
		idp.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-idp.exited:
		case <-time.After(stopTimeout):
			idp.cmd.Process.Kill()
			<-idp.exited
		}
	})
}

// BaseURL is the IdP's base URL, with a trailing slash: "http://127.0.0.2:PORT/".
func (idp *IdP) BaseURL() string { return idp.baseURL }

// MetadataURL is the URL of the IdP's SAML metadata (also its entity id).
func (idp *IdP) MetadataURL() string { return idp.baseURL + "saml2/idp/metadata.php" }

// MetadataXML is the IdP's SAML metadata, as fetched when it started.
func (idp *IdP) MetadataXML() []byte { return bytes.Clone(idp.metadata) }

// MetadataFile is the path of a file holding MetadataXML (for metadata_file settings).
func (idp *IdP) MetadataFile() string { return filepath.Join(idp.dir, "idp-metadata.xml") }

// EntityID is the IdP's entity id, as its metadata states it.
func (idp *IdP) EntityID() string { return idp.entityID }

// CertificatePEM is the IdP's signing certificate.
func (idp *IdP) CertificatePEM() []byte { return bytes.Clone(idp.certPEM) }

// SSOURL is the IdP's SingleSignOnService (HTTP-Redirect binding).
func (idp *IdP) SSOURL() string { return idp.baseURL + "saml2/idp/SSOService.php" }

// IdPInitiatedURL starts an IdP-initiated (unsolicited) login to the registered SP: open it
// in a browser, log in, and the IdP POSTs a Response without InResponseTo to the ACS.
// relayState may be empty.
func (idp *IdP) IdPInitiatedURL(relayState string) string {
	q := url.Values{"spentityid": {idp.spEntity}}
	if relayState != "" {
		q.Set("RelayState", relayState)
	}
	return idp.SSOURL() + "?" + q.Encode()
}

// Log is what SimpleSAMLphp and PHP's web server have logged so far.
func (idp *IdP) Log() string {
	b, err := os.ReadFile(idp.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", idp.logPath, err)
	}
	return string(b)
}

// requirePackages returns the php binary, or skips (fails under CI=true) the test when
// PHP, its DOM extension or SimpleSAMLphp is missing.
func requirePackages(t testing.TB) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		testenv.Missing(t, "ssp: "+what+" (install with: sudo bash test/idp/install.sh)")
	}
	php, err := exec.LookPath("php")
	if err != nil {
		missing("php is not on PATH (Debian packages php-cli php-xml)")
	}
	if _, err := os.Stat(filepath.Join(DocRoot, "index.php")); err != nil {
		missing("SimpleSAMLphp is not installed: " + DocRoot + " missing (Debian package simplesamlphp)")
	}
	domOnce.Do(func() {
		out, err := exec.Command(php, "-r", `echo extension_loaded("dom") ? "yes" : "no";`).Output()
		domOK = err == nil && strings.TrimSpace(string(out)) == "yes"
	})
	if !domOK {
		missing("PHP's DOM extension is missing (Debian package php-xml)")
	}
	return php
}

var (
	domOnce sync.Once
	domOK   bool
)

func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".php") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// withoutConnLines drops php -S's "Accepted" and "Closing" lines, one pair per connection.
func withoutConnLines(log string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if strings.HasSuffix(l, " Accepted") || strings.HasSuffix(l, " Closing") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = append([]string{fmt.Sprintf("... (%d earlier lines)", len(parts)-lines)}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}
