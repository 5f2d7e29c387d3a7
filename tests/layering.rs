//! The module boundaries of DEVELOPERS.md, checked by a text scan of src/:
//! only core/bpf.rs and core/maps.rs touch libbpf, nothing outside core/
//! (but the CLI dispatcher) reaches into core, the model imports nothing
//! of ours, and each heavy dependency stays in its role.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut v = Vec::new();
    sources(&src, &mut v);
    v.sort();
    v.into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Lines that use `needle` (as a whole path segment) outside comments.
fn uses(text: &str, needle: &str) -> bool {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
        .any(|l| {
            l.match_indices(needle).any(|(i, _)| {
                !l[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
}

fn check(rule: &str, allowed: impl Fn(&str) -> bool, needle: &str) -> Vec<String> {
    files()
        .into_iter()
        .filter(|(rel, text)| !allowed(rel) && uses(text, needle))
        .map(|(rel, _)| format!("{rule}: src/{rel} uses `{needle}`"))
        .collect()
}

#[test]
fn module_boundaries_hold() {
    let mut bad = Vec::new();
    bad.extend(check(
        "only core/bpf.rs and core/maps.rs touch libbpf",
        |f| f == "core/bpf.rs" || f == "core/maps.rs",
        "libbpf_rs",
    ));
    bad.extend(check(
        "only core/bpf.rs includes the skeleton",
        |f| f == "core/bpf.rs",
        "syva.skel.rs",
    ));
    bad.extend(check(
        "nothing outside core/ reaches into core (cli.rs dispatches)",
        |f| f.starts_with("core/") || f == "cli.rs",
        "crate::core::",
    ));
    bad.extend(check(
        "the model imports nothing of ours",
        |f| !f.starts_with("model/"),
        "crate::",
    ));
    for (dep, home) in [("kube::", "k8s/"), ("notify::", "file/")] {
        bad.extend(check(
            &format!("{dep} stays in src/{home}"),
            |f| f.starts_with(home),
            dep,
        ));
    }
    // HTTP endpoints: the REST API, and the /metrics of core and syva file.
    bad.extend(check(
        "axum stays in api/, core/http.rs and file/prometheus.rs",
        |f| f.starts_with("api/") || f == "core/http.rs" || f == "file/prometheus.rs",
        "axum::",
    ));
    // Every source file says what it is for.
    for (rel, text) in files() {
        if rel != "main.rs" && !text.trim_start().starts_with("//!") {
            bad.push(format!("src/{rel} does not start with a //! line"));
        }
    }
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}
