-- A person's erasure: the document row stays (the feed refers to it, and pushes of it must be
-- refused), emptied, with when it was erased.
ALTER TABLE docs ADD COLUMN erased_at INTEGER;
