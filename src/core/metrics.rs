//! Prometheus metrics of `syva core` (metrics + metrics-exporter-prometheus).
//! Labels are bounded: hook and verdict names, operation and result names,
//! map names, health states, program names. No free-text labels.

use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::model::view::Health;

use super::Engine;
use super::hooks::{HOOKS, VERDICTS};

/// Install the global recorder; returns the handle that renders /metrics.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_counter!(
        "syva_hook_decisions_total",
        "Decisions of the BPF hooks (allow/deny/audit/error/lost); allow counts zoned callers only"
    );
    describe_counter!(
        "syva_membership_updates_total",
        "AttachContainer/DetachContainer results (applied, unchanged, stale, conflict, not_found)"
    );
    describe_counter!(
        "syva_map_write_failures_total",
        "BPF map writes that failed (rolled back)"
    );
    describe_counter!(
        "syva_rollback_failures_total",
        "Rollbacks of failed map writes that failed themselves"
    );
    describe_counter!(
        "syva_events_total",
        "Deny and would-deny events read from the kernel"
    );
    describe_counter!(
        "syva_events_dropped_total",
        "Events dropped because a WatchEvents subscriber was too slow"
    );
    describe_gauge!(
        "syva_health",
        "1 for the current health state (healthy, degraded, unhealthy)"
    );
    describe_gauge!(
        "syva_health_state",
        "Health as a number: 0 healthy, 1 degraded, 2 unhealthy"
    );
    describe_gauge!(
        "syva_program_attached",
        "1 when the BPF program is attached"
    );
    describe_gauge!(
        "syva_selftest_passed",
        "1 when the startup self-test passed"
    );
    describe_gauge!("syva_zones", "Registered zones");
    describe_gauge!("syva_containers", "Attached containers");
    describe_gauge!("syva_protected_inodes", "Entries in the protected-file map");
    describe_gauge!("syva_max_zones", "Zone capacity (max_zones)");
    describe_gauge!("syva_audit_mode", "1 when node-wide audit mode is on");
    describe_gauge!("syva_build_info", "Build information");
    describe_gauge!(
        "syva_adapter_problems",
        "Problems adapters of this source last reported (ReportAdapter)"
    );
    describe_gauge!(
        "syva_adapter_last_sync_timestamp_seconds",
        "When adapters of this source last completed a full reconcile (Unix time)"
    );
}

/// Bring every metric up to date (called before each scrape).
pub fn refresh(engine: &Engine) {
    let counters = engine.counters();
    for (h, c) in HOOKS.iter().zip(counters.iter()) {
        for (v, name) in VERDICTS.iter().enumerate() {
            counter!("syva_hook_decisions_total", "hook" => h.name, "verdict" => *name)
                .absolute(c[v]);
        }
    }
    let s = &engine.signals;
    counter!("syva_map_write_failures_total").absolute(s.map_write_failures.total());
    counter!("syva_rollback_failures_total").absolute(s.rollback_failures.total());
    counter!("syva_events_dropped_total").absolute(s.events_dropped.total());

    let report = engine.health();
    for h in [Health::Healthy, Health::Degraded, Health::Unhealthy] {
        gauge!("syva_health", "state" => h.as_str()).set(f64::from(u8::from(report.health == h)));
    }
    gauge!("syva_health_state").set(match report.health {
        Health::Healthy => 0.0,
        Health::Degraded => 1.0,
        Health::Unhealthy => 2.0,
    });
    let dp = engine.registry.dataplane();
    for a in dp.attachments() {
        gauge!("syva_program_attached", "program" => a.program)
            .set(f64::from(u8::from(a.attached)));
    }
    for t in dp.self_tests() {
        let passed = matches!(t.outcome, super::dataplane::SelfTestOutcome::Passed(_));
        gauge!("syva_selftest_passed", "test" => t.name).set(f64::from(u8::from(passed)));
    }
    let (zones, containers) = engine.registry.counts();
    gauge!("syva_zones").set(f64::from(zones));
    gauge!("syva_containers").set(f64::from(containers));
    // The count is a map walk; a failure leaves the previous value.
    if let Ok(n) = dp.file_count() {
        gauge!("syva_protected_inodes").set(n as f64);
    }
    gauge!("syva_max_zones").set(f64::from(dp.capacities().max_zones));
    gauge!("syva_audit_mode").set(f64::from(u8::from(engine.registry.audit())));
    let mut by_source: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
    for a in engine.adapters() {
        let e = by_source.entry(a.source.clone()).or_default();
        e.0 += a.problems.len();
        if let Some(t) = a
            .last_sync
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        {
            e.1 = e.1.max(t.as_secs_f64());
        }
    }
    for (source, (problems, last_sync)) in by_source {
        // `source` is validated (1..=64 bytes) and is one per adapter kind.
        gauge!("syva_adapter_problems", "source" => source.clone()).set(problems as f64);
        gauge!("syva_adapter_last_sync_timestamp_seconds", "source" => source).set(last_sync);
    }
    gauge!(
        "syva_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "commit" => env!("SYVA_GIT_COMMIT"),
        "dataplane" => dp.kind()
    )
    .set(1.0);
}
