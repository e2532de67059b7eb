// Package prism runs Stoplight Prism (https://stoplight.io/open-source/prism) for
// contract tests: in "proxy" mode it forwards requests to a server under test and checks
// every request and response against an OpenAPI description; in "mock" mode it answers
// from the description itself, checking the requests of a client under test.
//
// Prism 5.16 reports what it finds in two ways, and Violations looks for both:
//
//   - every violation, whatever its severity, is listed as JSON in an "sl-violations"
//     response header: [{"location":["response","body","sid"],"severity":"Error",
//     "code":"pattern","message":"..."}];
//   - with --errors (always set by Start), a response that violates the description
//     (severity Error) is replaced by a 500 application/problem+json whose type is
//     https://stoplight.io/prism/errors#VIOLATIONS, an invalid request is refused with a
//     422 (#UNPROCESSABLE_ENTITY) or a 401 (#UNAUTHORIZED, missing credentials) and never
//     forwarded, and a path the description lacks gets a 404 (#NO_PATH_MATCHED_ERROR).
//
// Warnings only appear in the header and the answer passes through. The one to expect:
// "Unable to match the returned status code with those defined in the document", for
// any status the description does not declare (Twilio's declares no 4xx at all, so
// error bodies are not checked). Note also that a schema without "required" properties
// (Twilio's have none) lets a response omit any field without a violation.
//
// Typical use, with a client that hides response headers:
//
//	base := prism.Start(t, "mock", spec, "")
//	checker := &prism.Checker{}           // wrap it in the client's transport
//	... point the client at base through checker and exercise it ...
//	for _, v := range checker.Violations() {
//		t.Errorf("Prism: %v", v)
//	}
//
// Prism is the npm package pinned in test/tools/package.json. Start finds it through the
// FLEXBRIDGE_PRISM environment variable or at test/tools/node_modules/.bin/prism under
// the module root; without it the test is skipped, or fails when CI=true.
package prism

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexbridge/flexbridge/internal/testutil/testenv"
)

// EnvBinary names the environment variable that overrides where Prism is.
const EnvBinary = "FLEXBRIDGE_PRISM"

// startTimeout bounds how long Prism may take to load a description and listen.
const startTimeout = 90 * time.Second

// Start runs Prism in mode "mock" or "proxy" on a free loopback port with the OpenAPI
// description at spec, and returns its base URL ("http://127.0.0.1:PORT"). In proxy
// mode upstream is the base URL of the server Prism forwards to; in mock mode it is
// ignored. Prism is stopped when the test ends; if the test failed, its log is printed.
func Start(t testing.TB, mode, spec, upstream string) (baseURL string) {
	t.Helper()
	if mode != "mock" && mode != "proxy" {
		t.Fatalf("prism: mode %q: want \"mock\" or \"proxy\"", mode)
	}
	if mode == "proxy" && upstream == "" {
		t.Fatal("prism: proxy mode needs an upstream URL")
	}
	if _, err := os.Stat(spec); err != nil {
		t.Fatalf("prism: OpenAPI description: %v", err)
	}
	bin := Binary(t)

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("prism: finding a free port: %v", err)
		}
		args := []string{mode, spec}
		if mode == "proxy" {
			args = append(args, upstream)
		}
		args = append(args, "--errors", "-p", strconv.Itoa(port), "-h", "127.0.0.1")
		url, err := run(t, bin, args)
		if err == nil {
			return url
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	t.Fatalf("prism: %v", lastErr)
	return ""
}

// Binary returns the path of the Prism executable, skipping the test when Prism is not
// installed (failing it when the environment variable CI is "true").
func Binary(t testing.TB) string {
	t.Helper()
	missing := func(msg string) {
		t.Helper()
		testenv.Missing(t, "prism: "+msg)
	}
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("prism: %s=%s: %v", EnvBinary, p, err)
		}
		return p
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not on PATH: install Node.js (Prism runs on it)")
	}
	p := filepath.Join(ModuleRoot(t), "test", "tools", "node_modules", ".bin", "prism")
	if _, err := os.Stat(p); err != nil {
		missing(p + " not found: run `npm ci` in test/tools, or set " + EnvBinary)
	}
	return p
}

// ModuleRoot returns the directory holding go.mod (see testenv.ModuleRoot).
func ModuleRoot(t testing.TB) string { return testenv.ModuleRoot(t) }

var errPortInUse = errors.New("port in use")

// run starts Prism and waits until it listens.
func run(t testing.TB, bin string, args []string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", bin, err)
	}

	log := &syncBuffer{}
	ready := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		const marker = "Prism is listening on "
		for sc.Scan() {
			line := sc.Text()
			log.WriteLine(line)
			if i := strings.Index(line, marker); i >= 0 {
				select {
				case ready <- strings.TrimSpace(line[i+len(marker):]):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		exited <- err
	}()

	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	select {
	case url := <-ready:
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("prism %s log:\n%s", strings.Join(args, " "), log.String())
			}
		})
		return strings.TrimRight(url, "/"), nil
	case err := <-exited:
		out := log.String()
		if strings.Contains(out, "EADDRINUSE") {
			return "", errPortInUse
		}
		return "", fmt.Errorf("exited before listening (%v):\n%s", err, out)
	case <-time.After(startTimeout):
		stop()
		return "", fmt.Errorf("not listening after %s:\n%s", startTimeout, log.String())
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
	b.buf.WriteByte('\n')
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// problemTypePrefix starts the "type" of every problem+json error Prism makes up.
const problemTypePrefix = "https://stoplight.io/prism/errors#"

// Violation is one thing Prism reported about an exchange.
type Violation struct {
	// Request is "METHOD /path?query" of the exchange (set by Checker).
	Request string
	// Severity is Prism's: "Error", "Warning", "Information" or "Hint". An answer Prism
	// made up instead of forwarding or mocking (see Location) has severity "Error".
	Severity string
	// Location is where the violation is ("response.body.sid", "request.query.PageSize"),
	// or "prism#TYPE" for an answer Prism made up ("prism#VIOLATIONS",
	// "prism#UNPROCESSABLE_ENTITY", "prism#NO_PATH_MATCHED_ERROR", ...).
	Location string
	// Code is the failed rule ("pattern", "format", ...), when Prism gives one.
	Code string
	// Message is Prism's explanation; for a made-up answer, its whole body.
	Message string
}

func (v Violation) String() string {
	s := v.Severity + " " + v.Location + ": " + v.Message
	if v.Code != "" {
		s += " (" + v.Code + ")"
	}
	if v.Request != "" {
		s = v.Request + ": " + s
	}
	return s
}

// Violations returns what Prism reported about the exchange that produced resp: the
// entries of its sl-violations header, and the answer it made up instead of the
// upstream's (or the mock's), if it did. The body of resp stays readable.
func Violations(resp *http.Response) []Violation {
	var out []Violation
	if h := resp.Header.Get("sl-violations"); h != "" {
		var vs []struct {
			Location []string `json:"location"`
			Severity string   `json:"severity"`
			Code     any      `json:"code"`
			Message  string   `json:"message"`
		}
		if err := json.Unmarshal([]byte(h), &vs); err != nil {
			// "Too many violations! ..." (a truncated list) is not JSON.
			out = append(out, Violation{Severity: "Error", Location: "sl-violations", Message: h})
		}
		for _, v := range vs {
			code := ""
			if v.Code != nil {
				code = fmt.Sprint(v.Code)
			}
			out = append(out, Violation{Severity: v.Severity, Location: strings.Join(v.Location, "."), Code: code, Message: v.Message})
		}
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") && resp.Body != nil {
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return append(out, Violation{Severity: "Error", Location: "prism", Message: "reading Prism's answer: " + err.Error()})
		}
		var p struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(body, &p) == nil && strings.HasPrefix(p.Type, problemTypePrefix) {
			out = append(out, Violation{
				Severity: "Error",
				Location: "prism#" + strings.TrimPrefix(p.Type, problemTypePrefix),
				Code:     strconv.Itoa(resp.StatusCode),
				Message:  string(body),
			})
		}
	}
	return out
}

// Errors returns the violations of severity "Error".
func Errors(vs []Violation) []Violation {
	var out []Violation
	for _, v := range vs {
		if v.Severity == "Error" {
			out = append(out, v)
		}
	}
	return out
}

// Checker is an http.RoundTripper for clients that talk to Prism (twilio-go, say): it
// hands requests to Base (http.DefaultTransport if nil) and records the Violations of
// every response, even those a client consumes without exposing their headers.
type Checker struct {
	Base http.RoundTripper

	mu    sync.Mutex
	found []Violation
	count int
}

// RoundTrip implements http.RoundTripper.
func (c *Checker) RoundTrip(req *http.Request) (*http.Response, error) {
	base := c.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	vs := Violations(resp)
	c.mu.Lock()
	c.count++
	for _, v := range vs {
		v.Request = req.Method + " " + req.URL.RequestURI()
		c.found = append(c.found, v)
	}
	c.mu.Unlock()
	return resp, nil
}

// Violations returns every violation recorded so far.
func (c *Checker) Violations() []Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Violation(nil), c.found...)
}

// Exchanges returns how many responses the Checker has seen.
func (c *Checker) Exchanges() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}
