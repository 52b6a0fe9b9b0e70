//! Tests of the S3 store's pure parts: error lines and metadata names.

use std::collections::HashMap;

use super::errors::{describe_response, short_io};
use super::*;

#[test]
fn known_codes_become_one_line() {
    assert_eq!(
        describe_response(403, Some("SignatureDoesNotMatch"), Some("long text")).0,
        "signature does not match (wrong secret key? check AWS_SECRET_ACCESS_KEY)"
    );
    assert_eq!(
        describe_response(404, Some("NoSuchBucket"), None),
        ("bucket does not exist".to_string(), false)
    );
    assert!(describe_response(503, Some("SlowDown"), None).1);
    assert!(describe_response(500, Some("InternalError"), Some("oops")).1);
    assert!(!describe_response(400, Some("Weird"), Some("x")).1);
}

#[test]
fn io_causes_are_shortened() {
    assert_eq!(
        short_io("Connection refused (os error 111)"),
        "connection refused"
    );
}

#[test]
fn metadata_names_are_lower_case_without_the_amz_prefix() {
    let m = lower_metadata(Some(HashMap::from([
        ("Snapsync-Version".to_string(), "3".to_string()),
        ("x-amz-meta-a".to_string(), "b".to_string()),
    ])));
    assert_eq!(m.get("snapsync-version").map(String::as_str), Some("3"));
    assert_eq!(m.get("a").map(String::as_str), Some("b"));
}
