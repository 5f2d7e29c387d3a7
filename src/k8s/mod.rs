//! `syva k8s`: the Kubernetes adapter of one node. Reconciles
//! SyvaZonePolicy resources into zones of syva core (kube-runtime
//! controller), attaches the pods of this node to their zones (a pod
//! watcher and a level-based membership sync), re-applies everything when
//! core restarts, and reports problems to core and in the policies' status.

pub mod args;
pub mod cgroups;
pub mod crd;
pub mod pods;
pub mod policy;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::Controller;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config, Resource};
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

pub use args::{K8sArgs, K8sCommand};

use crate::client::{Backoff, CoreClient};
use crate::error::{ExitKind, RoleError};
use crate::proto::pb;
use crate::telemetry;

/// The `source` of everything this adapter creates in core.
pub const SOURCE: &str = "k8s";

pub(crate) fn now_time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("--node-name (or $NODE_NAME from the downward API) is required")]
    NoNode,
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no usable Kubernetes configuration (--kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster): {0}"
    )]
    Infer(#[source] kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("finding the cgroup v2 root (or pass --cgroup-root): {0}")]
    Cgroup(#[source] crate::cgroup::CgroupError),
    #[error("printing the CRD: {0}")]
    Yaml(#[source] serde_yaml_ng::Error),
}

async fn kube_client(args: &K8sArgs) -> Result<Client, SetupError> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| SetupError::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|source| SetupError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None => Config::infer().await.map_err(SetupError::Infer)?,
    };
    Client::try_from(config).map_err(SetupError::Client)
}

pub async fn run(args: K8sArgs) -> Result<(), RoleError> {
    let config_err = |e: SetupError| RoleError::new(ExitKind::Config, e);
    if let Some(K8sCommand::Crd) = args.command {
        print!(
            "{}",
            crd::crd_yaml().map_err(|e| config_err(SetupError::Yaml(e)))?
        );
        return Ok(());
    }
    let node = args
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| config_err(SetupError::NoNode))?;
    let cgroup_root = match &args.cgroup_root {
        Some(p) => p.clone(),
        None => crate::cgroup::CgroupFs::discover()
            .map_err(|e| RoleError::new(ExitKind::Unsupported, SetupError::Cgroup(e)))?
            .root()
            .to_path_buf(),
    };
    let client = kube_client(&args).await.map_err(config_err)?;
    let core = CoreClient::lazy(&args.core_socket);
    tracing::info!(node, core = %args.core_socket.display(), cgroup_root = %cgroup_root.display(), "syva k8s starting");

    let state = Arc::new(policy::PolicyState::default());
    let membership_wake = Arc::new(Notify::new());
    let status_wake = Arc::new(Notify::new());
    let (boot_tx, boot_rx) = watch::channel(String::new());
    let (reconcile_all_tx, reconcile_all_rx) = mpsc::unbounded_channel::<()>();
    let (stop_tx, stop_rx) = watch::channel(false);

    // Policies: one watch feeds the controller's store, the membership
    // sync and the status writer.
    let policies: Api<crd::SyvaZonePolicy> = Api::all(client.clone());
    let (policy_store, policy_writer) = reflector::store();
    let policy_events = {
        let m = membership_wake.clone();
        let s = status_wake.clone();
        watcher(policies.clone(), watcher::Config::default())
            .default_backoff()
            .modify(|p| p.meta_mut().managed_fields = None)
            .reflect(policy_writer)
            .inspect(move |e| {
                if let Err(e) = e {
                    tracing::warn!(error = %e, "SyvaZonePolicy watch error; retrying");
                }
                m.notify_one();
                s.notify_one();
            })
            .applied_objects()
    };
    let ctx = Arc::new(policy::Ctx {
        core: core.clone(),
        node: node.clone(),
        api: policies.clone(),
        state: state.clone(),
        membership: membership_wake.clone(),
        boot_id: boot_rx.clone(),
        resync: args.resync,
    });
    let controller = Controller::for_stream(policy_events, policy_store.clone())
        .reconcile_all_on(UnboundedReceiverStream::new(reconcile_all_rx))
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(policy::reconcile, policy::error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => tracing::trace!(policy = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "controller"),
            }
        });

    // Pods of this node.
    let (pod_store, pod_writer) = reflector::store();
    let pods_api: Api<Pod> = Api::all(client.clone());
    let pod_watch = {
        let m = membership_wake.clone();
        watcher(
            pods_api,
            watcher::Config::default().fields(&format!("spec.nodeName={node}")),
        )
        .default_backoff()
        .modify(|p: &mut Pod| p.meta_mut().managed_fields = None)
        .reflect(pod_writer)
        .for_each(move |e| {
            if let Err(e) = &e {
                tracing::warn!(error = %e, "pod watch error; retrying");
            }
            m.notify_one();
            futures::future::ready(())
        })
    };

    let pod_cgroups = Arc::new(cgroups::PodCgroups::new(
        cgroup_root,
        &args.pod_cgroup_parents,
    ));
    let cgroup_watch = watch_pod_cgroups(pod_cgroups.clone(), membership_wake.clone());
    let membership = pods::Membership {
        core: core.clone(),
        node: node.clone(),
        cgroups: pod_cgroups,
        pods: pod_store,
        policies: policy_store.clone(),
        state: state.clone(),
        generations: pods::Generations::default(),
        missing_since: Default::default(),
    };
    let sync_loop = membership_loop(
        membership,
        membership_wake.clone(),
        reconcile_all_tx.clone(),
        args.resync,
        args.pending_interval,
    );
    let boot_loop = watch_core(
        core.clone(),
        boot_tx,
        reconcile_all_tx,
        membership_wake.clone(),
        args.core_check_interval,
    );
    let writer = status::Writer {
        client: client.clone(),
        api: policies,
        store: policy_store,
        changed: status_wake,
        node: node.clone(),
        lease_namespace: args.lease_namespace.clone(),
        lease_name: args.lease_name.clone(),
        lease_seconds: args.lease_seconds,
    };

    let controller = tokio::spawn(controller);
    let writer = tokio::spawn(writer.run(stopped(stop_rx)));
    // Every arm but the signal runs forever: one ending is a failure.
    let ended: Option<&str> = tokio::select! {
        _ = telemetry::shutdown_signal() => None,
        _ = pod_watch => Some("the pod watch ended"),
        _ = sync_loop => Some("the membership sync ended"),
        _ = boot_loop => Some("the syva core watch ended"),
        _ = cgroup_watch => Some("the pod cgroup watch ended"),
    };
    if let Some(what) = ended {
        tracing::error!("{what}; stopping");
    }
    stop_tx.send_replace(true);
    // Let running reconciles finish and the lease be released.
    let finished = tokio::time::timeout(Duration::from_secs(5), async {
        // A panic in either was already reported by the panic hook;
        // stopping is all that is left to do.
        let _ = controller.await;
        let _ = writer.await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!("shutdown: the controller or the status writer did not stop within 5s");
    }
    tracing::info!("syva k8s stopped; core keeps the zones and memberships in force");
    match ended {
        None => Ok(()),
        Some(what) => Err(RoleError::new(ExitKind::Other, what)),
    }
}

/// `Store::wait_until_ready`, safe with several waiting tasks: it wakes
/// only the task that polled it last (a oneshot channel underneath), so a
/// second waiter could sleep forever. Polling again now and then
/// re-registers this task.
pub(crate) async fn store_ready<K>(
    store: &reflector::Store<K>,
) -> Result<(), reflector::store::WriterDropped>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        if let Ok(r) =
            tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await
        {
            return r;
        }
    }
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone: stopping too.
    let _ = stop.wait_for(|s| *s).await;
}

/// Wake the membership sync as soon as kubelet creates a pod cgroup, so a
/// pod waiting for its cgroup is attached within milliseconds rather than
/// at the next --pending-interval look-up.
async fn watch_pod_cgroups(cgroups: Arc<cgroups::PodCgroups>, wake: Arc<Notify>) {
    use inotify::{Inotify, WatchMask};
    let inotify = match Inotify::init() {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch pod cgroups with inotify; pending pods are looked at every --pending-interval");
            return std::future::pending().await;
        }
    };
    let mut watches = inotify.watches();
    let mut stream = match inotify.into_event_stream(vec![0u8; 4096]) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch pod cgroups with inotify; pending pods are looked at every --pending-interval");
            return std::future::pending().await;
        }
    };
    let mut watched = std::collections::BTreeSet::new();
    loop {
        // Parents come and go (kubepods and the QoS slices appear when
        // kubelet starts); the root is watched to see them appear.
        watched.retain(|p: &std::path::PathBuf| p.is_dir());
        let root = cgroups.root().to_path_buf();
        for p in std::iter::once(root).chain(cgroups.parents()) {
            if watched.contains(&p) {
                continue;
            }
            match watches.add(&p, WatchMask::CREATE | WatchMask::ONLYDIR) {
                Ok(_) => {
                    tracing::debug!(dir = %p.display(), "watching for new pod cgroups");
                    watched.insert(p);
                }
                // Polling still finds the pods below it.
                Err(e) => {
                    tracing::warn!(dir = %p.display(), error = %e, "cannot watch for new pod cgroups")
                }
            }
        }
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(ev)) => {
                    // Not a pod: maybe a new parent to scan for and watch.
                    if ev.name.as_deref().and_then(|n| n.to_str()).is_none_or(|n| !cgroups::is_pod_dir(n)) {
                        cgroups.invalidate();
                    }
                    wake.notify_one();
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pod cgroup watch error");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => return,
            },
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}

/// Follow core's boot id: when core restarted, re-apply everything.
async fn watch_core(
    core: CoreClient,
    boot: watch::Sender<String>,
    reconcile_all: mpsc::UnboundedSender<()>,
    membership: Arc<Notify>,
    every: Duration,
) {
    let mut backoff = Backoff::default();
    let mut reported_down = false;
    loop {
        let wait = match core.api().status(pb::StatusRequest {}).await {
            Ok(s) => {
                let id = s.into_inner().boot_id;
                backoff.reset(Duration::from_millis(100));
                if reported_down {
                    tracing::info!("syva core is reachable again");
                    reported_down = false;
                }
                if *boot.borrow() != id {
                    tracing::info!(boot_id = %id, "syva core (re)started: applying every policy and membership");
                    boot.send_replace(id);
                    // The controller is gone only at shutdown.
                    let _ = reconcile_all.send(());
                    membership.notify_one();
                }
                every
            }
            Err(e) => {
                if !reported_down {
                    tracing::warn!(error = %e.message(), "syva core is unavailable; retrying");
                    reported_down = true;
                }
                backoff.next_delay().min(every)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// The slowest polling for pods whose cgroup has not appeared.
const MAX_PENDING_WAIT: Duration = Duration::from_secs(2);

async fn membership_loop(
    m: pods::Membership,
    wake: Arc<Notify>,
    reconcile_all: mpsc::UnboundedSender<()>,
    resync: Duration,
    pending_interval: Duration,
) {
    // An empty store before the first list would detach every pod: wait.
    if store_ready(&m.pods).await.is_err() || store_ready(&m.policies).await.is_err() {
        tracing::error!("the watches ended before their first list");
        return;
    }
    tracing::info!(
        pods = m.pods.state().len(),
        policies = m.policies.state().len(),
        "initial lists received"
    );
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut last_full = Instant::now();
    let mut first = true;
    let mut last_report: Option<(Instant, Vec<(String, String)>)> = None;
    let mut pending_wait = pending_interval;
    loop {
        let full = first || last_full.elapsed() >= resync;
        let wait = match m.sync(full).await {
            Ok(r) => {
                backoff.reset(Duration::from_millis(100));
                if full {
                    last_full = Instant::now();
                }
                if first {
                    telemetry::notify_ready();
                    first = false;
                }
                if r.attached + r.detached > 0 {
                    tracing::info!(
                        attached = r.attached,
                        detached = r.detached,
                        pending = r.pending,
                        waiting_zone = r.waiting_zone,
                        "membership synced"
                    );
                }
                if m.state.set_members(&r.members) {
                    // The controller rewrites the nodes' member counts;
                    // it is gone only at shutdown.
                    let _ = reconcile_all.send(());
                }
                let mut problems = m.state.problems();
                problems.extend(r.problems);
                problems.sort();
                problems.dedup();
                let due = last_report
                    .as_ref()
                    .is_none_or(|(t, p)| *p != problems || t.elapsed() >= Duration::from_secs(30));
                if due {
                    report(&m.core, &m.node, &problems).await;
                    last_report = Some((Instant::now(), problems));
                }
                // Pods waiting for their cgroup: inotify wakes us when it
                // appears; polling is the fallback, slowing down while
                // nothing changes.
                if r.pending == 0 || r.attached > 0 {
                    pending_wait = pending_interval;
                }
                if r.pending > 0 {
                    let w = pending_wait;
                    pending_wait = (pending_wait * 2).min(MAX_PENDING_WAIT.max(pending_interval));
                    w
                } else {
                    resync
                }
            }
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e.message(), code = ?e.code(), retry_in = ?d, "membership sync failed");
                d
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Tell core what is not in force, so `syva ctl status` shows it.
async fn report(core: &CoreClient, node: &str, problems: &[(String, String)]) {
    for (object, message) in problems {
        tracing::warn!(%object, %message, "not in force");
    }
    let req = pb::ReportAdapterRequest {
        source: SOURCE.into(),
        instance: node.into(),
        problems: problems
            .iter()
            .map(|(object, message)| pb::AdapterProblem {
                object: object.clone(),
                message: message.clone(),
            })
            .collect(),
        last_sync: Some(crate::proto::timestamp(SystemTime::now())),
    };
    if let Err(e) = core.api().report_adapter(req).await {
        // The next pass reports again; the problems are in this log too.
        tracing::warn!(error = %e.message(), "ReportAdapter failed");
    }
}
