//! [`Chain`]: a history walked version by version from version 1's snapshot (which `prune`
//! always keeps) through every delta, each step checked by hash: what `history KEY` and the
//! views' repair read.

use crate::canonical::{Document, KeyPointer};
use crate::delta::Delta;
use crate::error::{Error, Result};
use crate::manifest::Entry;
use crate::remote::{apply_step_into, read_delta, read_document};
use crate::store::DynStore;

/// One version reached: its entry, its document, and the delta that led to it from the
/// version before (whose document is `prev`). Version 1 has neither.
pub struct Step<'c> {
    pub entry: &'c Entry,
    pub prev: Option<&'c Document>,
    pub doc: &'c Document,
    pub delta: Option<&'c Delta<'static>>,
}

pub struct Chain<'a> {
    store: &'a DynStore,
    key: KeyPointer,
    versions: &'a [Entry],
    next: usize,
    prev: Option<Document>,
    doc: Option<Document>,
    delta: Option<Delta<'static>>,
}

impl<'a> Chain<'a> {
    /// `versions` must start at version 1 (a manifest's list).
    pub fn new(store: &'a DynStore, key: &KeyPointer, versions: &'a [Entry]) -> Self {
        Chain {
            store,
            key: key.clone(),
            versions,
            next: 0,
            prev: None,
            doc: None,
            delta: None,
        }
    }

    /// The next version, or `None` after the last one.
    pub async fn step(&mut self) -> Result<Option<Step<'_>>> {
        let Some(entry) = self.versions.get(self.next) else {
            return Ok(None);
        };
        let url = self.store.url();
        match self.doc.take() {
            None => {
                let snapshot = entry.live_snapshot().ok_or_else(|| {
                    Error::corrupt(
                        url,
                        &entry.snapshot,
                        format!("version {}'s snapshot was pruned", entry.version),
                    )
                })?;
                self.doc =
                    Some(read_document(self.store, snapshot, &self.key, &entry.sha256).await?);
                self.prev = None;
                self.delta = None;
            }
            Some(prev) => {
                let key = entry.delta.as_deref().ok_or_else(|| {
                    Error::corrupt(
                        url,
                        &entry.snapshot,
                        format!("version {} has no delta", entry.version),
                    )
                })?;
                let (text, _) = read_delta(self.store, key).await?;
                // The buffer of the version before `prev` (unless a caller kept it).
                let spare = self.prev.take().and_then(Document::into_buffer);
                let (doc, delta) = apply_step_into(&text, &prev, entry, spare.unwrap_or_default())
                    .map_err(|why| Error::corrupt(url, key, why))?;
                self.doc = Some(doc);
                self.prev = Some(prev);
                self.delta = Some(delta);
            }
        }
        self.next += 1;
        Ok(Some(Step {
            entry,
            prev: self.prev.as_ref(),
            doc: self.doc.as_ref().expect("just set"),
            delta: self.delta.as_ref(),
        }))
    }
}
