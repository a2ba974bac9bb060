-- PostgreSQL: the same tables, columns and indexes as ../001_documents.sql, in PostgreSQL's types (checked by
-- the conformance suite).
-- Documents as snapshot + appended chunks, the change feed per village, and the requests seen.
CREATE TABLE docs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    district    TEXT NOT NULL,
    village     TEXT NOT NULL,
    snapshot    BYTEA,
    heads       BYTEA NOT NULL,
    ops         BIGINT NOT NULL DEFAULT 0,
    chunk_count BIGINT NOT NULL DEFAULT 0,
    next_seq    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE chunks (
    doc_id TEXT NOT NULL REFERENCES docs (id),
    seq    BIGINT NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (doc_id, seq)
);

-- One monotonic sequence per village.
CREATE TABLE villages (
    code     TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

-- Every merge that changed a document, with the document's heads after it.
CREATE TABLE feed (
    village TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    doc_id  TEXT NOT NULL REFERENCES docs (id),
    heads   BYTEA NOT NULL,
    PRIMARY KEY (village, seq)
);
CREATE INDEX feed_by_doc ON feed (village, doc_id, seq);

-- Requests already applied, so a retry gets the same acknowledgements.
CREATE TABLE requests (
    device     TEXT NOT NULL,
    request_id BYTEA NOT NULL,
    body_hash  BYTEA NOT NULL,
    acks       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device, request_id)
);
