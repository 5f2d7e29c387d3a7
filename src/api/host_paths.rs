//! `/v1/zones/{name}/host-paths`: the host paths a zone owns, one at a time
//! (list, add or change, remove), on top of the zone's policy.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::model::ZoneName;
use crate::model::view::ZoneView;
use crate::proto::{self, pb};

use super::error::{ApiError, Kind};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::state::{AppState, SOURCE};
use super::zones::{self, HostPath, ZoneNameSchema, ZonePolicy, check_path_len, zone_param};

/// The host paths of one zone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostPathList {
    #[schema(value_type = ZoneNameSchema)]
    pub zone: String,
    pub host_paths: Vec<HostPath>,
    /// Files and directories currently protected for the zone.
    pub protected_inodes: u64,
}

impl HostPathList {
    fn from_view(z: &ZoneView) -> Self {
        let policy = ZonePolicy::from_model(&z.policy);
        Self {
            zone: z.name.clone(),
            host_paths: policy.host_paths,
            protected_inodes: z.protected_inodes,
        }
    }
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveHostPathQuery {
    /// The host path to stop protecting, exactly as listed.
    #[param(example = "/srv/data", min_length = 1, max_length = 4096)]
    pub path: String,
}

fn check_host_path(field: &str, h: &HostPath) -> Result<(), ApiError> {
    check_path_len(field, &h.path)?;
    crate::model::HostPath {
        path: h.path.clone(),
        recursive: h.recursive,
    }
    .validate()
    .map_err(|m| ApiError::field(Kind::InvalidField, field, format!("{field}: {m}")))
}

/// Re-apply `policy` for the zone (owned by this source).
async fn register(st: &AppState, zone: &ZoneName, policy: pb::ZonePolicy) -> Result<(), ApiError> {
    st.call(
        "register zone",
        st.api().register_zone(pb::RegisterZoneRequest {
            name: zone.to_string(),
            policy: Some(policy),
            source: SOURCE.to_owned(),
        }),
    )
    .await
    .map(drop)
}

/// List a zone's host paths.
#[utoipa::path(
    get, path = "/v1/zones/{name}/host-paths", tag = "host paths", operation_id = "listHostPaths",
    params(("name" = ZoneNameSchema, Path, description = "Zone name")),
    responses(
        (status = 200, description = "The zone's host paths", body = HostPathList),
        (status = 404, description = "No such zone", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid zone name", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<HostPathList>, ApiError> {
    let name = zone_param("name", &name)?;
    Ok(Json(HostPathList::from_view(
        &zones::fetch(&st, &name).await?,
    )))
}

/// Add a host path to a zone (or change its `recursive` flag).
///
/// The zone must be managed by the `api` source. The path must exist on the
/// host; it must not be owned by another zone (409).
#[utoipa::path(
    post, path = "/v1/zones/{name}/host-paths", tag = "host paths", operation_id = "addHostPath",
    params(("name" = ZoneNameSchema, Path, description = "Zone name")),
    request_body = HostPath,
    responses(
        (status = 200, description = "The zone's host paths after the change", body = HostPathList),
        (status = 404, description = "No such zone", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The zone is managed by another source, or the path is owned by another zone, or capacity is exhausted", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid zone name or path", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn add(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(h): ApiJson<HostPath>,
) -> Result<Json<HostPathList>, ApiError> {
    let name = zone_param("name", &name)?;
    check_host_path("path", &h)?;
    let _order = st.write_lock().await;
    let before = zones::fetch(&st, &name).await?;
    // Where the path lands in the policy core re-applies: errors about that
    // entry are errors about the request's `path`.
    let index = before
        .policy
        .host_paths
        .iter()
        .position(|p| p.path == h.path)
        .unwrap_or(before.policy.host_paths.len());
    st.call(
        "register host path",
        st.api().register_host_path(pb::RegisterHostPathRequest {
            zone: name.to_string(),
            path: h.path.clone(),
            recursive: h.recursive,
            source: SOURCE.to_owned(),
        }),
    )
    .await
    .map_err(|e| {
        e.rename_field("zone", "name")
            .rename_field(&format!("policy.host_paths[{index}].path"), "path")
    })?;
    Ok(Json(HostPathList::from_view(
        &zones::fetch(&st, &name).await?,
    )))
}

/// Remove a host path from a zone.
///
/// The zone must be managed by the `api` source. Its files stop being
/// protected.
#[utoipa::path(
    delete, path = "/v1/zones/{name}/host-paths", tag = "host paths", operation_id = "removeHostPath",
    params(("name" = ZoneNameSchema, Path, description = "Zone name"), RemoveHostPathQuery),
    responses(
        (status = 200, description = "The zone's host paths after the change", body = HostPathList),
        (status = 404, description = "No such zone, or the path is not one of its host paths", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The zone is managed by another source or is draining", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid zone name", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn remove(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RemoveHostPathQuery>,
) -> Result<Json<HostPathList>, ApiError> {
    let name = zone_param("name", &name)?;
    let _order = st.write_lock().await;
    let zone = zones::fetch(&st, &name).await?;
    let mut policy = zone.policy.clone();
    let before = policy.host_paths.len();
    policy.host_paths.retain(|p| p.path != q.path);
    if policy.host_paths.len() == before {
        return Err(ApiError::field(
            Kind::NotFound,
            "path",
            format!("path: {:?} is not a host path of zone {name}", q.path),
        ));
    }
    if zone.source != SOURCE {
        return Err(ApiError::conflict(format!(
            "zone {name} is managed by source {:?}, not {SOURCE:?}",
            zone.source
        )));
    }
    register(&st, &name, proto::policy_to_pb(&policy)).await?;
    Ok(Json(HostPathList::from_view(
        &zones::fetch(&st, &name).await?,
    )))
}
