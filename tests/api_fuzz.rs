//! Contract fuzzing: schemathesis (an off-the-shelf, schema-driven API
//! fuzzer) reads the OpenAPI document a running `syva api` serves and
//! throws generated valid and invalid requests at it, backed by a real
//! memory-dataplane core. The run fails on any 5xx (core is up, so not even
//! the documented 503 may appear), on a status, header, content type or body
//! the document does not describe, on invalid input that is accepted, on
//! authentication that is not enforced, and (tests/api_fuzz/hooks.py) on a
//! rejected request that changed core's state.
//!
//! Needs schemathesis: tests/api_fuzz/install.sh puts it in a venv at
//! target/api-fuzz-venv, which this test uses ($PYTHON overrides).
//! SYVA_FUZZ_EXAMPLES (default 25) bounds the examples per operation; the
//! seed is fixed (SYVA_FUZZ_SEED to change it).

mod api_support;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use api_support::{Api, with_core};
use common::Core;
use serde_json::json;
use syva::proto::pb;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api_fuzz");

/// The interpreter: $PYTHON, else the venv tests/api_fuzz/install.sh
/// makes ($SYVA_FUZZ_VENV or target/api-fuzz-venv), else python3.
fn python() -> String {
    if let Ok(p) = std::env::var("PYTHON") {
        return p;
    }
    let venv = std::env::var_os("SYVA_FUZZ_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/api-fuzz-venv"))
        .join("bin/python");
    if venv.exists() {
        return venv.to_string_lossy().into_owned();
    }
    "python3".to_owned()
}

/// Fail with the install command when schemathesis is missing.
fn require_schemathesis() {
    let ok = Command::new(python())
        .args(["-c", "import schemathesis"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "schemathesis is not installed for {}; install it with:\n  \
         tests/api_fuzz/install.sh\n\
         (a venv in target/api-fuzz-venv), or into an interpreter of your choice with\n  \
         python3 -m pip install -r tests/api_fuzz/requirements.txt\n\
         and PYTHON=that-interpreter",
        python()
    );
}

#[test]
fn schemathesis_finds_no_contract_violation() {
    require_schemathesis();
    // Few protected files: a fuzzed recursive host path ("/") fails fast.
    let core = Core::start_with(&["--max-protected-files", "64"]);
    let api = Api::start_with_token(&core.socket);

    // Some state of every kind, including objects of other sources, so the
    // fuzzer meets existing resources and conflicts.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("protected");
    std::fs::write(&file, "x").unwrap();
    let cg = core.cgroup("pods/seed");
    core.cgroup("pods/free");
    let body = json!({"policy": {"host_paths": [{"path": file.to_str().unwrap()}]}}).to_string();
    assert_eq!(api.put("/v1/zones/seed", &body).status, 201);
    assert_eq!(api.put("/v1/zones/web", r#"{"policy":{}}"#).status, 201);
    assert_eq!(api.put("/v1/zones/db", r#"{"policy":{}}"#).status, 201);
    assert_eq!(api.put("/v1/comms/seed/web", "").status, 201);
    // The id the document uses as its example, attached through the API.
    let r = api.put(
        "/v1/containers/3f9a1c0d2b7e",
        &json!({"zone": "web", "cgroup_path": "pods/free"}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    with_core(&core.socket, async |c| {
        c.register_zone(pb::RegisterZoneRequest {
            name: "from-file".into(),
            policy: Some(pb::ZonePolicy::default()),
            source: "file".into(),
        })
        .await
        .unwrap();
        c.attach_container(pb::AttachContainerRequest {
            container_id: "seed-k8s".into(),
            cgroup: Some(pb::attach_container_request::Cgroup::CgroupId(cg)),
            zone: "seed".into(),
            source: "k8s".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    });

    let examples = std::env::var("SYVA_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let seed = std::env::var("SYVA_FUZZ_SEED").unwrap_or_else(|_| "20261204".into());
    let report = api.dir.path().join("report");
    let started = Instant::now();
    let out = Command::new(python())
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(Path::new(DIR).join("schemathesis.toml"))
        .arg("run")
        .arg(api.url("/v1/openapi.json"))
        .args([
            "--checks",
            "all",
            // Valid-by-schema input can still be refused for what the
            // schema cannot say (a path that does not exist, a zone owned by
            // another source), and documented 404s follow deletes; those
            // answers are checked by the other checks.
            "--exclude-checks",
            "positive_data_acceptance,use_after_free,ensure_resource_availability",
            "--exclude-path",
            "/v1/events",
            "--header",
            &format!("Authorization: Bearer {}", api_support::TOKEN),
            "--workers",
            "1",
            "--max-examples",
            &examples,
            "--seed",
            &seed,
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--max-failures",
            "20",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(&report)
        // Schemathesis keeps a cache in its working directory.
        .current_dir(api.dir.path())
        .env("SCHEMATHESIS_HOOKS", Path::new(DIR).join("hooks.py"))
        .env("SYVA_FUZZ_SYVA", common::SYVA)
        .env("SYVA_FUZZ_SOCKET", &core.socket)
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Generated bodies can be huge: shorten long lines.
    for line in stdout.lines().chain(stderr.lines()) {
        match line.char_indices().nth(400) {
            Some((i, _)) => println!("{} [... {} bytes]", &line[..i], line.len()),
            None => println!("{line}"),
        }
    }
    println!(
        "schemathesis ran for {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "schemathesis found problems (exit {:?}); see the output above\n--- api log (tail) ---\n{}",
        out.status.code(),
        tail(&api.log_text(), 60)
    );
    let log = api.log_text();
    assert!(!log.contains("panicked"), "the API panicked:\n{log}");
    // Core survived the run and still answers through the API.
    assert_eq!(api.get("/v1/health").status, 200);
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
