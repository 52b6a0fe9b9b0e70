//! Deltas: an RFC 6902 JSON Patch from one canonical document to the next, and its application.
//!
//! Diff: records of a top-level array are matched by their key wherever they sit, because the
//! real upstream re-sorts its records every day and a position means nothing. A record that
//! changed position is one RFC 6902 `move` (the fewest moves the two key orders allow: only
//! records outside a longest common subsequence move), never a `remove` plus an `add` of its
//! whole body; `added`/`removed` are exactly the keys that appeared and disappeared. Equal
//! records are skipped by comparing their canonical bytes, and only changed pairs are parsed
//! and diffed recursively, replacing values at the deepest changed path. Records without
//! unique keys are aligned by content with `similar` instead (one inserted record is one
//! `add`).
//!
//! Apply is written independently of diff, because the run uses it to *check* its own delta
//! before publishing: the patch is applied to the previous document and the canonical result
//! must hash to the new version. It works record by record, parsing at most one record at a
//! time, so checking a delta of a 30 MB dataset never holds the whole tree in memory.
//!
//! This file holds the delta format's types (the patch operations, the summary and change
//! list, the delta file, [`ApplyError`]); `diff` computes a patch and `apply` applies one.
//! Both are re-exported here, so callers name everything as `delta::X`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const FORMAT: &str = "snapsync-delta/1";

/// One RFC 6902 operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
    Move { from: String, path: String },
    Copy { from: String, path: String },
    Test { path: String, value: Value },
}

impl PatchOp {
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. }
            | PatchOp::Remove { path }
            | PatchOp::Replace { path, .. }
            | PatchOp::Move { path, .. }
            | PatchOp::Copy { path, .. }
            | PatchOp::Test { path, .. } => path,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            PatchOp::Add { .. } => "add",
            PatchOp::Remove { .. } => "remove",
            PatchOp::Replace { .. } => "replace",
            PatchOp::Move { .. } => "move",
            PatchOp::Copy { .. } => "copy",
            PatchOp::Test { .. } => "test",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub added: u64,
    pub removed: u64,
    /// Records that kept their key but changed position (one `move` each). Absent from deltas
    /// written before moves existed, which never moved a record.
    #[serde(default)]
    pub moved: u64,
    pub changed: u64,
}

/// What happened to one record (one entry per key). `op` says what happened to its content;
/// `moved` whether its position changed too: `{"op":"moved","moved":true}` is a record that
/// only moved, `{"op":"changed","moved":true}` one that moved and changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    pub op: ChangeKind,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moved: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
    /// Moved, content unchanged.
    Moved,
}

/// What changed between two documents: the patch plus a per-record account of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub patch: Vec<PatchOp>,
    /// The changed records' values ([`crate::changes::value_changes`]), when the run computed
    /// them (keyed records only). Not part of the delta file.
    pub values: Option<Vec<crate::changes::ValueChange>>,
    /// Their counts (the manifest's `values`), when computed without or with the list.
    pub counts: Option<crate::changes::ValueCounts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    pub version: u64,
    pub sha256: String,
}

/// The delta file, as docs/design.md specifies it. Borrows its change list and patch when
/// writing (a delta can hold hundreds of thousands of operations), owns them when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta<'a> {
    pub format: String,
    pub dataset: String,
    pub from: VersionRef,
    pub to: VersionRef,
    pub created_at: String,
    pub summary: Summary,
    pub changes: Cow<'a, [Change]>,
    pub patch: Cow<'a, [PatchOp]>,
}

/// Alignment of long arrays gives up on optimality after this long (the result stays correct,
/// Why a patch does not apply: which operation, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("patch operation {index} ({op} {path}): {reason}")]
pub struct ApplyError {
    pub index: usize,
    pub op: &'static str,
    pub path: String,
    pub reason: String,
}

mod apply;
mod diff;
mod stream;

pub use apply::{
    apply_and_compare, apply_document, apply_document_into, apply_document_records, AppliedRecord,
};
pub use diff::{diff, diff_raw, plan, Planned};
pub use stream::{
    apply_delta, check_delta, check_delta_read, write_delta, Between, DeltaBytes, DeltaError,
    Rewind,
};

#[cfg(test)]
mod tests;
