//! How collections run, from the environment like the other settings
//! (`REGISTRY_GC_*`), so that every deployment reads them the same way.

use std::time::Duration;

/// `REGISTRY_GC_GRACE`: blobs and untagged manifests younger than this are
/// kept, whatever refers to them.
pub const GRACE: &str = "REGISTRY_GC_GRACE";
/// `REGISTRY_GC_UPLOAD_MAX_AGE`: uploads nobody appended to for this long
/// are abandoned.
pub const UPLOAD_MAX_AGE: &str = "REGISTRY_GC_UPLOAD_MAX_AGE";
/// `REGISTRY_GC_DELETE_UNTAGGED`: `true` removes manifests no tag reaches.
pub const DELETE_UNTAGGED: &str = "REGISTRY_GC_DELETE_UNTAGGED";
/// `REGISTRY_GC_ENDPOINT`: `on` serves `/_registry/gc` without access
/// control (with access control on, it is served to admins).
pub const ENDPOINT: &str = "REGISTRY_GC_ENDPOINT";
/// `REGISTRY_GC_RESULT_HEADER`: a response header in which the endpoint's
/// step that finishes a run names what it removed (`<blobs> <bytes>`), for
/// a runtime that counts collections (registry-host's metrics) and removes
/// the header.
pub const RESULT_HEADER: &str = "REGISTRY_GC_RESULT_HEADER";

/// An hour, as zot's `gcDelay`: long enough for a client to push a
/// manifest after its layers, short enough to get space back the same day.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// A week, distribution's default for abandoned uploads.
pub const DEFAULT_UPLOAD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The settings of collections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSettings {
    /// Nothing touched more recently than this is collected.
    pub grace: Duration,
    /// Uploads idle for longer are aborted.
    pub upload_max_age: Duration,
    /// Untagged manifests (not reached from a tag, not referring to a kept
    /// manifest) are removed, as distribution's `--delete-untagged`.
    pub delete_untagged: bool,
    /// `/_registry/gc` is served without access control.
    pub endpoint: bool,
    /// Where a finished run's removals are named (`RESULT_HEADER`).
    pub result_header: Option<String>,
}

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            grace: DEFAULT_GRACE,
            upload_max_age: DEFAULT_UPLOAD_MAX_AGE,
            delete_untagged: false,
            endpoint: false,
            result_header: None,
        }
    }
}

impl GcSettings {
    /// Reads the variables through `var`; an error names the variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<GcSettings, String> {
        let mut settings = GcSettings::default();
        if let Some(value) = var(GRACE) {
            settings.grace = duration(GRACE, &value)?;
        }
        if let Some(value) = var(UPLOAD_MAX_AGE) {
            settings.upload_max_age = duration(UPLOAD_MAX_AGE, &value)?;
        }
        if let Some(value) = var(DELETE_UNTAGGED) {
            settings.delete_untagged = flag(DELETE_UNTAGGED, &value, "true", "false")?;
        }
        if let Some(value) = var(ENDPOINT) {
            settings.endpoint = flag(ENDPOINT, &value, "on", "off")?;
        }
        settings.result_header =
            registry_auth::settings::header_name(var(RESULT_HEADER), RESULT_HEADER).map_err(|e| e.0)?;
        Ok(settings)
    }
}

/// Whole seconds (`3600`) or a humantime duration (`1h`, `7days`).
fn duration(name: &str, value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(value)
        .map_err(|e| format!("{name}={value:?} is not a duration (seconds, or e.g. \"1h\", \"7days\"): {e}"))
}

fn flag(name: &str, value: &str, yes: &str, no: &str) -> Result<bool, String> {
    match value.trim() {
        v if v == yes => Ok(true),
        v if v == no || v.is_empty() => Ok(false),
        other => Err(format!("{name}={other:?}: expected {yes:?} or {no:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<GcSettings, String> {
        GcSettings::from_vars(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults_an_hour_and_a_week_and_no_endpoint() {
        let s = read(&[]).unwrap();
        assert_eq!(s.grace, Duration::from_secs(3600));
        assert_eq!(s.upload_max_age, Duration::from_secs(604_800));
        assert!(!s.delete_untagged && !s.endpoint);
    }

    #[test]
    fn seconds_or_humantime_and_flags() {
        let s = read(&[(GRACE, "0"), (UPLOAD_MAX_AGE, "2days"), (DELETE_UNTAGGED, "true"), (ENDPOINT, "on")]).unwrap();
        assert_eq!(s.grace, Duration::ZERO);
        assert_eq!(s.upload_max_age, Duration::from_secs(2 * 86_400));
        assert!(s.delete_untagged && s.endpoint);
        assert_eq!(read(&[(GRACE, "90m")]).unwrap().grace, Duration::from_secs(5400));
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert!(read(&[(GRACE, "soon")]).unwrap_err().contains(GRACE));
        assert!(read(&[(DELETE_UNTAGGED, "yes")]).unwrap_err().contains(DELETE_UNTAGGED));
        assert!(read(&[(ENDPOINT, "true")]).unwrap_err().contains(ENDPOINT));
    }
}
