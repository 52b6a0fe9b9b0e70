//! SDK errors as one short line and whether retrying can help, built from the S3 error code,
//! the HTTP status or the transport failure, never from request headers.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::S3Store;
use crate::error::Error;
use crate::store::PutMode;

impl S3Store {
    pub(super) fn store_err(&self, key: &str, reason: String, retryable: bool) -> Error {
        Error::Store {
            store: self.url.clone(),
            key: key.to_string(),
            reason,
            retryable,
        }
    }

    pub(super) fn precondition(&self, key: &str) -> Error {
        Error::PreconditionFailed {
            store: self.url.clone(),
            key: key.to_string(),
        }
    }

    /// `started`: when the request (all its attempts) began, for "timed out" messages.
    pub(super) fn sdk_err<E>(
        &self,
        key: &str,
        err: &SdkError<E, HttpResponse>,
        started: Instant,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (reason, retryable) = describe(err, &self.endpoint, self.timing(started));
        self.store_err(key, reason, retryable)
    }

    pub(super) fn timing(&self, started: Instant) -> Timing {
        Timing {
            attempt_timeout: self.attempt_timeout,
            max_attempts: self.max_attempts,
            elapsed: started.elapsed(),
        }
    }

    /// A failed conditional put: 412, AWS's 409 for overlapping conditional writes, and
    /// `If-Match` on a key that does not exist (404) all mean "not the object you expected".
    pub(super) fn put_err<E>(
        &self,
        key: &str,
        mode: &PutMode,
        err: &SdkError<E, HttpResponse>,
        started: Instant,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = err.code();
        let status = status_of(err);
        let conditional = !matches!(mode, PutMode::Overwrite);
        let refused = status == Some(412)
            || code == Some("PreconditionFailed")
            || code == Some("ConditionalRequestConflict")
            || (matches!(mode, PutMode::Update(_)) && code == Some("NoSuchKey"));
        if conditional && refused {
            self.precondition(key)
        } else {
            self.sdk_err(key, err, started)
        }
    }
}

/// What a "timed out" message says: the limit per attempt, and how long all attempts took.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    attempt_timeout: Duration,
    max_attempts: u32,
    elapsed: Duration,
}

pub(super) type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

pub(super) fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// One short line and whether retrying can help, from the S3 error code, the HTTP status or the
/// transport failure. Server messages are only used for codes not listed here, and never
/// request headers, so no credential can appear.
pub(super) fn describe<E>(
    err: &SdkError<E, HttpResponse>,
    endpoint: &str,
    timing: Timing,
) -> (String, bool)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let status = status_of(err).unwrap_or(0);
            describe_response(status, err.code(), err.message())
        }
        SdkError::TimeoutError(_) => (
            format!(
                "no answer from {endpoint} in {:.0}s: each attempt times out after {}s, up to {} attempts",
                timing.elapsed.as_secs_f64(),
                timing.attempt_timeout.as_secs_f64(),
                timing.max_attempts
            ),
            true,
        ),
        // Credential resolution happens inside the send, so its failure arrives as a dispatch
        // failure too; it must not read as a network problem.
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
            if mentions_credentials(err) =>
        {
            (describe_local(&innermost(err)), false)
        }
        SdkError::DispatchFailure(d) => {
            let cause = innermost(err);
            if d.is_timeout() {
                (format!("timed out connecting to endpoint {endpoint}"), true)
            } else if d.is_io() || d.is_other() {
                (
                    format!(
                        "cannot connect to endpoint {endpoint}: {}",
                        short_io(&cause)
                    ),
                    true,
                )
            } else {
                // `is_user`: the request could not be sent as built (e.g. no credentials).
                (describe_local(&cause), false)
            }
        }
        SdkError::ConstructionFailure(_) => (describe_local(&innermost(err)), false),
        _ => (innermost(err), false),
    }
}

pub(super) fn describe_response(
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
) -> (String, bool) {
    let fixed = |s: &str, retry: bool| (s.to_string(), retry);
    match code {
        Some("AccessDenied") | Some("AllAccessDisabled") => fixed(
            "access denied (check the credentials and the bucket policy)",
            false,
        ),
        Some("NoSuchBucket") => fixed("bucket does not exist", false),
        Some("InvalidAccessKeyId") => fixed(
            "invalid access key id (check AWS_ACCESS_KEY_ID or the profile)",
            false,
        ),
        Some("SignatureDoesNotMatch") => fixed(
            "signature does not match (wrong secret key? check AWS_SECRET_ACCESS_KEY)",
            false,
        ),
        Some("ExpiredToken") | Some("TokenRefreshRequired") | Some("InvalidToken") => {
            fixed("the session token is expired or invalid", false)
        }
        Some("RequestTimeTooSkewed") => fixed(
            "the local clock is too far from the server's (sync the clock)",
            false,
        ),
        Some("AuthorizationHeaderMalformed") | Some("PermanentRedirect") => fixed(
            "the bucket is in another region (set AWS_REGION to the bucket's region)",
            false,
        ),
        Some("InvalidBucketName") => fixed("invalid bucket name", false),
        Some("BadDigest")
        | Some("InvalidDigest")
        | Some("XAmzContentSHA256Mismatch")
        | Some("XAmzContentChecksumMismatch") => fixed(
            "the server received bytes that do not match their checksum (corrupted in transit)",
            true,
        ),
        Some("SlowDown")
        | Some("Throttling")
        | Some("ThrottlingException")
        | Some("RequestLimitExceeded")
        | Some("TooManyRequests") => fixed("throttled by the server (slow down)", true),
        Some("RequestTimeout") => fixed("the server timed out reading the request", true),
        Some("EntityTooLarge") => fixed("object is too large for a single upload", false),
        _ => {
            let retryable = status >= 500 || status == 429 || status == 408;
            let what = match status {
                // A HEAD's 403 has no body, so a wrong secret looks like a policy denial.
                403 => {
                    "access denied (check the credentials, the secret key and the bucket policy)"
                        .to_string()
                }
                404 => "not found".to_string(),
                301 => "the bucket is in another region (set AWS_REGION to the bucket's region)"
                    .to_string(),
                s if s >= 500 => format!("server error (HTTP {s})"),
                s => format!("HTTP {s}"),
            };
            let detail = match (code, message) {
                (Some(c), Some(m)) => format!(": {c}: {}", truncate(m, 200)),
                (Some(c), None) => format!(": {c}"),
                (None, Some(m)) => format!(": {}", truncate(m, 200)),
                (None, None) => String::new(),
            };
            (format!("{what}{detail}"), retryable)
        }
    }
}

fn mentions_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.to_string().to_ascii_lowercase().contains("credential") {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Local failures before anything was sent: by far the most common is missing credentials.
fn describe_local(cause: &str) -> String {
    let lower = cause.to_ascii_lowercase();
    if lower.contains("credential") {
        super::NO_CREDENTIALS.to_string()
    } else {
        format!("could not send the request: {}", truncate(cause, 200))
    }
}

/// The deepest `source()` of an error: the SDK wraps the useful part ("Connection refused")
/// under several layers of "dispatch failure" / "io error".
pub(super) fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    // Some causes (the credential chain) span several lines; the first one says what happened.
    let text = cur.to_string();
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// "Connection refused (os error 111)" → "connection refused".
pub(super) fn short_io(cause: &str) -> String {
    let s = cause.split(" (os error").next().unwrap_or(cause);
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_string(),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
