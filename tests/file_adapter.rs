//! `syva file` end to end on the host: the real binary, real policy files in
//! temporary directories, a real `syva core` (memory dataplane) over its
//! Unix socket, and a temporary directory as the cgroup tree (inotify works
//! the same there as on cgroupfs).
//!
//! Tests that check the watch run with a one-hour resync, so only the watch
//! can apply a change within the wait.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Core, SYVA};
use syva::client::CoreClient;
use syva::proto::pb;

const WAIT: Duration = Duration::from_secs(10);
const ID: &str = "3f2a9c0e1b2d4f6a8c0e1b2d4f6a8c0e1b2d4f6a8c0e1b2d4f6a8c0e1b2d4f6a";

/// A running `syva file`; killed on drop.
struct Adapter {
    child: Child,
    log: PathBuf,
}

impl Adapter {
    fn start(core: &Core, policy_dir: &Path, extra: &[&str]) -> Self {
        let log = policy_dir
            .parent()
            .unwrap()
            .join(format!("file-{}.log", common::free_port().port()));
        let child = Command::new(SYVA)
            .args(["file", "--log", "info,syva=debug"])
            .arg("--policy-dir")
            .arg(policy_dir)
            .arg("--core-socket")
            .arg(&core.socket)
            .arg("--cgroup-root")
            .arg(&core.cgroup_root)
            .args(if extra.contains(&"--resync-interval") {
                &[][..]
            } else {
                &["--resync-interval", "1h"][..]
            })
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn syva file");
        Self { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "syva file ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `check` until it returns Ok; panic with its last complaint and the
/// adapter's log after WAIT. Returns how long it took.
async fn wait_for<F, Fut>(adapter: &Adapter, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(()) => return start.elapsed(),
            Err(e) => e,
        };
        if start.elapsed() > WAIT {
            panic!(
                "timed out waiting for {what}: {last}\n--- syva file log ---\n{}",
                adapter.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn zones(c: &CoreClient) -> BTreeMap<String, pb::Zone> {
    c.api()
        .list_zones(pb::ListZonesRequest {})
        .await
        .unwrap()
        .into_inner()
        .zones
        .into_iter()
        .map(|z| (z.name.clone(), z))
        .collect()
}

async fn containers(c: &CoreClient) -> BTreeMap<String, pb::Container> {
    c.api()
        .list_containers(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers
        .into_iter()
        .map(|c| (c.container_id.clone(), c))
        .collect()
}

/// Problems `syva file` reported to core, as "object: message" lines.
async fn problems(c: &CoreClient) -> Option<Vec<String>> {
    let s = c
        .api()
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    s.adapters.iter().find(|a| a.source == "file").map(|a| {
        a.problems
            .iter()
            .map(|p| format!("{}: {}", p.object, p.message))
            .collect()
    })
}

fn paths(z: &pb::Zone) -> Vec<String> {
    z.policy
        .as_ref()
        .map(|p| p.host_paths.iter().map(|h| h.path.clone()).collect())
        .unwrap_or_default()
}

/// A protected file under the test's directory.
fn data(core: &Core, name: &str) -> String {
    let p = core.dir.path().join("srv").join(name);
    common::write(&p, name);
    p.to_str().unwrap().to_owned()
}

/// Replace a file the way editors do on save: write a temp file, rename it over.
fn atomic_write(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn policy_dir(core: &Core) -> PathBuf {
    let d = core.dir.path().join("policies");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn check_prints_every_error_with_its_position_and_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    common::write(&dir.path().join("ok.toml"), "mode = \"audit\"\n");
    common::write(
        &dir.path().join("bad.toml"),
        "name = \"bad\"\nallowed_zones = [\"ok\", \"../x\"]\n[membership]\ncgroups = [\"**\"]\n",
    );
    common::write(&dir.path().join("broken.toml"), "zone_type = \n");
    let out = Command::new(SYVA)
        .args(["file", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let bad = dir.path().join("bad.toml");
    assert!(
        stdout.contains(&format!("{}:2:24: allowed_zones[1]", bad.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}:4:12: membership.cgroups[0]", bad.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}:1:", dir.path().join("broken.toml").display())),
        "{stdout}"
    );
    assert!(stdout.contains("ok.toml: ok (zone ok"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 of 3 policy file(s) are invalid"),
        "{out:?}"
    );

    // Only the valid file: exit 0. A single file can be checked too.
    std::fs::remove_file(dir.path().join("bad.toml")).unwrap();
    std::fs::remove_file(dir.path().join("broken.toml")).unwrap();
    let out = Command::new(SYVA)
        .args(["file", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(SYVA)
        .args(["file", "check"])
        .arg(dir.path().join("ok.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Duplicated zone names are errors too.
    common::write(&dir.path().join("other.toml"), "name = \"ok\"\n");
    let out = Command::new(SYVA)
        .args(["file", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("defined by several files"));
}

#[tokio::test]
async fn startup_reconciles_exactly_the_directory_and_leaves_other_sources_alone() {
    let core = Core::start();
    let c = core.client().await;
    let (old, old_web, new, api_path) = (
        data(&core, "old"),
        data(&core, "old-web"),
        data(&core, "new"),
        data(&core, "api"),
    );
    let mut api = c.api();
    let register = |name: &str, path: &str, source: &str| pb::RegisterZoneRequest {
        name: name.into(),
        policy: Some(pb::ZonePolicy {
            host_paths: vec![pb::HostPath {
                path: path.into(),
                recursive: false,
            }],
            ..Default::default()
        }),
        source: source.into(),
    };
    // Left over from an earlier run: "stale" has no file any more, "web" has
    // an old policy. "other" belongs to the REST API.
    api.register_zone(register("stale", &old, "file"))
        .await
        .unwrap();
    api.register_zone(register("web", &old_web, "file"))
        .await
        .unwrap();
    api.register_zone(register("other", &api_path, "api"))
        .await
        .unwrap();

    let dir = policy_dir(&core);
    common::write(
        &dir.join("web.toml"),
        &format!(
            "host_paths = [{{ path = \"{new}\", recursive = false }}]\nallowed_zones = [\"db\"]\n"
        ),
    );
    common::write(&dir.join("db.toml"), "zone_type = \"isolated\"\n");
    // A file for a zone another source owns: reported, never touched.
    common::write(&dir.join("other.toml"), "mode = \"audit\"\n");
    let adapter = Adapter::start(&core, &dir, &[]);

    wait_for(&adapter, "the directory's zones", || async {
        let z = zones(&c).await;
        let names: Vec<&String> = z.keys().collect();
        if names != ["db", "other", "web"] {
            return Err(format!("zones {names:?}"));
        }
        if paths(&z["web"]) != [new.clone()] {
            return Err(format!("web has {:?}", paths(&z["web"])));
        }
        Ok(())
    })
    .await;
    let z = zones(&c).await;
    assert_eq!(z["web"].source, "file");
    assert_eq!(
        z["web"].policy.as_ref().unwrap().allowed_zones,
        ["db".to_string()]
    );
    assert_eq!(
        z["db"].policy.as_ref().unwrap().zone_type,
        pb::ZoneType::Isolated as i32
    );
    // Untouched: still the api's, with its policy.
    assert_eq!(z["other"].source, "api");
    assert_eq!(paths(&z["other"]), [api_path]);
    assert_eq!(
        z["other"].policy.as_ref().unwrap().mode,
        pb::EnforcementMode::Enforce as i32
    );
    wait_for(
        &adapter,
        "the ownership problem in core's status",
        || async {
            let p = problems(&c).await.unwrap_or_default();
            match p.iter().find(|l| l.contains("other.toml:1:1")) {
                Some(l) if l.contains("managed by source \"api\"") => Ok(()),
                _ => Err(format!("{p:?}")),
            }
        },
    )
    .await;

    let status = adapter.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(
        zones(&c).await.len(),
        3,
        "stopping the adapter leaves the zones in force"
    );
}

#[tokio::test]
async fn watch_applies_new_changed_and_removed_files() {
    let core = Core::start();
    let c = core.client().await;
    let (a, b) = (data(&core, "a"), data(&core, "b"));
    let dir = policy_dir(&core);
    let adapter = Adapter::start(&core, &dir, &[]);
    wait_for(&adapter, "the first sync report", || async {
        problems(&c)
            .await
            .map(|_| ())
            .ok_or_else(|| "no report".into())
    })
    .await;

    // Add (a plain write).
    let file = dir.join("web.toml");
    common::write(&file, &format!("host_paths = [{{ path = \"{a}\" }}]\n"));
    let added = wait_for(&adapter, "web to appear", || async {
        match zones(&c).await.get("web") {
            Some(z) if paths(z) == [a.clone()] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Modify (atomic save: temp file renamed over).
    atomic_write(
        &file,
        &format!("host_paths = [{{ path = \"{b}\" }}]\nmode = \"audit\"\n"),
    );
    let modified = wait_for(&adapter, "web to change", || async {
        match zones(&c).await.get("web") {
            Some(z) if paths(z) == [b.clone()] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Remove.
    std::fs::remove_file(&file).unwrap();
    let removed = wait_for(&adapter, "web to go", || async {
        match zones(&c).await.get("web") {
            None => Ok(()),
            Some(z) => Err(format!("{z:?}")),
        }
    })
    .await;
    println!("applied: add {added:?}, modify {modified:?}, remove {removed:?}");
}

#[tokio::test]
async fn an_invalid_file_keeps_its_zone_in_force_and_is_reported() {
    let core = Core::start();
    let c = core.client().await;
    let (a, b, d) = (data(&core, "a"), data(&core, "b"), data(&core, "d"));
    let dir = policy_dir(&core);
    let web = dir.join("web.toml");
    let db = dir.join("db.toml");
    common::write(&web, &format!("host_paths = [{{ path = \"{a}\" }}]\n"));
    common::write(&db, "mode = \"audit\"\n");
    core.cgroup("web.slice/app.scope");
    common::write(
        &web,
        &format!(
            "host_paths = [{{ path = \"{a}\" }}]\n[membership]\ncgroups = [\"web.slice/*\"]\n"
        ),
    );
    let adapter = Adapter::start(&core, &dir, &[]);
    wait_for(&adapter, "web with its member", || async {
        let z = zones(&c).await;
        match z.get("web") {
            Some(w) if w.member_count == 1 && z.contains_key("db") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Break web.toml: a typo in a key and a relative path.
    atomic_write(
        &web,
        &format!("host_paths = [{{ path = \"{b}\" }}]\nallow_ptrac = true\n"),
    );
    let line = wait_for(&adapter, "the problem in core's status", || async {
        let p = problems(&c).await.unwrap_or_default();
        let want = format!("{}:2:1: unknown field `allow_ptrac`", web.display());
        if p.iter().any(|l| l.starts_with(&want)) {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;
    println!("invalid file reported after {line:?}");
    // The last valid version stays: same path, member still attached.
    let z = zones(&c).await;
    assert_eq!(paths(&z["web"]), std::slice::from_ref(&a));
    assert_eq!(z["web"].member_count, 1);
    assert_eq!(containers(&c).await.len(), 1);
    let status = c
        .api()
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.health, pb::Health::Degraded as i32, "{status:?}");

    // Other zones are unaffected and still follow their files.
    atomic_write(&db, &format!("host_paths = [{{ path = \"{d}\" }}]\n"));
    wait_for(&adapter, "db to change while web is broken", || async {
        match zones(&c).await.get("db") {
            Some(z) if paths(z) == [d.clone()] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // A new cgroup still joins web under its last valid rules.
    core.cgroup("web.slice/late.scope");
    wait_for(&adapter, "the late cgroup to join web", || async {
        let n = containers(&c).await.len();
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} containers"))
        }
    })
    .await;

    // Fix it: the new version applies and the problem clears.
    atomic_write(
        &web,
        &format!("host_paths = [{{ path = \"{b}\" }}]\nallow_ptrace = true\n"),
    );
    wait_for(&adapter, "the fixed version", || async {
        let z = zones(&c).await;
        let p = problems(&c).await.unwrap_or_default();
        match z.get("web") {
            Some(w) if paths(w) == [b.clone()] && p.is_empty() => Ok(()),
            other => Err(format!("{other:?} problems {p:?}")),
        }
    })
    .await;
    // Its membership rules are gone with the new version: members detached.
    wait_for(&adapter, "members to be detached", || async {
        let n = containers(&c).await.len();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} containers"))
        }
    })
    .await;
}

#[tokio::test]
async fn a_zone_core_refuses_is_reported_at_the_field_and_keeps_its_previous_version() {
    let core = Core::start();
    let c = core.client().await;
    let (a, missing) = (
        data(&core, "a"),
        core.dir.path().join("srv/missing").display().to_string(),
    );
    let dir = policy_dir(&core);
    let web = dir.join("web.toml");
    common::write(&web, &format!("host_paths = [{{ path = \"{a}\" }}]\n"));
    let adapter = Adapter::start(&core, &dir, &[]);
    wait_for(&adapter, "web", || async {
        zones(&c)
            .await
            .get("web")
            .map(|_| ())
            .ok_or_else(|| "no web".into())
    })
    .await;
    // Valid TOML, but the second path does not exist: core refuses it.
    atomic_write(
        &web,
        &format!("host_paths = [\n  {{ path = \"{a}\" }},\n  {{ path = \"{missing}\" }},\n]\n"),
    );
    wait_for(&adapter, "core's refusal at line 3", || async {
        let p = problems(&c).await.unwrap_or_default();
        let want = format!("{}:3:12: core refused the zone", web.display());
        if p.iter()
            .any(|l| l.starts_with(&want) && l.contains("previous version stays"))
        {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;
    assert_eq!(paths(&zones(&c).await["web"]), [a]);
}

#[tokio::test]
async fn waits_for_core_without_spinning_and_reapplies_after_a_restart() {
    let mut core = Core::start();
    core.stop(); // a stale socket file, nobody listening
    let dir = policy_dir(&core);
    let a = data(&core, "a");
    common::write(
        &dir.join("web.toml"),
        &format!("host_paths = [{{ path = \"{a}\" }}]\n[membership]\ncgroups = [\"web.slice\"]\n"),
    );
    core.cgroup("web.slice");
    let mut adapter = Adapter::start(&core, &dir, &[]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        adapter.child.try_wait().unwrap().is_none(),
        "syva file exited while core was down:\n{}",
        adapter.log_text()
    );
    let log = adapter.log_text();
    let attempts = log.matches("syva core still unavailable").count() + 1;
    // Backoff 100ms, doubling, capped: about 5 attempts in 3s, not hundreds.
    assert!(
        (2..=10).contains(&attempts),
        "{attempts} attempts in 3s:\n{log}"
    );
    assert_eq!(log.matches("waiting for syva core").count(), 1, "{log}");

    core.restart();
    let c = core.client().await;
    wait_for(&adapter, "the state once core is up", || async {
        let z = zones(&c).await;
        match z.get("web") {
            Some(w) if w.member_count == 1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Core restarts: it lost everything; the adapter sees the new boot id.
    core.restart();
    let c = core.client().await;
    let took = wait_for(
        &adapter,
        "the state re-applied after a core restart",
        || async {
            let z = zones(&c).await;
            let n = containers(&c).await.len();
            match z.get("web") {
                Some(w) if w.member_count == 1 && n == 1 => Ok(()),
                other => Err(format!("{other:?}, {n} containers")),
            }
        },
    )
    .await;
    println!("state re-applied {took:?} after core restarted");
    assert!(adapter.log_text().contains("syva core restarted"));
}

#[tokio::test]
async fn cgroups_join_and_leave_zones_as_they_come_and_go() {
    let core = Core::start();
    let c = core.client().await;
    let dir = policy_dir(&core);
    common::write(
        &dir.join("web.toml"),
        "[membership]\ncgroups = [\"system.slice/web-*.scope\", \"web.slice\"]\n",
    );
    common::write(
        &dir.join("db.toml"),
        &format!("[membership]\ncontainer_ids = [\"{}\"]\n", &ID[..12]),
    );
    // Existed before the adapter started.
    core.cgroup("system.slice/web-1.scope");
    core.cgroup("system.slice/other.scope");
    let adapter = Adapter::start(&core, &dir, &[]);
    wait_for(&adapter, "the existing cgroup", || async {
        let cs = containers(&c).await;
        match cs.get("/system.slice/web-1.scope") {
            Some(m) if m.zone == "web" && m.source == "file" && m.generation > 0 => Ok(()),
            _ => Err(format!("{:?}", cs.keys().collect::<Vec<_>>())),
        }
    })
    .await;

    // New cgroups: one by pattern, one by container id (runtime naming).
    let docker = format!("system.slice/docker-{ID}.scope");
    let id = core.cgroup(&docker);
    core.cgroup("system.slice/web-2.scope");
    wait_for(&adapter, "the new cgroups", || async {
        let cs = containers(&c).await;
        let by_id = cs.get(ID).filter(|m| m.zone == "db" && m.cgroup_id == id);
        let web2 = cs
            .get("/system.slice/web-2.scope")
            .filter(|m| m.zone == "web");
        if by_id.is_some() && web2.is_some() {
            Ok(())
        } else {
            Err(format!("{:?}", cs.keys().collect::<Vec<_>>()))
        }
    })
    .await;
    // mkdir -p of a matching parent and children at once: only the parent is
    // attached; core covers what lies inside it.
    core.cgroup("web.slice/a/b");
    wait_for(&adapter, "web.slice", || async {
        let cs = containers(&c).await;
        match cs.get("/web.slice") {
            Some(_) if cs.len() == 4 => Ok(()),
            _ => Err(format!("{:?}", cs.keys().collect::<Vec<_>>())),
        }
    })
    .await;

    // Generations grow: the newest attach has the highest.
    let cs = containers(&c).await;
    assert!(cs["/web.slice"].generation > cs["/system.slice/web-1.scope"].generation);

    // Removed cgroups are detached.
    std::fs::remove_dir(core.cgroup_root.join(&docker)).unwrap();
    std::fs::remove_dir(core.cgroup_root.join("system.slice/web-2.scope")).unwrap();
    wait_for(&adapter, "removed cgroups to be detached", || async {
        let cs = containers(&c).await;
        if cs.len() == 2 && !cs.contains_key(ID) {
            Ok(())
        } else {
            Err(format!("{:?}", cs.keys().collect::<Vec<_>>()))
        }
    })
    .await;
    assert_eq!(zones(&c).await["db"].member_count, 0);

    // A rule removed from the file: its cgroups leave the zone.
    atomic_write(
        &dir.join("web.toml"),
        "[membership]\ncgroups = [\"system.slice/web-*.scope\"]\n",
    );
    wait_for(&adapter, "web.slice to be detached", || async {
        let cs = containers(&c).await;
        if cs.len() == 1 && cs.contains_key("/system.slice/web-1.scope") {
            Ok(())
        } else {
            Err(format!("{:?}", cs.keys().collect::<Vec<_>>()))
        }
    })
    .await;

    // The zone's file removed: members detached, zone removed.
    std::fs::remove_file(dir.join("web.toml")).unwrap();
    wait_for(&adapter, "web to go with its members", || async {
        let z = zones(&c).await;
        let n = containers(&c).await.len();
        if !z.contains_key("web") && n == 0 {
            Ok(())
        } else {
            Err(format!(
                "{:?}, {n} containers",
                z.keys().collect::<Vec<_>>()
            ))
        }
    })
    .await;
}

#[tokio::test]
async fn overlapping_rules_are_a_reported_conflict() {
    let core = Core::start();
    let c = core.client().await;
    let dir = policy_dir(&core);
    common::write(
        &dir.join("a.toml"),
        "[membership]\ncgroups = [\"x.slice/*\"]\n",
    );
    common::write(
        &dir.join("b.toml"),
        "[membership]\ncgroups = [\"x.slice/y*\"]\n",
    );
    core.cgroup("x.slice/yes");
    core.cgroup("x.slice/no");
    let adapter = Adapter::start(&core, &dir, &[]);
    wait_for(&adapter, "the conflict report", || async {
        let p = problems(&c).await.unwrap_or_default();
        if p.iter().any(|l| {
            l.starts_with("cgroup /x.slice/yes: matches the membership rules of zones a, b")
        }) {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;
    let cs = containers(&c).await;
    assert_eq!(cs.keys().collect::<Vec<_>>(), ["/x.slice/no"]);
}

#[tokio::test]
async fn metrics_are_served_when_asked_for() {
    let core = Core::start();
    let c = core.client().await;
    let dir = policy_dir(&core);
    common::write(&dir.join("ok.toml"), "mode = \"audit\"\n");
    common::write(&dir.join("bad.toml"), "mode = 1\n");
    let addr = common::free_port();
    let adapter = Adapter::start(&core, &dir, &["--metrics-addr", &addr.to_string()]);
    wait_for(&adapter, "the first sync", || async {
        match problems(&c).await {
            Some(p) if p.len() == 1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (status, body) = common::http_get(addr, "/metrics");
    assert_eq!(status, 200);
    for want in [
        "syva_file_zones 1",
        "syva_file_policy_files{state=\"valid\"} 1",
        "syva_file_policy_files{state=\"invalid\"} 1",
        "syva_file_problems 1",
        "syva_file_syncs_total{result=\"ok\"}",
    ] {
        assert!(body.contains(want), "{want} missing from:\n{body}");
    }
}

#[test]
fn bad_flags_fail_at_start_with_the_flag_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(SYVA)
        .args(["file", "--policy-dir"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--policy-dir"));
    let out = Command::new(SYVA)
        .args(["file", "--resync-interval", "10ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = Command::new(SYVA)
        .args(["file", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--policy-dir",
        "--core-socket",
        "--cgroup-root",
        "--resync-interval",
        "--debounce",
        "--metrics-addr",
        "--instance",
        "check",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[tokio::test]
async fn a_vanished_policy_directory_removes_nothing_and_a_new_one_is_watched() {
    let core = Core::start();
    let c = core.client().await;
    let dir = policy_dir(&core);
    common::write(&dir.join("web.toml"), "mode = \"audit\"\n");
    let adapter = Adapter::start(&core, &dir, &["--resync-interval", "1s"]);
    wait_for(&adapter, "web", || async {
        zones(&c)
            .await
            .get("web")
            .map(|_| ())
            .ok_or_else(|| "no web".into())
    })
    .await;

    // Unmounted, deleted by mistake: nothing is concluded from it.
    std::fs::remove_dir_all(&dir).unwrap();
    wait_for(
        &adapter,
        "the unreadable directory to be reported",
        || async {
            let p = problems(&c).await.unwrap_or_default();
            if p.iter()
                .any(|l| l.contains("cannot read the policy directory"))
            {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        },
    )
    .await;
    assert!(zones(&c).await.contains_key("web"), "web was removed");

    // A new directory in its place: read at the next resync, then watched.
    std::fs::create_dir(&dir).unwrap();
    common::write(&dir.join("db.toml"), "mode = \"audit\"\n");
    wait_for(&adapter, "the new directory's zones", || async {
        let z = zones(&c).await;
        let names: Vec<&String> = z.keys().collect();
        if names == ["db"] {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await;
    common::write(&dir.join("api.toml"), "mode = \"audit\"\n");
    wait_for(&adapter, "a change in the new directory", || async {
        let z = zones(&c).await;
        if z.contains_key("api") {
            Ok(())
        } else {
            Err(format!("{:?}", z.keys()))
        }
    })
    .await;
    assert!(
        adapter
            .log_text()
            .contains("the policy directory was replaced")
    );
}

#[test]
fn the_shipped_example_policies_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/policies");
    let out = Command::new(SYVA)
        .args(["file", "check"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{out:?}");
    assert!(stdout.contains("4 policy file(s) valid"), "{stdout}");
}
