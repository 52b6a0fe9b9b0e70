//! `snapsync pull`: bring a local file up to date with the newest version, by deltas when cheaper.

use anyhow::Context;

use crate::commands::{one_dataset, out};
use snapsync::cli::PullArgs;
use snapsync::config::Config;
use snapsync::consumer;
use snapsync::keys::DatasetKeys;
use snapsync::store::{self, StoreUrl};

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
