//! `snapsync doctor`: config, database, store, credentials, conditional writes, sources, joins.

use snapsync::canonical::Document;
use snapsync::clock::{Clock, SystemClock};
use snapsync::config::Config;
use snapsync::db::Db;
use snapsync::probe;
use snapsync::source::HttpSource;
use snapsync::source::{Fetched, Source, Validators};
use snapsync::store;
use snapsync::store::ConditionalWrites;

use crate::commands::{human_bytes, out};

/// `snapsync doctor`: every check prints one line; the result is whether all passed.
/// With `json`, one object at the end: `{"ok": …, "checks": [{"check", "ok", "detail"}, …]}`.
pub async fn doctor(config: &Config, json: bool) -> anyhow::Result<bool> {
    let mut ok = true;
    // Every check runs even when stdout is closed; the first write error is returned at the
    // end (a closed pipe ends quietly in `main`).
    let mut written = Ok(());
    let mut checks = Vec::new();
    let mut line = |good: bool, what: &str, detail: String| {
        ok &= good;
        if json {
            checks.push(serde_json::json!({"check": what, "ok": good, "detail": detail}));
        } else if written.is_ok() {
            written = out(format_args!(
                "{} {what:<12} {detail}",
                if good { "ok  " } else { "FAIL" }
            ));
        }
    };
    let names: Vec<&str> = config.datasets.iter().map(|d| d.name.as_str()).collect();
    line(
        true,
        "config",
        format!(
            "store={} db={} datasets={}",
            config.store_text,
            config.db.display(),
            names.join(",")
        ),
    );
    let db = match Db::open(&config.db).await {
        Ok((db, warning)) => {
            line(
                warning.is_none(),
                "database",
                warning.unwrap_or_else(|| format!("{} opens and is migrated", config.db.display())),
            );
            Some(db)
        }
        Err(e) => {
            line(false, "database", e.to_string());
            None
        }
    };
    let store = match store::open(&config.store, &config.s3).await {
        Ok(s) => {
            line(true, "store", format!("{} reachable", s.url()));
            Some(s)
        }
        Err(e) => {
            line(false, "store", e.to_string());
            None
        }
    };
    if let store::StoreUrl::S3 { .. } = &config.store {
        match store::s3::S3Store::credentials_summary(&config.s3).await {
            Ok(summary) => line(true, "credentials", summary),
            Err(e) => line(false, "credentials", e),
        }
    }
    if let Some(store) = &store {
        let report = probe::probe(&**store, store.prefix()).await;
        for s in &report.steps {
            line(s.ok, "store probe", format!("{}: {}", s.name, s.detail));
        }
        let verdict = report.conditional_writes;
        match verdict {
            ConditionalWrites::Honoured => line(
                true,
                "conditional",
                "writes honoured: safe with concurrent writers".into(),
            ),
            ConditionalWrites::Ignored => line(
                config.single_writer,
                "conditional",
                "writes IGNORED by this server: `run` refuses to publish unless --single-writer"
                    .into(),
            ),
            ConditionalWrites::Unknown => {
                line(false, "conditional", "writes could not be probed".into())
            }
        }
        if let (Some(db), ConditionalWrites::Honoured | ConditionalWrites::Ignored) = (&db, verdict)
        {
            let now = SystemClock.now();
            let _ = db
                .save_store_probe(
                    store.url(),
                    verdict == ConditionalWrites::Honoured,
                    &snapsync::keys::rfc3339(now),
                )
                .await;
        }
    }
    let source = HttpSource::new(config.source.clone())?;
    for ds in &config.datasets {
        let shown = snapsync::source::redact_url(&ds.url);
        match source.fetch(&ds.url, &Validators::default()).await {
            Ok(Fetched::Body { bytes, .. }) => match Document::from_json(&bytes, &ds.key) {
                Ok(doc) => {
                    line(
                        true,
                        "source",
                        format!(
                            "{} {shown}: {} of valid JSON{}",
                            ds.name,
                            human_bytes(bytes.len() as u64),
                            doc.record_count()
                                .map(|n| format!(", {n} records"))
                                .unwrap_or_default()
                        ),
                    );
                    drop(doc);
                    if ds.has_join() {
                        match snapsync::sync::join_reports(&source, ds, bytes).await {
                            // Unmatched keys are news, not a failure: a table rarely covers
                            // every record (cruise ships in the covid data).
                            Ok(reports) => join_lines(&ds.name, &reports)
                                .into_iter()
                                .for_each(|l| line(true, "join", l)),
                            Err(e) => line(false, "join", e.to_string()),
                        }
                    }
                }
                Err(e) => line(
                    false,
                    "source",
                    format!("{} {shown}: invalid JSON: {e}", ds.name),
                ),
            },
            Ok(Fetched::NotModified) => {
                line(true, "source", format!("{} {shown}: reachable", ds.name))
            }
            Err(e) => line(false, "source", format!("{}: {e}", ds.name)),
        }
    }
    written?;
    if json {
        out(serde_json::json!({"ok": ok, "checks": checks}))?;
    }
    Ok(ok)
}

/// `doctor`'s lines for a dataset's joins: each table's summary, then its details.
fn join_lines(dataset: &str, reports: &[(String, snapsync::join::JoinReport)]) -> Vec<String> {
    let mut out = Vec::new();
    for (table, r) in reports {
        let sheet = r
            .sheet
            .as_ref()
            .map(|s| format!(" sheet {s:?}"))
            .unwrap_or_default();
        out.push(format!("{dataset} {table}{sheet}: {}", r.summary()));
        out.extend(r.details().into_iter().map(|d| format!("{dataset} - {d}")));
    }
    out
}
