//! The actions a grant names: `pull`, `push` and `delete`, as Docker's
//! token scopes spell them (`*` is all three).

/// A set of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    /// Read manifests, blobs, tags and referrers.
    pub const PULL: Actions = Actions(1);
    /// Upload blobs and push manifests and tags.
    pub const PUSH: Actions = Actions(2);
    /// Delete manifests, tags and blobs.
    pub const DELETE: Actions = Actions(4);
    /// Everything.
    pub const ALL: Actions = Actions(7);

    /// The action named `word` (`pull`, `push`, `delete` or `*`).
    pub fn parse_one(word: &str) -> Option<Actions> {
        match word {
            "pull" => Some(Actions::PULL),
            "push" => Some(Actions::PUSH),
            "delete" => Some(Actions::DELETE),
            "*" => Some(Actions::ALL),
            _ => None,
        }
    }

    /// The actions of a comma-separated list; unknown words are ignored, as
    /// distribution's token servers do (a client may ask for more kinds).
    pub fn parse_list(list: &str) -> Actions {
        list.split(',').filter_map(|w| Actions::parse_one(w.trim())).fold(Actions::NONE, Actions::union)
    }

    /// Both sets.
    pub const fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// What both sets hold.
    pub const fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    /// Whether every action of `other` is in `self`.
    pub const fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names, in the order `pull`, `push`, `delete`.
    pub fn names(self) -> Vec<&'static str> {
        [(Actions::PULL, "pull"), (Actions::PUSH, "push"), (Actions::DELETE, "delete")]
            .into_iter()
            .filter(|(a, _)| self.contains(*a))
            .map(|(_, name)| name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_ignores_unknown_words() {
        assert_eq!(Actions::parse_list("pull,push"), Actions::PULL.union(Actions::PUSH));
        assert_eq!(Actions::parse_list("*"), Actions::ALL);
        assert_eq!(Actions::parse_list("pull, metadata-read"), Actions::PULL);
        assert_eq!(Actions::parse_list(""), Actions::NONE);
        assert_eq!(Actions::ALL.names(), ["pull", "push", "delete"]);
        assert!(Actions::ALL.contains(Actions::DELETE));
        assert!(!Actions::PULL.contains(Actions::PULL.union(Actions::PUSH)));
        assert!(Actions::PULL.contains(Actions::NONE));
    }
}
