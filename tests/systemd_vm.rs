//! The systemd units, for real: boot Debian's cloud kernel (BPF LSM on)
//! under QEMU with systemd as PID 1 and the files of the .deb installed,
//! then do what an operator does (tests/systemd_vm/check.sh): run the
//! package's postinst, `systemctl enable --now syva-core`, start the
//! adapters, kill core, stop it. Checks that:
//! - the postinst creates the `syva` group and enables nothing;
//! - `systemctl start syva-core` returns once core is ready (Type=notify),
//!   core is healthy (every program attached, every self-test passed) under
//!   the unit's hardening, and enforces (a cross-zone read is EPERM);
//! - core runs with exactly the unit's capability bounding set, and each
//!   capability of it is needed (core fails, is not healthy, or cannot walk
//!   a protected tree without it);
//! - the socket is root:syva 0660 and the adapter units start after core in
//!   their sandbox (or, for roles still stubs in this build, get as far as
//!   running the binary);
//! - a crashed core is restarted, a usage error is not retried, a stop
//!   detaches the programs and removes /run/syva;
//! - every metric the alert rules and the dashboard use is exported by a
//!   core running the BPF dataplane.
//!
//! The guest is an initramfs: busybox, the host's systemd 252 with the
//! libraries it links, the host's target and slice units, journald, and the
//! unpacked .deb. Environment: SYVA_VM_KERNELS (colon-separated kernel
//! images; default: the newest /boot/vmlinuz-*-cloud-amd64),
//! SYVA_VM_TIMEOUT (seconds, default 900), SYVA_VM_KEEP (keep the work
//! directory), SYVA_VM_SKIP=1 (machines without QEMU: every test returns
//! at once, saying so; as in tests/vm).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const SYVA: &str = env!("CARGO_BIN_EXE_syva");

fn repo(rel: &str) -> PathBuf {
    Path::new(MANIFEST).join(rel)
}

fn which(tool: &str, install: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not found: {install}"))
}

fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ----- the guest ---------------------------------------------------------------

/// Kernels to boot (like tests/vm): SYVA_VM_KERNELS, else the newest
/// /boot/vmlinuz-*-cloud-amd64 and every kernel in /var/cache/syva/kernels
/// (`make deps` puts Debian 12's 6.12 there). Which capabilities BPF LSM
/// needs is the kernel's decision: each kernel gets its own boot.
fn kernels() -> Vec<PathBuf> {
    if let Ok(k) = std::env::var("SYVA_VM_KERNELS") {
        return std::env::split_paths(&k).collect();
    }
    let list = |dir: &str, keep: &dyn Fn(&str) -> bool| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| keep(&p.file_name().unwrap().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|p| version_key(&p.to_string_lossy()));
        v
    };
    let mut out: Vec<PathBuf> = list("/boot", &|n| {
        n.starts_with("vmlinuz-") && n.ends_with("-cloud-amd64")
    })
    .pop()
    .into_iter()
    .collect();
    out.extend(list("/var/cache/syva/kernels", &|n| {
        n.starts_with("vmlinuz-")
    }));
    assert!(
        !out.is_empty(),
        "no /boot/vmlinuz-*-cloud-amd64: make deps installs linux-image-cloud-amd64, \
         or set SYVA_VM_KERNELS"
    );
    out
}

fn version_key(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The .deb of the binary under test (packaging/build.sh, like `make package`).
fn build_deb() -> PathBuf {
    which("cargo-deb", "make tools (cargo install --locked cargo-deb)");
    let target_dir = Path::new(SYVA).ancestors().nth(3).unwrap().to_path_buf();
    let out_dir = target_dir.join("package-test-vm");
    let out = run_ok(
        Command::new(repo("packaging/build.sh"))
            .arg(&out_dir)
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(MANIFEST),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("packaging/build.sh lists the .deb it wrote")
}

/// Copy a host file to the same path under `root` (through root's symlinks,
/// so /lib/... lands in usr/lib/...).
fn copy_into(root: &Path, file: &Path) {
    let dest = root.join(file.strip_prefix("/").unwrap());
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::copy(file, &dest).unwrap_or_else(|e| panic!("copying {}: {e}", file.display()));
}

/// A dynamically linked host program and every library `ldd` lists.
fn copy_program(root: &Path, program: &Path) {
    copy_into(root, program);
    let out = run_ok(Command::new(which("ldd", "libc-bin")).arg(program));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(lib) = line.split_whitespace().find(|w| w.starts_with('/')) {
            copy_into(root, Path::new(lib));
        }
    }
}

fn build_initramfs(work: &Path, deb: &Path) -> PathBuf {
    let root = work.join("root");
    for d in [
        "bin",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "etc/systemd/system",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/lib/dpkg/info",
        "vmcheck",
        "srv",
        "root",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    // Merged /usr, like the host: /lib and /lib64 are symlinks. /bin stays a
    // directory for busybox's applets.
    symlink("usr/lib", root.join("lib")).unwrap();
    symlink("usr/lib64", root.join("lib64")).unwrap();
    symlink("usr/sbin", root.join("sbin")).unwrap();

    // The package, unpacked as dpkg would, and its maintainer scripts.
    run_ok(
        Command::new(which("dpkg-deb", "dpkg"))
            .arg("-x")
            .arg(deb)
            .arg(&root),
    );
    let control = work.join("control");
    run_ok(
        Command::new(which("dpkg-deb", "dpkg"))
            .arg("-e")
            .arg(deb)
            .arg(&control),
    );
    fs::copy(
        control.join("postinst"),
        root.join("var/lib/dpkg/info/syva.postinst"),
    )
    .unwrap();

    // busybox: the shell and tools of check.sh.
    let busybox = which("busybox", "apt-get install busybox-static (make deps)");
    fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    let list = run_ok(Command::new(&busybox).arg("--list"));
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }

    // systemd from the host (Debian 12: systemd 252), with its libraries.
    for p in [
        "/usr/lib/systemd/systemd",
        "/usr/lib/systemd/systemd-journald",
        "/usr/bin/systemctl",
        "/usr/bin/journalctl",
        "/usr/bin/systemd-sysusers",
    ] {
        let p = Path::new(p);
        assert!(
            p.is_file(),
            "{} missing: apt-get install systemd (make deps)",
            p.display()
        );
        copy_program(&root, p);
    }
    let units = Path::new("/usr/lib/systemd/system");
    for e in fs::read_dir(units).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let wanted = name.ends_with(".target")
            || name.ends_with(".slice")
            || name.starts_with("systemd-journald");
        if wanted && e.file_type().unwrap().is_file() {
            copy_into(&root, &e.path());
        }
    }
    symlink("/usr/lib/systemd/systemd", root.join("init")).unwrap();

    let vm = repo("tests/systemd_vm");
    fs::copy(vm.join("check.sh"), root.join("vmcheck/check.sh")).unwrap();
    for unit in ["vmcheck.target", "syva-vmcheck.service"] {
        fs::copy(vm.join(unit), root.join("etc/systemd/system").join(unit)).unwrap();
    }
    for (file, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/machine-id", "5d1a0c2e9b7f4c3a8e6d2b1f0a9c8e7d\n"),
        ("etc/hostname", "syva-vm\n"),
        (
            "etc/os-release",
            "NAME=\"syva VM test\"\nID=debian\nVERSION_ID=12\n",
        ),
    ] {
        fs::write(root.join(file), text).unwrap();
    }

    let out = work.join("initramfs.cpio");
    let list = run_ok(Command::new("find").arg(".").current_dir(&root));
    let mut cpio = Command::new(which("cpio", "apt-get install cpio (make deps)"))
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    cpio.stdin.take().unwrap().write_all(&list.stdout).unwrap();
    assert!(cpio.wait().unwrap().success(), "cpio failed");
    out
}

/// What one boot reported.
#[derive(Debug)]
struct Report {
    kernel: String,
    checks: BTreeMap<String, (String, String)>,
    capmask: String,
    caps: Vec<String>,
    metrics: String,
    done: bool,
    console: String,
}

impl Report {
    fn context(&self) -> String {
        let tail: Vec<&str> = self.console.lines().rev().take(150).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "----- {} guest console (last 150 lines) -----\n{}",
            self.kernel,
            tail.join("\n")
        )
    }

    fn check(&self, name: &str) -> &(String, String) {
        self.checks
            .get(name)
            .unwrap_or_else(|| panic!("check {name} did not report\n{}", self.context()))
    }

    /// Each of `names` must PASS (or be a STUB when `stub_ok`); each of
    /// `on_failure` (checks that report only when they fail, or only when
    /// the role is real) must be absent or PASS.
    fn expect(&self, names: &[&str], on_failure: &[&str], stub_ok: bool) {
        assert!(self.done, "the guest did not finish\n{}", self.context());
        let mut failed = Vec::new();
        for n in names {
            let (status, detail) = self.check(n);
            eprintln!("{}: {n}: {status} {detail}", self.kernel);
            if !(status == "PASS" || (stub_ok && status == "STUB")) {
                failed.push(format!("{n}: {status} {detail}"));
            }
        }
        for n in on_failure {
            match self.checks.get(*n) {
                Some((status, detail)) if status != "PASS" => {
                    failed.push(format!("{n}: {status} {detail}"));
                }
                Some((status, detail)) => eprintln!("{}: {n}: {status} {detail}", self.kernel),
                None => {}
            }
        }
        assert!(
            failed.is_empty(),
            "{}:\n{}\n{}",
            self.kernel,
            failed.join("\n"),
            self.context()
        );
    }
}

fn boot(kernel: &Path, initrd: &Path, work: &Path) -> Report {
    let timeout: u64 = std::env::var("SYVA_VM_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(900);
    let label = kernel.file_name().unwrap().to_string_lossy().into_owned();
    let console_path = work.join(format!("console-{label}.log"));
    let started = Instant::now();
    let status = Command::new("timeout")
        .arg(timeout.to_string())
        .arg(which(
            "qemu-system-x86_64",
            "apt-get install qemu-system-x86 (make deps)",
        ))
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1"])
        .args(["-nographic", "-no-reboot", "-net", "none", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 quiet loglevel=3 lsm=lockdown,capability,landlock,yama,bpf panic=-1 \
             systemd.unit=vmcheck.target systemd.show_status=0 systemd.log_level=warning \
             systemd.log_target=console",
        ])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&console_path).unwrap())
        .stderr(Stdio::inherit())
        .status()
        .expect("running qemu");
    let console = fs::read(&console_path)
        .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
        .unwrap_or_default();
    eprintln!(
        "systemd vm: {label} ran in {:.1}s ({status})",
        started.elapsed().as_secs_f64()
    );
    parse(&label, console)
}

fn parse(kernel: &str, console: String) -> Report {
    let mut checks = BTreeMap::new();
    let mut caps = Vec::new();
    let mut capmask = String::new();
    for line in console.lines() {
        if let Some(rest) = line.strip_prefix("@@CHECK ") {
            let mut p = rest.splitn(3, ' ');
            let (name, status, detail) = (
                p.next().unwrap_or(""),
                p.next().unwrap_or(""),
                p.next().unwrap_or(""),
            );
            checks.insert(name.to_owned(), (status.to_owned(), detail.to_owned()));
        } else if let Some(rest) = line.strip_prefix("@@CAPS ") {
            caps.push(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("@@CAPMASK ") {
            rest.clone_into(&mut capmask);
        }
    }
    let metrics = console
        .split_once("@@METRICS-BEGIN\n")
        .and_then(|(_, r)| r.split_once("@@METRICS-END"))
        .map(|(m, _)| m.to_owned())
        .unwrap_or_default();
    Report {
        kernel: kernel.to_owned(),
        done: console.contains("@@VMCHECK-DONE"),
        checks,
        capmask,
        caps,
        metrics,
        console,
    }
}

static REPORTS: OnceLock<Vec<Report>> = OnceLock::new();

fn reports() -> &'static [Report] {
    if std::env::var("SYVA_VM_SKIP").is_ok_and(|v| v == "1") {
        eprintln!("SYVA_VM_SKIP=1: the systemd VM test is skipped");
        return &[];
    }
    REPORTS.get_or_init(|| {
        let deb = build_deb();
        let work = tempfile::Builder::new()
            .prefix("syva-systemd-vm-")
            .tempdir()
            .unwrap();
        let initrd = build_initramfs(work.path(), &deb);
        eprintln!(
            "systemd vm: initramfs {} MB",
            fs::metadata(&initrd).unwrap().len() >> 20
        );
        let reports = std::thread::scope(|s| {
            let handles: Vec<_> = kernels()
                .into_iter()
                .map(|k| {
                    let (initrd, work) = (&initrd, work.path());
                    s.spawn(move || boot(&k, initrd, work))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        if std::env::var_os("SYVA_VM_KEEP").is_some() {
            eprintln!(
                "systemd vm: work directory kept at {}",
                work.keep().display()
            );
        }
        reports
    })
}

// ----- the capability bits the unit names --------------------------------------

/// Capability numbers (linux/capability.h) of the names the units may use.
fn cap_bit(name: &str) -> u32 {
    match name {
        "CAP_CHOWN" => 0,
        "CAP_DAC_OVERRIDE" => 1,
        "CAP_DAC_READ_SEARCH" => 2,
        "CAP_FOWNER" => 3,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_ADMIN" => 12,
        "CAP_SYS_PTRACE" => 19,
        "CAP_SYS_ADMIN" => 21,
        "CAP_SYS_RESOURCE" => 24,
        "CAP_MAC_ADMIN" => 33,
        "CAP_PERFMON" => 38,
        "CAP_BPF" => 39,
        _ => panic!("unknown capability {name}: add it to cap_bit"),
    }
}

fn unit_bounding_set() -> Vec<String> {
    let unit = fs::read_to_string(repo("packaging/systemd/syva-core.service")).unwrap();
    unit.lines()
        .filter_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

// ----- the tests -------------------------------------------------------------------

#[test]
fn core_unit_is_ready_when_attached_healthy_and_enforcing() {
    for r in reports() {
        r.expect(
            &[
                "postinst",
                "not-enabled",
                "core-start",
                "core-health",
                "socket",
                "enforce-deny",
                "enforce-allow",
                "enforce-late-mount",
            ],
            &["enforce-setup"],
            false,
        );
    }
}

#[test]
fn core_runs_with_exactly_the_units_capabilities_and_needs_each() {
    let set = unit_bounding_set();
    assert!(!set.is_empty());
    let mask: u64 = set.iter().map(|c| 1u64 << cap_bit(c)).sum();
    for r in reports() {
        assert!(r.done, "{}", r.context());
        // CapEff = CapBnd = the unit's set; no ambient capabilities.
        let field = |f: &str| {
            r.capmask
                .split_whitespace()
                .skip_while(|w| *w != format!("{f}:"))
                .nth(1)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| panic!("{f} missing in {:?}\n{}", r.capmask, r.context()))
        };
        assert_eq!(
            field("CapEff"),
            mask,
            "{}: effective capabilities of core",
            r.kernel
        );
        assert_eq!(field("CapBnd"), mask, "{}: bounding set of core", r.kernel);
        assert_eq!(field("CapAmb"), 0, "{}: ambient capabilities", r.kernel);

        let works = |line: &str| {
            line.contains("start=0 ")
                && line.contains("state=active")
                && line.contains("health=healthy")
                && line.contains("walk=yes")
        };
        for line in &r.caps {
            eprintln!("{}: {line}", r.kernel);
        }
        let all = r
            .caps
            .iter()
            .find(|l| l.starts_with("all "))
            .unwrap_or_else(|| panic!("{}", r.context()));
        assert!(
            works(all),
            "{}: core must work with the unit's set: {all}",
            r.kernel
        );
        for cap in &set {
            let line = r
                .caps
                .iter()
                .find(|l| l.starts_with(&format!("without-{cap} ")))
                .unwrap_or_else(|| panic!("no run without {cap}\n{}", r.context()));
            assert!(!works(line), "{}: {cap} is not needed: {line}", r.kernel);
        }
    }
}

#[test]
fn adapter_units_start_after_core_in_their_sandbox() {
    for r in reports() {
        r.expect(
            &["file-start", "api-start"],
            &["file-order", "api-order", "api-core"],
            true,
        );
        for a in ["file", "api"] {
            if r.check(&format!("{a}-start")).0 == "STUB" {
                eprintln!(
                    "{}: `syva {a}` is a stub in this build: its unit was only checked up to running the binary",
                    r.kernel
                );
            }
        }
    }
}

#[test]
fn core_restarts_after_a_crash_not_after_a_usage_error_and_stops_cleanly() {
    for r in reports() {
        r.expect(
            &["restart-on-crash", "no-restart-on-usage-error", "stop"],
            &["core-start-again", "enforce-after-restart"],
            false,
        );
    }
}

#[test]
fn every_metric_the_rules_and_dashboard_use_is_exported_by_a_bpf_core() {
    let mut used = BTreeSet::new();
    for f in [
        "packaging/monitoring/syva-alerts.yaml",
        "packaging/monitoring/syva-node-dashboard.json",
    ] {
        let text = fs::read_to_string(repo(f)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("syva_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let before = rest[..i].chars().last();
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                used.insert(tail[..end].to_owned());
            }
            rest = &tail[end..];
        }
    }
    assert!(used.len() > 10, "{used:?}");
    for r in reports() {
        assert!(
            !r.metrics.is_empty(),
            "no /metrics from the guest\n{}",
            r.context()
        );
        let exported: BTreeSet<&str> = r
            .metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        // Adapter series exist once an adapter reported (ReportAdapter):
        // with `syva file` still a stub nobody did; tests/packaging.rs
        // checks them against a core that received a report.
        let no_adapter = r.check("file-start").0 == "STUB" && r.check("api-start").0 == "STUB";
        let missing: Vec<&String> = used
            .iter()
            .filter(|n| !exported.contains(n.as_str()))
            .filter(|n| !(no_adapter && n.starts_with("syva_adapter_")))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: used but not exported by a BPF core: {missing:?}\nexported: {exported:?}",
            r.kernel
        );
        eprintln!(
            "{}: {} metric names used, all exported{}",
            r.kernel,
            used.len(),
            if no_adapter {
                " (adapter series: no adapter in this build)"
            } else {
                ""
            }
        );
    }
}
