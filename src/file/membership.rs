//! Container membership without Kubernetes: the cgroups the zones'
//! membership rules select are attached to their zone (AttachContainer,
//! source "file", increasing generations) when they appear or when the
//! rules change, and detached when they disappear or stop matching.
//!
//! The same planning function serves the full sync (the whole tree against
//! what core lists) and single events (one new or removed subtree against
//! what we attached), so both follow the same rules:
//! - a cgroup inside a member of some zone is covered by it (core maps
//!   descendants, and the kernel maps cgroups created later); only the
//!   outermost match is attached, and a nested match for another zone is
//!   reported;
//! - two zones matching one cgroup with the same precedence is a conflict:
//!   reported, and the cgroup stays where it is (or joins none);
//! - members of zones whose rules are unknown (file invalid since start)
//!   are left alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};

use tonic::transport::Channel;

use crate::model::ZoneName;
use crate::model::view::MembershipOutcome;
use crate::proto::{self, SyvaCoreClient, pb};

use super::SOURCE;
use super::report::Problem;
use super::rpc::{self, CoreDown, RpcError};
use super::rules::{Resolution, RuleSet, container_key};

/// Membership calls in flight at once.
const IN_FLIGHT: usize = 16;

/// A cgroup attached to a zone by this adapter, as core has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Path relative to the cgroup root, no leading '/'.
    pub rel: String,
    pub cgroup_id: u64,
    pub zone: ZoneName,
}

/// Which part of the tree a plan is about.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    /// These cgroups and their descendants.
    Subtrees(&'a [String]),
}

/// Is `rel` the cgroup `top` or inside it?
fn within(top: &str, rel: &str) -> bool {
    rel == top
        || (rel.len() > top.len() && rel.starts_with(top) && rel.as_bytes()[top.len()] == b'/')
}

impl Scope<'_> {
    fn contains(&self, rel: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Subtrees(tops) => tops.iter().any(|t| within(t, rel)),
        }
    }
}

/// What to change so the scope matches the rules.
#[derive(Debug, Default)]
pub struct Plan {
    /// Container keys to detach first (gone, no longer matching, or moving).
    pub detach: Vec<String>,
    /// Then these to attach.
    pub attach: Vec<(String, Member)>,
    /// (cgroup rel path, problem).
    pub problems: Vec<(String, Problem)>,
}

/// The nearest claimed ancestor of `rel`.
fn claimed_ancestor<'a>(
    claimed: &'a HashMap<String, ZoneName>,
    rel: &str,
) -> Option<(&'a str, &'a ZoneName)> {
    let mut cut = rel;
    while let Some(i) = cut.rfind('/') {
        cut = &cut[..i];
        if let Some((k, z)) = claimed.get_key_value(cut) {
            return Some((k.as_str(), z));
        }
    }
    None
}

fn names(zones: &[ZoneName]) -> String {
    zones
        .iter()
        .map(ZoneName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plan membership for `scope`. `scan` lists the cgroups that exist in the
/// scope (parents before children) with their ids; `actual` is what this
/// adapter has attached (core's view after a full listing).
pub fn plan(
    scan: &[(String, u64)],
    rules: &RuleSet,
    actual: &BTreeMap<String, Member>,
    frozen: &BTreeSet<ZoneName>,
    scope: Scope<'_>,
) -> Plan {
    let mut out = Plan::default();
    let scanned: BTreeSet<&str> = scan.iter().map(|(r, _)| r.as_str()).collect();
    let mut desired: BTreeMap<String, Member> = BTreeMap::new();
    let mut claimed: HashMap<String, ZoneName> = HashMap::new();
    // Kept as they are: everything outside the scope, and members of frozen
    // zones whose cgroup still exists.
    for (key, m) in actual {
        let keep = !scope.contains(&m.rel)
            || (frozen.contains(&m.zone) && scanned.contains(m.rel.as_str()));
        if keep {
            desired.insert(key.clone(), m.clone());
            claimed.insert(m.rel.clone(), m.zone.clone());
        }
    }
    for (rel, id) in scan {
        if !scope.contains(rel) || claimed.contains_key(rel) {
            continue;
        }
        let resolution = rules.resolve(rel);
        if resolution == Resolution::Unmatched {
            continue;
        }
        let ancestor = claimed_ancestor(&claimed, rel).map(|(r, z)| (r.to_owned(), z.clone()));
        let key = container_key(rel);
        match resolution {
            Resolution::Unmatched => {}
            Resolution::Zone(zone, kind) => {
                if let Some((arel, azone)) = ancestor {
                    if azone != zone {
                        out.problems.push((
                            rel.clone(),
                            Problem::cgroup(
                                rel,
                                format!(
                                    "matches zone {zone} ({kind}) but lies inside /{arel}, a \
                                     member of zone {azone}: it stays in {azone}"
                                ),
                            ),
                        ));
                    }
                    continue;
                }
                if let Some(other) = desired.get(&key) {
                    out.problems.push((
                        rel.clone(),
                        Problem::cgroup(
                            rel,
                            format!(
                                "container {key} is also at /{}; only that cgroup is attached",
                                other.rel
                            ),
                        ),
                    ));
                    continue;
                }
                claimed.insert(rel.clone(), zone.clone());
                desired.insert(
                    key,
                    Member {
                        rel: rel.clone(),
                        cgroup_id: *id,
                        zone,
                    },
                );
            }
            Resolution::Ambiguous(zones) => {
                let list = names(&zones);
                if let Some((arel, azone)) = ancestor {
                    out.problems.push((
                        rel.clone(),
                        Problem::cgroup(
                            rel,
                            format!(
                                "matches the membership rules of zones {list}; it lies inside \
                                 /{arel} (zone {azone}) and stays there"
                            ),
                        ),
                    ));
                    continue;
                }
                let current = actual
                    .get(&key)
                    .filter(|m| m.rel == *rel && m.cgroup_id == *id && zones.contains(&m.zone));
                let message = match current {
                    Some(m) => {
                        claimed.insert(rel.clone(), m.zone.clone());
                        desired.insert(key, m.clone());
                        format!(
                            "matches the membership rules of zones {list}; it stays in zone {}, \
                             where it already is (make the rules exclusive)",
                            m.zone
                        )
                    }
                    None => format!(
                        "matches the membership rules of zones {list}; it joins none of them \
                         (make the rules exclusive)"
                    ),
                };
                out.problems
                    .push((rel.clone(), Problem::cgroup(rel, message)));
            }
        }
    }
    out.detach = actual
        .iter()
        .filter(|(k, m)| scope.contains(&m.rel) && desired.get(*k) != Some(*m))
        .map(|(k, _)| k.clone())
        .collect();
    out.attach = desired
        .into_iter()
        .filter(|(k, m)| actual.get(k) != Some(m))
        .collect();
    out
}

/// Path of `dir` relative to the cgroup root (no leading '/'); None for the
/// root itself, paths outside it and non-UTF-8 names.
pub fn relative(root: &Path, dir: &Path) -> Option<String> {
    let rel = dir.strip_prefix(root).ok()?.to_str()?;
    (!rel.is_empty()).then(|| rel.to_owned())
}

/// Every cgroup at or below `top` (parents first) with its id. A cgroup
/// removed during the walk is skipped; a missing `top` gives nothing.
pub fn scan(root: &Path, top: &Path) -> io::Result<Vec<(String, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(top)
        .follow_links(false)
        .same_file_system(true);
    for entry in walk {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                if e.io_error()
                    .is_some_and(|io| io.kind() == io::ErrorKind::NotFound)
                {
                    continue; // removed while we walk
                }
                return Err(e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("file system loop in the cgroup tree")));
            }
        };
        if !entry.file_type().is_dir() {
            continue;
        }
        let Some(rel) = relative(root, entry.path()) else {
            continue; // the root itself (never a member) or a non-UTF-8 name
        };
        match entry.metadata() {
            Ok(md) => out.push((rel, md.ino())),
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == io::ErrorKind::NotFound) => {}
            Err(e) => {
                return Err(e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("cannot stat a cgroup")));
            }
        }
    }
    Ok(out)
}

/// Membership state: what this adapter attached, the rules in force and the
/// problems found.
#[derive(Debug)]
pub struct Membership {
    root: PathBuf,
    rules: RuleSet,
    frozen: BTreeSet<ZoneName>,
    members: BTreeMap<String, Member>,
    problems: BTreeMap<String, Problem>,
    /// The last full scan of the tree failed.
    scan_problem: Option<Problem>,
    /// Watching the tree failed: new cgroups wait for the resync.
    watch_problem: Option<Problem>,
    next_generation: u64,
}

impl Membership {
    pub fn new(root: PathBuf) -> Self {
        // Seeded from the clock so a restarted adapter orders after its
        // previous run; raised to core's highest stored generation on sync.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2));
        Self {
            root,
            rules: RuleSet::default(),
            frozen: BTreeSet::new(),
            members: BTreeMap::new(),
            problems: BTreeMap::new(),
            scan_problem: None,
            watch_problem: None,
            next_generation: seed,
        }
    }

    pub fn set_rules(&mut self, rules: RuleSet, frozen: BTreeSet<ZoneName>) {
        self.rules = rules;
        self.frozen = frozen;
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .values()
            .chain(self.scan_problem.iter())
            .chain(self.watch_problem.iter())
    }

    /// The cgroup watch failed (e.g. the inotify watch limit): new cgroups
    /// are then found by the periodic resync only.
    pub fn set_watch_problem(&mut self, message: String) {
        self.watch_problem = Some(Problem::new(self.root.display().to_string(), message));
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Compare the whole tree with core's list of our containers and fix
    /// every difference.
    pub async fn full_sync(&mut self, api: &SyvaCoreClient<Channel>) -> Result<(), CoreDown> {
        let root = self.root.clone();
        let scanned = tokio::task::spawn_blocking(move || scan(&root, &root)).await;
        let tree = match scanned {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                self.scan_failed(&e.to_string());
                return Ok(());
            }
            Err(e) => {
                self.scan_failed(&format!("scan task failed: {e}"));
                return Ok(());
            }
        };
        self.scan_problem = None;
        let listed = match rpc::call(api.clone().list_containers(pb::ListContainersRequest {
            zone: String::new(),
        }))
        .await
        {
            Ok(r) => r.containers,
            Err(e) => {
                let s = e.refused()?;
                return Err(CoreDown(format!("ListContainers failed: {}", s.message())));
            }
        };
        self.members.clear();
        for c in listed.into_iter().filter(|c| c.source == SOURCE) {
            self.next_generation = self.next_generation.max(c.generation);
            let Ok(zone) = ZoneName::new(c.zone.clone()) else {
                // Core only stores validated names; a container we cannot
                // name the zone of is left as it is.
                tracing::warn!(container = %c.container_id, zone = %c.zone, "core listed an invalid zone name");
                continue;
            };
            let rel = c.cgroup_path.trim_start_matches('/').to_owned();
            self.members.insert(
                c.container_id,
                Member {
                    rel,
                    cgroup_id: c.cgroup_id,
                    zone,
                },
            );
        }
        let plan = plan(&tree, &self.rules, &self.members, &self.frozen, Scope::All);
        self.problems = plan
            .problems
            .iter()
            .map(|(r, p)| (r.clone(), p.clone()))
            .collect();
        self.execute(api, plan, &HashMap::new()).await
    }

    /// A batch of cgroup events: `created` cgroups (with when their event
    /// was read, for the latency metric) and `removed` ones. The touched
    /// subtrees are planned together (a parent and its child created in
    /// one batch resolve like in a full sync) and applied.
    ///
    /// Subtrees are scanned inline: a new cgroup holds a handful of
    /// directories at most, and a thread handoff would cost more than the
    /// walk (this is on the path that bounds how long a new container runs
    /// outside its zone).
    pub async fn on_changes(
        &mut self,
        api: &SyvaCoreClient<Channel>,
        created: &[(PathBuf, Option<Instant>)],
        removed: &[PathBuf],
    ) -> Result<(), CoreDown> {
        let mut tops: Vec<String> = Vec::new();
        let mut tree: Vec<(String, u64)> = Vec::new();
        let mut observed: HashMap<String, Instant> = HashMap::new();
        let touched = created
            .iter()
            .map(|(d, at)| (d, *at, true))
            .chain(removed.iter().map(|d| (d, None, false)));
        for (dir, at, is_new) in touched {
            let Some(rel) = relative(&self.root, dir) else {
                continue;
            };
            let relevant = if is_new {
                !self.rules.is_empty() || self.has_members_in(&rel)
            } else {
                self.has_members_in(&rel) || self.problems.keys().any(|k| within(&rel, k))
            };
            if !relevant {
                continue;
            }
            // A removed directory may be back already (rmdir + mkdir): the
            // scan says what exists now either way.
            match scan(&self.root, dir) {
                Ok(t) => {
                    for (r, _) in &t {
                        if let Some(at) = at {
                            observed.entry(r.clone()).or_insert(at);
                        }
                    }
                    tree.extend(t);
                    tops.push(rel);
                }
                Err(e) => {
                    // Not in scope: what we have there stays as it is.
                    tracing::warn!(cgroup = %dir.display(), error = %e, "cannot scan a cgroup; the next resync will");
                }
            }
        }
        if tops.is_empty() {
            return Ok(());
        }
        // Parents before children across subtrees, each cgroup once.
        tree.sort_by(|a, b| {
            let depth = |r: &str| r.matches('/').count();
            depth(&a.0).cmp(&depth(&b.0)).then_with(|| a.0.cmp(&b.0))
        });
        tree.dedup_by(|a, b| a.0 == b.0);
        let scope = Scope::Subtrees(&tops);
        let plan = plan(&tree, &self.rules, &self.members, &self.frozen, scope);
        self.problems.retain(|k, _| !scope.contains(k));
        for (r, p) in &plan.problems {
            self.problems.insert(r.clone(), p.clone());
        }
        self.execute(api, plan, &observed).await
    }

    /// Without a listing nothing can be concluded: every attachment stays
    /// as it is, and the failure is reported.
    fn scan_failed(&mut self, why: &str) {
        self.scan_problem = Some(Problem::new(
            self.root.display().to_string(),
            format!("cannot scan the cgroup tree: {why}; membership is left as it is"),
        ));
    }

    fn has_members_in(&self, rel: &str) -> bool {
        self.members.values().any(|m| within(rel, &m.rel))
    }

    /// Detach, then attach, each group with up to IN_FLIGHT calls at once
    /// (core serializes them; overlapping the round trips is what matters
    /// when many containers start together).
    async fn execute(
        &mut self,
        api: &SyvaCoreClient<Channel>,
        plan: Plan,
        observed: &HashMap<String, Instant>,
    ) -> Result<(), CoreDown> {
        let mut down: Option<String> = None;

        let mut detaches: Vec<(String, Member, u64)> = Vec::new();
        for key in plan.detach {
            if let Some(m) = self.members.get(&key).cloned() {
                let generation = self.generation();
                detaches.push((key, m, generation));
            }
        }
        let calls = detaches.into_iter().map(|(key, m, generation)| {
            let mut api = api.clone();
            async move {
                let req = pb::DetachContainerRequest {
                    container_id: key.clone(),
                    source: SOURCE.into(),
                    generation,
                };
                let r = rpc::call(api.detach_container(req)).await;
                (key, m, generation, r)
            }
        });
        let results: Vec<_> = stream::iter(calls)
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for (key, m, generation, r) in results {
            match r {
                Ok(resp) => {
                    self.detached(&key, &m, generation, proto::outcome_from_pb(resp.outcome))
                }
                Err(RpcError::Down(e)) => down = Some(e),
                Err(RpcError::Refused(s)) => self.detach_refused(&key, &m, &s),
            }
        }
        if let Some(e) = down {
            return Err(CoreDown(e));
        }

        let attaches: Vec<(String, Member, u64)> = plan
            .attach
            .into_iter()
            .map(|(k, m)| (k, m, self.generation()))
            .collect();
        let calls = attaches.into_iter().map(|(key, want, generation)| {
            let mut api = api.clone();
            async move {
                let req = pb::AttachContainerRequest {
                    container_id: key.clone(),
                    cgroup: Some(pb::attach_container_request::Cgroup::CgroupPath(format!(
                        "/{}",
                        want.rel
                    ))),
                    zone: want.zone.to_string(),
                    source: SOURCE.into(),
                    generation,
                    observed_at: Some(proto::timestamp(SystemTime::now())),
                    ..Default::default()
                };
                let r = rpc::call(api.attach_container(req)).await;
                (key, want, generation, r)
            }
        });
        let results: Vec<_> = stream::iter(calls)
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for (key, want, generation, r) in results {
            match r {
                Ok(resp) => {
                    let latency = observed.get(&want.rel).map(Instant::elapsed);
                    self.attached(key, want, generation, &resp, latency);
                }
                Err(RpcError::Down(e)) => down = Some(e),
                Err(RpcError::Refused(s)) => self.attach_refused(&key, &want, &s),
            }
        }
        metrics::gauge!("syva_file_members").set(self.members.len() as f64);
        match down {
            Some(e) => Err(CoreDown(e)),
            None => Ok(()),
        }
    }

    fn detached(
        &mut self,
        key: &str,
        m: &Member,
        generation: u64,
        outcome: Option<MembershipOutcome>,
    ) {
        let result = outcome.map_or("unknown", MembershipOutcome::as_str);
        metrics::counter!("syva_file_membership_ops_total", "op" => "detach", "result" => result)
            .increment(1);
        if outcome == Some(MembershipOutcome::Stale) {
            self.problems.insert(
                m.rel.clone(),
                Problem::cgroup(
                    &m.rel,
                    format!("core holds a newer generation for container {key}; detach ignored"),
                ),
            );
            return;
        }
        tracing::info!(container = %key, cgroup = %format!("/{}", m.rel), zone = %m.zone, generation, "cgroup detached");
        self.members.remove(key);
    }

    fn detach_refused(&mut self, key: &str, m: &Member, s: &tonic::Status) {
        metrics::counter!("syva_file_membership_ops_total", "op" => "detach", "result" => "refused")
            .increment(1);
        self.problems.insert(
            m.rel.clone(),
            Problem::cgroup(
                &m.rel,
                format!(
                    "core refused to detach container {key} from zone {} ({:?}): {}",
                    m.zone,
                    s.code(),
                    s.message()
                ),
            ),
        );
        if s.code() == tonic::Code::FailedPrecondition {
            // Another source manages it now: not ours any more.
            self.members.remove(key);
        }
    }

    fn attached(
        &mut self,
        key: String,
        want: Member,
        generation: u64,
        r: &pb::AttachContainerResponse,
        latency: Option<Duration>,
    ) {
        let outcome = proto::outcome_from_pb(r.outcome);
        let result = outcome.map_or("unknown", MembershipOutcome::as_str);
        metrics::counter!("syva_file_membership_ops_total", "op" => "attach", "result" => result)
            .increment(1);
        if outcome == Some(MembershipOutcome::Stale) {
            self.problems.insert(
                want.rel.clone(),
                Problem::cgroup(
                    &want.rel,
                    format!(
                        "core holds a newer generation for container {key}; attach to zone {} \
                         ignored",
                        want.zone
                    ),
                ),
            );
            return;
        }
        if let Some(l) = latency {
            metrics::histogram!("syva_file_attach_latency_seconds").record(l.as_secs_f64());
        }
        tracing::info!(
            container = %key,
            cgroup = %format!("/{}", want.rel),
            zone = %want.zone,
            generation,
            cgroups_covered = r.cgroups_covered,
            latency_us = latency.map(|l| u64::try_from(l.as_micros()).unwrap_or(u64::MAX)),
            "cgroup attached"
        );
        // The id core resolved the path to: the cgroup there now.
        self.members.insert(
            key,
            Member {
                cgroup_id: r.cgroup_id,
                ..want
            },
        );
    }

    fn attach_refused(&mut self, key: &str, want: &Member, s: &tonic::Status) {
        if s.code() == tonic::Code::NotFound && !self.root.join(&want.rel).is_dir() {
            // Gone before core saw it: nothing to enforce.
            tracing::debug!(cgroup = %want.rel, "cgroup vanished before it could be attached");
            metrics::counter!("syva_file_membership_ops_total", "op" => "attach", "result" => "vanished").increment(1);
            return;
        }
        metrics::counter!("syva_file_membership_ops_total", "op" => "attach", "result" => "refused")
            .increment(1);
        self.problems.insert(
            want.rel.clone(),
            Problem::cgroup(
                &want.rel,
                format!(
                    "core refused to attach it to zone {} as container {key} ({:?}): {}",
                    want.zone,
                    s.code(),
                    s.message()
                ),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::rules::{CgroupPattern, MemberRules};

    const ID: &str = "3f2a9c0e1b2d4f6a8c0e1b2d4f6a8c0e1b2d4f6a8c0e1b2d4f6a8c0e1b2d4f6a";

    fn z(n: &str) -> ZoneName {
        ZoneName::new(n).unwrap()
    }

    fn rules(spec: &[(&str, &[&str], &[&str])]) -> RuleSet {
        RuleSet::new(spec.iter().map(|(zone, pats, ids)| {
            (
                z(zone),
                MemberRules::new(
                    pats.iter()
                        .map(|p| CgroupPattern::new(p).unwrap())
                        .collect(),
                    ids.iter().map(|s| s.to_string()).collect(),
                ),
            )
        }))
    }

    fn tree(paths: &[&str]) -> Vec<(String, u64)> {
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_string(), 100 + i as u64))
            .collect()
    }

    fn member(rel: &str, id: u64, zone: &str) -> Member {
        Member {
            rel: rel.into(),
            cgroup_id: id,
            zone: z(zone),
        }
    }

    #[test]
    fn attaches_outermost_matches_only() {
        let r = rules(&[("web", &["web.slice", "web.slice/*"], &[])]);
        let t = tree(&["web.slice", "web.slice/a.scope", "other.slice"]);
        let p = plan(&t, &r, &BTreeMap::new(), &BTreeSet::new(), Scope::All);
        assert_eq!(p.attach.len(), 1);
        assert_eq!(p.attach[0].0, "/web.slice");
        assert_eq!(p.attach[0].1, member("web.slice", 100, "web"));
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(p.detach.is_empty());
    }

    #[test]
    fn nested_match_for_another_zone_is_reported() {
        let r = rules(&[("all", &["system.slice"], &[]), ("one", &[], &[ID])]);
        let inner = format!("system.slice/docker-{ID}.scope");
        let t = tree(&["system.slice", &inner]);
        let p = plan(&t, &r, &BTreeMap::new(), &BTreeSet::new(), Scope::All);
        assert_eq!(p.attach.len(), 1);
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].0, inner);
        assert!(p.problems[0].1.message.contains("stays in all"));
    }

    #[test]
    fn runtime_ids_key_containers_and_ambiguity_is_sticky() {
        let r = rules(&[
            ("a", &["system.slice/docker-*.scope"], &[]),
            ("b", &["system.slice/*.scope"], &[]),
        ]);
        let rel = format!("system.slice/docker-{ID}.scope");
        let t = vec![(rel.clone(), 7)];
        // Not attached yet: joins none.
        let p = plan(&t, &r, &BTreeMap::new(), &BTreeSet::new(), Scope::All);
        assert!(p.attach.is_empty());
        assert!(p.problems[0].1.message.contains("joins none"));
        // Already in b: stays in b.
        let actual = BTreeMap::from([(ID.to_string(), member(&rel, 7, "b"))]);
        let p = plan(&t, &r, &actual, &BTreeSet::new(), Scope::All);
        assert!(p.attach.is_empty() && p.detach.is_empty());
        assert!(p.problems[0].1.message.contains("stays in zone b"));
    }

    #[test]
    fn detaches_gone_unmatched_and_recreated_cgroups_and_moves_zones() {
        let r = rules(&[("web", &["web.slice"], &[]), ("db", &["db.slice"], &[])]);
        let actual = BTreeMap::from([
            ("/gone.slice".to_string(), member("gone.slice", 1, "web")),
            ("/web.slice".to_string(), member("web.slice", 2, "web")),
            ("/db.slice".to_string(), member("db.slice", 3, "web")),
        ]);
        // web.slice was recreated (new id), db.slice now belongs to db.
        let t = vec![("web.slice".to_string(), 20), ("db.slice".to_string(), 3)];
        let p = plan(&t, &r, &actual, &BTreeSet::new(), Scope::All);
        assert_eq!(p.detach, ["/db.slice", "/gone.slice", "/web.slice"]);
        assert_eq!(
            p.attach,
            [
                ("/db.slice".to_string(), member("db.slice", 3, "db")),
                ("/web.slice".to_string(), member("web.slice", 20, "web")),
            ]
        );
    }

    #[test]
    fn frozen_zones_keep_their_members_while_the_cgroup_exists() {
        let r = RuleSet::default();
        let actual = BTreeMap::from([
            ("/a".to_string(), member("a", 1, "held")),
            ("/b".to_string(), member("b", 2, "held")),
        ]);
        let frozen = BTreeSet::from([z("held")]);
        let p = plan(&tree(&["a"]), &r, &actual, &frozen, Scope::All);
        assert!(p.attach.is_empty());
        assert_eq!(p.detach, ["/b"]);
    }

    #[test]
    fn a_subtree_plan_leaves_the_rest_alone() {
        let r = rules(&[("web", &["web.slice/*"], &[])]);
        let actual = BTreeMap::from([
            (
                "/web.slice/old".to_string(),
                member("web.slice/old", 1, "web"),
            ),
            ("/web.slice/x".to_string(), member("web.slice/x", 2, "web")),
        ]);
        // A new cgroup appeared.
        let t = vec![("web.slice/new".to_string(), 3)];
        let p = plan(
            &t,
            &r,
            &actual,
            &BTreeSet::new(),
            Scope::Subtrees(&["web.slice/new".into()]),
        );
        assert!(p.detach.is_empty());
        assert_eq!(p.attach.len(), 1);
        // A member disappeared.
        let p = plan(
            &[],
            &r,
            &actual,
            &BTreeSet::new(),
            Scope::Subtrees(&["web.slice/x".into()]),
        );
        assert_eq!(p.detach, ["/web.slice/x"]);
        assert!(p.attach.is_empty());
        // Scope boundaries are path components.
        assert!(!within("web.slice/x", "web.slice/xy"));
        assert!(within("web.slice/x", "web.slice/x/y"));
        let two = ["a".to_string(), "b/c".to_string()];
        assert!(Scope::Subtrees(&two).contains("b/c/d"));
        assert!(!Scope::Subtrees(&two).contains("b"));
    }

    #[test]
    fn a_new_child_of_a_member_is_covered() {
        let r = rules(&[("web", &["web.slice", "**/*.scope"], &[])]);
        let actual = BTreeMap::from([("/web.slice".to_string(), member("web.slice", 1, "web"))]);
        let t = vec![("web.slice/a.scope".to_string(), 3)];
        let p = plan(
            &t,
            &r,
            &actual,
            &BTreeSet::new(),
            Scope::Subtrees(&["web.slice/a.scope".into()]),
        );
        assert!(p.attach.is_empty() && p.detach.is_empty() && p.problems.is_empty());
    }

    #[test]
    fn scans_a_tree_parents_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("a/cgroup.procs"), "").unwrap();
        let t = scan(dir.path(), dir.path()).unwrap();
        let rels: Vec<&str> = t.iter().map(|(r, _)| r.as_str()).collect();
        let pos = |n: &str| rels.iter().position(|r| *r == n).unwrap();
        assert_eq!(rels.len(), 4, "{rels:?}");
        assert!(pos("a") < pos("a/b") && pos("a/b") < pos("a/b/c"));
        let sub = scan(dir.path(), &dir.path().join("a/b")).unwrap();
        assert_eq!(sub.len(), 2);
        assert!(
            scan(dir.path(), &dir.path().join("nope"))
                .unwrap()
                .is_empty()
        );
    }
}
