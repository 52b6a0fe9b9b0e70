//! The `snapsync` binary: parse the command line, set up logging, dispatch, and turn the result
//! into an exit status (see [`exit`]); 0 also when the reader of stdout closed it early.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;

use clap::FromArgMatches as _;
use snapsync::cli::{Cli, Command};
use snapsync::config::Config;
use snapsync::Error;
use tracing_subscriber::EnvFilter;

mod commands;

/// The exit statuses, the same for every command (README, "Exit status").
pub mod exit {
    /// A dataset or an operation failed, or `verify` found the history unsound.
    pub const FAILED: u8 = 1;
    /// The command line or the configuration is wrong; nothing was done.
    pub const USAGE: u8 = 2;
    /// `run --exit-code`: a dataset changed (with `--dry-run`: would change), none failed.
    pub const CHANGED: u8 = 3;
    /// `run` stopped by SIGINT (128 + 2) or SIGTERM (128 + 15) before it finished.
    pub const SIGINT: u8 = 130;
    pub const SIGTERM: u8 = 143;
}

fn main() -> ExitCode {
    // Known before parsing, so that a usage error is JSON too when JSON was asked for.
    let json = std::env::args_os().any(|a| a == "--json")
        || std::env::var("SNAPSYNC_JSON").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    let cli = match snapsync::cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, json),
    };
    init_logging(cli.global.log_format.as_deref());
    let every = std::time::Duration::try_from_secs_f64(cli.global.progress_secs)
        .unwrap_or(std::time::Duration::from_secs(10))
        .max(std::time::Duration::from_millis(100));
    commands::progress::install(
        std::io::stderr().is_terminal(),
        !cli.global.no_progress,
        every,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("snapsync: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    runtime.block_on(dispatch(cli))
}

/// clap's own errors: help and --version print as usual (status 0); a usage error exits 2,
/// as one JSON object on stderr under `--json`.
fn usage_error(e: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    let shown = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if shown || !json {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
    }
    // The message is the text before clap's "Usage:" and "For more information" paragraphs,
    // on one line.
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let message = message.join(" ");
    json_error(
        message.strip_prefix("error: ").unwrap_or(&message),
        exit::USAGE,
    )
}

fn json_error(message: &str, code: u8) -> ExitCode {
    let v = serde_json::json!({"error": message, "exit_code": code});
    let _ = writeln!(std::io::stderr(), "{v}");
    ExitCode::from(code)
}

async fn dispatch(cli: Cli) -> ExitCode {
    let json = cli.global.json;
    let config = match Config::resolve(&cli.global) {
        Ok(c) => c,
        Err(e) => return fail(&e.into(), json),
    };
    let result = match cli.command {
        Command::Run(mut args) => {
            args.json = json;
            let signals = Signals::listen();
            match commands::run(&config, &args, signals.token.clone()).await {
                Ok(reports) => return commands::run_status(&reports, &args, &signals),
                Err(e) => Err(e),
            }
        }
        Command::Status => commands::status(&config, json).await,
        Command::Log => commands::log(&config, json).await,
        Command::Worker(args) => commands::worker(&config, &args, Signals::listen().token).await,
        Command::Doctor => match commands::doctor(&config, json).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(exit::FAILED),
            Err(e) => Err(e),
        },
        Command::Pull(mut args) => {
            args.json = json;
            commands::pull(&config, args).await
        }
        Command::Restore(mut args) => {
            args.json = json;
            commands::restore(&config, args).await
        }
        Command::Verify(mut args) => {
            args.json = json;
            match commands::verify(&config, args).await {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(exit::FAILED),
                Err(e) => Err(e),
            }
        }
        Command::Replay(mut args) => {
            args.json = json;
            match commands::replay(&config, args).await {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(exit::FAILED),
                Err(e) => Err(e),
            }
        }
        Command::Prune(mut args) => {
            args.json = json;
            commands::prune(&config, args).await
        }
        Command::Diff(mut args) => {
            args.json = json;
            commands::diff(&config, args).await
        }
        Command::History(mut args) => {
            args.json = json;
            commands::history(&config, args).await
        }
        Command::Completions(args) => commands::completions(&args.shell),
        Command::Man => commands::man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, json),
    }
}

/// SIGTERM (Heroku's stop) and SIGINT (Ctrl-C): the first cancels `token` (a run finishes what
/// it has committed and abandons the rest); a second one exits at once.
pub struct Signals {
    pub token: tokio_util::sync::CancellationToken,
    /// The first signal's exit status ([`exit::SIGINT`] or [`exit::SIGTERM`]), 0 before one.
    got: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl Signals {
    fn listen() -> Signals {
        use std::sync::atomic::Ordering;
        let token = tokio_util::sync::CancellationToken::new();
        let got = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
        let (t, g) = (token.clone(), got.clone());
        // Registered before this returns, so a signal that comes as soon as the work starts
        // is already ours (not the default action, which would kill the process).
        use tokio::signal::unix::{signal, SignalKind};
        let streams = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        tokio::spawn(async move {
            let (Ok(mut term), Ok(mut int)) = streams else {
                tracing::warn!("cannot listen for SIGTERM/SIGINT; a signal stops snapsync at once");
                return;
            };
            loop {
                let (name, code) = tokio::select! {
                    _ = term.recv() => ("SIGTERM", exit::SIGTERM),
                    _ = int.recv() => ("SIGINT", exit::SIGINT),
                };
                if g.swap(code, Ordering::SeqCst) != 0 {
                    tracing::warn!("{name} again: exiting now (anything not committed is left as an orphan for the janitor)");
                    std::process::exit(i32::from(code));
                }
                tracing::info!("{name}: stopping (a second one exits at once)");
                t.cancel();
            }
        });
        Signals { token, got }
    }

    /// The exit status the signal asks for, if one came.
    pub fn status(&self) -> Option<u8> {
        Some(self.got.load(std::sync::atomic::Ordering::SeqCst)).filter(|&c| c != 0)
    }
}

fn fail(e: &anyhow::Error, json: bool) -> ExitCode {
    // `snapsync log | head -1`: the reader has what it wanted. Rust ignores SIGPIPE, so the
    // closed pipe arrives as a write error (see `commands::StdoutClosed`); it ends the
    // process quietly, with the status a shell pipeline expects of a successful writer.
    if commands::is_stdout_closed(e) {
        return ExitCode::SUCCESS;
    }
    let usage = matches!(e.downcast_ref::<Error>(), Some(Error::Config(_)));
    let code = if usage { exit::USAGE } else { exit::FAILED };
    if json {
        return json_error(&format!("{e:#}"), code);
    }
    // Best effort: with stderr closed too, there is nobody to tell.
    let _ = writeln!(std::io::stderr(), "snapsync: {e:#}");
    ExitCode::from(code)
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
    if format == Some("json") {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(|| commands::progress::AboveBars { logfmt: false })
            .init();
    } else if logfmt {
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
                    .with_writer(|| commands::progress::AboveBars { logfmt: true }),
            )
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(|| commands::progress::AboveBars { logfmt: false })
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
