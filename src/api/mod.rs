//! `syva api`: REST front end to syva core (`/v1`, OpenAPI document at
//! `/v1/openapi.json`). Stateless: every request is answered from core
//! through the gRPC socket; nothing is cached or stored here.

pub mod args;
pub mod auth;
pub mod comms;
pub mod containers;
pub mod corewatch;
pub mod error;
pub mod events;
pub mod extract;
pub mod host_paths;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;
pub mod status;
pub mod zones;

use std::net::IpAddr;

pub use args::ApiArgs;

use crate::client::CoreClient;
use crate::error::{ExitKind, RoleError};

use auth::{Auth, Tokens};
use routes::Limits;
use server::TlsFiles;
use state::AppState;

/// Whether an address only accepts connections from this host.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

pub async fn run(args: ApiArgs) -> Result<(), RoleError> {
    if args.print_openapi {
        print!("{}", openapi::render(&routes::document()));
        return Ok(());
    }
    let config = |e: String| RoleError::new(ExitKind::Config, e);

    let auth = match &args.token_file {
        Some(path) => {
            let tokens = Tokens::load(path).map_err(|e| config(e.to_string()))?;
            tracing::info!(tokens = tokens.len(), path = %path.display(), "bearer tokens loaded: every request must authenticate");
            Auth::with_tokens(tokens)
        }
        None if is_loopback(args.listen.ip()) => {
            tracing::warn!(listen = %args.listen, "no --token-file: every process of this host that can reach the address (host-network containers too) can change enforcement");
            Auth::open()
        }
        None => {
            return Err(config(format!(
                "--listen {} is not a loopback address: listening there requires \
                 authentication (--token-file)",
                args.listen
            )));
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let files = TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            let loaded = files.load().map_err(|e| config(e.to_string()))?;
            Some((files, loaded))
        }
        // clap's `requires` makes these pairs; refuse a half setup anyway.
        (Some(_), None) | (None, Some(_)) => {
            return Err(config("--tls-cert and --tls-key go together".into()));
        }
        (None, None) => None,
    };
    if tls.is_none() && !is_loopback(args.listen.ip()) {
        tracing::warn!(listen = %args.listen, "serving plain HTTP on a non-loopback address: bearer tokens cross the network in clear text; use --tls-cert and --tls-key");
    }

    let max_body_bytes = usize::try_from(args.max_body_bytes)
        .map_err(|_| config("--max-body-bytes is too large for this platform".into()))?;
    let core = CoreClient::lazy(&args.core_socket);
    let state = AppState::new(
        core,
        args.core_timeout,
        usize::try_from(args.max_event_streams).unwrap_or(usize::MAX),
    );
    let (router, _) = routes::router(
        state.clone(),
        auth.clone(),
        Limits {
            max_body_bytes,
            request_timeout: args.request_timeout,
        },
    );
    tokio::spawn(corewatch::run(state, args.listen.to_string()));

    let scheme = if tls.is_some() { "https" } else { "http" };
    let socket = args.core_socket.clone();
    let auth_on = auth.required();
    let opts = server::Serve {
        listen: args.listen,
        tls,
        header_timeout: args.header_timeout,
        auth,
        token_file: args.token_file.clone(),
    };
    server::serve(router, opts, move |addr| {
        tracing::info!(%addr, scheme, core_socket = %socket.display(), authentication = auth_on, "syva api listening");
        crate::telemetry::notify_ready();
    })
    .await
    .map_err(|e| {
        RoleError::new(
            ExitKind::Other,
            format!("serving on {}: {e}", args.listen),
        )
    })?;
    tracing::info!("syva api stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        for a in ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(a.parse().unwrap()), "{a}");
        }
        for a in ["0.0.0.0", "::", "10.0.0.1", "::ffff:10.0.0.1"] {
            assert!(!is_loopback(a.parse().unwrap()), "{a}");
        }
    }
}
