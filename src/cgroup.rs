//! The cgroup v2 hierarchy: where it is mounted, path <-> id, descendants.
//! Shared by `core` (attach by path, self-tests) and `file` (membership
//! rules); reads the filesystem only.
//! Every function takes the hierarchy root as a parameter (`CgroupFs`), so
//! tests run against a temporary directory.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::model::CgroupId;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup v2 hierarchy is mounted (looked in {mountinfo}); Syva needs cgroup v2")]
    NotMounted { mountinfo: PathBuf },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup path {0:?} must be relative to the cgroup v2 root and must not contain '..'")]
    BadPath(String),
    #[error("cgroup {path} does not exist")]
    NoSuchCgroup { path: PathBuf },
    #[error("no cgroup with id {0} exists")]
    NoSuchId(u64),
    #[error("cannot parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// A cgroup v2 hierarchy rooted at `root` (normally /sys/fs/cgroup).
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
}

impl CgroupFs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Find the cgroup2 mount in `/proc/self/mountinfo`. Never assume
    /// /sys/fs/cgroup: hybrid hosts mount v2 at /sys/fs/cgroup/unified.
    pub fn discover() -> Result<Self, CgroupError> {
        Self::discover_in(Path::new("/proc/self/mountinfo"))
    }

    pub fn discover_in(mountinfo: &Path) -> Result<Self, CgroupError> {
        let text = fs::read_to_string(mountinfo).map_err(|source| CgroupError::Io {
            path: mountinfo.to_path_buf(),
            source,
        })?;
        parse_cgroup2_mount(&text)
            .map(Self::new)
            .ok_or_else(|| CgroupError::NotMounted {
                mountinfo: mountinfo.to_path_buf(),
            })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute directory of a cgroup given relative to the root ("a/b",
    /// "/a/b" or the root-prefixed absolute path).
    pub fn dir(&self, cgroup_path: &str) -> Result<PathBuf, CgroupError> {
        let rel = Path::new(cgroup_path)
            .strip_prefix(&self.root)
            .unwrap_or(Path::new(cgroup_path));
        let mut out = self.root.clone();
        for c in rel.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(s) => out.push(s),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(CgroupError::BadPath(cgroup_path.to_owned()));
                }
            }
        }
        Ok(out)
    }

    /// Path of `dir` relative to the root, "/"-prefixed (as in /proc/PID/cgroup).
    pub fn relative(&self, dir: &Path) -> String {
        match dir.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => "/".to_owned(),
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => dir.display().to_string(),
        }
    }

    /// The id of the cgroup at `cgroup_path`: the inode number of its directory.
    pub fn resolve(&self, cgroup_path: &str) -> Result<(CgroupId, PathBuf), CgroupError> {
        let dir = self.dir(cgroup_path)?;
        let md = fs::metadata(&dir).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => CgroupError::NoSuchCgroup { path: dir.clone() },
            _ => CgroupError::Io {
                path: dir.clone(),
                source,
            },
        })?;
        if !md.is_dir() {
            return Err(CgroupError::NoSuchCgroup { path: dir });
        }
        Ok((CgroupId(md.ino()), dir))
    }

    /// Find the directory of a cgroup id (breadth-first; cgroup trees are a
    /// few thousand directories at most).
    pub fn find(&self, id: CgroupId) -> Result<PathBuf, CgroupError> {
        let mut queue = std::collections::VecDeque::from([self.root.clone()]);
        while let Some(dir) = queue.pop_front() {
            let md = match fs::metadata(&dir) {
                Ok(md) => md,
                // Removed while we walk: not the one we look for.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CgroupError::Io { path: dir, source }),
            };
            if md.ino() == id.0 {
                return Ok(dir);
            }
            queue.extend(subdirs(&dir)?);
        }
        Err(CgroupError::NoSuchId(id.0))
    }

    /// Every cgroup below `dir` (not `dir` itself), parents before children.
    pub fn descendants(&self, dir: &Path) -> Result<Vec<(CgroupId, PathBuf)>, CgroupError> {
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([dir.to_path_buf()]);
        while let Some(d) = queue.pop_front() {
            for child in subdirs(&d)? {
                match fs::metadata(&child) {
                    Ok(md) => {
                        out.push((CgroupId(md.ino()), child.clone()));
                        queue.push_back(child);
                    }
                    // Removed while we walk: nothing to cover.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(CgroupError::Io {
                            path: child,
                            source,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// The cgroup of a process, from `/proc/<pid>/cgroup`'s "0::" line.
    pub fn of_process(&self, proc_cgroup: &Path) -> Result<(CgroupId, PathBuf), CgroupError> {
        let text = fs::read_to_string(proc_cgroup).map_err(|source| CgroupError::Io {
            path: proc_cgroup.to_path_buf(),
            source,
        })?;
        let rel = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| CgroupError::Parse {
                path: proc_cgroup.to_path_buf(),
                reason: "no cgroup v2 (\"0::\") line".into(),
            })?;
        self.resolve(rel)
    }
}

/// Subdirectories of a cgroup directory (the child cgroups).
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        // file_type() does not follow symlinks: cgroupfs has none, and a
        // test tree must not lead us out of the root.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Mount point of the first cgroup2 filesystem in a mountinfo text.
fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "36 25 0:31 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw"
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        if fstype != "cgroup2" {
            return None;
        }
        let mount_point = left.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(char::from(v));
            i += 4;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_mountinfo() {
        let hybrid = "\
25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup ro - tmpfs tmpfs ro
27 26 0:25 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
28 26 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        assert_eq!(
            parse_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            parse_cgroup2_mount("25 30 0:23 / /sys rw - sysfs sysfs rw\n"),
            None
        );
        let escaped = "27 26 0:25 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_cgroup2_mount(escaped),
            Some(PathBuf::from("/mnt/my cg"))
        );
    }

    #[test]
    fn resolves_paths_and_ids_in_a_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let fs_ = CgroupFs::new(tmp.path());
        fs::create_dir_all(tmp.path().join("pod/c1/inner")).unwrap();
        fs::create_dir_all(tmp.path().join("pod/c2")).unwrap();
        fs::write(tmp.path().join("pod/cgroup.procs"), "").unwrap();

        let (id, dir) = fs_.resolve("pod/c1").unwrap();
        assert_eq!(dir, tmp.path().join("pod/c1"));
        assert_eq!(id.0, fs::metadata(&dir).unwrap().ino());
        assert_eq!(fs_.resolve("/pod/c1").unwrap().0, id);
        let abs = tmp.path().join("pod/c1");
        assert_eq!(fs_.resolve(abs.to_str().unwrap()).unwrap().0, id);
        assert_eq!(fs_.relative(&dir), "/pod/c1");
        assert_eq!(fs_.relative(tmp.path()), "/");

        assert!(matches!(
            fs_.resolve("pod/../x"),
            Err(CgroupError::BadPath(_))
        ));
        assert!(matches!(
            fs_.resolve("nope"),
            Err(CgroupError::NoSuchCgroup { .. })
        ));
        assert!(matches!(
            fs_.resolve("pod/cgroup.procs"),
            Err(CgroupError::NoSuchCgroup { .. })
        ));

        assert_eq!(fs_.find(id).unwrap(), dir);
        assert!(matches!(
            fs_.find(CgroupId(u64::MAX)),
            Err(CgroupError::NoSuchId(_))
        ));

        let (pod, pod_dir) = fs_.resolve("pod").unwrap();
        let desc: Vec<_> = fs_
            .descendants(&pod_dir)
            .unwrap()
            .into_iter()
            .map(|(_, p)| fs_.relative(&p))
            .collect();
        assert_eq!(desc, ["/pod/c1", "/pod/c2", "/pod/c1/inner"]);
        assert_ne!(pod, id);
    }

    #[test]
    fn process_cgroup_from_proc_file() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("cg/a")).unwrap();
        let proc_file = tmp.path().join("cgroup");
        fs::write(&proc_file, "12:cpu:/x\n0::/cg/a\n").unwrap();
        let fs_ = CgroupFs::new(tmp.path());
        let (id, dir) = fs_.of_process(&proc_file).unwrap();
        assert_eq!(dir, tmp.path().join("cg/a"));
        assert_eq!(id.0, fs::metadata(dir).unwrap().ino());
        fs::write(&proc_file, "12:cpu:/x\n").unwrap();
        assert!(matches!(
            fs_.of_process(&proc_file),
            Err(CgroupError::Parse { .. })
        ));
    }
}
