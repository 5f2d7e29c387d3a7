//! Command line of `syva api`: where to listen, how to reach core, who may
//! call, TLS material and resource limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::client::DEFAULT_SOCKET;

/// REST front end to syva core: zones, host paths, allowed pairs,
/// containers, status and a live stream of deny events, under /v1 (OpenAPI
/// document at /v1/openapi.json).
///
/// Listens on loopback by default. Listening on any other address requires
/// --token-file (every request then needs `Authorization: Bearer <token>`);
/// --tls-cert and --tls-key switch to HTTPS. The API starts even when core is
/// not running yet: requests get 503 with Retry-After until it is reachable.
/// SIGHUP re-reads the token file and the TLS certificate and key.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Address and port to listen on (an IP address, e.g. 127.0.0.1:8080 or
    /// [::1]:8080). A non-loopback address requires --token-file.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Unix socket of syva core.
    #[arg(long, env = "SYVA_CORE_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub core_socket: PathBuf,

    /// File of bearer tokens, one `NAME:TOKEN` per line (`#` starts a
    /// comment). NAME identifies the caller in logs; TOKEN must be at least
    /// 32 characters (e.g. `openssl rand -hex 32`). With this file every
    /// request except GET /v1/openapi.json must carry a valid token.
    #[arg(long, env = "SYVA_API_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// PEM certificate chain for HTTPS (requires --tls-key).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for HTTPS (requires --tls-cert).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Largest accepted request body, in bytes; larger bodies get 413.
    #[arg(long, default_value_t = 65_536, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024))]
    pub max_body_bytes: u64,

    /// Time limit for a whole request (reading the body, calling core,
    /// answering), except event streams; slower requests get 408.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Time limit for one call to core; slower calls get 503.
    #[arg(long, default_value = "20s", value_name = "DURATION", value_parser = parse_duration)]
    pub core_timeout: Duration,

    /// Time a client has to send the request headers; idle connections are
    /// closed after it.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Concurrent event streams (GET /v1/events); more get 429.
    #[arg(long, default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_event_streams: u32,

    /// Print the OpenAPI document of this API and exit.
    #[arg(long)]
    pub print_openapi: bool,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "{s:?} is not IP:PORT (e.g. 127.0.0.1:8080 or [::1]:8080; host names are not resolved)"
        )
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 30s, 2m)"))?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_and_durations_parse_or_explain() {
        assert_eq!(
            parse_listen("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert!(
            parse_listen("localhost:80")
                .unwrap_err()
                .contains("IP:PORT")
        );
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
