//! `/v1/status` (core's full status) and `/v1/health` (one word and the
//! reasons, 503 when core is unhealthy or unreachable).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::view::{self, StatusView};
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProgramAttachment {
    pub program: String,
    pub hook: String,
    pub attached: bool,
}

/// Decisions of one LSM hook since core started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HookCounters {
    pub hook: String,
    pub allow: u64,
    pub deny: u64,
    /// Would-deny decisions allowed by audit mode.
    pub audit: u64,
    /// Kernel read failures.
    pub error: u64,
    /// Events that did not fit in the ring buffer.
    pub lost: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SelfTest {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdapterProblem {
    /// What the problem is about (a file, `namespace/name` of a resource).
    pub object: String,
    pub message: String,
}

/// What an adapter (`file`, `k8s`, `api`) last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdapterStatus {
    pub source: String,
    pub instance: String,
    pub problems: Vec<AdapterProblem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub last_sync: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub reported_at: Option<String>,
}

/// State of syva core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub version: String,
    pub git_commit: String,
    /// Changes every time core starts; core forgets everything on restart.
    pub boot_id: String,
    pub uptime_seconds: u64,
    pub health: EngineHealth,
    pub health_reasons: Vec<String>,
    /// `bpf` (kernel enforcement) or `memory` (test fake, enforces nothing).
    pub dataplane: String,
    pub attachments: Vec<ProgramAttachment>,
    pub zones: u32,
    pub containers: u32,
    pub max_zones: u32,
    pub protected_inodes: u64,
    pub max_protected_inodes: u64,
    /// Node-wide audit mode: nothing is denied, would-denies are reported.
    pub audit_mode: bool,
    pub hooks: Vec<HookCounters>,
    pub self_tests: Vec<SelfTest>,
    pub membership_stale: u64,
    pub membership_conflicts: u64,
    pub map_write_failures: u64,
    pub events_dropped: u64,
    pub adapters: Vec<AdapterStatus>,
}

/// Health as core reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineHealth {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Status {
    fn from_view(s: StatusView) -> Self {
        Self {
            version: s.version,
            git_commit: s.git_commit,
            boot_id: s.boot_id,
            uptime_seconds: s.uptime_seconds,
            health: match s.health {
                view::Health::Healthy => EngineHealth::Healthy,
                view::Health::Degraded => EngineHealth::Degraded,
                view::Health::Unhealthy => EngineHealth::Unhealthy,
            },
            health_reasons: s.health_reasons,
            dataplane: s.dataplane,
            attachments: s
                .attachments
                .into_iter()
                .map(|a| ProgramAttachment {
                    program: a.program,
                    hook: a.hook,
                    attached: a.attached,
                })
                .collect(),
            zones: s.zones,
            containers: s.containers,
            max_zones: s.max_zones,
            protected_inodes: s.protected_inodes,
            max_protected_inodes: s.max_protected_inodes,
            audit_mode: s.audit_mode,
            hooks: s
                .hooks
                .into_iter()
                .map(|h| HookCounters {
                    hook: h.hook,
                    allow: h.allow,
                    deny: h.deny,
                    audit: h.audit,
                    error: h.error,
                    lost: h.lost,
                })
                .collect(),
            self_tests: s
                .self_tests
                .into_iter()
                .map(|t| SelfTest {
                    name: t.name,
                    passed: t.passed,
                    detail: t.detail,
                })
                .collect(),
            membership_stale: s.membership_stale,
            membership_conflicts: s.membership_conflicts,
            map_write_failures: s.map_write_failures,
            events_dropped: s.events_dropped,
            adapters: s
                .adapters
                .into_iter()
                .map(|a| AdapterStatus {
                    source: a.source,
                    instance: a.instance,
                    problems: a
                        .problems
                        .into_iter()
                        .map(|p| AdapterProblem {
                            object: p.object,
                            message: p.message,
                        })
                        .collect(),
                    last_sync: a.last_sync,
                    reported_at: a.reported_at,
                })
                .collect(),
        }
    }
}

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
    Ok(Json(Status::from_view(proto::status_view(&s))))
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
