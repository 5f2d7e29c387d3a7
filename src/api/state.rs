//! What every handler shares: the core client (calls bounded by a deadline,
//! errors turned into `ApiError`), the lock that orders this adapter's
//! read-modify-write changes, and the permits of event streams.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard, Semaphore};
use tonic::transport::Channel;

use crate::client::CoreClient;
use crate::proto::SyvaCoreClient;

use super::error::ApiError;

/// Zones, pairs and containers created through REST belong to this source.
pub const SOURCE: &str = "api";

/// Shared state of the handlers; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    core: CoreClient,
    core_timeout: Duration,
    writes: Mutex<()>,
    event_streams: Arc<Semaphore>,
}

impl AppState {
    pub fn new(core: CoreClient, core_timeout: Duration, max_event_streams: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                core,
                core_timeout,
                writes: Mutex::new(()),
                event_streams: Arc::new(Semaphore::new(max_event_streams)),
            }),
        }
    }

    /// The generated gRPC client (clones share one connection).
    pub fn api(&self) -> SyvaCoreClient<Channel> {
        self.inner.core.api()
    }

    /// Await one unary call to core within the core timeout; `what` names
    /// the call in errors.
    pub async fn call<T, F>(&self, what: &str, call: F) -> Result<T, ApiError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.inner.core_timeout, call).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(ApiError::from_core(what, &s)),
            Err(_) => Err(ApiError::core_timeout(what, self.inner.core_timeout)),
        }
    }

    /// Serializes the changes of this adapter that read state from core and
    /// write it back (e.g. removing one host path re-registers the zone's
    /// policy without it): two concurrent requests cannot lose each other's
    /// update. Core has no compare-and-swap, so a second `syva api` process
    /// managing the same zones is not covered.
    pub async fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.inner.writes.lock().await
    }

    pub fn event_streams(&self) -> &Arc<Semaphore> {
        &self.inner.event_streams
    }
}
