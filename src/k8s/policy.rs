//! SyvaZonePolicy -> zones in core: validation of a spec into the model
//! policy (never half-applied), the kube-runtime controller's reconcile
//! (RegisterZone, source "k8s"), and this node's entry in the status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{Expression, Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tokio::sync::Notify;

use super::crd::{ModeSpec, NodeStatus, SyvaZonePolicy, ZoneTypeSpec};
use super::{SOURCE, now_time};
use crate::client::CoreClient;
use crate::model::{self, EnforcementMode, FieldError, HostPath, ZoneName, ZonePolicy, ZoneType};
use crate::proto::{self, pb};

/// A validated SyvaZonePolicy: the zone, its policy and who belongs to it.
#[derive(Debug, Clone)]
pub struct Desired {
    pub zone: ZoneName,
    pub policy: ZonePolicy,
    pub selector: Selector,
    /// Empty: every namespace.
    pub namespaces: BTreeSet<String>,
    pub generation: i64,
}

impl Desired {
    /// Does this zone select a pod with these namespace and labels?
    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.namespaces.is_empty() || self.namespaces.contains(namespace))
            && self.selector.matches(labels)
    }
}

/// Validate a policy object completely; nothing of an invalid spec is used.
pub fn desired(obj: &SyvaZonePolicy) -> Result<Desired, FieldError> {
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let zone = model::zone_name("metadata.name", name)?;
    let spec = &obj.spec;
    let mut host_paths: Vec<HostPath> = Vec::with_capacity(spec.host_paths.len());
    for (i, hp) in spec.host_paths.iter().enumerate() {
        let h = HostPath {
            path: hp.path.clone(),
            recursive: hp.recursive,
        };
        h.validate()
            .map_err(|m| FieldError::new(format!("spec.hostPaths[{i}].path"), m))?;
        if host_paths.iter().any(|o| o.path == h.path) {
            return Err(FieldError::new(
                format!("spec.hostPaths[{i}].path"),
                format!("{:?} is listed twice", h.path),
            ));
        }
        host_paths.push(h);
    }
    let mut allowed_zones = Vec::with_capacity(spec.allowed_zones.len());
    for (i, z) in spec.allowed_zones.iter().enumerate() {
        let z = model::zone_name(&format!("spec.allowedZones[{i}]"), z)?;
        if !allowed_zones.contains(&z) {
            allowed_zones.push(z);
        }
    }
    let mut allowed_host_sockets = Vec::with_capacity(spec.allowed_host_sockets.len());
    for (i, p) in spec.allowed_host_sockets.iter().enumerate() {
        model::validate_abs_path(p)
            .map_err(|m| FieldError::new(format!("spec.allowedHostSockets[{i}]"), m))?;
        if !allowed_host_sockets.contains(p) {
            allowed_host_sockets.push(p.clone());
        }
    }
    let selector = selector(&spec.pod_selector)?;
    let mut namespaces = BTreeSet::new();
    for (i, ns) in spec.namespaces.iter().enumerate() {
        if !is_dns_label(ns) {
            return Err(FieldError::new(
                format!("spec.namespaces[{i}]"),
                format!("{ns:?} is not a namespace name (DNS label)"),
            ));
        }
        namespaces.insert(ns.clone());
    }
    Ok(Desired {
        zone,
        policy: ZonePolicy {
            zone_type: match spec.zone_type {
                ZoneTypeSpec::Standard => ZoneType::Standard,
                ZoneTypeSpec::Privileged => ZoneType::Privileged,
                ZoneTypeSpec::Isolated => ZoneType::Isolated,
            },
            mode: match spec.mode {
                ModeSpec::Enforce => EnforcementMode::Enforce,
                ModeSpec::Audit => EnforcementMode::Audit,
            },
            host_paths,
            allowed_zones,
            allow_ptrace: spec.allow_ptrace,
            allowed_host_sockets,
        },
        selector,
        namespaces,
        generation: obj.metadata.generation.unwrap_or(0),
    })
}

/// kube's `Selector::try_from(LabelSelector)` does the same conversion but
/// its errors do not say which expression is wrong: this one names the field.
fn selector(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<Selector, FieldError> {
    let mut out = Selector::default();
    if let Some(labels) = &s.match_labels {
        for (k, v) in labels {
            out.extend([Expression::Equal(k.clone(), v.clone())]);
        }
    }
    for (i, req) in s.match_expressions.iter().flatten().enumerate() {
        let field = format!("spec.podSelector.matchExpressions[{i}]");
        let values = req.values.clone().unwrap_or_default();
        let expr = match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(FieldError::new(
                    format!("{field}.values"),
                    format!("operator {} needs at least one value", req.operator),
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(FieldError::new(
                    format!("{field}.values"),
                    format!("operator {} takes no values", req.operator),
                ));
            }
            "In" => Expression::In(req.key.clone(), values.into_iter().collect()),
            "NotIn" => Expression::NotIn(req.key.clone(), values.into_iter().collect()),
            "Exists" => Expression::Exists(req.key.clone()),
            "DoesNotExist" => Expression::DoesNotExist(req.key.clone()),
            other => {
                return Err(FieldError::new(
                    format!("{field}.operator"),
                    format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist"),
                ));
            }
        };
        out.extend([expr]);
    }
    Ok(out)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// What this node did with one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In force with this generation.
    Applied,
    /// The spec is invalid: nothing of it applied (a previous valid
    /// generation stays in force).
    Invalid(String),
    /// Core refused it: (reason, message).
    Rejected(&'static str, String),
}

#[derive(Debug, Default)]
struct Entry {
    /// The last generation registered in core (in force).
    applied: Option<Desired>,
    /// When it was registered, and in which core boot.
    applied_at: Option<(Instant, String)>,
    outcome: Option<(i64, Outcome)>,
    members: u32,
}

/// What this node knows about every policy: shared by the controller
/// (writes), the membership sync and the status report (read).
#[derive(Debug, Default)]
pub struct PolicyState {
    inner: Mutex<BTreeMap<String, Entry>>,
}

impl PolicyState {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock leaves plain data: keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The zone in force for a policy name, if any.
    pub fn applied(&self, name: &str) -> Option<Desired> {
        self.lock().get(name).and_then(|e| e.applied.clone())
    }

    /// Drop what is known about policies that no longer exist.
    pub fn retain(&self, names: &BTreeSet<String>) {
        self.lock().retain(|n, _| names.contains(n));
    }

    /// Problems to report to core: (object, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .filter_map(|(n, e)| match &e.outcome {
                Some((_, Outcome::Invalid(m))) => {
                    Some((format!("SyvaZonePolicy/{n}"), format!("invalid spec: {m}")))
                }
                Some((_, Outcome::Rejected(r, m))) => {
                    Some((format!("SyvaZonePolicy/{n}"), format!("{r}: {m}")))
                }
                _ => None,
            })
            .collect()
    }

    /// Record member counts; true when one changed (status to rewrite).
    pub fn set_members(&self, counts: &BTreeMap<String, u32>) -> bool {
        let mut changed = false;
        for (name, e) in self.lock().iter_mut() {
            let n = counts.get(name).copied().unwrap_or(0);
            if e.members != n {
                e.members = n;
                changed = true;
            }
        }
        changed
    }
}

/// What the policy controller needs.
#[derive(Debug)]
pub struct Ctx {
    pub core: CoreClient,
    pub node: String,
    pub api: Api<SyvaZonePolicy>,
    pub state: Arc<PolicyState>,
    /// Wakes the membership sync.
    pub membership: Arc<Notify>,
    /// Current core boot id ("" until known).
    pub boot_id: tokio::sync::watch::Receiver<String>,
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("registering zone {zone} in syva core: {status}")]
    Core {
        zone: String,
        #[source]
        status: tonic::Status,
    },
    #[error("writing the status of node {node}: {source}")]
    Status {
        node: String,
        #[source]
        source: kube::Error,
    },
}

pub fn field_manager(node: &str) -> String {
    format!("syva-k8s/{node}")
}

/// One reconcile of one policy on this node: idempotent, level-based.
pub async fn reconcile(obj: Arc<SyvaZonePolicy>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let name = obj.name_any();
    let generation = obj.metadata.generation.unwrap_or(0);
    let boot = ctx.boot_id.borrow().clone();
    let outcome = match desired(&obj) {
        Err(e) => {
            tracing::warn!(policy = %name, generation, error = %e, "invalid SyvaZonePolicy: not applied");
            Outcome::Invalid(e.to_string())
        }
        Ok(d) => {
            let fresh = {
                let st = ctx.state.lock();
                st.get(&name).is_some_and(|e| {
                    e.applied
                        .as_ref()
                        .is_some_and(|a| a.generation == generation)
                        && e.applied_at.as_ref().is_some_and(|(t, b)| {
                            *b == boot && !boot.is_empty() && t.elapsed() < ctx.resync
                        })
                        && matches!(e.outcome, Some((_, Outcome::Applied)))
                })
            };
            if fresh {
                Outcome::Applied
            } else {
                register(&ctx, &name, d, &boot).await?
            }
        }
    };
    let members = {
        let mut st = ctx.state.lock();
        let e = st.entry(name.clone()).or_default();
        e.outcome = Some((generation, outcome.clone()));
        e.members
    };
    ctx.membership.notify_one();
    write_node_status(&ctx, &obj, generation, &outcome, members).await?;
    Ok(Action::requeue(ctx.resync))
}

async fn register(
    ctx: &Ctx,
    name: &str,
    d: Desired,
    boot: &str,
) -> Result<Outcome, ReconcileError> {
    let req = pb::RegisterZoneRequest {
        name: d.zone.to_string(),
        policy: Some(proto::policy_to_pb(&d.policy)),
        source: SOURCE.into(),
    };
    match ctx.core.api().register_zone(req).await {
        Ok(r) => {
            let r = r.into_inner();
            tracing::info!(policy = %name, generation = d.generation, zone_id = r.zone_id, created = r.created, protected_inodes = r.protected_inodes, "zone in force");
            let mut st = ctx.state.lock();
            let e = st.entry(name.to_owned()).or_default();
            e.applied = Some(d);
            e.applied_at = Some((Instant::now(), boot.to_owned()));
            Ok(Outcome::Applied)
        }
        Err(s) => match s.code() {
            tonic::Code::FailedPrecondition => {
                tracing::warn!(policy = %name, error = %s.message(), "zone conflict");
                Ok(Outcome::Rejected("ZoneConflict", s.message().to_owned()))
            }
            tonic::Code::InvalidArgument
            | tonic::Code::ResourceExhausted
            | tonic::Code::NotFound
            | tonic::Code::AlreadyExists => {
                tracing::warn!(policy = %name, code = ?s.code(), error = %s.message(), "core rejected the zone");
                Ok(Outcome::Rejected("CoreRejected", s.message().to_owned()))
            }
            // Core down or failing: retried with backoff by the controller;
            // the previous state stays in force.
            _ => Err(ReconcileError::Core {
                zone: name.to_owned(),
                status: s,
            }),
        },
    }
}

/// A condition whose transition time moves only when its status does.
pub(super) fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: i64,
    previous: &[Condition],
) -> Condition {
    let status = if status { "True" } else { "False" };
    // The transition time moves only when the status does.
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(now_time);
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: Some(generation),
        last_transition_time,
    }
}

/// Conditions equal but for their transition times?
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

/// This node's status entry for an outcome.
pub fn node_status(
    node: &str,
    generation: i64,
    outcome: &Outcome,
    members: u32,
    previous: Option<&NodeStatus>,
) -> NodeStatus {
    let prev = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let (ready, degraded) = match outcome {
        Outcome::Applied => (
            condition(
                "Ready",
                true,
                "Applied",
                format!("zone in force; {members} pod(s) of this node attached"),
                generation,
                prev,
            ),
            condition(
                "Degraded",
                false,
                "AsExpected",
                String::new(),
                generation,
                prev,
            ),
        ),
        Outcome::Invalid(m) => (
            condition("Ready", false, "InvalidSpec", m.clone(), generation, prev),
            condition("Degraded", true, "InvalidSpec", m.clone(), generation, prev),
        ),
        Outcome::Rejected(reason, m) => (
            condition("Ready", false, reason, m.clone(), generation, prev),
            condition("Degraded", true, reason, m.clone(), generation, prev),
        ),
    };
    NodeStatus {
        node: node.into(),
        observed_generation: generation,
        conditions: vec![ready, degraded],
        members,
    }
}

async fn write_node_status(
    ctx: &Ctx,
    obj: &SyvaZonePolicy,
    generation: i64,
    outcome: &Outcome,
    members: u32,
) -> Result<(), ReconcileError> {
    let previous = obj
        .status
        .as_ref()
        .and_then(|s| s.nodes.iter().find(|n| n.node == ctx.node));
    let entry = node_status(&ctx.node, generation, outcome, members, previous);
    if previous.is_some_and(|p| {
        p.observed_generation == entry.observed_generation
            && p.members == entry.members
            && same_conditions(&p.conditions, &entry.conditions)
    }) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": SyvaZonePolicy::api_version(&()),
        "kind": SyvaZonePolicy::kind(&()),
        "status": { "nodes": [entry] },
    });
    // Force: this node is the only writer of its own entry (list-map key
    // `node`); forcing only takes over a field another manager left.
    let pp = PatchParams::apply(&field_manager(&ctx.node)).force();
    ctx.api
        .patch_status(&obj.name_any(), &pp, &Patch::Apply(&patch))
        .await
        .map_err(|source| ReconcileError::Status {
            node: ctx.node.clone(),
            source,
        })?;
    tracing::debug!(policy = %obj.name_any(), generation, "node status written");
    Ok(())
}

pub fn error_policy(obj: Arc<SyvaZonePolicy>, err: &ReconcileError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(policy = %obj.name_any(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Zones of core owned by this adapter.
pub fn is_ours(z: &pb::Zone) -> bool {
    z.source == SOURCE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::crd::{HostPathSpec, SyvaZonePolicySpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelector, LabelSelectorRequirement, Time,
    };

    fn obj(name: &str, spec: SyvaZonePolicySpec) -> SyvaZonePolicy {
        let mut o = SyvaZonePolicy::new(name, spec);
        o.metadata.generation = Some(3);
        o
    }

    fn spec() -> SyvaZonePolicySpec {
        serde_json::from_value(serde_json::json!({"podSelector": {"matchLabels": {"app": "web"}}}))
            .unwrap()
    }

    #[test]
    fn valid_spec_maps_to_the_model() {
        let mut s = spec();
        s.zone_type = ZoneTypeSpec::Isolated;
        s.mode = ModeSpec::Audit;
        s.host_paths = vec![HostPathSpec {
            path: "/srv/web".into(),
            recursive: true,
        }];
        s.allowed_zones = vec!["db".into(), "db".into()];
        s.namespaces = vec!["shop".into()];
        let d = desired(&obj("web", s)).unwrap();
        assert_eq!(d.zone.as_str(), "web");
        assert_eq!(d.policy.zone_type, ZoneType::Isolated);
        assert_eq!(d.policy.mode, EnforcementMode::Audit);
        assert_eq!(d.policy.allowed_zones.len(), 1);
        assert_eq!(d.generation, 3);
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        assert!(d.selects("shop", &labels));
        assert!(!d.selects("other", &labels));
        assert!(!d.selects("shop", &BTreeMap::new()));
    }

    #[test]
    fn errors_name_the_field() {
        let mut s = spec();
        s.host_paths = vec![
            HostPathSpec {
                path: "/ok".into(),
                recursive: false,
            },
            HostPathSpec {
                path: "/a/../b".into(),
                recursive: false,
            },
        ];
        assert_eq!(
            desired(&obj("web", s)).unwrap_err().field,
            "spec.hostPaths[1].path"
        );

        let mut s = spec();
        s.allowed_zones = vec!["ok".into(), "bad zone".into()];
        assert_eq!(
            desired(&obj("web", s)).unwrap_err().field,
            "spec.allowedZones[1]"
        );

        let mut s = spec();
        s.pod_selector = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            desired(&obj("web", s)).unwrap_err().field,
            "spec.podSelector.matchExpressions[0].operator"
        );

        let mut s = spec();
        s.namespaces = vec!["Bad_NS".into()];
        assert_eq!(
            desired(&obj("web", s)).unwrap_err().field,
            "spec.namespaces[0]"
        );

        let e = desired(&obj(&"x".repeat(64), spec())).unwrap_err();
        assert_eq!(e.field, "metadata.name");
    }

    #[test]
    fn match_expressions_select() {
        let mut s = spec();
        s.pod_selector = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let d = desired(&obj("web", s)).unwrap();
        let l = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(d.selects("x", &l(&[("tier", "a")])));
        assert!(!d.selects("x", &l(&[("tier", "c")])));
        assert!(!d.selects("x", &l(&[("tier", "a"), ("canary", "1")])));
    }

    #[test]
    fn node_status_keeps_transition_times() {
        let first = node_status("n1", 1, &Outcome::Applied, 2, None);
        let mut old = first.clone();
        old.conditions[0].last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let again = node_status("n1", 2, &Outcome::Applied, 2, Some(&old));
        assert_eq!(
            again.conditions[0].last_transition_time,
            old.conditions[0].last_transition_time
        );
        let bad = node_status("n1", 3, &Outcome::Invalid("x".into()), 2, Some(&old));
        assert_ne!(
            bad.conditions[0].last_transition_time,
            old.conditions[0].last_transition_time
        );
        assert_eq!(bad.conditions[1].status, "True");
        assert_eq!(bad.conditions[1].reason, "InvalidSpec");
    }
}
