//! The table of BPF programs and hooks: names used for attachment status,
//! counters, metric labels and events. Indexes match `enum syva_hook` and
//! `enum syva_verdict` in bpf/include/syva_types.h (checked by a test).

/// One BPF program and the hook it enforces or maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// `enum syva_hook` value.
    pub id: u32,
    /// Short name: metric label, event field, `syva ctl status` row.
    pub name: &'static str,
    /// BPF program (function) name.
    pub program: &'static str,
    /// Section: where the program attaches.
    pub attach: &'static str,
}

pub const HOOKS: &[Hook] = &[
    Hook {
        id: 0,
        name: "file_open",
        program: "syva_file_open",
        attach: "lsm/file_open",
    },
    Hook {
        id: 1,
        name: "exec",
        program: "syva_bprm_check",
        attach: "lsm/bprm_check_security",
    },
    Hook {
        id: 2,
        name: "mmap_exec",
        program: "syva_mmap_file",
        attach: "lsm/mmap_file",
    },
    Hook {
        id: 3,
        name: "mprotect_exec",
        program: "syva_file_mprotect",
        attach: "lsm/file_mprotect",
    },
    Hook {
        id: 4,
        name: "inode_inherit",
        program: "syva_d_instantiate",
        attach: "lsm/d_instantiate",
    },
    Hook {
        id: 5,
        name: "inode_rename",
        program: "syva_inode_rename",
        attach: "lsm/inode_rename",
    },
    Hook {
        id: 6,
        name: "inode_free",
        program: "syva_inode_free",
        attach: "lsm/inode_free_security",
    },
    Hook {
        id: 7,
        name: "cgroup_mkdir",
        program: "syva_cgroup_mkdir",
        attach: "tp_btf/cgroup_mkdir",
    },
    Hook {
        id: 8,
        name: "cgroup_rmdir",
        program: "syva_cgroup_rmdir",
        attach: "tp_btf/cgroup_rmdir",
    },
    Hook {
        id: 9,
        name: "ptrace",
        program: "syva_ptrace_access_check",
        attach: "lsm/ptrace_access_check",
    },
    Hook {
        id: 10,
        name: "ptrace_traceme",
        program: "syva_ptrace_traceme",
        attach: "lsm/ptrace_traceme",
    },
    Hook {
        id: 11,
        name: "signal",
        program: "syva_task_kill",
        attach: "lsm/task_kill",
    },
    Hook {
        id: 12,
        name: "cgroup_move",
        program: "syva_inode_permission",
        attach: "lsm/inode_permission",
    },
    Hook {
        id: 13,
        name: "cgroup_escape_detect",
        program: "syva_cgroup_attach_task",
        attach: "tp_btf/cgroup_attach_task",
    },
    Hook {
        id: 14,
        name: "unix_connect",
        program: "syva_unix_stream_connect",
        attach: "lsm/unix_stream_connect",
    },
    Hook {
        id: 15,
        name: "unix_send",
        program: "syva_unix_may_send",
        attach: "lsm/unix_may_send",
    },
    Hook {
        id: 16,
        name: "fd_receive",
        program: "syva_file_receive",
        attach: "lsm/file_receive",
    },
];

/// `SYVA_HOOK_MAX`: counter slots reserved per verdict.
pub const HOOK_SLOTS: u32 = 32;

/// `enum syva_verdict`, in order.
pub const VERDICTS: [&str; 5] = ["allow", "deny", "audit", "error", "lost"];
pub const VERDICT_ALLOW: usize = 0;
pub const VERDICT_DENY: usize = 1;
pub const VERDICT_AUDIT: usize = 2;
pub const VERDICT_ERROR: usize = 3;
pub const VERDICT_LOST: usize = 4;

pub fn by_id(id: u32) -> Option<&'static Hook> {
    HOOKS.iter().find(|h| h.id == id)
}

/// `enum syva_reason` as text.
pub fn reason(code: u8) -> &'static str {
    match code {
        1 => "cross-zone access to an object owned by another zone",
        2 => "cross-zone access: the pair is allowed but a zone is isolated",
        3 => "a zoned process acting on a host process or host socket",
        4 => "ptrace within the zone, which does not allow ptrace",
        5 => "ptrace or /proc access to a task of another zone",
        6 => "moving a task into a cgroup outside the caller's zone",
        7 => "detected: a task was moved into a cgroup outside the mover's zone",
        _ => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of `NAME = N,` lines inside `enum <name> { ... }` of the C header.
    fn c_enum(header: &str, name: &str) -> Vec<(String, u32)> {
        let start = header
            .find(&format!("enum {name} {{"))
            .expect("enum in header");
        let body = &header[start..start + header[start..].find("};").unwrap()];
        body.lines()
            .filter_map(|l| {
                let (k, v) = l.trim().trim_end_matches(',').split_once(" = ")?;
                let v = v
                    .split_whitespace()
                    .next()?
                    .trim_end_matches(',')
                    .parse()
                    .ok()?;
                Some((k.to_string(), v))
            })
            .collect()
    }

    const HEADER: &str = include_str!("../../bpf/include/syva_types.h");

    #[test]
    fn hook_ids_match_the_c_header() {
        let c = c_enum(HEADER, "syva_hook");
        for h in HOOKS {
            let expected = format!(
                "SYVA_HOOK_{}",
                h.program.trim_start_matches("syva_").to_uppercase()
            );
            let got = c.iter().find(|(k, _)| *k == expected);
            assert_eq!(
                got.map(|(_, v)| *v),
                Some(h.id),
                "{expected} for {}",
                h.name
            );
        }
        assert_eq!(
            c.iter()
                .find(|(k, _)| k == "SYVA_HOOK_MAX")
                .map(|(_, v)| *v),
            Some(HOOK_SLOTS)
        );
        // Every C hook has a row here.
        assert_eq!(c.len() - 1, HOOKS.len());
    }

    #[test]
    fn verdicts_match_the_c_header() {
        let c = c_enum(HEADER, "syva_verdict");
        for (i, v) in VERDICTS.iter().enumerate() {
            let key = format!("SYVA_VERDICT_{}", v.to_uppercase());
            assert_eq!(
                c.iter().find(|(k, _)| *k == key).map(|(_, v)| *v as usize),
                Some(i)
            );
        }
    }

    #[test]
    fn every_program_exists_in_the_bpf_sources() {
        let sources = [
            include_str!("../../bpf/hooks/file.h"),
            include_str!("../../bpf/hooks/inode.h"),
            include_str!("../../bpf/hooks/cgroup.h"),
            include_str!("../../bpf/hooks/task.h"),
            include_str!("../../bpf/hooks/unix.h"),
        ]
        .concat();
        for h in HOOKS {
            assert!(
                sources.contains(&format!("SEC(\"{}\")", h.attach)),
                "{}",
                h.attach
            );
            assert!(
                sources.contains(&format!("BPF_PROG({},", h.program)),
                "{}",
                h.program
            );
        }
    }
}
