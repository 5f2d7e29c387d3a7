//! Benchmark: time from a pod's creation in the Kubernetes API to its
//! enforced membership (AttachContainer applied, visible in core's
//! ListContainers), with the real `syva k8s` binary, a memory-dataplane
//! `syva core` and the fake API server of the tests. Prints numbers; asserts
//! nothing about them.
//!
//! `cargo bench --bench k8s_pod_attach` (SYVA_BENCH_PODS: pods per run,
//! default 100; SYVA_BENCH_LOG: the adapter's log filter; SYVA_BENCH_KEEP:
//! keep its log).

#[path = "../common/mod.rs"]
mod common;
#[path = "../k8s_fake/mod.rs"]
mod k8s_fake;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use syva::proto::pb;

fn pod_json(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "labels": {"app": "bench"}},
        "spec": {"nodeName": "bench-node", "containers": [{"name": "c", "image": "x"}]},
    })
}

fn cgroup_rel(uid: &str) -> String {
    format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
        uid.replace('-', "_")
    )
}

async fn attached(
    api: &mut syva::proto::SyvaCoreClient<tonic::transport::Channel>,
) -> std::collections::BTreeSet<String> {
    api.list_containers(pb::ListContainersRequest::default())
        .await
        .map(|r| {
            r.into_inner()
                .containers
                .into_iter()
                .map(|c| c.pod_uid)
                .collect()
        })
        .unwrap_or_default()
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name}: n={} min={:.1}ms p50={:.1}ms p90={:.1}ms p99={:.1}ms max={:.1}ms",
        v.len(),
        ms(v[0]),
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(pct(0.99)),
        ms(v[v.len() - 1])
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let n: usize = std::env::var("SYVA_BENCH_PODS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let core = common::Core::start();
    let fake = k8s_fake::FakeApi::start().await;
    let kubeconfig = core.dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let host = core.dir.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    fake.create(
        "syvazonepolicies",
        json!({
            "apiVersion": "syva.dev/v1alpha1", "kind": "SyvaZonePolicy",
            "metadata": {"name": "bench"},
            "spec": {"hostPaths": [{"path": host.to_str().unwrap()}], "podSelector": {"matchLabels": {"app": "bench"}}},
        }),
    )
    .unwrap();
    let log = core.dir.path().join("k8s.log");
    let mut adapter = Command::new(common::SYVA)
        .args([
            "k8s",
            "--node-name",
            "bench-node",
            "--lease-namespace",
            "bench",
        ])
        .arg("--log")
        .arg(std::env::var("SYVA_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--core-socket")
        .arg(&core.socket)
        .arg("--cgroup-root")
        .arg(&core.cgroup_root)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn syva k8s");
    let mut api = core.client().await.api();
    let t = Instant::now();
    while !api
        .list_zones(pb::ListZonesRequest {})
        .await
        .is_ok_and(|z| z.get_ref().zones.iter().any(|z| z.name == "bench"))
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "zone never registered:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "syva k8s: zone registered {:.0}ms after start",
        t.elapsed().as_secs_f64() * 1000.0
    );

    // 1. One pod at a time; its cgroup appears right after the API create
    //    (a fast kubelet). Measured: API create -> membership in core, and
    //    cgroup mkdir -> membership (the window in which a process of the
    //    pod could run outside the zone).
    let mut from_create = Vec::new();
    let mut from_cgroup = Vec::new();
    for i in 0..n {
        let t0 = Instant::now();
        let created = fake.create("pods", pod_json(&format!("seq-{i}"))).unwrap();
        let uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
        core.cgroup(&cgroup_rel(&uid));
        let t1 = Instant::now();
        while !attached(&mut api).await.contains(&uid) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "pod {i} never attached"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        from_create.push(t0.elapsed());
        from_cgroup.push(t1.elapsed());
    }
    summary("sequential: API create -> attached", from_create);
    summary("sequential: cgroup mkdir -> attached", from_cgroup);

    // 2. The cgroup appears well after the pod (a slow kubelet): the pod is
    //    pending in the adapter, found by its --pending-interval look-ups.
    let mut late = Vec::new();
    for i in 0..n.min(30) {
        let created = fake.create("pods", pod_json(&format!("late-{i}"))).unwrap();
        let uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t1 = Instant::now();
        core.cgroup(&cgroup_rel(&uid));
        while !attached(&mut api).await.contains(&uid) {
            assert!(
                t1.elapsed() < Duration::from_secs(30),
                "pod late-{i} never attached"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        late.push(t1.elapsed());
    }
    summary("late cgroup: cgroup mkdir -> attached", late);

    // 3. A burst: n pods created at once (a Deployment scaling up).
    let t0 = Instant::now();
    let mut uids = Vec::new();
    for i in 0..n {
        let created = fake
            .create("pods", pod_json(&format!("burst-{i}")))
            .unwrap();
        let uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
        core.cgroup(&cgroup_rel(&uid));
        uids.push(uid);
    }
    let mut done: Vec<Option<Duration>> = vec![None; n];
    while done.iter().any(Option::is_none) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "burst never attached"
        );
        let now = attached(&mut api).await;
        for (i, uid) in uids.iter().enumerate() {
            if done[i].is_none() && now.contains(uid) {
                done[i] = Some(t0.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let all: Vec<Duration> = done.into_iter().flatten().collect();
    let last = *all.iter().max().unwrap();
    summary(
        &format!("burst of {n}: burst start -> each pod attached"),
        all,
    );
    println!(
        "burst of {n}: all attached after {:.1}ms",
        last.as_secs_f64() * 1000.0
    );

    let _ = adapter.kill();
    let _ = adapter.wait();
    if std::env::var_os("SYVA_BENCH_KEEP").is_some() {
        let mut core = core;
        let _ = core.child.kill();
        let _ = core.child.wait();
        let kept = core.dir.path().to_path_buf();
        // Keep the directory: Core's drop would delete it.
        std::mem::forget(core);
        println!("adapter log kept in {}", kept.join("k8s.log").display());
    }
}
