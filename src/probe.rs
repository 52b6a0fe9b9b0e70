//! The store probe (`doctor`, and the gate before publishing): can we write here, and does the
//! server honour conditional writes?
//!
//! Publishing is only safe with two writers if `If-None-Match: *` and `If-Match` are enforced
//! (docs/design.md "Stores"); some S3-compatible servers accept the headers and silently overwrite.
//! Reading the server's documentation is not enough, so the probe *tries*: it writes one small
//! gzip object under the prefix, reads it back, then attempts a `Create` over it and an `Update`
//! with a wrong ETag — both must be refused — and an `Update` with the right ETag, which must
//! succeed. The verdict is `Ignored` as soon as one refused write goes through, and `Unknown`
//! when the probe could not get that far. The probe object is always deleted at the end.
//!
//! A step the store failed keeps its [`Error`] (the publish gate reports it by kind); every
//! detail is one line, which the stores keep free of secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;

use bytes::Bytes;

use crate::error::Error;
use crate::store::{ConditionalWrites, PutMode, PutOptions, Store};

const PROBE_META: &str = "snapsync-probe";

/// One step of the probe, in the order it ran.
#[derive(Debug)]
pub struct ProbeStep {
    pub name: &'static str,
    pub ok: bool,
    /// What it found, in one line.
    pub detail: String,
    /// The store's error, when that is what failed the step (else the step found the server
    /// doing something wrong, said in `detail`).
    pub error: Option<Error>,
}

#[derive(Debug)]
pub struct ProbeReport {
    /// The probe object's key (deleted again unless the `delete` step failed).
    pub key: String,
    pub steps: Vec<ProbeStep>,
    pub conditional_writes: ConditionalWrites,
}

impl ProbeReport {
    /// Every step passed and the server honours conditional writes.
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok) && self.conditional_writes == ConditionalWrites::Honoured
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            let mark = if s.ok { "ok  " } else { "FAIL" };
            writeln!(f, "{mark} {:<22} {}", s.name, s.detail)?;
        }
        let verdict = match self.conditional_writes {
            ConditionalWrites::Honoured => "honoured (safe with concurrent writers)",
            ConditionalWrites::Ignored => {
                "IGNORED (the server overwrites; run a single writer only)"
            }
            ConditionalWrites::Unknown => "unknown (the probe did not get far enough)",
        };
        write!(f, "conditional writes: {verdict}")
    }
}

/// Runs the probe under `prefix_key_base` (usually the store's prefix; empty for the bucket root).
pub async fn probe(store: &dyn Store, prefix_key_base: &str) -> ProbeReport {
    let token = format!("{:016x}", rand::random::<u64>());
    let base = prefix_key_base.trim_matches('/');
    let key = if base.is_empty() {
        format!(".snapsync-probe-{token}")
    } else {
        format!("{base}/.snapsync-probe-{token}")
    };
    let mut run = Probe {
        store,
        key: key.clone(),
        steps: Vec::new(),
    };
    let verdict = run.conditional_steps(&token).await;
    // Always clean up, whatever happened above.
    match store.delete(&key).await {
        Ok(()) => match store.head(&key).await {
            Ok(None) => run.pass("delete", "probe object removed"),
            Ok(Some(_)) => run.fail("delete", "the object is still there after DELETE"),
            Err(e) => run.failed("delete", e),
        },
        Err(e) => run.failed("delete", e),
    }
    ProbeReport {
        key,
        steps: run.steps,
        conditional_writes: verdict,
    }
}

struct Probe<'a> {
    store: &'a dyn Store,
    key: String,
    steps: Vec<ProbeStep>,
}

impl Probe<'_> {
    fn pass(&mut self, name: &'static str, detail: impl fmt::Display) {
        self.steps.push(ProbeStep {
            name,
            ok: true,
            detail: detail.to_string(),
            error: None,
        });
    }

    fn fail(&mut self, name: &'static str, detail: impl fmt::Display) {
        self.steps.push(ProbeStep {
            name,
            ok: false,
            detail: detail.to_string(),
            error: None,
        });
    }

    fn failed(&mut self, name: &'static str, error: Error) {
        self.steps.push(ProbeStep {
            name,
            ok: false,
            detail: error.to_string(),
            error: Some(error),
        });
    }

    fn opts(&self, mode: PutMode, token: &str) -> PutOptions {
        PutOptions::gzip_json(mode).with_metadata(BTreeMap::from([(
            PROBE_META.to_string(),
            token.to_string(),
        )]))
    }

    async fn conditional_steps(&mut self, token: &str) -> ConditionalWrites {
        let body = probe_body(token);
        let store = self.store;

        // 1. Plain write access.
        let mut etag = match store
            .put(
                &self.key,
                body.clone(),
                self.opts(PutMode::Overwrite, token),
            )
            .await
        {
            Ok(etag) => {
                self.pass("put", format!("wrote {} ({} bytes)", self.key, body.len()));
                etag
            }
            Err(e) => {
                self.failed("put", e);
                return ConditionalWrites::Unknown;
            }
        };

        // 2. Metadata and Content-Encoding come back as sent.
        match store.head(&self.key).await {
            Ok(Some(meta)) => {
                let mut problems = Vec::new();
                if meta.metadata.get(PROBE_META).map(String::as_str) != Some(token) {
                    problems.push(format!(
                        "user metadata did not round-trip (got {:?})",
                        meta.metadata
                    ));
                }
                if meta.content_encoding.as_deref() != Some("gzip") {
                    problems.push(format!(
                        "Content-Encoding is {:?}, expected \"gzip\"",
                        meta.content_encoding
                    ));
                }
                if meta.size != body.len() as u64 {
                    problems.push(format!("size is {}, expected {}", meta.size, body.len()));
                }
                if problems.is_empty() {
                    self.pass("head", "metadata and Content-Encoding round-trip");
                } else {
                    self.fail("head", problems.join("; "));
                }
            }
            Ok(None) => self.fail("head", "the object just written is missing"),
            Err(e) => self.failed("head", e),
        }

        // 3. The bytes come back unchanged (not decompressed, not re-encoded).
        match store.get(&self.key).await {
            Ok(Some((bytes, _))) if bytes == body => self.pass("get", "bytes round-trip"),
            Ok(Some((bytes, _))) => self.fail(
                "get",
                format!(
                    "got {} bytes that differ from the {} written",
                    bytes.len(),
                    body.len()
                ),
            ),
            Ok(None) => self.fail("get", "the object just written is missing"),
            Err(e) => self.failed("get", e),
        }

        // 4./5. Writes that must be refused.
        let mut ignored = false;
        let mut unknown = false;
        let refused = [
            ("create-existing", PutMode::Create),
            (
                "update-wrong-etag",
                PutMode::Update("\"wrong-etag\"".to_string()),
            ),
        ];
        for (name, mode) in refused {
            match store
                .put(&self.key, body.clone(), self.opts(mode, token))
                .await
            {
                Err(Error::PreconditionFailed { .. }) => {
                    self.pass(name, "refused with 412 Precondition Failed")
                }
                Ok(new_etag) => {
                    ignored = true;
                    etag = new_etag;
                    self.fail(name, "the server accepted a write it had to refuse");
                }
                Err(e) => {
                    unknown = true;
                    self.failed(name, e);
                }
            }
        }

        // 6. The write that must go through.
        match store
            .put(
                &self.key,
                body.clone(),
                self.opts(PutMode::Update(etag), token),
            )
            .await
        {
            Ok(_) => self.pass("update-right-etag", "accepted"),
            Err(e) => {
                unknown = true;
                self.failed("update-right-etag", e);
            }
        }

        if ignored {
            ConditionalWrites::Ignored
        } else if unknown {
            ConditionalWrites::Unknown
        } else {
            ConditionalWrites::Honoured
        }
    }
}

/// A tiny real gzip body, so a server or proxy that decodes or re-encodes it is caught.
fn probe_body(token: &str) -> Bytes {
    let json = format!("{{\"snapsync-probe\":\"{token}\"}}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(json.as_bytes());
    Bytes::from(gz.finish().unwrap_or_default())
}

/// How long a probe verdict is trusted before `run` probes the store again.
const PROBE_TTL: time::Duration = time::Duration::days(7);

/// Whether publishing to `store` is safe with concurrent writers: what the store says of
/// itself, else the cached verdict of a probe, else a fresh probe (cached in `db`).
pub async fn conditional_writes(
    store: &dyn Store,
    db: &crate::db::Db,
    now: time::OffsetDateTime,
) -> crate::error::Result<ConditionalWrites> {
    let known = store.conditional_writes();
    if known != ConditionalWrites::Unknown {
        return Ok(known);
    }
    if let Some((honoured, at)) = db.store_probe(store.url()).await? {
        let fresh = crate::keys::parse_rfc3339(&at).is_some_and(|t| now - t < PROBE_TTL);
        if fresh {
            return Ok(if honoured {
                ConditionalWrites::Honoured
            } else {
                ConditionalWrites::Ignored
            });
        }
    }
    let report = probe(store, store.prefix()).await;
    if let Some(failed) = report.steps.iter().find(|s| !s.ok) {
        if report.conditional_writes == ConditionalWrites::Unknown {
            // A store error names store and key already: keep its reason and say what we
            // were doing, without repeating them.
            let reason = match &failed.error {
                Some(Error::Store { reason, .. }) => reason.clone(),
                Some(e) => e.to_string(),
                None => failed.detail.clone(),
            };
            return Err(Error::Store {
                store: store.url().to_string(),
                key: report.key.clone(),
                reason: format!("{reason} (while checking that the store honours conditional writes, at step {})", failed.name),
                retryable: true,
            });
        }
    }
    let honoured = report.conditional_writes == ConditionalWrites::Honoured;
    db.save_store_probe(store.url(), honoured, &crate::keys::rfc3339(now))
        .await?;
    Ok(report.conditional_writes)
}

/// The gate before publishing: refuses a store that ignores conditional writes, unless told
/// that only one writer exists (there, two writers could overwrite each other's commit point).
/// A store that cannot be reached yet is a retryable error.
pub async fn check_safe_to_publish(
    store: &dyn Store,
    db: &crate::db::Db,
    now: time::OffsetDateTime,
    single_writer: bool,
) -> Result<(), Error> {
    match conditional_writes(store, db, now).await? {
        ConditionalWrites::Ignored if single_writer => {
            tracing::warn!(
                store = store.url(),
                "the store ignores conditional writes; publishing anyway because --single-writer says only one snapsync writes here"
            );
            Ok(())
        }
        ConditionalWrites::Ignored => Err(Error::Config(format!(
            "store {} ignores If-None-Match/If-Match on PUT, so two writers could overwrite each other's versions; \
             refusing to publish (run a single writer and pass --single-writer or SNAPSYNC_SINGLE_WRITER=true)",
            store.url()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::file::FileStore;

    #[tokio::test]
    async fn file_store_honours_conditional_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let report = probe(&store, "some/prefix").await;
        assert!(report.ok(), "{report}");
        assert_eq!(report.conditional_writes, ConditionalWrites::Honoured);
        assert!(store.list("").await.unwrap().is_empty(), "probe cleaned up");
    }
}
