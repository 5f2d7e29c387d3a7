//! VM enforcement tests: boot Debian's cloud kernel under QEMU (TCG) with
//! BPF LSM enabled, the static `syva` binary and `vmprobe` in a busybox
//! initramfs, run every scenario script of tests/vm/scenarios in ONE boot,
//! and report each scenario as its own test.
//!
//! Adding a scenario = adding a `NN-name.sh` file (see lib.sh for helpers).
//!
//! Environment:
//! - SYVA_VM_KERNELS: kernel images, colon-separated (default: newest
//!   /boot/vmlinuz-*-cloud-amd64 and /var/cache/syva/kernels/vmlinuz-*)
//! - SYVA_VM_TIMEOUT: seconds before the guest is killed (default 600)
//! - SYVA_VM_KEEP: keep the work directory (initramfs, console log)
//! - SYVA_VM_SKIP=1: report the scenarios as ignored (machines without QEMU)
//! - SYVA_VM_ONLY=text: only scenarios whose name contains `text`
//! - SYVA_VM_SCRIPT=tests/vm/demo.sh (or bench.sh): boot once (first kernel),
//!   run only that script and print its output
//!
//! When the guest does not come up, every scenario fails with the console log.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// `SYVA_VM_SCRIPT=path` (make demo, make bench): run only that script
/// and print its output.
fn script_mode() -> Option<PathBuf> {
    std::env::var_os("SYVA_VM_SCRIPT").map(|p| Path::new(MANIFEST).join(p))
}

fn scenarios() -> Vec<(String, PathBuf)> {
    if let Some(script) = script_mode() {
        return vec![("00-script".into(), script)];
    }
    let only = std::env::var("SYVA_VM_ONLY").ok();
    let dir = Path::new(MANIFEST).join("tests/vm/scenarios");
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .filter(|(name, _)| only.as_ref().is_none_or(|o| name.contains(o.as_str())))
        .collect();
    out.sort();
    out
}

/// Per scenario: exit code and its output; or why the guest failed.
#[derive(Debug)]
struct Run {
    results: BTreeMap<String, (i32, String)>,
    console: String,
    elapsed: Duration,
    problem: Option<String>,
}

/// One boot per kernel, shared by that kernel's scenarios.
static RUNS: OnceLock<Vec<(PathBuf, OnceLock<Run>)>> = OnceLock::new();

fn run_for(kernel: &Path) -> &'static Run {
    let runs = RUNS.get().expect("kernels listed in main");
    let (k, cell) = runs
        .iter()
        .find(|(k, _)| k == kernel)
        .expect("known kernel");
    cell.get_or_init(|| boot(k))
}

/// Kernels to boot: SYVA_VM_KERNELS (colon-separated), else the newest
/// /boot/vmlinuz-*-cloud-amd64 plus every kernel in /var/cache/syva/kernels
/// (`make deps` puts Debian 12's 6.12 there).
fn kernels() -> Result<Vec<PathBuf>, String> {
    if let Ok(k) = std::env::var("SYVA_VM_KERNELS") {
        return Ok(std::env::split_paths(&k).collect());
    }
    let list = |dir: &str, filter: &dyn Fn(&str) -> bool| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| filter(&p.file_name().unwrap().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|p| version_key(&p.to_string_lossy()));
        v
    };
    let boot = list("/boot", &|n| {
        n.starts_with("vmlinuz-") && n.ends_with("-cloud-amd64")
    });
    let mut out: Vec<PathBuf> = boot.last().cloned().into_iter().collect();
    out.extend(list("/var/cache/syva/kernels", &|n| {
        n.starts_with("vmlinuz-")
    }));
    if out.is_empty() {
        return Err(
            "no /boot/vmlinuz-*-cloud-amd64: install linux-image-cloud-amd64 (make deps) \
                    or set SYVA_VM_KERNELS"
                .to_owned(),
        );
    }
    Ok(out)
}

/// "6.1" from ".../vmlinuz-6.1.0-57-cloud-amd64".
fn kernel_label(k: &Path) -> String {
    let v = version_key(&k.file_name().unwrap_or_default().to_string_lossy());
    match v.as_slice() {
        [a, b, ..] => format!("{a}.{b}"),
        _ => k.display().to_string(),
    }
}

fn version_key(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn which(tool: &str) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{tool} not found in PATH (make deps installs it)"))
}

fn artifacts() -> Result<(PathBuf, PathBuf), String> {
    let syva = PathBuf::from(env!("CARGO_BIN_EXE_syva"));
    // This test runs from <target>/<profile>/deps/; examples live beside it.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let probe = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("examples/vmprobe"))
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "vmprobe example not found next to {} (cargo test builds it; cargo build --examples too)",
                exe.display()
            )
        })?;
    Ok((syva, probe))
}

fn copy_exec(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map_err(|e| format!("copying {} -> {}: {e}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
}

/// Build the initramfs (uncompressed newc cpio: the kernel takes it as is).
fn build_initramfs(work: &Path) -> Result<PathBuf, String> {
    let root = work.join("root");
    for d in [
        "bin",
        "usr/bin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "scenarios",
        "etc",
    ] {
        fs::create_dir_all(root.join(d)).map_err(|e| e.to_string())?;
    }
    let (syva, probe) = artifacts()?;
    copy_exec(&which("busybox")?, &root.join("bin/busybox"))?;
    copy_exec(&syva, &root.join("usr/bin/syva"))?;
    copy_exec(&probe, &root.join("usr/bin/vmprobe"))?;
    // The fake Kubernetes API server the k8s scenarios run `syva k8s` against.
    let k8sfake = probe.with_file_name("k8sfake");
    if !k8sfake.is_file() {
        return Err(format!(
            "{} not found (cargo test builds it; cargo build --examples too)",
            k8sfake.display()
        ));
    }
    copy_exec(&k8sfake, &root.join("usr/bin/k8sfake"))?;
    for (link, _) in syva::cli::ROLE_NAMES {
        std::os::unix::fs::symlink("syva", root.join("usr/bin").join(link))
            .map_err(|e| e.to_string())?;
    }
    let vm = Path::new(MANIFEST).join("tests/vm");
    copy_exec(&vm.join("init.sh"), &root.join("init"))?;
    fs::copy(vm.join("lib.sh"), root.join("scenarios/lib.sh")).map_err(|e| e.to_string())?;
    for (name, path) in scenarios() {
        fs::copy(&path, root.join(format!("scenarios/{name}.sh"))).map_err(|e| e.to_string())?;
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .map_err(|e| e.to_string())?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")
        .map_err(|e| e.to_string())?;

    let out = work.join("initramfs.cpio");
    let list = Command::new("find")
        .arg(".")
        .current_dir(&root)
        .output()
        .map_err(|e| format!("find: {e}"))?;
    let mut cpio = Command::new(which("cpio")?)
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cpio: {e}"))?;
    cpio.stdin
        .take()
        .unwrap()
        .write_all(&list.stdout)
        .map_err(|e| e.to_string())?;
    let st = cpio.wait().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("cpio failed: {st}"));
    }
    Ok(out)
}

fn boot(kernel: &Path) -> Run {
    let started = Instant::now();
    let failed = |problem: String, console: String| Run {
        results: BTreeMap::new(),
        console,
        elapsed: started.elapsed(),
        problem: Some(problem),
    };
    let work = match tempfile::Builder::new().prefix("syva-vm-").tempdir() {
        Ok(w) => w,
        Err(e) => return failed(format!("temp dir: {e}"), String::new()),
    };
    let qemu = match which("qemu-system-x86_64") {
        Ok(q) => q,
        Err(e) => return failed(e, String::new()),
    };
    let initrd = match build_initramfs(work.path()) {
        Ok(i) => i,
        Err(e) => return failed(format!("building the initramfs: {e}"), String::new()),
    };
    let timeout: u64 = std::env::var("SYVA_VM_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let console_path = work.path().join("console.log");
    eprintln!(
        "vm: booting {} with {} ({} MB initramfs)",
        kernel.display(),
        initrd.display(),
        fs::metadata(&initrd).map(|m| m.len() >> 20).unwrap_or(0)
    );
    let status = Command::new("timeout")
        .arg(format!("{timeout}"))
        .arg(&qemu)
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "512",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
        ])
        .args(["-net", "none", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 quiet loglevel=3 lsm=lockdown,capability,landlock,yama,bpf panic=-1",
        ])
        .stdin(Stdio::null())
        .stdout(match fs::File::create(&console_path) {
            Ok(f) => f,
            Err(e) => return failed(format!("console log: {e}"), String::new()),
        })
        .stderr(Stdio::inherit())
        .status();
    let console = fs::read(&console_path)
        .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
        .unwrap_or_default();
    if std::env::var_os("SYVA_VM_KEEP").is_some() {
        let kept = work.keep();
        eprintln!("vm: work directory kept at {}", kept.display());
    }
    let status = match status {
        Ok(s) => s,
        Err(e) => return failed(format!("running {}: {e}", qemu.display()), console),
    };
    let mut run = parse(&console);
    run.elapsed = started.elapsed();
    if run.problem.is_none() && !console.contains("@@ALL-DONE") {
        run.problem = Some(if status.code() == Some(124) {
            format!("the guest did not finish within {timeout}s (SYVA_VM_TIMEOUT)")
        } else if !console.contains("@@GUEST-UP") {
            format!("the guest did not boot (qemu exit: {status})")
        } else {
            format!("the guest stopped before finishing (qemu exit: {status})")
        });
    }
    eprintln!(
        "vm: {} guest ran {} scenarios in {:.1}s",
        kernel_label(kernel),
        run.results.len(),
        run.elapsed.as_secs_f64()
    );
    run
}

fn parse(console: &str) -> Run {
    let mut results = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut problem = None;
    for line in console.lines() {
        if let Some(name) = line.strip_prefix("@@SCENARIO-BEGIN ") {
            current = Some((name.trim().to_owned(), String::new()));
        } else if let Some(rest) = line.strip_prefix("@@SCENARIO-END ") {
            let rc = rest
                .rsplit_once("rc=")
                .and_then(|(_, r)| r.trim().parse().ok())
                .unwrap_or(-1);
            if let Some((name, out)) = current.take() {
                results.insert(name, (rc, out));
            }
        } else if line.starts_with("@@CORE-FAILED") {
            problem = Some("syva core did not start in the guest".to_owned());
        } else if let Some((_, out)) = current.as_mut() {
            out.push_str(line);
            out.push('\n');
        }
    }
    Run {
        results,
        console: console.to_owned(),
        elapsed: Duration::ZERO,
        problem,
    }
}

/// The part of the console between two markers.
fn section<'a>(console: &'a str, begin: &str, end: &str) -> &'a str {
    console
        .split_once(begin)
        .map(|(_, rest)| rest.split_once(end).map_or(rest, |(s, _)| s))
        .unwrap_or("")
}

fn check(kernel: &Path, name: &str) -> Result<(), Failed> {
    let run = run_for(kernel);
    if let Some(problem) = &run.problem {
        let tail: Vec<&str> = run.console.lines().rev().take(200).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "{problem}\n----- guest console (last 200 lines) -----\n{}",
            tail.join("\n")
        )
        .into());
    }
    match run.results.get(name) {
        Some((0, _)) => Ok(()),
        Some((rc, out)) => Err(format!(
            "scenario {name} failed (rc={rc}):\n{out}\n----- syva core log -----\n{}",
            section(&run.console, "@@CORE-LOG-BEGIN", "@@CORE-LOG-END")
        )
        .into()),
        None => Err(format!("scenario {name} did not report a result\n{}", run.console).into()),
    }
}

fn main() {
    let kernels = match kernels() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("vm: {e}");
            if std::env::var("SYVA_VM_SKIP").is_ok_and(|v| v == "1") {
                return;
            }
            std::process::exit(1);
        }
    };
    RUNS.set(
        kernels
            .iter()
            .map(|k| (k.clone(), OnceLock::new()))
            .collect(),
    )
    .expect("set once");
    if script_mode().is_some() {
        let run = run_for(&kernels[0]);
        match (&run.problem, run.results.get("00-script")) {
            (None, Some((rc, out))) => {
                println!("{out}");
                std::process::exit(if *rc == 0 { 0 } else { 1 });
            }
            _ => {
                eprintln!(
                    "{}\n{}",
                    run.problem.as_deref().unwrap_or("no demo output"),
                    run.console
                );
                std::process::exit(1);
            }
        }
    }
    let args = Arguments::from_args();
    let skip = std::env::var("SYVA_VM_SKIP").is_ok_and(|v| v == "1");
    let mut trials = Vec::new();
    // Interleave kernels so that the test threads boot them in parallel.
    for (name, _) in scenarios() {
        for k in &kernels {
            let (k, n) = (k.clone(), name.clone());
            trials.push(
                Trial::test(format!("vm::{}::{name}", kernel_label(&k)), move || {
                    check(&k, &n)
                })
                .with_ignored_flag(skip),
            );
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
