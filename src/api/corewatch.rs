//! Background watch of core: logs when core becomes unreachable or
//! reachable again and when it restarted (it then forgot everything created
//! through this API), and reports this adapter to core (`ReportAdapter`) so
//! `syva ctl status` lists it.

use std::time::{Duration, Instant, SystemTime};

use crate::proto::{self, pb};

use super::state::{AppState, SOURCE};

/// How often core is polled.
const POLL: Duration = Duration::from_secs(5);
/// How often the adapter report is refreshed while nothing changes.
const REPORT_EVERY: Duration = Duration::from_secs(60);

pub async fn run(st: AppState, instance: String) {
    let mut boot_id: Option<String> = None;
    let mut reachable: Option<bool> = None;
    let mut reported: Option<Instant> = None;
    loop {
        match st
            .call("status", st.api().status(pb::StatusRequest {}))
            .await
        {
            Ok(s) => {
                if reachable != Some(true) {
                    tracing::info!(boot_id = %s.boot_id, health = ?proto::health_from_pb(s.health), "syva core is reachable");
                }
                reachable = Some(true);
                let restarted = boot_id.as_ref().is_some_and(|b| *b != s.boot_id);
                if restarted {
                    tracing::warn!(
                        previous = boot_id.as_deref().unwrap_or_default(),
                        current = %s.boot_id,
                        "syva core restarted: it forgot the zones, pairs and containers created \
                         through this API; clients must create them again"
                    );
                }
                if restarted || reported.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
                    report(&st, &instance).await;
                    reported = Some(Instant::now());
                }
                boot_id = Some(s.boot_id);
            }
            Err(e) => {
                if reachable != Some(false) {
                    tracing::warn!(error = %e, "syva core is unreachable: requests get 503 until it is back");
                }
                reachable = Some(false);
                reported = None;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The API keeps no desired state, so there is nothing to reconcile:
/// `last_sync` is the time of the report, which keeps the adapter's
/// last-sync metric fresh while the API runs and lets it go stale when not.
async fn report(st: &AppState, instance: &str) {
    let req = pb::ReportAdapterRequest {
        source: SOURCE.to_owned(),
        instance: instance.to_owned(),
        problems: Vec::new(),
        last_sync: Some(proto::timestamp(SystemTime::now())),
    };
    if let Err(e) = st
        .call("report adapter", st.api().report_adapter(req))
        .await
    {
        // Only `syva ctl status` loses a line; requests are unaffected.
        tracing::warn!(error = %e, "reporting this adapter to syva core failed");
    }
}
