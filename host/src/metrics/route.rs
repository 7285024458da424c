//! What a request path names: its route, as the metrics label it (a fixed
//! set of names, never the repository, so that the number of series is
//! bounded), and its repository, for the access line.

/// The route `path` (without its query) belongs to.
pub fn route_of(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/v2/" || path == "/v2" {
        return "base";
    }
    if path == "/token" {
        return "token";
    }
    if path.starts_with("/_registry/gc") {
        return "gc";
    }
    let Some(rest) = path.strip_prefix("/v2/") else { return "other" };
    if rest == "_catalog" {
        return "catalog";
    }
    if rest.ends_with("/tags/list") {
        "tags"
    } else if rest.contains("/blobs/uploads") {
        "upload"
    } else if rest.contains("/blobs/") {
        "blob"
    } else if rest.contains("/manifests/") {
        "manifest"
    } else if rest.contains("/referrers/") {
        "referrers"
    } else {
        "other"
    }
}

/// The repository a request path names, if any: what lies between `/v2/`
/// and the API's own path segments.
pub fn repository_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/blobs/", "/manifests/", "/tags/list", "/referrers/"]
        .iter()
        .filter_map(|marker| rest.find(marker))
        .min()
        .map(|end| &rest[..end])
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::{repository_of, route_of};

    #[test]
    fn routes_name_no_repository() {
        assert_eq!(route_of("/v2/"), "base");
        assert_eq!(route_of("/token?service=x&scope=y"), "token");
        assert_eq!(route_of("/v2/_catalog?n=10"), "catalog");
        assert_eq!(route_of("/v2/a/b/tags/list"), "tags");
        assert_eq!(route_of("/v2/a/blobs/uploads/"), "upload");
        assert_eq!(route_of("/v2/a/blobs/uploads/0123-ab?digest=sha256:00"), "upload");
        assert_eq!(route_of("/v2/a/b/c/blobs/sha256:00"), "blob");
        assert_eq!(route_of("/v2/a/manifests/latest"), "manifest");
        assert_eq!(route_of("/v2/a/referrers/sha256:00"), "referrers");
        assert_eq!(route_of("/_registry/gc?dry-run=true"), "gc");
        assert_eq!(route_of("/v2/a/nothing"), "other");
        assert_eq!(route_of("/favicon.ico"), "other");
    }

    #[test]
    fn repositories_are_found_in_paths() {
        assert_eq!(repository_of("/v2/a/b/blobs/sha256:00"), Some("a/b"));
        assert_eq!(repository_of("/v2/a/blobs/uploads/x"), Some("a"));
        assert_eq!(repository_of("/v2/lib/app/manifests/latest"), Some("lib/app"));
        assert_eq!(repository_of("/v2/lib/app/tags/list"), Some("lib/app"));
        assert_eq!(repository_of("/v2/x/referrers/sha256:00"), Some("x"));
        assert_eq!(repository_of("/v2/"), None);
        assert_eq!(repository_of("/v2/_catalog"), None);
        assert_eq!(repository_of("/token"), None);
    }
}
