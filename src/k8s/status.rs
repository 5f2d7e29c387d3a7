//! The policies' overall status (observedGeneration, Ready, Degraded),
//! computed from the spec and the nodes' entries. One writer for the whole
//! cluster, elected with a Lease (kube-lease-manager); every leader uses
//! the same field manager, so a new leader takes the fields over cleanly.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use std::sync::Arc;
use tokio::sync::Notify;

use super::crd::SyvaZonePolicy;
use super::policy::{self, same_conditions};

/// Field manager of the overall conditions, whichever node writes them.
pub const FIELD_MANAGER: &str = "syva-k8s/status";

/// Most node failures named in the Degraded message.
const MAX_NAMED: usize = 8;

/// The overall conditions of a policy: (generation, [Ready, Degraded]).
pub fn overall(obj: &SyvaZonePolicy) -> (i64, Vec<Condition>) {
    let generation = obj.metadata.generation.unwrap_or(0);
    let prev: &[Condition] = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    let c = |t: &str, ok, reason: &str, msg: String| {
        policy::condition(t, ok, reason, msg, generation, prev)
    };
    if let Err(e) = policy::desired(obj) {
        let m = e.to_string();
        return (
            generation,
            vec![
                c("Ready", false, "InvalidSpec", m.clone()),
                c("Degraded", true, "InvalidSpec", m),
            ],
        );
    }
    let nodes = obj
        .status
        .as_ref()
        .map(|s| s.nodes.as_slice())
        .unwrap_or(&[]);
    let current: Vec<_> = nodes
        .iter()
        .filter(|n| n.observed_generation == generation)
        .collect();
    let behind = nodes.len() - current.len();
    let failed: Vec<String> = current
        .iter()
        .filter_map(|n| {
            let ready = n.conditions.iter().find(|c| c.type_ == "Ready")?;
            (ready.status != "True")
                .then(|| format!("{}: {}: {}", n.node, ready.reason, ready.message))
        })
        .collect();
    if !failed.is_empty() {
        let mut m = failed
            .iter()
            .take(MAX_NAMED)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if failed.len() > MAX_NAMED {
            m.push_str(&format!("; and {} more node(s)", failed.len() - MAX_NAMED));
        }
        return (
            generation,
            vec![
                c("Ready", false, "NodeFailures", m.clone()),
                c("Degraded", true, "NodeFailures", m),
            ],
        );
    }
    if current.is_empty() {
        return (
            generation,
            vec![
                c(
                    "Ready",
                    false,
                    "Pending",
                    format!("no node has applied generation {generation} yet"),
                ),
                c("Degraded", false, "AsExpected", String::new()),
            ],
        );
    }
    let mut m = format!("in force on {} node(s)", current.len());
    if behind > 0 {
        m.push_str(&format!("; {behind} node(s) report an older generation"));
    }
    (
        generation,
        vec![
            c("Ready", true, "Applied", m),
            c("Degraded", false, "AsExpected", String::new()),
        ],
    )
}

async fn write_all(api: &Api<SyvaZonePolicy>, store: &Store<SyvaZonePolicy>) {
    for obj in store.state() {
        let (generation, conditions) = overall(&obj);
        let unchanged = obj.status.as_ref().is_some_and(|s| {
            s.observed_generation == Some(generation) && same_conditions(&s.conditions, &conditions)
        });
        if unchanged {
            continue;
        }
        let patch = serde_json::json!({
            "apiVersion": SyvaZonePolicy::api_version(&()),
            "kind": SyvaZonePolicy::kind(&()),
            "status": { "observedGeneration": generation, "conditions": conditions },
        });
        // Force: the elected writer owns these fields; a previous leader
        // used the same manager, anything else is overridden on purpose.
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        match api
            .patch_status(&obj.name_any(), &pp, &Patch::Apply(&patch))
            .await
        {
            Ok(_) => {
                tracing::debug!(policy = %obj.name_any(), generation, "overall status written")
            }
            // The next trigger or tick retries; the policy itself is unaffected.
            Err(e) => {
                tracing::warn!(policy = %obj.name_any(), error = %e, "writing the overall status failed")
            }
        }
    }
}

pub struct Writer {
    pub client: Client,
    pub api: Api<SyvaZonePolicy>,
    pub store: Store<SyvaZonePolicy>,
    pub changed: Arc<Notify>,
    pub node: String,
    pub lease_namespace: String,
    pub lease_name: String,
    pub lease_seconds: u64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("node", &self.node)
            .field(
                "lease",
                &format!("{}/{}", self.lease_namespace, self.lease_name),
            )
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Join the election, retrying until the Lease API answers.
    async fn lease_manager(&self) -> kube_lease_manager::LeaseManager {
        let mut backoff =
            crate::client::Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            let built = LeaseManagerBuilder::new(self.client.clone(), &self.lease_name)
                .with_namespace(&self.lease_namespace)
                .with_identity(&self.node)
                .with_duration(self.lease_seconds.max(2))
                .with_grace((self.lease_seconds / 3).max(1))
                .with_field_manager(format!("syva-k8s/{}", self.node))
                .build()
                .await;
            match built {
                Ok(m) => return m,
                Err(e) => {
                    let d = backoff.next_delay();
                    tracing::warn!(lease = %format!("{}/{}", self.lease_namespace, self.lease_name), error = %e, retry_in = ?d, "cannot take part in the status writer election; policies' overall conditions are written by another node or not at all");
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    /// Take part in the election until `stop`; write while leader. On stop
    /// the lease is released, so another node takes over at once.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let manager = tokio::select! {
            m = self.lease_manager() => m,
            _ = &mut stop => return,
        };
        let (mut leader, task) = manager.watch().await;
        if super::store_ready(&self.store).await.is_err() {
            tracing::error!(
                "the policy watch ended before its first list; not writing overall status"
            );
            return;
        }
        let mut was = false;
        loop {
            let is = *leader.borrow_and_update();
            if is != was {
                tracing::info!(leader = is, "status writer election");
                was = is;
            }
            if is {
                write_all(&self.api, &self.store).await;
            }
            tokio::select! {
                _ = &mut stop => {
                    // Closing the channel makes the lease manager release
                    // the lease and end.
                    drop(leader);
                    match tokio::time::timeout(Duration::from_secs(3), task).await {
                        Ok(Ok(Ok(_))) => tracing::info!("status writer lease released"),
                        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the status writer lease failed; it expires by itself"),
                        _ => tracing::warn!("releasing the status writer lease took too long; it expires by itself"),
                    }
                    return;
                }
                r = leader.changed() => if r.is_err() {
                    tracing::error!("the lease manager stopped; no longer writing overall status");
                    return;
                },
                _ = self.changed.notified() => {
                    // Coalesce the burst of events one change causes.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::crd::{SyvaZonePolicySpec, SyvaZonePolicyStatus};
    use crate::k8s::policy::{Outcome, node_status};

    fn obj(gen_: i64) -> SyvaZonePolicy {
        let spec: SyvaZonePolicySpec =
            serde_json::from_value(serde_json::json!({"podSelector": {}})).unwrap();
        let mut o = SyvaZonePolicy::new("web", spec);
        o.metadata.generation = Some(gen_);
        o
    }

    fn get<'a>(c: &'a [Condition], t: &str) -> &'a Condition {
        c.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn aggregates_node_entries() {
        let mut o = obj(2);
        let (_, c) = overall(&o);
        assert_eq!(get(&c, "Ready").reason, "Pending");

        o.status = Some(SyvaZonePolicyStatus {
            nodes: vec![
                node_status("a", 2, &Outcome::Applied, 1, None),
                node_status("b", 1, &Outcome::Applied, 0, None),
            ],
            ..Default::default()
        });
        let (g, c) = overall(&o);
        assert_eq!(g, 2);
        assert_eq!(get(&c, "Ready").status, "True");
        assert!(
            get(&c, "Ready")
                .message
                .contains("1 node(s) report an older"),
            "{c:?}"
        );

        o.status.as_mut().unwrap().nodes.push(node_status(
            "c",
            2,
            &Outcome::Rejected("ZoneConflict", "owned by file".into()),
            0,
            None,
        ));
        let (_, c) = overall(&o);
        assert_eq!(get(&c, "Ready").status, "False");
        assert_eq!(get(&c, "Degraded").status, "True");
        assert_eq!(get(&c, "Degraded").reason, "NodeFailures");
        assert!(
            get(&c, "Degraded")
                .message
                .contains("c: ZoneConflict: owned by file")
        );
    }

    #[test]
    fn invalid_spec_is_degraded() {
        let mut o = obj(1);
        o.spec.allowed_zones = vec!["no way".into()];
        let (_, c) = overall(&o);
        assert_eq!(get(&c, "Degraded").reason, "InvalidSpec");
        assert!(
            get(&c, "Degraded")
                .message
                .starts_with("spec.allowedZones[0]")
        );
    }
}
