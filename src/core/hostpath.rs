//! Walk protected host paths into (dev, ino) file keys.
//!
//! Symlinks are never followed inside a tree (the link itself is owned, not
//! its target); the registered path itself is resolved once, so registering
//! a symlink protects what it points to. Keys use the kernel's device
//! encoding (see `FileKey::from_stat`). On btrfs subvolumes and some overlayfs
//! setups `stat()` reports a device that is not the superblock's `s_dev`:
//! such files are registered but cannot match in the kernel (documented in
//! the README's limitations).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::model::{FileKey, HostPath};

use super::dataplane::file_flags;

/// One inode to protect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedFile {
    pub key: FileKey,
    pub flags: u32,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("host path {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "host paths hold more than {capacity} files and directories, the capacity of the \
         syva_files map (raise --max-protected-files)"
    )]
    TooMany { capacity: u64 },
}

/// Walk every path; `limit` bounds the total so a huge tree fails early with
/// a clear error instead of exhausting memory. Entries are deduplicated by
/// key (hard links, overlapping paths): the first flags win, except that
/// INHERIT is kept if any path asks for it.
pub fn walk(paths: &[HostPath], limit: u64) -> Result<Vec<WalkedFile>, WalkError> {
    let mut out: Vec<WalkedFile> = Vec::new();
    let mut index: HashMap<FileKey, usize> = HashMap::new();
    let mut push = |f: WalkedFile, out: &mut Vec<WalkedFile>| -> Result<(), WalkError> {
        if let Some(&i) = index.get(&f.key) {
            out[i].flags |= f.flags & file_flags::INHERIT;
            if f.flags & file_flags::DERIVED == 0 {
                out[i].flags &= !file_flags::DERIVED;
            }
            return Ok(());
        }
        if out.len() as u64 >= limit {
            return Err(WalkError::TooMany { capacity: limit });
        }
        index.insert(f.key, out.len());
        out.push(f);
        Ok(())
    };
    for hp in paths {
        let root = Path::new(&hp.path);
        let root = root.canonicalize().map_err(|source| WalkError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        if !hp.recursive {
            let md = stat(&root)?;
            push(
                WalkedFile {
                    key: FileKey::from_stat(md.dev(), md.ino()),
                    flags: 0,
                    path: root,
                },
                &mut out,
            )?;
            continue;
        }
        for entry in walkdir::WalkDir::new(&root).follow_links(false) {
            let entry = entry.map_err(|e| {
                let path = e.path().map_or_else(|| root.clone(), Path::to_path_buf);
                WalkError::Io {
                    path,
                    source: e
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other("walk loop")),
                }
            })?;
            let md = entry.metadata().map_err(|e| WalkError::Io {
                path: entry.path().to_path_buf(),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("metadata")),
            })?;
            let mut flags = 0;
            if md.is_dir() {
                flags |= file_flags::INHERIT;
            }
            if entry.depth() > 0 {
                flags |= file_flags::DERIVED;
            }
            push(
                WalkedFile {
                    key: FileKey::from_stat(md.dev(), md.ino()),
                    flags,
                    path: entry.into_path(),
                },
                &mut out,
            )?;
        }
    }
    Ok(out)
}

fn stat(p: &Path) -> Result<std::fs::Metadata, WalkError> {
    std::fs::symlink_metadata(p).map_err(|source| WalkError::Io {
        path: p.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn hp(p: &Path, recursive: bool) -> HostPath {
        HostPath {
            path: p.to_str().unwrap().to_owned(),
            recursive,
        }
    }

    #[test]
    fn recursive_walk_flags_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("sub/b.txt"), "b").unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        fs::hard_link(root.join("a.txt"), root.join("sub/a-again")).unwrap();

        let files = walk(&[hp(&root, true)], 1000).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        // root, a.txt, link (the symlink itself), sub, sub/b.txt; the hard
        // link is the same inode as a.txt; nothing from `outside`.
        assert_eq!(files.len(), 5, "{names:?}");
        assert!(!names.iter().any(|n| n.contains("secret")));
        let root_entry = &files[0];
        assert_eq!(root_entry.flags, file_flags::INHERIT);
        let sub = files.iter().find(|f| f.path.ends_with("sub")).unwrap();
        assert_eq!(sub.flags, file_flags::INHERIT | file_flags::DERIVED);
        let md = fs::metadata(root.join("a.txt")).unwrap();
        let key = FileKey::from_stat(md.dev(), md.ino());
        let a = files.iter().find(|f| f.key == key).unwrap();
        assert_eq!(a.flags, file_flags::DERIVED);
    }

    #[test]
    fn non_recursive_is_just_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("x"), "x").unwrap();
        let files = walk(&[hp(tmp.path(), false)], 10).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].flags, 0);
    }

    #[test]
    fn limit_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..10 {
            fs::write(tmp.path().join(i.to_string()), "").unwrap();
        }
        let err = walk(&[hp(tmp.path(), true)], 5).unwrap_err();
        assert!(err.to_string().contains("--max-protected-files"), "{err}");
        assert!(walk(&[hp(tmp.path(), true)], 11).is_ok());
    }

    #[test]
    fn missing_path_names_it() {
        let err = walk(&[hp(Path::new("/nonexistent/syva"), true)], 10).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/syva"), "{err}");
    }
}
