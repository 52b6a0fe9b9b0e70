//! Secrets and boundaries: no command ever prints the S3 secret key or a source URL's
//! password or token (success and failure paths, default and debug logs); dataset names and
//! object keys cannot leave the store's prefix; plain http to anything but loopback is refused
//! before any connection; `Debug` of the configuration shows no secret; `--out` writes go to
//! `--out` and nowhere else, whatever is planted beside it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::cli::{sha256_hex, to_result, RunResult, Sandbox};
use crate::common::http::{Fault, HttpServer};
use crate::common::target::Target;
use aws_sdk_s3::config::Credentials;
use bytes::Bytes;
use clap::Parser as _;
use proptest::prelude::*;
use snapsync::cli::Cli;
use snapsync::config::Config;
use snapsync::keys::{validate_dataset_name, DatasetKeys};
use snapsync::store::file::FileStore;
use snapsync::store::{PutMode, PutOptions, Store};

const USER_PASSWORD: &str = "pAsSw0rd-7f3e2b";
const URL_TOKEN: &str = "T0k3n-9c1d44";
const WRONG_SECRET: &str = "WrongSecret-5b7a0e1c9d-NeverPrint";

/// A source URL on the loopback server with a password and a token in it (the test server
/// ignores both).
fn secret_url(server: &HttpServer, path: &str) -> String {
    server
        .url(path)
        .replace("http://", &format!("http://reader:{USER_PASSWORD}@"))
        + &format!("?token={URL_TOKEN}&page=1")
}

fn assert_no_secret(what: &str, r: &RunResult, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !r.stdout.contains(s) && !r.stderr.contains(s),
            "{what}: printed the secret {s:?}\n{r:?}"
        );
    }
}

fn output(mut c: Command) -> RunResult {
    to_result(c.output().expect("snapsync runs"))
}

#[tokio::test]
async fn no_command_prints_a_secret() {
    let Some(target) = Target::s3("security") else {
        return;
    };
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").expect("the S3 secret");
    let secrets = [secret.as_str(), WRONG_SECRET, USER_PASSWORD, URL_TOKEN];
    let server = HttpServer::start();
    server.set(
        "/d.json",
        r#"[{"country":{"key":"a"},"n":1},{"country":{"key":"b"},"n":2}]"#,
    );
    let url = secret_url(&server, "/d.json");
    let down = format!("http://reader:{USER_PASSWORD}@127.0.0.1:9/d.json?token={URL_TOKEN}");
    let db = target.db("secure");
    let mut ran = 0;
    for log in ["info", "debug"] {
        let cmd = |args: &[&str]| {
            let mut c = target.cmd(&db, args);
            c.env("SNAPSYNC_LOG", log);
            c
        };
        let with_url = |sub: &str, extra: &[&str]| {
            let mut args = vec![sub, "--url", &url];
            args.extend_from_slice(extra);
            cmd(&args)
        };
        let mut check = |what: &str, c: Command| {
            let r = output(c);
            assert_no_secret(&format!("{what} (log {log})"), &r, &secrets);
            ran += 1;
            r
        };
        let r = check("run", with_url("run", &[]));
        assert_eq!(r.code, 0, "{r:?}");
        server.set(
            "/d.json",
            format!(r#"[{{"country":{{"key":"a"}},"n":{}}}]"#, log.len()),
        );
        let r = check("run --json", with_url("run", &["--json"]));
        assert_eq!(r.code, 0, "{r:?}");
        check("run (unchanged)", with_url("run", &[]));
        check("status", with_url("status", &[]));
        check("status --json", with_url("status", &["--json"]));
        check("log", with_url("log", &[]));
        check("log --json", with_url("log", &["--json"]));
        let r = check("doctor", with_url("doctor", &[]));
        assert_eq!(r.code, 0, "{r:?}");
        // Failures: the source down, a wrong secret, a URL that does not parse, a refused one.
        let r = check("run, source down", cmd(&["run", "--url", &down]));
        assert_eq!(r.code, 1, "{r:?}");
        // (New data, so that the run has something to publish.)
        server.set(
            "/d.json",
            format!(r#"[{{"country":{{"key":"a"}},"n":{}}}]"#, log.len() + 100),
        );
        let mut wrong = with_url("run", &[]);
        wrong.env("AWS_SECRET_ACCESS_KEY", WRONG_SECRET);
        let r = check("run, wrong secret", wrong);
        assert_eq!(r.code, 1, "{r:?}");
        let mut wrong = with_url("doctor", &[]);
        wrong.env("AWS_SECRET_ACCESS_KEY", WRONG_SECRET);
        check("doctor, wrong secret", wrong);
        let mut wrong = with_url("status", &[]);
        wrong.env("AWS_SECRET_ACCESS_KEY", WRONG_SECRET);
        check("status, wrong secret", wrong);
        let bad = format!("http://reader:{USER_PASSWORD}@[::1/d.json?token={URL_TOKEN}");
        let r = check("run, unparsable URL", cmd(&["run", "--url", &bad]));
        assert_eq!(r.code, 2, "{r:?}");
        let plain = format!("http://reader:{USER_PASSWORD}@example.com/d.json?token={URL_TOKEN}");
        let r = check("run, refused URL", cmd(&["run", "--url", &plain]));
        assert_eq!(r.code, 2, "{r:?}");
        let mut hook = with_url("worker", &[]);
        hook.args(["--notify-url", &plain]);
        let r = check("worker, refused webhook", hook);
        assert_eq!(r.code, 2, "{r:?}");
    }

    // The worker, briefly: it publishes, then stops on SIGTERM.
    let worker_data = r#"[{"country":{"key":"w"},"n":0}]"#;
    server.set("/d.json", worker_data);
    let worker_sha = crate::common::history::sha_of(worker_data.as_bytes(), "/country/key");
    let child = target
        .cmd(
            &db,
            &[
                "worker",
                "--url",
                &url,
                "--schedule",
                "*/1 * * * * *",
                "--heartbeat",
                "1",
            ],
        )
        .env("SNAPSYNC_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let store = target.store().await;
    let keys = DatasetKeys::new(store.prefix(), "covid-countries");
    let t = Instant::now();
    loop {
        let latest = store.head(&keys.latest()).await.unwrap();
        let is_w = latest
            .and_then(|m| snapsync::manifest::Entry::from_metadata(&m.metadata))
            .is_some_and(|e| e.sha256 == worker_sha);
        if is_w || t.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let r = to_result(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("run finished"), "{r:?}");
    assert_no_secret("worker", &r, &secrets);
    ran += 1;

    // Nor does the local database keep them.
    for path in [db.clone(), db.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            for s in &secrets {
                assert!(!text.contains(s), "{} holds {s:?}", path.display());
            }
        }
    }
    eprintln!("security: {ran} command runs, no secret in any output");
}

#[test]
fn dataset_names_and_store_prefixes_cannot_escape() {
    let target = Target::file();
    let server = HttpServer::start();
    server.set("/d.json", "[1]");
    let url = server.url("/d.json");
    let escapes = [
        ("--dataset", "../evil"),
        ("--dataset", ".."),
        ("--dataset", "."),
        ("--dataset", "/tmp/evil"),
        ("--dataset", "a/../../evil"),
        ("--dataset", "evil\\..\\x"),
        ("--dataset", "Evil"),
        ("--dataset", ""),
        ("--dataset", ".snapsync"),
        ("--dataset", ".hidden"),
        ("--store", "s3://bucket-name/../evil"),
        ("--store", "s3://bucket-name/a/./b"),
        ("--store", "s3://bucket-name/a//b"),
        ("--store", "s3://../evil"),
    ];
    for (flag, value) in escapes {
        let r = output(target.cmd(&target.db("x"), &["run", "--url", &url, flag, value]));
        assert_eq!(r.code, 2, "{flag} {value:?}: {r:?}");
        assert!(r.stderr.contains("configuration"), "{r:?}");
    }
    // A NUL cannot be passed on a command line; it can be written in a file.
    let config = target.dir.path().join("nul.toml");
    std::fs::write(
        &config,
        format!("[[dataset]]\nname = \"a\\u0000b\"\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let r = output(target.cmd(
        &target.db("x"),
        &["run", "--config", config.to_str().unwrap()],
    ));
    assert_eq!(r.code, 2, "{r:?}");
    // Nothing was written anywhere: not even the store directory.
    let entries: Vec<_> = std::fs::read_dir(target.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".toml") && !n.starts_with("x.db"))
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
}

fn arb_key() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(
            &[
                "..",
                ".",
                "",
                "a",
                "b.json",
                "/",
                "\0",
                ".snapsync",
                "meta",
                "\\",
                "..\\x",
                "é",
                " ",
                "~",
            ][..],
        ),
        1..6,
    )
    .prop_map(|parts| parts.join("/"))
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any key, whatever it holds, either is refused or names a file inside the store
    /// directory (never its private state).
    #[test]
    fn file_store_keys_stay_inside_the_store(key in arb_key()) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = FileStore::open(&root).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let put = rt.block_on(store.put(
            &key,
            Bytes::from_static(b"x"),
            PutOptions::json(PutMode::Overwrite),
        ));
        let _ = rt.block_on(store.get(&key));
        let _ = rt.block_on(store.delete(&key));
        let outside: Vec<_> = files_under(dir.path())
            .into_iter()
            .filter(|p| !p.starts_with(&root))
            .collect();
        prop_assert!(outside.is_empty(), "{key:?} wrote {outside:?}");
        if put.is_ok() {
            prop_assert!(!key.split('/').any(|s| s == ".." || s == "." || s == ".snapsync"), "{key:?}");
            prop_assert!(!key.starts_with('/') && !key.contains('\0'), "{key:?}");
        }
    }

    /// Every accepted dataset name keeps all its objects under `{prefix}/{name}/`.
    #[test]
    fn accepted_names_keep_their_objects_under_the_prefix(name in "[a-z0-9._/\\\\-]{0,8}") {
        if validate_dataset_name(&name).is_ok() {
            let keys = DatasetKeys::new("pre/fix", &name);
            let t = time::OffsetDateTime::UNIX_EPOCH;
            let sha = "0".repeat(64);
            for key in [keys.latest(), keys.manifest(), keys.snapshot(t, &sha), keys.delta(t, &sha)] {
                let rest = key.strip_prefix(&format!("pre/fix/{name}/"));
                prop_assert!(rest.is_some(), "{key}");
                prop_assert!(!key.split('/').any(|s| s == ".." || s == "." || s.is_empty()), "{key}");
            }
        }
    }
}

#[test]
fn plain_http_off_loopback_is_refused_before_connecting() {
    let target = Target::file();
    for url in [
        "http://example.com/d.json",
        "http://10.1.2.3/d.json",
        "http://192.168.0.1/d.json",
        "http://0.0.0.0:9/d.json",
        "http://[::ffff:10.0.0.1]/d.json",
        "http://localhost.example.com/d.json",
        "http://127.0.0.1.example.com/d.json",
        "ftp://127.0.0.1/d.json",
        "gopher://127.0.0.1/d.json",
    ] {
        let t = Instant::now();
        let r = output(target.cmd(&target.db("x"), &["run", "--url", url]));
        assert_eq!(r.code, 2, "{url}: {r:?}");
        assert!(
            r.stderr.contains("loopback") || r.stderr.contains("unsupported scheme"),
            "{url}: {r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{url}");
    }
    // The same from a configuration file, and for the webhook.
    let config = target.dir.path().join("plain.toml");
    std::fs::write(
        &config,
        "[[dataset]]\nname = \"a\"\nurl = \"http://example.com/a.json\"\n",
    )
    .unwrap();
    let r = output(target.cmd(
        &target.db("x"),
        &["run", "--config", config.to_str().unwrap()],
    ));
    assert_eq!(r.code, 2, "{r:?}");
    let r = output(target.cmd(
        &target.db("x"),
        &[
            "worker",
            "--url",
            "http://127.0.0.1:9/d.json",
            "--notify-url",
            "http://example.com/hook",
        ],
    ));
    assert_eq!(r.code, 2, "{r:?}");
    // Loopback in all its spellings is accepted (resolution only: nothing is fetched).
    for url in [
        "http://127.0.0.1:9/d.json",
        "http://127.1.2.3:9/d.json",
        "http://localhost:9/d.json",
        "http://[::1]:9/d.json",
        "https://example.com/d.json",
    ] {
        let cli = Cli::try_parse_from(["snapsync", "--url", url, "run"]).unwrap();
        assert!(Config::resolve(&cli.global).is_ok(), "{url}");
    }
    // Plain http elsewhere only when asked for.
    let cli = Cli::try_parse_from([
        "snapsync",
        "--url",
        "http://example.com/d.json",
        "--allow-insecure-http",
        "run",
    ])
    .unwrap();
    assert!(Config::resolve(&cli.global).is_ok());
}

#[test]
fn debug_of_the_configuration_shows_no_secret() {
    let text = format!(
        "[store]\nurl = \"s3://bucket-name/p\"\nendpoint = \"http://admin:{USER_PASSWORD}@127.0.0.1:8333\"\n\
         [[dataset]]\nname = \"a\"\nurl = \"https://reader:{USER_PASSWORD}@example.com/a.json?token={URL_TOKEN}\"\n\
         [[dataset]]\nname = \"b\"\nurl = \"https://example.com/b.json?api_key={URL_TOKEN}&sig={URL_TOKEN}\"\n"
    );
    let cli = Cli::try_parse_from(["snapsync", "run"]).unwrap();
    let mut config =
        Config::from_text(&cli.global, &text, Path::new("snapsync.toml")).expect("valid");
    config.s3.credentials = Some(Credentials::new(
        "AKIDEXAMPLE",
        WRONG_SECRET,
        Some(format!("session-{URL_TOKEN}")),
        None,
        "test",
    ));
    let shown = format!("{config:?} {config:#?}");
    for s in [WRONG_SECRET, USER_PASSWORD, URL_TOKEN] {
        assert!(!shown.contains(s), "Debug shows {s:?}: {shown}");
    }
    assert!(shown.contains("example.com/a.json"), "{shown}");
}

/// How `restore --out`/`pull --out` could be sent to write somewhere else.
#[derive(Debug, Clone, Copy)]
enum Plant {
    /// A symlink at the temporary name the old code always used (`.NAME.snapsync-tmp`, and
    /// the same for the sidecar `NAME.snapsync.json`).
    PredictableTemporary,
    /// `--out` itself is a symlink: the write replaces the link, not the file it names.
    OutIsASymlink,
}

#[rstest::rstest]
#[case::restore_beside_a_planted_temporary("restore", Plant::PredictableTemporary)]
#[case::pull_beside_a_planted_temporary("pull", Plant::PredictableTemporary)]
#[case::restore_to_a_symlink("restore", Plant::OutIsASymlink)]
#[case::pull_to_a_symlink("pull", Plant::OutIsASymlink)]
fn out_writes_never_follow_a_planted_symlink(#[case] command: &str, #[case] plant: Plant) {
    let server = HttpServer::start();
    let sb = Sandbox::new();
    let url = server.url("/d.json");
    let mut shas = Vec::new();
    for n in 1..=2 {
        let body = format!(r#"[{{"country":{{"key":"k{n}"}},"n":{n}}}]"#);
        server.set("/d.json", body);
        let r = sb.sync(&url, &["--key", "/country/key"]);
        assert_eq!(r.code, 0, "{r:?}");
        shas.push(r.field("sha256").unwrap());
    }
    let out = sb.path().join("out.json");
    let victims = sb.path().join("victims");
    std::fs::create_dir(&victims).unwrap();
    let mut planted = Vec::new();
    let mut plant_link = |link: std::path::PathBuf, victim: &str| {
        let victim = victims.join(victim);
        std::fs::write(&victim, b"precious, not snapsync's").unwrap();
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        planted.push(victim);
    };
    match plant {
        Plant::PredictableTemporary => {
            plant_link(sb.path().join(".out.json.snapsync-tmp"), "data");
            plant_link(
                sb.path().join(".out.json.snapsync.json.snapsync-tmp"),
                "sidecar",
            );
        }
        Plant::OutIsASymlink => plant_link(out.clone(), "data"),
    }
    let out_s = out.to_str().unwrap();
    let r = match command {
        "restore" => sb.run(&[
            "restore",
            "--version",
            "1",
            "--out",
            out_s,
            "--key",
            "/country/key",
            // A planted link at --out is an existing file: replaced (not followed) when asked.
            "--force",
        ]),
        _ => sb.run(&["pull", "--out", out_s, "--key", "/country/key"]),
    };
    assert_eq!(r.code, 0, "{r:?}");
    for victim in &planted {
        assert_eq!(
            std::fs::read(victim).unwrap(),
            b"precious, not snapsync's",
            "{command} wrote through a symlink into {}",
            victim.display()
        );
    }
    let meta = std::fs::symlink_metadata(&out).unwrap();
    assert!(
        meta.file_type().is_file(),
        "--out is not a regular file: {meta:?}"
    );
    let want = if command == "restore" {
        &shas[0]
    } else {
        &shas[1]
    };
    assert_eq!(&sha256_hex(&std::fs::read(&out).unwrap()), want);
    // Nothing of the write is left behind but the file (and pull's sidecar); the planted
    // links stay where they were.
    let mut names: Vec<String> = std::fs::read_dir(sb.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("out.json"))
        .collect();
    names.sort();
    let mut expected = vec!["out.json".to_string()];
    if command == "pull" {
        expected.push("out.json.snapsync.json".into());
    }
    if let Plant::PredictableTemporary = plant {
        expected.push(".out.json.snapsync-tmp".into());
        expected.push(".out.json.snapsync.json.snapsync-tmp".into());
    }
    expected.sort();
    assert_eq!(names, expected);
}

const CODE_SECRET: &str = "CodeSecret-41a9";
const JWT_SECRET: &str = "JwtSecret-77c0";
const REDIRECT_PASSWORD: &str = "RedirPass-0d3f";
/// A path segment that is a credential (a hex digest, as capability URLs use).
const PATH_TOKEN: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const ENDPOINT_PASSWORD: &str = "EndpointPass-5e21";

/// A source URL with `?code=` (Azure Functions) and `?jwt=` values and a token in its path,
/// fetched at trace level through a redirect to `user:password@` on the same server: no secret
/// shows in any output, the database, or the worker's webhook.
#[test]
fn no_secret_shows_at_trace_level_through_a_redirect() {
    let secrets = [CODE_SECRET, JWT_SECRET, REDIRECT_PASSWORD, PATH_TOKEN];
    let server = HttpServer::start();
    let path = format!("/v1/{PATH_TOKEN}/stats.json");
    let url = format!("{}?code={CODE_SECRET}&jwt={JWT_SECRET}", server.url(&path));
    let target = server
        .url("/final.json")
        .replace("http://", &format!("http://reader:{REDIRECT_PASSWORD}@"));
    let redirect = || Fault::Redirect { to: target.clone() };
    server.set("/final.json", r#"[{"country":{"key":"a"},"n":1}]"#);
    let sb = Sandbox::new();
    let cmd = |args: &[&str]| {
        let mut c = sb.cmd(args);
        c.env("RUST_LOG", "trace");
        c
    };
    let check = |what: &str, r: &RunResult| {
        for s in &secrets {
            assert!(
                !r.stdout.contains(s) && !r.stderr.contains(s),
                "{what} printed {s:?}\n{r:?}"
            );
        }
    };

    server.push_faults(&path, [redirect()]);
    let r = output(cmd(&["run", "--url", &url]));
    check("run", &r);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    // The redirect was followed, without telling its target the URL it came from (no
    // `Referer` with the query's secrets), and the log really was at trace level.
    assert_eq!(server.requests("/final.json"), 1);
    let sent = format!("{:?}", server.last_headers("/final.json"));
    for s in &secrets {
        assert!(
            !sent.contains(s),
            "the redirect target was sent {s:?}: {sent}"
        );
    }
    assert!(
        r.stderr.contains("level=debug") || r.stderr.contains("level=trace"),
        "{r:?}"
    );
    let status = output(cmd(&["status", "--json", "--url", &url]));
    check("status --json", &status);
    assert!(
        status
            .stdout
            .contains("/v1/REDACTED/stats.json?code=REDACTED&jwt=REDACTED"),
        "{status:?}"
    );
    check("status", &output(cmd(&["status", "--url", &url])));
    server.push_faults(&path, [redirect()]);
    check("doctor", &output(cmd(&["doctor", "--url", &url])));
    // A failure names the URL in the summary, the log and the runs table.
    server.push_faults(&path, [redirect(), redirect()]);
    server.push_faults("/final.json", [Fault::Status(500), Fault::Status(500)]);
    let r = output(cmd(&["run", "--url", &url, "--retry-backoff-ms", "1"]));
    check("run, failing", &r);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.summary().contains("code=REDACTED"), "{r:?}");

    // The worker's webhook reports a failure with the URL in it.
    server.remove(&path);
    let mut worker = cmd(&[
        "worker",
        "--url",
        &url,
        "--schedule",
        "*/1 * * * * *",
        "--notify-url",
        &server.url("/hook"),
    ]);
    let child = worker
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while server.bodies("/hook").is_empty() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let r = to_result(child.wait_with_output().unwrap());
    check("worker", &r);
    let hooks = server.bodies("/hook");
    assert!(!hooks.is_empty(), "no webhook call: {r:?}");
    for body in &hooks {
        let body = String::from_utf8_lossy(body);
        assert!(
            body.contains("HTTP 404") && body.contains("REDACTED"),
            "{body}"
        );
        for s in &secrets {
            assert!(!body.contains(s), "the webhook body holds {s:?}: {body}");
        }
    }

    // The database (sources, runs' errors) keeps none of them either.
    for file in [sb.db(), sb.db().with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            let text = String::from_utf8_lossy(&bytes);
            for s in &secrets {
                assert!(!text.contains(s), "{} holds {s:?}", file.display());
            }
        }
    }
}

/// `AWS_ENDPOINT_URL` with a password (aws-config logs the endpoint at debug): not printed at
/// trace level, whether the S3 server is there or not.
#[test]
fn an_endpoint_password_never_shows_at_trace_level() {
    let sb = Sandbox::new();
    let server = HttpServer::start();
    server.set("/d.json", r#"[{"country":{"key":"a"},"n":1}]"#);
    let endpoint = format!("http://admin:{ENDPOINT_PASSWORD}@127.0.0.1:9");
    let r = output({
        let mut c = sb.cmd(&[
            "run",
            "--url",
            &server.url("/d.json"),
            "--store",
            "s3://bucket-name/p",
        ]);
        c.env("RUST_LOG", "trace")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1");
        c
    });
    assert_eq!(r.code, 1, "{r:?}");
    for s in [ENDPOINT_PASSWORD, WRONG_SECRET] {
        assert!(
            !r.stdout.contains(s) && !r.stderr.contains(s),
            "printed {s:?}\n{r:?}"
        );
    }
}

/// A `./snapsync.toml` in the working directory is read, and says so; its `file://` sources
/// (and joined tables) may not reach outside its directory unless the command line allows it.
#[test]
fn a_config_file_is_logged_and_cannot_read_files_outside_its_directory() {
    let sb = Sandbox::new();
    let outside = tempfile::tempdir().unwrap();
    let secret_file = outside.path().join("credentials.json");
    std::fs::write(&secret_file, r#"[{"country":{"key":"aws"},"secret":"x"}]"#).unwrap();
    std::fs::write(
        sb.path().join("inside.json"),
        r#"[{"country":{"key":"a"},"n":1}]"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&secret_file, sb.path().join("link.json")).unwrap();
    let write_config = |url: &str| {
        std::fs::write(
            sb.path().join("snapsync.toml"),
            format!("[[dataset]]\nname = \"planted\"\nurl = \"{url}\"\n"),
        )
        .unwrap();
    };
    let refused = |url: &str| {
        write_config(url);
        let r = sb.run(&["run"]);
        assert_eq!(r.code, 2, "{url}: {r:?}");
        assert!(
            r.stderr
                .contains("is outside the configuration file's directory")
                && r.stderr.contains("--allow-files-outside"),
            "{url}: {r:?}"
        );
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
        assert!(!sb.store_dir().exists(), "{url}: something was written");
    };
    refused(&format!("file://{}", secret_file.display()));
    refused("file://link.json");
    let up = format!(
        "file://../{}/credentials.json",
        outside.path().file_name().unwrap().to_string_lossy()
    );
    if outside.path().parent() == sb.path().parent() {
        refused(&up);
    }
    // A joined table outside is refused the same way.
    std::fs::write(
        sb.path().join("snapsync.toml"),
        format!(
            "[[dataset]]\nname = \"planted\"\nurl = \"file://inside.json\"\n\
             [[dataset.transform]]\njoin = {{ source = \"{}\", format = \"json\", key = \"k\", on = \"/country/key\", fields = {{ s = \"secret\" }} }}\n",
            secret_file.display()
        ),
    )
    .unwrap();
    let r = sb.run(&["run"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("join") && r.stderr.contains("outside"),
        "{r:?}"
    );

    // Its own neighbours are fine, and the log names the file it read.
    write_config("file://inside.json");
    let r = sb.run(&["run"]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let loaded: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("loaded configuration"))
        .collect();
    assert_eq!(loaded.len(), 1, "{r:?}");
    assert!(
        loaded[0].contains("level=info")
            && loaded[0].contains("snapsync.toml")
            && loaded[0].contains("found in the current directory"),
        "{r:?}"
    );
    // Allowed from the command line or the environment (never from the file itself).
    write_config(&format!("file://{}", secret_file.display()));
    let r = sb.run(&["run", "--allow-files-outside"]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let mut c = sb.cmd(&["run"]);
    c.env("SNAPSYNC_ALLOW_FILES_OUTSIDE", "true");
    assert_eq!(output(c).code, 0);
    // A file:// URL given on the command line may be anywhere.
    std::fs::remove_file(sb.path().join("snapsync.toml")).unwrap();
    let r = sb.run(&["run", "--url", &format!("file://{}", secret_file.display())]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// clap prints an option's environment value in `--help`; the URLs that can carry a secret
/// (a source's `?token=`, an endpoint's `user:password@`, a webhook's path) must not show.
#[test]
fn help_shows_no_secret_from_the_environment() {
    let sb = Sandbox::new();
    let secrets = [
        "SrcTokenSecret",
        "EndpointPassSecret",
        "HookPathSecret",
        "PingSecret",
    ];
    for args in [&["--help"][..], &["run", "--help"], &["worker", "--help"]] {
        let mut c = sb.cmd(args);
        c.env(
            "SNAPSYNC_URL",
            "https://example.org/d.json?token=SrcTokenSecret",
        )
        .env(
            "AWS_ENDPOINT_URL",
            "http://user:EndpointPassSecret@127.0.0.1:9",
        )
        .env(
            "SNAPSYNC_NOTIFY_URL",
            "https://hooks.slack.com/services/HookPathSecret",
        )
        .env("SNAPSYNC_HEARTBEAT_URL", "https://hc-ping.com/PingSecret");
        let r = output(c);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert_no_secret(&format!("{args:?}"), &r, &secrets);
    }
}
