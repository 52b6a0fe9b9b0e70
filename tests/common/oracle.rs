//! The independent JSON Patch engine the property tests hold ours to: the `json-patch` crate,
//! written by other hands, applied one operation at a time so a failure names its index.

use serde_json::Value;
use snapsync::canonical::{to_canonical_vec, Document};
use snapsync::delta::PatchOp;

/// Applies `ops` to `doc` with `json-patch`: the canonical bytes of the result, or the index of
/// the first operation that fails (an operation whose pointer `json-patch` refuses to parse
/// fails where it stands).
pub fn apply(doc: &Document, ops: &[PatchOp]) -> Result<Vec<u8>, usize> {
    let mut tree = normalize(&doc.to_value());
    for (index, op) in ops.iter().enumerate() {
        // RFC 6902 allows `from` equal to `path`, and snapsync moves a value onto itself as a
        // no-op; `json-patch` removes first, which fails for the whole document.
        if matches!(op, PatchOp::Move { from, path } if from.is_empty() && path.is_empty()) {
            continue;
        }
        let mut op = serde_json::to_value(op).expect("an operation serializes");
        if let Some(value) = op.get_mut("value") {
            *value = normalize(value);
        }
        let op: json_patch::PatchOperation = serde_json::from_value(op).map_err(|_| index)?;
        json_patch::patch_unsafe(&mut tree, std::slice::from_ref(&op)).map_err(|_| index)?;
    }
    Ok(to_canonical_vec(&tree))
}

/// A value through its canonical text, so numbers that canonicalize alike (`2` and `2.0`)
/// compare alike in `test`, as they do in snapsync.
fn normalize(value: &Value) -> Value {
    serde_json::from_slice(&to_canonical_vec(value)).expect("canonical text parses")
}
