//! Building the client: the SDK configuration from aws-config's default chain plus the options,
//! [`S3Store::connect`] and its bucket check, and the credentials summary for `doctor`.

use std::sync::Arc;
use std::time::Instant;

use aws_config::meta::region::RegionProviderChain;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::Client;

use super::errors::status_of;
use super::{
    Observer, S3Options, S3Store, Seen, ATTEMPT_TIMEOUT, BUCKET_KEY, CONNECT_TIMEOUT,
    DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, DEFAULT_REGION, MAX_ATTEMPTS, MIN_PART_SIZE,
    NO_CREDENTIALS,
};
use crate::error::Result;
use crate::store::ConditionalWrites;

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
        .http_client(crate::tls::s3_http_client())
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
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("{NO_CREDENTIALS} ({e})"))?;
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
            credentials: sdk.credentials_provider(),
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

    /// Whether the client's credentials provider yields credentials now.
    async fn has_credentials(&self) -> bool {
        use aws_sdk_s3::config::ProvideCredentials as _;
        match &self.credentials {
            Some(p) => p.provide_credentials().await.is_ok(),
            None => false,
        }
    }

    async fn check_bucket(&self) -> Result<()> {
        let started = Instant::now();
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => {
                Err(self.store_err(BUCKET_KEY, "bucket does not exist".into(), false))
            }
            Err(e) if status_of(&e) == Some(403) || status_of(&e) == Some(400) => Ok(()),
            // Nothing was sent: when the default chain has no credentials, its last provider's
            // complaint ("IMDS is disabled", a metadata timeout) is all the SDK reports. This is
            // every command's first request, so each says the same as `doctor`.
            Err(SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_))
                if !self.has_credentials().await =>
            {
                Err(self.store_err(BUCKET_KEY, NO_CREDENTIALS.into(), false))
            }
            Err(e) => Err(self.sdk_err(BUCKET_KEY, &e, started)),
        }
    }
}
