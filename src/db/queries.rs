//! The typed queries: datasets, versions (a mirror of the manifest), runs, validators and the
//! last body, the store probe's verdict, and the join cache.

use rusqlite::{params, OptionalExtension, MAIN_DB};

use super::{DatasetState, Db, JoinCached, RunRecord, SourceState};
use crate::error::Result;
use crate::manifest::Entry;

impl Db {
    /// The dataset's state, creating its row on first use.
    pub async fn dataset(&self, store: &str, name: &str) -> Result<DatasetState> {
        let (store, name) = (store.to_string(), name.to_string());
        self.call(move |c| {
            c.execute(
                "INSERT INTO datasets (store, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![store, name],
            )?;
            let mut st = c.query_row(
                "SELECT id, source_url, etag, last_modified, source_sha256, pipeline, validators_url FROM datasets WHERE store = ?1 AND name = ?2",
                params![store, name],
                |r| {
                    Ok(DatasetState {
                        id: r.get(0)?,
                        source_url: r.get(1)?,
                        etag: r.get(2)?,
                        last_modified: r.get(3)?,
                        source_sha256: r.get(4)?,
                        pipeline: r.get(5)?,
                        validators_url: r.get(6)?,
                        last: None,
                    })
                },
            )?;
            st.last = c
                .query_row(
                    &format!("{SELECT_ENTRY} WHERE dataset_id = ?1 ORDER BY version DESC LIMIT 1"),
                    [st.id],
                    entry_from_row,
                )
                .optional()?;
            Ok(st)
        })
        .await
    }

    /// Every known version of a dataset, oldest first.
    pub async fn versions(&self, dataset_id: i64) -> Result<Vec<Entry>> {
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "{SELECT_ENTRY} WHERE dataset_id = ?1 ORDER BY version"
            ))?;
            let rows = stmt.query_map([dataset_id], entry_from_row)?;
            rows.collect()
        })
        .await
    }

    /// The cached canonical body (gzip), if it is the one with this hash.
    pub async fn cached_body(&self, dataset_id: i64, sha256: &str) -> Result<Option<Vec<u8>>> {
        let sha256 = sha256.to_string();
        self.call(move |c| {
            // Read through a blob handle, straight into one buffer: a query would make SQLite
            // hold the whole blob and then copy it out (a 300 MB dataset's is 31 MB).
            let found = c
                .query_row(
                    "SELECT rowid FROM body_cache WHERE dataset_id = ?1 AND sha256 = ?2",
                    params![dataset_id, sha256],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?;
            let Some(row) = found else { return Ok(None) };
            let blob = c.blob_open(MAIN_DB, c"body_cache", c"body_gz", row, true)?;
            let mut body = vec![0; blob.len()];
            blob.read_at_exact(&mut body, 0)?;
            Ok(Some(body))
        })
        .await
    }

    /// Records versions the store has (idempotent), optionally the body of the newest one, and
    /// the source validators that led to it — in one transaction.
    pub async fn record_versions(
        &self,
        dataset_id: i64,
        entries: Vec<Entry>,
        body: Option<(u64, String, bytes::Bytes)>,
        source: Option<SourceState>,
    ) -> Result<()> {
        self.call(move |c| {
            let tx = c.transaction()?;
            for e in &entries {
                tx.execute(
                    "INSERT OR REPLACE INTO versions (dataset_id, version, sha256, prev_sha256, created_at, \
                     snapshot_key, delta_key, canonical_bytes, snapshot_bytes, delta_bytes, records, added, removed, moved, changed, value_counts) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                    params![
                        dataset_id,
                        e.version as i64,
                        e.sha256,
                        e.prev_sha256,
                        e.created_at,
                        e.snapshot,
                        e.delta,
                        e.canonical_bytes as i64,
                        e.snapshot_bytes as i64,
                        e.delta_bytes.map(|v| v as i64),
                        e.records.map(|v| v as i64),
                        e.added as i64,
                        e.removed as i64,
                        e.moved as i64,
                        e.changed as i64,
                        e.values.map(|v| serde_json::to_string(&v).expect("counts serialize")),
                    ],
                )?;
            }
            if let Some((version, sha256, body)) = body {
                // Written through a blob handle into a zeroblob of its size: bound as a
                // parameter, the body would be copied twice on its way in.
                tx.execute(
                    "INSERT OR REPLACE INTO body_cache (dataset_id, version, sha256, body_gz) VALUES (?1, ?2, ?3, zeroblob(?4))",
                    params![dataset_id, version as i64, sha256, body.len() as i64],
                )?;
                let row = tx.last_insert_rowid();
                tx.blob_open(MAIN_DB, c"body_cache", c"body_gz", row, false)?
                    .write_at(&body, 0)?;
            }
            if let Some(s) = source {
                tx.execute(
                    "UPDATE datasets SET source_url = ?2, etag = ?3, last_modified = ?4, source_sha256 = ?5, pipeline = ?6, validators_url = ?7 WHERE id = ?1",
                    params![dataset_id, s.source_url, s.etag, s.last_modified, s.source_sha256, s.pipeline, s.validators_url],
                )?;
            }
            tx.commit()
        })
        .await
    }

    /// Forgets versions the store does not have (the store was reset, or another history).
    pub async fn forget_versions_after(&self, dataset_id: i64, version: u64) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "DELETE FROM versions WHERE dataset_id = ?1 AND version > ?2",
                params![dataset_id, version as i64],
            )?;
            c.execute(
                "DELETE FROM body_cache WHERE dataset_id = ?1 AND version > ?2",
                params![dataset_id, version as i64],
            )
            .map(drop)
        })
        .await
    }

    pub async fn record_run(&self, dataset_id: i64, run: RunRecord) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO runs (dataset_id, started_at, finished_at, outcome, version, sha256, bytes_in, bytes_out, fetch_ms, total_ms, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    dataset_id,
                    run.started_at,
                    run.finished_at,
                    run.outcome,
                    run.version.map(|v| v as i64),
                    run.sha256,
                    run.bytes_in as i64,
                    run.bytes_out as i64,
                    run.fetch_ms.map(|v| v as i64),
                    run.total_ms as i64,
                    run.error,
                ],
            )
            .map(drop)
        })
        .await
    }

    /// The most recent run, and the most recent successful one.
    pub async fn last_runs(
        &self,
        dataset_id: i64,
    ) -> Result<(Option<RunRecord>, Option<RunRecord>)> {
        self.call(move |c| {
            let q = |filter: &str| {
                c.query_row(
                    &format!(
                        "SELECT started_at, finished_at, outcome, version, sha256, bytes_in, bytes_out, fetch_ms, total_ms, error \
                         FROM runs WHERE dataset_id = ?1 {filter} ORDER BY id DESC LIMIT 1"
                    ),
                    [dataset_id],
                    |r| {
                        Ok(RunRecord {
                            started_at: r.get(0)?,
                            finished_at: r.get(1)?,
                            outcome: r.get(2)?,
                            version: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                            sha256: r.get(4)?,
                            bytes_in: r.get::<_, i64>(5)? as u64,
                            bytes_out: r.get::<_, i64>(6)? as u64,
                            fetch_ms: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                            total_ms: r.get::<_, i64>(8)? as u64,
                            error: r.get(9)?,
                        })
                    },
                )
                .optional()
            };
            Ok((q("")?, q(SUCCEEDED)?))
        })
        .await
    }

    /// How many runs of the dataset `name` in `store` failed since the last that succeeded
    /// (an abandoned run, stopped by a shutdown, neither counts nor ends the streak): what a
    /// recovery is told as. 0 for a dataset never run.
    pub async fn failures_in_a_row(&self, store: &str, name: &str) -> Result<u32> {
        let (store, name) = (store.to_string(), name.to_string());
        self.call(move |c| {
            c.query_row(
                &format!(
                    "WITH d AS (SELECT id FROM datasets WHERE store = ?1 AND name = ?2) \
                     SELECT COUNT(*) FROM runs WHERE dataset_id = (SELECT id FROM d) AND outcome = 'failed' \
                     AND id > COALESCE((SELECT MAX(id) FROM runs WHERE dataset_id = (SELECT id FROM d) {SUCCEEDED}), 0)"
                ),
                params![store, name],
                |r| r.get(0),
            )
        })
        .await
    }
}

impl Db {
    /// The cached verdict of the conditional-write probe for a store: (honoured, probed_at).
    pub async fn store_probe(&self, url: &str) -> Result<Option<(bool, String)>> {
        let url = url.to_string();
        self.call(move |c| {
            c.query_row(
                "SELECT conditional_writes, probed_at FROM stores WHERE url = ?1",
                [url],
                |r| Ok((r.get::<_, String>(0)? == "honoured", r.get(1)?)),
            )
            .optional()
        })
        .await
    }

    pub async fn save_store_probe(&self, url: &str, honoured: bool, probed_at: &str) -> Result<()> {
        let (url, at) = (url.to_string(), probed_at.to_string());
        let verdict = if honoured { "honoured" } else { "ignored" };
        self.call(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO stores (url, conditional_writes, probed_at) VALUES (?1, ?2, ?3)",
                params![url, verdict, at],
            )
            .map(drop)
        })
        .await
    }
}

impl Db {
    /// A cached joined dataset: (validators, body).
    /// A joined table's last body: its validators, bytes and Content-Type.
    pub async fn join_cache(&self, url: &str) -> Result<Option<JoinCached>> {
        let url = url.to_string();
        self.call(move |c| {
            c.query_row(
                "SELECT etag, last_modified, body, content_type FROM join_cache WHERE url = ?1",
                [url],
                |r| {
                    Ok(JoinCached {
                        validators: crate::source::Validators {
                            etag: r.get(0)?,
                            last_modified: r.get(1)?,
                        },
                        body: r.get(2)?,
                        content_type: r.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    pub async fn save_join_cache(&self, url: &str, cached: JoinCached) -> Result<()> {
        let url = url.to_string();
        self.call(move |c| {
            let JoinCached {
                validators: v,
                body,
                content_type,
            } = cached;
            c.execute(
                "INSERT OR REPLACE INTO join_cache (url, etag, last_modified, body, content_type) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![url, v.etag, v.last_modified, body, content_type],
            )
            .map(drop)
        })
        .await
    }
}

/// The runs that count as a success: any but a failed or an abandoned one.
const SUCCEEDED: &str = "AND outcome NOT IN ('failed', 'abandoned')";

const SELECT_ENTRY: &str =
    "SELECT version, created_at, sha256, prev_sha256, snapshot_key, delta_key, \
     canonical_bytes, snapshot_bytes, delta_bytes, records, added, removed, moved, changed, value_counts FROM versions";

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        version: r.get::<_, i64>(0)? as u64,
        created_at: r.get(1)?,
        sha256: r.get(2)?,
        prev_sha256: r.get(3)?,
        snapshot: r.get(4)?,
        delta: r.get(5)?,
        canonical_bytes: r.get::<_, i64>(6)? as u64,
        snapshot_bytes: r.get::<_, i64>(7)? as u64,
        delta_bytes: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        records: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
        added: r.get::<_, i64>(10)? as u64,
        removed: r.get::<_, i64>(11)? as u64,
        moved: r.get::<_, i64>(12)? as u64,
        changed: r.get::<_, i64>(13)? as u64,
        values: r
            .get::<_, Option<String>>(14)?
            .and_then(|j| serde_json::from_str(&j).ok()),
        // The database mirrors versions, not retention: `prune` is recorded in the manifest.
        pruned: false,
    })
}
