//! The policy file (TOML): which users, groups and anonymous clients may
//! pull, push and delete on which repositories.
//!
//! ```toml
//! # May do everything on every repository, and list the whole catalog.
//! admins = ["root"]
//!
//! [groups]
//! team-a = ["alice", "bob"]
//!
//! # Clients without credentials: nothing unless listed (a public mirror).
//! [anonymous]
//! pull = ["library/*", "public/**"]
//!
//! # Each rule grants `actions` on the repositories matching any of
//! # `repositories` to `users` and the members of `groups`. "*" among the
//! # users stands for every user of the htpasswd file.
//! [[rules]]
//! repositories = ["team-a/**"]
//! groups = ["team-a"]
//! actions = ["pull", "push", "delete"]
//!
//! [[rules]]
//! repositories = ["library/*"]
//! users = ["*"]
//! actions = ["pull"]
//! ```
//!
//! Grants add up: a user may do on a repository the union of what every
//! matching rule gives them. Nothing is denied explicitly; what no rule
//! grants is refused. Without a policy file, every user of the htpasswd
//! file may do everything and anonymous clients nothing (distribution's
//! htpasswd behaviour).

use crate::actions::Actions;
use crate::pattern::Pattern;
use crate::ConfigError;
use serde::Deserialize;
use std::collections::HashMap;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A client without credentials.
    Anonymous,
    /// A user of the htpasswd file, signed in.
    User(&'a str),
}

/// A parsed policy.
#[derive(Debug, Clone)]
pub struct Policy {
    admins: Vec<String>,
    anonymous: Vec<(Pattern, Actions)>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    repositories: Vec<Pattern>,
    /// Named users and group members, expanded; `None`: every user.
    users: Option<Vec<String>>,
    actions: Actions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default)]
    groups: HashMap<String, Vec<String>>,
    #[serde(default)]
    anonymous: AnonymousSection,
    #[serde(default)]
    rules: Vec<RuleSection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AnonymousSection {
    #[serde(default)]
    pull: Vec<String>,
    #[serde(default)]
    push: Vec<String>,
    #[serde(default)]
    delete: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSection {
    repositories: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    actions: Vec<String>,
}

impl Policy {
    /// Every user may do everything; anonymous clients nothing.
    pub fn users_may_do_everything() -> Policy {
        let every =
            Rule { repositories: vec![Pattern::parse("**").expect("valid")], users: None, actions: Actions::ALL };
        Policy { admins: Vec::new(), anonymous: Vec::new(), rules: vec![every] }
    }

    /// Parses the policy file's text.
    pub fn parse(text: &str) -> Result<Policy, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError(format!("policy file: {e}")))?;
        let mut anonymous = Vec::new();
        for (patterns, action) in [
            (&file.anonymous.pull, Actions::PULL),
            (&file.anonymous.push, Actions::PUSH),
            (&file.anonymous.delete, Actions::DELETE),
        ] {
            for text in patterns {
                anonymous.push((pattern(text, "[anonymous]")?, action));
            }
        }
        let mut rules = Vec::new();
        for (index, section) in file.rules.iter().enumerate() {
            let place = format!("[[rules]] number {}", index + 1);
            let repositories = section.repositories.iter().map(|p| pattern(p, &place)).collect::<Result<_, _>>()?;
            if section.repositories.is_empty() {
                return Err(ConfigError(format!("policy file, {place}: `repositories` is empty")));
            }
            let mut actions = Actions::NONE;
            for word in &section.actions {
                let action = Actions::parse_one(word).ok_or_else(|| {
                    ConfigError(format!("policy file, {place}: unknown action {word:?} (pull, push, delete or \"*\")"))
                })?;
                actions = actions.union(action);
            }
            let users = if section.users.iter().any(|u| u == "*") {
                None
            } else {
                let mut users = section.users.clone();
                for group in &section.groups {
                    let members = file
                        .groups
                        .get(group)
                        .ok_or_else(|| ConfigError(format!("policy file, {place}: no group named {group:?}")))?;
                    users.extend(members.iter().cloned());
                }
                if users.is_empty() {
                    return Err(ConfigError(format!("policy file, {place}: names no users and no groups")));
                }
                Some(users)
            };
            rules.push(Rule { repositories, users, actions });
        }
        Ok(Policy { admins: file.admins, anonymous, rules })
    }

    /// Whether `subject` is an admin.
    pub fn is_admin(&self, subject: Subject<'_>) -> bool {
        matches!(subject, Subject::User(user) if self.admins.iter().any(|a| a == user))
    }

    /// What `subject` may do on the repository `name`.
    pub fn granted(&self, subject: Subject<'_>, name: &str) -> Actions {
        match subject {
            Subject::Anonymous => self
                .anonymous
                .iter()
                .filter(|(pattern, _)| pattern.matches(name))
                .fold(Actions::NONE, |acc, (_, action)| acc.union(*action)),
            Subject::User(_) if self.is_admin(subject) => Actions::ALL,
            Subject::User(user) => self
                .rules
                .iter()
                .filter(|rule| rule.users.as_ref().is_none_or(|users| users.iter().any(|u| u == user)))
                .filter(|rule| rule.repositories.iter().any(|p| p.matches(name)))
                .fold(Actions::NONE, |acc, rule| acc.union(rule.actions)),
        }
    }

    /// Whether `subject` may pull every repository there is or will be: an
    /// admin, or a grant of pull on `**`. Such a caller may mount a blob
    /// without naming its source (nothing it could learn is hidden from it).
    pub fn may_pull_everything(&self, subject: Subject<'_>) -> bool {
        let everywhere = |p: &Pattern| p.as_str() == "**";
        match subject {
            Subject::Anonymous => self.anonymous.iter().any(|(p, a)| everywhere(p) && a.contains(Actions::PULL)),
            Subject::User(_) if self.is_admin(subject) => true,
            Subject::User(user) => self.rules.iter().any(|rule| {
                rule.actions.contains(Actions::PULL)
                    && rule.repositories.iter().any(everywhere)
                    && rule.users.as_ref().is_none_or(|users| users.iter().any(|u| u == user))
            }),
        }
    }

    /// Whether `subject` may pull anything at all: the catalog is then
    /// worth asking for (it lists only what `subject` may pull).
    pub fn may_pull_somewhere(&self, subject: Subject<'_>) -> bool {
        match subject {
            Subject::Anonymous => self.anonymous.iter().any(|(_, a)| a.contains(Actions::PULL)),
            Subject::User(_) if self.is_admin(subject) => true,
            Subject::User(user) => self.rules.iter().any(|rule| {
                rule.actions.contains(Actions::PULL)
                    && rule.users.as_ref().is_none_or(|users| users.iter().any(|u| u == user))
            }),
        }
    }
}

fn pattern(text: &str, place: &str) -> Result<Pattern, ConfigError> {
    Pattern::parse(text).map_err(|e| ConfigError(format!("policy file, {place}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
admins = ["root"]

[groups]
team-a = ["alice", "bob"]

[anonymous]
pull = ["library/*", "public/**"]

[[rules]]
repositories = ["team-a/**"]
groups = ["team-a"]
actions = ["pull", "push", "delete"]

[[rules]]
repositories = ["library/*"]
users = ["*"]
actions = ["pull"]

[[rules]]
repositories = ["library/*"]
users = ["carol"]
actions = ["push"]
"#;

    const PULL_PUSH: Actions = Actions::PULL.union(Actions::PUSH);

    #[test]
    fn grants_add_up_per_user_and_repository() {
        let p = Policy::parse(EXAMPLE).unwrap();
        let alice = Subject::User("alice");
        let carol = Subject::User("carol");
        assert_eq!(p.granted(alice, "team-a/app"), Actions::ALL);
        assert_eq!(p.granted(alice, "team-a"), Actions::ALL);
        assert_eq!(p.granted(alice, "library/busybox"), Actions::PULL);
        assert_eq!(p.granted(alice, "team-b/app"), Actions::NONE);
        assert_eq!(p.granted(carol, "library/busybox"), PULL_PUSH);
        assert_eq!(p.granted(carol, "team-a/app"), Actions::NONE);
        assert_eq!(p.granted(Subject::User("root"), "anything/at/all"), Actions::ALL);
        // A user no rule names gets what "*" rules give.
        assert_eq!(p.granted(Subject::User("dave"), "library/x"), Actions::PULL);
    }

    #[test]
    fn anonymous_gets_only_what_is_listed() {
        let p = Policy::parse(EXAMPLE).unwrap();
        assert_eq!(p.granted(Subject::Anonymous, "library/busybox"), Actions::PULL);
        assert_eq!(p.granted(Subject::Anonymous, "public/a/b"), Actions::PULL);
        assert_eq!(p.granted(Subject::Anonymous, "team-a/app"), Actions::NONE);
        assert!(p.may_pull_somewhere(Subject::Anonymous));
        let closed = Policy::parse("admins = [\"root\"]\n").unwrap();
        assert_eq!(closed.granted(Subject::Anonymous, "library/busybox"), Actions::NONE);
        assert!(!closed.may_pull_somewhere(Subject::Anonymous));
        assert!(!closed.may_pull_somewhere(Subject::User("alice")));
        assert!(closed.may_pull_somewhere(Subject::User("root")));
    }

    #[test]
    fn pulling_everything_takes_an_admin_or_a_grant_on_double_star() {
        let p = Policy::parse(EXAMPLE).unwrap();
        assert!(p.may_pull_everything(Subject::User("root")));
        assert!(!p.may_pull_everything(Subject::User("alice")));
        assert!(!p.may_pull_everything(Subject::Anonymous));
        assert!(Policy::users_may_do_everything().may_pull_everything(Subject::User("anyone")));
        let open = Policy::parse("[anonymous]\npull = [\"**\"]\n").unwrap();
        assert!(open.may_pull_everything(Subject::Anonymous));
    }

    #[test]
    fn without_a_file_users_may_do_everything() {
        let p = Policy::users_may_do_everything();
        assert_eq!(p.granted(Subject::User("anyone"), "a/b/c"), Actions::ALL);
        assert_eq!(p.granted(Subject::Anonymous, "a"), Actions::NONE);
    }

    #[test]
    fn refuses_mistakes_with_where_they_are() {
        let unknown_key = Policy::parse("admin = [\"root\"]\n").unwrap_err().0;
        assert!(unknown_key.contains("admin") && unknown_key.contains("line 1"), "{unknown_key}");
        let bad_action =
            Policy::parse("[[rules]]\nrepositories = [\"a\"]\nusers = [\"x\"]\nactions = [\"write\"]\n").unwrap_err().0;
        assert!(bad_action.contains("write") && bad_action.contains("number 1"), "{bad_action}");
        let no_group =
            Policy::parse("[[rules]]\nrepositories = [\"a\"]\ngroups = [\"g\"]\nactions = [\"pull\"]\n").unwrap_err().0;
        assert!(no_group.contains("no group named \"g\""), "{no_group}");
        let nobody = Policy::parse("[[rules]]\nrepositories = [\"a\"]\nactions = [\"pull\"]\n").unwrap_err().0;
        assert!(nobody.contains("no users"), "{nobody}");
        assert!(Policy::parse("[anonymous]\npull = [\"a/***\"]\n").is_err());
        assert!(Policy::parse("[anonymous]\nread = [\"a\"]\n").is_err());
    }
}
