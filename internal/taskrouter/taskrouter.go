// Package taskrouter is flexbridge's only code that talks to Twilio: a small adapter
// over github.com/twilio/twilio-go's TaskRouter v1 client for the Workers of one
// workspace.
//
// It adds what twilio-go lacks: explicit credentials (no silent fallback to
// TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN), context cancellation and a per-request
// timeout, a configurable base URL (the in-process sandbox or a Prism mock of Twilio's
// OpenAPI description), Retry-After on errors, and one closed set of error kinds
// (IsNotFound, IsPreconditionFailed, IsDuplicateName, IsRateLimited, IsTransient).
// It never retries: retry policy belongs to the caller (internal/sync).
package taskrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/taskrouter/v1"
	"go.uber.org/zap"
)

// DefaultTimeout bounds one HTTP request when Config.Timeout is zero (twilio-go's own
// default).
const DefaultTimeout = 10 * time.Second

// OfflineActivityName is the FriendlyName of the activity TakeOffline moves workers to
// (Flex workspaces create it by default).
const OfflineActivityName = "Offline"

const (
	listPageSize  = 1000 // TaskRouter's maximum
	findPageSize  = 50   // a FriendlyName filter matches at most one worker
	maxSIDLength  = 64
	userAgentName = "flexbridge"
)

// Config configures a Client.
type Config struct {
	AccountSID, AuthToken, WorkspaceSID string

	// BaseURL, when set, receives every request twilio-go addresses to
	// https://taskrouter.twilio.com: scheme and host are replaced and the path is
	// appended to BaseURL's path, e.g. "http://127.0.0.1:4010" or
	// "http://localhost:8080/sandbox". Empty means real Twilio.
	BaseURL string

	// Timeout bounds each HTTP request (twilio-go calls take no context). Zero means
	// HTTPClient.Timeout if set, else DefaultTimeout.
	Timeout time.Duration

	// HTTPClient optionally supplies the transport (and cookie jar) to use, e.g. a
	// test server's client. Its CheckRedirect is not used: redirects are never
	// followed.
	HTTPClient *http.Client
}

// Worker is a TaskRouter worker as the adapter reports it.
type Worker struct {
	SID          string
	FriendlyName string
	// Attributes is the worker's JSON attributes exactly as Twilio returned them. It is
	// empty in ListWorkers results (Twilio's list responses may omit it).
	Attributes   string
	ActivitySID  string
	ActivityName string
	// ETag is the value to pass as ifMatch. It is empty in ListWorkers results.
	ETag        string
	Available   bool
	DateCreated time.Time
	DateUpdated time.Time
}

// Client is a TaskRouter Workers client bound to one workspace. It is safe for
// concurrent use.
type Client struct {
	creds        *twclient.Credentials
	accountSID   string
	workspaceSID string
	redirect     *url.URL
	transport    http.RoundTripper
	jar          http.CookieJar
	timeout      time.Duration
	log          *zap.Logger
	now          func() time.Time

	// offlineSem serialises the Offline activity lookup; offlineSID is only read or
	// written while holding it.
	offlineSem chan struct{}
	offlineSID string
}

// New validates cfg and returns a Client. Every problem with cfg is reported at once.
// Empty credentials are refused: twilio-go would otherwise read them from the
// TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN environment. log may be nil.
func New(cfg Config, log *zap.Logger) (*Client, error) {
	var errs []error
	check := func(field, value string, secret bool) {
		switch {
		case value == "":
			errs = append(errs, fmt.Errorf("%s is empty", field))
		case !isAlnum(value):
			// twilio-go refuses such credentials only when a request is made; a SID with
			// '/' or '?' would change the request path.
			if secret {
				errs = append(errs, fmt.Errorf("%s must contain only letters and digits", field))
			} else {
				errs = append(errs, fmt.Errorf("%s %q must contain only letters and digits", field, value))
			}
		}
	}
	check("AccountSID", cfg.AccountSID, false)
	check("AuthToken", cfg.AuthToken, true)
	check("WorkspaceSID", cfg.WorkspaceSID, false)

	var redirect *url.URL
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("BaseURL: %w", err))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			errs = append(errs, fmt.Errorf("BaseURL %q must be an absolute http(s) URL", cfg.BaseURL))
		case u.User != nil, u.RawQuery != "", u.Fragment != "":
			errs = append(errs, fmt.Errorf("BaseURL %q must not carry user info, query or fragment", cfg.BaseURL))
		default:
			redirect = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimRight(u.Path, "/")}
		}
	}

	timeout := cfg.Timeout
	switch {
	case timeout < 0:
		errs = append(errs, fmt.Errorf("Timeout %s is negative", timeout))
	case timeout == 0 && cfg.HTTPClient != nil && cfg.HTTPClient.Timeout > 0:
		timeout = cfg.HTTPClient.Timeout
	case timeout == 0:
		timeout = DefaultTimeout
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("taskrouter: invalid config: %w", errors.Join(errs...))
	}

	transport := http.DefaultTransport
	var jar http.CookieJar
	if cfg.HTTPClient != nil {
		if cfg.HTTPClient.Transport != nil {
			transport = cfg.HTTPClient.Transport
		}
		jar = cfg.HTTPClient.Jar
	}
	if log == nil {
		log = zap.NewNop()
	}
	target := "twilio"
	if redirect != nil {
		target = redirect.String()
	}
	return &Client{
		creds:        twclient.NewCredentials(cfg.AccountSID, cfg.AuthToken),
		accountSID:   cfg.AccountSID,
		workspaceSID: cfg.WorkspaceSID,
		redirect:     redirect,
		transport:    transport,
		jar:          jar,
		timeout:      timeout,
		log:          log.With(zap.String("workspace_sid", cfg.WorkspaceSID), zap.String("taskrouter", target)),
		now:          time.Now,
		offlineSem:   make(chan struct{}, 1),
	}, nil
}

// WorkspaceSID returns the SID of the workspace the client works on.
func (c *Client) WorkspaceSID() string { return c.workspaceSID }

// CreateWorker creates a worker. It never sets an ActivitySid: the worker starts in the
// workspace's default activity. attributes is sent exactly as given (the caller
// minifies; TaskRouter allows 4,096 characters); "" sends none (TaskRouter stores {}). A FriendlyName already in use fails
// with IsDuplicateName. A transient failure may still have created the worker.
func (c *Client) CreateWorker(ctx context.Context, friendlyName, attributes string) (Worker, error) {
	const op = "CreateWorker"
	if friendlyName == "" {
		return Worker{}, invalidArg(op, "empty FriendlyName")
	}
	params := (&openapi.CreateWorkerParams{}).SetFriendlyName(friendlyName)
	if attributes != "" { // "" lets TaskRouter default to {}
		params.SetAttributes(attributes)
	}
	var w Worker
	err := c.call(ctx, op, "", func(api *openapi.ApiService) error {
		res, err := api.CreateWorkerWithMetadata(c.workspaceSID, params)
		if err != nil {
			return err
		}
		w = toWorker(&res.Resource, res.GetHeader("ETag"))
		return nil
	}, func() []zap.Field { return []zap.Field{zap.String("worker_sid", w.SID)} })
	return w, err
}

// FetchWorker reads one worker, with its attributes and ETag.
func (c *Client) FetchWorker(ctx context.Context, sid string) (Worker, error) {
	const op = "FetchWorker"
	if !isSID(sid) {
		return Worker{}, invalidArg(op, "invalid worker SID %q", sid)
	}
	var w Worker
	err := c.call(ctx, op, sid, func(api *openapi.ApiService) error {
		res, err := api.FetchWorkerWithMetadata(c.workspaceSID, sid)
		if err != nil {
			return err
		}
		w = toWorker(&res.Resource, res.GetHeader("ETag"))
		return nil
	}, nil)
	return w, err
}

// FindWorker looks a worker up by FriendlyName (case-insensitively, as TaskRouter
// compares them) and fetches it for its attributes and ETag. found is false, with a nil
// error, when no worker has that name.
func (c *Client) FindWorker(ctx context.Context, friendlyName string) (w Worker, found bool, err error) {
	const op = "FindWorker"
	if friendlyName == "" {
		return Worker{}, false, invalidArg(op, "empty FriendlyName")
	}
	query := url.Values{"FriendlyName": {friendlyName}, "PageSize": {fmt.Sprint(findPageSize)}}
	var sid string
	errFound := errors.New("found")
	err = c.walkWorkers(ctx, op, query, func(w Worker) error {
		if strings.EqualFold(w.FriendlyName, friendlyName) && w.SID != "" {
			sid = w.SID
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return Worker{}, false, err
	}
	if sid == "" {
		return Worker{}, false, nil
	}
	w, err = c.FetchWorker(ctx, sid)
	if IsNotFound(err) { // deleted between list and fetch
		return Worker{}, false, nil
	}
	if err != nil {
		return Worker{}, false, err
	}
	return w, true, nil
}

// ListWorkers calls visit for every worker of the workspace, 1,000 per request,
// following next_page_url. Listed workers carry neither Attributes nor ETag: use
// FetchWorker. An error returned by visit stops the walk and is returned as is.
func (c *Client) ListWorkers(ctx context.Context, visit func(Worker) error) error {
	return c.walkWorkers(ctx, "ListWorkers", url.Values{"PageSize": {fmt.Sprint(listPageSize)}}, visit)
}

// walkWorkers pages through a worker list filtered by query, following the next page
// URL that twilio-go's client.GetNext finds (meta.next_page_url). Each page is one call
// with its own timeout.
//
// The first page is not requested with twilio-go's PageWorker: for GET requests
// twilio-go deletes every "." followed by digits from the encoded query
// (client.SendRequest, delimitingRegex), so FriendlyName=jane.2020@example.com would
// be sent as FriendlyName=jane@example.com. A URL that already carries its query is
// sent untouched, as next_page_url always is.
func (c *Client) walkWorkers(ctx context.Context, op string, query url.Values, visit func(Worker) error) error {
	pageURL := twilioBaseURL + "/v1/Workspaces/" + c.workspaceSID + "/Workers?" + query.Encode()
	var page *openapi.ListWorkerResponse
	err := c.call(ctx, op, "", func(api *openapi.ApiService) error {
		var err error
		page, err = fetchWorkerPage(api, pageURL)
		return err
	}, nil)
	if err != nil {
		return err
	}
	seen := map[string]bool{pageURL: true}
	for {
		for i := range page.Workers {
			if err := visit(toWorker(&page.Workers[i], "")); err != nil {
				return err
			}
		}
		// twilio-go's paging logic finds the next URL (meta.next_page_url, or
		// next_page_uri, or a page token); the request itself is ours to bound.
		var nextURL string
		if _, err := twclient.GetNext(twilioBaseURL, page, func(u string) (any, error) {
			nextURL = u
			return nil, nil
		}); err != nil {
			return &Error{Op: op, Message: "unreadable paging metadata", Err: err}
		}
		if nextURL == "" {
			return nil
		}
		if seen[nextURL] {
			return &Error{Op: op, Message: fmt.Sprintf("next_page_url %s repeats an earlier page", redactQuery(nextURL))}
		}
		seen[nextURL] = true
		err := c.call(ctx, op, "", func(api *openapi.ApiService) error {
			var err error
			page, err = fetchWorkerPage(api, nextURL)
			return err
		}, nil)
		if err != nil {
			return err
		}
	}
}

// fetchWorkerPage GETs a page of workers through twilio-go's request handler, as
// twilio-go's own (unexported) getNextListWorkerResponse does for next_page_url.
func fetchWorkerPage(api *openapi.ApiService, pageURL string) (*openapi.ListWorkerResponse, error) {
	resp, err := api.RequestHandler().Get(pageURL, nil, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	page := &openapi.ListWorkerResponse{}
	if err := json.NewDecoder(resp.Body).Decode(page); err != nil {
		return nil, err
	}
	return page, nil
}

// UpdateWorkerAttributes replaces the worker's attributes with attributes, exactly as
// given (not empty). With a non-empty ifMatch the update applies only if the worker's ETag still
// equals it (else IsPreconditionFailed); an empty ifMatch updates unconditionally.
// The returned worker carries the new ETag.
func (c *Client) UpdateWorkerAttributes(ctx context.Context, sid, attributes, ifMatch string) (Worker, error) {
	return c.UpdateWorker(ctx, sid, WorkerUpdate{Attributes: attributes}, ifMatch)
}

// WorkerUpdate is what UpdateWorker changes; empty fields are left as they are.
type WorkerUpdate struct {
	Attributes   string // the whole attributes JSON, exactly as given
	FriendlyName string // a new name (unique per workspace, case-insensitively)
}

// UpdateWorker changes a worker's attributes and/or FriendlyName in one call, with the same
// If-Match semantics as UpdateWorkerAttributes. A name taken by another worker fails with
// IsDuplicateName.
func (c *Client) UpdateWorker(ctx context.Context, sid string, u WorkerUpdate, ifMatch string) (Worker, error) {
	const op = "UpdateWorker"
	if !isSID(sid) {
		return Worker{}, invalidArg(op, "invalid worker SID %q", sid)
	}
	if u.Attributes == "" && u.FriendlyName == "" {
		return Worker{}, invalidArg(op, "nothing to update")
	}
	params := &openapi.UpdateWorkerParams{}
	if u.Attributes != "" {
		params.SetAttributes(u.Attributes)
	}
	if u.FriendlyName != "" {
		params.SetFriendlyName(u.FriendlyName)
	}
	if ifMatch != "" {
		params.SetIfMatch(ifMatch)
	}
	var w Worker
	err := c.call(ctx, op, sid, func(api *openapi.ApiService) error {
		res, err := api.UpdateWorkerWithMetadata(c.workspaceSID, sid, params)
		if err != nil {
			return err
		}
		w = toWorker(&res.Resource, res.GetHeader("ETag"))
		return nil
	}, nil)
	return w, err
}

// TakeOffline moves the worker to the workspace's "Offline" activity and rejects its
// pending reservations. The activity's SID is looked up once, by FriendlyName, and
// cached for the life of the Client.
func (c *Client) TakeOffline(ctx context.Context, sid string) error {
	const op = "TakeOffline"
	if !isSID(sid) {
		return invalidArg(op, "invalid worker SID %q", sid)
	}
	activitySID, err := c.offlineActivity(ctx)
	if err != nil {
		return err
	}
	params := (&openapi.UpdateWorkerParams{}).SetActivitySid(activitySID).SetRejectPendingReservations(true)
	return c.call(ctx, op, sid, func(api *openapi.ApiService) error {
		_, err := api.UpdateWorker(c.workspaceSID, sid, params)
		return err
	}, nil)
}

// offlineActivity returns the SID of the workspace's Offline activity, looking it up
// on first use. A failed lookup is not cached.
func (c *Client) offlineActivity(ctx context.Context) (string, error) {
	const op = "TakeOffline"
	select {
	case c.offlineSem <- struct{}{}:
	case <-ctx.Done():
		return "", &Error{Op: op, Err: ctx.Err()}
	}
	defer func() { <-c.offlineSem }()
	if c.offlineSID != "" {
		return c.offlineSID, nil
	}
	params := (&openapi.ListActivityParams{}).SetFriendlyName(OfflineActivityName).SetPageSize(findPageSize)
	var sid string
	err := c.call(ctx, op, "", func(api *openapi.ApiService) error {
		page, err := api.PageActivity(c.workspaceSID, params, "", "")
		if err != nil {
			return err
		}
		for _, a := range page.Activities {
			if a.FriendlyName != nil && a.Sid != nil && strings.EqualFold(*a.FriendlyName, OfflineActivityName) {
				sid = *a.Sid
				return nil
			}
		}
		return nil
	}, nil)
	if err != nil {
		return "", err
	}
	if !isSID(sid) {
		return "", &Error{Op: op, Message: fmt.Sprintf("workspace has no activity named %q", OfflineActivityName)}
	}
	c.offlineSID = sid
	c.log.Debug("taskrouter: offline activity cached", zap.String("activity_sid", sid))
	return sid, nil
}

// DeleteWorker deletes the worker; with a non-empty ifMatch only if its ETag still
// equals it. Take the worker offline first.
func (c *Client) DeleteWorker(ctx context.Context, sid, ifMatch string) error {
	const op = "DeleteWorker"
	if !isSID(sid) {
		return invalidArg(op, "invalid worker SID %q", sid)
	}
	params := &openapi.DeleteWorkerParams{}
	if ifMatch != "" {
		params.SetIfMatch(ifMatch)
	}
	return c.call(ctx, op, sid, func(api *openapi.ApiService) error {
		return api.DeleteWorker(c.workspaceSID, sid, params)
	}, nil)
}

// call runs fn, which must make at most one HTTP request through api, with a fresh
// twilio-go client whose transport carries ctx bounded by the request timeout and
// records the exchange. It returns nil or an *Error from classify, and logs the call
// (SIDs, status, code, duration only). extra, if set, adds fields after success.
func (c *Client) call(ctx context.Context, op, workerSID string, fn func(*openapi.ApiService) error, extra func() []zap.Field) error {
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Err: err}
	}
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ex := &exchange{}
	tc := &twclient.Client{
		Credentials: c.creds,
		HTTPClient: &http.Client{
			// No http.Client.Timeout: with a custom RoundTripper it would start a timer
			// goroutine; callCtx bounds the request instead.
			Transport:     &callTransport{ctx: callCtx, base: c.transport, redirect: c.redirect, ex: ex, now: c.now},
			CheckRedirect: noRedirect,
			Jar:           c.jar,
		},
		UserAgentExtensions: []string{userAgentName},
	}
	tc.SetAccountSid(c.accountSID)
	// A RequestHandler built by hand, not twclient.NewRequestHandler: that one reads
	// TWILIO_EDGE/TWILIO_REGION from the environment and would rewrite the host to
	// taskrouter.<edge>.<region>.twilio.com behind our back.
	api := openapi.NewApiService(&twclient.RequestHandler{Client: tc})

	start := time.Now()
	err := fn(api)
	ex.closeBodies()
	elapsed := time.Since(start)

	fields := []zap.Field{zap.String("op", op), zap.Duration("duration", elapsed)}
	if workerSID != "" {
		fields = append(fields, zap.String("worker_sid", workerSID))
	}
	if err == nil {
		status, _, _ := ex.result()
		fields = append(fields, zap.Int("status", status))
		if extra != nil {
			fields = append(fields, extra()...)
		}
		c.log.Debug("taskrouter: call", fields...)
		return nil
	}
	e := classify(op, err, ctx, callCtx, ex)
	fields = append(fields, zap.Int("status", e.Status), zap.Int("code", e.Code))
	if e.RetryAfter > 0 {
		fields = append(fields, zap.Duration("retry_after", e.RetryAfter))
	}
	switch {
	case e.timeout || e.network:
		c.log.Warn("taskrouter: call failed", append(fields, zap.Bool("transient", true), zap.Bool("timeout", e.timeout))...)
	case IsTransient(e):
		c.log.Warn("taskrouter: call failed", append(fields, zap.Bool("transient", true))...)
	default:
		c.log.Debug("taskrouter: call failed", fields...)
	}
	return e
}

func toWorker(w *openapi.TaskrouterV1Worker, etag string) Worker {
	out := Worker{
		SID:          deref(w.Sid),
		FriendlyName: deref(w.FriendlyName),
		Attributes:   deref(w.Attributes),
		ActivitySID:  deref(w.ActivitySid),
		ActivityName: deref(w.ActivityName),
		ETag:         etag,
	}
	if w.Available != nil {
		out.Available = *w.Available
	}
	if w.DateCreated != nil {
		out.DateCreated = *w.DateCreated
	}
	if w.DateUpdated != nil {
		out.DateUpdated = *w.DateUpdated
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z') {
			return false
		}
	}
	return true
}

// isSID accepts what can safely be placed in a request path: twilio-go substitutes
// SIDs into the path without escaping.
func isSID(s string) bool { return s != "" && len(s) <= maxSIDLength && isAlnum(s) }

// redactQuery drops the query of a URL for error messages (it may carry a FriendlyName
// filter).
func redactQuery(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		u.RawQuery = ""
		return u.String()
	}
	return "(unparsable URL)"
}
