//! The SyvaZonePolicy custom resource: its Rust types are the single source
//! of the CRD (schema, CEL rules, status subresource) that `syva k8s crd`
//! prints and `packaging/k8s/crd.yaml` checks in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of Syva's resources.
pub const GROUP: &str = "syva.dev";

/// How many host paths or allowed zones one policy may list. Bounds keep
/// the CEL rules within the API server's cost budget.
pub const MAX_LIST_ITEMS: usize = 256;

/// A zone: which pods belong to it (selector) and what it owns and may do
/// (the same policy content as the TOML file adapter). Cluster-scoped: the
/// object name is the zone name on every node.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "syva.dev",
    version = "v1alpha1",
    kind = "SyvaZonePolicy",
    plural = "syvazonepolicies",
    shortname = "szp",
    status = "SyvaZonePolicyStatus",
    doc = "A Syva zone: the pods it contains (podSelector, namespaces) and the policy enforced on them by every node. The object name is the zone name.",
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name is the zone name: at most 63 characters"),
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.zoneType"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SyvaZonePolicySpec {
    /// standard: cross-zone access is denied unless the pair is allowed;
    /// privileged: may act on every other zone (node agents); isolated:
    /// allowed pairs do not apply.
    #[serde(default)]
    pub zone_type: ZoneTypeSpec,
    /// enforce denies; audit allows and reports would-denies.
    #[serde(default)]
    pub mode: ModeSpec,
    /// Host files and directories the zone owns (absolute, normalized
    /// paths; each path at most once). The complete list: paths no longer
    /// listed stop being protected.
    #[serde(default)]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["path".into()]))]
    pub host_paths: Vec<HostPathSpec>,
    /// Zones this zone may communicate with (by SyvaZonePolicy name).
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("self.all(z, z.matches('^[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+)*$'))").message("each allowed zone must be a zone name: letters, digits, '_', '-' and single dots between them")
    )]
    pub allowed_zones: Vec<String>,
    /// Allow ptrace between tasks of this zone.
    #[serde(default)]
    pub allow_ptrace: bool,
    /// Host Unix socket files (absolute paths, e.g. /dev/log) the zone's
    /// pods may connect or send to; other host sockets are denied to them.
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 4096)))]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("self.all(p, p.startsWith('/') && !p.endsWith('/') && !p.contains('//') && !p.matches('/[.][.]?(/|$)'))").message("each host socket must be an absolute, normalized path (no '.', '..', '//' or trailing '/')")
    )]
    pub allowed_host_sockets: Vec<String>,
    /// Pods that belong to the zone, by label. An empty selector selects
    /// every pod of the listed namespaces.
    pub pod_selector: LabelSelector,
    /// Namespaces whose pods the selector applies to; empty: all namespaces.
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub namespaces: Vec<String>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ZoneTypeSpec {
    #[default]
    Standard,
    Privileged,
    Isolated,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ModeSpec {
    #[default]
    Enforce,
    Audit,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct HostPathSpec {
    /// Absolute, normalized host path (no '.', '..', '//' or trailing '/').
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.startsWith('/') && (self == '/' || (!self.endsWith('/') && !self.contains('//') && !self.matches('/[.][.]?(/|$)')))").message("must be an absolute, normalized path (no '.', '..', '//' or trailing '/')"))]
    pub path: String,
    /// Also own everything below the path, including files created later.
    #[serde(default)]
    pub recursive: bool,
}

/// What the nodes and the status writer report. Each node writes only its
/// own `nodes[]` entry (server-side apply, field manager `syva-k8s/<node>`);
/// the elected status writer (Lease) writes `conditions` and
/// `observedGeneration` from the spec and the node entries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyvaZonePolicyStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (in force on every node that reported), Degraded (with the
    /// reason: InvalidSpec, NodeFailures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// One entry per node running `syva k8s`, keyed by node name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["node".into()]))]
    pub nodes: Vec<NodeStatus>,
}

/// The result on one node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub node: String,
    /// The generation this entry describes.
    pub observed_generation: i64,
    /// Ready: the zone is in force on the node with this generation.
    /// Degraded: something is not applied (reason: InvalidSpec,
    /// CoreRejected, ZoneConflict, MembershipProblems).
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Pods of this node currently attached to the zone.
    #[serde(default)]
    pub members: u32,
}

/// The CRD as YAML, as `syva k8s crd` prints it.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    let crd = SyvaZonePolicy::crd();
    let yaml = serde_yaml_ng::to_string(&crd)?;
    Ok(format!(
        "# SyvaZonePolicy CRD, generated by `syva k8s crd`: do not edit.\n---\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_has_status_subresource_and_rules() {
        let crd = SyvaZonePolicy::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("syvazonepolicies.syva.dev")
        );
        let json = serde_json::to_string(&crd).unwrap();
        assert!(json.contains(r#""status":{}"#), "{json}");
        assert!(json.contains("size(self.metadata.name) <= 63"));
        assert!(json.contains(r#""x-kubernetes-list-map-keys":["node"]"#));
        assert!(json.contains(r#""maxItems":256"#));
    }

    #[test]
    fn spec_defaults_and_camel_case() {
        let spec: SyvaZonePolicySpec =
            serde_json::from_value(serde_json::json!({"podSelector": {}})).unwrap();
        assert_eq!(spec.zone_type, ZoneTypeSpec::Standard);
        assert_eq!(spec.mode, ModeSpec::Enforce);
        assert!(spec.host_paths.is_empty());
        let v = serde_json::to_value(&spec).unwrap();
        assert!(v.get("allowPtrace").is_some() && v.get("hostPaths").is_some());
        assert!(
            serde_json::from_value::<SyvaZonePolicySpec>(
                serde_json::json!({"podSelector": {}, "zoneType": "weird"})
            )
            .is_err()
        );
    }
}
