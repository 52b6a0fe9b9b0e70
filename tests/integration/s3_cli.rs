//! The `snapsync` binary against a real S3-compatible server (SeaweedFS on 127.0.0.1): a
//! history published to S3, `doctor`, and the failures a user hits first — wrong secret, missing
//! bucket, endpoint down — each one line, exit 1, nothing published, no secret printed.

use crate::common::cli::{RunResult, Sandbox};
use crate::common::history::small as data;
use crate::common::http::HttpServer;
use crate::common::s3::{s3_env, S3Env};

const SECRET_ENV: &str = "AWS_SECRET_ACCESS_KEY";

fn s3_run(
    sb: &Sandbox,
    env: &S3Env,
    store: &str,
    args: &[&str],
    overrides: &[(&str, &str)],
) -> RunResult {
    let mut c = sb.cmd(args);
    c.env("SNAPSYNC_STORE", store)
        .env("AWS_ENDPOINT_URL", &env.endpoint)
        .env("AWS_REGION", &env.region)
        .env(
            "AWS_ACCESS_KEY_ID",
            std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        )
        .env(SECRET_ENV, std::env::var(SECRET_ENV).unwrap_or_default());
    for (k, v) in overrides {
        c.env(k, v);
    }
    crate::common::cli::to_result(c.output().expect("snapsync runs"))
}

fn prefix() -> String {
    format!("cli-{:016x}", rand::random::<u64>())
}

#[test]
fn a_history_in_s3_with_log_and_status() {
    let Some(env) = s3_env() else { return };
    let server = HttpServer::start();
    server.set("/d.json", data(5, 1));
    let sb = Sandbox::new();
    let store = format!("s3://{}/{}", env.bucket, prefix());
    let url = server.url("/d.json");
    let r = s3_run(&sb, &env, &store, &["run", "--url", &url], &[]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    server.set("/d.json", data(6, 2));
    let r = s3_run(&sb, &env, &store, &["run", "--url", &url], &[]);
    assert_eq!(
        (r.code, r.outcome(), r.field("version").as_deref()),
        (0, "changed", Some("2")),
        "{r:?}"
    );
    let log = s3_run(&sb, &env, &store, &["log"], &[]);
    assert_eq!(log.stdout.lines().count(), 2, "{log:?}");
    assert!(log.stdout.starts_with("v2 "), "{log:?}");
    let status = s3_run(&sb, &env, &store, &["status", "--url", &url], &[]);
    assert!(
        status.stdout.contains("local state:   agrees"),
        "{status:?}"
    );
}

#[test]
fn doctor_checks_the_real_server() {
    let Some(env) = s3_env() else { return };
    let server = HttpServer::start();
    server.set("/d.json", data(3, 1));
    let sb = Sandbox::new();
    let store = format!("s3://{}/{}", env.bucket, prefix());
    let r = s3_run(
        &sb,
        &env,
        &store,
        &["doctor", "--url", &server.url("/d.json")],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("conditional  writes honoured"), "{r:?}");
    assert!(r.stdout.contains("credentials  resolved"), "{r:?}");
    assert!(r.stdout.contains("3 records"), "{r:?}");
    let secret = std::env::var(SECRET_ENV).unwrap();
    assert!(
        !r.stdout.contains(&secret) && !r.stderr.contains(&secret),
        "{r:?}"
    );
}

#[test]
fn wrong_secret_fails_in_one_line_without_printing_it() {
    let Some(env) = s3_env() else { return };
    let server = HttpServer::start();
    server.set("/d.json", data(3, 1));
    let sb = Sandbox::new();
    let store = format!("s3://{}/{}", env.bucket, prefix());
    let secret = "Wr0ngSecretKeyThatMustNeverBePrinted";
    let r = s3_run(
        &sb,
        &env,
        &store,
        &["run", "--url", &server.url("/d.json")],
        &[(SECRET_ENV, secret)],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let last = r.stderr.lines().last().unwrap_or("").to_string() + r.summary();
    assert!(
        last.to_lowercase().contains("signature") || last.contains("access denied"),
        "{r:?}"
    );
    assert!(
        !r.stdout.contains(secret) && !r.stderr.contains(secret),
        "{r:?}"
    );
}

#[test]
fn missing_bucket_says_so() {
    let Some(env) = s3_env() else { return };
    let sb = Sandbox::new();
    let r = s3_run(
        &sb,
        &env,
        "s3://no-such-bucket-snapsync/x",
        &["run", "--url", "http://127.0.0.1:9/d.json"],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("bucket does not exist"), "{r:?}");
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.starts_with("snapsync:"))
            .count(),
        1,
        "{r:?}"
    );
}

#[test]
fn endpoint_down_fails_fast() {
    let Some(env) = s3_env() else { return };
    let sb = Sandbox::new();
    let down = S3Env {
        endpoint: "http://127.0.0.1:9".into(),
        bucket: env.bucket.clone(),
        region: env.region.clone(),
    };
    let t = std::time::Instant::now();
    let r = s3_run(
        &sb,
        &down,
        &format!("s3://{}/x", env.bucket),
        &["run", "--url", "http://127.0.0.1:9/d.json"],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cannot connect"), "{r:?}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
}

/// The source has not changed since the last run, so the run has nothing to publish; a wrong
/// secret must still fail it (one cheap request per process), not wait for the next change.
#[test]
fn wrong_secret_is_noticed_while_the_source_is_unchanged() {
    let Some(env) = s3_env() else { return };
    let server = HttpServer::start();
    server.set("/d.json", data(3, 1));
    let sb = Sandbox::new();
    let store = format!("s3://{}/{}", env.bucket, prefix());
    let url = server.url("/d.json");
    let r = s3_run(&sb, &env, &store, &["run", "--url", &url], &[]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let r = s3_run(&sb, &env, &store, &["run", "--url", &url], &[]);
    assert_eq!((r.code, r.outcome()), (0, "not-modified"), "{r:?}");
    let secret = "Wr0ngSecretKeyThatMustNeverBePrinted";
    let r = s3_run(
        &sb,
        &env,
        &store,
        &["run", "--url", &url],
        &[(SECRET_ENV, secret)],
    );
    assert_eq!(r.code, 1, "a wrong secret went unnoticed: {r:?}");
    let last = r.stderr.lines().last().unwrap_or("").to_string() + r.summary();
    assert!(
        last.to_lowercase().contains("signature") || last.contains("access denied"),
        "{r:?}"
    );
    assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret));
}

/// With no credentials anywhere, every command that touches S3 says so in the doctor's words,
/// not with the last provider's complaint ("IMDS is disabled…", a metadata timeout), and
/// without a page of the credential chain's debug output.
#[test]
fn missing_credentials_are_named_by_every_command() {
    let Some(env) = s3_env() else { return };
    let sb = Sandbox::new();
    let store = format!("s3://{}/{}", env.bucket, prefix());
    let out = sb.path().join("out.json");
    let out = out.to_str().unwrap();
    let commands: [&[&str]; 6] = [
        &["run", "--url", "http://127.0.0.1:9/d.json"],
        &["log"],
        &["status"],
        &["verify"],
        &["pull", "--out", out],
        &["restore", "--out", out, "--version", "1"],
    ];
    // The instance metadata service turned off, or (as on Heroku) not answering.
    let imds: [(&str, &str); 2] = [
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"),
    ];
    for (key, value) in imds {
        for args in commands {
            let mut c = sb.cmd(args);
            c.env("SNAPSYNC_STORE", &store)
                .env("AWS_ENDPOINT_URL", &env.endpoint)
                .env("AWS_REGION", &env.region)
                .env("HOME", sb.path())
                .env(key, value);
            let r = crate::common::cli::to_result(c.output().expect("snapsync runs"));
            assert_eq!(r.code, 1, "{args:?} {key}: {r:?}");
            let last = r.stderr.lines().last().unwrap_or_default();
            assert!(
                last.contains("no AWS credentials found: set AWS_ACCESS_KEY_ID"),
                "{args:?} {key}: {r:?}"
            );
            assert!(!r.stderr.contains("IMDS"), "{args:?} {key}: {r:?}");
        }
    }
}

/// The history page and the change table on S3, as a browser and DuckDB fetch them: the page as
/// `text/html` with a short `Cache-Control`, the table as Parquet.
#[test]
fn the_views_are_served_with_their_types_from_s3() {
    let Some(env) = s3_env() else { return };
    let server = HttpServer::start();
    server.set("/d.json", data(5, 1));
    let sb = Sandbox::new();
    let prefix = prefix();
    let store = format!("s3://{}/{prefix}", env.bucket);
    let url = server.url("/d.json");
    for day in [1, 2] {
        server.set("/d.json", data(5, day));
        let r = s3_run(&sb, &env, &store, &["run", "--url", &url], &[]);
        assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
        assert!(!r.stderr.contains("was not written"), "{r:?}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s3 =
            crate::common::store::connect_s3(&env, &prefix, &crate::common::s3::s3_options(&env))
                .await;
        use snapsync::store::Store as _;
        let page = s3
            .head(&format!("{prefix}/covid-countries/index.html"))
            .await
            .unwrap()
            .expect("index.html is published");
        assert_eq!(
            page.content_type.as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(page.cache_control.as_deref(), Some("max-age=60"));
        let (html, _) = s3
            .get(&format!("{prefix}/covid-countries/index.html"))
            .await
            .unwrap()
            .unwrap();
        let data = snapsync::views::page::parse(&html).expect("the page carries its data");
        assert_eq!(data.versions.len(), 2);
        assert!(data.versions[1].changes.is_some(), "{data:?}");
        let table = s3
            .head(&format!(
                "{prefix}/covid-countries/changes/version=2/part-0.parquet"
            ))
            .await
            .unwrap()
            .expect("the change table of version 2");
        assert_eq!(
            table.content_type.as_deref(),
            Some("application/vnd.apache.parquet")
        );
        assert!(table.size > 0);
    });
}
