//! Tests of resolving the configuration: defaults, flags over the file, the file's errors, the
//! source settings, and what is refused.

use super::*;
use clap::Parser;

fn resolve(argv: &[&str], toml: Option<&str>) -> Result<Config> {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["snapsync".into()];
    args.extend(argv.iter().map(|s| s.to_string()));
    if let Some(t) = toml {
        let p = dir.path().join("snapsync.toml");
        std::fs::write(&p, t).unwrap();
        args.push("--config".into());
        args.push(p.display().to_string());
    }
    args.push("run".into());
    let cli = crate::cli::Cli::try_parse_from(args).unwrap();
    Config::resolve(&cli.global)
}

#[test]
fn defaults_sync_covid_into_the_current_directory() {
    let c = resolve(&[], None).unwrap();
    assert_eq!(
        c.store,
        StoreUrl::File {
            dir: "./snapsync-data".into()
        }
    );
    assert_eq!(c.db, PathBuf::from("./snapsync.db"));
    assert_eq!(c.datasets.len(), 1);
    assert_eq!(c.datasets[0].name, "covid-countries");
    assert_eq!(c.datasets[0].url, DEFAULT_URL);
    assert_eq!(c.datasets[0].key.as_str(), "/country/key");
}

#[test]
fn flags_win_over_the_file() {
    let toml = "db = \"x.db\"\n[store]\nurl = \"s3://bucket-a/p\"\n[[dataset]]\nname = \"a\"\nurl = \"https://example.com/a.json\"\n";
    let c = resolve(&["--store", "file:///tmp/s"], Some(toml)).unwrap();
    assert_eq!(
        c.store,
        StoreUrl::File {
            dir: "/tmp/s".into()
        }
    );
    assert_eq!(c.db, PathBuf::from("x.db"));
    assert_eq!(c.datasets[0].name, "a");
}

#[test]
fn file_errors_name_file_line_and_field() {
    let err = resolve(&[], Some("[store]\nurl = \"s3://b/p\"\nbogus = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("snapsync.toml:3:1"), "{err}");
    assert!(err.contains("bogus"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn source_settings_come_from_flags_and_the_file() {
    let toml = "[source]\ntimeout_secs = 5\nconnect_timeout_secs = 2\ntotal_timeout_secs = 60\n\
                retries = 1\nretry_backoff_ms = 50\nmax_bytes = 1000\n\
                [[dataset]]\nname = \"a\"\nurl = \"http://data.example.com/a.json\"\n\
                allow_insecure_http = true\n";
    let s = resolve(&["--retry-backoff-ms", "7"], Some(toml))
        .unwrap()
        .source;
    assert_eq!(s.read_timeout, Duration::from_secs(5));
    assert_eq!(s.connect_timeout, Duration::from_secs(2));
    assert_eq!(s.total_timeout, Duration::from_secs(60));
    assert_eq!((s.retries, s.max_bytes), (1, 1000));
    assert_eq!(s.backoff, Duration::from_millis(7));
    assert!(!s.allow_insecure_http);
    assert_eq!(s.insecure_http_hosts, vec!["data.example.com".to_string()]);
    let s = resolve(&["--timeout", "0.5"], None).unwrap().source;
    assert_eq!(s.connect_timeout, Duration::from_millis(500));
    assert!(resolve(&["--connect-timeout", "0"], None).is_err());
}

#[test]
fn the_default_body_limit_fits_a_small_machine() {
    assert_eq!(resolve(&[], None).unwrap().source.max_bytes, 256 << 20);
}

#[test]
fn names_of_the_stores_own_entries_are_refused_before_any_fetch() {
    for name in [".snapsync", ".snapsync-probe-1", ".hidden"] {
        let toml = format!("[[dataset]]\nname = \"{name}\"\nurl = \"https://e.com/x\"\n");
        let err = resolve(&[], Some(&toml)).unwrap_err().to_string();
        assert!(err.contains("not start with '.'"), "{name}: {err}");
        assert!(resolve(&["--dataset", name], None).is_err(), "{name}");
    }
}

#[test]
fn file_sources_of_a_config_stay_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("snapsync.toml");
    let inside = dir.path().join("d.json");
    let args = |extra: &[&str]| {
        let mut argv = vec!["snapsync"];
        argv.extend_from_slice(extra);
        argv.push("run");
        crate::cli::Cli::try_parse_from(argv).unwrap().global
    };
    let with = |url: &str, extra: &[&str]| {
        let toml = format!("[[dataset]]\nname = \"a\"\nurl = \"{url}\"\n");
        Config::from_text(&args(extra), &toml, &config)
    };
    assert!(with(&format!("file://{}", inside.display()), &[]).is_ok());
    let err = with("file:///etc/passwd", &[]).unwrap_err().to_string();
    assert!(
        err.contains(
            "[[dataset]] #1: file source /etc/passwd is outside the configuration file's directory"
        ),
        "{err}"
    );
    let dotdot = format!("file://{}/../x.json", dir.path().display());
    assert!(with(&dotdot, &[]).is_err());
    assert!(with("file:///etc/passwd", &["--allow-files-outside"]).is_ok());
    // The command line's own source may be anywhere.
    assert!(with("https://e.com/x", &["--url", "file:///etc/passwd"]).is_ok());
}

#[test]
fn bad_values_are_refused() {
    assert!(resolve(&["--dataset", "../etc"], None)
        .unwrap_err()
        .to_string()
        .contains("must match"));
    assert!(resolve(&["--url", "http://example.com/x"], None)
        .unwrap_err()
        .to_string()
        .contains("loopback"));
    assert!(resolve(&["--key", "country"], None)
        .unwrap_err()
        .to_string()
        .contains("must start with '/'"));
    assert!(resolve(&["--store", "ftp://x"], None).is_err());
    let dup = "[[dataset]]\nname = \"a\"\nurl = \"https://e.com/1\"\n[[dataset]]\nname = \"a\"\nurl = \"https://e.com/2\"\n";
    assert!(resolve(&[], Some(dup))
        .unwrap_err()
        .to_string()
        .contains("twice"));
}

#[test]
fn derived_patterns_default_for_covid_and_are_checked_in_the_file() {
    let c = resolve(&[], None).unwrap();
    let patterns: Vec<&str> = c.datasets[0].derived.iter().map(|p| p.as_str()).collect();
    assert_eq!(patterns, ["/dates/*/cumulative"]);
    let ds = "[[dataset]]\nname = \"a\"\nurl = \"https://example.com/a.json\"\n";
    let c = resolve(&[], Some(&format!("{ds}derived = [\"/x/*/total\"]\n"))).unwrap();
    assert_eq!(c.datasets[0].derived[0].as_str(), "/x/*/total");
    let c = resolve(&[], Some(ds)).unwrap();
    assert!(c.datasets[0].derived.is_empty(), "none unless configured");
    let err = resolve(&[], Some(&format!("{ds}derived = [\"dates\"]\n")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("derived pattern \"dates\"") && err.contains("expected a JSON Pointer"),
        "{err}"
    );
}
