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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::meta::region::RegionProviderChain;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest, Sha256};

use super::{ConditionalWrites, ListEntry, ObjectMeta, PutMode, PutOptions, Store};
use crate::error::{Error, Result};

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
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The SDK configuration: aws-config's default chain (environment, profiles, `AWS_PROFILE`,
/// `AWS_ENDPOINT_URL`) plus what `opts` sets, with our timeouts, retries and checksum policy.
async fn load_sdk_config(opts: &S3Options) -> aws_config::SdkConfig {
    let region = match &opts.region {
        Some(r) => RegionProviderChain::first_try(Region::new(r.clone())),
        // Environment and profile only: the default chain would also ask the EC2 instance
        // metadata service, which on Heroku (or a laptop) is a wasted network round trip.
        None => RegionProviderChain::first_try(
            aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
        )
        .or_else(aws_config::profile::ProfileFileRegionProvider::new()),
    }
    .or_else(Region::from_static(DEFAULT_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(opts.attempt_timeout.unwrap_or(ATTEMPT_TIMEOUT))
                .build(),
        )
        .retry_config(
            RetryConfig::standard().with_max_attempts(opts.max_attempts.unwrap_or(MAX_ATTEMPTS)),
        )
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(endpoint) = &opts.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(creds) = &opts.credentials {
        loader = loader.credentials_provider(creds.clone());
    }
    loader.load().await
}

impl S3Store {
    /// Resolves credentials the way `connect` would and says where they come from, showing
    /// only the first characters of the access key id (never the secret).
    pub async fn credentials_summary(opts: &S3Options) -> std::result::Result<String, String> {
        use aws_sdk_s3::config::ProvideCredentials as _;
        let sdk = load_sdk_config(opts).await;
        let provider = sdk
            .credentials_provider()
            .ok_or("no credentials provider is configured")?;
        let creds = provider.provide_credentials().await.map_err(|e| {
            format!("no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE): {e}")
        })?;
        let id = creds.access_key_id();
        let shown: String = id.chars().take(4).collect();
        Ok(format!(
            "resolved: access key id {shown}… (region {})",
            sdk.region().map(|r| r.as_ref()).unwrap_or(DEFAULT_REGION)
        ))
    }
}

impl S3Store {
    /// Builds the client from the default chain plus `opts`, then checks that the bucket exists
    /// (a `HeadBucket`; a 403 there is tolerated, since writing may be allowed without
    /// `s3:ListBucket`, and the first real request will say what is wrong).
    pub async fn connect(bucket: &str, prefix: &str, opts: &S3Options) -> Result<Self> {
        let prefix = crate::keys::normalize_prefix(prefix)?;
        let url = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let sdk = load_sdk_config(opts).await;
        // `opts.endpoint` was handed to the loader, which also reads `AWS_ENDPOINT_URL` itself.
        let endpoint = match sdk.endpoint_url() {
            Some(e) => crate::source::redact_url(e)
                .trim_end_matches('/')
                .to_string(),
            None => format!(
                "https://s3.{}.amazonaws.com",
                sdk.region().map(|r| r.as_ref()).unwrap_or(DEFAULT_REGION)
            ),
        };
        let path_style = opts.path_style || sdk.endpoint_url().is_some();
        let seen = Arc::new(Seen::default());
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .interceptor(Observer(seen.clone()))
            .build();
        let store = S3Store {
            client: Client::from_conf(config),
            bucket: bucket.to_string(),
            url,
            prefix,
            endpoint,
            attempt_timeout: opts.attempt_timeout.unwrap_or(ATTEMPT_TIMEOUT),
            max_attempts: opts.max_attempts.unwrap_or(MAX_ATTEMPTS),
            seen: seen.clone(),
            multipart_threshold: opts
                .multipart_threshold
                .unwrap_or(DEFAULT_MULTIPART_THRESHOLD),
            part_size: opts
                .multipart_part_size
                .unwrap_or(DEFAULT_PART_SIZE)
                .max(MIN_PART_SIZE),
            list_page_size: opts.list_page_size,
            conditional_writes: opts
                .conditional_writes
                .unwrap_or(ConditionalWrites::Unknown),
        };
        store.check_bucket().await?;
        Ok(store)
    }

    /// The underlying SDK client, for callers that need a raw request (tests, diagnostics).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn check_bucket(&self) -> Result<()> {
        let started = Instant::now();
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => {
                Err(self.store_err(BUCKET_KEY, "bucket does not exist".into(), false))
            }
            Err(e) if status_of(&e) == Some(403) || status_of(&e) == Some(400) => Ok(()),
            Err(e) => Err(self.sdk_err(BUCKET_KEY, &e, started)),
        }
    }

    fn store_err(&self, key: &str, reason: String, retryable: bool) -> Error {
        Error::Store {
            store: self.url.clone(),
            key: key.to_string(),
            reason,
            retryable,
        }
    }

    fn precondition(&self, key: &str) -> Error {
        Error::PreconditionFailed {
            store: self.url.clone(),
            key: key.to_string(),
        }
    }

    /// `started`: when the request (all its attempts) began, for "timed out" messages.
    fn sdk_err<E>(&self, key: &str, err: &SdkError<E, HttpResponse>, started: Instant) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (reason, retryable) = describe(err, &self.endpoint, self.timing(started));
        self.store_err(key, reason, retryable)
    }

    fn timing(&self, started: Instant) -> Timing {
        Timing {
            attempt_timeout: self.attempt_timeout,
            max_attempts: self.max_attempts,
            elapsed: started.elapsed(),
        }
    }

    /// A failed conditional put: 412, AWS's 409 for overlapping conditional writes, and
    /// `If-Match` on a key that does not exist (404) all mean "not the object you expected".
    fn put_err<E>(
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

    async fn put_single(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<String> {
        let started = Instant::now();
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_sha256(b64(&opts.body_sha256(&body)))
            .content_length(body.len() as i64)
            .body(ByteStream::from(body))
            .content_type(opts.content_type)
            .set_content_encoding(opts.content_encoding.map(str::to_string))
            .set_metadata(metadata_map(&opts.metadata));
        let req = match &opts.mode {
            PutMode::Create => req.if_none_match("*"),
            PutMode::Update(etag) => req.if_match(etag),
            PutMode::Overwrite => req,
        };
        match req.send().await {
            Ok(out) => self.etag_or_err(key, out.e_tag),
            Err(e) => Err(self.put_err(key, &opts.mode, &e, started)),
        }
    }

    async fn put_multipart(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<String> {
        let started = Instant::now();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .content_type(opts.content_type)
            .set_content_encoding(opts.content_encoding.map(str::to_string))
            .set_metadata(metadata_map(&opts.metadata))
            .send()
            .await
            .map_err(|e| self.sdk_err(key, &e, started))?;
        let Some(upload_id) = created.upload_id else {
            return Err(self.store_err(
                key,
                "server started a multipart upload without an upload id".into(),
                false,
            ));
        };
        let result = self
            .upload_parts_and_complete(key, &upload_id, body, opts)
            .await;
        if result.is_err() {
            // Best effort: a failed abort leaves parts that a bucket lifecycle rule cleans up;
            // the error worth reporting is the original one.
            if let Err(e) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::warn!(key, reason = %describe(&e, &self.endpoint, self.timing(started)).0, "could not abort multipart upload");
            }
        }
        result
    }

    async fn upload_parts_and_complete(
        &self,
        key: &str,
        upload_id: &str,
        body: Bytes,
        opts: &PutOptions,
    ) -> Result<String> {
        let started = Instant::now();
        let ranges: Vec<(i32, std::ops::Range<usize>)> = (0..body.len())
            .step_by(self.part_size)
            .enumerate()
            .map(|(i, start)| {
                let end = (start + self.part_size).min(body.len());
                (i as i32 + 1, start..end)
            })
            .collect();
        let parts: Vec<CompletedPart> = futures_util::stream::iter(ranges)
            .map(|(number, range)| {
                let part = body.slice(range);
                async move {
                    let checksum = sha256_b64(&part);
                    let out = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .checksum_sha256(&checksum)
                        .content_length(part.len() as i64)
                        .body(ByteStream::from(part))
                        .send()
                        .await
                        .map_err(|e| self.sdk_err(key, &e, started))?;
                    let etag = self.etag_or_err(key, out.e_tag)?;
                    Ok::<_, Error>(
                        CompletedPart::builder()
                            .part_number(number)
                            .e_tag(etag)
                            .checksum_sha256(out.checksum_sha256.unwrap_or(checksum))
                            .build(),
                    )
                }
            })
            .buffered(PART_CONCURRENCY)
            .try_collect()
            .await?;
        let req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        let req = match &opts.mode {
            PutMode::Create => req.if_none_match("*"),
            PutMode::Update(etag) => req.if_match(etag),
            PutMode::Overwrite => req,
        };
        match req.send().await {
            Ok(out) => self.etag_or_err(key, out.e_tag),
            Err(e) => Err(self.put_err(key, &opts.mode, &e, started)),
        }
    }

    fn etag_or_err(&self, key: &str, etag: Option<String>) -> Result<String> {
        etag.ok_or_else(|| self.store_err(key, "server returned no ETag".into(), false))
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

/// What a "timed out" message says: the limit per attempt, and how long all attempts took.
#[derive(Debug, Clone, Copy)]
struct Timing {
    attempt_timeout: Duration,
    max_attempts: u32,
    elapsed: Duration,
}

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

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

fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// One short line and whether retrying can help, from the S3 error code, the HTTP status or the
/// transport failure. Server messages are only used for codes not listed here, and never
/// request headers, so no credential can appear.
fn describe<E>(err: &SdkError<E, HttpResponse>, endpoint: &str, timing: Timing) -> (String, bool)
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

fn describe_response(status: u16, code: Option<&str>, message: Option<&str>) -> (String, bool) {
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
        "no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            .to_string()
    } else {
        format!("could not send the request: {}", truncate(cause, 200))
    }
}

/// The deepest `source()` of an error: the SDK wraps the useful part ("Connection refused")
/// under several layers of "dispatch failure" / "io error".
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    // Some causes (the credential chain) span several lines; the first one says what happened.
    let text = cur.to_string();
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// "Connection refused (os error 111)" → "connection refused".
fn short_io(cause: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_become_one_line() {
        assert_eq!(
            describe_response(403, Some("SignatureDoesNotMatch"), Some("long text")).0,
            "signature does not match (wrong secret key? check AWS_SECRET_ACCESS_KEY)"
        );
        assert_eq!(
            describe_response(404, Some("NoSuchBucket"), None),
            ("bucket does not exist".to_string(), false)
        );
        assert!(describe_response(503, Some("SlowDown"), None).1);
        assert!(describe_response(500, Some("InternalError"), Some("oops")).1);
        assert!(!describe_response(400, Some("Weird"), Some("x")).1);
    }

    #[test]
    fn io_causes_are_shortened() {
        assert_eq!(
            short_io("Connection refused (os error 111)"),
            "connection refused"
        );
    }

    #[test]
    fn metadata_names_are_lower_case_without_the_amz_prefix() {
        let m = lower_metadata(Some(HashMap::from([
            ("Snapsync-Version".to_string(), "3".to_string()),
            ("x-amz-meta-a".to_string(), "b".to_string()),
        ])));
        assert_eq!(m.get("snapsync-version").map(String::as_str), Some("3"));
        assert_eq!(m.get("a").map(String::as_str), Some("b"));
    }
}
