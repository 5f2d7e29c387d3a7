//! The release binary is fully static and runs in an empty root
//! filesystem (no libc, no loader), under every multi-call name.

use std::path::Path;
use std::process::Command;

const SYVA: &str = env!("CARGO_BIN_EXE_syva");

#[test]
fn binary_has_no_dynamic_dependencies() {
    let out = Command::new("readelf")
        .args(["-d", SYVA])
        .output()
        .expect("readelf (binutils) is needed for this test: apt-get install binutils");
    assert!(
        out.status.success(),
        "readelf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = text.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(needed.is_empty(), "dynamic dependencies: {needed:?}");
    let hdr = Command::new("readelf").args(["-l", SYVA]).output().unwrap();
    let hdr = String::from_utf8_lossy(&hdr.stdout);
    assert!(
        !hdr.contains("INTERP"),
        "the binary asks for a program interpreter:\n{hdr}"
    );
}

fn which(tool: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not found (coreutils / util-linux)"))
}

/// Run `argv` inside `root` as the new root directory: directly as root,
/// otherwise in a user namespace (unshare -r).
fn run_chrooted(root: &Path, argv: &[&str]) -> std::process::Output {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mut cmd = if euid == 0 {
        Command::new(which("chroot"))
    } else {
        let mut c = Command::new(which("unshare"));
        c.args(["--user", "--map-root-user", "chroot"]);
        c
    };
    cmd.arg(root).args(argv).env_clear();
    // The copy was written by this (multi-threaded) test process: a child
    // forked meanwhile by another test may still hold the write descriptor
    // for an instant, and exec then fails with ETXTBSY. Retry that only.
    for _ in 0..50 {
        let out = cmd.output().expect("running chroot");
        if !String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    cmd.output().expect("running chroot")
}

#[test]
fn runs_in_an_empty_root_filesystem() {
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(SYVA, root.path().join("syva")).unwrap();
    std::os::unix::fs::symlink("syva", root.path().join("syva-core")).unwrap();
    std::os::unix::fs::symlink("syva", root.path().join("syvactl")).unwrap();
    // Nothing else: no /lib, no /etc, no /proc, no /dev.
    let entries: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(entries.len(), 3);

    let out = run_chrooted(root.path(), &["/syva", "--version"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("syva "),
        "status {}, stdout {stdout:?}, stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("commit"), "{stdout}");

    let out = run_chrooted(root.path(), &["/syva-core", "--help"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: syva core"));

    let out = run_chrooted(root.path(), &["/syvactl", "--help"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: syva ctl"));
}
