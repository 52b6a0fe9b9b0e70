//! Every bad answer an upstream can give, against a real HTTP(S) server on 127.0.0.1: the run
//! exits 1 with one summary line that names the dataset, the URL and what was wrong in plain
//! words, and the store and the database's versions stay byte for byte as they were.
//!
//! Each test starts from a store that already has version 1 (four records), so "publishes
//! nothing" is a real claim. Timeouts, retries and backoff are set small through the same
//! `SNAPSYNC_*` variables a user would set, to keep every test well under a few seconds.

use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::common::cli::{to_result, RunResult, Sandbox};
use crate::common::http::{Fault, HttpServer, TlsServer};
use rstest::rstest;

const DATASET: &str = "covid-countries";
const PATH: &str = "/stats.json";
/// Read timeout of the tests: long enough for a loaded CI machine, short enough to wait out.
const TIMEOUT_SECS: &str = "1";
const STALL: Duration = Duration::from_secs(3);

fn records(keys: &[&str]) -> Vec<u8> {
    let items: Vec<String> = keys
        .iter()
        .map(|k| format!(r#"{{"country":{{"key":"{k}","name":"{k}"}},"cases":1}}"#))
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn four() -> Vec<u8> {
    records(&["austria", "belgium", "chile", "denmark"])
}

/// Rows of the database that a failed run must not touch (everything but `runs`).
fn db_state(sb: &Sandbox) -> Vec<String> {
    let db = rusqlite::Connection::open(sb.db()).expect("open the database");
    let mut rows = Vec::new();
    for (table, order) in [
        ("datasets", "id"),
        ("versions", "dataset_id, version"),
        ("body_cache", "dataset_id"),
    ] {
        let mut stmt = db
            .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .unwrap();
        let n = stmt.column_count();
        let mut q = stmt.query([]).unwrap();
        while let Some(row) = q.next().unwrap() {
            let values: Vec<rusqlite::types::Value> = (0..n).map(|i| row.get(i).unwrap()).collect();
            rows.push(format!("{table}: {values:?}"));
        }
    }
    rows
}

/// The last run's recorded error.
fn last_run_error(sb: &Sandbox) -> Option<String> {
    let db = rusqlite::Connection::open(sb.db()).expect("open the database");
    db.query_row("SELECT error FROM runs ORDER BY id DESC LIMIT 1", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// A server serving four records at [`PATH`], and a sandbox that has published them as v1.
struct World {
    server: HttpServer,
    sb: Sandbox,
    url: String,
    store: Vec<(String, Vec<u8>)>,
    db: Vec<String>,
}

impl World {
    fn new() -> World {
        let server = HttpServer::start();
        server.set(PATH, four());
        let sb = Sandbox::new();
        let url = server.url(PATH);
        let r = run(&sb, &url, &[]);
        assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
        let (store, db) = (sb.store_files(), db_state(&sb));
        World {
            server,
            sb,
            url,
            store,
            db,
        }
    }

    fn run(&self, extra: &[&str]) -> RunResult {
        run(&self.sb, &self.url, extra)
    }

    /// Exit 1, one summary line `covid-countries failed error="…"` naming the URL (when
    /// `names_url`) and containing every one of `words`; store and database untouched.
    fn assert_failed_cleanly(&self, r: &RunResult, words: &[&str], names_url: bool) {
        assert_failed(r, names_url.then_some(self.url.as_str()), words);
        assert_eq!(
            self.sb.store_files(),
            self.store,
            "the store changed: {r:?}"
        );
        assert_eq!(db_state(&self.sb), self.db, "the database changed: {r:?}");
        let recorded = last_run_error(&self.sb).unwrap_or_default();
        assert!(
            r.summary().contains(&format!("{recorded:?}")),
            "the run's row has the same error: {recorded:?} / {r:?}"
        );
    }
}

/// `snapsync run --url URL` with small timeouts, no retries and a short backoff (override them
/// in `extra`).
fn run(sb: &Sandbox, url: &str, extra: &[&str]) -> RunResult {
    let mut args = vec!["run", "--url", url];
    args.extend_from_slice(extra);
    let mut cmd = sb.cmd(&args);
    cmd.env("SNAPSYNC_TIMEOUT", TIMEOUT_SECS)
        .env("SNAPSYNC_RETRIES", "0")
        .env("SNAPSYNC_RETRY_BACKOFF_MS", "20");
    to_result(cmd.output().expect("snapsync runs"))
}

fn assert_failed(r: &RunResult, url: Option<&str>, words: &[&str]) {
    assert_eq!(r.code, 1, "{r:?}");
    let summary = r.summary();
    assert!(
        summary.starts_with(&format!("{DATASET} failed error=\"")),
        "{r:?}"
    );
    assert_eq!(r.stdout.lines().count(), 1, "one line: {r:?}");
    assert!(
        !summary.contains("\\n") && !summary.contains("\\r"),
        "the error is one line: {r:?}"
    );
    if let Some(url) = url {
        assert!(summary.contains(url), "the error names {url}: {r:?}");
    }
    for w in words {
        assert!(summary.contains(w), "the error says {w:?}: {r:?}");
    }
    assert!(!r.stderr.contains("panicked"), "{r:?}");
}

fn respond(body: impl Into<Vec<u8>>) -> Fault {
    Fault::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into(),
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `[0,0,0,…]` of `decoded` bytes, gzip-compressed (about 1000:1).
fn gzip_bomb(decoded: usize) -> Vec<u8> {
    let mut json = Vec::with_capacity(decoded);
    json.push(b'[');
    while json.len() < decoded - 2 {
        json.extend_from_slice(b"0,");
    }
    json.extend_from_slice(b"0]");
    gzip(&json)
}

/// 200 with `Content-Encoding: gzip` and `body` as it is (already compressed).
fn gzipped(body: Vec<u8>) -> Fault {
    Fault::Respond {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Content-Encoding".into(), "gzip".into()),
        ],
        body,
    }
}

/// 200 with `Transfer-Encoding: chunked` and `raw` as the chunked body, sent as it is.
fn chunked(raw: &[u8]) -> Fault {
    Fault::Respond {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Transfer-Encoding".into(), "chunked".into()),
        ],
        body: raw.to_vec(),
    }
}

fn utf16le(text: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(text)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// `members` gzip members of 1 MiB of spaces each: `members` MiB decoded from a few KB, and
/// cheap to make (one member compressed once).
fn gzip_bomb_members(members: usize) -> Vec<u8> {
    let one = gzip(&vec![b' '; 1 << 20]);
    let mut out = gzip(b"[");
    for _ in 0..members {
        out.extend_from_slice(&one);
    }
    out
}

// Failures of the HTTP exchange itself: the message names the URL.
#[rstest]
#[case::not_found(vec![Fault::Status(404)], &[], &["HTTP 404 Not Found"])]
#[case::server_error(vec![Fault::Status(500)], &[], &["HTTP 500 Internal Server Error"])]
#[case::server_error_after_retries(
    vec![Fault::Status(500), Fault::Status(502), Fault::Status(503)],
    &["--retries", "2"],
    &["HTTP 503 Service Unavailable", "gave up after 3 attempts"]
)]
#[case::slow_headers(
    vec![Fault::DelayHeaders(STALL)],
    &[],
    &["timed out waiting for the response headers", "nothing within 1 s"]
)]
#[case::body_stalls(
    vec![Fault::StallBody { after: 20, stall: STALL }],
    &[],
    &["timed out reading the body: nothing received for 1 s after 20 bytes"]
)]
#[case::truncated_body(
    vec![Fault::Truncate { send: 30 }],
    &[],
    &["body was cut off", "after 30 of the", "Content-Length"]
)]
#[case::content_length_over_the_limit(
    vec![respond(vec![b' '; 5000])],
    &["--max-bytes", "4000"],
    &["body is larger than the limit of 4000 bytes"]
)]
#[case::endless_body_over_the_limit(
    vec![Fault::Endless { chunk: 8192 }],
    &["--max-bytes", "1000000"],
    &["body is larger than the limit of 1000000 bytes"]
)]
#[case::gzip_bomb(
    vec![Fault::Respond {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Content-Encoding".into(), "gzip".into()),
        ],
        body: gzip_bomb(20_000_000),
    }],
    &["--max-bytes", "1000000"],
    &["body is larger than the limit of 1000000 bytes"]
)]
#[case::html_error_page_with_200(
    vec![Fault::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
        body: b"<!DOCTYPE html>\n<html><title>Maintenance</title></html>".to_vec(),
    }],
    &[],
    &["looks like an HTML page", "text/html", "Maintenance"]
)]
#[case::html_without_content_type(
    vec![Fault::Respond { status: 200, headers: vec![], body: b"  <html>oops</html>".to_vec() }],
    &[],
    &["invalid JSON", "looks like an HTML page"]
)]
#[case::invalid_json(vec![respond("[}")], &[], &["invalid JSON", "line 1 column 2"])]
#[case::empty_body(vec![respond("")], &[], &["invalid JSON", "the body is empty"])]
#[case::invalid_utf8(
    vec![respond(&b"[{\"country\":{\"key\":\"caf\xE9\"}}]"[..])],
    &[],
    &["not valid UTF-8", "0xE9", "line 1 column 24"]
)]
#[case::redirect_loop(
    vec![Fault::Redirect { to: PATH.into() }],
    &[],
    &["redirect loop"]
)]
#[case::redirect_to_a_file(
    vec![Fault::Redirect { to: "file:///etc/passwd".into() }],
    &[],
    &["redirect to file:… refused (only http/https redirects are followed)"]
)]
#[case::redirect_to_data(
    vec![Fault::Redirect { to: "data:application/json,[1]".into() }],
    &[],
    &["redirect to data:… refused (only http/https redirects are followed)"]
)]
#[case::redirect_without_a_location(
    vec![Fault::Respond { status: 302, headers: vec![], body: Vec::new() }],
    &[],
    &["HTTP 302 Found without a Location header"]
)]
#[case::malformed_chunked_encoding(
    vec![chunked(b"5\r\n[1,2]\r\nZZ\r\n0\r\n\r\n")],
    &[],
    &["the body's chunked transfer encoding is malformed after 5 bytes"]
)]
#[case::chunked_body_cut_off(
    vec![chunked(b"5\r\n[1,2]\r\n40\r\n[3,")],
    &[],
    &["the body was cut off: the connection closed after 8 bytes, before the end of the chunked body"]
)]
#[case::nan(
    vec![respond(r#"[{"country":{"key":"a"},"cases":NaN}]"#)],
    &[],
    &["invalid JSON: NaN and Infinity are not JSON: NaN at line 1 column 33"]
)]
#[case::infinity(
    vec![respond("[{\"country\":{\"key\":\"a\"},\n\"cases\":-Infinity}]")],
    &[],
    &["invalid JSON: NaN and Infinity are not JSON: -Infinity at line 2 column 9"]
)]
#[case::utf16_without_a_byte_order_mark(
    vec![respond(utf16le(&four()))],
    &[],
    &["invalid JSON: the body looks like UTF-16 (NUL bytes, the first at line 1 column 2); JSON must be UTF-8"]
)]
#[case::gzip_of_a_document_and_more(
    vec![gzipped([gzip(&four()), gzip(b" [2]")].concat())],
    &[],
    &["invalid JSON", "trailing characters"]
)]
#[case::gzip_bomb_in_300_members(
    vec![gzipped(gzip_bomb_members(300))],
    &["--max-bytes", "10000000"],
    &["body is larger than the limit of 10000000 bytes"]
)]
fn a_bad_answer_fails_in_one_line_and_publishes_nothing(
    #[case] faults: Vec<Fault>,
    #[case] extra: &[&str],
    #[case] words: &[&str],
) {
    let w = World::new();
    // Served as it is, this would be version 2: only the fault stands in the way.
    w.server
        .set(PATH, records(&["austria", "belgium", "chile"]));
    let n = faults.len();
    w.server.push_faults(PATH, faults);
    let t = Instant::now();
    let r = w.run(extra);
    w.assert_failed_cleanly(&r, words, true);
    assert_eq!(w.server.pending_faults(PATH), 0, "every fault was met");
    assert!(w.server.requests(PATH) <= 1 + n, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

// Bad data: a guard names the dataset and the rule. (The guard error does not name the URL yet:
// `sync.rs` passes only the dataset name to `validate::check`.)
#[rstest]
#[case::object_instead_of_array(
    br#"{"country":{"key":"austria"}}"#.to_vec(),
    &["guard failed", "expected a top-level array of records keyed by /country/key, found an object"]
)]
#[case::records_without_the_key(
    br#"[{"country":{"key":"austria"}},{"country":{"name":"Belgium"}}]"#.to_vec(),
    &["guard failed", "record 1 has no key at /country/key"]
)]
#[case::empty_array(b"[]".to_vec(), &["guard failed", "the array of records is empty"])]
#[case::record_count_shrinks_by_more_than_half(
    records(&["austria"]),
    &["guard failed", "record count fell from 4 to 1 (75% fewer, more than the allowed 50%)"]
)]
#[case::duplicate_keys(
    records(&["austria", "belgium", "austria", "chile"]),
    &["guard failed", "duplicate key \\\"austria\\\" (records 0 and 2)"]
)]
fn bad_data_fails_a_guard_and_publishes_nothing(#[case] body: Vec<u8>, #[case] words: &[&str]) {
    let w = World::new();
    w.server.set(PATH, body);
    let r = w.run(&[]);
    w.assert_failed_cleanly(&r, words, false);
    assert!(r.summary().contains("--force overrides"), "{r:?}");
}

#[test]
fn shrinking_within_the_ratio_is_fine() {
    let w = World::new();
    w.server
        .set(PATH, records(&["austria", "belgium", "chile"]));
    let r = w.run(&[]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
}

#[test]
fn force_overrides_the_guards_for_one_run_and_says_so() {
    let w = World::new();
    w.server.set(PATH, records(&["austria"]));
    let r = w.run(&["--force"]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let logged: Vec<&str> = r.stderr.lines().filter(|l| l.contains("--force")).collect();
    assert_eq!(logged.len(), 1, "{r:?}");
    assert!(
        logged[0].contains("level=warn") && logged[0].contains("fell from 4 to 1"),
        "{r:?}"
    );
    // Only for that run: the next shrink fails again.
    w.server.set(PATH, b"[]".to_vec());
    let r = w.run(&[]);
    assert_failed(&r, None, &["the array of records is empty"]);
}

#[test]
fn guards_are_configured_per_dataset() {
    let server = HttpServer::start();
    server.set("/a.json", four());
    server.set("/b.json", four());
    let sb = Sandbox::new();
    let config = sb.path().join("snapsync.toml");
    let toml = format!(
        "[[dataset]]\nname = \"lenient\"\nurl = \"{}\"\nkey = \"/country/key\"\n\
         [dataset.guards]\nmax_shrink = 0.9\nallow_duplicates = true\n\n\
         [[dataset]]\nname = \"strict\"\nurl = \"{}\"\nkey = \"/country/key\"\n\
         [dataset.guards]\nmin_records = 3\n",
        server.url("/a.json"),
        server.url("/b.json")
    );
    std::fs::write(&config, toml).unwrap();
    let run_all = || {
        let mut cmd = sb.cmd(&["run"]);
        cmd.env("SNAPSYNC_CONFIG", &config);
        to_result(cmd.output().unwrap())
    };
    let r = run_all();
    assert_eq!(r.code, 0, "{r:?}");
    server.set("/a.json", records(&["austria", "austria"]));
    server.set("/b.json", records(&["austria", "belgium"]));
    let r = run_all();
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("lenient changed version=2"), "{r:?}");
    assert!(
        lines[1].starts_with("strict failed")
            && lines[1].contains("2 records, fewer than the minimum of 3"),
        "{r:?}"
    );
}

#[test]
fn service_unavailable_twice_then_ok_is_retried_and_succeeds() {
    let w = World::new();
    w.server
        .set(PATH, records(&["austria", "belgium", "chile"]));
    w.server
        .push_faults(PATH, [Fault::Status(503), Fault::Status(503)]);
    let r = w.run(&["--retries", "2"]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    assert_eq!(r.field("version").as_deref(), Some("2"));
    assert_eq!(w.server.requests(PATH), 1 + 3);
    let retries: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("fetch failed, retrying"))
        .collect();
    assert_eq!(retries.len(), 2, "{r:?}");
    assert!(retries[0].contains("HTTP 503 Service Unavailable"), "{r:?}");
}

#[test]
fn client_errors_are_not_retried() {
    let w = World::new();
    w.server.push_faults(PATH, [Fault::Status(404)]);
    let r = w.run(&["--retries", "3"]);
    w.assert_failed_cleanly(&r, &["HTTP 404 Not Found"], true);
    assert_eq!(w.server.requests(PATH), 1 + 1);
}

#[test]
fn connection_refused() {
    let w = World::new();
    // A port that was just free: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}{PATH}");
    let r = run(&w.sb, &url, &[]);
    assert_failed(&r, Some(&url), &["connection refused"]);
    assert_eq!(w.sb.store_files(), w.store);
    assert_eq!(db_state(&w.sb), w.db);
}

#[test]
fn too_many_redirects() {
    let w = World::new();
    for i in 0..12 {
        w.server.push_faults(
            &format!("/hop{i}"),
            [Fault::Redirect {
                to: format!("/hop{}", i + 1),
            }],
        );
    }
    let url = w.server.url("/hop0");
    let r = run(&w.sb, &url, &[]);
    assert_failed(&r, Some(&url), &["too many redirects (more than 10)"]);
    assert_eq!(w.sb.store_files(), w.store);
    assert_eq!(db_state(&w.sb), w.db);
}

#[test]
fn a_redirect_to_plain_http_elsewhere_is_refused() {
    let w = World::new();
    w.server.push_faults(
        PATH,
        [Fault::Redirect {
            to: "http://192.0.2.1/stats.json".into(),
        }],
    );
    let r = w.run(&[]);
    w.assert_failed_cleanly(
        &r,
        &[
            "refused to follow a redirect to http://192.0.2.1/stats.json",
            "plain http is only allowed for loopback",
        ],
        true,
    );
}

#[test]
fn a_self_signed_certificate_is_reported_as_a_tls_failure() {
    let w = World::new();
    let tls = TlsServer::start();
    let url = tls.url(PATH);
    let r = run(&w.sb, &url, &["--retries", "2"]);
    assert_failed(
        &r,
        Some(&url),
        &["TLS error: the server's certificate is not trusted"],
    );
    assert!(
        !r.stderr.contains("retrying"),
        "a bad certificate is not retried: {r:?}"
    );
    assert_eq!(w.sb.store_files(), w.store);
    assert_eq!(db_state(&w.sb), w.db);
}

#[test]
fn credentials_in_the_url_never_show() {
    let w = World::new();
    w.server
        .set(PATH, records(&["austria", "belgium", "chile"]));
    let secret_url = w
        .url
        .replace("http://", "http://user:secret@")
        .replace(PATH, &format!("{PATH}?token=secret&day=1"));
    // Once not retried, twice retried (and logged), a redirect loop naming the URL again.
    for faults in [
        vec![Fault::Status(404)],
        vec![Fault::Truncate { send: 5 }, Fault::Truncate { send: 5 }],
        vec![Fault::Redirect {
            to: format!("{PATH}?token=secret&day=1"),
        }],
    ] {
        w.server.push_faults(PATH, faults);
        let r = run(&w.sb, &secret_url, &["--retries", "1"]);
        assert_eq!(w.server.pending_faults(PATH), 0);
        assert_failed(
            &r,
            Some(&format!(
                "http://user:REDACTED@{}{PATH}?token=REDACTED&day=REDACTED",
                w.server.addr()
            )),
            &[],
        );
        assert!(!r.stdout.contains("secret"), "{r:?}");
        assert!(!r.stderr.contains("secret"), "{r:?}");
        assert!(!last_run_error(&w.sb).unwrap().contains("secret"));
        let status = w.sb.run(&["status", "--json", "--url", &secret_url]);
        assert!(!status.stdout.contains("secret"), "{status:?}");
    }
    // The password did reach the server, as basic auth.
    let auth = w
        .server
        .last_headers(PATH)
        .into_iter()
        .find(|(k, _)| k == "authorization");
    assert!(auth.is_some_and(|(_, v)| v.starts_with("Basic ")));
}

#[test]
fn retry_after_is_honoured() {
    let w = World::new();
    w.server
        .set(PATH, records(&["austria", "belgium", "chile"]));
    w.server.push_faults(
        PATH,
        [Fault::Respond {
            status: 503,
            headers: vec![("Retry-After".into(), "1".into())],
            body: b"busy".to_vec(),
        }],
    );
    let t = Instant::now();
    let r = w.run(&["--retries", "1"]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(r.stderr.contains("retry_in_ms=1000"), "{r:?}");
}

/// RFC 1952: a gzip body is a series of members, and all of them are the body (pigz, and
/// servers that concatenate compressed parts, send several).
#[test]
fn every_member_of_a_gzip_body_is_decoded() {
    let w = World::new();
    let doc = records(&["austria", "belgium", "chile"]);
    let (a, b) = doc.split_at(doc.len() / 2);
    w.server
        .push_faults(PATH, [gzipped([gzip(a), gzip(b)].concat())]);
    let r = w.run(&[]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    assert_eq!(w.server.pending_faults(PATH), 0);
    // Version 2 is exactly the three records.
    w.server.set(PATH, doc);
    let r = w.run(&[]);
    assert_eq!(r.outcome(), "unchanged", "{r:?}");
}

/// The source asks for gzip itself (reqwest's own decoder is off) and still gets it.
#[test]
fn gzip_is_asked_for_and_decoded() {
    let w = World::new();
    w.server.set_gzip(PATH, true);
    w.server
        .set(PATH, records(&["austria", "belgium", "chile"]));
    let r = w.run(&[]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let asked = w.server.last_headers(PATH);
    assert!(
        asked
            .iter()
            .any(|(k, v)| k == "accept-encoding" && v.contains("gzip") && v.contains("br")),
        "{asked:?}"
    );
}
