// Package browser drives Debian's headless Chromium with chromedp for end-to-end tests of
// browser flows, SAML logins in particular:
//
//	b := browser.New(t)
//	finalURL, text := b.LoginSSP(t, spURL+"/saml/login?idp=ssp", "alice", "alicepass")
//
// Each Browser is a fresh Chromium process with an empty profile (own cookie jar), stopped
// when the test ends. Chromium is /usr/bin/chromium (Debian package chromium, installed by
// test/idp/install.sh), or the path in the environment variable FLEXBRIDGE_CHROMIUM; when it
// is missing the test is skipped, or fails when the environment variable CI is "true".
//
// Waiting in a SAML flow: the IdP answers the login form with a page that POSTs the
// SAMLResponse to the SP's ACS by script, and the ACS redirects again. A single chromedp
// wait or evaluation that spans these navigations fails with "Inspected target navigated or
// closed (-32000)". Open and LoginSSP therefore poll the page (URL, ready state, text) and
// return once a page that is not an auto-POST page has stayed the same for a short while.
package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/flexbridge/flexbridge/internal/testutil/testenv"
)

// DefaultPath is where Debian's chromium package puts the browser.
const DefaultPath = "/usr/bin/chromium"

// EnvPath names the environment variable that overrides DefaultPath.
const EnvPath = "FLEXBRIDGE_CHROMIUM"

// EnvScreenshots names an environment variable: when it is set to a directory, a test that
// failed leaves a screenshot of the browser's last page there (<test name>-failed.png).
const EnvScreenshots = "FLEXBRIDGE_SCREENSHOTS"

// Timeouts. A SAML login must also finish within crewjam/saml's MaxIssueDelay (90 s).
const (
	startTimeout  = 60 * time.Second
	actionTimeout = 45 * time.Second // Open, LoginSSP, Run, Screenshot
	quietPeriod   = 300 * time.Millisecond
	pollInterval  = 100 * time.Millisecond
)

// Browser is a headless Chromium with one tab.
type Browser struct {
	ctx    context.Context // the tab's context
	cancel context.CancelFunc
	logs   *lockedBuffer // chromedp's own log and Chromium's output, shown on failure
}

// New starts headless Chromium. It is closed when the test ends; if the test failed, the
// last page's URL and text and Chromium's output are logged (and a screenshot saved when
// FLEXBRIDGE_SCREENSHOTS names a directory).
func New(t testing.TB) *Browser {
	t.Helper()
	path := os.Getenv(EnvPath)
	if path == "" {
		path = DefaultPath
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		msg := fmt.Sprintf("browser: Chromium not found at %s (install with: sudo bash test/idp/install.sh, or set %s)", path, EnvPath)
		testenv.Missing(t, msg)
	}
	logs := &lockedBuffer{}
	profile, err := os.MkdirTemp("", "flexbridge-chromium-")
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, // --headless (and --hide-scrollbars --mute-audio)
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
		// A fresh profile, removed once Chromium has exited. Not under t.TempDir: Chromium
		// can write into it late, and t.TempDir fails the test when it cannot remove it.
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(logs),
		// chromedp's default of 20 s to start is short on a loaded 2-core CI machine
		// (11 s seen with `go test ./...` running other packages at the same time).
		chromedp.WSURLReadTimeout(startTimeout),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	logf := func(format string, args ...any) { fmt.Fprintf(logs, format+"\n", args...) }
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	b := &Browser{ctx: ctx, logs: logs}
	b.cancel = func() {
		cancelTab()   // closes the browser gracefully (the first tab owns it)
		cancelAlloc() // kills it if needed and waits for it to exit
		removeProfile(profile)
	}

	// Start Chromium now, so a broken browser fails here rather than in the first step.
	// This first Run must get the tab's own context: chromedp ties the browser's lifetime
	// to it, so a context with a timeout here would close the browser when cancelled.
	// (Chromium's start is bounded by WSURLReadTimeout.)
	if err := chromedp.Run(ctx); err != nil {
		b.cancel()
		t.Fatalf("browser: starting %s: %v\n%s", path, err, quiet(logs.String()))
	}
	t.Cleanup(func() {
		if t.Failed() {
			u, text, err := b.page()
			if err != nil {
				t.Logf("browser: last page: %v", err)
			} else {
				t.Logf("browser: last page %s:\n%s", u, clip(text, 4000))
			}
			if l := strings.TrimSpace(quiet(logs.String())); l != "" {
				t.Logf("browser: Chromium/chromedp log:\n%s", clip(l, 8000))
			}
			if dir := os.Getenv(EnvScreenshots); dir != "" {
				name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-failed.png"
				if err := b.Screenshot(filepath.Join(dir, name)); err != nil {
					t.Logf("browser: %v", err)
				} else {
					t.Logf("browser: screenshot of the last page: %s", filepath.Join(dir, name))
				}
			}
		}
		b.cancel()
	})
	return b
}

// Context is the tab's chromedp context, for chromedp.Run with actions this package lacks.
// It has no deadline: add one.
func (b *Browser) Context() context.Context { return b.ctx }

// Run runs chromedp actions in the tab with a 45 s timeout.
func (b *Browser) Run(actions ...chromedp.Action) error {
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	return chromedp.Run(ctx, actions...)
}

// Open navigates to url, follows redirects and auto-POST forms until the page settles, and
// returns the final URL and the page's visible text. It fails the test on error.
func (b *Browser) Open(t testing.TB, url string) (finalURL, pageText string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil && !isNavigationRace(err) {
		t.Fatalf("browser: opening %s: %v", url, err)
	}
	p, err := b.settle(ctx)
	if err != nil {
		t.Fatalf("browser: opening %s: %v", url, err)
	}
	return p.URL, p.Text
}

// LoginSSP logs in at a SimpleSAMLphp IdP: it opens startURL (an SP URL that redirects to the
// IdP, e.g. /saml/login?idp=NAME, or the IdP's IdP-initiated URL), fills SimpleSAMLphp's
// username/password form, submits it, follows the auto-POST of the SAMLResponse to the ACS
// and the SP's redirects, and returns the URL and visible text of the page it settles on:
// the SP's page after a login, the SP's error page after a refused one, or SimpleSAMLphp's
// login page again ("Incorrect username or password") after a wrong password.
//
// An empty startURL logs in on the page the browser is on, e.g. SimpleSAMLphp's login page
// shown again after a wrong password (its URL has lost the AuthState and cannot be reopened).
//
// If the IdP shows no login form because this browser already has a session there, the
// page reached without it is returned (call ClearCookies, or use a new Browser, to log in
// as someone else). The whole flow has a 45 s limit; errors fail the test.
func (b *Browser) LoginSSP(t testing.TB, startURL, user, pass string) (finalURL, pageText string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if startURL != "" {
		if err := chromedp.Run(ctx, chromedp.Navigate(startURL)); err != nil && !isNavigationRace(err) {
			t.Fatalf("browser: opening %s: %v", startURL, err)
		}
	}
	p, err := b.settle(ctx)
	if err != nil {
		t.Fatalf("browser: opening %s: %v", startURL, err)
	}
	if !p.LoginForm {
		t.Logf("browser: no SimpleSAMLphp login form at %s; returning that page", p.URL)
		return p.URL, p.Text
	}
	err = chromedp.Run(ctx,
		chromedp.SetValue("#username", user, chromedp.ByQuery),
		chromedp.SetValue("#password", pass, chromedp.ByQuery),
		// Mark this document: settle must wait for the next one, since a wrong password
		// gives a new login page at the same URL.
		chromedp.Evaluate(`window.__flexbridgeOld = true`, nil),
		chromedp.Click("#submit_button", chromedp.ByQuery, chromedp.NodeVisible),
	)
	if err != nil && !isNavigationRace(err) {
		t.Fatalf("browser: submitting the SimpleSAMLphp login form at %s: %v", p.URL, err)
	}
	p, err = b.settle(ctx)
	if err != nil {
		t.Fatalf("browser: after submitting the SimpleSAMLphp login form: %v", err)
	}
	return p.URL, p.Text
}

// Page returns the current page's URL and visible text, without waiting.
func (b *Browser) Page(t testing.TB) (url, text string) {
	t.Helper()
	u, text, err := b.page()
	if err != nil {
		t.Fatalf("browser: reading the page: %v", err)
	}
	return u, text
}

// ClearCookies deletes all of the browser's cookies (every site's sessions).
func (b *Browser) ClearCookies() error {
	return b.Run(network.ClearBrowserCookies())
}

// Cookies returns the browser's cookies for the given URLs (all cookies when none given).
func (b *Browser) Cookies(urls ...string) ([]*network.Cookie, error) {
	var cookies []*network.Cookie
	err := b.Run(chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		p := network.GetCookies()
		if len(urls) > 0 {
			p = p.WithURLs(urls)
		}
		cookies, err = p.Do(ctx)
		return err
	}))
	return cookies, err
}

// Screenshot writes a PNG of the whole current page to path.
func (b *Browser) Screenshot(path string) error {
	var png []byte
	if err := b.Run(chromedp.FullScreenshot(&png, 100)); err != nil {
		return fmt.Errorf("browser: screenshot: %w", err)
	}
	return os.WriteFile(path, png, 0o644)
}

// pageState is what probeJS reports.
type pageState struct {
	URL       string `json:"url"`
	Ready     string `json:"ready"`
	Text      string `json:"text"`
	Old       bool   `json:"old"`       // the document LoginSSP submitted from
	Posting   bool   `json:"posting"`   // an auto-POST page of a SAML message
	LoginForm bool   `json:"loginForm"` // SimpleSAMLphp's username/password form
}

const probeJS = `(() => ({
	url: location.href,
	ready: document.readyState,
	text: document.body ? document.body.innerText : "",
	old: window.__flexbridgeOld === true,
	posting: !!document.querySelector('form input[name="SAMLResponse"], form input[name="SAMLRequest"]'),
	loginForm: !!(document.querySelector('#username') && document.querySelector('#password') && document.querySelector('#submit_button')),
}))()`

// settle polls the tab until a loaded page, which is neither the marked old document nor
// an auto-POST page, has kept its URL and text for quietPeriod. Errors from evaluating in
// a document that is being replaced ("Inspected target navigated or closed", "Execution
// context was destroyed", ...) only mean "not yet".
func (b *Browser) settle(ctx context.Context) (pageState, error) {
	var last, cur pageState
	var lastErr error
	var since time.Time
	for {
		err := chromedp.Run(ctx, chromedp.Evaluate(probeJS, &cur))
		switch {
		case err != nil:
			lastErr, since = err, time.Time{}
			if ctx.Err() != nil {
				return last, fmt.Errorf("page did not settle (last URL %q): %w", last.URL, err)
			}
		case cur.Old || cur.Posting || cur.Ready != "complete":
			last, lastErr, since = cur, nil, time.Time{}
		case !since.IsZero() && cur.URL == last.URL && cur.Text == last.Text:
			if time.Since(since) >= quietPeriod {
				return cur, nil
			}
		default:
			last, lastErr, since = cur, nil, time.Now()
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("page did not settle (last URL %q, ready %q, auto-POST %v, last error %v): %w\n%s",
				last.URL, last.Ready, last.Posting, lastErr, ctx.Err(), clip(last.Text, 2000))
		case <-time.After(pollInterval):
		}
	}
}

func (b *Browser) page() (url, text string, err error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	var p pageState
	err = chromedp.Run(ctx, chromedp.Evaluate(probeJS, &p))
	return p.URL, p.Text, err
}

// removeProfile removes Chromium's profile directory, retrying for a moment since
// Chromium's helper processes can still write into it just after the browser exited.
func removeProfile(dir string) {
	for i := 0; i < 20; i++ {
		if err := os.RemoveAll(dir); err == nil {
			time.Sleep(50 * time.Millisecond)
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isNavigationRace reports errors that only mean the page navigated while an action ran.
func isNavigationRace(err error) bool {
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	s := err.Error()
	for _, frag := range []string{
		"Inspected target navigated or closed",
		"Execution context was destroyed",
		"Cannot find context with specified id",
		"net::ERR_ABORTED",
	} {
		if strings.Contains(s, frag) {
			return true
		}
	}
	return false
}

// quiet drops the noise Chromium prints in a container: D-Bus errors, and the warning of
// Debian's /usr/bin/chromium wrapper script ("[: ...: unexpected operator").
func quiet(log string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, ":ERROR:dbus/") || strings.Contains(l, "unexpected operator") || strings.TrimSpace(l) == "" {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d more bytes)", len(s)-n)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
