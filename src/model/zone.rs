//! Zones: validated names, ids, the policy a zone carries, and the kernel
//! identities (cgroup ids, (dev, ino) file keys) that Syva maps to zones.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted zone name, in bytes.
pub const MAX_ZONE_NAME_LEN: usize = 63;

/// A zone name: 1..=63 bytes of `[A-Za-z0-9._-]`, no `/`, `\`, `..`, and no
/// empty or dot-only segment between dots (so it is safe in paths, labels
/// and metric values).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ZoneName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneNameError {
    #[error("must not be empty")]
    Empty,
    #[error("is {0} bytes long, the limit is {MAX_ZONE_NAME_LEN}")]
    TooLong(usize),
    #[error("must not contain {0:?}")]
    ForbiddenChar(char),
    #[error("must not contain \"..\"")]
    DotDot,
    #[error("must not start or end with '.' or have an empty segment between dots")]
    EmptySegment,
}

impl ZoneName {
    pub fn new(name: impl Into<String>) -> Result<Self, ZoneNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(ZoneNameError::Empty);
        }
        if name.len() > MAX_ZONE_NAME_LEN {
            return Err(ZoneNameError::TooLong(name.len()));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(ZoneNameError::ForbiddenChar(c));
        }
        if name.contains("..") {
            return Err(ZoneNameError::DotDot);
        }
        if name.split('.').any(str::is_empty) {
            return Err(ZoneNameError::EmptySegment);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ZoneName {
    type Error = ZoneNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ZoneName> for String {
    fn from(value: ZoneName) -> Self {
        value.0
    }
}

impl fmt::Display for ZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Kernel-side zone id: 1..=max_zones; 0 is the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ZoneId(pub u32);

impl ZoneId {
    pub const HOST: ZoneId = ZoneId(0);
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A cgroup v2 id: the inode number of the cgroup's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CgroupId(pub u64);

impl CgroupId {
    /// The root cgroup; attaching it would put the whole host in a zone.
    pub const ROOT: CgroupId = CgroupId(1);
}

impl fmt::Display for CgroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A file as the kernel identifies it: `sb->s_dev` (MKDEV encoding:
/// major << 20 | minor) and the inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    /// Key from `stat()` results. `st_dev` uses the userspace encoding
    /// (`new_encode_dev`), which differs from the kernel's `s_dev` as soon as
    /// the major is non-zero or the minor is above 255: convert through
    /// major/minor.
    pub fn from_stat(st_dev: u64, st_ino: u64) -> Self {
        let major = ((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & !0xfff);
        let minor = (st_dev & 0xff) | ((st_dev >> 12) & !0xff);
        Self {
            dev: (major << 20) | (minor & 0xf_ffff),
            ino: st_ino,
        }
    }
}

impl fmt::Display for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.dev >> 20, self.dev & 0xf_ffff, self.ino)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneType {
    /// Cross-zone access is denied unless the pair is allowed.
    #[default]
    Standard,
    /// May act on every other zone (node agents); others may not act on it.
    Privileged,
    /// Allowed pairs do not apply: nothing crosses in or out.
    Isolated,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnforcementMode {
    #[default]
    Enforce,
    /// Would-deny decisions are allowed and reported.
    Audit,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostPath {
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
}

impl HostPath {
    /// An absolute, normalized path (no `.`/`..` components, no empty
    /// segments): what the zone owns must be unambiguous.
    pub fn validate(&self) -> Result<(), String> {
        validate_abs_path(&self.path)
    }
}

/// An absolute, normalized path (no `.`/`..`, `//` or trailing `/`).
pub fn validate_abs_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if !path.starts_with('/') {
        return Err(format!("{path:?} is not an absolute path"));
    }
    if path.contains('\0') {
        return Err("must not contain NUL".into());
    }
    if path != "/"
        && path[1..]
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!(
            "{path:?} is not normalized (no '.', '..', '//' or trailing '/')"
        ));
    }
    Ok(())
}

/// What a zone is allowed to do; the same content for every adapter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZonePolicy {
    #[serde(default)]
    pub zone_type: ZoneType,
    #[serde(default)]
    pub mode: EnforcementMode,
    #[serde(default)]
    pub host_paths: Vec<HostPath>,
    #[serde(default)]
    pub allowed_zones: Vec<ZoneName>,
    #[serde(default)]
    pub allow_ptrace: bool,
    /// Host Unix socket files the zone may connect or send to.
    #[serde(default)]
    pub allowed_host_sockets: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names() {
        for ok in ["a", "web", "team-a.prod", "A_b-9", &"x".repeat(63)] {
            assert!(ZoneName::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(ZoneName::new(""), Err(ZoneNameError::Empty));
        assert_eq!(
            ZoneName::new("x".repeat(64)),
            Err(ZoneNameError::TooLong(64))
        );
        assert_eq!(ZoneName::new("a/b"), Err(ZoneNameError::ForbiddenChar('/')));
        assert_eq!(
            ZoneName::new("a\\b"),
            Err(ZoneNameError::ForbiddenChar('\\'))
        );
        assert_eq!(ZoneName::new("a b"), Err(ZoneNameError::ForbiddenChar(' ')));
        assert_eq!(ZoneName::new(".."), Err(ZoneNameError::DotDot));
        assert_eq!(ZoneName::new("a..b"), Err(ZoneNameError::DotDot));
        assert_eq!(ZoneName::new("."), Err(ZoneNameError::EmptySegment));
        assert_eq!(ZoneName::new(".a"), Err(ZoneNameError::EmptySegment));
        assert_eq!(ZoneName::new("a."), Err(ZoneNameError::EmptySegment));
    }

    #[test]
    fn zone_name_serde_validates() {
        let ok: ZoneName = serde_json::from_str("\"web\"").unwrap();
        assert_eq!(ok.as_str(), "web");
        assert!(serde_json::from_str::<ZoneName>("\"../x\"").is_err());
    }

    #[test]
    fn stat_dev_converts_to_kernel_encoding() {
        // Small numbers agree in both encodings.
        assert_eq!(FileKey::from_stat(0x2a, 7).dev, 0x2a);
        // Anonymous dev 0:323 (300+ tmpfs mounts): st_dev 0x100043, s_dev 0x143.
        assert_eq!(FileKey::from_stat(0x10_0043, 7).dev, 0x143);
        // A disk at 8:1: st_dev 0x801, s_dev 0x800001.
        assert_eq!(FileKey::from_stat(0x801, 7).dev, 0x80_0001);
        // Against libc's own decoding.
        for st_dev in [0x801u64, 0x10_0043, 0xfd00, 0x0310_0007] {
            let major = u64::from(libc::major(st_dev));
            let minor = u64::from(libc::minor(st_dev));
            assert_eq!(FileKey::from_stat(st_dev, 1).dev, (major << 20) | minor);
        }
    }

    #[test]
    fn host_path_validation() {
        let p = |s: &str| {
            HostPath {
                path: s.into(),
                recursive: false,
            }
            .validate()
        };
        assert!(p("/srv/data").is_ok());
        assert!(p("").is_err());
        assert!(p("srv").is_err());
        assert!(p("/srv/../etc").is_err());
        assert!(p("/srv/./x").is_err());
        assert!(p("/srv//x").is_err());
        assert!(p("/srv/").is_err());
        assert!(p("/").is_ok());
    }
}
