//! A connection's socket (or TLS stream) with the idle, header and send
//! timeouts: a read that waits past its deadline fails, and so does a write,
//! and hyper then closes the connection.
//!
//! Which read deadline applies depends on what the connection waits for:
//!
//! - a request in flight: none here (hyper also reads to notice a client
//!   that leaves while it answers); the request body has its own timeout
//!   (`body_timeout.rs`), the response the send timeout;
//! - nothing in flight: the idle timeout, counted from the moment the
//!   connection began to wait (bytes that are not a request, such as HTTP/2
//!   pings, do not extend it);
//! - HTTP/1.1, once the first byte of the next request arrived: the header
//!   timeout, counted from that byte, until hyper has the whole head and
//!   starts the request.
//!
//! A response still being written (a write waiting for the client) counts as
//! in flight for reads: the send timeout covers it, and the connection begins
//! to wait when the write is done.
//!
//! Costs: a read that returns bytes loads one atomic (HTTP/1.1); a write
//! clears one field; only a read or write that has to wait looks at the clock
//! and a timer, which each connection allocates once, on first need.

use super::activity::Activity;
use super::Timeouts;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The protocol spoken on the connection: it decides whether the bytes read
/// between requests start a request (HTTP/1.1) or may be frames of the
/// connection itself (HTTP/2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// What the connection waits for, as last seen by a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A request in flight, or a response being written.
    Busy,
    /// No request in flight since `since`, after `requests` requests.
    Idle { requests: u32, since: Instant },
    /// The head of request `requests + 1` began to arrive at `since`.
    Head { requests: u32, since: Instant },
}

/// An I/O stream with the connection's timeouts.
pub struct DeadlineIo<T> {
    io: T,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    protocol: Protocol,
    phase: Phase,
    /// When the write in progress began to wait, if it waits.
    write_waiting_since: Option<Instant>,
    /// A read is waiting without a deadline for a write to finish.
    read_waits_for_write: bool,
    read_timer: Timer,
    write_timer: Timer,
}

impl<T> DeadlineIo<T> {
    /// `io`, opened now and idle, with `timeouts`.
    pub fn new(io: T, activity: Arc<Activity>, timeouts: Timeouts, protocol: Protocol) -> Self {
        let phase = Phase::Idle { requests: activity.now().requests, since: activity.idle_since() };
        Self {
            io,
            activity,
            timeouts,
            protocol,
            phase,
            write_waiting_since: None,
            read_waits_for_write: false,
            read_timer: Timer::default(),
            write_timer: Timer::default(),
        }
    }

    /// Brings the phase up to date with the connection's activity.
    fn observe(&mut self) -> Phase {
        let seen = self.activity.now();
        let current = match self.phase {
            Phase::Idle { requests, .. } | Phase::Head { requests, .. } => requests == seen.requests,
            Phase::Busy => false,
        };
        if seen.in_flight {
            self.phase = Phase::Busy;
        } else if !current {
            let since = Instant::now();
            self.activity.set_idle_since(since);
            self.phase = Phase::Idle { requests: seen.requests, since };
        }
        self.phase
    }

    /// A read returned bytes: on HTTP/1.1 with nothing in flight, they are
    /// the start of the next request's head.
    fn bytes_read(&mut self) {
        if self.protocol == Protocol::Http1 {
            if let Phase::Idle { requests, .. } = self.observe() {
                self.phase = Phase::Head { requests, since: Instant::now() };
            }
        }
    }

    /// A read has to wait: its deadline, and what it waits for.
    fn read_deadline(&mut self, cx: &mut Context<'_>) -> Option<(Instant, &'static str)> {
        let mut phase = self.observe();
        if phase == Phase::Busy {
            // The request may end in another task (the guest's, holding its
            // body): be woken then, to start the idle deadline.
            self.activity.wake_when_idle(cx.waker());
            phase = self.observe();
        }
        if phase != Phase::Busy && self.write_waiting_since.is_some() {
            // The last response is still going out: the wait for the next
            // request begins once it is sent (`write_outcome` wakes the task).
            self.phase = Phase::Busy;
            self.read_waits_for_write = true;
            return None;
        }
        match phase {
            Phase::Busy => None,
            Phase::Idle { since, .. } => self.timeouts.idle.map(|t| (since + t, "no request within the idle timeout")),
            Phase::Head { since, .. } => {
                self.timeouts.header.map(|t| (since + t, "the request head took longer than the header timeout"))
            }
        }
    }

    /// Applies the send timeout to the outcome of a write, flush or shutdown.
    fn write_outcome<R>(&mut self, cx: &mut Context<'_>, outcome: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if outcome.is_ready() {
            self.write_waiting_since = None;
            if self.read_waits_for_write {
                self.read_waits_for_write = false;
                cx.waker().wake_by_ref();
            }
            return outcome;
        }
        let Some(send) = self.timeouts.send else { return Poll::Pending };
        let since = *self.write_waiting_since.get_or_insert_with(Instant::now);
        if self.write_timer.poll_expired(since + send, cx) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no more of the response within the send timeout",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.read_deadline(cx) {
                Some((deadline, what)) if this.read_timer.poll_expired(deadline, cx) => {
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
                }
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write(cx, buf);
        self.write_outcome(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.write_outcome(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.io).poll_flush(cx);
        self.write_outcome(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.io).poll_shutdown(cx);
        self.write_outcome(cx, outcome)
    }
}

/// A timer allocated on first use and reset from then on.
#[derive(Default)]
struct Timer(Option<Pin<Box<Sleep>>>);

impl Timer {
    /// Whether `deadline` has passed; if not, `cx` is woken when it does.
    fn poll_expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        let sleep = match &mut self.0 {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            none => none.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx).is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);
    const SEND: Duration = Duration::from_secs(20);

    fn timeouts() -> Timeouts {
        Timeouts { header: Some(HEADER), body: None, idle: Some(IDLE), send: Some(SEND) }
    }

    /// A server side with the timeouts, its client side, and its activity.
    fn connection(protocol: Protocol, buffer: usize) -> (DeadlineIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        let (server, client) = tokio::io::duplex(buffer);
        let activity = Activity::new();
        (DeadlineIo::new(server, activity.clone(), timeouts(), protocol), client, activity)
    }

    /// Reads until the server side fails; returns how long that took.
    async fn read_until_failure(io: &mut DeadlineIo<DuplexStream>) -> (Duration, io::Error) {
        let start = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            match io.read(&mut buf).await {
                Ok(0) => panic!("end of stream instead of a timeout"),
                Ok(_) => {}
                Err(e) => return (start.elapsed(), e),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_fails_after_the_idle_timeout() {
        let (mut io, _client, _activity) = connection(Protocol::Http1, 1024);
        let (waited, e) = read_until_failure(&mut io).await;
        assert_eq!(waited, IDLE);
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_must_be_complete_within_the_header_timeout_of_its_first_byte() {
        let (mut io, mut client, _activity) = connection(Protocol::Http1, 1024);
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            // Trickling does not extend the deadline.
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                client.write_all(b"x").await.unwrap();
            }
        });
        let (_, e) = read_until_failure(&mut io).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5) + HEADER);
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_do_not_extend_the_idle_timeout() {
        let (mut io, mut client, _activity) = connection(Protocol::Http2, 1024);
        tokio::spawn(async move {
            for _ in 0..1000 {
                tokio::time::sleep(Duration::from_secs(15)).await;
                client.write_all(b"ping").await.unwrap();
            }
        });
        let (waited, _) = read_until_failure(&mut io).await;
        assert_eq!(waited, IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn no_read_deadline_while_a_request_is_in_flight_and_a_fresh_idle_period_after() {
        let (mut io, mut client, activity) = connection(Protocol::Http1, 1024);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        // hyper has the head and starts the request; the guest, in another
        // task, is done with it long after the idle timeout.
        let in_flight = activity.request_started();
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(IDLE * 3).await;
            drop(in_flight);
        });
        let (waited, e) = read_until_failure(&mut io).await;
        assert_eq!(start.elapsed(), IDLE * 4, "{e}");
        assert_eq!(waited, IDLE * 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_does_not_take_fails_after_the_send_timeout() {
        let (mut io, _client, _activity) = connection(Protocol::Http1, 16);
        let start = Instant::now();
        let e = io.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), SEND);

        // A client that reads slowly but steadily is never cut.
        let (mut io, mut slow, _activity) = connection(Protocol::Http1, 16);
        let start = Instant::now();
        tokio::spawn(async move {
            let mut buf = [0u8; 16];
            while slow.read(&mut buf).await.unwrap() > 0 {
                tokio::time::sleep(SEND / 2).await;
            }
        });
        io.write_all(&[0u8; 256]).await.unwrap();
        assert!(start.elapsed() > SEND * 5);
    }

    /// Like hyper: one task polls reads and writes. The last response's bytes
    /// wait for a client that takes 16 bytes every 15 s: the connection is
    /// not idle until they are all sent, after longer than the idle timeout.
    #[tokio::test(start_paused = true)]
    async fn a_response_waiting_for_the_client_keeps_the_connection_from_idling() {
        let (mut io, mut client, _activity) = connection(Protocol::Http1, 16);
        tokio::spawn(async move {
            let mut buf = [0u8; 16];
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                if client.read(&mut buf).await.unwrap() == 0 {
                    break;
                }
            }
        });
        let start = Instant::now();
        let mut unsent: &[u8] = &[0u8; 128];
        let mut sent_at = None;
        let failed = std::future::poll_fn(|cx| {
            let mut buf = [0u8; 16];
            let mut buf = ReadBuf::new(&mut buf);
            if let Poll::Ready(outcome) = Pin::new(&mut io).poll_read(cx, &mut buf) {
                return Poll::Ready(outcome.expect_err("nothing to read but a timeout"));
            }
            while !unsent.is_empty() {
                match Pin::new(&mut io).poll_write(cx, unsent) {
                    Poll::Ready(written) => unsent = &unsent[written.unwrap()..],
                    Poll::Pending => break,
                }
                if unsent.is_empty() {
                    sent_at = Some(Instant::now());
                }
            }
            Poll::Pending
        })
        .await;
        let sent_at = sent_at.expect("the response was sent before the connection timed out");
        // 16 bytes fit in the pipe at once, the other 112 in 7 reads.
        assert_eq!(sent_at - start, Duration::from_secs(7 * 15));
        assert_eq!(sent_at.elapsed(), IDLE, "{failed}");
    }
}
