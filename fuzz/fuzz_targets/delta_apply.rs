//! Delta files from an untrusted store: parse (`snapsync-delta/1` JSON, or a bare JSON Patch)
//! and apply to a document parsed from the same input. Nothing may panic; whatever applies is
//! canonical JSON; the `json-patch` crate agrees on every outcome; and for two documents,
//! apply(diff(a, b), a) == b.
//!
//! Input: `doc \xff patch-or-delta [\xff second-doc]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapsync::canonical::{Document, KeyPointer};
use snapsync::delta::{apply_document, diff, Delta, PatchOp};

#[path = "../../tests/common/oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0xff);
    let (doc, patch, other) = (parts.next().unwrap_or_default(), parts.next(), parts.next());
    let key = KeyPointer::parse("/country/key").unwrap();
    let Ok(a) = Document::from_json(doc, &key) else {
        return;
    };
    if let Some(patch) = patch {
        let ops: Option<Vec<PatchOp>> = serde_json::from_slice::<Delta>(patch)
            .map(|d| d.patch.into_owned())
            .or_else(|_| serde_json::from_slice::<Vec<PatchOp>>(patch))
            .ok();
        if let Some(ops) = ops {
            let applied = apply_document(&a, &ops);
            if let Ok(out) = &applied {
                let again = Document::from_json(out, &KeyPointer::default())
                    .expect("an applied patch gives valid JSON");
                assert_eq!(again.bytes(), &out[..], "not canonical");
            }
            assert_eq!(
                applied.map_err(|e| e.index),
                oracle::apply(&a, &ops),
                "json-patch disagrees"
            );
        }
    }
    if let Some(other) = other {
        if let Ok(b) = Document::from_json(other, &key) {
            let d = diff(&a, &b);
            let out = apply_document(&a, &d.patch).expect("a diff applies to its base");
            assert_eq!(&out[..], b.bytes(), "apply(diff(a, b), a) != b");
        }
    }
});
