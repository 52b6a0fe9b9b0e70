-- How many values a version appended, revised, derived and deleted inside records that kept
-- their key (`changes::ValueCounts`, the manifest's `values`), as its JSON. NULL for versions
-- published before values were counted, and for data without keyed records.
ALTER TABLE versions ADD COLUMN value_counts TEXT;
