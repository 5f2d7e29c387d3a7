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
        "usage: vmprobe sleep SECS | ptrace-attach PID | traceme | vm-readv PID | \
         kill|tgkill|sigqueue|pidfd-signal PID SIG | serve-unix[-dgram] PATH | connect-unix PATH | \
         send-unix PATH | move-self CGDIR | clone-into-cgroup CGDIR | fd-pass CGDIR PATH | \
         io-uring-open PATH | memfd-copy-exec PATH | open PATH | read PATH | exec PATH [ARGS..] | mmap-exec PATH | \
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
        "sleep" => {
            let secs = arg.parse().unwrap_or(60);
            std::thread::sleep(std::time::Duration::from_secs(secs));
            ExitCode::SUCCESS
        }
        "ptrace-attach" => {
            let Ok(pid) = arg.parse::<i32>() else {
                return usage();
            };
            // SAFETY: PTRACE_SEIZE/DETACH on a pid; no memory is passed.
            let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
            if r == 0 {
                // SAFETY: as above.
                unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
                report("ptrace-attach", &arg, Ok(()))
            } else {
                report("ptrace-attach", &arg, Err(errno()))
            }
        }
        "traceme" => {
            // A child asks to be traced by us (PTRACE_TRACEME), then exits.
            // SAFETY: fork in a single-threaded program; the child only
            // makes async-signal-safe calls before _exit.
            let child = unsafe { libc::fork() };
            if child == 0 {
                // SAFETY: ptrace(PTRACE_TRACEME) has no pointer arguments.
                let r = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
                let code = if r == 0 { 0 } else { errno() };
                // SAFETY: terminating the forked child.
                unsafe { libc::_exit(code) };
            }
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(child, &mut status, 0) };
            let code = libc::WEXITSTATUS(status);
            report("traceme", "", if code == 0 { Ok(()) } else { Err(code) })
        }
        "vm-readv" => {
            let Ok(pid) = arg.parse::<i32>() else {
                return usage();
            };
            let mut buf = [0u8; 8];
            let local = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: 8,
            };
            let remote = libc::iovec {
                iov_base: 0x1000 as *mut libc::c_void,
                iov_len: 8,
            };
            // SAFETY: one local iovec into our buffer; the remote address is
            // only checked by the kernel.
            let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
            // EFAULT means the access check passed and the address was bad.
            let res = if r >= 0 || errno() == libc::EFAULT {
                Ok(())
            } else {
                Err(errno())
            };
            report("vm-readv", &arg, res)
        }
        "kill" | "tgkill" | "sigqueue" | "pidfd-signal" => {
            let Ok(pid) = arg.parse::<i32>() else {
                return usage();
            };
            let sig: i32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
            // SAFETY: signal syscalls with integer arguments; the siginfo
            // for rt_sigqueueinfo is a zeroed local struct.
            let r = unsafe {
                match op.as_str() {
                    "kill" => libc::kill(pid, sig) as i64,
                    "tgkill" => libc::syscall(libc::SYS_tgkill, pid, pid, sig),
                    "sigqueue" => {
                        let mut info: libc::siginfo_t = std::mem::zeroed();
                        info.si_signo = sig;
                        info.si_code = -1; // SI_QUEUE
                        libc::syscall(libc::SYS_rt_sigqueueinfo, pid, sig, &info as *const _)
                    }
                    _ => {
                        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
                        if fd < 0 {
                            fd
                        } else {
                            libc::syscall(libc::SYS_pidfd_send_signal, fd, sig, 0usize, 0)
                        }
                    }
                }
            };
            report(op, &arg, if r == 0 { Ok(()) } else { Err(errno()) })
        }
        "serve-unix" | "serve-unix-dgram" => {
            use std::os::unix::net::{UnixDatagram, UnixListener};
            let _ = std::fs::remove_file(&arg);
            if op == "serve-unix" {
                let l = match UnixListener::bind(&arg) {
                    Ok(l) => l,
                    Err(e) => {
                        return report("bind", &arg, Err(e.raw_os_error().unwrap_or(libc::EIO)));
                    }
                };
                for c in l.incoming() {
                    drop(c);
                }
            } else {
                let d = match UnixDatagram::bind(&arg) {
                    Ok(d) => d,
                    Err(e) => {
                        return report("bind", &arg, Err(e.raw_os_error().unwrap_or(libc::EIO)));
                    }
                };
                let mut buf = [0u8; 64];
                loop {
                    let _ = d.recv(&mut buf);
                }
            }
            ExitCode::SUCCESS
        }
        "connect-unix" => {
            let r = std::os::unix::net::UnixStream::connect(&arg).map(|_| ());
            report(
                "connect-unix",
                &arg,
                r.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
            )
        }
        "send-unix" => {
            let r = std::os::unix::net::UnixDatagram::unbound()
                .and_then(|d| d.send_to(b"hello", &arg).map(|_| ()));
            report(
                "send-unix",
                &arg,
                r.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
            )
        }
        "move-self" => {
            let r = std::fs::write(format!("{arg}/cgroup.procs"), "0");
            report(
                "move-self",
                &arg,
                r.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
            )
        }
        "clone-into-cgroup" => {
            let Ok(dir) = CString::new(arg.clone()) else {
                return usage();
            };
            // SAFETY: O_PATH open of a directory path we own the string of.
            let fd = unsafe {
                libc::open(
                    dir.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return report("open", &arg, Err(errno()));
            }
            // SAFETY: clone_args is plain data; zeroed is a valid start.
            let mut ca: libc::clone_args = unsafe { std::mem::zeroed() };
            ca.flags = 0x2_0000_0000; // CLONE_INTO_CGROUP
            ca.exit_signal = libc::SIGCHLD as u64;
            ca.cgroup = fd as u64;
            // SAFETY: clone3 without CLONE_VM: the child gets a copy of our
            // memory and only calls _exit.
            let pid = unsafe {
                libc::syscall(
                    libc::SYS_clone3,
                    &ca as *const libc::clone_args,
                    std::mem::size_of::<libc::clone_args>(),
                )
            };
            if pid == 0 {
                // SAFETY: terminating the child.
                unsafe { libc::_exit(0) };
            }
            if pid < 0 {
                return report("clone-into-cgroup", &arg, Err(errno()));
            }
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid as i32, &mut status, 0) };
            report("clone-into-cgroup", &arg, Ok(()))
        }
        "fd-pass" => {
            // fd-pass CGROUP_DIR PATH: we open PATH, a child joins CGROUP_DIR
            // and receives the descriptor over a Unix socket (SCM_RIGHTS).
            let Some(path) = args.get(2) else {
                return usage();
            };
            fd_pass(&arg, path)
        }
        "io-uring-open" => io_uring_open(&arg),
        "bench-open" | "bench-kill" => {
            // bench-open PATH N / bench-kill PID N: time N operations, print ns/op.
            let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
            let pid: i32 = arg.parse().unwrap_or(0);
            let c = CString::new(arg.clone()).unwrap_or_default();
            let start = std::time::Instant::now();
            for _ in 0..n {
                // SAFETY: open/close of a valid path, or kill with signal 0.
                unsafe {
                    if op == "bench-open" {
                        let fd = libc::open(c.as_ptr(), libc::O_RDONLY);
                        if fd >= 0 {
                            libc::close(fd);
                        }
                    } else {
                        libc::kill(pid, 0);
                    }
                }
            }
            let ns = start.elapsed().as_nanos() / u128::from(n.max(1));
            println!("{ns}");
            ExitCode::SUCCESS
        }
        "memfd-copy-exec" => {
            // Copy a binary into a memfd and execute it from there.
            let data = match std::fs::read(&arg) {
                Ok(d) => d,
                Err(e) => return report("read", &arg, Err(e.raw_os_error().unwrap_or(libc::EIO))),
            };
            let name = CString::new("copy").unwrap();
            // SAFETY: memfd_create with a valid name.
            let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
            // SAFETY: writing our buffer to the memfd we just created.
            if fd < 0 || unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) } < 0 {
                return report("memfd", &arg, Err(errno()));
            }
            let argv0 = CString::new("vmprobe").unwrap();
            let noop = CString::new("noop").unwrap();
            let argv = [argv0.as_ptr(), noop.as_ptr(), std::ptr::null()];
            let envp: [*const libc::c_char; 1] = [std::ptr::null()];
            let empty = CString::new("").unwrap();
            // SAFETY: execveat(fd, "", AT_EMPTY_PATH) with valid arrays.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    fd,
                    empty.as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            };
            report("memfd-exec", &arg, Err(errno()))
        }
        _ => usage(),
    }
}

fn fd_pass(cgroup_dir: &str, path: &str) -> ExitCode {
    use std::os::unix::net::UnixDatagram;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return report("open", path, Err(e.raw_os_error().unwrap_or(libc::EIO))),
    };
    let (tx, rx) = match UnixDatagram::pair() {
        Ok(p) => p,
        Err(e) => {
            return report(
                "socketpair",
                path,
                Err(e.raw_os_error().unwrap_or(libc::EIO)),
            );
        }
    };
    // Queue the descriptor first; the child receives it after joining the zone.
    let fd = file.as_raw_fd();
    let mut cmsg_buf = [0u8; 64];
    let mut byte = [b'x'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: building a msghdr with one iovec and one SCM_RIGHTS cmsg in
    // local buffers that outlive the sendmsg call.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg_buf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::copy_nonoverlapping(&fd as *const i32 as *const u8, libc::CMSG_DATA(c), 4);
        libc::sendmsg(tx.as_raw_fd(), &msg, 0)
    };
    if sent < 0 {
        return report("sendmsg", path, Err(errno()));
    }
    if let Err(e) = std::fs::write(format!("{cgroup_dir}/cgroup.procs"), "0") {
        return report(
            "join",
            cgroup_dir,
            Err(e.raw_os_error().unwrap_or(libc::EIO)),
        );
    }
    drop(file);
    let mut rbuf = [0u8; 64];
    let mut rbyte = [0u8; 1];
    let mut riov = libc::iovec {
        iov_base: rbyte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: recvmsg into local buffers; the received fd (if any) is read
    // from the control buffer and closed.
    let got = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut riov;
        msg.msg_iovlen = 1;
        msg.msg_control = rbuf.as_mut_ptr().cast();
        msg.msg_controllen = rbuf.len();
        let n = libc::recvmsg(rx.as_raw_fd(), &mut msg, 0);
        if n < 0 {
            Err(errno())
        } else {
            let c = libc::CMSG_FIRSTHDR(&msg);
            if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
                // The kernel dropped the descriptor (file_receive refused it).
                Err(libc::EPERM)
            } else {
                let mut newfd = -1i32;
                std::ptr::copy_nonoverlapping(
                    libc::CMSG_DATA(c),
                    &mut newfd as *mut i32 as *mut u8,
                    4,
                );
                libc::close(newfd);
                Ok(())
            }
        }
    };
    report("fd-pass", path, got)
}

fn io_uring_open(path: &str) -> ExitCode {
    use io_uring::{IoUring, opcode, types};
    let Ok(c) = CString::new(path) else {
        return usage();
    };
    let mut ring = match IoUring::new(4) {
        Ok(r) => r,
        Err(e) => {
            return report(
                "io_uring_setup",
                path,
                Err(e.raw_os_error().unwrap_or(libc::EIO)),
            );
        }
    };
    let sqe = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), c.as_ptr())
        .flags(libc::O_RDONLY | libc::O_CLOEXEC)
        .build();
    // SAFETY: the path buffer lives until the completion is read below.
    if unsafe { ring.submission().push(&sqe) }.is_err() {
        return report("io_uring", path, Err(libc::EBUSY));
    }
    if let Err(e) = ring.submit_and_wait(1) {
        return report(
            "io_uring_enter",
            path,
            Err(e.raw_os_error().unwrap_or(libc::EIO)),
        );
    }
    let Some(cqe) = ring.completion().next() else {
        return report("io_uring", path, Err(libc::EIO));
    };
    let res = cqe.result();
    if res >= 0 {
        // SAFETY: closing the fd the kernel opened for us.
        unsafe { libc::close(res) };
        report("io-uring-open", path, Ok(()))
    } else {
        report("io-uring-open", path, Err(-res))
    }
}
