//! The `syva.core.v1` gRPC service over a Unix socket. Validates requests
//! into model types, runs registry operations off the async runtime (they do
//! map syscalls and file walks), and maps `CoreError` to gRPC codes here and
//! only here.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::net::UnixListener;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use crate::model::view::PodRef;
use crate::model::{self, CgroupId, HostPath};
use crate::proto::{self, SyvaCore, SyvaCoreServer, pb};

use super::Engine;
use super::hooks::{HOOKS, VERDICTS};
use super::state::{AttachRequest, CgroupRef, CoreError};

impl From<CoreError> for Status {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid(f) => Status::invalid_argument(f.to_string()),
            CoreError::NotFound { .. } => Status::not_found(e.to_string()),
            CoreError::Conflict(m) => Status::failed_precondition(m),
            CoreError::Exhausted(m) => Status::resource_exhausted(m),
            CoreError::Dataplane(d) => match d {
                super::dataplane::DataplaneError::Full { .. } => {
                    Status::resource_exhausted(d.to_string())
                }
                _ => Status::unavailable(format!("{d}; nothing was changed")),
            },
        }
    }
}

/// The service; clones share the engine.
#[derive(Debug, Clone)]
pub struct CoreService {
    engine: Arc<Engine>,
}

impl CoreService {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    pub fn into_server(self) -> SyvaCoreServer<Self> {
        SyvaCoreServer::new(self)
    }

    /// Run a registry operation on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, CoreError> + Send + 'static,
    {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| Status::internal(format!("registry task failed: {e}")))?
            .map_err(Status::from)
    }
}

fn zone_field(field: &str, v: &str) -> Result<model::ZoneName, Status> {
    model::zone_name(field, v).map_err(|e| Status::invalid_argument(e.to_string()))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl SyvaCore for CoreService {
    type WatchEventsStream = EventStream;

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = self.engine.clone();
        let snapshot = tokio::task::spawn_blocking(move || status_to_pb(&s))
            .await
            .map_err(|e| Status::internal(format!("status task failed: {e}")))?;
        Ok(Response::new(snapshot))
    }

    async fn register_zone(
        &self,
        req: Request<pb::RegisterZoneRequest>,
    ) -> Result<Response<pb::RegisterZoneResponse>, Status> {
        let r = req.into_inner();
        let name = zone_field("name", &r.name)?;
        let policy = proto::policy_from_pb("policy", &r.policy.unwrap_or_default())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let source = source_or(&r.source, "api");
        let res = self
            .blocking(move |e| e.registry.register_zone(&name, policy, &source))
            .await?;
        Ok(Response::new(pb::RegisterZoneResponse {
            zone_id: res.zone_id.0,
            created: res.created,
            protected_inodes: res.protected_inodes,
        }))
    }

    async fn remove_zone(
        &self,
        req: Request<pb::RemoveZoneRequest>,
    ) -> Result<Response<pb::RemoveZoneResponse>, Status> {
        let r = req.into_inner();
        let name = zone_field("name", &r.name)?;
        let state = self
            .blocking(move |e| e.registry.remove_zone(&name, r.drain, &r.source))
            .await?;
        Ok(Response::new(pb::RemoveZoneResponse {
            state: proto::zone_state_to_pb(state) as i32,
        }))
    }

    async fn list_zones(
        &self,
        _: Request<pb::ListZonesRequest>,
    ) -> Result<Response<pb::ListZonesResponse>, Status> {
        let zones = self
            .engine
            .registry
            .list_zones()
            .into_iter()
            .map(|z| pb::Zone {
                name: z.name.to_string(),
                id: z.id.0,
                state: proto::zone_state_to_pb(z.state) as i32,
                member_count: z.member_count,
                policy: Some(proto::policy_to_pb(&z.policy)),
                source: z.source,
                protected_inodes: z.protected_inodes,
            })
            .collect();
        Ok(Response::new(pb::ListZonesResponse { zones }))
    }

    async fn register_host_path(
        &self,
        req: Request<pb::RegisterHostPathRequest>,
    ) -> Result<Response<pb::RegisterHostPathResponse>, Status> {
        let r = req.into_inner();
        let zone = zone_field("zone", &r.zone)?;
        let path = HostPath {
            path: r.path,
            recursive: r.recursive,
        };
        path.validate()
            .map_err(|m| Status::invalid_argument(format!("path: {m}")))?;
        let n = self
            .blocking(move |e| e.registry.register_host_path(&zone, path, &r.source))
            .await?;
        Ok(Response::new(pb::RegisterHostPathResponse {
            protected_inodes: n,
        }))
    }

    async fn allow_comm(
        &self,
        req: Request<pb::AllowCommRequest>,
    ) -> Result<Response<pb::AllowCommResponse>, Status> {
        let r = req.into_inner();
        let a = zone_field("zone_a", &r.zone_a)?;
        let b = zone_field("zone_b", &r.zone_b)?;
        self.blocking(move |e| e.registry.allow_comm(&a, &b))
            .await?;
        Ok(Response::new(pb::AllowCommResponse {}))
    }

    async fn deny_comm(
        &self,
        req: Request<pb::DenyCommRequest>,
    ) -> Result<Response<pb::DenyCommResponse>, Status> {
        let r = req.into_inner();
        let a = zone_field("zone_a", &r.zone_a)?;
        let b = zone_field("zone_b", &r.zone_b)?;
        self.blocking(move |e| e.registry.deny_comm(&a, &b)).await?;
        Ok(Response::new(pb::DenyCommResponse {}))
    }

    async fn list_comms(
        &self,
        _: Request<pb::ListCommsRequest>,
    ) -> Result<Response<pb::ListCommsResponse>, Status> {
        let pairs = self
            .engine
            .registry
            .list_comms()
            .into_iter()
            .map(|c| pb::CommPair {
                zone_a: c.zone_a.to_string(),
                zone_b: c.zone_b.to_string(),
                origins: c.origins,
            })
            .collect();
        Ok(Response::new(pb::ListCommsResponse { pairs }))
    }

    async fn attach_container(
        &self,
        req: Request<pb::AttachContainerRequest>,
    ) -> Result<Response<pb::AttachContainerResponse>, Status> {
        let r = req.into_inner();
        let zone = zone_field("zone", &r.zone)?;
        let cgroup = match r.cgroup {
            Some(pb::attach_container_request::Cgroup::CgroupId(id)) => CgroupRef::Id(CgroupId(id)),
            Some(pb::attach_container_request::Cgroup::CgroupPath(p)) if !p.is_empty() => {
                CgroupRef::Path(p)
            }
            _ => {
                return Err(Status::invalid_argument(
                    "cgroup: set cgroup_id or cgroup_path",
                ));
            }
        };
        let pod = (!r.pod_name.is_empty() || !r.pod_uid.is_empty() || !r.pod_namespace.is_empty())
            .then(|| PodRef {
                namespace: r.pod_namespace.clone(),
                name: r.pod_name.clone(),
                uid: r.pod_uid.clone(),
            });
        let observed_at =
            match r.observed_at.as_ref() {
                None => None,
                Some(t) => Some(proto::system_time(t).ok_or_else(|| {
                    Status::invalid_argument("observed_at: not a valid timestamp")
                })?),
            };
        let request = AttachRequest {
            container_id: r.container_id,
            pod,
            cgroup,
            zone,
            source: r.source,
            generation: r.generation,
            observed_at,
        };
        let res = self.blocking(move |e| e.registry.attach(request)).await?;
        Ok(Response::new(pb::AttachContainerResponse {
            outcome: proto::outcome_to_pb(res.outcome) as i32,
            zone_id: res.zone_id.0,
            cgroup_id: res.cgroup_id.0,
            cgroups_covered: res.cgroups_covered,
        }))
    }

    async fn detach_container(
        &self,
        req: Request<pb::DetachContainerRequest>,
    ) -> Result<Response<pb::DetachContainerResponse>, Status> {
        let r = req.into_inner();
        let outcome = self
            .blocking(move |e| e.registry.detach(&r.container_id, &r.source, r.generation))
            .await?;
        Ok(Response::new(pb::DetachContainerResponse {
            outcome: proto::outcome_to_pb(outcome) as i32,
        }))
    }

    async fn list_containers(
        &self,
        req: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        let r = req.into_inner();
        let zone = if r.zone.is_empty() {
            None
        } else {
            Some(zone_field("zone", &r.zone)?)
        };
        let containers = self
            .engine
            .registry
            .list_containers(zone.as_ref())
            .into_iter()
            .map(|c| {
                let pod = c.pod.unwrap_or(PodRef {
                    namespace: String::new(),
                    name: String::new(),
                    uid: String::new(),
                });
                pb::Container {
                    container_id: c.container_id,
                    pod_namespace: pod.namespace,
                    pod_name: pod.name,
                    pod_uid: pod.uid,
                    cgroup_id: c.cgroup_id.0,
                    cgroup_path: c.cgroup_path,
                    zone: c.zone.to_string(),
                    zone_id: c.zone_id.0,
                    source: c.source,
                    generation: c.generation,
                    observed_at: c.observed_at.map(proto::timestamp),
                    attached_at: Some(proto::timestamp(c.attached_at)),
                }
            })
            .collect();
        Ok(Response::new(pb::ListContainersResponse { containers }))
    }

    async fn set_audit_mode(
        &self,
        req: Request<pb::SetAuditModeRequest>,
    ) -> Result<Response<pb::SetAuditModeResponse>, Status> {
        let audit = req.into_inner().audit;
        self.blocking(move |e| e.registry.set_audit(audit)).await?;
        Ok(Response::new(pb::SetAuditModeResponse {}))
    }

    async fn report_adapter(
        &self,
        req: Request<pb::ReportAdapterRequest>,
    ) -> Result<Response<pb::ReportAdapterResponse>, Status> {
        let r = req.into_inner();
        if r.source.is_empty() || r.source.len() > 64 {
            return Err(Status::invalid_argument("source: must be 1..=64 bytes"));
        }
        if r.instance.len() > 253 {
            return Err(Status::invalid_argument(
                "instance: must be at most 253 bytes",
            ));
        }
        if r.problems.len() > 1000 {
            return Err(Status::invalid_argument(
                "problems: at most 1000 entries (summarize the rest)",
            ));
        }
        let last_sync = match r.last_sync.as_ref() {
            None => None,
            Some(t) => Some(
                proto::system_time(t)
                    .ok_or_else(|| Status::invalid_argument("last_sync: not a valid timestamp"))?,
            ),
        };
        self.engine.report_adapter(super::AdapterReport {
            source: r.source,
            instance: r.instance,
            problems: r
                .problems
                .into_iter()
                .map(|p| (p.object, p.message))
                .collect(),
            last_sync,
            reported_at: std::time::SystemTime::now(),
        });
        Ok(Response::new(pb::ReportAdapterResponse {}))
    }

    async fn watch_events(
        &self,
        _: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let mut rx = self.engine.events.subscribe();
        let engine = self.engine.clone();
        let stream = async_stream(move |tx| async move {
            let mut dropped = 0u64;
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        let mut ev = event_to_pb(&e);
                        ev.dropped_before = std::mem::take(&mut dropped);
                        if tx.send(Ok(ev)).await.is_err() {
                            return; // subscriber went away
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        dropped += n;
                        engine.signals.events_dropped.add(n);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task through a small channel (backpressure per
/// subscriber; the broadcast buffer absorbs bursts).
fn async_stream<F, Fut>(f: F) -> EventStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::Event, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn event_to_pb(e: &super::events::Event) -> pb::Event {
    pb::Event {
        time: Some(proto::timestamp(e.time)),
        hook: e.hook.to_owned(),
        verdict: if e.denied {
            pb::Verdict::Deny
        } else {
            pb::Verdict::Audit
        } as i32,
        reason: e.reason.to_owned(),
        pid: e.raw.pid,
        tgid: e.raw.tgid,
        comm: e.raw.comm.clone(),
        cgroup_id: e.raw.cgroup_id.0,
        caller_zone: e
            .caller_zone
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        caller_zone_id: e.raw.caller_zone.0,
        target_zone: e
            .target_zone
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        target_zone_id: e.raw.target_zone.0,
        path: e.path.clone(),
        target_dev: e.raw.target.dev,
        target_ino: e.raw.target.ino,
        target_pid: e.raw.target_pid,
        target_cgroup_id: e.raw.target_cgroup_id,
        dropped_before: 0,
    }
}

fn source_or(s: &str, default: &str) -> String {
    if s.is_empty() {
        default.to_owned()
    } else {
        s.to_owned()
    }
}

/// Build the Status message from the engine's current state.
pub fn status_to_pb(e: &Engine) -> pb::StatusResponse {
    let report = e.health();
    let caps = e.registry.dataplane().capacities();
    let counters = e.counters();
    let (zones, containers) = e.registry.counts();
    pb::StatusResponse {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: env!("SYVA_GIT_COMMIT").to_owned(),
        boot_id: e.boot_id.clone(),
        uptime_seconds: e.started.elapsed().as_secs(),
        health: proto::health_to_pb(report.health) as i32,
        health_reasons: report.reasons,
        dataplane: e.registry.dataplane().kind().to_owned(),
        attachments: e
            .registry
            .dataplane()
            .attachments()
            .into_iter()
            .map(|a| pb::Attachment {
                program: a.program.to_owned(),
                hook: a.hook.to_owned(),
                attached: a.attached,
            })
            .collect(),
        zones,
        containers,
        max_zones: caps.max_zones,
        protected_inodes: e.registry.dataplane().file_count().unwrap_or(0),
        max_protected_inodes: u64::from(caps.max_files),
        audit_mode: e.registry.audit(),
        hooks: HOOKS
            .iter()
            .zip(counters.iter())
            .map(|(h, c)| {
                debug_assert_eq!(VERDICTS.len(), 5);
                pb::HookCounters {
                    hook: h.name.to_owned(),
                    allow: c[0],
                    deny: c[1],
                    audit: c[2],
                    error: c[3],
                    lost: c[4],
                }
            })
            .collect(),
        self_tests: e
            .registry
            .dataplane()
            .self_tests()
            .into_iter()
            .map(|t| {
                let (passed, detail) = match t.outcome {
                    super::dataplane::SelfTestOutcome::Passed(d) => (true, d),
                    super::dataplane::SelfTestOutcome::Skipped(d) => {
                        (false, format!("skipped: {d}"))
                    }
                    super::dataplane::SelfTestOutcome::Failed(d) => (false, d),
                };
                pb::SelfTest {
                    name: t.name.to_owned(),
                    passed,
                    detail,
                }
            })
            .collect(),
        membership_stale: e.signals.membership_stale.total(),
        membership_conflicts: e.signals.membership_conflicts.total(),
        map_write_failures: e.signals.map_write_failures.total(),
        events_dropped: e.signals.events_dropped.total(),
        adapters: e
            .adapters()
            .into_iter()
            .map(|a| pb::AdapterStatus {
                source: a.source,
                instance: a.instance,
                problems: a
                    .problems
                    .into_iter()
                    .map(|(object, message)| pb::AdapterProblem { object, message })
                    .collect(),
                last_sync: a.last_sync.map(proto::timestamp),
                reported_at: Some(proto::timestamp(a.reported_at)),
            })
            .collect(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another syva core is already serving on {0}")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Socket file ownership and mode.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Bind the API socket: create the directory, replace a stale socket file
/// (nobody answers on it) but never a live one or a non-socket, and set the
/// mode/owner before anyone can connect.
pub fn bind_socket(path: &Path, opts: &SocketOptions) -> Result<UnixListener, SocketError> {
    let io_err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SocketError::Io { op, path, source }
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod", dir))?;
    }
    match fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_path_buf()));
            }
            tracing::info!(socket = %path.display(), "removing stale socket file");
            fs::remove_file(path).map_err(io_err("removing stale socket", path))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting", path)(e)),
    }
    // Bind with a restrictive umask so the socket is never reachable with
    // looser permissions, then set the requested mode and owner.
    // SAFETY: umask only swaps the process file mode mask; it cannot fail.
    let old = unsafe { libc::umask(0o177) };
    let listener = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restores the previous mask.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(io_err("binding", path))?;
    if opts.uid.is_some() || opts.gid.is_some() {
        std::os::unix::fs::chown(path, opts.uid, opts.gid).map_err(io_err("chown", path))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(opts.mode))
        .map_err(io_err("chmod", path))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("configuring", path))?;
    UnixListener::from_std(listener).map_err(io_err("registering", path))
}
