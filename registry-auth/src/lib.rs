//! Access control of the registry, in plain Rust: who the users are
//! (`htpasswd`), what each may do where (`policy`), what a client asks for
//! and is granted (`scope`), and the signed tokens that carry a grant
//! (`token`). `settings` gathers them from the environment the registry
//! component is given. The component enforces them per request; the host
//! parses the same files at start-up to refuse bad ones early.

#![deny(missing_docs)]

pub mod actions;
pub mod htpasswd;
pub mod pattern;
pub mod policy;
pub mod scope;
pub mod settings;
pub mod token;

pub use actions::Actions;
pub use htpasswd::Htpasswd;
pub use policy::{Policy, Subject};
pub use scope::Scope;
pub use settings::Settings;
pub use token::{Claims, TokenKey};

/// A configuration file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}
