//! Guards: what new data must look like before it may become a version.
//!
//! A guard protects the history from a bad upstream day (an empty file, half the countries
//! missing, records without their key). A failed guard publishes nothing and names the rule;
//! `run --force` overrides the guards for one run, and says so in the log.

use tracing::warn;

use crate::canonical::{display_key, Document, KeyPointer, Record};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Guards {
    /// Fewest records a version may have (top-level arrays).
    pub min_records: u64,
    /// Largest fraction of records that may disappear from one version to the next.
    pub max_shrink: f64,
    /// Every record must have a value at the key pointer.
    pub require_key: bool,
    /// Two records may share a key.
    pub allow_duplicates: bool,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            min_records: 1,
            max_shrink: 0.5,
            require_key: true,
            allow_duplicates: false,
        }
    }
}

/// Checks `doc` against the guards; `prev_records` is the last version's record count.
pub fn check(
    dataset: &str,
    key: &KeyPointer,
    guards: &Guards,
    doc: &Document,
    prev_records: Option<u64>,
    force: bool,
) -> Result<()> {
    match violation(key, guards, doc, prev_records) {
        None => Ok(()),
        Some(reason) if force => {
            warn!(
                dataset,
                reason, "guard failed; publishing anyway because of --force"
            );
            Ok(())
        }
        Some(reason) => Err(Error::Guard {
            dataset: dataset.to_string(),
            reason,
        }),
    }
}

fn violation(
    key: &KeyPointer,
    guards: &Guards,
    doc: &Document,
    prev: Option<u64>,
) -> Option<String> {
    let Some(records) = doc.records() else {
        if key.is_none() {
            return None;
        }
        let kind = match doc.bytes().first() {
            Some(b'{') => "an object",
            Some(b'"') => "a string",
            Some(b'n') => "null",
            Some(b't' | b'f') => "a boolean",
            _ => "a number",
        };
        return Some(format!(
            "expected a top-level array of records keyed by {key}, found {kind}"
        ));
    };
    let n = records.len() as u64;
    if n < guards.min_records {
        return Some(if n == 0 {
            "the array of records is empty".to_string()
        } else {
            format!(
                "{n} records, fewer than the minimum of {}",
                guards.min_records
            )
        });
    }
    if let Some(prev) = prev.filter(|&p| p > 0) {
        let lost = prev.saturating_sub(n) as f64 / prev as f64;
        if lost > guards.max_shrink {
            return Some(format!(
                "record count fell from {prev} to {n} ({:.0}% fewer, more than the allowed {:.0}%)",
                lost * 100.0,
                guards.max_shrink * 100.0
            ));
        }
    }
    if key.is_none() {
        return None;
    }
    if guards.require_key {
        if let Some(i) = records.iter().position(|r| doc.key(r).is_none()) {
            return Some(format!("record {i} has no key at {key}"));
        }
    }
    if !guards.allow_duplicates {
        if let Some((first, i)) = first_duplicate(doc, records) {
            let k = doc.key(&records[i]).unwrap_or_default();
            return Some(format!(
                "duplicate key {:?} (records {first} and {i})",
                display_key(k)
            ));
        }
    }
    None
}

/// The first record (in document order) whose key an earlier record has, and that earlier
/// record. The records' indices are sorted by key rather than put in a hash map: 4 bytes a
/// record instead of ~50 (a million keys would take 52 MB, more than their document).
fn first_duplicate(doc: &Document, records: &[Record]) -> Option<(usize, usize)> {
    let key = |i: u32| doc.key(&records[i as usize]);
    let mut order: Vec<u32> = (0..records.len() as u32)
        .filter(|&i| key(i).is_some())
        .collect();
    order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)).then(a.cmp(&b)));
    // In each run of equal keys, the second index is a duplicate of the first.
    order
        .windows(2)
        .filter(|w| key(w[0]) == key(w[1]))
        .map(|w| (w[0] as usize, w[1] as usize))
        .min_by_key(|&(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn verdict(json: &str, prev: Option<u64>) -> Option<String> {
        let key = KeyPointer::parse("/id").unwrap();
        let doc = Document::from_json(json.as_bytes(), &key).unwrap();
        violation(&key, &Guards::default(), &doc, prev)
    }

    #[rstest]
    #[case::healthy(r#"[{"id":1},{"id":2}]"#, Some(2), None)]
    #[case::empty_array("[]", None, Some("empty"))]
    #[case::object_instead_of_array(r#"{"id":1}"#, None, Some("found an object"))]
    #[case::record_without_key(r#"[{"id":1},{"x":2}]"#, None, Some("record 1 has no key at /id"))]
    #[case::duplicate_keys(r#"[{"id":1},{"id":1}]"#, None, Some("duplicate key \"1\""))]
    #[case::first_duplicate_in_document_order(
        r#"[{"id":2},{"id":3},{"id":1},{"id":3},{"id":2},{"id":3}]"#,
        None,
        Some("duplicate key \"3\" (records 1 and 3)")
    )]
    #[case::shrank_too_much(r#"[{"id":1}]"#, Some(3), Some("fell from 3 to 1"))]
    #[case::shrank_within_limit(r#"[{"id":1},{"id":2}]"#, Some(4), None)]
    fn guards(#[case] json: &str, #[case] prev: Option<u64>, #[case] expect: Option<&str>) {
        let got = verdict(json, prev);
        match expect {
            None => assert_eq!(got, None),
            Some(part) => assert!(got.as_deref().unwrap_or("").contains(part), "{got:?}"),
        }
    }

    #[test]
    fn force_overrides() {
        let key = KeyPointer::parse("/id").unwrap();
        let doc = Document::from_json(b"[]", &key).unwrap();
        assert!(check("d", &key, &Guards::default(), &doc, None, false).is_err());
        assert!(check("d", &key, &Guards::default(), &doc, None, true).is_ok());
    }
}
