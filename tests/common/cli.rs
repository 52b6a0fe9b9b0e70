//! Running the real `snapsync` binary against a temporary directory, and reading what it
//! published the way a user would (plain files, `sha256sum`, `zcat`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

pub struct RunResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl RunResult {
    /// The last stdout line (the summary of the last dataset).
    pub fn summary(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
    /// `key=value` from the summary line.
    pub fn field(&self, name: &str) -> Option<String> {
        self.summary()
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
    }
    pub fn outcome(&self) -> &str {
        self.summary().split_whitespace().nth(1).unwrap_or("")
    }
}

impl std::fmt::Debug for RunResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn store_dir(&self) -> PathBuf {
        self.path().join("store")
    }
    pub fn db(&self) -> PathBuf {
        self.path().join("state.db")
    }
    pub fn dataset_dir(&self, dataset: &str) -> PathBuf {
        self.store_dir().join(dataset)
    }

    /// A command with the store and db of this sandbox and a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_snapsync"));
        c.current_dir(self.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("SNAPSYNC_") || k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env(
            "SNAPSYNC_STORE",
            format!("file://{}", self.store_dir().display()),
        )
        .env("SNAPSYNC_DB", self.db())
        .env("SNAPSYNC_RETRIES", "1")
        .env("SNAPSYNC_LOG_FORMAT", "logfmt")
        .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> RunResult {
        to_result(self.cmd(args).output().expect("snapsync runs"))
    }

    /// `snapsync run --url URL` plus extra args.
    pub fn sync(&self, url: &str, extra: &[&str]) -> RunResult {
        let mut args = vec!["run", "--url", url];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Every file under the store with its bytes: to show that a run wrote nothing.
    pub fn store_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.store_dir()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if !p.to_string_lossy().contains("/.snapsync/tmp") && !p.ends_with("lock") {
                    out.push((
                        p.strip_prefix(self.store_dir())
                            .unwrap()
                            .display()
                            .to_string(),
                        std::fs::read(&p).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    pub fn manifest(&self, dataset: &str) -> Value {
        serde_json::from_slice(
            &std::fs::read(self.dataset_dir(dataset).join("manifest.json"))
                .expect("manifest exists"),
        )
        .expect("manifest is JSON")
    }

    pub fn latest_bytes(&self, dataset: &str) -> Vec<u8> {
        std::fs::read(self.dataset_dir(dataset).join("latest.json")).expect("latest.json exists")
    }

    /// The store-relative object of a manifest key, decompressed.
    pub fn object_gunzipped(&self, key: &str) -> Vec<u8> {
        let raw = std::fs::read(self.store_dir().join(key)).expect("object exists");
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .expect("gzip");
        out
    }

    pub fn delta(&self, key: &str) -> Value {
        serde_json::from_slice(&self.object_gunzipped(key)).expect("delta is JSON")
    }
}

/// Runs `snapsync-gen` (the covid-shaped test data writer); fails the test with its stderr.
pub fn snapsync_gen(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_snapsync-gen"))
        .args(args)
        .output()
        .expect("snapsync-gen runs");
    assert!(
        o.status.success(),
        "snapsync-gen {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn to_result(o: Output) -> RunResult {
    RunResult {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Starts `snapsync worker` on `url` with one-second heartbeats and retries (logfmt on stderr).
pub fn spawn_worker(sb: &Sandbox, url: &str, extra: &[&str]) -> Child {
    let mut args = vec!["worker", "--url", url, "--heartbeat", "1", "--retry", "1"];
    args.extend_from_slice(extra);
    sb.cmd(&args)
        .env("SNAPSYNC_LOG_FORMAT", "logfmt")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker starts")
}

/// Sends SIGTERM, as Heroku does before a restart.
pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

/// Polls `cond` every 100 ms; fails the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
