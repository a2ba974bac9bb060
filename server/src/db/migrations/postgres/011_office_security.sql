-- PostgreSQL: the same change as ../011_office_security.sql (checked by the conformance suite).
-- Dashboard sessions, kept by the hash of their token: every replica sees them, logout and a
-- change to the account end them, and a copy of the database signs no one in.
CREATE TABLE office_sessions (
    token_hash   BYTEA PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX office_sessions_by_account ON office_sessions (account_id);

-- An account's unmaskings of the day are counted from the audit log.
CREATE INDEX audit_by_actor ON audit (actor, action, at_ms);
