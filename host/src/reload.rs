//! The settings that SIGHUP reloads: the TLS certificate and key, the
//! access-control files, the mirror settings (`--proxy`), and the config
//! file (config_watch.rs). The current ones are a snapshot behind a lock,
//! swapped whole; each connection takes the TLS configuration it starts
//! with, each request the environment of its component instance.

use crate::access::{self, AuthFiles};
use crate::tls::{self, LoadedTls, TlsFiles};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where the reloadable settings come from, as given at start-up.
pub struct Sources {
    pub tls: Option<TlsFiles>,
    pub auth: AuthFiles,
    /// The pull-through mirrors' settings (`--proxy`).
    pub proxy: Option<PathBuf>,
    /// The component's environment that no reload changes.
    pub fixed_env: Vec<(String, String)>,
    /// The config file, which a reload rereads.
    pub config: Option<crate::config_watch::WatchedConfig>,
}

/// The settings in force.
pub struct Snapshot {
    /// `None` when serving plain HTTP.
    pub tls: Option<Arc<LoadedTls>>,
    /// The access-control part of `env`.
    auth_env: Vec<(String, String)>,
    /// The mirrors' part of `env`.
    proxy_env: Vec<(String, String)>,
    /// The whole environment of each component instance (shared: kept
    /// instances are matched to the settings they were made with).
    pub env: Arc<Vec<(String, String)>>,
}

/// The settings in force, and where to reload them from.
pub struct LiveConfig {
    sources: Sources,
    current: RwLock<Arc<Snapshot>>,
}

impl LiveConfig {
    /// Reads every file for the first time; any error stops the start.
    pub fn load(sources: Sources) -> anyhow::Result<Self> {
        let tls = sources.tls.as_ref().map(tls::load).transpose()?.map(Arc::new);
        let auth_env = access::auth_env(&sources.auth)?;
        let proxy_env = mirror_env(sources.proxy.as_deref())?;
        if let Some((_, text)) = proxy_env.first() {
            tracing::info!("pull-through mirrors: {}", parse_mirrors(text)?.describe());
        }
        let snapshot = snapshot(&sources, tls, auth_env, proxy_env);
        Ok(Self { sources, current: RwLock::new(Arc::new(snapshot)) })
    }

    /// Whether the server speaks TLS (fixed at start-up; reloads change only
    /// the certificate).
    pub fn has_tls(&self) -> bool {
        self.sources.tls.is_some()
    }

    /// The access-control flags as given.
    pub fn auth(&self) -> &AuthFiles {
        &self.sources.auth
    }

    /// The settings in force now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reads the files again. The TLS pair and the access-control files are
    /// taken or refused separately, each as a whole: a file that cannot be
    /// read or checked keeps the previous settings of its part, and says why.
    pub fn reload(&self) {
        if let Some(config) = &self.sources.config {
            config.reread();
        }
        let old = self.current();
        if self.sources.tls.is_none() && self.sources.auth.files().next().is_none() && self.sources.proxy.is_none() {
            tracing::info!("reload: no TLS, access-control or mirror files to read");
            return;
        }
        // Logged only once the new settings are in force: whoever reads
        // these lines (an operator, a test) may rely on them at once.
        let mut done = Vec::new();
        let tls = match (&self.sources.tls, &old.tls) {
            (Some(files), Some(old_tls)) => match tls::load(files) {
                Ok(new) if new.differs_from(old_tls) => {
                    done.push(format!(
                        "reload: TLS certificate {} and key {} changed: new connections use them",
                        files.cert.display(),
                        files.key.display()
                    ));
                    Some(Arc::new(new))
                }
                // Same files: keep the configuration, and its session cache.
                Ok(_) => {
                    done.push(format!(
                        "reload: TLS certificate {} and key {} unchanged",
                        files.cert.display(),
                        files.key.display()
                    ));
                    Some(old_tls.clone())
                }
                Err(e) => {
                    tracing::error!("reload: keeping the previous TLS certificate and key: {e:#}");
                    Some(old_tls.clone())
                }
            },
            _ => None,
        };
        let (auth_env, reloaded) = match access::auth_env(&self.sources.auth) {
            Ok(new) => (new, true),
            Err(e) => {
                tracing::error!("reload: keeping the previous access-control files: {e:#}");
                (old.auth_env.clone(), false)
            }
        };
        let proxy_env = match mirror_env(self.sources.proxy.as_deref()) {
            Ok(new) => {
                if let Some(file) = &self.sources.proxy {
                    let what = if new == old.proxy_env { "unchanged" } else { "changed" };
                    done.push(format!("reload: mirrors: {} {what}", file.display()));
                }
                new
            }
            Err(e) => {
                tracing::error!("reload: keeping the previous mirror settings: {e:#}");
                old.proxy_env.clone()
            }
        };
        let snapshot = Arc::new(snapshot(&self.sources, tls, auth_env, proxy_env));
        if reloaded {
            for (var, path) in self.sources.auth.files() {
                let changed = value(&old.auth_env, var) != value(&snapshot.auth_env, var);
                let what = if changed { "changed" } else { "unchanged" };
                done.push(format!("reload: access control: {} {what}", path.display()));
            }
        }
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = snapshot;
        for line in done {
            tracing::info!("{line}");
        }
    }
}

fn snapshot(
    sources: &Sources,
    tls: Option<Arc<LoadedTls>>,
    auth_env: Vec<(String, String)>,
    proxy_env: Vec<(String, String)>,
) -> Snapshot {
    let env = Arc::new(sources.fixed_env.iter().chain(&auth_env).chain(&proxy_env).cloned().collect());
    Snapshot { tls, auth_env, proxy_env, env }
}

/// The mirror settings for the component (`REGISTRY_PROXY`), checked here
/// so that a mistake stops the start-up, or keeps the old settings at a
/// reload, instead of failing requests.
fn mirror_env(file: Option<&Path>) -> anyhow::Result<Vec<(String, String)>> {
    let Some(file) = file else { return Ok(Vec::new()) };
    let text = std::fs::read_to_string(file).with_context(|| format!("--proxy {}", file.display()))?;
    parse_mirrors(&text).map_err(|e| anyhow::anyhow!("--proxy {}: {e}", file.display()))?;
    Ok(vec![("REGISTRY_PROXY".to_string(), text)])
}

fn parse_mirrors(text: &str) -> anyhow::Result<registry_component::proxy::Mirrors> {
    registry_component::proxy::Mirrors::parse(text).map_err(|e| anyhow::anyhow!("{e}"))
}

fn value<'a>(env: &'a [(String, String)], var: &str) -> Option<&'a str> {
    env.iter().find(|(name, _)| name == var).map(|(_, value)| value.as_str())
}

/// Reloads on every SIGHUP, for as long as the server runs. The handler is
/// installed by the caller before the server announces itself, so that an
/// early SIGHUP never takes the default action (exit).
pub async fn reload_on_hangup(live: Arc<LiveConfig>, mut hangup: tokio::signal::unix::Signal) {
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the TLS certificate, the access-control files and the config file");
        // A few small files: read them off the async threads all the same.
        let live = live.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || live.reload()).await {
            tracing::error!("reload failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    /// Two bcrypt entries for alice (`htpasswd -nbB -C 4`).
    const ONE: &str = "alice:$2y$04$6MC1dw/xwtZW.WY0pd9Qwe2MKLWU/6rQXSwtp50msSwO6rEH4E.Bi\n";
    const TWO: &str = "alice:$2y$04$hCNV/1bLsQ1WfvaG5FMtBOLcMNZrap9SllrHrskcE9izpnXc8Roei\n";
    use super::*;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("registry-host-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_bad_file_keeps_the_previous_settings_and_a_good_one_replaces_them() {
        let dir = temp_dir("auth");
        let htpasswd = dir.join("htpasswd");
        std::fs::write(&htpasswd, ONE).unwrap();
        let sources = Sources {
            tls: None,
            auth: AuthFiles { htpasswd: Some(htpasswd.clone()), ..Default::default() },
            proxy: None,
            fixed_env: vec![("REGISTRY_DELETE_ENABLED".into(), "true".into())],
            config: None,
        };
        let live = LiveConfig::load(sources).unwrap();
        let env = |live: &LiveConfig| live.current().env.to_vec();
        let first = vec![
            ("REGISTRY_DELETE_ENABLED".to_string(), "true".to_string()),
            (access::HTPASSWD.to_string(), ONE.to_string()),
        ];
        assert_eq!(env(&live), first);

        std::fs::write(&htpasswd, b"alice:\xff\n").unwrap();
        live.reload();
        assert_eq!(env(&live), first, "a file that is not UTF-8 is refused");

        std::fs::write(&htpasswd, "alice:$apr1$not$bcrypt\n").unwrap();
        live.reload();
        assert_eq!(env(&live), first, "a line that is not bcrypt is refused");

        std::fs::remove_file(&htpasswd).unwrap();
        live.reload();
        assert_eq!(env(&live), first, "a missing file is refused");

        std::fs::write(&htpasswd, TWO).unwrap();
        live.reload();
        assert_eq!(env(&live)[1], (access::HTPASSWD.to_string(), TWO.to_string()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn mirror_settings_are_reread_and_a_bad_file_keeps_the_previous_ones() {
        let dir = temp_dir("mirrors");
        let file = dir.join("mirrors.toml");
        let first = "[[upstream]]\nprefix = \"docker.io\"\nurl = \"https://registry-1.docker.io\"\n";
        std::fs::write(&file, first).unwrap();
        let sources = Sources {
            tls: None,
            auth: AuthFiles::default(),
            proxy: Some(file.clone()),
            fixed_env: vec![],
            config: None,
        };
        let live = LiveConfig::load(sources).unwrap();
        let proxy = |live: &LiveConfig| value(&live.current().env, "REGISTRY_PROXY").map(str::to_string);
        assert_eq!(proxy(&live).as_deref(), Some(first));

        std::fs::write(&file, "[[upstream]]\nprefix = \"ghcr.io\"\n").unwrap();
        live.reload();
        assert_eq!(proxy(&live).as_deref(), Some(first), "an upstream without a url is refused");

        let second = format!("{first}[[upstream]]\nprefix = \"ghcr.io\"\nurl = \"https://ghcr.io\"\n");
        std::fs::write(&file, &second).unwrap();
        live.reload();
        assert_eq!(proxy(&live), Some(second));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
