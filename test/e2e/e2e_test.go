// Package e2e runs flexbridge as a user does: the real binary, `flexbridge sandbox` and
// `flexbridge serve` as separate processes on loopback ports, SCIM requests shaped exactly as
// Okta sends them, and the resulting TaskRouter workers read back through twilio-go.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/taskrouter/v1"

	"github.com/flexbridge/flexbridge/internal/testutil/runscope"
)

var binary string // built once in TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flexbridge-e2e-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "flexbridge")
	build := exec.Command("go", "build", "-o", binary, "./cmd/flexbridge")
	build.Dir = repoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building flexbridge:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		panic(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// proc is a running flexbridge process with its output captured.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
}

func (p *proc) Stdout() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stdout.String() }
func (p *proc) Stderr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = append(os.Environ(), "TWILIO_ACCOUNT_SID=", "TWILIO_AUTH_TOKEN=")
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\nstderr:\n%s", args[0], p.Stdout(), tail(p.Stderr(), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// waitFor polls cond every 20ms until it holds or the timeout passes, and returns how long it took.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) time.Duration {
	t.Helper()
	begin := time.Now()
	var last error
	for time.Since(begin) < timeout {
		ok, err := cond()
		if ok {
			return time.Since(begin)
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
	return 0
}

const (
	accountSID = "AC00000000000000000000000000000e2e"
	authToken  = "0123456789abcdef0123456789abcdef"
)

// stack is a sandbox process plus a serve process configured against it.
type stack struct {
	sandbox    *proc
	serve      *proc
	base       string // http://127.0.0.1:port
	sandboxURL string
	workspace  string
	config     string
	token      string
	tr         *openapi.ApiService
}

func startStack(t *testing.T) *stack {
	t.Helper()
	return startStackWith(t, nil)
}

// startStackWith is startStack with more configuration: extra, given the serve process's base
// URL before it starts, returns YAML appended to its config file.
func startStackWith(t *testing.T, extra func(base string) string) *stack {
	t.Helper()
	s := &stack{}
	sbAddr := freeAddr(t)
	s.sandbox = start(t, "sandbox", "--listen", sbAddr, "--account-sid", accountSID, "--auth-token", authToken)
	waitFor(t, "sandbox to print its workspace", 20*time.Second, func() (bool, error) {
		line, _, _ := strings.Cut(s.sandbox.Stdout(), "\n")
		if strings.HasPrefix(line, "WS") && len(line) == 34 {
			s.workspace = line
			return true, nil
		}
		return false, nil
	})
	s.sandboxURL = "http://" + sbAddr
	s.tr = twilioClient(s.sandboxURL)

	dir := t.TempDir()
	addr := freeAddr(t)
	s.base = "http://" + addr
	s.config = filepath.Join(dir, "flexbridge.yaml")
	cfg := fmt.Sprintf(`server:
  listen: %q
  public_url: %q
log:
  level: debug
store:
  driver: sqlite
  dsn: %q
twilio:
  account_sid: %s
  auth_token: ${E2E_TWILIO_TOKEN}
  workspace_sid: %s
  api_base_url: %q
mapping:
  file: %q
sync:
  interval: 100ms
`, addr, s.base, filepath.Join(dir, "data", "flexbridge.db"), accountSID, s.workspace, s.sandboxURL,
		filepath.Join(repoRoot(), "configs", "mapping.yaml"))
	if extra != nil {
		cfg += extra(s.base)
	}
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_TWILIO_TOKEN", authToken)
	s.serve = start(t, "serve", "--config", s.config)
	waitFor(t, "serve to be ready", 30*time.Second, func() (bool, error) {
		resp, err := http.Get(s.base + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == 200, nil
	})
	// A token made while serve runs on the same SQLite file (the interface contract).
	out, err := exec.Command(binary, "token", "create", "--config", s.config, "--name", "okta").CombinedOutput()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	s.token = strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(s.token, "fbt_") {
		t.Fatalf("token create printed %q as its last line", s.token)
	}
	return s
}

func twilioClient(base string) *openapi.ApiService {
	return twilioClientAs(base, accountSID, authToken)
}

func twilioClientAs(base, account, token string) *openapi.ApiService {
	u, _ := url.Parse(base)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: rewrite{u}}
	rc := twilio.NewRestClientWithParams(twilio.ClientParams{
		Username: account, Password: token,
		Client: &client.Client{Credentials: client.NewCredentials(account, token), HTTPClient: hc},
	})
	return rc.TaskrouterV1
}

// rewrite sends twilio-go's https://taskrouter.twilio.com requests to the sandbox.
type rewrite struct{ to *url.URL }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = r.to.Scheme, r.to.Host
	req.Host = r.to.Host
	return http.DefaultTransport.RoundTrip(req)
}

// scim sends one SCIM request and decodes the JSON answer.
func (s *stack) scim(t *testing.T, method, path, contentType string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.base+"/scim/v2"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/scim+json")
	req.Header.Set("User-Agent", "Okta SCIM Client 1.0.0")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s %s: non-JSON answer %d: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, resp.Header, doc
}

// worker finds the worker with the friendly name through the sandbox's API, read with twilio-go.
func (s *stack) worker(name string) (*openapi.TaskrouterV1Worker, error) {
	list, err := s.tr.ListWorker(s.workspace, (&openapi.ListWorkerParams{}).SetFriendlyName(name).SetLimit(5))
	if err != nil || len(list) == 0 {
		return nil, err
	}
	return s.tr.FetchWorker(s.workspace, *list[0].Sid)
}

func attrs(t *testing.T, w *openapi.TaskrouterV1Worker) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(*w.Attributes), &m); err != nil {
		t.Fatalf("worker attributes are not JSON: %v", err)
	}
	return m
}

// TestOktaLifecycle sends the request sequence Okta sends for one user (look up, create,
// profile push, deactivate) and checks the worker through the sandbox's HTTP API.
func TestOktaLifecycle(t *testing.T) {
	s := startStack(t)
	const userName = "ada.lovelace@example.com"

	// 1. Okta looks the user up before creating it.
	status, _, doc := s.scim(t, "GET", "/Users?filter="+url.QueryEscape(`userName eq "`+userName+`"`)+"&startIndex=1&count=100", "", nil)
	if status != 200 || doc["totalResults"] != float64(0) {
		t.Fatalf("lookup: %d %v", status, doc)
	}
	if res, ok := doc["Resources"].([]any); !ok || len(res) != 0 {
		t.Fatalf("lookup: Resources must be an empty list, got %#v", doc["Resources"])
	}

	// 2. Create, as Okta sends it.
	create := map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":    userName,
		"name":        map[string]any{"givenName": "Ada", "familyName": "Lovelace"},
		"emails":      []any{map[string]any{"primary": true, "value": userName, "type": "work"}},
		"displayName": "Ada Lovelace",
		"locale":      "en-US",
		"externalId":  "00u1ab2cd3EF4gh5ij6k",
		"groups":      []any{},
		"password":    "1mz050nq",
		"active":      true,
	}
	createdAt := time.Now()
	var hdr http.Header
	status, hdr, doc = s.scim(t, "POST", "/Users", "application/scim+json; charset=utf-8", create)
	if status != 201 {
		t.Fatalf("create: %d %v", status, doc)
	}
	id, _ := doc["id"].(string)
	if id == "" || doc["userName"] != userName || doc["active"] != true {
		t.Fatalf("create answered %v", doc)
	}
	if _, leaked := doc["password"]; leaked {
		t.Fatal("the password came back in the create response")
	}
	if loc := hdr.Get("Location"); loc != s.base+"/scim/v2/Users/"+id {
		t.Errorf("Location header = %q", loc)
	}

	var w *openapi.TaskrouterV1Worker
	took := waitFor(t, "the worker to appear", 20*time.Second, func() (bool, error) {
		var err error
		w, err = s.worker(userName)
		return w != nil, err
	})
	t.Logf("FIGURE create->worker visible: %s", time.Since(createdAt).Round(time.Millisecond))
	_ = took
	a := attrs(t, w)
	if *w.FriendlyName != userName {
		t.Errorf("FriendlyName = %q, want the userName", *w.FriendlyName)
	}
	if got := fmt.Sprint(a["roles"]); got != "[agent]" {
		t.Errorf("roles = %v, want [agent]", a["roles"])
	}
	if a["full_name"] != "Ada Lovelace" || a["email"] != userName {
		t.Errorf("full_name/email = %v/%v", a["full_name"], a["email"])
	}
	if strings.Contains(*w.Attributes, ": ") || strings.Contains(*w.Attributes, "\n") {
		t.Errorf("attributes are not minified: %s", *w.Attributes)
	}

	// Someone (Flex, an admin) adds a key the bridge does not own; it must survive updates.
	a["routing"] = map[string]any{"skills": []any{"sales"}, "levels": map[string]any{"sales": 3}}
	raw, _ := json.Marshal(a)
	if _, err := s.tr.UpdateWorker(s.workspace, *w.Sid, (&openapi.UpdateWorkerParams{}).SetAttributes(string(raw))); err != nil {
		t.Fatal(err)
	}

	// 3. Profile push: Okta PUTs the whole user with a changed name.
	create["name"] = map[string]any{"givenName": "Augusta Ada", "familyName": "King"}
	create["displayName"] = "Augusta Ada King"
	create["id"] = id
	delete(create, "password")
	status, _, doc = s.scim(t, "PUT", "/Users/"+id, "application/scim+json", create)
	if status != 200 || doc["displayName"] != "Augusta Ada King" {
		t.Fatalf("put: %d %v", status, doc)
	}
	waitFor(t, "full_name to change", 20*time.Second, func() (bool, error) {
		w, err := s.worker(userName)
		if w == nil {
			return false, err
		}
		return attrs(t, w)["full_name"] == "Augusta Ada King", nil
	})
	w, _ = s.worker(userName)
	if got := attrs(t, w)["routing"]; fmt.Sprint(got) != "map[levels:map[sales:3] skills:[sales]]" {
		t.Errorf("unowned key routing was not preserved: %v", got)
	}

	// 4. Deactivate, as Okta does.
	deactivatedAt := time.Now()
	status, _, doc = s.scim(t, "PATCH", "/Users/"+id, "application/scim+json", map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "replace", "value": map[string]any{"active": false}}},
	})
	if status != 200 || doc["active"] != false {
		t.Fatalf("deactivate: %d %v", status, doc)
	}
	waitFor(t, "the worker to be removed", 20*time.Second, func() (bool, error) {
		w, err := s.worker(userName)
		return w == nil && err == nil, err
	})
	t.Logf("FIGURE deactivate->worker removed: %s", time.Since(deactivatedAt).Round(time.Millisecond))

	status, _, doc = s.scim(t, "GET", "/Users/"+id, "", nil)
	if status != 200 || doc["active"] != false {
		t.Fatalf("get after deactivate: %d %v", status, doc)
	}
}

// TestOktaSpecSuite replays Okta's published SCIM 2.0 SPEC test against the running server.
func TestOktaSpecSuite(t *testing.T) {
	s := startStack(t)
	// The suite's first step reads Resources[0] of the user list: Okta runs it against an app
	// that already has users, so give it one.
	status, _, doc := s.scim(t, "POST", "/Users", "application/json", map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "existing.user@example.com",
		"name":     map[string]any{"givenName": "Existing", "familyName": "User"},
		"emails":   []any{map[string]any{"primary": true, "value": "existing.user@example.com", "type": "work"}},
		"active":   true,
	})
	if status != 201 {
		t.Fatalf("seeding a user: %d %v", status, doc)
	}
	runOktaSuite(t, s, "Okta-SCIM-20-SPEC-Test.json")
}

func runOktaSuite(t *testing.T, s *stack, file string) {
	t.Helper()
	runscope.RunT(t, filepath.Join(repoRoot(), "test", "conformance", "okta", file), map[string]string{
		"SCIMBaseURL": s.base + "/scim/v2",
		"auth":        "Bearer " + s.token,
	})
}

// TestEmbeddedDefault runs `flexbridge serve` as a new user does: no configuration file, no
// Twilio credentials, an empty working directory. It must say loudly that it uses the sandbox,
// print a first SCIM token once, keep its SQLite file under ./data, and sync a SCIM user into
// the embedded sandbox workspace.
func TestEmbeddedDefault(t *testing.T) {
	addr := freeAddr(t)
	p := start(t, "serve", "--listen", addr)
	base := "http://" + addr
	var token string
	waitFor(t, "the first token on stdout", 30*time.Second, func() (bool, error) {
		for _, line := range strings.Split(p.Stdout(), "\n") {
			if f := strings.TrimSpace(line); strings.HasPrefix(f, "fbt_") {
				token = f
				return true, nil
			}
		}
		return false, nil
	})
	var logLine struct{ SandboxURL, AccountSID, WorkspaceSID string }
	for _, line := range strings.Split(p.Stderr(), "\n") {
		if strings.Contains(line, "EMBEDDED SANDBOX WORKSPACE") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line is not JSON: %s", line)
			}
			logLine.SandboxURL, _ = m["sandbox_url"].(string)
			logLine.AccountSID, _ = m["account_sid"].(string)
			logLine.WorkspaceSID, _ = m["workspace_sid"].(string)
			if m["level"] != "warn" {
				t.Errorf("sandbox notice logged at %v, want warn", m["level"])
			}
		}
	}
	if logLine.SandboxURL == "" || logLine.WorkspaceSID == "" {
		t.Fatalf("no loud sandbox notice in the log:\n%s", p.Stderr())
	}
	if _, err := os.Stat(filepath.Join(p.cmd.Dir, "data", "flexbridge.db")); err != nil {
		t.Errorf("SQLite store not under ./data: %v", err)
	}
	s := &stack{base: base, token: token, workspace: logLine.WorkspaceSID,
		tr: twilioClientAs(logLine.SandboxURL, logLine.AccountSID, "anypassword0123")}
	status, _, doc := s.scim(t, "POST", "/Users", "application/scim+json", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "first.user@example.com",
		"displayName": "First User", "emails": []any{map[string]any{"value": "first.user@example.com", "primary": true}},
	})
	if status != 201 {
		t.Fatalf("create: %d %v", status, doc)
	}
	var w *openapi.TaskrouterV1Worker
	waitFor(t, "the worker in the embedded sandbox", 20*time.Second, func() (bool, error) {
		var err error
		w, err = s.worker("first.user@example.com")
		return w != nil, err
	})
	if a := attrs(t, w); a["full_name"] != "First User" || fmt.Sprint(a["roles"]) != "[agent]" {
		t.Errorf("worker attributes %s", *w.Attributes)
	}
	if strings.Count(p.Stdout(), token) != 1 {
		t.Error("the token should be printed exactly once")
	}
	if strings.Contains(p.Stderr(), token) {
		t.Error("the token appears in the log")
	}

	// Graceful shutdown on SIGTERM: exit status 0, and the store is left consistent.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	if !strings.Contains(p.Stderr(), `"msg":"shutting down"`) {
		t.Error("no shutdown line in the log")
	}
}

// A user the mapping cannot turn into a worker is refused at the SCIM request (400), instead of
// being accepted and then stuck behind a sync error.
func TestUnmappableUserIsRefused(t *testing.T) {
	s := startStack(t)
	long := strings.Repeat("x", 70) + "@example.com" // FriendlyName over 64 characters
	status, _, doc := s.scim(t, "POST", "/Users", "application/scim+json", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": long,
	})
	if status != 400 || doc["scimType"] != "invalidValue" || !strings.Contains(fmt.Sprint(doc["detail"]), "64") {
		t.Errorf("long userName: %d %v", status, doc)
	}
	status, _, doc = s.scim(t, "POST", "/Users", "application/scim+json", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "ok@example.com",
	})
	if status != 201 {
		t.Fatalf("create: %d %v", status, doc)
	}
	id := doc["id"].(string)
	status, _, doc = s.scim(t, "PATCH", "/Users/"+id, "application/scim+json", map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "replace", "path": "displayName", "value": strings.Repeat("B", 5000)}},
	})
	if status != 400 || !strings.Contains(fmt.Sprint(doc["detail"]), "4096") {
		t.Errorf("5,000-character displayName: %d %v", status, doc)
	}
	_, _, doc = s.scim(t, "GET", "/Users/"+id, "", nil)
	if doc["displayName"] != nil {
		t.Errorf("the refused PATCH was stored: %v", doc["displayName"])
	}
}
