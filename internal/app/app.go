// Package app is flexbridge's composition root: the only package that imports every other one.
// It opens the store, loads the mapping, chooses real Twilio or the embedded sandbox workspace,
// wires the SCIM endpoint and the reconciler, and runs the HTTP server until shut down.
package app

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/flexbridge/flexbridge/configs"
	"github.com/flexbridge/flexbridge/internal/config"
	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/internal/server"
	"github.com/flexbridge/flexbridge/internal/sync"
	"github.com/flexbridge/flexbridge/internal/taskrouter"
	"github.com/flexbridge/flexbridge/internal/taskrouter/sandbox"
	"github.com/flexbridge/flexbridge/mapping"
	"github.com/flexbridge/flexbridge/saml"
	"github.com/flexbridge/flexbridge/scim"
)

// Options configure an App.
type Options struct {
	Config *config.Config
	Logger *zap.Logger
	Now    func() time.Time
	// Out receives what a person must see once, outside the log: the first SCIM token.
	Out     io.Writer
	Version string
}

// App is a running flexbridge.
type App struct {
	o          Options
	log        *zap.Logger
	store      directory.Store
	reconciler *sync.Reconciler
	httpSrv    *http.Server
	listener   net.Listener
	sandboxSrv *http.Server
	sandboxLn  net.Listener
	workspace  string
	sp         *saml.SP // nil when SAML is off
	spKey      crypto.Signer
	spCert     *x509.Certificate
}

// NewLogger builds the process logger from the log settings: JSON (production) or console.
func NewLogger(c config.Log) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	var zc zap.Config
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.DisableStacktrace = true // panics are logged with their stack explicitly
	zc.OutputPaths = []string{"stderr"}
	return zc.Build()
}

// LoadMapping loads the mapping file the configuration names. When mapping.file is left at its
// default and that file does not exist, the example mapping compiled into the binary is used,
// so the embedded default needs no files.
func LoadMapping(c *config.Config, log *zap.Logger) (*mapping.Config, error) {
	m, err := mapping.LoadFile(c.Mapping.File)
	if err == nil {
		return m, nil
	}
	if c.Mapping.File == config.DefaultMappingFile && errors.Is(err, fs.ErrNotExist) {
		m, perr := mapping.Parse(configs.DefaultMapping)
		if perr != nil {
			return nil, fmt.Errorf("built-in mapping: %w", perr)
		}
		log.Info("no mapping file found; using the built-in example mapping", zap.String("looked_for", c.Mapping.File))
		return m, nil
	}
	return nil, fmt.Errorf("mapping %s: %w", c.Mapping.File, err)
}

// OpenStore opens the directory store the configuration names.
func OpenStore(ctx context.Context, c *config.Config, log *zap.Logger, now func() time.Time) (directory.Store, error) {
	st, err := directory.Open(ctx, directory.Options{Driver: c.Store.Driver, DSN: c.Store.DSN, Now: now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", c.Store.Driver, err)
	}
	return st, nil
}

// New builds an App: it opens the store and loads the mapping, and starts listening (so Addr
// is known), but serves nothing until Run.
func New(ctx context.Context, o Options) (_ *App, err error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	c := o.Config
	a := &App{o: o, log: o.Logger}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()

	m, err := LoadMapping(c, a.log)
	if err != nil {
		return nil, err
	}
	// Listen first: a second `serve` on a port in use must fail before it touches the store
	// (with the sandbox, starting marks every user for sync).
	if a.listener, err = net.Listen("tcp", c.Server.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", c.Server.Listen, err)
	}
	if a.store, err = OpenStore(ctx, c, a.log, o.Now); err != nil {
		return nil, err
	}

	tcfg := taskrouter.Config{
		AccountSID: c.Twilio.AccountSID, AuthToken: c.Twilio.AuthToken, WorkspaceSID: c.Twilio.WorkspaceSID,
		BaseURL: c.Twilio.APIBaseURL, Timeout: c.Twilio.Timeout,
	}
	if c.Twilio.Sandbox() {
		if tcfg, err = a.startSandbox(ctx, tcfg); err != nil {
			return nil, err
		}
	}
	workers, err := taskrouter.New(tcfg, a.log)
	if err != nil {
		return nil, fmt.Errorf("twilio: %w", err)
	}
	a.workspace = tcfg.WorkspaceSID

	a.reconciler = sync.New(sync.Options{
		Store:       a.store,
		Workers:     workers,
		Mapping:     func() *mapping.Config { return m },
		Logger:      a.log,
		Now:         o.Now,
		Interval:    c.Sync.Interval,
		Concurrency: c.Sync.Workers,
		MaxBackoff:  c.Sync.MaxBackoff,
	})
	scimHandler, err := scim.New(scim.Options{
		Store:        a.store,
		Logger:       a.log,
		Now:          o.Now,
		PublicURL:    c.Server.PublicURL,
		MaxBodyBytes: c.Server.MaxBodyBytes,
		OnChange:     a.reconciler.Notify,
		Check:        a.checkUser(func() *mapping.Config { return m }),
	})
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle(scim.BasePath+"/", scimHandler)
	if c.SAML.Enabled() {
		if a.sp, err = a.newSP(c, func() *mapping.Config { return m }); err != nil {
			return nil, fmt.Errorf("saml: %w", err)
		}
		a.sp.Routes(mux)
		mux.Handle("GET "+WelcomePath, welcome(a.sp, a.store, a.log))
		if c.SAML.Broker.Enabled() {
			b, err := a.newBroker(c, func() *mapping.Config { return m })
			if err != nil {
				return nil, fmt.Errorf("saml broker: %w", err)
			}
			b.Routes(mux)
			a.log.Info("SAML broker mode enabled: point Flex's SSO at the IdP metadata",
				zap.String("idp_metadata", c.Server.PublicURL+saml.BrokerMetadataPath), zap.String("sso", b.SSOURL()))
		}
	}
	server.Health(mux, a.store.Ping, a.log)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not found", http.StatusNotFound)
	})
	a.httpSrv = &http.Server{
		Handler:           server.Wrap(mux, a.log, o.Now),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(a.log.Named("http")),
	}
	if err := a.ensureToken(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// startSandbox runs the in-memory TaskRouter workspace on a loopback port and returns the
// Twilio settings that point the real twilio-go client at it.
func (a *App) startSandbox(ctx context.Context, tcfg taskrouter.Config) (taskrouter.Config, error) {
	sb := sandbox.New(sandbox.Options{Logger: a.log.Named("sandbox"), Now: a.o.Now})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return tcfg, fmt.Errorf("sandbox listener: %w", err)
	}
	a.sandboxLn = ln
	a.sandboxSrv = &http.Server{Handler: sb, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.sandboxSrv.Serve(ln) }()

	token := make([]byte, 16)
	_, _ = rand.Read(token)
	tcfg.AccountSID = sb.AccountSID()
	tcfg.AuthToken = hex.EncodeToString(token) // the embedded sandbox accepts any password
	tcfg.WorkspaceSID = sb.Workspaces()[0]
	tcfg.BaseURL = "http://" + ln.Addr().String()
	a.log.Warn("NO TWILIO CREDENTIALS CONFIGURED: workers are written to the EMBEDDED SANDBOX WORKSPACE, "+
		"an in-memory stand-in for TaskRouter that forgets everything on restart. Set twilio.account_sid, "+
		"twilio.auth_token and twilio.workspace_sid to sync a real Flex workspace.",
		zap.String("sandbox_url", tcfg.BaseURL), zap.String("workspace_sid", tcfg.WorkspaceSID),
		zap.String("account_sid", tcfg.AccountSID))
	// The sandbox starts empty: ask the reconciler to recreate every live user's worker.
	n, err := a.store.MarkAllForSync(ctx)
	if err != nil {
		return tcfg, fmt.Errorf("mark users for sync: %w", err)
	}
	if n > 0 {
		a.log.Info("re-syncing every user into the fresh sandbox workspace", zap.Int("users", n))
	}
	return tcfg, nil
}

// ensureToken creates and prints a first SCIM token on the very first start (no token was ever
// made). After an operator revokes every token, none is re-issued behind their back.
func (a *App) ensureToken(ctx context.Context) error {
	toks, err := a.store.ListTokens(ctx)
	if err != nil {
		return fmt.Errorf("read tokens: %w", err)
	}
	if len(toks) > 0 {
		return nil
	}
	secret, hash, err := scim.NewToken()
	if err != nil {
		return err
	}
	name := "default"
	if _, err := a.store.CreateToken(ctx, name, hash); err != nil {
		if errors.Is(err, directory.ErrConflict) {
			return nil // another replica made one at the same moment
		}
		return fmt.Errorf("create first token: %w", err)
	}
	a.log.Info("created the first SCIM bearer token", zap.String("token_name", name))
	fmt.Fprintf(a.o.Out, "\n"+
		"  flexbridge created a SCIM bearer token named %q. It is shown only this once:\n\n"+
		"      %s\n\n"+
		"  SCIM base URL: %s%s\n"+
		"  Make more with `flexbridge token create --name NAME`; revoke with `flexbridge token revoke --name NAME`.\n\n",
		name, secret, a.o.Config.Server.PublicURL, scim.BasePath)
	return nil
}

// checkUser refuses, at the SCIM request, a user the mapping cannot turn into a worker (a
// FriendlyName over 64 characters, attributes over TaskRouter's 4,096 characters, a bad
// contact_uri): otherwise the IdP would be told 2xx while the worker, and any role revocation
// in the same change, stayed stuck behind a sync error.
func (a *App) checkUser(current func() *mapping.Config) func(context.Context, directory.User) error {
	return func(ctx context.Context, u directory.User) error {
		groups, err := groupsOf(ctx, a.store, u)
		if err != nil {
			return nil // a store hiccup is not the client's fault; the write path reports it
		}
		spec, err := specOf(current(), u, groups, nil)
		if err != nil {
			return err
		}
		if spec.Access {
			_, _, err = mapping.Merge("{}", spec)
		}
		return err
	}
}

// Addr is the address the HTTP server listens on.
func (a *App) Addr() string { return a.listener.Addr().String() }

// SandboxURL is the embedded sandbox's base URL, or "" when a real workspace is used.
func (a *App) SandboxURL() string {
	if a.sandboxLn == nil {
		return ""
	}
	return "http://" + a.sandboxLn.Addr().String()
}

// WorkspaceSID is the TaskRouter workspace being synced.
func (a *App) WorkspaceSID() string { return a.workspace }

// Run serves HTTP and runs the reconciler until ctx is done, then shuts down gracefully.
func (a *App) Run(ctx context.Context) error {
	c := a.o.Config
	a.log.Info("flexbridge serving",
		zap.String("version", a.o.Version),
		zap.String("listen", a.Addr()),
		zap.String("public_url", c.Server.PublicURL),
		zap.String("scim_base_url", c.Server.PublicURL+scim.BasePath),
		zap.String("store", c.Store.Driver),
		zap.String("workspace_sid", a.workspace),
		zap.Bool("sandbox", c.Twilio.Sandbox()),
		zap.String("mapping", c.Mapping.File))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := a.httpSrv.Serve(a.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error { return a.reconciler.Run(gctx) })
	if a.sp != nil {
		g.Go(func() error { return a.sp.Run(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		a.log.Info("shutting down", zap.Duration("timeout", c.Server.ShutdownTimeout))
		sctx, cancel := context.WithTimeout(context.Background(), c.Server.ShutdownTimeout)
		defer cancel()
		return a.httpSrv.Shutdown(sctx)
	})
	err := g.Wait()
	a.Close()
	return err
}

// Close releases everything New acquired. It is safe to call more than once.
func (a *App) Close() {
	if a.sandboxSrv != nil {
		_ = a.sandboxSrv.Close()
	}
	if a.listener != nil {
		_ = a.listener.Close()
	}
	if a.store != nil {
		_ = a.store.Close()
		a.store = nil
	}
}

// RedactedDSN is safe to print.
func RedactedDSN(c *config.Config) string {
	r := c.Redacted()
	return strings.TrimSpace(r.Store.DSN)
}
