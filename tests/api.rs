//! `syva api` over real HTTP against a real memory-dataplane core: every
//! resource, the status codes clients rely on, that rejected requests leave
//! core's state unchanged, authentication, TLS, limits, recovery when core
//! comes and goes, and that the checked-in OpenAPI document is the one the
//! code serves.

mod api_support;
mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use api_support::{Api, Opts, snapshot, with_core};
use common::Core;
use serde_json::json;
use syva::proto::pb;

fn zone_body(policy: serde_json::Value) -> String {
    json!({ "policy": policy }).to_string()
}

#[test]
fn zones_are_created_read_replaced_and_deleted() {
    let core = Core::start();
    let api = Api::start(&core.socket);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/f"), "x").unwrap();
    let data = data.to_str().unwrap();
    let sock_path = dir.path().join("log.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let sock = sock_path.to_str().unwrap();

    let r = api.put(
        "/v1/zones/web",
        &zone_body(
            json!({"host_paths": [{"path": data, "recursive": true}], "allow_ptrace": true}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("location"), Some("/v1/zones/web"));
    let z = r.json();
    assert_eq!(z["name"], "web");
    assert_eq!(z["source"], "api");
    assert_eq!(z["state"], "pending");
    assert_eq!(z["protected_inodes"], 3, "dir, sub, file: {z}");
    assert_eq!(z["policy"]["zone_type"], "standard");
    assert_eq!(z["policy"]["allow_ptrace"], true);

    // Core really has it, owned by the api source.
    let s = snapshot(&core.socket);
    assert_eq!(s.zones.len(), 1);
    assert_eq!(s.zones[0].source, "api");

    // Replace: same name, new policy -> 200, fully replaced.
    let r = api.put(
        "/v1/zones/web",
        &zone_body(
            json!({"zone_type": "isolated", "mode": "audit", "allowed_host_sockets": [sock]}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let z = r.json();
    assert_eq!(z["policy"]["allowed_host_sockets"], json!([sock]));
    let s = snapshot(&core.socket);
    assert_eq!(
        s.zones[0].policy.as_ref().unwrap().allowed_host_sockets,
        [sock]
    );
    assert_eq!(z["policy"]["zone_type"], "isolated");
    assert_eq!(z["policy"]["mode"], "audit");
    assert_eq!(z["policy"]["host_paths"], json!([]));
    assert_eq!(z["protected_inodes"], 0);

    let r = api.get("/v1/zones/web");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["policy"]["zone_type"], "isolated");
    let r = api.get("/v1/zones");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["zones"].as_array().unwrap().len(), 1);

    let r = api.delete("/v1/zones/web");
    assert_eq!(r.status, 204, "{}", r.body);
    api.get("/v1/zones/web").assert_problem(404, None);
    api.delete("/v1/zones/web").assert_problem(404, None);
    assert!(snapshot(&core.socket).zones.is_empty());
}

#[test]
fn bad_input_names_the_field_and_changes_nothing() {
    let core = Core::start();
    let api = Api::start_opts(
        &core.socket,
        Opts {
            extra: &["--max-body-bytes", "1024"],
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let file = file.to_str().unwrap();
    let cg = core.cgroup("pods/c1");

    // Some state to protect.
    assert_eq!(
        api.put(
            "/v1/zones/a",
            &zone_body(json!({"host_paths": [{"path": file}]}))
        )
        .status,
        201
    );
    assert_eq!(api.put("/v1/zones/b", &zone_body(json!({}))).status, 201);
    assert_eq!(api.put("/v1/comms/a/b", "").status, 201);
    let r = api.put(
        "/v1/containers/c1",
        &json!({"zone": "a", "cgroup_id": cg}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let before = snapshot(&core.socket);

    let long = "x".repeat(2000);
    // (method, path, body, expected status, expected field)
    type Case<'a> = (&'a str, String, Option<String>, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        // Malformed: 400 naming the field.
        (
            "PUT",
            "/v1/zones/a".into(),
            Some("{".into()),
            400,
            Some("body"),
        ),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some("{}".into()),
            400,
            Some("policy"),
        ),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(r#"{"policy":{"alow_ptrace":true}}"#.into()),
            400,
            Some("policy.alow_ptrace"),
        ),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(r#"{"policy":{"zone_type":"weird"}}"#.into()),
            400,
            Some("policy.zone_type"),
        ),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(r#"{"policy":{"host_paths":[{"path":7}]}}"#.into()),
            400,
            Some("policy.host_paths[0].path"),
        ),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(r#"{"policy":{}} trailing"#.into()),
            400,
            Some("body"),
        ),
        (
            "DELETE",
            "/v1/zones/a?drain=maybe".into(),
            None,
            400,
            Some("drain"),
        ),
        (
            "DELETE",
            "/v1/zones/a?drian=true".into(),
            None,
            400,
            Some("drian"),
        ),
        (
            "DELETE",
            "/v1/containers/c1?generation=-1".into(),
            None,
            400,
            Some("generation"),
        ),
        (
            "PUT",
            "/v1/containers/c1".into(),
            Some(r#"{"zone":"a","cgroup_id":"1"}"#.into()),
            400,
            Some("cgroup_id"),
        ),
        // Invalid values: 422 naming the field.
        (
            "PUT",
            "/v1/zones/a..b".into(),
            Some(zone_body(json!({}))),
            422,
            Some("name"),
        ),
        ("GET", "/v1/zones/a%20b".into(), None, 422, Some("name")),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(zone_body(json!({"host_paths": [{"path": "relative"}]}))),
            422,
            Some("policy.host_paths[0].path"),
        ),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(zone_body(
                json!({"host_paths": [{"path": "/no/such/path/here"}]}),
            )),
            422,
            Some("policy.host_paths[0].path"),
        ),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(zone_body(json!({"allowed_zones": ["b", "../x"]}))),
            422,
            Some("policy.allowed_zones[1]"),
        ),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(zone_body(json!({"allowed_zones": ["a"]}))),
            422,
            Some("policy.allowed_zones"),
        ),
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(zone_body(
                json!({"allowed_host_sockets": ["/dev/log", "dev/log"]}),
            )),
            422,
            Some("policy.allowed_host_sockets[1]"),
        ),
        (
            "POST",
            "/v1/zones/a/host-paths".into(),
            Some(json!({"path": "/x/../y"}).to_string()),
            422,
            Some("path"),
        ),
        (
            "POST",
            "/v1/zones/a/host-paths".into(),
            Some(json!({"path": "/no/such/file"}).to_string()),
            422,
            Some("path"),
        ),
        ("PUT", "/v1/comms/a/a".into(), None, 422, Some("zone_b")),
        ("PUT", "/v1/comms/a/x%20y".into(), None, 422, Some("zone_b")),
        (
            "PUT",
            "/v1/containers/c2".into(),
            Some(json!({"zone": "a"}).to_string()),
            422,
            Some("cgroup_path"),
        ),
        (
            "PUT",
            "/v1/containers/c2".into(),
            Some(json!({"zone": "a", "cgroup_id": cg, "cgroup_path": "pods/c1"}).to_string()),
            422,
            Some("cgroup_id"),
        ),
        (
            "PUT",
            "/v1/containers/c2".into(),
            Some(json!({"zone": "a", "cgroup_path": "/"}).to_string()),
            422,
            Some("cgroup_path"),
        ),
        (
            "PUT",
            "/v1/containers/c2".into(),
            Some(json!({"zone": "a", "cgroup_id": cg, "pod": {"name": "a\u{7}"}}).to_string()),
            422,
            Some("pod.name"),
        ),
        (
            "GET",
            "/v1/containers?zone=..".into(),
            None,
            422,
            Some("zone"),
        ),
        // Unknown things: 404.
        (
            "PUT",
            "/v1/zones/a".into(),
            Some(zone_body(
                json!({"allowed_zones": ["ghost"], "host_paths": [{"path": file}]}),
            )),
            200,
            None,
        ),
        (
            "POST",
            "/v1/zones/ghost/host-paths".into(),
            Some(json!({"path": file}).to_string()),
            404,
            None,
        ),
        (
            "DELETE",
            format!("/v1/zones/a/host-paths?path={}", "/not/listed"),
            None,
            404,
            Some("path"),
        ),
        ("PUT", "/v1/comms/a/ghost".into(), None, 404, None),
        ("DELETE", "/v1/comms/b/ghost".into(), None, 404, None),
        (
            "PUT",
            "/v1/containers/c2".into(),
            Some(json!({"zone": "ghost", "cgroup_id": cg}).to_string()),
            404,
            None,
        ),
        (
            "PUT",
            "/v1/containers/c2".into(),
            Some(json!({"zone": "b", "cgroup_path": "pods/none"}).to_string()),
            404,
            None,
        ),
        ("DELETE", "/v1/containers/ghost".into(), None, 404, None),
        ("GET", "/v1/nothing".into(), None, 404, None),
        // Conflicts: 409.
        (
            "PUT",
            "/v1/containers/c1".into(),
            Some(json!({"zone": "b", "cgroup_id": cg}).to_string()),
            409,
            None,
        ),
        (
            "PUT",
            "/v1/containers/c9".into(),
            Some(json!({"zone": "b", "cgroup_id": cg}).to_string()),
            409,
            None,
        ),
        (
            "PUT",
            "/v1/zones/b".into(),
            Some(zone_body(json!({"host_paths": [{"path": file}]}))),
            409,
            None,
        ),
        ("DELETE", "/v1/zones/a".into(), None, 409, None),
        // Media type and size.
        (
            "PUT",
            "/v1/zones/b".into(),
            Some(format!(
                r#"{{"policy":{{"host_paths":[{{"path":"/{long}"}}]}}}}"#
            )),
            413,
            Some("body"),
        ),
    ];
    for (method, path, body, status, field) in &cases {
        let r = api.send(method, path, body.as_deref());
        if *status == 200 {
            // Setup step inside the list (a dangling allowed zone is fine).
            assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
            continue;
        }
        let p = r.assert_problem(*status, *field);
        eprintln!("{method} {path} -> {} {}", r.status, p["detail"]);
    }
    // The one accepted change above: a's policy now lists "ghost".
    let mut expected = before.clone();
    let after = snapshot(&core.socket);
    expected.zones[0].policy.as_mut().unwrap().allowed_zones = vec!["ghost".into()];
    assert_eq!(after, expected, "rejected requests changed core's state");

    let r = api.send_with(
        "PUT",
        "/v1/zones/b",
        Some(&zone_body(json!({}))),
        &[("Content-Type", "text/plain")],
    );
    r.assert_problem(415, Some("body"));
    assert_eq!(snapshot(&core.socket), after);
}

#[test]
fn zones_of_other_sources_are_visible_but_not_changeable() {
    let core = Core::start();
    let api = Api::start(&core.socket);
    with_core(&core.socket, async |c| {
        c.register_zone(pb::RegisterZoneRequest {
            name: "from-file".into(),
            policy: Some(pb::ZonePolicy::default()),
            source: "file".into(),
        })
        .await
        .unwrap();
    });
    let r = api.get("/v1/zones/from-file");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["source"], "file");
    let before = snapshot(&core.socket);
    let p = api
        .put(
            "/v1/zones/from-file",
            &zone_body(json!({"allow_ptrace": true})),
        )
        .assert_problem(409, None);
    assert!(p["detail"].as_str().unwrap().contains("\"file\""), "{p}");
    api.delete("/v1/zones/from-file").assert_problem(409, None);
    let dir = tempfile::tempdir().unwrap();
    api.send(
        "POST",
        "/v1/zones/from-file/host-paths",
        Some(&json!({"path": dir.path().to_str().unwrap()}).to_string()),
    )
    .assert_problem(409, None);
    assert_eq!(snapshot(&core.socket), before);
}

#[test]
fn host_paths_are_added_listed_and_removed() {
    let core = Core::start();
    let api = Api::start(&core.socket);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "a").unwrap();
    std::fs::create_dir(&b).unwrap();
    std::fs::write(b.join("x"), "x").unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    assert_eq!(
        api.put(
            "/v1/zones/z",
            &zone_body(json!({"host_paths": [{"path": a}]}))
        )
        .status,
        201
    );
    let r = api.send(
        "POST",
        "/v1/zones/z/host-paths",
        Some(&json!({"path": b, "recursive": true}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let l = r.json();
    assert_eq!(l["zone"], "z");
    assert_eq!(
        l["host_paths"],
        json!([{"path": a, "recursive": false}, {"path": b, "recursive": true}])
    );
    assert_eq!(l["protected_inodes"], 3);
    assert_eq!(api.get("/v1/zones/z/host-paths").json(), l);

    let r = api.delete(&format!("/v1/zones/z/host-paths?path={a}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["host_paths"],
        json!([{"path": b, "recursive": true}])
    );
    assert_eq!(r.json()["protected_inodes"], 2);
    // Core agrees.
    let s = snapshot(&core.socket);
    assert_eq!(s.zones[0].policy.as_ref().unwrap().host_paths.len(), 1);
    api.delete(&format!("/v1/zones/z/host-paths?path={a}"))
        .assert_problem(404, Some("path"));
    api.delete("/v1/zones/z/host-paths")
        .assert_problem(400, Some("path"));
}

#[test]
fn allowed_pairs_are_made_and_removed() {
    let core = Core::start();
    let api = Api::start(&core.socket);
    for z in ["a", "b", "c"] {
        assert_eq!(
            api.put(&format!("/v1/zones/{z}"), &zone_body(json!({})))
                .status,
            201
        );
    }
    assert_eq!(
        api.put(
            "/v1/zones/iso",
            &zone_body(json!({"zone_type": "isolated"}))
        )
        .status,
        201
    );
    let r = api.put("/v1/comms/b/a", "");
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"zone_a": "a", "zone_b": "b", "origins": ["api"]})
    );
    assert_eq!(r.header("location"), Some("/v1/comms/a/b"));
    assert_eq!(api.put("/v1/comms/a/b", "").status, 200);
    api.put("/v1/comms/a/iso", "").assert_problem(409, None);

    // A pair declared by a policy is listed but removed through the policy.
    assert_eq!(
        api.put("/v1/zones/c", &zone_body(json!({"allowed_zones": ["a"]})))
            .status,
        200
    );
    let pairs = api.get("/v1/comms").json()["pairs"].clone();
    assert_eq!(
        pairs,
        json!([
            {"zone_a": "a", "zone_b": "b", "origins": ["api"]},
            {"zone_a": "a", "zone_b": "c", "origins": ["zone:c"]},
        ])
    );
    api.delete("/v1/comms/a/c").assert_problem(409, None);

    assert_eq!(api.delete("/v1/comms/b/a").status, 204);
    api.delete("/v1/comms/a/b").assert_problem(404, None);
    assert_eq!(snapshot(&core.socket).pairs.len(), 1);
}

#[test]
fn containers_are_attached_and_detached() {
    let core = Core::start();
    let api = Api::start(&core.socket);
    let cg = core.cgroup("pods/p1/c1");
    core.cgroup("pods/p1/c1/child");
    assert_eq!(api.put("/v1/zones/web", &zone_body(json!({}))).status, 201);

    let attach = json!({
        "zone": "web", "cgroup_path": "pods/p1/c1", "generation": 5,
        "pod": {"namespace": "ns", "name": "p1", "uid": "u-1"}
    })
    .to_string();
    let r = api.put("/v1/containers/c1", &attach);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("location"), Some("/v1/containers/c1"));
    let a = r.json();
    assert_eq!(a["outcome"], "applied");
    assert_eq!(a["cgroups_covered"], 2);
    assert_eq!(a["container"]["cgroup_id"], cg);
    assert_eq!(a["container"]["source"], "api");
    assert_eq!(a["container"]["pod"]["uid"], "u-1");

    let r = api.put("/v1/containers/c1", &attach);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["outcome"], "unchanged");
    let r = api.get("/v1/containers/c1");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["zone"], "web");
    assert_eq!(
        api.get("/v1/containers?zone=web").json()["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get("/v1/containers?zone=other").json()["containers"],
        json!([])
    );
    assert_eq!(api.get("/v1/zones/web").json()["state"], "active");

    // Older generation: refused, nothing changes.
    let stale = json!({"zone": "web", "cgroup_path": "pods/p1/c1", "generation": 4}).to_string();
    api.put("/v1/containers/c1", &stale)
        .assert_problem(409, Some("generation"));
    api.delete("/v1/containers/c1?generation=3")
        .assert_problem(409, Some("generation"));

    // A zone with members: delete refused, drain accepted, removed on detach.
    api.delete("/v1/zones/web").assert_problem(409, None);
    let r = api.delete("/v1/zones/web?drain=true");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json(), json!({"state": "draining"}));
    assert_eq!(api.delete("/v1/containers/c1").status, 204);
    api.get("/v1/containers/c1").assert_problem(404, None);
    api.get("/v1/zones/web").assert_problem(404, None);

    // Containers of another source cannot be detached here.
    assert_eq!(api.put("/v1/zones/k", &zone_body(json!({}))).status, 201);
    with_core(&core.socket, async |c| {
        c.attach_container(pb::AttachContainerRequest {
            container_id: "k8s-c".into(),
            cgroup: Some(pb::attach_container_request::Cgroup::CgroupId(cg)),
            zone: "k".into(),
            source: "k8s".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    api.delete("/v1/containers/k8s-c").assert_problem(409, None);
    assert_eq!(snapshot(&core.socket).containers.len(), 1);
}

#[test]
fn starts_without_core_answers_503_and_recovers() {
    let mut core = Core::start();
    let socket = core.socket.clone();
    let _ = core.child.kill();
    let _ = core.child.wait();
    std::fs::remove_file(&socket).unwrap();

    // No socket at all: the API starts and says core is unavailable.
    let api = Api::start(&socket);
    let r = api.get("/v1/zones");
    let p = r.assert_problem(503, None);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert!(p["detail"].as_str().unwrap().contains("unavailable"), "{p}");
    let r = api.put("/v1/zones/a", &zone_body(json!({})));
    r.assert_problem(503, None);
    let r = api.get("/v1/health");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.json()["status"], "unavailable");

    // Core comes: the API recovers by itself.
    core.restart();
    api.eventually(15, "the API to reach core", || {
        api.get("/v1/zones").status == 200
    });
    assert_eq!(api.put("/v1/zones/a", &zone_body(json!({}))).status, 201);
    let h = api.get("/v1/health");
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "healthy");
    let boot = h.json()["boot_id"].clone();
    api.eventually(15, "the core watch to see core", || {
        api.log_text().contains("syva core is reachable")
    });

    // Core restarts (and forgets): the API follows.
    core.restart();
    api.eventually(15, "the API to reach the new core", || {
        let h = api.get("/v1/health");
        h.status == 200 && h.json()["boot_id"] != boot
    });
    api.get("/v1/zones/a").assert_problem(404, None);
    api.eventually(15, "the restart to be logged", || {
        api.log_text().contains("syva core restarted")
    });
    // The adapter reports itself to core.
    api.eventually(15, "the adapter report", || {
        api.get("/v1/status").json()["adapters"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["source"] == "api"))
    });
}

#[test]
fn non_loopback_listen_requires_tokens() {
    let out = std::process::Command::new(common::SYVA)
        .args([
            "api",
            "--listen",
            "0.0.0.0:0",
            "--core-socket",
            "/nonexistent.sock",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token-file"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let weak = dir.path().join("weak");
    std::fs::write(&weak, "ci:short\n").unwrap();
    let out = std::process::Command::new(common::SYVA)
        .args(["api", "--token-file"])
        .arg(&weak)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1"),
        "{out:?}"
    );
}

#[test]
fn tokens_are_required_and_changes_are_logged_with_the_caller() {
    let core = Core::start();
    let mut api = Api::start_opts(
        &core.socket,
        Opts {
            listen: Some("0.0.0.0:0".to_owned()),
            token: true,
            ..Default::default()
        },
    );
    assert_eq!(api.get("/v1/zones").status, 200);
    assert_eq!(api.put("/v1/zones/a", &zone_body(json!({}))).status, 201);

    let token = api.token.take();
    let before = snapshot(&core.socket);
    let r = api.put("/v1/zones/b", &zone_body(json!({})));
    r.assert_problem(401, None);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"syva\""));
    api.get("/v1/zones").assert_problem(401, None);
    api.get("/v1/events").assert_problem(401, None);
    let wrong = format!("Bearer {}x", api_support::TOKEN);
    api.send_with("DELETE", "/v1/zones/a", None, &[("Authorization", &wrong)])
        .assert_problem(401, None);
    assert_eq!(snapshot(&core.socket), before);
    // The document is public.
    assert_eq!(api.get("/v1/openapi.json").status, 200);
    api.token = token;

    api.eventually(5, "the change log line", || {
        let log = api.log_text();
        log.lines().any(|l| {
            l.contains("change applied") && l.contains("token:ci") && l.contains("/v1/zones/a")
        }) && log.contains("not authenticated")
    });
    assert!(
        !api.log_text().contains(api_support::TOKEN),
        "tokens never reach the log"
    );
}

#[test]
fn tls_serves_https_with_the_given_certificate() {
    let core = Core::start();
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let root = ureq::tls::Certificate::from_der(ck.cert.der()).to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[root]))
        .build();
    let api = Api::start_opts(
        &core.socket,
        Opts {
            tls: Some((cert, key, tls)),
            ..Default::default()
        },
    );
    assert!(api.base.starts_with("https://"));
    let r = api.get("/v1/health");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.put("/v1/zones/a", &zone_body(json!({}))).status, 201);

    // Plain HTTP on the TLS port gets no HTTP answer.
    let (code, _) = raw(
        api.addr,
        b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 0);

    // A certificate that does not exist is a configuration error.
    let out = std::process::Command::new(common::SYVA)
        .args([
            "api",
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent.pem"),
        "{out:?}"
    );
}

/// Raw HTTP exchange: returns (status, whole answer); status 0 when the
/// answer is not HTTP.
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn slow_clients_are_cut_off() {
    let core = Core::start();
    let api = Api::start_opts(
        &core.socket,
        Opts {
            extra: &["--request-timeout", "1s", "--header-timeout", "1s"],
            ..Default::default()
        },
    );
    // A body that never completes: 408 after the request timeout.
    let started = Instant::now();
    let (code, answer) = raw(
        api.addr,
        b"PUT /v1/zones/a HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"policy\":",
    );
    assert_eq!(code, 408, "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(snapshot(&core.socket).zones.is_empty());

    // Headers that never complete: the connection is closed.
    let started = Instant::now();
    let (code, _) = raw(api.addr, b"GET /v1/zones HTTP/1.1\r\nHost: localhost\r\n");
    assert!(code == 0 || code == 408, "{code}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn routing_errors_are_problems_too() {
    let core = Core::start();
    let api = Api::start(&core.socket);
    let r = api.send("PATCH", "/v1/zones/a", Some("{}"));
    r.assert_problem(405, None);
    let allow = r.header("allow").unwrap_or_default().to_owned();
    for m in ["GET", "PUT", "DELETE"] {
        assert!(allow.contains(m), "Allow: {allow}");
    }
    api.get("/v2/zones").assert_problem(404, None);

    // Without tokens, a request for another host name (a web page reaching
    // 127.0.0.1 through DNS rebinding) is refused and changes nothing.
    let body = r#"{"policy":{}}"#;
    let req = format!(
        "PUT /v1/zones/a HTTP/1.1\r\nHost: evil.example:8080\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (code, answer) = raw(api.addr, req.as_bytes());
    assert_eq!(code, 403, "{answer}");
    assert!(
        answer.contains("urn:syva:problem:forbidden-host"),
        "{answer}"
    );
    assert!(snapshot(&core.socket).zones.is_empty());
    let req = req.replace("evil.example:8080", "localhost");
    assert_eq!(raw(api.addr, req.as_bytes()).0, 201);
}

#[test]
fn event_stream_opens_limits_and_ends_with_an_error_when_core_goes() {
    let mut core = Core::start();
    let api = Api::start_opts(
        &core.socket,
        Opts {
            extra: &["--max-event-streams", "1"],
            ..Default::default()
        },
    );
    let mut res = api.agent.get(api.url("/v1/events")).call().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut reader = res.body_mut().as_reader();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("retry:") {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains(": syva events"), "{seen}");

    // One stream is the limit here.
    let r = api.get("/v1/events");
    r.assert_problem(429, None);
    assert_eq!(r.header("retry-after"), Some("2"));

    // Core goes away: the stream says so and ends.
    let _ = core.child.kill();
    let _ = core.child.wait();
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest.contains("event: error"), "{rest}");
    assert!(rest.contains("urn:syva:problem:core-unavailable"), "{rest}");
    drop(reader);

    // While core is down a new stream gets 503 (the permit was released).
    api.eventually(5, "503 for a new stream", || {
        api.get("/v1/events").status == 503
    });
    core.restart();
}

#[test]
fn sigterm_stops_the_api_cleanly() {
    let core = Core::start();
    let api = Api::start(&core.socket);
    assert_eq!(api.get("/v1/zones").status, 200);
    let st = api.terminate();
    assert!(st.success(), "{st}");
}

const CHECKED_IN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/openapi/syva-api.json"
);

/// The document the code generates is the one checked in, and the one the
/// running server serves. `SYVA_UPDATE_OPENAPI=1` rewrites the file.
#[test]
fn openapi_document_matches_the_checked_in_file() {
    let out = std::process::Command::new(common::SYVA)
        .args(["api", "--print-openapi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let generated = String::from_utf8(out.stdout).unwrap();
    if std::env::var("SYVA_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(std::path::Path::new(CHECKED_IN).parent().unwrap()).unwrap();
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        generated == checked_in,
        "{CHECKED_IN} differs from what the code generates; regenerate it with\n  \
         SYVA_UPDATE_OPENAPI=1 cargo test --release --test api openapi\n\
         or: syva api --print-openapi > packaging/openapi/syva-api.json"
    );

    let core = Core::start();
    let api = Api::start(&core.socket);
    let r = api.get("/v1/openapi.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, generated);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every served route is in the document, with its methods.
    for (path, method) in [
        ("/v1/zones", "get"),
        ("/v1/zones/{name}", "put"),
        ("/v1/zones/{name}/host-paths", "post"),
        ("/v1/comms/{zone_a}/{zone_b}", "delete"),
        ("/v1/containers/{container_id}", "put"),
        ("/v1/events", "get"),
        ("/v1/health", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
}

/// Latency numbers of the REST path (HTTP -> syva api -> gRPC -> core and
/// back), printed for the record; not asserted (timing varies by machine).
/// Run with `cargo test --release --test api latency -- --nocapture`.
#[test]
fn latency_numbers() {
    let core = Core::start();
    let api = Api::start(&core.socket);
    const N: usize = 200;
    fn report(what: &str, mut d: Vec<Duration>) {
        d.sort();
        let pct = |p: f64| d[((d.len() as f64 * p) as usize).min(d.len() - 1)];
        println!(
            "{what:<42} n={:<4} p50={:>8.3?} p99={:>8.3?} max={:>8.3?}",
            d.len(),
            pct(0.50),
            pct(0.99),
            d[d.len() - 1]
        );
    }
    let time = |f: &mut dyn FnMut(usize)| -> Vec<Duration> {
        (0..N)
            .map(|i| {
                let t = Instant::now();
                f(i);
                t.elapsed()
            })
            .collect()
    };

    let created = time(&mut |i| {
        let r = api.put(&format!("/v1/zones/z{i}"), &zone_body(json!({})));
        assert_eq!(r.status, 201, "{}", r.body);
    });
    report("PUT /v1/zones/{name} (create)", created);
    let listed = time(&mut |_| assert_eq!(api.get("/v1/zones").status, 200));
    report(&format!("GET /v1/zones ({N} zones)"), listed);
    let got = time(&mut |i| assert_eq!(api.get(&format!("/v1/zones/z{i}")).status, 200));
    report(&format!("GET /v1/zones/{{name}} ({N} zones)"), got);
    for i in 0..N {
        core.cgroup(&format!("bench/c{i}"));
    }
    let attached = time(&mut |i| {
        let body = json!({"zone": format!("z{i}"), "cgroup_path": format!("bench/c{i}")});
        let r = api.put(&format!("/v1/containers/c{i}"), &body.to_string());
        assert_eq!(r.status, 201, "{}", r.body);
    });
    report("PUT /v1/containers/{id} (attach)", attached);
    let rejected = time(&mut |_| {
        assert_eq!(api.put("/v1/zones/a..b", &zone_body(json!({}))).status, 422);
    });
    report("PUT /v1/zones/{name} (422, no core call)", rejected);

    // Baseline: the same listing straight over gRPC.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let direct = rt.block_on(async {
        let mut c = core.client().await.api();
        let mut d = Vec::with_capacity(N);
        for _ in 0..N {
            let t = Instant::now();
            c.list_zones(pb::ListZonesRequest {}).await.unwrap();
            d.push(t.elapsed());
        }
        d
    });
    report(&format!("gRPC ListZones ({N} zones), baseline"), direct);
}
