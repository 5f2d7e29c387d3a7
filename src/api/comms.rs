//! `/v1/comms`: allowed zone pairs (symmetric). Lists every pair in force;
//! creates and removes the pairs made through the API (origin `api`), the
//! ones zone policies declare are changed through those policies.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::ZoneName;
use crate::proto::pb;

use super::error::ApiError;
use super::extract::ApiPath;
use super::state::AppState;
use super::zones::{ZoneNameSchema, zone_param};

/// Origin of pairs made with this API (core's AllowComm).
const EXPLICIT_ORIGIN: &str = "api";

/// Two zones whose tasks may act on each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommPair {
    /// The alphabetically first zone of the pair.
    #[schema(value_type = ZoneNameSchema)]
    pub zone_a: String,
    #[schema(value_type = ZoneNameSchema)]
    pub zone_b: String,
    /// Why the pair is allowed: `api` (made through this API) and/or
    /// `zone:<name>` (listed in that zone's `allowed_zones`).
    pub origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommList {
    pub pairs: Vec<CommPair>,
}

async fn fetch(st: &AppState) -> Result<Vec<CommPair>, ApiError> {
    let r = st
        .call("list pairs", st.api().list_comms(pb::ListCommsRequest {}))
        .await?;
    Ok(r.pairs
        .into_iter()
        .map(|p| CommPair {
            zone_a: p.zone_a,
            zone_b: p.zone_b,
            origins: p.origins,
        })
        .collect())
}

fn find(pairs: Vec<CommPair>, a: &ZoneName, b: &ZoneName) -> Option<CommPair> {
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    pairs
        .into_iter()
        .find(|p| p.zone_a == a.as_str() && p.zone_b == b.as_str())
}

fn names(a: &str, b: &str) -> Result<(ZoneName, ZoneName), ApiError> {
    Ok((zone_param("zone_a", a)?, zone_param("zone_b", b)?))
}

/// List allowed pairs.
#[utoipa::path(
    get, path = "/v1/comms", tag = "comms", operation_id = "listComms",
    responses((status = 200, description = "Every allowed pair in force", body = CommList)),
)]
pub async fn list(State(st): State<AppState>) -> Result<Json<CommList>, ApiError> {
    Ok(Json(CommList {
        pairs: fetch(&st).await?,
    }))
}

/// Allow a pair of zones.
///
/// Idempotent. Both zones must exist and neither may be isolated (409).
#[utoipa::path(
    put, path = "/v1/comms/{zone_a}/{zone_b}", tag = "comms", operation_id = "allowComm",
    params(
        ("zone_a" = ZoneNameSchema, Path, description = "One zone of the pair", example = "web"),
        ("zone_b" = ZoneNameSchema, Path, description = "The other zone (order does not matter)", example = "db"),
    ),
    responses(
        (status = 200, description = "The pair was already allowed through the API", body = CommPair),
        (status = 201, description = "The pair is now allowed", body = CommPair,
         headers(("Location" = String, description = "URL of the pair"))),
        (status = 404, description = "A zone does not exist", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A zone is isolated, or capacity is exhausted", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid zone name, or both names are the same zone", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn allow(
    State(st): State<AppState>,
    ApiPath((a, b)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (a, b) = names(&a, &b)?;
    let _order = st.write_lock().await;
    let existed = find(fetch(&st).await?, &a, &b)
        .is_some_and(|p| p.origins.iter().any(|o| o == EXPLICIT_ORIGIN));
    st.call(
        "allow pair",
        st.api().allow_comm(pb::AllowCommRequest {
            zone_a: a.to_string(),
            zone_b: b.to_string(),
        }),
    )
    .await?;
    let pair = find(fetch(&st).await?, &a, &b).ok_or_else(|| {
        ApiError::conflict(format!(
            "the pair {a}/{b} was allowed but is gone: a zone was removed meanwhile"
        ))
    })?;
    Ok(if existed {
        Json(pair).into_response()
    } else {
        let loc = HeaderValue::try_from(format!("/v1/comms/{}/{}", pair.zone_a, pair.zone_b))
            .unwrap_or_else(|_| HeaderValue::from_static("/v1/comms"));
        (StatusCode::CREATED, [(header::LOCATION, loc)], Json(pair)).into_response()
    })
}

/// Remove a pair made through the API.
///
/// Pairs a zone policy declares (`zone:<name>` origin) are removed by
/// changing that policy (409 here).
#[utoipa::path(
    delete, path = "/v1/comms/{zone_a}/{zone_b}", tag = "comms", operation_id = "denyComm",
    params(
        ("zone_a" = ZoneNameSchema, Path, description = "One zone of the pair", example = "web"),
        ("zone_b" = ZoneNameSchema, Path, description = "The other zone (order does not matter)", example = "db"),
    ),
    responses(
        (status = 204, description = "The pair is no longer allowed"),
        (status = 404, description = "A zone does not exist, or the pair was not allowed through the API", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A zone policy declares the pair", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid zone name", body = super::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn deny(
    State(st): State<AppState>,
    ApiPath((a, b)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (a, b) = names(&a, &b)?;
    let _order = st.write_lock().await;
    let explicit = find(fetch(&st).await?, &a, &b)
        .is_some_and(|p| p.origins.iter().any(|o| o == EXPLICIT_ORIGIN));
    // Core answers the unknown-zone and declared-by-policy cases with
    // precise errors, so it is asked even when the pair is not explicit.
    st.call(
        "deny pair",
        st.api().deny_comm(pb::DenyCommRequest {
            zone_a: a.to_string(),
            zone_b: b.to_string(),
        }),
    )
    .await?;
    if !explicit {
        return Err(ApiError::not_found(format!(
            "zones {a} and {b} are not a pair allowed through the API"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
