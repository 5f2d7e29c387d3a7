//! Build-time code generation:
//! 1. the BPF object and its libbpf-rs skeleton (bpf/syva.bpf.c, clang only),
//! 2. the `syva.core.v1` gRPC code (protox parses the .proto in pure Rust,
//!    so no system `protoc` is needed),
//! 3. the git commit printed by `syva --version`.
//!
//! Everything is written to OUT_DIR; nothing generated is checked in.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use libbpf_cargo::SkeletonBuilder;

const BPF_SOURCE: &str = "bpf/syva.bpf.c";
const PROTO: &str = "proto/syva/core/v1/core.proto";

fn main() -> Result<()> {
    let out = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR is not set")?);
    build_bpf(&out)?;
    build_proto()?;
    git_commit();
    Ok(())
}

fn build_bpf(out: &std::path::Path) -> Result<()> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" {
        // vmlinux/vmlinux.h describes x86_64 kernels only.
        bail!("syva's BPF programs are built for x86_64 only (target arch: {arch})");
    }
    // BPF_CLANG selects the compiler (e.g. clang-19); clang is the only C tool needed.
    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang".to_owned());
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    if Command::new(&clang).arg("--version").output().is_err() {
        bail!(
            "`{clang}` was not found: the BPF programs need clang (Debian: apt-get install clang), \
             or set BPF_CLANG to a clang binary"
        );
    }
    SkeletonBuilder::new()
        .source(BPF_SOURCE)
        .clang(&clang)
        .clang_args([
            "-I",
            "bpf",
            "-I",
            "bpf/include",
            "-I",
            "vmlinux",
            "-Wall",
            "-Werror",
            "-Wno-unused-function",
        ])
        .build_and_generate(out.join("syva.skel.rs"))
        .with_context(|| format!("compiling {BPF_SOURCE} with {clang}"))?;
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=vmlinux/vmlinux.h");
    Ok(())
}

fn build_proto() -> Result<()> {
    let fds = protox::compile([PROTO], ["proto"]).context("parsing the protobuf API")?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)
        .context("generating gRPC code")?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

/// `syva --version` names the commit; builds outside git say "unknown".
fn git_commit() {
    let commit = env::var("SYVA_GIT_COMMIT").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    });
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    let commit = match commit {
        Some(c) if dirty => format!("{c}-dirty"),
        Some(c) => c,
        None => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=SYVA_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=SYVA_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
}
