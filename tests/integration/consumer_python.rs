//! Consumers in another language: every published delta, applied with Python's `jsonpatch` to
//! the previous snapshot and canonicalized with the `rfc8785` package, reproduces `to.sha256`;
//! and our canonical bytes equal that independent RFC 8785 implementation's.
//!
//! The Python venv comes from `scripts/py-env.sh` (run by `scripts/test`), which exports
//! `SNAPSYNC_TEST_PYTHON`. Without it this test fails rather than skips.

use crate::common::cli::Sandbox;
use crate::common::http::HttpServer;
use serde_json::{json, Value};

const CHECK: &str = r#"
import gzip, hashlib, json, sys
import jsonpatch, rfc8785

store, manifest_path = sys.argv[1], sys.argv[2]
manifest = json.load(open(manifest_path))
def load(key):
    with gzip.open(f"{store}/{key}", "rb") as f:
        return f.read()
checked = 0
for e in manifest["versions"]:
    snap = load(e["snapshot"])
    assert hashlib.sha256(snap).hexdigest() == e["sha256"], "snapshot hash"
    assert rfc8785.dumps(json.loads(snap)) == snap, f"v{e['version']}: not RFC 8785 canonical"
    if e["delta"] is None:
        continue
    delta = json.loads(load(e["delta"]))
    prev = next(p for p in manifest["versions"] if p["sha256"] == delta["from"]["sha256"])
    doc = json.loads(load(prev["snapshot"]))
    result = jsonpatch.apply_patch(doc, delta["patch"])
    got = hashlib.sha256(rfc8785.dumps(result)).hexdigest()
    assert got == delta["to"]["sha256"], f"v{e['version']}: {got} != {delta['to']['sha256']}"
    checked += 1
print(f"checked {checked} deltas")
"#;

fn python() -> String {
    std::env::var("SNAPSYNC_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SNAPSYNC_TEST_PYTHON is not set: run the suite with scripts/test (it installs jsonpatch and rfc8785 into a venv)")
    })
}

#[test]
fn python_jsonpatch_reproduces_every_published_version() {
    let python = python();
    let server = HttpServer::start();
    let sb = Sandbox::new();
    let url = server.url("/data.json");
    let rec = |k: &str, extra: Value| json!({"country": {"key": k}, "v": extra});
    let versions = [
        json!([
            rec("a", json!(1)),
            rec("b", json!({"x": [1, 2, 3]})),
            rec("d", json!("é😀"))
        ]),
        // inserted in the middle, deep change, float
        json!([
            rec("a", json!(1.5)),
            rec("b", json!({"x": [1, 9, 3, 4]})),
            rec("c", json!(null)),
            rec("d", json!("é😀"))
        ]),
        // removed, member names that need pointer escapes and UTF-16 ordering
        json!([
            rec("a", json!({"a/b": 1, "m~n": 2, "\u{e000}": 3, "😀": 4})),
            rec("c", json!([true, false])),
            rec("d", json!(1e21))
        ]),
        // reordered records
        json!([
            rec("d", json!(-0.0)),
            rec("a", json!({"a/b": 2})),
            rec("c", json!([false]))
        ]),
    ];
    for v in &versions {
        server.set("/data.json", serde_json::to_vec(v).unwrap());
        let r = sb.sync(&url, &["--force"]);
        assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    }
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(CHECK)
        .arg(sb.store_dir())
        .arg(sb.dataset_dir("covid-countries").join("manifest.json"))
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("checked {} deltas", versions.len() - 1)
    );
}
