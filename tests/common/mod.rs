#![allow(dead_code)]

pub mod cli;
pub mod http;
pub mod s3;
