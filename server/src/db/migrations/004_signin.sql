-- The district's card-signing keys. A rotation withdraws the key in use and adds a new one; cards
-- signed by a withdrawn key are refused.
CREATE TABLE card_keys (
    id         INTEGER PRIMARY KEY,
    public_key BLOB NOT NULL,
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

-- Every attendance record the server has seen, with its proof checked again and its time
-- corrected. Written in the transaction that merged the record.
CREATE TABLE attendance_checks (
    attendance_id TEXT PRIMARY KEY,
    class_id      TEXT NOT NULL,
    village       TEXT NOT NULL,
    trainee_id    TEXT NOT NULL,
    day           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    method        TEXT NOT NULL,
    device        TEXT NOT NULL,
    responder     TEXT,
    at_ms         INTEGER NOT NULL,
    offset_ms     INTEGER,
    corrected_ms  INTEGER,
    received_ms   INTEGER NOT NULL,
    venue_lat     REAL,
    venue_lon     REAL,
    proof_valid   INTEGER,
    proof_hash    BLOB,
    payable       INTEGER NOT NULL
) STRICT;
CREATE INDEX attendance_checks_class ON attendance_checks (class_id);
CREATE INDEX attendance_checks_trainee ON attendance_checks (trainee_id, day);
CREATE INDEX attendance_checks_responder ON attendance_checks (responder, day);
CREATE INDEX attendance_checks_proof ON attendance_checks (proof_hash);
CREATE INDEX attendance_checks_device ON attendance_checks (device, class_id, day);

-- What looks wrong about a record, for the district's review.
CREATE TABLE attendance_flags (
    attendance_id TEXT NOT NULL,
    class_id      TEXT NOT NULL,
    flag          TEXT NOT NULL,
    detail        TEXT NOT NULL,
    blocks_pay    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (attendance_id, flag)
) STRICT, WITHOUT ROWID;
CREATE INDEX attendance_flags_class ON attendance_flags (class_id);
CREATE INDEX attendance_flags_flag ON attendance_flags (flag);
