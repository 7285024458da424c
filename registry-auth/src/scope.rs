//! Docker's token scopes: what a client asks the token endpoint for, and
//! what a 401 challenge tells it to ask for. `repository:<name>:<actions>`
//! (a resource class in brackets after `repository` is accepted and
//! ignored, as `repository(plugin)`), and `registry:catalog:*`.

use crate::actions::Actions;

/// One scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Actions on one repository.
    Repository {
        /// The repository name.
        name: String,
        /// The actions.
        actions: Actions,
    },
    /// Listing the catalog (`registry:catalog:*`).
    Catalog,
}

impl Scope {
    /// Parses one scope; `None` for kinds this registry has no use for.
    pub fn parse(text: &str) -> Option<Scope> {
        let (kind, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        match kind {
            "repository" if !name.is_empty() => {
                Some(Scope::Repository { name: name.to_string(), actions: Actions::parse_list(actions) })
            }
            "registry" if name == "catalog" => Some(Scope::Catalog),
            _ => None,
        }
    }

    /// Every scope of a request: repeated `scope` parameters, each of which
    /// may hold several scopes separated by spaces (the OAuth2 form).
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        values.into_iter().flat_map(|v| v.split(' ')).filter(|s| !s.is_empty()).filter_map(Scope::parse).collect()
    }

    /// The scope as a challenge or a token request spells it.
    pub fn to_scope_string(&self) -> String {
        match self {
            Scope::Repository { name, actions } => format!("repository:{name}:{}", actions.names().join(",")),
            Scope::Catalog => "registry:catalog:*".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_clients_send() {
        assert_eq!(
            Scope::parse("repository:library/busybox:pull,push"),
            Some(Scope::Repository { name: "library/busybox".into(), actions: Actions::PULL.union(Actions::PUSH) })
        );
        assert_eq!(
            Scope::parse("repository(plugin):a/b:pull"),
            Some(Scope::Repository { name: "a/b".into(), actions: Actions::PULL })
        );
        assert_eq!(Scope::parse("repository:a:*"), Some(Scope::Repository { name: "a".into(), actions: Actions::ALL }));
        assert_eq!(Scope::parse("registry:catalog:*"), Some(Scope::Catalog));
        assert_eq!(Scope::parse("repository::pull"), None);
        assert_eq!(Scope::parse("something"), None);
        assert_eq!(Scope::parse("registry:other:*"), None);
    }

    #[test]
    fn a_form_value_holds_several_scopes() {
        let scopes = Scope::parse_all(["repository:a:pull repository:b:push", "registry:catalog:*"]);
        assert_eq!(scopes.len(), 3);
        assert_eq!(scopes[1].to_scope_string(), "repository:b:push");
        assert_eq!(scopes[2].to_scope_string(), "registry:catalog:*");
    }
}
