//! The `snapsync` binary: parse the command line, set up logging, dispatch, and turn the result
//! into an exit status (0 ok, 1 a dataset or operation failed, 2 usage or configuration; 0
//! also when the reader of stdout closed it early).
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;

use clap::Parser;
use snapsync::cli::{Cli, Command};
use snapsync::config::Config;
use snapsync::Error;
use tracing_subscriber::EnvFilter;

mod commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log_format.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("snapsync: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitCode {
    let config = match Config::resolve(&cli.global) {
        Ok(c) => c,
        Err(e) => return fail(&e.into()),
    };
    let result = match cli.command {
        Command::Run(args) => match commands::run(&config, &args).await {
            Ok(reports) if commands::any_failed(&reports) => return ExitCode::from(1),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
        Command::Status(args) => commands::status(&config, args.json).await,
        Command::Log(args) => commands::log(&config, args.json).await,
        Command::Worker(args) => commands::worker(&config, &args, shutdown_signal()).await,
        Command::Doctor => match commands::doctor(&config).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Pull(args) => commands::pull(&config, args).await,
        Command::Restore(args) => commands::restore(&config, args).await,
        Command::Verify(args) => match commands::verify(&config, args).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Replay(args) => match commands::replay(&config, args).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Prune(args) => commands::prune(&config, args).await,
        Command::Diff(args) => commands::diff(&config, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Cancelled on SIGTERM (Heroku's stop) or SIGINT (Ctrl-C).
fn shutdown_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = term => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        }
        t.cancel();
    });
    token
}

fn fail(e: &anyhow::Error) -> ExitCode {
    // `snapsync log | head -1`: the reader has what it wanted. Rust ignores SIGPIPE, so the
    // closed pipe arrives as a write error (see `commands::StdoutClosed`); it ends the
    // process quietly, with the status a shell pipeline expects of a successful writer.
    if commands::is_stdout_closed(e) {
        return ExitCode::SUCCESS;
    }
    // Best effort: with stderr closed too, there is nobody to tell.
    let _ = writeln!(std::io::stderr(), "snapsync: {e:#}");
    let usage = matches!(e.downcast_ref::<Error>(), Some(Error::Config(_)));
    ExitCode::from(if usage { 2 } else { 1 })
}

/// Crates whose debug and trace events print URLs with their credentials (hyper's pool logs a
/// redirect target's `user:password@`; aws-config, aws-runtime, aws-sigv4, the S3 SDK and
/// smithy the `AWS_ENDPOINT_URL` they read): capped at info unless the filter names the same
/// target or a prefix of it. Targets match by prefix, so `hyper` covers `hyper_util` and `aws`
/// every `aws_*` crate; a longer directive (`hyper_util=trace`) still wins for its own target.
const NOISY_TARGETS: [&str; 5] = ["hyper", "reqwest", "aws", "rustls", "h2"];

/// Text on a terminal, logfmt otherwise (Heroku's log router and grep both like it).
/// `SNAPSYNC_LOG` (or `RUST_LOG`) sets the filter; default `info`.
fn init_logging(format: Option<&str>) {
    let text = std::env::var("SNAPSYNC_LOG")
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok())
        .or_else(|| {
            std::env::var("RUST_LOG")
                .ok()
                .filter(|f| EnvFilter::try_new(f).is_ok())
        })
        // The credentials chain warns, with a page of debug output, for each provider that
        // finds nothing; the S3 store says what is missing in one line instead.
        .unwrap_or_else(|| {
            "info,rusqlite_migration=warn,aws_config::meta::credentials=error".to_string()
        });
    let filter = EnvFilter::new(capped(&text));
    let tty = std::io::stderr().is_terminal();
    let logfmt = match format {
        Some("logfmt") => true,
        Some(_) => false,
        None => !tty,
    };
    snapsync::sync::set_l2met(logfmt);
    if logfmt {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(filter)
            .with(
                // A run's events carry its span's fields (`dataset=`) and name (`span=run`);
                // the path adds nothing with one level of spans.
                tracing_logfmt::builder()
                    .with_span_path(false)
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(tty)
            .compact()
            .init();
    }
}

/// `filter` plus `TARGET=info` for each of [`NOISY_TARGETS`] that it does not name (itself or
/// by a prefix).
fn capped(filter: &str) -> String {
    let named: Vec<&str> = filter
        .split(',')
        .filter_map(|d| d.split(['=', '[']).next())
        .map(str::trim)
        .filter(|t| {
            let level = ["off", "error", "warn", "info", "debug", "trace"]
                .iter()
                .any(|l| t.eq_ignore_ascii_case(l));
            !t.is_empty() && !level && !t.bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    let mut out = filter.trim().trim_end_matches(',').to_string();
    for target in NOISY_TARGETS {
        if !named.iter().any(|n| target.starts_with(n)) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(target);
            out.push_str("=info");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::capped;

    #[test]
    fn third_party_targets_stay_at_info_unless_named() {
        assert_eq!(
            capped("trace"),
            "trace,hyper=info,reqwest=info,aws=info,rustls=info,h2=info"
        );
        // Named ones keep the level asked for (a longer target wins in EnvFilter anyway).
        assert_eq!(
            capped("debug,hyper_util=trace,aws=debug"),
            "debug,hyper_util=trace,aws=debug,hyper=info,reqwest=info,rustls=info,h2=info"
        );
        assert_eq!(
            capped("info,"),
            "info,hyper=info,reqwest=info,aws=info,rustls=info,h2=info"
        );
        assert!(capped("").starts_with("hyper=info"));
    }
}
