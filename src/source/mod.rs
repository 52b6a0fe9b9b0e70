//! The source: a conditional HTTP GET with timeouts, a byte limit and retries.
//!
//! What a newcomer gets wrong here: the byte limit is enforced *while streaming* the decoded
//! body (so a gzip bomb or an endless body is cut off at the limit, never buffered whole), and
//! only failures that can pass (connection errors, timeouts, 5xx, 429) are retried; a 404 or a
//! bad body is reported at once. URLs in messages go through [`redact_url`], since users put
//! tokens in query strings and paths: every query value goes, whatever its name.
//!
//! Gzip is decoded here (`multigz`), not by reqwest, whose decoder stops after the first
//! member of a multi-member body; brotli is left to reqwest.
//!
//! Every failure becomes one line that says in plain words what went wrong ("connection
//! refused", "timed out waiting for the response headers", "the body was cut off"), never the
//! bare error chain of the HTTP stack. A body is checked for the things a JSON parser reports
//! badly (empty, an HTML error page served with 200, UTF-16, bytes that are not UTF-8) before
//! it leaves here; the JSON itself is parsed by the caller. Redirects are followed at most
//! [`MAX_REDIRECTS`] times, never in a loop, and never from https (or loopback) to a plain
//! http host that was not allowed.
//!
//! The code is cut by what it does: `http` the [`HttpSource`] (requests, retries, redirects and
//! the words for each failure), `multigz` the streaming gzip decoder, `body` the checks of a
//! body meant to be JSON, and `urls` which URLs may be fetched and how one is shown (redaction,
//! [`cache_key`]). This file holds the options, the [`Source`] trait and its types, and
//! re-exports the rest so callers name everything as `source::X`.

use std::time::Duration;

use crate::error::Result;

/// Default limit of a decoded body: 256 MiB. The whole body is held in memory (and its
/// canonical form beside it), so the limit must fit the machine: a 512 MB dyno fetching a
/// gzip bomb must end with "larger than the limit", not be killed for memory.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes (headers or body) before giving up.
    pub read_timeout: Duration,
    /// Longest a whole attempt may take.
    pub total_timeout: Duration,
    /// Decoded body size limit.
    pub max_bytes: u64,
    /// Extra attempts after the first, for failures that can pass.
    pub retries: u32,
    /// First backoff; doubles each retry.
    pub backoff: Duration,
    /// Allow `http://` to non-loopback hosts.
    pub allow_insecure_http: bool,
    /// Hosts (`host` or `host:port`) that may be reached over plain `http://` although they are
    /// not loopback: those of datasets that set `allow_insecure_http`. Checked on redirects too.
    pub insecure_http_hosts: Vec<String>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(300),
            max_bytes: DEFAULT_MAX_BYTES,
            retries: 3,
            backoff: Duration::from_millis(500),
            allow_insecure_http: false,
            insecure_http_hosts: Vec::new(),
        }
    }
}

/// Validators remembered from the last fetch that led to a known version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug)]
pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        validators: Validators,
        /// The server's `Content-Type` (none for files).
        content_type: Option<String>,
    },
}

#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// A JSON document: a body that cannot be JSON (HTML, UTF-16, not UTF-8) is refused here
    /// with a message saying what it is.
    async fn fetch(&self, url: &str, validators: &Validators) -> Result<Fetched>;

    /// Any file (a joined table, which may be a workbook): the bytes as served.
    async fn fetch_file(&self, url: &str, validators: &Validators) -> Result<Fetched> {
        self.fetch(url, validators).await
    }
}

/// Messages end up in one summary line and one log line.
pub(crate) fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

mod body;
mod http;
mod multigz;
mod urls;

pub use http::HttpSource;
pub use urls::{cache_key, check_url, looks_like_token, redact_url};

#[cfg(test)]
mod tests;
