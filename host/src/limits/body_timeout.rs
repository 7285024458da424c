//! A request body with the body timeout: when the client sends nothing more
//! of it for that long, the body fails with `ConnectionReadTimeout`, as a
//! broken body does: the guest answers the request as it answers any body
//! that fails, and hyper, which sees the body given up before its end, closes
//! the connection after that answer (HTTP/2: ends that request's stream). The timeout is between bytes, not a
//! total: a slow but steady upload goes on for as long as it takes. And it
//! counts only while someone waits for the body: a guest busy elsewhere does
//! not make the client late.
//!
//! Costs: a frame that is ready costs nothing more; only a wait looks at the
//! clock and a timer, which the body allocates once, on its first wait.

use super::activity::InFlight;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::Error;

/// A request body (hyper's) with the body timeout; it keeps its request in
/// flight until dropped.
pub struct TimedBody<B> {
    /// `None` once timed out: dropped at once, so that hyper knows that the
    /// rest of the body will not be read.
    inner: Option<B>,
    timeout: Option<Duration>,
    /// Whether the last poll of `inner` had to wait (`timer` is set for it).
    waiting: bool,
    timer: Option<Pin<Box<Sleep>>>,
    _in_flight: InFlight,
}

impl<B> TimedBody<B> {
    /// `inner` with `timeout` (`None`: no timeout), counting as `in_flight`.
    pub fn new(inner: B, timeout: Option<Duration>, in_flight: InFlight) -> Self {
        Self { inner: Some(inner), timeout, waiting: false, timer: None, _in_flight: in_flight }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
        };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let Some(timeout) = this.timeout else { return Poll::Pending };
        if !this.waiting {
            this.waiting = true;
            let deadline = Instant::now() + timeout;
            match &mut this.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                none => *none = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let timer = this.timer.as_mut().expect("set while waiting");
        if timer.as_mut().poll(cx).is_ready() {
            this.inner = None;
            return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_some_and(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::activity::Activity;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    const TIMEOUT: Duration = Duration::from_secs(60);

    /// A body whose frames a test sends.
    struct Sent(mpsc::Receiver<Bytes>);

    impl Body for Sent {
        type Data = Bytes;
        type Error = Error;

        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
            self.0.poll_recv(cx).map(|bytes| bytes.map(|bytes| Ok(Frame::data(bytes))))
        }
    }

    fn body() -> (TimedBody<Sent>, mpsc::Sender<Bytes>, std::sync::Arc<Activity>) {
        let (sender, receiver) = mpsc::channel(1);
        let activity = Activity::new();
        let [in_flight, _response] = activity.request_started();
        (TimedBody::new(Sent(receiver), Some(TIMEOUT), in_flight), sender, activity)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_body_is_read_to_its_end() {
        let (mut body, sender, _activity) = body();
        let start = Instant::now();
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(TIMEOUT - Duration::from_secs(1)).await;
                sender.send(Bytes::from_static(b"0123456789")).await.unwrap();
            }
        });
        let mut received = 0;
        while let Some(frame) = body.frame().await {
            received += frame.unwrap().into_data().unwrap().len();
        }
        assert_eq!(received, 200);
        assert_eq!(start.elapsed(), (TIMEOUT - Duration::from_secs(1)) * 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_timeout_from_its_last_bytes() {
        let (mut body, sender, activity) = body();
        sender.send(Bytes::from_static(b"first")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::sleep(Duration::from_secs(10)).await;
        sender.send(Bytes::from_static(b"second")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let last = Instant::now();
        let failure = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(failure, Error::ConnectionReadTimeout), "{failure:?}");
        assert_eq!(last.elapsed(), TIMEOUT);
        assert!(body.inner.is_none(), "the rest of the body is given up");
        assert!(matches!(body.frame().await, Some(Err(Error::ConnectionReadTimeout))));
        drop(sender);
        assert!(activity.now().in_flight, "the response is still alive");
    }

    #[tokio::test(start_paused = true)]
    async fn only_waiting_for_the_client_counts() {
        let (mut body, sender, _activity) = body();
        sender.send(Bytes::from_static(b"ready")).await.unwrap();
        // The guest reads nothing for a long while: the client is not late.
        tokio::time::sleep(TIMEOUT * 3).await;
        assert!(body.frame().await.unwrap().is_ok());
        drop(sender);
        assert!(body.frame().await.is_none());
    }
}
