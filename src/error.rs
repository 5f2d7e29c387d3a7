//! How a role fails: an error plus the exit code class it maps to.

use std::fmt;

/// Documented exit codes of `syva`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// 1: anything else.
    Other,
    /// 2: bad command line (clap reports these itself).
    Usage,
    /// 3: bad configuration or input files.
    Config,
    /// 4: the kernel or the privileges do not allow running.
    Unsupported,
    /// 5: loading or attaching the BPF programs failed.
    Bpf,
    /// 6: syva core is unreachable or refused the request.
    Unavailable,
}

impl ExitKind {
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Other => 1,
            ExitKind::Usage => 2,
            ExitKind::Config => 3,
            ExitKind::Unsupported => 4,
            ExitKind::Bpf => 5,
            ExitKind::Unavailable => 6,
        }
    }
}

/// A role's failure; `cli.rs` prints it with its causes and exits with `kind`.
#[derive(Debug)]
pub struct RoleError {
    pub kind: ExitKind,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl RoleError {
    pub fn new(kind: ExitKind, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind,
            source: e.into(),
        }
    }
}

impl fmt::Display for RoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)?;
        let mut cause = self.source.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl std::error::Error for RoleError {}

/// gRPC errors from core, for client roles: the status message names the
/// problem; UNAVAILABLE means core is not reachable.
pub fn from_status(context: &str, s: tonic::Status) -> RoleError {
    let kind = match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => ExitKind::Unavailable,
        tonic::Code::InvalidArgument
        | tonic::Code::NotFound
        | tonic::Code::FailedPrecondition
        | tonic::Code::AlreadyExists
        | tonic::Code::ResourceExhausted => ExitKind::Config,
        _ => ExitKind::Other,
    };
    let msg = if s.code() == tonic::Code::Unavailable {
        format!("{context}: syva core is unavailable: {}", s.message())
    } else {
        format!("{context}: {} ({:?})", s.message(), s.code())
    };
    RoleError::new(kind, msg)
}
