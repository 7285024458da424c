//! Talking to an upstream registry: plain requests through [`Fetch`] (the
//! component's `wasi:http/outgoing-handler`), Docker's token flow when the
//! upstream asks for it (a 401 with a `Bearer` challenge: a token from its
//! realm for `repository:<name>:pull`, with the configured credentials or
//! anonymously), Basic credentials when it asks for those, and redirects
//! (blob GETs are often sent on to a CDN or an object store, which get no
//! credentials). Tokens are not kept between requests: keeping them would
//! put secrets in storage.

use super::settings::Upstream;
use base64::Engine as _;
use std::cell::RefCell;
use std::io::Read;

/// At most this many redirects are followed.
const MAX_REDIRECTS: usize = 5;
/// A token answer larger than this is refused.
const TOKEN_LIMIT: u64 = 1 << 20;

/// An upstream's answer.
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, read as it arrives.
    pub body: Box<dyn Read>,
}

impl Fetched {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The declared body length, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.trim().parse().ok())
    }
}

/// Sends requests without a body to upstream registries.
pub trait Fetch {
    /// `method url` with `headers`; `Err` when no answer came (the upstream
    /// cannot be reached, or timed out).
    fn fetch(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Fetched, String>;
}

/// What went wrong upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// No usable answer: unreachable, timed out, 5xx, or rate-limited.
    /// Cached content is served instead, where there is some.
    Down(String),
    /// The upstream does not have it, or does not let us have it (404,
    /// 401/403 after signing in: Docker Hub answers 401 for names it does
    /// not know).
    Missing(String),
    /// Any other answer.
    Refused(String),
}

impl UpstreamError {
    /// The detail for the client.
    pub fn detail(&self) -> &str {
        match self {
            UpstreamError::Down(d) | UpstreamError::Missing(d) | UpstreamError::Refused(d) => d,
        }
    }
}

/// One request's conversation with one upstream about one repository.
pub struct Session<'a> {
    fetch: &'a dyn Fetch,
    upstream: &'a super::settings::Upstream,
    remote: &'a str,
    /// The `Authorization` earned by signing in, for later requests.
    authorization: RefCell<Option<String>>,
}

impl<'a> Session<'a> {
    /// A session for the repository `remote` of `upstream`.
    pub fn new(fetch: &'a dyn Fetch, upstream: &'a Upstream, remote: &'a str) -> Self {
        Session { fetch, upstream, remote, authorization: RefCell::new(None) }
    }

    /// The upstream's URL, for messages.
    pub fn upstream_url(&self) -> &str {
        &self.upstream.url
    }

    /// `method /v2/<remote>/<what>` (e.g. `manifests/latest`), signing in
    /// once if the upstream asks; a 2xx answer, or why not.
    pub fn send(&self, method: &str, what: &str, accept: Option<&str>) -> Result<Fetched, UpstreamError> {
        let url = format!("{}/v2/{}/{what}", self.upstream.url, self.remote);
        let mut answer = self.send_following(method, &url, accept)?;
        if answer.status == 401 && self.sign_in(answer.header("www-authenticate"))? {
            answer = self.send_following(method, &url, accept)?;
        }
        let where_ = format!("{method} {url}");
        match answer.status {
            200..=299 => Ok(answer),
            404 | 401 | 403 => {
                Err(UpstreamError::Missing(format!("{where_}: the upstream answered {}", answer.status)))
            }
            429 | 500..=599 => Err(UpstreamError::Down(format!("{where_}: the upstream answered {}", answer.status))),
            status => Err(UpstreamError::Refused(format!("{where_}: the upstream answered {status}"))),
        }
    }

    /// Sends, following redirects; credentials go only to the upstream itself.
    fn send_following(&self, method: &str, url: &str, accept: Option<&str>) -> Result<Fetched, UpstreamError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let authorization = self.authorization.borrow().clone();
            let mut headers = vec![("user-agent", "wasm-registry-mirror")];
            if let Some(accept) = accept {
                headers.push(("accept", accept));
            }
            let own = same_origin(&url, &self.upstream.url);
            if let (true, Some(authorization)) = (own, authorization.as_deref()) {
                headers.push(("authorization", authorization));
            }
            let answer =
                self.fetch.fetch(method, &url, &headers).map_err(|e| UpstreamError::Down(format!("{url}: {e}")))?;
            match (answer.status, answer.header("location")) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => url = resolve(&url, location),
                _ => return Ok(answer),
            }
        }
        Err(UpstreamError::Refused(format!("{url}: more than {MAX_REDIRECTS} redirects")))
    }

    /// Answers a challenge: whether there is now something to retry with.
    fn sign_in(&self, challenge: Option<&str>) -> Result<bool, UpstreamError> {
        let Some((scheme, params)) = challenge.and_then(parse_challenge) else { return Ok(false) };
        let basic = self.upstream.credentials.as_ref().map(|(user, password)| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        });
        if scheme.eq_ignore_ascii_case("basic") {
            let retry = basic.is_some();
            *self.authorization.borrow_mut() = basic;
            return Ok(retry);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(false);
        }
        let param = |name: &str| params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let Some(realm) = param("realm") else { return Ok(false) };
        let scope = param("scope").map_or_else(|| format!("repository:{}:pull", self.remote), str::to_string);
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(service) = param("service") {
            query.append_pair("service", service);
        }
        query.append_pair("scope", &scope);
        let separator = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{separator}{}", query.finish());
        let mut headers = vec![("user-agent", "wasm-registry-mirror")];
        if let Some(basic) = basic.as_deref() {
            headers.push(("authorization", basic));
        }
        let answer =
            self.fetch.fetch("GET", &url, &headers).map_err(|e| UpstreamError::Down(format!("{realm}: {e}")))?;
        if answer.status != 200 {
            let detail = format!("the upstream's token endpoint {realm} answered {}", answer.status);
            return Err(if answer.status >= 500 {
                UpstreamError::Down(detail)
            } else {
                UpstreamError::Missing(detail)
            });
        }
        let mut body = Vec::new();
        answer
            .body
            .take(TOKEN_LIMIT)
            .read_to_end(&mut body)
            .map_err(|e| UpstreamError::Down(format!("reading a token from {realm}: {e}")))?;
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Refused(format!("the token from {realm} is not JSON: {e}")))?;
        let token = json.get("token").or_else(|| json.get("access_token")).and_then(|t| t.as_str());
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(UpstreamError::Refused(format!("the answer of {realm} holds no token")));
        };
        *self.authorization.borrow_mut() = Some(format!("Bearer {token}"));
        Ok(true)
    }
}

/// `Bearer realm="…",service="…"` → ("Bearer", [(realm, …), (service, …)]).
pub fn parse_challenge(value: &str) -> Option<(String, Vec<(String, String)>)> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_string();
        if name.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                val.push(c);
            }
            val = val.trim().to_string();
        }
        params.push((name, val));
    }
    (!scheme.is_empty()).then(|| (scheme.to_string(), params))
}

/// Whether `url` is on the origin `base` (`scheme://host[:port]`).
fn same_origin(url: &str, base: &str) -> bool {
    url.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A redirect's `location` against the URL that sent it.
fn resolve(from: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let origin_end = from.find("://").map_or(0, |i| i + 3);
    let origin = match from[origin_end..].find('/') {
        Some(i) => &from[..origin_end + i],
        None => from,
    };
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        let dir = from.rfind('/').filter(|i| *i >= origin_end).map_or(from, |i| &from[..i]);
        format!("{dir}/{location}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed_with_quotes_and_commas() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(scheme, "Bearer");
        assert_eq!(
            params,
            [
                ("realm".to_string(), "https://auth.docker.io/token".to_string()),
                ("service".to_string(), "registry.docker.io".to_string()),
                ("scope".to_string(), "repository:library/busybox:pull,push".to_string()),
            ]
        );
        let (scheme, params) = parse_challenge("Basic realm=registry").unwrap();
        assert_eq!((scheme.as_str(), params[0].1.as_str()), ("Basic", "registry"));
    }

    #[test]
    fn redirects_resolve_against_the_url_that_sent_them() {
        let from = "http://h:5000/v2/a/blobs/sha256:x";
        assert_eq!(resolve(from, "https://cdn/x?sig=1"), "https://cdn/x?sig=1");
        assert_eq!(resolve(from, "/other/y"), "http://h:5000/other/y");
        assert_eq!(resolve(from, "z"), "http://h:5000/v2/a/blobs/z");
        assert!(same_origin("http://h:5000/v2/", "http://h:5000"));
        assert!(!same_origin("http://h:50001/v2/", "http://h:5000"));
    }
}
