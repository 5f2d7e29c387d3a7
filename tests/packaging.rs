//! Packaging, checked with the tools operators use:
//! - the .deb (cargo-deb) installs into a chroot with dpkg for real: the
//!   `syva` group is created by the real systemd-sysusers, every role name
//!   runs, and a purge leaves nothing behind; the .rpm (rpmbuild) carries the
//!   same files and installs and erases the same way with rpm;
//! - the installed systemd units pass `systemd-analyze verify` without a
//!   warning, and their exposure (`systemd-analyze security`) is printed;
//! - the alert rules pass `promtool check rules` and their unit tests, and
//!   every metric the rules and the dashboard use is exported by a real core;
//! - the flags the units and the Kubernetes manifests pass are accepted by
//!   this build; the manifests are consistent (namespace, image, volumes,
//!   socket); the Dockerfile names every role symlink.
//!
//! Tools: dpkg, rpm/rpmbuild, systemd-analyze, promtool, busybox
//! (`make deps`), cargo-deb (`make tools`). A missing tool fails the test
//! with the command that installs it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use syva::cli::{Cli, ROLE_NAMES};
use syva::proto::pb;
use syva::proto::pb::attach_container_request::Cgroup;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const SYVA: &str = env!("CARGO_BIN_EXE_syva");
const UNITS: [&str; 3] = ["syva-core.service", "syva-file.service", "syva-api.service"];

// ----- helpers ---------------------------------------------------------------

fn repo(rel: &str) -> PathBuf {
    Path::new(MANIFEST).join(rel)
}

/// A tool from PATH (or /usr/sbin, /sbin), or a failure naming the package.
fn tool(name: &str, install: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: {install}"))
}

fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}", show(&out));
    out
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `cmd` as root: directly when we are, else in a user namespace where we
/// are mapped to root (files then belong to us outside).
fn as_root(program: &Path) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new(tool("unshare", "apt-get install util-linux"));
        c.args(["--user", "--map-root-user"]).arg(program);
        c
    }
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            <Value as serde::Deserialize>::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn files_under(dir: &Path, ext: &[&str]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| ext.contains(&x.to_string_lossy().as_ref()))
        })
        .collect();
    v.sort();
    v
}

// ----- the packages, built once per test run ---------------------------------

#[derive(Debug)]
struct Packages {
    deb: PathBuf,
    rpm: PathBuf,
}

static PACKAGES: OnceLock<Packages> = OnceLock::new();

/// Build the .deb and .rpm of the binary under test with packaging/build.sh
/// (what `make package` runs), into <target>/package-test.
fn packages() -> &'static Packages {
    PACKAGES.get_or_init(|| {
        tool("cargo-deb", "make tools (cargo install --locked cargo-deb)");
        tool("rpmbuild", "apt-get install rpm (make deps)");
        // SYVA = <target dir>/<triple>/release/syva: package that very binary.
        let target_dir = Path::new(SYVA).ancestors().nth(3).unwrap().to_path_buf();
        let out_dir = target_dir.join("package-test");
        let out = ok(
            Command::new(repo("packaging/build.sh"))
                .arg(&out_dir)
                .env("CARGO_TARGET_DIR", &target_dir)
                .current_dir(MANIFEST),
            "packaging/build.sh",
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        let find = |suffix: &str| {
            listed
                .lines()
                .map(PathBuf::from)
                .find(|p| p.to_string_lossy().ends_with(suffix) && p.is_file())
                .unwrap_or_else(|| panic!("build.sh did not produce a {suffix}:\n{listed}"))
        };
        let p = Packages {
            deb: find(".deb"),
            rpm: find(".rpm"),
        };
        eprintln!(
            "packages: {} ({} KiB), {} ({} KiB)",
            p.deb.display(),
            fs::metadata(&p.deb).unwrap().len() >> 10,
            p.rpm.display(),
            fs::metadata(&p.rpm).unwrap().len() >> 10
        );
        p
    })
}

// ----- a minimal root file system for dpkg and rpm ---------------------------

/// busybox as /bin/sh and friends (maintainer scripts run in the chroot),
/// the host's systemd-sysusers with its libraries (the postinst uses it),
/// /etc/passwd and /etc/group with root only.
struct Chroot {
    dir: tempfile::TempDir,
}

impl Chroot {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("syva-chroot-")
            .tempdir()
            .unwrap();
        let r = dir.path();
        for d in [
            "bin",
            "usr/bin",
            "etc",
            "tmp",
            "dev",
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/log",
        ] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
        let busybox = tool("busybox", "apt-get install busybox-static (make deps)");
        fs::copy(&busybox, r.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "grep", "cat", "echo", "rm", "mkdir", "ln", "test", "[", "kill",
        ] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
        }
        let sysusers = tool("systemd-sysusers", "apt-get install systemd (make deps)");
        copy_with_libraries(&sysusers, r);
        fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        fs::write(r.join("etc/group"), "root:x:0:\n").unwrap();
        if is_root() {
            // Maintainer scripts redirect to /dev/null. (Without root the
            // redirections fail, which the scripts tolerate.)
            let st = Command::new(tool("mknod", "coreutils"))
                .arg(r.join("dev/null"))
                .args(["c", "1", "3"])
                .status()
                .unwrap();
            assert!(st.success(), "mknod /dev/null");
        }
        Chroot { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    /// Run a program of the chroot inside it.
    fn run(&self, argv: &[&str]) -> Output {
        let mut c = as_root(&tool("chroot", "coreutils"));
        c.arg(self.dir.path()).args(argv).env_clear();
        c.output().unwrap()
    }

    /// Every path with its type and content (files) or target (links).
    fn snapshot(&self) -> BTreeMap<String, String> {
        walkdir::WalkDir::new(self.dir.path())
            .min_depth(1)
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                let rel = e
                    .path()
                    .strip_prefix(self.dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let ft = e.file_type();
                let what = if ft.is_symlink() {
                    format!("link {}", fs::read_link(e.path()).unwrap().display())
                } else if ft.is_dir() {
                    "dir".to_owned()
                } else if ft.is_char_device() {
                    "chardev".to_owned()
                } else {
                    let bytes = fs::read(e.path()).unwrap();
                    format!("file {} {:x}", bytes.len(), fnv1a(&bytes))
                };
                (rel, what)
            })
            .collect()
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Copy a dynamically linked program and the libraries `ldd` lists.
fn copy_with_libraries(program: &Path, root: &Path) {
    let out = ok(Command::new(tool("ldd", "libc-bin")).arg(program), "ldd");
    let mut files = vec![program.to_path_buf()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libx.so.1 => /lib/.../libx.so.1 (0x...)" or "/lib64/ld-linux... (0x...)"
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(PathBuf::from(p));
        }
    }
    for f in files {
        let dest = root.join(f.strip_prefix("/").unwrap());
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&f, &dest).unwrap_or_else(|e| panic!("copying {}: {e}", f.display()));
    }
}

/// Paths that differ between two snapshots.
fn changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| {
            format!(
                "{k}: {} -> {}",
                before.get(k).map_or("(none)", String::as_str),
                after.get(k).map_or("(none)", String::as_str)
            )
        })
        .collect()
}

/// What an installed package must provide: the binary under test, every
/// role name as a symlink to it that runs its role, the `syva` group.
fn check_installed(root: &Chroot, defaults_dir: &str) {
    assert_eq!(
        fs::read(root.path("usr/bin/syva")).unwrap(),
        fs::read(SYVA).unwrap(),
        "the package must carry the binary the tests ran"
    );
    for (name, role) in ROLE_NAMES {
        let link = root.path(&format!("usr/bin/{name}"));
        assert_eq!(
            fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display())),
            Path::new("syva"),
            "{name} must be a relative symlink to syva"
        );
        let out = root.run(&[&format!("/usr/bin/{name}"), "--help"]);
        assert!(out.status.success(), "{name} --help:\n{}", show(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains(&format!("Usage: syva {role}")),
            "{name}: {help}"
        );
    }
    let group = fs::read_to_string(root.path("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("syva:x:")),
        "the postinstall script must create the syva group:\n{group}"
    );
    for unit in UNITS {
        assert!(
            root.path(&format!("usr/lib/systemd/system/{unit}"))
                .is_file(),
            "{unit}"
        );
    }
    for d in ["syva-core", "syva-file", "syva-api"] {
        assert!(
            root.path(&format!("{defaults_dir}/{d}")).is_file(),
            "{defaults_dir}/{d}"
        );
    }
    assert!(root.path("etc/syva/policies/README").is_file());
    assert!(
        root.path("usr/share/syva/examples/policies/web.toml")
            .is_file()
    );
    assert!(
        root.path("usr/share/syva/monitoring/syva-alerts.yaml")
            .is_file()
    );
    assert!(
        root.path("usr/share/syva/k8s/file-adapter/daemonset.yaml")
            .is_file()
    );
}

/// The group database (and its backup and lock), which systemd-sysusers
/// changes: the `syva` group stays after removal, as system groups do
/// (files may still carry its gid).
fn group_file(change: &str) -> bool {
    [
        "etc/group:",
        "etc/group-:",
        "etc/gshadow:",
        "etc/gshadow-:",
        "etc/.pwd.lock:",
    ]
    .iter()
    .any(|f| change.starts_with(f))
}

fn dpkg(root: &Chroot, args: &[&str]) -> Output {
    let mut c = as_root(&tool("dpkg", "dpkg"));
    c.arg(format!("--root={}", root.dir.path().display()))
        .args(args);
    c.output().unwrap()
}

// ----- .deb --------------------------------------------------------------------

#[test]
fn deb_installs_into_a_chroot_runs_every_role_and_purges_cleanly() {
    let pkgs = packages();
    let root = Chroot::new();
    let before = root.snapshot();

    // The chroot has no dpkg record of systemd: its systemd-sysusers is the
    // host's, copied in, so the dependency is met in fact, not in dpkg's books.
    let out = dpkg(
        &root,
        &["--force-depends", "-i", &pkgs.deb.to_string_lossy()],
    );
    assert!(out.status.success(), "dpkg -i:\n{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("systemctl enable --now syva-core.service"),
        "the postinst says how to start: {stdout}"
    );
    check_installed(&root, "etc/default");
    let status = String::from_utf8_lossy(&dpkg(&root, &["-s", "syva"]).stdout).into_owned();
    for conffile in [
        "/etc/default/syva-core",
        "/etc/default/syva-file",
        "/etc/default/syva-api",
        "/etc/syva/policies/README",
    ] {
        assert!(
            status.contains(conffile),
            "{conffile} must be a conffile:\n{status}"
        );
    }

    let out = dpkg(&root, &["--purge", "syva"]);
    assert!(out.status.success(), "dpkg --purge:\n{}", show(&out));
    let after = root.snapshot();
    let left: Vec<String> = changes(&before, &after)
        .into_iter()
        .filter(|c| {
            // dpkg's own records, and the group.
            !(c.starts_with("var/lib/dpkg/") || c.starts_with("var/log/dpkg.log") || group_file(c))
        })
        .collect();
    assert!(
        left.is_empty(),
        "purge left changes behind:\n{}",
        left.join("\n")
    );
    let group = fs::read_to_string(root.path("etc/group")).unwrap();
    assert_eq!(
        group.lines().count(),
        2,
        "only the syva group was added: {group}"
    );
}

// ----- .rpm --------------------------------------------------------------------

fn rpm_query(rpm: &Path, fmt: &str) -> Vec<String> {
    let out = ok(
        Command::new(tool("rpm", "apt-get install rpm (make deps)"))
            .args(["-qp", "--qf", fmt])
            .arg(rpm),
        "rpm -qp",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn rpm_has_the_debs_files_installs_into_a_chroot_and_erases_cleanly() {
    let pkgs = packages();

    // Same files as the .deb (directories aside), /etc/default -> /etc/sysconfig.
    let deb_list = ok(
        Command::new(tool("dpkg-deb", "dpkg"))
            .arg("-c")
            .arg(&pkgs.deb),
        "dpkg-deb -c",
    );
    let deb_files: BTreeSet<String> = String::from_utf8_lossy(&deb_list.stdout)
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| {
            p.trim_start_matches('.')
                .replace("/etc/default/", "/etc/sysconfig/")
        })
        .collect();
    let rpm_files: BTreeSet<String> = rpm_query(&pkgs.rpm, "[%{FILEMODES:perms} %{FILENAMES}\n]")
        .iter()
        .filter(|l| !l.starts_with('d'))
        .map(|l| l.split_once(' ').unwrap().1.to_owned())
        .collect();
    assert_eq!(
        deb_files, rpm_files,
        "the .rpm and the .deb must carry the same files"
    );
    // `rpm -qlp`: the listing operators see.
    let listed = ok(
        Command::new(tool("rpm", "rpm")).arg("-qlp").arg(&pkgs.rpm),
        "rpm -qlp",
    );
    eprintln!("rpm -qlp:\n{}", String::from_utf8_lossy(&listed.stdout));
    let links = rpm_query(&pkgs.rpm, "[%{FILENAMES} %{FILELINKTOS}\n]");
    for (name, _) in ROLE_NAMES {
        let want = format!("/usr/bin/{name} syva");
        assert!(links.contains(&want), "{want} missing from {links:#?}");
    }
    let config = rpm_query(&pkgs.rpm, "[%{FILEFLAGS:fflags} %{FILENAMES}\n]");
    for f in ["/etc/sysconfig/syva-core", "/etc/syva/policies/README"] {
        assert!(
            config.iter().any(|l| l.ends_with(f) && l.starts_with('c')),
            "{f} must be %config: {config:#?}"
        );
    }

    // Install, run, erase, like dnf would (without the dependency solver:
    // the chroot's systemd-sysusers is the host's).
    let root = Chroot::new();
    let rpm = tool("rpm", "rpm");
    let dbpath = "/var/lib/rpm";
    let mut c = as_root(&rpm);
    c.arg("--root")
        .arg(root.dir.path())
        .args(["--dbpath", dbpath, "--initdb"]);
    ok(&mut c, "rpm --initdb");
    // The state to come back to: the chroot with an empty rpm database.
    let before = root.snapshot();
    let mut c = as_root(&rpm);
    c.arg("--root")
        .arg(root.dir.path())
        .args(["--dbpath", dbpath, "-i", "--nodeps"]);
    // Debian's rpm refuses to install into the system without this flag.
    if String::from_utf8_lossy(&Command::new(&rpm).arg("--help").output().unwrap().stdout)
        .contains("--force-debian")
    {
        c.arg("--force-debian");
    }
    let out = c.arg(&pkgs.rpm).output().unwrap();
    assert!(out.status.success(), "rpm -i:\n{}", show(&out));
    check_installed(&root, "etc/sysconfig");

    let mut c = as_root(&rpm);
    c.arg("--root")
        .arg(root.dir.path())
        .args(["--dbpath", dbpath, "-e", "syva"]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "rpm -e:\n{}", show(&out));
    let after = root.snapshot();
    let left: Vec<String> = changes(&before, &after)
        .into_iter()
        .filter(|c| {
            // rpm's database and temporary directory, the group, and parent
            // directories owned on real systems by filesystem/systemd.
            let parent_dir = [
                "etc/sysconfig:",
                "usr/lib:",
                "usr/lib/systemd:",
                "usr/lib/systemd/system:",
                "usr/lib/sysusers.d:",
                "usr/share:",
                "usr/share/doc:",
            ]
            .iter()
            .any(|d| c.starts_with(d) && c.ends_with("-> dir"));
            !(c.starts_with("var/lib/rpm")
                || c.starts_with("var/tmp:")
                || group_file(c)
                || parent_dir)
        })
        .collect();
    assert!(
        left.is_empty(),
        "erase left changes behind:\n{}",
        left.join("\n")
    );
    for gone in ["etc/syva", "usr/share/syva", "usr/share/doc/syva"] {
        assert!(!root.path(gone).exists(), "{gone} must be removed");
    }
}

// ----- systemd units -------------------------------------------------------------

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let pkgs = packages();
    let analyze = tool("systemd-analyze", "apt-get install systemd (make deps)");
    let root = Chroot::new();
    let out = dpkg(
        &root,
        &["--force-depends", "-i", &pkgs.deb.to_string_lossy()],
    );
    assert!(out.status.success(), "dpkg -i:\n{}", show(&out));
    // The units refer to the system's targets (sysinit.target, ...): give the
    // root the host's unit files, without overwriting ours.
    let units_dir = root.path("usr/lib/systemd/system");
    for e in fs::read_dir("/usr/lib/systemd/system").expect("the host's systemd units") {
        let e = e.unwrap();
        let dest = units_dir.join(e.file_name());
        if !dest.exists() && e.file_type().unwrap().is_file() {
            fs::copy(e.path(), dest).unwrap();
        }
    }
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(format!("--root={}", root.dir.path().display()))
        .arg("--man=no")
        .args(UNITS)
        .output()
        .unwrap();
    // verify exits 0 on unknown keys and bad values: any output is a finding.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        show(&out)
    );

    // The exposure score systemd computes from the hardening options (0 is
    // the best, 10 the worst); printed, and bounded so that a lost option
    // shows up here.
    for (unit, max) in [
        ("syva-core.service", 3.0),
        ("syva-file.service", 2.0),
        ("syva-api.service", 2.0),
    ] {
        let out = Command::new(&analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--root={}", root.dir.path().display()))
            .arg(unit)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| l.split_once(&format!("exposure level for {unit}: ")))
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level for {unit}:\n{}", show(&out)));
        eprintln!("systemd-analyze security {unit}: exposure {score}");
        assert!(score <= max, "{unit}: exposure {score} > {max}:\n{text}");
    }
}

/// argv of every ExecStart= of the units (variables dropped).
fn unit_commands() -> Vec<(String, Vec<String>)> {
    let mut v = Vec::new();
    for unit in UNITS {
        let text = fs::read_to_string(repo(&format!("packaging/systemd/{unit}"))).unwrap();
        for line in text.lines() {
            if let Some(cmd) = line.strip_prefix("ExecStart=") {
                let argv: Vec<String> = cmd
                    .split_whitespace()
                    .filter(|w| !w.starts_with('$'))
                    .map(str::to_owned)
                    .collect();
                assert_eq!(argv[0], "/usr/bin/syva", "{unit}");
                v.push((unit.to_owned(), argv));
            }
        }
    }
    assert_eq!(v.len(), UNITS.len(), "one ExecStart per unit");
    v
}

/// A role still the walking skeleton's stub (exits 7 "not implemented"):
/// its flags are placeholders, so manifests may already use the real ones.
fn role_is_stub(role: &str) -> bool {
    let mut c = Command::new(SYVA);
    c.arg(role)
        .args(["--core-socket", "/nonexistent/syva-test.sock"]);
    if role == "api" {
        c.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code() == Some(7);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn parse_args(what: &str, argv: &[String]) {
    let role = argv.get(1).cloned().unwrap_or_default();
    if let Err(e) = Cli::try_parse_from(argv) {
        if role_is_stub(&role) {
            eprintln!(
                "{what}: `syva {role}` is a stub in this build; its flags are not checked ({e})"
            );
            return;
        }
        panic!("{what}: this build rejects {argv:?}:\n{e}");
    }
}

#[test]
fn units_pass_only_flags_this_build_accepts() {
    for (unit, argv) in unit_commands() {
        parse_args(&unit, &argv);
    }
    // Core serves the socket the adapters use, shared with group syva.
    let cmds = unit_commands();
    let core = &cmds
        .iter()
        .find(|(u, _)| u == "syva-core.service")
        .unwrap()
        .1;
    let flag = |argv: &[String], f: &str| {
        argv.iter()
            .position(|a| a == f)
            .map(|i| argv[i + 1].clone())
    };
    assert_eq!(
        flag(core, "--socket").as_deref(),
        Some("/run/syva/core.sock")
    );
    assert_eq!(flag(core, "--socket-group").as_deref(), Some("syva"));
    for (unit, argv) in &cmds {
        if unit != "syva-core.service" {
            assert_eq!(
                flag(argv, "--core-socket").as_deref(),
                Some("/run/syva/core.sock"),
                "{unit}"
            );
            let text = fs::read_to_string(repo(&format!("packaging/systemd/{unit}"))).unwrap();
            assert!(
                text.contains("SupplementaryGroups=syva"),
                "{unit} must join group syva"
            );
            assert!(
                text.contains("After=syva-core.service"),
                "{unit} must start after core"
            );
        }
    }
    let sysusers = fs::read_to_string(repo("packaging/sysusers/syva.conf")).unwrap();
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["g", "syva"]))
    );
}

// ----- monitoring ------------------------------------------------------------------

fn promtool() -> PathBuf {
    tool("promtool", "apt-get install prometheus (make deps)")
}

#[test]
fn alert_rules_pass_promtool_checks_and_unit_tests() {
    let dir = repo("packaging/monitoring");
    let out = ok(
        Command::new(promtool())
            .args(["check", "rules", "syva-alerts.yaml"])
            .current_dir(&dir),
        "promtool check rules",
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    let out = ok(
        Command::new(promtool())
            .args(["test", "rules", "syva-alerts.test.yaml"])
            .current_dir(&dir),
        "promtool test rules",
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    // Every alert has a unit test that expects it to fire.
    let rules = &yaml_docs(&dir.join("syva-alerts.yaml"))[0];
    let tests = fs::read_to_string(dir.join("syva-alerts.test.yaml")).unwrap();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            assert!(
                tests.contains(&format!(
                    "alertname: {name}\n        exp_alerts:\n          - exp_labels:"
                )),
                "{name} has no firing test case"
            );
        }
    }
}

/// The PromQL of the alert rules and of the dashboard panels.
fn monitoring_queries() -> Vec<(String, String)> {
    let dir = repo("packaging/monitoring");
    let mut out = Vec::new();
    let rules = &yaml_docs(&dir.join("syva-alerts.yaml"))[0];
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            out.push((
                format!("alert {}", rule["alert"].as_str().unwrap()),
                rule["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let dash: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("syva-node-dashboard.json")).unwrap())
            .unwrap();
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                let title = m.get("title").and_then(Value::as_str).unwrap_or(title);
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr" | "definition", Value::String(q)) => {
                            out.push((format!("panel {title:?}"), q.clone()));
                        }
                        _ => walk(x, title, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, title, out)),
            _ => {}
        }
    }
    walk(&dash, "dashboard", &mut out);
    out
}

fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let b = promql.as_bytes();
    let mut i = 0;
    while let Some(pos) = promql[i..].find("syva_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        let end = promql[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(promql.len(), |e| start + e);
        if boundary {
            names.insert(promql[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[tokio::test]
async fn every_metric_the_rules_and_dashboard_use_is_exported_by_core() {
    let core = common::Core::start();
    let mut api = core.client().await.api();
    // Exercise core so that the series that appear only after their first
    // event exist: a zone, an attach, a conflict, a detach of an unknown
    // container, an adapter report.
    for zone in ["a", "b"] {
        api.register_zone(pb::RegisterZoneRequest {
            name: zone.into(),
            policy: Some(pb::ZonePolicy::default()),
            source: "test".into(),
        })
        .await
        .unwrap();
    }
    core.cgroup("p");
    for (zone, generation) in [("a", 1), ("b", 2)] {
        let r = api
            .attach_container(pb::AttachContainerRequest {
                container_id: "c1".into(),
                cgroup: Some(Cgroup::CgroupPath("p".into())),
                zone: zone.into(),
                source: "test".into(),
                generation,
                ..Default::default()
            })
            .await;
        assert_eq!(r.is_ok(), zone == "a", "{zone}: {r:?}");
    }
    api.detach_container(pb::DetachContainerRequest {
        container_id: "nobody".into(),
        source: "test".into(),
        generation: 0,
    })
    .await
    .unwrap();
    api.report_adapter(pb::ReportAdapterRequest {
        source: "file".into(),
        instance: "/etc/syva/policies".into(),
        problems: vec![],
        last_sync: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
    })
    .await
    .unwrap();

    let (code, text) = common::http_get(core.metrics, "/metrics");
    assert_eq!(code, 200);
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    let queries = monitoring_queries();
    assert!(queries.len() > 20, "{queries:?}");
    let mut used = BTreeSet::new();
    for (what, q) in &queries {
        let names = metric_names(q);
        assert!(
            !names.is_empty() || q.starts_with("up{"),
            "{what} uses no syva metric: {q}"
        );
        for n in names {
            assert!(
                exported.contains(&n) || BPF_ONLY_METRICS.contains(&n.as_str()),
                "{what} uses {n}, which syva core does not export:\n{q}\n\nexported: {exported:#?}"
            );
            used.insert(n);
        }
    }
    eprintln!(
        "{} queries use {} metric names, all exported: {used:?}",
        queries.len(),
        used.len()
    );
    // The in-memory dataplane has no programs and no self-tests: those
    // series exist only with BPF. tests/systemd_vm.rs checks every name
    // against the /metrics of a real BPF core in a VM.
    let metrics_rs = include_str!("../src/core/metrics.rs");
    for n in BPF_ONLY_METRICS {
        assert!(
            !exported.contains(*n),
            "{n} is exported here: drop it from BPF_ONLY_METRICS"
        );
        assert!(
            metrics_rs.contains(&format!("\"{n}\"")),
            "{n} is not a metric of core"
        );
    }
}

/// Series that only a core with the BPF dataplane has.
const BPF_ONLY_METRICS: &[&str] = &["syva_program_attached", "syva_selftest_passed"];

#[test]
fn dashboard_queries_are_valid_promql() {
    // promtool parses queries in rule files: check the dashboard's as
    // recording rules, with Grafana's variables replaced.
    let queries: Vec<(String, String)> = monitoring_queries()
        .into_iter()
        .filter(|(what, _)| what.starts_with("panel"))
        .collect();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, q)) in queries.iter().enumerate() {
        let q = if q.starts_with("label_values(") {
            // A template variable query, not PromQL: check its metric.
            q.trim_start_matches("label_values(")
                .split(',')
                .next()
                .unwrap()
                .to_owned()
        } else {
            q.replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
        };
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&q).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yaml");
    fs::write(&file, &rules).unwrap();
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{rules}", show(&out));
    // The dashboard is importable JSON with the panels operators look for.
    let dash: Value = serde_json::from_str(
        &fs::read_to_string(repo("packaging/monitoring/syva-node-dashboard.json")).unwrap(),
    )
    .unwrap();
    let titles: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for t in [
        "Health",
        "Programs attached",
        "Attached containers",
        "Adapter problems, by source",
    ] {
        assert!(titles.contains(&t), "{t} missing: {titles:?}");
    }
}

// ----- Kubernetes, Docker, policies ---------------------------------------------

#[test]
fn kubernetes_manifests_are_consistent_with_this_build() {
    let version = env!("CARGO_PKG_VERSION");
    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
    ];
    let files = files_under(&repo("packaging/k8s"), &["yaml", "yml"]);
    assert!(!files.is_empty());
    let mut service_accounts = BTreeSet::new();
    let mut workloads = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(MANIFEST).unwrap().display().to_string();
        if f.file_name().unwrap() == "kustomization.yaml" {
            // It lists every other manifest of its directory.
            let k = &yaml_docs(f)[0];
            let listed: BTreeSet<String> = k["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            let present: BTreeSet<String> = fs::read_dir(f.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
                .collect();
            assert_eq!(listed, present, "{rel}");
            continue;
        }
        for doc in yaml_docs(f) {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{rel}: no kind"));
            assert!(
                doc["apiVersion"].is_string(),
                "{rel}: {kind} without apiVersion"
            );
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(!name.is_empty(), "{rel}: {kind} without a name");
            if kind == "Namespace" {
                assert_eq!(name, "syva-system", "{rel}");
            } else if !cluster_scoped.contains(&kind) {
                assert_eq!(
                    doc["metadata"]["namespace"].as_str(),
                    Some("syva-system"),
                    "{rel}: {kind} {name} must be in syva-system"
                );
            }
            match kind {
                "ServiceAccount" => {
                    service_accounts.insert(name);
                }
                "DaemonSet" | "Deployment" => workloads.push((rel.clone(), doc)),
                _ => {}
            }
        }
    }
    assert!(!workloads.is_empty());
    for (rel, doc) in &workloads {
        let spec = &doc["spec"]["template"]["spec"];
        let labels = &doc["spec"]["template"]["metadata"]["labels"];
        for (k, v) in doc["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(
                &labels[k], v,
                "{rel}: the selector must match the pod labels"
            );
        }
        if let Some(sa) = spec["serviceAccountName"].as_str() {
            assert!(
                service_accounts.contains(sa),
                "{rel}: no ServiceAccount {sa}"
            );
        }
        let volumes: BTreeSet<&str> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        let containers = spec["containers"].as_array().unwrap();
        let mut core_socket = None;
        let mut adapter_sockets = Vec::new();
        for c in containers {
            let cname = c["name"].as_str().unwrap();
            // One image name everywhere (what `make image` builds), tagged
            // with this version.
            assert_eq!(
                c["image"].as_str(),
                Some(format!("ghcr.io/syva-dev/syva:{version}").as_str()),
                "{rel}: container {cname} must run this version's image"
            );
            let args: Vec<String> = c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            let mut argv = vec!["syva".to_owned()];
            argv.extend(args.iter().cloned());
            parse_args(&format!("{rel} container {cname}"), &argv);
            let mounts: Vec<(&str, &str)> = c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap(),
                        m["mountPath"].as_str().unwrap(),
                    )
                })
                .collect();
            for (v, _) in &mounts {
                assert!(
                    volumes.contains(v),
                    "{rel}: {cname} mounts unknown volume {v}"
                );
            }
            let flag = |f: &str| {
                args.iter()
                    .find_map(|a| a.strip_prefix(&format!("{f}=")).map(str::to_owned))
            };
            let socket_volume = |path: &str| {
                mounts
                    .iter()
                    .find(|(_, m)| Path::new(path).parent() == Some(Path::new(m)))
                    .map(|(v, _)| (*v).to_owned())
                    .unwrap_or_else(|| panic!("{rel}: {cname}: no volume holds {path}"))
            };
            if args[0] == "core" {
                let s = flag("--socket").expect("core --socket");
                core_socket = Some((s.clone(), socket_volume(&s)));
            } else if let Some(s) = flag("--core-socket") {
                adapter_sockets.push((s.clone(), socket_volume(&s)));
            }
            // The hardening of this package's own variant: adapters run as
            // non-root without capabilities; nothing writes its image.
            if rel.starts_with("packaging/k8s/file-adapter/") {
                let sc = &c["securityContext"];
                if args[0] != "core" {
                    assert_eq!(
                        sc["runAsNonRoot"],
                        Value::Bool(true),
                        "{rel}: {cname} must not run as root"
                    );
                    assert_eq!(
                        sc["allowPrivilegeEscalation"],
                        Value::Bool(false),
                        "{rel}: {cname}"
                    );
                    assert_eq!(
                        sc["capabilities"]["drop"],
                        serde_json::json!(["ALL"]),
                        "{rel}: {cname}"
                    );
                }
                assert_eq!(
                    sc["readOnlyRootFilesystem"],
                    Value::Bool(true),
                    "{rel}: {cname}"
                );
            }
        }
        let core_socket = core_socket.unwrap_or_else(|| panic!("{rel}: no core container"));
        assert!(!adapter_sockets.is_empty(), "{rel}: no adapter container");
        for s in adapter_sockets {
            assert_eq!(
                s, core_socket,
                "{rel}: adapters must use core's socket, through the same volume"
            );
        }
    }
}

#[test]
fn dockerfile_builds_the_static_binary_into_distroless_with_every_role_link() {
    let text = fs::read_to_string(repo("Dockerfile")).unwrap();
    let links: BTreeSet<&str> = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("RUN for name in ")
                .and_then(|r| r.split_once("; do"))
                .map(|(names, _)| names.split_whitespace().collect())
        })
        .expect("a `RUN for name in ...; do ln -s` line");
    let roles: BTreeSet<&str> = ROLE_NAMES.iter().map(|(n, _)| *n).collect();
    assert_eq!(links, roles, "the image must carry every multi-call name");
    let froms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "multi-stage: build, then runtime: {froms:?}"
    );
    assert!(
        froms[1].starts_with("gcr.io/distroless/static"),
        "{froms:?}"
    );
    assert!(
        text.contains("\nUSER 65532:65532\n"),
        "the image runs as non-root"
    );
    assert!(text.contains("ENTRYPOINT [\"/usr/bin/syva\"]"));
    // Built with the toolchain Cargo.toml promises to support.
    let cargo = fs::read_to_string(repo("Cargo.toml")).unwrap();
    let rust_version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .map(|v| v.trim_end_matches('"'))
        .unwrap();
    assert!(
        text.contains(&format!("ARG RUST_VERSION={rust_version}\n")),
        "the Dockerfile must build with rust {rust_version}"
    );
    // The image tag in the manifests is the crate version (checked above);
    // that the binary is static is checked by tests/static_binary.rs and by
    // the Dockerfile itself.
}

#[test]
fn example_policies_are_valid() {
    if role_is_stub("file") {
        eprintln!("`syva file` is a stub in this build: example policies not checked");
        return;
    }
    // The shipped examples, and the policies of the Kubernetes ConfigMap.
    let configmap = tempfile::tempdir().unwrap();
    for doc in yaml_docs(&repo("packaging/k8s/file-adapter/policies.yaml")) {
        for (name, text) in doc["data"].as_object().unwrap() {
            fs::write(configmap.path().join(name), text.as_str().unwrap()).unwrap();
        }
    }
    for dir in [repo("packaging/policies"), configmap.path().to_path_buf()] {
        let out = Command::new(SYVA)
            .args(["file", "check"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "syva file check {}:\n{}",
            dir.display(),
            show(&out)
        );
    }
}

#[test]
fn packaged_files_exist_in_the_repository() {
    // Every unit the deb metadata names, every default file a unit reads.
    for unit in UNITS {
        let text = fs::read_to_string(repo(&format!("packaging/systemd/{unit}"))).unwrap();
        let name = unit.trim_end_matches(".service");
        assert!(
            text.contains(&format!("EnvironmentFile=-/etc/default/{name}")),
            "{unit}"
        );
        assert!(
            text.contains(&format!("EnvironmentFile=-/etc/sysconfig/{name}")),
            "{unit}"
        );
        assert!(
            repo(&format!("packaging/default/{name}")).is_file(),
            "{name}"
        );
        let var = format!("${}_OPTS", name.replace('-', "_").to_uppercase());
        assert!(text.contains(&var), "{unit} must expand {var}");
        let defaults = fs::read_to_string(repo(&format!("packaging/default/{name}"))).unwrap();
        assert!(
            defaults.contains(&format!("{}=", &var[1..])),
            "packaging/default/{name}"
        );
    }
    let mode = fs::metadata(repo("packaging/build.sh")).unwrap().mode();
    assert!(mode & 0o111 != 0, "packaging/build.sh must be executable");
}
