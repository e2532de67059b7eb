package taskrouter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	twclient "github.com/twilio/twilio-go/client"
)

// Twilio error codes the adapter gives a meaning to.
const (
	codeInvalidParameter = 20001 // TaskRouter's answer to a duplicate FriendlyName (among other invalid parameters)
	codeNotFound         = 20404
	codeTooManyRequests  = 20429
)

// Error is the only error type the adapter returns (caller-supplied errors from a
// ListWorkers visit func excepted). It is built in one place, classify.
//
// Status is the HTTP status of Twilio's answer (0 when no answer arrived: timeout,
// connection error, cancelled context, invalid argument). Code is Twilio's error code
// (https://www.twilio.com/docs/api/errors), 0 when the body carried none. Message is
// Twilio's message; it can quote request values (a FriendlyName), so it is never logged
// by the adapter. RetryAfter is the server's Retry-After, when it sent one. Err is the
// underlying cause (twilio-go's error, a net error, context.Canceled, ...).
type Error struct {
	Op         string
	Status     int
	Code       int
	Message    string
	RetryAfter time.Duration
	Err        error

	timeout bool // our own per-request deadline or a network timeout fired
	network bool // no HTTP answer: connection refused/reset, DNS, TLS, ...
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("taskrouter: ")
	b.WriteString(e.Op)
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
		if e.Code != 0 {
			fmt.Fprintf(&b, " (code %d)", e.Code)
		}
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
	case e.Message != "":
		b.WriteString(": ")
		b.WriteString(e.Message)
	case e.Err != nil:
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func asError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// IsNotFound reports whether Twilio answered 404 (code 20404): the worker (or
// workspace) does not exist.
func IsNotFound(err error) bool {
	e, ok := asError(err)
	return ok && (e.Status == http.StatusNotFound || e.Code == codeNotFound)
}

// IsPreconditionFailed reports whether an If-Match did not match the worker's
// current ETag (HTTP 412): someone else changed the worker; re-read and retry.
func IsPreconditionFailed(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusPreconditionFailed
}

// IsDuplicateName reports whether Twilio refused a FriendlyName that another worker
// of the workspace already has (code 20001). 20001 is Twilio's generic
// "invalid parameter" code, so a caller that wants to adopt the existing worker must
// confirm with FindWorker; if nothing is found the request was invalid for another
// reason.
func IsDuplicateName(err error) bool {
	e, ok := asError(err)
	return ok && e.Code == codeInvalidParameter
}

// IsRateLimited reports whether Twilio answered 429 (code 20429). RetryAfter tells how
// long it asked the caller to wait, when it said so.
func IsRateLimited(err error) bool {
	e, ok := asError(err)
	return ok && (e.Status == http.StatusTooManyRequests || e.Code == codeTooManyRequests)
}

// IsTransient reports whether the same request may succeed later: 429, any 5xx, our
// per-request timeout, or a connection-level failure (no HTTP answer). A cancelled or
// expired caller context is not transient: the caller chose to stop. Note that a
// transient failure of a create may still have created the worker: look it up before
// retrying.
func IsTransient(err error) bool {
	e, ok := asError(err)
	if !ok {
		return false
	}
	return e.Status == http.StatusTooManyRequests || e.Code == codeTooManyRequests ||
		e.Status >= 500 || e.timeout || e.network
}

// RetryAfter returns the delay Twilio asked for with a Retry-After header (integer
// seconds or an HTTP date), or 0 if it gave none.
func RetryAfter(err error) time.Duration {
	if e, ok := asError(err); ok {
		return e.RetryAfter
	}
	return 0
}

// classify turns whatever a twilio-go call returned into an *Error. It is the only
// place that interprets errors. parent is the caller's context, call the per-request
// context derived from it (with the HTTP timeout), ex what the transport saw.
func classify(op string, err error, parent, call context.Context, ex *exchange) *Error {
	e := &Error{Op: op, Err: err}
	status, retryAfter, answered := ex.result()
	if answered && status >= 400 {
		e.Status = status
		e.RetryAfter = retryAfter
	}

	// The caller gave up: report its reason, whatever the transport saw.
	if cerr := parent.Err(); cerr != nil && (!answered || status < 400) {
		e.Err = cerr
		e.Message = ""
		return e
	}

	var rest *twclient.TwilioRestError
	var restV1 *twclient.RestErrorV1
	var ne net.Error
	switch {
	case errors.As(err, &rest):
		e.Code = rest.Code
		e.Message = rest.Message
		if e.Status == 0 {
			// Local validation by twilio-go (e.g. illegal characters in credentials)
			// produces a TwilioRestError without any request being sent.
			e.Status = rest.Status
		}
	case errors.As(err, &restV1):
		e.Code = restV1.Code
		e.Message = restV1.Message
		if e.Status == 0 {
			e.Status = restV1.HttpStatusCode
		}
	case answered && status >= 400:
		// twilio-go could not decode the error body (HTML from a proxy, empty 503...).
		// The status captured by the transport is what counts.
	case errors.Is(err, errForeignHost):
		e.Message = errForeignHost.Error()
	case errors.Is(call.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		// Our per-request timeout, while waiting for the answer or reading its body.
		e.timeout = true
		e.Message = "request timed out"
	case answered:
		// A 2xx/3xx twilio-go could not decode.
		e.Status = status
		e.Message = "unexpected response"
	case errors.As(err, &ne):
		e.network = true
	}
	if e.Message == "" && e.Status >= 400 {
		e.Message = http.StatusText(e.Status)
	}
	return e
}

// invalidArg reports a caller mistake caught before any request was made.
func invalidArg(op, format string, args ...any) *Error {
	return &Error{Op: op, Message: fmt.Sprintf(format, args...), Err: errInvalidArgument}
}

// errInvalidArgument is wrapped by errors about arguments refused before sending.
var errInvalidArgument = errors.New("invalid argument")
