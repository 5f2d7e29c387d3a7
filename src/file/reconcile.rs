//! Zones: what the directory says vs what core holds for source "file".
//! Creates, updates and removes zones so core ends up holding exactly the
//! directory's zones, never touches zones of other sources, and keeps the
//! last valid version of a zone whose file became invalid.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use tonic::transport::Channel;

use crate::model::{ZoneName, view::ZoneState};
use crate::proto::{self, SyvaCoreClient, pb};

use super::SOURCE;
use super::load::{self, DirError, LoadedFile, ZoneSpec};
use super::report::Problem;
use super::rpc::{self, CoreDown};
use super::rules::RuleSet;

/// The zones this adapter has in force and where they come from.
#[derive(Debug, Default)]
pub struct Zones {
    /// The last version of each zone that core accepted.
    in_force: BTreeMap<ZoneName, ZoneSpec>,
    /// Which zone each file last defined (validly).
    file_zone: BTreeMap<PathBuf, ZoneName>,
}

/// The outcome of one pass over the zones.
#[derive(Debug, Default)]
pub struct ZonePass {
    pub problems: Vec<Problem>,
    /// Zones whose file is present but invalid (or refused by core): they
    /// stay as they are.
    pub held: BTreeSet<ZoneName>,
    /// Zones to remove once their members are detached.
    pub removals: Vec<ZoneName>,
    pub files_valid: usize,
    pub files_invalid: usize,
}

impl Zones {
    /// Membership rules of the zones in force, minus those being removed.
    pub fn rules(&self, except: &[ZoneName]) -> RuleSet {
        RuleSet::new(
            self.in_force
                .iter()
                .filter(|(z, _)| !except.contains(z))
                .map(|(z, s)| (z.clone(), s.members.clone())),
        )
    }

    /// Held zones whose rules are unknown (the adapter started with their
    /// file already invalid): their members must be left alone.
    pub fn frozen(&self, pass: &ZonePass) -> BTreeSet<ZoneName> {
        pass.held
            .iter()
            .filter(|z| !self.in_force.contains_key(*z))
            .cloned()
            .collect()
    }

    pub fn count(&self) -> usize {
        self.in_force.len()
    }

    /// Register every zone the directory describes (and re-register held
    /// zones' last valid version where core lost or changed it); compute
    /// which zones of ours must go.
    pub async fn apply(
        &mut self,
        api: &mut SyvaCoreClient<Channel>,
        loaded: Result<Vec<LoadedFile>, DirError>,
    ) -> Result<ZonePass, CoreDown> {
        let mut pass = ZonePass::default();
        let actual = list_zones(api).await?;
        let mut files = match loaded {
            Ok(f) => f,
            Err(e) => {
                // Never conclude "no files" from a directory we cannot read:
                // everything stays as it is until it can be read again.
                pass.problems
                    .push(Problem::new(e.path.display().to_string(), e.to_string()));
                pass.held = self.in_force.keys().cloned().collect();
                pass.held.extend(
                    actual
                        .iter()
                        .filter(|(_, z)| z.source == SOURCE)
                        .filter_map(|(n, _)| ZoneName::new(n.clone()).ok()),
                );
                let known: Vec<ZoneSpec> = self.in_force.values().cloned().collect();
                for spec in &known {
                    self.register(api, &actual, spec, &mut pass, true).await?;
                }
                return Ok(pass);
            }
        };
        let present: BTreeSet<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
        self.file_zone.retain(|p, _| present.contains(p));
        let file_zone = self.file_zone.clone();
        let in_force = &self.in_force;
        load::resolve_duplicates(&mut files, |z| {
            in_force
                .get(z)
                .map(|s| s.file.clone())
                .filter(|f| file_zone.get(f) == Some(z))
        });

        let mut desired: BTreeMap<ZoneName, ZoneSpec> = BTreeMap::new();
        for f in files {
            match f.result {
                Ok(spec) => {
                    pass.files_valid += 1;
                    desired.insert(spec.name.clone(), spec);
                }
                Err(invalid) => {
                    pass.files_invalid += 1;
                    pass.problems.extend(
                        invalid
                            .diagnostics
                            .iter()
                            .map(|d| Problem::new(d.location(), d.message.clone())),
                    );
                    let zone = self.file_zone.get(&f.path).cloned().or(invalid.zone_hint);
                    if let Some(z) = zone {
                        pass.held.insert(z);
                    }
                }
            }
        }
        // A valid file wins over a held guess for the same zone.
        pass.held.retain(|z| !desired.contains_key(z));

        for spec in desired.values() {
            if self.register(api, &actual, spec, &mut pass, false).await? {
                self.file_zone.insert(spec.file.clone(), spec.name.clone());
            }
        }
        for z in pass.held.clone() {
            if let Some(spec) = self.in_force.get(&z).cloned() {
                self.register(api, &actual, &spec, &mut pass, true).await?;
            }
        }

        for (name, z) in &actual {
            if z.source != SOURCE {
                continue;
            }
            let Ok(name) = ZoneName::new(name.clone()) else {
                continue;
            };
            if desired.contains_key(&name) || pass.held.contains(&name) {
                continue;
            }
            if crate::proto::zone_state_from_pb(z.state) == ZoneState::Draining {
                continue; // removal already under way
            }
            pass.removals.push(name);
        }
        // Forget zones no file describes any more (removed below).
        self.in_force
            .retain(|z, _| desired.contains_key(z) || pass.held.contains(z));
        Ok(pass)
    }

    /// Register one zone unless core already holds exactly this version.
    /// Returns whether the spec is in force. A refusal is a problem about
    /// the file; the zone then keeps its previous version (core changes
    /// nothing on error) and is held.
    async fn register(
        &mut self,
        api: &mut SyvaCoreClient<Channel>,
        actual: &BTreeMap<String, pb::Zone>,
        spec: &ZoneSpec,
        pass: &mut ZonePass,
        held: bool,
    ) -> Result<bool, CoreDown> {
        if let Some(z) = actual.get(spec.name.as_str()) {
            if z.source != SOURCE {
                let d = spec.diagnostic(&format!(
                    "name: zone {} exists and is managed by source {:?}; syva file leaves it \
                     alone (rename the zone or remove it there)",
                    spec.name, z.source
                ));
                pass.problems.push(Problem::new(d.location(), d.message));
                pass.held.insert(spec.name.clone());
                return Ok(false);
            }
            let same = z
                .policy
                .as_ref()
                .and_then(|p| proto::policy_from_pb("policy", p).ok())
                .is_some_and(|p| p == spec.policy);
            if same {
                if !held {
                    self.in_force.insert(spec.name.clone(), spec.clone());
                }
                return Ok(true);
            }
        }
        let req = pb::RegisterZoneRequest {
            name: spec.name.to_string(),
            policy: Some(proto::policy_to_pb(&spec.policy)),
            source: SOURCE.into(),
        };
        match rpc::call(api.register_zone(req)).await {
            Ok(r) => {
                tracing::info!(
                    zone = %spec.name,
                    file = %spec.file.display(),
                    created = r.created,
                    protected_inodes = r.protected_inodes,
                    "zone applied"
                );
                metrics::counter!("syva_file_zone_applies_total", "result" => "ok").increment(1);
                if !held {
                    self.in_force.insert(spec.name.clone(), spec.clone());
                }
                Ok(true)
            }
            Err(e) => {
                let status = e.refused()?;
                metrics::counter!("syva_file_zone_applies_total", "result" => "refused")
                    .increment(1);
                let d = spec.diagnostic(status.message());
                let in_core = actual
                    .get(spec.name.as_str())
                    .is_some_and(|z| z.source == SOURCE);
                let kept = if self.in_force.contains_key(&spec.name) || in_core {
                    "the previous version stays in force"
                } else {
                    "the zone is not in force"
                };
                pass.problems.push(Problem::new(
                    d.location(),
                    format!(
                        "core refused the zone ({:?}): {}; {kept}",
                        status.code(),
                        d.message
                    ),
                ));
                pass.held.insert(spec.name.clone());
                Ok(false)
            }
        }
    }

    /// Remove zones no file describes any more (after their members were
    /// detached). With drain: members another source attached keep the
    /// zone enforcing until they leave, and it refuses new ones.
    pub async fn remove(
        &mut self,
        api: &mut SyvaCoreClient<Channel>,
        removals: &[ZoneName],
    ) -> Result<Vec<Problem>, CoreDown> {
        let mut problems = Vec::new();
        for name in removals {
            let req = pb::RemoveZoneRequest {
                name: name.to_string(),
                drain: true,
                source: SOURCE.into(),
            };
            match rpc::call(api.remove_zone(req)).await {
                Ok(r) => {
                    let state = proto::zone_state_from_pb(r.state);
                    tracing::info!(zone = %name, state = state.as_str(), "zone removed (its file is gone)");
                    metrics::counter!("syva_file_zone_removals_total", "result" => "ok")
                        .increment(1);
                    self.in_force.remove(name);
                }
                Err(e) => {
                    let status = e.refused()?;
                    if status.code() == tonic::Code::NotFound {
                        self.in_force.remove(name);
                        continue;
                    }
                    metrics::counter!("syva_file_zone_removals_total", "result" => "refused")
                        .increment(1);
                    problems.push(Problem::new(
                        format!("zone {name}"),
                        format!(
                            "its file is gone but core refused to remove it ({:?}): {}",
                            status.code(),
                            status.message()
                        ),
                    ));
                }
            }
        }
        Ok(problems)
    }
}

async fn list_zones(
    api: &mut SyvaCoreClient<Channel>,
) -> Result<BTreeMap<String, pb::Zone>, CoreDown> {
    match rpc::call(api.list_zones(pb::ListZonesRequest {})).await {
        Ok(r) => Ok(r.zones.into_iter().map(|z| (z.name.clone(), z)).collect()),
        Err(e) => {
            let s = e.refused()?;
            // ListZones has no arguments to refuse: treat any error as core
            // being unusable rather than as "no zones" (which would recreate
            // everything or, worse, conclude nothing needs removing).
            Err(CoreDown(format!("ListZones failed: {}", s.message())))
        }
    }
}
