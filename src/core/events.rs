//! Deny and would-deny events: decoded kernel records are enriched (zone
//! names, registered path, hook and reason text) and fanned out to any
//! number of `WatchEvents` subscribers through a bounded broadcast channel.
//! A slow subscriber loses events (counted), it never blocks the ring
//! buffer reader or the other subscribers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;

use crate::model::{CgroupId, FileKey, ZoneId, ZoneName};

use super::hooks;
use super::state::Registry;

/// How many events a subscriber may fall behind before it loses some.
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// A kernel event record, decoded (see `struct syva_event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub cgroup_id: CgroupId,
    pub target: FileKey,
    pub target_cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    pub caller_zone: ZoneId,
    pub target_zone: ZoneId,
    pub target_pid: u32,
    pub hook: u16,
    /// `SYVA_VERDICT_DENY` or `SYVA_VERDICT_AUDIT`.
    pub verdict: u8,
    pub reason: u8,
    pub comm: String,
    /// Last path component of the target, when the kernel knew it.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time: SystemTime,
    pub hook: &'static str,
    /// true: denied; false: would have been denied (audit mode).
    pub denied: bool,
    pub reason: &'static str,
    pub caller_zone: Option<ZoneName>,
    pub target_zone: Option<ZoneName>,
    /// Registered path of the target when known, else its last component.
    pub path: String,
    pub raw: RawEvent,
}

/// Fan-out point of events.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new(SUBSCRIBER_BUFFER)
    }
}

impl EventHub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Enrich a raw record and send it to every subscriber.
    pub fn publish(&self, registry: &Registry, raw: RawEvent) {
        let event = enrich(registry, raw);
        let hook = event.hook;
        let verdict = if event.denied { "deny" } else { "audit" };
        metrics::counter!("syva_events_total", "hook" => hook, "verdict" => verdict).increment(1);
        // Err means "no subscriber right now": nothing to deliver, not a loss.
        let _ = self.tx.send(Arc::new(event));
    }
}

fn enrich(registry: &Registry, raw: RawEvent) -> Event {
    let hook = hooks::by_id(u32::from(raw.hook)).map_or("unknown", |h| h.name);
    let path = registry
        .file_path(raw.target)
        .map(PathBuf::into_os_string)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| raw.name.clone());
    Event {
        time: SystemTime::now(),
        hook,
        denied: raw.verdict == hooks::VERDICT_DENY as u8,
        reason: hooks::reason(raw.reason),
        caller_zone: registry.zone_name(raw.caller_zone),
        target_zone: registry.zone_name(raw.target_zone),
        path,
        raw,
    }
}

/// C string bytes (NUL-terminated or full) to text.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::CgroupFs;
    use crate::core::dataplane::{Capacities, MemoryDataplane};
    use crate::core::health::Signals;

    fn raw(hook: u16, verdict: u8) -> RawEvent {
        RawEvent {
            cgroup_id: CgroupId(7),
            target: FileKey { dev: 1, ino: 2 },
            target_cgroup_id: 0,
            pid: 10,
            tgid: 10,
            caller_zone: ZoneId(1),
            target_zone: ZoneId(2),
            target_pid: 0,
            hook,
            verdict,
            reason: 1,
            comm: "cat".into(),
            name: "secret".into(),
        }
    }

    fn registry() -> Registry {
        Registry::new(
            Arc::new(MemoryDataplane::new(Capacities::default())),
            CgroupFs::new("/nonexistent"),
            Arc::new(Signals::default()),
        )
    }

    #[test]
    fn c_strings() {
        assert_eq!(c_string(b"cat\0\0\0"), "cat");
        assert_eq!(c_string(b"full"), "full");
    }

    #[tokio::test]
    async fn every_subscriber_gets_events_and_slow_ones_lose_some() {
        let reg = registry();
        let hub = EventHub::new(4);
        let mut fast = hub.subscribe();
        let mut slow = hub.subscribe();
        hub.publish(&reg, raw(0, 1));
        let e = fast.recv().await.unwrap();
        assert_eq!(e.hook, "file_open");
        assert!(e.denied);
        assert_eq!(e.path, "secret", "unregistered file: kernel-provided name");
        assert_eq!(e.caller_zone, None, "unknown zone ids have no name");
        for _ in 0..10 {
            hub.publish(&reg, raw(1, 2));
        }
        // The slow subscriber lagged: the channel tells how many it lost.
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 7),
            other => panic!("expected lag, got {other:?}"),
        }
        let e = slow.recv().await.unwrap();
        assert_eq!(e.hook, "exec");
        assert!(!e.denied, "verdict 2 is audit");
        // The fast one still sees the most recent events.
        assert!(
            fast.recv().await.is_err(),
            "fast also lagged behind 10 events in a 4-slot buffer"
        );
    }
}
