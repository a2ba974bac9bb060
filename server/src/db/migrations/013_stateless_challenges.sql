-- A device's challenges are no longer stored: each carries when it was made and a MAC under the
-- token key, so a stranger asking for challenges evicts none. The device keeps when the last
-- challenge it used was made; only a later one is taken, so none is used twice.
DROP TABLE device_challenges;
ALTER TABLE devices ADD COLUMN challenge_used_ms INTEGER;
