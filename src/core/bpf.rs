//! The ONLY file that includes the BPF skeleton: kernel feature probe, then
//! open (size the maps) -> load -> attach, one program at a time so that a
//! failure names the program and the others still enforce.
//!
//! Lifetime: after attach, everything Syva needs is held in owned handles
//! (a `Link` per program, a `MapHandle` per map) and the skeleton is closed.
//! Programs stay attached while their links live, i.e. until `syva core`
//! exits. Nothing is pinned yet; pinning the links and maps under
//! /sys/fs/bpf/syva (for restarts without an enforcement gap) only needs
//! `Link::pin`/`MapHandle::pin` here and an adoption path at start, because
//! no other code holds skeleton objects.

use std::fs;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapHandle};

use super::dataplane::{Attachment, Capacities};
use super::hooks::HOOKS;
use super::maps::{BpfDataplane, Maps};

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    missing_debug_implementations,
    unsafe_op_in_unsafe_fn
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/syva.skel.rs"));
}

pub(super) use skel::types;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel lacks something Syva needs; the message says what.
    #[error("this kernel cannot run syva core:\n  - {}", .0.join("\n  - "))]
    Unsupported(Vec<String>),
    #[error("opening the BPF object failed")]
    Open(#[source] libbpf_rs::Error),
    #[error("sizing BPF map {map} failed")]
    Size {
        map: &'static str,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("loading the BPF programs failed{hint}")]
    Load {
        #[source]
        source: libbpf_rs::Error,
        hint: &'static str,
    },
    #[error("BPF map {map} cannot be used")]
    Map {
        map: &'static str,
        #[source]
        source: libbpf_rs::Error,
    },
}

impl LoadError {
    /// Kernel or privilege problems (exit code 4) vs BPF failures (5).
    pub fn is_unsupported(&self) -> bool {
        match self {
            LoadError::Unsupported(_) => true,
            LoadError::Load { source, .. } => {
                source.kind() == libbpf_rs::ErrorKind::PermissionDenied
            }
            _ => false,
        }
    }
}

/// Paths the probe reads; a root prefix lets tests use a fake tree.
#[derive(Debug, Clone)]
pub struct KernelPaths {
    pub btf: PathBuf,
    pub lsm: PathBuf,
}

impl Default for KernelPaths {
    fn default() -> Self {
        Self::under(Path::new("/"))
    }
}

impl KernelPaths {
    pub fn under(root: &Path) -> Self {
        Self {
            btf: root.join("sys/kernel/btf/vmlinux"),
            lsm: root.join("sys/kernel/security/lsm"),
        }
    }
}

/// Check what Syva needs from the kernel; every missing piece is named with
/// how to fix it.
pub fn probe(paths: &KernelPaths) -> Result<(), LoadError> {
    let mut missing = Vec::new();
    if !paths.btf.exists() {
        missing.push(format!(
            "kernel BTF is missing ({} not found): the kernel must be built with \
             CONFIG_DEBUG_INFO_BTF=y and sysfs mounted at /sys",
            paths.btf.display()
        ));
    }
    match fs::read_to_string(&paths.lsm) {
        Ok(list) => {
            let list = list.trim();
            if !list.split(',').any(|l| l == "bpf") {
                missing.push(format!(
                    "BPF LSM is not active (active LSMs: {list}): boot with lsm={list},bpf \
                     (the kernel needs CONFIG_BPF_LSM=y)"
                ));
            }
        }
        Err(e) => missing.push(format!(
            "cannot read the active LSM list at {} ({e}): mount securityfs \
             (mount -t securityfs securityfs /sys/kernel/security); the kernel needs \
             CONFIG_SECURITY=y",
            paths.lsm.display()
        )),
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LoadError::Unsupported(missing))
    }
}

/// Open, size, load and attach. Programs that fail to attach are reported
/// in the returned attachments (health: unhealthy), not fatal: the rest
/// keep enforcing.
pub fn load(caps: Capacities) -> Result<BpfDataplane, LoadError> {
    let mut storage = MaybeUninit::uninit();
    let mut open = skel::SyvaSkelBuilder::default()
        .open(&mut storage)
        .map_err(LoadError::Open)?;
    let sizes: [(&'static str, &mut libbpf_rs::OpenMapMut<'_>, u32); 5] = [
        ("syva_zones", &mut open.maps.syva_zones, caps.max_zones + 1),
        (
            "syva_members",
            &mut open.maps.syva_members,
            caps.max_members,
        ),
        ("syva_files", &mut open.maps.syva_files, caps.max_files),
        ("syva_comms", &mut open.maps.syva_comms, caps.max_comms),
        (
            "syva_host_sockets",
            &mut open.maps.syva_host_sockets,
            caps.max_host_sockets,
        ),
    ];
    for (map, m, n) in sizes {
        m.set_max_entries(n)
            .map_err(|source| LoadError::Size { map, source })?;
    }
    let skel = open.load().map_err(|source| LoadError::Load {
        hint: if source.kind() == libbpf_rs::ErrorKind::PermissionDenied {
            " (hint: when libbpf printed a verifier log above, this kernel rejected a \
             program; otherwise run as root, or with CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN \
             and CAP_MAC_ADMIN, and check that lockdown does not forbid BPF)"
        } else {
            ""
        },
        source,
    })?;

    let handle = |map: &'static str, m: &libbpf_rs::MapMut<'_>| {
        MapHandle::try_from(m).map_err(|source| LoadError::Map { map, source })
    };
    let maps = Maps {
        members: handle("syva_members", &skel.maps.syva_members)?,
        files: handle("syva_files", &skel.maps.syva_files)?,
        zones: handle("syva_zones", &skel.maps.syva_zones)?,
        comms: handle("syva_comms", &skel.maps.syva_comms)?,
        config: handle("syva_config", &skel.maps.syva_config)?,
        counters: handle("syva_counters", &skel.maps.syva_counters)?,
        selftest: handle("syva_selftest", &skel.maps.syva_selftest)?,
        events: handle("syva_events", &skel.maps.syva_events)?,
        host_sockets: handle("syva_host_sockets", &skel.maps.syva_host_sockets)?,
    };

    let progs = [
        &skel.progs.syva_file_open,
        &skel.progs.syva_bprm_check,
        &skel.progs.syva_mmap_file,
        &skel.progs.syva_file_mprotect,
        &skel.progs.syva_d_instantiate,
        &skel.progs.syva_inode_rename,
        &skel.progs.syva_inode_free,
        &skel.progs.syva_cgroup_mkdir,
        &skel.progs.syva_cgroup_rmdir,
        &skel.progs.syva_ptrace_access_check,
        &skel.progs.syva_ptrace_traceme,
        &skel.progs.syva_task_kill,
        &skel.progs.syva_inode_permission,
        &skel.progs.syva_cgroup_attach_task,
        &skel.progs.syva_unix_stream_connect,
        &skel.progs.syva_unix_may_send,
        &skel.progs.syva_file_receive,
    ];
    let mut links: Vec<Link> = Vec::new();
    let mut attachments = Vec::new();
    for prog in progs {
        let name = prog.name().to_string_lossy().into_owned();
        let Some(hook) = HOOKS.iter().find(|h| h.program == name) else {
            // hooks.rs and this list are checked against each other by tests.
            tracing::error!(program = %name, "program missing from the hook table; not attached");
            continue;
        };
        match prog.attach() {
            Ok(link) => {
                tracing::debug!(program = hook.program, hook = hook.attach, "attached");
                links.push(link);
                attachments.push(Attachment {
                    program: hook.program,
                    hook: hook.attach,
                    attached: true,
                    error: None,
                });
            }
            Err(e) => {
                tracing::error!(program = hook.program, hook = hook.attach, error = %e, "attach failed");
                attachments.push(Attachment {
                    program: hook.program,
                    hook: hook.attach,
                    attached: false,
                    error: Some(format!("{e:#}")),
                });
            }
        }
    }
    for hook in HOOKS {
        if !attachments.iter().any(|a| a.program == hook.program) {
            attachments.push(Attachment {
                program: hook.program,
                hook: hook.attach,
                attached: false,
                error: Some("program not found in the BPF object".into()),
            });
        }
    }
    Ok(BpfDataplane::new(maps, caps, attachments, links))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_names_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = KernelPaths::under(tmp.path());
        let err = probe(&paths).unwrap_err().to_string();
        assert!(err.contains("CONFIG_DEBUG_INFO_BTF"), "{err}");
        assert!(err.contains("securityfs"), "{err}");

        fs::create_dir_all(paths.btf.parent().unwrap()).unwrap();
        fs::write(&paths.btf, "").unwrap();
        fs::create_dir_all(paths.lsm.parent().unwrap()).unwrap();
        fs::write(&paths.lsm, "lockdown,capability,yama\n").unwrap();
        let err = probe(&paths).unwrap_err().to_string();
        assert!(err.contains("lsm=lockdown,capability,yama,bpf"), "{err}");
        assert!(!err.contains("BTF"), "{err}");

        fs::write(&paths.lsm, "lockdown,capability,yama,bpf\n").unwrap();
        probe(&paths).unwrap();
    }

    #[test]
    fn every_hook_program_is_attached_by_load() {
        // The list in `load` must name every program of the hook table.
        let src = include_str!("bpf.rs");
        for h in HOOKS {
            assert!(
                src.contains(&format!("skel.progs.{},", h.program)),
                "{}",
                h.program
            );
        }
    }
}
