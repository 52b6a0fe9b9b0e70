//! Uploads: a single conditional `PutObject`, or a multipart upload whose condition goes on the
//! completion and which is aborted on any failure.

use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};

use super::errors::describe;
use super::{b64, metadata_map, sha256_b64, S3Store, PART_CONCURRENCY};
use crate::error::{Error, Result};
use crate::store::{PutMode, PutOptions};

impl S3Store {
    pub(super) async fn put_single(
        &self,
        key: &str,
        body: Bytes,
        opts: &PutOptions,
    ) -> Result<String> {
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
            .set_cache_control(opts.cache_control.map(str::to_string))
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

    pub(super) async fn put_multipart(
        &self,
        key: &str,
        body: Bytes,
        opts: &PutOptions,
    ) -> Result<String> {
        let started = Instant::now();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .content_type(opts.content_type)
            .set_content_encoding(opts.content_encoding.map(str::to_string))
            .set_cache_control(opts.cache_control.map(str::to_string))
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

    pub(super) fn etag_or_err(&self, key: &str, etag: Option<String>) -> Result<String> {
        etag.ok_or_else(|| self.store_err(key, "server returned no ETag".into(), false))
    }
}
