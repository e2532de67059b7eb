-- flexbridge directory: what SAML logins need (SQLite).
-- Times are INTEGER microseconds since the Unix epoch, UTC.

-- The replay cache: IDs of assertions already consumed, kept until they
-- could no longer be accepted anyway. Shared by every replica.
CREATE TABLE saml_assertions (
    id         TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX saml_assertions_expires_idx ON saml_assertions (expires_at);

-- The person's identity as their last SAML login described it (JSON of
-- mapping.Identity's SAML-borne parts). Removed with the user.
CREATE TABLE saml_identities (
    user_id  TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    idp      TEXT    NOT NULL,
    identity TEXT    NOT NULL,
    login_at INTEGER NOT NULL
);

-- userNames deleted through SCIM: a later SAML login under one of them is
-- refused (the second removal step), unless a live user has the name again.
CREATE TABLE deprovisioned (
    user_name_lower TEXT    NOT NULL PRIMARY KEY,
    user_name       TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    deleted_at      INTEGER NOT NULL
);
