//! Membership rules of the policy files: which cgroups belong to which
//! zone, by cgroup path pattern or by container id, and how a cgroup path is
//! resolved against the rules of every zone. Pure: no I/O.

use std::fmt;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::model::ZoneName;

/// Shortest container id prefix accepted in a rule (Docker's short ids).
pub const MIN_CONTAINER_ID_LEN: usize = 12;

/// A cgroup path pattern: glob syntax over the path relative to the cgroup v2
/// root, `*` and `?` never cross `/`, `**` spans any number of levels.
#[derive(Debug, Clone)]
pub struct CgroupPattern {
    text: String,
    glob: Glob,
}

impl CgroupPattern {
    /// Validate and compile a pattern (a leading `/` is accepted and ignored).
    pub fn new(raw: &str) -> Result<Self, String> {
        let text = raw.strip_prefix('/').unwrap_or(raw);
        if text.is_empty() {
            return Err("must name a cgroup below the root (the root cannot join a zone)".into());
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        let segments: Vec<&str> = text.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(format!(
                "{raw:?} has an empty path segment (no '//' or trailing '/')"
            ));
        }
        if segments.iter().any(|s| *s == "." || *s == "..") {
            return Err(format!("{raw:?} must not contain '.' or '..' segments"));
        }
        if segments.iter().all(|s| s.chars().all(|c| c == '*')) {
            return Err(format!(
                "{raw:?} matches every cgroup of its level: it would put the whole host in \
                 the zone; name the slice or scope"
            ));
        }
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("{raw:?} is not a valid pattern: {}", e.kind()))?;
        Ok(Self {
            text: text.to_owned(),
            glob,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for CgroupPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CgroupPattern {}

/// Validate a container id (or unique prefix) given in a rule: lowercase hex,
/// 12 to 64 characters, as runtimes print them.
pub fn container_id_rule(raw: &str) -> Result<String, String> {
    if raw.len() < MIN_CONTAINER_ID_LEN || raw.len() > 64 {
        return Err(format!(
            "{raw:?} must be {MIN_CONTAINER_ID_LEN} to 64 hex digits (a full id or a unique prefix)"
        ));
    }
    if !raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("{raw:?} must be lowercase hex digits"));
    }
    Ok(raw.to_owned())
}

/// One zone's membership rules (validated).
#[derive(Debug, Clone, Default)]
pub struct MemberRules {
    patterns: Vec<CgroupPattern>,
    container_ids: Vec<String>,
    set: GlobSet,
}

impl PartialEq for MemberRules {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns && self.container_ids == other.container_ids
    }
}

impl Eq for MemberRules {}

impl MemberRules {
    pub fn new(patterns: Vec<CgroupPattern>, container_ids: Vec<String>) -> Self {
        let mut b = GlobSetBuilder::new();
        for p in &patterns {
            b.add(p.glob.clone());
        }
        // Every glob was built on its own above: the set cannot fail to build
        // (it only fails on invalid globs). Fall back to an empty set anyway.
        let set = b.build().unwrap_or_else(|_| GlobSet::empty());
        Self {
            patterns,
            container_ids,
            set,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.container_ids.is_empty()
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(CgroupPattern::as_str)
    }

    pub fn container_ids(&self) -> &[String] {
        &self.container_ids
    }

    fn matches_path(&self, rel: &str) -> bool {
        !self.patterns.is_empty() && self.set.is_match(rel)
    }

    fn matches_container(&self, id: &str) -> bool {
        self.container_ids
            .iter()
            .any(|p| id.starts_with(p.as_str()))
    }
}

/// The container id a runtime encodes in a cgroup's directory name:
/// `docker-<id>.scope`, `libpod-<id>.scope`, `cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `nerdctl-<id>.scope` (systemd cgroup drivers), or a bare
/// 64-hex name (cgroupfs drivers: `docker/<id>`). `libpod-conmon-<id>.scope`
/// (podman's monitor) is not a container.
pub fn runtime_container_id(leaf: &str) -> Option<&str> {
    const PREFIXES: &[&str] = &["docker-", "libpod-", "cri-containerd-", "crio-", "nerdctl-"];
    let id = match leaf.strip_suffix(".scope") {
        Some(stem) => PREFIXES.iter().find_map(|p| stem.strip_prefix(p))?,
        None => leaf,
    };
    (id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(id)
}

/// The container id `syva file` gives core for a cgroup: the runtime's id
/// when the directory name carries one, else the cgroup path ("/"-prefixed,
/// so it never collides with a runtime id).
pub fn container_key(rel: &str) -> String {
    let leaf = rel.rsplit('/').next().unwrap_or(rel);
    match runtime_container_id(leaf) {
        Some(id) => id.to_owned(),
        None => format!("/{rel}"),
    }
}

/// How a cgroup matched a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    ContainerId,
    Pattern,
}

impl fmt::Display for MatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchKind::ContainerId => "container id",
            MatchKind::Pattern => "cgroup pattern",
        })
    }
}

/// What the rules of all zones say about one cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Unmatched,
    Zone(ZoneName, MatchKind),
    /// Several zones claim it with the same precedence.
    Ambiguous(Vec<ZoneName>),
}

/// The membership rules of every zone in force.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    zones: Vec<(ZoneName, MemberRules)>,
}

impl RuleSet {
    pub fn new(zones: impl IntoIterator<Item = (ZoneName, MemberRules)>) -> Self {
        Self {
            zones: zones.into_iter().filter(|(_, r)| !r.is_empty()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// Resolve a cgroup path (relative to the root, no leading '/'). A
    /// container id rule is more specific than a path pattern and wins over
    /// it; two zones matching with the same kind are ambiguous.
    pub fn resolve(&self, rel: &str) -> Resolution {
        let leaf = rel.rsplit('/').next().unwrap_or(rel);
        if let Some(id) = runtime_container_id(leaf) {
            let by_id: Vec<&ZoneName> = self
                .zones
                .iter()
                .filter(|(_, r)| r.matches_container(id))
                .map(|(z, _)| z)
                .collect();
            match by_id.as_slice() {
                [] => {}
                [z] => return Resolution::Zone((*z).clone(), MatchKind::ContainerId),
                many => return Resolution::Ambiguous(many.iter().map(|z| (*z).clone()).collect()),
            }
        }
        let by_path: Vec<&ZoneName> = self
            .zones
            .iter()
            .filter(|(_, r)| r.matches_path(rel))
            .map(|(z, _)| z)
            .collect();
        match by_path.as_slice() {
            [] => Resolution::Unmatched,
            [z] => Resolution::Zone((*z).clone(), MatchKind::Pattern),
            many => Resolution::Ambiguous(many.iter().map(|z| (*z).clone()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c0e1b2d4f6a8c0e1b2d4f6a8c0e1b2d4f6a8c0e1b2d4f6a8c0e1b2d4f6a";

    fn zone(n: &str) -> ZoneName {
        ZoneName::new(n).unwrap()
    }

    fn rules(patterns: &[&str], ids: &[&str]) -> MemberRules {
        MemberRules::new(
            patterns
                .iter()
                .map(|p| CgroupPattern::new(p).unwrap())
                .collect(),
            ids.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn patterns_validate() {
        assert!(CgroupPattern::new("system.slice/docker-*.scope").is_ok());
        assert_eq!(
            CgroupPattern::new("/web.slice").unwrap().as_str(),
            "web.slice"
        );
        for bad in [
            "", "/", "a//b", "a/", "a/../b", "./a", "*", "**", "*/**", "a/[b",
        ] {
            assert!(CgroupPattern::new(bad).is_err(), "{bad:?}");
        }
        assert!(CgroupPattern::new("**").unwrap_err().contains("whole host"));
    }

    #[test]
    fn star_stays_in_one_level_and_double_star_spans_levels() {
        let r = RuleSet::new([(zone("web"), rules(&["system.slice/docker-*.scope"], &[]))]);
        let web = Resolution::Zone(zone("web"), MatchKind::Pattern);
        assert_eq!(r.resolve("system.slice/docker-abc.scope"), web);
        assert_eq!(
            r.resolve("system.slice/docker-abc.scope/init.scope"),
            Resolution::Unmatched
        );
        assert_eq!(
            r.resolve("system.slice/x/docker-abc.scope"),
            Resolution::Unmatched
        );
        let r = RuleSet::new([(zone("web"), rules(&["**/web-*.scope"], &[]))]);
        assert_eq!(
            r.resolve("a/b/web-1.scope"),
            Resolution::Zone(zone("web"), MatchKind::Pattern)
        );
        assert_eq!(
            r.resolve("web-1.scope"),
            Resolution::Zone(zone("web"), MatchKind::Pattern)
        );
    }

    #[test]
    fn runtime_ids_from_directory_names() {
        assert_eq!(
            runtime_container_id(&format!("docker-{ID}.scope")),
            Some(ID)
        );
        assert_eq!(
            runtime_container_id(&format!("libpod-{ID}.scope")),
            Some(ID)
        );
        assert_eq!(
            runtime_container_id(&format!("cri-containerd-{ID}.scope")),
            Some(ID)
        );
        assert_eq!(runtime_container_id(ID), Some(ID));
        assert_eq!(
            runtime_container_id(&format!("libpod-conmon-{ID}.scope")),
            None
        );
        assert_eq!(runtime_container_id("docker-abc.scope"), None);
        assert_eq!(runtime_container_id("nginx.service"), None);
        assert_eq!(
            container_key(&format!("system.slice/docker-{ID}.scope")),
            ID
        );
        assert_eq!(
            container_key("system.slice/nginx.service"),
            "/system.slice/nginx.service"
        );
    }

    #[test]
    fn container_id_rules_win_over_patterns() {
        let r = RuleSet::new([
            (zone("all"), rules(&["system.slice/docker-*.scope"], &[])),
            (zone("one"), rules(&[], &[&ID[..12]])),
        ]);
        assert_eq!(
            r.resolve(&format!("system.slice/docker-{ID}.scope")),
            Resolution::Zone(zone("one"), MatchKind::ContainerId)
        );
        let other = "b".repeat(64);
        assert_eq!(
            r.resolve(&format!("system.slice/docker-{other}.scope")),
            Resolution::Zone(zone("all"), MatchKind::Pattern)
        );
    }

    #[test]
    fn two_zones_with_the_same_precedence_are_ambiguous() {
        let r = RuleSet::new([
            (zone("a"), rules(&["x.slice/*"], &[])),
            (zone("b"), rules(&["x.slice/y*"], &[])),
            (zone("c"), rules(&[], &[])),
        ]);
        assert_eq!(
            r.resolve("x.slice/yes"),
            Resolution::Ambiguous(vec![zone("a"), zone("b")])
        );
        assert_eq!(
            r.resolve("x.slice/no"),
            Resolution::Zone(zone("a"), MatchKind::Pattern)
        );
    }

    #[test]
    fn container_id_rules_validate() {
        assert!(container_id_rule(&ID[..12]).is_ok());
        assert!(container_id_rule(ID).is_ok());
        assert!(container_id_rule("abc").is_err());
        assert!(container_id_rule(&ID.to_uppercase()).is_err());
        assert!(container_id_rule(&format!("{ID}0")).is_err());
    }
}
