//! Throughput of the pure core on covid-shaped data made by `snapsync-gen`: canonicalize + hash
//! a fetched body, load a stored version, diff two versions, apply the delta (and hash the result,
//! as a consumer does, or compare it with the new version, as a publishing run does), and gzip
//! the snapshot. `cargo bench` uses 250 countries x 1000 days (~30 MB) and a next day with 0.1%
//! of past values revised within the last 30 days; under `cargo test` a small file, once.

use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::{Digest, Sha256};
use snapsync::canonical::{Document, KeyPointer};
use snapsync::delta;
use snapsync::gzip;
use snapsync::table::{ReadOptions, TableFormat, DEFAULT_MAX_BYTES};
use snapsync::transform::{self, JoinSpec, Pattern, Transform};

fn generate(dir: &Path, countries: u32, days: u32) -> (Vec<u8>, Vec<u8>) {
    let gen = env!("CARGO_BIN_EXE_snapsync-gen");
    let (day, next) = (dir.join("day.json"), dir.join("next.json"));
    let ok = Command::new(gen)
        .args([
            "--countries",
            &countries.to_string(),
            "--days",
            &days.to_string(),
            "--out",
        ])
        .arg(&day)
        .status()
        .expect("snapsync-gen runs")
        .success()
        && Command::new(gen)
            .args(["next", "--revise-window", "30", "--in"])
            .arg(&day)
            .arg("--out")
            .arg(&next)
            .status()
            .expect("snapsync-gen runs")
            .success();
    assert!(ok, "snapsync-gen failed");
    (std::fs::read(day).unwrap(), std::fs::read(next).unwrap())
}

/// `n` records of text-heavy data in the style of `json.dumps(ensure_ascii=True)`.
fn escaped_text(n: u32) -> Vec<u8> {
    let mut out = String::from("[");
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!(
            r#"{{"id": {i}, "name": "C\u00f4te d\u2019Ivoire {i}", "city": "S\u00e3o Paulo", "note": "line\nbreak \"quoted\" \ud83d\ude00", "plain": "ascii only {i}"}}"#
        ));
    }
    out.push(']');
    out.into_bytes()
}

fn core(c: &mut Criterion) {
    let full = std::env::args().any(|a| a == "--bench");
    let dir = tempfile::tempdir().unwrap();
    let (countries, days) = if full { (250, 1000) } else { (25, 100) };
    let (day, next) = generate(dir.path(), countries, days);
    let key = KeyPointer::parse("/country/key").unwrap();
    let old = Document::from_json(&day, &key).unwrap();
    let new = Document::from_json(&next, &key).unwrap();
    let d = delta::diff(&old, &new);

    let mut g = c.benchmark_group("core");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(next.len() as u64));
    g.bench_function("canonicalize_and_hash", |b| {
        b.iter(|| Document::from_json(&next, &key).unwrap())
    });
    // Text as Python's json.dumps writes it by default (ensure_ascii): every string with a
    // non-ASCII letter is escaped, so the parser decodes escapes in most values.
    let escaped = escaped_text(if full { 200_000 } else { 2_000 });
    g.throughput(Throughput::Bytes(escaped.len() as u64));
    g.bench_function("canonicalize_escaped_text", |b| {
        b.iter(|| Document::from_json(&escaped, &KeyPointer::default()).unwrap())
    });
    g.throughput(Throughput::Bytes(old.bytes().len() as u64));
    g.bench_function("load_stored_version", |b| {
        b.iter(|| Document::from_canonical(old.shared_bytes(), &key, old.sha256()).unwrap())
    });
    g.throughput(Throughput::Bytes(
        (old.bytes().len() + new.bytes().len()) as u64,
    ));
    g.bench_function("diff", |b| b.iter(|| delta::diff(&old, &new)));
    g.throughput(Throughput::Bytes(old.bytes().len() as u64));
    g.bench_function("apply_and_hash", |b| {
        b.iter(|| {
            let mut h = Hashing(Sha256::new());
            delta::apply_document_into(&old, &d.patch, &mut h).unwrap();
            h.0.finalize()
        })
    });
    // What a publishing run does: apply and compare with the new version's bytes.
    g.bench_function("apply_and_compare", |b| {
        b.iter(|| {
            assert_eq!(
                delta::apply_and_compare(&old, &d.patch, new.bytes()),
                Ok(None)
            )
        })
    });
    g.throughput(Throughput::Bytes(new.bytes().len() as u64));
    g.bench_function("gzip_snapshot", |b| {
        b.iter(|| gzip::gzip(new.bytes(), snapsync::config::DEFAULT_GZIP_LEVEL))
    });

    // Transforms, end to end from the fetched bytes (compare with canonicalize_and_hash).
    let drop = vec![Transform::Drop(vec![Pattern::parse(
        "/*/dates/*/cumulative",
    )
    .unwrap()])];
    g.throughput(Throughput::Bytes(next.len() as u64));
    g.bench_function("transform_drop_cumulative", |b| {
        b.iter(|| transform::apply(&next, &key, &drop).unwrap())
    });
    let mut csv = String::from("name,continent,population\n");
    for r in new.records().unwrap() {
        let k = String::from_utf8_lossy(new.key(r).unwrap())
            .trim_matches('"')
            .to_string();
        csv.push_str(&format!("{k},Europe,{}\n", k.len() * 1000));
    }
    let spec = JoinSpec {
        source: String::new(),
        format: Some(TableFormat::Csv),
        read: ReadOptions::default(),
        max_bytes: DEFAULT_MAX_BYTES,
        key_column: "name".into(),
        iso_column: None,
        names: Default::default(),
        aliases: true,
        on: vec!["country".into(), "key".into()],
        on_iso: None,
        into: vec!["country".into()],
        fields: Some(
            [
                ("continent".to_string(), "continent".to_string()),
                ("population".to_string(), "population".to_string()),
            ]
            .into(),
        ),
    };
    let join = vec![
        drop[0].clone(),
        Transform::Join(Box::new(spec.load(csv.as_bytes(), None).unwrap())),
    ];
    g.bench_function("transform_drop_then_join", |b| {
        b.iter(|| transform::apply(&next, &key, &join).unwrap())
    });
    g.finish();
    resorted(c, full);
}

/// Many small records, every one re-sorted (a leaderboard-like dataset that upstream orders
/// by a value each day): nearly every record is one `move`. What a publishing run pays to
/// diff such a day and check the delta by applying it.
fn resorted(c: &mut Criterion, full: bool) {
    let n = if full { 300_000 } else { 2_000 };
    let key = KeyPointer::parse("/id").unwrap();
    let record = |i: u64| format!(r#"{{"id":{i},"score":{}}}"#, i * 7919 % 100_003);
    let old: Vec<String> = (0..n).map(record).collect();
    // The next day: ordered by score instead of id, one score changed.
    let mut ids: Vec<u64> = (0..n).collect();
    ids.sort_by_key(|i| (i * 7919 % 100_003, *i));
    let mut new: Vec<String> = ids.iter().map(|&i| record(i)).collect();
    new[n as usize / 2] = r#"{"id":-1,"score":0}"#.to_string();
    let text = |v: &[String]| format!("[{}]", v.join(","));
    let old = Document::from_json(text(&old).as_bytes(), &key).unwrap();
    let new = Document::from_json(text(&new).as_bytes(), &key).unwrap();
    let d = delta::diff(&old, &new);
    let mut g = c.benchmark_group("resorted");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function(format!("diff_{n}_records"), |b| {
        b.iter(|| delta::diff(&old, &new))
    });
    g.bench_function(format!("apply_and_compare_{n}_records"), |b| {
        b.iter(|| {
            assert_eq!(
                delta::apply_and_compare(&old, &d.patch, new.bytes()),
                Ok(None)
            )
        })
    });
    g.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);

/// sha256 as an `io::Write` (sha2 0.11 has no such impl of its own).
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
