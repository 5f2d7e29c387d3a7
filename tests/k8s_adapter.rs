//! `syva k8s` end to end: the real binary against a real memory-dataplane
//! `syva core` (Unix socket, temporary cgroup tree) and an in-process
//! server speaking the Kubernetes HTTP API (tests/k8s_fake), reached
//! through a kubeconfig exactly as a real cluster would be.

mod common;
mod k8s_fake;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use syva::proto::pb;

use common::{Core, SYVA};
use k8s_fake::FakeApi;

const POLICIES: &str = "syvazonepolicies";

/// A running `syva k8s`; killed on drop.
struct Adapter {
    child: Child,
    log: PathBuf,
}

impl Adapter {
    fn start(core: &Core, api: &FakeApi, node: &str) -> Self {
        let kubeconfig = core.dir.path().join(format!("kubeconfig-{node}"));
        api.write_kubeconfig(&kubeconfig);
        let n = std::fs::read_dir(core.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = core.dir.path().join(format!("k8s-{node}-{n}.log"));
        let child = Command::new(SYVA)
            .args([
                "k8s",
                "--log",
                "debug,kube=info,kube_lease_manager=debug,tower=info,hyper=info",
            ])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--node-name", node])
            .arg("--core-socket")
            .arg(&core.socket)
            .arg("--cgroup-root")
            .arg(&core.cgroup_root)
            .args(["--lease-namespace", "syva-system", "--lease-seconds", "3"])
            .args(["--resync", "1h", "--core-check-interval", "200ms"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn syva k8s");
        Adapter { child, log }
    }

    /// SIGTERM; the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "syva k8s did not stop on SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `cond` until it returns Some, or fail with `what` and the logs.
async fn wait_for<T, F, Fut>(what: &str, logs: &[&Path], mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|p| {
                    format!(
                        "--- {} ---\n{}",
                        p.display(),
                        std::fs::read_to_string(p).unwrap_or_default()
                    )
                })
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn policy(name: &str, app: &str, host_path: &Path) -> Value {
    json!({
        "apiVersion": "syva.dev/v1alpha1", "kind": "SyvaZonePolicy",
        "metadata": {"name": name},
        "spec": {
            "zoneType": "standard",
            "hostPaths": [{"path": host_path.to_str().unwrap(), "recursive": true}],
            "podSelector": {"matchLabels": {"app": app}},
        }
    })
}

/// Create a pod on `node` as the scheduler and kubelet would leave it
/// (the status goes through the status subresource); returns its uid.
fn pod(api: &FakeApi, ns: &str, name: &str, node: &str, app: &str) -> String {
    let created = api
        .create(
            "pods",
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
                "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]},
            }),
        )
        .unwrap();
    api.merge(
        "pods",
        ns,
        name,
        json!({"status": {"phase": "Running", "qosClass": "Burstable"}}),
        true,
    )
    .unwrap();
    created["metadata"]["uid"].as_str().unwrap().to_owned()
}

/// Create the pod's cgroup (systemd driver, burstable) as kubelet would.
fn pod_cgroup(core: &Core, uid: &str) -> String {
    let rel = format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        uid.replace('-', "_")
    );
    core.cgroup(&rel);
    format!("/{rel}")
}

async fn containers(core: &Core) -> Vec<pb::Container> {
    match syva::client::CoreClient::connect(&core.socket).await {
        Ok(c) => match c
            .api()
            .list_containers(pb::ListContainersRequest::default())
            .await
        {
            Ok(r) => r.into_inner().containers,
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

async fn zones(core: &Core) -> Vec<pb::Zone> {
    match syva::client::CoreClient::connect(&core.socket).await {
        Ok(c) => match c.api().list_zones(pb::ListZonesRequest {}).await {
            Ok(r) => r.into_inner().zones,
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

/// The membership core has for a pod: (zone, cgroup path).
async fn member(core: &Core, uid: &str) -> Option<(String, String)> {
    containers(core)
        .await
        .into_iter()
        .find(|c| c.pod_uid == uid)
        .map(|c| (c.zone, c.cgroup_path))
}

fn condition<'a>(conds: &'a Value, t: &str) -> Option<&'a Value> {
    conds.as_array()?.iter().find(|c| c["type"] == t)
}

fn node_entry<'a>(obj: &'a Value, node: &str) -> Option<&'a Value> {
    obj["status"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["node"] == node)
}

fn host_dirs(core: &Core, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = core.dir.path().join("host").join(n);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("data"), n).unwrap();
            p
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_pods_converge() {
    let core = Core::start();
    let api = FakeApi::start().await;
    let dirs = host_dirs(&core, &["web", "db"]);
    api.create(POLICIES, policy("web", "web", &dirs[0]))
        .unwrap();
    api.create(POLICIES, policy("db", "db", &dirs[1])).unwrap();
    // A pod that existed before the adapter, one on another node, one
    // that no policy selects.
    let p1 = pod(&api, "shop", "p1", "node-a", "web");
    let p1_cg = pod_cgroup(&core, &p1);
    let other = pod(&api, "shop", "elsewhere", "node-b", "web");
    pod_cgroup(&core, &other);
    let plain = pod(&api, "shop", "plain", "node-a", "none");
    pod_cgroup(&core, &plain);

    let adapter = Adapter::start(&core, &api, "node-a");
    let logs = [adapter.log.as_path(), core.log.as_path()];
    let got = wait_for("p1 attached to web", &logs, || member(&core, &p1)).await;
    assert_eq!(got, ("web".to_owned(), p1_cg.clone()));
    let c = containers(&core).await;
    assert_eq!(c.len(), 1, "only p1 is a member: {c:?}");
    assert_eq!(c[0].source, "k8s");
    assert_eq!(
        (c[0].pod_namespace.as_str(), c[0].pod_name.as_str()),
        ("shop", "p1")
    );
    let z = zones(&core).await;
    assert!(
        z.iter()
            .any(|z| z.name == "web" && z.source == "k8s" && z.member_count == 1),
        "{z:?}"
    );

    // Status: this node's entry, and the overall conditions of the elected writer.
    let obj = wait_for("web status", &logs, || async {
        let o = api.get(POLICIES, "", "web")?;
        let entry = node_entry(&o, "node-a")?;
        let ready = condition(&entry["conditions"], "Ready")?;
        (ready["status"] == "True"
            && entry["members"] == 1
            && o["status"]["observedGeneration"] == 1
            && condition(&o["status"]["conditions"], "Ready")?["status"] == "True")
            .then_some(o)
    })
    .await;
    assert_eq!(
        condition(&obj["status"]["conditions"], "Degraded").unwrap()["status"],
        "False"
    );
    let managers = api.managers(POLICIES, "", "web");
    assert!(
        managers.contains("syva-k8s/node-a") && managers.contains("syva-k8s/status"),
        "{managers:?}"
    );

    // Labels change: p1 moves to db.
    api.merge(
        "pods",
        "shop",
        "p1",
        json!({"metadata": {"labels": {"app": "db"}}}),
        false,
    )
    .unwrap();
    wait_for("p1 moved to db", &logs, || async {
        (member(&core, &p1).await? == ("db".to_owned(), p1_cg.clone())).then_some(())
    })
    .await;

    // A new pod whose cgroup appears after the pod (kubelet is slower
    // than the API): attached as soon as the cgroup exists.
    let p2 = pod(&api, "shop", "p2", "node-a", "web");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(member(&core, &p2).await, None, "no cgroup yet");
    let p2_cg = pod_cgroup(&core, &p2);
    let got = wait_for("p2 attached", &logs, || member(&core, &p2)).await;
    assert_eq!(got, ("web".to_owned(), p2_cg));

    // Leaves every zone: detached. Deleted: detached.
    api.merge(
        "pods",
        "shop",
        "p1",
        json!({"metadata": {"labels": {"app": "none"}}}),
        false,
    )
    .unwrap();
    api.delete("pods", "shop", "p2").unwrap();
    wait_for("p1 and p2 detached", &logs, || async {
        containers(&core).await.is_empty().then_some(())
    })
    .await;

    // An invalid update is not applied (the fake server has no CEL): the
    // zone keeps its policy, members stay, the status says why.
    let p3 = pod(&api, "shop", "p3", "node-a", "web");
    pod_cgroup(&core, &p3);
    let (_, p3_cg) = wait_for("p3 attached", &logs, || member(&core, &p3)).await;

    // A running container must have its cgroup below the pod's (here by
    // containerd's systemd name); one that does not is reported.
    let running = |restarts: u32| {
        json!({"status": {"containerStatuses": [{
            "name": "main", "image": "busybox", "imageID": "", "ready": true,
            "restartCount": restarts, "containerID": "containerd://abc123",
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
        }]}})
    };
    api.merge("pods", "shop", "p3", running(0), true).unwrap();
    let adapter_problems = || async {
        let s = core
            .client()
            .await
            .api()
            .status(pb::StatusRequest {})
            .await
            .ok()?
            .into_inner();
        let a = s.adapters.into_iter().find(|a| a.source == "k8s")?;
        Some(
            a.problems
                .into_iter()
                .map(|p| format!("{}: {}", p.object, p.message))
                .collect::<Vec<_>>(),
        )
    };
    wait_for("uncovered container reported", &logs, || async {
        adapter_problems()
            .await?
            .iter()
            .any(|p| p.starts_with("Pod/shop/p3: container main (containerd://abc123) is running but has no cgroup below"))
            .then_some(())
    })
    .await;
    core.cgroup(&format!(
        "{}/cri-containerd-abc123.scope",
        p3_cg.trim_start_matches('/')
    ));
    api.merge("pods", "shop", "p3", running(1), true).unwrap();
    wait_for(
        "no more problem once the container cgroup is there",
        &logs,
        || async { adapter_problems().await?.is_empty().then_some(()) },
    )
    .await;
    api.merge(
        POLICIES,
        "",
        "web",
        json!({"spec": {"hostPaths": [{"path": "relative/x"}]}}),
        false,
    )
    .unwrap();
    let obj = wait_for("InvalidSpec status", &logs, || async {
        let o = api.get(POLICIES, "", "web")?;
        let d = condition(&o["status"]["conditions"], "Degraded")?;
        let entry = node_entry(&o, "node-a")?;
        (d["reason"] == "InvalidSpec" && entry["observedGeneration"] == 2).then_some(o)
    })
    .await;
    let d = condition(&obj["status"]["conditions"], "Degraded").unwrap();
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.hostPaths[0].path"),
        "{d}"
    );
    assert_eq!(obj["status"]["observedGeneration"], 2);
    let web = zones(&core)
        .await
        .into_iter()
        .find(|z| z.name == "web")
        .unwrap();
    assert_eq!(
        web.policy.unwrap().host_paths[0].path,
        dirs[0].to_str().unwrap(),
        "the previous policy stays in force"
    );
    assert_eq!(member(&core, &p3).await.unwrap().0, "web");
    let status = core
        .client()
        .await
        .api()
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let ours = status
        .adapters
        .iter()
        .find(|a| a.source == "k8s" && a.instance == "node-a");
    assert!(
        ours.is_some_and(|a| a
            .problems
            .iter()
            .any(|p| p.object == "SyvaZonePolicy/web"
                && p.message.contains("spec.hostPaths[0].path"))),
        "{:?}",
        status.adapters
    );

    // Deleting the policy: members detached, zone removed.
    api.delete(POLICIES, "", "web").unwrap();
    wait_for("web removed", &logs, || async {
        let z = zones(&core).await;
        (!z.iter().any(|z| z.name == "web")
            && z.iter().any(|z| z.name == "db")
            && containers(&core).await.is_empty())
        .then_some(())
    })
    .await;
    assert!(
        adapter
            .log_text()
            .contains("zone of a deleted SyvaZonePolicy removed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_and_core_restarts_converge() {
    let mut core = Core::start();
    let api = FakeApi::start().await;
    let dirs = host_dirs(&core, &["a", "b"]);
    api.create(POLICIES, policy("za", "a", &dirs[0])).unwrap();
    api.create(POLICIES, policy("zb", "b", &dirs[1])).unwrap();
    let p1 = pod(&api, "ns1", "p1", "node-a", "a");
    pod_cgroup(&core, &p1);
    let p2 = pod(&api, "ns1", "p2", "node-a", "b");
    pod_cgroup(&core, &p2);
    let adapter = Adapter::start(&core, &api, "node-a");
    let logs = [adapter.log.clone(), core.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_for("both attached", &logs, || async {
        (containers(&core).await.len() == 2).then_some(())
    })
    .await;
    let before: Vec<u64> = containers(&core)
        .await
        .iter()
        .map(|c| c.generation)
        .collect();

    // While the adapter is down: p1 deleted, p2 moves to za, p3 created,
    // zb deleted.
    drop(adapter);
    api.delete("pods", "ns1", "p1").unwrap();
    api.merge(
        "pods",
        "ns1",
        "p2",
        json!({"metadata": {"labels": {"app": "a"}}}),
        false,
    )
    .unwrap();
    let p3 = pod(&api, "ns1", "p3", "node-a", "a");
    pod_cgroup(&core, &p3);
    api.delete(POLICIES, "", "zb").unwrap();
    let adapter = Adapter::start(&core, &api, "node-a");
    let logs = [adapter.log.clone(), core.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_for("converged after adapter restart", &logs, || async {
        let mut m: Vec<(String, String)> = containers(&core)
            .await
            .into_iter()
            .map(|c| (c.pod_name, c.zone))
            .collect();
        m.sort();
        let z: Vec<String> = zones(&core).await.into_iter().map(|z| z.name).collect();
        (m == [("p2".into(), "za".into()), ("p3".into(), "za".into())] && z == ["za"]).then_some(())
    })
    .await;
    let after = containers(&core).await;
    assert!(
        after
            .iter()
            .all(|c| before.iter().all(|b| c.generation > *b)),
        "generations keep increasing across adapter restarts: {before:?} -> {after:?}"
    );

    // Core restarts empty: the adapter re-applies zones and memberships.
    core.restart();
    wait_for("re-applied after core restart", &logs, || async {
        let z = zones(&core).await;
        (z.len() == 1 && z[0].name == "za" && z[0].member_count == 2).then_some(())
    })
    .await;
    assert!(adapter.log_text().contains("syva core (re)started"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_recover_from_410_gone() {
    let core = Core::start();
    let api = FakeApi::start().await;
    let dirs = host_dirs(&core, &["w"]);
    api.create(POLICIES, policy("w", "w", &dirs[0])).unwrap();
    let adapter = Adapter::start(&core, &api, "node-a");
    let logs = [adapter.log.as_path(), core.log.as_path()];
    wait_for("zone w", &logs, || async {
        zones(&core)
            .await
            .iter()
            .any(|z| z.name == "w")
            .then_some(())
    })
    .await;

    // Changes the adapter misses: history compacted, watches dropped.
    let lists_before = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?") && !r.contains("watch=true"))
        .count();
    api.pause_watches();
    let p = pod(&api, "x", "p", "node-a", "w");
    pod_cgroup(&core, &p);
    api.compact();
    api.resume_watches();
    wait_for("pod attached after relist", &logs, || member(&core, &p)).await;
    let lists_after = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?") && !r.contains("watch=true"))
        .count();
    assert!(
        lists_after > lists_before,
        "the pod watch re-listed after 410 Gone"
    );
    assert!(
        adapter.log_text().contains("too old resource version"),
        "the 410 was seen:\n{}",
        adapter.log_text()
    );
    let field_selected = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?"))
        .all(|r| r.contains("fieldSelector=spec.nodeName%3Dnode-a"));
    assert!(
        field_selected,
        "pods are watched for this node only: {:?}",
        api.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_owned_by_another_source_is_reported() {
    let core = Core::start();
    let api = FakeApi::start().await;
    let dirs = host_dirs(&core, &["f"]);
    core.client()
        .await
        .api()
        .register_zone(pb::RegisterZoneRequest {
            name: "shared".into(),
            policy: Some(pb::ZonePolicy::default()),
            source: "file".into(),
        })
        .await
        .unwrap();
    api.create(POLICIES, policy("shared", "s", &dirs[0]))
        .unwrap();
    let p = pod(&api, "x", "p", "node-a", "s");
    pod_cgroup(&core, &p);
    let adapter = Adapter::start(&core, &api, "node-a");
    let logs = [adapter.log.as_path(), core.log.as_path()];
    let o = wait_for("ZoneConflict", &logs, || async {
        let o = api.get(POLICIES, "", "shared")?;
        (condition(&node_entry(&o, "node-a")?["conditions"], "Degraded")?["reason"]
            == "ZoneConflict"
            && condition(&o["status"]["conditions"], "Degraded")?["reason"] == "NodeFailures")
            .then_some(o)
    })
    .await;
    let msg = condition(&o["status"]["conditions"], "Degraded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("node-a: ZoneConflict") && msg.contains("file"),
        "{msg}"
    );
    // Not taken over, and the pod is not put in another source's zone.
    let z = zones(&core).await;
    assert_eq!(z[0].source, "file");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(containers(&core).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_write_their_own_status_entries() {
    let core_a = Core::start();
    let core_b = Core::start();
    let api = FakeApi::start().await;
    let dirs = host_dirs(&core_a, &["n"]);
    std::fs::create_dir_all(core_b.dir.path().join("host")).unwrap();
    // Both "nodes" see the same host path (one machine in this test).
    api.create(POLICIES, policy("n", "n", &dirs[0])).unwrap();
    let pa = pod(&api, "x", "pa", "node-a", "n");
    pod_cgroup(&core_a, &pa);
    let pb_ = pod(&api, "x", "pb", "node-b", "n");
    pod_cgroup(&core_b, &pb_);
    let a = Adapter::start(&core_a, &api, "node-a");
    let b = Adapter::start(&core_b, &api, "node-b");
    let logs = [a.log.as_path(), b.log.as_path()];
    let o = wait_for("both node entries", &logs, || async {
        let o = api.get(POLICIES, "", "n")?;
        let ok = |n: &str| {
            node_entry(&o, n).is_some_and(|e| {
                e["members"] == 1
                    && condition(&e["conditions"], "Ready").is_some_and(|c| c["status"] == "True")
            })
        };
        (ok("node-a")
            && ok("node-b")
            && condition(&o["status"]["conditions"], "Ready")?["message"]
                .as_str()?
                .contains("2 node(s)"))
        .then_some(o)
    })
    .await;
    assert_eq!(o["status"]["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(member(&core_a, &pa).await.unwrap().0, "n");
    assert_eq!(member(&core_b, &pb_).await.unwrap().0, "n");
    assert!(member(&core_a, &pb_).await.is_none() && member(&core_b, &pa).await.is_none());
    let lease = api
        .get("leases", "syva-system", "syva-k8s-status")
        .expect("lease");
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
    assert!(holder == "node-a" || holder == "node-b", "{lease}");
    let managers = api.managers(POLICIES, "", "n");
    for m in ["syva-k8s/node-a", "syva-k8s/node-b", "syva-k8s/status"] {
        assert!(managers.contains(m), "{managers:?}");
    }

    // The leader stops (SIGTERM): it releases the lease, the other node
    // takes it over; what core enforces is left in place.
    let (gone, stays, stays_log) = if holder == "node-a" {
        (a, "node-b", b.log.clone())
    } else {
        (b, "node-a", a.log.clone())
    };
    let gone_log = gone.log.clone();
    let st = gone.terminate();
    assert!(st.success(), "exit status {st}");
    let text = std::fs::read_to_string(&gone_log).unwrap();
    assert!(text.contains("status writer lease released"), "{text}");
    assert_eq!(member(&core_a, &pa).await.unwrap().0, "n");
    assert_eq!(member(&core_b, &pb_).await.unwrap().0, "n");
    wait_for("lease taken over", &[stays_log.as_path()], || async {
        let l = api.get("leases", "syva-system", "syva-k8s-status")?;
        (l["spec"]["holderIdentity"] == stays).then_some(())
    })
    .await;
}

#[test]
fn crd_yaml_is_the_packaged_one() {
    let out = Command::new(SYVA).args(["k8s", "crd"]).output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let packaged = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/k8s/crd.yaml"),
    )
    .unwrap();
    assert!(
        printed == packaged,
        "packaging/k8s/crd.yaml differs from `syva k8s crd`: run `syva k8s crd > packaging/k8s/crd.yaml`"
    );
    assert!(
        printed.contains("kind: CustomResourceDefinition")
            && printed.contains("name: syvazonepolicies.syva.dev")
    );
}

#[test]
fn missing_node_name_is_a_config_error() {
    let out = Command::new(SYVA)
        .args(["k8s", "--core-socket", "/nonexistent.sock"])
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node-name"));
}

#[test]
fn daemonset_uses_flags_the_binary_has() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/k8s/daemonset.yaml");
    let ds: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spec = &ds["spec"]["template"]["spec"];
    let containers = spec["containers"].as_array().unwrap();
    let mut roles = Vec::new();
    for c in containers {
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        // clap rejects an unknown flag before it gets to --help.
        let out = Command::new(SYVA)
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        roles.push(args[0]);
        if args[0] == "k8s" {
            let env = c["env"].as_array().unwrap();
            assert!(env.iter().any(|e| e["name"] == "NODE_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"));
        }
    }
    assert_eq!(roles, ["core", "k8s"]);
    assert_eq!(spec["serviceAccountName"], "syva");
}

/// The fake server answers like the real one where the adapter depends on
/// it: server-side apply conflicts between field managers (409 unless
/// forced), optimistic concurrency on replace (409), 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_conflicts_like_a_real_server() {
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use syva::k8s::crd::SyvaZonePolicy;

    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kc).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let policies: Api<SyvaZonePolicy> = Api::all(client);
    let created = policies
        .create(
            &PostParams::default(),
            &serde_json::from_value(policy("c", "c", Path::new("/x"))).unwrap(),
        )
        .await
        .unwrap();
    let cond = |status: &str| {
        json!({"apiVersion": "syva.dev/v1alpha1", "kind": "SyvaZonePolicy", "status": {
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": status, "reason": "R", "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    };
    policies
        .patch_status("c", &PatchParams::apply("one"), &Patch::Apply(cond("True")))
        .await
        .unwrap();
    // Same value from another manager: shared ownership, no conflict.
    policies
        .patch_status("c", &PatchParams::apply("two"), &Patch::Apply(cond("True")))
        .await
        .unwrap();
    // A different value while others own the field: 409.
    let e = policies
        .patch_status(
            "c",
            &PatchParams::apply("three"),
            &Patch::Apply(cond("False")),
        )
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409, "{s:?}");
            assert!(s.message.contains("conflict with \"one\""), "{}", s.message);
        }
        other => panic!("{other}"),
    }
    let forced = policies
        .patch_status(
            "c",
            &PatchParams::apply("three").force(),
            &Patch::Apply(cond("False")),
        )
        .await
        .unwrap();
    assert_eq!(forced.status.unwrap().conditions[0].status, "False");
    // Status writes never change the spec's generation.
    assert_eq!(forced.metadata.generation, Some(1));

    // Replace with a stale resourceVersion: 409.
    let mut stale = created.clone();
    stale.spec.allow_ptrace = true;
    let e = policies
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 409), "{e}");
    let fresh = policies.get("c").await.unwrap();
    let mut next = fresh.clone();
    next.spec.allow_ptrace = true;
    let replaced = policies
        .replace("c", &PostParams::default(), &next)
        .await
        .unwrap();
    assert_eq!(
        replaced.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );
    assert!(matches!(policies.get("nope").await, Err(kube::Error::Api(s)) if s.code == 404));
}
