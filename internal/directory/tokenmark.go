package directory

import (
	"fmt"
	"os"
	"time"
)

// Token changes, seen by other processes at once.
//
// Bearer authentication runs on every SCIM request, and reading the active tokens from the
// database each time costs more than the rest of a user lookup, so servers cache them. A cache
// must still see a revocation at once, including one made by another process: `flexbridge
// token revoke` runs beside the server and writes the same SQLite file. So, with SQLite, every
// token change (CreateToken, RevokeToken) appends one byte to a file beside the database,
// "<database>-tokens", after its commit and before it returns; TokenVersion is that file's
// size and modification time, which one stat reads. A cache keyed on the version reloads after
// every change, and the change is seen by every later request of every process. PostgreSQL
// servers may run as several replicas on several machines, where no such file is shared:
// TokenVersion reports false there, and each request reads the tokens.

// TokenVersion identifies the state of the token table; see TokenVersion.
type TokenVersion struct {
	size    int64
	modTime int64
}

// tokenMarkSuffix names the file beside the SQLite database whose size counts token changes.
const tokenMarkSuffix = "-tokens"

// TokenVersion returns a value that changes whenever a token is created or revoked through any
// store over the same SQLite database, and false when it cannot tell (PostgreSQL, or the file
// cannot be read): the caller must then read the tokens.
func (s *sqlStore) TokenVersion() (TokenVersion, bool) {
	if s.tokenMark == "" {
		return TokenVersion{}, false
	}
	fi, err := os.Stat(s.tokenMark)
	if err != nil {
		return TokenVersion{}, false
	}
	return TokenVersion{size: fi.Size(), modTime: fi.ModTime().UnixNano()}, true
}

// markTokensChanged records a committed token change for the caches of every process.
func (s *sqlStore) markTokensChanged() error {
	if s.tokenMark == "" {
		return nil
	}
	f, err := os.OpenFile(s.tokenMark, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		_, err = f.Write([]byte{'\n'})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("directory: the token change is saved, but running servers may see it only after %v: %w",
			TokenCacheMaxAge, err)
	}
	return nil
}

// TokenCacheMaxAge bounds how long a cache keyed on TokenVersion may serve tokens without
// reading them: the fallback should the change file not be written (a full disk).
const TokenCacheMaxAge = 5 * time.Second
