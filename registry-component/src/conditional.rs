//! Conditional requests (RFC 9110, section 13.1.2): a GET or HEAD whose
//! `If-None-Match` names the ETag the registry would answer is answered 304
//! Not Modified, without a body, so that clients and caches revalidate what
//! they hold for free. Blobs and manifests carry their digest as a strong
//! ETag, `"sha256:…"`.

/// Whether the `If-None-Match` value `header` matches the ETag of `digest`:
/// `*`, or a listed entity tag equal to it (weak comparison, as the RFC
/// asks for this header, so `W/"sha256:…"` matches too).
pub fn none_match(header: &str, digest: &str) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag.strip_prefix("W/").unwrap_or(tag).strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(digest)
    })
}

#[cfg(test)]
mod tests {
    use super::none_match;

    const D: &str = "sha256:0123";

    #[test]
    fn matching_tags() {
        assert!(none_match("\"sha256:0123\"", D));
        assert!(none_match("W/\"sha256:0123\"", D));
        assert!(none_match("\"other\", \"sha256:0123\"", D));
        assert!(none_match("*", D));
    }

    #[test]
    fn tags_that_do_not_match() {
        assert!(!none_match("\"sha256:0124\"", D));
        assert!(!none_match("sha256:0123", D), "an entity tag is quoted");
        assert!(!none_match("", D));
        assert!(!none_match("\"sha256:0123", D));
    }
}
