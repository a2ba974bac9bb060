-- Trainee phone keys registered to their trainees in person (ADR 0007), as filed in class
-- documents, each checked once when it arrives: valid, or why not.
CREATE TABLE trainee_keys (
    registration_id TEXT NOT NULL,
    class_id        TEXT NOT NULL,
    trainee_id      TEXT NOT NULL,
    responder       TEXT NOT NULL,
    witness         TEXT NOT NULL,
    registrar       TEXT NOT NULL,
    registered_ms   INTEGER NOT NULL,
    received_ms     INTEGER NOT NULL,
    valid           INTEGER NOT NULL,
    problem         TEXT,
    PRIMARY KEY (class_id, registration_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX trainee_keys_by_trainee ON trainee_keys (trainee_id, responder);

-- What a response says of the trainee's phone: how far its own fix was from the recording phone's
-- (when both had one) and its time since boot.
ALTER TABLE attendance_checks ADD COLUMN responder_distance_m REAL;
ALTER TABLE attendance_checks ADD COLUMN responder_uptime_ms INTEGER;
-- A card scan's fingerprint (SHA-256 of the card), to find another phone's scan of it.
ALTER TABLE attendance_checks ADD COLUMN card_hash BLOB;
CREATE INDEX attendance_checks_card ON attendance_checks (class_id, day, kind, trainee_id);
