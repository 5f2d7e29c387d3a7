//! Startup self-tests: prove, on the running kernel, that the BPF programs
//! read what userspace expects.
//!
//! - file_open / mmap_exec: a probe file opened and mapped by a dedicated
//!   thread must be seen with that thread's cgroup id and the probe's
//!   (s_dev, i_ino), computed from stat() with the device conversion;
//! - exec: a child of that thread executing /proc/self/exe must be seen with
//!   the same cgroup id and the same file identity the file_open hook read
//!   for /proc/self/exe (overlayfs-safe);
//! - cgroup_mkdir/rmdir: a child cgroup created under a temporary cgroup
//!   that is mapped to a reserved zone id must be mapped (inherited, with
//!   the kernel's cgroup id = directory inode) and unmapped on rmdir.
//!
//! A failure makes health unhealthy; a test that cannot run here (e.g. no
//! permission to create a cgroup) is "skipped" and makes it degraded.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::model::{CgroupId, FileKey, ZoneId};

use super::dataplane::{Dataplane, MEMBER_INHERITED, Member, SelfTest, SelfTestOutcome};
use super::maps::BpfDataplane;
use crate::cgroup::CgroupFs;

/// A zone id no real zone can have (zones are 1..=max_zones).
const SELFTEST_ZONE: ZoneId = ZoneId(u32::MAX);

const HOOK_FILE_OPEN: u32 = 0;
const HOOK_BPRM_CHECK: u32 = 1;
const HOOK_MMAP_FILE: u32 = 2;

pub fn run(dp: &BpfDataplane, cgroups: &CgroupFs, scratch_dir: &Path) -> Vec<SelfTest> {
    let mut out = std::thread::scope(|s| {
        s.spawn(|| file_tests(dp, cgroups, scratch_dir))
            .join()
            .unwrap_or_else(|_| {
                vec![SelfTest {
                    name: "file_open",
                    outcome: SelfTestOutcome::Failed("self-test thread panicked".into()),
                }]
            })
    });
    out.push(cgroup_test(dp, cgroups));
    // Leave recording off whatever happened.
    if let Err(e) = dp.arm_selftest(0) {
        tracing::error!(error = %e, "cannot disarm the self-test recorder");
    }
    for t in &out {
        match &t.outcome {
            SelfTestOutcome::Passed(d) => tracing::info!(test = t.name, "self-test passed: {d}"),
            SelfTestOutcome::Skipped(d) => tracing::warn!(test = t.name, "self-test skipped: {d}"),
            SelfTestOutcome::Failed(d) => tracing::error!(test = t.name, "self-test FAILED: {d}"),
        }
    }
    out
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::gettid() };
    u32::try_from(tid).unwrap_or(0)
}

fn check(
    name: &'static str,
    what: &str,
    got: Option<super::maps::Observation>,
    cgroup: CgroupId,
    file: FileKey,
) -> SelfTest {
    let outcome = match got {
        None => SelfTestOutcome::Failed(format!("the {name} hook did not run for {what}")),
        Some(o) if o.cgroup != cgroup => SelfTestOutcome::Failed(format!(
            "{what}: the kernel read cgroup id {}, expected {cgroup}",
            o.cgroup
        )),
        Some(o) if o.file != file => SelfTestOutcome::Failed(format!(
            "{what}: the kernel read file {}, expected {file}",
            o.file
        )),
        Some(_) => SelfTestOutcome::Passed(format!("{what}: cgroup {cgroup}, file {file}")),
    };
    SelfTest { name, outcome }
}

fn file_tests(dp: &BpfDataplane, cgroups: &CgroupFs, scratch: &Path) -> Vec<SelfTest> {
    let fail = |name: &'static str, d: String| SelfTest {
        name,
        outcome: SelfTestOutcome::Failed(d),
    };
    let cgroup = match cgroups.of_process(Path::new("/proc/thread-self/cgroup")) {
        Ok((id, _)) => id,
        Err(e) => {
            return vec![fail(
                "file_open",
                format!("cannot find our own cgroup: {e}"),
            )];
        }
    };
    let probe = scratch.join(format!(".syva-selftest-{}", std::process::id()));
    let result = (|| -> std::io::Result<Vec<SelfTest>> {
        fs::File::create(&probe)?.write_all(&[0xc3; 64])?;
        let md = fs::metadata(&probe)?;
        let key = FileKey::from_stat(md.dev(), md.ino());
        let me = gettid();
        let mut tests = Vec::new();

        dp.arm_selftest(me).map_err(std::io::Error::other)?;
        let f = fs::File::open(&probe)?;
        // SAFETY: a fresh private read-only mapping of an open file; it is
        // unmapped right away and never dereferenced.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        if addr != libc::MAP_FAILED {
            // SAFETY: unmapping the mapping created just above.
            unsafe { libc::munmap(addr, 4096) };
        }
        // A noexec mount makes mmap fail after the hook ran: that is fine.
        let obs = |hook| dp.selftest_observation(hook).map_err(std::io::Error::other);
        tests.push(check(
            "file_open",
            "probe file",
            obs(HOOK_FILE_OPEN)?,
            cgroup,
            key,
        ));
        tests.push(check(
            "mmap_exec",
            "probe file",
            obs(HOOK_MMAP_FILE)?,
            cgroup,
            key,
        ));

        // exec: compare with what file_open reads for the same binary.
        dp.arm_selftest(me).map_err(std::io::Error::other)?;
        drop(fs::File::open("/proc/self/exe")?);
        let exe = obs(HOOK_FILE_OPEN)?;
        let status = Command::new("/proc/self/exe").arg("--version").output();
        let exec = obs(HOOK_BPRM_CHECK)?;
        tests.push(match (exe, status) {
            (Some(e), Ok(_)) => check("exec", "/proc/self/exe", exec, cgroup, e.file),
            (None, _) => fail("exec", "file_open did not see /proc/self/exe".into()),
            (_, Err(e)) => fail("exec", format!("cannot run /proc/self/exe: {e}")),
        });
        Ok(tests)
    })();
    let _ = fs::remove_file(&probe); // best effort: a leftover probe is harmless
    result.unwrap_or_else(|e| vec![fail("file_open", format!("self-test I/O failed: {e}"))])
}

fn cgroup_test(dp: &BpfDataplane, cgroups: &CgroupFs) -> SelfTest {
    let name = "cgroup_mkdir";
    let parent = cgroups
        .root()
        .join(format!("syva-selftest-{}", std::process::id()));
    if let Err(e) = fs::create_dir(&parent) {
        return SelfTest {
            name,
            outcome: SelfTestOutcome::Skipped(format!("cannot create {}: {e}", parent.display())),
        };
    }
    let child = parent.join("child");
    let outcome = (|| -> Result<String, String> {
        let pid = CgroupId(fs::metadata(&parent).map_err(|e| e.to_string())?.ino());
        dp.put_member(
            pid,
            Member {
                zone: SELFTEST_ZONE,
                flags: 0,
            },
        )
        .map_err(|e| e.to_string())?;
        fs::create_dir(&child).map_err(|e| format!("mkdir {}: {e}", child.display()))?;
        let cid = CgroupId(fs::metadata(&child).map_err(|e| e.to_string())?.ino());
        let seen = dp.member(cid).map_err(|e| e.to_string())?;
        if seen
            != Some(Member {
                zone: SELFTEST_ZONE,
                flags: MEMBER_INHERITED,
            })
        {
            return Err(format!(
                "new cgroup {cid} under a mapped cgroup was not mapped (saw {seen:?})"
            ));
        }
        fs::remove_dir(&child).map_err(|e| format!("rmdir {}: {e}", child.display()))?;
        let after = dp.member(cid).map_err(|e| e.to_string())?;
        if after.is_some() {
            return Err(format!("removed cgroup {cid} is still mapped"));
        }
        Ok(format!(
            "cgroup {cid} inherited from {pid} and was unmapped on rmdir"
        ))
    })();
    // Clean up whatever exists; failures here only leave an empty cgroup.
    let _ = fs::remove_dir(&child);
    if let Ok(md) = fs::metadata(&parent) {
        let _ = dp.delete_member(CgroupId(md.ino()));
    }
    let _ = fs::remove_dir(&parent);
    SelfTest {
        name,
        outcome: match outcome {
            Ok(d) => SelfTestOutcome::Passed(d),
            Err(d) => SelfTestOutcome::Failed(d),
        },
    }
}
