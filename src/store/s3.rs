//! S3 store (aws-sdk-s3). Placeholder until the S3 issue lands.

use super::{ListEntry, ObjectMeta, PutOptions, Store};
use crate::error::{Error, Result};
use bytes::Bytes;

/// How to reach S3: everything else (credentials, profile) comes from aws-config's default chain.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// `AWS_ENDPOINT_URL` for S3-compatible servers.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), needed by most S3-compatible servers.
    pub path_style: bool,
}

pub struct S3Store {
    url: String,
    prefix: String,
}

impl S3Store {
    pub async fn connect(bucket: &str, prefix: &str, _opts: &S3Options) -> Result<Self> {
        let _ = (S3Store {
            url: format!("s3://{bucket}/{prefix}"),
            prefix: prefix.into(),
        })
        .prefix;
        Err(Error::Config("the s3 store is not implemented yet".into()))
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
    async fn head(&self, _key: &str) -> Result<Option<ObjectMeta>> {
        unreachable!()
    }
    async fn get(&self, _key: &str) -> Result<Option<(Bytes, ObjectMeta)>> {
        unreachable!()
    }
    async fn put(&self, _key: &str, _body: Bytes, _opts: PutOptions) -> Result<String> {
        unreachable!()
    }
    async fn delete(&self, _key: &str) -> Result<()> {
        unreachable!()
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<ListEntry>> {
        unreachable!()
    }
}
