//! `snapsync verify [--repair]`: walk the whole history, check every object, optionally repair.

use anyhow::Context;
use serde_json::json;

use crate::commands::{self, no_history, open_store, out};
use snapsync::cli::VerifyArgs;
use snapsync::clock::{Clock, SystemClock};
use snapsync::config::Config;
use snapsync::history::{self, DbCheck};
use snapsync::keys::DatasetKeys;
use snapsync::views;

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
    let mut empty = Vec::new();
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
        // The views (history page, change table) are derived: what they lack is a note, which
        // --repair writes by walking the (sound) chain.
        if report.is_sound() && report.versions > 0 {
            if let Some(manifest) = snapsync::remote::read_manifest(&store, &keys).await? {
                let mut state = views::check(&store, &keys, &manifest).await?;
                if args.repair && !state.is_complete() {
                    let done = views::repair(&store, &keys, ds, &manifest, &state)
                        .await
                        .with_context(|| {
                            format!("writing the views of {} in {}", ds.name, store.url())
                        })?;
                    repaired.extend(done);
                    state = views::check(&store, &keys, &manifest).await?;
                }
                report.notes.extend(state.describe());
            }
        }
        all_sound &= report.is_sound();
        let nothing =
            report.versions == 0 && report.orphans.is_empty() && report.foreign.is_empty();
        if nothing && report.is_sound() {
            empty.push(ds.name.as_str());
            continue;
        }
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
    match empty.as_slice() {
        [] => Ok(all_sound),
        names => Err(no_history(&store, names).await),
    }
}
