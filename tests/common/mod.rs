#![allow(dead_code)]

pub mod cli;
pub mod history;
pub mod http;
pub mod oracle;
pub mod proxy;
pub mod s3;
pub mod target;
pub mod workbook;
