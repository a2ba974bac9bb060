-- PostgreSQL: the same change as ../008_pay.sql (checked by the conformance suite): a cancelled
-- class's places say so, and the version of the policy table the stored decisions were made by.
ALTER TABLE p_subsidies DROP CONSTRAINT p_subsidies_decision_check;
ALTER TABLE p_subsidies ADD CONSTRAINT p_subsidies_decision_check CHECK (decision IN
    ('subsidised', 'class_not_subsidised', 'year_cap_reached', 'same_occupation_and_level',
     'class_cancelled'));

CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
