-- An instructor's phone that received trainee and household documents before (an earlier
-- release, or while its account was a coordinator's) is sent each of them marked erased: the id of
-- the request answered so, until a request under another id shows the phone has the answer; then
-- when it was done.
ALTER TABLE devices ADD COLUMN instructor_purge_request BLOB;
ALTER TABLE devices ADD COLUMN instructor_reset_ms INTEGER;
