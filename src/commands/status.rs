//! `snapsync status`: what the database and the store say of each dataset.

use serde_json::json;

use snapsync::clock::{Clock, SystemClock};
use snapsync::config::Config;
use snapsync::keys::DatasetKeys;
use snapsync::store;

use crate::commands::{open_db, out};

pub async fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = store::open(&config.store, &config.s3).await?;
    let db = open_db(config).await?;
    let now = SystemClock.now();
    for ds in &config.datasets {
        // When the worker would run it next, from the last successful run it knows of.
        let next_run = {
            let st = db.dataset(store.url(), &ds.name).await?;
            let last_ok = db.last_runs(st.id).await?.1;
            let last = last_ok.and_then(|r| snapsync::keys::parse_rfc3339(&r.started_at));
            snapsync::keys::rfc3339(snapsync::schedule::first_due(&ds.schedule, last, now))
        };
        let keys = DatasetKeys::new(store.prefix(), &ds.name);
        let state = db.dataset(store.url(), &ds.name).await?;
        let (last_run, last_ok) = db.last_runs(state.id).await?;
        let remote = snapsync::remote::latest_entry(&store, &keys).await?;
        let agreement = match (&state.last, &remote) {
            (None, None) => "no versions yet",
            (Some(l), Some(r)) if l == r => "agrees",
            (Some(l), Some(r)) if l.version < r.version => {
                "database behind the store (the next run catches up)"
            }
            (None, Some(_)) => "database empty (rebuilt from the store on the next run)",
            (Some(_), None) => "store has no latest.json (the next run starts a new history there)",
            _ => "database and store disagree",
        };
        if json {
            let v = json!({
                "dataset": ds.name,
                "store": store.url(),
                "source": snapsync::source::redact_url(&ds.url),
                "last_fetched_from": state.source_url,
                "last_run": last_run.as_ref().map(|r| json!({
                    "started_at": r.started_at, "outcome": r.outcome, "version": r.version,
                    "duration_ms": r.total_ms, "error": r.error})),
                "last_success": last_ok.as_ref().map(|r| json!({"started_at": r.started_at, "outcome": r.outcome})),
                "local_version": state.last.as_ref().map(|e| json!({"version": e.version, "sha256": e.sha256, "created_at": e.created_at})),
                "store_version": remote.as_ref().map(|e| json!({"version": e.version, "sha256": e.sha256, "created_at": e.created_at})),
                "agreement": agreement,
                "next_run": next_run,
                "schedule": ds.schedule.as_str(),
            });
            out(format_args!("{v}"))?;
        } else {
            out(format_args!("{}", ds.name))?;
            out(format_args!("  store:         {}", store.url()))?;
            let source = snapsync::source::redact_url(&ds.url);
            out(format_args!("  source:        {source}"))?;
            // The configured source is this command's (--url, the config file, or the
            // default); the one the last run fetched is the database's word.
            if let Some(used) = state.source_url.as_deref().filter(|u| *u != source) {
                out(format_args!(
                    "  last fetched:  {used} (not the source above: pass the same --url or config to see that one)"
                ))?;
            }
            match &last_run {
                Some(r) => out(format_args!(
                    "  last run:      {} {} ({} ms){}",
                    r.started_at,
                    r.outcome,
                    r.total_ms,
                    r.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ))?,
                None => out(format_args!("  last run:      never (on this database)"))?,
            }
            if let Some(r) = &last_ok {
                out(format_args!(
                    "  last success:  {} {}",
                    r.started_at, r.outcome
                ))?;
            }
            match &remote {
                Some(e) => out(format_args!(
                    "  version:       {} sha256={} ({})",
                    e.version, e.sha256, e.created_at
                ))?,
                None => out(format_args!("  version:       none published"))?,
            }
            out(format_args!("  local state:   {agreement}"))?;
            out(format_args!(
                "  next run:      {next_run} (worker schedule \"{}\")",
                ds.schedule.as_str()
            ))?;
        }
    }
    Ok(())
}
