package taskrouter

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// twilio-go builds every TaskRouter URL on this base (rest/taskrouter/v1/api_service.go).
const (
	twilioBaseURL = "https://taskrouter.twilio.com"
	twilioHost    = "taskrouter.twilio.com"
)

// errForeignHost refuses a request to a host that is neither Twilio's TaskRouter nor
// the configured base URL (a next_page_url pointing elsewhere): the request would carry
// the account's credentials.
var errForeignHost = errors.New("refusing to send credentials to an unexpected host")

// exchange records what the transport saw during one adapter call. twilio-go drops the
// response (headers included) when Twilio answers with an error status, so this is the
// only place Retry-After and the real status survive. One exchange belongs to one call,
// which makes it safe under any number of concurrent calls.
type exchange struct {
	mu         sync.Mutex
	answered   bool
	status     int
	retryAfter time.Duration
	bodies     []*drainingBody
}

func (ex *exchange) record(resp *http.Response, now time.Time) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.answered = true
	ex.status = resp.StatusCode
	ex.retryAfter = 0
	if resp.StatusCode >= 400 {
		ex.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	body := &drainingBody{rc: resp.Body}
	resp.Body = body
	ex.bodies = append(ex.bodies, body)
}

// drainingBody reads what is left of a response body (up to a limit) before closing
// it, so the connection returns to the pool: twilio-go stops at the end of the JSON
// value. Close is idempotent.
type drainingBody struct {
	rc   io.ReadCloser
	once sync.Once
	err  error
}

const maxDrain = 64 << 10

func (b *drainingBody) Read(p []byte) (int, error) { return b.rc.Read(p) }

func (b *drainingBody) Close() error {
	b.once.Do(func() {
		_, _ = io.CopyN(io.Discard, b.rc, maxDrain)
		b.err = b.rc.Close()
	})
	return b.err
}

func (ex *exchange) result() (status int, retryAfter time.Duration, answered bool) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.status, ex.retryAfter, ex.answered
}

// closeBodies closes every response body of the call. twilio-go closes bodies of
// successful responses but leaks the body of an error response (client.doWithErr),
// which would keep the connection from being reused.
func (ex *exchange) closeBodies() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	for _, b := range ex.bodies {
		_ = b.Close()
	}
	ex.bodies = nil
}

// callTransport is the http.RoundTripper of one adapter call. It
//   - attaches the call's context (caller context + per-request timeout) to the
//     request twilio-go built with context.Background(), so cancellation reaches the
//     connection without any extra goroutine;
//   - redirects https://taskrouter.twilio.com to the configured base URL;
//   - refuses any other host;
//   - records status, Retry-After and the response body in the call's exchange.
type callTransport struct {
	ctx      context.Context
	base     http.RoundTripper
	redirect *url.URL // nil: real Twilio
	ex       *exchange
	now      func() time.Time
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(t.ctx)
	host := strings.ToLower(req.URL.Host)
	switch {
	case host == twilioHost && t.redirect != nil:
		rewrite(out.URL, t.redirect)
		out.Host = ""
	case host == twilioHost:
	case t.redirect != nil && host == strings.ToLower(t.redirect.Host):
		// A next_page_url the redirected server built with its own address.
	default:
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, errForeignHost
	}
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	t.ex.record(resp, t.now())
	return resp, nil
}

// rewrite points u at base, keeping u's path (after base's path prefix) and query.
func rewrite(u *url.URL, base *url.URL) {
	u.Scheme = base.Scheme
	u.Host = base.Host
	u.Path = base.Path + u.Path
	u.RawPath = ""
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3). Anything else, or a moment already past, yields 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		switch {
		case secs <= 0:
			return 0
		case secs > math.MaxInt64/int64(time.Second):
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		if d := at.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// noRedirect mirrors twilio-go's default client: return a 3xx as is, never follow it
// (following would also re-send the credentials elsewhere).
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
