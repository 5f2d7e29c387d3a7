//! `syva ctl`: the command-line client of syva.core.v1. Text output for
//! people, `--json` for scripts (objects as in `model::view`; events as JSON
//! lines).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::client::{CoreClient, DEFAULT_SOCKET};
use crate::error::{ExitKind, RoleError, from_status};
use crate::model::view::{Health, MembershipOutcome};
use crate::model::{self, EnforcementMode, HostPath, ZonePolicy, ZoneType};
use crate::proto::{self, pb};

/// Command-line client of syva core: zones, host paths, containers,
/// allowed pairs, status and events.
#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// Unix socket of syva core.
    #[arg(long, global = true, env = "SYVA_CORE_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub socket: PathBuf,

    /// Print JSON instead of text (events: one JSON object per line).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Health, attachments, capacities and decision counters.
    Status,
    /// Register, list and remove zones.
    #[command(subcommand)]
    Zone(ZoneCmd),
    /// Protect host paths for a zone.
    #[command(subcommand, name = "host-path")]
    HostPath(HostPathCmd),
    /// Attach, detach and list containers.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Allowed zone pairs.
    #[command(subcommand)]
    Comm(CommCmd),
    /// Node-wide audit mode: nothing is denied, would-denies are reported.
    Audit {
        #[arg(value_enum)]
        state: OnOff,
    },
    /// Print deny and would-deny events as they happen.
    Events(EventsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ZoneTypeArg {
    Standard,
    Privileged,
    Isolated,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ZoneCmd {
    /// Create a zone or replace its policy.
    Register {
        name: String,
        /// Zone type.
        #[arg(long = "type", value_enum, default_value = "standard")]
        zone_type: ZoneTypeArg,
        /// Audit mode: allow and report would-denies for this zone.
        #[arg(long)]
        audit: bool,
        /// Protect this host path (only the path itself); repeatable.
        #[arg(long = "path", value_name = "PATH")]
        paths: Vec<String>,
        /// Protect this host path and everything below it; repeatable.
        #[arg(long = "recursive-path", value_name = "PATH")]
        recursive_paths: Vec<String>,
        /// Allow communication with this zone; repeatable.
        #[arg(long = "allow", value_name = "ZONE")]
        allowed: Vec<String>,
        /// Allow ptrace between tasks of this zone.
        #[arg(long)]
        allow_ptrace: bool,
        /// Host Unix socket (file path) the zone may use; repeatable.
        #[arg(long = "host-socket", value_name = "PATH")]
        host_sockets: Vec<String>,
        /// Who manages the zone.
        #[arg(long, default_value = "ctl")]
        source: String,
    },
    /// List zones.
    List,
    /// Remove a zone (refused while containers are attached, unless --drain).
    Remove {
        name: String,
        /// Keep enforcing, refuse new members, remove after the last detach.
        #[arg(long)]
        drain: bool,
        #[arg(long, default_value = "ctl")]
        source: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum HostPathCmd {
    /// Add a protected path to a zone's policy.
    Add {
        zone: String,
        path: String,
        /// Everything below the path too, including files created later.
        #[arg(long)]
        recursive: bool,
        /// Source of the zone (default: whoever manages it).
        #[arg(long, default_value = "")]
        source: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ContainerCmd {
    /// Put a container's cgroup (and its descendants) into a zone.
    Attach {
        /// Container id.
        #[arg(long)]
        id: String,
        #[arg(long)]
        zone: String,
        /// cgroup v2 id (inode number of the cgroup directory).
        #[arg(
            long,
            conflicts_with = "cgroup_path",
            required_unless_present = "cgroup_path"
        )]
        cgroup_id: Option<u64>,
        /// cgroup path relative to the cgroup v2 mount.
        #[arg(long)]
        cgroup_path: Option<String>,
        /// Source generation (0 = none).
        #[arg(long, default_value_t = 0)]
        generation: u64,
        #[arg(long, default_value = "ctl")]
        source: String,
        /// Pod as NAMESPACE/NAME.
        #[arg(long)]
        pod: Option<String>,
        #[arg(long)]
        pod_uid: Option<String>,
    },
    /// Remove a container from its zone.
    Detach {
        #[arg(long)]
        id: String,
        /// Source generation (0 = unconditional).
        #[arg(long, default_value_t = 0)]
        generation: u64,
        #[arg(long, default_value = "ctl")]
        source: String,
    },
    /// List attached containers.
    List {
        #[arg(long)]
        zone: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum CommCmd {
    /// Allow two zones to communicate (both directions).
    Allow { zone_a: String, zone_b: String },
    /// Remove an allowed pair made with `allow`.
    Deny { zone_a: String, zone_b: String },
    /// List allowed pairs and where they come from.
    List,
}

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Keep printing until interrupted (the default when no limit is given).
    #[arg(short, long, conflicts_with_all = ["count", "timeout"])]
    pub follow: bool,
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
}

fn print_json<T: Serialize>(v: &T) -> Result<(), RoleError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| RoleError::new(ExitKind::Other, e))?;
    println!("{s}");
    Ok(())
}

fn zone_name(field: &str, v: &str) -> Result<model::ZoneName, RoleError> {
    model::zone_name(field, v).map_err(|e| RoleError::new(ExitKind::Usage, e))
}

pub async fn run(args: CtlArgs) -> Result<(), RoleError> {
    let client = CoreClient::connect(&args.socket)
        .await
        .map_err(|e| RoleError::new(ExitKind::Unavailable, e))?;
    let mut api = client.api();
    let json = args.json;
    match args.command {
        Command::Status => {
            let s = api
                .status(pb::StatusRequest {})
                .await
                .map_err(|e| from_status("status", e))?
                .into_inner();
            let v = proto::status_view(&s);
            if json {
                print_json(&v)?;
            } else {
                print_status(&v);
            }
            if v.health == Health::Unhealthy {
                return Err(RoleError::new(ExitKind::Other, "syva core is unhealthy"));
            }
        }
        Command::Zone(cmd) => zone(&mut api, cmd, json).await?,
        Command::HostPath(HostPathCmd::Add {
            zone,
            path,
            recursive,
            source,
        }) => {
            let r = api
                .register_host_path(pb::RegisterHostPathRequest {
                    zone,
                    path: path.clone(),
                    recursive,
                    source,
                })
                .await
                .map_err(|e| from_status("host-path add", e))?
                .into_inner();
            if json {
                print_json(
                    &serde_json::json!({"path": path, "protected_inodes": r.protected_inodes}),
                )?;
            } else {
                println!("{path}: zone now protects {} inodes", r.protected_inodes);
            }
        }
        Command::Container(cmd) => container(&mut api, cmd, json).await?,
        Command::Comm(cmd) => comm(&mut api, cmd, json).await?,
        Command::Audit { state } => {
            api.set_audit_mode(pb::SetAuditModeRequest {
                audit: state == OnOff::On,
            })
            .await
            .map_err(|e| from_status("audit", e))?;
            if !json {
                println!(
                    "node-wide audit mode {}",
                    if state == OnOff::On { "on" } else { "off" }
                );
            }
        }
        Command::Events(e) => events(&mut api, e, json).await?,
    }
    Ok(())
}

type Api = proto::SyvaCoreClient<tonic::transport::Channel>;

async fn zone(api: &mut Api, cmd: ZoneCmd, json: bool) -> Result<(), RoleError> {
    match cmd {
        ZoneCmd::Register {
            name,
            zone_type,
            audit,
            paths,
            recursive_paths,
            allowed,
            allow_ptrace,
            host_sockets,
            source,
        } => {
            let mut host_paths: Vec<HostPath> = paths
                .into_iter()
                .map(|path| HostPath {
                    path,
                    recursive: false,
                })
                .collect();
            host_paths.extend(recursive_paths.into_iter().map(|path| HostPath {
                path,
                recursive: true,
            }));
            let policy = ZonePolicy {
                zone_type: match zone_type {
                    ZoneTypeArg::Standard => ZoneType::Standard,
                    ZoneTypeArg::Privileged => ZoneType::Privileged,
                    ZoneTypeArg::Isolated => ZoneType::Isolated,
                },
                mode: if audit {
                    EnforcementMode::Audit
                } else {
                    EnforcementMode::Enforce
                },
                host_paths,
                allowed_zones: allowed
                    .iter()
                    .map(|z| zone_name("--allow", z))
                    .collect::<Result<_, _>>()?,
                allow_ptrace,
                allowed_host_sockets: host_sockets,
            };
            let r = api
                .register_zone(pb::RegisterZoneRequest {
                    name: name.clone(),
                    policy: Some(proto::policy_to_pb(&policy)),
                    source,
                })
                .await
                .map_err(|e| from_status("zone register", e))?
                .into_inner();
            if json {
                print_json(&serde_json::json!({
                    "name": name, "id": r.zone_id, "created": r.created,
                    "protected_inodes": r.protected_inodes
                }))?;
            } else {
                println!(
                    "zone {name} {} (id {}, {} protected inodes)",
                    if r.created { "created" } else { "updated" },
                    r.zone_id,
                    r.protected_inodes
                );
            }
        }
        ZoneCmd::List => {
            let r = api
                .list_zones(pb::ListZonesRequest {})
                .await
                .map_err(|e| from_status("zone list", e))?
                .into_inner();
            let zones: Vec<_> = r.zones.iter().map(proto::zone_view).collect();
            if json {
                print_json(&zones)?;
            } else {
                println!(
                    "{:<24} {:>5} {:<9} {:>7} {:>9} {:<10} {:<8}",
                    "NAME", "ID", "STATE", "MEMBERS", "INODES", "TYPE", "SOURCE"
                );
                for z in zones {
                    println!(
                        "{:<24} {:>5} {:<9} {:>7} {:>9} {:<10} {:<8}",
                        z.name,
                        z.id.0,
                        z.state.as_str(),
                        z.member_count,
                        z.protected_inodes,
                        format!("{:?}", z.policy.zone_type).to_lowercase(),
                        z.source
                    );
                }
            }
        }
        ZoneCmd::Remove {
            name,
            drain,
            source,
        } => {
            let r = api
                .remove_zone(pb::RemoveZoneRequest {
                    name: name.clone(),
                    drain,
                    source,
                })
                .await
                .map_err(|e| from_status("zone remove", e))?
                .into_inner();
            let state = proto::zone_state_from_pb(r.state);
            if json {
                print_json(&serde_json::json!({"name": name, "state": state}))?;
            } else {
                println!("zone {name}: {}", state.as_str());
            }
        }
    }
    Ok(())
}

async fn container(api: &mut Api, cmd: ContainerCmd, json: bool) -> Result<(), RoleError> {
    let outcome_text =
        |o: i32| proto::outcome_from_pb(o).map_or("unknown", MembershipOutcome::as_str);
    match cmd {
        ContainerCmd::Attach {
            id,
            zone,
            cgroup_id,
            cgroup_path,
            generation,
            source,
            pod,
            pod_uid,
        } => {
            let (ns, name) = match pod.as_deref() {
                None => (String::new(), String::new()),
                Some(p) => match p.split_once('/') {
                    Some((ns, n)) if !ns.is_empty() && !n.is_empty() => {
                        (ns.to_owned(), n.to_owned())
                    }
                    _ => {
                        return Err(RoleError::new(
                            ExitKind::Usage,
                            format!("--pod {p:?}: expected NAMESPACE/NAME"),
                        ));
                    }
                },
            };
            let cgroup = match (cgroup_id, cgroup_path) {
                (Some(i), _) => pb::attach_container_request::Cgroup::CgroupId(i),
                (None, Some(p)) => pb::attach_container_request::Cgroup::CgroupPath(p),
                (None, None) => unreachable!("clap requires one of --cgroup-id/--cgroup-path"),
            };
            let r = api
                .attach_container(pb::AttachContainerRequest {
                    container_id: id.clone(),
                    pod_namespace: ns,
                    pod_name: name,
                    pod_uid: pod_uid.unwrap_or_default(),
                    cgroup: Some(cgroup),
                    zone: zone.clone(),
                    source,
                    generation,
                    observed_at: Some(proto::timestamp(SystemTime::now())),
                })
                .await
                .map_err(|e| from_status("container attach", e))?
                .into_inner();
            if json {
                print_json(&serde_json::json!({
                    "container_id": id, "outcome": outcome_text(r.outcome), "zone_id": r.zone_id,
                    "cgroup_id": r.cgroup_id, "cgroups_covered": r.cgroups_covered
                }))?;
            } else {
                println!(
                    "container {id}: {} (zone {zone} id {}, cgroup {}, {} cgroups covered)",
                    outcome_text(r.outcome),
                    r.zone_id,
                    r.cgroup_id,
                    r.cgroups_covered
                );
            }
        }
        ContainerCmd::Detach {
            id,
            generation,
            source,
        } => {
            let r = api
                .detach_container(pb::DetachContainerRequest {
                    container_id: id.clone(),
                    source,
                    generation,
                })
                .await
                .map_err(|e| from_status("container detach", e))?
                .into_inner();
            if json {
                print_json(
                    &serde_json::json!({"container_id": id, "outcome": outcome_text(r.outcome)}),
                )?;
            } else {
                println!("container {id}: {}", outcome_text(r.outcome));
            }
        }
        ContainerCmd::List { zone } => {
            let r = api
                .list_containers(pb::ListContainersRequest {
                    zone: zone.unwrap_or_default(),
                })
                .await
                .map_err(|e| from_status("container list", e))?
                .into_inner();
            let list: Vec<_> = r.containers.iter().map(proto::container_view).collect();
            if json {
                print_json(&list)?;
            } else {
                println!(
                    "{:<28} {:<16} {:>10} {:<8} {:>6} CGROUP",
                    "CONTAINER", "ZONE", "CGROUP_ID", "SOURCE", "GEN"
                );
                for c in list {
                    println!(
                        "{:<28} {:<16} {:>10} {:<8} {:>6} {}",
                        c.container_id, c.zone, c.cgroup_id, c.source, c.generation, c.cgroup_path
                    );
                }
            }
        }
    }
    Ok(())
}

async fn comm(api: &mut Api, cmd: CommCmd, json: bool) -> Result<(), RoleError> {
    match cmd {
        CommCmd::Allow { zone_a, zone_b } => {
            api.allow_comm(pb::AllowCommRequest {
                zone_a: zone_a.clone(),
                zone_b: zone_b.clone(),
            })
            .await
            .map_err(|e| from_status("comm allow", e))?;
            if !json {
                println!("{zone_a} <-> {zone_b}: allowed");
            }
        }
        CommCmd::Deny { zone_a, zone_b } => {
            api.deny_comm(pb::DenyCommRequest {
                zone_a: zone_a.clone(),
                zone_b: zone_b.clone(),
            })
            .await
            .map_err(|e| from_status("comm deny", e))?;
            if !json {
                println!("{zone_a} <-> {zone_b}: denied");
            }
        }
        CommCmd::List => {
            let r = api
                .list_comms(pb::ListCommsRequest {})
                .await
                .map_err(|e| from_status("comm list", e))?
                .into_inner();
            let pairs: Vec<_> = r.pairs.iter().map(proto::comm_view).collect();
            if json {
                print_json(&pairs)?;
            } else {
                for p in pairs {
                    println!("{} <-> {}  ({})", p.zone_a, p.zone_b, p.origins.join(", "));
                }
            }
        }
    }
    Ok(())
}

async fn events(api: &mut Api, args: EventsArgs, json: bool) -> Result<(), RoleError> {
    let mut stream = api
        .watch_events(pb::WatchEventsRequest {})
        .await
        .map_err(|e| from_status("events", e))?
        .into_inner();
    // Core subscribed before answering: from here on nothing is missed.
    eprintln!("syva ctl: watching events (Ctrl-C to stop)");
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut seen = 0u64;
    loop {
        if args.count.is_some_and(|c| seen >= c) {
            return Ok(());
        }
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, stream.message()).await.ok(),
                None => Some(stream.message().await),
            }
        };
        let msg = tokio::select! {
            m = next => m,
            () = crate::telemetry::shutdown_signal() => return Ok(()),
        };
        let Some(msg) = msg else { return Ok(()) }; // timeout
        let Some(e) = msg.map_err(|e| from_status("events", e))? else {
            return Err(RoleError::new(
                ExitKind::Unavailable,
                "syva core closed the event stream",
            ));
        };
        seen += 1;
        let v = proto::event_view(&e);
        if json {
            let line = serde_json::to_string(&v).map_err(|e| RoleError::new(ExitKind::Other, e))?;
            println!("{line}");
        } else {
            if v.dropped_before > 0 {
                println!("... {} events dropped (reader too slow)", v.dropped_before);
            }
            println!(
                "{} {:<5} {:<13} {}[{}] zone {} -> {} {} ({})",
                v.time,
                format!("{:?}", v.verdict).to_uppercase(),
                v.hook,
                v.comm,
                v.pid,
                if v.caller_zone.is_empty() {
                    "host"
                } else {
                    &v.caller_zone
                },
                if v.target_zone.is_empty() {
                    "host"
                } else {
                    &v.target_zone
                },
                v.path,
                v.reason
            );
        }
    }
}

fn print_status(s: &crate::model::view::StatusView) {
    println!(
        "syva core {} ({}), up {}s, boot id {}",
        s.version, s.git_commit, s.uptime_seconds, s.boot_id
    );
    println!("health:     {}", s.health.as_str());
    for r in &s.health_reasons {
        println!("  - {r}");
    }
    println!(
        "dataplane:  {}{}",
        s.dataplane,
        if s.audit_mode {
            " (node-wide AUDIT mode)"
        } else {
            ""
        }
    );
    println!(
        "zones:      {} of {}   containers: {}   protected inodes: {} of {}",
        s.zones, s.max_zones, s.containers, s.protected_inodes, s.max_protected_inodes
    );
    if !s.attachments.is_empty() {
        let ok = s.attachments.iter().filter(|a| a.attached).count();
        println!("programs:   {ok}/{} attached", s.attachments.len());
        for a in s.attachments.iter().filter(|a| !a.attached) {
            println!("  - NOT ATTACHED: {} ({})", a.program, a.hook);
        }
    }
    for t in &s.self_tests {
        println!(
            "self-test:  {:<13} {} {}",
            t.name,
            if t.passed { "ok  " } else { "FAIL" },
            t.detail
        );
    }
    println!(
        "{:<14} {:>10} {:>8} {:>8} {:>7} {:>6}",
        "HOOK", "ALLOW", "DENY", "AUDIT", "ERROR", "LOST"
    );
    for h in &s.hooks {
        println!(
            "{:<14} {:>10} {:>8} {:>8} {:>7} {:>6}",
            h.hook, h.allow, h.deny, h.audit, h.error, h.lost
        );
    }
    for a in &s.adapters {
        println!(
            "adapter:    {}/{}: {} (last sync {})",
            a.source,
            a.instance,
            if a.problems.is_empty() {
                "ok".to_owned()
            } else {
                format!("{} problem(s)", a.problems.len())
            },
            a.last_sync.as_deref().unwrap_or("never")
        );
        for p in &a.problems {
            println!("  - {}: {}", p.object, p.message);
        }
    }
    println!(
        "membership: {} stale, {} conflicts; map write failures: {}; events dropped: {}",
        s.membership_stale, s.membership_conflicts, s.map_write_failures, s.events_dropped
    );
}
