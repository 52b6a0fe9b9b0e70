//! One behaviour suite for every [`Store`] backend (STYLE.md habit 3).
//!
//! Each case is an `async fn(Fixture)` written once and run twice by `on_both_stores!`: as
//! `file::<case>` against a temporary directory and as `s3::<case>` against a real
//! S3-compatible server (SeaweedFS from `scripts/test` / `reference/s3-up.sh`). The S3 half reads
//! `S3_ENDPOINT`, `S3_BUCKET`, `S3_REGION`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`;
//! every test works under its own random prefix, so runs can share a bucket. Without
//! `S3_ENDPOINT` the S3 half fails (skipping would hide a broken backend), unless
//! `SNAPSYNC_SKIP_S3=1` says to skip it.
//!
//! The `s3_only` tests pin down what only a network store can get wrong: readable errors that
//! never show the secret, fast failure when the endpoint is down, an exact `Content-Encoding`,
//! multipart uploads with conditions, and `doctor`'s verdict.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::s3::{s3_env, s3_options};
use crate::common::store::{self, connect_s3, StoreUnderTest};
use bytes::Bytes;
use snapsync::probe;
use snapsync::store::s3::{S3Options, S3Store};
use snapsync::store::{ConditionalWrites, PutMode, PutOptions, Store};
use snapsync::Error;

/// A store plus a unique key prefix; keeps the temporary directory alive for file stores.
struct Fixture {
    store: Arc<dyn Store>,
    base: String,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }
}

/// On S3 the keys go under the store's own fresh prefix; in a file store under a new one.
fn fixture(b: StoreUnderTest) -> Fixture {
    let base = match b.store.prefix() {
        "" => unique_base(),
        prefix => prefix.to_string(),
    };
    Fixture {
        store: b.store,
        base,
        _dir: b.dir,
    }
}

fn unique_base() -> String {
    format!("suite-{:016x}", rand::random::<u64>())
}

// Each shared case runs as `file::<case>` and `s3::<case>`.
on_both_stores!(
    name = "suite", worker_threads = 4, map = fixture;
    put_head_get_round_trip_metadata_and_encoding,
    create_on_existing_key_is_refused_and_keeps_the_object,
    update_with_the_right_etag_wins_and_a_stale_one_is_refused,
    update_of_a_missing_key_is_refused,
    concurrent_updates_from_one_etag_exactly_one_wins,
    list_by_string_prefix_across_pages_sorted,
    delete_removes_and_missing_delete_is_fine,
    missing_key_is_none,
);

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn is_precondition(r: &Result<String, Error>) -> bool {
    matches!(r, Err(Error::PreconditionFailed { .. }))
}

async fn put_head_get_round_trip_metadata_and_encoding(fx: Fixture) {
    let key = fx.key("snapshots/v1.json.gz");
    let body = Bytes::from_static(b"\x1f\x8b pretend gzip bytes");
    let m = meta(&[("snapsync-version", "1"), ("snapsync-sha256", "abc123")]);
    let etag = fx
        .store
        .put(
            &key,
            body.clone(),
            PutOptions::gzip_json(PutMode::Create).with_metadata(m.clone()),
        )
        .await
        .expect("put");

    let head = fx.store.head(&key).await.expect("head").expect("exists");
    assert_eq!(head.key, key);
    assert_eq!(head.etag, etag);
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(head.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(head.metadata, m);

    let (bytes, got) = fx.store.get(&key).await.expect("get").expect("exists");
    assert_eq!(bytes, body, "bytes come back exactly as put");
    assert_eq!(got, head);

    let plain = fx.key("latest.json");
    fx.store
        .put(
            &plain,
            Bytes::from_static(b"{}"),
            PutOptions::json(PutMode::Create),
        )
        .await
        .expect("put plain");
    let head = fx.store.head(&plain).await.expect("head").expect("exists");
    assert_eq!(head.content_encoding, None);
    assert!(head.metadata.is_empty());
}

async fn create_on_existing_key_is_refused_and_keeps_the_object(fx: Fixture) {
    let key = fx.key("deltas/d1.json");
    let etag = fx
        .store
        .put(
            &key,
            Bytes::from_static(b"first"),
            PutOptions::json(PutMode::Create),
        )
        .await
        .expect("first create");
    let second = fx
        .store
        .put(
            &key,
            Bytes::from_static(b"second"),
            PutOptions::json(PutMode::Create),
        )
        .await;
    assert!(is_precondition(&second), "got {second:?}");
    let (bytes, m) = fx.store.get(&key).await.expect("get").expect("exists");
    assert_eq!(&bytes[..], b"first");
    assert_eq!(m.etag, etag);
}

async fn update_with_the_right_etag_wins_and_a_stale_one_is_refused(fx: Fixture) {
    let key = fx.key("latest.json");
    let v1 = fx
        .store
        .put(
            &key,
            Bytes::from_static(b"v1"),
            PutOptions::json(PutMode::Create),
        )
        .await
        .expect("create");
    let v2 = fx
        .store
        .put(
            &key,
            Bytes::from_static(b"v2"),
            PutOptions::json(PutMode::Update(v1.clone())),
        )
        .await
        .expect("update with the current etag");
    assert_ne!(v1, v2);
    let stale = fx
        .store
        .put(
            &key,
            Bytes::from_static(b"v3"),
            PutOptions::json(PutMode::Update(v1)),
        )
        .await;
    assert!(is_precondition(&stale), "got {stale:?}");
    let (bytes, m) = fx.store.get(&key).await.expect("get").expect("exists");
    assert_eq!(&bytes[..], b"v2");
    assert_eq!(m.etag, v2);
}

async fn update_of_a_missing_key_is_refused(fx: Fixture) {
    let r = fx
        .store
        .put(
            &fx.key("never-written.json"),
            Bytes::from_static(b"x"),
            PutOptions::json(PutMode::Update("\"0123456789abcdef\"".into())),
        )
        .await;
    assert!(is_precondition(&r), "got {r:?}");
}

async fn concurrent_updates_from_one_etag_exactly_one_wins(fx: Fixture) {
    let key = fx.key("latest.json");
    let base = fx
        .store
        .put(
            &key,
            Bytes::from_static(b"base"),
            PutOptions::json(PutMode::Create),
        )
        .await
        .expect("create");
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, key, base, barrier) =
                (fx.store.clone(), key.clone(), base.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let body = Bytes::from(format!("writer {i}"));
                let r = store
                    .put(&key, body.clone(), PutOptions::json(PutMode::Update(base)))
                    .await;
                (body, r)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (body, r) = t.await.expect("task");
        match r {
            Ok(etag) => winners.push((body, etag)),
            Err(Error::PreconditionFailed { .. }) => {}
            Err(e) => panic!("a losing writer must see PreconditionFailed, got {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer commits");
    let (bytes, m) = fx.store.get(&key).await.expect("get").expect("exists");
    assert_eq!(bytes, winners[0].0, "the winner's bytes are stored");
    assert_eq!(m.etag, winners[0].1);
}

async fn list_by_string_prefix_across_pages_sorted(fx: Fixture) {
    // 20 keys under `list/` (three 7-key pages on S3), plus neighbours the prefix must not catch.
    let mut expected = Vec::new();
    for i in (0..20).rev() {
        let key = fx.key(&format!("list/{i:02}.json"));
        fx.store
            .put(
                &key,
                Bytes::from(vec![b'x'; i]),
                PutOptions::json(PutMode::Create),
            )
            .await
            .expect("put");
        expected.push((key, i as u64));
    }
    expected.sort();
    for other in ["listing/a.json", "other/b.json"] {
        fx.store
            .put(
                &fx.key(other),
                Bytes::from_static(b"o"),
                PutOptions::json(PutMode::Create),
            )
            .await
            .expect("put neighbour");
    }

    let got: Vec<(String, u64)> = fx
        .store
        .list(&fx.key("list/"))
        .await
        .expect("list")
        .into_iter()
        .map(|e| (e.key, e.size))
        .collect();
    assert_eq!(got, expected);

    // A plain string prefix, not a directory: `list` also matches `listing/`.
    let keys: Vec<String> = fx
        .store
        .list(&fx.key("list"))
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys.len(), 21);
    assert_eq!(keys.last(), Some(&fx.key("listing/a.json")));
    assert!(fx
        .store
        .list(&fx.key("nothing-here/"))
        .await
        .expect("list")
        .is_empty());
}

async fn delete_removes_and_missing_delete_is_fine(fx: Fixture) {
    let key = fx.key("orphan.json.gz");
    fx.store
        .put(
            &key,
            Bytes::from_static(b"o"),
            PutOptions::json(PutMode::Create),
        )
        .await
        .expect("put");
    fx.store.delete(&key).await.expect("delete");
    assert_eq!(fx.store.head(&key).await.expect("head"), None);
    assert!(fx.store.list(&fx.key("")).await.expect("list").is_empty());
    fx.store.delete(&key).await.expect("deleting again is fine");
    // A deleted key can be created again.
    fx.store
        .put(
            &key,
            Bytes::from_static(b"p"),
            PutOptions::json(PutMode::Create),
        )
        .await
        .expect("re-create");
}

async fn missing_key_is_none(fx: Fixture) {
    let key = fx.key("missing.json");
    assert_eq!(fx.store.head(&key).await.expect("head"), None);
    assert_eq!(fx.store.get(&key).await.expect("get"), None);
}

#[tokio::test]
async fn file_store_refuses_keys_that_leave_its_directory() {
    let fx = fixture(store::file());
    for key in [
        "../escape.json",
        "a/../../escape.json",
        "/abs.json",
        "a//b",
        ".snapsync/meta/x",
    ] {
        let r = fx
            .store
            .put(
                key,
                Bytes::from_static(b"x"),
                PutOptions::json(PutMode::Overwrite),
            )
            .await;
        assert!(
            matches!(r, Err(Error::Store { .. })),
            "{key:?} must be refused, got {r:?}"
        );
        assert!(
            fx.store.get(key).await.is_err(),
            "{key:?} get must be refused"
        );
    }
}

mod s3_only {
    use super::*;

    #[tokio::test]
    async fn wrong_secret_key_says_the_signature_is_wrong_without_the_secret() {
        let Some(env) = s3_env() else { return };
        let access = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
        let real_secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
        let wrong_secret = "WrongSecretKeyDoNotPrint0123456789";
        let opts = S3Options {
            credentials: Some(aws_sdk_s3::config::Credentials::new(
                access,
                wrong_secret,
                None,
                None,
                "store-suite",
            )),
            ..s3_options(&env)
        };
        // connect tolerates a 403 on HeadBucket (write-only credentials exist); the put fails.
        let err = match S3Store::connect(&env.bucket, "", &opts).await {
            Err(e) => e,
            Ok(store) => store
                .put(
                    &format!("{}/x.json", unique_base()),
                    Bytes::from_static(b"x"),
                    PutOptions::json(PutMode::Overwrite),
                )
                .await
                .expect_err("a wrong secret must fail"),
        };
        let msg = err.to_string();
        let all = format!("{msg} {err:?}");
        assert!(
            msg.contains("signature does not match") || msg.contains("credentials"),
            "{msg}"
        );
        assert!(!all.contains(wrong_secret), "secret leaked: {all}");
        assert!(real_secret.is_empty() || !all.contains(&real_secret));
        assert!(!all.contains("Authorization"), "{all}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn missing_bucket_says_the_bucket_does_not_exist() {
        let Some(env) = s3_env() else { return };
        let bucket = format!("snapsync-missing-{:08x}", rand::random::<u32>());
        let err = match S3Store::connect(&bucket, "p", &s3_options(&env)).await {
            Err(e) => e,
            Ok(store) => store
                .get("p/latest.json")
                .await
                .expect_err("a missing bucket must fail"),
        };
        assert!(err.to_string().contains("bucket does not exist"), "{err}");
        assert!(err.to_string().contains(&bucket), "names the bucket: {err}");
    }

    #[tokio::test]
    async fn endpoint_down_fails_fast_saying_cannot_connect() {
        let Some(env) = s3_env() else { return };
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let opts = S3Options {
            endpoint: Some(endpoint.clone()),
            ..s3_options(&env)
        };
        let started = Instant::now();
        let err = match S3Store::connect(&env.bucket, "", &opts).await {
            Err(e) => e,
            Ok(store) => store.head("x").await.expect_err("nothing listens"),
        };
        let elapsed = started.elapsed();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("cannot connect to endpoint {endpoint}")),
            "{msg}"
        );
        assert!(msg.contains("connection refused"), "{msg}");
        assert!(err.is_retryable());
        assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    }

    #[tokio::test]
    async fn gzip_put_stores_content_encoding_exactly_gzip() {
        let Some(env) = s3_env() else { return };
        let store = connect_s3(&env, "", &s3_options(&env)).await;
        let key = format!("{}/snap.json.gz", unique_base());
        let body = Bytes::from_static(b"\x1f\x8bnot really gzip");
        store
            .put(&key, body.clone(), PutOptions::gzip_json(PutMode::Create))
            .await
            .expect("put");
        let raw = store
            .client()
            .head_object()
            .bucket(store.bucket())
            .key(&key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .expect("raw head");
        assert_eq!(raw.content_encoding(), Some("gzip"), "no aws-chunked");
        assert_eq!(raw.content_type(), Some("application/json"));
        // The explicit x-amz-checksum-sha256 reached the server (it verified and kept it).
        use base64::Engine as _;
        use sha2::Digest as _;
        let ours = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
        assert_eq!(raw.checksum_sha256(), Some(ours.as_str()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn multipart_put_round_trips_and_honours_conditions() {
        let Some(env) = s3_env() else { return };
        let mib = 1024 * 1024;
        let opts = S3Options {
            multipart_threshold: Some(5 * mib),
            multipart_part_size: Some(5 * mib),
            ..s3_options(&env)
        };
        let store = connect_s3(&env, "", &opts).await;
        let key = format!("{}/big.json.gz", unique_base());
        // 12 MiB in three parts (5 + 5 + 2), distinct content per part.
        let body: Bytes = (0..12 * mib)
            .map(|i| (i / 7 % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        let m = meta(&[("snapsync-version", "9")]);
        let v1 = store
            .put(
                &key,
                body.clone(),
                PutOptions::gzip_json(PutMode::Create).with_metadata(m.clone()),
            )
            .await
            .expect("multipart create");
        let (bytes, got) = store.get(&key).await.expect("get").expect("exists");
        assert!(bytes == body, "multipart bytes round-trip");
        assert_eq!(got.etag, v1);
        assert_eq!(got.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(got.metadata, m);

        let again = store
            .put(&key, body.clone(), PutOptions::json(PutMode::Create))
            .await;
        assert!(is_precondition(&again), "got {again:?}");
        let stale = store
            .put(
                &key,
                body.clone(),
                PutOptions::json(PutMode::Update("\"stale\"".into())),
            )
            .await;
        assert!(is_precondition(&stale), "got {stale:?}");
        assert_eq!(
            store.head(&key).await.expect("head").map(|h| h.etag),
            Some(v1.clone()),
            "refused multipart puts leave the object alone"
        );

        let body2 = body.slice(mib..);
        let v2 = store
            .put(&key, body2.clone(), PutOptions::json(PutMode::Update(v1)))
            .await
            .expect("multipart update with the right etag");
        let (bytes, got) = store.get(&key).await.expect("get").expect("exists");
        assert!(bytes == body2);
        assert_eq!(got.etag, v2);

        // Refused uploads were aborted, not left as pending parts.
        let pending = store
            .client()
            .list_multipart_uploads()
            .bucket(store.bucket())
            .prefix(&key)
            .send()
            .await
            .expect("list uploads");
        assert!(pending.uploads().is_empty(), "{:?}", pending.uploads());
    }

    #[tokio::test]
    async fn doctor_probe_reports_conditional_writes_honoured() {
        let Some(env) = s3_env() else { return };
        let store = connect_s3(&env, "", &s3_options(&env)).await;
        let base = unique_base();
        let report = probe::probe(&store, &base).await;
        assert!(report.ok(), "{report}");
        assert_eq!(report.conditional_writes, ConditionalWrites::Honoured);
        assert!(report.key.starts_with(&format!("{base}/.snapsync-probe-")));
        assert_eq!(store.head(&report.key).await.expect("head"), None);
    }
}
