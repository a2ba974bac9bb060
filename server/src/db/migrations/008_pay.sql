-- What the district pays, sent to phones: a cancelled class's places say so (decision
-- 'class_cancelled', where they said 'class_not_subsidised'), and the server keeps the version of
-- the policy table its stored decisions were made by, to decide again when the table changes.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt with its indexes.
CREATE TABLE p_subsidies_new (
    class_id       TEXT NOT NULL,
    trainee_id     TEXT NOT NULL,
    person         BLOB NOT NULL,
    year           INTEGER NOT NULL,
    occupation_key TEXT NOT NULL,
    level          TEXT NOT NULL,
    decision       TEXT NOT NULL CHECK (decision IN
                       ('subsidised', 'class_not_subsidised', 'year_cap_reached',
                        'same_occupation_and_level', 'class_cancelled')),
    nth            INTEGER,
    cap            INTEGER,
    earlier_class  TEXT,
    PRIMARY KEY (class_id, trainee_id),
    CHECK ((decision = 'subsidised') = (nth IS NOT NULL)),
    -- Document 003: at most three subsidised trainings a person a year.
    CHECK (nth IS NULL OR nth BETWEEN 1 AND 3)
) STRICT, WITHOUT ROWID;
INSERT INTO p_subsidies_new SELECT class_id, trainee_id, person, year, occupation_key, level,
    decision, nth, cap, earlier_class FROM p_subsidies;
DROP TABLE p_subsidies;
ALTER TABLE p_subsidies_new RENAME TO p_subsidies;
CREATE UNIQUE INDEX p_subsidies_one_per_rank ON p_subsidies (person, year, nth)
    WHERE decision = 'subsidised';
CREATE UNIQUE INDEX p_subsidies_once_per_occupation ON p_subsidies (person, occupation_key, level)
    WHERE decision = 'subsidised';
CREATE INDEX p_subsidies_by_person ON p_subsidies (person);
CREATE INDEX p_subsidies_by_trainee ON p_subsidies (trainee_id);

CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
