//! A connection's activity, shared by its service, its request and response
//! bodies and its I/O: whether a request is in flight, how many have started,
//! and since when the connection has waited without one. The service counts a
//! request in when hyper hands it over; its request body and its response each
//! count it out when dropped, so a request stays in flight until both are done
//! with (a guest may still read the body after it answered). As that may
//! happen in another task (the guest's), the last one wakes the connection,
//! so that its idle timeout starts.

use atomic_waker::AtomicWaker;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// One connection's activity.
#[derive(Debug)]
pub struct Activity {
    /// Requests started (high 32 bits, wrapping) and the parts of them still
    /// alive (low 32 bits: each request's body and its response, two parts).
    /// One word, so that a reader sees both from the same moment.
    state: AtomicU64,
    /// When the connection was opened: the origin of `idle_since`.
    opened: Instant,
    /// When the connection last began to wait without a request in flight, in
    /// nanoseconds since `opened`: written by the connection's I/O when it
    /// sees that (`DeadlineIo`), read when choosing a connection to close.
    idle_since: AtomicU64,
    /// The connection's task, waiting for its requests to end.
    idle_waker: AtomicWaker,
}

/// What [`Activity::now`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Requests started so far (wrapping): tells one idle period from the next.
    pub requests: u32,
    /// Whether some request's body or response is still alive.
    pub in_flight: bool,
}

/// A request's body or its response: the request is in flight until both
/// are dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.state.fetch_sub(1, Ordering::AcqRel) as u32 == 1 {
            self.0.idle_waker.wake();
        }
    }
}

/// A request started, in two parts: its body and its response.
const REQUEST_STARTED: u64 = (1 << 32) + 2;

impl Activity {
    /// A connection opened now, idle from the start.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: AtomicU64::new(0),
            opened: Instant::now(),
            idle_since: AtomicU64::new(0),
            idle_waker: AtomicWaker::new(),
        })
    }

    /// Counts a request in: the guards of its body and of its response.
    pub fn request_started(self: &Arc<Self>) -> [InFlight; 2] {
        self.state.fetch_add(REQUEST_STARTED, Ordering::AcqRel);
        [InFlight(self.clone()), InFlight(self.clone())]
    }

    /// Whether a request is in flight now, and how many have started.
    pub fn now(&self) -> Seen {
        let state = self.state.load(Ordering::Acquire);
        Seen { requests: (state >> 32) as u32, in_flight: state as u32 != 0 }
    }

    /// Wakes `waker` when no request is in flight any more (once; register
    /// again after each wake, then look at [`Activity::now`] again).
    pub fn wake_when_idle(&self, waker: &std::task::Waker) {
        self.idle_waker.register(waker);
    }

    /// Since when the connection has waited without a request in flight (as
    /// last noted; meaningless while one is in flight).
    pub fn idle_since(&self) -> Instant {
        self.opened + std::time::Duration::from_nanos(self.idle_since.load(Ordering::Relaxed))
    }

    /// Notes when the connection began to wait without a request in flight.
    pub fn set_idle_since(&self, at: Instant) {
        let nanos = at.saturating_duration_since(self.opened).as_nanos();
        self.idle_since.store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until hyper drops it
/// (after its last frame, or when the connection ends).
pub struct ResponseBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> ResponseBody<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Self { inner, _in_flight: in_flight }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_in_flight_until_its_body_and_response_are_dropped() {
        let activity = Activity::new();
        assert_eq!(activity.now(), Seen { requests: 0, in_flight: false });
        let [body, response] = activity.request_started();
        assert_eq!(activity.now(), Seen { requests: 1, in_flight: true });
        drop(response);
        assert!(activity.now().in_flight, "the body is still alive");
        drop(body);
        assert_eq!(activity.now(), Seen { requests: 1, in_flight: false });
        let [a, b] = activity.request_started();
        let [c, d] = activity.request_started();
        drop((a, b, c));
        assert_eq!(activity.now(), Seen { requests: 3, in_flight: true });
        drop(d);
        assert!(!activity.now().in_flight);
    }

    #[test]
    fn the_last_part_of_a_request_to_end_wakes_the_connection() {
        use std::sync::atomic::AtomicUsize;
        struct Wakes(AtomicUsize);
        impl std::task::Wake for Wakes {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let activity = Activity::new();
        let [body, response] = activity.request_started();
        activity.wake_when_idle(&std::task::Waker::from(wakes.clone()));
        drop(response);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        drop(body);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_since_is_kept_relative_to_the_opening() {
        let activity = Activity::new();
        let opened = activity.idle_since();
        tokio::time::advance(std::time::Duration::from_secs(3)).await;
        let later = Instant::now();
        activity.set_idle_since(later);
        assert_eq!(activity.idle_since(), later);
        assert_eq!(later - opened, std::time::Duration::from_secs(3));
    }
}
