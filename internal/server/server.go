// Package server holds flexbridge's HTTP plumbing shared by every route: request IDs, access
// logs without bodies or credentials, panic recovery, and the health endpoints.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"time"

	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/logctx"
)

// RequestIDHeader carries the request ID in and out.
const RequestIDHeader = "X-Request-Id"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

type ridKey struct{}

// RequestID returns the request ID of ctx ("" outside a request).
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(ridKey{}).(string)
	return s
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Wrap adds a request ID (taken from X-Request-Id when it is well-formed, else generated), a
// request-scoped logger in the context, an access log line and panic recovery around h.
// Nothing of the request body, the query string or the Authorization header is logged.
func Wrap(h http.Handler, log *zap.Logger, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := r.Header.Get(RequestIDHeader)
		if !validRequestID.MatchString(rid) {
			rid = newRequestID()
		}
		w.Header().Set(RequestIDHeader, rid)
		rlog := log.With(zap.String("request_id", rid))
		ctx := logctx.With(context.WithValue(r.Context(), ridKey{}, rid), rlog)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		start := now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				rlog.Error("panic while serving request", zap.Any("panic", p), zap.Stack("stack"))
				if !sw.wrote {
					http.Error(sw, "internal error (request "+rid+")", http.StatusInternalServerError)
				}
			}
			rlog.Info("http request",
				zap.String("method", r.Method),
				zap.String("path", r.URL.Path),
				zap.Int("status", sw.status),
				zap.Int64("bytes", sw.n),
				zap.Duration("took", now().Sub(start)),
				zap.String("remote", r.RemoteAddr),
			)
		}()
		h.ServeHTTP(sw, r.WithContext(ctx))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Health registers /healthz (the process answers) and /readyz (ready reports nil, e.g. the
// store answers a ping within two seconds).
func Health(mux *http.ServeMux, ready func(ctx context.Context) error, log *zap.Logger) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			logctx.From(r.Context(), log).Warn("not ready", zap.Error(err))
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
