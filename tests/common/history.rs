//! What "a consistent history" means in the reliability tests, checked the way a consumer
//! would: the manifest lists versions 1..n with no gap or fork, each version's sha256 differs
//! from its predecessor's, `latest.json` is the last version (by metadata and by content), and
//! `snapsync::history::verify` replays every delta onto its base and gets the next hash.

use snapsync::canonical::KeyPointer;
use snapsync::history;
use snapsync::keys::DatasetKeys;
use snapsync::manifest::{Entry, Manifest};
use snapsync::remote;
use snapsync::store::DynStore;

/// A history that passed [`check`].
#[derive(Debug, Clone)]
pub struct Checked {
    pub versions: Vec<Entry>,
    pub orphans: usize,
}

impl Checked {
    pub fn len(&self) -> u64 {
        self.versions.len() as u64
    }
    pub fn last_sha(&self) -> Option<&str> {
        self.versions.last().map(|e| e.sha256.as_str())
    }
}

/// Checks one dataset's whole history; `Err` says what is inconsistent.
pub async fn check(store: &DynStore, dataset: &str, key: &str) -> Result<Checked, String> {
    let keys = DatasetKeys::new(store.prefix(), dataset);
    let key = KeyPointer::parse(key).map_err(|e| format!("key: {e}"))?;
    let manifest: Manifest = match remote::read_manifest(store, &keys)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(m) => m,
        None => Manifest::new(dataset),
    };
    for (i, e) in manifest.versions.iter().enumerate() {
        if e.version != i as u64 + 1 {
            return Err(format!(
                "manifest position {i} holds version {} (gap or duplicate)",
                e.version
            ));
        }
        if i > 0 && manifest.versions[i - 1].sha256 == e.sha256 {
            return Err(format!(
                "version {} has the same sha256 as version {} (a duplicate publish)",
                e.version,
                e.version - 1
            ));
        }
    }
    let report = history::verify(store, &keys, &key)
        .await
        .map_err(|e| e.to_string())?;
    if !report.is_sound() {
        return Err(format!("verify: {:?}", report.problems));
    }
    if report.versions != manifest.versions.len() {
        return Err(format!(
            "verify saw {} versions, the manifest has {}",
            report.versions,
            manifest.versions.len()
        ));
    }
    // verify already checks latest.json's metadata and bytes against the manifest's last entry.
    Ok(Checked {
        versions: manifest.versions,
        orphans: report.orphans.len(),
    })
}

/// Keyed records whose content depends on `tag`: every tag gives a different version.
pub fn data(tag: u64, records: u64) -> Vec<u8> {
    let recs: Vec<serde_json::Value> = (0..records)
        .map(|i| {
            serde_json::json!({
                "country": {"key": format!("c{i:04}")},
                "dates": {"2020-01-01": {"new": {"cases": i * 7 + tag, "deaths": tag % 13}}},
                "name": format!("Country number {i} with a longer name to make bytes"),
            })
        })
        .collect();
    serde_json::to_vec(&recs).expect("JSON")
}

/// The sha256 snapsync gives the data (canonical bytes).
pub fn sha_of(raw: &[u8], key: &str) -> String {
    let key = KeyPointer::parse(key).expect("key");
    snapsync::canonical::Document::from_json(raw, &key)
        .expect("valid JSON")
        .sha256()
        .to_string()
}

/// `records` records keyed `k0`, `k1`, … whose `v` is `i * tag` (compact JSON text): a
/// dataset small enough to write by hand into a sandbox.
pub fn small(records: u32, tag: u32) -> String {
    let recs: Vec<String> = (0..records)
        .map(|i| format!(r#"{{"country":{{"key":"k{i}"}},"v":{}}}"#, i * tag))
        .collect();
    format!("[{}]", recs.join(","))
}
