-- The Content-Type a joined table was served with: a table at a URL without an extension
-- (…/export?format=xlsx) is read by it, also when a later fetch answers 304 and the cached
-- body is used. NULL for tables cached before this, and for files.
ALTER TABLE join_cache ADD COLUMN content_type TEXT;
