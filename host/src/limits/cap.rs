//! The cap on connections, and on connections per client address.
//!
//! At the cap, a new connection makes room by closing the connection that
//! has waited longest without a request in flight (idle, in its TLS
//! handshake, or still sending a request head), so that a flood of idle or
//! slow connections cannot lock out a client that sends its requests. When
//! every connection has a request in flight, nothing is closed: the accept
//! loop waits until a connection closes or a request ends, and new
//! connections wait in the listen backlog. A client at its own cap has its
//! new connection closed at once. What the cap does is logged at most once
//! every few seconds, with counts.

use super::activity::Activity;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// How often the accept loop, with every connection busy, looks again for
/// one that became idle (the end of a request wakes no one, to keep it cheap).
const BUSY_RECHECK: Duration = Duration::from_millis(100);

/// The least time between two log lines about the cap.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The open connections, and the caps on them.
pub struct Cap {
    /// `None`: no cap.
    max: Option<usize>,
    max_per_client: Option<usize>,
    table: Mutex<Table>,
    /// Signalled when a connection closes.
    closed: Notify,
}

struct Table {
    next_id: u64,
    open: HashMap<u64, Entry>,
    per_client: HashMap<IpAddr, usize>,
    /// The connection closed to make room, until it is gone.
    closing: Option<u64>,
    log: CapLog,
}

struct Entry {
    client: IpAddr,
    activity: Arc<Activity>,
    /// How to close it: set once its task runs.
    abort: Option<AbortHandle>,
}

/// A connection's place among the open ones, given back when dropped.
pub struct Slot {
    cap: Arc<Cap>,
    id: u64,
    activity: Arc<Activity>,
}

impl Slot {
    /// The slot's number, for [`Cap::closes_with`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The connection's activity.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.cap.lock();
        if let Some(entry) = table.open.remove(&self.id) {
            if let Some(count) = table.per_client.get_mut(&entry.client) {
                *count -= 1;
                if *count == 0 {
                    table.per_client.remove(&entry.client);
                }
            }
        }
        if table.closing == Some(self.id) {
            table.closing = None;
        }
        drop(table);
        self.cap.closed.notify_one();
    }
}

impl Cap {
    /// A cap of `max` connections and `max_per_client` per client address
    /// (`None`: none).
    pub fn new(max: Option<usize>, max_per_client: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            max,
            max_per_client,
            table: Mutex::new(Table {
                next_id: 0,
                open: HashMap::new(),
                per_client: HashMap::new(),
                closing: None,
                log: CapLog::default(),
            }),
            closed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes room for a new connection from `client`, closing another or
    /// waiting as the cap requires; `None` if the client is at its own cap.
    pub async fn admit(self: &Arc<Self>, client: IpAddr) -> Option<Slot> {
        let mut waited = false;
        loop {
            {
                let mut table = self.lock();
                let table = &mut *table;
                let of_client = table.per_client.get(&client).copied().unwrap_or(0);
                if self.max_per_client.is_some_and(|max| of_client >= max) {
                    table.log.refused += 1;
                    table.log.maybe_log(self);
                    return None;
                }
                if self.max.is_none_or(|max| table.open.len() < max) {
                    let id = table.next_id;
                    table.next_id += 1;
                    let activity = Activity::new();
                    table.open.insert(id, Entry { client, activity: activity.clone(), abort: None });
                    *table.per_client.entry(client).or_default() += 1;
                    return Some(Slot { cap: self.clone(), id, activity });
                }
                if table.closing.is_none() {
                    let waiting = table.open.iter().filter_map(|(id, entry)| {
                        let abort = entry.abort.as_ref()?;
                        let activity = &entry.activity;
                        (!activity.now().in_flight).then(|| (*id, activity.idle_since(), abort))
                    });
                    if let Some((id, abort)) = longest_waiting(waiting) {
                        abort.abort();
                        table.closing = Some(id);
                        table.log.closed += 1;
                        table.log.maybe_log(self);
                    } else if !waited {
                        waited = true;
                        table.log.waited += 1;
                        table.log.maybe_log(self);
                    }
                }
            }
            tokio::select! {
                _ = self.closed.notified() => {}
                _ = tokio::time::sleep(BUSY_RECHECK) => {}
            }
        }
    }

    /// Logs, every [`LOG_INTERVAL`], what the cap did that its last line did
    /// not tell (the line of an event comes at once if the last is older).
    pub async fn log_periodically(self: Arc<Self>) {
        let mut tick = tokio::time::interval(LOG_INTERVAL);
        loop {
            tick.tick().await;
            self.lock().log.maybe_log(&self);
        }
    }

    /// How to close the connection in `slot` (its task), to make room.
    pub fn closes_with(&self, slot_id: u64, abort: AbortHandle) {
        if let Some(entry) = self.lock().open.get_mut(&slot_id) {
            entry.abort = Some(abort);
        }
    }
}

/// Of the connections without a request in flight, `(id, waiting since,
/// how to close it)`, the one that has waited longest.
fn longest_waiting<'a, T>(waiting: impl Iterator<Item = (u64, Instant, &'a T)>) -> Option<(u64, &'a T)> {
    waiting.min_by_key(|(id, since, _)| (*since, *id)).map(|(id, _, close)| (id, close))
}

/// What the cap did since its last log line.
#[derive(Default)]
struct CapLog {
    last: Option<Instant>,
    /// Connections closed to make room.
    closed: u64,
    /// Connections refused at the per-client cap.
    refused: u64,
    /// Times the accept loop waited with every connection busy.
    waited: u64,
}

impl CapLog {
    /// Logs what the cap did since the last line, if anything, unless that
    /// line is more recent than [`LOG_INTERVAL`].
    fn maybe_log(&mut self, cap: &Cap) {
        if let Some(line) = self.line(cap) {
            tracing::warn!("{line}");
        }
    }

    /// The line to log now, if any (and the counts start again).
    fn line(&mut self, cap: &Cap) -> Option<String> {
        if self.last.is_some_and(|last| last.elapsed() < LOG_INTERVAL) {
            return None;
        }
        let mut parts = Vec::new();
        if self.closed > 0 {
            parts.push(format!("{} connections closed to make room (none had a request in flight)", self.closed));
        }
        if self.refused > 0 {
            let max = cap.max_per_client.unwrap_or_default();
            parts.push(format!("{} refused (their client had --max-connections-per-client {max})", self.refused));
        }
        if self.waited > 0 {
            parts.push(format!("{} waits for room with every connection busy", self.waited));
        }
        if parts.is_empty() {
            return None;
        }
        let max = cap.max.map(|max| format!(" (--max-connections {max})")).unwrap_or_default();
        let since = self.last.map(|last| format!(", last {:.0} s", last.elapsed().as_secs_f64())).unwrap_or_default();
        *self = Self { last: Some(Instant::now()), ..Self::default() };
        Some(format!("connection cap{max}{since}: {}", parts.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn the_connection_waiting_longest_is_chosen() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let waiting = [(1, at(5), &'a'), (2, at(2), &'b'), (3, at(9), &'c')];
        assert_eq!(longest_waiting(waiting.into_iter()), Some((2, &'b')));
        assert_eq!(longest_waiting(std::iter::empty::<(u64, Instant, &char)>()), None);
        // The same moment: the older connection.
        assert_eq!(longest_waiting([(7, at(1), &'x'), (4, at(1), &'y')].into_iter()), Some((4, &'y')));
    }

    /// Admits a connection from `client` and runs its task as the server
    /// does: the task holds its slot until it ends or is aborted.
    async fn open(cap: &Arc<Cap>, client: IpAddr) -> (Arc<Activity>, tokio::task::JoinHandle<()>) {
        let slot = cap.admit(client).await.expect("admitted");
        let (id, activity) = (slot.id(), slot.activity().clone());
        let task = tokio::spawn(async move {
            let _slot = slot;
            std::future::pending::<()>().await;
        });
        cap.closes_with(id, task.abort_handle());
        (activity, task)
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_connection_idle_longest_makes_room() {
        let cap = Cap::new(Some(2), None);
        let (first_activity, first) = open(&cap, CLIENT).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, second) = open(&cap, CLIENT).await;
        // The first starts a request and ends it later than the second began
        // to wait: now the second has waited longest.
        let in_flight = first_activity.request_started();
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(in_flight);
        first_activity.set_idle_since(Instant::now());
        let third = cap.admit(OTHER).await.expect("room made");
        assert!(second.await.unwrap_err().is_cancelled());
        assert!(!first.is_finished());
        drop(third);
    }

    #[tokio::test(start_paused = true)]
    async fn with_every_connection_busy_a_new_one_waits_for_a_request_to_end() {
        let cap = Cap::new(Some(1), None);
        let (activity, only) = open(&cap, CLIENT).await;
        let in_flight = activity.request_started();
        let admitted = tokio::spawn({
            let cap = cap.clone();
            async move { cap.admit(OTHER).await.is_some() }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!admitted.is_finished(), "admitted while every connection was busy");
        assert!(!only.is_finished());
        drop(in_flight);
        assert!(admitted.await.unwrap());
        assert!(only.await.unwrap_err().is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn what_the_cap_did_is_told_at_most_every_few_seconds() {
        let cap = Cap::new(Some(32), Some(4));
        let mut log = CapLog::default();
        assert_eq!(log.line(&cap), None, "nothing to tell");
        log.closed += 3;
        let first = log.line(&cap).expect("the first event is told at once");
        assert_eq!(
            first,
            "connection cap (--max-connections 32): 3 connections closed to make room (none had a request in flight)"
        );
        log.closed += 2;
        log.refused += 1;
        log.waited += 1;
        assert_eq!(log.line(&cap), None, "too soon");
        tokio::time::advance(LOG_INTERVAL).await;
        let next = log.line(&cap).expect("told after the interval");
        assert_eq!(
            next,
            "connection cap (--max-connections 32), last 5 s: 2 connections closed to make room (none had a request \
             in flight); 1 refused (their client had --max-connections-per-client 4); 1 waits for room with every \
             connection busy"
        );
        tokio::time::advance(LOG_INTERVAL).await;
        assert_eq!(log.line(&cap), None, "nothing new");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_at_its_cap_is_refused_and_others_are_not() {
        let cap = Cap::new(None, Some(2));
        let a = cap.admit(CLIENT).await.unwrap();
        let b = cap.admit(CLIENT).await.unwrap();
        assert!(cap.admit(CLIENT).await.is_none());
        let other = cap.admit(OTHER).await;
        assert!(other.is_some());
        drop(a);
        assert!(cap.admit(CLIENT).await.is_some(), "a closed connection frees its place");
        drop(b);
    }

    #[tokio::test(start_paused = true)]
    async fn without_caps_everyone_is_admitted() {
        let cap = Cap::new(None, None);
        let mut slots = Vec::new();
        for _ in 0..100 {
            slots.push(cap.admit(CLIENT).await.expect("no cap"));
        }
        drop(slots);
        let table = cap.lock();
        assert!(table.open.is_empty() && table.per_client.is_empty());
    }
}
