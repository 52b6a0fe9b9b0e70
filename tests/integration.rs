//! Every integration test in one test binary (`cargo test --test integration`), as
//! rustic_core's `tests/integration.rs` does: one link of the library and the S3 SDK instead
//! of one per file. Each former `tests/X.rs` is the module `integration::X`, in
//! `tests/integration/X.rs`; run one with `cargo test --test integration -- integration::X::`.
//! Helpers shared between them live in `tests/common/` (`crate::common`).
//!
//! Proptest keeps failing seeds in `<source>.proptest-regressions` beside each source file
//! (its default, `SourceParallel`, falls back to that when no `lib.rs`/`main.rs` is above the
//! file), so no directory under `tests/` may hold a `lib.rs` or `main.rs`.

#[macro_use]
mod common;

mod integration {
    mod cli;
    mod clocks;
    mod concurrency;
    mod consumer_python;
    mod delta_interop;
    mod delta_props;
    mod fault_injection;
    mod fuzz_props;
    mod generator;
    mod history;
    mod janitor;
    mod kills;
    mod local_state;
    mod notify;
    mod publish_protocol;
    mod record_wise;
    mod run;
    mod s3_cli;
    mod security;
    mod source_faults;
    mod spreadsheets;
    mod store_suite;
    mod transforms;
    mod views;
    mod worker;
}
