//! `Dataplane`: everything the registry (`state.rs`) needs from the kernel
//! side, as typed operations on the maps. `maps.rs` implements it on the real
//! BPF maps; `MemoryDataplane` is the in-memory fake used where no BPF LSM
//! kernel is available (host tests, `syva core --dataplane memory`). It
//! enforces nothing, but keeps the same capacities and error behaviour.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::Mutex;

use crate::model::{CgroupId, FileKey, ZoneId};

use super::hooks::{HOOKS, VERDICTS};

/// Zone policy flags (`SYVA_ZONE_*` in syva_types.h).
pub mod zone_flags {
    pub const ACTIVE: u32 = 1 << 0;
    pub const AUDIT: u32 = 1 << 1;
    pub const ALLOW_PTRACE: u32 = 1 << 2;
    pub const PRIVILEGED: u32 = 1 << 3;
    pub const ISOLATED: u32 = 1 << 4;
}

/// File owner flags (`SYVA_FILE_*`).
pub mod file_flags {
    pub const INHERIT: u32 = 1 << 0;
    pub const DERIVED: u32 = 1 << 1;
    pub const KERNEL: u32 = 1 << 2;
}

/// `SYVA_MEMBER_INHERITED`.
pub const MEMBER_INHERITED: u32 = 1 << 0;

/// `SYVA_CONFIG_AUDIT`.
pub const CONFIG_AUDIT: u32 = 1 << 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    pub zone: ZoneId,
    pub flags: u32,
}

impl Member {
    pub fn inherited(&self) -> bool {
        self.flags & MEMBER_INHERITED != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileOwner {
    pub zone: ZoneId,
    pub flags: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacities {
    pub max_zones: u32,
    pub max_members: u32,
    pub max_files: u32,
    pub max_comms: u32,
    pub max_host_sockets: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Self {
            max_zones: 1024,
            max_members: 65_536,
            max_files: 262_144,
            max_comms: 16_384,
            max_host_sockets: 4096,
        }
    }
}

/// Attachment state of one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub program: &'static str,
    pub hook: &'static str,
    pub attached: bool,
    pub error: Option<String>,
}

/// Outcome of one startup self-test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfTestOutcome {
    Passed(String),
    /// Could not run here (e.g. no permission to create a cgroup): degraded.
    Skipped(String),
    /// The kernel read something else than expected: unhealthy.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfTest {
    pub name: &'static str,
    pub outcome: SelfTestOutcome,
}

/// Per hook, counts indexed by `hooks::VERDICTS`.
pub type HookCounts = [u64; VERDICTS.len()];

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("BPF map {map}: {op} failed: {source}")]
    Map {
        map: &'static str,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("BPF map {map} is full: its capacity is {capacity} entries ({flag})")]
    Full {
        map: &'static str,
        capacity: u32,
        flag: &'static str,
    },
}

impl DataplaneError {
    pub fn map(&self) -> &'static str {
        match self {
            DataplaneError::Map { map, .. } | DataplaneError::Full { map, .. } => map,
        }
    }
}

pub type Result<T, E = DataplaneError> = std::result::Result<T, E>;

/// Typed operations on Syva's BPF maps. Deletes of absent entries succeed.
pub trait Dataplane: Send + Sync + 'static {
    /// "bpf" or "memory".
    fn kind(&self) -> &'static str;
    fn capacities(&self) -> Capacities;

    fn zone_flags(&self, zone: ZoneId) -> Result<u32>;
    fn set_zone_flags(&self, zone: ZoneId, flags: u32) -> Result<()>;

    fn member(&self, cgroup: CgroupId) -> Result<Option<Member>>;
    fn put_member(&self, cgroup: CgroupId, member: Member) -> Result<()>;
    fn delete_member(&self, cgroup: CgroupId) -> Result<()>;
    fn members(&self) -> Result<Vec<(CgroupId, Member)>>;

    fn file(&self, key: FileKey) -> Result<Option<FileOwner>>;
    fn put_file(&self, key: FileKey, owner: FileOwner) -> Result<()>;
    fn delete_file(&self, key: FileKey) -> Result<()>;
    fn files(&self) -> Result<Vec<(FileKey, FileOwner)>>;
    fn file_count(&self) -> Result<u64>;

    fn comm(&self, from: ZoneId, to: ZoneId) -> Result<bool>;
    fn put_comm(&self, from: ZoneId, to: ZoneId) -> Result<()>;
    fn delete_comm(&self, from: ZoneId, to: ZoneId) -> Result<()>;

    fn host_socket(&self, zone: ZoneId, socket: FileKey) -> Result<bool>;
    fn put_host_socket(&self, zone: ZoneId, socket: FileKey) -> Result<()>;
    fn delete_host_socket(&self, zone: ZoneId, socket: FileKey) -> Result<()>;
    fn host_sockets(&self) -> Result<Vec<(ZoneId, FileKey)>>;

    fn config_flags(&self) -> Result<u32>;
    fn set_config_flags(&self, flags: u32) -> Result<()>;

    /// Decision counters per hook, in `HOOKS` order.
    fn counters(&self) -> Result<Vec<HookCounts>>;
    fn attachments(&self) -> Vec<Attachment>;
    fn self_tests(&self) -> Vec<SelfTest>;
}

#[derive(Debug, Default)]
struct Maps {
    zones: BTreeMap<ZoneId, u32>,
    members: HashMap<CgroupId, Member>,
    files: HashMap<FileKey, FileOwner>,
    comms: HashSet<(ZoneId, ZoneId)>,
    host_sockets: HashSet<(ZoneId, FileKey)>,
    config: u32,
    /// Test hook: writes left before ONE write fails.
    writes_left: Option<u64>,
}

/// In-memory dataplane with the real maps' capacities.
#[derive(Debug)]
pub struct MemoryDataplane {
    caps: Capacities,
    maps: Mutex<Maps>,
}

impl MemoryDataplane {
    pub fn new(caps: Capacities) -> Self {
        Self {
            caps,
            maps: Mutex::new(Maps::default()),
        }
    }

    /// Let `n` writes succeed, then fail the next one once (like a map
    /// that is full for one insert), for tests of rollback.
    pub fn fail_write_after(&self, n: u64) {
        self.lock().writes_left = Some(n);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        // A panic while holding this lock can only come from a bug in this
        // file's few lines; the data is plain maps, still usable.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write<T>(
        &self,
        map: &'static str,
        op: &'static str,
        f: impl FnOnce(&mut Maps) -> Result<T>,
    ) -> Result<T> {
        let mut m = self.lock();
        if let Some(left) = m.writes_left.as_mut() {
            if *left == 0 {
                m.writes_left = None;
                return Err(DataplaneError::Map {
                    map,
                    op,
                    source: io::Error::other("injected write failure"),
                });
            }
            *left -= 1;
        }
        f(&mut m)
    }
}

impl Dataplane for MemoryDataplane {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn capacities(&self) -> Capacities {
        self.caps
    }

    fn zone_flags(&self, zone: ZoneId) -> Result<u32> {
        Ok(self.lock().zones.get(&zone).copied().unwrap_or(0))
    }

    fn set_zone_flags(&self, zone: ZoneId, flags: u32) -> Result<()> {
        if zone.0 > self.caps.max_zones {
            return Err(DataplaneError::Map {
                map: "syva_zones",
                op: "update",
                source: io::Error::from_raw_os_error(libc::E2BIG),
            });
        }
        self.write("syva_zones", "update", |m| {
            if flags == 0 {
                m.zones.remove(&zone);
            } else {
                m.zones.insert(zone, flags);
            }
            Ok(())
        })
    }

    fn member(&self, cgroup: CgroupId) -> Result<Option<Member>> {
        Ok(self.lock().members.get(&cgroup).copied())
    }

    fn put_member(&self, cgroup: CgroupId, member: Member) -> Result<()> {
        let cap = self.caps.max_members;
        self.write("syva_members", "update", |m| {
            if !m.members.contains_key(&cgroup) && m.members.len() >= cap as usize {
                return Err(DataplaneError::Full {
                    map: "syva_members",
                    capacity: cap,
                    flag: "--max-members",
                });
            }
            m.members.insert(cgroup, member);
            Ok(())
        })
    }

    fn delete_member(&self, cgroup: CgroupId) -> Result<()> {
        self.write("syva_members", "delete", |m| {
            m.members.remove(&cgroup);
            Ok(())
        })
    }

    fn members(&self) -> Result<Vec<(CgroupId, Member)>> {
        Ok(self.lock().members.iter().map(|(k, v)| (*k, *v)).collect())
    }

    fn file(&self, key: FileKey) -> Result<Option<FileOwner>> {
        Ok(self.lock().files.get(&key).copied())
    }

    fn put_file(&self, key: FileKey, owner: FileOwner) -> Result<()> {
        let cap = self.caps.max_files;
        self.write("syva_files", "update", |m| {
            if !m.files.contains_key(&key) && m.files.len() >= cap as usize {
                return Err(DataplaneError::Full {
                    map: "syva_files",
                    capacity: cap,
                    flag: "--max-protected-files",
                });
            }
            m.files.insert(key, owner);
            Ok(())
        })
    }

    fn delete_file(&self, key: FileKey) -> Result<()> {
        self.write("syva_files", "delete", |m| {
            m.files.remove(&key);
            Ok(())
        })
    }

    fn files(&self) -> Result<Vec<(FileKey, FileOwner)>> {
        Ok(self.lock().files.iter().map(|(k, v)| (*k, *v)).collect())
    }

    fn file_count(&self) -> Result<u64> {
        Ok(self.lock().files.len() as u64)
    }

    fn comm(&self, from: ZoneId, to: ZoneId) -> Result<bool> {
        Ok(self.lock().comms.contains(&(from, to)))
    }

    fn put_comm(&self, from: ZoneId, to: ZoneId) -> Result<()> {
        let cap = self.caps.max_comms;
        self.write("syva_comms", "update", |m| {
            if !m.comms.contains(&(from, to)) && m.comms.len() >= cap as usize {
                return Err(DataplaneError::Full {
                    map: "syva_comms",
                    capacity: cap,
                    flag: "--max-comms",
                });
            }
            m.comms.insert((from, to));
            Ok(())
        })
    }

    fn delete_comm(&self, from: ZoneId, to: ZoneId) -> Result<()> {
        self.write("syva_comms", "delete", |m| {
            m.comms.remove(&(from, to));
            Ok(())
        })
    }

    fn host_socket(&self, zone: ZoneId, socket: FileKey) -> Result<bool> {
        Ok(self.lock().host_sockets.contains(&(zone, socket)))
    }

    fn put_host_socket(&self, zone: ZoneId, socket: FileKey) -> Result<()> {
        let cap = self.caps.max_host_sockets;
        self.write("syva_host_sockets", "update", |m| {
            if !m.host_sockets.contains(&(zone, socket)) && m.host_sockets.len() >= cap as usize {
                return Err(DataplaneError::Full {
                    map: "syva_host_sockets",
                    capacity: cap,
                    flag: "--max-host-sockets",
                });
            }
            m.host_sockets.insert((zone, socket));
            Ok(())
        })
    }

    fn delete_host_socket(&self, zone: ZoneId, socket: FileKey) -> Result<()> {
        self.write("syva_host_sockets", "delete", |m| {
            m.host_sockets.remove(&(zone, socket));
            Ok(())
        })
    }

    fn host_sockets(&self) -> Result<Vec<(ZoneId, FileKey)>> {
        Ok(self.lock().host_sockets.iter().copied().collect())
    }

    fn config_flags(&self) -> Result<u32> {
        Ok(self.lock().config)
    }

    fn set_config_flags(&self, flags: u32) -> Result<()> {
        self.write("syva_config", "update", |m| {
            m.config = flags;
            Ok(())
        })
    }

    fn counters(&self) -> Result<Vec<HookCounts>> {
        Ok(vec![[0; VERDICTS.len()]; HOOKS.len()])
    }

    fn attachments(&self) -> Vec<Attachment> {
        Vec::new()
    }

    fn self_tests(&self) -> Vec<SelfTest> {
        Vec::new()
    }
}
