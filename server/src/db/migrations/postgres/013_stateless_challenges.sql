-- PostgreSQL: the same change as ../013_stateless_challenges.sql (checked by the conformance suite).
DROP TABLE device_challenges;
ALTER TABLE devices ADD COLUMN challenge_used_ms BIGINT;
