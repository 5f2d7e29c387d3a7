//! Pure domain types shared by every role: zone names, ids, policies and the
//! JSON views printed by `syva ctl --json` and served by `syva api`.
//! No I/O, no tokio, tonic or libbpf here (deps: std, serde).

pub mod view;
pub mod zone;

pub use zone::{
    CgroupId, EnforcementMode, FileKey, HostPath, MAX_ZONE_NAME_LEN, ZoneId, ZoneName,
    ZoneNameError, ZonePolicy, ZoneType, validate_abs_path,
};

/// Bad input, naming the offending field (e.g. `policy.host_paths[2].path`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Validate a zone name, naming `field` in the error.
pub fn zone_name(field: &str, value: &str) -> Result<ZoneName, FieldError> {
    ZoneName::new(value).map_err(|e| FieldError::new(field, format!("{value:?} {e}")))
}
