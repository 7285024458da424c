//! The config file after start-up: SIGHUP rereads it. Its `log-level`
//! applies at once (when no flag or variable overrides it); every other
//! key that changed is named in a warning, since it takes a restart (the
//! files that TLS and access-control keys name are reread on SIGHUP, but
//! not a change of which files they are).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The config file, as last read.
pub struct WatchedConfig {
    path: PathBuf,
    /// Whether the file's `log-level` is the one in force.
    level_from_file: bool,
    /// The log level in force.
    level: Mutex<String>,
    /// The file's keys when last read.
    seen: Mutex<Vec<(String, toml::Value)>>,
}

impl WatchedConfig {
    /// The file `path` as read at start-up, with the log level in force.
    pub fn new(path: &Path, level_from_file: bool, level: &str) -> anyhow::Result<Self> {
        let seen = crate::config::keys_in(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            level_from_file,
            level: Mutex::new(level.to_string()),
            seen: Mutex::new(seen),
        })
    }

    /// Rereads the file: applies its log level, warns of the rest that
    /// changed. A file that cannot be read or parsed changes nothing.
    pub fn reread(&self) {
        let file = self.path.display();
        let keys = match crate::config::keys_in(&self.path) {
            Ok(keys) => keys,
            Err(e) => {
                tracing::error!("reload: keeping the settings of {file}: {e:#}");
                return;
            }
        };
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in changed(&seen, &keys) {
            if key == "log-level" {
                continue;
            }
            tracing::warn!("reload: `{key}` changed in {file}: it takes effect at the next restart");
        }
        if self.level_from_file {
            let level = match keys.iter().find(|(k, _)| k == "log-level").map(|(_, v)| v) {
                None => Some("info".to_string()),
                Some(toml::Value::String(level)) => Some(level.clone()),
                Some(_) => {
                    tracing::error!("reload: {file}: `log-level` takes a string; keeping the log level");
                    None
                }
            };
            if let Some(level) = level {
                self.apply_level(level);
            }
        }
        *seen = keys;
    }

    /// Applies `level` if it changed, and says so (at warn, so that the
    /// line is seen whichever way the level moves).
    fn apply_level(&self, level: String) {
        let mut current = self.level.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if level == *current {
            tracing::info!("reload: log level {level} unchanged");
            return;
        }
        tracing::warn!("reload: log level {} -> {level} ({})", *current, self.path.display());
        match crate::log_level::set(&level) {
            Ok(()) => *current = level,
            Err(e) => tracing::error!("reload: keeping log level {}: {level:?}: {e}", *current),
        }
    }
}

/// The keys set, removed or given another value between `old` and `new`,
/// in order.
fn changed(old: &[(String, toml::Value)], new: &[(String, toml::Value)]) -> Vec<String> {
    let value = |keys: &[(String, toml::Value)], key: &str| keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let mut names: Vec<String> = old.iter().chain(new).map(|(k, _)| k.clone()).collect();
    names.sort();
    names.dedup();
    names.into_iter().filter(|k| value(old, k) != value(new, k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(String, toml::Value)> {
        toml::from_str::<toml::Table>(text).unwrap().into_iter().collect()
    }

    #[test]
    fn set_removed_and_changed_keys_are_named() {
        let old = keys("listen = \"0.0.0.0:5080\"\nhtpasswd = \"/a\"\nlog-level = \"info\"\n");
        let new = keys("listen = \"0.0.0.0:5080\"\nlog-level = \"warn\"\ndata-dir = \"/d\"\n");
        assert_eq!(changed(&old, &new), ["data-dir", "htpasswd", "log-level"]);
        assert!(changed(&new, &new).is_empty());
    }
}
