//! `CoreClient`: the gRPC client of `syva core` over its Unix socket. Every
//! adapter (`file`, `k8s`, `api`) and `syva ctl` talk to core only through
//! this, the same contract an external user has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::proto::SyvaCoreClient;

/// Where `syva core` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/syva/core.sock";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to syva core at {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}

/// A cheap-to-clone handle on core's API.
#[derive(Debug, Clone)]
pub struct CoreClient {
    inner: SyvaCoreClient<Channel>,
    socket: PathBuf,
}

fn endpoint() -> Endpoint {
    // The URI is required by tonic but unused: the connector below dials the
    // Unix socket.
    Endpoint::from_static("http://syva-core.local")
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
}

fn connector(
    socket: PathBuf,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<UnixStream>,
    Error = std::io::Error,
    Future = impl Send + 'static,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_: Uri| {
        let socket = socket.clone();
        async move { UnixStream::connect(&socket).await.map(TokioIo::new) }
    })
}

impl CoreClient {
    /// Connect now; fails when core is not listening.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Self, ClientError> {
        let socket = socket.as_ref().to_path_buf();
        let channel = endpoint()
            .connect_with_connector(connector(socket.clone()))
            .await
            .map_err(|source| ClientError::Connect {
                socket: socket.clone(),
                source,
            })?;
        Ok(Self {
            inner: SyvaCoreClient::new(channel),
            socket,
        })
    }

    /// Connect on first use and reconnect after failures: calls fail with
    /// UNAVAILABLE while core is down and work again once it is back.
    pub fn lazy(socket: impl AsRef<Path>) -> Self {
        let socket = socket.as_ref().to_path_buf();
        let channel = endpoint().connect_with_connector_lazy(connector(socket.clone()));
        Self {
            inner: SyvaCoreClient::new(channel),
            socket,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The generated client; clones share one connection.
    pub fn api(&self) -> SyvaCoreClient<Channel> {
        self.inner.clone()
    }
}

/// Capped exponential backoff for waiting on core.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { next: initial, max }
    }

    /// The delay to wait now; doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self, initial: Duration) {
        self.next = initial;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let got: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
        b.reset(Duration::from_millis(10));
        assert_eq!(b.next_delay().as_millis(), 10);
    }

    #[tokio::test]
    async fn connect_names_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("missing.sock");
        let err = CoreClient::connect(&sock).await.unwrap_err();
        assert!(err.to_string().contains("missing.sock"), "{err}");
    }
}
