//! The ONLY code that reads or writes Syva's BPF maps: `BpfDataplane`
//! implements `Dataplane` on them, plus the self-test slots and the event
//! ring buffer reader. Keys and values are the skeleton's generated types
//! (from bpf/include/syva_types.h), turned into bytes with `plain`.

use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use libbpf_rs::{Link, MapCore, MapFlags, MapHandle};

use crate::model::{CgroupId, FileKey, ZoneId};

use super::bpf::types;
use super::dataplane::{
    Attachment, Capacities, Dataplane, DataplaneError, FileOwner, HookCounts, Member, Result,
    SelfTest,
};
use super::events::{RawEvent, c_string};
use super::hooks::{HOOK_SLOTS, HOOKS, VERDICTS};

// SAFETY: (this and the impls below) each type is a #[repr(C)] struct generated
// from syva_types.h made only of integers and integer arrays with explicit
// padding fields, so every bit pattern is a valid value and there are no
// implicit padding bytes (the C side _Static_asserts the sizes).
unsafe impl plain::Plain for types::syva_member {}
// SAFETY: see above.
unsafe impl plain::Plain for types::syva_file_key {}
// SAFETY: see above.
unsafe impl plain::Plain for types::syva_file_owner {}
// SAFETY: see above.
unsafe impl plain::Plain for types::syva_zone_policy {}
// SAFETY: see above.
unsafe impl plain::Plain for types::syva_comm_key {}
// SAFETY: see above.
unsafe impl plain::Plain for types::syva_config {}
// SAFETY: see above.
unsafe impl plain::Plain for types::syva_selftest {}
// SAFETY: see above.
unsafe impl plain::Plain for types::syva_event {}
// SAFETY: see above.
unsafe impl plain::Plain for types::syva_host_socket_key {}

fn host_socket_key(zone: ZoneId, s: FileKey) -> types::syva_host_socket_key {
    types::syva_host_socket_key {
        zone_id: zone.0,
        dev: s.dev,
        ino: s.ino,
        ..Default::default()
    }
}

fn bytes<T: plain::Plain>(v: &T) -> &[u8] {
    // SAFETY: T is Plain (no padding, any bit pattern valid), so viewing it
    // as bytes reads only initialized memory.
    unsafe { plain::as_bytes(v) }
}

fn decode<T: plain::Plain + Default>(b: &[u8]) -> Option<T> {
    let mut v = T::default();
    plain::copy_from_bytes(&mut v, b).ok()?;
    Some(v)
}

fn file_key(k: FileKey) -> types::syva_file_key {
    types::syva_file_key {
        dev: k.dev,
        ino: k.ino,
    }
}

fn comm_key(from: ZoneId, to: ZoneId) -> types::syva_comm_key {
    types::syva_comm_key {
        from_zone: from.0,
        to_zone: to.0,
    }
}

/// The loaded maps, as owned handles (independent of the skeleton's lifetime).
#[derive(Debug)]
pub struct Maps {
    pub members: MapHandle,
    pub files: MapHandle,
    pub zones: MapHandle,
    pub comms: MapHandle,
    pub config: MapHandle,
    pub counters: MapHandle,
    pub selftest: MapHandle,
    pub events: MapHandle,
    pub host_sockets: MapHandle,
}

/// One self-test observation (`struct syva_selftest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub cgroup: CgroupId,
    pub file: FileKey,
    pub pid: u32,
}

/// `Dataplane` on the real kernel maps.
#[derive(Debug)]
pub struct BpfDataplane {
    maps: Maps,
    caps: Capacities,
    attachments: Vec<Attachment>,
    self_tests: Mutex<Vec<SelfTest>>,
    /// Programs stay attached while these live.
    _links: Vec<Link>,
}

fn map_err(map: &'static str, op: &'static str) -> impl Fn(libbpf_rs::Error) -> DataplaneError {
    move |e| DataplaneError::Map {
        map,
        op,
        source: io::Error::other(format!("{e:#}")),
    }
}

/// Map update errors: E2BIG on a hash map means it holds max_entries.
fn update_err(
    map: &'static str,
    capacity: u32,
    flag: &'static str,
) -> impl Fn(libbpf_rs::Error) -> DataplaneError {
    move |e| {
        if e.kind() == libbpf_rs::ErrorKind::TooBig {
            DataplaneError::Full {
                map,
                capacity,
                flag,
            }
        } else {
            map_err(map, "update")(e)
        }
    }
}

impl BpfDataplane {
    pub fn new(
        maps: Maps,
        caps: Capacities,
        attachments: Vec<Attachment>,
        links: Vec<Link>,
    ) -> Self {
        Self {
            maps,
            caps,
            attachments,
            self_tests: Mutex::new(Vec::new()),
            _links: links,
        }
    }

    pub fn set_self_tests(&self, tests: Vec<SelfTest>) {
        *self.self_tests.lock().unwrap_or_else(|p| p.into_inner()) = tests;
    }

    fn read_config(&self) -> Result<types::syva_config> {
        let v = self
            .maps
            .config
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_err("syva_config", "lookup"))?;
        Ok(v.as_deref().and_then(decode).unwrap_or_default())
    }

    fn write_config(&self, c: &types::syva_config) -> Result<()> {
        self.maps
            .config
            .update(&0u32.to_ne_bytes(), bytes(c), MapFlags::ANY)
            .map_err(map_err("syva_config", "update"))
    }

    /// Self-test: name the thread whose file accesses hooks should record
    /// (0 stops recording) and clear the slots.
    pub fn arm_selftest(&self, pid: u32) -> Result<()> {
        for slot in 0..HOOK_SLOTS {
            self.maps
                .selftest
                .update(
                    &slot.to_ne_bytes(),
                    bytes(&types::syva_selftest::default()),
                    MapFlags::ANY,
                )
                .map_err(map_err("syva_selftest", "update"))?;
        }
        let mut c = self.read_config()?;
        c.selftest_pid = pid;
        self.write_config(&c)
    }

    pub fn selftest_observation(&self, hook: u32) -> Result<Option<Observation>> {
        let v = self
            .maps
            .selftest
            .lookup(&hook.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_err("syva_selftest", "lookup"))?;
        Ok(v.as_deref()
            .and_then(decode::<types::syva_selftest>)
            .filter(|s| s.seen != 0)
            .map(|s| Observation {
                cgroup: CgroupId(s.cgroup_id),
                file: FileKey {
                    dev: s.dev,
                    ino: s.ino,
                },
                pid: s.pid,
            }))
    }

    /// Read the event ring buffer on a thread until `stop` is set.
    pub fn spawn_event_reader(
        &self,
        sink: impl Fn(RawEvent) + Send + 'static,
        on_decode_error: impl Fn() + Send + 'static,
        stop: Arc<AtomicBool>,
    ) -> io::Result<JoinHandle<()>> {
        let map =
            MapHandle::try_from(&self.maps.events).map_err(|e| io::Error::other(e.to_string()))?;
        std::thread::Builder::new()
            .name("syva-events".into())
            .spawn(move || {
                let mut builder = libbpf_rs::RingBufferBuilder::new();
                let added = builder
                    .add(&map, move |data: &[u8]| {
                        match decode::<types::syva_event>(data) {
                            Some(e) => sink(raw_event(&e)),
                            None => on_decode_error(),
                        }
                        0
                    })
                    .map(|_| ());
                let rb = match added.and_then(|()| builder.build()) {
                    Ok(rb) => rb,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the event ring buffer: no events will be reported");
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = rb.poll(Duration::from_millis(200)) {
                        // EINTR is routine (signals); anything else is logged and retried.
                        if e.kind() != libbpf_rs::ErrorKind::Interrupted {
                            tracing::warn!(error = %e, "polling the event ring buffer failed");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })
    }
}

fn raw_event(e: &types::syva_event) -> RawEvent {
    let to_u8 = |s: &[i8]| s.iter().map(|&c| c.to_ne_bytes()[0]).collect::<Vec<u8>>();
    RawEvent {
        cgroup_id: CgroupId(e.cgroup_id),
        target: FileKey {
            dev: e.target_dev,
            ino: e.target_ino,
        },
        target_cgroup_id: e.target_cgroup_id,
        pid: e.pid,
        tgid: e.tgid,
        caller_zone: ZoneId(e.caller_zone),
        target_zone: ZoneId(e.target_zone),
        target_pid: e.target_pid,
        hook: e.hook,
        verdict: e.verdict,
        reason: e.reason,
        comm: c_string(&to_u8(&e.comm)),
        name: c_string(&to_u8(&e.name)),
    }
}

impl Dataplane for BpfDataplane {
    fn kind(&self) -> &'static str {
        "bpf"
    }

    fn capacities(&self) -> Capacities {
        self.caps
    }

    fn zone_flags(&self, zone: ZoneId) -> Result<u32> {
        let v = self
            .maps
            .zones
            .lookup(&zone.0.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_err("syva_zones", "lookup"))?;
        Ok(v.as_deref()
            .and_then(decode::<types::syva_zone_policy>)
            .map_or(0, |p| p.flags))
    }

    fn set_zone_flags(&self, zone: ZoneId, flags: u32) -> Result<()> {
        let v = types::syva_zone_policy {
            flags,
            ..Default::default()
        };
        self.maps
            .zones
            .update(&zone.0.to_ne_bytes(), bytes(&v), MapFlags::ANY)
            .map_err(map_err("syva_zones", "update"))
    }

    fn member(&self, cgroup: CgroupId) -> Result<Option<Member>> {
        let v = self
            .maps
            .members
            .lookup(&cgroup.0.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_err("syva_members", "lookup"))?;
        Ok(v.as_deref()
            .and_then(decode::<types::syva_member>)
            .map(|m| Member {
                zone: ZoneId(m.zone_id),
                flags: m.flags,
            }))
    }

    fn put_member(&self, cgroup: CgroupId, member: Member) -> Result<()> {
        let v = types::syva_member {
            zone_id: member.zone.0,
            flags: member.flags,
        };
        self.maps
            .members
            .update(&cgroup.0.to_ne_bytes(), bytes(&v), MapFlags::ANY)
            .map_err(update_err(
                "syva_members",
                self.caps.max_members,
                "--max-members",
            ))
    }

    fn delete_member(&self, cgroup: CgroupId) -> Result<()> {
        delete_absent_ok(&self.maps.members, &cgroup.0.to_ne_bytes(), "syva_members")
    }

    fn members(&self) -> Result<Vec<(CgroupId, Member)>> {
        let mut out = Vec::new();
        for k in self.maps.members.keys() {
            let Ok(arr) = <[u8; 8]>::try_from(k.as_slice()) else {
                continue;
            };
            let id = CgroupId(u64::from_ne_bytes(arr));
            // Entries can vanish between keys() and lookup (rmdir): skip them.
            if let Some(m) = self.member(id)? {
                out.push((id, m));
            }
        }
        Ok(out)
    }

    fn file(&self, key: FileKey) -> Result<Option<FileOwner>> {
        let v = self
            .maps
            .files
            .lookup(bytes(&file_key(key)), MapFlags::ANY)
            .map_err(map_err("syva_files", "lookup"))?;
        Ok(v.as_deref()
            .and_then(decode::<types::syva_file_owner>)
            .map(|o| FileOwner {
                zone: ZoneId(o.zone_id),
                flags: o.flags,
            }))
    }

    fn put_file(&self, key: FileKey, owner: FileOwner) -> Result<()> {
        let v = types::syva_file_owner {
            zone_id: owner.zone.0,
            flags: owner.flags,
        };
        self.maps
            .files
            .update(bytes(&file_key(key)), bytes(&v), MapFlags::ANY)
            .map_err(update_err(
                "syva_files",
                self.caps.max_files,
                "--max-protected-files",
            ))
    }

    fn delete_file(&self, key: FileKey) -> Result<()> {
        delete_absent_ok(&self.maps.files, bytes(&file_key(key)), "syva_files")
    }

    fn files(&self) -> Result<Vec<(FileKey, FileOwner)>> {
        let mut out = Vec::new();
        for k in self.maps.files.keys() {
            let Some(key) = decode::<types::syva_file_key>(&k) else {
                continue;
            };
            let key = FileKey {
                dev: key.dev,
                ino: key.ino,
            };
            // Entries can vanish between keys() and lookup (inode freed).
            if let Some(o) = self.file(key)? {
                out.push((key, o));
            }
        }
        Ok(out)
    }

    fn file_count(&self) -> Result<u64> {
        Ok(self.maps.files.keys().count() as u64)
    }

    fn comm(&self, from: ZoneId, to: ZoneId) -> Result<bool> {
        let v = self
            .maps
            .comms
            .lookup(bytes(&comm_key(from, to)), MapFlags::ANY)
            .map_err(map_err("syva_comms", "lookup"))?;
        Ok(v.is_some())
    }

    fn put_comm(&self, from: ZoneId, to: ZoneId) -> Result<()> {
        self.maps
            .comms
            .update(bytes(&comm_key(from, to)), &[1u8], MapFlags::ANY)
            .map_err(update_err("syva_comms", self.caps.max_comms, "--max-comms"))
    }

    fn delete_comm(&self, from: ZoneId, to: ZoneId) -> Result<()> {
        delete_absent_ok(&self.maps.comms, bytes(&comm_key(from, to)), "syva_comms")
    }

    fn host_socket(&self, zone: ZoneId, socket: FileKey) -> Result<bool> {
        let v = self
            .maps
            .host_sockets
            .lookup(bytes(&host_socket_key(zone, socket)), MapFlags::ANY)
            .map_err(map_err("syva_host_sockets", "lookup"))?;
        Ok(v.is_some())
    }

    fn put_host_socket(&self, zone: ZoneId, socket: FileKey) -> Result<()> {
        self.maps
            .host_sockets
            .update(bytes(&host_socket_key(zone, socket)), &[1u8], MapFlags::ANY)
            .map_err(update_err(
                "syva_host_sockets",
                self.caps.max_host_sockets,
                "--max-host-sockets",
            ))
    }

    fn delete_host_socket(&self, zone: ZoneId, socket: FileKey) -> Result<()> {
        delete_absent_ok(
            &self.maps.host_sockets,
            bytes(&host_socket_key(zone, socket)),
            "syva_host_sockets",
        )
    }

    fn host_sockets(&self) -> Result<Vec<(ZoneId, FileKey)>> {
        Ok(self
            .maps
            .host_sockets
            .keys()
            .filter_map(|k| decode::<types::syva_host_socket_key>(&k))
            .map(|k| {
                (
                    ZoneId(k.zone_id),
                    FileKey {
                        dev: k.dev,
                        ino: k.ino,
                    },
                )
            })
            .collect())
    }

    fn config_flags(&self) -> Result<u32> {
        Ok(self.read_config()?.flags)
    }

    fn set_config_flags(&self, flags: u32) -> Result<()> {
        let mut c = self.read_config()?;
        c.flags = flags;
        self.write_config(&c)
    }

    fn counters(&self) -> Result<Vec<HookCounts>> {
        let mut out = vec![[0u64; VERDICTS.len()]; HOOKS.len()];
        for (i, h) in HOOKS.iter().enumerate() {
            for (v, slot) in out[i].iter_mut().enumerate() {
                let key = h.id * VERDICTS.len() as u32 + v as u32;
                let per_cpu = self
                    .maps
                    .counters
                    .lookup_percpu(&key.to_ne_bytes(), MapFlags::ANY)
                    .map_err(map_err("syva_counters", "lookup"))?
                    .unwrap_or_default();
                *slot = per_cpu
                    .iter()
                    .filter_map(|b| <[u8; 8]>::try_from(b.get(..8)?).ok())
                    .map(u64::from_ne_bytes)
                    .sum();
            }
        }
        Ok(out)
    }

    fn attachments(&self) -> Vec<Attachment> {
        self.attachments.clone()
    }

    fn self_tests(&self) -> Vec<SelfTest> {
        self.self_tests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn delete_absent_ok(map: &MapHandle, key: &[u8], name: &'static str) -> Result<()> {
    match map.delete(key) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(map_err(name, "delete")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated Rust types have the sizes the C side asserts.
    #[test]
    fn generated_types_match_c_layout() {
        use std::mem::size_of;
        assert_eq!(size_of::<types::syva_member>(), 8);
        assert_eq!(size_of::<types::syva_file_key>(), 16);
        assert_eq!(size_of::<types::syva_file_owner>(), 8);
        assert_eq!(size_of::<types::syva_zone_policy>(), 8);
        assert_eq!(size_of::<types::syva_comm_key>(), 8);
        assert_eq!(size_of::<types::syva_config>(), 8);
        assert_eq!(size_of::<types::syva_selftest>(), 32);
        assert_eq!(size_of::<types::syva_event>(), 112);
        assert_eq!(size_of::<types::syva_host_socket_key>(), 24);
    }

    #[test]
    fn event_records_decode() {
        let mut e = types::syva_event {
            cgroup_id: 42,
            target_dev: 0x143,
            target_ino: 7,
            pid: 10,
            tgid: 9,
            caller_zone: 1,
            target_zone: 2,
            hook: 2,
            verdict: 1,
            reason: 1,
            ..Default::default()
        };
        for (i, b) in b"cat\0".iter().enumerate() {
            e.comm[i] = i8::from_ne_bytes([*b]);
        }
        let raw = raw_event(&decode::<types::syva_event>(bytes(&e)).unwrap());
        assert_eq!(raw.cgroup_id, CgroupId(42));
        assert_eq!(raw.target, FileKey { dev: 0x143, ino: 7 });
        assert_eq!(raw.comm, "cat");
        assert_eq!(raw.hook, 2);
        assert!(
            decode::<types::syva_event>(&[0u8; 10]).is_none(),
            "short records are rejected"
        );
    }
}
