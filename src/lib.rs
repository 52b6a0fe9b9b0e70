//! snapsync: a versioned, verifiable history of a remote JSON dataset in S3 or a directory.
//!
//! A run is data flowing one way: fetch (`source`) → validate → canonicalize and hash
//! (`canonical`) → plan (`plan`) → diff and verify (`delta`) → publish (`sync`, through the
//! `store` trait) → record (`db`). The middle is pure; I/O stays at the edges.
#![forbid(unsafe_code)]

pub mod canonical;
pub mod countries;
pub mod delta;
pub mod doctor;
pub mod error;
pub mod history;
pub mod join;
pub mod keys;
pub mod store;
pub mod table;
pub mod transform;

pub use error::{Error, Result};
pub mod cli;
pub mod clock;
pub mod commands;
pub mod commands_history;
pub mod config;
pub mod consumer;
pub mod db;
pub mod gzip;
pub mod manifest;
pub mod plan;
pub mod remote;
pub mod schedule;
pub mod source;
pub mod sync;
pub mod validate;
pub mod worker;
