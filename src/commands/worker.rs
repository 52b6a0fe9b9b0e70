//! `snapsync worker`: the long-running schedule, after the store passes the publish gate.

use snapsync::config::Config;

use crate::commands::{check_safe_to_publish, deps};

/// `snapsync worker`: until `shutdown`.
pub async fn worker(
    config: &Config,
    args: &snapsync::cli::WorkerArgs,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let opts = snapsync::worker::WorkerOptions::from_args(args, config.source.allow_insecure_http)?;
    let deps = deps(config).await?;
    // A store that is down when the dyno starts is waited for, not a reason to crash-loop.
    loop {
        match check_safe_to_publish(&deps, config.single_writer).await {
            Ok(()) => break,
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "cannot check the store yet; retrying in a minute");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(opts.retry_base) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let clock = deps.clock.clone();
    snapsync::worker::run(deps, config.datasets.clone(), opts, clock, shutdown).await;
    Ok(())
}
