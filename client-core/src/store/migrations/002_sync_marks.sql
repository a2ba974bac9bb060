-- Per-document sync bookkeeping: what the server last acknowledged and whether local changes wait.
CREATE TABLE sync_marks (
    doc_id      TEXT PRIMARY KEY REFERENCES docs (id),
    acked_heads BLOB NOT NULL DEFAULT x'',
    dirty       INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
CREATE INDEX sync_marks_dirty ON sync_marks (dirty) WHERE dirty = 1;

INSERT INTO sync_marks (doc_id, acked_heads, dirty) SELECT id, x'', 1 FROM docs;
