-- flexbridge directory: SCIM groups and memberships (PostgreSQL).
-- Identifiers and the folded name compare bytewise (COLLATE "C") so ordering
-- matches SQLite.

CREATE TABLE groups (
    id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    display_name       TEXT        NOT NULL,
    display_name_lower TEXT COLLATE "C" NOT NULL,
    external_id        TEXT,
    resource           JSON,
    version            BIGINT      NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    modified_at        TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX groups_display_name_lower_key ON groups (display_name_lower);
CREATE INDEX groups_external_id_idx ON groups (external_id);
CREATE INDEX groups_created_idx ON groups (created_at, id);

-- One row per (group, user). Deleting a user or a group removes its rows.
CREATE TABLE group_members (
    group_id TEXT COLLATE "C" NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id);
