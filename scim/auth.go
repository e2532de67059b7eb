package scim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/internal/logctx"
)

// TokenPrefix starts every bearer token flexbridge issues, so a leaked one is easy to recognise.
const TokenPrefix = "fbt_"

// NewToken returns a fresh bearer token secret (256 random bits) and the SHA-256 hash that is
// the only thing stored.
func NewToken() (secret string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashToken(secret), nil
}

// HashToken is the one-way function tokens are stored under.
func HashToken(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// TokenStore is what bearer authentication needs from the directory.
type TokenStore interface {
	ActiveTokens(ctx context.Context) ([]directory.Token, error)
	TouchToken(ctx context.Context, id int64, at time.Time) error
	// TokenVersion changes with every token created or revoked, by any process, before the
	// call that did it returns; false: unknown, read the tokens.
	TokenVersion() (directory.TokenVersion, bool)
}

type tokenKey struct{}

// TokenName returns the name of the token that authenticated the request ("" if none).
func TokenName(ctx context.Context) string {
	s, _ := ctx.Value(tokenKey{}).(string)
	return s
}

// bearerAuth authenticates every request with a bearer token whose SHA-256 hash is an
// active token in the store. Hashes are compared in constant time against every active
// token. The active tokens are cached under the store's TokenVersion, so that a token created
// or revoked by any process (the CLI included) counts from the next request on; a store that
// cannot tell (PostgreSQL) is read on every request, and no cache is used for longer than
// directory.TokenCacheMaxAge.
type bearerAuth struct {
	tokens TokenStore
	log    *zap.Logger
	now    func() time.Time

	mu      sync.Mutex
	touched map[int64]time.Time // last recorded use, to write at most once a minute per token

	cacheMu sync.RWMutex
	cache   tokenCache
}

type tokenCache struct {
	tokens  []directory.Token // nil: nothing cached
	version directory.TokenVersion
	at      time.Time
}

const touchEvery = time.Minute

func (a *bearerAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		secret, ok := bearerSecret(r.Header.Get("Authorization"))
		if !ok {
			writeError(w, unauthorized("A bearer token is required."))
			return
		}
		toks, err := a.activeTokens(ctx)
		if err != nil {
			writeError(w, toSCIMError(ctx, a.log, err))
			return
		}
		sum := HashToken(secret)
		var found *directory.Token
		for i := range toks {
			// Compare against every token so the time taken does not depend on which matched.
			if subtle.ConstantTimeCompare(sum, toks[i].Hash) == 1 {
				found = &toks[i]
			}
		}
		if found == nil {
			logctx.From(ctx, a.log).Info("scim request with an unknown or revoked token")
			writeError(w, unauthorized("The bearer token is not valid."))
			return
		}
		a.touch(ctx, found.ID)
		ctx = context.WithValue(ctx, tokenKey{}, found.Name)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// activeTokens returns the active tokens, from the cache while the store's TokenVersion is
// the one they were read under.
func (a *bearerAuth) activeTokens(ctx context.Context) ([]directory.Token, error) {
	version, ok := a.tokens.TokenVersion() // before reading: a change after it shows next time
	if !ok {
		return a.tokens.ActiveTokens(ctx)
	}
	now := a.now()
	a.cacheMu.RLock()
	c := a.cache
	a.cacheMu.RUnlock()
	if c.tokens != nil && c.version == version && now.Sub(c.at) < directory.TokenCacheMaxAge && !now.Before(c.at) {
		return c.tokens, nil
	}
	toks, err := a.tokens.ActiveTokens(ctx)
	if err != nil {
		return nil, err
	}
	if toks == nil {
		toks = []directory.Token{}
	}
	a.cacheMu.Lock()
	a.cache = tokenCache{tokens: toks, version: version, at: now}
	a.cacheMu.Unlock()
	return toks, nil
}

func (a *bearerAuth) touch(ctx context.Context, id int64) {
	now := a.now()
	a.mu.Lock()
	last, seen := a.touched[id]
	if seen && now.Sub(last) < touchEvery {
		a.mu.Unlock()
		return
	}
	a.touched[id] = now
	a.mu.Unlock()
	if err := a.tokens.TouchToken(ctx, id, now); err != nil {
		logctx.From(ctx, a.log).Warn("could not record token use", zap.Error(err))
	}
}

func bearerSecret(header string) (string, bool) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	return rest, rest != ""
}
