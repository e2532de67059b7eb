// Package directory is flexbridge's store: the desired identity state that the
// ingress adapters (SCIM, SAML) write, the per-user sync state the reconciler
// works from, the audit trail and the SCIM bearer token hashes.
//
// One interface, Store, has one SQL implementation over database/sql that runs
// on SQLite (modernc.org/sqlite, pure Go) and PostgreSQL (pgx/v5 stdlib); the
// few places where the two differ live in dialect.go. Every backend passes the
// same conformance suite (package conformance).
//
// Consistency rules the rest of flexbridge relies on:
//   - A user write and its "needs sync" mark (desired_gen++ in the user's sync
//     state) commit in one transaction, so a change is never lost between the
//     store and the reconciler.
//   - The reconciler claims pending states with a lease (ClaimPending) and
//     reports the generation it applied (MarkApplied). A write during a sync
//     bumps desired_gen, so reporting an older generation leaves the user
//     pending: the newer change is picked up by the next claim.
//   - Deleting a user leaves a tombstone (a sync state with Deleted set) until
//     the reconciler reports the worker gone.
//   - Group writes mark exactly the users whose desired state they change (a
//     member added or removed; every member when the group's displayName or
//     externalId changes, since the mapping matches groups by them), in the
//     group write's transaction. Users whose memberships did not change are
//     left alone, so a change to a large group costs work in proportion to
//     the change, not to the group.
//
// All times are UTC and truncated to microseconds (PostgreSQL's resolution) so
// both backends return identical values. The clock is injected (Options.Now).
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"
)

// Error kinds. Errors returned by a Store wrap at most one of them (test with
// errors.Is); anything else is an internal error.
var (
	// ErrNotFound: the user, group, sync state or token does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness rule was violated (userName or a group's
	// displayName, case-insensitively; the name of an unrevoked token).
	ErrConflict = errors.New("conflict")
	// ErrPrecondition: the call contradicts the stored state, e.g. reporting a
	// sync generation that was never issued.
	ErrPrecondition = errors.New("precondition failed")
	// ErrInvalid: the input is malformed (empty userName, Resource that is not
	// JSON, a token hash that is not a SHA-256 digest, a group member that is
	// not a user, ...).
	ErrInvalid = errors.New("invalid input")
)

// Drivers accepted in Options.Driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// SQLiteBusyTimeout is how long a SQLite write waits for another connection or
// process holding the write lock before it fails.
const SQLiteBusyTimeout = 5 * time.Second

// Options configure Open.
type Options struct {
	// Driver is DriverSQLite or DriverPostgres.
	Driver string
	// DSN is, for SQLite, the database file's path (its folder is created if
	// needed); for PostgreSQL, a connection URL or keyword/value string that
	// pgx understands.
	DSN string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives migration and lifecycle messages; nil means no logging.
	Logger *zap.Logger
}

// User is the desired state of one identity, as the IdP last described it.
type User struct {
	ID         string // server-assigned (UUID v7: time-ordered)
	ExternalID string // "" when unset; stored as NULL, never matches a query
	UserName   string // unique case-insensitively
	Active     bool
	// Resource is the whole SCIM resource (without id and meta) as JSON. The
	// store keeps it byte for byte; nil/empty means none.
	Resource json.RawMessage
	Version  int64 // 1 on create, +1 on every write (ETag source)
	Created  time.Time
	Modified time.Time
}

// UserQuery selects users for ListUsers. Nil filters match everything.
type UserQuery struct {
	UserName   *string // exact match, case-insensitive
	ExternalID *string // exact match, case-sensitive
	Offset     int     // rows to skip (0-based; SCIM startIndex-1)
	Limit      int     // 0: no limit; <0: no rows, only the total
}

// MaxGroupMembers is the largest member list a group may have.
const MaxGroupMembers = 100_000

// Group is a SCIM group as the IdP last described it, with its members.
type Group struct {
	ID          string // server-assigned (UUID v7: time-ordered)
	DisplayName string // required; unique case-insensitively
	ExternalID  string // "" when unset; stored as NULL, never matches a query
	// Resource is the SCIM group (without id, meta and members) as JSON. The
	// store keeps it byte for byte; nil/empty means none.
	Resource json.RawMessage
	// Members are user IDs, sorted bytewise, without duplicates. Groups the
	// store returns have it filled (non-nil, possibly empty) by GetGroup,
	// CreateGroup, UpdateGroup and ListGroups with WithMembers; ListGroups
	// without it leaves it nil.
	Members  []string
	Version  int64 // 1 on create, +1 on every write (ETag source)
	Created  time.Time
	Modified time.Time
}

// GroupQuery selects groups for ListGroups. Nil filters match everything.
type GroupQuery struct {
	DisplayName *string // exact match, case-insensitive
	ExternalID  *string // exact match, case-sensitive
	Offset      int     // rows to skip (0-based; SCIM startIndex-1)
	Limit       int     // 0: no limit; <0: no rows, only the total
	WithMembers bool    // fill Members of the returned groups
}

// GroupRef names a group a user belongs to.
type GroupRef struct {
	ID          string
	DisplayName string
	ExternalID  string // "" when unset
}

// SyncState is the reconciler's bookkeeping for one user.
type SyncState struct {
	UserID     string
	UserName   string // the last known userName (kept for tombstones)
	DesiredGen int64  // bumped by every write that affects the user
	AppliedGen int64  // the newest generation the reconciler applied
	WorkerSID  string // the TaskRouter worker, "" if none is known
	// Deleted: the user was deleted; the worker must go, then the state row is
	// removed (by MarkApplied with a generation >= DesiredGen).
	Deleted       bool
	LastError     string
	Attempts      int       // failures since the last success or write
	NextAttemptAt time.Time // not claimable before this time
	LeaseOwner    string    // "" when not leased
	LeaseUntil    time.Time // zero when not leased; the lease is void after it
	UpdatedAt     time.Time
}

// Pending reports whether the state needs work from the reconciler.
func (s SyncState) Pending() bool { return s.DesiredGen > s.AppliedGen }

// SyncItem is one unit of work handed out by ClaimPending.
type SyncItem struct {
	State SyncState
	User  *User // the user as of State.DesiredGen; nil when State.Deleted
	// Groups are the user's groups as of State.DesiredGen, sorted like
	// GroupsOfUser; nil when the user is in none or State.Deleted.
	Groups []GroupRef
	// SAML is the user's SAMLIdentity.Identity as of State.DesiredGen; nil
	// when they never logged in by SAML or State.Deleted.
	SAML json.RawMessage
}

// AuditRecord is one entry of the audit trail.
type AuditRecord struct {
	ID        int64     // assigned by the store, increasing
	Time      time.Time // zero: the store's clock
	Actor     string
	Action    string // required
	UserID    string
	UserName  string
	WorkerSID string
	Outcome   string
	Detail    json.RawMessage // optional JSON
}

// Token is a SCIM bearer token. Only the SHA-256 of its secret is stored.
type Token struct {
	ID         int64
	Name       string
	Hash       []byte // SHA-256 of the secret, never the secret
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// Store is the directory. Implementations are safe for concurrent use, and
// several Stores (processes, replicas) may share one database.
type Store interface {
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database. It is safe to call more than once.
	Close() error

	// CreateUser stores a new user and marks it for sync, in one transaction.
	// The store assigns ID, Version (1), Created and Modified; the values of
	// those fields in u are ignored. ErrConflict if the userName is taken
	// (case-insensitively), ErrInvalid for an empty userName or a Resource
	// that is not JSON.
	CreateUser(ctx context.Context, u User) (User, error)
	// GetUser returns the user or ErrNotFound.
	GetUser(ctx context.Context, id string) (User, error)
	// ListUsers returns one page of the matching users ordered by (Created,
	// ID) and the total number of matches, read from one snapshot.
	ListUsers(ctx context.Context, q UserQuery) (users []User, total int, err error)
	// UpdateUser reads the user, calls mutate on a copy and writes the result
	// back with Version+1, marking the user for sync, all in one transaction
	// (concurrent updates of one user are serialised). An error from mutate
	// aborts the transaction and is returned as is. ID, Version, Created and
	// Modified are the store's; changes mutate makes to them are ignored.
	// ErrNotFound, ErrConflict (userName taken), ErrInvalid.
	UpdateUser(ctx context.Context, id string, mutate func(*User) error) (User, error)
	// DeleteUser removes the user (with its SAML identity) and turns its sync
	// state into a tombstone (Deleted, desired_gen++), and records the
	// userName as deprovisioned (GetDeprovisioned), in one transaction.
	// check, when not nil, is called in that transaction with the user's
	// current Version (an If-Match precondition): an error from it aborts the
	// transaction, so nothing is removed, and is returned as is.
	// ErrNotFound.
	DeleteUser(ctx context.Context, id string, check func(version int64) error) error

	// CreateGroup stores a new group with its members and marks every member
	// for sync, in one transaction. The store assigns ID, Version (1), Created
	// and Modified. Members may repeat (kept once) and must be IDs of existing
	// users: otherwise ErrInvalid naming the first unknown one, and nothing is
	// written. ErrConflict if the displayName is taken (case-insensitively),
	// ErrInvalid for an empty displayName, a Resource that is not JSON or more
	// than MaxGroupMembers members.
	CreateGroup(ctx context.Context, g Group) (Group, error)
	// GetGroup returns the group with its Members, or ErrNotFound.
	GetGroup(ctx context.Context, id string) (Group, error)
	// ListGroups returns one page of the matching groups ordered by (Created,
	// ID) and the total number of matches, read from one snapshot.
	ListGroups(ctx context.Context, q GroupQuery) (groups []Group, total int, err error)
	// UpdateGroup reads the group with its Members, calls mutate on a copy
	// and writes the result back with Version+1, in one transaction
	// (concurrent updates of one group are serialised). mutate may change
	// DisplayName, ExternalID, Resource and Members (the complete new list;
	// nil or empty removes everyone); the other fields are the store's. Only
	// the difference between the old and new member lists is written, and
	// only the users added or removed are marked for sync, unless the
	// displayName or externalId changed: then every old and new member is.
	// An error from mutate is returned as is. ErrNotFound, ErrConflict,
	// ErrInvalid as for CreateGroup (only added members are checked).
	UpdateGroup(ctx context.Context, id string, mutate func(*Group) error) (Group, error)
	// DeleteGroup removes the group and its memberships and marks every
	// ex-member for sync, in one transaction. check, when not nil, is called
	// in that transaction with the group's current Version before anything is
	// removed; an error from it aborts and is returned as is. ErrNotFound.
	DeleteGroup(ctx context.Context, id string, check func(version int64) error) error
	// GroupsOfUser returns the groups the user is a member of, ordered by
	// displayName case-insensitively; ErrNotFound if there is no such user.
	// DeleteUser removes the user's memberships (without bumping the groups'
	// Version).
	GroupsOfUser(ctx context.Context, userID string) ([]GroupRef, error)

	// ClaimPending leases up to limit states with DesiredGen > AppliedGen,
	// NextAttemptAt <= now and no live lease, to owner until now+lease, and
	// returns them with the current user and its groups read in the same
	// transaction, oldest NextAttemptAt first. Two owners never hold the same state at once
	// (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: the write lock).
	ClaimPending(ctx context.Context, owner string, lease time.Duration, limit int) ([]SyncItem, error)
	// MarkApplied records that generation gen (the State.DesiredGen of a
	// claimed item) is applied and the worker is workerSID ("" for none):
	// AppliedGen = gen, errors and attempts cleared, lease released. A
	// tombstone whose generation is reached is removed. A report older than
	// AppliedGen changes nothing. ErrNotFound if there is no state,
	// ErrPrecondition if gen > DesiredGen.
	MarkApplied(ctx context.Context, userID string, gen int64, workerSID string) error
	// MarkFailed records a failed attempt at generation gen: Attempts++,
	// LastError, NextAttemptAt = next, lease released. A report for a
	// generation already applied changes nothing. ErrNotFound, ErrPrecondition
	// as for MarkApplied.
	MarkFailed(ctx context.Context, userID string, gen int64, errText string, next time.Time) error
	// GetSyncState returns one state or ErrNotFound.
	GetSyncState(ctx context.Context, userID string) (SyncState, error)
	// ListSyncStates returns every state (tombstones included) ordered by
	// (UserName, UserID).
	ListSyncStates(ctx context.Context) ([]SyncState, error)
	// MarkAllForSync marks every live user for sync (after a mapping change)
	// and returns how many were marked.
	MarkAllForSync(ctx context.Context) (int, error)

	// AppendAudit adds a record; ID is assigned, a zero Time means now.
	AppendAudit(ctx context.Context, r AuditRecord) error
	// ListAudit returns the newest records first; limit <= 0 means all.
	ListAudit(ctx context.Context, limit int) ([]AuditRecord, error)

	// CreateToken stores a token hash (a SHA-256 digest, 32 bytes).
	// ErrConflict if an unrevoked token has that name.
	CreateToken(ctx context.Context, name string, hash []byte) (Token, error)
	// ListTokens returns every token, revoked ones included, oldest first.
	ListTokens(ctx context.Context) ([]Token, error)
	// ActiveTokens returns the unrevoked tokens; the caller compares hashes in
	// constant time.
	ActiveTokens(ctx context.Context) ([]Token, error)
	// RevokeToken revokes the active token with that name, or ErrNotFound.
	RevokeToken(ctx context.Context, name string) error
	// TokenVersion returns a value that changes with every CreateToken and
	// RevokeToken made through any store over the same database, before
	// they return; false when the store cannot tell (the caller then reads
	// the tokens each time).
	TokenVersion() (TokenVersion, bool)
	// TouchToken records a use of the token at the given time (it never moves
	// LastUsedAt backwards). ErrNotFound if the token does not exist.
	TouchToken(ctx context.Context, id int64, at time.Time) error

	// RememberAssertion records a consumed SAML assertion ID until the given
	// time and reports whether it was new (false: a replay). Atomic across
	// replicas. ErrInvalid for an empty or over-long ID.
	RememberAssertion(ctx context.Context, id string, until time.Time) (fresh bool, err error)
	// PutSAMLIdentity stores what a SAML login described for an existing
	// user; when IdP or Identity changed, the user is marked for sync in the
	// same transaction (changed reports it). ErrNotFound, ErrInvalid (Identity
	// not a JSON object).
	PutSAMLIdentity(ctx context.Context, si SAMLIdentity) (changed bool, err error)
	// GetSAMLIdentity returns the user's stored SAML identity or ErrNotFound.
	GetSAMLIdentity(ctx context.Context, userID string) (SAMLIdentity, error)
	// GetDeprovisioned returns the deletion record of a userName
	// (case-insensitively) or ErrNotFound.
	GetDeprovisioned(ctx context.Context, userName string) (Deprovisioned, error)
}
