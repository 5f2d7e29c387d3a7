//! Prometheus metrics of `syva file`, served on `--metrics-addr` at
//! /metrics. Labels are bounded (operation and result names); which file
//! or cgroup has a problem is in the log and in `syva ctl status`.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Buckets of the attach latency histogram, in seconds (100 µs .. 1 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("installing the metrics recorder: {0}")]
    Install(String),
    #[error("--metrics-addr {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Install the recorder and serve /metrics on `addr` in the background.
pub async fn serve(addr: SocketAddr) -> Result<SocketAddr, MetricsError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("syva_file_attach_latency_seconds".into()),
            LATENCY_BUCKETS,
        )
        .map_err(|e| MetricsError::Install(e.to_string()))?
        .install_recorder()
        .map_err(|e| MetricsError::Install(e.to_string()))?;
    describe();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let app = Router::new().route("/metrics", get(move || render(handle.clone())));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics server stopped; /metrics is unavailable");
        }
    });
    tracing::info!(addr = %local, "serving /metrics");
    Ok(local)
}

async fn render(handle: PrometheusHandle) -> impl axum::response::IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}

fn describe() {
    describe_gauge!(
        "syva_file_policy_files",
        "Policy files of the last pass, by state (valid, invalid)"
    );
    describe_gauge!(
        "syva_file_zones",
        "Zones this adapter has in force in syva core"
    );
    describe_gauge!(
        "syva_file_members",
        "Cgroups this adapter has attached to zones"
    );
    describe_gauge!(
        "syva_file_problems",
        "Problems currently reported to syva core (invalid files, refused zones, membership conflicts)"
    );
    describe_counter!(
        "syva_file_syncs_total",
        "Full passes (files, zones, membership), by result (ok, core_unavailable)"
    );
    describe_counter!(
        "syva_file_zone_applies_total",
        "RegisterZone calls, by result (ok, refused)"
    );
    describe_counter!(
        "syva_file_zone_removals_total",
        "RemoveZone calls, by result (ok, refused)"
    );
    describe_counter!(
        "syva_file_membership_ops_total",
        "AttachContainer/DetachContainer calls, by op and result (applied, unchanged, stale, not_found, refused, vanished)"
    );
    describe_counter!(
        "syva_file_core_restarts_total",
        "Restarts of syva core seen (a new boot id): the full state was re-applied"
    );
    describe_histogram!(
        "syva_file_attach_latency_seconds",
        Unit::Seconds,
        "From the cgroup creation event to core confirming the attachment"
    );
}
