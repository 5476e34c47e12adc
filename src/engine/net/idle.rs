//! When a keep-alive connection is idle: no request in progress, and not a byte of the
//! next one since the last response ended. hyper has a header timeout but no idle one (its
//! header timer also runs while a connection waits for the next request, but a connection
//! is only worth keeping that long while a request is arriving), so we watch for it: the
//! connection's reads are counted ([`Watched`]), requests are counted in and out
//! ([`Activity::begin`], and the response body's drop), and the connection's task closes
//! it when [`Activity::idle_deadline`] has passed.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::response_body::ResponseBody;

#[derive(Default)]
pub struct Activity {
    /// Bytes read from the connection so far.
    read: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    /// When the last request in flight ended, and how many bytes had been read then. None
    /// before the first response: a new connection waits under the header timeout.
    ended: Option<(Instant, u64)>,
}

impl Activity {
    /// A request begins; it ends when the returned guard (its response body) drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let mut state = self.state.lock().unwrap();
        state.in_flight += 1;
        state.ended = None;
        InFlight(self.clone())
    }

    /// When the connection will have been idle for `idle`, if it is idle now.
    pub fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        let state = self.state.lock().unwrap();
        let (at, read) = state.ended.filter(|_| state.in_flight == 0)?;
        (read == self.read.load(Ordering::Relaxed)).then_some(at + idle)
    }
}

pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let mut state = activity.state.lock().unwrap();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.ended = Some((Instant::now(), activity.read.load(Ordering::Relaxed)));
        }
    }
}

/// The TCP stream, its reads counted.
pub struct Watched {
    pub stream: TcpStream,
    pub activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.activity.read.fetch_add(read as u64, Ordering::Relaxed);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, data)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A response body that holds its request's [`InFlight`] until hyper is done with it.
pub struct Tracked {
    pub body: ResponseBody,
    pub _request: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_only_after_a_response_and_until_the_next_byte() {
        let activity = Arc::new(Activity::default());
        let idle = Duration::from_secs(5);
        assert_eq!(activity.idle_deadline(idle), None, "a new connection is under the header timeout");
        let first = activity.begin();
        let second = activity.begin(); // pipelined
        drop(first);
        assert_eq!(activity.idle_deadline(idle), None, "a request is still in flight");
        drop(second);
        assert!(activity.idle_deadline(idle).is_some());
        activity.read.fetch_add(3, Ordering::Relaxed); // the next request has begun to arrive
        assert_eq!(activity.idle_deadline(idle), None);
    }
}
