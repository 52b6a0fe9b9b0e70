//! snapsync: a versioned, verifiable history of a remote JSON dataset in S3 or a directory.
//!
//! # Layout
//!
//! A run is data flowing one way, I/O at the edges and a pure middle. Modules in flow order:
//!
//! - [`config`], [`cli`], [`schedule`]: the validated configuration (datasets, schedules),
//!   at the bottom: it imports the option types each stage owns (`SourceOptions`,
//!   `TransformSpec`, `Guards`, …) and nothing of the glue (`sync`, `worker`, `remote`).
//! - [`source`]: the HTTP fetch (conditional GET, limits, retries, redaction).
//! - [`validate`]: guards a fetched document must pass.
//! - [`table`], `countries`, [`join`], [`transform`]: transforms, and the tables a join reads
//!   and matches (`countries`, the alias table, is the one module only the library uses).
//! - [`canonical`]: RFC 8785 canonical bytes, records and their sha256.
//! - [`plan`]: what to publish, as data; [`gzip`]: snapshot and delta compression; [`delta`]:
//!   diff, and apply to check it; [`changes`]: what a version changed, value by value, for
//!   people and query engines; [`views`]: the history page and the change table.
//! - [`keys`], [`manifest`]: every object key and metadata name; the version list.
//! - [`store`]: the narrow store trait (file, S3); [`probe`]: does it honour conditional writes.
//! - [`remote`]: a published dataset read and written through the store.
//! - [`sync`]: one run of one dataset, the glue of the above; [`db`]: SQLite state.
//! - [`worker`]: the long-running schedule; [`notify`]: webhooks and the dead-man ping after a
//!   run; [`consumer`]: `pull`; [`history`]: verify, restore, prune, the janitor; [`replay`]:
//!   recorded files through the pipeline.
//! - [`clock`], [`error`], [`tls`]: time passed in; the one error type; rustls's crypto.
//!
//! The commands (their glue and their output) belong to the binary (`src/commands/`), so no
//! `println!` lives in the library. The other modules stay public because the binary, the
//! benchmarks and the integration tests are separate crates that use them.
#![forbid(unsafe_code)]

pub use error::{Error, Result};

pub mod cli;
pub mod config;
pub mod schedule;

pub mod source;
pub mod validate;

mod countries;
pub mod join;
pub mod table;
pub mod transform;

pub mod canonical;
pub mod changes;
pub mod delta;
pub mod gzip;
pub mod pipe;
pub mod plan;

pub mod keys;
pub mod manifest;

pub mod probe;
pub mod remote;
pub mod store;

pub mod db;
pub mod sync;

pub mod consumer;
pub mod history;
pub mod notify;
pub mod replay;
pub mod views;
pub mod worker;

pub mod clock;
pub mod error;
pub mod progress;
pub mod tls;

/// Runs CPU-heavy or blocking work (parsing, hashing, gzip, file I/O) off the async executor
/// and waits for it; a panic in it is the caller's panic.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
