//! Plain HTTP requests and responses for the handlers, generic over the
//! request body and the blob stream types of the storage seam
//! (`crate::storage::Storage`). `crate::wasi::http` converts them from and
//! to wasi:http resources; tests build them directly.

use crate::error::RegistryError;

/// How much of a request body the registry reads and throws away when it
/// answers without using the body (a 413 manifest, an error before an
/// upload's data). The hyper server of `wasmtime serve` and `registry-host`
/// closes the connection when a request body is left unread: a client still
/// sending it then gets a broken pipe or a reset instead of the answer (the
/// e2e test of the 4 MiB manifest limit failed that way, now and then on
/// `registry-host`, nearly always on `wasmtime serve`). Bodies up to this
/// size are read to their end first, so the answer arrives and the
/// connection stays open; beyond it, the connection is closed as before.
pub const DISCARD_LIMIT: u64 = 16 << 20;

/// A request body, read once.
pub trait RequestBody {
    /// Reads the body up to its end or `max` bytes, whichever is first.
    fn read_up_to(&mut self, max: u64) -> Result<Vec<u8>, String>;
    /// Reads and throws away at most `max` bytes, ignoring errors.
    fn discard(&mut self, max: u64);
}

/// An incoming request.
pub struct Request<B> {
    /// Upper-case method name.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// `http` or `https`, as the runtime received the request.
    pub scheme: String,
    /// The authority (host and port) the client addressed, if known.
    pub authority: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    /// `None` once a handler took it.
    body: Option<B>,
}

impl<B: RequestBody> Request<B> {
    /// A request for `path_with_query`; `method` is upper-cased.
    pub fn new(method: &str, path_with_query: &str, headers: Vec<(String, Vec<u8>)>, body: B) -> Request<B> {
        let (path, query) = match path_with_query.split_once('?') {
            Some((path, query)) => (path.to_string(), Some(query.to_string())),
            None => (path_with_query.to_string(), None),
        };
        Request {
            method: method.to_ascii_uppercase(),
            path,
            query,
            scheme: "http".into(),
            authority: None,
            headers,
            body: Some(body),
        }
    }

    /// Sets the scheme and authority the request arrived with.
    pub fn with_origin(mut self, scheme: &str, authority: Option<String>) -> Request<B> {
        self.scheme = scheme.to_string();
        self.authority = authority;
        self
    }

    /// The origin clients reach this registry at, e.g.
    /// `https://registry.example:5080`: the request's authority, else its
    /// `Host` header.
    pub fn origin(&self) -> String {
        let host =
            self.authority.as_deref().filter(|a| !a.is_empty()).or_else(|| self.header("host")).unwrap_or("localhost");
        format!("{}://{host}", self.scheme)
    }

    /// The first value of header `name` (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// The declared body length, if the client sent a valid Content-Length.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// Takes the request body; it can be taken once.
    pub fn take_body(&mut self) -> Result<B, RegistryError> {
        self.body.take().ok_or_else(|| RegistryError::internal("request body already taken"))
    }

    /// Reads the whole body into memory, refusing more than `limit` bytes.
    /// `None` when the body is larger than the limit (what is left of it is
    /// then discarded, see [`DISCARD_LIMIT`]).
    pub fn read_body(&mut self, limit: usize) -> Result<Option<Vec<u8>>, RegistryError> {
        if self.content_length().is_some_and(|n| n > limit as u64) {
            // The body stays untaken: `discard_body` reads it before the answer.
            return Ok(None);
        }
        let mut body = self.take_body()?;
        let bytes = body
            .read_up_to(limit as u64 + 1)
            .map_err(|e| RegistryError::BlobUploadInvalid(Some(format!("reading the request body: {e}"))))?;
        if bytes.len() > limit {
            body.discard(DISCARD_LIMIT);
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Reads and throws away the body if no handler took it and the client
    /// sends one (a `Content-Length` above 0, or `Transfer-Encoding`), up to
    /// [`DISCARD_LIMIT`] bytes. Not when the client waits for
    /// `100 Continue`: it sends no body unless asked.
    pub fn discard_body(&mut self) {
        let has_body = self.content_length().map_or(self.header("transfer-encoding").is_some(), |n| n > 0);
        let expects_continue = self.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if !has_body || expects_continue {
            return;
        }
        if let Some(mut body) = self.body.take() {
            body.discard(DISCARD_LIMIT);
        }
    }
}

/// What a response carries; `S` is the storage's blob stream.
pub enum Body<S> {
    /// No body (Content-Length: 0 unless the status forbids it).
    Empty,
    /// Small bytes held in memory (JSON, manifests).
    Bytes(Vec<u8>),
    /// A stream of exactly `len` bytes from storage.
    Stream {
        /// The stream.
        stream: S,
        /// Its length.
        len: u64,
    },
    /// Content-Length of a body that is not sent (HEAD).
    Length(u64),
    /// `len` bytes made while they are sent (a mirror's blob, stored as it
    /// passes from the upstream to the client).
    Produced {
        /// Its length.
        len: u64,
        /// Makes the body.
        produce: Producer,
    },
}

/// Hands a body to its sink chunk by chunk (the sink says whether the
/// client took the chunk); says whether the body came out whole. One that
/// did not is cut off, never finished, so that the client sees a failed
/// transfer rather than a short or wrong blob.
pub type Producer = Box<dyn FnOnce(&mut dyn FnMut(&[u8]) -> bool) -> bool>;

/// A response in the making.
pub struct Response<S> {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Body<S>,
}

impl<S> Response<S> {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response<S> {
        Response { status, headers: Vec::new(), body: Body::Empty }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response<S> {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Body<S>) -> Response<S> {
        self.body = body;
        self
    }

    /// A JSON body.
    pub fn json(status: u16, json: String) -> Response<S> {
        Response::new(status).header("Content-Type", "application/json").body(Body::Bytes(json.into_bytes()))
    }

    /// The spec's error envelope for `err`.
    pub fn error(err: &RegistryError) -> Response<S> {
        let response = Response::json(err.status(), err.to_json());
        match err.allow() {
            Some(allow) => response.header("Allow", allow),
            None => response,
        }
    }

    /// The Content-Length to send (none for 204 and 1xx, which must not
    /// carry one, nor for 304, whose length would be the unsent
    /// representation's), and whether body bytes follow the headers.
    pub fn framing(&self, head: bool) -> (Option<u64>, bool) {
        let (len, has_body) = match &self.body {
            Body::Empty => (0, false),
            Body::Bytes(b) => (b.len() as u64, !head),
            Body::Stream { len, .. } | Body::Produced { len, .. } => (*len, !head),
            Body::Length(len) => (*len, false),
        };
        let len = (self.status != 204 && self.status != 304 && self.status >= 200).then_some(len);
        (len, has_body)
    }
}
