#![allow(dead_code)]

pub mod cli;
pub mod env;
pub mod history;
pub mod http;
pub mod machine;
pub mod manifest;
pub mod oracle;
pub mod proxy;
pub mod receivers;
pub mod s3;
#[macro_use]
pub mod store;
pub mod target;
pub mod workbook;
