//! Membership: the pods of this node -> AttachContainer/DetachContainer in
//! core. Level-based: every pass computes the full desired membership (pod
//! store x zones in force) and diffs it against core's containers of
//! source "k8s", then removes zones whose SyvaZonePolicy is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::SOURCE;
use super::cgroups::{self, PodCgroups};
use super::crd::SyvaZonePolicy;
use super::policy::{self, Desired, PolicyState};
use crate::client::CoreClient;
use crate::proto::pb;

/// The core container id of a pod's pod-level attachment.
pub fn member_id(pod_uid: &str) -> String {
    format!("pod:{pod_uid}")
}

/// Generations that order this adapter's membership updates, also across
/// its restarts: max(previous + 1, wall clock in microseconds).
#[derive(Debug, Default)]
pub struct Generations {
    last: AtomicU64,
}

impl Generations {
    pub fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut cur = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(cur + 1);
            match self
                .last
                .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => cur = seen,
            }
        }
    }
}

/// One pod's wanted attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Want {
    zone: String,
    policy: String,
    cgroup_path: String,
    namespace: String,
    name: String,
    uid: String,
}

/// A pod whose cgroup is not found for this long is reported: the cgroup
/// root or layout is probably not what this adapter looks at.
const CGROUP_MISSING_REPORT_AFTER: Duration = Duration::from_secs(30);

/// The result of one pass.
#[derive(Debug, Default)]
pub struct Report {
    /// Pods that belong to a zone but whose cgroup does not exist yet:
    /// looked at again soon.
    pub pending: usize,
    /// Pods waiting for their zone to be registered (the policy controller
    /// wakes the next pass when it is).
    pub waiting_zone: usize,
    pub attached: usize,
    pub detached: usize,
    /// (object, message) to report to core.
    pub problems: Vec<(String, String)>,
    /// Attached pods per policy name.
    pub members: BTreeMap<String, u32>,
}

#[derive(Debug)]
pub struct Membership {
    pub core: CoreClient,
    pub node: String,
    pub cgroups: Arc<PodCgroups>,
    pub pods: Store<Pod>,
    pub policies: Store<SyvaZonePolicy>,
    pub state: Arc<PolicyState>,
    pub generations: Generations,
    /// Since when each pending pod (by uid) has had no cgroup.
    pub missing_since: Mutex<BTreeMap<String, Instant>>,
}

/// A pod whose containers can no longer run needs no zone.
fn finished(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
}

impl Membership {
    /// The zones pods may be put in now, by policy name: the generation in
    /// force on this node, or (before the controller got to it, e.g. right
    /// after a restart of this adapter) the valid spec of the policy.
    fn zones(&self) -> BTreeMap<String, Desired> {
        let mut out = BTreeMap::new();
        let mut names = BTreeSet::new();
        for p in self.policies.state() {
            let name = p.name_any();
            names.insert(name.clone());
            if let Some(d) = self
                .state
                .applied(&name)
                // An invalid spec selects nothing; the controller reports it.
                .or_else(|| policy::desired(&p).ok())
            {
                out.insert(name, d);
            }
        }
        self.state.retain(&names);
        out
    }

    /// One full pass. `reassert`: re-send attachments core already has
    /// (periodic self-heal), not only the differences.
    pub async fn sync(&self, reassert: bool) -> Result<Report, tonic::Status> {
        let mut api = self.core.api();
        let mut report = Report::default();
        let core_zones: BTreeMap<String, pb::Zone> = api
            .list_zones(pb::ListZonesRequest {})
            .await?
            .into_inner()
            .zones
            .into_iter()
            .map(|z| (z.name.clone(), z))
            .collect();
        let zones = self.zones();
        // What core has.
        let have: BTreeMap<String, pb::Container> = api
            .list_containers(pb::ListContainersRequest::default())
            .await?
            .into_inner()
            .containers
            .into_iter()
            .filter(|c| c.source == SOURCE)
            .map(|c| (c.container_id.clone(), c))
            .collect();

        // Desired membership.
        let mut want: BTreeMap<String, Want> = BTreeMap::new();
        let missing =
            std::mem::take(&mut *self.missing_since.lock().unwrap_or_else(|p| p.into_inner()));
        let mut still_missing = BTreeMap::new();
        let mut pods = self.pods.state();
        pods.sort_by_key(|p| (p.namespace().unwrap_or_default(), p.name_any()));
        for pod in pods {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(self.node.as_str())
                || finished(&pod)
            {
                continue;
            }
            let ns = pod.namespace().unwrap_or_default();
            let pod_name = pod.name_any();
            let labels = pod.labels();
            let matched: Vec<&String> = zones
                .iter()
                .filter(|(_, d)| d.selects(&ns, labels))
                .map(|(n, _)| n)
                .collect();
            let Some(policy) = matched.first() else {
                continue;
            };
            let d = &zones[*policy];
            if matched.len() > 1 {
                report.problems.push((
                    format!("Pod/{ns}/{pod_name}"),
                    format!(
                        "selected by several zones ({}); it is put in {}, the first by name",
                        matched
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        d.zone
                    ),
                ));
            }
            match core_zones.get(d.zone.as_str()) {
                Some(z) if policy::is_ours(z) && z.state != pb::ZoneState::Draining as i32 => {}
                // Registered by the controller soon; or owned by another
                // source (the policy's status says so).
                _ => {
                    report.waiting_zone += 1;
                    continue;
                }
            }
            // Every stored pod has a uid; an empty one matches no cgroup.
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let id = member_id(&uid);
            // Already attached there and the directory is still there:
            // keep it, whatever a look-up says.
            let attached = have.get(&id).filter(|c| {
                c.zone == d.zone.as_str()
                    && self
                        .cgroups
                        .root()
                        .join(c.cgroup_path.trim_start_matches('/'))
                        .is_dir()
            });
            let found = match attached {
                Some(c) => Some(cgroups::PodCgroup::at(self.cgroups.root(), &c.cgroup_path)),
                None => self.cgroups.find_pod(cgroup_uid(&pod)),
            };
            let Some(cg) = found else {
                tracing::debug!(pod = %format!("{ns}/{pod_name}"), uid, "pod cgroup not there yet");
                report.pending += 1;
                let since = missing.get(&uid).copied().unwrap_or_else(Instant::now);
                still_missing.insert(uid.clone(), since);
                if since.elapsed() >= CGROUP_MISSING_REPORT_AFTER {
                    report.problems.push((
                        format!("Pod/{ns}/{pod_name}"),
                        format!(
                            "selected by zone {} but no cgroup of pod {uid} found below {} for {}s: the pod is not in its zone",
                            d.zone,
                            self.cgroups.root().display(),
                            since.elapsed().as_secs()
                        ),
                    ));
                }
                continue;
            };
            self.check_containers(&pod, &cg, &mut report);
            want.insert(
                id,
                Want {
                    zone: d.zone.to_string(),
                    policy: (*policy).clone(),
                    cgroup_path: cg.path,
                    namespace: ns,
                    name: pod_name,
                    uid,
                },
            );
        }

        *self.missing_since.lock().unwrap_or_else(|p| p.into_inner()) = still_missing;

        // Leavers and movers first: core refuses to move a member.
        for (id, c) in &have {
            let keep = want
                .get(id)
                .is_some_and(|w| w.zone == c.zone && w.cgroup_path == c.cgroup_path);
            if keep {
                continue;
            }
            self.detach(id, &mut report).await?;
        }
        for (id, w) in &want {
            let current = have
                .get(id)
                .is_some_and(|c| w.zone == c.zone && w.cgroup_path == c.cgroup_path);
            let member = if !current || reassert {
                self.attach(id, w, &mut report).await?
            } else {
                true
            };
            if member {
                *report.members.entry(w.policy.clone()).or_default() += 1;
            }
        }

        // Zones whose policy is gone (deleted while anyone was down, or
        // just now): every node drops them.
        for z in core_zones.values() {
            if policy::is_ours(z)
                && !zones.contains_key(&z.name)
                && self.policies.state().iter().all(|p| p.name_any() != z.name)
                && z.state != pb::ZoneState::Draining as i32
            {
                let r = api
                    .remove_zone(pb::RemoveZoneRequest {
                        name: z.name.clone(),
                        // Members of other sources keep it enforced until
                        // they leave.
                        drain: true,
                        source: SOURCE.into(),
                    })
                    .await;
                match r {
                    Ok(r) => {
                        tracing::info!(zone = %z.name, state = r.into_inner().state, "zone of a deleted SyvaZonePolicy removed")
                    }
                    Err(s) if s.code() == tonic::Code::NotFound => {}
                    Err(s) if s.code() == tonic::Code::Unavailable => return Err(s),
                    Err(s) => report.problems.push((
                        format!("zone/{}", z.name),
                        format!("removing the zone of a deleted policy: {}", s.message()),
                    )),
                }
            }
        }
        Ok(report)
    }

    async fn detach(&self, id: &str, report: &mut Report) -> Result<(), tonic::Status> {
        let r = self
            .core
            .api()
            .detach_container(pb::DetachContainerRequest {
                container_id: id.to_owned(),
                source: SOURCE.into(),
                generation: self.generations.next(),
            })
            .await;
        match r {
            Ok(r) => {
                let outcome = crate::proto::outcome_from_pb(r.into_inner().outcome);
                tracing::info!(member = id, ?outcome, "detached");
                report.detached += 1;
                Ok(())
            }
            Err(s) if s.code() == tonic::Code::Unavailable => Err(s),
            Err(s) => {
                report
                    .problems
                    .push((id.to_owned(), format!("detach: {}", s.message())));
                Ok(())
            }
        }
    }

    /// Attach one pod; Ok(true) when it is a member now.
    async fn attach(&self, id: &str, w: &Want, report: &mut Report) -> Result<bool, tonic::Status> {
        let req = |generation| pb::AttachContainerRequest {
            container_id: id.to_owned(),
            pod_namespace: w.namespace.clone(),
            pod_name: w.name.clone(),
            pod_uid: w.uid.clone(),
            cgroup: Some(pb::attach_container_request::Cgroup::CgroupPath(
                w.cgroup_path.clone(),
            )),
            zone: w.zone.clone(),
            source: SOURCE.into(),
            generation,
            observed_at: Some(crate::proto::timestamp(SystemTime::now())),
        };
        let mut api = self.core.api();
        let r = api.attach_container(req(self.generations.next())).await;
        let r = match r {
            Ok(r) if r.get_ref().outcome == pb::MembershipOutcome::Stale as i32 => {
                // Core holds a newer generation than our clock gives (the
                // clock went back across a restart of this adapter): this
                // adapter is the only writer of its ids, so take over.
                tracing::warn!(member = id, "core holds a newer generation; re-attaching");
                api.detach_container(pb::DetachContainerRequest {
                    container_id: id.to_owned(),
                    source: SOURCE.into(),
                    generation: 0,
                })
                .await?;
                api.attach_container(req(self.generations.next())).await
            }
            other => other,
        };
        match r {
            Ok(r) => {
                let r = r.into_inner();
                if r.outcome == pb::MembershipOutcome::Applied as i32 {
                    tracing::info!(member = id, pod = %format!("{}/{}", w.namespace, w.name), zone = %w.zone, cgroup = %w.cgroup_path, cgroup_id = r.cgroup_id, covered = r.cgroups_covered, "attached");
                    report.attached += 1;
                }
                Ok(true)
            }
            Err(s) if s.code() == tonic::Code::Unavailable => Err(s),
            Err(s) if s.code() == tonic::Code::NotFound => {
                // The zone or cgroup went away between listing and now.
                report.pending += 1;
                Ok(false)
            }
            Err(s) => {
                tracing::warn!(member = id, error = %s.message(), "attach refused");
                report.problems.push((
                    member_object(w),
                    format!("attach to zone {}: {}", w.zone, s.message()),
                ));
                Ok(false)
            }
        }
    }

    /// Running containers must sit below the pod cgroup to be covered.
    fn check_containers(&self, pod: &Pod, cg: &cgroups::PodCgroup, report: &mut Report) {
        let statuses = pod
            .status
            .iter()
            .flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            })
            .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        for c in statuses {
            let Some(id) = c.container_id.as_deref() else {
                continue;
            };
            if cgroups::find_container(cg, id).is_none() {
                report.problems.push((
                    format!(
                        "Pod/{}/{}",
                        pod.namespace().unwrap_or_default(),
                        pod.name_any()
                    ),
                    format!(
                        "container {} ({id}) is running but has no cgroup below {}: it may not be in the zone",
                        c.name, cg.path
                    ),
                ));
            }
        }
    }
}

/// The UID kubelet names the pod's cgroup after: a static pod's mirror in
/// the API has a UID of its own, kubelet uses the config hash it carries.
pub fn cgroup_uid(pod: &Pod) -> &str {
    pod.annotations()
        .get("kubernetes.io/config.mirror")
        .map(String::as_str)
        .filter(|h| !h.is_empty())
        .or(pod.metadata.uid.as_deref())
        .unwrap_or_default()
}

fn member_object(w: &Want) -> String {
    format!("Pod/{}/{}", w.namespace, w.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_pods_use_the_config_hash() {
        let mut pod = Pod::default();
        pod.metadata.uid = Some("api-uid".into());
        assert_eq!(cgroup_uid(&pod), "api-uid");
        pod.metadata.annotations = Some(BTreeMap::from([(
            "kubernetes.io/config.mirror".to_owned(),
            "6f1c0b0e4bb1c8f3e5f3f1b2a3c4d5e6".to_owned(),
        )]));
        assert_eq!(cgroup_uid(&pod), "6f1c0b0e4bb1c8f3e5f3f1b2a3c4d5e6");
    }

    #[test]
    fn generations_increase_and_follow_the_clock() {
        let g = Generations::default();
        let a = g.next();
        let b = g.next();
        assert!(b > a);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        assert!(a <= now + 1 && a + 10_000_000 > now, "{a} vs {now}");
        // A restarted adapter (it takes more than a microsecond) continues
        // above the previous one.
        std::thread::sleep(std::time::Duration::from_millis(2));
        let g2 = Generations::default();
        assert!(g2.next() > a);
    }
}
