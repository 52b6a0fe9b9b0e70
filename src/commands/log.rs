//! `snapsync log`: the versions of each dataset, newest first.

use snapsync::config::Config;
use snapsync::keys::DatasetKeys;
use snapsync::manifest::Manifest;
use snapsync::store;

use crate::commands::{human_bytes, no_history, out};

pub async fn log(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = store::open(&config.store, &config.s3).await?;
    let mut empty = Vec::new();
    for ds in &config.datasets {
        let keys = DatasetKeys::new(store.prefix(), &ds.name);
        let manifest = snapsync::remote::read_manifest(&store, &keys)
            .await?
            .unwrap_or_else(|| Manifest::new(&ds.name));
        if json && !manifest.versions.is_empty() {
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
            empty.push(ds.name.as_str());
            continue;
        }
        for e in manifest.versions.iter().rev() {
            // Values inside the changed records, when the publish told them apart.
            let values = e.values.map_or(String::new(), |v| {
                format!(
                    " appended={} revised={} derived={}{}",
                    v.appended,
                    v.revised,
                    v.derived,
                    if v.deleted > 0 {
                        format!(" deleted={}", v.deleted)
                    } else {
                        String::new()
                    }
                )
            });
            out(format_args!(
                "v{:<4} {}  {}  +{} -{} ~{} moved={}{values}  records={}  snapshot={} delta={}",
                e.version,
                e.created_at,
                &e.sha256[..12],
                e.added,
                e.removed,
                e.changed,
                e.moved,
                e.records.map_or("-".to_string(), |n| n.to_string()),
                if e.pruned {
                    "pruned".to_string()
                } else {
                    human_bytes(e.snapshot_bytes)
                },
                e.delta_bytes.map_or("-".to_string(), human_bytes),
            ))?;
        }
    }
    // After the others are printed: a typo in --dataset fails a script's check.
    match empty.as_slice() {
        [] => Ok(()),
        names => Err(no_history(&store, names).await),
    }
}
