-- flexbridge directory: SCIM groups and memberships (SQLite).
-- Times are INTEGER microseconds since the Unix epoch, UTC.

CREATE TABLE groups (
    id                 TEXT    NOT NULL PRIMARY KEY,
    display_name       TEXT    NOT NULL,
    display_name_lower TEXT    NOT NULL,
    external_id        TEXT,
    resource           TEXT,
    version            INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    modified_at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX groups_display_name_lower_key ON groups (display_name_lower);
CREATE INDEX groups_external_id_idx ON groups (external_id);
CREATE INDEX groups_created_idx ON groups (created_at, id);

-- One row per (group, user). Deleting a user or a group removes its rows
-- (the store opens SQLite with foreign keys on).
CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_members_user_idx ON group_members (user_id);
