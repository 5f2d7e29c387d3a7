//! Logging setup shared by every role, readiness notification and the
//! shutdown signal.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter: a level (error, warn, info, debug, trace) or tracing
    /// directives such as "info,syva::core=debug".
    #[arg(
        long,
        global = true,
        env = "SYVA_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,

    /// Log line format.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SYVA_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// Logs go to stderr (stdout is for command output).
pub fn init(args: &LogArgs) -> Result<(), String> {
    let mut filter =
        EnvFilter::try_new(&args.log).map_err(|e| format!("--log {:?}: {e}", args.log))?;
    // notify (file watching) logs at info every watch the kernel dropped with
    // its directory: routine on cgroupfs. Shown when asked for by name.
    if !args.log.contains("notify") {
        filter = filter.add_directive("notify=warn".parse().map_err(|e| format!("{e}"))?);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| format!("initializing logging: {e}"))
}

/// Tell systemd (Type=notify) that the service is ready. A no-op when not
/// started by systemd.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "sd_notify READY failed");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops this process");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}
