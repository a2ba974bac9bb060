-- Documents as a snapshot plus appended chunks, and the index rows queries use.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE docs (
    id       TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    village  TEXT NOT NULL,
    snapshot BLOB,
    next_seq INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE chunks (
    doc_id TEXT NOT NULL REFERENCES docs (id),
    seq    INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE classes (
    id                TEXT PRIMARY KEY REFERENCES docs (id),
    village           TEXT NOT NULL,
    title             TEXT NOT NULL,
    status            TEXT NOT NULL,
    occupation        TEXT NOT NULL,
    level             TEXT NOT NULL,
    training_type     TEXT NOT NULL,
    subsidised        INTEGER NOT NULL,
    first_day         TEXT NOT NULL,
    last_day          TEXT NOT NULL
) STRICT;
CREATE INDEX classes_by_village ON classes (village, status);

CREATE TABLE enrolments (
    class_id   TEXT NOT NULL REFERENCES classes (id),
    trainee_id TEXT NOT NULL,
    PRIMARY KEY (class_id, trainee_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX enrolments_by_trainee ON enrolments (trainee_id);

CREATE TABLE trainees (
    id          TEXT PRIMARY KEY REFERENCES docs (id),
    village     TEXT NOT NULL,
    blind_index BLOB NOT NULL,
    name_masked TEXT NOT NULL,
    household   TEXT
) STRICT;
CREATE INDEX trainees_by_blind_index ON trainees (blind_index);

CREATE TABLE households (
    id             TEXT PRIMARY KEY REFERENCES docs (id),
    village        TEXT NOT NULL,
    poverty_status TEXT NOT NULL
) STRICT;

CREATE TABLE conflicts (
    doc_id TEXT NOT NULL REFERENCES docs (id),
    path   TEXT NOT NULL,
    kind   TEXT NOT NULL,
    winner TEXT NOT NULL,
    vals   TEXT NOT NULL,
    PRIMARY KEY (doc_id, path)
) STRICT, WITHOUT ROWID;
