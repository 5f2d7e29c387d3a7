//! `/v1/zones`: list, get, create-or-replace (PUT with the full policy) and
//! delete zones; the REST shapes of zones and policies.

use std::borrow::Cow;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::model::view::{ZoneState as ModelState, ZoneView};
use crate::model::{self, MAX_ZONE_NAME_LEN, ZoneName};
use crate::proto::{self, pb};

use super::error::{ApiError, Kind};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::state::{AppState, SOURCE};

/// The rules of `model::ZoneName` as a regular expression, for clients and
/// fuzzers: dot-separated segments of `[A-Za-z0-9_-]`.
pub const ZONE_NAME_PATTERN: &str = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$";

/// Schema of zone names (values are checked by `model::ZoneName`).
#[derive(Debug)]
pub struct ZoneNameSchema;

impl PartialSchema for ZoneNameSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_ZONE_NAME_LEN))
            .pattern(Some(ZONE_NAME_PATTERN))
            .description(Some(
                "A zone name: 1 to 63 characters of letters, digits, '_', '-' and '.', \
                 with no empty segment between dots.",
            ))
            .examples(["web"])
            .into()
    }
}

impl ToSchema for ZoneNameSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ZoneName")
    }
}

/// How a zone relates to the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ZoneType {
    /// Cross-zone access is denied unless the pair is allowed.
    #[default]
    Standard,
    /// May act on every other zone (node agents); others may not act on it.
    Privileged,
    /// Allowed pairs do not apply: nothing crosses in or out.
    Isolated,
}

/// Whether would-deny decisions involving the zone are denied or only reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnforcementMode {
    #[default]
    Enforce,
    /// Would-deny decisions are allowed and reported as `audit` events.
    Audit,
}

/// Lifecycle state of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ZoneState {
    /// Registered, no container attached yet.
    Pending,
    /// Has attached containers.
    Active,
    /// Removal requested: still enforcing, refuses new containers, removed
    /// when its last container is detached.
    Draining,
    /// Removed (only in the answer of a delete).
    Removed,
}

impl From<ModelState> for ZoneState {
    fn from(s: ModelState) -> Self {
        match s {
            ModelState::Pending => ZoneState::Pending,
            ModelState::Active => ZoneState::Active,
            ModelState::Draining => ZoneState::Draining,
            ModelState::Removed => ZoneState::Removed,
        }
    }
}

/// A host path a zone owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostPath {
    /// Absolute, normalized path on the host (no `.` or `..` segment, no
    /// `//`, no trailing `/`); it must exist.
    #[schema(example = "/srv/data", min_length = 1, max_length = 4096)]
    pub path: String,
    /// Own every file and directory below the path too, including ones
    /// created later.
    #[serde(default)]
    pub recursive: bool,
}

/// What a zone may do. Every field is optional; omitted fields take their
/// default (a standard, enforcing zone with no host paths).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZonePolicy {
    #[serde(default)]
    pub zone_type: ZoneType,
    #[serde(default)]
    pub mode: EnforcementMode,
    /// The complete list of protected host paths: paths not listed stop
    /// being protected.
    #[serde(default)]
    #[schema(max_items = 1024)]
    pub host_paths: Vec<HostPath>,
    /// Zones this zone may communicate with (each pair is allowed while
    /// both zones exist). A zone cannot list itself.
    #[serde(default)]
    #[schema(value_type = Vec<ZoneNameSchema>, max_items = 1024)]
    pub allowed_zones: Vec<String>,
    /// Allow ptrace between tasks of this zone.
    #[serde(default)]
    pub allow_ptrace: bool,
    /// Host Unix socket files (absolute paths, e.g. `/dev/log`) the zone
    /// may connect or send to; other host sockets are denied to it.
    #[serde(default)]
    #[schema(max_items = 1024, example = json!(["/dev/log"]))]
    pub allowed_host_sockets: Vec<String>,
}

impl ZonePolicy {
    pub fn from_model(p: &model::ZonePolicy) -> Self {
        Self {
            zone_type: match p.zone_type {
                model::ZoneType::Standard => ZoneType::Standard,
                model::ZoneType::Privileged => ZoneType::Privileged,
                model::ZoneType::Isolated => ZoneType::Isolated,
            },
            mode: match p.mode {
                model::EnforcementMode::Enforce => EnforcementMode::Enforce,
                model::EnforcementMode::Audit => EnforcementMode::Audit,
            },
            host_paths: p
                .host_paths
                .iter()
                .map(|h| HostPath {
                    path: h.path.clone(),
                    recursive: h.recursive,
                })
                .collect(),
            allowed_zones: p.allowed_zones.iter().map(ToString::to_string).collect(),
            allow_ptrace: p.allow_ptrace,
            allowed_host_sockets: p.allowed_host_sockets.clone(),
        }
    }

    /// The wire form, validated exactly as core validates it; errors name
    /// the field under `prefix`.
    pub fn to_pb(&self, prefix: &str) -> Result<pb::ZonePolicy, ApiError> {
        let wire = pb::ZonePolicy {
            zone_type: match self.zone_type {
                ZoneType::Standard => pb::ZoneType::Standard,
                ZoneType::Privileged => pb::ZoneType::Privileged,
                ZoneType::Isolated => pb::ZoneType::Isolated,
            } as i32,
            mode: match self.mode {
                EnforcementMode::Enforce => pb::EnforcementMode::Enforce,
                EnforcementMode::Audit => pb::EnforcementMode::Audit,
            } as i32,
            host_paths: self
                .host_paths
                .iter()
                .map(|h| pb::HostPath {
                    path: h.path.clone(),
                    recursive: h.recursive,
                })
                .collect(),
            allowed_zones: self.allowed_zones.clone(),
            allow_ptrace: self.allow_ptrace,
            allowed_host_sockets: self.allowed_host_sockets.clone(),
        };
        for (i, h) in self.host_paths.iter().enumerate() {
            check_path_len(&format!("{prefix}.host_paths[{i}].path"), &h.path)?;
        }
        for (i, p) in self.allowed_host_sockets.iter().enumerate() {
            check_path_len(&format!("{prefix}.allowed_host_sockets[{i}]"), p)?;
        }
        let checked = proto::policy_from_pb(prefix, &wire)
            .map_err(|e| ApiError::field(Kind::InvalidField, e.field.clone(), e.to_string()))?;
        Ok(proto::policy_to_pb(&checked))
    }
}

/// Longest accepted host path (PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;

pub fn check_path_len(field: &str, path: &str) -> Result<(), ApiError> {
    if path.len() > MAX_PATH_LEN {
        return Err(ApiError::invalid(
            field,
            format_args!("is {} bytes long, the limit is {MAX_PATH_LEN}", path.len()),
        ));
    }
    Ok(())
}

/// A zone as core reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Zone {
    #[schema(value_type = ZoneNameSchema)]
    pub name: String,
    /// Kernel-side zone id (1 and up).
    pub id: u32,
    pub state: ZoneState,
    /// Attached containers.
    pub member_count: u32,
    pub policy: ZonePolicy,
    /// Who manages the zone: `api` for zones created through this API,
    /// `file`, `k8s` or `ctl` otherwise. Only the managing source may change
    /// or remove a zone.
    pub source: String,
    /// Files and directories currently protected for the zone.
    pub protected_inodes: u64,
}

impl Zone {
    pub fn from_view(v: &ZoneView) -> Self {
        Self {
            name: v.name.clone(),
            id: v.id.0,
            state: v.state.into(),
            member_count: v.member_count,
            policy: ZonePolicy::from_model(&v.policy),
            source: v.source.clone(),
            protected_inodes: v.protected_inodes,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZoneList {
    pub zones: Vec<Zone>,
}

/// Body of PUT /v1/zones/{name}.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// The zone's complete policy; it replaces the previous one.
    pub policy: ZonePolicy,
}

/// Answer of a delete that leaves the zone draining.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZoneRemoval {
    pub state: ZoneState,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteZoneQuery {
    /// With containers attached: keep enforcing, refuse new containers, and
    /// remove the zone when the last one is detached (202). Without it such
    /// a delete is refused (409).
    #[serde(default)]
    pub drain: bool,
}

/// Validate a zone name given in the URL.
pub fn zone_param(field: &str, value: &str) -> Result<ZoneName, ApiError> {
    model::zone_name(field, value)
        .map_err(|e| ApiError::field(Kind::InvalidField, e.field.clone(), e.to_string()))
}

/// All zones, as core reports them.
pub async fn fetch_all(st: &AppState) -> Result<Vec<ZoneView>, ApiError> {
    let r = st
        .call("list zones", st.api().list_zones(pb::ListZonesRequest {}))
        .await?;
    Ok(r.zones.iter().map(proto::zone_view).collect())
}

/// One zone, or 404.
pub async fn fetch(st: &AppState, name: &ZoneName) -> Result<ZoneView, ApiError> {
    fetch_all(st)
        .await?
        .into_iter()
        .find(|z| z.name == name.as_str())
        .ok_or_else(|| ApiError::not_found(format!("zone {:?} not found", name.as_str())))
}

pub fn location(name: &str) -> HeaderValue {
    // Zone names are restricted to URL-safe characters.
    HeaderValue::try_from(format!("/v1/zones/{name}"))
        .unwrap_or_else(|_| HeaderValue::from_static("/v1/zones"))
}

/// List zones.
///
/// Every zone of the node, whatever its source.
#[utoipa::path(
    get, path = "/v1/zones", tag = "zones", operation_id = "listZones",
    responses((status = 200, description = "All zones", body = ZoneList)),
)]
pub async fn list(State(st): State<AppState>) -> Result<Json<ZoneList>, ApiError> {
    let zones = fetch_all(&st).await?.iter().map(Zone::from_view).collect();
    Ok(Json(ZoneList { zones }))
}

/// Get a zone.
#[utoipa::path(
    get, path = "/v1/zones/{name}", tag = "zones", operation_id = "getZone",
    params(("name" = ZoneNameSchema, Path, description = "Zone name")),
    responses(
        (status = 200, description = "The zone", body = Zone),
        (status = 404, description = "No such zone", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid zone name", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Zone>, ApiError> {
    let name = zone_param("name", &name)?;
    Ok(Json(Zone::from_view(&fetch(&st, &name).await?)))
}

/// Create a zone or replace its policy.
///
/// Idempotent: the zone gets exactly the given policy. The zone is managed by
/// the `api` source; a zone managed by another source (a policy file, a
/// Kubernetes resource) cannot be changed here (409).
#[utoipa::path(
    put, path = "/v1/zones/{name}", tag = "zones", operation_id = "putZone",
    params(("name" = ZoneNameSchema, Path, description = "Zone name")),
    request_body = ZoneSpec,
    responses(
        (status = 200, description = "Policy replaced", body = Zone),
        (status = 201, description = "Zone created", body = Zone,
         headers(("Location" = String, description = "URL of the zone"))),
        (status = 409, description = "The zone is managed by another source or is draining, a host path is owned by another zone, or capacity is exhausted", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or policy (the field is named)", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn put(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(spec): ApiJson<ZoneSpec>,
) -> Result<Response, ApiError> {
    let name = zone_param("name", &name)?;
    let policy = spec.policy.to_pb("policy")?;
    let _order = st.write_lock().await;
    let res = st
        .call(
            "register zone",
            st.api().register_zone(pb::RegisterZoneRequest {
                name: name.to_string(),
                policy: Some(policy),
                source: SOURCE.to_owned(),
            }),
        )
        .await?;
    let zone = Zone::from_view(&fetch(&st, &name).await?);
    Ok(if res.created {
        (
            StatusCode::CREATED,
            [(header::LOCATION, location(name.as_str()))],
            Json(zone),
        )
            .into_response()
    } else {
        Json(zone).into_response()
    })
}

/// Delete a zone.
///
/// Removes a zone managed by the `api` source. A zone with attached
/// containers is refused (409) unless `drain=true`, which marks it draining
/// (202): it keeps enforcing and is removed when its last container is
/// detached.
#[utoipa::path(
    delete, path = "/v1/zones/{name}", tag = "zones", operation_id = "deleteZone",
    params(("name" = ZoneNameSchema, Path, description = "Zone name"), DeleteZoneQuery),
    responses(
        (status = 204, description = "Zone removed"),
        (status = 202, description = "Zone draining: removed after its last container is detached", body = ZoneRemoval),
        (status = 404, description = "No such zone", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The zone has containers (and drain is not set) or is managed by another source", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid zone name", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteZoneQuery>,
) -> Result<Response, ApiError> {
    let name = zone_param("name", &name)?;
    let _order = st.write_lock().await;
    let res = st
        .call(
            "remove zone",
            st.api().remove_zone(pb::RemoveZoneRequest {
                name: name.to_string(),
                drain: q.drain,
                source: SOURCE.to_owned(),
            }),
        )
        .await?;
    Ok(match proto::zone_state_from_pb(res.state) {
        ModelState::Removed => StatusCode::NO_CONTENT.into_response(),
        s => (StatusCode::ACCEPTED, Json(ZoneRemoval { state: s.into() })).into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_validation_names_fields_like_core() {
        let p = ZonePolicy {
            host_paths: vec![HostPath {
                path: "srv".into(),
                recursive: false,
            }],
            ..Default::default()
        };
        let e = p.to_pb("policy").unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("policy.host_paths[0].path"));

        let p = ZonePolicy {
            allowed_zones: vec!["ok".into(), "a..b".into()],
            ..Default::default()
        };
        assert_eq!(
            p.to_pb("policy").unwrap_err().field.as_deref(),
            Some("policy.allowed_zones[1]")
        );

        let p = ZonePolicy {
            host_paths: vec![HostPath {
                path: format!("/{}", "a".repeat(MAX_PATH_LEN)),
                recursive: false,
            }],
            ..Default::default()
        };
        assert_eq!(
            p.to_pb("policy").unwrap_err().field.as_deref(),
            Some("policy.host_paths[0].path")
        );
    }

    #[test]
    fn policy_json_defaults_and_rejects_unknown_fields() {
        let spec: ZoneSpec = serde_json::from_str(r#"{"policy":{}}"#).unwrap();
        assert_eq!(spec.policy, ZonePolicy::default());
        assert!(serde_json::from_str::<ZoneSpec>(r#"{"policy":{"alow_ptrace":true}}"#).is_err());
        assert!(serde_json::from_str::<ZoneSpec>(r#"{"policy":{"zone_type":"weird"}}"#).is_err());
    }
}
