// Package logctx carries a request-scoped *zap.Logger (with the request ID already attached)
// through a context.Context, so handlers deep in a call chain log with the right fields
// without a global logger.
package logctx

import (
	"context"

	"go.uber.org/zap"
)

type key struct{}

// With returns a copy of ctx carrying log.
func With(ctx context.Context, log *zap.Logger) context.Context {
	return context.WithValue(ctx, key{}, log)
}

// From returns the logger carried by ctx, or fallback when there is none.
func From(ctx context.Context, fallback *zap.Logger) *zap.Logger {
	if l, ok := ctx.Value(key{}).(*zap.Logger); ok && l != nil {
		return l
	}
	if fallback == nil {
		return zap.NewNop()
	}
	return fallback
}
