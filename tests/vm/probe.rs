//! `vmprobe`: the guest-side helper of the VM tests. Each command performs
//! ONE operation a workload could do and reports what the kernel said:
//! exit code 0 on success, the errno on failure (1 = EPERM), 100 on usage
//! errors. Output: one line, "OP TARGET: ok" or "OP TARGET: EPERM (errno 1)".
//!
//! It is built by `cargo test` (as an example) with the same static flags
//! as `syva`, so it runs under busybox in the initramfs.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Command, ExitCode};

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOENT => "ENOENT",
        libc::EINVAL => "EINVAL",
        libc::EBADF => "EBADF",
        libc::ESRCH => "ESRCH",
        libc::ENOEXEC => "ENOEXEC",
        _ => "error",
    }
}

fn report(op: &str, target: &str, r: Result<(), i32>) -> ExitCode {
    match r {
        Ok(()) => {
            println!("{op} {target}: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{op} {target}: {} (errno {e})", name(e));
            ExitCode::from(u8::try_from(e).unwrap_or(99).max(1))
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: vmprobe open PATH | read PATH | exec PATH [ARGS..] | mmap-exec PATH | \
         mmap-exec-fd FD | mmap-read-fd FD | mprotect-exec-fd FD | hold-fd PATH CMD.. | cgroup-id | counter HOOK VERDICT | noop"
    );
    ExitCode::from(100)
}

fn open(path: &str, flags: i32) -> Result<i32, i32> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 { Err(errno()) } else { Ok(fd) }
}

fn mmap_fd(fd: i32, prot: i32) -> Result<*mut libc::c_void, i32> {
    // SAFETY: mapping one page of an open fd; the mapping is not dereferenced.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, libc::MAP_PRIVATE, fd, 0) };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(op) = args.first() else {
        return usage();
    };
    let arg = args.get(1).cloned().unwrap_or_default();
    match op.as_str() {
        "noop" => ExitCode::SUCCESS,
        "open" => report(
            "open",
            &arg,
            open(&arg, libc::O_RDONLY).map(|fd| {
                // SAFETY: fd was just opened by us.
                unsafe { libc::close(fd) };
            }),
        ),
        "read" => {
            let r = std::fs::File::open(&arg).and_then(|mut f| {
                let mut s = String::new();
                f.read_to_string(&mut s).map(|_| ())
            });
            report(
                "read",
                &arg,
                r.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
            )
        }
        "exec" => {
            let Ok(path) = CString::new(arg.clone()) else {
                return usage();
            };
            let argv: Vec<CString> = args[1..]
                .iter()
                .filter_map(|a| CString::new(a.as_str()).ok())
                .collect();
            let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            let env: [*const libc::c_char; 1] = [std::ptr::null()];
            // SAFETY: path and the argv/env arrays are valid, NULL-terminated.
            unsafe { libc::execve(path.as_ptr(), ptrs.as_ptr(), env.as_ptr()) };
            report("exec", &arg, Err(errno()))
        }
        "mmap-exec" => report(
            "mmap-exec",
            &arg,
            open(&arg, libc::O_RDONLY)
                .and_then(|fd| mmap_fd(fd, libc::PROT_READ | libc::PROT_EXEC).map(|_| ())),
        ),
        "mmap-exec-fd" => {
            let Ok(fd) = arg.parse::<i32>() else {
                return usage();
            };
            report(
                "mmap-exec-fd",
                &arg,
                mmap_fd(fd, libc::PROT_READ | libc::PROT_EXEC).map(|_| ()),
            )
        }
        "mmap-read-fd" => {
            let Ok(fd) = arg.parse::<i32>() else {
                return usage();
            };
            report(
                "mmap-read-fd",
                &arg,
                mmap_fd(fd, libc::PROT_READ).map(|_| ()),
            )
        }
        "mprotect-exec-fd" => {
            let Ok(fd) = arg.parse::<i32>() else {
                return usage();
            };
            let r = mmap_fd(fd, libc::PROT_READ).and_then(|p| {
                // SAFETY: p is a page we just mapped.
                let rc = unsafe { libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC) };
                if rc == 0 { Ok(()) } else { Err(errno()) }
            });
            report("mprotect-exec-fd", &arg, r)
        }
        "cgroup-id" => {
            let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let rel = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/");
            match std::fs::metadata(format!("/sys/fs/cgroup{rel}")) {
                Ok(md) => {
                    println!("{}", std::os::unix::fs::MetadataExt::ino(&md));
                    ExitCode::SUCCESS
                }
                Err(e) => report("cgroup-id", rel, Err(e.raw_os_error().unwrap_or(libc::EIO))),
            }
        }
        "counter" => {
            // counter HOOK VERDICT: print one decision counter from `syva ctl --json status`.
            let Some(verdict) = args.get(2) else {
                return usage();
            };
            let out = match Command::new("syva")
                .args(["ctl", "--json", "status"])
                .output()
            {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("vmprobe: running syva ctl: {e}");
                    return ExitCode::from(99);
                }
            };
            let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("vmprobe: syva ctl status output is not JSON: {e}");
                    return ExitCode::from(99);
                }
            };
            let n = v["hooks"]
                .as_array()
                .and_then(|hs| hs.iter().find(|h| h["hook"] == arg.as_str()))
                .and_then(|h| h[verdict.as_str()].as_u64());
            match n {
                Some(n) => {
                    println!("{n}");
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("vmprobe: no counter {arg}/{verdict}");
                    ExitCode::from(99)
                }
            }
        }
        "hold-fd" => {
            // hold-fd PATH CMD..: open PATH as fd 3 (from the current zone) and exec CMD with it.
            match std::fs::File::open(&arg) {
                Ok(f) => {
                    let fd = f.as_raw_fd();
                    // SAFETY: fd manipulation on our own descriptors right
                    // before exec: fd 3 must exist and survive the exec.
                    unsafe {
                        if fd == 3 {
                            libc::fcntl(3, libc::F_SETFD, 0);
                        } else {
                            libc::dup2(fd, 3);
                        }
                    }
                    let err = std::os::unix::process::CommandExt::exec(
                        Command::new(&args[2]).args(&args[3..]),
                    );
                    eprintln!("vmprobe: exec {}: {err}", args[2]);
                    ExitCode::from(99)
                }
                Err(e) => report("open", &arg, Err(e.raw_os_error().unwrap_or(libc::EIO))),
            }
        }
        _ => usage(),
    }
}
