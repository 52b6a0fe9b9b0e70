//! `snapsync.toml` with any content: resolving it never panics, and a refusal is one line.
#![no_main]

use clap::Parser as _;
use libfuzzer_sys::fuzz_target;
use snapsync::cli::Cli;
use snapsync::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let cli = Cli::try_parse_from(["snapsync", "run"]).unwrap();
    if let Err(e) = Config::from_text(&cli.global, &text, std::path::Path::new("snapsync.toml")) {
        assert!(!e.to_string().contains('\n'), "{e}");
    }
});
