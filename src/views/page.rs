//! The history page, `{dataset}/index.html`: one self-contained file (no CDN, no external
//! script or style; the chart is inline SVG) for a person opening the bucket or the file store
//! in a browser. Its links are relative, so it works from S3 static hosting and from a
//! `file://` directory alike.
//!
//! The page carries its own data as JSON (`<script type="application/json"
//! id="snapsync-data">`, [`PageData`]): the next publish reads it back to keep every version's
//! change text, which the manifest does not hold, and adds its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::changes::ValueCounts;
use crate::error::{Error, Result};
use crate::keys::DatasetKeys;
use crate::manifest::{Entry, Manifest};
use crate::store::{DynStore, PutMode, PutOptions};

pub const FORMAT: &str = "snapsync-page/1";
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";
const DATA_OPEN: &str = r#"<script type="application/json" id="snapsync-data">"#;
const DATA_CLOSE: &str = "</script>";
/// Writers that keep rewriting the page between this writer's read and its write.
const MAX_ATTEMPTS: u32 = 4;

/// What the page shows, and what it carries for the next publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageData {
    pub format: String,
    pub dataset: String,
    /// The source, redacted.
    pub source: String,
    pub versions: Vec<PageVersion>,
}

/// One version's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageVersion {
    pub version: u64,
    pub created_at: String,
    pub sha256: String,
    #[serde(default)]
    pub records: Option<u64>,
    pub added: u64,
    pub removed: u64,
    pub moved: u64,
    pub changed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<ValueCounts>,
    /// Links relative to the page; no snapshot once pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
    /// The version's changes in words ([`crate::changes::describe`]); `None` when no publish
    /// or repair that saw them has written this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<String>,
}

impl PageVersion {
    fn of(keys: &DatasetKeys, e: &Entry, changes: Option<String>) -> Self {
        let rel = |k: &str| keys.relative(k).map(str::to_string);
        PageVersion {
            version: e.version,
            created_at: e.created_at.clone(),
            sha256: e.sha256.clone(),
            records: e.records,
            added: e.added,
            removed: e.removed,
            moved: e.moved,
            changed: e.changed,
            values: e.values,
            snapshot: e.live_snapshot().and_then(rel),
            delta: e.delta.as_deref().and_then(rel),
            changes,
        }
    }
}

/// The page's data for `manifest`: each version's text from `texts` (version → (sha256,
/// text)) or, for the same version and hash, from the page before (`old`).
pub fn merge(
    keys: &DatasetKeys,
    source: &str,
    manifest: &Manifest,
    old: Option<&PageData>,
    texts: &BTreeMap<u64, (String, String)>,
) -> PageData {
    let before: BTreeMap<u64, &PageVersion> = old
        .map(|o| o.versions.iter().map(|v| (v.version, v)).collect())
        .unwrap_or_default();
    let versions = manifest
        .versions
        .iter()
        .map(|e| {
            let text = texts
                .get(&e.version)
                .filter(|(sha, _)| *sha == e.sha256)
                .map(|(_, t)| t.clone())
                .or_else(|| {
                    before
                        .get(&e.version)
                        .filter(|v| v.sha256 == e.sha256)
                        .and_then(|v| v.changes.clone())
                });
            PageVersion::of(keys, e, text)
        })
        .collect();
    PageData {
        format: FORMAT.to_string(),
        dataset: manifest.dataset.clone(),
        source: source.to_string(),
        versions,
    }
}

/// Reads the page's data: `None` when there is no page; `Some((None, etag))` when it is not
/// one snapsync can read (it is then rewritten whole).
pub async fn read_with_etag(
    store: &DynStore,
    keys: &DatasetKeys,
) -> Result<Option<(Option<PageData>, String)>> {
    let Some((bytes, meta)) = store.get(&keys.page()).await? else {
        return Ok(None);
    };
    Ok(Some((parse(&bytes), meta.etag)))
}

/// The page's data, when there is a readable page.
pub async fn read(store: &DynStore, keys: &DatasetKeys) -> Result<Option<PageData>> {
    Ok(read_with_etag(store, keys).await?.and_then(|(d, _)| d))
}

/// The data a page carries.
pub fn parse(html: &[u8]) -> Option<PageData> {
    let text = std::str::from_utf8(html).ok()?;
    let start = text.find(DATA_OPEN)? + DATA_OPEN.len();
    let len = text[start..].find(DATA_CLOSE)?;
    serde_json::from_str(&text[start..start + len])
        .ok()
        .filter(|d: &PageData| d.format == FORMAT)
}

/// Rewrites the page for `manifest`, keeping what the page before told. A page that already
/// lists a newer version (another writer's, written after this one's read) is left alone.
pub async fn update(
    store: &DynStore,
    keys: &DatasetKeys,
    source: &str,
    manifest: &Manifest,
    texts: &BTreeMap<u64, (String, String)>,
) -> Result<()> {
    let newest = manifest.last().map_or(0, |e| e.version);
    for _ in 0..MAX_ATTEMPTS {
        let (old, mode) = match read_with_etag(store, keys).await? {
            None => (None, PutMode::Create),
            Some((data, etag)) => (data, PutMode::Update(etag)),
        };
        let old_newest = old
            .as_ref()
            .and_then(|o| o.versions.last())
            .map_or(0, |v| v.version);
        if old_newest > newest {
            return Ok(());
        }
        let html = render(&merge(keys, source, manifest, old.as_ref(), texts));
        match store
            .put(
                &keys.page(),
                html.into(),
                PutOptions::view(mode, CONTENT_TYPE),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(Error::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::PreconditionFailed {
        store: store.url().to_string(),
        key: keys.page(),
    })
}

const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#5b6570;--line:#d5dae0;--bg:#fff;--a:#2a9d8f;--r:#e76f51;--m:#8d99ae;--c:#457b9d;--ap:#2a9d8f;--rv:#e9a23b;--dv:#b8c0cc}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ed;--muted:#9aa4ae;--line:#39414a;--bg:#15191d}}
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;padding:1rem;max-width:64rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
a{color:var(--c)}code{font-size:.85em;word-break:break-all}
.muted{color:var(--muted)}.src{word-break:break-all}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:.5rem 0}dt{color:var(--muted)}dd{margin:0}
.series{display:grid;grid-template-columns:9rem 1fr;gap:.5rem;align-items:end;margin:.2rem 0;font-size:.85rem}
.series svg{display:block;width:100%;height:28px}.series .lbl span{color:var(--muted);font-size:.8em}
.axis{display:flex;justify-content:space-between;margin-left:9.5rem;font-size:.8rem;color:var(--muted)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid var(--line)}
th{font-weight:600;color:var(--muted)}td.n{text-align:right;white-space:nowrap}td.t{white-space:nowrap}
@media (max-width:40rem){.series{grid-template-columns:6.5rem 1fr}.axis{margin-left:7rem}
thead{display:none}table,tbody,tr,td{display:block}tr{padding:.45rem 0;border-bottom:1px solid var(--line)}
td{border:0;padding:.1rem 0}td.n,td.t{display:inline;text-align:left;margin-right:.6rem}td.n::before{content:attr(data-label);color:var(--muted)}}
";

/// Local time for `<time>` elements (the UTC time stays in the title). The page's only script.
const SCRIPT: &str = "for(const t of document.querySelectorAll('time[datetime]')){const d=new Date(t.getAttribute('datetime'));if(!isNaN(d)){t.title=t.textContent;t.textContent=d.toLocaleString();}}";

/// The page for `data`.
pub fn render(data: &PageData) -> String {
    let mut h = String::with_capacity(8192 + data.versions.len() * 600);
    let name = esc(&data.dataset);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{name} · history</title><style>{STYLE}</style></head><body>\n\
         <header><h1>{name}</h1><p class=\"src muted\">Source: {}</p></header>\n",
        source_html(&data.source)
    );
    match data.versions.last() {
        None => h.push_str("<p>No version published yet.</p>\n"),
        Some(v) => newest(&mut h, v),
    }
    h.push_str("<section id=\"chart\"><h2>Changes over time</h2>\n");
    chart(&mut h, &data.versions);
    h.push_str("</section>\n<section id=\"versions\"><h2>Versions</h2><table><thead><tr><th>Version</th><th>Published</th><th>Records</th><th>Changes</th><th>Files</th></tr></thead><tbody>\n");
    for v in data.versions.iter().rev() {
        row(&mut h, v);
    }
    h.push_str("</tbody></table></section>\n<footer><p class=\"muted\">Written by snapsync at every publish. \
        Every version is restorable: <code>snapsync restore --version N</code>. \
        The change table (one row per changed value) is <code>changes/version=N/part-0.parquet</code>: \
        <code>SELECT * FROM read_parquet('changes/*/*.parquet', hive_partitioning=true)</code>.</p></footer>\n");
    h.push_str(DATA_OPEN);
    let json = serde_json::to_string(data).expect("page data serializes");
    // Inside a script element only `</` can end it early: `<` is escaped in JSON's own way.
    h.push_str(&json.replace('<', "\\u003c"));
    h.push_str(DATA_CLOSE);
    let _ = write!(h, "\n<script>{SCRIPT}</script>\n</body></html>\n");
    h
}

fn newest(h: &mut String, v: &PageVersion) {
    let _ = write!(
        h,
        "<section id=\"latest\"><h2>Newest version</h2><dl>\
         <dt>Version</dt><dd>{}</dd><dt>Published</dt><dd>{}</dd>\
         <dt>sha256</dt><dd><code>{}</code></dd><dt>Records</dt><dd>{}</dd></dl>\
         <p>{}</p><p><a href=\"latest.json\">latest.json</a> · <a href=\"manifest.json\">manifest.json</a>",
        v.version,
        time_html(&v.created_at),
        esc(&v.sha256),
        v.records.map_or("–".to_string(), |n| n.to_string()),
        esc(&change_text(v)),
    );
    if let Some(s) = &v.snapshot {
        let _ = write!(h, " · <a href=\"{}\">snapshot</a>", esc(s));
    }
    if let Some(d) = &v.delta {
        let _ = write!(h, " · <a href=\"{}\">delta</a>", esc(d));
    }
    h.push_str("</p></section>\n");
}

fn row(h: &mut String, v: &PageVersion) {
    let _ = write!(
        h,
        "<tr id=\"v{0}\" data-version=\"{0}\"><td class=\"n\" data-label=\"v\">{0}</td><td class=\"t\">{1}</td><td class=\"n\" data-label=\"records \">{2}</td><td class=\"c\">{3}</td><td>",
        v.version,
        time_html(&v.created_at),
        v.records.map_or("–".to_string(), |n| n.to_string()),
        esc(&change_text(v)),
    );
    let mut links = Vec::new();
    if let Some(s) = &v.snapshot {
        links.push(format!("<a href=\"{}\">snapshot</a>", esc(s)));
    } else {
        links.push("<span class=\"muted\">snapshot pruned</span>".to_string());
    }
    if let Some(d) = &v.delta {
        links.push(format!("<a href=\"{}\">delta</a>", esc(d)));
    }
    h.push_str(&links.join(" · "));
    h.push_str("</td></tr>\n");
}

/// The text a version's row shows: its changes in words, or its counts.
fn change_text(v: &PageVersion) -> String {
    if let Some(t) = &v.changes {
        return t.clone();
    }
    if v.version == 1 {
        return "first version".to_string();
    }
    let mut s = format!(
        "records: {} added, {} removed, {} moved, {} changed",
        v.added, v.removed, v.moved, v.changed
    );
    if let Some(c) = v.values {
        let _ = write!(
            s,
            "; values: {} appended, {} revised, {} derived",
            c.appended, c.revised, c.derived
        );
    }
    s
}

/// A chart row's height, in its SVG's units (its width is one unit per version).
const BAR: f64 = 26.0;

type Series = (&'static str, &'static str, fn(&PageVersion) -> u64);

/// One row of bars per kind of change, each scaled to its own largest value: records added,
/// removed, moved, changed, and (for keyed records) values appended, revised, derived. Each
/// row is an SVG one unit wide per version, stretched to the page's width, beside an HTML
/// label that stays readable on a phone.
fn chart(h: &mut String, versions: &[PageVersion]) {
    let mut series: Vec<Series> = vec![
        ("records added", "--a", |v| v.added),
        ("records removed", "--r", |v| v.removed),
        ("records moved", "--m", |v| v.moved),
        ("records changed", "--c", |v| v.changed),
    ];
    if versions.iter().any(|v| v.values.is_some()) {
        series.push(("values appended", "--ap", |v| {
            v.values.map_or(0, |c| c.appended)
        }));
        series.push(("values revised", "--rv", |v| {
            v.values.map_or(0, |c| c.revised)
        }));
        series.push(("values derived", "--dv", |v| {
            v.values.map_or(0, |c| c.derived)
        }));
    }
    // Version 1 adds every record: not a change, and it would dwarf the rest.
    let get_at = |get: &fn(&PageVersion) -> u64, v: &PageVersion| {
        if v.version == 1 {
            0
        } else {
            get(v)
        }
    };
    let n = versions.len().max(1);
    h.push_str("<div class=\"chart\" role=\"img\" aria-label=\"changes per version\">");
    for (label, color, get) in &series {
        let max = versions.iter().map(|v| get_at(get, v)).max().unwrap_or(0);
        let _ = write!(
            h,
            "<div class=\"series\" data-series=\"{label}\"><div class=\"lbl\">{label} <span>max {max}</span></div>\
             <svg viewBox=\"0 0 {n} {BAR}\" preserveAspectRatio=\"none\" xmlns=\"http://www.w3.org/2000/svg\">\
             <rect x=\"0\" y=\"{}\" width=\"{n}\" height=\"0.5\" fill=\"var(--line)\"/>",
            BAR - 0.5
        );
        if max > 0 {
            for (j, v) in versions.iter().enumerate() {
                let value = get_at(get, v);
                if value == 0 {
                    continue;
                }
                let bh = (BAR * value as f64 / max as f64).max(1.0);
                let _ = write!(
                    h,
                    "<rect x=\"{j}.1\" y=\"{:.2}\" width=\"0.8\" height=\"{bh:.2}\" fill=\"var({color})\"><title>version {}, {}: {value} {label}</title></rect>",
                    BAR - bh,
                    v.version,
                    esc(day(&v.created_at)),
                );
            }
        }
        h.push_str("</svg></div>");
    }
    if let (Some(first), Some(last)) = (versions.first(), versions.last()) {
        let _ = write!(
            h,
            "<div class=\"axis\"><span>{}</span><span>{}</span></div>",
            esc(day(&first.created_at)),
            esc(day(&last.created_at))
        );
    }
    h.push_str("</div>\n");
}

fn day(created_at: &str) -> &str {
    created_at.get(..10).unwrap_or(created_at)
}

fn time_html(created_at: &str) -> String {
    let shown = created_at.get(..16).map_or(created_at.to_string(), |s| {
        format!("{} UTC", s.replace('T', " "))
    });
    format!(
        "<time datetime=\"{}\">{}</time>",
        esc(created_at),
        esc(&shown)
    )
}

fn source_html(source: &str) -> String {
    if source.starts_with("https://") || source.starts_with("http://") {
        format!("<a href=\"{0}\" rel=\"noreferrer\">{0}</a>", esc(source))
    } else {
        esc(source)
    }
}

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, pruned: bool) -> Entry {
        Entry {
            version,
            created_at: format!("2026-01-{version:02}T06:00:00.000Z"),
            sha256: format!("{version:064x}"),
            prev_sha256: (version > 1).then(|| format!("{:064x}", version - 1)),
            snapshot: format!("p/d/snapshots/{version}.json.gz"),
            delta: (version > 1).then(|| format!("p/d/deltas/{version}.delta.json.gz")),
            records: Some(3),
            changed: version - 1,
            values: (version > 1).then_some(ValueCounts {
                appended: 3,
                revised: 1,
                ..ValueCounts::default()
            }),
            pruned,
            ..Entry::default()
        }
    }

    #[test]
    fn the_page_carries_its_data_and_keeps_texts_it_was_told() {
        let keys = DatasetKeys::new("p", "d");
        let mut m = Manifest::new("d");
        m.versions = vec![entry(1, false), entry(2, true), entry(3, false)];
        let texts = BTreeMap::from([(2, (entry(2, true).sha256, "revised <b> & co".to_string()))]);
        let data = merge(
            &keys,
            "https://example.org/x?token=REDACTED",
            &m,
            None,
            &texts,
        );
        let html = render(&data);
        assert_eq!(parse(html.as_bytes()).as_ref(), Some(&data));
        assert!(html.contains("revised &lt;b&gt; &amp; co"));
        assert!(
            !html.contains("<b>"),
            "text is escaped, in the table and in the data"
        );
        assert_eq!(
            data.versions[1].snapshot, None,
            "a pruned snapshot has no link"
        );
        assert_eq!(
            data.versions[2].snapshot.as_deref(),
            Some("snapshots/3.json.gz")
        );
        assert_eq!(html.matches("<tr id=\"v").count(), 3);
        // The next publish knows version 2's text from the page; a version whose hash
        // differs (another history) does not inherit it.
        let again = merge(&keys, "s", &m, Some(&data), &BTreeMap::new());
        assert_eq!(
            again.versions[1].changes.as_deref(),
            Some("revised <b> & co")
        );
        let mut other = m.clone();
        other.versions[1].sha256 = "f".repeat(64);
        let moved_on = merge(&keys, "s", &other, Some(&data), &BTreeMap::new());
        assert_eq!(moved_on.versions[1].changes, None);
        assert!(render(&moved_on).contains("records: 0 added"));
    }

    #[test]
    fn an_empty_history_and_foreign_html_are_handled() {
        let keys = DatasetKeys::new("", "d");
        let data = merge(
            &keys,
            "file://x",
            &Manifest::new("d"),
            None,
            &BTreeMap::new(),
        );
        assert!(render(&data).contains("No version published yet"));
        assert_eq!(parse(b"<html>someone else's page</html>"), None);
        assert_eq!(parse(&[0xff, 0xfe]), None);
    }
}
