//! JSON shapes of the API's objects, as printed by `syva ctl --json` and
//! served by `syva api`. Enums are lowercase strings, times RFC 3339. The
//! `ToSchema` derives describe them in the REST API's OpenAPI document
//! (schema names as published there).

use serde::{Deserialize, Serialize};

use super::{ZoneId, ZonePolicy};

/// Health as core reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = EngineHealth)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneState {
    Pending,
    Active,
    Draining,
    Removed,
}

impl ZoneState {
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneState::Pending => "pending",
            ZoneState::Active => "active",
            ZoneState::Draining => "draining",
            ZoneState::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipOutcome {
    Applied,
    Unchanged,
    Stale,
    NotFound,
}

impl MembershipOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipOutcome::Applied => "applied",
            MembershipOutcome::Unchanged => "unchanged",
            MembershipOutcome::Stale => "stale",
            MembershipOutcome::NotFound => "not_found",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneView {
    pub name: String,
    pub id: ZoneId,
    pub state: ZoneState,
    pub member_count: u32,
    pub policy: ZonePolicy,
    pub source: String,
    pub protected_inodes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerView {
    pub container_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    pub cgroup_id: u64,
    pub cgroup_path: String,
    pub zone: String,
    pub zone_id: ZoneId,
    pub source: String,
    pub generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommPairView {
    pub zone_a: String,
    pub zone_b: String,
    pub origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ProgramAttachment)]
pub struct AttachmentView {
    pub program: String,
    pub hook: String,
    pub attached: bool,
}

/// Decisions of one LSM hook since core started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = HookCounters)]
pub struct HookCountersView {
    pub hook: String,
    pub allow: u64,
    pub deny: u64,
    /// Would-deny decisions allowed by audit mode.
    pub audit: u64,
    /// Kernel read failures.
    pub error: u64,
    /// Events that did not fit in the ring buffer.
    pub lost: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SelfTest)]
pub struct SelfTestView {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// State of syva core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Status)]
pub struct StatusView {
    pub version: String,
    pub git_commit: String,
    /// Changes every time core starts; core forgets everything on restart.
    pub boot_id: String,
    pub uptime_seconds: u64,
    pub health: Health,
    pub health_reasons: Vec<String>,
    /// `bpf` (kernel enforcement) or `memory` (test fake, enforces nothing).
    pub dataplane: String,
    pub attachments: Vec<AttachmentView>,
    pub zones: u32,
    pub containers: u32,
    pub max_zones: u32,
    pub protected_inodes: u64,
    pub max_protected_inodes: u64,
    /// Node-wide audit mode: nothing is denied, would-denies are reported.
    pub audit_mode: bool,
    pub hooks: Vec<HookCountersView>,
    pub self_tests: Vec<SelfTestView>,
    pub membership_stale: u64,
    pub membership_conflicts: u64,
    pub map_write_failures: u64,
    pub events_dropped: u64,
    pub adapters: Vec<AdapterStatusView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AdapterProblem)]
pub struct AdapterProblemView {
    /// What the problem is about (a file, `namespace/name` of a resource).
    pub object: String,
    pub message: String,
}

/// What an adapter (`file`, `k8s`, `api`) last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AdapterStatus)]
pub struct AdapterStatusView {
    pub source: String,
    pub instance: String,
    pub problems: Vec<AdapterProblemView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub last_sync: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub reported_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The operation was denied.
    Deny,
    /// It would have been denied; allowed by audit mode.
    Audit,
}

/// One deny or would-deny decision of the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    #[schema(format = DateTime)]
    pub time: String,
    /// LSM hook, e.g. `file_open`.
    pub hook: String,
    pub verdict: Verdict,
    pub reason: String,
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    /// Zone of the acting task (empty: the host).
    pub caller_zone: String,
    pub caller_zone_id: u32,
    /// Zone of the target (empty: the host).
    pub target_zone: String,
    pub target_zone_id: u32,
    /// Registered path of the target file when known, else its last component.
    pub path: String,
    pub target_dev: u64,
    pub target_ino: u64,
    pub target_pid: u32,
    pub target_cgroup_id: u64,
    /// Events this stream lost (too slow) just before this one.
    pub dropped_before: u64,
}
