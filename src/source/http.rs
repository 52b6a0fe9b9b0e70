//! [`HttpSource`]: one fetch with its retries, the redirect policy, the streaming read under the
//! byte limit, and the plain-words line for each way a request can fail.

use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::body::check_body;
use super::multigz::{GzError, MultiGz};
use super::urls::check_parsed;
use super::{one_line, redact_url, Fetched, Source, SourceOptions, Validators, MAX_REDIRECTS};
use crate::error::{Error, Result};

/// Longest wait between two attempts, whatever the backoff or `Retry-After` ask for: a run
/// from cron should fail and say why rather than sleep for an hour.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Largest buffer reserved up front from a `Content-Length` (the rest grows as bytes arrive, so
/// a server announcing a huge body and sending little costs nothing).
const MAX_PREALLOCATE: u64 = 64 << 20;

pub struct HttpSource {
    client: reqwest::Client,
    opts: SourceOptions,
}

/// A failed attempt, with the server's `Retry-After` when it sent one.
struct Failure {
    error: Error,
    retry_after: Option<Duration>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// Where in the exchange a transport error happened, for the message.
#[derive(Clone, Copy)]
enum Stage {
    /// Connecting, sending the request or waiting for the response headers.
    Response,
    /// Reading the body: `received` bytes so far as they came over the wire (before gzip
    /// decoding), `expected` from `Content-Length`.
    Body {
        received: u64,
        expected: Option<u64>,
    },
}

impl HttpSource {
    pub fn new(opts: SourceOptions) -> Result<Self> {
        let policy = {
            let allow_all = opts.allow_insecure_http;
            let hosts = opts.insecure_http_hosts.clone();
            reqwest::redirect::Policy::custom(move |attempt| {
                let next = attempt.url();
                if attempt.previous().iter().any(|u| u == next) {
                    let msg = format!(
                        "redirect loop: {} redirects back to an address already visited",
                        redact_url(next.as_str())
                    );
                    return attempt.error(msg);
                }
                // `previous` starts with the URL first asked for, which is not a redirect.
                if attempt.previous().len() > MAX_REDIRECTS {
                    let msg = format!("too many redirects (more than {MAX_REDIRECTS})");
                    return attempt.error(msg);
                }
                if !matches!(next.scheme(), "http" | "https") {
                    let msg = format!(
                        "redirect to {}:… refused (only http/https redirects are followed)",
                        next.scheme()
                    );
                    return attempt.error(msg);
                }
                match check_parsed(next, allow_all, &hosts) {
                    Ok(()) => attempt.follow(),
                    Err(why) => {
                        let msg = format!(
                            "refused to follow a redirect to {}: {why}",
                            redact_url(next.as_str())
                        );
                        attempt.error(msg)
                    }
                }
            })
        };
        crate::tls::init();
        let client = reqwest::Client::builder()
            .user_agent(concat!("snapsync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .timeout(opts.total_timeout)
            .redirect(policy)
            // reqwest would send the URL redirected from (query and path included, so any
            // token in them) as `Referer` to wherever the redirect points.
            .referer(false)
            // reqwest's gzip decoder stops after the first member (RFC 1952 allows many, pigz
            // writes them): gzip is asked for and decoded here, by [`MultiGz`].
            .no_gzip()
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(HttpSource { client, opts })
    }

    async fn attempt(
        &self,
        url: &str,
        shown: &str,
        validators: &Validators,
        json: bool,
    ) -> Result<Fetched, Failure> {
        let started = Instant::now();
        let mut req = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip, br");
        if let Some(etag) = &validators.etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| self.fetch_error(url, shown, &e, Stage::Response, started))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if status.is_redirection() {
            // The redirect policy follows every http(s) Location; a 3xx that reaches here had
            // none, or one the client would not follow (`file:`, `data:`, not a URL).
            let location = resp.headers().get(reqwest::header::LOCATION);
            return Err(unfollowed_redirect(shown, status, location, resp.url()).into());
        }
        if !status.is_success() {
            let retry_after = header(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Failure {
                error: Error::HttpStatus {
                    url: shown.to_string(),
                    status: status.as_u16(),
                    detail: status
                        .canonical_reason()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default(),
                },
                retry_after,
            });
        }
        let validators = Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        // reqwest decodes brotli itself (and drops the header); gzip is decoded here.
        let gzip = match header(reqwest::header::CONTENT_ENCODING)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "identity") => false,
            Some("gzip" | "x-gzip") => true,
            Some(other) => {
                return Err(Error::Fetch {
                    url: shown.to_string(),
                    reason: one_line(&format!(
                        "the server sent Content-Encoding {other:?}, which snapsync cannot decode (it asks for gzip or br)"
                    )),
                    retryable: false,
                }
                .into())
            }
        };
        let limit = self.opts.max_bytes;
        let too_large = || Error::TooLarge {
            url: shown.to_string(),
            limit,
        };
        // Content-Length counts the bytes on the wire: the body itself unless it is gzip
        // (reqwest drops the header when it decodes brotli).
        let expected = resp.content_length();
        if !gzip && expected.is_some_and(|n| n > limit) {
            return Err(too_large().into());
        }
        let hint = expected
            .unwrap_or(0)
            .saturating_mul(if gzip { 4 } else { 1 });
        let mut bytes = Vec::with_capacity(hint.min(MAX_PREALLOCATE).min(limit) as usize);
        let mut gz = gzip.then(MultiGz::new);
        let mut received = 0u64;
        // A fetch that takes a while (a big file, a slow source) shows its bytes.
        let progress = crate::progress::start_after(
            format!("fetching {shown}"),
            expected,
            crate::progress::Unit::Bytes,
            std::time::Duration::from_secs(2),
        );
        loop {
            let stage = Stage::Body { received, expected };
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(self.fetch_error(url, shown, &e, stage, started).into()),
            };
            received += chunk.len() as u64;
            progress.inc(chunk.len() as u64);
            match &mut gz {
                Some(gz) => gz
                    .push(&chunk, &mut bytes, limit)
                    .map_err(|e| gzip_error(e, shown, limit, received))?,
                None => {
                    let needed = bytes.len() as u64 + chunk.len() as u64;
                    if needed > limit {
                        return Err(too_large().into());
                    }
                    if needed > bytes.capacity() as u64 {
                        // Double, but never past the limit: an endless body at a 100 MB limit
                        // peaks at 100 MB of buffer, not 128 MB plus the copy.
                        let target = (bytes.capacity() as u64 * 2).max(needed).min(limit);
                        bytes.reserve_exact(target as usize - bytes.len());
                    }
                    bytes.extend_from_slice(&chunk);
                }
            }
        }
        if let Some(gz) = &mut gz {
            gz.finish(&mut bytes, limit)
                .map_err(|e| gzip_error(e, shown, limit, received))?;
        }
        let bytes = if json {
            check_body(shown, bytes, content_type.as_deref())?
        } else {
            bytes
        };
        Ok(Fetched::Body {
            bytes,
            validators,
            content_type,
        })
    }

    /// One plain-words line for a transport failure (never reqwest's chain, which names the
    /// URL unredacted and says "error sending request" for everything).
    fn fetch_error(
        &self,
        url: &str,
        shown: &str,
        e: &reqwest::Error,
        stage: Stage,
        started: Instant,
    ) -> Error {
        let root = scrub(&root_cause(e), url, e);
        let lower = root.to_ascii_lowercase();
        let io_kind = io_error_kind(e);
        let tls = url.starts_with("https:")
            && e.is_connect()
            && (lower.contains("certificate")
                || lower.contains("tls")
                || lower.contains("handshake")
                || lower.contains("alert")
                || lower.contains("corrupt message")
                || io_kind == Some(std::io::ErrorKind::InvalidData));
        let (reason, retryable) = if e.is_redirect() {
            (root, false)
        } else if e.is_timeout() {
            let o = &self.opts;
            let reason = if started.elapsed() + Duration::from_millis(50) >= o.total_timeout {
                format!(
                    "timed out: the download took longer than the total timeout of {}",
                    secs(o.total_timeout)
                )
            } else {
                match stage {
                    Stage::Response if e.is_connect() => format!(
                        "timed out connecting (no connection within {})",
                        secs(o.connect_timeout)
                    ),
                    Stage::Response => format!(
                        "timed out waiting for the response headers (nothing within {})",
                        secs(o.read_timeout)
                    ),
                    Stage::Body { received, .. } => format!(
                        "timed out reading the body: nothing received for {} after {received} bytes",
                        secs(o.read_timeout)
                    ),
                }
            };
            (reason, true)
        } else if tls && lower.contains("certificate") {
            (
                format!("TLS error: the server's certificate is not trusted ({root})"),
                false,
            )
        } else if tls {
            (format!("TLS handshake failed ({root})"), true)
        } else if e.is_connect() {
            let reason = match io_kind {
                Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
                _ if lower.contains("dns") || lower.contains("lookup") => {
                    format!("cannot resolve the host name ({root})")
                }
                _ => format!("cannot connect ({root})"),
            };
            (reason, true)
        } else if let Stage::Body { received, expected } = stage {
            // Every body error is a "decode" error to reqwest; gzip is decoded by us (see
            // `gzip_error`), so what fails here is the connection, the chunked framing or the
            // brotli decoder reqwest runs.
            let reason = match expected {
                Some(total) if received < total => format!(
                    "the body was cut off: the connection closed after {received} of the {total} bytes announced by Content-Length"
                ),
                _ if lower.contains("brotli") => format!(
                    "the brotli-compressed body could not be decoded after {received} bytes ({root})"
                ),
                _ if io_kind == Some(std::io::ErrorKind::UnexpectedEof) => format!(
                    "the body was cut off: the connection closed after {received} bytes, before the end of the chunked body"
                ),
                _ if lower.contains("chunk") => format!(
                    "the body's chunked transfer encoding is malformed after {received} bytes ({root})"
                ),
                _ => format!("the connection failed while reading the body after {received} bytes ({root})"),
            };
            (reason, true)
        } else {
            (format!("request failed ({root})"), true)
        };
        Error::Fetch {
            url: shown.to_string(),
            reason: one_line(&reason),
            retryable,
        }
    }
}

#[async_trait::async_trait]
impl Source for HttpSource {
    #[tracing::instrument(skip_all, fields(url = %redact_url(url)))]
    async fn fetch(&self, url: &str, validators: &Validators) -> Result<Fetched> {
        self.get(url, validators, true).await
    }

    #[tracing::instrument(skip_all, fields(url = %redact_url(url)))]
    async fn fetch_file(&self, url: &str, validators: &Validators) -> Result<Fetched> {
        self.get(url, validators, false).await
    }
}

impl HttpSource {
    /// One fetch with its retries; `json`: check that the body can be a JSON document.
    async fn get(&self, url: &str, validators: &Validators, json: bool) -> Result<Fetched> {
        let shown = redact_url(url);
        if let Some(path) = url.strip_prefix("file://") {
            let limit = self.opts.max_bytes;
            let len = tokio::fs::metadata(path)
                .await
                .map_err(|e| Error::io(path, e))?
                .len();
            if len > limit {
                return Err(Error::TooLarge { url: shown, limit });
            }
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| Error::io(path, e))?;
            if bytes.len() as u64 > limit {
                return Err(Error::TooLarge { url: shown, limit });
            }
            return Ok(Fetched::Body {
                bytes: if json {
                    check_body(&shown, bytes, None)?
                } else {
                    bytes
                },
                validators: Validators::default(),
                content_type: None,
            });
        }
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::Config(format!("source URL {shown:?}: {e}")))?;
        check_parsed(
            &parsed,
            self.opts.allow_insecure_http,
            &self.opts.insecure_http_hosts,
        )
        .map_err(|why| Error::Config(format!("source URL {shown}: {why}")))?;
        let mut attempt = 0;
        loop {
            match self.attempt(url, &shown, validators, json).await {
                Err(f) if f.error.is_retryable() && attempt < self.opts.retries => {
                    let backoff = self
                        .opts
                        .backoff
                        .saturating_mul(2u32.saturating_pow(attempt));
                    let wait = backoff
                        .max(f.retry_after.unwrap_or_default())
                        .min(MAX_BACKOFF);
                    warn!(error = %f.error, attempt = attempt + 1, retry_in_ms = wait.as_millis() as u64, "fetch failed, retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(f) => return Err(after_attempts(f.error, attempt + 1)),
                Ok(fetched) => {
                    if let Fetched::Body { bytes, .. } = &fetched {
                        debug!(bytes = bytes.len(), attempts = attempt + 1, "fetched");
                    }
                    return Ok(fetched);
                }
            }
        }
    }
}

/// Says how many attempts a retried failure took, so "HTTP 503" after three tries does not
/// read like a single unlucky request.
fn after_attempts(error: Error, attempts: u32) -> Error {
    if attempts < 2 {
        return error;
    }
    match error {
        Error::Fetch {
            url,
            reason,
            retryable,
        } => Error::Fetch {
            url,
            reason: format!("{reason} (gave up after {attempts} attempts)"),
            retryable,
        },
        Error::HttpStatus {
            url,
            status,
            detail,
        } => Error::HttpStatus {
            url,
            status,
            detail: format!("{detail} (gave up after {attempts} attempts)"),
        },
        other => other,
    }
}

/// A 3xx the client did not follow, in words: no `Location`, a scheme other than http(s), or a
/// `Location` that is not a URL. Only the scheme of the target is shown: a `data:` URL can be
/// large, and any URL may carry a secret.
fn unfollowed_redirect(
    shown: &str,
    status: reqwest::StatusCode,
    location: Option<&reqwest::header::HeaderValue>,
    base: &url::Url,
) -> Error {
    let what = format!(
        "HTTP {}{}",
        status.as_u16(),
        status
            .canonical_reason()
            .map(|r| format!(" {r}"))
            .unwrap_or_default()
    );
    let target = location
        .and_then(|l| l.to_str().ok())
        .map(|l| base.join(l.trim()));
    let reason = match target {
        None if location.is_none() => format!("{what} without a Location header"),
        Some(Ok(to)) if !matches!(to.scheme(), "http" | "https") => format!(
            "{what}: redirect to {}:… refused (only http/https redirects are followed)",
            to.scheme()
        ),
        Some(Ok(to)) => format!(
            "{what}: the redirect to {} was not followed",
            redact_url(to.as_str())
        ),
        _ => format!("{what} with a Location header that is not a URL"),
    };
    Error::Fetch {
        url: shown.to_string(),
        reason: one_line(&reason),
        retryable: false,
    }
}

/// One line for a gzip body that could not be decoded or was too large.
fn gzip_error(e: GzError, shown: &str, limit: u64, received: u64) -> Failure {
    let (reason, retryable) = match e {
        GzError::TooLarge => {
            return Error::TooLarge {
                url: shown.to_string(),
                limit,
            }
            .into()
        }
        GzError::CutOff => (
            format!("the body was cut off: the gzip data ends in the middle of a member after {received} bytes"),
            true,
        ),
        GzError::Corrupt(why) => (
            format!("the gzip-compressed body could not be decoded after {received} bytes: {why}"),
            false,
        ),
    };
    Error::Fetch {
        url: shown.to_string(),
        reason: one_line(&reason),
        retryable,
    }
    .into()
}

/// The innermost cause: the useful part ("Connection refused", "invalid peer certificate").
fn root_cause(e: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    root.to_string()
}

fn io_error_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = c.source();
    }
    None
}

/// Replaces any URL that reqwest put into an error message by its redacted form.
fn scrub(text: &str, url: &str, e: &reqwest::Error) -> String {
    let mut out = text.replace(url, &redact_url(url));
    if let Some(u) = e.url() {
        out = out.replace(u.as_str(), &redact_url(u.as_str()));
    }
    out
}

/// `0.5 s`, `30 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}
