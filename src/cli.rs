//! Entry point of the one `syva` binary: multi-call dispatch on argv[0]
//! (`syva-core`, `syva-file`, `syva-k8s`, `syva-api`, `syvactl`, with or
//! without a directory) or on the first argument (`syva core ...`), one
//! clap parser for both, the tokio runtime, and errors -> exit codes.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::{ExitKind, RoleError};
use crate::telemetry::{self, LogArgs};

/// argv[0] names and the subcommand each one runs. The single source of
/// truth for the multi-call names (packaging creates these symlinks).
pub const ROLE_NAMES: &[(&str, &str)] = &[
    ("syva-core", "core"),
    ("syva-file", "file"),
    ("syva-k8s", "k8s"),
    ("syva-api", "api"),
    ("syvactl", "ctl"),
    ("syva-ctl", "ctl"),
];

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SYVA_GIT_COMMIT"),
    ")"
);

const ABOUT: &str = "Syva: eBPF LSM zone isolation for containers on one Linux node";

const LONG_ABOUT: &str = "\
Syva groups container workloads into zones and denies cross-zone operations \
in the kernel (BPF LSM), before they complete.

One binary, several roles. Run a role as `syva <role>` or through its symlink \
(syva-core, syva-file, syva-k8s, syva-api, syvactl).

Exit codes: 0 ok, 1 error, 2 usage, 3 configuration or input, 4 kernel or \
privileges not supported, 5 BPF load/attach failed, 6 syva core unavailable.";

#[derive(Debug, Parser)]
#[command(name = "syva", version = VERSION, about = ABOUT, long_about = LONG_ABOUT, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,

    #[command(subcommand)]
    pub role: Role,
}

#[derive(Debug, Subcommand)]
pub enum Role {
    /// The enforcement engine (root, one per node).
    Core(crate::core::args::CoreArgs),
    /// Reconcile a directory of TOML zone policies into syva core.
    File(crate::file::FileArgs),
    /// Reconcile SyvaZonePolicy resources and attach pods' containers to zones.
    K8s(crate::k8s::K8sArgs),
    /// REST front end to the syva core API.
    Api(crate::api::ApiArgs),
    /// Command-line client of syva core.
    Ctl(crate::ctl::CtlArgs),
}

/// The argument list clap should parse: argv[0] names a role -> insert it.
pub fn normalize_args(args: Vec<OsString>) -> Vec<OsString> {
    let Some(argv0) = args.first() else {
        return args;
    };
    let name = Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match ROLE_NAMES.iter().find(|(n, _)| *n == name) {
        Some((_, role)) => {
            let mut out = Vec::with_capacity(args.len() + 1);
            out.push(OsString::from("syva"));
            out.push(OsString::from(*role));
            out.extend(args.into_iter().skip(1));
            out
        }
        None => args,
    }
}

pub fn main() -> ExitCode {
    let args = normalize_args(std::env::args_os().collect());
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            // --help and --version exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                ExitKind::Usage.code()
            } else {
                0
            });
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(ExitKind::Usage.code());
        }
    };
    if let Err(e) = telemetry::init(&cli.log) {
        eprintln!("syva: {e}");
        return ExitCode::from(ExitKind::Usage.code());
    }
    if matches!(cli.role, Role::Ctl(_)) {
        // A command-line client piped into `head` should stop quietly like
        // other tools (Rust ignores SIGPIPE, which makes println! panic).
        // The daemons keep ignoring it: they write to sockets.
        // SAFETY: sets a signal disposition before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("syva: cannot start the async runtime: {e}");
            return ExitCode::from(ExitKind::Other.code());
        }
    };
    let role = role_name(&cli.role);
    let result: Result<(), RoleError> = runtime.block_on(async move {
        match cli.role {
            Role::Core(a) => crate::core::run(a).await,
            Role::File(a) => crate::file::run(a).await,
            Role::K8s(a) => crate::k8s::run(a).await,
            Role::Api(a) => crate::api::run(a).await,
            Role::Ctl(a) => crate::ctl::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syva {role}: error: {e}");
            ExitCode::from(e.kind.code())
        }
    }
}

fn role_name(r: &Role) -> &'static str {
    match r {
        Role::Core(_) => "core",
        Role::File(_) => "file",
        Role::K8s(_) => "k8s",
        Role::Api(_) => "api",
        Role::Ctl(_) => "ctl",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[&str]) -> Vec<String> {
        normalize_args(v.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn argv0_selects_the_role() {
        assert_eq!(
            norm(&["syva-core", "--socket", "x"]),
            ["syva", "core", "--socket", "x"]
        );
        assert_eq!(
            norm(&["/usr/bin/syvactl", "status"]),
            ["syva", "ctl", "status"]
        );
        assert_eq!(norm(&["./syva-api"]), ["syva", "api"]);
        assert_eq!(norm(&["syva", "core"]), ["syva", "core"]);
        assert_eq!(
            norm(&["/opt/x/syva", "file"]),
            ["syva", "file"].map(|s| if s == "syva" { "/opt/x/syva" } else { s })
        );
    }

    #[test]
    fn every_role_name_maps_to_a_subcommand() {
        let cmd = Cli::command();
        for (_, role) in ROLE_NAMES {
            assert!(cmd.find_subcommand(role).is_some(), "{role}");
        }
        cmd.debug_assert();
    }
}
