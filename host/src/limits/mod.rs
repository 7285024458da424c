//! What keeps slow, stalled and idle clients from holding the server's file
//! descriptors and memory: per-connection timeouts (`deadline_io.rs` for the
//! connection, `body_timeout.rs` for request bodies), which know from
//! `activity.rs` whether a connection has a request in flight, and the cap on
//! connections (`cap.rs`), with the process's descriptor limit (`fd_limit.rs`).

pub mod activity;
pub mod body_timeout;
pub mod cap;
pub mod deadline_io;
pub mod fd_limit;

use std::sync::Arc;
use std::time::Duration;

/// The timeouts of every connection; `None` is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a request to the end of its head (HTTP/1.1).
    pub header: Option<Duration>,
    /// Longest wait for more of a request body: between bytes, not in total.
    pub body: Option<Duration>,
    /// Longest time without a request in flight (HTTP/1.1: until the first
    /// byte of the next request).
    pub idle: Option<Duration>,
    /// Longest wait for the client to take more of a response.
    pub send: Option<Duration>,
}

impl Timeouts {
    /// The timeouts as given on the command line, where zero turns one off.
    pub fn from_flags(header: Duration, body: Duration, idle: Duration, send: Duration) -> Self {
        let on = |d: Duration| (!d.is_zero()).then_some(d);
        Self { header: on(header), body: on(body), idle: on(idle), send: on(send) }
    }
}

/// The connection cap of `max` connections, `max_per_client` per client
/// address (0: no cap), with the descriptor limit raised for it, and the task
/// that logs what it does; logs the limits in force.
pub fn prepare(timeouts: Timeouts, max: usize, max_per_client: usize) -> Arc<cap::Cap> {
    let on = |n: usize| (n > 0).then_some(n);
    let (max, max_per_client) = (on(max), on(max_per_client));
    let files = fd_limit::raise_to_hard_limit();
    let shown = |d: Option<Duration>| d.map_or("none".to_string(), |d| format!("{d:?}"));
    let count = |n: Option<usize>| n.map_or("no cap".to_string(), |n| n.to_string());
    let files_shown = match &files {
        Ok(Some(files)) => files.to_string(),
        Ok(None) => "unlimited".to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    tracing::info!(
        "timeouts: header {}, body {} between bytes, idle {}, send {}; connections: at most {} ({} per client); \
         open files: at most {files_shown}",
        shown(timeouts.header),
        shown(timeouts.body),
        shown(timeouts.idle),
        shown(timeouts.send),
        count(max),
        count(max_per_client),
    );
    // A connection with a request in flight holds its socket and often a
    // file or two.
    if let (Some(max), Ok(Some(files))) = (max, files) {
        let needed = u64::try_from(max).unwrap_or(u64::MAX).saturating_mul(2);
        if needed > files {
            tracing::warn!(
                "--max-connections {max} may need {needed} open files, more than the limit of {files}: \
                 raise the limit (ulimit -n) or lower --max-connections"
            );
        }
    }
    let cap = cap::Cap::new(max, max_per_client);
    tokio::spawn(cap.clone().log_periodically());
    cap
}

/// Parses a duration flag: plain seconds (`30`), or a number with units
/// (`30s`, `1m30s`, `500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (give seconds, or a duration such as 30s, 2m, 500ms)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds_or_have_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn zero_turns_a_timeout_off() {
        let t = Timeouts::from_flags(Duration::ZERO, Duration::from_secs(1), Duration::ZERO, Duration::from_secs(2));
        assert_eq!(t.header, None);
        assert_eq!(t.body, Some(Duration::from_secs(1)));
        assert_eq!(t.idle, None);
        assert_eq!(t.send, Some(Duration::from_secs(2)));
    }
}
