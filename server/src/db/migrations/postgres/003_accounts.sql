-- PostgreSQL: the same tables, columns and indexes as ../003_accounts.sql, in PostgreSQL's types (checked by
-- the conformance suite).
-- The district, its places, the people who work in it, their phones, and the audit log.
CREATE TABLE district (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Townships are the first nine digits of their villages' codes.
CREATE TABLE townships (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE places (
    code     TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    township TEXT NOT NULL REFERENCES townships (code)
);

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    password_hash TEXT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE account_villages (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    village    TEXT NOT NULL REFERENCES places (code),
    PRIMARY KEY (account_id, village)
);

-- One-time enrollment codes, kept only as their hash.
CREATE TABLE enrollment_codes (
    code_hash  BYTEA PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_by    TEXT
);

CREATE TABLE devices (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- The automerge actors whose changes a device may send.
CREATE TABLE device_actors (
    actor     BYTEA PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id)
);

-- The challenge each device signs for its next access token.
CREATE TABLE device_challenges (
    device_id  TEXT PRIMARY KEY REFERENCES devices (id),
    challenge  BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Append-only and hash-chained: each entry's hash covers the previous entry's hash and its own
-- fields, so an altered, removed or reordered entry breaks the chain from there on.
CREATE TABLE audit (
    seq     BIGINT PRIMARY KEY,
    at_ms   BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL,
    hash    BYTEA NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
