-- flexbridge directory, initial schema (SQLite).
-- Times are INTEGER microseconds since the Unix epoch, UTC.

CREATE TABLE users (
    id              TEXT    NOT NULL PRIMARY KEY,
    external_id     TEXT,
    user_name       TEXT    NOT NULL,
    user_name_lower TEXT    NOT NULL,
    active          INTEGER NOT NULL CHECK (active IN (0, 1)),
    resource        TEXT,
    version         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    modified_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_user_name_lower_key ON users (user_name_lower);
CREATE INDEX users_external_id_idx ON users (external_id);
CREATE INDEX users_created_idx ON users (created_at, id);

-- One row per user, kept after the user is deleted (deleted = 1) until the
-- reconciler has removed the worker. No foreign key to users on purpose.
CREATE TABLE sync_state (
    user_id         TEXT    NOT NULL PRIMARY KEY,
    user_name       TEXT    NOT NULL,
    desired_gen     INTEGER NOT NULL,
    applied_gen     INTEGER NOT NULL DEFAULT 0,
    worker_sid      TEXT    NOT NULL DEFAULT '',
    deleted         INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    last_error      TEXT    NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     INTEGER,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX sync_state_pending_idx ON sync_state (next_attempt_at, user_id)
    WHERE desired_gen > applied_gen;

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL DEFAULT '',
    action     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL DEFAULT '',
    user_name  TEXT    NOT NULL DEFAULT '',
    worker_sid TEXT    NOT NULL DEFAULT '',
    outcome    TEXT    NOT NULL DEFAULT '',
    detail     TEXT
);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    hash         BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE UNIQUE INDEX tokens_active_name_key ON tokens (name) WHERE revoked_at IS NULL;
