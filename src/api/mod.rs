//! `syva api`: REST front end to the syva core API.
//! Not implemented in this build yet: the role says so and exits 7.

use std::path::PathBuf;

use clap::Args;

use crate::client::DEFAULT_SOCKET;
use crate::error::{ExitKind, RoleError};

/// REST front end to syva core (not implemented yet).
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Unix socket of syva core.
    #[arg(long, env = "SYVA_CORE_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub core_socket: PathBuf,
}

pub async fn run(_args: ApiArgs) -> Result<(), RoleError> {
    Err(RoleError::new(
        ExitKind::NotImplemented,
        "the REST API adapter is not implemented in this build",
    ))
}
