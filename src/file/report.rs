//! Problems of the adapter (invalid files, refused zones, membership
//! conflicts) and how they reach people: one log line when a problem
//! appears or clears, and ReportAdapter so `syva ctl status` and core's
//! health show them.

use std::collections::BTreeSet;
use std::time::SystemTime;

use tonic::transport::Channel;

use crate::proto::{self, SyvaCoreClient, pb};

use super::rpc::{self, CoreDown};

/// Core keeps at most this many problems per report.
const MAX_REPORTED: usize = 1000;

/// Something that keeps part of the directory's intent from being in force.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// "file:line:column" of a policy file, or "cgroup /path".
    pub object: String,
    pub message: String,
}

impl Problem {
    pub fn new(object: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            message: message.into(),
        }
    }

    pub fn cgroup(rel: &str, message: impl Into<String>) -> Self {
        Self::new(format!("cgroup /{rel}"), message)
    }
}

/// What was last logged and reported, to log changes once and skip
/// identical reports.
#[derive(Debug, Default)]
pub struct Reporter {
    current: BTreeSet<Problem>,
    /// Core holds `current` (false at start and after a core restart).
    reported: bool,
}

impl Reporter {
    /// Log what appeared and cleared, and tell core when the set changed
    /// (or `force`: after a full sync, to refresh last_sync).
    pub async fn report(
        &mut self,
        api: &mut SyvaCoreClient<Channel>,
        instance: &str,
        problems: BTreeSet<Problem>,
        last_sync: Option<SystemTime>,
        force: bool,
    ) -> Result<(), CoreDown> {
        for p in problems.difference(&self.current) {
            tracing::error!(object = %p.object, "{}", p.message);
        }
        for p in self.current.difference(&problems) {
            tracing::info!(object = %p.object, "resolved: {}", p.message);
        }
        metrics::gauge!("syva_file_problems").set(problems.len() as f64);
        let unchanged = self.reported && self.current == problems;
        self.current = problems;
        if unchanged && !force {
            return Ok(());
        }
        let mut list: Vec<pb::AdapterProblem> = self
            .current
            .iter()
            .take(MAX_REPORTED - 1)
            .map(|p| pb::AdapterProblem {
                object: p.object.clone(),
                message: p.message.clone(),
            })
            .collect();
        if self.current.len() > MAX_REPORTED - 1 {
            list.push(pb::AdapterProblem {
                object: "syva file".into(),
                message: format!(
                    "{} more problems (see the adapter's log)",
                    self.current.len() - (MAX_REPORTED - 1)
                ),
            });
        }
        let req = pb::ReportAdapterRequest {
            source: super::SOURCE.into(),
            instance: instance.to_owned(),
            problems: list,
            last_sync: last_sync.map(proto::timestamp),
        };
        self.reported = false;
        match rpc::call(api.report_adapter(req)).await {
            Ok(_) => {
                self.reported = true;
                Ok(())
            }
            Err(e) => {
                let refused = e.refused()?;
                // Reporting is how problems become visible, but a refused
                // report must not stop enforcement work: log it loudly and
                // try again with the next report.
                tracing::error!(error = %refused.message(), "core refused the adapter report");
                Ok(())
            }
        }
    }

    /// Core restarted: its copy of our report is gone.
    pub fn forget(&mut self) {
        self.reported = false;
    }
}
