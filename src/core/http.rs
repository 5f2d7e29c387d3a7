//! Local HTTP endpoints of `syva core`: `/metrics` (Prometheus text),
//! `/healthz` (200 unless unhealthy, JSON body with reasons) and `/readyz`
//! (200 once every program is attached and no self-test failed).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::model::view::Health;

use super::Engine;

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    prometheus: Option<PrometheusHandle>,
}

pub fn router(engine: Arc<Engine>, prometheus: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { engine, prometheus })
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serve until the process exits; a failure is logged (health endpoints
/// are diagnostics: enforcement goes on without them).
pub async fn serve(listener: tokio::net::TcpListener, app: Router) {
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "metrics server stopped");
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let Some(handle) = s.prometheus.clone() else {
        return (StatusCode::NOT_FOUND, "metrics are disabled\n").into_response();
    };
    let engine = s.engine.clone();
    match tokio::task::spawn_blocking(move || {
        super::metrics::refresh(&engine);
        handle.render()
    })
    .await
    {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering metrics failed: {e}\n"),
        )
            .into_response(),
    }
}

async fn healthz(State(s): State<AppState>) -> Response {
    let engine = s.engine.clone();
    let Ok(report) = tokio::task::spawn_blocking(move || engine.health()).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let code = if report.health == Health::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        axum::Json(json!({"status": report.health, "reasons": report.reasons})),
    )
        .into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    let dp = s.engine.registry.dataplane();
    let missing: Vec<String> = dp
        .attachments()
        .into_iter()
        .filter(|a| !a.attached)
        .map(|a| format!("program {} not attached", a.program))
        .chain(
            dp.self_tests()
                .into_iter()
                .filter(|t| matches!(t.outcome, super::dataplane::SelfTestOutcome::Failed(_)))
                .map(|t| format!("self-test {} failed", t.name)),
        )
        .collect();
    if missing.is_empty() {
        (StatusCode::OK, axum::Json(json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "reasons": missing})),
        )
            .into_response()
    }
}
