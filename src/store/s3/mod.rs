//! The S3 store (aws-sdk-s3): real AWS or any S3-compatible server behind `AWS_ENDPOINT_URL`.
//!
//! It maps the [`Store`] trait onto plain S3 calls and nothing more: `Create` is
//! `If-None-Match: *`, `Update` is `If-Match: <etag>`, and a refused condition (412, or AWS's
//! 409 `ConditionalRequestConflict` when two conditional writes overlap) is
//! [`Error::PreconditionFailed`]. Keys arrive as full object keys; the prefix is never added here.
//!
//! The decisions a newcomer would otherwise get wrong:
//! - **The bytes S3 stores are the bytes we hand it.** Recent SDKs default to streaming uploads
//!   as `aws-chunked` with a trailing CRC, which rewrites `Content-Encoding` to
//!   `aws-chunked,gzip` on some servers. The client is built with
//!   `RequestChecksumCalculation::WhenRequired` and every put sends an explicit
//!   `x-amz-checksum-sha256` instead, so the server still verifies the body and `Content-Encoding`
//!   stays exactly `gzip`.
//! - **Multipart conditions go on the completion.** Large bodies are uploaded as slices of the one
//!   `Bytes` (no copies); `If-None-Match`/`If-Match` are sent with `CompleteMultipartUpload`,
//!   the moment the object appears, and any failure aborts the upload so no parts linger.
//! - **One short line per failure.** SDK errors are long and nested; users need "bucket does not
//!   exist" or "cannot connect to endpoint …", and the worker needs `retryable`. Messages are
//!   built from the S3 error code and HTTP status only, never from request headers, so neither
//!   the secret key nor the `Authorization` header can leak into them.
//! - **HEAD cannot tell a missing bucket from a missing key** (a 404 without a body), so
//!   [`S3Store::connect`] checks the bucket once with `HeadBucket`.
//!
//! The code is cut by what it does: `connect` builds the client and checks the bucket, `put`
//! uploads (single or multipart, with the condition where it belongs), and `errors` turns SDK
//! errors into one short line and whether to retry. This file holds the options, the store
//! and its [`Store`] methods, and what every response is watched for.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::Client;
use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{ConditionalWrites, ListEntry, ObjectMeta, PutOptions, Store};
use crate::error::Result;

/// Bodies larger than this are uploaded in parts unless [`S3Options::multipart_threshold`] says
/// otherwise. A single PUT is one request to retry; parts keep each retry small.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 64 * 1024 * 1024;
/// Size of each part (the last one may be smaller); S3 requires at least 5 MiB.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts uploaded at once: enough to fill a link, few enough to bound memory on a small dyno.
const PART_CONCURRENCY: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_ATTEMPTS: u32 = 3;
const DEFAULT_REGION: &str = "us-east-1";
/// What errors from the bucket check name in place of an object key.
const BUCKET_KEY: &str = "(bucket)";
/// What every command says when the default chain finds no credentials (rather than the
/// chain's last provider's complaint, e.g. "IMDS is disabled").
const NO_CREDENTIALS: &str =
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE for a profile";

/// How to reach S3: everything else (credentials, profile) comes from aws-config's default chain.
/// `Debug` redacts the endpoint's password and the secret key.
#[derive(Clone, Default)]
pub struct S3Options {
    /// `AWS_ENDPOINT_URL` for S3-compatible servers.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), needed by most S3-compatible servers.
    /// Always on when `endpoint` is set; this flag forces it for AWS itself too.
    pub path_style: bool,
    /// Explicit credentials instead of the default chain (tests, embedding). `Credentials`
    /// redacts the secret in its `Debug` output.
    pub credentials: Option<Credentials>,
    /// Bodies above this many bytes use multipart upload (default [`DEFAULT_MULTIPART_THRESHOLD`]).
    pub multipart_threshold: Option<usize>,
    /// Part size for multipart uploads (default [`DEFAULT_PART_SIZE`], at least 5 MiB).
    pub multipart_part_size: Option<usize>,
    /// `max-keys` per `ListObjectsV2` page (default: the server's, 1000 on AWS).
    pub list_page_size: Option<i32>,
    /// What the server does with conditional writes when known (from `doctor` or config);
    /// `None` trusts it to honour them like AWS and SeaweedFS do.
    pub conditional_writes: Option<ConditionalWrites>,
    /// Attempts per request, the first included (default 3); 1 turns the SDK's retries off.
    pub max_attempts: Option<u32>,
    /// How long one attempt of a request may take (default 60 s).
    pub attempt_timeout: Option<Duration>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(crate::source::redact_url),
            )
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("credentials", &self.credentials)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("multipart_part_size", &self.multipart_part_size)
            .field("list_page_size", &self.list_page_size)
            .field("conditional_writes", &self.conditional_writes)
            .field("max_attempts", &self.max_attempts)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish()
    }
}

pub struct S3Store {
    client: Client,
    bucket: String,
    url: String,
    prefix: String,
    /// Redacted, for "cannot connect to endpoint …" messages.
    endpoint: String,
    /// For "timed out after …" messages.
    attempt_timeout: Duration,
    max_attempts: u32,
    /// What responses told about the server (its clock; whether it ever said yes).
    seen: Arc<Seen>,
    multipart_threshold: usize,
    part_size: usize,
    list_page_size: Option<i32>,
    conditional_writes: ConditionalWrites,
    /// The default chain (or the explicit credentials), asked again only to explain a request
    /// that could not be sent.
    credentials: Option<aws_sdk_s3::config::SharedCredentialsProvider>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Store for S3Store {
    fn url(&self) -> &str {
        &self.url
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key))]
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let started = Instant::now();
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                etag: self.etag_or_err(key, out.e_tag)?,
                size: out.content_length.unwrap_or(0).max(0) as u64,
                content_encoding: out.content_encoding,
                content_type: out.content_type,
                cache_control: out.cache_control,
                metadata: lower_metadata(out.metadata),
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.sdk_err(key, &e, started)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key))]
    async fn get(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>> {
        let started = Instant::now();
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.code() == Some("NoSuchBucket") => {
                return Err(self.sdk_err(key, &e, started))
            }
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.sdk_err(key, &e, started)),
        };
        let etag = self.etag_or_err(key, out.e_tag)?;
        let content_encoding = out.content_encoding;
        let (content_type, cache_control) = (out.content_type, out.cache_control);
        let metadata = lower_metadata(out.metadata);
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| {
                self.store_err(
                    key,
                    format!("reading the body failed: {}", innermost(&e)),
                    true,
                )
            })?
            .into_bytes();
        let meta = ObjectMeta {
            key: key.to_string(),
            etag,
            size: bytes.len() as u64,
            content_encoding,
            content_type,
            cache_control,
            metadata,
        };
        Ok(Some((bytes, meta)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key, size = body.len()))]
    async fn put(&self, key: &str, body: Bytes, opts: PutOptions) -> Result<String> {
        if body.len() > self.multipart_threshold {
            self.put_multipart(key, body, &opts).await
        } else {
            self.put_single(key, body, &opts).await
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key))]
    async fn delete(&self, key: &str) -> Result<()> {
        let started = Instant::now();
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchKey") => Ok(()),
            Err(e) => Err(self.sdk_err(key, &e, started)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(prefix))]
    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        let started = Instant::now();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_max_keys(self.list_page_size)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.sdk_err(prefix, &e, started))?;
            out.extend(
                page.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| {
                        Some(ListEntry {
                            key: o.key?,
                            size: o.size.unwrap_or(0).max(0) as u64,
                            modified: o.last_modified.and_then(offset_date_time),
                        })
                    }),
            );
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn conditional_writes(&self) -> ConditionalWrites {
        self.conditional_writes
    }

    fn clock_skew(&self) -> Option<time::Duration> {
        *self.seen.skew.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn answered(&self) -> bool {
        self.seen
            .answered
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What the responses said about the server.
#[derive(Debug, Default)]
struct Seen {
    /// The server's clock minus ours, from the `Date` header of the latest response.
    skew: Mutex<Option<time::Duration>>,
    /// Whether any request was accepted (not refused for its credentials or signature).
    answered: std::sync::atomic::AtomicBool,
}

/// Reads the server's clock off every response's `Date` header (one-second resolution, taken
/// when the response arrives), so janitors can judge object ages by the store's clock and
/// runs can date versions by it; and notes whether the server ever accepted a request.
#[derive(Debug)]
struct Observer(Arc<Seen>);

impl aws_sdk_s3::config::Intercept for Observer {
    fn name(&self) -> &'static str {
        "snapsync::Observer"
    }

    fn read_before_deserialization(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        let now = time::OffsetDateTime::now_utc();
        let status = context.response().status().as_u16();
        if status < 400 || status == 404 || status == 412 {
            self.0
                .answered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let server = context
            .response()
            .headers()
            .get("date")
            .and_then(|d| {
                aws_sdk_s3::primitives::DateTime::from_str(
                    d,
                    aws_sdk_s3::primitives::DateTimeFormat::HttpDate,
                )
                .ok()
            })
            .and_then(offset_date_time);
        if let Some(server) = server {
            // The header is truncated to the second: half a second is the best estimate.
            let skew = server + time::Duration::milliseconds(500) - now;
            *self.0.skew.lock().unwrap_or_else(|e| e.into_inner()) = Some(skew);
        }
        Ok(())
    }
}

/// An SDK time as a `time` one (`None` only out of `time`'s range).
fn offset_date_time(t: aws_sdk_s3::primitives::DateTime) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok()
}

fn sha256_b64(bytes: &[u8]) -> String {
    b64(&Sha256::digest(bytes))
}

fn b64(digest: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

fn metadata_map(metadata: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    })
}

/// The SDK already strips `x-amz-meta-`; servers differ in the case they return names in.
fn lower_metadata(metadata: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            let k = k
                .strip_prefix("x-amz-meta-")
                .map(str::to_string)
                .unwrap_or(k);
            (k, v)
        })
        .collect()
}

mod connect;
mod errors;
mod put;

use errors::{innermost, status_of};

#[cfg(test)]
mod tests;
