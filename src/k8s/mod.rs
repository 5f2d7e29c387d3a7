//! `syva k8s`: SyvaZonePolicy reconciler and pod watcher.
//! Not implemented in this build yet: the role says so and exits 7.

use std::path::PathBuf;

use clap::Args;

use crate::client::DEFAULT_SOCKET;
use crate::error::{ExitKind, RoleError};

/// Reconcile SyvaZonePolicy resources and attach pods to zones (not implemented yet).
#[derive(Debug, Clone, Args)]
pub struct K8sArgs {
    /// Unix socket of syva core.
    #[arg(long, env = "SYVA_CORE_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub core_socket: PathBuf,
}

pub async fn run(_args: K8sArgs) -> Result<(), RoleError> {
    Err(RoleError::new(
        ExitKind::NotImplemented,
        "the Kubernetes adapter is not implemented in this build",
    ))
}
