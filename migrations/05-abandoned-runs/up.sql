-- A run stopped by a shutdown before its commit point is its own outcome, `abandoned`: it is
-- neither a success (the worker's schedule starts from the last one) nor a failure (a failure
-- streak, told as "recovered after N failed runs", must not count a redeploy's SIGTERM).
-- SQLite cannot alter a CHECK constraint: the table is rebuilt, rows and ids kept.
CREATE TABLE runs_new (
    id           INTEGER PRIMARY KEY,
    dataset_id   INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('changed', 'unchanged', 'not-modified', 'failed', 'abandoned')),
    version      INTEGER,
    sha256       TEXT,
    bytes_in     INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0,
    fetch_ms     INTEGER,
    total_ms     INTEGER NOT NULL,
    error        TEXT
);
INSERT INTO runs_new SELECT id, dataset_id, started_at, finished_at, outcome, version, sha256,
    bytes_in, bytes_out, fetch_ms, total_ms, error FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_by_dataset ON runs (dataset_id, id);
