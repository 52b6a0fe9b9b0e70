//! The embedded default store: a plain directory that mirrors the S3 layout.
//!
//! `DIR/{key}` holds the object's bytes exactly as S3 would (so `zcat` and `sha256sum` work on
//! it), and `DIR/.snapsync/meta/{key}.json` its ETag, encoding and user metadata. Conditional
//! puts are made atomic with an exclusive `flock` on `DIR/.snapsync/lock` around
//! check-then-rename, so two processes on one machine get S3's semantics.
//!
//! The one decision to keep: a put is two renames, and a crash (SIGKILL, power loss) between them
//! must not leave bytes that do not belong to their metadata. So the new metadata is first staged
//! in `DIR/.snapsync/pending/{key}.json`, then the data file is renamed into place — the commit —
//! then the staged metadata. Whoever next touches the key and finds a staged file *settles* it
//! under the lock: if the data hashes to the staged ETag the put happened and its metadata is
//! moved into place, otherwise the put never happened and the staged file is dropped. Without
//! this, a writer killed between the renames left a torn `manifest.json` that every later run
//! refused to read. Readers take no lock, so a read can meet the metadata of one put and the
//! bytes of the next: [`FileStore::get`] then reads again under the lock, and only bytes that
//! still do not hash to their recorded ETag (edited by hand) are reported as torn.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{ListEntry, ObjectMeta, PutMode, PutOptions, Store};
use crate::error::{Error, Result};

const STATE_DIR: &str = ".snapsync";

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    url: String,
    /// What [`FileStore::open`] cleaned up, for `verify`.
    housekeeping: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct MetaFile {
    etag: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_encoding: Option<String>,
    #[serde(default)]
    content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_control: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl FileStore {
    /// Opens (creating) the store directory. Temporary files that a put died with (a full
    /// disk, a kill) are removed here, when no put is under way; [`Store::housekeeping`] says
    /// how many.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let root = fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
        let url = format!("file://{}", root.display());
        let mut store = FileStore {
            root,
            url,
            housekeeping: Vec::new(),
        };
        let state = store.root.join(STATE_DIR);
        store.refuse_links(STATE_DIR, &state.join("tmp"))?;
        fs::create_dir_all(state.join("tmp")).map_err(|e| Error::io(&state, e))?;
        store.housekeeping = store.clean_tmp()?.into_iter().collect();
        Ok(store)
    }

    /// Removes what is left in `.snapsync/tmp` when nobody holds the lock (every put holds it
    /// from its first temporary file to its last rename, so nothing there is in use).
    fn clean_tmp(&self) -> Result<Option<String>> {
        let (lock, _) = self.lock_file()?;
        if lock.try_lock().is_err() {
            return Ok(None);
        }
        let tmp = self.root.join(STATE_DIR).join("tmp");
        let (mut files, mut bytes) = (0u64, 0u64);
        for entry in fs::read_dir(&tmp).map_err(|e| Error::io(&tmp, e))? {
            let entry = entry.map_err(|e| Error::io(&tmp, e))?;
            let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
            if !meta.is_file() || !entry.file_name().to_string_lossy().starts_with("put-") {
                continue;
            }
            fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            files += 1;
            bytes += meta.len();
        }
        Ok((files > 0).then(|| {
            let line = format!(
                "removed {files} leftover temporary file(s) ({bytes} bytes) of interrupted puts from {}",
                tmp.display()
            );
            tracing::info!("{line}");
            line
        }))
    }

    /// Refuses a path inside the root that goes through a symbolic link (or is one): the store
    /// never reads, writes or deletes outside its directory, whatever was planted in it.
    fn refuse_links(&self, key: &str, path: &Path) -> Result<()> {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return Err(self.err(key, "path is outside the store", false));
        };
        let mut at = self.root.clone();
        for part in rel.components() {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.err(
                        key,
                        format!(
                            "{} is a symbolic link; the file store never follows links",
                            at.display()
                        ),
                        false,
                    ))
                }
                Ok(_) => {}
                // Nothing further down exists yet, so nothing further down is a link.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(self.io_err(key, e)),
            }
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps a key to a path inside the root, refusing anything that could leave it.
    fn data_path(&self, key: &str) -> Result<PathBuf> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key.contains('\0')
            || key.contains('\\')
            || key
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".." || s == STATE_DIR);
        if bad {
            return Err(self.err(key, "invalid object key", false));
        }
        let path = self.root.join(key);
        self.refuse_links(key, &path)?;
        Ok(path)
    }

    fn meta_path(&self, key: &str) -> Result<PathBuf> {
        let path = self
            .root
            .join(STATE_DIR)
            .join("meta")
            .join(format!("{key}.json"));
        self.refuse_links(key, &path)?;
        Ok(path)
    }

    /// Where a put stages the new metadata before its data rename (see module docs).
    fn pending_path(&self, key: &str) -> Result<PathBuf> {
        let path = self
            .root
            .join(STATE_DIR)
            .join("pending")
            .join(format!("{key}.json"));
        self.refuse_links(key, &path)?;
        Ok(path)
    }

    /// Finishes or forgets a put that died between its renames. `locked`: the caller holds the
    /// lock already (a live writer holds it from staging to the end, so under the lock a staged
    /// file can only be a dead writer's).
    fn settle(&self, key: &str, locked: bool) -> Result<()> {
        let pending = self.pending_path(key)?;
        if !pending.exists() {
            return Ok(());
        }
        let _guard = if locked { None } else { Some(self.lock()?) };
        let staged = match fs::read(&pending) {
            Ok(raw) => serde_json::from_slice::<MetaFile>(&raw).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io_err(key, e)),
        };
        let data = match fs::read(self.data_path(key)?) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io_err(key, e)),
        };
        match (staged, data) {
            (Some(meta), Some(bytes)) if etag_of(&bytes) == meta.etag => {
                let meta_path = self.meta_path(key)?;
                if let Some(parent) = meta_path.parent() {
                    fs::create_dir_all(parent).map_err(|e| self.io_err(key, e))?;
                }
                fs::rename(&pending, &meta_path).map_err(|e| self.io_err(key, e))?;
                sync_parent(&meta_path);
            }
            _ => fs::remove_file(&pending).map_err(|e| self.io_err(key, e))?,
        }
        Ok(())
    }

    fn err(&self, key: &str, reason: impl std::fmt::Display, retryable: bool) -> Error {
        Error::Store {
            store: self.url.clone(),
            key: key.to_string(),
            reason: reason.to_string(),
            retryable,
        }
    }

    fn io_err(&self, key: &str, e: std::io::Error) -> Error {
        self.err(key, e, false)
    }

    /// The object's metadata, for a reader without the lock.
    fn read_meta(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.read_meta_once(key, true)
    }

    /// `may_wait`: a data file without a metadata file may be a put's first version between
    /// its two renames (its metadata staged after this reader's `settle` looked): then wait for
    /// the writer's lock, settle, and read again; only a file still without metadata was put
    /// there by hand. False under the lock, where no put is under way.
    fn read_meta_once(&self, key: &str, may_wait: bool) -> Result<Option<ObjectMeta>> {
        let data = self.data_path(key)?;
        let size = match fs::metadata(&data) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_err(key, e)),
        };
        match fs::read(self.meta_path(key)?) {
            Ok(raw) => {
                let m: MetaFile = serde_json::from_slice(&raw).map_err(|e| {
                    Error::corrupt(&self.url, key, format!("metadata file is not valid: {e}"))
                })?;
                Ok(Some(ObjectMeta {
                    key: key.to_string(),
                    etag: m.etag,
                    size: m.size,
                    content_encoding: m.content_encoding,
                    content_type: Some(m.content_type).filter(|t| !t.is_empty()),
                    cache_control: m.cache_control,
                    metadata: m.metadata,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_wait => {
                self.settle(key, false)?;
                self.read_meta_once(key, false)
            }
            // A file put there by hand: it exists, with no metadata; its ETag is its hash.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = fs::read(&data).map_err(|e| self.io_err(key, e))?;
                Ok(Some(ObjectMeta {
                    key: key.to_string(),
                    etag: etag_of(&bytes),
                    size,
                    content_encoding: None,
                    content_type: None,
                    cache_control: None,
                    metadata: BTreeMap::new(),
                }))
            }
            Err(e) => Err(self.io_err(key, e)),
        }
    }

    /// The metadata, then the bytes, of one object; not checked against each other.
    /// `locked`: the caller holds the lock (see [`FileStore::read_meta_once`]).
    fn read_object(&self, key: &str, locked: bool) -> Result<Option<(Vec<u8>, ObjectMeta)>> {
        let Some(meta) = self.read_meta_once(key, !locked)? else {
            return Ok(None);
        };
        match fs::read(self.data_path(key)?) {
            Ok(b) => Ok(Some((b, meta))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_err(key, e)),
        }
    }

    /// The store's lock file (not locked yet) and its path.
    fn lock_file(&self) -> Result<(File, PathBuf)> {
        let path = self.root.join(STATE_DIR).join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok((f, path))
    }

    fn lock(&self) -> Result<File> {
        let (f, path) = self.lock_file()?;
        f.lock().map_err(|e| Error::io(&path, e))?;
        Ok(f)
    }

    fn put_blocking(&self, key: &str, body: &[u8], opts: &PutOptions) -> Result<String> {
        let data_path = self.data_path(key)?;
        let meta_path = self.meta_path(key)?;
        let pending_path = self.pending_path(key)?;
        let _guard = self.lock()?;
        self.settle(key, true)?;
        let current = self.read_meta_once(key, false)?;
        match (&opts.mode, &current) {
            (PutMode::Create, Some(_)) => return Err(self.precondition(key)),
            (PutMode::Update(want), Some(cur)) if &cur.etag != want => {
                return Err(self.precondition(key))
            }
            (PutMode::Update(_), None) => return Err(self.precondition(key)),
            _ => {}
        }
        let etag = etag_of_digest(&opts.body_sha256(body));
        let meta = MetaFile {
            etag: etag.clone(),
            size: body.len() as u64,
            content_encoding: opts.content_encoding.map(str::to_string),
            content_type: opts.content_type.to_string(),
            cache_control: opts.cache_control.map(str::to_string),
            metadata: opts.metadata.clone(),
        };
        let meta_bytes = serde_json::to_vec_pretty(&meta).expect("metadata serializes");
        let tmp_dir = self.root.join(STATE_DIR).join("tmp");
        let tmp_data = write_temp(&tmp_dir, body).map_err(|e| self.io_err(key, e))?;
        let tmp_meta = write_temp(&tmp_dir, &meta_bytes).map_err(|e| self.io_err(key, e))?;
        for p in [&data_path, &meta_path, &pending_path] {
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).map_err(|e| self.io_err(key, e))?;
            }
        }
        // Staged metadata, then the data (the commit), then the metadata (see module docs).
        fs::rename(&tmp_meta, &pending_path).map_err(|e| self.io_err(key, e))?;
        sync_parent(&pending_path);
        fs::rename(&tmp_data, &data_path).map_err(|e| self.io_err(key, e))?;
        sync_parent(&data_path);
        fs::rename(&pending_path, &meta_path).map_err(|e| self.io_err(key, e))?;
        sync_parent(&meta_path);
        Ok(etag)
    }

    fn precondition(&self, key: &str) -> Error {
        Error::PreconditionFailed {
            store: self.url.clone(),
            key: key.to_string(),
        }
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        let mut out = Vec::new();
        // Walk from the deepest directory the prefix names, then filter by the string prefix.
        let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.data_path(dir_part)?
        };
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_err(prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.io_err(prefix, e))?;
                let path = entry.path();
                let rel = path
                    .strip_prefix(&self.root)
                    .expect("walk stays under root");
                let Some(rel) = rel.to_str() else { continue };
                if rel == STATE_DIR {
                    continue;
                }
                let ft = entry.file_type().map_err(|e| self.io_err(rel, e))?;
                if ft.is_dir() {
                    stack.push(path);
                } else if ft.is_file() && rel.starts_with(prefix) {
                    // Links (to files or directories) are neither: never listed, never followed.
                    let meta = entry.metadata().map_err(|e| self.io_err(rel, e))?;
                    out.push(ListEntry {
                        key: rel.to_string(),
                        size: meta.len(),
                        modified: meta.modified().ok().map(OffsetDateTime::from),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

pub(crate) fn etag_of(bytes: &[u8]) -> String {
    etag_of_digest(&Sha256::digest(bytes).into())
}

/// A file store ETag: the first half of the body's SHA-256.
fn etag_of_digest(sha256: &[u8; 32]) -> String {
    hex::encode(&sha256[..16])
}

fn write_temp(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(format!("put-{:016x}", rand::random::<u64>()));
    let mut f = File::create(&path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(path)
}

fn sync_parent(path: &Path) {
    // Best effort: makes the rename durable on filesystems that need it.
    if let Some(parent) = path.parent() {
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
}

#[async_trait::async_trait]
impl Store for FileStore {
    fn url(&self) -> &str {
        &self.url
    }

    fn prefix(&self) -> &str {
        ""
    }

    fn housekeeping(&self) -> Vec<String> {
        self.housekeeping.clone()
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let (this, key) = (self.clone(), key.to_string());
        crate::blocking(move || {
            this.settle(&key, false)?;
            this.read_meta(&key)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>> {
        let (this, key) = (self.clone(), key.to_string());
        crate::blocking(move || {
            this.settle(&key, false)?;
            match this.read_object(&key, false)? {
                Some((bytes, meta)) if etag_of(&bytes) == meta.etag => {
                    return Ok(Some((Bytes::from(bytes), meta)))
                }
                None => return Ok(None),
                Some(_) => {}
            }
            // Read without the lock, the metadata and the bytes can belong to two puts (one
            // landed in between). Under the lock no put is under way: only then is a mismatch
            // real (a dead writer's put is settled first).
            let _guard = this.lock()?;
            this.settle(&key, true)?;
            match this.read_object(&key, true)? {
                Some((bytes, meta)) if etag_of(&bytes) == meta.etag => {
                    Ok(Some((Bytes::from(bytes), meta)))
                }
                None => Ok(None),
                Some(_) => Err(Error::corrupt(
                    &this.url,
                    key,
                    "stored bytes do not match their recorded ETag (torn write or edited by hand)",
                )),
            }
        })
        .await
    }

    async fn put(&self, key: &str, body: Bytes, opts: PutOptions) -> Result<String> {
        let (this, key) = (self.clone(), key.to_string());
        crate::blocking(move || this.put_blocking(&key, &body, &opts)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let (this, key) = (self.clone(), key.to_string());
        crate::blocking(move || {
            let data = this.data_path(&key)?;
            let _guard = this.lock()?;
            for p in [this.pending_path(&key)?, this.meta_path(&key)?, data] {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(this.io_err(&key, e)),
                }
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        crate::blocking(move || this.list_blocking(&prefix)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state a writer killed between its renames leaves: `new` staged as pending metadata,
    /// and the data file holding `data`.
    fn crash_between_renames(store: &FileStore, key: &str, new: &[u8], data: &[u8]) {
        let meta = MetaFile {
            etag: etag_of(new),
            size: new.len() as u64,
            content_encoding: None,
            content_type: "application/json".into(),
            cache_control: None,
            metadata: BTreeMap::from([("v".to_string(), "new".to_string())]),
        };
        let pending = store.pending_path(key).unwrap();
        fs::create_dir_all(pending.parent().unwrap()).unwrap();
        fs::write(&pending, serde_json::to_vec(&meta).unwrap()).unwrap();
        fs::write(store.data_path(key).unwrap(), data).unwrap();
    }

    fn opts(mode: PutMode) -> PutOptions {
        PutOptions::json(mode).with_metadata(BTreeMap::from([("v".into(), "old".into())]))
    }

    /// Issue 13 (soak): a reader that read the metadata of one put and the bytes of the next
    /// one called the object torn. Here the reader finds a new data file next to the old
    /// metadata while a writer holds the lock (mid-put, nothing staged for it to settle): it
    /// must wait for the lock and read again, and get the new object.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_that_overlaps_a_put_waits_for_it_instead_of_calling_it_torn() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let key = "d/manifest.json";
        store
            .put(key, Bytes::from_static(b"old"), opts(PutMode::Create))
            .await
            .unwrap();
        let writer = store.lock().unwrap();
        fs::write(store.data_path(key).unwrap(), b"new!").unwrap();
        let reader = tokio::spawn({
            let store = store.clone();
            async move { store.get(key).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!reader.is_finished(), "the reader waits for the writer");
        let new_meta = MetaFile {
            etag: etag_of(b"new!"),
            size: 4,
            content_encoding: None,
            content_type: "application/json".into(),
            cache_control: None,
            metadata: BTreeMap::from([("v".to_string(), "new".to_string())]),
        };
        fs::write(
            store.meta_path(key).unwrap(),
            serde_json::to_vec(&new_meta).unwrap(),
        )
        .unwrap();
        drop(writer);
        let (bytes, meta) = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(
            (&bytes[..], meta.metadata["v"].as_str()),
            (&b"new!"[..], "new")
        );
        // With nobody writing, a mismatch is what it says.
        fs::write(store.data_path(key).unwrap(), b"edited").unwrap();
        let err = store.get(key).await.unwrap_err();
        assert!(
            err.to_string().contains("do not match their recorded ETag"),
            "{err}"
        );
    }

    /// Soak (four writers, first version): a reader's `settle` found nothing staged, then a
    /// writer staged its metadata and renamed its data in, and the reader found a data file
    /// with no metadata and called it a file put there by hand ("has no snapsync metadata").
    /// In that window the reader must wait for the writer and read its metadata.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_put_between_its_renames_is_waited_for_not_called_a_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let key = "d/latest.json";
        let writer = store.lock().unwrap();
        fs::create_dir_all(dir.path().join("d")).unwrap();
        crash_between_renames(&store, key, b"new!", b"new!");
        // Past the reader's settle: straight to its metadata read.
        let reader = tokio::task::spawn_blocking({
            let store = store.clone();
            move || store.read_meta(key)
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!reader.is_finished(), "the reader waits for the writer");
        fs::rename(store.pending_path(key).unwrap(), {
            let m = store.meta_path(key).unwrap();
            fs::create_dir_all(m.parent().unwrap()).unwrap();
            m
        })
        .unwrap();
        drop(writer);
        let meta = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(meta.metadata["v"], "new");
        assert_eq!(meta.etag, etag_of(b"new!"));
        // A file put there by hand (nothing staged, nobody writing) still reads as one.
        fs::write(store.data_path("by-hand.json").unwrap(), b"{}").unwrap();
        let meta = store.head("by-hand.json").await.unwrap().unwrap();
        assert!(meta.metadata.is_empty());
    }

    #[tokio::test]
    async fn a_put_killed_after_its_data_rename_is_finished_by_the_next_reader() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        store
            .put(
                "d/manifest.json",
                Bytes::from_static(b"old"),
                opts(PutMode::Create),
            )
            .await
            .unwrap();
        crash_between_renames(&store, "d/manifest.json", b"new!", b"new!");
        let (bytes, meta) = store.get("d/manifest.json").await.unwrap().unwrap();
        assert_eq!(
            (&bytes[..], meta.metadata["v"].as_str()),
            (&b"new!"[..], "new")
        );
        assert_eq!(meta.etag, etag_of(b"new!"));
        assert!(!store.pending_path("d/manifest.json").unwrap().exists());
    }

    #[tokio::test]
    async fn a_put_killed_before_its_data_rename_never_happened() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let etag = store
            .put(
                "d/latest.json",
                Bytes::from_static(b"old"),
                opts(PutMode::Create),
            )
            .await
            .unwrap();
        crash_between_renames(&store, "d/latest.json", b"new!", b"old");
        let meta = store.head("d/latest.json").await.unwrap().unwrap();
        assert_eq!(
            (meta.etag.as_str(), meta.metadata["v"].as_str()),
            (etag.as_str(), "old")
        );
        assert!(!store.pending_path("d/latest.json").unwrap().exists());
        // The old ETag still commits.
        store
            .put(
                "d/latest.json",
                Bytes::from_static(b"next"),
                opts(PutMode::Update(etag)),
            )
            .await
            .unwrap();
        // A first put killed before its data rename leaves no object at all.
        crash_between_renames(&store, "d/other.json", b"x", b"x");
        fs::remove_file(store.data_path("d/other.json").unwrap()).unwrap();
        assert_eq!(store.head("d/other.json").await.unwrap(), None);
        store
            .put(
                "d/other.json",
                Bytes::from_static(b"y"),
                opts(PutMode::Create),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn leftovers_of_interrupted_puts_are_removed_at_open_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert!(store.housekeeping().is_empty());
        let tmp = dir.path().join(STATE_DIR).join("tmp");
        // What a put that hit a full disk (or a kill) leaves: its partial temporary files.
        fs::write(tmp.join("put-00000000000000aa"), vec![0u8; 1000]).unwrap();
        fs::write(tmp.join("put-00000000000000bb"), b"x").unwrap();
        fs::write(tmp.join("someone-elses"), b"y").unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let notes = store.housekeeping();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("removed 2 leftover temporary file(s) (1001 bytes)"),
            "{notes:?}"
        );
        let left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["someone-elses"]);
        // While a put holds the lock, nothing is touched.
        fs::write(tmp.join("put-00000000000000cc"), b"in flight").unwrap();
        let _held = store.lock().unwrap();
        let again = FileStore::open(dir.path()).unwrap();
        assert!(again.housekeeping().is_empty());
        assert!(tmp.join("put-00000000000000cc").exists());
    }

    #[tokio::test]
    async fn list_gives_each_file_its_modification_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        store
            .put("d/x", Bytes::from_static(b"1"), opts(PutMode::Create))
            .await
            .unwrap();
        let listed = store.list("d/").await.unwrap();
        let t = listed[0].modified.expect("a modification time");
        assert!(t >= before && t <= OffsetDateTime::now_utc(), "{t}");
    }
}
