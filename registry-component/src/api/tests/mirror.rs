//! Pull-through mirrors with a real upstream: a second registry over its
//! own in-memory store, reached through a `Fetch` that counts requests and
//! can be stopped or made to corrupt blobs.

use super::{image_manifest, index_manifest, Registry};
use crate::oci::digest::Digest;
use crate::oci::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::proxy::{Fetch, Fetched, Mirrors};
use crate::storage::memory::MemoryBody;
use crate::storage::StorageExt;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

const URL: &str = "http://upstream.test";

struct Upstream {
    registry: Registry,
    calls: RefCell<Vec<String>>,
    down: Cell<bool>,
    corrupt: Cell<bool>,
}

struct Shared(Rc<Upstream>);

impl Fetch for Shared {
    fn fetch(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Fetched, String> {
        let up = &self.0;
        if up.down.get() {
            return Err("connection refused".into());
        }
        let path = url.strip_prefix(URL).ok_or_else(|| format!("unexpected URL {url}"))?;
        up.calls.borrow_mut().push(format!("{method} {path}"));
        let answer = up.registry.send(method, path, headers, MemoryBody::new(Vec::new()));
        let mut body = answer.body;
        if up.corrupt.get() && path.contains("/blobs/") && !body.is_empty() {
            body[0] ^= 1;
        }
        let mut headers: Vec<(String, String)> =
            answer.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        if let Some(len) = answer.content_length {
            headers.push(("content-length".into(), len.to_string()));
        }
        Ok(Fetched { status: answer.status, headers, body: Box::new(std::io::Cursor::new(body)) })
    }
}

/// A mirror of a fresh upstream under `settings` (TOML with `URL` as `{url}`).
fn mirror(settings: &str) -> (Registry, Rc<Upstream>) {
    let upstream = Rc::new(Upstream {
        registry: Registry::new(),
        calls: RefCell::default(),
        down: Cell::new(false),
        corrupt: Cell::new(false),
    });
    let mirrors = Mirrors::parse(&settings.replace("{url}", URL)).unwrap();
    let mut registry = Registry::new();
    registry.ctx.mirrors = std::cell::LazyCell::new(Box::new(move || Ok(Some(mirrors))));
    registry.ctx.upstream = Box::new(Shared(upstream.clone()));
    (registry, upstream)
}

const DEFAULT: &str = "[[upstream]]\nprefix = \"\"\nurl = \"{url}\"\n";

impl Upstream {
    fn calls(&self) -> usize {
        self.calls.borrow().len()
    }
}

#[test]
fn a_pull_stores_what_it_fetches_and_the_second_pull_asks_nothing_upstream() {
    let (mirror, up) = mirror(DEFAULT);
    let config = up.registry.push_blob("library/app", b"config");
    let layer = up.registry.push_blob("library/app", &vec![7u8; 1 << 20]);
    let manifest = image_manifest(OCI_MANIFEST, &config, &layer, "");
    up.registry.push_manifest("library/app", "latest", OCI_MANIFEST, &manifest).expect(201, None);

    let pull = |expect_calls: Option<usize>| {
        let before = up.calls();
        let answer = mirror.get("/v2/library/app/manifests/latest");
        answer.expect(200, None);
        assert_eq!(answer.body, manifest);
        assert_eq!(answer.header("Content-Type"), Some(OCI_MANIFEST));
        for (digest, len) in [(&config, 6), (&layer, 1 << 20)] {
            let blob = mirror.get(&format!("/v2/library/app/blobs/{digest}"));
            blob.expect(200, None);
            assert_eq!((Digest::of_bytes(&blob.body), blob.body.len()), (digest.clone(), len));
        }
        if let Some(calls) = expect_calls {
            assert_eq!(up.calls() - before, calls, "{:?}", up.calls.borrow());
        }
    };
    pull(None);
    assert!(up.calls() >= 3);
    // Within the tag's time to live, nothing goes upstream.
    pull(Some(0));
    // Stored here for good: the upstream may go.
    up.down.set(true);
    pull(Some(0));
}

#[test]
fn a_corrupt_blob_is_cut_off_never_stored_and_fetched_again_once_the_upstream_is_fixed() {
    let (mirror, up) = mirror(DEFAULT);
    let layer = up.registry.push_blob("team/app", &vec![1u8; 300_000]);
    up.corrupt.set(true);
    let path = format!("/v2/team/app/blobs/{layer}");
    let cut = mirror.get(&path);
    assert_eq!(cut.status, 0, "the client must not see a complete body");
    assert!(cut.body.len() < 300_000, "the last chunk is held back until the digest checks");
    assert_eq!(mirror.storage().blob_size(&layer).unwrap(), None);
    up.corrupt.set(false);
    let good = mirror.get(&path);
    good.expect(200, None);
    assert_eq!(Digest::of_bytes(&good.body), layer);
    assert_eq!(mirror.storage().blob_size(&layer).unwrap(), Some(300_000));
}

#[test]
fn tags_are_checked_again_after_their_time_to_live_and_served_stale_while_the_upstream_is_down() {
    let (mirror, up) = mirror("[[upstream]]\nprefix = \"hub\"\nurl = \"{url}\"\ntag-ttl = 0\n");
    let (first, first_digest) = up.registry.push_image("library/app", "v1", OCI_MANIFEST, "");
    mirror.get("/v2/hub/library/app/manifests/v1").expect(200, None);
    // The tag moves upstream: seen at the next check.
    let (second, second_digest) =
        up.registry.push_image("library/app", "v1", OCI_MANIFEST, r#","annotations":{"n":"2"}"#);
    assert_ne!(first_digest, second_digest);
    let moved = mirror.get("/v2/hub/library/app/manifests/v1");
    moved.expect(200, None);
    assert_eq!(moved.body, second);
    assert_ne!(moved.body, first);
    // An unchanged tag costs one HEAD upstream, no body.
    let before = up.calls();
    mirror.get("/v2/hub/library/app/manifests/v1").expect(200, None);
    assert_eq!(up.calls.borrow()[before..], ["HEAD /v2/library/app/manifests/v1".to_string()]);
    // Upstream down: the cached tag, marked stale; unknown things fail cleanly.
    up.down.set(true);
    let stale = mirror.get("/v2/hub/library/app/manifests/v1");
    stale.expect(200, None);
    assert_eq!(stale.body, second);
    assert!(stale.header("Warning").is_some_and(|w| w.starts_with("110 ")), "{stale:?}");
    mirror.get("/v2/hub/library/other/manifests/v1").expect(502, Some("UNKNOWN"));
    up.down.set(false);
    mirror.get("/v2/hub/library/other/manifests/v1").expect(404, Some("MANIFEST_UNKNOWN"));
    mirror.get(&format!("/v2/hub/library/other/blobs/{first_digest}")).expect(404, Some("BLOB_UNKNOWN"));
}

#[test]
fn an_index_by_tag_then_its_children_by_digest() {
    let (mirror, up) = mirror(DEFAULT);
    let (_, amd) = up.registry.push_image("multi", "amd", OCI_MANIFEST, "");
    let (_, arm) = up.registry.push_image("multi", "arm", OCI_MANIFEST, r#","annotations":{"a":"arm"}"#);
    let index = index_manifest(OCI_INDEX, OCI_MANIFEST, &[&amd, &arm]);
    up.registry.push_manifest("multi", "latest", OCI_INDEX, &index).expect(201, None);
    let got = mirror.get("/v2/multi/manifests/latest");
    got.expect(200, None);
    assert_eq!((got.body.as_slice(), got.header("Content-Type")), (index.as_slice(), Some(OCI_INDEX)));
    for child in [&amd, &arm] {
        let head = mirror.head(&format!("/v2/multi/manifests/{child}"));
        head.expect(200, None);
        assert_eq!(head.header("Docker-Content-Digest"), Some(child.as_str()));
    }
    let before = up.calls();
    mirror.get(&format!("/v2/multi/manifests/{arm}")).expect(200, None);
    assert_eq!(up.calls(), before, "a manifest by digest is kept for ever");
}

#[test]
fn a_blob_head_asks_upstream_and_stores_nothing_and_stored_bytes_need_the_upstreams_word() {
    let (mirror, up) = mirror("[[upstream]]\nprefix = \"m\"\nurl = \"{url}\"\n");
    let layer = up.registry.push_blob("app", b"layer bytes");
    let head = mirror.head(&format!("/v2/m/app/blobs/{layer}"));
    head.expect(200, None);
    assert_eq!(head.content_length, Some(11));
    assert_eq!(mirror.storage().blob_size(&layer).unwrap(), None);
    // Bytes pushed to a local repository do not show through a mirror's
    // name unless the upstream has them there.
    let private = mirror.push_blob("local/app", b"private");
    mirror.get(&format!("/v2/m/app/blobs/{private}")).expect(404, Some("BLOB_UNKNOWN"));
    up.registry.push_blob("app", b"private");
    mirror.get(&format!("/v2/m/app/blobs/{private}")).expect(200, None);
}

#[test]
fn pushes_into_a_mirror_are_refused_unless_allowed_and_other_names_are_local() {
    let (mirror, _up) = mirror("[[upstream]]\nprefix = \"hub\"\nurl = \"{url}\"\n[[upstream]]\nprefix = \"open\"\nurl = \"{url}\"\npush = true\n");
    let refused = mirror.with_body("POST", "/v2/hub/app/blobs/uploads/", &[], b"");
    refused.expect(405, Some("UNSUPPORTED"));
    assert!(refused.json().to_string().contains("is a mirror of http://upstream.test"));
    mirror.push_manifest("hub/app", "v1", OCI_MANIFEST, b"{}").expect(405, Some("UNSUPPORTED"));
    mirror.push_blob("open/app", b"allowed");
    mirror.push_blob("local/app", b"local");
    mirror.get("/v2/local/app/tags/list").expect(200, None);
}
