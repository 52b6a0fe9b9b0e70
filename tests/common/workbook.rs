//! Workbooks written the way users' tools write them, by `tests/fixtures/workbooks.py` in the
//! test venv (`scripts/py-env.sh`: openpyxl, xlwt, msoffcrypto-tool). Without the venv these
//! tests fail rather than skip.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn python() -> String {
    std::env::var("SNAPSYNC_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SNAPSYNC_TEST_PYTHON is not set: run the suite with scripts/test (it installs openpyxl, xlwt and msoffcrypto-tool into a venv)")
    })
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workbooks.py")
}

/// Writes `sheets` (`[{"name": …, "rows": [[cell, …], …]}]`) as a `format` workbook at `out`.
pub fn write(format: &str, out: &Path, sheets: &Value) {
    let mut child = Command::new(python())
        .arg(script())
        .args(["write", format])
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("python runs");
    let spec = serde_json::json!({ "sheets": sheets });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "writing {}", out.display());
}

/// `workbooks.py COMMAND ARGS…` (encrypt, resave, setcell, pad).
pub fn tool(args: &[&str]) {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "workbooks.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
