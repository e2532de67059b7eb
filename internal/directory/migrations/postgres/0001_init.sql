-- flexbridge directory, initial schema (PostgreSQL).
-- Identifiers compare bytewise (COLLATE "C") so ordering matches SQLite.

CREATE TABLE users (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    external_id     TEXT,
    user_name       TEXT        NOT NULL,
    user_name_lower TEXT        NOT NULL,
    active          BOOLEAN     NOT NULL,
    resource        JSON,
    version         BIGINT      NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    modified_at     TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_user_name_lower_key ON users (user_name_lower);
CREATE INDEX users_external_id_idx ON users (external_id);
CREATE INDEX users_created_idx ON users (created_at, id);

-- One row per user, kept after the user is deleted (deleted = TRUE) until the
-- reconciler has removed the worker. No foreign key to users on purpose.
CREATE TABLE sync_state (
    user_id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_name       TEXT COLLATE "C" NOT NULL,
    desired_gen     BIGINT      NOT NULL,
    applied_gen     BIGINT      NOT NULL DEFAULT 0,
    worker_sid      TEXT        NOT NULL DEFAULT '',
    deleted         BOOLEAN     NOT NULL DEFAULT FALSE,
    last_error      TEXT        NOT NULL DEFAULT '',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT        NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX sync_state_pending_idx ON sync_state (next_attempt_at, user_id)
    WHERE desired_gen > applied_gen;

CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT        NOT NULL DEFAULT '',
    action     TEXT        NOT NULL,
    user_id    TEXT        NOT NULL DEFAULT '',
    user_name  TEXT        NOT NULL DEFAULT '',
    worker_sid TEXT        NOT NULL DEFAULT '',
    outcome    TEXT        NOT NULL DEFAULT '',
    detail     JSON
);

CREATE TABLE tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT        NOT NULL,
    hash         BYTEA       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX tokens_active_name_key ON tokens (name) WHERE revoked_at IS NULL;
