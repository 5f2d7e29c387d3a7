//! `syva file`: reconcile a directory of TOML zone policies, and the cgroups
//! their membership rules select, into syva core; `syva file check`
//! validates the files offline.
//!
//! One task owns all state and handles, in order: the full sync (at start,
//! after a policy change, periodically, and after core restarts), cgroup
//! events (attach/detach as cgroups come and go) and the core liveness
//! check. See docs/file.md for the file format and the semantics.

mod args;
mod load;
mod membership;
mod prometheus;
mod reconcile;
mod report;
mod rpc;
mod rules;
mod watch;

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::time::MissedTickBehavior;
use tonic::transport::Channel;

use crate::client::{Backoff, CoreClient};
use crate::error::{ExitKind, RoleError};
use crate::proto::{SyvaCoreClient, pb};

pub use args::{FileArgs, FileCommand};

use self::membership::Membership;
use self::reconcile::Zones;
use self::report::{Problem, Reporter};
use self::rpc::CoreDown;
use self::watch::{CgroupEvent, CgroupWatch, PolicyWatch};

/// The `source` of every zone and container this adapter manages.
pub const SOURCE: &str = "file";

/// How often core's boot id is checked (a restarted core has lost every
/// zone: the sooner we notice, the shorter enforcement is off).
const CORE_CHECK: Duration = Duration::from_secs(1);

/// A new cgroup is scanned again this long after its event, for children
/// created before its watch was in place.
const RESCAN_DELAY: Duration = Duration::from_millis(250);

/// Most cgroup events handled as one batch.
const MAX_BATCH: usize = 1024;

pub async fn run(args: FileArgs) -> Result<(), RoleError> {
    if let Some(FileCommand::Check { path }) = &args.command {
        let path = path.clone().unwrap_or_else(|| args.policy_dir.clone());
        return check(&path);
    }
    Daemon::start(args).await?.run().await
}

/// `syva file check`: print every error, exit 0 (valid) or 3.
fn check(path: &Path) -> Result<(), RoleError> {
    let mut files = if path.is_dir() {
        load::load_dir(path).map_err(|e| RoleError::new(ExitKind::Config, e))?
    } else if path.exists() {
        vec![load::load_file(path)]
    } else {
        return Err(RoleError::new(
            ExitKind::Config,
            format!("{}: no such file or directory", path.display()),
        ));
    };
    load::resolve_duplicates(&mut files, |_| None);
    let mut invalid = 0;
    for f in &files {
        match &f.result {
            Ok(spec) => println!(
                "{}: ok (zone {}, {} host path(s), {} membership rule(s))",
                f.path.display(),
                spec.name,
                spec.policy.host_paths.len(),
                spec.members.patterns().count() + spec.members.container_ids().len()
            ),
            Err(e) => {
                invalid += 1;
                for d in &e.diagnostics {
                    println!("{d}");
                }
            }
        }
    }
    if invalid > 0 {
        return Err(RoleError::new(
            ExitKind::Config,
            format!("{invalid} of {} policy file(s) are invalid", files.len()),
        ));
    }
    println!("{} policy file(s) valid", files.len());
    Ok(())
}

/// The running adapter.
struct Daemon {
    args: FileArgs,
    instance: String,
    api: SyvaCoreClient<Channel>,
    zones: Zones,
    members: Membership,
    reporter: Reporter,
    /// Problems of the last full pass over the files and zones.
    zone_problems: Vec<Problem>,
    boot_id: Option<String>,
    last_sync: Option<SystemTime>,
    policy: PolicyWatch,
    /// (dev, ino) of the watched policy directory.
    policy_id: Option<(u64, u64)>,
    cgroups: CgroupWatch,
    /// New cgroups to scan again (see RESCAN_DELAY).
    rescans: VecDeque<(tokio::time::Instant, PathBuf)>,
}

impl Daemon {
    async fn start(mut args: FileArgs) -> Result<Self, RoleError> {
        let config = |e: String| RoleError::new(ExitKind::Config, e);
        // Absolute (event paths and reported problems are), symlinks kept:
        // a directory reached through a link that is later swapped is
        // followed by the resync.
        args.policy_dir = std::path::absolute(&args.policy_dir)
            .map_err(|e| config(format!("--policy-dir {}: {e}", args.policy_dir.display())))?;
        if !args.policy_dir.is_dir() {
            return Err(config(format!(
                "--policy-dir {}: not a directory",
                args.policy_dir.display()
            )));
        }
        let instance = args
            .instance
            .clone()
            .unwrap_or_else(|| args.policy_dir.display().to_string());
        if instance.is_empty() || instance.len() > 253 {
            return Err(config(format!(
                "--instance {instance:?}: must be 1..=253 bytes (set it when the policy \
                 directory path is longer)"
            )));
        }
        let cgroup_root = match &args.cgroup_root {
            // Absolute and without symlinks: event paths are absolute.
            Some(r) if r.is_dir() => std::fs::canonicalize(r)
                .map_err(|e| config(format!("--cgroup-root {}: {e}", r.display())))?,
            Some(r) => {
                return Err(config(format!(
                    "--cgroup-root {}: not a directory",
                    r.display()
                )));
            }
            None => crate::core::cgroup::CgroupFs::discover()
                .map_err(|e| RoleError::new(ExitKind::Unsupported, e))?
                .root()
                .to_path_buf(),
        };
        if let Some(addr) = args.metrics_addr {
            prometheus::serve(addr)
                .await
                .map_err(|e| config(e.to_string()))?;
        }
        // Watches first, then the initial sync: nothing created in between
        // goes unseen.
        let policy_id = dir_id(&args.policy_dir);
        let policy = PolicyWatch::start(&args.policy_dir, args.debounce)
            .map_err(|e| RoleError::new(ExitKind::Other, e))?;
        let (cgroups, partial) =
            CgroupWatch::start(&cgroup_root).map_err(|e| RoleError::new(ExitKind::Other, e))?;
        tracing::info!(
            policy_dir = %args.policy_dir.display(),
            cgroup_root = %cgroup_root.display(),
            core_socket = %args.core_socket.display(),
            resync = %humantime::format_duration(args.resync_interval),
            "syva file starting"
        );
        let api = CoreClient::lazy(&args.core_socket).api();
        let mut members = Membership::new(cgroup_root);
        if let Some(why) = partial {
            members.set_watch_problem(watch_failed(&why));
        }
        Ok(Self {
            instance,
            api,
            zones: Zones::default(),
            members,
            reporter: Reporter::default(),
            zone_problems: Vec::new(),
            boot_id: None,
            last_sync: None,
            policy,
            policy_id,
            cgroups,
            rescans: VecDeque::new(),
            args,
        })
    }

    async fn run(mut self) -> Result<(), RoleError> {
        let shutdown = crate::telemetry::shutdown_signal();
        tokio::pin!(shutdown);
        let mut backoff = Backoff::default();
        let mut need_sync = true;
        let mut down_since: Option<Instant> = None;
        let mut ready = false;
        let mut resync = tokio::time::interval(self.args.resync_interval);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        resync.reset(); // the first tick is the initial sync, done below
        let mut core_check = tokio::time::interval(CORE_CHECK);
        core_check.set_missed_tick_behavior(MissedTickBehavior::Delay);

        loop {
            if need_sync {
                match self.full_sync().await {
                    Ok(()) => {
                        need_sync = false;
                        backoff = Backoff::default();
                        if let Some(t) = down_since.take() {
                            tracing::info!(after = ?t.elapsed(), "syva core is reachable again; state re-applied");
                        }
                        if !ready {
                            ready = true;
                            crate::telemetry::notify_ready();
                        }
                    }
                    Err(CoreDown(why)) => {
                        metrics::counter!("syva_file_syncs_total", "result" => "core_unavailable")
                            .increment(1);
                        let delay = backoff.next_delay();
                        if down_since.is_none() {
                            down_since = Some(Instant::now());
                            tracing::warn!(socket = %self.args.core_socket.display(), error = %why, "waiting for syva core; retrying with backoff");
                        } else {
                            tracing::debug!(error = %why, retry_in = ?delay, "syva core still unavailable");
                        }
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(delay) => {}
                        }
                        continue;
                    }
                }
            }
            let next_rescan = self.rescans.front().map(|(t, _)| *t);
            tokio::select! {
                () = &mut shutdown => break,
                () = self.policy.changed() => {
                    tracing::debug!("policy directory changed");
                    need_sync = true;
                }
                ev = self.cgroups.next() => {
                    if let Err(CoreDown(why)) = self.on_cgroup_events(ev).await {
                        tracing::warn!(error = %why, "syva core became unavailable");
                        need_sync = true;
                    }
                }
                () = sleep_until_opt(next_rescan) => {
                    if let Err(CoreDown(why)) = self.due_rescans().await {
                        tracing::warn!(error = %why, "syva core became unavailable");
                        need_sync = true;
                    }
                }
                _ = resync.tick() => {
                    tracing::debug!("periodic resync");
                    need_sync = true;
                }
                _ = core_check.tick() => {
                    need_sync |= self.core_changed().await;
                }
            }
        }
        tracing::info!("syva file stopping; zones and memberships stay in force in syva core");
        Ok(())
    }

    /// Read the directory, reconcile zones and membership, report.
    async fn full_sync(&mut self) -> Result<(), CoreDown> {
        let started = Instant::now();
        let status = match rpc::call(self.api.status(pb::StatusRequest {})).await {
            Ok(s) => s,
            Err(e) => {
                let s = e.refused()?;
                return Err(CoreDown(format!("Status failed: {}", s.message())));
            }
        };
        self.note_boot_id(status.boot_id);

        self.rearm_policy_watch();
        let dir = self.args.policy_dir.clone();
        let loaded = tokio::task::spawn_blocking(move || load::load_dir(&dir))
            .await
            .map_err(|e| CoreDown(format!("loading task failed: {e}")))?;
        let pass = self.zones.apply(&mut self.api, loaded).await?;
        let frozen = self.zones.frozen(&pass);
        self.members
            .set_rules(self.zones.rules(&pass.removals), frozen);
        self.members.full_sync(&self.api).await?;
        let mut problems = pass.problems;
        problems.extend(self.zones.remove(&mut self.api, &pass.removals).await?);
        self.zone_problems = problems;
        self.last_sync = Some(SystemTime::now());

        metrics::gauge!("syva_file_policy_files", "state" => "valid").set(pass.files_valid as f64);
        metrics::gauge!("syva_file_policy_files", "state" => "invalid")
            .set(pass.files_invalid as f64);
        metrics::gauge!("syva_file_zones").set(self.zones.count() as f64);
        metrics::counter!("syva_file_syncs_total", "result" => "ok").increment(1);
        tracing::debug!(
            elapsed = ?started.elapsed(),
            files_valid = pass.files_valid,
            files_invalid = pass.files_invalid,
            zones = self.zones.count(),
            members = self.members.member_count(),
            "full sync done"
        );
        self.report(true).await
    }

    /// The policy directory was replaced (removed and created again, or a
    /// symlink on its path swapped): the watch is on the old one; watch the
    /// new one. Checked on every full sync, so at worst one resync late.
    /// (A new directory may reuse the old inode number: the watch's own
    /// "directory gone" flag covers that.)
    fn rearm_policy_watch(&mut self) {
        let now = dir_id(&self.args.policy_dir);
        if now.is_none() || (now == self.policy_id && !self.policy.is_dead()) {
            return;
        }
        match PolicyWatch::start(&self.args.policy_dir, self.args.debounce) {
            Ok(w) => {
                tracing::warn!(dir = %self.args.policy_dir.display(), "the policy directory was replaced; watching the new one");
                self.policy = w;
                self.policy_id = now;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the replaced policy directory; changes apply at the periodic resync only");
            }
        }
    }

    async fn report(&mut self, force: bool) -> Result<(), CoreDown> {
        let problems: BTreeSet<Problem> = self
            .zone_problems
            .iter()
            .chain(self.members.problems())
            .cloned()
            .collect();
        self.reporter
            .report(
                &mut self.api,
                &self.instance,
                problems,
                self.last_sync,
                force,
            )
            .await
    }

    /// Remember core's boot id; a new one means core restarted.
    fn note_boot_id(&mut self, boot_id: String) -> bool {
        let changed = self.boot_id.as_ref().is_some_and(|b| *b != boot_id);
        if changed {
            tracing::warn!(boot_id = %boot_id, "syva core restarted; re-applying every zone and membership");
            metrics::counter!("syva_file_core_restarts_total").increment(1);
            self.reporter.forget();
        }
        self.boot_id = Some(boot_id);
        changed
    }

    /// Whether a full sync is needed: core restarted or is unreachable.
    async fn core_changed(&mut self) -> bool {
        match rpc::call(self.api.status(pb::StatusRequest {})).await {
            Ok(s) => self.note_boot_id(s.boot_id),
            Err(e) => {
                tracing::warn!(error = %e, "syva core status check failed");
                true
            }
        }
    }

    /// Handle one cgroup event and whatever else is already queued, as one
    /// batch.
    async fn on_cgroup_events(&mut self, first: CgroupEvent) -> Result<(), CoreDown> {
        let mut created = Vec::new();
        let mut removed = Vec::new();
        let mut rescan = false;
        let mut next = Some(first);
        while let Some(ev) = next.take() {
            match ev {
                CgroupEvent::Created(path, at) => created.push((path, Some(at))),
                CgroupEvent::Removed(path) => removed.push(path),
                CgroupEvent::Rescan => rescan = true,
                CgroupEvent::Failed(why) => self.members.set_watch_problem(watch_failed(&why)),
            }
            // Bounded batches keep the loop responsive to other work.
            if created.len() + removed.len() < MAX_BATCH {
                next = self.cgroups.try_next();
            }
        }
        if rescan {
            tracing::warn!("cgroup events were lost; rescanning the whole tree");
            self.members.full_sync(&self.api).await?;
        } else {
            self.members
                .on_changes(&self.api, &created, &removed)
                .await?;
        }
        let due = tokio::time::Instant::now() + RESCAN_DELAY;
        self.rescans
            .extend(created.into_iter().map(|(path, _)| (due, path)));
        self.report(false).await
    }

    async fn due_rescans(&mut self) -> Result<(), CoreDown> {
        let now = tokio::time::Instant::now();
        let mut due = Vec::new();
        while self.rescans.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, path)) = self.rescans.pop_front() {
                due.push((path, None));
            }
        }
        self.members.on_changes(&self.api, &due, &[]).await?;
        self.report(false).await
    }
}

/// The problem reported when the cgroup watch fails.
fn watch_failed(why: &str) -> String {
    let message = format!(
        "watching the cgroup tree failed: {why}; new cgroups are found by the periodic resync \
         only (raise fs.inotify.max_user_watches if the limit was reached)"
    );
    tracing::error!("{message}");
    message
}

/// (dev, ino) of a directory, following symlinks.
fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
