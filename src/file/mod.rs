//! `syva file`: reconcile a directory of TOML zone policies into syva core.
//! Not implemented in this build yet: the role says so and exits 7.

use std::path::PathBuf;

use clap::Args;

use crate::client::DEFAULT_SOCKET;
use crate::error::{ExitKind, RoleError};

/// Reconcile a directory of TOML zone policies into syva core (not implemented yet).
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// Directory of *.toml zone policies.
    #[arg(long, value_name = "DIR", default_value = "/etc/syva/policies")]
    pub policy_dir: PathBuf,
    /// Unix socket of syva core.
    #[arg(long, env = "SYVA_CORE_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub core_socket: PathBuf,
}

pub async fn run(_args: FileArgs) -> Result<(), RoleError> {
    Err(RoleError::new(
        ExitKind::NotImplemented,
        "the file adapter is not implemented in this build",
    ))
}
