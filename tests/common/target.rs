//! Where the binary publishes in the process-level reliability tests: a directory (file store)
//! or a fresh prefix on the S3 server, optionally reached through a [`super::proxy::Proxy`].
//! Each process gets its own database; the store is shared. (Library-level tests take their
//! store from [`super::store`].)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use snapsync::store::file::FileStore;
use snapsync::store::DynStore;

use super::s3::{s3_env, s3_options, S3Env};
use super::store::connect_s3;

pub struct Target {
    pub dir: tempfile::TempDir,
    /// `file://…` or `s3://bucket/prefix`.
    pub store_url: String,
    s3: Option<(S3Env, String)>,
    /// The endpoint the processes use (the S3 server, or a proxy in front of it).
    endpoint: Option<String>,
}

impl Target {
    pub fn file() -> Target {
        let dir = tempfile::tempdir().expect("temp dir");
        let store_url = format!("file://{}", dir.path().join("store").display());
        Target {
            dir,
            store_url,
            s3: None,
            endpoint: None,
        }
    }

    /// A fresh prefix on the S3 server; `None` only when S3 tests are explicitly skipped.
    pub fn s3(name: &str) -> Option<Target> {
        let env = s3_env()?;
        let prefix = format!("{name}-{:016x}", rand::random::<u64>());
        Some(Target {
            dir: tempfile::tempdir().expect("temp dir"),
            store_url: format!("s3://{}/{prefix}", env.bucket),
            endpoint: Some(env.endpoint.clone()),
            s3: Some((env, prefix)),
        })
    }

    pub fn is_s3(&self) -> bool {
        self.s3.is_some()
    }

    pub fn s3_endpoint(&self) -> Option<&str> {
        self.s3.as_ref().map(|(e, _)| e.endpoint.as_str())
    }

    /// Processes reach S3 through this endpoint from now on (e.g. a proxy's).
    pub fn set_endpoint(&mut self, endpoint: &str) {
        self.endpoint = Some(endpoint.to_string());
    }

    pub fn kind(&self) -> &'static str {
        if self.is_s3() {
            "s3"
        } else {
            "file"
        }
    }

    /// A database path of its own for process `name`.
    pub fn db(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.db"))
    }

    /// The binary with a clean environment, this store, the given database and the S3
    /// settings of the test environment.
    pub fn cmd(&self, db: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_snapsync"));
        c.current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("SNAPSYNC_") || k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env("SNAPSYNC_STORE", &self.store_url)
            .env("SNAPSYNC_DB", db)
            .env("SNAPSYNC_RETRIES", "1")
            .env("SNAPSYNC_LOG_FORMAT", "logfmt");
        if let Some((env, _)) = &self.s3 {
            c.env(
                "AWS_ENDPOINT_URL",
                self.endpoint.as_deref().unwrap_or(&env.endpoint),
            )
            .env("AWS_REGION", &env.region)
            .env("AWS_EC2_METADATA_DISABLED", "true");
            for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                c.env(k, std::env::var(k).unwrap_or_default());
            }
        }
        c.args(args);
        c
    }

    /// The store itself, reached directly (never through a proxy), for checking.
    pub async fn store(&self) -> DynStore {
        match &self.s3 {
            Some((env, prefix)) => Arc::new(connect_s3(env, prefix, &s3_options(env)).await),
            None => Arc::new(FileStore::open(&self.dir.path().join("store")).expect("file store")),
        }
    }
}
