-- Which URL the stored validators (etag, last_modified) came from, as source::cache_key of the
-- exact URL: source_url is redacted for display (every query value is REDACTED), so it cannot
-- tell ?day=1 from ?day=2. Validators are only sent back to that URL. NULL (a database from
-- before this) sends none once, and the next run records it.
ALTER TABLE datasets ADD COLUMN validators_url TEXT;
