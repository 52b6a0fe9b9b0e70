#![allow(dead_code)]

pub mod cli;
pub mod history;
pub mod http;
pub mod proxy;
pub mod receivers;
pub mod s3;
pub mod target;
pub mod workbook;
