//! Benchmark of `syva file` membership: how long a cgroup that a zone's
//! membership rule selects stays out of its zone after it appears. The real
//! binary watches a directory tree with inotify and attaches through a real
//! `syva core` (memory dataplane) over its Unix socket; the latency of each
//! cgroup is core's `attached_at` minus the time just before `mkdir`.
//!
//! Prints numbers and asserts nothing about speed. Run:
//!   cargo bench --profile release --bench file_membership
//! SYVA_BENCH_N sets the number of cgroups per phase (default 300).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use syva::proto::{self, pb};

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pick = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "{name:<44} n={:<5} mean={:>9.3?} p50={:>9.3?} p90={:>9.3?} p99={:>9.3?} max={:>9.3?}",
        v.len(),
        mean,
        pick(0.5),
        pick(0.9),
        pick(0.99),
        v[v.len() - 1]
    );
}

async fn attached(api: &syva::client::CoreClient) -> BTreeMap<String, SystemTime> {
    api.api()
        .list_containers(pb::ListContainersRequest {
            zone: "bench".into(),
        })
        .await
        .expect("ListContainers")
        .into_inner()
        .containers
        .into_iter()
        .filter_map(|c| {
            let at = c.attached_at.as_ref().and_then(proto::system_time)?;
            Some((c.cgroup_path, at))
        })
        .collect()
}

/// Wait until `want` cgroups are attached; returns their attach times.
async fn wait_attached(
    api: &syva::client::CoreClient,
    want: usize,
) -> BTreeMap<String, SystemTime> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = attached(api).await;
        if got.len() >= want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {want} attached",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn main() {
    let n: usize = std::env::var("SYVA_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let core = common::Core::start();
    let root = core.cgroup_root.clone();
    // A host-like tree the adapter watches and scans: 40 slices x 25 leaves.
    for s in 0..40 {
        for l in 0..25 {
            std::fs::create_dir_all(root.join(format!("noise-{s}.slice/unit-{l}.service")))
                .unwrap();
        }
    }
    std::fs::create_dir_all(root.join("bench.slice")).unwrap();
    let policies = core.dir.path().join("policies");
    common::write(
        &policies.join("bench.toml"),
        "[membership]\ncgroups = [\"bench.slice/*.scope\"]\n",
    );
    let mut adapter = Command::new(common::SYVA)
        .args(["file", "--log", "warn", "--resync-interval", "1h"])
        .arg("--policy-dir")
        .arg(&policies)
        .arg("--core-socket")
        .arg(&core.socket)
        .arg("--cgroup-root")
        .arg(&root)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn syva file");

    rt.block_on(async {
        let api = core.client().await;
        let started = Instant::now();
        loop {
            let z = api
                .api()
                .list_zones(pb::ListZonesRequest {})
                .await
                .unwrap()
                .into_inner();
            if z.zones.iter().any(|z| z.name == "bench") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        println!(
            "initial sync with 1,041 cgroups in the tree: zone in force {:.1?} after start",
            started.elapsed()
        );

        // One at a time: the latency of an isolated container start.
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            let path = format!("/bench.slice/one-{i}.scope");
            let t0 = SystemTime::now();
            std::fs::create_dir(root.join(&path[1..])).unwrap();
            let got = wait_attached(&api, i + 1).await;
            lat.push(got[&path].duration_since(t0).unwrap_or_default());
        }
        stats("sequential: mkdir -> attached in core", lat);

        // A burst: n cgroups created back to back (a node starting many
        // containers at once).
        let mut made = Vec::with_capacity(n);
        let t_burst = Instant::now();
        for i in 0..n {
            let path = format!("/bench.slice/burst-{i}.scope");
            let t0 = SystemTime::now();
            std::fs::create_dir(root.join(&path[1..])).unwrap();
            made.push((path, t0));
        }
        let got = wait_attached(&api, 2 * n).await;
        let all = t_burst.elapsed();
        let lat: Vec<Duration> = made
            .iter()
            .map(|(p, t0)| got[p].duration_since(*t0).unwrap_or_default())
            .collect();
        stats("burst: mkdir -> attached in core", lat);
        println!(
            "burst: {n} cgroups attached {all:.1?} after the first mkdir ({:.0}/s)",
            n as f64 / all.as_secs_f64()
        );
    });
    let _ = adapter.kill();
    let _ = adapter.wait();
}
