package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path is the dotted key path, like "twilio.account_sid"; empty for a
	// problem with the file as a whole (a YAML syntax error).
	Path string
	// Message says what is wrong and, when known, on which line. It never
	// contains a secret value.
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Error is returned by [Load], [Parse] and [Config.Validate]: every problem
// found. From Parse and Load they are in file order (problems with keys
// absent from the file last); from Validate, in key order.
type Error struct {
	Problems []Problem
}

// Error lists every problem on its own line.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration")
	switch n := len(e.Problems); n {
	case 0:
		return b.String()
	case 1:
		b.WriteString(" (1 problem):")
	default:
		fmt.Fprintf(&b, " (%d problems):", n)
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

var (
	accountSIDPattern   = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	workspaceSIDPattern = regexp.MustCompile(`^WS[0-9a-fA-F]{32}$`)
	// bareEnvReference is "$NAME": an environment reference missing its
	// braces, which is not expanded.
	bareEnvReference = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*$`)
	hostnamePattern  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
	idpNamePattern   = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
)

var (
	logLevels    = []string{"debug", "info", "warn", "error"}
	logFormats   = []string{"json", "console"}
	storeDrivers = []string{DriverSQLite, DriverPostgres}
)

// Validate checks every setting and returns an [*Error] listing every
// problem, or nil. It does not apply defaults: a zero setting is reported.
func (c *Config) Validate() error {
	if ps := c.problems(nil, nil); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

// problems runs every check. Messages echo a value only through
// problemList.show, which hides values hidden reports (those Parse took from
// the environment); checks of secret settings never echo. Every message is
// scrubbed of the secret values at the end. failed (may be nil) reports the
// paths whose value Parse could not decode: a check that involves such a
// value as well as others is skipped (Parse drops the problems at those
// paths itself).
func (c *Config) problems(hidden func(path string) string, failed func(path string) bool) []Problem {
	ps := problemList{hidden: hidden, failed: failed}

	// server
	ps.check("server.listen", hostPortProblem(c.Server.Listen, ps.shower("server.listen")))
	ps.check("server.public_url", urlProblem(c.Server.PublicURL, true))
	ps.positiveDuration("server.shutdown_timeout", c.Server.ShutdownTimeout)
	if c.Server.MaxBodyBytes <= 0 {
		ps.add("server.max_body_bytes", "must be a positive number of bytes, got %d", c.Server.MaxBodyBytes)
	}

	// log
	ps.oneOf("log.level", c.Log.Level, logLevels)
	ps.oneOf("log.format", c.Log.Format, logFormats)

	// store
	if ps.oneOf("store.driver", c.Store.Driver, storeDrivers) && c.Store.DSN == "" {
		ps.add("store.dsn", "is required when store.driver is %s", c.Store.Driver)
	}

	// twilio
	creds := []struct{ key, value string }{
		{"account_sid", c.Twilio.AccountSID},
		{"auth_token", c.Twilio.AuthToken},
		{"workspace_sid", c.Twilio.WorkspaceSID},
	}
	set := 0
	for _, cr := range creds {
		if cr.value != "" {
			set++
		}
	}
	if set > 0 && set < len(creds) {
		for _, cr := range creds {
			if cr.value == "" {
				ps.add("twilio."+cr.key, "is required when any Twilio credential is set: "+
					"set account_sid, auth_token and workspace_sid for a real workspace, "+
					"or none of them for the embedded sandbox")
			}
		}
	}
	if v := c.Twilio.AccountSID; v != "" && !accountSIDPattern.MatchString(v) {
		ps.add("twilio.account_sid", "must be \"AC\" followed by 32 hex digits%s", sidHint(v))
	}
	if v := c.Twilio.AuthToken; v != "" {
		ps.check("twilio.auth_token", secretProblem(v))
	}
	if v := c.Twilio.WorkspaceSID; v != "" && !workspaceSIDPattern.MatchString(v) {
		ps.add("twilio.workspace_sid", "must be \"WS\" followed by 32 hex digits%s", sidHint(v))
	}
	if c.Twilio.APIBaseURL != "" {
		ps.check("twilio.api_base_url", urlProblem(c.Twilio.APIBaseURL, false))
	}
	ps.positiveDuration("twilio.timeout", c.Twilio.Timeout)

	// mapping
	if strings.TrimSpace(c.Mapping.File) == "" {
		ps.add("mapping.file", "is required")
	}

	// sync
	ps.positiveDuration("sync.interval", c.Sync.Interval)
	if c.Sync.Workers <= 0 {
		ps.add("sync.workers", "must be a positive number, got %d", c.Sync.Workers)
	}
	ps.positiveDuration("sync.max_backoff", c.Sync.MaxBackoff)
	ps.positiveDuration("sync.full_reconcile_interval", c.Sync.FullReconcileInterval)

	c.samlProblems(&ps)
	c.brokerProblems(&ps)

	return redact(ps.list, c.secrets())
}

// samlProblems checks the saml section.
func (c *Config) samlProblems(ps *problemList) {
	s := &c.SAML
	if v := s.SP.EntityID; v != "" {
		ps.check("saml.sp.entity_id", uriProblem(v, ps.shower("saml.sp.entity_id")))
	}
	if s.Enabled() {
		for _, f := range []struct{ key, value string }{{"key_file", s.SP.KeyFile}, {"cert_file", s.SP.CertFile}} {
			if strings.TrimSpace(f.value) == "" {
				ps.add("saml.sp."+f.key, "is required when saml.idps is set")
			}
		}
	}
	switch {
	case s.LoginWait <= 0:
		ps.add("saml.login_wait", "must be a positive duration of at most %s, like \"5s\", got %s", MaxSAMLLoginWait, s.LoginWait)
	case s.LoginWait > MaxSAMLLoginWait:
		ps.add("saml.login_wait", "must be at most %s (a browser is waiting), got %s", MaxSAMLLoginWait, s.LoginWait)
	}
	ps.check("saml.after_login_url", afterLoginURLProblem(s.AfterLoginURL))

	const nameRule = `1 to 32 of a-z, 0-9 and "-", like "okta" or "entra-prod"`
	first := map[string]int{}
	for i, idp := range s.IdPs {
		at := fmt.Sprintf("saml.idps[%d]", i)
		key := func(k string) string { return at + "." + k }

		switch name := idp.Name; {
		case name == "":
			ps.add(key("name"), "is required: %s", nameRule)
		case !idpNamePattern.MatchString(name):
			ps.add(key("name"), "must be %s, got %s", nameRule, ps.show(key("name"), name))
		default:
			if j, dup := first[name]; dup {
				ps.add(key("name"), "%s is already the name of saml.idps[%d]; names must be unique", ps.show(key("name"), name), j)
			} else {
				first[name] = i
			}
		}

		blank := false
		for _, f := range []struct{ key, value string }{{"metadata_file", idp.MetadataFile}, {"metadata_url", idp.MetadataURL}} {
			if f.value != "" && strings.TrimSpace(f.value) == "" {
				ps.add(key(f.key), "is blank")
				blank = true
			}
		}
		switch file, url := strings.TrimSpace(idp.MetadataFile) != "", strings.TrimSpace(idp.MetadataURL) != ""; {
		case blank || !ps.decoded(key("metadata_file"), key("metadata_url")):
		case file && url:
			ps.add(at, "sets both metadata_file and metadata_url; set exactly one")
		case !file && !url:
			ps.add(at, "needs the IdP's metadata: set metadata_file or metadata_url")
		}
		if idp.MetadataURL != "" && strings.TrimSpace(idp.MetadataURL) != "" {
			ps.check(key("metadata_url"), metadataURLProblem(idp.MetadataURL))
		}
		if idp.EntityID != "" {
			ps.check(key("entity_id"), uriProblem(idp.EntityID, ps.shower(key("entity_id"))))
		}

		switch idp.UserName {
		case SAMLUserNameAuto, SAMLUserNameNameID:
		case SAMLUserNameEmail:
			if idp.Attributes.Email == "" && ps.decoded(key("attributes.email")) {
				ps.add(key("user_name"), "is email, which needs attributes.email: the attribute holding the email")
			}
		default:
			ps.add(key("user_name"), `must be "" (automatic: the NameID, or the email when the NameID is transient), nameid or email, got %s`,
				ps.show(key("user_name"), idp.UserName))
		}

		if g := idp.GroupsFallback; g != "" {
			switch {
			case idp.Attributes.Groups == "":
				if ps.decoded(key("attributes.groups")) {
					ps.add(key("groups_fallback"), "only applies when attributes.groups is set (it stands in for a missing groups attribute); set attributes.groups, or remove groups_fallback")
				}
			case g == SAMLGroupsFallbackDeny:
			case strings.EqualFold(g, SAMLGroupsFallbackDeny):
				ps.add(key("groups_fallback"), `must be "deny" in lower case to refuse the login; a group cannot be named like it`)
			case strings.TrimSpace(g) != g || hasControl(g):
				ps.add(key("groups_fallback"), `must be "deny" or a group name without leading or trailing spaces or control characters`)
			}
		}
	}
}

// brokerProblems checks saml.broker.
func (c *Config) brokerProblems(ps *problemList) {
	b := &c.SAML.Broker
	if v := b.EntityID; v != "" {
		ps.check("saml.broker.entity_id", uriProblem(v, ps.shower("saml.broker.entity_id")))
	}
	if !b.Enabled() {
		if len(b.RelayTargets) > 0 || b.IdP != "" {
			ps.add("saml.broker.flex", "is empty, so broker mode is off; list the Flex accounts or remove the other saml.broker settings")
		}
		return
	}
	switch n := len(c.SAML.IdPs); {
	case n == 0:
		ps.add("saml.broker.flex", "needs an upstream IdP in saml.idps to authenticate people")
	case b.IdP == "" && n > 1:
		ps.add("saml.broker.idp", "is required when saml.idps lists several IdPs: name the one that authenticates people for Flex")
	case b.IdP != "" && !slices.ContainsFunc(c.SAML.IdPs, func(i SAMLIdP) bool { return i.Name == b.IdP }):
		ps.add("saml.broker.idp", "names no IdP of saml.idps: %s", ps.show("saml.broker.idp", b.IdP))
	}
	first := map[string]int{}
	for i, f := range b.Flex {
		at := fmt.Sprintf("saml.broker.flex[%d]", i)
		switch {
		case !idpNamePattern.MatchString(f.Name):
			ps.add(at+".name", `must be 1 to 32 of a-z, 0-9 and "-", like "flex" or "flex-eu", got %s`, ps.show(at+".name", f.Name))
		default:
			if j, dup := first[f.Name]; dup {
				ps.add(at+".name", "is already the name of saml.broker.flex[%d]; names must be unique", j)
			}
			first[f.Name] = i
		}
		if f.EntityID == "" {
			ps.add(at+".entity_id", `is required: Flex's SP entity id, like "urn:flex:JQ0123456789abcdef0123456789abcdef"`)
		} else {
			ps.check(at+".entity_id", uriProblem(f.EntityID, ps.shower(at+".entity_id")))
		}
		if len(f.ACSURLs) == 0 {
			ps.add(at+".acs_urls", `is required: Flex's ACS, like "https://login.flex.us1.twilio.com/login/callback?connection=JQ..."`)
		}
		for j, u := range f.ACSURLs {
			ps.check(fmt.Sprintf("%s.acs_urls[%d]", at, j), metadataURLProblem(u))
		}
	}
	for i, u := range b.RelayTargets {
		ps.check(fmt.Sprintf("saml.broker.relay_targets[%d]", i), metadataURLProblem(u))
	}
}

// uriProblem checks a SAML entity id: an absolute URI ("https://..." with a
// host, "urn:..."), at most 1024 characters (SAML's limit).
func uriProblem(s string, show func(string) string) string {
	const want = `must be an absolute URI, like "https://flexbridge.example.com/saml/metadata" or "urn:example:flexbridge"`
	if len(s) > 1024 {
		return "must be at most 1024 characters (SAML's limit for an entity id)"
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return "must not contain spaces or control characters"
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || ((u.Scheme == "http" || u.Scheme == "https") && u.Host == "") {
		return fmt.Sprintf("%s, got %s", want, show(s))
	}
	return ""
}

// metadataURLProblem checks an IdP metadata URL: https, or http on a
// loopback address (as package saml requires). The value is not echoed: a
// URL may carry credentials or tokens.
func metadataURLProblem(s string) string {
	const want = `must be an https URL like "https://idp.example.com/metadata" (http only on a loopback address: 127.0.0.0/8, ::1, localhost)`
	u, err := url.Parse(s)
	if err != nil {
		return "is not a valid URL; want an https URL like \"https://idp.example.com/metadata\""
	}
	switch host := u.Hostname(); {
	case u.Scheme != "https" && u.Scheme != "http":
		return want
	case host == "":
		return "must have a host, like \"https://idp.example.com/metadata\""
	case u.Scheme == "http":
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
			return want
		}
	}
	return ""
}

// maxLocalPath bounds a local path (as package saml bounds RelayState).
const maxLocalPath = 1024

// afterLoginURLProblem checks where a login lands: a local path ("/x", not
// "//x" or "/\\x", which browsers read as another site) or an absolute https
// URL.
func afterLoginURLProblem(s string) string {
	const want = `a local path like "/saml/welcome" or an absolute https URL like "https://flex.twilio.com/agent-desktop"`
	switch {
	case s == "":
		return "is required: " + want
	case len(s) > maxLocalPath:
		return fmt.Sprintf("must be at most %d characters", maxLocalPath)
	case !utf8.ValidString(s) || strings.ContainsRune(s, '\\') || hasControl(s):
		return "must not contain backslashes or control characters"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "is not a valid URL; want " + want
	}
	if strings.HasPrefix(s, "/") {
		if strings.HasPrefix(s, "//") {
			return `must be a local path starting with a single "/" ("//" starts another site's address), or an absolute https URL`
		}
		return ""
	}
	switch {
	case u.Scheme != "https":
		return "must be " + want
	case u.Host == "":
		return `must have a host, like "https://flex.twilio.com/agent-desktop"`
	case u.User != nil:
		return "must not contain user info"
	}
	return ""
}

// hasControl reports whether s holds a control character, or a line or
// paragraph separator.
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return true
		}
	}
	return false
}

// secrets are the values that must never appear in a message.
func (c *Config) secrets() []string {
	s := []string{c.Twilio.AuthToken}
	if c.Store.Driver == DriverSQLite {
		return s // a file path, and a short one would garble every message
	}
	s = append(s, c.Store.DSN)
	if u, err := url.Parse(c.Store.DSN); err == nil {
		if pw, ok := u.User.Password(); ok {
			s = append(s, pw)
		}
		s = append(s, u.Query().Get("password"))
	}
	return s
}

// redact replaces every non-empty secret in the messages. Checks never echo
// a secret field; this also covers a secret pasted into the wrong field.
func redact(ps []Problem, secrets []string) []Problem {
	for i := range ps {
		for _, s := range secrets {
			if s != "" {
				ps[i].Message = strings.ReplaceAll(ps[i].Message, s, "[redacted]")
			}
		}
	}
	return ps
}

type problemList struct {
	list []Problem
	// hidden describes the value at a path when it must not be shown,
	// like "the value of ${LEVEL}"; "" when it may be. May be nil.
	hidden func(path string) string
	// failed reports a path whose value could not be decoded. May be nil.
	failed func(path string) bool
}

// decoded reports whether the values at every path were decoded (or set
// directly), so that a check involving them means something.
func (ps *problemList) decoded(paths ...string) bool {
	if ps.failed == nil {
		return true
	}
	for _, p := range paths {
		if ps.failed(p) {
			return false
		}
	}
	return true
}

func (ps *problemList) add(path, format string, args ...any) {
	ps.list = append(ps.list, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// check adds msg unless it is empty.
func (ps *problemList) check(path, msg string) {
	if msg != "" {
		ps.list = append(ps.list, Problem{Path: path, Message: msg})
	}
}

// show renders the value (or part of the value) at path for a message.
func (ps *problemList) show(path, v string) string {
	if ps.hidden != nil {
		if d := ps.hidden(path); d != "" {
			return d + " (not shown)"
		}
	}
	return quote(v)
}

func (ps *problemList) shower(path string) func(string) string {
	return func(v string) string { return ps.show(path, v) }
}

func (ps *problemList) positiveDuration(path string, d time.Duration) {
	if d <= 0 {
		ps.add(path, "must be a positive duration like \"20s\" or \"5m\", got %s", d)
	}
}

// oneOf reports whether v is one of allowed, adding a problem if not.
func (ps *problemList) oneOf(path, v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	if v == "" {
		ps.add(path, "is required: one of %s", strings.Join(allowed, ", "))
	} else {
		ps.add(path, "must be one of %s, got %s", strings.Join(allowed, ", "), ps.show(path, v))
	}
	return false
}

// hostPortProblem checks a listen address: host:port with an optional host
// (":8080" listens on every interface) and a numeric port. Values are
// echoed through show.
func hostPortProblem(s string, show func(string) string) string {
	const want = `must be host:port, like "127.0.0.1:8080" or ":8080"`
	if s == "" {
		return "is required: " + want[len("must be "):]
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%s, got %s", want, show(s))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("port must be a number from 0 to 65535, got %s", show(port))
	}
	if host != "" && net.ParseIP(host) == nil && !hostnamePattern.MatchString(host) {
		return fmt.Sprintf("host must be an IP address or a host name, got %s", show(host))
	}
	return ""
}

// urlProblem checks an absolute http(s) URL without user info, query or
// fragment. The value is not echoed: a URL may carry credentials.
func urlProblem(s string, public bool) string {
	example := `"https://taskrouter.example.com"`
	if public {
		example = `"https://flexbridge.example.com"`
	}
	if s == "" {
		return "is required: an absolute http(s) URL like " + example
	}
	u, err := url.Parse(s)
	if err != nil {
		// Not the parse error: it quotes parts of the URL.
		return "is not a valid URL; want an absolute http(s) URL like " + example
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an absolute http(s) URL like " + example
	case u.Host == "":
		return "must have a host, like " + example
	case u.User != nil:
		return "must not contain user info (credentials belong in their own settings)"
	case u.RawQuery != "" || u.ForceQuery:
		return "must not have a query string"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "must not have a fragment"
	}
	return ""
}

// sidHint helps with common SID mistakes without echoing the value (a
// secret pasted into the wrong field would otherwise leak).
func sidHint(v string) string {
	switch {
	case strings.TrimSpace(v) != v:
		return " (it has leading or trailing whitespace)"
	case strings.HasPrefix(v, "AC") && len(v) == 34:
		return " (this looks like an account SID)"
	case strings.HasPrefix(v, "WS") && len(v) == 34:
		return " (this looks like a workspace SID)"
	case strings.HasPrefix(v, "SK"):
		return " (this looks like an API key SID)"
	case strings.Contains(v, "${"):
		return " (it contains an unexpanded environment reference)"
	}
	return ""
}

// secretProblem checks a secret's shape; the value is never shown.
func secretProblem(v string) string {
	if bareEnvReference.MatchString(v) {
		return "looks like an environment reference without braces; write ${NAME} (value not shown)"
	}
	for _, r := range v {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return "must not contain whitespace or control characters (value not shown)"
		}
	}
	return ""
}

// quote quotes a non-secret value for a message, shortened if long.
func quote(s string) string {
	const limit = 64
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit]) + "…"
	}
	return strconv.Quote(s)
}
