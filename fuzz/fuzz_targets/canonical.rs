//! The canonicalizer (RFC 8785) on any bytes: never panics; what it accepts serde_json accepts
//! too and canonicalizes the same way; canonical bytes are a fixed point; and loading stored
//! canonical bytes finds the same records and keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapsync::canonical::{to_canonical_vec, Document, KeyPointer};

fuzz_target!(|data: &[u8]| {
    let key = KeyPointer::parse("/country/key").unwrap();
    let Ok(doc) = Document::from_json(data, &key) else {
        return;
    };
    let again = Document::from_json(doc.bytes(), &key).expect("canonical bytes parse");
    assert_eq!(again.bytes(), doc.bytes(), "not a fixed point");
    let value: serde_json::Value = serde_json::from_slice(data).expect("serde_json agrees");
    assert_eq!(to_canonical_vec(&value), doc.bytes(), "two canonicalizers disagree");
    let loaded = Document::from_canonical(doc.shared_bytes(), &key, doc.sha256())
        .expect("stored bytes load");
    assert_eq!(loaded, doc);
});
