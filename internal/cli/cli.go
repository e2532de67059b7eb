// Package cli defines flexbridge's command line (cobra). Commands parse flags, load the
// configuration and hand over to internal/app; they hold no logic of their own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/app"
	"github.com/flexbridge/flexbridge/internal/config"
	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/internal/taskrouter/sandbox"
	"github.com/flexbridge/flexbridge/scim"
)

// Version is set at build time with -ldflags "-X github.com/flexbridge/flexbridge/internal/cli.Version=v1.2.3".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// exitError carries an exit code without printing cobra's usage.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "flexbridge:", err)
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	var configPath string
	root := &cobra.Command{
		Use:   "flexbridge",
		Short: "Keep Twilio Flex TaskRouter workers in step with your identity provider",
		Long: "flexbridge receives users from your identity provider over SCIM 2.0 and keeps one Twilio\n" +
			"Flex TaskRouter worker per active user, with roles and attributes from a mapping file.\n\n" +
			"With no Twilio credentials configured it runs against an embedded sandbox workspace, so\n" +
			"`flexbridge serve` works out of the box.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVarP(&configPath, "config", "c", "",
		"configuration file (YAML); without it the built-in defaults are used (SQLite in ./data, sandbox workspace)")
	load := func() (*config.Config, error) {
		c, err := config.Load(configPath)
		if err != nil {
			return nil, &exitError{code: 2, msg: err.Error()}
		}
		return c, nil
	}
	root.AddCommand(
		serveCmd(load, stdout),
		checkConfigCmd(load, stdout),
		tokenCmd(load, stdout),
		sandboxCmd(stdout, stderr),
		&cobra.Command{
			Use:   "version",
			Short: "Print flexbridge's version",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				fmt.Fprintln(stdout, "flexbridge", version())
				return nil
			},
		},
	)
	return root
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func serveCmd(load func() (*config.Config, error), stdout io.Writer) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the SCIM endpoint and the worker reconciler",
		Long: "Run flexbridge: the SCIM 2.0 endpoint at <public_url>/scim/v2, /healthz and /readyz, and the\n" +
			"reconciler that creates, updates and removes TaskRouter workers. Stops gracefully on SIGTERM/SIGINT.\n" +
			"When no SCIM token exists yet, one is created and printed once on standard output.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load()
			if err != nil {
				return err
			}
			if listen != "" {
				if err := c.OverrideListen(listen); err != nil {
					return &exitError{code: 2, msg: err.Error()}
				}
			}
			log, err := app.NewLogger(c.Log)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			ctx, stop := signalContext()
			defer stop()
			a, err := app.New(ctx, app.Options{Config: c, Logger: log, Out: stdout, Version: version()})
			if err != nil {
				log.Error("could not start", zap.Error(err))
				return &exitError{code: 1, msg: "flexbridge: " + err.Error()}
			}
			return a.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "listen on this host:port instead of server.listen (public_url follows unless set in the file)")
	return cmd
}

func checkConfigCmd(load func() (*config.Config, error), stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "check-config",
		Short: "Validate the configuration file and the mapping it names, then exit",
		Long: "Load the configuration (with ${ENV} references expanded) and the mapping file it names, and report\n" +
			"every problem with its key path. Exits 0 when both are valid, 2 otherwise.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load()
			if err != nil {
				return err
			}
			if _, err := app.LoadMapping(c, zap.NewNop()); err != nil {
				return &exitError{code: 2, msg: err.Error()}
			}
			mode := "sandbox workspace (no Twilio credentials)"
			if !c.Twilio.Sandbox() {
				mode = "Twilio workspace " + c.Twilio.WorkspaceSID
			}
			fmt.Fprintf(stdout, "configuration OK: store %s, %s, mapping %s, listening on %s\n",
				c.Store.Driver, mode, c.Mapping.File, c.Server.Listen)
			return nil
		},
	}
}

func tokenCmd(load func() (*config.Config, error), stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the SCIM bearer tokens IdPs authenticate with",
		Long: "Manage SCIM bearer tokens. Only their SHA-256 hashes are stored; a token is shown once, when created.\n" +
			"These commands open the store directly and may run while `serve` is running.",
	}
	withStore := func(fn func(ctx context.Context, st directory.Store) error) error {
		c, err := load()
		if err != nil {
			return err
		}
		ctx, stop := signalContext()
		defer stop()
		st, err := app.OpenStore(ctx, c, zap.NewNop(), time.Now)
		if err != nil {
			return err
		}
		defer st.Close()
		return fn(ctx, st)
	}
	var name string
	create := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a token and print it (once) as the last line of output",
		Long: "Create a SCIM bearer token named NAME (one per IdP, e.g. okta, entra) and print it as the last line\n" +
			"of standard output. Two tokens can be valid at once, so rotate by creating the new one, switching the\n" +
			"IdP over, then revoking the old one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name = strings.TrimSpace(name)
			if name == "" {
				return &exitError{code: 2, msg: "token create: --name is required (e.g. --name okta)"}
			}
			return withStore(func(ctx context.Context, st directory.Store) error {
				secret, hash, err := scim.NewToken()
				if err != nil {
					return err
				}
				if _, err := st.CreateToken(ctx, name, hash); err != nil {
					if errors.Is(err, directory.ErrConflict) {
						return &exitError{code: 1, msg: fmt.Sprintf("token create: an active token named %q exists; revoke it first or choose another name", name)}
					}
					return err
				}
				fmt.Fprintf(stdout, "Created SCIM token %q. Store it now; it cannot be shown again:\n%s\n", name, secret)
				return nil
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "token name, e.g. the IdP it is for (required)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (names and dates, never the secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(func(ctx context.Context, st directory.Store) error {
				toks, err := st.ListTokens(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tCREATED\tLAST USED\tSTATUS")
				for _, t := range toks {
					status, used := "active", "never"
					if t.RevokedAt != nil {
						status = "revoked " + t.RevokedAt.UTC().Format(time.RFC3339)
					}
					if t.LastUsedAt != nil {
						used = t.LastUsedAt.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.CreatedAt.UTC().Format(time.RFC3339), used, status)
				}
				return tw.Flush()
			})
		},
	}
	var revokeName string
	revoke := &cobra.Command{
		Use:   "revoke --name NAME",
		Short: "Revoke a token; requests with it are refused from then on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(revokeName) == "" {
				return &exitError{code: 2, msg: "token revoke: --name is required"}
			}
			return withStore(func(ctx context.Context, st directory.Store) error {
				if err := st.RevokeToken(ctx, revokeName); err != nil {
					if errors.Is(err, directory.ErrNotFound) {
						return &exitError{code: 1, msg: fmt.Sprintf("token revoke: no active token named %q", revokeName)}
					}
					return err
				}
				fmt.Fprintf(stdout, "Revoked SCIM token %q.\n", revokeName)
				return nil
			})
		},
	}
	revoke.Flags().StringVar(&revokeName, "name", "", "name of the token to revoke (required)")
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func sandboxCmd(stdout, stderr io.Writer) *cobra.Command {
	var listen, accountSID, authToken string
	var workspaces []string
	cmd := &cobra.Command{
		Use:   "sandbox --listen ADDR [--workspace WS...]",
		Short: "Serve an in-memory TaskRouter workspace (Workers and Activities API) for tests and demos",
		Long: "Serve an in-memory stand-in for Twilio's TaskRouter v1 Workers and Activities API on ADDR, with\n" +
			"HTTP basic auth like Twilio's. Prints each workspace SID it serves on its own line of standard\n" +
			"output, then serves until SIGTERM/SIGINT. Point flexbridge at it with twilio.api_base_url.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := app.NewLogger(config.Log{Level: "info", Format: "json"})
			if err != nil {
				return err
			}
			sb := sandbox.New(sandbox.Options{AccountSID: accountSID, AuthToken: authToken, Workspaces: workspaces, Logger: log})
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("sandbox: listen on %s: %v", listen, err)}
			}
			srv := &http.Server{Handler: sb, ReadHeaderTimeout: 10 * time.Second}
			for _, ws := range sb.Workspaces() {
				fmt.Fprintln(stdout, ws)
			}
			log.Info("sandbox workspace serving", zap.String("url", "http://"+ln.Addr().String()),
				zap.Strings("workspaces", sb.Workspaces()), zap.String("account_sid", sb.AccountSID()))
			ctx, stop := signalContext()
			defer stop()
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8181", "address to listen on")
	cmd.Flags().StringSliceVar(&workspaces, "workspace", nil, "workspace SID to serve (repeatable; default: one generated)")
	cmd.Flags().StringVar(&accountSID, "account-sid", "", "account SID clients must authenticate as (default: any)")
	cmd.Flags().StringVar(&authToken, "auth-token", "", "auth token clients must send (default: any password)")
	return cmd
}
