//! The source: a conditional HTTP GET with timeouts, a byte limit and retries.
//!
//! What a newcomer gets wrong here: the byte limit is enforced *while streaming* the decoded
//! body (so a gzip bomb or an endless body is cut off at the limit, never buffered whole), and
//! only failures that can pass (connection errors, timeouts, 5xx, 429) are retried; a 404 or a
//! bad body is reported at once. URLs in messages go through [`redact_url`], since users put
//! tokens in query strings.

use std::time::Duration;

use tracing::{debug, warn};

use crate::error::{Error, Result};

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
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(300),
            max_bytes: 1 << 30,
            retries: 3,
            backoff: Duration::from_millis(500),
            allow_insecure_http: false,
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
    },
}

#[async_trait::async_trait]
pub trait Source: Send + Sync {
    async fn fetch(&self, url: &str, validators: &Validators) -> Result<Fetched>;
}

pub struct HttpSource {
    client: reqwest::Client,
    opts: SourceOptions,
}

impl HttpSource {
    pub fn new(opts: SourceOptions) -> Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("snapsync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .timeout(opts.total_timeout)
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(HttpSource { client, opts })
    }

    async fn attempt(&self, url: &str, shown: &str, validators: &Validators) -> Result<Fetched> {
        let mut req = self.client.get(url);
        if let Some(etag) = &validators.etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm);
        }
        let mut resp = req.send().await.map_err(|e| fetch_error(shown, &e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(Error::HttpStatus {
                url: shown.to_string(),
                status: status.as_u16(),
                detail: status
                    .canonical_reason()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default(),
            });
        }
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
        };
        let limit = self.opts.max_bytes;
        let too_large = || Error::TooLarge {
            url: shown.to_string(),
            limit,
        };
        // Content-Length is of the encoded body; reqwest drops it when it decodes.
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(resp.content_length().unwrap_or(0).min(limit) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| fetch_error(shown, &e))? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body { bytes, validators })
    }
}

#[async_trait::async_trait]
impl Source for HttpSource {
    #[tracing::instrument(skip_all, fields(url = %redact_url(url)))]
    async fn fetch(&self, url: &str, validators: &Validators) -> Result<Fetched> {
        let shown = redact_url(url);
        if let Some(path) = url.strip_prefix("file://") {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| Error::io(path, e))?;
            if bytes.len() as u64 > self.opts.max_bytes {
                return Err(Error::TooLarge {
                    url: shown,
                    limit: self.opts.max_bytes,
                });
            }
            return Ok(Fetched::Body {
                bytes,
                validators: Validators::default(),
            });
        }
        check_url(url, self.opts.allow_insecure_http)?;
        let mut attempt = 0;
        loop {
            match self.attempt(url, &shown, validators).await {
                Err(e) if e.is_retryable() && attempt < self.opts.retries => {
                    let wait = self.opts.backoff * 2u32.saturating_pow(attempt);
                    warn!(error = %e, attempt = attempt + 1, retry_in_ms = wait.as_millis() as u64, "fetch failed, retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => {
                    if let Ok(Fetched::Body { bytes, .. }) = &other {
                        debug!(bytes = bytes.len(), "fetched");
                    }
                    return other;
                }
            }
        }
    }
}

/// https anywhere; http only to loopback unless allowed.
pub fn check_url(url: &str, allow_insecure_http: bool) -> Result<()> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::Config(format!("source URL {:?}: {e}", redact_url(url))))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(&parsed) => Ok(()),
        "http" => Err(Error::Config(format!(
            "source URL {}: plain http is only allowed for loopback addresses (set allow_insecure_http to allow it)",
            redact_url(url)
        ))),
        other => Err(Error::Config(format!(
            "source URL {}: unsupported scheme {other:?} (use https://, http:// on loopback, or file://)",
            redact_url(url)
        ))),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The URL without its password and without the values of query parameters that look secret.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.split(['?', '#']).next().unwrap_or("").to_string();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("REDACTED"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = [
                    "token",
                    "key",
                    "secret",
                    "sig",
                    "pass",
                    "auth",
                    "credential",
                ]
                .iter()
                .any(|s| lower.contains(s));
                (
                    k.into_owned(),
                    if secret {
                        "REDACTED".into()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

fn fetch_error(shown: &str, e: &reqwest::Error) -> Error {
    // The innermost cause is the useful part ("Connection refused", "invalid peer certificate").
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let root = root.to_string();
    let (what, retryable) = if e.is_timeout() {
        ("timed out", true)
    } else if e.is_connect() {
        if root.contains("certificate") || root.to_ascii_lowercase().contains("tls") {
            ("TLS handshake failed", false)
        } else {
            ("cannot connect", true)
        }
    } else if e.is_redirect() {
        ("too many redirects", false)
    } else if e.is_body() || e.is_decode() {
        ("reading the body failed", true)
    } else {
        ("request failed", true)
    };
    Error::Fetch {
        url: shown.to_string(),
        reason: format!("{what}: {root}"),
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_in_urls() {
        assert_eq!(
            redact_url("https://user:hunter2@example.com/x.json?api_key=abc&day=1"),
            "https://user:REDACTED@example.com/x.json?api_key=REDACTED&day=1"
        );
        assert_eq!(redact_url("https://example.com/a"), "https://example.com/a");
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_url("http://127.0.0.1:8080/x", false).is_ok());
        assert!(check_url("http://localhost/x", false).is_ok());
        assert!(check_url("http://[::1]/x", false).is_ok());
        assert!(check_url("http://example.com/x", false).is_err());
        assert!(check_url("http://10.0.0.1/x", false).is_err());
        assert!(check_url("http://example.com/x", true).is_ok());
        assert!(check_url("ftp://example.com/x", true).is_err());
        assert!(check_url("https://example.com/x", false).is_ok());
    }
}
