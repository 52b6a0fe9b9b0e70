//! `snapsync diff`: two versions or files, as a summary or a unified diff of the records.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use crate::commands::{manifest_of, one_dataset, open_store, write_stdout};
use snapsync::canonical::{display_key, Document};
use snapsync::changes::{self, ValueChange, ValueOp};
use snapsync::cli::DiffArgs;
use snapsync::config::Config;
use snapsync::delta::{self, ChangeKind, Diff};
use snapsync::error::Error;
use snapsync::history::{self, Target};
use snapsync::keys::DatasetKeys;
use snapsync::manifest::Manifest;
use snapsync::store::DynStore;
use snapsync::sync::DatasetConfig;

/// A side of a diff: a version of the store, or a file.
enum Side {
    Version(Option<u64>),
    File(PathBuf),
}

fn side(text: &str) -> Side {
    if text == "latest" {
        return Side::Version(None);
    }
    let digits = text.strip_prefix('v').unwrap_or(text);
    match digits.parse::<u64>() {
        Ok(n) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Side::Version(Some(n))
        }
        _ => Side::File(PathBuf::from(text)),
    }
}

async fn load_side(
    text: &str,
    ds: &DatasetConfig,
    store: &mut Option<(DynStore, Manifest)>,
    config: &Config,
) -> anyhow::Result<(String, Document)> {
    match side(text) {
        Side::File(path) => {
            let raw = std::fs::read(&path).map_err(|e| match e.kind() {
                // Not a version and not a file: a mistake on the command line (exit 2).
                std::io::ErrorKind::NotFound => Error::Config(format!(
                    "{}: does not exist; expected a version (3, v3, latest) or a JSON file",
                    path.display()
                )),
                _ => Error::io(&path, e),
            })?;
            let doc = Document::from_json(&raw, &ds.key).map_err(|reason| Error::InvalidJson {
                what: path.display().to_string(),
                reason,
            })?;
            Ok((path.display().to_string(), doc))
        }
        Side::Version(v) => {
            if store.is_none() {
                let s = open_store(config).await?;
                let keys = DatasetKeys::new(s.prefix(), &ds.name);
                let m = manifest_of(&s, &keys).await?;
                *store = Some((s, m));
            }
            let (s, m) = store.as_ref().expect("opened above");
            let entry = match v {
                Some(n) => history::resolve_target(m, Target::Version(n))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", ds.name))?,
                None => m
                    .last()
                    .ok_or_else(|| anyhow::anyhow!("{}: the history has no versions", ds.name))?,
            };
            let (doc, _) = history::restore(s, m, entry)
                .await
                .with_context(|| format!("reading {} version {}", ds.name, entry.version))?;
            // Restored documents know no record keys; the diff matches records by them. Parsed
            // again (not just scanned): either side may be the new one, which the diff parses.
            let doc = Document::from_json(doc.bytes(), &ds.key)
                .ok()
                .filter(|d| d.sha256() == entry.sha256)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} version {}: the stored text is not canonical JSON",
                        ds.name,
                        entry.version
                    )
                })?;
            Ok((format!("v{}", entry.version), doc))
        }
    }
}

pub async fn diff(config: &Config, args: DiffArgs) -> anyhow::Result<()> {
    let ds = one_dataset(config)?;
    let mut store = None;
    let (label_a, a) = load_side(&args.a, ds, &mut store, config).await?;
    let (label_b, b) = load_side(&args.b, ds, &mut store, config).await?;
    let d = delta::diff(&a, &b);
    let values = (args.format == "changes")
        .then(|| changes::value_changes(&a, &b, &ds.key, &d.changes, &ds.derived))
        .flatten();
    let text = match args.format.as_str() {
        // One object: the sides, the summary, each changed record, and (for --format patch)
        // the patch itself.
        format if args.json => {
            let mut v = serde_json::json!({
                "a": label_a,
                "b": label_b,
                "summary": d.summary,
                "changes": d.changes,
            });
            if format == "patch" {
                v["patch"] = serde_json::to_value(&d.patch).expect("a patch serializes");
            }
            if format == "changes" {
                v["text"] = changes::describe(&d.summary, values.as_deref()).into();
                v["values"] = serde_json::to_value(&values).expect("values serialize");
            }
            format!("{v}\n")
        }
        "patch" => {
            let mut s = serde_json::to_string_pretty(&d.patch).expect("a patch serializes");
            s.push('\n');
            s
        }
        "unified" => render_unified(
            &a,
            &b,
            &d,
            &label_a,
            &label_b,
            std::io::stdout().is_terminal(),
        ),
        "changes" => render_changes(&d, values.as_deref(), &label_a, &label_b),
        _ => render_summary(&d, &label_a, &label_b),
    };
    write_stdout(text.as_bytes())?;
    Ok(())
}

/// `A..B` and the changes in words, then one line per value a person reads: `+`/`-` a record
/// added or removed, `~` a value revised (old → new), `-` a value deleted. Appended and
/// derived values are counted in the first line, not listed (a new date in every record).
pub fn render_changes(d: &Diff, values: Option<&[ValueChange]>, a: &str, b: &str) -> String {
    let mut s = format!("{a}..{b} {}\n", changes::describe(&d.summary, values));
    for v in values.unwrap_or_default() {
        let line = match v.op {
            ValueOp::Added => format!("+ {}", v.key),
            ValueOp::Removed => format!("- {}", v.key),
            ValueOp::Revised => format!(
                "~ {} {} {} → {}",
                v.key,
                v.path,
                v.old.as_ref().map(changes::short_value).unwrap_or_default(),
                v.new.as_ref().map(changes::short_value).unwrap_or_default()
            ),
            ValueOp::Deleted => format!(
                "- {} {} (was {})",
                v.key,
                v.path,
                v.old.as_ref().map(changes::short_value).unwrap_or_default()
            ),
            ValueOp::Appended | ValueOp::Derived => continue,
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// `A..B added=… removed=… moved=… changed=…`, then one line per record: `+` added, `-`
/// removed, `~` changed, `>` moved only, `~>` moved and changed.
pub fn render_summary(d: &Diff, a: &str, b: &str) -> String {
    let mut s = format!(
        "{a}..{b} added={} removed={} moved={} changed={}\n",
        d.summary.added, d.summary.removed, d.summary.moved, d.summary.changed
    );
    for c in &d.changes {
        let sign = match (c.op, c.moved) {
            (ChangeKind::Added, _) => "+",
            (ChangeKind::Removed, _) => "-",
            (ChangeKind::Changed, false) => "~",
            (ChangeKind::Changed, true) => "~>",
            (ChangeKind::Moved, _) => ">",
        };
        s.push_str(&format!("{sign} {}\n", c.key));
    }
    s
}

fn pretty(canonical: &[u8]) -> String {
    match serde_json::from_slice::<Value>(canonical) {
        Ok(v) => serde_json::to_string_pretty(&v).expect("a Value serializes") + "\n",
        Err(_) => String::from_utf8_lossy(canonical).into_owned(),
    }
}

/// A unified diff (made with `similar`) of the pretty-printed records that changed, one file
/// section per record; the whole documents when they are not arrays of records.
pub fn render_unified(
    a: &Document,
    b: &Document,
    d: &Diff,
    la: &str,
    lb: &str,
    color: bool,
) -> String {
    let mut pairs: Vec<(String, String, String)> = Vec::new();
    match (a.records(), b.records()) {
        (Some(ra), Some(rb))
            if ra.iter().all(|r| a.key(r).is_some()) && rb.iter().all(|r| b.key(r).is_some()) =>
        {
            let index =
                |doc: &Document, recs: &[snapsync::canonical::Record]| -> HashMap<String, String> {
                    recs.iter()
                        .map(|r| {
                            (
                                display_key(doc.key(r).expect("keyed")),
                                pretty(doc.record_bytes(r)),
                            )
                        })
                        .collect()
                };
            let (ia, ib) = (index(a, ra), index(b, rb));
            // A record that only moved has no text to show.
            for c in d.changes.iter().filter(|c| c.op != ChangeKind::Moved) {
                let old = ia.get(&c.key).filter(|_| c.op != ChangeKind::Added);
                let new = ib.get(&c.key).filter(|_| c.op != ChangeKind::Removed);
                pairs.push((
                    c.key.clone(),
                    old.cloned().unwrap_or_default(),
                    new.cloned().unwrap_or_default(),
                ));
            }
        }
        (Some(ra), Some(rb)) => {
            // No keys: records are matched by content; what is not in the other side changed.
            let text =
                |doc: &Document, r: &snapsync::canonical::Record| doc.record_bytes(r).to_vec();
            let mut in_b: HashMap<Vec<u8>, usize> = HashMap::new();
            for r in rb {
                *in_b.entry(text(b, r)).or_default() += 1;
            }
            let mut in_a: HashMap<Vec<u8>, usize> = HashMap::new();
            for r in ra {
                *in_a.entry(text(a, r)).or_default() += 1;
            }
            for (i, r) in ra.iter().enumerate() {
                if let Some(n) = in_b.get_mut(&text(a, r)).filter(|n| **n > 0) {
                    *n -= 1;
                } else {
                    pairs.push((format!("[{i}]"), pretty(a.record_bytes(r)), String::new()));
                }
            }
            for (i, r) in rb.iter().enumerate() {
                if let Some(n) = in_a.get_mut(&text(b, r)).filter(|n| **n > 0) {
                    *n -= 1;
                } else {
                    pairs.push((format!("[{i}]"), String::new(), pretty(b.record_bytes(r))));
                }
            }
        }
        _ => {
            if a.bytes() != b.bytes() {
                pairs.push((String::new(), pretty(a.bytes()), pretty(b.bytes())));
            }
        }
    }
    let paint = |code: &str, line: &str| {
        if color {
            format!("\x1b[{code}m{line}\x1b[0m")
        } else {
            line.to_string()
        }
    };
    let mut s = String::new();
    for (key, old, new) in pairs {
        let name = |side: &str| {
            if key.is_empty() {
                side.to_string()
            } else {
                format!("{side}/{key}")
            }
        };
        s.push_str(&paint("1", &format!("--- {}", name(la))));
        s.push('\n');
        s.push_str(&paint("1", &format!("+++ {}", name(lb))));
        s.push('\n');
        let td = similar::TextDiff::from_lines(&old, &new);
        for hunk in td.unified_diff().context_radius(3).iter_hunks() {
            s.push_str(&paint("36", &hunk.header().to_string()));
            s.push('\n');
            for change in hunk.iter_changes() {
                let (sign, code) = match change.tag() {
                    similar::ChangeTag::Delete => ('-', Some("31")),
                    similar::ChangeTag::Insert => ('+', Some("32")),
                    similar::ChangeTag::Equal => (' ', None),
                };
                let mut line = format!("{sign}{}", change.value());
                if line.ends_with('\n') {
                    line.pop();
                }
                match code {
                    Some(c) => s.push_str(&paint(c, &line)),
                    None => s.push_str(&line),
                }
                s.push('\n');
            }
        }
    }
    s
}
