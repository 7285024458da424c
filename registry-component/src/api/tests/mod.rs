//! The handlers run natively against `MemoryStorage`: every request goes
//! through the router and `api::respond`, as in the component, and every
//! answer is read back whole. `Registry` is the test client; one module per
//! URL area holds the tests.

mod auth;
mod blobs;
mod catalog;
mod full;
mod manifests;
mod mirror;
mod referrers;
mod tags;
mod uploads;

use super::{respond, Ctx};
use crate::auth::Access;
use crate::http::{Body, Request};
use crate::oci::digest::Digest;
use crate::storage::memory::{MemoryBody, MemoryStorage};
use std::io::Read;

/// A registry over an in-memory store.
pub struct Registry {
    ctx: Ctx<MemoryStorage>,
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The Content-Length the edge would send (none for 204).
    pub content_length: Option<u64>,
}

impl Answer {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts the status and, for an error, the OCI error code of the body.
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Answer {
        assert_eq!(self.status, status, "{self:?} body {}", String::from_utf8_lossy(&self.body));
        if let Some(code) = code {
            assert_eq!(self.json()["errors"][0]["code"], code, "{self:?}");
        }
        self
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            ctx: Ctx {
                storage: MemoryStorage::new(),
                delete_enabled: true,
                access: Access::Open,
                gc: super::fixed_gc(Ok(Default::default())),
                mirrors: super::no_mirrors(),
                upstream: Box::new(crate::proxy::NoUpstream),
            },
        }
    }

    pub fn without_delete() -> Registry {
        Registry {
            ctx: Ctx {
                storage: MemoryStorage::new(),
                delete_enabled: false,
                access: Access::Open,
                gc: super::fixed_gc(Ok(Default::default())),
                mirrors: super::no_mirrors(),
                upstream: Box::new(crate::proxy::NoUpstream),
            },
        }
    }

    /// A registry with access control from these environment variables.
    pub fn with_access(vars: &[(&str, &str)]) -> Registry {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let settings = registry_auth::Settings::from_vars(
            |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            |path| Err(std::io::Error::other(format!("no file {path} in unit tests"))),
        );
        Registry {
            ctx: Ctx {
                storage: MemoryStorage::new(),
                delete_enabled: true,
                access: Access::from_settings(settings),
                gc: super::fixed_gc(Ok(Default::default())),
                mirrors: super::no_mirrors(),
                upstream: Box::new(crate::proxy::NoUpstream),
            },
        }
    }

    /// With garbage collection settings (the endpoint is served unless
    /// `settings` turn it off).
    pub fn with_gc(mut self, settings: crate::gc::GcSettings) -> Registry {
        self.ctx.gc = super::fixed_gc(Ok(settings));
        self
    }

    pub fn storage(&self) -> &MemoryStorage {
        &self.ctx.storage
    }

    /// Sends `method path` with `headers` and `body`.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: MemoryBody) -> Answer {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        let mut req = Request::new(method, path, headers, body);
        let response = respond(&self.ctx, &mut req);
        let (content_length, has_body) = response.framing(method == "HEAD");
        let body = match response.body {
            _ if !has_body => Vec::new(),
            Body::Empty | Body::Length(_) => Vec::new(),
            Body::Bytes(bytes) => bytes,
            Body::Stream { mut stream, len } => {
                let mut bytes = Vec::new();
                stream.read_to_end(&mut bytes).unwrap();
                assert_eq!(bytes.len() as u64, len, "the stream holds the announced length");
                bytes
            }
            Body::Produced { produce, .. } => {
                let mut bytes = Vec::new();
                if !produce(&mut |chunk| {
                    bytes.extend_from_slice(chunk);
                    true
                }) {
                    // A cut body: what a client sees as a failed transfer.
                    return Answer { status: 0, headers: response.headers, body: bytes, content_length };
                }
                bytes
            }
        };
        if has_body {
            assert_eq!(content_length, Some(body.len() as u64));
        }
        Answer { status: response.status, headers: response.headers, body, content_length }
    }

    pub fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], MemoryBody::new(Vec::new()))
    }

    pub fn head(&self, path: &str) -> Answer {
        self.send("HEAD", path, &[], MemoryBody::new(Vec::new()))
    }

    pub fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, &[], MemoryBody::new(Vec::new()))
    }

    /// A request with a body and its Content-Length.
    pub fn with_body(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let len = body.len().to_string();
        let mut all = vec![("Content-Length", len.as_str())];
        all.extend_from_slice(headers);
        self.send(method, path, &all, MemoryBody::new(body))
    }

    /// Pushes `data` in one request to `repo`; its digest.
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::of_bytes(data);
        self.with_body("POST", &format!("/v2/{repo}/blobs/uploads/?digest={digest}"), &[], data).expect(201, None);
        digest
    }

    /// Pushes a manifest of `media_type` under `reference`.
    pub fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Answer {
        self.with_body("PUT", &format!("/v2/{repo}/manifests/{reference}"), &[("Content-Type", media_type)], body)
    }

    /// Pushes a config and one layer, and an image manifest of
    /// `media_type` (OCI or Docker) over them under `reference`; the
    /// manifest's bytes and digest.
    pub fn push_image(&self, repo: &str, reference: &str, media_type: &str, extra: &str) -> (Vec<u8>, Digest) {
        let config = self.push_blob(repo, format!("config of {reference}").as_bytes());
        let layer = self.push_blob(repo, format!("layer of {reference}").as_bytes());
        let body = image_manifest(media_type, &config, &layer, extra);
        self.push_manifest(repo, reference, media_type, &body).expect(201, None);
        let digest = Digest::of_bytes(&body);
        (body, digest)
    }
}

/// An image manifest over a config and a layer; `extra` is more top-level
/// JSON fields (with a leading comma), such as a `subject`.
pub fn image_manifest(media_type: &str, config: &Digest, layer: &Digest, extra: &str) -> Vec<u8> {
    let docker = media_type.contains("docker");
    let config_type = if docker {
        "application/vnd.docker.container.image.v1+json"
    } else {
        "application/vnd.oci.image.config.v1+json"
    };
    let layer_type = if docker {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    };
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"{config_type}","digest":"{config}","size":1}},"layers":[{{"mediaType":"{layer_type}","digest":"{layer}","size":1}}]{extra}}}"#
    )
    .into_bytes()
}

/// An index (OCI or Docker list) of `children` image manifests.
pub fn index_manifest(media_type: &str, child_type: &str, children: &[&Digest]) -> Vec<u8> {
    let entries: Vec<String> = children
        .iter()
        .map(|d| format!(r#"{{"mediaType":"{child_type}","digest":"{d}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}}"#))
        .collect();
    format!(r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{}]}}"#, entries.join(",")).into_bytes()
}

#[test]
fn base_answers_an_empty_object() {
    let registry = Registry::new();
    let answer = registry.get("/v2/");
    answer.expect(200, None);
    assert_eq!(answer.json(), serde_json::json!({}));
    assert_eq!(answer.header("Content-Type"), Some("application/json"));
    registry.head("/v2/").expect(200, None);
}

#[test]
fn unknown_paths_and_methods_are_errors() {
    let registry = Registry::new();
    registry.get("/v2/a/unknown/x").expect(404, Some("NAME_UNKNOWN"));
    let answer = registry.send("POST", "/v2/", &[], MemoryBody::new(Vec::new()));
    answer.expect(405, Some("UNSUPPORTED"));
    assert_eq!(answer.header("Allow"), Some("GET, HEAD"));
}
