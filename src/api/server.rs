//! Serving: bind the listen address, plain HTTP/1.1 or TLS (rustls with the
//! ring provider), header read timeout, graceful shutdown on SIGTERM/SIGINT,
//! and reload of the token file and TLS material on SIGHUP.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use hyper_util::rt::TokioTimer;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::auth::{Auth, Tokens};

/// How long in-flight requests may finish after SIGTERM (event streams are
/// cut after it).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("TLS key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("TLS certificate {cert} and key {key} do not work together: {source}")]
    Config {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Certificate chain and key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Read both files into a server configuration (TLS 1.2 and 1.3,
    /// HTTP/1.1 only).
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let cert_err = |message: String| TlsError::Cert {
            path: self.cert.clone(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| cert_err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| cert_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(cert_err("no PEM CERTIFICATE block found".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| TlsError::Key {
            path: self.key.clone(),
            message: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|source| TlsError::Config {
                cert: self.cert.clone(),
                key: self.key.clone(),
                source,
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// What `serve` needs besides the router.
#[derive(Debug)]
pub struct Serve {
    pub listen: SocketAddr,
    pub tls: Option<(TlsFiles, Arc<ServerConfig>)>,
    pub header_timeout: Duration,
    pub auth: Auth,
    pub token_file: Option<PathBuf>,
}

/// Serve until SIGTERM/SIGINT; `on_listening` gets the bound address.
pub async fn serve(
    router: Router,
    opts: Serve,
    on_listening: impl FnOnce(SocketAddr) + Send + 'static,
) -> io::Result<()> {
    let handle: Handle<SocketAddr> = Handle::new();
    let app = router.into_make_service_with_connect_info::<SocketAddr>();

    let stopper = handle.clone();
    tokio::spawn(async move {
        crate::telemetry::shutdown_signal().await;
        tracing::info!(grace = ?SHUTDOWN_GRACE, "stopping: finishing requests in flight");
        stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });

    let listening = handle.clone();
    tokio::spawn(async move {
        if let Some(addr) = listening.listening().await {
            on_listening(addr);
        }
    });

    let rustls = opts
        .tls
        .as_ref()
        .map(|(_, config)| RustlsConfig::from_config(config.clone()));
    tokio::spawn(reload_on_sighup(
        opts.auth.clone(),
        opts.token_file.clone(),
        opts.tls.map(|(files, _)| files).zip(rustls.clone()),
    ));

    match rustls {
        None => {
            let mut server = axum_server::bind(opts.listen).handle(handle).http1_only();
            configure(server.http_builder(), opts.header_timeout);
            server.serve(app).await
        }
        Some(config) => {
            let mut server = axum_server::bind_rustls(opts.listen, config)
                .handle(handle)
                .http1_only();
            configure(server.http_builder(), opts.header_timeout);
            server.serve(app).await
        }
    }
}

fn configure(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_timeout: Duration,
) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
}

/// SIGHUP: re-read the token file and the TLS files. A file that fails to
/// load leaves the previous material in force (and says so).
async fn reload_on_sighup(
    auth: Auth,
    token_file: Option<PathBuf>,
    tls: Option<(TlsFiles, RustlsConfig)>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP: token and certificate reloads are disabled");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading");
        if let Some(path) = &token_file {
            reload_tokens(&auth, path);
        }
        if let Some((files, config)) = &tls {
            match files.load() {
                Ok(c) => {
                    config.reload_from_config(c);
                    tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "reloading TLS failed; the previous certificate stays in use");
                }
            }
        }
    }
}

fn reload_tokens(auth: &Auth, path: &Path) {
    match Tokens::load(path) {
        Ok(t) => {
            tracing::info!(tokens = t.len(), path = %path.display(), "token file reloaded");
            auth.replace(t);
        }
        Err(e) => {
            tracing::error!(error = %e, "reloading the token file failed; the previous tokens stay in force");
        }
    }
}
