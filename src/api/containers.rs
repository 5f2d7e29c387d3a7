//! `/v1/containers`: attach a container's cgroup to a zone, detach it, list
//! and get attached containers.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::model::view::{ContainerView, MembershipOutcome};
use crate::proto::{self, pb};

use super::error::{ApiError, Kind};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::state::{AppState, SOURCE};
use super::zones::{ZoneNameSchema, zone_param};

/// Longest container id core accepts.
const MAX_ID_LEN: usize = 256;
/// Longest pod namespace, name or uid accepted.
const MAX_POD_FIELD_LEN: usize = 253;

/// The Kubernetes pod a container belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pod {
    #[serde(default)]
    #[schema(max_length = 253)]
    pub namespace: String,
    #[serde(default)]
    #[schema(max_length = 253)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 253)]
    pub uid: String,
}

/// A container attached to a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Container {
    pub container_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// cgroup v2 id (inode number of the cgroup directory).
    pub cgroup_id: u64,
    /// cgroup path relative to the cgroup v2 mount.
    pub cgroup_path: String,
    #[schema(value_type = ZoneNameSchema)]
    pub zone: String,
    pub zone_id: u32,
    /// Who attached it (`api` for containers attached through this API).
    pub source: String,
    /// Ordering number given by the source (0: none).
    pub generation: u64,
    /// When the source observed the container (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub observed_at: Option<String>,
    /// When core attached it (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub attached_at: Option<String>,
}

impl Container {
    fn from_view(v: ContainerView) -> Self {
        Self {
            container_id: v.container_id,
            pod: v.pod.map(|p| Pod {
                namespace: p.namespace,
                name: p.name,
                uid: p.uid,
            }),
            cgroup_id: v.cgroup_id,
            cgroup_path: v.cgroup_path,
            zone: v.zone,
            zone_id: v.zone_id.0,
            source: v.source,
            generation: v.generation,
            observed_at: v.observed_at,
            attached_at: v.attached_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContainerList {
    pub containers: Vec<Container>,
}

/// Body of PUT /v1/containers/{container_id}: exactly one of `cgroup_id`
/// and `cgroup_path`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// The zone to attach the container to.
    #[schema(value_type = ZoneNameSchema)]
    pub zone: String,
    /// cgroup v2 id of the container (inode number of its cgroup directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub cgroup_id: Option<u64>,
    /// cgroup of the container, relative to the cgroup v2 mount (e.g.
    /// `kubepods.slice/.../cri-containerd-<id>.scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 4096)]
    pub cgroup_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// Ordering number of this request: a request with a lower generation
    /// than the one stored for the container is refused as stale (409).
    /// 0 (the default) is never stale.
    #[serde(default)]
    pub generation: u64,
}

/// What an attach did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// State changed.
    Applied,
    /// Already so (an idempotent repeat).
    Unchanged,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttachResult {
    pub outcome: Outcome,
    pub container: Container,
    /// The cgroup plus the descendants that existed at attach time.
    pub cgroups_covered: u32,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only containers of this zone.
    #[param(value_type = Option<ZoneNameSchema>)]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DetachQuery {
    /// Refuse (409) when the stored generation of the container is newer.
    /// 0 (the default) detaches unconditionally.
    #[serde(default)]
    pub generation: u64,
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::invalid("container_id", m));
    if id.is_empty() {
        return bad("must not be empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return bad(format!(
            "is {} bytes long, the limit is {MAX_ID_LEN}",
            id.len()
        ));
    }
    if id.chars().any(char::is_control) {
        return bad("must not contain control characters".into());
    }
    Ok(())
}

fn check_pod(p: &Pod) -> Result<(), ApiError> {
    for (field, v) in [
        ("namespace", &p.namespace),
        ("name", &p.name),
        ("uid", &p.uid),
    ] {
        let field = format!("pod.{field}");
        if v.len() > MAX_POD_FIELD_LEN {
            return Err(ApiError::invalid(
                field,
                format_args!(
                    "is {} bytes long, the limit is {MAX_POD_FIELD_LEN}",
                    v.len()
                ),
            ));
        }
        if v.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                field,
                "must not contain control characters",
            ));
        }
    }
    Ok(())
}

async fn fetch(st: &AppState, zone: Option<String>) -> Result<Vec<Container>, ApiError> {
    let r = st
        .call(
            "list containers",
            st.api().list_containers(pb::ListContainersRequest {
                zone: zone.unwrap_or_default(),
            }),
        )
        .await?;
    Ok(r.containers
        .iter()
        .map(|c| Container::from_view(proto::container_view(c)))
        .collect())
}

async fn fetch_one(st: &AppState, id: &str) -> Result<Option<Container>, ApiError> {
    Ok(fetch(st, None)
        .await?
        .into_iter()
        .find(|c| c.container_id == id))
}

fn location(id: &str) -> HeaderValue {
    let encoded: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    // `byte_serialize` writes spaces as '+', which is literal in a path.
    let encoded = encoded.replace('+', "%20");
    HeaderValue::try_from(format!("/v1/containers/{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("/v1/containers"))
}

/// List attached containers.
#[utoipa::path(
    get, path = "/v1/containers", tag = "containers", operation_id = "listContainers",
    params(ListQuery),
    responses(
        (status = 200, description = "Attached containers", body = ContainerList),
        (status = 422, description = "Invalid zone name", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ContainerList>, ApiError> {
    if let Some(z) = &q.zone {
        zone_param("zone", z)?;
    }
    Ok(Json(ContainerList {
        containers: fetch(&st, q.zone).await?,
    }))
}

/// Get an attached container.
#[utoipa::path(
    get, path = "/v1/containers/{container_id}", tag = "containers", operation_id = "getContainer",
    params(("container_id" = String, Path, description = "Container id", min_length = 1, max_length = 256, example = "3f9a1c0d2b7e")),
    responses(
        (status = 200, description = "The container", body = Container),
        (status = 404, description = "The container is not attached", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid container id", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Container>, ApiError> {
    check_id(&id)?;
    fetch_one(&st, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("container {id:?} is not attached")))
}

/// Attach a container to a zone.
///
/// Idempotent for the same zone and cgroup. A container attached to another
/// zone or cgroup, or by another source, is refused (409): detach it first.
#[utoipa::path(
    put, path = "/v1/containers/{container_id}", tag = "containers", operation_id = "attachContainer",
    params(("container_id" = String, Path, description = "Container id", min_length = 1, max_length = 256, example = "3f9a1c0d2b7e")),
    request_body = AttachRequest,
    responses(
        (status = 200, description = "Already attached (or repaired)", body = AttachResult),
        (status = 201, description = "Attached", body = AttachResult,
         headers(("Location" = String, description = "URL of the container"))),
        (status = 404, description = "No such zone or cgroup", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflicts with the container's current attachment, another container's cgroup, a draining zone, a newer generation, or exhausted capacity", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (named)", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn attach(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(a): ApiJson<AttachRequest>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let zone = zone_param("zone", &a.zone)?;
    let cgroup = match (a.cgroup_id, a.cgroup_path) {
        (Some(id), None) => pb::attach_container_request::Cgroup::CgroupId(id),
        (None, Some(p)) => {
            super::zones::check_path_len("cgroup_path", &p)?;
            if p.is_empty() {
                return Err(ApiError::invalid("cgroup_path", "must not be empty"));
            }
            pb::attach_container_request::Cgroup::CgroupPath(p)
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "cgroup_id",
                "give either cgroup_id or cgroup_path, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "cgroup_path",
                "give cgroup_id or cgroup_path",
            ));
        }
    };
    let pod = a.pod.unwrap_or(Pod {
        namespace: String::new(),
        name: String::new(),
        uid: String::new(),
    });
    check_pod(&pod)?;
    let _order = st.write_lock().await;
    let existed = fetch_one(&st, &id).await?.is_some();
    let res = st
        .call(
            "attach container",
            st.api().attach_container(pb::AttachContainerRequest {
                container_id: id.clone(),
                pod_namespace: pod.namespace,
                pod_name: pod.name,
                pod_uid: pod.uid,
                cgroup: Some(cgroup),
                zone: zone.to_string(),
                source: SOURCE.to_owned(),
                generation: a.generation,
                observed_at: None,
            }),
        )
        .await?;
    let outcome = match proto::outcome_from_pb(res.outcome) {
        Some(MembershipOutcome::Applied) => Outcome::Applied,
        Some(MembershipOutcome::Unchanged) => Outcome::Unchanged,
        Some(MembershipOutcome::Stale) => {
            return Err(ApiError::field(
                Kind::StaleGeneration,
                "generation",
                format!(
                    "generation: {} is older than the generation stored for container {id}; nothing was changed",
                    a.generation
                ),
            ));
        }
        other => {
            return Err(ApiError::new(
                Kind::CoreError,
                format!("attach container: core answered with outcome {other:?}"),
            ));
        }
    };
    let container = fetch_one(&st, &id).await?.ok_or_else(|| {
        ApiError::conflict(format!(
            "container {id} was attached but is gone: detached meanwhile"
        ))
    })?;
    let body = AttachResult {
        outcome,
        container,
        cgroups_covered: res.cgroups_covered,
    };
    Ok(if existed {
        Json(body).into_response()
    } else {
        (
            StatusCode::CREATED,
            [(header::LOCATION, location(&id))],
            Json(body),
        )
            .into_response()
    })
}

/// Detach a container.
///
/// Only containers attached through this API (source `api`) can be detached
/// here; others are refused (409).
#[utoipa::path(
    delete, path = "/v1/containers/{container_id}", tag = "containers", operation_id = "detachContainer",
    params(("container_id" = String, Path, description = "Container id", min_length = 1, max_length = 256, example = "3f9a1c0d2b7e"), DetachQuery),
    responses(
        (status = 204, description = "Detached"),
        (status = 404, description = "The container is not attached", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Attached by another source, or a newer generation is stored", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid container id", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn detach(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DetachQuery>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let _order = st.write_lock().await;
    let res = st
        .call(
            "detach container",
            st.api().detach_container(pb::DetachContainerRequest {
                container_id: id.clone(),
                source: SOURCE.to_owned(),
                generation: q.generation,
            }),
        )
        .await?;
    match proto::outcome_from_pb(res.outcome) {
        Some(MembershipOutcome::Applied | MembershipOutcome::Unchanged) => {
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Some(MembershipOutcome::NotFound) => Err(ApiError::not_found(format!(
            "container {id:?} is not attached"
        ))),
        Some(MembershipOutcome::Stale) => Err(ApiError::field(
            Kind::StaleGeneration,
            "generation",
            format!(
                "generation: {} is older than the generation stored for container {id}; nothing was changed",
                q.generation
            ),
        )),
        None => Err(ApiError::new(
            Kind::CoreError,
            format!(
                "detach container: core answered with outcome {}",
                res.outcome
            ),
        )),
    }
}
