//! `restore`: a version rebuilt from the nearest kept snapshot plus deltas, planned first
//! ([`RestorePlan`]).

use time::OffsetDateTime;

use crate::canonical::{Document, KeyPointer};
use crate::error::{Error, Result};
use crate::keys::{self};
use crate::manifest::{Entry, Manifest};
use crate::remote::{apply_step_into, read_delta, read_document};
use crate::store::DynStore;

/// Which version to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Version(u64),
    /// The version current at that time: the last one created at or before it.
    At(OffsetDateTime),
}

/// How to rebuild one version: a kept snapshot, then deltas in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    pub target: Entry,
    pub base: Entry,
    pub deltas: Vec<Entry>,
}

impl RestorePlan {
    pub fn bytes(&self) -> u64 {
        self.base.snapshot_bytes
            + self
                .deltas
                .iter()
                .map(|e| e.delta_bytes.unwrap_or(0))
                .sum::<u64>()
    }
}

/// The version a target names.
pub fn resolve_target(manifest: &Manifest, target: Target) -> std::result::Result<&Entry, String> {
    match target {
        Target::Version(n) => manifest.get(n).ok_or_else(|| {
            format!(
                "there is no version {n} (the history has versions 1 to {})",
                manifest.last().map_or(0, |e| e.version)
            )
        }),
        Target::At(t) => manifest
            .versions
            .iter()
            .rev()
            .find(|e| keys::parse_rfc3339(&e.created_at).is_some_and(|c| c <= t))
            .ok_or_else(|| match manifest.versions.first() {
                Some(first) => format!(
                    "no version existed at {} (the first is from {})",
                    keys::rfc3339(t),
                    first.created_at
                ),
                None => "the history has no versions".to_string(),
            }),
    }
}

/// Ways to rebuild `target`, best first: from each kept snapshot at or before it (nearest
/// first), plus the deltas after it. Deltas only go forward, so later snapshots are no use.
pub fn restore_plans(manifest: &Manifest, target: &Entry) -> Vec<RestorePlan> {
    let upto: Vec<&Entry> = manifest
        .versions
        .iter()
        .filter(|e| e.version <= target.version)
        .collect();
    let mut plans = Vec::new();
    for (i, base) in upto.iter().enumerate().rev() {
        if base.pruned {
            continue;
        }
        let deltas: Vec<Entry> = upto[i + 1..].iter().map(|e| (*e).clone()).collect();
        if deltas.iter().any(|e| e.delta.is_none()) {
            continue;
        }
        plans.push(RestorePlan {
            target: target.clone(),
            base: (*base).clone(),
            deltas,
        });
    }
    plans
}

/// Rebuilds one version: the first plan whose snapshot reads back; each delta checked against
/// the next version's hash, the result against the manifest's.
pub async fn restore(
    store: &DynStore,
    manifest: &Manifest,
    target: &Entry,
) -> Result<(Document, RestorePlan)> {
    let corrupt = |reason: String| Error::corrupt(store.url(), target.snapshot.clone(), reason);
    let plans = restore_plans(manifest, target);
    if plans.is_empty() {
        return Err(corrupt(format!(
            "version {} cannot be restored: no kept snapshot at or before it with deltas up to it",
            target.version
        )));
    }
    let mut last_err = None;
    for p in plans {
        let mut doc = match read_document(
            store,
            &p.base.snapshot,
            &KeyPointer::default(),
            &p.base.sha256,
        )
        .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "snapshot unusable; trying an older one");
                last_err = Some(e);
                continue;
            }
        };
        let progress = crate::progress::start(
            format!("restoring version {}", target.version),
            Some(p.deltas.len() as u64),
            crate::progress::Unit::Deltas,
        );
        // The buffer of the version before `doc`, for the next one.
        let mut spare: Option<Vec<u8>> = None;
        for e in &p.deltas {
            progress.inc(1);
            let key = e
                .delta
                .as_deref()
                .expect("plans only hold entries with deltas");
            let (text, _) = read_delta(store, key).await?;
            let next = apply_step_into(&text, &doc, e, spare.take().unwrap_or_default())
                .map_err(|why| Error::corrupt(store.url(), key, why))?
                .0;
            spare = std::mem::replace(&mut doc, next).into_buffer();
        }
        if doc.sha256() != target.sha256 {
            return Err(corrupt(format!(
                "restored version {} hashes to {}, the manifest says {}",
                target.version,
                doc.sha256(),
                target.sha256
            )));
        }
        return Ok((doc, p));
    }
    Err(last_err.expect("at least one plan was tried"))
}
