//! The authoritative registry of `syva core`: zones (ids, names, policies,
//! protected files), allowed pairs and container membership, and the rules
//! that keep them consistent with the kernel maps.
//!
//! Every accepted change is turned into explicit map update intents
//! (`Intent`) that are applied through `Dataplane` together with the
//! bookkeeping: if a map write fails, the writes already done are undone, the
//! bookkeeping is left as it was, and health degrades. All changes go through
//! one lock, so concurrent updates (for one container or anything else) are
//! serialized. Slow I/O (walking host paths) happens outside that lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::model::view::{MembershipOutcome, PodRef, ZoneState};
use crate::model::{
    CgroupId, EnforcementMode, FieldError, FileKey, HostPath, ZoneId, ZoneName, ZonePolicy,
    ZoneType,
};

use super::dataplane::{
    CONFIG_AUDIT, Dataplane, DataplaneError, FileOwner, MEMBER_INHERITED, Member, file_flags,
    zone_flags,
};
use super::health::Signals;
use super::hostpath::{self, WalkError};
use crate::cgroup::{CgroupError, CgroupFs};

/// Errors of registry operations; `rpc.rs` maps each kind to one gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Bad input: the field is named.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{what} {name:?} not found")]
    NotFound { what: &'static str, name: String },
    /// Conflicts with existing state, which is unchanged.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Exhausted(String),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
}

impl CoreError {
    fn zone_not_found(name: &str) -> Self {
        CoreError::NotFound {
            what: "zone",
            name: name.to_owned(),
        }
    }
}

/// One kernel map change. Applying a list of them is all-or-nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    SetZone { zone: ZoneId, flags: u32 },
    PutMember { cgroup: CgroupId, member: Member },
    DeleteMember { cgroup: CgroupId },
    PutFile { key: FileKey, owner: FileOwner },
    DeleteFile { key: FileKey },
    PutComm { from: ZoneId, to: ZoneId },
    DeleteComm { from: ZoneId, to: ZoneId },
    PutHostSocket { zone: ZoneId, socket: FileKey },
    DeleteHostSocket { zone: ZoneId, socket: FileKey },
    SetConfig { flags: u32 },
}

/// How to put back what an applied intent changed.
#[derive(Debug)]
enum Undo {
    Zone(ZoneId, u32),
    Member(CgroupId, Option<Member>),
    File(FileKey, Option<FileOwner>),
    Comm(ZoneId, ZoneId, bool),
    HostSocket(ZoneId, FileKey, bool),
    Config(u32),
}

/// Where a cgroup to attach is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupRef {
    Id(CgroupId),
    Path(String),
}

#[derive(Debug, Clone)]
pub struct AttachRequest {
    pub container_id: String,
    pub pod: Option<PodRef>,
    pub cgroup: CgroupRef,
    pub zone: ZoneName,
    pub source: String,
    pub generation: u64,
    pub observed_at: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachResult {
    pub outcome: MembershipOutcome,
    pub zone_id: ZoneId,
    pub cgroup_id: CgroupId,
    pub cgroups_covered: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterResult {
    pub zone_id: ZoneId,
    pub created: bool,
    pub protected_inodes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneInfo {
    pub name: ZoneName,
    pub id: ZoneId,
    pub state: ZoneState,
    pub member_count: u32,
    pub policy: ZonePolicy,
    pub source: String,
    pub protected_inodes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub container_id: String,
    pub pod: Option<PodRef>,
    pub cgroup_id: CgroupId,
    pub cgroup_path: String,
    pub zone: ZoneName,
    pub zone_id: ZoneId,
    pub source: String,
    pub generation: u64,
    pub observed_at: Option<SystemTime>,
    pub attached_at: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommInfo {
    pub zone_a: ZoneName,
    pub zone_b: ZoneName,
    pub origins: Vec<String>,
}

/// Origin name of pairs made with AllowComm.
pub const EXPLICIT_ORIGIN: &str = "api";

#[derive(Debug)]
struct Zone {
    id: ZoneId,
    policy: ZonePolicy,
    source: String,
    draining: bool,
    members: BTreeSet<String>,
    /// Files the walk of the policy's host paths produced (what userspace put).
    files: HashMap<FileKey, u32>,
    /// Host sockets the zone may use, resolved from allowed_host_sockets.
    host_sockets: HashSet<FileKey>,
}

impl Zone {
    fn state(&self) -> ZoneState {
        if self.draining {
            ZoneState::Draining
        } else if self.members.is_empty() {
            ZoneState::Pending
        } else {
            ZoneState::Active
        }
    }

    fn kernel_flags(&self) -> u32 {
        let mut f = zone_flags::ACTIVE;
        if self.policy.mode == EnforcementMode::Audit {
            f |= zone_flags::AUDIT;
        }
        if self.policy.allow_ptrace {
            f |= zone_flags::ALLOW_PTRACE;
        }
        match self.policy.zone_type {
            ZoneType::Standard => {}
            ZoneType::Privileged => f |= zone_flags::PRIVILEGED,
            ZoneType::Isolated => f |= zone_flags::ISOLATED,
        }
        f
    }
}

#[derive(Debug, Clone)]
struct Container {
    pod: Option<PodRef>,
    cgroup: CgroupId,
    cgroup_dir: PathBuf,
    zone: ZoneName,
    source: String,
    generation: u64,
    observed_at: Option<SystemTime>,
    attached_at: SystemTime,
    /// Descendant cgroups inserted at attach time.
    covered: Vec<CgroupId>,
}

#[derive(Debug, Default)]
struct Inner {
    zones: BTreeMap<ZoneName, Zone>,
    names: HashMap<ZoneId, ZoneName>,
    containers: BTreeMap<String, Container>,
    cgroup_claims: HashMap<CgroupId, String>,
    /// Pairs made with AllowComm, normalized (a < b).
    explicit_comms: BTreeSet<(ZoneName, ZoneName)>,
    /// Directed pairs currently in the kernel map.
    kernel_comms: BTreeSet<(ZoneId, ZoneId)>,
    /// Registered path of protected files (for events).
    paths: HashMap<FileKey, PathBuf>,
    audit: bool,
}

/// The registry; cheap to share behind an `Arc`.
pub struct Registry {
    dp: Arc<dyn Dataplane>,
    cgroups: CgroupFs,
    signals: Arc<Signals>,
    inner: Mutex<Inner>,
    /// Serializes policy changes (which walk host paths outside `inner`).
    policy_lock: Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dataplane", &self.dp.kind())
            .field("cgroups", &self.cgroups)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Registry methods do not panic while holding the lock in a way that
    // leaves half-updated bookkeeping: updates are committed after the map
    // writes succeed. A poisoned lock is therefore still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn normalized(a: &ZoneName, b: &ZoneName) -> (ZoneName, ZoneName) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

const MAX_ID_LEN: usize = 256;

impl Registry {
    pub fn new(dp: Arc<dyn Dataplane>, cgroups: CgroupFs, signals: Arc<Signals>) -> Self {
        Self {
            dp,
            cgroups,
            signals,
            inner: Mutex::new(Inner::default()),
            policy_lock: Mutex::new(()),
        }
    }

    pub fn dataplane(&self) -> &Arc<dyn Dataplane> {
        &self.dp
    }

    pub fn cgroups(&self) -> &CgroupFs {
        &self.cgroups
    }

    /// Apply intents in order; on failure undo what was done and return the
    /// error. The caller commits its bookkeeping only on success.
    fn apply(&self, intents: &[Intent]) -> Result<(), CoreError> {
        let mut undo: Vec<Undo> = Vec::with_capacity(intents.len());
        for intent in intents {
            if let Err(e) = self.apply_one(intent, &mut undo) {
                self.signals.map_write_failures.hit();
                tracing::error!(error = %e, ?intent, undone = undo.len(), "map write failed; rolling back");
                self.rollback(undo);
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn apply_one(&self, intent: &Intent, undo: &mut Vec<Undo>) -> Result<(), DataplaneError> {
        let dp = &self.dp;
        match *intent {
            Intent::SetZone { zone, flags } => {
                let old = dp.zone_flags(zone)?;
                dp.set_zone_flags(zone, flags)?;
                undo.push(Undo::Zone(zone, old));
            }
            Intent::PutMember { cgroup, member } => {
                let old = dp.member(cgroup)?;
                dp.put_member(cgroup, member)?;
                undo.push(Undo::Member(cgroup, old));
            }
            Intent::DeleteMember { cgroup } => {
                let old = dp.member(cgroup)?;
                if old.is_some() {
                    dp.delete_member(cgroup)?;
                    undo.push(Undo::Member(cgroup, old));
                }
            }
            Intent::PutFile { key, owner } => {
                let old = dp.file(key)?;
                dp.put_file(key, owner)?;
                undo.push(Undo::File(key, old));
            }
            Intent::DeleteFile { key } => {
                let old = dp.file(key)?;
                if old.is_some() {
                    dp.delete_file(key)?;
                    undo.push(Undo::File(key, old));
                }
            }
            Intent::PutComm { from, to } => {
                let old = dp.comm(from, to)?;
                dp.put_comm(from, to)?;
                undo.push(Undo::Comm(from, to, old));
            }
            Intent::DeleteComm { from, to } => {
                let old = dp.comm(from, to)?;
                if old {
                    dp.delete_comm(from, to)?;
                    undo.push(Undo::Comm(from, to, old));
                }
            }
            Intent::PutHostSocket { zone, socket } => {
                let old = dp.host_socket(zone, socket)?;
                dp.put_host_socket(zone, socket)?;
                undo.push(Undo::HostSocket(zone, socket, old));
            }
            Intent::DeleteHostSocket { zone, socket } => {
                if dp.host_socket(zone, socket)? {
                    dp.delete_host_socket(zone, socket)?;
                    undo.push(Undo::HostSocket(zone, socket, true));
                }
            }
            Intent::SetConfig { flags } => {
                let old = dp.config_flags()?;
                dp.set_config_flags(flags)?;
                undo.push(Undo::Config(old));
            }
        }
        Ok(())
    }

    fn rollback(&self, undo: Vec<Undo>) {
        let dp = &self.dp;
        for u in undo.into_iter().rev() {
            let r = match u {
                Undo::Zone(z, flags) => dp.set_zone_flags(z, flags),
                Undo::Member(cg, Some(m)) => dp.put_member(cg, m),
                Undo::Member(cg, None) => dp.delete_member(cg),
                Undo::File(k, Some(o)) => dp.put_file(k, o),
                Undo::File(k, None) => dp.delete_file(k),
                Undo::Comm(a, b, true) => dp.put_comm(a, b),
                Undo::Comm(a, b, false) => dp.delete_comm(a, b),
                Undo::HostSocket(z, k, true) => dp.put_host_socket(z, k),
                Undo::HostSocket(z, k, false) => dp.delete_host_socket(z, k),
                Undo::Config(flags) => dp.set_config_flags(flags),
            };
            if let Err(e) = r {
                // Nothing more can be done here: count it, health stays
                // degraded until restart, and say what is inconsistent.
                self.signals.rollback_failures.hit();
                tracing::error!(error = %e, "rollback of a map write failed; kernel state differs from the registry");
            }
        }
    }

    // ----- zones -----------------------------------------------------------

    /// Create a zone or re-apply its policy in place (idempotent by name).
    pub fn register_zone(
        &self,
        name: &ZoneName,
        policy: ZonePolicy,
        source: &str,
    ) -> Result<RegisterResult, CoreError> {
        if policy.allowed_zones.contains(name) {
            return Err(FieldError::new(
                "policy.allowed_zones",
                format!("a zone cannot list itself ({name})"),
            )
            .into());
        }
        let _serial = lock(&self.policy_lock);
        let old_paths = {
            let inner = lock(&self.inner);
            if let Some(z) = inner.zones.get(name) {
                check_source(name, &z.source, source)?;
                if z.draining {
                    return Err(CoreError::Conflict(format!(
                        "zone {name} is draining: wait until its last container is detached"
                    )));
                }
                z.policy.host_paths.clone()
            } else {
                Vec::new()
            }
        };
        // Slow part, outside the state lock.
        let limit = u64::from(self.dp.capacities().max_files);
        let walked =
            hostpath::walk(&policy.host_paths, limit).map_err(|e| walk_error(&policy, e))?;
        let removed: Vec<HostPath> = old_paths
            .into_iter()
            .filter(|p| !policy.host_paths.iter().any(|n| n.path == p.path))
            .collect();
        // Best effort: a removed path that no longer exists has no inodes to
        // find; its kernel-tagged entries are dropped when the inodes go.
        let removed_keys: HashSet<FileKey> = hostpath::walk(&removed, limit)
            .map(|v| v.into_iter().map(|f| f.key).collect())
            .unwrap_or_default();
        let sockets = resolve_host_sockets(&policy)?;
        let current_files = self.dp.files()?;

        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        let created = !inner.zones.contains_key(name);
        let id = match inner.zones.get(name) {
            Some(z) => z.id,
            None => self.allocate_id(inner)?,
        };

        // Files: desired vs what the map holds for this zone.
        let mut intents = Vec::new();
        let mut by_key: HashMap<FileKey, FileOwner> = HashMap::new();
        for (k, o) in current_files {
            by_key.insert(k, o);
        }
        let mut desired: HashMap<FileKey, u32> = HashMap::with_capacity(walked.len());
        for f in &walked {
            match by_key.get(&f.key) {
                Some(o) if o.zone != id => {
                    let owner = inner
                        .names
                        .get(&o.zone)
                        .map_or_else(|| format!("zone id {}", o.zone), |n| format!("zone {n}"));
                    return Err(CoreError::Conflict(format!(
                        "policy.host_paths: {} ({}) is already owned by {owner}",
                        f.path.display(),
                        f.key
                    )));
                }
                Some(o) if o.flags == f.flags => {}
                _ => intents.push(Intent::PutFile {
                    key: f.key,
                    owner: FileOwner {
                        zone: id,
                        flags: f.flags,
                    },
                }),
            }
            desired.insert(f.key, f.flags);
        }
        for (k, o) in &by_key {
            if o.zone != id || desired.contains_key(k) {
                continue;
            }
            // Kernel-tagged inodes (created after the walk) are kept unless
            // they lie under a path that left the policy.
            if o.flags & file_flags::KERNEL == 0 || removed_keys.contains(k) {
                intents.push(Intent::DeleteFile { key: *k });
            }
        }
        let old_sockets = inner
            .zones
            .get(name)
            .map(|z| z.host_sockets.clone())
            .unwrap_or_default();
        for k in sockets.difference(&old_sockets) {
            intents.push(Intent::PutHostSocket {
                zone: id,
                socket: *k,
            });
        }
        for k in old_sockets.difference(&sockets) {
            intents.push(Intent::DeleteHostSocket {
                zone: id,
                socket: *k,
            });
        }
        let zone = Zone {
            id,
            policy,
            source: source.to_owned(),
            draining: false,
            members: inner
                .zones
                .get(name)
                .map(|z| z.members.clone())
                .unwrap_or_default(),
            files: desired,
            host_sockets: sockets,
        };
        intents.insert(
            0,
            Intent::SetZone {
                zone: id,
                flags: zone.kernel_flags(),
            },
        );
        // Pairs after the zone exists in the bookkeeping copy.
        let mut next_zones: BTreeMap<ZoneName, (ZoneId, &ZonePolicy)> = inner
            .zones
            .iter()
            .filter(|(n, _)| *n != name)
            .map(|(n, z)| (n.clone(), (z.id, &z.policy)))
            .collect();
        next_zones.insert(name.clone(), (id, &zone.policy));
        let desired_comms = effective_kernel_comms(&next_zones, &inner.explicit_comms);
        intents.extend(comm_intents(&inner.kernel_comms, &desired_comms));
        drop(next_zones);

        self.apply(&intents)?;

        // Commit.
        if let Some(old) = inner.zones.get(name) {
            for k in old.files.keys() {
                inner.paths.remove(k);
            }
        }
        for f in walked {
            inner.paths.insert(f.key, f.path);
        }
        let protected = zone.files.len() as u64;
        inner.names.insert(id, name.clone());
        inner.zones.insert(name.clone(), zone);
        inner.kernel_comms = desired_comms;
        tracing::info!(zone = %name, id = id.0, created, protected_inodes = protected, "zone registered");
        Ok(RegisterResult {
            zone_id: id,
            created,
            protected_inodes: protected,
        })
    }

    fn allocate_id(&self, inner: &Inner) -> Result<ZoneId, CoreError> {
        let max = self.dp.capacities().max_zones;
        (1..=max)
            .map(ZoneId)
            .find(|id| !inner.names.contains_key(id))
            .ok_or_else(|| {
                CoreError::Exhausted(format!(
                    "zone limit reached: {max} zones exist (max_zones; raise --max-zones)"
                ))
            })
    }

    /// Add (or change) one protected path of a zone and re-apply its policy.
    pub fn register_host_path(
        &self,
        zone: &ZoneName,
        path: HostPath,
        source: &str,
    ) -> Result<u64, CoreError> {
        path.validate().map_err(|m| FieldError::new("path", m))?;
        let (mut policy, owner) = {
            let inner = lock(&self.inner);
            let z = inner
                .zones
                .get(zone)
                .ok_or_else(|| CoreError::zone_not_found(zone.as_str()))?;
            (z.policy.clone(), z.source.clone())
        };
        // An empty source means "whoever owns the zone" (ctl convenience).
        let source = if source.is_empty() {
            owner.as_str()
        } else {
            source
        };
        match policy.host_paths.iter_mut().find(|p| p.path == path.path) {
            Some(p) => p.recursive = path.recursive,
            None => policy.host_paths.push(path),
        }
        Ok(self.register_zone(zone, policy, source)?.protected_inodes)
    }

    /// Remove a zone. With members: refused, or (drain) marked draining and
    /// removed when the last member is detached.
    pub fn remove_zone(
        &self,
        name: &ZoneName,
        drain: bool,
        source: &str,
    ) -> Result<ZoneState, CoreError> {
        let _serial = lock(&self.policy_lock);
        let mut inner = lock(&self.inner);
        let z = inner
            .zones
            .get(name)
            .ok_or_else(|| CoreError::zone_not_found(name.as_str()))?;
        check_source(name, &z.source, source)?;
        if !z.members.is_empty() {
            if !drain {
                return Err(CoreError::Conflict(format!(
                    "zone {name} has {} attached container(s) (e.g. {}); detach them or remove \
                     with drain",
                    z.members.len(),
                    z.members
                        .iter()
                        .next()
                        .map(String::as_str)
                        .unwrap_or_default()
                )));
            }
            let members = inner.zones.get_mut(name).map_or(0, |z| {
                z.draining = true;
                z.members.len()
            });
            tracing::info!(zone = %name, members, "zone draining");
            return Ok(ZoneState::Draining);
        }
        self.finish_removal(&mut inner, name)?;
        Ok(ZoneState::Removed)
    }

    /// Drop a zone without members from the maps and the bookkeeping.
    fn finish_removal(&self, inner: &mut Inner, name: &ZoneName) -> Result<(), CoreError> {
        let id = inner.zones[name].id;
        let mut intents = vec![Intent::SetZone { zone: id, flags: 0 }];
        for (k, o) in self.dp.files()? {
            if o.zone == id {
                intents.push(Intent::DeleteFile { key: k });
            }
        }
        for (cg, m) in self.dp.members()? {
            if m.zone == id {
                intents.push(Intent::DeleteMember { cgroup: cg });
            }
        }
        for (z, socket) in self.dp.host_sockets()? {
            if z == id {
                intents.push(Intent::DeleteHostSocket { zone: id, socket });
            }
        }
        let explicit: BTreeSet<_> = inner
            .explicit_comms
            .iter()
            .filter(|(a, b)| a != name && b != name)
            .cloned()
            .collect();
        let zones: BTreeMap<ZoneName, (ZoneId, &ZonePolicy)> = inner
            .zones
            .iter()
            .filter(|(n, _)| *n != name)
            .map(|(n, z)| (n.clone(), (z.id, &z.policy)))
            .collect();
        let desired_comms = effective_kernel_comms(&zones, &explicit);
        intents.extend(comm_intents(&inner.kernel_comms, &desired_comms));
        drop(zones);
        self.apply(&intents)?;
        if let Some(z) = inner.zones.remove(name) {
            for k in z.files.keys() {
                inner.paths.remove(k);
            }
        }
        inner.names.remove(&id);
        inner.explicit_comms = explicit;
        inner.kernel_comms = desired_comms;
        tracing::info!(zone = %name, id = id.0, "zone removed");
        Ok(())
    }

    pub fn list_zones(&self) -> Vec<ZoneInfo> {
        let inner = lock(&self.inner);
        inner
            .zones
            .iter()
            .map(|(n, z)| ZoneInfo {
                name: n.clone(),
                id: z.id,
                state: z.state(),
                member_count: u32::try_from(z.members.len()).unwrap_or(u32::MAX),
                policy: z.policy.clone(),
                source: z.source.clone(),
                protected_inodes: z.files.len() as u64,
            })
            .collect()
    }

    pub fn zone_name(&self, id: ZoneId) -> Option<ZoneName> {
        lock(&self.inner).names.get(&id).cloned()
    }

    pub fn file_path(&self, key: FileKey) -> Option<PathBuf> {
        lock(&self.inner).paths.get(&key).cloned()
    }

    pub fn counts(&self) -> (u32, u32) {
        let inner = lock(&self.inner);
        (
            u32::try_from(inner.zones.len()).unwrap_or(u32::MAX),
            u32::try_from(inner.containers.len()).unwrap_or(u32::MAX),
        )
    }

    // ----- allowed pairs ---------------------------------------------------

    pub fn allow_comm(&self, a: &ZoneName, b: &ZoneName) -> Result<(), CoreError> {
        if a == b {
            return Err(FieldError::new("zone_b", "a zone cannot be paired with itself").into());
        }
        let _serial = lock(&self.policy_lock);
        let mut inner = lock(&self.inner);
        for n in [a, b] {
            let z = inner
                .zones
                .get(n)
                .ok_or_else(|| CoreError::zone_not_found(n.as_str()))?;
            if z.policy.zone_type == ZoneType::Isolated {
                return Err(CoreError::Conflict(format!(
                    "zone {n} is isolated: allowed pairs do not apply to it"
                )));
            }
        }
        let mut explicit = inner.explicit_comms.clone();
        explicit.insert(normalized(a, b));
        self.commit_comms(&mut inner, explicit)
    }

    pub fn deny_comm(&self, a: &ZoneName, b: &ZoneName) -> Result<(), CoreError> {
        let _serial = lock(&self.policy_lock);
        let mut inner = lock(&self.inner);
        for n in [a, b] {
            if !inner.zones.contains_key(n) {
                return Err(CoreError::zone_not_found(n.as_str()));
            }
        }
        for (x, y) in [(a, b), (b, a)] {
            if inner.zones[x].policy.allowed_zones.contains(y) {
                return Err(CoreError::Conflict(format!(
                    "the pair {a}/{b} is declared by the policy of zone {x} (allowed_zones); \
                     change that policy instead"
                )));
            }
        }
        let mut explicit = inner.explicit_comms.clone();
        explicit.remove(&normalized(a, b));
        self.commit_comms(&mut inner, explicit)
    }

    fn commit_comms(
        &self,
        inner: &mut Inner,
        explicit: BTreeSet<(ZoneName, ZoneName)>,
    ) -> Result<(), CoreError> {
        let zones = zone_table(inner);
        let desired = effective_kernel_comms(&zones, &explicit);
        let intents = comm_intents(&inner.kernel_comms, &desired);
        drop(zones);
        self.apply(&intents)?;
        inner.explicit_comms = explicit;
        inner.kernel_comms = desired;
        Ok(())
    }

    pub fn list_comms(&self) -> Vec<CommInfo> {
        let inner = lock(&self.inner);
        let mut pairs: BTreeMap<(ZoneName, ZoneName), BTreeSet<String>> = BTreeMap::new();
        for p in &inner.explicit_comms {
            pairs
                .entry(p.clone())
                .or_default()
                .insert(EXPLICIT_ORIGIN.to_owned());
        }
        for (n, z) in &inner.zones {
            for peer in &z.policy.allowed_zones {
                if inner.zones.contains_key(peer) {
                    pairs
                        .entry(normalized(n, peer))
                        .or_default()
                        .insert(format!("zone:{n}"));
                }
            }
        }
        pairs
            .into_iter()
            .map(|((a, b), o)| CommInfo {
                zone_a: a,
                zone_b: b,
                origins: o.into_iter().collect(),
            })
            .collect()
    }

    // ----- node-wide audit -------------------------------------------------

    pub fn set_audit(&self, audit: bool) -> Result<(), CoreError> {
        let mut inner = lock(&self.inner);
        self.apply(&[Intent::SetConfig {
            flags: if audit { CONFIG_AUDIT } else { 0 },
        }])?;
        inner.audit = audit;
        tracing::warn!(audit, "node-wide audit mode changed");
        Ok(())
    }

    pub fn audit(&self) -> bool {
        lock(&self.inner).audit
    }

    // ----- membership ------------------------------------------------------

    pub fn attach(&self, req: AttachRequest) -> Result<AttachResult, CoreError> {
        validate_container_id("container_id", &req.container_id)?;
        validate_source(&req.source)?;
        let (cgroup, dir) = match &req.cgroup {
            CgroupRef::Path(p) => self
                .cgroups
                .resolve(p)
                .map_err(|e| cgroup_error(&self.cgroups, "cgroup_path", e))?,
            CgroupRef::Id(id) => {
                if id.0 == 0 {
                    return Err(FieldError::new("cgroup_id", "must not be 0").into());
                }
                (
                    *id,
                    self.cgroups
                        .find(*id)
                        .map_err(|e| cgroup_error(&self.cgroups, "cgroup_id", e))?,
                )
            }
        };
        if cgroup == CgroupId::ROOT || dir == self.cgroups.root() {
            let field = match req.cgroup {
                CgroupRef::Id(_) => "cgroup_id",
                CgroupRef::Path(_) => "cgroup_path",
            };
            return Err(FieldError::new(
                field,
                "the root cgroup cannot be attached: it would put the whole host in a zone",
            )
            .into());
        }

        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        let zone = inner
            .zones
            .get(&req.zone)
            .ok_or_else(|| CoreError::zone_not_found(req.zone.as_str()))?;
        let zone_id = zone.id;
        let draining = zone.draining;

        if let Some(existing) = inner.containers.get_mut(&req.container_id) {
            if req.generation != 0
                && existing.generation != 0
                && req.generation < existing.generation
            {
                self.signals.membership_stale.hit();
                metrics::counter!("syva_membership_updates_total", "op" => "attach", "result" => "stale").increment(1);
                tracing::warn!(container = %req.container_id, stored = existing.generation, got = req.generation, "stale attach ignored");
                return Ok(AttachResult {
                    outcome: MembershipOutcome::Stale,
                    zone_id: inner
                        .zones
                        .get(&existing.zone)
                        .map_or(ZoneId::HOST, |z| z.id),
                    cgroup_id: existing.cgroup,
                    cgroups_covered: 0,
                });
            }
            if existing.zone != req.zone || existing.cgroup != cgroup {
                self.signals.membership_conflicts.hit();
                metrics::counter!("syva_membership_updates_total", "op" => "attach", "result" => "conflict").increment(1);
                return Err(CoreError::Conflict(format!(
                    "container {} is attached to zone {} (cgroup {}); detach it before attaching \
                     it to zone {} (cgroup {cgroup})",
                    req.container_id, existing.zone, existing.cgroup, req.zone
                )));
            }
            if existing.source != req.source {
                self.signals.membership_conflicts.hit();
                return Err(CoreError::Conflict(format!(
                    "container {} is managed by source {:?}, not {:?}",
                    req.container_id, existing.source, req.source
                )));
            }
            // Same zone and cgroup: idempotent; refresh what the source knows.
            existing.generation = existing.generation.max(req.generation);
            existing.observed_at = req.observed_at.or(existing.observed_at);
            if req.pod.is_some() {
                existing.pod = req.pod.clone();
            }
            let covered = u32::try_from(existing.covered.len() + 1).unwrap_or(u32::MAX);
            // Self-heal a missing kernel entry (e.g. removed by hand).
            let present = self.dp.member(cgroup)?;
            let outcome = if present.is_some_and(|m| m.zone == zone_id && !m.inherited()) {
                MembershipOutcome::Unchanged
            } else {
                self.apply(&[Intent::PutMember {
                    cgroup,
                    member: Member {
                        zone: zone_id,
                        flags: 0,
                    },
                }])?;
                MembershipOutcome::Applied
            };
            metrics::counter!("syva_membership_updates_total", "op" => "attach", "result" => outcome.as_str()).increment(1);
            return Ok(AttachResult {
                outcome,
                zone_id,
                cgroup_id: cgroup,
                cgroups_covered: covered,
            });
        }

        if draining {
            return Err(CoreError::Conflict(format!(
                "zone {} is draining and accepts no new containers",
                req.zone
            )));
        }
        if let Some(other) = inner.cgroup_claims.get(&cgroup) {
            self.signals.membership_conflicts.hit();
            metrics::counter!("syva_membership_updates_total", "op" => "attach", "result" => "conflict").increment(1);
            let other_zone = inner
                .containers
                .get(other)
                .map(|c| c.zone.to_string())
                .unwrap_or_default();
            return Err(CoreError::Conflict(format!(
                "cgroup {cgroup} is already claimed by container {other} (zone {other_zone}); \
                 container {} (zone {}) cannot claim it too",
                req.container_id, req.zone
            )));
        }
        if let Some(m) = self.dp.member(cgroup)?
            && m.zone != zone_id
        {
            self.signals.membership_conflicts.hit();
            metrics::counter!("syva_membership_updates_total", "op" => "attach", "result" => "conflict").increment(1);
            let other = inner
                .names
                .get(&m.zone)
                .map_or_else(|| m.zone.to_string(), |n| n.to_string());
            return Err(CoreError::Conflict(format!(
                "cgroup {cgroup} already belongs to zone {other} (it lies inside a cgroup \
                 attached to that zone); it cannot join zone {}",
                req.zone
            )));
        }

        // Root entry first, then the descendants that exist now: a cgroup
        // created in between is covered by the kernel's mkdir program.
        self.apply(&[Intent::PutMember {
            cgroup,
            member: Member {
                zone: zone_id,
                flags: 0,
            },
        }])?;
        let descendants = match self.cgroups.descendants(&dir) {
            Ok(d) => d,
            Err(e) => {
                self.rollback_root(cgroup);
                return Err(cgroup_error(&self.cgroups, "cgroup_path", e));
            }
        };
        let mut intents = Vec::new();
        let mut covered = Vec::new();
        for (id, _) in descendants {
            match self.dp.member(id) {
                Ok(Some(_)) => {} // already mapped (kernel mkdir, or a nested attach)
                Ok(None) => {
                    intents.push(Intent::PutMember {
                        cgroup: id,
                        member: Member {
                            zone: zone_id,
                            flags: MEMBER_INHERITED,
                        },
                    });
                    covered.push(id);
                }
                Err(e) => {
                    self.rollback_root(cgroup);
                    self.signals.map_write_failures.hit();
                    return Err(e.into());
                }
            }
        }
        if let Err(e) = self.apply(&intents) {
            self.rollback_root(cgroup);
            return Err(e);
        }

        let cgroups_covered = u32::try_from(covered.len() + 1).unwrap_or(u32::MAX);
        inner.cgroup_claims.insert(cgroup, req.container_id.clone());
        if let Some(z) = inner.zones.get_mut(&req.zone) {
            z.members.insert(req.container_id.clone());
        }
        tracing::info!(container = %req.container_id, zone = %req.zone, cgroup = cgroup.0, cgroups_covered, source = %req.source, generation = req.generation, "container attached");
        inner.containers.insert(
            req.container_id,
            Container {
                pod: req.pod,
                cgroup,
                cgroup_dir: dir,
                zone: req.zone,
                source: req.source,
                generation: req.generation,
                observed_at: req.observed_at,
                attached_at: SystemTime::now(),
                covered,
            },
        );
        metrics::counter!("syva_membership_updates_total", "op" => "attach", "result" => "applied")
            .increment(1);
        Ok(AttachResult {
            outcome: MembershipOutcome::Applied,
            zone_id,
            cgroup_id: cgroup,
            cgroups_covered,
        })
    }

    fn rollback_root(&self, cgroup: CgroupId) {
        if let Err(e) = self.dp.delete_member(cgroup) {
            self.signals.rollback_failures.hit();
            tracing::error!(error = %e, cgroup = cgroup.0, "rollback of a membership entry failed");
        }
    }

    pub fn detach(
        &self,
        container_id: &str,
        source: &str,
        generation: u64,
    ) -> Result<MembershipOutcome, CoreError> {
        validate_container_id("container_id", container_id)?;
        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        let Some(c) = inner.containers.get(container_id) else {
            metrics::counter!("syva_membership_updates_total", "op" => "detach", "result" => "not_found").increment(1);
            return Ok(MembershipOutcome::NotFound);
        };
        if !source.is_empty() && c.source != source {
            self.signals.membership_conflicts.hit();
            metrics::counter!("syva_membership_updates_total", "op" => "detach", "result" => "conflict").increment(1);
            return Err(CoreError::Conflict(format!(
                "container {container_id} is managed by source {:?}, not {source:?}",
                c.source
            )));
        }
        if generation != 0 && c.generation != 0 && generation < c.generation {
            self.signals.membership_stale.hit();
            metrics::counter!("syva_membership_updates_total", "op" => "detach", "result" => "stale").increment(1);
            tracing::warn!(container = %container_id, stored = c.generation, got = generation, "stale detach ignored");
            return Ok(MembershipOutcome::Stale);
        }
        let zone_id = inner.zones.get(&c.zone).map_or(ZoneId::HOST, |z| z.id);
        let mut intents = vec![Intent::DeleteMember { cgroup: c.cgroup }];
        let mut candidates: BTreeSet<CgroupId> = c.covered.iter().copied().collect();
        if let Ok(d) = self.cgroups.descendants(&c.cgroup_dir) {
            candidates.extend(d.into_iter().map(|(id, _)| id));
        }
        for id in candidates {
            if inner.cgroup_claims.contains_key(&id) {
                continue; // directly attached by another container
            }
            if let Some(m) = self.dp.member(id)?
                && m.inherited()
                && m.zone == zone_id
            {
                intents.push(Intent::DeleteMember { cgroup: id });
            }
        }
        self.apply(&intents)?;
        let c = inner
            .containers
            .remove(container_id)
            .expect("container looked up above under the same lock");
        inner.cgroup_claims.remove(&c.cgroup);
        tracing::info!(container = %container_id, zone = %c.zone, cgroup = c.cgroup.0, "container detached");
        let finish = inner.zones.get_mut(&c.zone).is_some_and(|z| {
            z.members.remove(container_id);
            z.draining && z.members.is_empty()
        });
        if finish {
            // The container is detached either way; a failed cleanup of the
            // drained zone leaves it draining (and is reported).
            if let Err(e) = self.finish_removal(inner, &c.zone) {
                tracing::error!(zone = %c.zone, error = %e, "removing drained zone failed; it stays draining");
            }
        }
        metrics::counter!("syva_membership_updates_total", "op" => "detach", "result" => "applied")
            .increment(1);
        Ok(MembershipOutcome::Applied)
    }

    pub fn list_containers(&self, zone: Option<&ZoneName>) -> Vec<ContainerInfo> {
        let inner = lock(&self.inner);
        inner
            .containers
            .iter()
            .filter(|(_, c)| zone.is_none_or(|z| &c.zone == z))
            .map(|(id, c)| ContainerInfo {
                container_id: id.clone(),
                pod: c.pod.clone(),
                cgroup_id: c.cgroup,
                cgroup_path: self.cgroups.relative(&c.cgroup_dir),
                zone: c.zone.clone(),
                zone_id: inner.zones.get(&c.zone).map_or(ZoneId::HOST, |z| z.id),
                source: c.source.clone(),
                generation: c.generation,
                observed_at: c.observed_at,
                attached_at: c.attached_at,
            })
            .collect()
    }
}

fn check_source(name: &ZoneName, owner: &str, source: &str) -> Result<(), CoreError> {
    if !source.is_empty() && owner != source {
        return Err(CoreError::Conflict(format!(
            "zone {name} is managed by source {owner:?}, not {source:?}"
        )));
    }
    Ok(())
}

fn validate_container_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(FieldError::new(
            field,
            format!("is {} bytes long, the limit is {MAX_ID_LEN}", id.len()),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn validate_source(source: &str) -> Result<(), FieldError> {
    if source.is_empty() {
        return Err(FieldError::new(
            "source",
            "must name the adapter (e.g. \"k8s\", \"file\", \"ctl\")",
        ));
    }
    if source.len() > 64
        || !source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        return Err(FieldError::new(
            "source",
            format!("{source:?} is not a valid source name"),
        ));
    }
    Ok(())
}

/// Cgroup lookup errors for API callers: names relative to the cgroup v2
/// root (the host's mount point is not the caller's business).
fn cgroup_error(cgroups: &CgroupFs, field: &str, e: CgroupError) -> CoreError {
    match e {
        CgroupError::NoSuchCgroup { path } => CoreError::NotFound {
            what: "cgroup",
            name: cgroups.relative(&path),
        },
        CgroupError::NoSuchId(id) => CoreError::NotFound {
            what: "cgroup with id",
            name: id.to_string(),
        },
        other => FieldError::new(field, other.to_string()).into(),
    }
}

fn walk_error(policy: &ZonePolicy, e: WalkError) -> CoreError {
    match e {
        WalkError::TooMany { .. } => CoreError::Exhausted(e.to_string()),
        WalkError::Io { ref path, .. } => {
            let idx = policy
                .host_paths
                .iter()
                .position(|p| path.starts_with(&p.path))
                .unwrap_or(0);
            FieldError::new(format!("policy.host_paths[{idx}].path"), e.to_string()).into()
        }
    }
}

/// Socket files named by the policy, as (dev, ino) keys. Each must exist
/// and be a socket: a typo must not silently allow nothing.
fn resolve_host_sockets(policy: &ZonePolicy) -> Result<HashSet<FileKey>, CoreError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = HashSet::new();
    for (i, p) in policy.allowed_host_sockets.iter().enumerate() {
        let field = || format!("policy.allowed_host_sockets[{i}]");
        let md = std::fs::metadata(p).map_err(|e| FieldError::new(field(), format!("{p}: {e}")))?;
        if !md.file_type().is_socket() {
            return Err(FieldError::new(field(), format!("{p} is not a Unix socket")).into());
        }
        out.insert(FileKey::from_stat(md.dev(), md.ino()));
    }
    Ok(out)
}

fn zone_table(inner: &Inner) -> BTreeMap<ZoneName, (ZoneId, &ZonePolicy)> {
    inner
        .zones
        .iter()
        .map(|(n, z)| (n.clone(), (z.id, &z.policy)))
        .collect()
}

/// Directed kernel pairs for explicit pairs plus pairs declared by policies
/// whose peer exists.
fn effective_kernel_comms(
    zones: &BTreeMap<ZoneName, (ZoneId, &ZonePolicy)>,
    explicit: &BTreeSet<(ZoneName, ZoneName)>,
) -> BTreeSet<(ZoneId, ZoneId)> {
    let mut out = BTreeSet::new();
    let mut add = |a: &ZoneName, b: &ZoneName| {
        if let (Some((ia, _)), Some((ib, _))) = (zones.get(a), zones.get(b)) {
            out.insert((*ia, *ib));
            out.insert((*ib, *ia));
        }
    };
    for (a, b) in explicit {
        add(a, b);
    }
    for (n, (_, p)) in zones {
        for peer in &p.allowed_zones {
            add(n, peer);
        }
    }
    out
}

fn comm_intents(
    current: &BTreeSet<(ZoneId, ZoneId)>,
    desired: &BTreeSet<(ZoneId, ZoneId)>,
) -> Vec<Intent> {
    let mut out: Vec<Intent> = desired
        .difference(current)
        .map(|&(from, to)| Intent::PutComm { from, to })
        .collect();
    out.extend(
        current
            .difference(desired)
            .map(|&(from, to)| Intent::DeleteComm { from, to }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dataplane::{Capacities, MemoryDataplane};

    struct Fixture {
        dp: Arc<MemoryDataplane>,
        reg: Registry,
        signals: Arc<Signals>,
        cg: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dp = Arc::new(MemoryDataplane::new(Capacities::default()));
        let cg = tempfile::tempdir().unwrap();
        let signals = Arc::new(Signals::default());
        let reg = Registry::new(dp.clone(), CgroupFs::new(cg.path()), signals.clone());
        Fixture {
            dp,
            reg,
            signals,
            cg,
        }
    }

    fn name(s: &str) -> ZoneName {
        ZoneName::new(s).unwrap()
    }

    fn attach_req(id: &str, zone: &str, path: &str, generation: u64) -> AttachRequest {
        AttachRequest {
            container_id: id.into(),
            pod: None,
            cgroup: CgroupRef::Path(path.into()),
            zone: name(zone),
            source: "test".into(),
            generation,
            observed_at: None,
        }
    }

    fn ino(p: &std::path::Path) -> CgroupId {
        CgroupId(std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(p).unwrap(),
        ))
    }

    #[test]
    fn zone_flags_follow_the_policy() {
        let f = fixture();
        let policy = ZonePolicy {
            zone_type: ZoneType::Isolated,
            mode: EnforcementMode::Audit,
            allow_ptrace: true,
            ..Default::default()
        };
        let r = f.reg.register_zone(&name("a"), policy, "t").unwrap();
        let flags = f.dp.zone_flags(r.zone_id).unwrap();
        assert_eq!(
            flags,
            zone_flags::ACTIVE
                | zone_flags::AUDIT
                | zone_flags::ALLOW_PTRACE
                | zone_flags::ISOLATED
        );
        f.reg.remove_zone(&name("a"), false, "t").unwrap();
        assert_eq!(
            f.dp.zone_flags(r.zone_id).unwrap(),
            0,
            "removal clears the slot"
        );
    }

    #[test]
    fn declared_pairs_become_kernel_pairs_when_both_zones_exist() {
        let f = fixture();
        let p = |allowed: &[&str]| ZonePolicy {
            allowed_zones: allowed.iter().map(|s| name(s)).collect(),
            ..Default::default()
        };
        let a = f
            .reg
            .register_zone(&name("a"), p(&["b"]), "t")
            .unwrap()
            .zone_id;
        // The peer does not exist yet: nothing in the kernel.
        assert!(!f.dp.comm(a, ZoneId(2)).unwrap());
        let b = f
            .reg
            .register_zone(&name("b"), p(&[]), "t")
            .unwrap()
            .zone_id;
        assert!(
            f.dp.comm(a, b).unwrap() && f.dp.comm(b, a).unwrap(),
            "both directions"
        );
        f.reg.register_zone(&name("a"), p(&[]), "t").unwrap();
        assert!(!f.dp.comm(a, b).unwrap() && !f.dp.comm(b, a).unwrap());
    }

    #[test]
    fn failed_map_write_rolls_everything_back() {
        let f = fixture();
        let tree = tempfile::tempdir().unwrap();
        for i in 0..20 {
            std::fs::write(tree.path().join(i.to_string()), "x").unwrap();
        }
        let hp = HostPath {
            path: tree.path().to_str().unwrap().into(),
            recursive: true,
        };
        let policy = ZonePolicy {
            host_paths: vec![hp],
            ..Default::default()
        };
        // The zone slot and 10 files get written, then the dataplane fails.
        f.dp.fail_write_after(11);
        let e = f
            .reg
            .register_zone(&name("a"), policy.clone(), "t")
            .unwrap_err();
        assert!(matches!(e, CoreError::Dataplane(_)), "{e}");
        assert_eq!(
            f.dp.file_count().unwrap(),
            0,
            "files written before the failure were removed"
        );
        assert_eq!(f.dp.zone_flags(ZoneId(1)).unwrap(), 0);
        assert!(f.reg.list_zones().is_empty(), "bookkeeping untouched");
        assert_eq!(f.signals.map_write_failures.total(), 1);
        assert_eq!(f.signals.rollback_failures.total(), 0);
        let r = f.reg.register_zone(&name("a"), policy, "t").unwrap();
        assert_eq!(r.protected_inodes, 21);
        assert_eq!(r.zone_id, ZoneId(1));
    }

    #[test]
    fn failed_attach_leaves_no_member_behind() {
        let f = fixture();
        f.reg
            .register_zone(&name("a"), ZonePolicy::default(), "t")
            .unwrap();
        std::fs::create_dir_all(f.cg.path().join("pod/c1")).unwrap();
        std::fs::create_dir_all(f.cg.path().join("pod/c2")).unwrap();
        // Root entry and one descendant succeed, the second descendant fails.
        f.dp.fail_write_after(2);
        assert!(f.reg.attach(attach_req("x", "a", "pod", 1)).is_err());
        assert_eq!(f.signals.rollback_failures.total(), 0);
        assert!(
            f.dp.members().unwrap().is_empty(),
            "{:?}",
            f.dp.members().unwrap()
        );
        assert!(f.reg.list_containers(None).is_empty());
        let r = f.reg.attach(attach_req("x", "a", "pod", 1)).unwrap();
        assert_eq!(r.cgroups_covered, 3);
    }

    #[test]
    fn attach_maps_descendants_and_detach_unmaps_them() {
        let f = fixture();
        let zone = f
            .reg
            .register_zone(&name("a"), ZonePolicy::default(), "t")
            .unwrap()
            .zone_id;
        let pod = f.cg.path().join("pod");
        std::fs::create_dir_all(pod.join("c1/inner")).unwrap();
        f.reg.attach(attach_req("x", "a", "pod", 1)).unwrap();
        let m = f.dp.members().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            f.dp.member(ino(&pod)).unwrap(),
            Some(Member { zone, flags: 0 })
        );
        assert_eq!(
            f.dp.member(ino(&pod.join("c1/inner"))).unwrap(),
            Some(Member {
                zone,
                flags: MEMBER_INHERITED
            })
        );
        // A cgroup created after attach (the kernel maps those; simulate
        // its entry) is removed at detach too.
        std::fs::create_dir_all(pod.join("later")).unwrap();
        f.dp.put_member(
            ino(&pod.join("later")),
            Member {
                zone,
                flags: MEMBER_INHERITED,
            },
        )
        .unwrap();
        assert_eq!(
            f.reg.detach("x", "test", 0).unwrap(),
            MembershipOutcome::Applied
        );
        assert!(f.dp.members().unwrap().is_empty());
    }

    #[test]
    fn nested_attach_in_the_same_zone_is_kept_on_parent_detach() {
        let f = fixture();
        f.reg
            .register_zone(&name("a"), ZonePolicy::default(), "t")
            .unwrap();
        std::fs::create_dir_all(f.cg.path().join("pod/ctr")).unwrap();
        f.reg.attach(attach_req("pod", "a", "pod", 1)).unwrap();
        // The container cgroup is already mapped (inherited): attaching it
        // directly makes it a direct member.
        let r = f.reg.attach(attach_req("ctr", "a", "pod/ctr", 1)).unwrap();
        assert_eq!(r.outcome, MembershipOutcome::Applied);
        let ctr = ino(&f.cg.path().join("pod/ctr"));
        assert_eq!(
            f.dp.member(ctr).unwrap().map(|m| m.inherited()),
            Some(false)
        );
        f.reg.detach("pod", "test", 0).unwrap();
        assert!(
            f.dp.member(ctr).unwrap().is_some(),
            "the directly attached child stays"
        );
    }

    #[test]
    fn zone_removal_purges_kernel_tagged_files() {
        let f = fixture();
        let id = f
            .reg
            .register_zone(&name("a"), ZonePolicy::default(), "t")
            .unwrap()
            .zone_id;
        // Entries the kernel added (inheritance) are unknown to the
        // bookkeeping but must go with the zone, or a reused id would own them.
        let key = FileKey { dev: 9, ino: 9 };
        f.dp.put_file(
            key,
            FileOwner {
                zone: id,
                flags: file_flags::KERNEL | file_flags::DERIVED,
            },
        )
        .unwrap();
        f.reg.remove_zone(&name("a"), false, "t").unwrap();
        assert_eq!(f.dp.file(key).unwrap(), None);
    }

    #[test]
    fn kernel_tagged_files_survive_a_resync_of_the_same_paths() {
        let f = fixture();
        let tree = tempfile::tempdir().unwrap();
        let policy = ZonePolicy {
            host_paths: vec![HostPath {
                path: tree.path().to_str().unwrap().into(),
                recursive: true,
            }],
            ..Default::default()
        };
        let id = f
            .reg
            .register_zone(&name("a"), policy.clone(), "t")
            .unwrap()
            .zone_id;
        // A kernel-tagged inode that the walk cannot see (e.g. created
        // between the walk and the apply) is kept by a resync.
        let key = FileKey {
            dev: 1,
            ino: 424_242,
        };
        let owner = FileOwner {
            zone: id,
            flags: file_flags::KERNEL | file_flags::DERIVED,
        };
        f.dp.put_file(key, owner).unwrap();
        f.reg.register_zone(&name("a"), policy, "t").unwrap();
        assert_eq!(f.dp.file(key).unwrap(), Some(owner));
    }
}
