//! A published dataset, read and written through the [`Store`](crate::store::Store): its
//! `latest.json` head, its manifest, its snapshots and deltas. The one place that knows how a
//! stored object is turned back into a checked document (get, gunzip, hash-check), how the
//! manifest is read and written, and how entries missing from a manifest are recovered from
//! the objects' own metadata.
//!
//! The decision to know: nothing read here is trusted until checked — a body must hash to the
//! sha256 its entry names ([`read_verified`], [`read_document`]), a delta must say it goes
//! between the two versions it is applied to ([`apply_step`]). Its words are `read_*` and
//! `write_*`; "fetch" is the HTTP source's.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::canonical::{sha256_hex, Document, KeyPointer};
use crate::delta::{self, Delta};
use crate::error::{Error, Result};
use crate::gzip;
use crate::keys::DatasetKeys;
use crate::manifest::{Entry, Manifest};
use crate::store::{DynStore, ObjectMeta, PutMode, PutOptions};

/// Canonical JSON bodies read back from the store are at most this large when decompressed.
const MAX_BODY: u64 = 8 << 30;
/// Decompressed deltas are at most this large.
const MAX_DELTA: u64 = 4 << 30;
/// Most attempts at a conditional write (the commit point, the manifest) before giving up on a
/// store that keeps changing.
pub(crate) const MAX_ATTEMPTS: u32 = 8;

/// `latest.json`'s head: `None` when there is none; `entry` is `None` when the object has no
/// snapsync metadata (written by something else).
pub async fn head_latest(store: &DynStore, keys: &DatasetKeys) -> Result<Option<LatestHead>> {
    Ok(store.head(&keys.latest()).await?.map(|meta| LatestHead {
        entry: Entry::from_metadata(&meta.metadata),
        attempt: meta.metadata.get(crate::keys::META_ATTEMPT).cloned(),
        etag: meta.etag,
        size: meta.size,
    }))
}

/// What `HEAD latest.json` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestHead {
    /// The version it is, from its metadata; `None`: not snapsync's object.
    pub entry: Option<Entry>,
    /// The writer attempt that committed it (`snapsync-attempt`).
    pub attempt: Option<String>,
    pub etag: String,
    /// Its stored size in bytes.
    pub size: u64,
}

/// The newest version's entry, from `latest.json`'s metadata (`None`: none, or not snapsync's).
pub async fn latest_entry(store: &DynStore, keys: &DatasetKeys) -> Result<Option<Entry>> {
    Ok(head_latest(store, keys).await?.and_then(|h| h.entry))
}

/// The `created_at` of the store's newest version, if any.
pub async fn latest_created_at(
    store: &DynStore,
    keys: &DatasetKeys,
) -> Result<Option<OffsetDateTime>> {
    Ok(latest_entry(store, keys)
        .await?
        .and_then(|e| crate::keys::parse_rfc3339(&e.created_at)))
}

/// Reads a dataset's manifest (`None` when the dataset has none).
pub async fn read_manifest(store: &DynStore, keys: &DatasetKeys) -> Result<Option<Manifest>> {
    Ok(read_manifest_with_etag(store, keys)
        .await?
        .map(|(m, _, _)| m))
}

/// The manifest, its ETag (for a conditional rewrite) and its size in bytes.
pub async fn read_manifest_with_etag(
    store: &DynStore,
    keys: &DatasetKeys,
) -> Result<Option<(Manifest, String, u64)>> {
    let key = keys.manifest();
    match store.get(&key).await? {
        None => Ok(None),
        Some((bytes, meta)) => serde_json::from_slice(&bytes)
            .map(|m| Some((m, meta.etag, bytes.len() as u64)))
            .map_err(|e| Error::corrupt(store.url(), key, format!("not a valid manifest: {e}"))),
    }
}

/// Reads a delta object: the delta file's text and the bytes transferred. It is parsed only as
/// [`apply_step`] applies it, one operation at a time.
pub async fn read_delta(store: &DynStore, key: &str) -> Result<(Bytes, u64)> {
    let read = read_object(store, key, MAX_DELTA, 0).await?;
    Ok((read.body, read.transferred))
}

/// Applies the delta file `delta` (its text) to the document of the version before `to`,
/// checking that the file says it goes from that version to `to` and that the result hashes
/// to `to.sha256`; returns the result and the file's other fields (its patch empty). The error
/// says what did not match.
pub fn apply_step(
    delta: &[u8],
    base: &Document,
    to: &Entry,
) -> std::result::Result<(Document, Delta<'static>), String> {
    apply_step_into(delta, base, to, Vec::new())
}

/// [`apply_step`], writing the result into `buffer` (emptied first): the buffer of a version
/// no longer needed ([`Document::into_buffer`]). A large result is hashed on the other core as
/// it is written (the hash was a third of rebuilding a version).
pub fn apply_step_into(
    delta: &[u8],
    base: &Document,
    to: &Entry,
    mut applied: Vec<u8>,
) -> std::result::Result<(Document, Delta<'static>), String> {
    applied.clear();
    applied.reserve(base.bytes().len() + 1024);
    let mut records = Vec::with_capacity(base.record_count().unwrap_or(0));
    let between = delta::Between {
        from: base.sha256(),
        to: &to.sha256,
    };
    let beside = base.bytes().len() >= crate::canonical::HASH_BESIDE;
    // A MiB a chunk: the hasher keeps up, and chunks of 64 KiB cost a wake-up each (verify
    // took 8 % longer).
    let (pipe, chunks) = beside.then(|| crate::pipe::pipe(16, 1 << 20)).unzip();
    let mut out = crate::pipe::Tee::new(applied, pipe);
    let (file, by_record, bytes, hashed) = std::thread::scope(|s| {
        let hasher = chunks.map(|chunks| {
            s.spawn(move || {
                let mut hash = Sha256::new();
                chunks.into_chunks().for_each(|c| hash.update(&c));
                hex::encode(hash.finalize())
            })
        });
        let result = delta::apply_delta(
            base,
            delta::DeltaBytes::Json(delta),
            Some(between),
            &mut out,
            Some(&mut records),
        );
        // The end of the hashed stream (whatever the apply said: the hasher must see its end).
        let (bytes, whole) = out.finish();
        let got = hasher.map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        result.map(|(file, by_record)| (file, by_record, bytes, got.filter(|_| whole)))
    })
    .map_err(|e| match e {
        delta::DeltaError::Versions { from, to: goes_to } => format!(
            "it goes from {} to {}, not from {} to version {} ({})",
            short(&from.sha256),
            short(&goes_to.sha256),
            short(base.sha256()),
            to.version,
            short(&to.sha256)
        ),
        delta::DeltaError::Format(e) => format!("not a valid delta: {e}"),
        e => e.to_string(),
    })?;
    // One hash of the result, which either constructor checks; records written one by one are
    // not scanned again.
    let (bytes, none) = (Bytes::from(bytes), KeyPointer::default());
    match by_record {
        true => Document::from_applied((bytes, hashed), &none, &to.sha256, base, &records),
        false => Document::from_canonical(bytes, &none, &to.sha256),
    }
    .map(|doc| (doc, file))
    .map_err(|reason| format!("applied, it does not give version {}: {reason}", to.version))
}

/// The first 12 characters of a hash, for messages (whatever a tampered manifest holds).
pub(crate) fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// A stored object read back: its body (gunzipped when it was stored gzip) and the bytes
/// transferred.
pub struct Read {
    pub body: Bytes,
    pub transferred: u64,
}

/// A stored version's body (`latest.json` or a snapshot), checked to hash to `entry.sha256`.
pub async fn read_verified(store: &DynStore, key: &str, entry: &Entry) -> Result<Read> {
    let read = read_object(store, key, MAX_BODY, entry.canonical_bytes).await?;
    check_hash(store, key, &read.body, entry)?;
    Ok(read)
}

/// `latest.json`'s body and the entry in its metadata, checked against each other. One GET:
/// body and metadata are of the same write.
pub async fn read_latest(store: &DynStore, keys: &DatasetKeys) -> Result<(Entry, Read)> {
    let key = keys.latest();
    let (bytes, meta) = store
        .get(&key)
        .await?
        .ok_or_else(|| Error::not_found(store.url(), &key))?;
    let entry = Entry::from_metadata(&meta.metadata)
        .ok_or_else(|| Error::corrupt(store.url(), &key, "has no snapsync metadata"))?;
    let read = unpack(store, &key, bytes, &meta, MAX_BODY, entry.canonical_bytes)?;
    check_hash(store, &key, &read.body, &entry)?;
    Ok((entry, read))
}

fn check_hash(store: &DynStore, key: &str, body: &[u8], entry: &Entry) -> Result<()> {
    let got = sha256_hex(body);
    if got != entry.sha256 {
        return Err(Error::corrupt(
            store.url(),
            key,
            format!(
                "content hashes to {got}, version {} is {}",
                entry.version, entry.sha256
            ),
        ));
    }
    Ok(())
}

/// A stored canonical version as a [`Document`], checked against `sha256` (hashed once, while
/// the document is built).
pub async fn read_document(
    store: &DynStore,
    key: &str,
    pointer: &KeyPointer,
    sha256: &str,
) -> Result<Document> {
    let body = read_object(store, key, MAX_BODY, 0).await?.body;
    let (pointer, sha) = (pointer.clone(), sha256.to_string());
    crate::blocking(move || Document::from_canonical(body, &pointer, &sha))
        .await
        .map_err(|reason| Error::corrupt(store.url(), key, reason))
}

/// Checks that a stored canonical version hashes to `sha256`, streaming it through the hash
/// (gunzipped when stored gzip): what `verify` needs of a snapshot whose version it rebuilt from
/// the delta already. The same errors as [`read_document`], without building a document.
pub async fn check_stored_hash(store: &DynStore, key: &str, sha256: &str) -> Result<()> {
    let (bytes, meta) = store
        .get(key)
        .await?
        .ok_or_else(|| Error::not_found(store.url(), key))?;
    let gz = stored_gzip(key, &meta);
    let got = crate::blocking(move || {
        if gz {
            gzip::gunzip_sha256(&bytes, MAX_BODY).map(|(sha, _)| sha)
        } else {
            Ok(sha256_hex(&bytes))
        }
    })
    .await
    .map_err(|e| Error::corrupt(store.url(), key, format!("not valid gzip: {e}")))?;
    if got != sha256 {
        let reason = format!("content hashes to {got}, expected {sha256}");
        return Err(Error::corrupt(store.url(), key, reason));
    }
    Ok(())
}

/// A stored object, gunzipped (to at most `limit` bytes; `size_hint` preallocates) when it was
/// stored gzip; not yet checked. A missing object is [`Error::NotFound`].
async fn read_object(store: &DynStore, key: &str, limit: u64, size_hint: u64) -> Result<Read> {
    let (bytes, meta) = store
        .get(key)
        .await?
        .ok_or_else(|| Error::not_found(store.url(), key))?;
    unpack(store, key, bytes, &meta, limit, size_hint)
}

fn unpack(
    store: &DynStore,
    key: &str,
    bytes: Bytes,
    meta: &ObjectMeta,
    limit: u64,
    size_hint: u64,
) -> Result<Read> {
    let transferred = bytes.len() as u64;
    let body = if stored_gzip(key, meta) {
        Bytes::from(
            gzip::gunzip(&bytes, limit, size_hint)
                .map_err(|e| Error::corrupt(store.url(), key, format!("not valid gzip: {e}")))?,
        )
    } else {
        bytes
    };
    Ok(Read { body, transferred })
}

/// Whether the object `key` is stored gzip (by its encoding, or its name).
fn stored_gzip(key: &str, meta: &ObjectMeta) -> bool {
    meta.content_encoding.as_deref() == Some("gzip") || key.ends_with(".gz")
}

/// Writes the manifest (`mode`: create, or update the ETag read), with its last entry as
/// metadata; returns the bytes written.
pub async fn write_manifest(
    store: &DynStore,
    keys: &DatasetKeys,
    manifest: &Manifest,
    mode: PutMode,
) -> Result<u64> {
    let body = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
    let len = body.len() as u64;
    let meta = manifest.last().map(Entry::to_metadata).unwrap_or_default();
    store
        .put(
            &keys.manifest(),
            Bytes::from(body),
            PutOptions::json(mode).with_metadata(meta),
        )
        .await?;
    Ok(len)
}

/// Makes the manifest list every version up to `upto` (appending what a crashed run left
/// out, recovered from object metadata), with `If-Match` so concurrent writers merge; returns
/// it and the bytes written. `base` is the version `upto` was committed on, when the caller
/// read it from `latest.json` (see [`recover_entries`]).
pub async fn reconcile_manifest(
    store: &DynStore,
    keys: &DatasetKeys,
    dataset: &str,
    upto: &Entry,
    base: Option<&Entry>,
) -> Result<(Manifest, u64)> {
    let key = keys.manifest();
    for _ in 0..MAX_ATTEMPTS {
        let (mut manifest, mode) = match read_manifest_with_etag(store, keys).await? {
            Some((m, etag, _)) => (m, PutMode::Update(etag)),
            None => (Manifest::new(dataset), PutMode::Create),
        };
        let have = manifest.last().map_or(0, |e| e.version);
        if have >= upto.version {
            if manifest.get(upto.version) != Some(upto) {
                return Err(Error::corrupt(
                    store.url(),
                    key,
                    format!(
                        "lists a different version {} than latest.json",
                        upto.version
                    ),
                ));
            }
            return Ok((manifest, 0));
        }
        let missing = recover_entries(store, keys, have, upto, base).await?;
        manifest.versions.extend(missing);
        manifest.check_chain().map_err(|reason| {
            Error::corrupt(
                store.url(),
                key.clone(),
                format!("would break the chain: {reason}"),
            )
        })?;
        match write_manifest(store, keys, &manifest, mode).await {
            Ok(written) => return Ok((manifest, written)),
            Err(Error::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Contended {
        dataset: dataset.to_string(),
        attempts: MAX_ATTEMPTS,
    })
}

/// Entries `have+1 ..= upto.version`, walking back from `upto` through the metadata of the
/// snapshot and delta objects (each carries its version's whole entry). Used by `verify` and
/// by a run that finds the manifest behind `latest.json` (a crash after the commit point, or a
/// writer that committed the version before and has not written the manifest yet).
///
/// Several attempts at one version of the same data leave objects that say the same version,
/// content and base, each with its own `created_at` and keys; only one was committed, and the
/// objects cannot tell which. `known` is an entry the caller read from `latest.json` itself
/// (the version its own commit followed): it is taken as is rather than searched for, so the
/// manifest names the objects its writer committed (that writer checks them when it writes
/// the manifest in turn). Further back (two or more versions missing) the first matching
/// object found is taken: right in content and chain, but possibly another attempt's keys.
pub async fn recover_entries(
    store: &DynStore,
    keys: &DatasetKeys,
    have: u64,
    upto: &Entry,
    known: Option<&Entry>,
) -> Result<Vec<Entry>> {
    let mut out = vec![upto.clone()];
    if upto.version > have + 1 {
        let deltas = store.list(&keys.deltas_dir()).await?;
        let snapshots = store.list(&keys.snapshots_dir()).await?;
        while out.last().expect("non-empty").version > have + 1 {
            let child = out.last().expect("non-empty");
            let want = child.prev_sha256.clone().unwrap_or_default();
            if let Some(k) = known.filter(|k| k.sha256 == want && k.version + 1 == child.version) {
                out.push(k.clone());
                continue;
            }
            let suffix = |ext: &str| format!("-{}{ext}", short(&want));
            let candidates = deltas
                .iter()
                .filter(|e| e.key.ends_with(&suffix(".delta.json.gz")))
                .chain(
                    snapshots
                        .iter()
                        .filter(|e| e.key.ends_with(&suffix(".json.gz"))),
                );
            let mut found = None;
            for c in candidates {
                let meta = store.head(&c.key).await?;
                if let Some(e) = meta.and_then(|m| Entry::from_metadata(&m.metadata)) {
                    if e.sha256 == want && e.version + 1 == child.version {
                        found = Some(e);
                        break;
                    }
                }
            }
            let Some(e) = found else {
                return Err(Error::corrupt(
                    store.url(),
                    keys.manifest(),
                    format!(
                        "misses version {} and no object in the store describes it",
                        child.version - 1
                    ),
                ));
            };
            out.push(e);
        }
    }
    out.reverse();
    Ok(out)
}

/// Deletes objects; returns how many.
pub async fn delete_objects(store: &DynStore, keys: &[String]) -> Result<usize> {
    let progress = crate::progress::start(
        "deleting",
        Some(keys.len() as u64),
        crate::progress::Unit::Objects,
    );
    for k in keys {
        progress.inc(1);
        store.delete(k).await?;
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::{json, Value};

    use super::*;
    use crate::delta::{PatchOp, VersionRef};

    /// Records enough that the result is hashed on the other core as it is written.
    fn large(edit: impl Fn(usize) -> Value) -> Document {
        let records: Vec<Value> = (0..4000).map(edit).collect();
        let doc = Document::from_value(&Value::Array(records), &KeyPointer::parse("/k").unwrap());
        assert!(doc.bytes().len() >= crate::canonical::HASH_BESIDE);
        doc
    }

    fn record(i: usize, extra: &str) -> Value {
        json!({"k": i, "series": vec![i; 60], "extra": extra})
    }

    /// The delta file of `patch` from `base` to the version hashing to `to`.
    fn file(base: &Document, to: &str, patch: &[PatchOp]) -> Vec<u8> {
        let delta = Delta {
            format: delta::FORMAT.into(),
            dataset: "d".into(),
            from: VersionRef {
                version: 1,
                sha256: base.sha256().into(),
            },
            to: VersionRef {
                version: 2,
                sha256: to.into(),
            },
            created_at: "2026-12-04T06:00:00Z".into(),
            summary: Default::default(),
            changes: Cow::Owned(Vec::new()),
            patch: Cow::Borrowed(patch),
        };
        serde_json::to_vec(&delta).unwrap()
    }

    fn entry(sha256: &str) -> Entry {
        Entry {
            version: 2,
            sha256: sha256.into(),
            ..Entry::default()
        }
    }

    #[test]
    fn a_large_version_hashed_as_it_is_written_is_the_new_version() {
        let base = large(|i| record(i, "a"));
        let new = large(|i| record(i, if i % 7 == 0 { "b" } else { "a" }));
        let d = delta::diff(&base, &new);
        let text = file(&base, new.sha256(), &d.patch);
        let (doc, _) = apply_step_into(&text, &base, &entry(new.sha256()), vec![1; 10]).unwrap();
        assert_eq!(doc.bytes(), new.bytes());
        assert_eq!(doc.sha256(), new.sha256());
        assert_eq!(doc.record_count(), new.record_count());

        // A delta whose result is not the version it names: the hash says so.
        let other = large(|i| record(i, if i % 5 == 0 { "b" } else { "a" }));
        let text = file(&base, new.sha256(), &delta::diff(&base, &other).patch);
        let err = apply_step(&text, &base, &entry(new.sha256())).unwrap_err();
        assert!(
            err.contains(&format!("content hashes to {}", other.sha256())),
            "{err}"
        );
    }

    #[test]
    fn a_large_version_applied_whole_after_a_false_start_is_hashed_whole() {
        let base = large(|i| record(i, "a"));
        // An operation on a later record before one on an earlier: the apply starts over
        // (after more than a chunk of records went to the hasher) and applies the file whole,
        // and the result is hashed whole.
        let patch: Vec<PatchOp> = serde_json::from_value(json!([
            {"op": "replace", "path": "/3900/extra", "value": "b"},
            {"op": "replace", "path": "/10/extra", "value": "b"}
        ]))
        .unwrap();
        let new = large(|i| record(i, if i == 3900 || i == 10 { "b" } else { "a" }));
        let text = file(&base, new.sha256(), &patch);
        let (doc, _) = apply_step(&text, &base, &entry(new.sha256())).unwrap();
        assert_eq!(doc.bytes(), new.bytes());
        assert_eq!(doc.sha256(), new.sha256());
    }
}
