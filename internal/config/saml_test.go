package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestSAMLDerivedDefaults(t *testing.T) {
	tests := []struct {
		doc                           string
		wantEntity, wantKey, wantCert string
	}{
		{"", "http://127.0.0.1:8080/saml/metadata", "./data/saml-sp.key", "./data/saml-sp.crt"},
		{"server: {listen: ':9090'}", "http://localhost:9090/saml/metadata", "./data/saml-sp.key", "./data/saml-sp.crt"},
		{"server: {public_url: 'https://flex.example.com/bridge/'}", "https://flex.example.com/bridge/saml/metadata", "./data/saml-sp.key", "./data/saml-sp.crt"},
		{"store: {dsn: /var/lib/flexbridge/db.sqlite}", "http://127.0.0.1:8080/saml/metadata", "/var/lib/flexbridge/saml-sp.key", "/var/lib/flexbridge/saml-sp.crt"},
		{"store: {dsn: flexbridge.db}", "http://127.0.0.1:8080/saml/metadata", "saml-sp.key", "saml-sp.crt"},
		{"store: {dsn: /flexbridge.db}", "http://127.0.0.1:8080/saml/metadata", "/saml-sp.key", "/saml-sp.crt"},
		{"store: {driver: postgres, dsn: 'postgres://db/flexbridge'}", "http://127.0.0.1:8080/saml/metadata", "./data/saml-sp.key", "./data/saml-sp.crt"},
		{"saml: {sp: {key_file: /etc/fb/sp.key}}", "http://127.0.0.1:8080/saml/metadata", "/etc/fb/sp.key", "/etc/fb/saml-sp.crt"},
		{"saml: {sp: {key_file: sp.key}}", "http://127.0.0.1:8080/saml/metadata", "sp.key", "saml-sp.crt"},
		{"saml: {sp: {cert_file: /etc/fb/sp.pem}}", "http://127.0.0.1:8080/saml/metadata", "./data/saml-sp.key", "/etc/fb/sp.pem"},
		{"saml: {sp: {entity_id: 'urn:flex:sp', key_file: '', cert_file: ~}}", "urn:flex:sp", "./data/saml-sp.key", "./data/saml-sp.crt"},
	}
	for _, tt := range tests {
		sp := mustParse(t, tt.doc, nil).SAML.SP
		if sp.EntityID != tt.wantEntity || sp.KeyFile != tt.wantKey || sp.CertFile != tt.wantCert {
			t.Errorf("Parse(%q): entity id %q, key %q, cert %q; want %q, %q, %q",
				tt.doc, sp.EntityID, sp.KeyFile, sp.CertFile, tt.wantEntity, tt.wantKey, tt.wantCert)
		}
	}

	// An invalid public_url is reported once; no entity id is derived from it.
	_, err := Parse([]byte("server: {public_url: '/relative'}\n"), nil)
	if got := paths(problemsOf(t, err)); !reflect.DeepEqual(got, []string{"server.public_url"}) {
		t.Errorf("problems at %v, want only server.public_url", got)
	}
}

// An unknown key inside a list item is reported with the item's index, its
// line and a suggestion, as anywhere else.
func TestSAMLUnknownKeyInItem(t *testing.T) {
	doc := `saml:
  idps:
    - name: okta
      metadata_file: okta.xml
    - name: entra
      metadata_file: entra.xml
      attributes:
        emial: mail
      email: mail
      metadataURL: https://idp.example.com/md
      colour: blue
`
	_, err := Parse([]byte(doc), nil)
	ps := problemsOf(t, err)
	tests := []struct{ path, want string }{
		{"saml.idps[1].attributes.emial", `unknown key; did you mean "email"? (line 8)`},
		{"saml.idps[1].email", `unknown key; did you mean "attributes.email"? (line 9)`},
		{"saml.idps[1].metadataURL", `unknown key; did you mean "metadata_url"? (line 10)`},
		{"saml.idps[1].colour", "unknown key; known keys here: name, metadata_file, metadata_url, entity_id, allow_idp_initiated, user_name, groups_fallback, attributes (line 11)"},
	}
	var want []string
	for _, tt := range tests {
		want = append(want, tt.path)
		if p := problemAt(t, ps, tt.path); p.Message != tt.want {
			t.Errorf("%s: %q, want %q", tt.path, p.Message, tt.want)
		}
	}
	if got := paths(ps); !reflect.DeepEqual(got, want) {
		t.Errorf("problem paths = %v\nwant %v", got, want)
	}

	// A key of an item written at the section level points into the list.
	_, err = Parse([]byte("saml:\n  metadata_url: https://idp.example.com/md\n"), nil)
	if p := problemAt(t, problemsOf(t, err), "saml.metadata_url"); !strings.Contains(p.Message, `did you mean "idps[].metadata_url"?`) {
		t.Errorf("saml.metadata_url: %q", p.Message)
	}
}

// Every problem in the saml section is reported at once, in file order,
// with its path and line.
func TestSAMLManyProblemsAtOnce(t *testing.T) {
	doc := `saml:
  sp:
    entity_id: flexbridge
    sign_authn_requests: yes
  login_wait: 1m
  after_login_url: //evil.example.com/
  idps:
    - name: okta
      metadata_file: okta.xml
      metadata_url: https://okta.example.com/md
    - name: okta
      metadata_url: http://idp.example.com/md
      user_name: upn
    - name: Entra_Prod
      user_name: email
      groups_fallback: Deny
      attributes: {groups: groups}
    - metadata_file: " "
      entity_id: not a uri
      groups_fallback: agents
`
	_, err := Parse([]byte(doc), nil)
	ps := problemsOf(t, err)
	want := []struct{ path, message string }{
		{"saml.sp.entity_id", `must be an absolute URI, like "https://flexbridge.example.com/saml/metadata" or "urn:example:flexbridge", got "flexbridge" (line 3)`},
		{"saml.sp.sign_authn_requests", `must be true or false, got "yes" (line 4)`},
		{"saml.login_wait", "must be at most 30s (a browser is waiting), got 1m0s (line 5)"},
		{"saml.after_login_url", `must be a local path starting with a single "/" ("//" starts another site's address), or an absolute https URL (line 6)`},
		{"saml.idps[0]", "sets both metadata_file and metadata_url; set exactly one (line 8)"},
		{"saml.idps[1].name", `"okta" is already the name of saml.idps[0]; names must be unique (line 11)`},
		{"saml.idps[1].metadata_url", `must be an https URL like "https://idp.example.com/metadata" (http only on a loopback address: 127.0.0.0/8, ::1, localhost) (line 12)`},
		{"saml.idps[1].user_name", `must be "" (automatic: the NameID, or the email when the NameID is transient), nameid or email, got "upn" (line 13)`},
		{"saml.idps[2].name", `must be 1 to 32 of a-z, 0-9 and "-", like "okta" or "entra-prod", got "Entra_Prod" (line 14)`},
		{"saml.idps[2]", "needs the IdP's metadata: set metadata_file or metadata_url (line 14)"},
		{"saml.idps[2].user_name", "is email, which needs attributes.email: the attribute holding the email (line 15)"},
		{"saml.idps[2].groups_fallback", `must be "deny" in lower case to refuse the login; a group cannot be named like it (line 16)`},
		{"saml.idps[3].name", `is required: 1 to 32 of a-z, 0-9 and "-", like "okta" or "entra-prod" (line 18)`},
		{"saml.idps[3].metadata_file", "is blank (line 18)"},
		{"saml.idps[3].entity_id", "must not contain spaces or control characters (line 19)"},
		{"saml.idps[3].groups_fallback", "only applies when attributes.groups is set (it stands in for a missing groups attribute); set attributes.groups, or remove groups_fallback (line 20)"},
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i := range min(len(ps), len(want)) {
		if ps[i].Path != want[i].path || ps[i].Message != want[i].message {
			t.Errorf("problem %d = %s: %s\nwant %s: %s", i, ps[i].Path, ps[i].Message, want[i].path, want[i].message)
		}
	}
}

func TestSAMLEnvInItem(t *testing.T) {
	doc := `saml:
  sp:
    sign_authn_requests: ${SIGN:-false}
  idps:
    - name: ${IDP_NAME}
      metadata_url: ${OKTA_URL}
      allow_idp_initiated: ${IDP_INITIATED}
      attributes:
        groups: ${GROUPS_ATTR:-groups}
        roles: $${literal}
`
	c := mustParse(t, doc, map[string]string{
		"IDP_NAME": "okta", "OKTA_URL": "https://okta.example.com/app/1/sso/saml/metadata", "IDP_INITIATED": "true", "SIGN": "TRUE",
	})
	want := []SAMLIdP{{
		Name: "okta", MetadataURL: "https://okta.example.com/app/1/sso/saml/metadata", AllowIdPInitiated: true,
		Attributes: SAMLAttributes{Groups: "groups", Roles: "${literal}"},
	}}
	if !reflect.DeepEqual(c.SAML.IdPs, want) || !c.SAML.SP.SignAuthnRequests {
		t.Errorf("idps = %+v, sign %v\nwant %+v, true", c.SAML.IdPs, c.SAML.SP.SignAuthnRequests, want)
	}

	// Unset variables and bad values from the environment are reported at
	// the item's path, and the values are not shown.
	_, err := Parse([]byte(doc), env(map[string]string{"IDP_NAME": "Not Valid", "OKTA_URL": "http://metadata.corp.internal/md"}))
	ps := problemsOf(t, err)
	for _, tt := range []struct{ path, want string }{
		{"saml.idps[0].name", "got the value of ${IDP_NAME} (not shown) (line 5)"},
		{"saml.idps[0].metadata_url", "http only on a loopback address"},
		{"saml.idps[0].allow_idp_initiated", "environment variable IDP_INITIATED is not set; set it, or write ${IDP_INITIATED:-default} (line 7)"},
	} {
		if p := problemAt(t, ps, tt.path); !strings.Contains(p.Message, tt.want) {
			t.Errorf("%s: %q does not contain %q", tt.path, p.Message, tt.want)
		}
	}
	if len(ps) != 3 {
		t.Errorf("want 3 problems, got %v", ps)
	}
	if strings.Contains(err.Error(), "Not Valid") || strings.Contains(err.Error(), "corp.internal") {
		t.Errorf("error shows an environment value:\n%v", err)
	}

	// A metadata source that failed to expand is not also reported missing.
	_, err = Parse([]byte("saml:\n  idps:\n    - {name: okta, metadata_url: '${UNSET}'}\n"), nil)
	if got := paths(problemsOf(t, err)); !reflect.DeepEqual(got, []string{"saml.idps[0].metadata_url"}) {
		t.Errorf("problems at %v, want only the unset metadata_url", got)
	}
}

func TestListStructureProblems(t *testing.T) {
	tests := []struct {
		name, doc string
		path      string
		want      string // "" means no problem at all
	}{
		{"list is a mapping", "saml:\n  idps:\n    okta: {metadata_file: x}\n", "saml.idps",
			`must be a list of mappings (items starting with "- ") with keys name, metadata_file, metadata_url, entity_id, allow_idp_initiated, user_name, groups_fallback, attributes, got a mapping (line 3)`},
		{"list is a string", "saml:\n  idps: okta\n", "saml.idps", "got a single value (line 2)"},
		{"item is a string", "saml:\n  idps:\n    - okta\n", "saml.idps[0]", "must be a mapping with keys name, metadata_file, metadata_url, entity_id, allow_idp_initiated, user_name, groups_fallback, attributes, got a single value (line 3)"},
		{"item is a list", "saml:\n  idps:\n    - [okta]\n", "saml.idps[0]", "got a list"},
		{"empty item", "saml:\n  idps:\n    - {name: a, metadata_file: x}\n    -\n", "saml.idps[1]", "is an empty list item; remove it or fill it in (line 4)"},
		{"duplicate key in item", "saml:\n  idps:\n    - name: a\n      metadata_file: x\n      name: b\n", "saml.idps[0].name", "duplicate key (first set on line 3) (line 5)"},
		{"duplicate key in nested mapping", "saml:\n  idps:\n    - name: a\n      metadata_file: x\n      attributes: {email: a, email: b}\n", "saml.idps[0].attributes.email", "duplicate key"},
		{"leaf in item is a list", "saml:\n  idps:\n    - name: [a, b]\n      metadata_file: x\n", "saml.idps[0].name", "must be a string, got a list (line 3)"},
		{"bool is a number", "saml:\n  idps:\n    - {name: a, metadata_file: x, allow_idp_initiated: 1}\n", "saml.idps[0].allow_idp_initiated", `must be true or false, got "1"`},
		{"bool is on", "saml:\n  sp: {sign_authn_requests: on}\n", "saml.sp.sign_authn_requests", `must be true or false, got "on"`},
		{"bool is a mapping", "saml:\n  sp: {sign_authn_requests: {}}\n", "saml.sp.sign_authn_requests", "must be true or false, got a mapping"},
		{"merge key in item", "x: &b {name: a}\nsaml:\n  idps:\n    - <<: *b\n      metadata_file: x\n", "saml.idps[0].<<", "merge keys are not supported"},
		{"null in item keeps zero", "saml:\n  idps:\n    - {name: a, metadata_file: x, user_name: ~, attributes: ~}\n", "", ""},
		{"null list keeps default", "saml:\n  idps: ~\n", "", ""},
		{"quoted bool", "saml:\n  sp: {sign_authn_requests: 'false'}\n", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
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
			// Nothing is reported below an item that could not be decoded.
			for _, q := range ps {
				if q.Path != tt.path && strings.HasPrefix(q.Path, tt.path) {
					t.Errorf("also reported below it: %v", q)
				}
			}
		})
	}

	// An alias to an item decodes like the item; the copy is then a
	// duplicate name.
	doc := "saml:\n  idps:\n    - &okta {name: okta, metadata_file: okta.xml}\n    - *okta\n"
	_, err := Parse([]byte(doc), nil)
	if p := problemAt(t, problemsOf(t, err), "saml.idps[1].name"); !strings.Contains(p.Message, "already the name of saml.idps[0]") {
		t.Errorf("aliased item: %q", p.Message)
	}

	// A list given in the file replaces the default; an empty one is nil.
	c := mustParse(t, "saml:\n  idps: []\n", nil)
	if c.SAML.IdPs != nil {
		t.Errorf("empty list decoded to %#v, want nil", c.SAML.IdPs)
	}
}

// The decoder handles lists of scalars as well (no Config field is one yet).
func TestListOfStrings(t *testing.T) {
	type item struct {
		Name  string   `yaml:"name"`
		Hosts []string `yaml:"hosts"`
	}
	type doc struct {
		Names []string        `yaml:"names"`
		Waits []time.Duration `yaml:"waits"`
		Items []item          `yaml:"items"`
	}
	s := schemaOf(reflect.TypeOf(doc{}))
	decode := func(src string, lookup map[string]string) (doc, []located) {
		p := &parser{lookupEnv: env(lookup), lines: map[string]int{}, failed: map[string]bool{}, fromEnv: map[string]string{}}
		d := doc{Names: []string{"default"}}
		if root := p.document([]byte(src)); root != nil {
			p.decode(root, reflect.ValueOf(&d).Elem(), "", s)
		}
		return d, p.problems
	}

	d, problems := decode(`names: [a, "${B}", "${C:-c}"]
waits: [1s, 2m]
items:
  - name: x
    hosts: [h1, h2]
  - name: y
`, map[string]string{"B": "b"})
	want := doc{
		Names: []string{"a", "b", "c"},
		Waits: []time.Duration{time.Second, 2 * time.Minute},
		Items: []item{{Name: "x", Hosts: []string{"h1", "h2"}}, {Name: "y"}},
	}
	if len(problems) != 0 || !reflect.DeepEqual(d, want) {
		t.Errorf("got %+v, problems %v\nwant %+v", d, problems, want)
	}

	if d, _ := decode("names: ~\n", nil); !reflect.DeepEqual(d.Names, []string{"default"}) {
		t.Errorf("null list replaced the default: %v", d.Names)
	}
	if d, _ := decode("names: []\n", nil); d.Names != nil {
		t.Errorf("empty list = %#v, want nil", d.Names)
	}

	_, problems = decode(`names: a
waits: [1s, soon, 10]
items:
  - name: x
    hosts: [h1, {h: 2}, ~, "${UNSET}"]
    host: h
`, nil)
	var got []string
	for _, l := range problems {
		got = append(got, l.Problem.String())
	}
	wantProblems := []string{
		"names: must be a list of strings, got a single value (line 1)",
		`waits[1]: must be a duration like "20s" or "5m", got "soon" (line 2)`,
		`waits[2]: must be a duration like "20s" or "5m": add a unit, got "10" (line 2)`,
		"items[0].hosts[1]: must be a string, got a mapping (line 5)",
		"items[0].hosts[2]: is an empty list item; remove it or fill it in (line 5)",
		"items[0].hosts[3]: environment variable UNSET is not set; set it, or write ${UNSET:-default} (line 5)",
		`items[0].host: unknown key; did you mean "hosts"? (line 6)`,
	}
	if !reflect.DeepEqual(got, wantProblems) {
		t.Errorf("problems:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantProblems, "\n"))
	}
	if d := s.fields["waits"].node.describe(); d != `a list whose items are each a duration like "20s" or "5m"` {
		t.Errorf("describe = %q", d)
	}
}

func TestSAMLValidateValues(t *testing.T) {
	idp := func(mod func(*SAMLIdP)) func(*Config) {
		return func(c *Config) {
			i := SAMLIdP{Name: "okta", MetadataFile: "okta.xml"}
			mod(&i)
			c.SAML.IdPs = append(c.SAML.IdPs, i)
		}
	}
	tests := []struct {
		name   string
		modify func(*Config)
		path   string // "" means valid
		want   string
	}{
		{"one idp", idp(func(*SAMLIdP) {}), "", ""},
		{"name with digits and dash", idp(func(i *SAMLIdP) { i.Name = "entra-2" }), "", ""},
		{"name 32 characters", idp(func(i *SAMLIdP) { i.Name = strings.Repeat("a", 32) }), "", ""},
		{"name 33 characters", idp(func(i *SAMLIdP) { i.Name = strings.Repeat("a", 33) }), "saml.idps[0].name", "must be 1 to 32"},
		{"name with dot", idp(func(i *SAMLIdP) { i.Name = "okta.prod" }), "saml.idps[0].name", `got "okta.prod"`},
		{"metadata url https", idp(func(i *SAMLIdP) {
			i.MetadataFile, i.MetadataURL = "", "https://login.microsoftonline.com/t/federationmetadata/2007-06/federationmetadata.xml?appid=1"
		}), "", ""},
		{"metadata url loopback v4", idp(func(i *SAMLIdP) { i.MetadataFile, i.MetadataURL = "", "http://127.0.0.2:8080/md" }), "", ""},
		{"metadata url loopback v6", idp(func(i *SAMLIdP) { i.MetadataFile, i.MetadataURL = "", "http://[::1]:8080/md" }), "", ""},
		{"metadata url localhost", idp(func(i *SAMLIdP) { i.MetadataFile, i.MetadataURL = "", "http://localhost/md" }), "", ""},
		{"metadata url http remote", idp(func(i *SAMLIdP) { i.MetadataFile, i.MetadataURL = "", "http://10.0.0.1/md" }), "saml.idps[0].metadata_url", "http only on a loopback address"},
		{"metadata url localhost suffix", idp(func(i *SAMLIdP) { i.MetadataFile, i.MetadataURL = "", "http://localhost.example.com/md" }), "saml.idps[0].metadata_url", "http only on a loopback address"},
		{"metadata url relative", idp(func(i *SAMLIdP) { i.MetadataFile, i.MetadataURL = "", "idp.example.com/md" }), "saml.idps[0].metadata_url", "must be an https URL"},
		{"metadata url no host", idp(func(i *SAMLIdP) { i.MetadataFile, i.MetadataURL = "", "https:///md" }), "saml.idps[0].metadata_url", "must have a host"},
		{"metadata url unparsable", idp(func(i *SAMLIdP) { i.MetadataFile, i.MetadataURL = "", "https://idp.example.com:port/" }), "saml.idps[0].metadata_url", "is not a valid URL"},
		{"no metadata", idp(func(i *SAMLIdP) { i.MetadataFile = "" }), "saml.idps[0]", "needs the IdP's metadata"},
		{"idp entity id", idp(func(i *SAMLIdP) { i.EntityID = "http://www.okta.com/exk1" }), "", ""},
		{"idp entity id without host", idp(func(i *SAMLIdP) { i.EntityID = "https:/x" }), "saml.idps[0].entity_id", "absolute URI"},
		{"user name nameid", idp(func(i *SAMLIdP) { i.UserName = "nameid" }), "", ""},
		{"user name email", idp(func(i *SAMLIdP) { i.UserName, i.Attributes.Email = "email", "mail" }), "", ""},
		{"user name uppercase", idp(func(i *SAMLIdP) { i.UserName = "NameID" }), "saml.idps[0].user_name", `got "NameID"`},
		{"groups fallback deny", idp(func(i *SAMLIdP) { i.GroupsFallback, i.Attributes.Groups = "deny", "groups" }), "", ""},
		{"groups fallback group", idp(func(i *SAMLIdP) { i.GroupsFallback, i.Attributes.Groups = "Flex Agents", "groups" }), "", ""},
		{"groups fallback padded", idp(func(i *SAMLIdP) { i.GroupsFallback, i.Attributes.Groups = "agents ", "groups" }), "saml.idps[0].groups_fallback", "without leading or trailing spaces"},
		{"groups fallback DENY", idp(func(i *SAMLIdP) { i.GroupsFallback, i.Attributes.Groups = "DENY", "groups" }), "saml.idps[0].groups_fallback", "lower case"},
		{"enabled without key file", func(c *Config) { idp(func(*SAMLIdP) {})(c); c.SAML.SP.KeyFile = "" }, "saml.sp.key_file", "is required when saml.idps is set"},
		{"disabled without cert file", func(c *Config) { c.SAML.SP.CertFile = "" }, "", ""},
		{"entity id urn", func(c *Config) { c.SAML.SP.EntityID = "urn:flex:JQ0123" }, "", ""},
		{"entity id empty", func(c *Config) { c.SAML.SP.EntityID = "" }, "", ""},
		{"entity id too long", func(c *Config) { c.SAML.SP.EntityID = "urn:x:" + strings.Repeat("a", 1024) }, "saml.sp.entity_id", "at most 1024"},
		{"login wait 30s", func(c *Config) { c.SAML.LoginWait = 30 * time.Second }, "", ""},
		{"login wait 0", func(c *Config) { c.SAML.LoginWait = 0 }, "saml.login_wait", `must be a positive duration of at most 30s, like "5s", got 0s`},
		{"after login local path", func(c *Config) { c.SAML.AfterLoginURL = "/welcome?from=saml#top" }, "", ""},
		{"after login root", func(c *Config) { c.SAML.AfterLoginURL = "/" }, "", ""},
		{"after login https", func(c *Config) { c.SAML.AfterLoginURL = "https://flex.twilio.com/agent-desktop" }, "", ""},
		{"after login http", func(c *Config) { c.SAML.AfterLoginURL = "http://flex.example.com/" }, "saml.after_login_url", "must be a local path"},
		{"after login relative", func(c *Config) { c.SAML.AfterLoginURL = "welcome" }, "saml.after_login_url", "must be a local path"},
		{"after login scheme-relative", func(c *Config) { c.SAML.AfterLoginURL = "//evil.example.com" }, "saml.after_login_url", `single "/"`},
		{"after login backslash", func(c *Config) { c.SAML.AfterLoginURL = `/\evil.example.com` }, "saml.after_login_url", "backslashes"},
		{"after login newline", func(c *Config) { c.SAML.AfterLoginURL = "/a\nb" }, "saml.after_login_url", "control characters"},
		{"after login javascript", func(c *Config) { c.SAML.AfterLoginURL = "javascript:alert(1)" }, "saml.after_login_url", "must be a local path"},
		{"after login https without host", func(c *Config) { c.SAML.AfterLoginURL = "https:/x" }, "saml.after_login_url", "must have a host"},
		{"after login user info", func(c *Config) { c.SAML.AfterLoginURL = "https://a@flex.example.com/" }, "saml.after_login_url", "user info"},
		{"after login empty", func(c *Config) { c.SAML.AfterLoginURL = "" }, "saml.after_login_url", "is required"},
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

// The IdP entry commented out in the example is valid once uncommented.
func TestExampleIdPEntry(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "configs", "flexbridge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var comment string
	for i, k := range doc.Content[0].Content {
		if k.Value == "saml" {
			saml := doc.Content[0].Content[i+1]
			for j := 0; j+1 < len(saml.Content); j += 2 {
				if saml.Content[j].Value == "idps" {
					comment = saml.Content[j].HeadComment
				}
			}
		}
	}
	var entry []string
	indent := -1
	for _, line := range strings.Split(comment, "\n") {
		line = strings.TrimPrefix(line, "#")
		if indent < 0 {
			if i := strings.Index(line, "- name:"); i >= 0 {
				indent = i
			} else {
				continue
			}
		}
		if len(line) >= indent {
			line = line[indent:]
		}
		entry = append(entry, "    "+line)
	}
	if len(entry) == 0 {
		t.Fatalf("no example entry in the comment on saml.idps:\n%s", comment)
	}
	c := mustParse(t, "saml:\n  idps:\n"+strings.Join(entry, "\n")+"\n", nil)
	if len(c.SAML.IdPs) != 1 || c.SAML.IdPs[0].Name != "okta" || c.SAML.IdPs[0].MetadataURL == "" || c.SAML.IdPs[0].Attributes.Email == "" {
		t.Errorf("example entry decoded to %+v", c.SAML.IdPs)
	}
}

func TestSAMLBrokerProblems(t *testing.T) {
	const idps = `  idps:
    - { name: okta, metadata_file: okta.xml }
    - { name: entra, metadata_file: entra.xml }
`
	good := "saml:\n" + idps + `  broker:
    idp: okta
    flex:
      - name: flex
        entity_id: urn:flex:JQ0123456789abcdef0123456789abcdef
        acs_urls: ['https://login.flex.us1.twilio.com/login/callback?connection=JQ0123456789abcdef0123456789abcdef']
    relay_targets: [https://flex.twilio.com/agent-desktop]
`
	c := mustParse(t, good, nil)
	if !c.SAML.Broker.Enabled() || c.SAML.Broker.Flex[0].ACSURLs[0] == "" || c.SAML.Broker.RelayTargets[0] != "https://flex.twilio.com/agent-desktop" {
		t.Fatalf("broker = %+v", c.SAML.Broker)
	}
	bad := "saml:\n" + idps + `  broker:
    idp: onelogin
    entity_id: "not a uri"
    flex:
      - name: Flex!
        acs_urls: [http://flex.example.com/acs]
      - name: flex2
        entity_id: urn:flex:JQ1
    relay_targets: [ftp://x]
`
	_, err := Parse([]byte(bad), nil)
	got := paths(problemsOf(t, err))
	want := []string{
		"saml.broker.entity_id", "saml.broker.idp",
		"saml.broker.flex[0].name", "saml.broker.flex[0].entity_id", "saml.broker.flex[0].acs_urls[0]",
		"saml.broker.flex[1].acs_urls", "saml.broker.relay_targets[0]",
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("no problem reported at %s (got %v)", w, got)
		}
	}
	// Several IdPs and no choice; or no IdP at all.
	_, err = Parse([]byte("saml:\n"+idps+"  broker:\n    flex: [{name: flex, entity_id: 'urn:flex:JQ1', acs_urls: ['https://a.example/acs']}]\n"), nil)
	if got := paths(problemsOf(t, err)); !slices.Contains(got, "saml.broker.idp") {
		t.Errorf("several IdPs without broker.idp: problems %v", got)
	}
	_, err = Parse([]byte("saml:\n  broker:\n    flex: [{name: flex, entity_id: 'urn:flex:JQ1', acs_urls: ['https://a.example/acs']}]\n"), nil)
	if got := paths(problemsOf(t, err)); !slices.Contains(got, "saml.broker.flex") {
		t.Errorf("broker without IdPs: problems %v", got)
	}
}
