//! Command-line flags of `syva file` and its `check` subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::client::DEFAULT_SOCKET;

/// Reconcile a directory of TOML zone policies into syva core, and attach
/// the cgroups their membership rules select as they appear.
///
/// Every `*.toml` file of the directory is one zone. On start the adapter
/// makes core hold exactly the zones the directory describes (only zones it
/// owns: source "file"), then applies every change within a second. A file
/// that becomes invalid is reported (log, metric, `syva ctl status`) and the
/// last valid version of its zone stays in force. See docs/file.md.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FileArgs {
    #[command(subcommand)]
    pub command: Option<FileCommand>,

    /// Directory of *.toml zone policies (one zone per file).
    #[arg(
        long,
        env = "SYVA_POLICY_DIR",
        value_name = "DIR",
        default_value = "/etc/syva/policies"
    )]
    pub policy_dir: PathBuf,

    /// Unix socket of syva core. The adapter waits (capped backoff) until it
    /// answers, and re-applies everything when core restarts.
    #[arg(long, env = "SYVA_CORE_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub core_socket: PathBuf,

    /// Root of the cgroup v2 hierarchy watched for membership rules; it must be
    /// the hierarchy syva core uses. Default: found in /proc/self/mountinfo.
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,

    /// Period of the full resync (re-read every file, rescan every cgroup,
    /// compare with core) that repairs drift and missed events.
    #[arg(long, default_value = "30s", value_parser = parse_period, value_name = "DURATION")]
    pub resync_interval: Duration,

    /// Quiet time after the last change in the policy directory before it is
    /// re-read (editors write files in several steps); changes are applied at
    /// most one second after the first event whatever this says.
    #[arg(long, default_value = "100ms", value_parser = parse_debounce, value_name = "DURATION")]
    pub debounce: Duration,

    /// Serve Prometheus metrics on http://ADDR/metrics (off by default).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Name of this adapter in core's status (`syva ctl status`); default: the
    /// policy directory.
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum FileCommand {
    /// Validate policy files without contacting syva core: print every error
    /// as FILE:LINE:COLUMN: MESSAGE and exit 0 when all are valid, 3 otherwise.
    Check {
        /// Directory to check (default: --policy-dir), or one .toml file.
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
}

fn parse_period(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s:?}: the resync interval must be at least 1s"));
    }
    Ok(d)
}

fn parse_debounce(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d > Duration::from_secs(1) {
        return Err(format!(
            "{s:?}: at most 1s (changes must apply within a second)"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_period("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_period("10ms").is_err());
        assert!(parse_period("soon").is_err());
        assert_eq!(parse_debounce("50ms"), Ok(Duration::from_millis(50)));
        assert!(parse_debounce("2s").is_err());
    }
}
