//! Paging of sorted listings (`n` / `last`) and the `Link: <…>; rel="next"` header.
//!
//! Spec: OCI distribution-spec v1.1 "Listing Tags" (end-8a/8b): results are
//! in lexical order; `n` limits the count; `last` starts strictly after that
//! value; `n=0` MUST return an empty list and MUST NOT send `Link`; when more
//! results exist a `Link` header (RFC 5988, `rel="next"`) MAY be sent, and
//! if a page has fewer than `n` results it MUST be sent. The same helper
//! serves `_catalog` (distribution's extension) and the referrers list
//! (end-12a, which MUST send `Link` if the list does not fit one response).
//!
//! Order: "lexical" is taken as byte order, the order the kv store lists
//! keys in and the order distribution uses. (The spec's aside "case-
//! insensitive alphanumeric" would need every tag in memory to sort; with
//! byte order, a page is one `list-keys` call.)
//!
//! Page size: at most [`MAX_PAGE_SIZE`] entries, whether `n` is absent or
//! larger. The component holds a page in memory and builds one JSON body,
//! so one request must stay bounded; a shorter page always carries `Link`,
//! which the spec permits and tells clients to follow.

/// Largest page returned, used when `n` is absent or larger.
pub const MAX_PAGE_SIZE: usize = 1000;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The entries of this page, in the source's (ascending) order.
    pub items: Vec<T>,
    /// The `Link` header value if more entries follow, e.g.
    /// `</v2/a/tags/list?n=2&last=v2>; rel="next"`.
    pub link: Option<String>,
}

/// The effective page size for a requested `n`: `n` capped at
/// [`MAX_PAGE_SIZE`], or `MAX_PAGE_SIZE` when absent.
pub fn page_size(n: Option<usize>) -> usize {
    n.unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)
}

/// How many entries to read from storage for one page: one more than the
/// page size, so that [`paginate`] can tell whether a next page exists.
pub fn fetch_limit(n: Option<usize>) -> usize {
    page_size(n) + 1
}

/// Cuts one page out of `sorted` (ascending byte order of `as_ref()`).
///
/// Entries `<= last` are skipped, so `sorted` may start anywhere at or
/// before the cursor (e.g. a kv listing that already began after `last`).
/// Only `page_size(n) + 1` entries past the cursor are consumed.
///
/// `path` is the listing URL without `n`/`last`, e.g. `/v2/<name>/tags/list`
/// or `/v2/_catalog`; it may already hold a query (`…?artifactType=x`, with
/// its values percent-encoded by the caller), to which `n` and `last` are
/// appended with `&`.
pub fn paginate<T, I>(sorted: I, n: Option<usize>, last: Option<&str>, path: &str) -> Page<T>
where
    T: AsRef<str>,
    I: IntoIterator<Item = T>,
{
    let size = page_size(n);
    if size == 0 {
        return Page { items: Vec::new(), link: None };
    }
    let mut rest = sorted.into_iter().skip_while(|item| last.is_some_and(|last| item.as_ref() <= last));
    let items: Vec<T> = rest.by_ref().take(size).collect();
    let more = rest.next().is_some();
    let link = match items.last() {
        Some(final_item) if more => Some(next_link(path, size, final_item.as_ref())),
        _ => None,
    };
    Page { items, link }
}

/// The `Link` header value for the page after `last`:
/// `<{path}?n={n}&last={last}>; rel="next"`, with `last` percent-encoded.
pub fn next_link(path: &str, n: usize, last: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("<{path}{sep}n={n}&last={}>; rel=\"next\"", percent_encode(last))
}

/// Percent-encodes `s` for a URL query value: every byte outside the RFC
/// 3986 unreserved set `A-Z a-z 0-9 - . _ ~` becomes `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0x0f)] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/v2/a/tags/list";

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn whole_list_without_parameters() {
        let page = paginate(tags(&["a", "b", "c"]), None, None, PATH);
        assert_eq!(page.items, tags(&["a", "b", "c"]));
        assert_eq!(page.link, None);
    }

    #[test]
    fn n_limits_and_links() {
        let page = paginate(tags(&["a", "b", "c"]), Some(2), None, PATH);
        assert_eq!(page.items, tags(&["a", "b"]));
        assert_eq!(page.link.as_deref(), Some("</v2/a/tags/list?n=2&last=b>; rel=\"next\""));
    }

    #[test]
    fn exact_fit_has_no_link() {
        let page = paginate(tags(&["a", "b"]), Some(2), None, PATH);
        assert_eq!(page.items, tags(&["a", "b"]));
        assert_eq!(page.link, None);
    }

    #[test]
    fn last_is_exclusive_and_need_not_exist() {
        let list = tags(&["a", "b", "c", "d"]);
        let page = paginate(list.clone(), Some(2), Some("b"), PATH);
        assert_eq!(page.items, tags(&["c", "d"]));
        assert_eq!(page.link, None);
        let page = paginate(list.clone(), Some(1), Some("bb"), PATH);
        assert_eq!(page.items, tags(&["c"]));
        assert!(page.link.unwrap().contains("last=c>"));
        let page = paginate(list.clone(), None, Some("z"), PATH);
        assert!(page.items.is_empty());
        assert_eq!(page.link, None);
        let page = paginate(list, None, Some(""), PATH);
        assert_eq!(page.items.len(), 4);
    }

    #[test]
    fn n_zero_is_empty_without_link() {
        let page = paginate(tags(&["a", "b"]), Some(0), None, PATH);
        assert!(page.items.is_empty());
        assert_eq!(page.link, None);
    }

    #[test]
    fn empty_source() {
        let page = paginate(Vec::<String>::new(), Some(5), None, PATH);
        assert!(page.items.is_empty());
        assert_eq!(page.link, None);
    }

    #[test]
    fn byte_order_is_used() {
        // Uppercase sorts before lowercase in byte order.
        let page = paginate(tags(&["B", "a", "b"]), Some(10), Some("B"), PATH);
        assert_eq!(page.items, tags(&["a", "b"]));
    }

    #[test]
    fn page_size_is_capped() {
        assert_eq!(page_size(None), MAX_PAGE_SIZE);
        assert_eq!(page_size(Some(5)), 5);
        assert_eq!(page_size(Some(usize::MAX)), MAX_PAGE_SIZE);
        assert_eq!(fetch_limit(Some(0)), 1);
        assert_eq!(fetch_limit(None), MAX_PAGE_SIZE + 1);
        let many: Vec<String> = (0..MAX_PAGE_SIZE + 5).map(|i| format!("{i:05}")).collect();
        let page = paginate(many, Some(usize::MAX), None, PATH);
        assert_eq!(page.items.len(), MAX_PAGE_SIZE);
        // The link uses the effective size.
        assert_eq!(page.link.as_deref(), Some("</v2/a/tags/list?n=1000&last=00999>; rel=\"next\""));
    }

    #[test]
    fn consumes_only_what_it_needs() {
        let mut pulled = 0;
        let source = (0..).map(|i| {
            pulled += 1;
            format!("{i:09}")
        });
        let page = paginate(source, Some(3), None, PATH);
        assert_eq!(page.items.len(), 3);
        assert!(page.link.is_some());
        assert_eq!(pulled, 4);
    }

    #[test]
    fn catalog_names_and_existing_query() {
        let names = tags(&["a/b", "a/c"]);
        let page = paginate(names, Some(1), None, "/v2/_catalog");
        assert_eq!(page.link.as_deref(), Some("</v2/_catalog?n=1&last=a%2Fb>; rel=\"next\""));
        assert_eq!(
            next_link("/v2/a/referrers/x?artifactType=t%2Fx", 2, "q"),
            "</v2/a/referrers/x?artifactType=t%2Fx&n=2&last=q>; rel=\"next\""
        );
    }

    #[test]
    fn works_with_borrowed_items() {
        let owned = tags(&["x", "y"]);
        let page = paginate(owned.iter().map(String::as_str), Some(1), None, PATH);
        assert_eq!(page.items, vec!["x"]);
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(percent_encode("a/b c&d=e+f%"), "a%2Fb%20c%26d%3De%2Bf%25");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode(""), "");
    }
}
