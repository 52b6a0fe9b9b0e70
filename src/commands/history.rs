//! Command glue for the consumer and history commands: `pull`, `restore`, `verify`, `replay`,
//! `prune`, `diff`. Builds the store (and, only where it is wanted, the database) from the
//! `Config`, calls `consumer`/`history`, and prints. Results go to stdout, logs and warnings
//! to stderr.
//!
//! Read-only commands (`pull`, `restore`, `diff`, `verify` without `--repair`) never write to
//! the store and never create a database, so they work with read-only credentials on a
//! consumer's machine.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{json, Value};

use crate::commands::{self, out, write_stdout};
use snapsync::canonical::{display_key, Document};
use snapsync::cli::{DiffArgs, PruneArgs, PullArgs, ReplayArgs, RestoreArgs, VerifyArgs};
use snapsync::clock::{Clock, StoreClock, SystemClock};
use snapsync::config::Config;
use snapsync::consumer;
use snapsync::delta::{self, ChangeKind, Diff};
use snapsync::error::Error;
use snapsync::history::{self, DbCheck, Retention, Target};
use snapsync::keys::{self, DatasetKeys};
use snapsync::manifest::Manifest;
use snapsync::remote;
use snapsync::store::{self, DynStore, StoreUrl};
use snapsync::sync::{DatasetConfig, Outcome, RunOptions};

/// The one dataset a command works on: `--dataset`, or the only one configured.
fn one_dataset(config: &Config) -> anyhow::Result<&DatasetConfig> {
    match config.datasets.as_slice() {
        [one] => Ok(one),
        many => Err(Error::Config(format!(
            "this command works on one dataset; pick one of {} with --dataset",
            many.iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}

async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    Ok(store::open(&config.store, &config.s3).await?)
}

async fn manifest_of(store: &DynStore, keys: &DatasetKeys) -> anyhow::Result<Manifest> {
    remote::read_manifest(store, keys).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no manifest.json: nothing has been published there",
            keys.manifest()
        )
        .context(format!("store {}", store.url()))
    })
}

// ---------------------------------------------------------------------------------------------

pub async fn pull(config: &Config, args: PullArgs) -> anyhow::Result<()> {
    let ds = one_dataset(config)?;
    let url = match &args.from {
        Some(text) => StoreUrl::parse(text)?,
        None => config.store.clone(),
    };
    let store = store::open(&url, &config.s3).await?;
    let keys = DatasetKeys::new(store.prefix(), &ds.name);
    let report = consumer::pull(&store, &keys, &ds.name, &args.out)
        .await
        .with_context(|| format!("pulling {} into {}", ds.name, args.out.display()))?;
    for w in &report.warnings {
        tracing::warn!(dataset = %ds.name, "{w}");
    }
    if args.json {
        out(format_args!(
            "{}",
            serde_json::to_string(&report).expect("serializes")
        ))?;
    } else {
        out(format_args!("{}", report.summary_line()))?;
    }
    Ok(())
}

pub async fn restore(config: &Config, args: RestoreArgs) -> anyhow::Result<()> {
    let ds = one_dataset(config)?;
    let store = open_store(config).await?;
    let keys = DatasetKeys::new(store.prefix(), &ds.name);
    let manifest = manifest_of(&store, &keys).await?;
    let now = StoreClock(store.clone()).now();
    let target = match (&args.at, args.version) {
        (Some(at), _) if at == "now" => Target::At(now),
        (Some(at), _) => Target::At(history::parse_date(at).ok_or_else(|| {
            Error::Config(format!(
                "--at {at:?}: not a time (RFC 3339 like 2026-05-01T00:00:00Z, YYYY-MM-DD, or now)"
            ))
        })?),
        (None, Some(v)) => Target::Version(v),
        (None, None) => unreachable!("clap requires --at or --version"),
    };
    if let (Target::At(_), Some(last)) = (target, manifest.last()) {
        if snapsync::plan::clock_behind(last, now).is_some() {
            tracing::warn!(dataset = %ds.name, version = last.version, created_at = %last.created_at, now = %keys::created_at(now), "the newest version is dated in the future (a clock ran ahead when it was published); --at picks versions by their created_at");
        }
    }
    let entry = history::resolve_target(&manifest, target)
        .map_err(|e| anyhow::anyhow!("{}: {e}", ds.name))?
        .clone();
    let (doc, plan) = history::restore(&store, &manifest, &entry)
        .await
        .with_context(|| format!("restoring {} version {}", ds.name, entry.version))?;
    let to_stdout = args.out.as_os_str() == "-";
    if to_stdout {
        write_stdout(doc.bytes())?;
    } else {
        consumer::write_atomically(&args.out, doc.bytes())?;
    }
    let line = format!(
        "{} restored version={} sha256={} created_at={} base={} deltas={} out={}",
        ds.name,
        entry.version,
        entry.sha256,
        entry.created_at,
        plan.base.version,
        plan.deltas.len(),
        args.out.display()
    );
    if to_stdout {
        let _ = writeln!(std::io::stderr(), "{line}");
    } else {
        out(format_args!("{line}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// `verify`: the result is whether every dataset's history is sound (after repairs, if asked).
pub async fn verify(config: &Config, args: VerifyArgs) -> anyhow::Result<bool> {
    let store = open_store(config).await?;
    // A consumer has no database: compare with one only when it exists (never create it).
    let db = if config.db.exists() {
        Some(commands::open_db(config).await?)
    } else {
        None
    };
    let mut all_sound = true;
    for ds in &config.datasets {
        let keys = DatasetKeys::new(store.prefix(), &ds.name);
        let check = || {
            db.as_ref().map(|db| DbCheck {
                db,
                store_url: store.url(),
                dataset: &ds.name,
            })
        };
        let mut report = history::verify_with(&store, &keys, &ds.key, check())
            .await
            .with_context(|| format!("verifying {} in {}", ds.name, store.url()))?;
        let mut repaired = Vec::new();
        let mut deleted = Vec::new();
        if args.repair {
            repaired = history::repair(&store, &keys, db.as_ref(), &report.fixes)
                .await
                .with_context(|| format!("repairing {} in {}", ds.name, store.url()))?;
            if args.prune_orphans {
                deleted = history::sweep_orphans(&store, &keys, SystemClock.now(), false)
                    .await
                    .with_context(|| format!("deleting orphans of {} in {}", ds.name, store.url()))?
                    .deleted;
            }
            if !repaired.is_empty() || !deleted.is_empty() {
                let before = report.problems.clone();
                report = history::verify_with(&store, &keys, &ds.key, check()).await?;
                if !before.is_empty() && report.is_sound() {
                    repaired.push(format!("{} problem(s) fixed", before.len()));
                }
            }
        }
        all_sound &= report.is_sound();
        if args.json {
            let v = json!({
                "dataset": ds.name,
                "store": store.url(),
                "sound": report.is_sound(),
                "versions": report.versions,
                "problems": report.problems,
                "notes": report.notes,
                "orphans": report.orphans,
                "foreign": report.foreign,
                "repairable": report.fixes.iter().map(|f| f.describe()).collect::<Vec<_>>(),
                "repaired": repaired,
                "deleted": deleted,
            });
            out(format_args!("{v}"))?;
            continue;
        }
        for p in &report.problems {
            out(format_args!("{} problem: {p}", ds.name))?;
        }
        for n in &report.notes {
            out(format_args!("{} note: {n}", ds.name))?;
        }
        for o in &report.orphans {
            out(format_args!("{} orphan: {o}", ds.name))?;
        }
        for f in &report.foreign {
            out(format_args!("{} not snapsync's (left alone): {f}", ds.name))?;
        }
        for r in &repaired {
            out(format_args!("{} repaired: {r}", ds.name))?;
        }
        for d in &deleted {
            out(format_args!("{} deleted orphan: {d}", ds.name))?;
        }
        if !args.repair {
            for f in &report.fixes {
                out(format_args!(
                    "{} repairable (--repair): {}",
                    ds.name,
                    f.describe()
                ))?;
            }
        }
        out(format_args!(
            "{} {} versions={} problems={} orphans={}",
            ds.name,
            if report.is_sound() {
                "sound"
            } else {
                "unsound"
            },
            report.versions,
            report.problems.len(),
            report.orphans.len()
        ))?;
    }
    Ok(all_sound)
}

// ---------------------------------------------------------------------------------------------

/// `replay`: the result is whether every file was published (or already there).
pub async fn replay(config: &Config, args: ReplayArgs) -> anyhow::Result<bool> {
    let ds = one_dataset(config)?;
    let paths = history::collect_files(&args.inputs)?;
    if paths.is_empty() {
        return Err(Error::Config(format!(
            "no *.json files in {}",
            args.inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let files = history::date_files(&paths, args.dates.as_deref()).map_err(Error::Config)?;
    let deps = commands::deps(config).await?;
    commands::check_safe_to_publish(&deps, config.single_writer).await?;
    let keys = DatasetKeys::new(deps.store.prefix(), &ds.name);
    let after = remote::latest_created_at(&deps.store, &keys).await?;
    let (files, skipped) = history::files_after(files, after);
    if skipped > 0 {
        tracing::info!(
            dataset = %ds.name,
            skipped,
            latest = after.map(keys::created_at).as_deref(),
            "files not after the store's newest version are skipped (already replayed?)"
        );
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} replaying [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let max_bytes = config.source.max_bytes;
    // A pipeline: while one file uploads and commits, the next ones are read, canonicalized,
    // compressed, and diffed from the file before them, on the other core(s); and each run's
    // document is the next run's previous version, never read back from the database. Two
    // files are prepared at once to keep both cores of a small machine busy while a run waits
    // for the disk (each in flight holds about three times the file's size in memory).
    //
    // Each prepared file hands its document to the next one's task, which diffs from it: the
    // run uses that diff when the store's newest version is indeed the file before (it is,
    // unless another writer got in between), and diffs again otherwise. The first file has no
    // document before it in memory: its run diffs from the store's newest version.
    const LOOKAHEAD: usize = 2;
    let mut handoff: Option<tokio::sync::oneshot::Receiver<Arc<Document>>> = None;
    let mut prepare = |f: &history::RecordedFile| {
        let (deps, ds, f) = (deps.clone(), ds.clone(), f.clone());
        let (give, next) = tokio::sync::oneshot::channel();
        let base = handoff.replace(next);
        tokio::spawn(async move {
            let mut prepared = history::prepare_file(&deps, &ds, &f, max_bytes).await?;
            // Nobody is waiting when this is the last file, or when the replay stopped.
            let _ = give.send(prepared.document().clone());
            if let Some(rx) = base {
                // No document when the file before failed to prepare: its run reports why.
                if let Ok(base) = rx.await {
                    prepared.diff_against(&ds.name, base).await;
                }
            }
            Ok::<_, Error>(prepared)
        })
    };
    let mut ahead: std::collections::VecDeque<_> =
        files.iter().take(LOOKAHEAD).map(&mut prepare).collect();
    let mut previous = None;
    let (mut changed, mut unchanged, mut failed) = (0, 0, 0);
    for (i, f) in files.iter().enumerate() {
        let date = keys::rfc3339(f.date);
        if let Some(bar) = &bar {
            bar.set_message(date.clone());
        }
        // A file that failed to prepare runs the ordinary way, which reports why.
        let prepared = match ahead.pop_front() {
            Some(task) => task.await.ok().and_then(Result::ok).map(Arc::new),
            None => None,
        };
        ahead.extend(files.get(i + LOOKAHEAD).map(&mut prepare));
        let opts = RunOptions {
            force: args.force,
            prepared,
            previous: previous.clone(),
            skip_body_cache: i + 1 < files.len(),
            ..RunOptions::default()
        };
        let r = history::replay_file(&deps, ds, f, max_bytes, opts).await;
        if r.document.is_some() {
            previous = r.document.clone();
        }
        let line = if args.json {
            let mut v = serde_json::to_value(&r).expect("a report serializes");
            v["file"] = Value::from(f.path.display().to_string());
            v["date"] = Value::from(date.clone());
            v.to_string()
        } else {
            format!("{date} {} {}", f.path.display(), r.summary_line())
        };
        match &bar {
            Some(bar) => bar.suspend(|| out(&line))?,
            None => out(&line)?,
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        match r.outcome {
            Outcome::Changed => changed += 1,
            Outcome::Unchanged | Outcome::NotModified => unchanged += 1,
            Outcome::Failed => {
                failed += 1;
                // Going on would publish the next day's data as if this day had not happened.
                ahead.iter().for_each(tokio::task::JoinHandle::abort);
                break;
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let not_run = files.len() - changed - unchanged - failed;
    let summary = format!(
        "{} replayed files={} changed={changed} unchanged={unchanged} failed={failed} skipped={skipped} not_run={not_run}",
        ds.name,
        files.len() + skipped
    );
    if args.json {
        let _ = writeln!(std::io::stderr(), "{summary}");
    } else {
        out(format_args!("{summary}"))?;
    }
    Ok(failed == 0)
}

// ---------------------------------------------------------------------------------------------

pub async fn prune(config: &Config, args: PruneArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let retention = Retention {
        daily: args.keep_daily,
        monthly: args.keep_monthly,
    };
    for ds in &config.datasets {
        let keys = DatasetKeys::new(store.prefix(), &ds.name);
        let outcome = history::prune(&store, &keys, retention, SystemClock.now(), args.dry_run)
            .await
            .with_context(|| format!("pruning {} in {}", ds.name, store.url()))?;
        let Some(plan) = outcome.plan else {
            out(format_args!("{} no versions in {}", ds.name, store.url()))?;
            continue;
        };
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for (v, why) in &plan.keep {
            out(format_args!("{} keep v{v} ({})", ds.name, why.join(", ")))?;
        }
        for k in plan.delete_snapshots.iter().chain(&plan.orphans.deleted) {
            out(format_args!("{} {verb} {k}", ds.name))?;
        }
        for k in &plan.orphans.foreign {
            out(format_args!("{} not snapsync's (left alone): {k}", ds.name))?;
        }
        out(format_args!(
            "{} prune kept={} pruned={} orphans={} young-orphans={}{}",
            ds.name,
            plan.keep.len(),
            plan.delete_snapshots.len(),
            plan.orphans.deleted.len(),
            plan.orphans.young.len(),
            if args.dry_run { " (dry run)" } else { "" }
        ))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

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
            let raw = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
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
    let text = match args.format.as_str() {
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
        _ => render_summary(&d, &label_a, &label_b),
    };
    write_stdout(text.as_bytes())?;
    Ok(())
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
        (Some(ra), Some(rb)) if ra.iter().chain(rb).all(|r| r.key.is_some()) => {
            let index =
                |doc: &Document, recs: &[snapsync::canonical::Record]| -> HashMap<String, String> {
                    recs.iter()
                        .map(|r| {
                            (
                                display_key(r.key.as_deref().expect("keyed")),
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
