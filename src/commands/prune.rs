//! `snapsync prune`: apply the retention policy and sweep orphans.

use anyhow::Context;

use crate::commands::{no_history, open_store, out};
use snapsync::cli::PruneArgs;
use snapsync::clock::{Clock, SystemClock};
use snapsync::config::Config;
use snapsync::history::{self, Retention};
use snapsync::keys::DatasetKeys;

pub async fn prune(config: &Config, args: PruneArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let retention = Retention {
        daily: args.keep_daily,
        monthly: args.keep_monthly,
    };
    let mut empty = Vec::new();
    for ds in &config.datasets {
        let keys = DatasetKeys::new(store.prefix(), &ds.name);
        let outcome = history::prune(&store, &keys, retention, SystemClock.now(), args.dry_run)
            .await
            .with_context(|| format!("pruning {} in {}", ds.name, store.url()))?;
        let Some(plan) = outcome.plan else {
            empty.push(ds.name.as_str());
            continue;
        };
        if args.json {
            let v = serde_json::json!({
                "dataset": ds.name,
                "dry_run": args.dry_run,
                "keep": plan.keep.iter().map(|(v, why)| serde_json::json!({"version": v, "why": why})).collect::<Vec<_>>(),
                "pruned": plan.delete_snapshots,
                "orphans_deleted": plan.orphans.deleted,
                "young_orphans": plan.orphans.young,
                "foreign": plan.orphans.foreign,
                "deleted": outcome.deleted,
            });
            out(v)?;
            continue;
        }
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
    match empty.as_slice() {
        [] => Ok(()),
        names => Err(no_history(&store, names).await),
    }
}
