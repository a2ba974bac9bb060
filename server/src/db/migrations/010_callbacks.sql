-- Call-back sampling (电话回访): the trainee-days chosen for a call, by a keyed hash under the
-- server's call-back key (`sample`) or because a reviewer accepted a flagged record of the day
-- (`flag_accepted`); each open until a clerk records its outcome. Three unanswered attempts close a
-- call as `unreachable`.
CREATE TABLE callbacks (
    id          TEXT PRIMARY KEY,
    class_id    TEXT NOT NULL,
    village     TEXT NOT NULL,
    trainee_id  TEXT NOT NULL,
    day         TEXT NOT NULL,
    reason      TEXT NOT NULL,
    per_million INTEGER NOT NULL,
    selected_ms INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT,
    note        TEXT,
    decided_by  TEXT,
    decided_ms  INTEGER,
    UNIQUE (class_id, trainee_id, day)
) STRICT;
CREATE INDEX callbacks_open ON callbacks (outcome, day, selected_ms);

-- Every attempt, answered or not.
CREATE TABLE callback_attempts (
    callback_id TEXT NOT NULL,
    n           INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    note        TEXT NOT NULL,
    account     TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    PRIMARY KEY (callback_id, n)
) STRICT, WITHOUT ROWID;

-- A class held after a denial: its records do not count until the office decides the review
-- subject `hold:<callback id>` (accepted: cleared; rejected: the class's records are rejected).
CREATE TABLE class_holds (
    callback_id TEXT PRIMARY KEY,
    class_id    TEXT NOT NULL,
    held_ms     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX class_holds_by_class ON class_holds (class_id);

-- The blind index of a trainee's mobile number (HMAC under the blind-index key): one number on
-- file for several people, the coordinator's own perhaps, would send a call-back to the wrong
-- person.
ALTER TABLE p_trainees ADD COLUMN phone_index BLOB;
CREATE INDEX p_trainees_phone ON p_trainees (phone_index);
