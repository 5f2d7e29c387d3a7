//! Policy files -> validated zone specs. Every `*.toml` file of the policy
//! directory is one zone; each file is parsed and validated on its own, so
//! one bad file never hides or poisons the others, and every error carries
//! the file, line and column it is about.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::model::{self, EnforcementMode, HostPath, ZoneName, ZonePolicy, ZoneType};

use super::rules::{self, CgroupPattern, MemberRules};

/// Larger files are refused (a zone policy is a few hundred bytes).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// One problem, with where it is: `path:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based line and column (column in characters).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// "path:line:column", the `object` of a reported problem.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}

/// One zone as a valid policy file describes it.
#[derive(Debug, Clone)]
pub struct ZoneSpec {
    pub name: ZoneName,
    pub file: PathBuf,
    pub policy: ZonePolicy,
    pub members: MemberRules,
    /// Positions of fields, named as core names them in its errors
    /// ("name", "policy.host_paths[1].path", ...).
    positions: BTreeMap<String, (usize, usize)>,
}

impl ZoneSpec {
    /// A diagnostic for an error core returned about this zone: core's
    /// messages start with the field they are about, which is mapped back to
    /// its line and column in the file (else line 1, column 1).
    pub fn diagnostic(&self, message: &str) -> Diagnostic {
        let field = message.split([':', ' ']).next().unwrap_or_default();
        let mut best: Option<(usize, usize)> = None;
        let mut best_len = 0;
        for (name, pos) in &self.positions {
            if field.starts_with(name.as_str()) && name.len() > best_len {
                best = Some(*pos);
                best_len = name.len();
            }
        }
        let (line, column) = best.unwrap_or((1, 1));
        Diagnostic {
            path: self.file.clone(),
            line,
            column,
            message: message.to_owned(),
        }
    }
}

/// A file that is not a valid zone.
#[derive(Debug, Clone)]
pub struct Invalid {
    pub diagnostics: Vec<Diagnostic>,
    /// The zone the file most likely describes (its `name` if that much
    /// could be read, else its stem), so that zone can be held as it is.
    pub zone_hint: Option<ZoneName>,
}

/// The outcome of loading one file.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub path: PathBuf,
    pub result: Result<ZoneSpec, Invalid>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the policy directory {path}: {source}")]
pub struct DirError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

// ----- the file format -------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    name: Option<Spanned<String>>,
    zone_type: Option<Spanned<ZoneType>>,
    mode: Option<Spanned<EnforcementMode>>,
    host_paths: Option<Spanned<Vec<Spanned<RawHostPath>>>>,
    allowed_zones: Option<Spanned<Vec<Spanned<String>>>>,
    allow_ptrace: Option<Spanned<bool>>,
    allowed_host_sockets: Option<Spanned<Vec<Spanned<String>>>>,
    membership: Option<Spanned<RawMembership>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostPath {
    path: Spanned<String>,
    #[serde(default)]
    recursive: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMembership {
    #[serde(default)]
    cgroups: Vec<Spanned<String>>,
    #[serde(default)]
    container_ids: Vec<Spanned<String>>,
}

/// Only for finding the zone of a file that does not validate.
#[derive(Debug, Deserialize)]
struct NameOnly {
    name: Option<String>,
}

/// Byte offset -> 1-based (line, column in characters).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

struct Collector<'a> {
    path: &'a Path,
    text: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Collector<'_> {
    fn at(&self, span: Range<usize>) -> (usize, usize) {
        line_col(self.text, span.start)
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = self.at(span);
        self.diagnostics.push(Diagnostic {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }
}

/// The zone name a file gets from its stem (`web.toml` -> `web`).
fn stem(path: &Path) -> Option<&str> {
    path.file_stem().and_then(|s| s.to_str())
}

/// Parse and validate one policy file's text.
pub fn parse(path: &Path, text: &str) -> Result<ZoneSpec, Invalid> {
    let mut c = Collector {
        path,
        text,
        diagnostics: Vec::new(),
    };
    let stem_hint = stem(path).and_then(|s| ZoneName::new(s).ok());
    let raw: RawZone = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            c.error(e.span().unwrap_or(0..0), e.message().trim_end());
            let zone_hint = toml::from_str::<NameOnly>(text)
                .ok()
                .and_then(|n| n.name)
                .map_or(stem_hint, |n| ZoneName::new(n).ok());
            return Err(Invalid {
                diagnostics: c.diagnostics,
                zone_hint,
            });
        }
    };
    let is_empty = raw.name.is_none()
        && raw.zone_type.is_none()
        && raw.mode.is_none()
        && raw.host_paths.is_none()
        && raw.allowed_zones.is_none()
        && raw.allow_ptrace.is_none()
        && raw.allowed_host_sockets.is_none()
        && raw.membership.is_none();
    if is_empty {
        c.error(
            0..0,
            "the file sets nothing (an empty zone is almost always a file caught while being \
             written); set at least `name` or one policy key",
        );
    }
    let mut positions = BTreeMap::new();

    // name
    let name = match &raw.name {
        Some(n) => {
            positions.insert("name".to_owned(), c.at(n.span()));
            match model::zone_name("name", n.get_ref()) {
                Ok(z) => Some(z),
                Err(e) => {
                    c.error(n.span(), e.to_string());
                    None
                }
            }
        }
        None => match stem(path) {
            Some(s) => match ZoneName::new(s) {
                Ok(z) => Some(z),
                Err(e) => {
                    c.error(
                        0..0,
                        format!(
                            "the zone name comes from the file name {s:?}, which {e}; rename the \
                             file or set `name`"
                        ),
                    );
                    None
                }
            },
            None => {
                c.error(0..0, "the file name is not UTF-8; set `name`");
                None
            }
        },
    };
    if let Some(n) = &raw.name {
        positions.insert("policy".to_owned(), c.at(n.span()));
    }

    // zone_type, mode, allow_ptrace
    let zone_type = raw.zone_type.as_ref().map_or_else(ZoneType::default, |t| {
        positions.insert("policy.zone_type".to_owned(), c.at(t.span()));
        *t.get_ref()
    });
    let mode = raw
        .mode
        .as_ref()
        .map_or_else(EnforcementMode::default, |m| {
            positions.insert("policy.mode".to_owned(), c.at(m.span()));
            *m.get_ref()
        });
    let allow_ptrace = raw.allow_ptrace.as_ref().is_some_and(|p| *p.get_ref());

    // host_paths
    let mut host_paths: Vec<HostPath> = Vec::new();
    if let Some(list) = &raw.host_paths {
        positions.insert("policy.host_paths".to_owned(), c.at(list.span()));
        for (i, entry) in list.get_ref().iter().enumerate() {
            let p = &entry.get_ref().path;
            positions.insert(format!("policy.host_paths[{i}]"), c.at(p.span()));
            let hp = HostPath {
                path: p.get_ref().clone(),
                recursive: entry.get_ref().recursive,
            };
            if let Err(m) = hp.validate() {
                c.error(p.span(), format!("host_paths[{i}].path: {m}"));
            } else if host_paths.iter().any(|o| o.path == hp.path) {
                c.error(
                    p.span(),
                    format!("host_paths[{i}].path: {:?} is listed twice", hp.path),
                );
            } else {
                host_paths.push(hp);
            }
        }
    }

    // allowed_zones
    let mut allowed_zones: Vec<ZoneName> = Vec::new();
    if let Some(list) = &raw.allowed_zones {
        positions.insert("policy.allowed_zones".to_owned(), c.at(list.span()));
        for (i, z) in list.get_ref().iter().enumerate() {
            positions.insert(format!("policy.allowed_zones[{i}]"), c.at(z.span()));
            let field = format!("allowed_zones[{i}]");
            match model::zone_name(&field, z.get_ref()) {
                Err(e) => c.error(z.span(), e.to_string()),
                Ok(zn) if Some(&zn) == name.as_ref() => c.error(
                    z.span(),
                    format!("{field}: a zone cannot list itself ({zn})"),
                ),
                Ok(zn) if allowed_zones.contains(&zn) => {
                    c.error(z.span(), format!("{field}: {zn} is listed twice"));
                }
                Ok(zn) => allowed_zones.push(zn),
            }
        }
    }

    // allowed_host_sockets
    let mut allowed_host_sockets: Vec<String> = Vec::new();
    if let Some(list) = &raw.allowed_host_sockets {
        positions.insert("policy.allowed_host_sockets".to_owned(), c.at(list.span()));
        for (i, p) in list.get_ref().iter().enumerate() {
            positions.insert(format!("policy.allowed_host_sockets[{i}]"), c.at(p.span()));
            let field = format!("allowed_host_sockets[{i}]");
            if let Err(m) = model::validate_abs_path(p.get_ref()) {
                c.error(p.span(), format!("{field}: {m}"));
            } else if allowed_host_sockets.contains(p.get_ref()) {
                c.error(
                    p.span(),
                    format!("{field}: {:?} is listed twice", p.get_ref()),
                );
            } else {
                allowed_host_sockets.push(p.get_ref().clone());
            }
        }
    }

    // membership
    let mut patterns: Vec<CgroupPattern> = Vec::new();
    let mut container_ids: Vec<String> = Vec::new();
    if let Some(m) = &raw.membership {
        for (i, p) in m.get_ref().cgroups.iter().enumerate() {
            let field = format!("membership.cgroups[{i}]");
            match CgroupPattern::new(p.get_ref()) {
                Err(e) => c.error(p.span(), format!("{field}: {e}")),
                Ok(pat) if patterns.contains(&pat) => {
                    c.error(
                        p.span(),
                        format!("{field}: {:?} is listed twice", p.get_ref()),
                    );
                }
                Ok(pat) => patterns.push(pat),
            }
        }
        for (i, id) in m.get_ref().container_ids.iter().enumerate() {
            let field = format!("membership.container_ids[{i}]");
            match rules::container_id_rule(id.get_ref()) {
                Err(e) => c.error(id.span(), format!("{field}: {e}")),
                Ok(v) if container_ids.contains(&v) => {
                    c.error(id.span(), format!("{field}: {v:?} is listed twice"));
                }
                Ok(v) => container_ids.push(v),
            }
        }
    }

    match name {
        Some(name) if c.diagnostics.is_empty() => Ok(ZoneSpec {
            name,
            file: path.to_path_buf(),
            policy: ZonePolicy {
                zone_type,
                mode,
                host_paths,
                allowed_zones,
                allow_ptrace,
                allowed_host_sockets,
            },
            members: MemberRules::new(patterns, container_ids),
            positions,
        }),
        name => Err(Invalid {
            diagnostics: c.diagnostics,
            zone_hint: name.or(stem_hint),
        }),
    }
}

/// Read and validate one file.
pub fn load_file(path: &Path) -> LoadedFile {
    let invalid = |message: String| LoadedFile {
        path: path.to_path_buf(),
        result: Err(Invalid {
            diagnostics: vec![Diagnostic {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message,
            }],
            zone_hint: stem(path).and_then(|s| ZoneName::new(s).ok()),
        }),
    };
    // metadata() follows symlinks: a link to a policy elsewhere is a policy.
    match fs::metadata(path) {
        Ok(md) if !md.is_file() => return invalid("not a regular file".into()),
        Ok(md) if md.len() > MAX_FILE_BYTES => {
            return invalid(format!(
                "the file is {} bytes, the limit is {MAX_FILE_BYTES}",
                md.len()
            ));
        }
        Ok(_) => {}
        Err(e) => return invalid(format!("cannot read: {e}")),
    }
    let text = match fs::read(path) {
        Ok(b) => match String::from_utf8(b) {
            Ok(t) => t,
            Err(e) => {
                return invalid(format!(
                    "not UTF-8 (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ));
            }
        },
        Err(e) => return invalid(format!("cannot read: {e}")),
    };
    LoadedFile {
        path: path.to_path_buf(),
        result: parse(path, &text),
    }
}

/// Is this directory entry a policy file? `*.toml`, not hidden (editors'
/// temporary and swap files start with a dot or end otherwise).
pub fn is_policy_file(name: &str) -> bool {
    name.ends_with(".toml") && !name.starts_with('.') && name.len() > ".toml".len()
}

/// Load every policy file of a directory, sorted by path.
pub fn load_dir(dir: &Path) -> Result<Vec<LoadedFile>, DirError> {
    let dir_err = |source| DirError {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            // A policy file with a non-UTF-8 name cannot name its zone: it
            // is loaded so that it is reported, not silently skipped.
            if entry.path().extension().is_some_and(|e| e == "toml") {
                paths.push(entry.path());
            }
            continue;
        };
        if is_policy_file(name) {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths.iter().map(|p| load_file(p)).collect())
}

/// Make zone names unique: when several valid files name the same zone, the
/// one `incumbent` returns (the file that defines the zone now) keeps it and
/// the others become invalid; without an incumbent all of them do.
pub fn resolve_duplicates(
    files: &mut [LoadedFile],
    incumbent: impl Fn(&ZoneName) -> Option<PathBuf>,
) {
    let mut by_zone: BTreeMap<ZoneName, Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        if let Ok(spec) = &f.result {
            by_zone.entry(spec.name.clone()).or_default().push(i);
        }
    }
    for (zone, idx) in by_zone {
        if idx.len() < 2 {
            continue;
        }
        let owner = incumbent(&zone).filter(|p| idx.iter().any(|&i| &files[i].path == p));
        let names: Vec<String> = idx
            .iter()
            .map(|&i| files[i].path.display().to_string())
            .collect();
        for &i in &idx {
            if owner.as_ref() == Some(&files[i].path) {
                continue;
            }
            let Ok(spec) = &files[i].result else {
                continue;
            };
            let message = match &owner {
                Some(o) => format!("zone {zone} is already defined by {}", o.display()),
                None => format!(
                    "zone {zone} is defined by several files ({}); each zone needs exactly one",
                    names.join(", ")
                ),
            };
            let d = spec.diagnostic(&format!("name: {message}"));
            files[i].result = Err(Invalid {
                diagnostics: vec![d],
                zone_hint: Some(zone.clone()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/etc/syva/policies/web.toml")
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(&p(), text) {
            Ok(_) => Vec::new(),
            Err(i) => i.diagnostics.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_full_policy_parses() {
        let text = r#"
name = "web"
zone_type = "isolated"
mode = "audit"
allowed_zones = ["db", "cache"]
allow_ptrace = true
allowed_host_sockets = ["/dev/log", "/run/systemd/notify"]

[[host_paths]]
path = "/srv/web"
recursive = true

[[host_paths]]
path = "/etc/web.conf"

[membership]
cgroups = ["system.slice/docker-*.scope", "/web.slice"]
container_ids = ["3f2a9c0e1b2d"]
"#;
        let spec = parse(&p(), text).unwrap();
        assert_eq!(spec.name.as_str(), "web");
        assert_eq!(spec.policy.zone_type, ZoneType::Isolated);
        assert_eq!(spec.policy.mode, EnforcementMode::Audit);
        assert!(spec.policy.allow_ptrace);
        assert_eq!(spec.policy.allowed_zones.len(), 2);
        assert_eq!(
            spec.policy.allowed_host_sockets,
            ["/dev/log", "/run/systemd/notify"]
        );
        assert_eq!(
            spec.policy.host_paths,
            vec![
                HostPath {
                    path: "/srv/web".into(),
                    recursive: true
                },
                HostPath {
                    path: "/etc/web.conf".into(),
                    recursive: false
                }
            ]
        );
        assert_eq!(
            spec.members.patterns().collect::<Vec<_>>(),
            ["system.slice/docker-*.scope", "web.slice"]
        );
        assert_eq!(spec.members.container_ids(), ["3f2a9c0e1b2d"]);
    }

    #[test]
    fn the_stem_names_the_zone_and_defaults_apply() {
        let spec = parse(&p(), "allow_ptrace = false\n").unwrap();
        assert_eq!(spec.name.as_str(), "web");
        assert_eq!(spec.policy, ZonePolicy::default());
        assert!(spec.members.is_empty());
        let bad = parse(Path::new("/x/my zone.toml"), "mode = \"audit\"\n").unwrap_err();
        assert!(bad.diagnostics[0].message.contains("file name"), "{bad:?}");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = errors("name = \"web\"\nmode = \n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("/etc/syva/policies/web.toml:2:"), "{e:?}");
    }

    #[test]
    fn unknown_keys_and_bad_values_point_at_themselves() {
        let e = errors("name = \"web\"\nzone_typ = \"isolated\"\n");
        assert!(
            e[0].starts_with("/etc/syva/policies/web.toml:2:1:"),
            "{e:?}"
        );
        assert!(e[0].contains("zone_typ"), "{e:?}");

        let e = errors("mode = \"block\"\n");
        assert!(
            e[0].starts_with("/etc/syva/policies/web.toml:1:8:"),
            "{e:?}"
        );
        assert!(e[0].contains("enforce"), "{e:?}");

        let e = errors("[[host_paths]]\npath = \"/srv\"\nrecursiv = true\n");
        assert!(e[0].contains(":3:1:"), "{e:?}");
    }

    #[test]
    fn every_validation_error_is_reported() {
        let text = "\
name = \"web\"
allowed_zones = [\"db\", \"../x\", \"web\", \"db\"]
host_paths = [{ path = \"relative\" }, { path = \"/ok\" }, { path = \"/ok\" }]
allowed_host_sockets = [\"dev/log\", \"/dev/log\", \"/dev/log\"]
[membership]
cgroups = [\"**\", \"a//b\"]
container_ids = [\"XYZ\"]
";
        let e = errors(text);
        assert_eq!(e.len(), 10, "{e:#?}");
        assert!(
            e.iter().any(|m| m.contains(":2:24: allowed_zones[1]")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains(":2:32: allowed_zones[2]: a zone cannot list itself")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("allowed_zones[3]: db is listed twice")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m.contains(":3:24: host_paths[0].path")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("host_paths[2].path: \"/ok\" is listed twice")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m.contains(":6:12: membership.cgroups[0]")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m.contains("membership.cgroups[1]")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains(":7:18: membership.container_ids[0]")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m
                .contains(":4:25: allowed_host_sockets[0]: \"dev/log\" is not an absolute path")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains(":4:48: allowed_host_sockets[2]: \"/dev/log\" is listed twice")),
            "{e:#?}"
        );
    }

    #[test]
    fn an_empty_file_is_refused() {
        let e = errors("# nothing yet\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("sets nothing"), "{e:?}");
    }

    #[test]
    fn an_invalid_file_still_names_its_zone() {
        let i = parse(&p(), "name = \"api\"\nmode = 3\n").unwrap_err();
        assert_eq!(i.zone_hint.unwrap().as_str(), "api");
        let i = parse(&p(), "this is not toml").unwrap_err();
        assert_eq!(i.zone_hint.unwrap().as_str(), "web");
    }

    #[test]
    fn core_errors_map_to_the_field_position() {
        let text =
            "name = \"web\"\nhost_paths = [\n  { path = \"/a\" },\n  { path = \"/b\" },\n]\n";
        let spec = parse(&p(), text).unwrap();
        let d = spec.diagnostic("policy.host_paths[1].path: host path /b: No such file");
        assert_eq!((d.line, d.column), (4, 12));
        let d = spec.diagnostic("policy.host_paths: /a (1:2/3) is already owned by zone x");
        assert_eq!((d.line, d.column), (2, 14));
        let d = spec.diagnostic("zone limit reached");
        assert_eq!((d.line, d.column), (1, 1));
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 3), (2, 1));
        assert_eq!(line_col("éx", 2), (1, 2));
    }

    #[test]
    fn duplicates_keep_the_incumbent() {
        let mk = |path: &str, text: &str| LoadedFile {
            path: PathBuf::from(path),
            result: parse(Path::new(path), text),
        };
        let mut files = vec![
            mk("/d/a.toml", "name = \"web\"\n"),
            mk("/d/web.toml", "mode = \"audit\"\n"),
        ];
        resolve_duplicates(&mut files, |_| Some(PathBuf::from("/d/web.toml")));
        assert!(files[1].result.is_ok());
        let e = files[0].result.as_ref().unwrap_err();
        assert!(
            e.diagnostics[0]
                .message
                .contains("already defined by /d/web.toml")
        );
        assert_eq!(e.diagnostics[0].line, 1);

        let mut files = vec![
            mk("/d/a.toml", "name = \"web\"\n"),
            mk("/d/web.toml", "mode = \"audit\"\n"),
        ];
        resolve_duplicates(&mut files, |_| None);
        assert!(files.iter().all(|f| f.result.is_err()));
    }

    #[test]
    fn loads_a_directory_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.toml"), "mode = \"audit\"\n").unwrap();
        fs::write(dir.path().join("b.toml"), "mode = \n").unwrap();
        fs::write(dir.path().join(".c.toml"), "garbage").unwrap();
        fs::write(dir.path().join("c.toml~"), "garbage").unwrap();
        fs::write(dir.path().join("README"), "garbage").unwrap();
        let files = load_dir(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert!(files[0].result.is_ok());
        assert!(files[1].result.is_err());
        assert!(load_dir(&dir.path().join("missing")).is_err());
    }
}
