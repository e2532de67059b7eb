// Package config holds flexbridge's typed configuration: the YAML file
// format, ${ENV} expansion, defaults and validation.
//
// A configuration is read with [Load] (a file) or [Parse] (bytes plus an
// environment lookup). Both reject unknown keys, expand environment
// references, apply defaults and validate, and report every problem at once
// as an [*Error] whose [Problem]s name the key path ("twilio.account_sid").
// Error messages never contain secret values (the Twilio auth token, the
// store DSN).
package config

import (
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Config is the whole flexbridge configuration. The YAML keys are the
// snake_case names in the struct tags; see configs/flexbridge.yaml for an
// annotated example.
type Config struct {
	Server  Server  `yaml:"server"`
	Log     Log     `yaml:"log"`
	Store   Store   `yaml:"store"`
	Twilio  Twilio  `yaml:"twilio"`
	Mapping Mapping `yaml:"mapping"`
	Sync    Sync    `yaml:"sync"`
	SAML    SAML    `yaml:"saml"`
}

// Server configures the HTTP server.
type Server struct {
	// Listen is the host:port the HTTP server binds. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// PublicURL is the absolute http(s) URL at which IdPs and browsers reach
	// the server (SAML ACS and metadata URLs are built from it). Default
	// "http://<listen>", with an unspecified listen host replaced by
	// "localhost". [Parse] removes a trailing slash.
	PublicURL string `yaml:"public_url"`
	// ShutdownTimeout bounds the graceful shutdown. Default 20s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxBodyBytes caps every request body, in bytes. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Log configures logging.
type Log struct {
	// Level is one of debug, info, warn, error. Default info.
	Level string `yaml:"level"`
	// Format is json or console. Default json.
	Format string `yaml:"format"`
}

// Store configures the directory store.
type Store struct {
	// Driver is sqlite or postgres. Default sqlite.
	Driver string `yaml:"driver"`
	// DSN is the data source name: a file path for sqlite (default
	// "./data/flexbridge.db"), a connection string or URL for postgres
	// (required). It may hold a password, so it is treated as a secret.
	DSN string `yaml:"dsn" secret:"true"`
}

// Twilio configures the TaskRouter workspace the bridge writes to. With no
// credentials at all the embedded sandbox workspace is used (see
// [Twilio.Sandbox]).
type Twilio struct {
	// AccountSID is the account, "AC" and 32 hex digits.
	AccountSID string `yaml:"account_sid"`
	// AuthToken is the account's auth token. Secret: write it as
	// ${TWILIO_AUTH_TOKEN} rather than literally.
	AuthToken string `yaml:"auth_token" secret:"true"`
	// WorkspaceSID is the Flex Task Assignment workspace, "WS" and 32 hex
	// digits.
	WorkspaceSID string `yaml:"workspace_sid"`
	// APIBaseURL, when set, replaces https://taskrouter.twilio.com (a
	// contract mock, a proxy). Optional. [Parse] removes a trailing slash.
	APIBaseURL string `yaml:"api_base_url"`
	// Timeout bounds every Twilio API call. Default 15s.
	Timeout time.Duration `yaml:"timeout"`
}

// Sandbox reports whether no Twilio credentials are configured, in which
// case flexbridge runs against its embedded sandbox workspace.
func (t Twilio) Sandbox() bool {
	return t.AccountSID == "" && t.AuthToken == "" && t.WorkspaceSID == ""
}

// Mapping locates the attribute-mapping configuration.
type Mapping struct {
	// File is the mapping file's path. Default "configs/mapping.yaml".
	File string `yaml:"file"`
}

// Sync configures the reconciler.
type Sync struct {
	// Interval is how often the reconciler polls for pending users.
	// Default 1s.
	Interval time.Duration `yaml:"interval"`
	// Workers is how many users are synced concurrently. Default 4.
	Workers int `yaml:"workers"`
	// MaxBackoff caps the retry backoff for a failing user. Default 5m.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// FullReconcileInterval is how often every worker is compared with the
	// directory (drift and orphan report). Default 1h.
	FullReconcileInterval time.Duration `yaml:"full_reconcile_interval"`
}

// SAML configures single sign-on: flexbridge as a SAML service provider
// (package saml) for the identity providers in IdPs. SAML is off while IdPs
// is empty.
type SAML struct {
	SP SAMLSP `yaml:"sp"`
	// LoginWait is how long a login waits for the person's worker to be
	// created or updated before the browser is redirected anyway (the sync
	// then finishes in the background). More than 0, at most 30s. Default 5s.
	LoginWait time.Duration `yaml:"login_wait"`
	// AfterLoginURL is where a login without a RelayState (return path)
	// lands: a local path ("/x", not "//x") or an absolute https URL.
	// Default "/saml/welcome".
	AfterLoginURL string `yaml:"after_login_url"`
	// IdPs are the trusted identity providers; names are unique. Empty (the
	// default) disables SAML.
	IdPs []SAMLIdP `yaml:"idps"`
	// Broker makes flexbridge the SAML IdP that Flex trusts. Off while its
	// Flex list is empty (the default).
	Broker SAMLBroker `yaml:"broker"`
}

// SAMLBroker configures broker mode: Flex's SSO points at flexbridge, which
// authenticates the person at an upstream IdP (one of saml.idps), maps them
// and answers Flex with a signed assertion carrying the mapping's claims.
type SAMLBroker struct {
	// IdP is the name of the upstream IdP in saml.idps. Default: the only
	// one, when there is exactly one.
	IdP string `yaml:"idp"`
	// EntityID is flexbridge's entity id as an IdP. Default
	// "<server.public_url>/saml/idp/metadata".
	EntityID string `yaml:"entity_id"`
	// Flex lists the Flex accounts (SAML service providers) that may log in
	// through the broker. Empty (the default) disables broker mode.
	Flex []SAMLBrokerSP `yaml:"flex"`
	// RelayTargets are the absolute https URLs a login started at
	// flexbridge (/saml/idp/login) may send Flex as RelayState.
	RelayTargets []string `yaml:"relay_targets"`
}

// Enabled reports whether broker mode is on.
func (b SAMLBroker) Enabled() bool { return len(b.Flex) > 0 }

// SAMLBrokerSP is one Flex account as a SAML service provider.
type SAMLBrokerSP struct {
	// Name identifies it in /saml/idp/login?sp=NAME and in logs: 1 to 32 of
	// a-z, 0-9 and "-".
	Name string `yaml:"name"`
	// EntityID is Flex's SP entity id, "urn:flex:JQ...".
	EntityID string `yaml:"entity_id"`
	// ACSURLs are Flex's assertion consumer service URLs; the first is used
	// when an AuthnRequest names none. List the legacy form too if the
	// account still uses it.
	ACSURLs []string `yaml:"acs_urls"`
}

// Enabled reports whether any IdP is configured.
func (s SAML) Enabled() bool { return len(s.IdPs) > 0 }

// SAMLSP is flexbridge's own side of SAML.
type SAMLSP struct {
	// EntityID is the SP's entity id, an absolute URI. Default
	// "<server.public_url>/saml/metadata".
	EntityID string `yaml:"entity_id"`
	// KeyFile is the SP's PEM private key. serve generates it (and the
	// certificate) when absent. Default "saml-sp.key" in the folder of the
	// sqlite database, or in "./data" with postgres.
	KeyFile string `yaml:"key_file"`
	// CertFile is the PEM certificate of KeyFile. Default "saml-sp.crt" in
	// KeyFile's folder.
	CertFile string `yaml:"cert_file"`
	// SignAuthnRequests signs the AuthnRequests sent to IdPs. Default false.
	SignAuthnRequests bool `yaml:"sign_authn_requests"`
}

// SAMLIdP is one trusted identity provider (saml.IdPConfig).
type SAMLIdP struct {
	// Name identifies the IdP in /saml/login?idp=NAME and in logs: 1 to 32
	// of a-z, 0-9 and "-". Required, unique.
	Name string `yaml:"name"`
	// MetadataFile and MetadataURL (exactly one) locate the IdP's SAML
	// metadata. The URL must be https, or http on a loopback address
	// (127.0.0.0/8, ::1, localhost). serve reads the file and reports it
	// when unreadable.
	MetadataFile string `yaml:"metadata_file"`
	MetadataURL  string `yaml:"metadata_url"`
	// EntityID picks this IdP's entity out of metadata describing several
	// (an aggregate). Optional; an absolute URI when set.
	EntityID string `yaml:"entity_id"`
	// AllowIdPInitiated accepts responses that answer no request of ours.
	// Default false.
	AllowIdPInitiated bool `yaml:"allow_idp_initiated"`
	// UserName is where the userName the mapping sees comes from:
	// SAMLUserNameAuto (default: the NameID, or the email attribute when the
	// NameID is transient or empty), SAMLUserNameNameID or SAMLUserNameEmail
	// (needs Attributes.Email).
	UserName string `yaml:"user_name"`
	// GroupsFallback applies when Attributes.Groups is set but an assertion
	// lacks that attribute (Entra's group overage): "" or
	// SAMLGroupsFallbackDeny refuses the login, any other value is the one
	// group the person gets.
	GroupsFallback string `yaml:"groups_fallback"`
	// Attributes names the assertion attributes to read.
	Attributes SAMLAttributes `yaml:"attributes"`
}

// SAMLAttributes names the assertion attributes (matched by Name, then by
// FriendlyName) holding a person's details; empty means not read
// (saml.Attributes).
type SAMLAttributes struct {
	Email       string `yaml:"email"`
	DisplayName string `yaml:"display_name"`
	Groups      string `yaml:"groups"`
	Roles       string `yaml:"roles"`
}

// Values of SAMLIdP.UserName and SAMLIdP.GroupsFallback.
const (
	SAMLUserNameAuto       = ""
	SAMLUserNameNameID     = "nameid"
	SAMLUserNameEmail      = "email"
	SAMLGroupsFallbackDeny = "deny"
)

// Default values. PublicURL, the sqlite DSN and the SAML SP entity id, key
// and certificate files are derived from other settings, see [Default].
const (
	DefaultListen                = "127.0.0.1:8080"
	DefaultShutdownTimeout       = 20 * time.Second
	DefaultMaxBodyBytes          = 1 << 20
	DefaultLogLevel              = "info"
	DefaultLogFormat             = "json"
	DefaultStoreDriver           = DriverSQLite
	DefaultSQLiteDSN             = "./data/flexbridge.db"
	DefaultTwilioTimeout         = 15 * time.Second
	DefaultMappingFile           = "configs/mapping.yaml"
	DefaultSyncInterval          = time.Second
	DefaultSyncWorkers           = 4
	DefaultMaxBackoff            = 5 * time.Minute
	DefaultFullReconcileInterval = time.Hour
	DefaultSAMLLoginWait         = 5 * time.Second
	DefaultSAMLAfterLoginURL     = "/saml/welcome"
	// DefaultSAMLKeyDir holds the SP key when the store is not a sqlite file.
	DefaultSAMLKeyDir = "./data"
	// DefaultSAMLKeyName and DefaultSAMLCertName are the SP key and
	// certificate file names when key_file and cert_file are not set.
	DefaultSAMLKeyName  = "saml-sp.key"
	DefaultSAMLCertName = "saml-sp.crt"
	// MaxSAMLLoginWait bounds saml.login_wait.
	MaxSAMLLoginWait = 30 * time.Second
)

// samlMetadataPath is where the SP metadata is served below the public URL
// (saml.MetadataPath); the default entity id.
const samlMetadataPath = "/saml/metadata"

// Store drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Default returns the configuration used when no file is given: SQLite under
// ./data, the embedded sandbox workspace, listening on 127.0.0.1:8080.
func Default() *Config {
	c := base()
	c.applyDerivedDefaults()
	return c
}

// base returns the defaults that do not depend on other settings. A file is
// decoded on top of it, then applyDerivedDefaults fills in the rest.
func base() *Config {
	return &Config{
		Server: Server{
			Listen:          DefaultListen,
			ShutdownTimeout: DefaultShutdownTimeout,
			MaxBodyBytes:    DefaultMaxBodyBytes,
		},
		Log:     Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Store:   Store{Driver: DefaultStoreDriver},
		Twilio:  Twilio{Timeout: DefaultTwilioTimeout},
		Mapping: Mapping{File: DefaultMappingFile},
		Sync: Sync{
			Interval:              DefaultSyncInterval,
			Workers:               DefaultSyncWorkers,
			MaxBackoff:            DefaultMaxBackoff,
			FullReconcileInterval: DefaultFullReconcileInterval,
		},
		SAML: SAML{
			LoginWait:     DefaultSAMLLoginWait,
			AfterLoginURL: DefaultSAMLAfterLoginURL,
		},
	}
}

// applyDerivedDefaults fills the settings whose default depends on others:
// server.public_url (from server.listen), store.dsn (for sqlite only;
// postgres has no default DSN), saml.sp.entity_id (from server.public_url),
// saml.sp.key_file (next to the sqlite database) and saml.sp.cert_file (next
// to the key).
func (c *Config) applyDerivedDefaults() {
	if c.Server.PublicURL == "" {
		c.Server.PublicURL = defaultPublicURL(c.Server.Listen)
	}
	if c.Store.DSN == "" && c.Store.Driver == DriverSQLite {
		c.Store.DSN = DefaultSQLiteDSN
	}
	sp := &c.SAML.SP
	if sp.EntityID == "" {
		sp.EntityID = defaultEntityID(c.Server.PublicURL)
	}
	if sp.KeyFile == "" {
		dir := DefaultSAMLKeyDir + "/"
		if c.Store.Driver == DriverSQLite && c.Store.DSN != ":memory:" && !strings.HasPrefix(c.Store.DSN, "file:") {
			dir = dirOf(c.Store.DSN)
		}
		sp.KeyFile = dir + DefaultSAMLKeyName
	}
	if sp.CertFile == "" {
		sp.CertFile = dirOf(sp.KeyFile) + DefaultSAMLCertName
	}
}

// dirOf returns the folder part of a file path as written, with its trailing
// separator ("./data/" for "./data/flexbridge.db"), or "" for a bare name.
// Unlike filepath.Dir it does not clean the path, so derived paths read like
// the one they come from.
func dirOf(path string) string {
	return path[:strings.LastIndexAny(path, "/"+string(filepath.Separator))+1]
}

// defaultEntityID is "<public_url>/saml/metadata", or "" when public_url is
// invalid (validation reports public_url then).
func defaultEntityID(publicURL string) string {
	if urlProblem(publicURL, true) != "" {
		return ""
	}
	return strings.TrimSuffix(publicURL, "/") + samlMetadataPath
}

// defaultPublicURL is "http://<listen>", with an empty or unspecified
// (0.0.0.0, ::) host replaced by localhost so the URL is usable. It returns
// "" when listen is invalid; validation reports listen then.
func defaultPublicURL(listen string) string {
	if hostPortProblem(listen, quote) != "" {
		return ""
	}
	host, port, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Redacted returns a copy of c that is safe to print or log: the auth token
// is replaced by "REDACTED" when set, and the password of a URL-form DSN
// (user info or "password" query parameter) is masked; a key=value DSN is
// replaced whole.
func (c Config) Redacted() Config {
	const mask = "REDACTED"
	if c.Twilio.AuthToken != "" {
		c.Twilio.AuthToken = mask
	}
	if c.Store.DSN != "" && c.Store.Driver != DriverSQLite {
		if u, err := url.Parse(c.Store.DSN); err == nil && u.Scheme != "" && u.Host != "" {
			if q := u.Query(); q.Has("password") {
				q.Set("password", "xxxxx")
				u.RawQuery = q.Encode()
			}
			c.Store.DSN = u.Redacted()
		} else {
			c.Store.DSN = mask
		}
	}
	return c
}

// OverrideListen replaces server.listen (the serve command's --listen flag). A public_url that
// was derived from the old listen address follows the new one, and so does a saml.sp.entity_id
// derived from that public_url; values set explicitly are kept.
func (c *Config) OverrideListen(listen string) error {
	if c.Server.PublicURL == defaultPublicURL(c.Server.Listen) {
		if c.SAML.SP.EntityID == defaultEntityID(c.Server.PublicURL) {
			c.SAML.SP.EntityID = ""
		}
		c.Server.PublicURL = ""
	}
	c.Server.Listen = listen
	c.applyDerivedDefaults()
	return c.Validate()
}
