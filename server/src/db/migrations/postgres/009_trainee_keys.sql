-- PostgreSQL: the same change as ../009_trainee_keys.sql (checked by the conformance suite).
CREATE TABLE trainee_keys (
    registration_id TEXT NOT NULL,
    class_id        TEXT NOT NULL,
    trainee_id      TEXT NOT NULL,
    responder       TEXT NOT NULL,
    witness         TEXT NOT NULL,
    registrar       TEXT NOT NULL,
    registered_ms   BIGINT NOT NULL,
    received_ms     BIGINT NOT NULL,
    valid           BIGINT NOT NULL,
    problem         TEXT,
    PRIMARY KEY (class_id, registration_id)
);
CREATE INDEX trainee_keys_by_trainee ON trainee_keys (trainee_id, responder);

ALTER TABLE attendance_checks ADD COLUMN responder_distance_m DOUBLE PRECISION;
ALTER TABLE attendance_checks ADD COLUMN responder_uptime_ms BIGINT;
ALTER TABLE attendance_checks ADD COLUMN card_hash BYTEA;
CREATE INDEX attendance_checks_card ON attendance_checks (class_id, day, kind, trainee_id);
