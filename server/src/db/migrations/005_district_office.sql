-- What the district office needs beyond the projections: the subsidy decision of every place, the
-- review decisions and conflicts read from the documents, and the yearly targets.

-- Whether each person's place in each class is subsidised, and the rule that decided. Recomputed in
-- the merge transaction for every person a changed class or trainee touches, across villages (the
-- person is the blind index of the ID number). The indexes below make a fourth subsidised class in a
-- year, or the same occupation and level subsidised twice, impossible to write whatever the order
-- of concurrent merges.
CREATE TABLE p_subsidies (
    class_id       TEXT NOT NULL,
    trainee_id     TEXT NOT NULL,
    person         BLOB NOT NULL,
    year           INTEGER NOT NULL,
    occupation_key TEXT NOT NULL,
    level          TEXT NOT NULL,
    decision       TEXT NOT NULL CHECK (decision IN
                       ('subsidised', 'class_not_subsidised', 'year_cap_reached',
                        'same_occupation_and_level')),
    nth            INTEGER,
    cap            INTEGER,
    earlier_class  TEXT,
    PRIMARY KEY (class_id, trainee_id),
    CHECK ((decision = 'subsidised') = (nth IS NOT NULL)),
    -- Document 003: at most three subsidised trainings a person a year.
    CHECK (nth IS NULL OR nth BETWEEN 1 AND 3)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX p_subsidies_one_per_rank ON p_subsidies (person, year, nth)
    WHERE decision = 'subsidised';
CREATE UNIQUE INDEX p_subsidies_once_per_occupation ON p_subsidies (person, occupation_key, level)
    WHERE decision = 'subsidised';
CREATE INDEX p_subsidies_by_person ON p_subsidies (person);

-- The district's review decisions, as the documents hold them (the documents are the truth; this is
-- their projection). `subject` is an attendance id, or `conflict:<path>`.
CREATE TABLE p_reviews (
    doc_id    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    decision  TEXT NOT NULL CHECK (decision IN ('accepted', 'rejected')),
    reason    TEXT NOT NULL,
    reviewer  TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    PRIMARY KEY (doc_id, subject)
) STRICT, WITHOUT ROWID;

-- Registers that hold more than one concurrent value, per document, masked where personal.
CREATE TABLE p_conflicts (
    doc_id   TEXT NOT NULL REFERENCES docs (id),
    kind     TEXT NOT NULL,
    village  TEXT NOT NULL,
    path     TEXT NOT NULL,
    winner   TEXT NOT NULL,
    vals     TEXT NOT NULL,
    PRIMARY KEY (doc_id, path)
) STRICT, WITHOUT ROWID;

-- Yearly targets in person-times, by region (a district's name or code, as the target table names
-- it) and year.
CREATE TABLE targets (
    region       TEXT NOT NULL,
    year         INTEGER NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    person_times INTEGER NOT NULL CHECK (person_times >= 0),
    imported_at  INTEGER NOT NULL,
    PRIMARY KEY (region, year)
) STRICT, WITHOUT ROWID;
