-- Documents as snapshot + appended chunks, the change feed per village, and the requests seen.
CREATE TABLE docs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    district    TEXT NOT NULL,
    village     TEXT NOT NULL,
    snapshot    BLOB,
    heads       BLOB NOT NULL,
    ops         INTEGER NOT NULL DEFAULT 0,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    next_seq    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE chunks (
    doc_id TEXT NOT NULL REFERENCES docs (id),
    seq    INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
) STRICT, WITHOUT ROWID;

-- One monotonic sequence per village.
CREATE TABLE villages (
    code     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) STRICT;

-- Every merge that changed a document, with the document's heads after it.
CREATE TABLE feed (
    village TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    doc_id  TEXT NOT NULL REFERENCES docs (id),
    heads   BLOB NOT NULL,
    PRIMARY KEY (village, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX feed_by_doc ON feed (village, doc_id, seq);

-- Requests already applied, so a retry gets the same acknowledgements.
CREATE TABLE requests (
    device     TEXT NOT NULL,
    request_id BLOB NOT NULL,
    body_hash  BLOB NOT NULL,
    acks       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (device, request_id)
) STRICT, WITHOUT ROWID;
