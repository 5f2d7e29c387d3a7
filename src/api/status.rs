//! `/v1/status` (core's full status) and `/v1/health` (one word and the
//! reasons, 503 when core is unhealthy or unreachable).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::view;
use crate::proto::{self, pb};

use super::error::{ApiError, Kind, RETRY_AFTER_SECS};
use super::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Enforcing, nothing needs attention.
    Healthy,
    /// Enforcing, but something recent needs attention (see reasons).
    Degraded,
    /// A program is not attached or a self-test failed.
    Unhealthy,
    /// syva core cannot be reached (health of this API's view of it).
    Unavailable,
}

impl From<view::Health> for HealthStatus {
    fn from(h: view::Health) -> Self {
        match h {
            view::Health::Healthy => HealthStatus::Healthy,
            view::Health::Degraded => HealthStatus::Degraded,
            view::Health::Unhealthy => HealthStatus::Unhealthy,
        }
    }
}

/// Core's status is served as the model's view of it (`model::view`),
/// whose schema names (Status, EngineHealth, HookCounters, ...) are the
/// ones published in the OpenAPI document.
pub use crate::model::view::StatusView as Status;

/// Health of the node's enforcement as seen through this API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    /// Why the status is not `healthy`.
    pub reasons: Vec<String>,
    /// Core's boot id (absent while core is unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// Status of syva core.
#[utoipa::path(
    get, path = "/v1/status", tag = "status", operation_id = "getStatus",
    responses((status = 200, description = "Core's status", body = Status)),
)]
pub async fn status(State(st): State<AppState>) -> Result<Json<Status>, ApiError> {
    let s = st
        .call("status", st.api().status(pb::StatusRequest {}))
        .await?;
    Ok(Json(proto::status_view(&s)))
}

/// Health summary.
///
/// 200 while core enforces (healthy or degraded); 503 with Retry-After when
/// core is unhealthy or unreachable. The body is a `Health` either way.
#[utoipa::path(
    get, path = "/v1/health", tag = "status", operation_id = "getHealth",
    responses(
        (status = 200, description = "Core is healthy or degraded", body = Health),
        (status = 503, description = "Core is unhealthy or unreachable", body = Health,
         headers(("Retry-After" = u64, description = "Seconds to wait before asking again"))),
    ),
)]
pub async fn health(State(st): State<AppState>) -> Response {
    let (code, body) = match st
        .call("status", st.api().status(pb::StatusRequest {}))
        .await
    {
        Ok(s) => {
            let v = proto::status_view(&s);
            let code = if v.health == view::Health::Unhealthy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            (
                code,
                Health {
                    status: v.health.into(),
                    reasons: v.health_reasons,
                    boot_id: Some(v.boot_id),
                },
            )
        }
        Err(e) if e.kind == Kind::CoreUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                status: HealthStatus::Unavailable,
                reasons: vec![e.detail],
                boot_id: None,
            },
        ),
        Err(e) => return e.into_response(),
    };
    let mut res = (code, Json(body)).into_response();
    if code == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    res
}
