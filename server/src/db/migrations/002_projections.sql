-- Typed rows projected from the documents in the same transaction as each merge, for the district's
-- reports. Personal data appears only as a blind index and masks.
CREATE TABLE p_classes (
    id                TEXT PRIMARY KEY REFERENCES docs (id),
    district          TEXT NOT NULL,
    village           TEXT NOT NULL,
    title             TEXT NOT NULL,
    status            TEXT NOT NULL,
    occupation        TEXT NOT NULL,
    level             TEXT NOT NULL,
    training_type     TEXT NOT NULL,
    subsidised        INTEGER NOT NULL,
    first_day         TEXT NOT NULL,
    last_day          TEXT NOT NULL,
    sign_out_required INTEGER NOT NULL
) STRICT;
CREATE INDEX p_classes_by_village ON p_classes (district, village, first_day);

CREATE TABLE p_enrolments (
    class_id   TEXT NOT NULL REFERENCES p_classes (id),
    trainee_id TEXT NOT NULL,
    completion TEXT,
    PRIMARY KEY (class_id, trainee_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX p_enrolments_by_trainee ON p_enrolments (trainee_id);

CREATE TABLE p_attendance_days (
    class_id   TEXT NOT NULL REFERENCES p_classes (id),
    trainee_id TEXT NOT NULL,
    day        TEXT NOT NULL,
    signed_in  INTEGER NOT NULL,
    signed_out INTEGER NOT NULL,
    payable    INTEGER NOT NULL,
    PRIMARY KEY (class_id, trainee_id, day)
) STRICT, WITHOUT ROWID;

CREATE TABLE p_trainees (
    id          TEXT PRIMARY KEY REFERENCES docs (id),
    district    TEXT NOT NULL,
    village     TEXT NOT NULL,
    blind_index BLOB NOT NULL,
    name_masked TEXT NOT NULL,
    id_masked   TEXT NOT NULL,
    phone_masked TEXT,
    sex         TEXT,
    birth_year  INTEGER,
    household   TEXT,
    key_groups  TEXT NOT NULL
) STRICT;
CREATE INDEX p_trainees_by_blind_index ON p_trainees (blind_index);

CREATE TABLE p_households (
    id             TEXT PRIMARY KEY REFERENCES docs (id),
    district       TEXT NOT NULL,
    village        TEXT NOT NULL,
    poverty_status TEXT NOT NULL
) STRICT;
