-- PostgreSQL: the same change as ../012_instructor_reset.sql (checked by the conformance suite).
ALTER TABLE devices ADD COLUMN instructor_purge_request BYTEA;
ALTER TABLE devices ADD COLUMN instructor_reset_ms BIGINT;
