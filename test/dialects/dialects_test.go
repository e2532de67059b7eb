// Package dialects replays, for every identity provider flexbridge supports, the exact
// SCIM request sequence that provider sends over a user's lifecycle (look-up, create,
// profile update, groups and memberships, deactivation, reactivation, deletion), and checks
// what an IdP checks (status and answer) and what a Flex admin sees afterwards: the user as
// flexbridge serves it back and the TaskRouter worker the reconciler made in the sandbox.
//
// Each dialect is one file in testdata/ (see testdata/README.md for the format). The
// request bodies are data recorded from the providers' public documentation; every step
// names its source. A failing step is a place where flexbridge does not yet accept that
// provider unchanged: fix flexbridge, never the recording.
package dialects

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/flexbridge/flexbridge/internal/directory"
	fbsync "github.com/flexbridge/flexbridge/internal/sync"
	"github.com/flexbridge/flexbridge/internal/taskrouter"
	"github.com/flexbridge/flexbridge/internal/taskrouter/sandbox"
	"github.com/flexbridge/flexbridge/mapping"
	"github.com/flexbridge/flexbridge/scim"
)

// Dialect is one recorded IdP dialect (a testdata/*.json file).
type Dialect struct {
	Dialect     string   `json:"dialect"`
	Description string   `json:"description"`
	Sources     []string `json:"sources"`
	// Headers are sent with every request of the dialect (User-Agent, Accept,
	// Content-Type of bodies); a step's own headers override them.
	Headers map[string]string `json:"headers"`
	Steps   []Step            `json:"steps"`
}

// Step is one request the IdP sends, with what must hold afterwards.
type Step struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Method string `json:"method"`
	// Path is relative to the SCIM base (/scim/v2), query included, with {{var}}
	// templates filled from earlier answers.
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	// Body is sent byte for byte as recorded (after {{var}} substitution).
	Body   json.RawMessage `json:"body,omitempty"`
	Expect Expect          `json:"expect"`
	// Save names values of the answer for later steps: var -> JSON pointer.
	Save  map[string]string `json:"save,omitempty"`
	After After             `json:"after"`
}

// Expect is what the IdP itself requires of the answer.
type Expect struct {
	Status Statuses `json:"status"`
	// JSON maps pointers into the answer to expected values (see match). They are
	// checked only when the answer has a body (a 204 allowed by Status has none).
	JSON map[string]json.RawMessage `json:"json,omitempty"`
}

// After is checked once the reconciler has applied every pending change.
type After struct {
	// Reads are GETs through the SCIM API (the stored user or group as served).
	Reads []Read `json:"reads,omitempty"`
	// Workers are TaskRouter workers in the sandbox, by FriendlyName.
	Workers []WorkerCheck `json:"workers,omitempty"`
}

type Read struct {
	Path   string                     `json:"path"`
	Status int                        `json:"status"`
	JSON   map[string]json.RawMessage `json:"json,omitempty"`
}

type WorkerCheck struct {
	Name   string `json:"name"`
	Exists bool   `json:"exists"`
	// Attributes maps pointers into the worker's attributes JSON to expected values.
	Attributes map[string]json.RawMessage `json:"attributes,omitempty"`
}

// Statuses accepts 200 or [200, 204].
type Statuses []int

func (s *Statuses) UnmarshalJSON(b []byte) error {
	var one int
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Statuses{one}
		return nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("status must be a number or a list of numbers: %s", b)
	}
	*s = many
	return nil
}

func TestDialects(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no dialects in testdata/")
	}
	for _, f := range files {
		d := loadDialect(t, f)
		t.Run(d.Dialect, func(t *testing.T) {
			t.Parallel()
			newStack(t).run(t, d)
		})
	}
}

func loadDialect(t *testing.T, file string) Dialect {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d Dialect
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if want := strings.TrimSuffix(filepath.Base(file), ".json"); d.Dialect != want {
		t.Fatalf("%s: dialect is %q, want the file name %q", file, d.Dialect, want)
	}
	seen := map[string]bool{}
	for i, s := range d.Steps {
		switch {
		case s.Name == "" || s.Source == "" || s.Method == "" || s.Path == "" || len(s.Expect.Status) == 0:
			t.Fatalf("%s: step %d needs name, source, method, path and expect.status", file, i+1)
		case seen[s.Name]:
			t.Fatalf("%s: two steps are named %q", file, s.Name)
		}
		seen[s.Name] = true
	}
	return d
}

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "0123456789abcdef0123456789abcdef"
)

// stack is one in-process flexbridge: SQLite store, SCIM handler, reconciler, sandbox.
type stack struct {
	ctx     context.Context
	store   directory.Store
	scimURL string
	token   string
	workers *taskrouter.Client
	rec     *fbsync.Reconciler
	vars    map[string]string
	failed  map[string]string // var -> the step that should have set it and failed
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	st, err := directory.Open(ctx, directory.Options{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "fb.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	sb := sandbox.New(sandbox.Options{AccountSID: accountSID, AuthToken: authToken})
	sbSrv := httptest.NewServer(sb)
	t.Cleanup(sbSrv.Close)
	workers, err := taskrouter.New(taskrouter.Config{AccountSID: accountSID, AuthToken: authToken,
		WorkspaceSID: sb.Workspaces()[0], BaseURL: sbSrv.URL, Timeout: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := mapping.LoadFile(filepath.Join("..", "..", "configs", "mapping.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rec := fbsync.New(fbsync.Options{
		Store: st, Workers: workers, Mapping: func() *mapping.Config { return cfg },
		Logger: log, Owner: "dialects", MaxBackoff: time.Second,
	})

	secret, hash, err := scim.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateToken(ctx, "idp", hash); err != nil {
		t.Fatal(err)
	}
	h, err := scim.New(scim.Options{Store: st, Logger: log, PublicURL: "https://bridge.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(scim.BasePath+"/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	return &stack{ctx: ctx, store: st, scimURL: srv.URL + scim.BasePath, token: secret,
		workers: workers, rec: rec, vars: map[string]string{}, failed: map[string]string{}}
}

// run replays the steps in order, each as a subtest so that every gap is reported.
func (s *stack) run(t *testing.T, d Dialect) {
	for i, step := range d.Steps {
		t.Run(fmt.Sprintf("%02d_%s", i+1, strings.ReplaceAll(step.Name, " ", "_")), func(t *testing.T) {
			s.step(t, d, step)
		})
	}
}

// answer is an HTTP answer as the IdP receives it.
type answer struct {
	status int
	header http.Header
	raw    []byte
	doc    any // decoded JSON, nil without a body
}

func (a answer) String() string {
	return fmt.Sprintf("%d %s", a.status, truncate(string(a.raw), 1500))
}

func (s *stack) step(t *testing.T, d Dialect, step Step) {
	method := step.Method
	path, err := s.fill(step.Path)
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	if len(step.Body) > 0 {
		filled, err := s.fill(string(step.Body))
		if err != nil {
			t.Fatal(err)
		}
		body = []byte(filled)
	}
	headers := map[string]string{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	for k, v := range step.Headers {
		headers[k] = v
	}
	for k, v := range headers {
		if headers[k], err = s.fill(v); err != nil {
			t.Fatal(err)
		}
	}
	a := s.send(t, method, path, headers, body)
	request := fmt.Sprintf("%s %s%s", method, scim.BasePath, path)
	if body != nil {
		request += "\n" + compact(body)
	}
	report := func(format string, args ...any) {
		t.Helper()
		t.Errorf("step %q (%s)\n  request: %s\n  answer:  %s\n  %s", step.Name, step.Source, request, a, fmt.Sprintf(format, args...))
	}

	statusOK := slices.Contains(step.Expect.Status, a.status)
	if !statusOK {
		report("status %d, the IdP expects %v", a.status, []int(step.Expect.Status))
	}
	if statusOK && a.doc != nil {
		for _, p := range sortedKeys(step.Expect.JSON) {
			if msg := s.check(a.doc, p, step.Expect.JSON[p]); msg != "" {
				report("answer %s: %s", p, msg)
			}
		}
	}
	for _, v := range sortedKeys(step.Save) {
		got, ok := lookup(a.doc, step.Save[v])
		str, isStr := got.(string)
		if !statusOK || !ok || !isStr || str == "" {
			s.failed[v] = step.Name
			delete(s.vars, v)
			report("cannot save %s from %s of the answer", v, step.Save[v])
			continue
		}
		s.vars[v] = str
		delete(s.failed, v)
	}

	s.converge(t)

	for _, r := range step.After.Reads {
		rpath, err := s.fill(r.Path)
		if err != nil {
			t.Error(err)
			continue
		}
		got := s.send(t, http.MethodGet, rpath, d.Headers, nil)
		want := r.Status
		if want == 0 {
			want = http.StatusOK
		}
		if got.status != want {
			report("then GET %s%s: %s, want status %d", scim.BasePath, rpath, got, want)
			continue
		}
		for _, p := range sortedKeys(r.JSON) {
			if msg := s.check(got.doc, p, r.JSON[p]); msg != "" {
				report("then GET %s%s: %s: %s\n  read back: %s", scim.BasePath, rpath, p, msg, truncate(string(got.raw), 1500))
			}
		}
	}
	for _, wc := range step.After.Workers {
		name, err := s.fill(wc.Name)
		if err != nil {
			t.Error(err)
			continue
		}
		w, found, err := s.workers.FindWorker(s.ctx, name)
		if err != nil {
			t.Fatalf("reading worker %q from the sandbox: %v", name, err)
		}
		switch {
		case found && !wc.Exists:
			report("worker %q still exists (attributes %s), want none%s", name, w.Attributes, s.syncErrors())
			continue
		case !found && wc.Exists:
			report("no worker %q, want one%s", name, s.syncErrors())
			continue
		case !found:
			continue
		}
		var attrs any
		if err := json.Unmarshal([]byte(w.Attributes), &attrs); err != nil {
			report("worker %q attributes are not JSON: %s", name, w.Attributes)
			continue
		}
		for _, p := range sortedKeys(wc.Attributes) {
			if msg := s.check(attrs, p, wc.Attributes[p]); msg != "" {
				report("worker %q %s: %s\n  worker attributes: %s%s", name, p, msg, w.Attributes, s.syncErrors())
			}
		}
	}
}

func (s *stack) send(t *testing.T, method, path string, headers map[string]string, body []byte) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(s.ctx, method, s.scimURL+path, rd)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, path, err)
	}
	for k, v := range headers {
		if body == nil && strings.EqualFold(k, "Content-Type") {
			continue
		}
		req.Header.Set(k, v)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &a.doc); err != nil {
			a.doc = nil
		}
	}
	return a
}

// converge runs the reconciler until nothing is left to claim (failed users wait for their
// backoff and are reported by the worker checks with their sync error).
func (s *stack) converge(t *testing.T) {
	t.Helper()
	for i := 0; i < 50; i++ {
		n, err := s.rec.RunOnce(s.ctx)
		if err != nil {
			t.Fatalf("reconciler: %v", err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("the reconciler did not converge in 50 passes")
}

// syncErrors describes the sync state of every user the dialect has saved an id of.
func (s *stack) syncErrors() string {
	var out []string
	for _, k := range sortedKeys(s.vars) {
		if !strings.HasSuffix(k, ".id") {
			continue
		}
		st, err := s.store.GetSyncState(s.ctx, s.vars[k])
		if err != nil || st.LastError == "" {
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s): desired gen %d, applied %d, last error: %s",
			k, s.vars[k], st.DesiredGen, st.AppliedGen, st.LastError))
	}
	if len(out) == 0 {
		return ""
	}
	return "\n  sync state: " + strings.Join(out, "\n              ")
}

var templateRE = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.]+)\s*\}\}`)

// fill replaces {{var}} with values saved from earlier answers.
func (s *stack) fill(text string) (string, error) {
	var missing []string
	out := templateRE.ReplaceAllStringFunc(text, func(m string) string {
		name := templateRE.FindStringSubmatch(m)[1]
		if v, ok := s.vars[name]; ok {
			return v
		}
		missing = append(missing, name)
		return m
	})
	if len(missing) > 0 {
		var why []string
		for _, m := range missing {
			if step, ok := s.failed[m]; ok {
				why = append(why, fmt.Sprintf("{{%s}} (step %q failed to provide it)", m, step))
			} else {
				why = append(why, fmt.Sprintf("{{%s}} (no earlier step that ran saved it: run the whole dialect, or fix the recording)", m))
			}
		}
		return "", fmt.Errorf("cannot run, blocked by an earlier failure: %s", strings.Join(why, ", "))
	}
	return out, nil
}

// check compares the value at pointer p of doc with the expectation, and returns what is
// wrong ("" when it holds). Expectations are JSON values compared for equality, or one of
// the matchers:
//
//	{"$absent": true}   missing or null
//	{"$blank": true}    missing, null, "" or []
//	{"$present": true}  there and not null
//	{"$len": n}         an array of n elements
//	{"$contains": [..]} an array containing these elements
//
// Strings in expectations may use {{var}} templates.
func (s *stack) check(doc any, p string, rawWant json.RawMessage) string {
	filled, err := s.fill(string(rawWant))
	if err != nil {
		return err.Error()
	}
	var want any
	if err := json.Unmarshal([]byte(filled), &want); err != nil {
		return fmt.Sprintf("bad expectation %s: %v", rawWant, err)
	}
	got, found := lookup(doc, p)
	show := func(v any) string {
		if !found {
			return "missing"
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	if m, ok := want.(map[string]any); ok && len(m) == 1 {
		for k, arg := range m {
			switch k {
			case "$absent":
				if found && got != nil {
					return fmt.Sprintf("is %s, want it absent", show(got))
				}
				return ""
			case "$blank":
				if found && got != nil && got != "" && !reflect.DeepEqual(got, []any{}) {
					return fmt.Sprintf("is %s, want it absent or empty", show(got))
				}
				return ""
			case "$present":
				if !found || got == nil {
					return "is missing, want a value"
				}
				return ""
			case "$len":
				l, ok := got.([]any)
				if n, _ := arg.(float64); !ok || len(l) != int(n) {
					return fmt.Sprintf("is %s, want a list of %v", show(got), arg)
				}
				return ""
			case "$contains":
				l, _ := got.([]any)
				for _, el := range arg.([]any) {
					if !slices.ContainsFunc(l, func(x any) bool { return reflect.DeepEqual(x, el) }) {
						return fmt.Sprintf("is %s, want it to contain %s", show(got), compact([]byte(mustJSON(el))))
					}
				}
				return ""
			}
		}
	}
	if !found || !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("is %s, want %s", show(got), mustJSON(want))
	}
	return ""
}

// lookup follows a JSON pointer (RFC 6901, "/a/b/0") in doc. Object keys match exactly
// or, failing that, ignoring case (SCIM attribute names are case-insensitive). A segment
// "name[key=value]" picks the first element of the array name whose key equals value,
// ignoring case (e.g. /emails[type=work]/value).
func lookup(doc any, p string) (any, bool) {
	if p == "" || p == "/" {
		return doc, doc != nil
	}
	cur := doc
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		var sel string
		if i := strings.Index(seg, "["); i > 0 && strings.HasSuffix(seg, "]") {
			seg, sel = seg[:i], seg[i+1:len(seg)-1]
		}
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				for k, kv := range c {
					if strings.EqualFold(k, seg) {
						v, ok = kv, true
						break
					}
				}
			}
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
		if sel != "" {
			key, val, _ := strings.Cut(sel, "=")
			list, _ := cur.([]any)
			found := false
			for _, el := range list {
				m, _ := el.(map[string]any)
				for k, v := range m {
					if strings.EqualFold(k, key) && strings.EqualFold(fmt.Sprint(v), val) {
						cur, found = el, true
					}
				}
				if found {
					break
				}
			}
			if !found {
				return nil, false
			}
		}
	}
	return cur, true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return truncate(string(b), 2000)
	}
	return truncate(buf.String(), 2000)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// TestRunnerMatchers keeps the runner's own checks honest: a dialect failure must mean a
// flexbridge gap, never a matcher bug.
func TestRunnerMatchers(t *testing.T) {
	var doc any
	if err := json.Unmarshal([]byte(`{"userName":"a@x.com","Emails":[{"type":"home","value":"h@x.com"},{"type":"Work","value":"w@x.com"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","manager":{"value":"m1"}},
		"roles":["supervisor","wfo.team_leader"],"title":"","nick":null}`), &doc); err != nil {
		t.Fatal(err)
	}
	s := &stack{vars: map[string]string{"user.id": "m1"}, failed: map[string]string{}}
	for _, c := range []struct {
		path, want string
		ok         bool
	}{
		{"/userName", `"a@x.com"`, true},
		{"/username", `"a@x.com"`, true},
		{"/emails[type=work]/value", `"w@x.com"`, true},
		{"/emails/0/value", `"h@x.com"`, true},
		{"/emails", `{"$len": 2}`, true},
		{"/emails", `{"$len": 1}`, false},
		{"/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/department", `"Sales"`, true},
		{"/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/manager/value", `"{{user.id}}"`, true},
		{"/roles", `["supervisor","wfo.team_leader"]`, true},
		{"/roles", `["wfo.team_leader","supervisor"]`, false},
		{"/roles", `{"$contains": ["supervisor"]}`, true},
		{"/roles", `{"$contains": ["admin"]}`, false},
		{"/title", `{"$blank": true}`, true},
		{"/title", `{"$absent": true}`, false},
		{"/nick", `{"$absent": true}`, true},
		{"/missing", `{"$absent": true}`, true},
		{"/missing", `{"$present": true}`, false},
		{"/missing", `""`, false},
		{"/userName", `{"$present": true}`, true},
		{"/emails[type=other]/value", `{"$absent": true}`, true},
		{"/userName", `"{{nope}}"`, false},
	} {
		msg := s.check(doc, c.path, json.RawMessage(c.want))
		if (msg == "") != c.ok {
			t.Errorf("check(%s, %s) = %q, want ok=%v", c.path, c.want, msg, c.ok)
		}
	}
}
