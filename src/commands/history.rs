//! `snapsync history KEY [--pointer P]`: one record's (or one value's) changes across every
//! version, read by walking the chain from version 1 (each step checked by hash).

use anyhow::Context;
use serde_json::{json, Value};

use crate::commands::{manifest_of, one_dataset, open_store, out, write_stdout};
use snapsync::canonical::{display_key, escape_token, parse_pointer, Document, KeyPointer};
use snapsync::changes::{record_changes, short_value, ValueChange, ValueOp};
use snapsync::cli::HistoryArgs;
use snapsync::config::Config;
use snapsync::error::Error;
use snapsync::history::Chain;
use snapsync::keys::DatasetKeys;

/// One changed value, with the version that changed it.
struct Row {
    version: u64,
    created_at: String,
    change: ValueChange,
}

pub async fn history(config: &Config, args: HistoryArgs) -> anyhow::Result<()> {
    let ds = one_dataset(config)?;
    if ds.key.is_none() {
        return Err(Error::Config(format!(
            "{}: history needs records with a key (set key = \"/…\" for the dataset)",
            ds.name
        ))
        .into());
    }
    let tokens = match &args.pointer {
        None => Vec::new(),
        Some(p) => parse_pointer(p).map_err(|m| {
            Error::Config(format!(
                "--pointer {p:?}: {m} (expected a JSON Pointer such as /dates/2020-03-14/new/cases)"
            ))
        })?,
    };
    let prefix = tokens.iter().fold(String::new(), |mut s, t| {
        s.push('/');
        escape_token(t, &mut s);
        s
    });
    let store = open_store(config).await?;
    let keys = DatasetKeys::new(store.prefix(), &ds.name);
    let manifest = manifest_of(&store, &keys).await?;
    let progress = snapsync::progress::start(
        format!("reading the history of {}", args.record),
        Some(manifest.versions.len() as u64),
        snapsync::progress::Unit::Versions,
    );
    let mut chain = Chain::new(&store, &ds.key, &manifest.versions);
    let (mut rows, mut last, mut ever) = (Vec::new(), None::<Value>, false);
    let mut seen = std::collections::BTreeSet::new();
    while let Some(step) = chain
        .step()
        .await
        .with_context(|| format!("reading the history of {} in {}", ds.name, store.url()))?
    {
        progress.inc(1);
        let record = find(step.doc, &ds.key, &args.record);
        ever |= record.is_some();
        if !ever {
            // For the message when the key is never found: every key any version had.
            seen.extend(keys_of(step.doc, &ds.key));
        }
        let now = record.as_ref().and_then(|r| r.pointer(&prefix)).cloned();
        let mut found = Vec::new();
        let whole = if tokens.is_empty() {
            ValueOp::Added
        } else {
            ValueOp::Appended
        };
        let gone = if tokens.is_empty() {
            ValueOp::Removed
        } else {
            ValueOp::Deleted
        };
        match (&last, &now) {
            (None, Some(v)) => found.push(change(&args.record, &prefix, whole, None, Some(v))),
            (Some(v), None) => found.push(change(&args.record, &prefix, gone, Some(v), None)),
            (Some(a), Some(b)) if a != b => {
                record_changes(&args.record, a, b, &ds.derived, &mut found);
                for c in &mut found {
                    c.path.insert_str(0, &prefix);
                }
            }
            _ => {}
        }
        rows.extend(found.into_iter().map(|change| Row {
            version: step.entry.version,
            created_at: step.entry.created_at.clone(),
            change,
        }));
        last = now;
    }
    drop(progress);
    if !ever {
        // Like a dataset with no history: the command ran, and found nothing (exit 1).
        let best = seen
            .iter()
            .map(|k| (strsim::jaro_winkler(&args.record, k), k))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(score, _)| *score > 0.7)
            .map_or(String::new(), |(_, k)| format!(" (did you mean {k:?}?)"));
        anyhow::bail!(
            "{}: no version has a record with key {:?}{best}",
            ds.name,
            args.record
        );
    }
    print(&rows, &args)
}

fn change(
    key: &str,
    path: &str,
    op: ValueOp,
    old: Option<&Value>,
    new: Option<&Value>,
) -> ValueChange {
    ValueChange {
        key: key.to_string(),
        path: path.to_string(),
        op,
        old: old.cloned(),
        new: new.cloned(),
    }
}

/// The record whose key displays as `key`, parsed.
fn find(doc: &Document, pointer: &KeyPointer, key: &str) -> Option<Value> {
    let r = doc
        .records()?
        .iter()
        .find(|r| doc.record_key(r, pointer).map(display_key).as_deref() == Some(key))?;
    serde_json::from_slice(doc.record_bytes(r)).ok()
}

/// Every record's key, as displayed.
fn keys_of(doc: &Document, pointer: &KeyPointer) -> Vec<String> {
    doc.records()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| doc.record_key(r, pointer).map(display_key))
        .collect()
}

fn print(rows: &[Row], args: &HistoryArgs) -> anyhow::Result<()> {
    if args.json {
        for r in rows {
            let c = &r.change;
            out(json!({
                "version": r.version,
                "created_at": r.created_at,
                "key": c.key,
                "path": c.path,
                "op": c.op,
                "old": c.old,
                "new": c.new,
            }))?;
        }
        return Ok(());
    }
    if args.format == "csv" {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["version", "created_at", "key", "path", "op", "old", "new"])?;
        let text = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
        for r in rows {
            let c = &r.change;
            w.write_record([
                r.version.to_string(),
                r.created_at.clone(),
                c.key.clone(),
                c.path.clone(),
                c.op.as_str().to_string(),
                text(&c.old),
                text(&c.new),
            ])?;
        }
        return write_stdout(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    if rows.is_empty() {
        return out(format_args!("{}: no change", args.record));
    }
    for r in rows {
        let c = &r.change;
        let what = match (&c.old, &c.new) {
            (Some(o), Some(n)) => format!("{} → {}", short_value(o), short_value(n)),
            (None, Some(n)) => short_value(n),
            (Some(o), None) => format!("(was {})", short_value(o)),
            (None, None) => String::new(),
        };
        let path = if c.path.is_empty() {
            "(record)"
        } else {
            &c.path
        };
        out(format_args!(
            "v{:<4} {}  {:<8} {}  {}",
            r.version,
            r.created_at,
            c.op.as_str(),
            path,
            what
        ))?;
    }
    Ok(())
}
