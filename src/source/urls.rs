//! Which URLs may be fetched ([`check_url`]: https, or plain http to loopback or allowed hosts)
//! and how a URL may be shown or stored ([`redact_url`], [`cache_key`]).

use crate::error::{Error, Result};

/// https anywhere; http only to loopback unless allowed.
pub fn check_url(url: &str, allow_insecure_http: bool) -> Result<()> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::Config(format!("source URL {:?}: {e}", redact_url(url))))?;
    check_parsed(&parsed, allow_insecure_http, &[])
        .map_err(|why| Error::Config(format!("source URL {}: {why}", redact_url(url))))
}

/// The scheme rule of [`check_url`] for a parsed URL (the first one or a redirect's target):
/// `Err` says why it is not allowed. `insecure_hosts` may use plain http although not loopback.
pub(super) fn check_parsed(
    url: &url::Url,
    allow_insecure_http: bool,
    insecure_hosts: &[String],
) -> Result<(), String> {
    let listed = || {
        let host = url.host_str().unwrap_or_default();
        let with_port = url
            .port_or_known_default()
            .map(|p| format!("{host}:{p}"))
            .unwrap_or_default();
        insecure_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&with_port))
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(url) || listed() => Ok(()),
        "http" => Err(
            "plain http is only allowed for loopback addresses (to allow it: --allow-insecure-http, SNAPSYNC_ALLOW_INSECURE_HTTP=1, or allow_insecure_http = true in the dataset's section of snapsync.toml)"
                .to_string(),
        ),
        other => Err(format!(
            "unsupported scheme {other:?} (use https://, http:// on loopback, or file://)"
        )),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The URL as it may be shown or stored: the password, every query value, the fragment, and
/// path segments (and a user name) that look like tokens become `REDACTED`; query names stay,
/// so `?code=…&page=2` reads `?code=REDACTED&page=REDACTED`.
///
/// Values are redacted whatever their name because names do not tell: Azure Functions call
/// their key `code`, others `jwt`, `s`, `hash`. A path segment is a token when
/// [`looks_like_token`] says so; ordinary paths (`/coviddata/v1/countries/stats.json`,
/// `/covid-19-stats-2021/data.json`) survive. Users whose secret hides elsewhere in a URL
/// should pass it in a header, not the URL.
pub fn redact_url(url: &str) -> String {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| !u.cannot_be_a_base() || !url.contains('@'));
    let Some(mut parsed) = parsed else {
        // Unparsable (or `user:pass@host` read as scheme `user`): keep neither the query nor
        // anything before an `@` (credentials), nor token-like segments.
        let base = url.split(['?', '#']).next().unwrap_or("");
        let base = match base.rfind('@') {
            Some(at) => {
                let start = base.find("://").map_or(0, |s| s + 3).min(at);
                format!("{}REDACTED{}", &base[..start], &base[at..])
            }
            None => base.to_string(),
        };
        return redact_segments(&base);
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(REDACTED));
    }
    if looks_like_token(parsed.username()) {
        let _ = parsed.set_username(REDACTED);
    }
    if !parsed.cannot_be_a_base() {
        let path = redact_segments(parsed.path());
        parsed.set_path(&path);
    }
    if let Some(query) = parsed.query() {
        let shown: Vec<String> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let name = pair.split('=').next().unwrap_or("");
                let name = if looks_like_token(name) {
                    REDACTED
                } else {
                    name
                };
                if pair.contains('=') {
                    format!("{name}={REDACTED}")
                } else {
                    name.to_string()
                }
            })
            .collect();
        parsed.set_query(Some(&shown.join("&")));
    }
    if parsed.fragment().is_some_and(|f| !f.is_empty()) {
        parsed.set_fragment(Some(REDACTED));
    }
    parsed.to_string()
}

const REDACTED: &str = "REDACTED";

/// What to store in place of a URL that identifies a cached body (`join_cache`): its sha256,
/// which names the URL as well as the URL does, without keeping a token in the database.
pub fn cache_key(url: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(url.as_bytes()))
    )
}

/// `REDACTED` for each `/`-separated segment of `path` that [`looks_like_token`].
fn redact_segments(path: &str) -> String {
    path.split('/')
        .map(|seg| if looks_like_token(seg) { REDACTED } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a URL path segment (or user name, or query name) looks like a credential rather
/// than a name a person chose. Any of:
///
/// - a run of 16 or more ASCII letters and digits that switches between letters and digits at
///   least 3 times: API keys, base62/base64url tokens, hex digests (`sk_live_4eC39HqLyjWD…`,
///   `ghp_16C7e42F292c…`); words with a number in them (`covid19`, `stats2021`) switch once
///   or twice, so slugs like `covid-19-country-statistics-2021` survive;
/// - 32 or more hex digits with at most `-` between them: UUIDs and digests made of few digits;
/// - a JWT: three or more `.`-separated base64url parts, the first starting with `eyJ` (base64
///   of `{"`).
///
/// Percent-encoded text is judged as it is written: `%` ends a run.
pub fn looks_like_token(segment: &str) -> bool {
    let b = segment.as_bytes();
    // 1. A long alphanumeric run that keeps switching between letters and digits.
    let mut start = 0;
    while start < b.len() {
        if !b[start].is_ascii_alphanumeric() {
            start += 1;
            continue;
        }
        let end = b[start..]
            .iter()
            .position(|c| !c.is_ascii_alphanumeric())
            .map_or(b.len(), |i| start + i);
        let run = &b[start..end];
        if run.len() >= 16 {
            let switches = run
                .windows(2)
                .filter(|w| w[0].is_ascii_digit() != w[1].is_ascii_digit())
                .count();
            if switches >= 3 {
                return true;
            }
        }
        start = end;
    }
    // 2. Hex digits (UUIDs, digests).
    let hex = b.iter().filter(|c| c.is_ascii_hexdigit()).count();
    if hex >= 32 && b.iter().all(|c| c.is_ascii_hexdigit() || *c == b'-') {
        return true;
    }
    // 3. A JWT.
    let parts: Vec<&str> = segment.split('.').collect();
    parts.len() >= 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}
