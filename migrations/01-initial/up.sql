-- Local state. A cache of what the store already says: deleting this file loses nothing.
-- A dataset is identified by the store it publishes to and its name, so one database used
-- against two stores never mixes their histories.
CREATE TABLE datasets (
    id             INTEGER PRIMARY KEY,
    store          TEXT NOT NULL,
    name           TEXT NOT NULL,
    source_url     TEXT,
    -- HTTP validators of the last successfully processed fetch.
    etag           TEXT,
    last_modified  TEXT,
    -- sha256 of the raw fetched bytes and of the pipeline settings that turned them into the
    -- last version: the same bytes through the same pipeline cannot give a new version.
    source_sha256  TEXT,
    pipeline       TEXT,
    UNIQUE (store, name)
);

-- Mirrors the store's manifest.json.
CREATE TABLE versions (
    dataset_id       INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    version          INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    prev_sha256      TEXT,
    created_at       TEXT NOT NULL,
    snapshot_key     TEXT NOT NULL,
    delta_key        TEXT,
    canonical_bytes  INTEGER NOT NULL,
    snapshot_bytes   INTEGER NOT NULL,
    delta_bytes      INTEGER,
    records          INTEGER,
    added            INTEGER NOT NULL DEFAULT 0,
    removed          INTEGER NOT NULL DEFAULT 0,
    changed          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dataset_id, version)
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    dataset_id   INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('changed', 'unchanged', 'not-modified', 'failed')),
    version      INTEGER,
    sha256       TEXT,
    bytes_in     INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0,
    fetch_ms     INTEGER,
    total_ms     INTEGER NOT NULL,
    error        TEXT
);
CREATE INDEX runs_by_dataset ON runs (dataset_id, id);

-- The last published canonical body (gzip, as its snapshot), so a diff never downloads the
-- previous version.
CREATE TABLE body_cache (
    dataset_id  INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    body_gz     BLOB NOT NULL
);

-- What `doctor` (or the first run against a store) found out about the store: whether it
-- honours If-None-Match / If-Match on PUT. Re-probed when older than a week.
CREATE TABLE stores (
    url                 TEXT PRIMARY KEY,
    conditional_writes  TEXT NOT NULL CHECK (conditional_writes IN ('honoured', 'ignored')),
    probed_at           TEXT NOT NULL
);

-- Second datasets that transforms join in, cached with their HTTP validators.
CREATE TABLE join_cache (
    url            TEXT PRIMARY KEY,
    etag           TEXT,
    last_modified  TEXT,
    body           BLOB NOT NULL
);
