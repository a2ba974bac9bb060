-- The district, its places, the people who work in it, their phones, and the audit log.
CREATE TABLE district (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- Townships are the first nine digits of their villages' codes.
CREATE TABLE townships (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL
) STRICT;

CREATE TABLE places (
    code     TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    township TEXT NOT NULL REFERENCES townships (code)
) STRICT;

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    password_hash TEXT,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE account_villages (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    village    TEXT NOT NULL REFERENCES places (code),
    PRIMARY KEY (account_id, village)
) STRICT, WITHOUT ROWID;

-- One-time enrollment codes, kept only as their hash.
CREATE TABLE enrollment_codes (
    code_hash  BLOB PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_by    TEXT
) STRICT, WITHOUT ROWID;

CREATE TABLE devices (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

-- The automerge actors whose changes a device may send.
CREATE TABLE device_actors (
    actor     BLOB PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id)
) STRICT, WITHOUT ROWID;

-- The challenge each device signs for its next access token.
CREATE TABLE device_challenges (
    device_id  TEXT PRIMARY KEY REFERENCES devices (id),
    challenge  BLOB NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Append-only and hash-chained: each entry's hash covers the previous entry's hash and its own
-- fields, so an altered, removed or reordered entry breaks the chain from there on.
CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL,
    hash    BLOB NOT NULL
) STRICT;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
