package saml

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"regexp"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flexbridge/flexbridge/internal/logctx"
)

// ErrRefused is what a LoginHandler wraps to refuse a person the IdP did authenticate (deleted
// or deactivated through SCIM, denied by the mapping): the browser gets a 403 page saying the
// account may not sign in, and the wrapped text is logged, never shown.
//
//	return "", fmt.Errorf("user %s is deactivated: %w", id, saml.ErrRefused)
var ErrRefused = errors.New("saml: login refused")

// kind is the closed set of ways a request to this package can fail. Each maps to one status
// and one generic message in page; the specific reason only goes to the log.
type kind int

const (
	kindMalformed   kind = iota + 1 // 400: not a SAML response we can read (encoding, XML, shape)
	kindTooLarge                    // 413: over the size cap, refused before parsing
	kindRejected                    // 403: well-formed, but fails a check (signature, time, audience, replay...)
	kindRefused                     // 403: valid, but this person may not sign in (LoginHandler or attribute policy)
	kindUnavailable                 // 503: a dependency (replay cache, store) did not answer
	kindInternal                    // 500: a bug or a misconfiguration on our side
)

// failure is a refused request: kind decides the answer, reason is a short stable token for
// logs, dashboards and tests ("audience_mismatch"), err carries detail for the log only.
type failure struct {
	kind   kind
	reason string
	err    error
}

func (f *failure) Error() string {
	if f.err == nil {
		return f.reason
	}
	return f.reason + ": " + f.err.Error()
}

func (f *failure) Unwrap() error { return f.err }

// fail builds a failure; format and args describe it for the log and must never include the
// SAML message itself.
func fail(k kind, reason, format string, args ...any) *failure {
	var err error
	if format != "" {
		err = fmt.Errorf(format, args...)
	}
	return &failure{kind: k, reason: reason, err: err}
}

func malformed(reason, format string, args ...any) *failure {
	return fail(kindMalformed, reason, format, args...)
}

func rejected(reason, format string, args ...any) *failure {
	return fail(kindRejected, reason, format, args...)
}

// asFailure turns any error into a failure: ErrRefused from the LoginHandler, context errors,
// and everything else as internal.
func asFailure(err error) *failure {
	var f *failure
	switch {
	case errors.As(err, &f):
		return f
	case errors.Is(err, ErrRefused):
		return &failure{kind: kindRefused, reason: "login_handler_refused", err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &failure{kind: kindUnavailable, reason: "timeout", err: err}
	}
	return &failure{kind: kindInternal, reason: "internal", err: err}
}

// page is the one place where a failure kind becomes a status and a message for the browser.
func page(k kind) (int, string, string) {
	switch k {
	case kindMalformed:
		return http.StatusBadRequest, "Sign-in failed",
			"The sign-in response could not be read. Please start again from your sign-in page."
	case kindTooLarge:
		return http.StatusRequestEntityTooLarge, "Sign-in failed",
			"The sign-in response is too large. Please start again from your sign-in page."
	case kindRejected:
		return http.StatusForbidden, "Sign-in failed",
			"The sign-in could not be completed. Please start again from your sign-in page."
	case kindRefused:
		return http.StatusForbidden, "Access denied",
			"Your account is not allowed to sign in here. If you think this is wrong, contact your administrator."
	case kindUnavailable:
		return http.StatusServiceUnavailable, "Try again",
			"The service is busy. Please try again in a moment."
	}
	return http.StatusInternalServerError, "Sign-in failed",
		"Something went wrong on our side while signing you in. Please try again later."
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p><p>Reference: <code>{{.RequestID}}</code></p></body></html>
`))

// writeFailure logs f with its specific reason and answers a plain HTML page carrying only a
// generic message and the correlation id.
func writeFailure(w http.ResponseWriter, log *zap.Logger, rid string, f *failure, fields ...zap.Field) {
	status, title, msg := page(f.kind)
	lvl := zapcore.WarnLevel
	switch f.kind {
	case kindRefused:
		lvl = zapcore.InfoLevel
	case kindInternal, kindUnavailable:
		lvl = zapcore.ErrorLevel
	}
	fields = append(fields, zap.String("reason", f.reason), zap.Int("status", status))
	if f.err != nil {
		fields = append(fields, zap.String("detail", f.err.Error()))
	}
	log.Log(lvl, "saml request refused", fields...)

	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'")
	h.Del("Location")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, struct{ Title, Message, RequestID string }{title, msg, rid})
}

// requestIDHeader is internal/server.RequestIDHeader; the server middleware sets it on the
// response before calling any handler, so the page shows the id that every log line carries.
const requestIDHeader = "X-Request-Id"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestLog returns the logger and correlation id of r. Behind internal/server.Wrap both come
// from the request (logctx and the X-Request-Id response header); a bare handler makes its own.
func (sp *SP) requestLog(w http.ResponseWriter, r *http.Request) (*zap.Logger, string) {
	return requestLogNamed(sp.log, "saml", w, r)
}

// requestLogNamed is requestLog for any handler of this package: base is its own logger, and
// name is appended to the request's logger when there is one.
func requestLogNamed(base *zap.Logger, name string, w http.ResponseWriter, r *http.Request) (*zap.Logger, string) {
	log := logctx.From(r.Context(), base)
	if log != base {
		log = log.Named(name)
	}
	rid := w.Header().Get(requestIDHeader)
	if !validRequestID.MatchString(rid) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		rid = hex.EncodeToString(b[:])
		w.Header().Set(requestIDHeader, rid)
		log = log.With(zap.String("request_id", rid))
	}
	return log, rid
}
