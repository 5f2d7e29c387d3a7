//! Command-line flags of `syva core`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::client::DEFAULT_SOCKET;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataplaneKind {
    /// Load and attach the BPF LSM programs (needs root and a BPF LSM kernel).
    Bpf,
    /// In-memory maps that enforce nothing: for tests on machines without BPF LSM.
    Memory,
}

/// Run the enforcement engine: load and attach the BPF LSM programs, own
/// every BPF map, and serve the syva.core.v1 API on a Unix socket.
#[derive(Debug, Clone, Args)]
pub struct CoreArgs {
    /// Unix socket of the syva.core.v1 API.
    #[arg(long, env = "SYVA_CORE_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub socket: PathBuf,

    /// Permission bits of the socket file (octal).
    #[arg(long, default_value = "0600", value_parser = parse_mode, value_name = "MODE")]
    pub socket_mode: u32,

    /// Owner of the socket file (user name or uid); default: the user running core.
    #[arg(long, value_name = "USER")]
    pub socket_owner: Option<String>,

    /// Group of the socket file (group name or gid); combine with --socket-mode 0660
    /// to let a group of adapters in.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,

    /// Serve /metrics, /healthz and /readyz on this address; "off" disables it.
    #[arg(long, default_value = "127.0.0.1:9464", value_parser = parse_listen, value_name = "ADDR")]
    pub metrics_addr: Listen,

    /// Start with node-wide audit mode on: nothing is denied, would-denies are reported.
    #[arg(long)]
    pub audit: bool,

    /// Most zones that can exist at once (kernel map size, fixed at start).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub max_zones: u32,

    /// Capacity of the protected-file map: files and directories of all host paths.
    #[arg(long, default_value_t = 262_144, value_parser = clap::value_parser!(u32).range(16..))]
    pub max_protected_files: u32,

    /// Capacity of the membership map: attached cgroups and their descendants.
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(16..))]
    pub max_members: u32,

    /// Capacity of the allowed zone pairs map (each pair takes two entries).
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(16..))]
    pub max_comms: u32,

    /// Capacity of the map of host sockets zones may use (allowed_host_sockets).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..))]
    pub max_host_sockets: u32,

    /// Root of the cgroup v2 hierarchy; default: found in /proc/self/mountinfo.
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,

    /// How long a recent problem keeps health "degraded" (seconds).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub degraded_window: u64,

    /// Which dataplane to run (testing aid).
    #[arg(long, value_enum, default_value = "bpf", hide = true)]
    pub dataplane: DataplaneKind,
}

/// A listen address, or disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(SocketAddr),
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s == "off" {
        return Ok(Listen::Off);
    }
    s.parse()
        .map(Listen::At)
        .map_err(|_| format!("{s:?} is not an IP:PORT address (or \"off\")"))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode such as 0600"))?;
    if mode > 0o777 {
        return Err(format!(
            "{s:?}: only permission bits (up to 0777) are allowed"
        ));
    }
    if mode & 0o007 != 0 {
        return Err(format!(
            "{s:?} would let any local user change enforcement; use at most 0660"
        ));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert!(parse_mode("0666").unwrap_err().contains("any local user"));
        assert!(parse_mode("9").is_err());
        assert!(parse_mode("01777").is_err());
    }

    #[test]
    fn listen() {
        assert_eq!(parse_listen("off"), Ok(Listen::Off));
        assert!(matches!(parse_listen("127.0.0.1:1"), Ok(Listen::At(_))));
        assert!(parse_listen("localhost:1").is_err());
    }
}
