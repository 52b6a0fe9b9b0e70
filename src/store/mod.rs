//! The store: a narrow object-store trait and its two implementations.
//!
//! Everything snapsync knows about publishing safely lives *above* this trait (in `sync.rs` and
//! `history.rs`); a backend only has to store bytes with metadata and honour the three
//! [`PutMode`]s atomically. `Create` and `Update` are the whole concurrency story: a new
//! immutable object never replaces another one, and `latest.json` only moves forward from the
//! ETag the writer read. A backend that cannot honour them must say so through
//! [`Store::conditional_writes`] rather than silently overwrite.

pub mod file;
pub mod s3;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::keys;

/// What a HEAD returns: enough to decide without downloading the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    /// Opaque; only ever compared and sent back in [`PutMode::Update`].
    pub etag: String,
    /// Size of the stored bytes (compressed, when `content_encoding` is gzip).
    pub size: u64,
    pub content_encoding: Option<String>,
    /// `Content-Type` and `Cache-Control` as stored (`None` when not set or not known).
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    /// User metadata, names without the `x-amz-meta-` prefix, lower-case.
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Only if no object exists at the key (`If-None-Match: *`).
    Create,
    /// Only if the current object has this ETag (`If-Match`).
    Update(String),
    /// Unconditional; only for objects nobody races on (doctor's probe).
    Overwrite,
}

#[derive(Debug, Clone)]
pub struct PutOptions {
    pub mode: PutMode,
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
    /// `Cache-Control` (S3; a file store has no HTTP cache to tell).
    pub cache_control: Option<&'static str>,
    pub metadata: BTreeMap<String, String>,
    /// The body's SHA-256 when the caller knows it already (a `latest.json` body is the
    /// version's canonical bytes): stores use it instead of hashing a 30 MB body again. An S3
    /// server still checks it against what it receives.
    pub sha256: Option<[u8; 32]>,
}

impl PutOptions {
    pub fn json(mode: PutMode) -> Self {
        PutOptions {
            mode,
            content_type: "application/json",
            content_encoding: None,
            cache_control: None,
            metadata: BTreeMap::new(),
            sha256: None,
        }
    }
    /// A derived view for browsers and query engines (the history page, the change table):
    /// rewritten on every publish, so caches keep it a minute at most.
    pub fn view(mode: PutMode, content_type: &'static str) -> Self {
        PutOptions {
            content_type,
            cache_control: Some("max-age=60"),
            ..PutOptions::json(mode)
        }
    }
    pub fn gzip_json(mode: PutMode) -> Self {
        PutOptions {
            content_encoding: Some("gzip"),
            ..PutOptions::json(mode)
        }
    }
    pub fn with_metadata(mut self, metadata: BTreeMap<String, String>) -> Self {
        self.metadata = metadata;
        self
    }
    /// Declares the body's SHA-256 (lower-case hex, as [`crate::canonical::sha256_hex`] gives).
    pub fn with_sha256(mut self, hex_digest: &str) -> Self {
        let mut digest = [0u8; 32];
        self.sha256 = hex::decode_to_slice(hex_digest, &mut digest)
            .ok()
            .map(|()| digest);
        self
    }
    /// The body's SHA-256: the declared one, or computed.
    pub fn body_sha256(&self, body: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        self.sha256.unwrap_or_else(|| Sha256::digest(body).into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    /// When the store wrote the object, by the store's own clock (S3 `LastModified`, a file's
    /// mtime). Janitors judge an object's age by this, never by the time in its key: `replay`
    /// writes keys dated years back, and a writer's clock may be hours off.
    pub modified: Option<time::OffsetDateTime>,
}

/// How the store behaves with conditional writes, as far as it knows or `doctor` probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalWrites {
    Honoured,
    Ignored,
    Unknown,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// `file:///abs/dir` or `s3://bucket/prefix`: for messages, never holds a secret.
    fn url(&self) -> &str;
    /// The key prefix every dataset lives under (already normalised).
    fn prefix(&self) -> &str;
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;
    /// The stored bytes exactly as put (still gzip when put gzip) with their metadata.
    async fn get(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>>;
    /// Returns the new ETag. A failed condition is [`Error::PreconditionFailed`].
    async fn put(&self, key: &str, body: Bytes, opts: PutOptions) -> Result<String>;
    /// Deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Every key under `prefix` (a plain string prefix), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>>;
    fn conditional_writes(&self) -> ConditionalWrites {
        ConditionalWrites::Honoured
    }
    /// How far the store's clock is ahead of this machine's (negative: behind), as last
    /// measured; `None` when the store's clock is this machine's (the file store) or nothing
    /// was measured yet. S3 measures it from the `Date` header of its latest response.
    fn clock_skew(&self) -> Option<time::Duration> {
        None
    }
    /// Whether the store has accepted a request from this process yet (credentials work).
    /// A run that ends without touching the store (the source said not-modified) checks it
    /// once when not, so wrong credentials show on the first day, not on the next change.
    fn answered(&self) -> bool {
        true
    }
    /// One line per housekeeping fact worth a user's attention (leftover temporary files
    /// removed at open, say), for `verify` to report.
    fn housekeeping(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The store's idea of now: `local_now` corrected by the store's measured clock skew. What a
/// janitor compares object ages with, so neither its clock nor a writer's decides.
pub fn store_now(store: &dyn Store, local_now: time::OffsetDateTime) -> time::OffsetDateTime {
    local_now + store.clock_skew().unwrap_or(time::Duration::ZERO)
}

pub type DynStore = Arc<dyn Store>;

/// A parsed `--store` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    File { dir: std::path::PathBuf },
    S3 { bucket: String, prefix: String },
}

impl StoreUrl {
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(Error::Config(format!(
                    "store {s:?}: file:// needs a directory"
                )));
            }
            return Ok(StoreUrl::File { dir: rest.into() });
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !bucket_ok {
                return Err(Error::Config(format!(
                    "store {s:?}: {bucket:?} is not a valid bucket name"
                )));
            }
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: keys::normalize_prefix(prefix)?,
            });
        }
        Err(Error::Config(format!(
            "store {s:?}: expected file://DIR or s3://BUCKET/PREFIX"
        )))
    }
}

/// Builds the real store for a URL.
pub async fn open(url: &StoreUrl, s3: &s3::S3Options) -> Result<DynStore> {
    Ok(match url {
        StoreUrl::File { dir } => Arc::new(file::FileStore::open(dir)?),
        StoreUrl::S3 { bucket, prefix } => {
            Arc::new(s3::S3Store::connect(bucket, prefix, s3).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        assert_eq!(
            StoreUrl::parse("file://./data").unwrap(),
            StoreUrl::File {
                dir: "./data".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("s3://my-bucket/a/b/").unwrap(),
            StoreUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("s3://my-bucket").unwrap(),
            StoreUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            }
        );
        assert!(StoreUrl::parse("s3://My_Bucket/x").is_err());
        assert!(StoreUrl::parse("s3://b/../x").is_err());
        assert!(StoreUrl::parse("http://x").is_err());
        assert!(StoreUrl::parse("file://").is_err());
    }
}
