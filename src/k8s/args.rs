//! Command line of `syva k8s`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::client::DEFAULT_SOCKET;

/// Reconcile SyvaZonePolicy resources into syva core and attach the pods of
/// this node to their zones. Runs on every node (DaemonSet) next to
/// `syva core`. The Kubernetes API is found like kubectl does: --kubeconfig,
/// $KUBECONFIG, ~/.kube/config, or the in-cluster service account.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct K8sArgs {
    #[command(subcommand)]
    pub command: Option<K8sCommand>,

    /// Unix socket of syva core.
    #[arg(long, env = "SYVA_CORE_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub core_socket: PathBuf,

    /// Name of this node (from the downward API: spec.nodeName). Only pods
    /// scheduled here are watched; it also names this adapter's status
    /// entries and field manager (syva-k8s/<node>).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// Kubeconfig file to use instead of $KUBECONFIG, ~/.kube/config or the
    /// in-cluster configuration.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Root of the cgroup v2 hierarchy as this process sees it (default:
    /// the cgroup2 mount found in /proc/self/mountinfo). Pod cgroup paths
    /// are sent to core relative to it: core must see the same hierarchy.
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,

    /// A directory (relative to the cgroup root) that holds pod cgroups,
    /// when kubelet puts them where scanning for kubepods does not look.
    /// Repeatable.
    #[arg(long = "pod-cgroup-parent", value_name = "DIR")]
    pub pod_cgroup_parents: Vec<PathBuf>,

    /// Full resync: every policy re-applied and every pod's membership
    /// re-asserted in core this often, whatever the watches said.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub resync: Duration,

    /// How often pods that belong to a zone but whose cgroup does not
    /// exist yet (kubelet has not created it) are looked at again.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub pending_interval: Duration,

    /// How often core's boot id is checked: when core restarted, every
    /// policy and membership is applied again.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub core_check_interval: Duration,

    /// Namespace of the Lease that elects the one node writing the
    /// policies' overall conditions (Ready, Degraded).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "syva-system",
        value_name = "NAMESPACE"
    )]
    pub lease_namespace: String,

    /// Name of that Lease.
    #[arg(long, default_value = "syva-k8s-status", value_name = "NAME")]
    pub lease_name: String,

    /// Lease duration in seconds: how long the status writer's lease lasts
    /// without renewal before another node takes over.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub lease_seconds: u64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum K8sCommand {
    /// Print the SyvaZonePolicy CustomResourceDefinition as YAML (what
    /// packaging/k8s/crd.yaml holds).
    Crd,
}
