//! `wasi:http/outgoing-handler` as the mirrors' [`Fetch`]: a request with no
//! body, its answer's body read as it arrives.

use crate::proxy::{Fetch, Fetched};
use std::io::Read;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::InputStream;

/// Seconds to connect, and to wait for the answer's first byte.
const CONNECT_SECS: u64 = 10;
const FIRST_BYTE_SECS: u64 = 60;
/// Seconds between two reads of an answer's body.
const BETWEEN_BYTES_SECS: u64 = 60;

/// The runtime's outgoing HTTP.
pub struct WasiFetch;

impl Fetch for WasiFetch {
    fn fetch(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Fetched, String> {
        let (scheme, rest) = match url.split_once("://") {
            Some(("https", rest)) => (Scheme::Https, rest),
            Some(("http", rest)) => (Scheme::Http, rest),
            _ => return Err(format!("not an http(s) URL: {url}")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let entries: Vec<(String, Vec<u8>)> =
            headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        let fields = Fields::from_list(&entries).map_err(|e| format!("request headers refused: {e:?}"))?;
        let request = OutgoingRequest::new(fields);
        let method = match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            other => Method::Other(other.to_string()),
        };
        let set = [
            request.set_method(&method),
            request.set_scheme(Some(&scheme)),
            request.set_authority(Some(authority)),
            request.set_path_with_query(Some(path)),
        ];
        if set.iter().any(Result::is_err) {
            return Err(format!("cannot make a request for {url}"));
        }
        let options = RequestOptions::new();
        // A runtime that does not support a timeout keeps its own.
        let _ = options.set_connect_timeout(Some(CONNECT_SECS * 1_000_000_000));
        let _ = options.set_first_byte_timeout(Some(FIRST_BYTE_SECS * 1_000_000_000));
        let _ = options.set_between_bytes_timeout(Some(BETWEEN_BYTES_SECS * 1_000_000_000));
        let body = request.body().map_err(|()| "the request body is already taken".to_string())?;
        let future = outgoing_handler::handle(request, Some(options)).map_err(|e| format!("{e:?}"))?;
        OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
        let response = loop {
            match future.get() {
                Some(answer) => break answer,
                None => future.subscribe().block(),
            }
        };
        let response =
            response.map_err(|()| "the answer was already taken".to_string())?.map_err(|e| format!("{e:?}"))?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let body = response.consume().map_err(|()| "the answer's body is already taken".to_string())?;
        let stream = body.stream().map_err(|()| "the answer's body stream is already taken".to_string())?;
        Ok(Fetched { status, headers, body: Box::new(AnswerBody { stream, _body: body, _response: response }) })
    }
}

/// An answer's body stream with the resources it belongs to.
struct AnswerBody {
    // Dropped in this order: a child before its parent.
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
}

impl Read for AnswerBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Read::read(&mut self.stream, buf)
    }
}
