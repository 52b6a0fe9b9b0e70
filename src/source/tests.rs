//! Tests of the source's pure parts: URL redaction and the http rule, the multi-member gzip
//! decoder and its limit, and the checks of a body meant to be JSON.

use super::body::check_body;
use super::multigz::{GzError, MultiGz, GZ_STEP};
use super::urls::check_parsed;
use super::*;

#[test]
fn redacts_secrets_in_urls() {
    assert_eq!(
        redact_url("https://user:hunter2@example.com/x.json?api_key=abc&day=1"),
        "https://user:REDACTED@example.com/x.json?api_key=REDACTED&day=REDACTED"
    );
    // Every value, whatever its name; names and value-less flags stay.
    assert_eq!(
        redact_url("https://f.azurewebsites.net/api/x?code=S3cr3t==&jwt=abc&raw&page="),
        "https://f.azurewebsites.net/api/x?code=REDACTED&jwt=REDACTED&raw&page=REDACTED"
    );
    assert_eq!(
        redact_url("https://e.com/a#access_token=abc"),
        "https://e.com/a#REDACTED"
    );
    // Token-like path segments and user names.
    assert_eq!(
        redact_url("https://hooks.e.com/services/T0001/B0002/Bm7x9vQkLp2R8sT4wZ6yN3aF"),
        "https://hooks.e.com/services/T0001/B0002/REDACTED"
    );
    assert_eq!(
        redact_url("https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/o/r"),
        "https://REDACTED@github.com/o/r"
    );
    assert_eq!(redact_url("https://example.com/a"), "https://example.com/a");
    // URLs that do not parse still lose their credentials.
    assert_eq!(
        redact_url("http://user:hunter2@[::1/x.json?token=abc"),
        "http://REDACTED@[::1/x.json"
    );
    assert_eq!(redact_url("user:hunter2@host/x"), "REDACTED@host/x");
    assert_eq!(redact_url("not a url"), "not a url");
}

#[test]
fn ordinary_paths_survive_and_tokens_do_not() {
    for ordinary in [
        "/coviddata/v1/countries/stats.json",
        "/covid-19-country-statistics-2021/data.json",
        "/api/v2/datasets/2021-03-04.json",
        "/COVID19CountryStatistics.json",
        "/snapshots/2026-11-24T060000.123Z-0123456789ab.json.gz",
        "/releases/download/v1.2.3/stats.v1.json",
        "/abcdefghijklmnopqrstuvwxyz/ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ] {
        let url = format!("https://example.com{ordinary}");
        assert_eq!(redact_url(&url), url, "{ordinary}");
    }
    for token in [
        "3f9c2e1b7d4a8e6f0b1c2d3e4f5a6b7c",
        "0123456789abcdef0123456789abcdef01234567",
        "123e4567-e89b-12d3-a456-426614174000",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "Bm7x9vQkLp2R8sT4wZ6yN3aF",
    ] {
        assert!(looks_like_token(token), "{token}");
        assert_eq!(
            redact_url(&format!("https://example.com/d/{token}/x.json")),
            "https://example.com/d/REDACTED/x.json"
        );
    }
}

/// Decodes `data` fed in pieces of `step` bytes.
fn gunzip_stream(data: &[u8], step: usize, limit: u64) -> Result<Vec<u8>, GzError> {
    let mut gz = MultiGz::new();
    let mut out = Vec::new();
    for piece in data.chunks(step.max(1)) {
        gz.push(piece, &mut out, limit)?;
    }
    gz.finish(&mut out, limit)?;
    Ok(out)
}

fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn every_gzip_member_is_decoded_in_any_chunking() {
    let doc = br#"[{"country":{"key":"a"}},{"country":{"key":"b"}}]"#;
    let (half1, half2) = doc.split_at(20);
    let two = [gz(half1), gz(half2)].concat();
    let padded = [two.clone(), vec![0; 10]].concat();
    for step in [1, 2, 7, 64, 100_000] {
        assert_eq!(gunzip_stream(&two, step, 1000).unwrap(), doc, "step {step}");
        assert_eq!(gunzip_stream(&padded, step, 1000).unwrap(), doc);
        let garbage = [gz(doc), b"<html>".to_vec()].concat();
        let err = gunzip_stream(&garbage, step, 1000).unwrap_err();
        assert!(
            matches!(&err, GzError::Corrupt(m) if m.contains("0x3C follows gzip member 1")),
            "{err:?}"
        );
        let cut = &two[..two.len() - 3];
        assert_eq!(gunzip_stream(cut, step, 1000), Err(GzError::CutOff));
    }
    assert_eq!(gunzip_stream(&[], 1, 1000).unwrap(), b"");
    assert!(matches!(
        gunzip_stream(b"[1,2]", 1, 1000),
        Err(GzError::Corrupt(_))
    ));
    let mut bad_crc = gz(doc);
    let n = bad_crc.len();
    bad_crc[n - 6] ^= 1;
    assert!(matches!(
        gunzip_stream(&bad_crc, 5, 1000),
        Err(GzError::Corrupt(_))
    ));
}

#[test]
fn a_gzip_bomb_stops_at_the_limit_without_growing_past_it() {
    let bomb = gz(&vec![b'0'; 50 << 20]);
    let mut gz = MultiGz::new();
    let mut out = Vec::new();
    let err = bomb
        .chunks(8192)
        .try_for_each(|c| gz.push(c, &mut out, 1 << 20));
    assert_eq!(err, Err(GzError::TooLarge));
    assert!(out.capacity() <= (1 << 20) + GZ_STEP, "{}", out.capacity());
    // Exactly at the limit is fine.
    assert_eq!(gunzip_stream(&gz_of(1000), 100, 1000).unwrap().len(), 1000);
    assert_eq!(
        gunzip_stream(&gz_of(1001), 100, 1000),
        Err(GzError::TooLarge)
    );
}

fn gz_of(n: usize) -> Vec<u8> {
    gz(&vec![b' '; n])
}

#[test]
fn plain_http_only_on_loopback() {
    assert!(check_url("http://127.0.0.1:8080/x", false).is_ok());
    assert!(check_url("http://localhost/x", false).is_ok());
    assert!(check_url("http://[::1]/x", false).is_ok());
    assert!(check_url("http://example.com/x", false).is_err());
    assert!(check_url("http://10.0.0.1/x", false).is_err());
    assert!(check_url("http://example.com/x", true).is_ok());
    assert!(check_url("ftp://example.com/x", true).is_err());
    assert!(check_url("https://example.com/x", false).is_ok());
}

#[test]
fn a_dataset_may_allow_plain_http_to_its_own_host_only() {
    let hosts = ["data.example.com".to_string()];
    let ok = |u: &str| check_parsed(&url::Url::parse(u).unwrap(), false, &hosts).is_ok();
    assert!(ok("http://data.example.com/x.json"));
    assert!(ok("http://DATA.example.com:8080/x.json"));
    assert!(!ok("http://other.example.com/x.json"));
}

fn body_error(bytes: &[u8], content_type: Option<&str>) -> String {
    check_body("https://e.com/x", bytes.to_vec(), content_type)
        .unwrap_err()
        .to_string()
}

#[test]
fn bodies_a_json_parser_would_report_badly_are_named() {
    assert!(body_error(b"", None).contains("the body is empty"));
    assert!(body_error(b" \n ", None).contains("only whitespace"));
    let html = body_error(b"\n<html>\n<h1>Down</h1>", None);
    assert!(
        html.contains("looks like an HTML page, not JSON: \"<html> <h1>Down</h1>\""),
        "{html}"
    );
    let typed = body_error(b"Service down", Some("text/html"));
    assert!(
        typed.contains("HTML page (Content-Type text/html)"),
        "{typed}"
    );
    let utf8 = body_error(b"[\"a\",\n\"\xFF\"]", None);
    assert!(
        utf8.contains("not valid UTF-8: byte 0xFF at line 2 column 2 (offset 7)"),
        "{utf8}"
    );
}

#[test]
fn utf16_bodies_are_named() {
    let le: Vec<u8> = "[1]".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = "[1]".encode_utf16().flat_map(u16::to_be_bytes).collect();
    for body in [le, be] {
        let e = body_error(&body, None);
        assert!(
            e.contains("the body looks like UTF-16 (NUL bytes, the first at line 1 column")
                && e.contains("JSON must be UTF-8"),
            "{e}"
        );
    }
    let bom = body_error(b"\xFF\xFE[\x001\x00]\x00", None);
    assert!(bom.contains("UTF-16 byte order mark"), "{bom}");
}

#[test]
fn good_bodies_pass_and_lose_a_byte_order_mark() {
    let ok = check_body("u", b"\xEF\xBB\xBF[1]".to_vec(), Some("text/html")).unwrap();
    assert_eq!(ok, b"[1]");
    assert!(check_body("u", "[\"caf\u{e9}\"]".into(), None).is_ok());
}

#[test]
fn messages_are_one_line() {
    assert_eq!(one_line("a\nb\r\n c\t"), "a b  c");
}
