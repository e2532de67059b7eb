package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	testAccountSID   = "AC0123456789abcdef0123456789abcdef"
	testWorkspaceSID = "WS0123456789ABCDEF0123456789ABCDEF"
	testAuthToken    = "f00dfacecafebabe0123456789abcdef"
)

// env returns a lookup function over m.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// problemsOf asserts err is an *Error and returns its problems.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want *config.Error", err, err)
	}
	return ce.Problems
}

func paths(ps []Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Path
	}
	return out
}

// problemAt returns the single problem with path, failing otherwise.
func problemAt(t *testing.T, ps []Problem, path string) Problem {
	t.Helper()
	var found []Problem
	for _, p := range ps {
		if p.Path == path {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one problem at %q, got %d; all problems: %v", path, len(found), ps)
	}
	return found[0]
}

func mustParse(t *testing.T, doc string, m map[string]string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc), env(m))
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", doc, err)
	}
	return c
}

func TestDefault(t *testing.T) {
	want := &Config{
		Server: Server{
			Listen:          "127.0.0.1:8080",
			PublicURL:       "http://127.0.0.1:8080",
			ShutdownTimeout: 20 * time.Second,
			MaxBodyBytes:    1 << 20,
		},
		Log:     Log{Level: "info", Format: "json"},
		Store:   Store{Driver: "sqlite", DSN: "./data/flexbridge.db"},
		Twilio:  Twilio{Timeout: 15 * time.Second},
		Mapping: Mapping{File: "configs/mapping.yaml"},
		Sync: Sync{
			Interval:              time.Second,
			Workers:               4,
			MaxBackoff:            5 * time.Minute,
			FullReconcileInterval: time.Hour,
		},
		SAML: SAML{
			SP: SAMLSP{
				EntityID: "http://127.0.0.1:8080/saml/metadata",
				KeyFile:  "./data/saml-sp.key",
				CertFile: "./data/saml-sp.crt",
			},
			LoginWait:     5 * time.Second,
			AfterLoginURL: "/saml/welcome",
		},
	}
	got := Default()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Default() = %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if !got.Twilio.Sandbox() {
		t.Error("Default() is not in sandbox mode")
	}
	if got.SAML.Enabled() {
		t.Error("Default() has SAML enabled")
	}
	if Default() == Default() {
		t.Error("Default() returns a shared pointer")
	}

	loaded, err := Load("")
	if err != nil {
		t.Fatalf(`Load("") error: %v`, err)
	}
	if !reflect.DeepEqual(loaded, want) {
		t.Errorf(`Load("") = %+v, want defaults`, loaded)
	}
	for _, doc := range []string{"", "\n", "# only a comment\n", "---\n", "~\n", "server:\nlog: ~\n", "saml:\n  idps: []\n", "saml: {sp: ~, idps: ~}\n"} {
		if c := mustParse(t, doc, nil); !reflect.DeepEqual(c, want) {
			t.Errorf("Parse(%q) = %+v, want defaults", doc, c)
		}
	}
}

func TestDerivedDefaults(t *testing.T) {
	tests := []struct {
		doc           string
		wantPublicURL string
		wantDSN       string
	}{
		{"server: {listen: ':9090'}", "http://localhost:9090", DefaultSQLiteDSN},
		{"server: {listen: '0.0.0.0:80'}", "http://localhost:80", DefaultSQLiteDSN},
		{"server: {listen: '[::]:80'}", "http://localhost:80", DefaultSQLiteDSN},
		{"server: {listen: '[::1]:8443'}", "http://[::1]:8443", DefaultSQLiteDSN},
		{"server: {listen: 'bridge.internal:8080'}", "http://bridge.internal:8080", DefaultSQLiteDSN},
		{"server: {listen: ':9090', public_url: 'https://flex.example.com/bridge/'}", "https://flex.example.com/bridge", DefaultSQLiteDSN},
		{"server: {public_url: ''}\nstore: {dsn: ''}", "http://127.0.0.1:8080", DefaultSQLiteDSN},
		{"store: {dsn: /var/lib/flexbridge/db.sqlite}", "http://127.0.0.1:8080", "/var/lib/flexbridge/db.sqlite"},
		{"store: {driver: postgres, dsn: 'postgres://db/flexbridge'}", "http://127.0.0.1:8080", "postgres://db/flexbridge"},
	}
	for _, tt := range tests {
		c := mustParse(t, tt.doc, nil)
		if c.Server.PublicURL != tt.wantPublicURL || c.Store.DSN != tt.wantDSN {
			t.Errorf("Parse(%q): public_url %q, dsn %q; want %q, %q", tt.doc, c.Server.PublicURL, c.Store.DSN, tt.wantPublicURL, tt.wantDSN)
		}
	}

	// Postgres has no default DSN.
	_, err := Parse([]byte("store:\n  driver: postgres\n"), nil)
	p := problemAt(t, problemsOf(t, err), "store.dsn")
	if !strings.Contains(p.Message, "required") {
		t.Errorf("store.dsn problem = %q, want it to say required", p.Message)
	}
}

// exampleEnv is the environment the example files need.
var exampleEnv = map[string]string{
	"TWILIO_ACCOUNT_SID":   testAccountSID,
	"TWILIO_AUTH_TOKEN":    testAuthToken,
	"TWILIO_WORKSPACE_SID": testWorkspaceSID,
	"DATABASE_URL":         "postgres://flexbridge:pw@db:5432/flexbridge?sslmode=disable",
	"PUBLIC_URL":           "https://flexbridge.example.com",
}

func exampleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "configs", "flexbridge*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d example files (%v), want flexbridge.yaml and flexbridge.postgres.yaml", len(files), files)
	}
	return files
}

func TestExampleFilesLoad(t *testing.T) {
	for k, v := range exampleEnv {
		t.Setenv(k, v)
	}
	for _, file := range exampleFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			c, err := Load(file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Twilio.Sandbox() {
				t.Error("example uses the sandbox; want real credentials from the environment")
			}
			if c.Twilio.AuthToken != testAuthToken || c.Twilio.AccountSID != testAccountSID || c.Twilio.WorkspaceSID != testWorkspaceSID {
				t.Errorf("credentials not taken from the environment: %+v", c.Redacted().Twilio)
			}
			if c.Store.Driver == DriverPostgres && c.Store.DSN != exampleEnv["DATABASE_URL"] {
				t.Errorf("postgres DSN = %q, want $DATABASE_URL", c.Store.DSN)
			}

			// Secrets are references in the file, never literal.
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(raw), "auth_token: ${TWILIO_AUTH_TOKEN}") {
				t.Error("auth_token is not written as ${TWILIO_AUTH_TOKEN}")
			}
			if c.Store.Driver == DriverPostgres && !strings.Contains(string(raw), "dsn: ${DATABASE_URL}") {
				t.Error("postgres dsn is not written as ${DATABASE_URL}")
			}
		})
	}
}

func TestExampleFilesNeedTheirEnvironment(t *testing.T) {
	for _, file := range exampleFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(data, env(nil))
		p := problemAt(t, problemsOf(t, err), "twilio.auth_token")
		if !strings.Contains(p.Message, "TWILIO_AUTH_TOKEN is not set") {
			t.Errorf("%s without env: auth_token problem = %q", file, p.Message)
		}
	}
}

// The main example sets every key to its default (credentials aside) and
// explains each key, including its default, in a comment.
func TestExampleDocumentsEveryKey(t *testing.T) {
	file := filepath.Join("..", "..", "configs", "flexbridge.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, string(data), exampleEnv)
	want := Default()
	want.Twilio.AccountSID, want.Twilio.AuthToken, want.Twilio.WorkspaceSID = testAccountSID, testAuthToken, testWorkspaceSID
	if !reflect.DeepEqual(c, want) {
		t.Errorf("example values differ from the defaults:\n got %+v\nwant %+v", c, want)
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	comments := map[string]string{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := joinPath(prefix, k.Value)
			comments[path] = k.HeadComment + k.LineComment + v.LineComment
			if v.Kind == yaml.MappingNode {
				walk(v, path)
			}
		}
	}
	walk(doc.Content[0], "")
	for _, path := range leafPaths(schema, "") {
		// A list of mappings (saml.idps) is empty in the example; its
		// comment shows an item with every key.
		if list, item, ok := strings.Cut(path, "[]."); ok {
			last := item[strings.LastIndexByte(item, '.')+1:]
			if !strings.Contains(comments[list], " "+last+":") {
				t.Errorf("%s: the comment on %s does not show %q", path, list, last+":")
			}
			path = list
		}
		comment, ok := comments[path]
		switch {
		case !ok:
			t.Errorf("%s is missing from %s", path, file)
		case comment == "":
			t.Errorf("%s has no comment in %s", path, file)
		case !strings.Contains(strings.ToLower(comment), "default") && !strings.Contains(comment, "Optional"):
			t.Errorf("%s: comment does not state the default: %q", path, comment)
		}
	}
}

func TestYAMLKeys(t *testing.T) {
	want := []string{
		"server.listen", "server.public_url", "server.shutdown_timeout", "server.max_body_bytes",
		"log.level", "log.format",
		"store.driver", "store.dsn",
		"twilio.account_sid", "twilio.auth_token", "twilio.workspace_sid", "twilio.api_base_url", "twilio.timeout",
		"mapping.file",
		"sync.interval", "sync.workers", "sync.max_backoff", "sync.full_reconcile_interval",
		"saml.sp.entity_id", "saml.sp.key_file", "saml.sp.cert_file", "saml.sp.sign_authn_requests",
		"saml.login_wait", "saml.after_login_url",
		"saml.idps[].name", "saml.idps[].metadata_file", "saml.idps[].metadata_url", "saml.idps[].entity_id",
		"saml.idps[].allow_idp_initiated", "saml.idps[].user_name", "saml.idps[].groups_fallback",
		"saml.idps[].attributes.email", "saml.idps[].attributes.display_name",
		"saml.idps[].attributes.groups", "saml.idps[].attributes.roles",
		"saml.broker.idp", "saml.broker.entity_id", "saml.broker.flex[].name", "saml.broker.flex[].entity_id",
		"saml.broker.flex[].acs_urls", "saml.broker.relay_targets",
	}
	got := leafPaths(schema, "")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("leaf keys = %v\nwant %v", got, want)
	}
}

// Every leaf type in Config must be one the decoder handles.
func TestSchemaTypes(t *testing.T) {
	var check func(typ reflect.Type, path string)
	check = func(typ reflect.Type, path string) {
		switch {
		case typ.Kind() == reflect.Struct:
			for i := 0; i < typ.NumField(); i++ {
				check(typ.Field(i).Type, path+"."+typ.Field(i).Name)
			}
		case typ.Kind() == reflect.Slice:
			check(typ.Elem(), path+"[]")
		case typ == durationType, typ.Kind() == reflect.String, typ.Kind() == reflect.Bool,
			typ.Kind() == reflect.Int, typ.Kind() == reflect.Int64:
		default:
			t.Errorf("%s has type %s, which Parse does not decode", path, typ)
		}
	}
	check(reflect.TypeOf(Config{}), "Config")
}

func TestAllValuesDecode(t *testing.T) {
	doc := `
server:
  listen: "0.0.0.0:9000"
  public_url: https://bridge.example.com
  shutdown_timeout: 1m30s
  max_body_bytes: 2_000 # not a number here: rejected below
`
	_, err := Parse([]byte(doc), nil)
	p := problemAt(t, problemsOf(t, err), "server.max_body_bytes")
	if !strings.Contains(p.Message, "whole number") || !strings.Contains(p.Message, "line 6") {
		t.Errorf("max_body_bytes problem = %q", p.Message)
	}

	doc = `
server:
  listen: "0.0.0.0:9000"
  public_url: https://bridge.example.com
  shutdown_timeout: 1m30s
  max_body_bytes: 65536
log: {level: debug, format: console}
store: {driver: postgres, dsn: "host=db user=fb"}
twilio:
  account_sid: ` + testAccountSID + `
  auth_token: ` + testAuthToken + `
  workspace_sid: ` + testWorkspaceSID + `
  api_base_url: http://127.0.0.1:4010/v1/
  timeout: 500ms
mapping: {file: /etc/flexbridge/mapping.yaml}
sync: {interval: 250ms, workers: 16, max_backoff: 30s, full_reconcile_interval: 24h}
saml:
  sp:
    entity_id: urn:example:flexbridge
    key_file: /etc/flexbridge/sp.key
    cert_file: /etc/flexbridge/sp.pem
    sign_authn_requests: true
  login_wait: 2500ms
  after_login_url: https://flex.twilio.com/agent-desktop
  idps:
    - name: okta
      metadata_url: https://example.okta.com/app/exk1/sso/saml/metadata
      allow_idp_initiated: true
      user_name: nameid
      attributes: {email: email, display_name: displayName, groups: groups, roles: flexRoles}
    - name: entra-prod
      metadata_file: /etc/flexbridge/entra.xml
      entity_id: https://sts.windows.net/0000/
      allow_idp_initiated: false
      user_name: email
      groups_fallback: agent
      attributes:
        email: http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress
        groups: http://schemas.microsoft.com/ws/2008/06/identity/claims/groups
`
	got := mustParse(t, doc, nil)
	want := &Config{
		Server:  Server{Listen: "0.0.0.0:9000", PublicURL: "https://bridge.example.com", ShutdownTimeout: 90 * time.Second, MaxBodyBytes: 65536},
		Log:     Log{Level: "debug", Format: "console"},
		Store:   Store{Driver: "postgres", DSN: "host=db user=fb"},
		Twilio:  Twilio{AccountSID: testAccountSID, AuthToken: testAuthToken, WorkspaceSID: testWorkspaceSID, APIBaseURL: "http://127.0.0.1:4010/v1", Timeout: 500 * time.Millisecond},
		Mapping: Mapping{File: "/etc/flexbridge/mapping.yaml"},
		Sync:    Sync{Interval: 250 * time.Millisecond, Workers: 16, MaxBackoff: 30 * time.Second, FullReconcileInterval: 24 * time.Hour},
		SAML: SAML{
			SP:            SAMLSP{EntityID: "urn:example:flexbridge", KeyFile: "/etc/flexbridge/sp.key", CertFile: "/etc/flexbridge/sp.pem", SignAuthnRequests: true},
			LoginWait:     2500 * time.Millisecond,
			AfterLoginURL: "https://flex.twilio.com/agent-desktop",
			IdPs: []SAMLIdP{
				{
					Name: "okta", MetadataURL: "https://example.okta.com/app/exk1/sso/saml/metadata",
					AllowIdPInitiated: true, UserName: "nameid",
					Attributes: SAMLAttributes{Email: "email", DisplayName: "displayName", Groups: "groups", Roles: "flexRoles"},
				},
				{
					Name: "entra-prod", MetadataFile: "/etc/flexbridge/entra.xml", EntityID: "https://sts.windows.net/0000/",
					UserName: "email", GroupsFallback: "agent",
					Attributes: SAMLAttributes{
						Email:  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
						Groups: "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
					},
				},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n %+v\nwant\n %+v", got, want)
	}
	if got.Twilio.Sandbox() {
		t.Error("Sandbox() with credentials")
	}
	if !got.SAML.Enabled() {
		t.Error("SAML.Enabled() with two IdPs")
	}
}

func TestEnvExpansion(t *testing.T) {
	environment := map[string]string{
		"FILE":    "/etc/mapping.yaml",
		"EMPTY":   "",
		"WORKERS": "12",
		"POLL":    "250ms",
		"NESTED":  "${FILE}",
		"YAMLISH": "a: [b]\nc: d",
		"LEVEL":   "warn",
	}
	tests := []struct {
		value string
		want  string
	}{
		{"${FILE}", "/etc/mapping.yaml"},
		{"${UNSET:-configs/okta.yaml}", "configs/okta.yaml"},
		{"${EMPTY:-fallback}", "fallback"},
		{"${FILE:-fallback}", "/etc/mapping.yaml"},
		{"${UNSET:-}x", "x"},
		{"dir/${FILE}/${UNSET:-b}.yaml", "dir//etc/mapping.yaml/b.yaml"},
		{"$${FILE}", "${FILE}"},
		{"cost$5", "cost$5"},
		{"$FILE", "$FILE"},
		{"${NESTED}", "${FILE}"}, // values are not expanded again
		{"${YAMLISH}", "a: [b]\nc: d"},
		{"${UNSET:-a:-b}", "a:-b"},
	}
	for _, tt := range tests {
		doc := "mapping:\n  file: '" + tt.value + "'\n"
		c := mustParse(t, doc, environment)
		if c.Mapping.File != tt.want {
			t.Errorf("file: %q expanded to %q, want %q", tt.value, c.Mapping.File, tt.want)
		}
	}

	// Non-string values are converted after expansion.
	c := mustParse(t, "sync:\n  workers: ${WORKERS}\n  interval: ${POLL}\n  max_backoff: ${UNSET:-2m}\nlog:\n  level: ${LEVEL}\n", environment)
	if c.Sync.Workers != 12 || c.Sync.Interval != 250*time.Millisecond || c.Sync.MaxBackoff != 2*time.Minute || c.Log.Level != "warn" {
		t.Errorf("got workers %d, interval %s, max_backoff %s, level %q", c.Sync.Workers, c.Sync.Interval, c.Sync.MaxBackoff, c.Log.Level)
	}

	// An empty variable is set: ${EMPTY} is "", and an empty public_url
	// takes its default.
	c = mustParse(t, "server:\n  public_url: ${EMPTY}\n", environment)
	if c.Server.PublicURL != "http://127.0.0.1:8080" {
		t.Errorf("public_url = %q, want the default", c.Server.PublicURL)
	}

	// A nil lookup is an empty environment.
	if _, err := Parse([]byte("mapping: {file: '${FILE}'}"), nil); err == nil {
		t.Error("Parse with nil lookupEnv expanded ${FILE}")
	}
}

func TestEnvExpansionProblems(t *testing.T) {
	doc := `twilio:
  account_sid: ` + testAccountSID + `
  auth_token: ${TWILIO_AUTH_TOKEN}
  workspace_sid: ` + testWorkspaceSID + `
mapping:
  file: ${MAPPING_DIR}/${MAPPING_NAME}.yaml
sync:
  workers: ${WORKERS}
log:
  level: ${LEVEL:-${OTHER}}
  format: "${1BAD}"
server:
  public_url: "http://x/${"
`
	_, err := Parse([]byte(doc), env(map[string]string{"MAPPING_DIR": "/etc"}))
	ps := problemsOf(t, err)
	want := []string{"twilio.auth_token", "mapping.file", "sync.workers", "log.level", "log.format", "server.public_url"}
	if got := paths(ps); !reflect.DeepEqual(got, want) {
		t.Fatalf("problem paths = %v\nwant %v\n%v", got, want, err)
	}
	for _, tt := range []struct{ path, want string }{
		{"twilio.auth_token", "environment variable TWILIO_AUTH_TOKEN is not set"},
		{"twilio.auth_token", "(line 3)"},
		{"mapping.file", "environment variable MAPPING_NAME is not set"},
		{"sync.workers", "WORKERS is not set"},
		{"log.level", "cannot contain another reference"},
		{"log.format", "invalid environment reference"},
		{"server.public_url", "unterminated"},
	} {
		if p := problemAt(t, ps, tt.path); !strings.Contains(p.Message, tt.want) {
			t.Errorf("%s: %q does not contain %q", tt.path, p.Message, tt.want)
		}
	}
	// The unset token is reported once, not again as a missing credential.
	if strings.Contains(err.Error(), "required when any Twilio credential") {
		t.Errorf("unset auth_token also reported as missing credential:\n%v", err)
	}
}

func TestUnknownKeys(t *testing.T) {
	doc := `server:
  listn: ":8080"
  tls:
    cert: /etc/cert.pem
    key: /etc/key.pem
  publicURL: https://x.example.com
log:
  level: info
  colour: true
twilio:
  auth-token: ${TWILIO_AUTH_TOKEN}
listen: ":9090"
extra:
  anything: [1, 2]
Sync: {}
store:
  dns: x.db
`
	_, err := Parse([]byte(doc), env(map[string]string{"TWILIO_AUTH_TOKEN": testAuthToken}))
	ps := problemsOf(t, err)
	tests := []struct{ path, want string }{
		{"server.listn", `unknown key; did you mean "listen"? (line 2)`},
		{"server.tls", "unknown key; known keys here: listen, public_url, shutdown_timeout, max_body_bytes (line 3)"},
		{"server.publicURL", `did you mean "public_url"? (line 6)`},
		{"log.colour", "unknown key"},
		{"twilio.auth-token", `did you mean "auth_token"? (line 11)`},
		{"listen", `did you mean "server.listen"? (line 12)`},
		{"extra", "unknown key"},
		{"Sync", `did you mean "sync"?`},
		{"store.dns", `did you mean "dsn"? (line 17)`},
	}
	var want []string
	for _, tt := range tests {
		want = append(want, tt.path)
		if p := problemAt(t, ps, tt.path); !strings.Contains(p.Message, tt.want) {
			t.Errorf("%s: %q does not contain %q", tt.path, p.Message, tt.want)
		}
	}
	if got := paths(ps); !reflect.DeepEqual(got, want) {
		t.Errorf("problem paths = %v\nwant %v (nothing below an unknown key, no other problems)", got, want)
	}
	if strings.Contains(err.Error(), testAuthToken) {
		t.Error("error shows the value of an unknown secret-like key")
	}
}

// Unknown keys and invalid values in one file are all reported together.
func TestUnknownKeysAndInvalidValuesTogether(t *testing.T) {
	doc := `server:
  listen: nonsense
  bogus: 1
log:
  level: loud
sync:
  workers: 0
  speed: fast
`
	_, err := Parse([]byte(doc), nil)
	ps := problemsOf(t, err)
	// In file order, whether found while decoding or validating.
	got := paths(ps)
	want := []string{"server.listen", "server.bogus", "log.level", "sync.workers", "sync.speed"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problem paths = %v, want %v\n%v", got, want, err)
	}
	if p := problemAt(t, ps, "log.level"); p.Message != `must be one of debug, info, warn, error, got "loud" (line 5)` {
		t.Errorf("log.level message = %q", p.Message)
	}
	if p := problemAt(t, ps, "sync.workers"); p.Message != "must be a positive number, got 0 (line 7)" {
		t.Errorf("sync.workers message = %q", p.Message)
	}
}

func TestStructureProblems(t *testing.T) {
	tests := []struct {
		name, doc string
		path      string
		want      string
	}{
		{"section not a mapping", "server: 5\n", "server", "must be a mapping with keys listen, public_url, shutdown_timeout, max_body_bytes, got a single value (line 1)"},
		{"section is a list", "sync: [1, 2]\n", "sync", "got a list"},
		{"leaf is a mapping", "server:\n  listen: {host: a, port: 1}\n", "server.listen", "must be a string, got a mapping (line 2)"},
		{"leaf is a list", "log:\n  level: [info]\n", "log.level", "must be a string, got a list"},
		{"integer not a number", "sync:\n  workers: many\n", "sync.workers", `must be a whole number, got "many" (line 2)`},
		{"integer is a float", "server:\n  max_body_bytes: 1.5\n", "server.max_body_bytes", "must be a whole number"},
		{"integer overflows", "sync:\n  workers: 99999999999999999999\n", "sync.workers", "out of range"},
		{"duration without unit", "sync:\n  interval: 10\n", "sync.interval", `add a unit, got "10"`},
		{"duration garbage", "twilio:\n  timeout: soon\n", "twilio.timeout", `must be a duration like "20s" or "5m", got "soon"`},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", "log.level", "duplicate key (first set on line 2) (line 3)"},
		{"duplicate section", "log: {}\nlog: {}\n", "log", "duplicate key"},
		{"merge key", "base: &b {level: info}\nlog:\n  <<: *b\n", "log.<<", "merge keys are not supported"},
		{"top level is a list", "- server\n", "", "the top level must be a mapping"},
		{"top level is a string", "hello\n", "", "the top level must be a mapping"},
		{"syntax error", "server:\n  listen: [\n", "", "invalid YAML"},
		{"tab indentation", "server:\n\tlisten: x\n", "", "invalid YAML"},
		{"two documents", "log: {}\n---\nsync: {}\n", "", "single YAML document"},
		{"non-string key", "server:\n  [a]: 1\n", "server", "keys must be strings"},
		{"dotted key", "server:\n  tls.cert: x\n", `server."tls.cert"`, "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), nil)
			ps := problemsOf(t, err)
			var p Problem
			for _, q := range ps {
				if q.Path == tt.path {
					p = q
					break
				}
			}
			if !strings.Contains(p.Message, tt.want) {
				t.Errorf("problems %v: want one at %q containing %q", ps, tt.path, tt.want)
			}
		})
	}
}

func TestAliasesAreFollowed(t *testing.T) {
	doc := `
x-timeouts: &t 45s
server:
  shutdown_timeout: *t
twilio:
  timeout: *t
`
	// x-timeouts is still an unknown key, but the aliases themselves decode.
	_, err := Parse([]byte(doc), nil)
	if got := paths(problemsOf(t, err)); !reflect.DeepEqual(got, []string{"x-timeouts"}) {
		t.Fatalf("problems at %v, want only x-timeouts", got)
	}
	doc = `
server: &s
  shutdown_timeout: 45s
twilio:
  timeout: 45s
`
	c := mustParse(t, doc, nil)
	if c.Server.ShutdownTimeout != 45*time.Second || c.Twilio.Timeout != 45*time.Second {
		t.Errorf("got %s, %s", c.Server.ShutdownTimeout, c.Twilio.Timeout)
	}
}

func TestManyInvalidValuesAtOnce(t *testing.T) {
	doc := `server:
  listen: "localhost"
  public_url: "https://bridge.example.com/?x=1"
  shutdown_timeout: 0s
  max_body_bytes: -1
log:
  level: verbose
  format: xml
store:
  driver: mysql
twilio:
  account_sid: AC123
  auth_token: ` + testAuthToken + `
  workspace_sid: ` + testAccountSID + `
  api_base_url: "ftp://mock.example.com"
  timeout: -1s
mapping:
  file: "  "
sync:
  interval: 0s
  workers: -2
  max_backoff: 0s
  full_reconcile_interval: -1h
`
	_, err := Parse([]byte(doc), nil)
	ps := problemsOf(t, err)
	want := []struct{ path, message string }{
		{"server.listen", `must be host:port, like "127.0.0.1:8080" or ":8080", got "localhost" (line 2)`},
		{"server.public_url", "must not have a query string (line 3)"},
		{"server.shutdown_timeout", `must be a positive duration like "20s" or "5m", got 0s (line 4)`},
		{"server.max_body_bytes", "must be a positive number of bytes, got -1 (line 5)"},
		{"log.level", `must be one of debug, info, warn, error, got "verbose" (line 7)`},
		{"log.format", `must be one of json, console, got "xml" (line 8)`},
		{"store.driver", `must be one of sqlite, postgres, got "mysql" (line 10)`},
		{"twilio.account_sid", `must be "AC" followed by 32 hex digits (line 12)`},
		{"twilio.workspace_sid", `must be "WS" followed by 32 hex digits (this looks like an account SID) (line 14)`},
		{"twilio.api_base_url", `must be an absolute http(s) URL like "https://taskrouter.example.com" (line 15)`},
		{"twilio.timeout", `must be a positive duration like "20s" or "5m", got -1s (line 16)`},
		{"mapping.file", "is required (line 18)"},
		{"sync.interval", `must be a positive duration like "20s" or "5m", got 0s (line 20)`},
		{"sync.workers", "must be a positive number, got -2 (line 21)"},
		{"sync.max_backoff", `must be a positive duration like "20s" or "5m", got 0s (line 22)`},
		{"sync.full_reconcile_interval", `must be a positive duration like "20s" or "5m", got -1h0m0s (line 23)`},
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i := range min(len(ps), len(want)) {
		if ps[i].Path != want[i].path || ps[i].Message != want[i].message {
			t.Errorf("problem %d = %s: %s\nwant %s: %s", i, ps[i].Path, ps[i].Message, want[i].path, want[i].message)
		}
	}

	// Error() lists every problem on its own line, after a header.
	lines := strings.Split(err.Error(), "\n")
	if lines[0] != "invalid configuration (16 problems):" {
		t.Errorf("header = %q", lines[0])
	}
	if len(lines) != len(ps)+1 {
		t.Fatalf("Error() has %d lines for %d problems:\n%s", len(lines), len(ps), err)
	}
	for i, p := range ps {
		if lines[i+1] != "  "+p.Path+": "+p.Message {
			t.Errorf("line %d = %q, want %q", i+1, lines[i+1], "  "+p.Path+": "+p.Message)
		}
	}
}

func TestValidateValues(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		path   string // "" means valid
		want   string
	}{
		{"listen all interfaces", func(c *Config) { c.Server.Listen = ":8080" }, "", ""},
		{"listen port 0", func(c *Config) { c.Server.Listen = "127.0.0.1:0" }, "", ""},
		{"listen ipv6", func(c *Config) { c.Server.Listen = "[::1]:8080" }, "", ""},
		{"listen empty", func(c *Config) { c.Server.Listen = "" }, "server.listen", "is required"},
		{"listen port not numeric", func(c *Config) { c.Server.Listen = "127.0.0.1:http" }, "server.listen", `port must be a number from 0 to 65535, got "http"`},
		{"listen port too big", func(c *Config) { c.Server.Listen = ":70000" }, "server.listen", "port must be a number"},
		{"listen bad host", func(c *Config) { c.Server.Listen = "a b:80" }, "server.listen", "host must be an IP address or a host name"},
		{"public url with path", func(c *Config) { c.Server.PublicURL = "https://x.example.com/flexbridge" }, "", ""},
		{"public url relative", func(c *Config) { c.Server.PublicURL = "/flexbridge" }, "server.public_url", "absolute http(s) URL"},
		{"public url no host", func(c *Config) { c.Server.PublicURL = "https:///path" }, "server.public_url", "must have a host"},
		{"public url fragment", func(c *Config) { c.Server.PublicURL = "https://x.example.com/#top" }, "server.public_url", "fragment"},
		{"public url unparsable", func(c *Config) { c.Server.PublicURL = "http://x.example.com:port/" }, "server.public_url", "is not a valid URL"},
		{"public url empty", func(c *Config) { c.Server.PublicURL = "" }, "server.public_url", "is required"},
		{"public url user info", func(c *Config) { c.Server.PublicURL = "https://admin:pw@x.example.com" }, "server.public_url", "must not contain user info"},
		{"postgres without dsn", func(c *Config) { c.Store.Driver, c.Store.DSN = "postgres", "" }, "store.dsn", "is required when store.driver is postgres"},
		{"driver empty", func(c *Config) { c.Store.Driver = "" }, "store.driver", "is required: one of sqlite, postgres"},
		{"account sid uppercase hex", func(c *Config) { setCreds(c); c.Twilio.AccountSID = strings.ToUpper(testAccountSID) }, "", ""},
		{"account sid lowercase prefix", func(c *Config) { setCreds(c); c.Twilio.AccountSID = "ac" + testAccountSID[2:] }, "twilio.account_sid", `"AC" followed by 32 hex`},
		{"account sid too long", func(c *Config) { setCreds(c); c.Twilio.AccountSID += "0" }, "twilio.account_sid", `"AC" followed by 32 hex`},
		{"account sid trailing space", func(c *Config) { setCreds(c); c.Twilio.AccountSID += " " }, "twilio.account_sid", "whitespace"},
		{"account sid is a workspace", func(c *Config) { setCreds(c); c.Twilio.AccountSID = testWorkspaceSID }, "twilio.account_sid", "looks like a workspace SID"},
		{"api key sid", func(c *Config) { setCreds(c); c.Twilio.AccountSID = "SK0123456789abcdef0123456789abcdef" }, "twilio.account_sid", "API key SID"},
		{"workspace sid non-hex", func(c *Config) { setCreds(c); c.Twilio.WorkspaceSID = "WS0123456789abcdef0123456789abcdeg" }, "twilio.workspace_sid", `"WS" followed by 32 hex`},
		{"auth token newline", func(c *Config) { setCreds(c); c.Twilio.AuthToken += "\n" }, "twilio.auth_token", "whitespace or control characters (value not shown)"},
		{"auth token bare reference", func(c *Config) { setCreds(c); c.Twilio.AuthToken = "$TWILIO_AUTH_TOKEN" }, "twilio.auth_token", "without braces"},
		{"auth token any shape", func(c *Config) { setCreds(c); c.Twilio.AuthToken = "not-hex-but-fine" }, "", ""},
		{"api base url mock", func(c *Config) { c.Twilio.APIBaseURL = "http://127.0.0.1:4010" }, "", ""},
		{"api base url relative", func(c *Config) { c.Twilio.APIBaseURL = "mock:4010" }, "twilio.api_base_url", "absolute http(s) URL"},
		{"api base url query", func(c *Config) { c.Twilio.APIBaseURL = "https://mock.example.com?a=b" }, "twilio.api_base_url", "query"},
		{"mapping empty", func(c *Config) { c.Mapping.File = "" }, "mapping.file", "is required"},
		{"log level uppercase", func(c *Config) { c.Log.Level = "INFO" }, "log.level", `got "INFO"`},
		{"log format empty", func(c *Config) { c.Log.Format = "" }, "log.format", "is required: one of json, console"},
		{"long value shortened", func(c *Config) { c.Log.Format = strings.Repeat("x", 100) }, "log.format", `"` + strings.Repeat("x", 64) + `…"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(c)
			err := c.Validate()
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Path != tt.path || !strings.Contains(ps[0].Message, tt.want) {
				t.Errorf("problems = %v, want one at %s containing %q", ps, tt.path, tt.want)
			}
		})
	}
}

func setCreds(c *Config) {
	c.Twilio.AccountSID, c.Twilio.AuthToken, c.Twilio.WorkspaceSID = testAccountSID, testAuthToken, testWorkspaceSID
}

func TestValidateZeroConfig(t *testing.T) {
	err := (&Config{}).Validate()
	got := paths(problemsOf(t, err))
	want := []string{
		"server.listen", "server.public_url", "server.shutdown_timeout", "server.max_body_bytes",
		"log.level", "log.format", "store.driver", "twilio.timeout", "mapping.file",
		"sync.interval", "sync.workers", "sync.max_backoff", "sync.full_reconcile_interval",
		"saml.login_wait", "saml.after_login_url",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("zero Config problems at %v\nwant %v", got, want)
	}
}

func TestCredentialsAllOrNothing(t *testing.T) {
	missingMsg := "is required when any Twilio credential is set"
	tests := []struct {
		name                string
		account, token, ws  string
		wantMissing         []string
		wantSandbox, wantOK bool
	}{
		{"none: sandbox", "", "", "", nil, true, true},
		{"all", testAccountSID, testAuthToken, testWorkspaceSID, nil, false, true},
		{"account only", testAccountSID, "", "", []string{"twilio.auth_token", "twilio.workspace_sid"}, false, false},
		{"token only", "", testAuthToken, "", []string{"twilio.account_sid", "twilio.workspace_sid"}, false, false},
		{"workspace missing", testAccountSID, testAuthToken, "", []string{"twilio.workspace_sid"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Twilio.AccountSID, c.Twilio.AuthToken, c.Twilio.WorkspaceSID = tt.account, tt.token, tt.ws
			if got := c.Twilio.Sandbox(); got != tt.wantSandbox {
				t.Errorf("Sandbox() = %v, want %v", got, tt.wantSandbox)
			}
			err := c.Validate()
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			ps := problemsOf(t, err)
			if got := paths(ps); !reflect.DeepEqual(got, tt.wantMissing) {
				t.Errorf("problems at %v, want %v", got, tt.wantMissing)
			}
			for _, p := range ps {
				if !strings.Contains(p.Message, missingMsg) {
					t.Errorf("%s: %q", p.Path, p.Message)
				}
			}
		})
	}
}

func TestSandbox(t *testing.T) {
	tests := []struct {
		tw   Twilio
		want bool
	}{
		{Twilio{}, true},
		{Twilio{APIBaseURL: "http://127.0.0.1:4010", Timeout: time.Second}, true},
		{Twilio{AccountSID: testAccountSID}, false},
		{Twilio{AuthToken: testAuthToken}, false},
		{Twilio{WorkspaceSID: testWorkspaceSID}, false},
		{Twilio{AccountSID: testAccountSID, AuthToken: testAuthToken, WorkspaceSID: testWorkspaceSID}, false},
	}
	for _, tt := range tests {
		if got := tt.tw.Sandbox(); got != tt.want {
			t.Errorf("%+v.Sandbox() = %v, want %v", Config{Twilio: tt.tw}.Redacted().Twilio, got, tt.want)
		}
	}
	// Credentials given as empty environment variables mean sandbox too.
	c := mustParse(t, "twilio:\n  account_sid: ${SID:-}\n  auth_token: ${TOKEN:-}\n  workspace_sid: ${WS:-}\n", nil)
	if !c.Twilio.Sandbox() {
		t.Error("empty credentials from the environment are not sandbox")
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const token = "Sup3rS3cretT0kenValue"
	const dbPassword = "hunter2-db-password"
	dsn := "postgres://flexbridge:" + dbPassword + "@db/flexbridge"
	tests := []struct {
		name string
		doc  string
		env  map[string]string
		path string // a problem expected here
	}{
		{"token with whitespace", "twilio:\n  account_sid: " + testAccountSID + "\n  workspace_sid: " + testWorkspaceSID + "\n  auth_token: '" + token + " x'\n", nil, "twilio.auth_token"},
		{"token from env with newline", "twilio:\n  account_sid: " + testAccountSID + "\n  workspace_sid: " + testWorkspaceSID + "\n  auth_token: ${T}\n", map[string]string{"T": token + "\n"}, "twilio.auth_token"},
		{"token pasted into account_sid", "twilio:\n  account_sid: " + token + "\n  workspace_sid: " + testWorkspaceSID + "\n  auth_token: " + token + "\n", nil, "twilio.account_sid"},
		{"token pasted into log.level", "log:\n  level: " + token + "\ntwilio:\n  auth_token: ${T}\n", map[string]string{"T": token}, "log.level"},
		{"token in a number", "sync:\n  workers: ${T}\ntwilio:\n  auth_token: ${T}\n", map[string]string{"T": token}, "sync.workers"},
		{"token in a duration", "sync:\n  interval: ${T}\ntwilio:\n  auth_token: ${T}\n", map[string]string{"T": token}, "sync.interval"},
		{"env secret in a duration, no auth_token", "server:\n  shutdown_timeout: ${TWILIO_AUTH_TOKEN}\n", map[string]string{"TWILIO_AUTH_TOKEN": token}, "server.shutdown_timeout"},
		{"env secret in listen, no auth_token", "server:\n  listen: ${TWILIO_AUTH_TOKEN}\n", map[string]string{"TWILIO_AUTH_TOKEN": token}, "server.listen"},
		{"env secret in listen port", "server:\n  listen: 'x:${TWILIO_AUTH_TOKEN}'\n", map[string]string{"TWILIO_AUTH_TOKEN": token}, "server.listen"},
		{"dsn password in log.format", "store: {driver: postgres, dsn: '" + dsn + "'}\nlog: {format: " + dbPassword + "}\n", nil, "log.format"},
		{"dsn in a listen address", "store: {driver: postgres, dsn: '" + dsn + "'}\nserver: {listen: '" + dsn + "'}\n", nil, "server.listen"},
		{"password in api_base_url", "twilio: {api_base_url: 'https://u:" + dbPassword + "@mock.example.com'}\n", nil, "twilio.api_base_url"},
		{"password in an unparsable public_url", "server: {public_url: 'https://u:" + dbPassword + "@mock.example.com:bad'}\n", nil, "server.public_url"},
		{"password in a metadata_url", "saml: {idps: [{name: a, metadata_url: 'ftp://u:" + dbPassword + "@idp.example.com/md'}]}\n", nil, "saml.idps[0].metadata_url"},
		{"password in an after_login_url", "saml: {after_login_url: 'http://u:" + dbPassword + "@flex.example.com/'}\n", nil, "saml.after_login_url"},
		{"token in an IdP name", "saml: {idps: [{name: '${T}', metadata_file: x}]}\ntwilio:\n  auth_token: ${T}\n", map[string]string{"T": token}, "saml.idps[0].name"},
		{"token in a flag", "saml: {sp: {sign_authn_requests: '${T}'}}\ntwilio:\n  auth_token: ${T}\n", map[string]string{"T": token}, "saml.sp.sign_authn_requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), env(tt.env))
			problemAt(t, problemsOf(t, err), tt.path)
			for _, secret := range []string{token, dbPassword} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret:\n%v", err)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()

	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  level: loud\n  extra: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if got := paths(problemsOf(t, err)); !reflect.DeepEqual(got, []string{"log.level", "log.extra"}) {
		t.Errorf("problems at %v", got)
	}
	if !strings.HasPrefix(err.Error(), "config "+bad+": invalid configuration (2 problems):\n") {
		t.Errorf("Load error does not name the file first:\n%v", err)
	}

	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("sync:\n  workers: ${FLEXBRIDGE_TEST_WORKERS:-3}\nlog:\n  level: ${FLEXBRIDGE_TEST_LEVEL}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLEXBRIDGE_TEST_LEVEL", "debug")
	c, err := Load(good)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Sync.Workers != 3 || c.Log.Level != "debug" {
		t.Errorf("workers %d, level %q", c.Sync.Workers, c.Log.Level)
	}
}

func TestRedacted(t *testing.T) {
	c := Default()
	setCreds(c)
	c.Store.Driver, c.Store.DSN = DriverPostgres, "postgres://fb:pw123@db/fb?sslmode=disable"
	r := c.Redacted()
	if r.Twilio.AuthToken != "REDACTED" || strings.Contains(r.Store.DSN, "pw123") || !strings.Contains(r.Store.DSN, "db/fb") {
		t.Errorf("Redacted: token %q, dsn %q", r.Twilio.AuthToken, r.Store.DSN)
	}
	if c.Twilio.AuthToken != testAuthToken {
		t.Error("Redacted modified the original")
	}
	c.Store.DSN = "postgres://db/fb?password=pw123&sslmode=disable"
	if r := c.Redacted(); strings.Contains(r.Store.DSN, "pw123") {
		t.Errorf("query password not redacted: %q", r.Store.DSN)
	}
	c.Store.DSN = "host=db user=fb password=pw123"
	if r := c.Redacted(); r.Store.DSN != "REDACTED" {
		t.Errorf("key=value DSN = %q", r.Store.DSN)
	}
	if r := Default().Redacted(); !reflect.DeepEqual(r, *Default()) {
		t.Errorf("Redacted changed a config without secrets: %+v", r)
	}
}

func FuzzParse(f *testing.F) {
	for _, file := range []string{"flexbridge.yaml", "flexbridge.postgres.yaml"} {
		if data, err := os.ReadFile(filepath.Join("..", "..", "configs", file)); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("server: {listen: ':0'}\nsync: {workers: ${W:-2}}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("log: {level: $${X}, format: ${X:-${Y}}}\n"))
	f.Add([]byte("saml:\n  idps:\n    - name: a\n      metadata_url: ${PUBLIC_URL}/md\n      attributes: {emial: x}\n    - &i {name: a, metadata_file: f}\n    - *i\n    -\n"))
	const token = "fuzzsecrettoken"
	lookup := env(map[string]string{
		"TWILIO_ACCOUNT_SID": testAccountSID, "TWILIO_AUTH_TOKEN": token, "TWILIO_WORKSPACE_SID": testWorkspaceSID,
		"DATABASE_URL": "postgres://db/fb", "PUBLIC_URL": "https://x.example.com",
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, lookup)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error is not a non-empty *Error: %v", err)
			}
			if strings.Contains(err.Error(), token) && !strings.Contains(string(data), token) {
				t.Fatalf("error shows the auth token: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
	})
}

func TestProblemOrder(t *testing.T) {
	doc := `twilio:
  account_sid: ` + testAccountSID + `
  timeout: 0s
bad line without colon
`
	_, err := Parse([]byte(doc), nil)
	if got := paths(problemsOf(t, err)); !reflect.DeepEqual(got, []string{""}) {
		t.Errorf("syntax error: problems at %v, want only the file", got)
	}

	doc = `twilio:
  account_sid: ` + testAccountSID + `
  timeout: 0s
nope: 1
`
	_, err = Parse([]byte(doc), nil)
	want := []string{"twilio.timeout", "nope", "twilio.auth_token", "twilio.workspace_sid"}
	if got := paths(problemsOf(t, err)); !reflect.DeepEqual(got, want) {
		t.Errorf("problems at %v, want %v (by line, absent keys last)", got, want)
	}
}

// Values taken from the environment are named by variable, never shown:
// the environment is where secrets live.
func TestEnvValuesNotShown(t *testing.T) {
	doc := `log:
  level: ${LEVEL}
  format: ${FORMAT:-yaml}
sync:
  workers: ${WORKERS}
server:
  listen: ${HOST}:${PORT}
`
	_, err := Parse([]byte(doc), env(map[string]string{"LEVEL": "loud", "WORKERS": "lots", "HOST": "h", "PORT": "p0rt"}))
	ps := problemsOf(t, err)
	for _, tt := range []struct{ path, want string }{
		{"log.level", "got the value of ${LEVEL} (not shown) (line 2)"},
		{"log.format", `got "yaml" (line 3)`}, // a default written in the file is shown
		{"sync.workers", "got the value of ${WORKERS} (not shown) (line 5)"},
		{"server.listen", "port must be a number from 0 to 65535, got the value of ${HOST}, ${PORT} (not shown) (line 7)"},
	} {
		if p := problemAt(t, ps, tt.path); !strings.HasSuffix(p.Message, tt.want) {
			t.Errorf("%s: %q, want it to end %q", tt.path, p.Message, tt.want)
		}
	}
	for _, v := range []string{"loud", "lots", "p0rt"} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error shows the environment value %q:\n%v", v, err)
		}
	}
}

// The container image's config runs on the sandbox when no Twilio variables are set, and on
// the real workspace when they are.
func TestContainerConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "configs", "container.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, string(data), nil)
	if !c.Twilio.Sandbox() || c.Server.Listen != ":8080" || c.Server.PublicURL != "http://localhost:8080" {
		t.Errorf("without environment: sandbox=%v listen=%q public_url=%q", c.Twilio.Sandbox(), c.Server.Listen, c.Server.PublicURL)
	}
	c = mustParse(t, string(data), exampleEnv)
	if c.Twilio.Sandbox() || c.Twilio.AuthToken != testAuthToken {
		t.Errorf("with environment: %+v", c.Redacted().Twilio)
	}
}

func TestOverrideListen(t *testing.T) {
	c := Default()
	if err := c.OverrideListen("127.0.0.1:9999"); err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:9999" || c.Server.PublicURL != "http://127.0.0.1:9999" {
		t.Errorf("derived public_url did not follow: %+v", c.Server)
	}
	if c.SAML.SP.EntityID != "http://127.0.0.1:9999/saml/metadata" {
		t.Errorf("derived entity id did not follow: %q", c.SAML.SP.EntityID)
	}
	c = mustParse(t, "saml:\n  sp: {entity_id: 'urn:example:sp'}\n", nil)
	if err := c.OverrideListen(":9999"); err != nil {
		t.Fatal(err)
	}
	if c.Server.PublicURL != "http://localhost:9999" || c.SAML.SP.EntityID != "urn:example:sp" {
		t.Errorf("explicit entity id replaced: public_url %q, entity id %q", c.Server.PublicURL, c.SAML.SP.EntityID)
	}
	c = mustParse(t, "server:\n  public_url: https://bridge.example.com\n", nil)
	if err := c.OverrideListen(":8443"); err != nil {
		t.Fatal(err)
	}
	if c.Server.PublicURL != "https://bridge.example.com" || c.SAML.SP.EntityID != "https://bridge.example.com/saml/metadata" {
		t.Errorf("explicit public_url replaced: %q, entity id %q", c.Server.PublicURL, c.SAML.SP.EntityID)
	}
	err := Default().OverrideListen("no-port")
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "server.listen") {
		t.Errorf("bad listen: %v", err)
	}
}
