//! `snapsync log`: the versions of each dataset, newest first.

use snapsync::config::Config;
use snapsync::keys::DatasetKeys;
use snapsync::manifest::Manifest;
use snapsync::store;

use crate::commands::{human_bytes, out};

pub async fn log(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = store::open(&config.store, &config.s3).await?;
    for ds in &config.datasets {
        let keys = DatasetKeys::new(store.prefix(), &ds.name);
        let manifest = snapsync::remote::read_manifest(&store, &keys)
            .await?
            .unwrap_or_else(|| Manifest::new(&ds.name));
        if json {
            out(format_args!(
                "{}",
                serde_json::to_string(&manifest).expect("a manifest serializes")
            ))?;
            continue;
        }
        if config.datasets.len() > 1 {
            out(format_args!("{}", ds.name))?;
        }
        if manifest.versions.is_empty() {
            out(format_args!(
                "no versions of {} in {}",
                ds.name,
                store.url()
            ))?;
        }
        for e in manifest.versions.iter().rev() {
            out(format_args!(
                "v{:<4} {}  {}  +{} -{} ~{} moved={}  records={}  snapshot={} delta={}",
                e.version,
                e.created_at,
                &e.sha256[..12],
                e.added,
                e.removed,
                e.changed,
                e.moved,
                e.records.map_or("-".to_string(), |n| n.to_string()),
                human_bytes(e.snapshot_bytes),
                e.delta_bytes.map_or("-".to_string(), human_bytes),
            ))?;
        }
    }
    Ok(())
}
