//! Calls to syva core with a deadline, sorted into "core is unreachable"
//! (wait and resync everything) and "core refused this one request"
//! (a problem about one zone or cgroup).

use std::future::Future;
use std::time::Duration;

use tonic::{Code, Status};

/// Longest wait for one RPC: core answers in milliseconds; a hung core must
/// not hang the adapter.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Core cannot be reached (not started, restarting, hung).
    #[error("syva core is unreachable: {0}")]
    Down(String),
    /// Core answered with an error about this request.
    #[error("{}", .0.message())]
    Refused(Status),
}

/// Core went away in the middle of a pass; the pass is retried as a whole.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CoreDown(pub String);

impl RpcError {
    /// Turn "unreachable" into `CoreDown` and hand back refusals.
    pub fn refused(self) -> Result<Status, CoreDown> {
        match self {
            RpcError::Down(m) => Err(CoreDown(m)),
            RpcError::Refused(s) => Ok(s),
        }
    }
}

fn classify(s: Status) -> RpcError {
    match s.code() {
        // Transport failures (no socket, connection reset) come back as
        // UNAVAILABLE or UNKNOWN with a transport message; core itself never
        // answers UNKNOWN.
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            RpcError::Down(format!("{} ({:?})", s.message(), s.code()))
        }
        _ => RpcError::Refused(s),
    }
}

/// Await one RPC with the deadline.
pub async fn call<T>(
    fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, RpcError> {
    match tokio::time::timeout(RPC_TIMEOUT, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(classify(s)),
        Err(_) => Err(RpcError::Down(format!(
            "no answer within {}s",
            RPC_TIMEOUT.as_secs()
        ))),
    }
}
