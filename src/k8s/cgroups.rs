//! Where a pod's cgroup is on this node (cgroup v2): the pod-level
//! directory that kubelet creates, for the systemd and cgroupfs cgroup
//! drivers, and a container's directory below it for containerd, CRI-O and
//! Docker names. Takes the cgroup root as a parameter so tests use a
//! temporary tree.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How deep below the cgroup root pod parents (`kubepods...`) are looked
/// for: nested setups (kind, k3d) put them a few levels down.
const SCAN_DEPTH: usize = 5;

/// A failed lookup rescans the tree for pod parents at most this often.
const RESCAN_INTERVAL: Duration = Duration::from_secs(10);

/// The kubelet cgroup driver a pod directory was named by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Systemd,
    Cgroupfs,
}

/// A pod's cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// Relative to the cgroup root, with a leading '/': what
    /// AttachContainer's `cgroup_path` takes.
    pub path: String,
    pub dir: PathBuf,
    pub driver: Driver,
}

impl PodCgroup {
    /// The pod cgroup at `path` (relative to `root`, as core reports it).
    pub fn at(root: &Path, path: &str) -> Self {
        PodCgroup {
            path: path.to_owned(),
            dir: root.join(path.trim_start_matches('/')),
            driver: if path.ends_with(".slice") {
                Driver::Systemd
            } else {
                Driver::Cgroupfs
            },
        }
    }
}

/// Resolves pods to cgroups below one cgroup v2 root.
#[derive(Debug)]
pub struct PodCgroups {
    root: PathBuf,
    configured: Vec<PathBuf>,
    scan: Mutex<Scan>,
}

#[derive(Debug)]
struct Scan {
    parents: BTreeSet<PathBuf>,
    at: Option<Instant>,
}

impl PodCgroups {
    /// `extra_parents`: directories (relative to the root) that hold pod
    /// cgroups, in addition to the ones found by scanning.
    pub fn new(root: impl Into<PathBuf>, extra_parents: &[PathBuf]) -> Self {
        Self {
            root: root.into(),
            configured: extra_parents
                .iter()
                .map(|p| p.strip_prefix("/").unwrap_or(p).to_path_buf())
                .collect(),
            scan: Mutex::new(Scan {
                parents: BTreeSet::new(),
                at: None,
            }),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The pod-level cgroup of the pod with this UID, if it exists now.
    pub fn find_pod(&self, uid: &str) -> Option<PodCgroup> {
        if uid.is_empty() || uid.contains(['/', '\0']) || uid.contains("..") {
            return None;
        }
        let mut scan = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        if scan.at.is_none() {
            self.rescan(&mut scan);
        }
        if let Some(found) = self.lookup(&scan.parents, uid) {
            return Some(found);
        }
        if scan.at.is_none_or(|t| t.elapsed() >= RESCAN_INTERVAL) {
            self.rescan(&mut scan);
            return self.lookup(&scan.parents, uid);
        }
        None
    }

    /// Forget the scanned parents: the next look-up scans again (a new
    /// directory appeared where parents live).
    pub fn invalidate(&self) {
        self.scan.lock().unwrap_or_else(|p| p.into_inner()).at = None;
    }

    /// Every directory that holds pod cgroups (absolute), rescanning when
    /// the last scan is old: what to watch for new pods.
    pub fn parents(&self) -> Vec<PathBuf> {
        let mut scan = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        if scan.at.is_none_or(|t| t.elapsed() >= RESCAN_INTERVAL) {
            self.rescan(&mut scan);
        }
        self.configured
            .iter()
            .chain(scan.parents.iter())
            .map(|p| self.root.join(p))
            .filter(|p| p.is_dir())
            .collect()
    }

    fn lookup(&self, scanned: &BTreeSet<PathBuf>, uid: &str) -> Option<PodCgroup> {
        self.configured
            .iter()
            .chain(scanned.iter())
            .find_map(|parent| self.pod_in(parent, uid))
    }

    /// The pod directory directly below `parent` under either naming.
    fn pod_in(&self, parent: &Path, uid: &str) -> Option<PodCgroup> {
        let parent_name = parent.file_name()?.to_str()?;
        let candidates = match parent_name.strip_suffix(".slice") {
            // systemd: kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice
            Some(stem) => vec![(
                format!("{stem}-pod{}.slice", uid.replace('-', "_")),
                Driver::Systemd,
            )],
            // cgroupfs: kubepods/burstable/pod<uid>
            None => vec![(format!("pod{uid}"), Driver::Cgroupfs)],
        };
        candidates.into_iter().find_map(|(name, driver)| {
            let rel = parent.join(name);
            let dir = self.root.join(&rel);
            dir.is_dir().then(|| PodCgroup {
                path: format!("/{}", rel.display()),
                dir,
                driver,
            })
        })
    }

    fn rescan(&self, scan: &mut Scan) {
        scan.parents.clear();
        scan_parents(&self.root, Path::new(""), 0, &mut scan.parents);
        scan.at = Some(Instant::now());
        tracing::debug!(root = %self.root.display(), parents = ?scan.parents, "pod cgroup parents");
    }
}

/// Is this directory name a pod's own cgroup (not a parent)?
pub fn is_pod_dir(name: &str) -> bool {
    (name.starts_with("pod") && !name.ends_with(".slice")) || name.contains("-pod")
}

/// Directories that can hold pod cgroups: the kubepods tree of either
/// driver, at any depth up to SCAN_DEPTH (kubelet's --cgroup-root may nest
/// it, e.g. kubelet.slice/kubelet-kubepods.slice).
fn scan_parents(root: &Path, rel: &Path, depth: usize, out: &mut BTreeSet<PathBuf>) {
    if depth >= SCAN_DEPTH {
        return;
    }
    // An unreadable directory holds no parent we could use: skip it.
    let Ok(entries) = fs::read_dir(root.join(rel)) else {
        return;
    };
    // An entry that cannot be read (removed meanwhile) is no parent.
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_pod_dir(name) {
            continue;
        }
        let child = rel.join(name);
        let in_kubepods = rel.components().any(|c| {
            c.as_os_str()
                .to_str()
                .is_some_and(|s| s == "kubepods" || s.ends_with("kubepods.slice"))
        });
        let is_parent = (name.contains("kubepods") && name.ends_with(".slice"))
            || name == "kubepods"
            || (in_kubepods && matches!(name, "burstable" | "besteffort"));
        if is_parent {
            out.insert(child.clone());
        }
        // Container scopes hold no pods below them; everything else may.
        if !name.ends_with(".scope") || depth < 2 {
            scan_parents(root, &child, depth + 1, out);
        }
    }
}

/// The runtime and bare id of a CRI container id ("containerd://abc").
pub fn split_container_id(id: &str) -> Option<(&str, &str)> {
    let (runtime, bare) = id.split_once("://")?;
    (!bare.is_empty() && !bare.contains(['/', '\0']) && !bare.contains(".."))
        .then_some((runtime, bare))
}

/// The cgroup of a container below its pod's cgroup, under the names
/// containerd, CRI-O and Docker (cri-dockerd) give it with either driver.
pub fn find_container(pod: &PodCgroup, container_id: &str) -> Option<PathBuf> {
    let (runtime, id) = split_container_id(container_id)?;
    let names: Vec<String> = match (runtime, pod.driver) {
        ("containerd", Driver::Systemd) => vec![format!("cri-containerd-{id}.scope")],
        ("cri-o", Driver::Systemd) => vec![format!("crio-{id}.scope")],
        ("docker", Driver::Systemd) => vec![format!("docker-{id}.scope")],
        ("cri-o", Driver::Cgroupfs) => vec![format!("crio-{id}"), id.to_owned()],
        (_, Driver::Cgroupfs) => vec![id.to_owned()],
        (_, Driver::Systemd) => vec![
            format!("cri-containerd-{id}.scope"),
            format!("crio-{id}.scope"),
            format!("docker-{id}.scope"),
        ],
    };
    names
        .into_iter()
        .map(|n| pod.dir.join(n))
        .find(|p| p.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b6c8a2e-2f4e-4c1a-9a43-5d1e2f3a4b5c";

    fn mk(root: &Path, rel: &str) {
        fs::create_dir_all(root.join(rel)).unwrap();
    }

    #[test]
    fn systemd_driver_all_qos_classes() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let u = UID.replace('-', "_");
        let cases = [
            format!("kubepods.slice/kubepods-pod{u}.slice"),
            format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice"),
            format!("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice"),
        ];
        for case in cases {
            let _ = fs::remove_dir_all(r.join("kubepods.slice"));
            mk(r, "kubepods.slice/kubepods-burstable.slice");
            mk(r, "kubepods.slice/kubepods-besteffort.slice");
            let cg = PodCgroups::new(r, &[]);
            assert_eq!(cg.find_pod(UID), None, "nothing before the pod dir exists");
            mk(r, &case);
            // A fresh resolver sees it at once; the cached one after its rescan
            // (the parents were already known: no rescan needed).
            let got = cg.find_pod(UID).expect(&case);
            assert_eq!(got.path, format!("/{case}"));
            assert_eq!(got.driver, Driver::Systemd);
        }
    }

    #[test]
    fn cgroupfs_driver_and_nested_roots() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        mk(r, &format!("kubepods/burstable/pod{UID}/abc"));
        let cg = PodCgroups::new(r, &[]);
        let got = cg.find_pod(UID).unwrap();
        assert_eq!(got.path, format!("/kubepods/burstable/pod{UID}"));
        assert_eq!(got.driver, Driver::Cgroupfs);

        // kind: kubelet --cgroup-root=/kubelet with the systemd driver.
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let u = UID.replace('-', "_");
        let rel = format!(
            "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{u}.slice"
        );
        mk(r, &rel);
        assert_eq!(
            PodCgroups::new(r, &[]).find_pod(UID).unwrap().path,
            format!("/{rel}")
        );

        // An explicitly configured parent that scanning would not find.
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        mk(r, &format!("custom/pods/pod{UID}"));
        assert_eq!(PodCgroups::new(r, &[]).find_pod(UID), None);
        let cg = PodCgroups::new(r, &[PathBuf::from("/custom/pods")]);
        assert_eq!(
            cg.find_pod(UID).unwrap().path,
            format!("/custom/pods/pod{UID}")
        );
    }

    #[test]
    fn parents_are_the_kubepods_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        mk(
            r,
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice/cri-containerd-1.scope",
        );
        mk(r, "kubepods.slice/kubepods-besteffort.slice");
        mk(r, "system.slice/containerd.service");
        let mut got = PodCgroups::new(r, &[]).parents();
        got.sort();
        assert_eq!(
            got,
            [
                r.join("kubepods.slice"),
                r.join("kubepods.slice/kubepods-besteffort.slice"),
                r.join("kubepods.slice/kubepods-burstable.slice"),
            ]
        );
    }

    #[test]
    fn hostile_uids_are_not_paths() {
        let tmp = tempfile::tempdir().unwrap();
        mk(tmp.path(), "kubepods/pod..");
        let cg = PodCgroups::new(tmp.path(), &[]);
        for uid in ["", "../x", "a/b", "."] {
            assert_eq!(cg.find_pod(uid), None, "{uid}");
        }
    }

    #[test]
    fn container_names_per_runtime() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let u = UID.replace('-', "_");
        let pod_rel = format!("kubepods.slice/kubepods-pod{u}.slice");
        mk(r, &format!("{pod_rel}/cri-containerd-aaa.scope"));
        mk(r, &format!("{pod_rel}/crio-bbb.scope"));
        mk(r, &format!("{pod_rel}/docker-ccc.scope"));
        let pod = PodCgroups::new(r, &[]).find_pod(UID).unwrap();
        assert!(find_container(&pod, "containerd://aaa").is_some());
        assert!(find_container(&pod, "cri-o://bbb").is_some());
        assert!(find_container(&pod, "docker://ccc").is_some());
        assert!(find_container(&pod, "containerd://zzz").is_none());
        assert!(find_container(&pod, "containerd://../x").is_none());
        assert!(find_container(&pod, "aaa").is_none());

        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let pod_rel = format!("kubepods/besteffort/pod{UID}");
        mk(r, &format!("{pod_rel}/ddd"));
        mk(r, &format!("{pod_rel}/crio-eee"));
        let pod = PodCgroups::new(r, &[]).find_pod(UID).unwrap();
        assert_eq!(pod.driver, Driver::Cgroupfs);
        assert!(find_container(&pod, "containerd://ddd").is_some());
        assert!(find_container(&pod, "docker://ddd").is_some());
        assert!(find_container(&pod, "cri-o://eee").is_some());
    }
}
