//! The source: a conditional HTTP GET with timeouts, a byte limit and retries.
//!
//! What a newcomer gets wrong here: the byte limit is enforced *while streaming* the decoded
//! body (so a gzip bomb or an endless body is cut off at the limit, never buffered whole), and
//! only failures that can pass (connection errors, timeouts, 5xx, 429) are retried; a 404 or a
//! bad body is reported at once. URLs in messages go through [`redact_url`], since users put
//! tokens in query strings and paths: every query value goes, whatever its name.
//!
//! Gzip is decoded here ([`MultiGz`]), not by reqwest, whose decoder stops after the first
//! member of a multi-member body; brotli is left to reqwest.
//!
//! Every failure becomes one line that says in plain words what went wrong ("connection
//! refused", "timed out waiting for the response headers", "the body was cut off"), never the
//! bare error chain of the HTTP stack. A body is checked for the things a JSON parser reports
//! badly (empty, an HTML error page served with 200, UTF-16, bytes that are not UTF-8) before
//! it leaves here; the JSON itself is parsed by the caller. Redirects are followed at most
//! [`MAX_REDIRECTS`] times, never in a loop, and never from https (or loopback) to a plain
//! http host that was not allowed.

use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::error::{Error, Result};

/// Default limit of a decoded body: 256 MiB. The whole body is held in memory (and its
/// canonical form beside it), so the limit must fit the machine: a 512 MB dyno fetching a
/// gzip bomb must end with "larger than the limit", not be killed for memory.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;
/// Longest wait between two attempts, whatever the backoff or `Retry-After` ask for: a run
/// from cron should fail and say why rather than sleep for an hour.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Largest buffer reserved up front from a `Content-Length` (the rest grows as bytes arrive, so
/// a server announcing a huge body and sending little costs nothing).
const MAX_PREALLOCATE: u64 = 64 << 20;

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
        loop {
            let stage = Stage::Body { received, expected };
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(self.fetch_error(url, shown, &e, stage, started).into()),
            };
            received += chunk.len() as u64;
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

#[derive(Debug, PartialEq, Eq)]
enum GzError {
    /// The decoded body passed the limit.
    TooLarge,
    /// The data stops inside a member.
    CutOff,
    /// Not gzip, a bad checksum, or bytes after the last member that are not another one.
    Corrupt(String),
}

/// Streaming decoder of a gzip body with any number of members (RFC 1952 2.2: "a gzip file
/// consists of a series of members"; pigz and servers that concatenate compressed parts send
/// several). Each member's header, CRC-32 and length are checked by zlib; zero bytes after the
/// last member are ignored, as gzip(1) does; anything else after it is an error, never dropped.
///
/// Decoded bytes go straight into the caller's buffer, which never grows past `limit + 1`
/// bytes: a gzip bomb is refused the moment it decodes past the limit.
struct MultiGz {
    inflate: flate2::Decompress,
    state: GzState,
    members: u32,
    /// zlib may hold decoded output it had no room for: call it again even without input.
    pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GzState {
    Member,
    /// After a member's trailer: another member, zero padding or the end.
    Between,
    Padding,
}

/// Growth step of the decoded buffer when the body gave no size.
const GZ_STEP: usize = 64 << 10;

impl MultiGz {
    fn new() -> Self {
        MultiGz {
            inflate: flate2::Decompress::new_gzip(15),
            state: GzState::Member,
            members: 0,
            pending: false,
        }
    }

    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), GzError> {
        let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
        loop {
            match self.state {
                GzState::Member => {
                    if input.is_empty() && !self.pending {
                        return Ok(());
                    }
                    if out.len() == out.capacity() {
                        if out.len() >= cap {
                            return Err(GzError::TooLarge);
                        }
                        let target = out.len().saturating_mul(2).max(out.len() + GZ_STEP);
                        out.reserve_exact(target.min(cap) - out.len());
                    }
                    let (in_before, out_before) = (self.inflate.total_in(), out.len());
                    let status = self
                        .inflate
                        .decompress_vec(input, out, flate2::FlushDecompress::None)
                        .map_err(|e| {
                            GzError::Corrupt(format!(
                                "{} (in member {})",
                                e.message().unwrap_or("invalid gzip data"),
                                self.members + 1
                            ))
                        })?;
                    let used = (self.inflate.total_in() - in_before) as usize;
                    input = &input[used..];
                    if out.len() as u64 > limit {
                        return Err(GzError::TooLarge);
                    }
                    if status == flate2::Status::StreamEnd {
                        self.members += 1;
                        self.state = GzState::Between;
                        self.pending = false;
                        continue;
                    }
                    let progress = used > 0 || out.len() > out_before;
                    self.pending = out.len() == out.capacity();
                    if !progress && out.len() < out.capacity() {
                        if input.is_empty() {
                            self.pending = false;
                            return Ok(());
                        }
                        return Err(GzError::Corrupt("the decoder stopped making progress".into()));
                    }
                }
                GzState::Between => match input.first() {
                    None => return Ok(()),
                    Some(0) => self.state = GzState::Padding,
                    Some(0x1f) => {
                        self.inflate = flate2::Decompress::new_gzip(15);
                        self.state = GzState::Member;
                    }
                    Some(b) => {
                        return Err(GzError::Corrupt(format!(
                            "byte 0x{b:02X} follows gzip member {} where another member or the end should be",
                            self.members
                        )))
                    }
                },
                GzState::Padding => {
                    return match input.iter().find(|&&b| b != 0) {
                        None => Ok(()),
                        Some(b) => Err(GzError::Corrupt(format!(
                            "byte 0x{b:02X} follows the zero padding after gzip member {}",
                            self.members
                        ))),
                    }
                }
            }
        }
    }

    /// The body ended: drains what zlib still holds and checks that no member was cut off.
    fn finish(&mut self, out: &mut Vec<u8>, limit: u64) -> Result<(), GzError> {
        self.push(&[], out, limit)?;
        let nothing_at_all = self.members == 0 && self.inflate.total_in() == 0;
        if self.state == GzState::Member && !nothing_at_all {
            return Err(GzError::CutOff);
        }
        Ok(())
    }
}

/// What a JSON parser would report badly: an empty body, an HTML page (an error or login page
/// served with 200), UTF-16 text, bytes that are not UTF-8. A leading UTF-8 byte order mark is dropped
/// (RFC 8259 lets a parser ignore it; serde_json does not).
fn check_body(shown: &str, mut bytes: Vec<u8>, content_type: Option<&str>) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::Fetch {
        url: shown.to_string(),
        reason: one_line(&reason),
        retryable: false,
    };
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    // UTF-16 (NULs between ASCII bytes) would otherwise pass as UTF-8 and fail as "expected
    // value"; a NUL anywhere is caught by the parser, these first bytes show the encoding.
    if let Some(hint) = crate::canonical::utf16_hint(&bytes[..bytes.len().min(64)]) {
        return Err(bad(format!("invalid JSON: the body {hint}")));
    }
    let Some(first) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(bad(if bytes.is_empty() {
            "invalid JSON: the body is empty".to_string()
        } else {
            "invalid JSON: the body is only whitespace".to_string()
        }));
    };
    let html_type = content_type.is_some_and(|t| {
        let t = t.trim_start().to_ascii_lowercase();
        t.starts_with("text/html") || t.starts_with("application/xhtml")
    });
    if bytes[first] == b'<' || (html_type && !matches!(bytes[first], b'[' | b'{')) {
        let excerpt: String = String::from_utf8_lossy(&bytes[first..bytes.len().min(first + 60)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let ct = content_type
            .map(|t| format!(" (Content-Type {})", one_line(t)))
            .unwrap_or_default();
        return Err(bad(format!(
            "invalid JSON: the server sent what looks like an HTML page{ct}, not JSON: {:?}",
            excerpt.trim_end()
        )));
    }
    if let Err(e) = std::str::from_utf8(&bytes) {
        let at = e.valid_up_to();
        let before = &bytes[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = at
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        return Err(bad(format!(
            "the body is not valid UTF-8: byte 0x{:02X} at line {line} column {column} (offset {at}); JSON must be UTF-8",
            bytes[at]
        )));
    }
    Ok(bytes)
}

/// https anywhere; http only to loopback unless allowed.
pub fn check_url(url: &str, allow_insecure_http: bool) -> Result<()> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::Config(format!("source URL {:?}: {e}", redact_url(url))))?;
    check_parsed(&parsed, allow_insecure_http, &[])
        .map_err(|why| Error::Config(format!("source URL {}: {why}", redact_url(url))))
}

/// The scheme rule of [`check_url`] for a parsed URL (the first one or a redirect's target):
/// `Err` says why it is not allowed. `insecure_hosts` may use plain http although not loopback.
fn check_parsed(
    url: &url::Url,
    allow_insecure_http: bool,
    insecure_hosts: &[String],
) -> Result<(), String> {
    let listed = || {
        let host = url.host_str().unwrap_or_default();
        let with_port = url
            .port_or_known_default()
            .map(|p| format!("{host}:{p}"))
            .unwrap_or_default();
        insecure_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&with_port))
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(url) || listed() => Ok(()),
        "http" => Err(
            "plain http is only allowed for loopback addresses (set allow_insecure_http to allow it)"
                .to_string(),
        ),
        other => Err(format!(
            "unsupported scheme {other:?} (use https://, http:// on loopback, or file://)"
        )),
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

/// The URL as it may be shown or stored: the password, every query value, the fragment, and
/// path segments (and a user name) that look like tokens become `REDACTED`; query names stay,
/// so `?code=…&page=2` reads `?code=REDACTED&page=REDACTED`.
///
/// Values are redacted whatever their name because names do not tell: Azure Functions call
/// their key `code`, others `jwt`, `s`, `hash`. A path segment is a token when
/// [`looks_like_token`] says so; ordinary paths (`/coviddata/v1/countries/stats.json`,
/// `/covid-19-stats-2021/data.json`) survive. Users whose secret hides elsewhere in a URL
/// should pass it in a header, not the URL.
pub fn redact_url(url: &str) -> String {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| !u.cannot_be_a_base() || !url.contains('@'));
    let Some(mut parsed) = parsed else {
        // Unparsable (or `user:pass@host` read as scheme `user`): keep neither the query nor
        // anything before an `@` (credentials), nor token-like segments.
        let base = url.split(['?', '#']).next().unwrap_or("");
        let base = match base.rfind('@') {
            Some(at) => {
                let start = base.find("://").map_or(0, |s| s + 3).min(at);
                format!("{}REDACTED{}", &base[..start], &base[at..])
            }
            None => base.to_string(),
        };
        return redact_segments(&base);
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(REDACTED));
    }
    if looks_like_token(parsed.username()) {
        let _ = parsed.set_username(REDACTED);
    }
    if !parsed.cannot_be_a_base() {
        let path = redact_segments(parsed.path());
        parsed.set_path(&path);
    }
    if let Some(query) = parsed.query() {
        let shown: Vec<String> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let name = pair.split('=').next().unwrap_or("");
                let name = if looks_like_token(name) {
                    REDACTED
                } else {
                    name
                };
                if pair.contains('=') {
                    format!("{name}={REDACTED}")
                } else {
                    name.to_string()
                }
            })
            .collect();
        parsed.set_query(Some(&shown.join("&")));
    }
    if parsed.fragment().is_some_and(|f| !f.is_empty()) {
        parsed.set_fragment(Some(REDACTED));
    }
    parsed.to_string()
}

const REDACTED: &str = "REDACTED";

/// What to store in place of a URL that identifies a cached body (`join_cache`): its sha256,
/// which names the URL as well as the URL does, without keeping a token in the database.
pub fn cache_key(url: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(url.as_bytes()))
    )
}

/// `REDACTED` for each `/`-separated segment of `path` that [`looks_like_token`].
fn redact_segments(path: &str) -> String {
    path.split('/')
        .map(|seg| if looks_like_token(seg) { REDACTED } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a URL path segment (or user name, or query name) looks like a credential rather
/// than a name a person chose. Any of:
///
/// - a run of 16 or more ASCII letters and digits that switches between letters and digits at
///   least 3 times: API keys, base62/base64url tokens, hex digests (`sk_live_4eC39HqLyjWD…`,
///   `ghp_16C7e42F292c…`); words with a number in them (`covid19`, `stats2021`) switch once
///   or twice, so slugs like `covid-19-country-statistics-2021` survive;
/// - 32 or more hex digits with at most `-` between them: UUIDs and digests made of few digits;
/// - a JWT: three or more `.`-separated base64url parts, the first starting with `eyJ` (base64
///   of `{"`).
///
/// Percent-encoded text is judged as it is written: `%` ends a run.
pub fn looks_like_token(segment: &str) -> bool {
    let b = segment.as_bytes();
    // 1. A long alphanumeric run that keeps switching between letters and digits.
    let mut start = 0;
    while start < b.len() {
        if !b[start].is_ascii_alphanumeric() {
            start += 1;
            continue;
        }
        let end = b[start..]
            .iter()
            .position(|c| !c.is_ascii_alphanumeric())
            .map_or(b.len(), |i| start + i);
        let run = &b[start..end];
        if run.len() >= 16 {
            let switches = run
                .windows(2)
                .filter(|w| w[0].is_ascii_digit() != w[1].is_ascii_digit())
                .count();
            if switches >= 3 {
                return true;
            }
        }
        start = end;
    }
    // 2. Hex digits (UUIDs, digests).
    let hex = b.iter().filter(|c| c.is_ascii_hexdigit()).count();
    if hex >= 32 && b.iter().all(|c| c.is_ascii_hexdigit() || *c == b'-') {
        return true;
    }
    // 3. A JWT.
    let parts: Vec<&str> = segment.split('.').collect();
    parts.len() >= 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
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

/// Messages end up in one summary line and one log line.
pub(crate) fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `0.5 s`, `30 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_in_urls() {
        assert_eq!(
            redact_url("https://user:hunter2@example.com/x.json?api_key=abc&day=1"),
            "https://user:REDACTED@example.com/x.json?api_key=REDACTED&day=REDACTED"
        );
        // Every value, whatever its name; names and value-less flags stay.
        assert_eq!(
            redact_url("https://f.azurewebsites.net/api/x?code=S3cr3t==&jwt=abc&raw&page="),
            "https://f.azurewebsites.net/api/x?code=REDACTED&jwt=REDACTED&raw&page=REDACTED"
        );
        assert_eq!(
            redact_url("https://e.com/a#access_token=abc"),
            "https://e.com/a#REDACTED"
        );
        // Token-like path segments and user names.
        assert_eq!(
            redact_url("https://hooks.e.com/services/T0001/B0002/Bm7x9vQkLp2R8sT4wZ6yN3aF"),
            "https://hooks.e.com/services/T0001/B0002/REDACTED"
        );
        assert_eq!(
            redact_url("https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/o/r"),
            "https://REDACTED@github.com/o/r"
        );
        assert_eq!(redact_url("https://example.com/a"), "https://example.com/a");
        // URLs that do not parse still lose their credentials.
        assert_eq!(
            redact_url("http://user:hunter2@[::1/x.json?token=abc"),
            "http://REDACTED@[::1/x.json"
        );
        assert_eq!(redact_url("user:hunter2@host/x"), "REDACTED@host/x");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn ordinary_paths_survive_and_tokens_do_not() {
        for ordinary in [
            "/coviddata/v1/countries/stats.json",
            "/covid-19-country-statistics-2021/data.json",
            "/api/v2/datasets/2021-03-04.json",
            "/COVID19CountryStatistics.json",
            "/snapshots/2026-11-24T060000.123Z-0123456789ab.json.gz",
            "/releases/download/v1.2.3/stats.v1.json",
            "/abcdefghijklmnopqrstuvwxyz/ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        ] {
            let url = format!("https://example.com{ordinary}");
            assert_eq!(redact_url(&url), url, "{ordinary}");
        }
        for token in [
            "3f9c2e1b7d4a8e6f0b1c2d3e4f5a6b7c",
            "0123456789abcdef0123456789abcdef01234567",
            "123e4567-e89b-12d3-a456-426614174000",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "Bm7x9vQkLp2R8sT4wZ6yN3aF",
        ] {
            assert!(looks_like_token(token), "{token}");
            assert_eq!(
                redact_url(&format!("https://example.com/d/{token}/x.json")),
                "https://example.com/d/REDACTED/x.json"
            );
        }
    }

    /// Decodes `data` fed in pieces of `step` bytes.
    fn gunzip_stream(data: &[u8], step: usize, limit: u64) -> Result<Vec<u8>, GzError> {
        let mut gz = MultiGz::new();
        let mut out = Vec::new();
        for piece in data.chunks(step.max(1)) {
            gz.push(piece, &mut out, limit)?;
        }
        gz.finish(&mut out, limit)?;
        Ok(out)
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_gzip_member_is_decoded_in_any_chunking() {
        let doc = br#"[{"country":{"key":"a"}},{"country":{"key":"b"}}]"#;
        let (half1, half2) = doc.split_at(20);
        let two = [gz(half1), gz(half2)].concat();
        let padded = [two.clone(), vec![0; 10]].concat();
        for step in [1, 2, 7, 64, 100_000] {
            assert_eq!(gunzip_stream(&two, step, 1000).unwrap(), doc, "step {step}");
            assert_eq!(gunzip_stream(&padded, step, 1000).unwrap(), doc);
            let garbage = [gz(doc), b"<html>".to_vec()].concat();
            let err = gunzip_stream(&garbage, step, 1000).unwrap_err();
            assert!(
                matches!(&err, GzError::Corrupt(m) if m.contains("0x3C follows gzip member 1")),
                "{err:?}"
            );
            let cut = &two[..two.len() - 3];
            assert_eq!(gunzip_stream(cut, step, 1000), Err(GzError::CutOff));
        }
        assert_eq!(gunzip_stream(&[], 1, 1000).unwrap(), b"");
        assert!(matches!(
            gunzip_stream(b"[1,2]", 1, 1000),
            Err(GzError::Corrupt(_))
        ));
        let mut bad_crc = gz(doc);
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 1;
        assert!(matches!(
            gunzip_stream(&bad_crc, 5, 1000),
            Err(GzError::Corrupt(_))
        ));
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit_without_growing_past_it() {
        let bomb = gz(&vec![b'0'; 50 << 20]);
        let mut gz = MultiGz::new();
        let mut out = Vec::new();
        let err = bomb
            .chunks(8192)
            .try_for_each(|c| gz.push(c, &mut out, 1 << 20));
        assert_eq!(err, Err(GzError::TooLarge));
        assert!(out.capacity() <= (1 << 20) + GZ_STEP, "{}", out.capacity());
        // Exactly at the limit is fine.
        assert_eq!(gunzip_stream(&gz_of(1000), 100, 1000).unwrap().len(), 1000);
        assert_eq!(
            gunzip_stream(&gz_of(1001), 100, 1000),
            Err(GzError::TooLarge)
        );
    }

    fn gz_of(n: usize) -> Vec<u8> {
        gz(&vec![b' '; n])
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

    #[test]
    fn a_dataset_may_allow_plain_http_to_its_own_host_only() {
        let hosts = ["data.example.com".to_string()];
        let ok = |u: &str| check_parsed(&url::Url::parse(u).unwrap(), false, &hosts).is_ok();
        assert!(ok("http://data.example.com/x.json"));
        assert!(ok("http://DATA.example.com:8080/x.json"));
        assert!(!ok("http://other.example.com/x.json"));
    }

    fn body_error(bytes: &[u8], content_type: Option<&str>) -> String {
        check_body("https://e.com/x", bytes.to_vec(), content_type)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bodies_a_json_parser_would_report_badly_are_named() {
        assert!(body_error(b"", None).contains("the body is empty"));
        assert!(body_error(b" \n ", None).contains("only whitespace"));
        let html = body_error(b"\n<html>\n<h1>Down</h1>", None);
        assert!(
            html.contains("looks like an HTML page, not JSON: \"<html> <h1>Down</h1>\""),
            "{html}"
        );
        let typed = body_error(b"Service down", Some("text/html"));
        assert!(
            typed.contains("HTML page (Content-Type text/html)"),
            "{typed}"
        );
        let utf8 = body_error(b"[\"a\",\n\"\xFF\"]", None);
        assert!(
            utf8.contains("not valid UTF-8: byte 0xFF at line 2 column 2 (offset 7)"),
            "{utf8}"
        );
    }

    #[test]
    fn utf16_bodies_are_named() {
        let le: Vec<u8> = "[1]".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = "[1]".encode_utf16().flat_map(u16::to_be_bytes).collect();
        for body in [le, be] {
            let e = body_error(&body, None);
            assert!(
                e.contains("the body looks like UTF-16 (NUL bytes, the first at line 1 column")
                    && e.contains("JSON must be UTF-8"),
                "{e}"
            );
        }
        let bom = body_error(b"\xFF\xFE[\x001\x00]\x00", None);
        assert!(bom.contains("UTF-16 byte order mark"), "{bom}");
    }

    #[test]
    fn good_bodies_pass_and_lose_a_byte_order_mark() {
        let ok = check_body("u", b"\xEF\xBB\xBF[1]".to_vec(), Some("text/html")).unwrap();
        assert_eq!(ok, b"[1]");
        assert!(check_body("u", "[\"caf\u{e9}\"]".into(), None).is_ok());
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\nb\r\n c\t"), "a b  c");
    }
}
