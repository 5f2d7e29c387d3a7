//! Multi-call dispatch: every role name works as argv[0] (bare, with a
//! path, through a symlink) and as a subcommand; help and version work;
//! usage errors exit 2.

use std::process::Command;

use syva::cli::ROLE_NAMES;

const SYVA: &str = env!("CARGO_BIN_EXE_syva");

#[test]
fn every_role_name_works_as_argv0_and_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    for (name, role) in ROLE_NAMES {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(SYVA, &link).unwrap();
        // Through a symlink with a path.
        let out = Command::new(&link).arg("--help").output().unwrap();
        assert!(out.status.success(), "{name} --help: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Usage: syva {role}")),
            "{name}: {text}"
        );
        // Bare name found on PATH.
        let out = Command::new(name)
            .arg("--help")
            .env("PATH", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} via PATH: {out:?}");
        // As a subcommand.
        let out = Command::new(SYVA).args([role, "--help"]).output().unwrap();
        assert!(out.status.success(), "syva {role} --help: {out:?}");
    }
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(SYVA).arg("--version").output().unwrap();
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(&format!("syva {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains("(commit "), "{v}");
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_roles() {
    let out = Command::new(SYVA).arg("no-such-role").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(SYVA)
        .args(["core", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let out = Command::new(SYVA).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no role given is a usage error");
    let out = Command::new(SYVA).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for role in ["core", "file", "k8s", "api", "ctl"] {
        assert!(help.contains(role), "{role} missing from --help");
    }
}

#[test]
fn core_explains_a_missing_bpf_lsm() {
    // On a host without BPF LSM (or not root) core must say what is missing
    // and exit 4, or (when the probe passes but loading fails) exit 4/5.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(SYVA)
        .args(["core", "--metrics-addr", "off", "--socket"])
        .arg(dir.path().join("core.sock"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(4 | 5)),
        "exit {:?}: {err}",
        out.status.code()
    );
    assert!(err.contains("syva core: error:"), "{err}");
    assert!(
        !dir.path().join("core.sock").exists(),
        "no socket without a dataplane"
    );
}
