//! Access-control settings: the files and names given on the command line,
//! handed to the registry component as environment variables. The component
//! decides who may do what; the host only reads the files (at start-up and on
//! SIGHUP) and passes their contents on.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The access-control flags as given.
#[derive(Clone, Debug, Default)]
pub struct AuthFiles {
    /// Users and their password hashes (`--htpasswd`).
    pub htpasswd: Option<PathBuf>,
    /// Who may do what (`--access`).
    pub policy: Option<PathBuf>,
    /// The key that signs and checks bearer tokens (`--token-key`).
    pub token_key: Option<PathBuf>,
    /// The token service's name (`--auth-service`).
    pub service: Option<String>,
    /// Where clients get tokens (`--auth-realm`).
    pub realm: Option<String>,
}

impl AuthFiles {
    /// Whether anyone is ever refused: users or a policy were given.
    pub fn is_on(&self) -> bool {
        self.htpasswd.is_some() || self.policy.is_some()
    }

    /// The files given, for the log: `htpasswd FILE, policy FILE`.
    pub fn describe(&self) -> String {
        let files = [("htpasswd", &self.htpasswd), ("policy", &self.policy), ("token key", &self.token_key)];
        files
            .iter()
            .filter_map(|(what, path)| path.as_ref().map(|p| format!("{what} {}", p.display())))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Each file given, with the name of the variable its contents go into.
    pub fn files(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        [(HTPASSWD, &self.htpasswd), (POLICY, &self.policy), (TOKEN_KEY, &self.token_key)]
            .into_iter()
            .filter_map(|(var, path)| path.as_deref().map(|p| (var, p)))
    }
}

pub const HTPASSWD: &str = "REGISTRY_AUTH_HTPASSWD";
pub const POLICY: &str = "REGISTRY_AUTH_POLICY";
pub const TOKEN_KEY: &str = "REGISTRY_AUTH_TOKEN_KEY";
pub const SERVICE: &str = "REGISTRY_AUTH_SERVICE";
pub const REALM: &str = "REGISTRY_AUTH_REALM";

/// The component's access-control environment: each file's contents (never
/// its path: the component sees no filesystem) and the service and realm.
/// The one place where the files are read, so the one place to check them
/// before a start or a reload accepts them; an error names the file.
pub fn auth_env(files: &AuthFiles) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    for (var, path) in files.files() {
        let text = read_text(path)?;
        check(var, &text).with_context(|| format!("{}", path.display()))?;
        env.push((var.to_string(), text));
    }
    for (var, value) in [(SERVICE, &files.service), (REALM, &files.realm)] {
        if let Some(value) = value {
            env.push((var.to_string(), value.clone()));
        }
    }
    Ok(env)
}

/// Parses one file with the rules the component applies (`registry-auth`),
/// so that a bad line is refused here, naming the file and the line,
/// instead of failing requests later.
fn check(var: &str, text: &str) -> Result<(), registry_auth::ConfigError> {
    match var {
        HTPASSWD => registry_auth::Htpasswd::parse(text).map(drop),
        POLICY => registry_auth::Policy::parse(text).map(drop),
        TOKEN_KEY => {
            registry_auth::TokenKey::new(text.trim().as_bytes(), registry_auth::settings::DEFAULT_SERVICE).map(drop)
        }
        _ => Ok(()),
    }
}

/// A file's contents, which must be UTF-8 text (environment variables are).
fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read it", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("{}: not UTF-8 text (invalid byte at offset {})", path.display(), e.utf8_error().valid_up_to())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("registry-host-access-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn contents_not_paths_go_to_the_component() {
        let dir = temp_dir("contents");
        let htpasswd = dir.join("htpasswd");
        std::fs::write(&htpasswd, ALICE).unwrap();
        let files = AuthFiles {
            htpasswd: Some(htpasswd),
            realm: Some("https://auth.example/token".into()),
            ..Default::default()
        };
        let env = auth_env(&files).unwrap();
        assert_eq!(
            env,
            vec![
                (HTPASSWD.to_string(), ALICE.to_string()),
                (REALM.to_string(), "https://auth.example/token".to_string()),
            ]
        );
        assert!(files.is_on());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// `htpasswd -nbB -C 4 alice alice-pw`.
    const ALICE: &str = "alice:$2y$04$6MC1dw/xwtZW.WY0pd9Qwe2MKLWU/6rQXSwtp50msSwO6rEH4E.Bi\n";

    #[test]
    fn files_the_component_would_refuse_are_refused_naming_file_and_line() {
        let dir = temp_dir("rules");
        let (htpasswd, policy, key) = (dir.join("htpasswd"), dir.join("policy.toml"), dir.join("key"));
        std::fs::write(&htpasswd, format!("{ALICE}bob:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")).unwrap();
        std::fs::write(&policy, "admins = [\"alice\"]\nunknown = 1\n").unwrap();
        std::fs::write(&key, "short\n").unwrap();
        for (files, expect) in [
            (AuthFiles { htpasswd: Some(htpasswd.clone()), ..Default::default() }, "line 2"),
            (AuthFiles { policy: Some(policy.clone()), ..Default::default() }, "unknown"),
            (AuthFiles { policy: Some(htpasswd.clone()), token_key: Some(key.clone()), ..Default::default() }, "line"),
            (AuthFiles { htpasswd: None, token_key: Some(key.clone()), ..Default::default() }, "32"),
        ] {
            let err = format!("{:#}", auth_env(&files).unwrap_err());
            assert!(err.contains(expect) && err.contains(&dir.display().to_string()), "{err}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_utf8_is_named() {
        let dir = temp_dir("utf8");
        let policy = dir.join("policy");
        std::fs::write(&policy, b"ok\n\xff\xfe").unwrap();
        let files = AuthFiles { policy: Some(policy.clone()), ..Default::default() };
        let err = format!("{:#}", auth_env(&files).unwrap_err());
        assert!(err.contains(&policy.display().to_string()) && err.contains("offset 3"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_files_no_access_control() {
        let files = AuthFiles { token_key: None, service: Some("registry".into()), ..Default::default() };
        assert!(!files.is_on());
        assert_eq!(auth_env(&files).unwrap(), vec![(SERVICE.to_string(), "registry".to_string())]);
    }
}
