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

// Default values. PublicURL and the sqlite DSN are derived from other
// settings, see [Default].
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
)

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
	}
}

// applyDerivedDefaults fills the settings whose default depends on others:
// server.public_url (from server.listen) and store.dsn (for sqlite only;
// postgres has no default DSN).
func (c *Config) applyDerivedDefaults() {
	if c.Server.PublicURL == "" {
		c.Server.PublicURL = defaultPublicURL(c.Server.Listen)
	}
	if c.Store.DSN == "" && c.Store.Driver == DriverSQLite {
		c.Store.DSN = DefaultSQLiteDSN
	}
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
// was derived from the old listen address follows the new one; one set explicitly is kept.
func (c *Config) OverrideListen(listen string) error {
	if c.Server.PublicURL == defaultPublicURL(c.Server.Listen) {
		c.Server.PublicURL = ""
	}
	c.Server.Listen = listen
	c.applyDerivedDefaults()
	return c.Validate()
}
