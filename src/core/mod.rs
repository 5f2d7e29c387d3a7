//! `syva core`: the only privileged role. Loads the dataplane (BPF LSM
//! programs and maps, or the in-memory fake), runs the startup self-tests,
//! serves syva.core.v1 on a Unix socket and /metrics, /healthz, /readyz on
//! a local address, and shuts down in order on SIGINT/SIGTERM.

pub mod args;
pub mod bpf;
pub mod cgroup;
pub mod dataplane;
pub mod events;
pub mod health;
pub mod hooks;
pub mod hostpath;
pub mod http;
pub mod maps;
pub mod metrics;
pub mod rpc;
pub mod selftest;
pub mod state;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_stream::wrappers::UnixListenerStream;

use crate::error::{ExitKind, RoleError};
use crate::model::view::Health;

use self::args::{CoreArgs, DataplaneKind, Listen};
use self::cgroup::CgroupFs;
use self::dataplane::{Capacities, Dataplane, HookCounts, MemoryDataplane};
use self::events::EventHub;
use self::health::{KernelWatch, Report, Signals};
use self::hooks::{HOOKS, VERDICTS};
use self::state::Registry;

/// How long shutdown waits for connected clients.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The latest state an adapter reported (ReportAdapter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterReport {
    pub source: String,
    pub instance: String,
    /// (object, message) pairs.
    pub problems: Vec<(String, String)>,
    pub last_sync: Option<std::time::SystemTime>,
    pub reported_at: std::time::SystemTime,
}

/// Everything the RPC and HTTP handlers share.
#[derive(Debug)]
pub struct Engine {
    pub registry: Arc<Registry>,
    pub signals: Arc<Signals>,
    pub kernel: KernelWatch,
    pub events: EventHub,
    /// Random per start: adapters re-apply their state when it changes.
    pub boot_id: String,
    pub started: Instant,
    pub window: Duration,
    adapters: std::sync::Mutex<std::collections::BTreeMap<(String, String), AdapterReport>>,
}

impl Engine {
    pub fn new(registry: Arc<Registry>, signals: Arc<Signals>, window: Duration) -> Self {
        Self {
            registry,
            signals,
            kernel: KernelWatch::default(),
            events: EventHub::default(),
            boot_id: boot_id(),
            started: Instant::now(),
            window,
            adapters: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// Kernel decision counters (also feeds error/lost growth to health).
    pub fn counters(&self) -> Vec<HookCounts> {
        match self.registry.dataplane().counters() {
            Ok(c) => {
                self.kernel.observe(&c);
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the decision counters");
                self.signals.map_write_failures.hit();
                vec![[0; VERDICTS.len()]; HOOKS.len()]
            }
        }
    }

    pub fn health(&self) -> Report {
        let _ = self.counters(); // refresh the kernel error/lost watch
        let dp = self.registry.dataplane();
        let mut report = health::evaluate(
            &dp.attachments(),
            &dp.self_tests(),
            &self.signals,
            &self.kernel,
            self.window,
        );
        for a in self.adapters() {
            if let Some((object, message)) = a.problems.first() {
                report.reasons.push(format!(
                    "adapter {}/{} reports {} problem(s), e.g. {object}: {message}",
                    a.source,
                    a.instance,
                    a.problems.len()
                ));
                if report.health == Health::Healthy {
                    report.health = Health::Degraded;
                }
            }
        }
        report
    }

    pub fn report_adapter(&self, report: AdapterReport) {
        let mut all = self.adapters.lock().unwrap_or_else(|p| p.into_inner());
        all.insert((report.source.clone(), report.instance.clone()), report);
    }

    pub fn adapters(&self) -> Vec<AdapterReport> {
        let all = self.adapters.lock().unwrap_or_else(|p| p.into_inner());
        all.values().cloned().collect()
    }
}

/// A random id from the kernel (no hand-rolled randomness).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| {
            format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            )
        })
}

fn resolve_user(spec: &str, group: bool) -> Result<u32, RoleError> {
    if let Ok(id) = spec.parse::<u32>() {
        return Ok(id);
    }
    let db = if group { "/etc/group" } else { "/etc/passwd" };
    let text = std::fs::read_to_string(db).map_err(|e| {
        RoleError::new(
            ExitKind::Config,
            format!("reading {db} to resolve {spec:?}: {e}"),
        )
    })?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse::<u32>().ok()?;
            (name == spec).then_some(id)
        })
        .next()
        .ok_or_else(|| {
            RoleError::new(
                ExitKind::Config,
                format!(
                    "{} {spec:?} not found in {db}",
                    if group { "group" } else { "user" }
                ),
            )
        })
}

pub async fn run(args: CoreArgs) -> Result<(), RoleError> {
    let cgroups = match &args.cgroup_root {
        Some(root) => CgroupFs::new(root),
        None => CgroupFs::discover().map_err(|e| RoleError::new(ExitKind::Unsupported, e))?,
    };
    let caps = Capacities {
        max_zones: args.max_zones,
        max_members: args.max_members,
        max_files: args.max_protected_files,
        max_comms: args.max_comms,
        max_host_sockets: args.max_host_sockets,
    };
    let socket_opts = rpc::SocketOptions {
        mode: args.socket_mode,
        uid: args
            .socket_owner
            .as_deref()
            .map(|s| resolve_user(s, false))
            .transpose()?,
        gid: args
            .socket_group
            .as_deref()
            .map(|s| resolve_user(s, true))
            .transpose()?,
    };
    let signals = Arc::new(Signals::default());

    let stop_events = Arc::new(AtomicBool::new(false));
    let (dp, bpf): (Arc<dyn Dataplane>, Option<Arc<maps::BpfDataplane>>) = match args.dataplane {
        DataplaneKind::Memory => {
            tracing::warn!(
                "running with the in-memory dataplane: NOTHING IS ENFORCED (testing only)"
            );
            (Arc::new(MemoryDataplane::new(caps)), None)
        }
        DataplaneKind::Bpf => {
            bpf::probe(&bpf::KernelPaths::default())
                .map_err(|e| RoleError::new(ExitKind::Unsupported, e))?;
            let loaded = tokio::task::spawn_blocking(move || bpf::load(caps))
                .await
                .map_err(|e| RoleError::new(ExitKind::Other, e))?
                .map_err(|e| {
                    let kind = if e.is_unsupported() {
                        ExitKind::Unsupported
                    } else {
                        ExitKind::Bpf
                    };
                    RoleError::new(kind, e)
                })?;
            let loaded = Arc::new(loaded);
            let scratch = args
                .socket
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("/tmp"))
                .to_path_buf();
            std::fs::create_dir_all(&scratch).map_err(|e| {
                RoleError::new(
                    ExitKind::Config,
                    format!("creating {}: {e}", scratch.display()),
                )
            })?;
            let (l, cg) = (loaded.clone(), cgroups.clone());
            let tests = tokio::task::spawn_blocking(move || selftest::run(&l, &cg, &scratch))
                .await
                .map_err(|e| RoleError::new(ExitKind::Other, e))?;
            loaded.set_self_tests(tests);
            (loaded.clone() as Arc<dyn Dataplane>, Some(loaded))
        }
    };
    let attached = dp.attachments().iter().filter(|a| a.attached).count();
    if bpf.is_some() {
        tracing::info!(
            attached,
            expected = HOOKS.len(),
            "BPF LSM programs attached"
        );
    }

    let registry = Arc::new(Registry::new(dp.clone(), cgroups, signals.clone()));
    let engine = Arc::new(Engine::new(
        registry.clone(),
        signals,
        Duration::from_secs(args.degraded_window),
    ));
    if args.audit {
        registry
            .set_audit(true)
            .map_err(|e| RoleError::new(ExitKind::Bpf, e))?;
    }

    let mut event_thread = None;
    if let Some(b) = &bpf {
        let (reg, hub, sig) = (
            registry.clone(),
            engine.events.clone(),
            engine.signals.clone(),
        );
        let t = b
            .spawn_event_reader(
                move |raw| hub.publish(&reg, raw),
                move || sig.event_decode_errors.hit(),
                stop_events.clone(),
            )
            .map_err(|e| {
                RoleError::new(ExitKind::Other, format!("starting the event reader: {e}"))
            })?;
        event_thread = Some(t);
    }

    // Local HTTP: metrics, health, readiness.
    if let Listen::At(addr) = args.metrics_addr {
        let prometheus = match self::metrics::install() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "metrics disabled");
                None
            }
        };
        let listener = http::bind(addr).await.map_err(|e| {
            RoleError::new(
                ExitKind::Config,
                format!("binding --metrics-addr {addr}: {e}"),
            )
        })?;
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(addr = %local, "serving /metrics, /healthz, /readyz");
        let app = http::router(engine.clone(), prometheus);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }

    // Health sampler: keeps "recent" accurate and logs transitions.
    {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut last = None;
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let e = engine.clone();
                let Ok(report) = tokio::task::spawn_blocking(move || e.health()).await else {
                    continue;
                };
                if last != Some(report.health) {
                    match report.health {
                        Health::Healthy => tracing::info!("health: healthy"),
                        Health::Degraded => {
                            tracing::warn!(reasons = ?report.reasons, "health: degraded")
                        }
                        Health::Unhealthy => {
                            tracing::error!(reasons = ?report.reasons, "health: UNHEALTHY")
                        }
                    }
                    last = Some(report.health);
                }
            }
        });
    }

    let listener = rpc::bind_socket(&args.socket, &socket_opts)
        .map_err(|e| RoleError::new(ExitKind::Config, e))?;
    tracing::info!(socket = %args.socket.display(), dataplane = dp.kind(), boot_id = %engine.boot_id, "syva core ready");
    crate::telemetry::notify_ready();

    let service = rpc::CoreService::new(engine.clone()).into_server();
    // Graceful shutdown waits for open connections (event watchers,
    // adapters); give them a few seconds, then close them.
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            crate::telemetry::shutdown_signal().await;
            // Err only when nobody listens: the grace timer is gone already.
            let _ = stopping_tx.send(true);
        });
    let served = tokio::select! {
        r = server => r,
        () = async {
            let _ = stopping_rx.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "clients still connected after the grace period; closing them");
            Ok(())
        }
    };

    tracing::info!("shutting down");
    stop_events.store(true, Ordering::Relaxed);
    if let Some(t) = event_thread {
        // The reader polls with a short timeout; a panic there was already logged.
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let Err(e) = std::fs::remove_file(&args.socket) {
        tracing::warn!(socket = %args.socket.display(), error = %e, "could not remove the socket file");
    }
    served.map_err(|e| RoleError::new(ExitKind::Other, format!("API server failed: {e}")))?;
    tracing::info!("programs detached, syva core stopped");
    Ok(())
}
