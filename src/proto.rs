//! The generated `syva.core.v1` code, and the one place where protobuf
//! messages and the domain model (`crate::model`) meet.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::view::{
    AttachmentView, ContainerView, EventView, Health, HookCountersView, MembershipOutcome, PodRef,
    SelfTestView, StatusView, Verdict, ZoneState, ZoneView,
};
use crate::model::{self, FieldError, HostPath, ZoneId, ZonePolicy};

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    missing_debug_implementations
)]
pub mod pb {
    tonic::include_proto!("syva.core.v1");
}

pub use pb::syva_core_client::SyvaCoreClient;
pub use pb::syva_core_server::{SyvaCore, SyvaCoreServer};

/// Validate a policy received over the wire into the model type.
/// `prefix` is the field path of the policy (e.g. "policy").
pub fn policy_from_pb(prefix: &str, p: &pb::ZonePolicy) -> Result<ZonePolicy, FieldError> {
    let zone_type = match pb::ZoneType::try_from(p.zone_type) {
        Ok(pb::ZoneType::Unspecified | pb::ZoneType::Standard) => model::ZoneType::Standard,
        Ok(pb::ZoneType::Privileged) => model::ZoneType::Privileged,
        Ok(pb::ZoneType::Isolated) => model::ZoneType::Isolated,
        Err(_) => {
            return Err(FieldError::new(
                format!("{prefix}.zone_type"),
                format!("unknown zone type {}", p.zone_type),
            ));
        }
    };
    let mode = match pb::EnforcementMode::try_from(p.mode) {
        Ok(pb::EnforcementMode::Unspecified | pb::EnforcementMode::Enforce) => {
            model::EnforcementMode::Enforce
        }
        Ok(pb::EnforcementMode::Audit) => model::EnforcementMode::Audit,
        Err(_) => {
            return Err(FieldError::new(
                format!("{prefix}.mode"),
                format!("unknown enforcement mode {}", p.mode),
            ));
        }
    };
    let mut host_paths = Vec::with_capacity(p.host_paths.len());
    for (i, hp) in p.host_paths.iter().enumerate() {
        let h = HostPath {
            path: hp.path.clone(),
            recursive: hp.recursive,
        };
        h.validate()
            .map_err(|m| FieldError::new(format!("{prefix}.host_paths[{i}].path"), m))?;
        if host_paths.iter().any(|o: &HostPath| o.path == h.path) {
            return Err(FieldError::new(
                format!("{prefix}.host_paths[{i}].path"),
                format!("{:?} is listed twice", h.path),
            ));
        }
        host_paths.push(h);
    }
    let mut allowed_zones = Vec::with_capacity(p.allowed_zones.len());
    for (i, z) in p.allowed_zones.iter().enumerate() {
        let name = model::zone_name(&format!("{prefix}.allowed_zones[{i}]"), z)?;
        if !allowed_zones.contains(&name) {
            allowed_zones.push(name);
        }
    }
    let mut allowed_host_sockets: Vec<String> = Vec::with_capacity(p.allowed_host_sockets.len());
    for (i, s) in p.allowed_host_sockets.iter().enumerate() {
        model::validate_abs_path(s)
            .map_err(|m| FieldError::new(format!("{prefix}.allowed_host_sockets[{i}]"), m))?;
        if !allowed_host_sockets.contains(s) {
            allowed_host_sockets.push(s.clone());
        }
    }
    Ok(ZonePolicy {
        zone_type,
        mode,
        host_paths,
        allowed_zones,
        allow_ptrace: p.allow_ptrace,
        allowed_host_sockets,
    })
}

pub fn policy_to_pb(p: &ZonePolicy) -> pb::ZonePolicy {
    pb::ZonePolicy {
        zone_type: match p.zone_type {
            model::ZoneType::Standard => pb::ZoneType::Standard,
            model::ZoneType::Privileged => pb::ZoneType::Privileged,
            model::ZoneType::Isolated => pb::ZoneType::Isolated,
        } as i32,
        mode: match p.mode {
            model::EnforcementMode::Enforce => pb::EnforcementMode::Enforce,
            model::EnforcementMode::Audit => pb::EnforcementMode::Audit,
        } as i32,
        host_paths: p
            .host_paths
            .iter()
            .map(|h| pb::HostPath {
                path: h.path.clone(),
                recursive: h.recursive,
            })
            .collect(),
        allowed_zones: p.allowed_zones.iter().map(|z| z.to_string()).collect(),
        allow_ptrace: p.allow_ptrace,
        allowed_host_sockets: p.allowed_host_sockets.clone(),
    }
}

pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub fn system_time(t: &prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn rfc3339(t: Option<&prost_types::Timestamp>) -> Option<String> {
    t.and_then(system_time)
        .map(|t| humantime::format_rfc3339_millis(t).to_string())
}

pub fn health_from_pb(h: i32) -> Health {
    match pb::Health::try_from(h) {
        Ok(pb::Health::Healthy) => Health::Healthy,
        Ok(pb::Health::Degraded) => Health::Degraded,
        _ => Health::Unhealthy,
    }
}

pub fn health_to_pb(h: Health) -> pb::Health {
    match h {
        Health::Healthy => pb::Health::Healthy,
        Health::Degraded => pb::Health::Degraded,
        Health::Unhealthy => pb::Health::Unhealthy,
    }
}

pub fn zone_state_from_pb(s: i32) -> ZoneState {
    match pb::ZoneState::try_from(s) {
        Ok(pb::ZoneState::Active) => ZoneState::Active,
        Ok(pb::ZoneState::Draining) => ZoneState::Draining,
        Ok(pb::ZoneState::Removed) => ZoneState::Removed,
        _ => ZoneState::Pending,
    }
}

pub fn zone_state_to_pb(s: ZoneState) -> pb::ZoneState {
    match s {
        ZoneState::Pending => pb::ZoneState::Pending,
        ZoneState::Active => pb::ZoneState::Active,
        ZoneState::Draining => pb::ZoneState::Draining,
        ZoneState::Removed => pb::ZoneState::Removed,
    }
}

pub fn outcome_from_pb(o: i32) -> Option<MembershipOutcome> {
    match pb::MembershipOutcome::try_from(o) {
        Ok(pb::MembershipOutcome::Applied) => Some(MembershipOutcome::Applied),
        Ok(pb::MembershipOutcome::Unchanged) => Some(MembershipOutcome::Unchanged),
        Ok(pb::MembershipOutcome::Stale) => Some(MembershipOutcome::Stale),
        Ok(pb::MembershipOutcome::NotFound) => Some(MembershipOutcome::NotFound),
        _ => None,
    }
}

pub fn outcome_to_pb(o: MembershipOutcome) -> pb::MembershipOutcome {
    match o {
        MembershipOutcome::Applied => pb::MembershipOutcome::Applied,
        MembershipOutcome::Unchanged => pb::MembershipOutcome::Unchanged,
        MembershipOutcome::Stale => pb::MembershipOutcome::Stale,
        MembershipOutcome::NotFound => pb::MembershipOutcome::NotFound,
    }
}

/// Views of messages received from core. Core validated what it sends, so
/// a policy that fails validation here is shown as the default policy
/// rather than failing a listing.
pub fn zone_view(z: &pb::Zone) -> ZoneView {
    ZoneView {
        name: z.name.clone(),
        id: ZoneId(z.id),
        state: zone_state_from_pb(z.state),
        member_count: z.member_count,
        policy: z
            .policy
            .as_ref()
            .and_then(|p| policy_from_pb("policy", p).ok())
            .unwrap_or_default(),
        source: z.source.clone(),
        protected_inodes: z.protected_inodes,
    }
}

pub fn container_view(c: &pb::Container) -> ContainerView {
    let pod = (!c.pod_name.is_empty() || !c.pod_uid.is_empty()).then(|| PodRef {
        namespace: c.pod_namespace.clone(),
        name: c.pod_name.clone(),
        uid: c.pod_uid.clone(),
    });
    ContainerView {
        container_id: c.container_id.clone(),
        pod,
        cgroup_id: c.cgroup_id,
        cgroup_path: c.cgroup_path.clone(),
        zone: c.zone.clone(),
        zone_id: ZoneId(c.zone_id),
        source: c.source.clone(),
        generation: c.generation,
        observed_at: rfc3339(c.observed_at.as_ref()),
        attached_at: rfc3339(c.attached_at.as_ref()),
    }
}

pub fn comm_view(c: &pb::CommPair) -> model::view::CommPairView {
    model::view::CommPairView {
        zone_a: c.zone_a.clone(),
        zone_b: c.zone_b.clone(),
        origins: c.origins.clone(),
    }
}

pub fn status_view(s: &pb::StatusResponse) -> StatusView {
    StatusView {
        version: s.version.clone(),
        git_commit: s.git_commit.clone(),
        boot_id: s.boot_id.clone(),
        uptime_seconds: s.uptime_seconds,
        health: health_from_pb(s.health),
        health_reasons: s.health_reasons.clone(),
        dataplane: s.dataplane.clone(),
        attachments: s
            .attachments
            .iter()
            .map(|a| AttachmentView {
                program: a.program.clone(),
                hook: a.hook.clone(),
                attached: a.attached,
            })
            .collect(),
        zones: s.zones,
        containers: s.containers,
        max_zones: s.max_zones,
        protected_inodes: s.protected_inodes,
        max_protected_inodes: s.max_protected_inodes,
        audit_mode: s.audit_mode,
        hooks: s
            .hooks
            .iter()
            .map(|h| HookCountersView {
                hook: h.hook.clone(),
                allow: h.allow,
                deny: h.deny,
                audit: h.audit,
                error: h.error,
                lost: h.lost,
            })
            .collect(),
        self_tests: s
            .self_tests
            .iter()
            .map(|t| SelfTestView {
                name: t.name.clone(),
                passed: t.passed,
                detail: t.detail.clone(),
            })
            .collect(),
        membership_stale: s.membership_stale,
        membership_conflicts: s.membership_conflicts,
        map_write_failures: s.map_write_failures,
        events_dropped: s.events_dropped,
        adapters: s
            .adapters
            .iter()
            .map(|a| model::view::AdapterStatusView {
                source: a.source.clone(),
                instance: a.instance.clone(),
                problems: a
                    .problems
                    .iter()
                    .map(|p| model::view::AdapterProblemView {
                        object: p.object.clone(),
                        message: p.message.clone(),
                    })
                    .collect(),
                last_sync: rfc3339(a.last_sync.as_ref()),
                reported_at: rfc3339(a.reported_at.as_ref()),
            })
            .collect(),
    }
}

pub fn event_view(e: &pb::Event) -> EventView {
    EventView {
        time: rfc3339(e.time.as_ref()).unwrap_or_default(),
        hook: e.hook.clone(),
        verdict: if e.verdict == pb::Verdict::Audit as i32 {
            Verdict::Audit
        } else {
            Verdict::Deny
        },
        reason: e.reason.clone(),
        pid: e.pid,
        tgid: e.tgid,
        comm: e.comm.clone(),
        cgroup_id: e.cgroup_id,
        caller_zone: e.caller_zone.clone(),
        caller_zone_id: e.caller_zone_id,
        target_zone: e.target_zone.clone(),
        target_zone_id: e.target_zone_id,
        path: e.path.clone(),
        target_dev: e.target_dev,
        target_ino: e.target_ino,
        target_pid: e.target_pid,
        target_cgroup_id: e.target_cgroup_id,
        dropped_before: e.dropped_before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_round_trip() {
        let p = ZonePolicy {
            zone_type: model::ZoneType::Isolated,
            mode: model::EnforcementMode::Audit,
            host_paths: vec![HostPath {
                path: "/srv/a".into(),
                recursive: true,
            }],
            allowed_zones: vec![model::ZoneName::new("b").unwrap()],
            allow_ptrace: true,
            allowed_host_sockets: vec!["/dev/log".into()],
        };
        assert_eq!(policy_from_pb("policy", &policy_to_pb(&p)).unwrap(), p);
    }

    #[test]
    fn policy_errors_name_the_field() {
        let mut p = policy_to_pb(&ZonePolicy::default());
        p.host_paths.push(pb::HostPath {
            path: "/ok".into(),
            recursive: false,
        });
        p.host_paths.push(pb::HostPath {
            path: "relative".into(),
            recursive: false,
        });
        let e = policy_from_pb("policy", &p).unwrap_err();
        assert_eq!(e.field, "policy.host_paths[1].path");

        let mut p = policy_to_pb(&ZonePolicy::default());
        p.allowed_zones = vec!["ok".into(), "../x".into()];
        assert_eq!(
            policy_from_pb("policy", &p).unwrap_err().field,
            "policy.allowed_zones[1]"
        );

        let mut p = policy_to_pb(&ZonePolicy::default());
        p.zone_type = 42;
        assert_eq!(
            policy_from_pb("policy", &p).unwrap_err().field,
            "policy.zone_type"
        );
    }

    #[test]
    fn timestamps_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000);
        assert_eq!(system_time(&timestamp(t)), Some(t));
        assert_eq!(
            system_time(&prost_types::Timestamp {
                seconds: -1,
                nanos: 0
            }),
            None
        );
    }
}
