-- When an instructor's phone was last sent its villages' feed again from the start, with every
-- trainee and household document in it marked erased: a phone that received them before
-- instructors were kept from them (or while its account was a coordinator's) loses them.
ALTER TABLE devices ADD COLUMN instructor_reset_ms INTEGER;
