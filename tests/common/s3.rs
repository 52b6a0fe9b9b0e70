//! The S3 server the tests run against: SeaweedFS on 127.0.0.1, started by `scripts/test`.

use snapsync::store::s3::S3Options;

pub struct S3Env {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
}

/// The S3 server to test against; `None` (with a loud note) only when explicitly skipped.
pub fn s3_env() -> Option<S3Env> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("S3_ENDPOINT") else {
        // Missing is a failure, not a silent pass: only an explicit opt-out skips.
        if var("SNAPSYNC_SKIP_S3").as_deref() != Some("1") {
            panic!(
                "S3_ENDPOINT is not set: run the suite with scripts/test (it starts SeaweedFS on \
                 127.0.0.1 and exports S3_* and AWS_*), or set SNAPSYNC_SKIP_S3=1 to skip the S3 tests"
            );
        }
        static NOTE: std::sync::Once = std::sync::Once::new();
        NOTE.call_once(|| {
            use std::io::Write as _;
            let _ = std::io::stderr()
                .write_all(b"\n*** NOTE: SNAPSYNC_SKIP_S3=1: the S3 tests are SKIPPED ***\n\n");
        });
        return None;
    };
    Some(S3Env {
        endpoint,
        bucket: var("S3_BUCKET").unwrap_or_else(|| "test-bucket".to_string()),
        region: var("S3_REGION").unwrap_or_else(|| "us-east-1".to_string()),
    })
}

pub fn s3_options(env: &S3Env) -> S3Options {
    S3Options {
        endpoint: Some(env.endpoint.clone()),
        region: Some(env.region.clone()),
        path_style: true,
        // Small pages so every list in the suite crosses several pages.
        list_page_size: Some(7),
        ..S3Options::default()
    }
}
